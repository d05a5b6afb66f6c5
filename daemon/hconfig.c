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

#include "chat.h"
#include "hconfig_lists.h"
#include "log.h"
#include "daemon/paths.h"

/* K_AUTO_BOOL: a K_BOOL that may also be "auto", stored as -1. */
/* K_TEMPLATE: a K_STR naming a built-in chat template, or a path (it has
 * a '/'; read when the model is opened). */
enum key_type { K_STR, K_INT, K_SIZE, K_LEVEL, K_HOST, K_REAL, K_BOOL, K_AUTO_BOOL, K_CHOICE,
                K_LONG, K_MODE, K_TEMPLATE };

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
    const char *choices; /* K_CHOICE: "a|b|c" */
} config_key;

#define OFF(f) offsetof(hearth_config, f)

/* The key's field is a char * (the others are numbers). */
static bool key_is_string(const config_key *k)
{
    return k->type == K_STR || k->type == K_HOST || k->type == K_CHOICE ||
           k->type == K_TEMPLATE;
}

static const config_key keys[] = {
    {"server", "host", "host", 0, K_HOST, OFF(host), 0, 0, false,
     "address to listen on (default 127.0.0.1)", NULL},
    {"server", "port", "port", 'p', K_INT, OFF(port), 0, 65535, false,
     "TCP port (default 8080; 0 picks a free one)", NULL},
    {"server", "max_body_size", "max-body-size", 0, K_SIZE, OFF(max_body), 1,
     1LL << 34, true, "largest request body accepted, e.g. 1M (default 8M)", NULL},
    {"server", "shutdown_timeout", "shutdown-timeout", 0, K_INT,
     OFF(shutdown_timeout), 0, 3600, true,
     "seconds to let in-flight requests finish on SIGTERM (default 10)", NULL},
    {"server", "max_queue", "max-queue", 0, K_INT, OFF(max_queue), 0, 100000,
     false, "generation requests that may wait for a free slot; more get 429 "
     "(default 64)", NULL},
    {"server", "ping_interval", "ping-interval", 0, K_INT, OFF(ping_interval), 1,
     3600, true, "seconds between SSE keep-alive comments while a stream "
     "waits (default 5)", NULL},
    {"server", "request_timeout", "request-timeout", 0, K_INT, OFF(request_timeout), 0,
     86400, true, "seconds a generation request may take, queue wait included; "
     "0 = no limit (default 600)", NULL},
    {"server", "api_key", "api-key", 0, K_STR, OFF(api_key), 0, 0, true,
     "require 'Authorization: Bearer KEY' on every endpoint but /health and "
     "the chat page's files; several keys separated by commas or spaces "
     "(default: none)", NULL},
    {"server", "webui", "webui", 0, K_AUTO_BOOL, OFF(webui), 0, 0, true,
     "serve the chat page at /: auto (on when host is a loopback address), "
     "yes or no (default auto)", NULL},
    {"server", "api_key_file", "api-key-file", 0, K_STR, OFF(api_key_file), 0, 0, true,
     "file with more API keys, one a line, re-read on SIGHUP (default: none)", NULL},
    {"server", "allowed_hosts", "allowed-hosts", 0, K_STR, OFF(allowed_hosts), 0, 0, true,
     "host names a loopback listener answers besides localhost and loopback "
     "addresses, comma or space separated (default: none)", NULL},
    {"server", "cors_origins", "cors-origins", 0, K_STR, OFF(cors_origins), 0, 0, true,
     "origins whose browser pages may call the API, comma or space separated; "
     "* for any (default: none)", NULL},
    {"server", "socket", "socket", 0, K_STR, OFF(socket_path), 0, 0, false,
     "also listen on this Unix domain socket (default: none)", NULL},
    {"server", "socket_mode", "socket-mode", 0, K_MODE, OFF(socket_mode), 0, 0777, false,
     "permissions of the Unix socket, octal (default 0600)", NULL},
    {"server", "tcp", "tcp", 0, K_BOOL, OFF(tcp), 0, 1, false,
     "listen on host:port; no serves the Unix socket only (default yes)", NULL},
    {"server", "max_connections", "max-connections", 0, K_INT, OFF(max_connections), 1,
     1000000, false, "connections open at once; more are answered 503 (default 4096)", NULL},
    {"server", "header_timeout", "header-timeout", 0, K_INT, OFF(header_timeout), 0, 3600,
     true, "seconds a connection has to send a request's headers; 0 = no limit "
     "(default 30)", NULL},
    {"server", "idle_timeout", "idle-timeout", 0, K_INT, OFF(idle_timeout), 0, 86400, false,
     "seconds a connection may send and receive nothing while not waiting for a "
     "generation; 0 = no limit (default 60)", NULL},
    {"server", "max_header_size", "max-header-size", 0, K_SIZE, OFF(max_header), 1024,
     1 << 20, false, "largest request line and headers; larger get 431 (default 16k)", NULL},
    {"server", "max_messages", "max-messages", 0, K_INT, OFF(max_messages), 0, 1 << 24, true,
     "messages in one generation request; more get 400; 0 = no limit (default 4096)",
     NULL},
    {"server", "metrics", "metrics", 0, K_AUTO_BOOL, OFF(metrics), 0, 0, true,
     "serve Prometheus metrics at /metrics: auto (on when host is a loopback "
     "address), yes or no (default auto)", NULL},
    {"model", "path", "model", 'm', K_STR, OFF(model_path), 0, 0, false,
     "GGUF model file loaded at start and kept, the default model (default: none; "
     "models are loaded by name from the store)", NULL},
    {"model", "threads", "threads", 't', K_INT, OFF(threads), 0, 1024, false,
     "compute threads, 0 = one per core (default 0)", NULL},
    {"model", "context", "context", 'C', K_INT, OFF(context), 0, 1 << 20, false,
     "context size per sequence in tokens, 0 = the model's (default 4096, "
     "capped at the model's)", NULL},
    {"model", "parallel", "parallel", 'P', K_INT, OFF(parallel), 1, 256, false,
     "sequences generated at once, batched together (default 4)", NULL},
    {"model", "chat_template", "chat-template", 0, K_TEMPLATE, OFF(chat_template), 0,
     0, false, "override the model's chat template with a built-in one (chatml, "
     "llama2, llama3, mistral, phi3, gemma, zephyr, deepseek) or a Jinja file (a "
     "path with a '/') (default: the model's; chatml when it has none)", NULL},
    {"model", "default", "default-model", 0, K_STR, OFF(model_default), 0, 0, false,
     "model of the store that requests naming no model get, when no path is set "
     "(default: the most recently used, else the store's only model)", NULL},
    {"model", "keep_alive", "keep-alive", 0, K_STR, OFF(keep_alive), 0, 0, false,
     "how long a model loaded on demand stays after its last request: 30s, 5m, "
     "1h, -1 = until memory is needed, 0 = unload at once (default 5m)", NULL},
    {"model", "memory_budget", "memory-budget", 0, K_STR, OFF(memory_budget), 0, 0, false,
     "memory the resident models may take (weights and KV cache), e.g. 8G; least "
     "recently used idle models are unloaded to stay within it; auto = three "
     "quarters of the machine's (or the service's MemoryMax), 0 = no limit "
     "(default auto)", NULL},
    {"store", "dir", "store", 0, K_STR, OFF(store_dir), 0, 0, false,
     "the model store `hearth pull` fills and requests name models from (default "
     "$STATE_DIRECTORY/models under systemd, else $XDG_DATA_HOME/hearth/models or "
     "~/.local/share/hearth/models)", NULL},
    {"store", "hub_url", "hub-url", 0, K_STR, OFF(hub_url), 0, 0, true,
     "Hugging Face hub (or a mirror) that hf: references are resolved on "
     "(default https://huggingface.co)", NULL},
    {"store", "stall_timeout", "stall-timeout", 0, K_INT, OFF(stall_timeout), 1, 86400, true,
     "seconds a download may receive nothing before it fails (resumable) (default 30)",
     NULL},
    {"log", "level", "log-level", 'l', K_LEVEL, OFF(log_level), 0, 0, true,
     "error, warn, info or debug (default info)", NULL},
    {"router", "default", "route", 0, K_CHOICE, OFF(route_default), 0, 0, true,
     "route of requests that name no model: local, auto or cloud (default local)",
     "local|auto|cloud"},
    {"router", "weights", "router-weights", 0, K_STR, OFF(router_weights), 0, 0, false,
     "complexity score weights file (default: built in)", NULL},
    {"router", "threshold", "route-threshold", 0, K_REAL, OFF(router_threshold), -1, 1, true,
     "score at or above which auto goes to the cloud, 0..1; -1 = the weights "
     "file's (default -1)", NULL},
    {"router", "max_queue_wait", "max-queue-wait", 0, K_INT, OFF(max_queue_wait), 0, 86400,
     true, "seconds of estimated local queue wait past which auto forwards; 0 = "
     "never (default 10)", NULL},
    {"router", "fallback", "cloud-fallback", 0, K_BOOL, OFF(cloud_fallback), 0, 1, true,
     "answer locally when the cloud fails before the first byte (default yes)", NULL},
    {"router", "cooldown", "cooldown", 0, K_INT, OFF(cooldown), 0, 86400, true,
     "seconds a failing upstream is skipped (default 30)", NULL},
    {"router", "cooldown_failures", "cooldown-failures", 0, K_INT, OFF(cooldown_failures), 1,
     1000, true, "consecutive upstream failures that start a cool-down (default 3)", NULL},
    {"router", "nll_max_tokens", "nll-max-tokens", 0, K_INT, OFF(nll_max_tokens), 0, 1 << 20,
     true, "auto: measure the local model's surprise at prompts up to this many "
     "tokens, 0 = never (default 1024)", NULL},
    {"router", "sysfs_root", "sysfs-root", 0, K_STR, OFF(sysfs_root), 0, 0, false,
     "where battery and thermal state are read (default /sys)", NULL},
    {"router", "battery_min", "battery-min", 0, K_INT, OFF(battery_min), 0, 100, true,
     "battery percent below which, on battery, auto prefers the cloud (default 20)", NULL},
    {"router", "state_dir", "state-dir", 0, K_STR, OFF(state_dir), 0, 0, false,
     "directory for the budget counters (default $STATE_DIRECTORY, else "
     "$XDG_STATE_HOME/hearth or ~/.local/state/hearth)", NULL},
    {"privacy", "action", "privacy-action", 0, K_CHOICE, OFF(privacy_action), 0, 0, true,
     "when a detector fires: local (keep the request on this machine), reject "
     "(400) or redact (placeholders upstream) (default local)", "local|reject|redact"},
    {"budget", "requests_per_hour", "budget-requests-hour", 0, K_LONG,
     OFF(budget_requests_hour), 0, 1LL << 40, true, "cloud requests per hour, 0 = no cap (default 0)", NULL},
    {"budget", "requests_per_day", "budget-requests-day", 0, K_LONG,
     OFF(budget_requests_day), 0, 1LL << 40, true, "cloud requests per day, 0 = no cap (default 0)", NULL},
    {"budget", "tokens_per_hour", "budget-tokens-hour", 0, K_LONG, OFF(budget_tokens_hour), 0,
     1LL << 50, true, "cloud tokens (prompt + completion) per hour, 0 = no cap (default 0)", NULL},
    {"budget", "tokens_per_day", "budget-tokens-day", 0, K_LONG, OFF(budget_tokens_day), 0,
     1LL << 50, true, "cloud tokens per day, 0 = no cap (default 0)", NULL},
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
    c->webui = -1;
    c->socket_mode = 0600;
    c->tcp = 1;
    c->max_connections = 4096;
    c->header_timeout = 30;
    c->idle_timeout = 60;
    c->max_header = 16 << 10;
    c->max_messages = 4096;
    c->metrics = -1;
    c->context = 4096;
    c->keep_alive = strdup("5m");
    c->memory_budget = strdup("auto");
    c->parallel = 4;
    c->log_level = LOG_INFO;
    c->route_default = strdup("local");
    c->router_threshold = -1;
    c->max_queue_wait = 10;
    c->cloud_fallback = 1;
    c->cooldown = 30;
    c->cooldown_failures = 3;
    c->nll_max_tokens = 1024;
    c->sysfs_root = strdup("/sys");
    c->battery_min = 20;
    c->privacy_action = strdup("local");
    c->hub_url = strdup("https://huggingface.co");
    c->stall_timeout = 30;
}

void config_free(hearth_config *c)
{
    free(c->config_path);
    free(c->host);
    free(c->model_path);
    free(c->chat_template);
    free(c->model_default);
    free(c->keep_alive);
    free(c->memory_budget);
    free(c->store_dir);
    free(c->api_key);
    free(c->api_key_file);
    free(c->allowed_hosts);
    free(c->cors_origins);
    free(c->socket_path);
    free(c->route_default);
    free(c->router_weights);
    free(c->sysfs_root);
    free(c->state_dir);
    free(c->privacy_action);
    free(c->hub_url);
    config_free_router_lists(c);
    memset(c, 0, sizeof *c);
}

/* Parse "123", "64k", "8M", "1G" (binary units) into bytes. */
int config_parse_size(const char *s, long long *out)
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
    case K_TEMPLATE:
        if (k->type == K_TEMPLATE && *val && !strchr(val, '/') && !chat_template_builtin(val)) {
            int n = snprintf(err, errlen, "%s: '%s' is not a built-in template (", k->name, val);
            const char *const *names = chat_template_builtin_names();
            for (int i = 0; names[i] && n >= 0 && (size_t)n < errlen; i++)
                n += snprintf(err + n, errlen - (size_t)n, "%s%s", i ? ", " : "", names[i]);
            if (n >= 0 && (size_t)n < errlen)
                snprintf(err + n, errlen - (size_t)n, ") nor a file (a path has a '/')");
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
        if (config_parse_size(val, &v) < 0 || v < k->min || v > k->max) {
            snprintf(err, errlen,
                     "%s: '%s' is not a size between %lld and %lld bytes "
                     "(suffixes k, M, G allowed)",
                     k->name, val, k->min, k->max);
            return -1;
        }
        *(long long *)(void *)field = v;
        return 0;
    }
    case K_LONG: {
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (end == val || *end != '\0' || errno || v < k->min || v > k->max) {
            snprintf(err, errlen, "%s: '%s' is not an integer in %lld..%lld",
                     k->name, val, k->min, k->max);
            return -1;
        }
        *(long long *)(void *)field = v;
        return 0;
    }
    case K_REAL: {
        char *end;
        errno = 0;
        double v = strtod(val, &end);
        if (end == val || *end != '\0' || errno || !(v >= (double)k->min && v <= (double)k->max)) {
            snprintf(err, errlen, "%s: '%s' is not a number in %lld..%lld", k->name, val,
                     k->min, k->max);
            return -1;
        }
        *(double *)(void *)field = v;
        return 0;
    }
    case K_AUTO_BOOL:
    case K_BOOL: {
        bool is_auto = k->type == K_AUTO_BOOL && strcasecmp(val, "auto") == 0;
        int v = is_auto ? -1 : config_parse_bool(val);
        if (v < 0 && !is_auto) {
            snprintf(err, errlen, "%s: '%s' is not %syes/no (true/false, on/off, 1/0)",
                     k->name, val, k->type == K_AUTO_BOOL ? "auto or " : "");
            return -1;
        }
        *(int *)(void *)field = v;
        return 0;
    }
    case K_CHOICE: {
        size_t vl = strlen(val);
        const char *p = k->choices;
        bool ok = false;
        while (*p && !ok) {
            size_t n = strcspn(p, "|");
            ok = n == vl && strncmp(p, val, n) == 0;
            p += n + (p[n] == '|');
        }
        if (!ok) {
            snprintf(err, errlen, "%s: '%s' is not one of %s", k->name, val, k->choices);
            return -1;
        }
        char *dup = strdup(val);
        if (!dup) {
            snprintf(err, errlen, "%s: out of memory", k->name);
            return -1;
        }
        char **pp = (char **)(void *)field;
        free(*pp);
        *pp = dup;
        return 0;
    }
    case K_MODE: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 8);
        if (end == val || *end != '\0' || errno || v < k->min || v > k->max) {
            snprintf(err, errlen, "%s: '%s' is not octal permission bits (0 to 0777)",
                     k->name, val);
            return -1;
        }
        *(int *)(void *)field = (int)v;
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
    int lrc = config_router_list_kv(ctx->c, section, name, value, ctx->err, sizeof ctx->err);
    if (lrc != 0) {
        ctx->failed = lrc < 0;
        return lrc > 0;
    }
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
                 "[model], [log], [router], [privacy], [budget], [store], [upstream.NAME])", name);
    else
        snprintf(ctx->err, sizeof ctx->err, "unknown key '%s' in section [%s]",
                 name, section);
    return 0;
}

int config_read_file(hearth_config *c, const char *path, char *err, size_t errlen)
{
    ini_ctx ctx = {.c = c};
    int rc = ini_parse(path, on_ini_kv, &ctx);
    if (rc == 0) {
        char why[400];
        if (config_router_lists_check(c, why, sizeof why) == 0)
            return 0;
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
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
        if (key_is_string(k)) {
            const char *sa = *(char **)(void *)a, *sb = *(char **)(void *)b;
            differs = (sa == NULL) != (sb == NULL) || (sa && strcmp(sa, sb) != 0);
        } else if (k->type == K_SIZE || k->type == K_LONG) {
            differs = *(long long *)(void *)a != *(long long *)(void *)b;
        } else if (k->type == K_REAL) {
            differs = *(double *)(void *)a != *(double *)(void *)b;
        } else {
            differs = *(int *)(void *)a != *(int *)(void *)b;
        }
        if (!differs)
            continue;
        if (k->live) {
            /* swap so that `fresh` frees the old value */
            char tmp[sizeof(long long) > sizeof(char *) ? sizeof(long long) : sizeof(char *)];
            _Static_assert(sizeof(double) <= sizeof tmp, "double fits");
            size_t sz = (k->type == K_SIZE || k->type == K_LONG) ? sizeof(long long)
                        : k->type == K_REAL                      ? sizeof(double)
                        : key_is_string(k) ? sizeof(char *)
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
    config_router_lists_reload(c, &fresh, restart_keys, rk_len, &used);
    config_free(&fresh);
    return 0;
}

/* The flag column of key i ("-p, --port VALUE", "    --host VALUE"). */
static void help_left(size_t i, char *left, size_t n)
{
    if (keys[i].short_opt)
        snprintf(left, n, "-%c, --%s VALUE", keys[i].short_opt, keys[i].flag);
    else
        snprintf(left, n, "    --%s VALUE", keys[i].flag);
}

void config_print_help(const char *prog, void *stream)
{
    FILE *f = stream;
    /* every description starts in one column, past the longest flag */
    static const char *const fixed[][2] = {
        {"-c, --config FILE", "configuration file (INI); default " HEARTH_SYSCONFDIR
                              "/hearth/hearth.conf when it exists"},
        {"-h, --help", "show this help and exit"},
        {"-V, --version", "show the version and exit"},
    };
    int w = 0;
    char left[64];
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if ((int)strlen(fixed[i][0]) > w)
            w = (int)strlen(fixed[i][0]);
    for (size_t i = 0; i < N_KEYS; i++) {
        help_left(i, left, sizeof left);
        if ((int)strlen(left) > w)
            w = (int)strlen(left);
    }
    fprintf(f,
            "Usage: %s [OPTIONS]\n"
            "hearth daemon: serves the OpenAI API for local models.\n\n"
            "Values come from built-in defaults, then the configuration file,\n"
            "then these flags.\n\n",
            prog);
    fprintf(f, "  %-*s  %s\n", w, fixed[0][0], fixed[0][1]);
    for (size_t i = 0; i < N_KEYS; i++) {
        help_left(i, left, sizeof left);
        fprintf(f, "  %-*s  %s [%s] %s\n", w, left, keys[i].help, keys[i].section,
                keys[i].name);
    }
    for (size_t i = 1; i < sizeof fixed / sizeof fixed[0]; i++)
        fprintf(f, "  %-*s  %s\n", w, fixed[i][0], fixed[i][1]);
    fprintf(f, "\nSignals: SIGTERM/SIGINT finish in-flight requests and exit;\n"
               "SIGHUP re-reads the configuration file.\n");
}
