/* hconfig.c - see hconfig.h. One table describes every key. */
#include "hconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

enum key_type { K_STR, K_INT, K_SIZE, K_LEVEL, K_HOST };

typedef struct config_key {
    const char *section;
    const char *name;
    const char *flag;  /* long option */
    int short_opt;     /* 0 when none */
    enum key_type type;
    size_t off;        /* offsetof(hearth_config, field) */
    long long min, max;
    bool live;         /* applied by SIGHUP without restart */
    const char *help;
} config_key;

#define OFF(f) offsetof(hearth_config, f)

static const config_key keys[] = {
    {"server", "host", "host", 0, K_HOST, OFF(host), 0, 0, false,
     "address to listen on (default 127.0.0.1)"},
    {"server", "port", "port", 'p', K_INT, OFF(port), 0, 65535, false,
     "TCP port (default 8080; 0 picks a free one)"},
    {"server", "max_body_size", "max-body-size", 0, K_SIZE, OFF(max_body), 1,
     1LL << 34, true, "largest request body accepted, e.g. 1M (default 8M)"},
    {"server", "shutdown_timeout", "shutdown-timeout", 0, K_INT,
     OFF(shutdown_timeout), 0, 3600, true,
     "seconds to let in-flight requests finish on SIGTERM (default 10)"},
    {"server", "max_queue", "max-queue", 0, K_INT, OFF(max_queue), 0, 100000,
     false, "generation requests that may wait for a free slot; more get 429 "
     "(default 64)"},
    {"server", "ping_interval", "ping-interval", 0, K_INT, OFF(ping_interval), 1,
     3600, true, "seconds between SSE keep-alive comments while a stream "
     "waits (default 5)"},
    {"server", "request_timeout", "request-timeout", 0, K_INT, OFF(request_timeout), 0,
     86400, true, "seconds a generation request may take, queue wait included; "
     "0 = no limit (default 600)"},
    {"server", "api_key", "api-key", 0, K_STR, OFF(api_key), 0, 0, true,
     "require 'Authorization: Bearer KEY' on every endpoint but /health "
     "(default: none)"},
    {"model", "path", "model", 'm', K_STR, OFF(model_path), 0, 0, false,
     "GGUF model file to serve (default: none)"},
    {"model", "threads", "threads", 't', K_INT, OFF(threads), 0, 1024, false,
     "compute threads, 0 = one per core (default 0)"},
    {"model", "context", "context", 'C', K_INT, OFF(context), 0, 1 << 20, false,
     "context size per sequence in tokens, 0 = the model's (default 4096, "
     "capped at the model's)"},
    {"model", "parallel", "parallel", 'P', K_INT, OFF(parallel), 1, 256, false,
     "sequences generated at once, batched together (default 4)"},
    {"model", "chat_template", "chat-template", 0, K_STR, OFF(chat_template), 0,
     0, false, "override the model's chat template with a built-in one: "
     "chatml, llama2, llama3, mistral, phi3, gemma, zephyr, deepseek (default: "
     "the model's; chatml when it has none)"},
    {"log", "level", "log-level", 'l', K_LEVEL, OFF(log_level), 0, 0, true,
     "error, warn, info or debug (default info)"},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

void config_init(hearth_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = strdup("127.0.0.1");
    c->port = 8080;
    c->max_body = 8LL << 20;
    c->shutdown_timeout = 10;
    c->threads = 0;
    c->max_queue = 64;
    c->ping_interval = 5;
    c->request_timeout = 600;
    c->context = 4096;
    c->parallel = 4;
    c->log_level = LOG_INFO;
}

void config_free(hearth_config *c)
{
    free(c->config_path);
    free(c->host);
    free(c->model_path);
    free(c->chat_template);
    free(c->api_key);
    memset(c, 0, sizeof *c);
}

/* Parse "123", "64k", "8M", "1G" (binary units) into bytes. */
static int parse_size(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0)
        return -1;
    long long mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1LL << 10; end++; break;
    case 'm': case 'M': mul = 1LL << 20; end++; break;
    case 'g': case 'G': mul = 1LL << 30; end++; break;
    default: break;
    }
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0' || (v > 0 && mul > LLONG_MAX / v))
        return -1;
    *out = v * mul;
    return 0;
}

static bool host_valid(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return strcmp(s, "localhost") == 0 || inet_pton(AF_INET, s, buf) == 1 ||
           inet_pton(AF_INET6, s, buf) == 1;
}

/* Store `val` into the field of `k`. On a bad value, writes the reason
 * (without location) to err and returns -1. */
static int key_set(hearth_config *c, const config_key *k, const char *val,
                   char *err, size_t errlen)
{
    char *field = (char *)c + k->off;
    switch (k->type) {
    case K_HOST:
        if (!host_valid(val)) {
            snprintf(err, errlen,
                     "%s: '%s' is not an IPv4/IPv6 address or 'localhost'",
                     k->name, val);
            return -1;
        }
        /* fall through */
    case K_STR: {
        char *dup = *val ? strdup(val) : NULL;
        if (*val && !dup) {
            snprintf(err, errlen, "%s: out of memory", k->name);
            return -1;
        }
        char **p = (char **)(void *)field;
        free(*p);
        *p = dup;
        return 0;
    }
    case K_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (end == val || *end != '\0' || errno || v < k->min || v > k->max) {
            snprintf(err, errlen, "%s: '%s' is not an integer in %lld..%lld",
                     k->name, val, k->min, k->max);
            return -1;
        }
        *(int *)(void *)field = (int)v;
        return 0;
    }
    case K_SIZE: {
        long long v;
        if (parse_size(val, &v) < 0 || v < k->min || v > k->max) {
            snprintf(err, errlen,
                     "%s: '%s' is not a size between %lld and %lld bytes "
                     "(suffixes k, M, G allowed)",
                     k->name, val, k->min, k->max);
            return -1;
        }
        *(long long *)(void *)field = v;
        return 0;
    }
    case K_LEVEL: {
        int lvl = log_level_parse(val);
        if (lvl < 0) {
            snprintf(err, errlen,
                     "%s: '%s' is not one of error, warn, info, debug",
                     k->name, val);
            return -1;
        }
        *(int *)(void *)field = lvl;
        return 0;
    }
    }
    return -1;
}

typedef struct ini_ctx {
    hearth_config *c;
    char err[512]; /* first error only */
    bool failed;
} ini_ctx;

static int on_ini_kv(void *user, const char *section, const char *name,
                       const char *value)
{
    ini_ctx *ctx = user;
    if (ctx->failed)
        return 1; /* keep only the first error; inih reports its line */
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].section, section) == 0 &&
            strcmp(keys[i].name, name) == 0) {
            if (key_set(ctx->c, &keys[i], value, ctx->err, sizeof ctx->err) < 0) {
                ctx->failed = true;
                return 0;
            }
            return 1;
        }
    }
    ctx->failed = true;
    if (*section == '\0')
        snprintf(ctx->err, sizeof ctx->err,
                 "key '%s' outside of any section (sections: [server], "
                 "[model], [log])", name);
    else
        snprintf(ctx->err, sizeof ctx->err, "unknown key '%s' in section [%s]",
                 name, section);
    return 0;
}

int config_read_file(hearth_config *c, const char *path, char *err, size_t errlen)
{
    ini_ctx ctx = {.c = c};
    int rc = ini_parse(path, on_ini_kv, &ctx);
    if (rc == 0)
        return 0;
    if (rc == -1)
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    else if (rc == -2)
        snprintf(err, errlen, "%s: out of memory", path);
    else if (ctx.failed)
        snprintf(err, errlen, "%s:%d: %s", path, rc, ctx.err);
    else
        snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
                 path, rc);
    return -1;
}

enum { OPT_CONFIG = 'c', OPT_HELP = 'h', OPT_VERSION = 'V', OPT_KEY_BASE = 256 };

static void build_options(struct option *opts, char *shortopts)
{
    size_t n = 0;
    char *s = shortopts;
    *s++ = ':'; /* report a missing argument as ':' */
    opts[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    opts[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
    opts[n++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    s += sprintf(s, "c:hV");
    for (size_t i = 0; i < N_KEYS; i++) {
        opts[n++] = (struct option){keys[i].flag, required_argument, NULL,
                                    (int)(OPT_KEY_BASE + i)};
        if (keys[i].short_opt)
            s += sprintf(s, "%c:", keys[i].short_opt);
    }
    opts[n] = (struct option){0, 0, 0, 0};
}

static int opt_to_key(int opt)
{
    if (opt >= OPT_KEY_BASE && opt < OPT_KEY_BASE + (int)N_KEYS)
        return opt - OPT_KEY_BASE;
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].short_opt && keys[i].short_opt == opt)
            return (int)i;
    return -1;
}

/* Walk argv. pass 0: only --config/--help/--version; pass 1: the key
 * flags, applied over whatever is in c. */
static int parse_flags(hearth_config *c, int argc, char **argv, int pass,
                       char *err, size_t errlen)
{
    struct option opts[N_KEYS + 4];
    char shortopts[3 * N_KEYS + 8];
    build_options(opts, shortopts);
    optind = 0; /* GNU: full re-initialisation */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        if (opt == '?') {
            if (optopt && optopt < OPT_KEY_BASE)
                snprintf(err, errlen, "unknown option '-%c' (see --help)", optopt);
            else
                snprintf(err, errlen, "unknown option '%s' (see --help)",
                         argv[optind - 1]);
            return CONFIG_ERROR;
        }
        if (opt == ':') {
            snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
            return CONFIG_ERROR;
        }
        if (pass == 0) {
            if (opt == OPT_HELP) {
                config_print_help(argv[0], stdout);
                return CONFIG_EXIT;
            }
            if (opt == OPT_VERSION) {
                printf("hearthd %s\n", PACKAGE_VERSION);
                return CONFIG_EXIT;
            }
            if (opt == OPT_CONFIG) {
                free(c->config_path);
                c->config_path = strdup(optarg);
            }
            continue;
        }
        int ki = opt_to_key(opt);
        if (ki < 0)
            continue;
        char why[400];
        if (key_set(c, &keys[ki], optarg, why, sizeof why) < 0) {
            snprintf(err, errlen, "--%s: %s", keys[ki].flag, why);
            return CONFIG_ERROR;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

int config_load(hearth_config *c, int argc, char **argv, const char *default_path,
                char *err, size_t errlen)
{
    int rc = parse_flags(c, argc, argv, 0, err, errlen);
    if (rc != CONFIG_OK)
        return rc;
    if (!c->config_path && default_path && access(default_path, F_OK) == 0)
        c->config_path = strdup(default_path);
    if (c->config_path && config_read_file(c, c->config_path, err, errlen) < 0)
        return CONFIG_ERROR;
    return parse_flags(c, argc, argv, 1, err, errlen);
}

int config_reload(hearth_config *c, int argc, char **argv, char *restart_keys,
                  size_t rk_len, char *err, size_t errlen)
{
    if (rk_len)
        restart_keys[0] = '\0';
    if (!c->config_path) {
        snprintf(err, errlen, "no configuration file to re-read");
        return -1;
    }
    hearth_config fresh;
    config_init(&fresh);
    fresh.config_path = strdup(c->config_path);
    if (config_read_file(&fresh, fresh.config_path, err, errlen) < 0 ||
        parse_flags(&fresh, argc, argv, 1, err, errlen) != CONFIG_OK) {
        config_free(&fresh);
        return -1; /* the running configuration stays as it was */
    }
    size_t used = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const config_key *k = &keys[i];
        char *a = (char *)c + k->off, *b = (char *)&fresh + k->off;
        bool differs;
        if (k->type == K_STR || k->type == K_HOST) {
            const char *sa = *(char **)(void *)a, *sb = *(char **)(void *)b;
            differs = (sa == NULL) != (sb == NULL) || (sa && strcmp(sa, sb) != 0);
        } else if (k->type == K_SIZE) {
            differs = *(long long *)(void *)a != *(long long *)(void *)b;
        } else {
            differs = *(int *)(void *)a != *(int *)(void *)b;
        }
        if (!differs)
            continue;
        if (k->live) {
            /* swap so that `fresh` frees the old value */
            char tmp[sizeof(long long) > sizeof(char *) ? sizeof(long long) : sizeof(char *)];
            size_t sz = (k->type == K_SIZE) ? sizeof(long long)
                        : (k->type == K_STR || k->type == K_HOST) ? sizeof(char *)
                                                                  : sizeof(int);
            memcpy(tmp, a, sz);
            memcpy(a, b, sz);
            memcpy(b, tmp, sz);
        } else if (rk_len) {
            int n = snprintf(restart_keys + used, rk_len - used, "%s%s.%s",
                             used ? ", " : "", k->section, k->name);
            if (n > 0 && (size_t)n < rk_len - used)
                used += (size_t)n;
        }
    }
    config_free(&fresh);
    return 0;
}

void config_print_help(const char *prog, void *stream)
{
    FILE *f = stream;
    fprintf(f,
            "Usage: %s [OPTIONS]\n"
            "hearth daemon: serves the OpenAI API for local models.\n\n"
            "Values come from built-in defaults, then the configuration file,\n"
            "then these flags.\n\n"
            "  -c, --config FILE        configuration file (INI); default "
            HEARTH_SYSCONFDIR "/hearth/hearth.conf when it exists\n",
            prog);
    for (size_t i = 0; i < N_KEYS; i++) {
        char left[64];
        if (keys[i].short_opt)
            snprintf(left, sizeof left, "-%c, --%s VALUE", keys[i].short_opt,
                     keys[i].flag);
        else
            snprintf(left, sizeof left, "    --%s VALUE", keys[i].flag);
        fprintf(f, "  %-24s %s [%s] %s\n", left, keys[i].help, keys[i].section,
                keys[i].name);
    }
    fprintf(f, "  -h, --help               show this help and exit\n"
               "  -V, --version            show the version and exit\n\n"
               "Signals: SIGTERM/SIGINT finish in-flight requests and exit;\n"
               "SIGHUP re-reads the configuration file.\n");
}
