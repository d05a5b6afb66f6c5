/* hearth_store.c - the model store from the command line:
 *
 *   hearth pull REF [--name NAME] [--store DIR] [--config FILE]
 *   hearth list [--json] [--store DIR] [--config FILE]
 *   hearth rm NAME... [--store DIR] [--config FILE]
 *   hearth show NAME [--json] [--store DIR] [--config FILE]
 *
 * The store is --store DIR, else [store] dir of the configuration file
 * (--config FILE, else hearthd's default file when it exists), else
 * store_default_dir(). The mechanisms are the daemon's: daemon/store.h
 * and daemon/pull.h; this file parses flags and prints.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/hearth.h"
#include "daemon/hconfig.h"
#include "daemon/paths.h"
#include "daemon/pull.h"
#include "daemon/store.h"
#include "engine/model.h"

int hearth_cmd_pull(int argc, char **argv);
int hearth_cmd_list(int argc, char **argv);
int hearth_cmd_rm(int argc, char **argv);
int hearth_cmd_show(int argc, char **argv);

#define DEFAULT_CONFIG HEARTH_SYSCONFDIR "/hearth/hearth.conf"
#define EXIT_INTERRUPTED 130

/* ------------------------------------------------------------ flags and the store */

typedef struct store_args {
    const char *store;  /* --store */
    const char *config; /* --config */
    const char *name;   /* --name (pull) */
    bool json;          /* --json (list, show) */
    const char *pos[64];
    int n_pos;
} store_args;

/* Parses the flags a command allows ("store config name json"); 0, or
 * EXIT_USAGE after a usage error. */
static int parse_args(const char *cmd, int argc, char **argv, const char *allowed,
                      store_args *a)
{
    memset(a, 0, sizeof *a);
    bool dashdash = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *iv;
        if (!dashdash && strcmp(arg, "--") == 0) {
            dashdash = true;
        } else if (dashdash || arg[0] != '-' || arg[1] == '\0') {
            if (a->n_pos == (int)(sizeof a->pos / sizeof a->pos[0])) {
                die_usage(cmd, "too many arguments");
                return EXIT_USAGE;
            }
            a->pos[a->n_pos++] = arg;
        } else if (strstr(allowed, "store") && is_flag(arg, "--store", NULL, &iv)) {
            if (!(a->store = flag_value(cmd, argc, argv, &i, iv)))
                return EXIT_USAGE;
        } else if (is_flag(arg, "--config", "-c", &iv)) {
            if (!(a->config = flag_value(cmd, argc, argv, &i, iv)))
                return EXIT_USAGE;
        } else if (strstr(allowed, "name") && is_flag(arg, "--name", NULL, &iv)) {
            if (!(a->name = flag_value(cmd, argc, argv, &i, iv)))
                return EXIT_USAGE;
        } else if (strstr(allowed, "json") && strcmp(arg, "--json") == 0) {
            a->json = true;
        } else {
            die_usage(cmd, "unknown flag '%s'", arg);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* The configuration (for [store]) and the store directory into dir; -1
 * with err. */
static int store_locate(const store_args *a, hearth_config *c, char *dir, size_t len,
                        char *err, size_t errlen)
{
    config_init(c);
    const char *path = a->config;
    if (!path && access(DEFAULT_CONFIG, F_OK) == 0)
        path = DEFAULT_CONFIG;
    if (path && config_read_file(c, path, err, errlen) < 0)
        return -1;
    const char *d = a->store ? a->store : c->store_dir;
    if (d && *d)
        snprintf(dir, len, "%s", d);
    else if (!store_default_dir(dir, len)) {
        snprintf(err, errlen, "no store directory: set HOME, [store] dir or --store");
        return -1;
    }
    return 0;
}

/* The same for a command: a one-line error. */
static int store_setup(const char *cmd, const store_args *a, hearth_config *c, char *dir,
                       size_t len)
{
    char err[600];
    return store_locate(a, c, dir, len, err, sizeof err) < 0 ? fail(cmd, "%s", err) : 0;
}

const char *hearth_model_file(const char *arg, char *buf, size_t len)
{
    if (!arg || strchr(arg, '/') || access(arg, F_OK) == 0 || !store_name_valid(arg))
        return arg;
    hearth_config c;
    store_args none = {0};
    char dir[1024], err[600];
    store_entry e = {0};
    const char *out = arg;
    if (store_locate(&none, &c, dir, sizeof dir, err, sizeof err) == 0 &&
        store_find(dir, arg, &e, err, sizeof err) == 0) {
        snprintf(buf, len, "%s", e.path);
        out = buf;
    }
    store_entry_clear(&e);
    config_free(&c);
    return out;
}

/* What a command takes, for command_start. */
typedef struct store_cmd {
    const char *name, *help;
    const char *flags;       /* for parse_args */
    int min_args, max_args;  /* positional arguments */
    const char *none, *many; /* the usage errors for too few, too many */
} store_cmd;

/* The start every command here shares: --help, the flags, the count of
 * arguments, the configuration and the store directory. -1: go on (then
 * free c, when given, when done); else the exit status (0 after --help). */
static int command_start(const store_cmd *k, int argc, char **argv, store_args *a,
                         hearth_config *keep, char *dir, size_t len)
{
    hearth_config local = {0}, *c = keep ? keep : &local;
    if (wants_help(argc, argv)) {
        fputs(k->help, stdout);
        return 0;
    }
    if (parse_args(k->name, argc, argv, k->flags, a) != 0)
        return EXIT_USAGE;
    if (a->n_pos < k->min_args || a->n_pos > k->max_args) {
        if (a->n_pos < k->min_args)
            die_usage(k->name, "%s", k->none);
        else
            die_usage(k->name, "%s '%s'", k->many, a->pos[k->max_args]);
        return EXIT_USAGE;
    }
    int rc = store_setup(k->name, a, c, dir, len);
    if (rc != 0 || !keep)
        config_free(c);
    return rc != 0 ? rc : -1;
}

static void json_print(json_t *o)
{
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(o);
}

static void time_str(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (localtime_r(&tt, &tm))
        strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
    else
        snprintf(buf, len, "?");
}

/* ------------------------------------------------------------ pull */

static const char pull_help[] =
    "usage: hearth pull REF [--name NAME] [--store DIR] [--config FILE]\n"
    "\n"
    "Download a GGUF model into the store, where hearthd finds it by name.\n"
    "REF is one of:\n"
    "  hf:OWNER/REPO             its Q4_K_M file, else Q4_0, else Q8_0, else its\n"
    "                            only .gguf\n"
    "  hf:OWNER/REPO:QUANT       the file with that quant in its name (q4_k_m...)\n"
    "  hf:OWNER/REPO:FILE.gguf   that file\n"
    "  https://.../FILE.gguf     any URL of a GGUF file\n"
    "The SHA-256 is checked against the one the hub publishes and the GGUF\n"
    "header is read before the model appears under its name. An interrupted\n"
    "or failed download resumes when the same pull runs again. HF_TOKEN (in\n"
    "the environment) is sent to the hub, for gated and private repos.\n"
    "\n"
    "  --name NAME    the model's name (default: the file name without .gguf)\n"
    "  --store DIR    the store (default: [store] dir, else ~/.local/share/hearth/models)\n"
    "  -c, --config FILE  read [store] from FILE (default " DEFAULT_CONFIG ")\n"
    "  -h, --help     show this help\n"
    "\n"
    "Exit status: 0 pulled (or already there), 1 failed, 2 usage, 130 interrupted.\n";

typedef struct pull_view {
    bool tty;
    int last_decile; /* plain output: the last 10% step printed */
    int width;       /* of the bar line last drawn */
} pull_view;

static volatile sig_atomic_t pull_stop;

static void on_sigint(int sig)
{
    (void)sig;
    pull_stop = 1;
}

static void view_note(void *ud, const char *line)
{
    pull_view *v = ud;
    if (v->tty && v->width) {
        fputs("\r\033[K", stderr);
        v->width = 0;
    }
    fprintf(stderr, "hearth pull: %s\n", line);
}

static void view_progress(void *ud, const pull_progress *p)
{
    pull_view *v = ud;
    char done[32], total[32], rate[32];
    fmt_bytes(done, sizeof done, p->done);
    fmt_bytes(total, sizeof total, p->total);
    fmt_bytes(rate, sizeof rate, (uint64_t)p->rate);
    int pct = p->total ? (int)(100.0 * (double)p->done / (double)p->total) : -1;
    if (v->tty) {
        char line[256], bar[21];
        int fill = pct < 0 ? 0 : pct / 5;
        for (int i = 0; i < 20; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[20] = '\0';
        if (pct >= 0) {
            double eta = p->rate > 0 ? (double)(p->total - p->done) / p->rate : -1;
            char etas[32];
            if (eta >= 0 && eta < 360000)
                snprintf(etas, sizeof etas, "ETA %d:%02d:%02d", (int)eta / 3600,
                         (int)eta / 60 % 60, (int)eta % 60);
            else
                snprintf(etas, sizeof etas, "ETA ?");
            snprintf(line, sizeof line, "[%s] %3d%%  %s / %s  %s/s  %s", bar, pct, done, total,
                     rate, etas);
        } else {
            snprintf(line, sizeof line, "%s  %s/s", done, rate);
        }
        fprintf(stderr, "\r%s\033[K", line);
        v->width = (int)strlen(line);
        if (p->final) {
            fputc('\n', stderr);
            v->width = 0;
        }
    } else {
        int decile = pct < 0 ? -1 : pct / 10;
        if ((decile > v->last_decile && decile < 10) || p->final) {
            if (pct >= 0)
                fprintf(stderr, "hearth pull: %3d%%  %s of %s  %s/s\n", pct, done, total, rate);
            else
                fprintf(stderr, "hearth pull: %s  %s/s\n", done, rate);
            v->last_decile = decile;
        }
    }
    fflush(stderr);
}

int hearth_cmd_pull(int argc, char **argv)
{
    static const store_cmd k = {"pull", pull_help, "store config name", 1, 1,
                                "no model reference given", "one reference at a time, not"};
    store_args a;
    hearth_config c;
    char dir[4096];
    int rc = command_start(&k, argc, argv, &a, &c, dir, sizeof dir);
    if (rc >= 0)
        return rc;
    pull_view v = {.tty = isatty(STDERR_FILENO) == 1};
    pull_opts o = {.store_dir = dir,
                   .hub_url = c.hub_url,
                   .name = a.name,
                   .token = getenv("HF_TOKEN"),
                   .stall_timeout = c.stall_timeout,
                   .stop = &pull_stop,
                   .note = view_note,
                   .progress = view_progress,
                   .ud = &v};
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    store_entry e;
    char err[1024];
    pull_status st = pull_model(&o, a.pos[0], &e, err, sizeof err);
    sigaction(SIGINT, &old, NULL);
    if (v.tty && v.width)
        fputc('\n', stderr);
    config_free(&c);
    switch (st) {
    case PULL_OK: {
        char size[32];
        fmt_bytes(size, sizeof size, e.size);
        printf("pulled %s (%s) into %s\n", e.name, size, e.path);
        store_entry_clear(&e);
        return 0;
    }
    case PULL_BAD_REF:
        die_usage("pull", "%s", err);
        return EXIT_USAGE;
    case PULL_INTERRUPTED:
        fprintf(stderr, "hearth pull: %s\n", err);
        return EXIT_INTERRUPTED;
    case PULL_FAILED:
    default:
        return fail("pull", "%s", err);
    }
}

/* ------------------------------------------------------------ list */

static const char list_help[] =
    "usage: hearth list [--json] [--store DIR] [--config FILE]\n"
    "\n"
    "The models in the store: name, size, quantization (the tensor type with\n"
    "the most bytes) and where each came from ('-': put there by hand).\n"
    "\n"
    "  --json         {\"store\": DIR, \"models\": [{name, path, size, quant,\n"
    "                 source, sha256, modified}]}\n"
    "  --store DIR    the store (default: [store] dir, else ~/.local/share/hearth/models)\n"
    "  -c, --config FILE  read [store] from FILE (default " DEFAULT_CONFIG ")\n"
    "  -h, --help     show this help\n";

/* The quant column: the main tensor type's name, "?" for a file the GGUF
 * reader refuses. */
/* The quant a person would name: general.file_type without "MOSTLY_"
 * (Q4_K_M), else the tensor type holding the most bytes. buf holds it. */
static const char *quant_of(const char *path, char *buf, size_t len)
{
    gguf_file *f = NULL;
    char err[256];
    if (gguf_open(path, &f, err, sizeof err) != 0)
        return "?";
    uint32_t ft;
    const char *name = gguf_get_u32(f, "general.file_type", &ft) == 0
                           ? model_file_type_name(ft) : NULL;
    if (name) {
        snprintf(buf, len, "%s", strncmp(name, "MOSTLY_", 7) == 0 ? name + 7 : name);
    } else {
        hearth_tensor_stats s;
        hearth_tensor_stats_of(f, &s);
        snprintf(buf, len, "%s", s.main_type < QT_TYPE_MAX ? qt_name(s.main_type) : "-");
    }
    gguf_close(f);
    return buf;
}

int hearth_cmd_list(int argc, char **argv)
{
    static const store_cmd k = {"list", list_help, "store config json", 0, 0, "",
                                "unexpected argument"};
    store_args a;
    char dir[4096], err[600];
    int rc = command_start(&k, argc, argv, &a, NULL, dir, sizeof dir);
    if (rc >= 0)
        return rc;
    store_entry *e;
    size_t n;
    if (store_list(dir, &e, &n, err, sizeof err) < 0)
        return fail("list", "%s", err);
    if (a.json) {
        json_t *models = json_array();
        for (size_t i = 0; i < n; i++) {
            char q[48];
            json_array_append_new(
                models, json_pack("{s:s, s:s, s:I, s:s, s:s?, s:s?, s:I}", "name", e[i].name,
                                  "path", e[i].path, "size", (json_int_t)e[i].size, "quant",
                                  quant_of(e[i].path, q, sizeof q), "source", e[i].source, "sha256",
                                  e[i].sha256[0] ? e[i].sha256 : NULL, "modified",
                                  (json_int_t)e[i].mtime));
        }
        json_print(json_pack("{s:s, s:o}", "store", dir, "models", models));
    } else if (n == 0) {
        fprintf(stderr, "no models in %s ('hearth pull REF' adds one)\n", dir);
    } else {
        size_t w = 4;
        for (size_t i = 0; i < n; i++)
            w = strlen(e[i].name) > w ? strlen(e[i].name) : w;
        printf("%-*s  %10s  %-7s  %s\n", (int)w, "NAME", "SIZE", "QUANT", "SOURCE");
        for (size_t i = 0; i < n; i++) {
            char size[32], q[48];
            fmt_bytes(size, sizeof size, e[i].size);
            printf("%-*s  %10s  %-7s  %s\n", (int)w, e[i].name, size, quant_of(e[i].path, q, sizeof q),
                   e[i].source ? e[i].source : "-");
        }
    }
    store_entries_free(e, n);
    return 0;
}

/* ------------------------------------------------------------ rm */

static const char rm_help[] =
    "usage: hearth rm NAME... [--store DIR] [--config FILE]\n"
    "\n"
    "Delete models from the store (the file and its manifest). A running\n"
    "hearthd that has one loaded keeps serving it until it unloads it.\n"
    "\n"
    "  --store DIR    the store (default: [store] dir, else ~/.local/share/hearth/models)\n"
    "  -c, --config FILE  read [store] from FILE (default " DEFAULT_CONFIG ")\n"
    "  -h, --help     show this help\n"
    "\n"
    "Exit status: 0 all removed, 1 some were not there or could not be removed.\n";

int hearth_cmd_rm(int argc, char **argv)
{
    static const store_cmd k = {"rm", rm_help, "store config", 1, 64, "no model named",
                                "too many names:"};
    store_args a;
    char dir[4096], err[600];
    int rc = command_start(&k, argc, argv, &a, NULL, dir, sizeof dir);
    if (rc >= 0)
        return rc;
    rc = 0;
    for (int i = 0; i < a.n_pos; i++) {
        if (store_remove(dir, a.pos[i], err, sizeof err) == 0)
            printf("removed %s\n", a.pos[i]);
        else
            rc = fail("rm", "%s", err);
    }
    return rc;
}

/* ------------------------------------------------------------ show */

static const char show_help[] =
    "usage: hearth show NAME [--json] [--store DIR] [--config FILE]\n"
    "\n"
    "A model of the store: where it came from, its SHA-256, and the\n"
    "description 'hearth info' gives of the file.\n"
    "\n"
    "  --json         one object: name, path, size, sha256, source, modified,\n"
    "                 architecture, parameters, quant (Q4_K_M...), file_type,\n"
    "                 context_length,\n"
    "                 chat_template, runnable (and why not)\n"
    "  --store DIR    the store (default: [store] dir, else ~/.local/share/hearth/models)\n"
    "  -c, --config FILE  read [store] from FILE (default " DEFAULT_CONFIG ")\n"
    "  -h, --help     show this help\n";

static json_t *show_json(const store_entry *e, const gguf_file *f)
{
    hearth_tensor_stats s;
    hearth_tensor_stats_of(f, &s);
    gguf_str arch = {0}, tmpl = {0};
    bool has_arch = gguf_get_str(f, "general.architecture", &arch) == 0;
    bool has_tmpl = gguf_get_str(f, "tokenizer.chat_template", &tmpl) == 0;
    uint32_t ft = 0;
    bool has_ft = gguf_get_u32(f, "general.file_type", &ft) == 0;
    model *m = NULL;
    char err[512], q[48];
    bool runnable = model_load_gguf_flags(f, MODEL_LOAD_INSPECT, &m, err, sizeof err) == 0;
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:s?, s:s?, s:I, s:s%, s:I, s:s, s:o, s:o, s:b, s:b}", "name", e->name,
        "path", e->path, "size", (json_int_t)e->size, "sha256",
        e->sha256[0] ? e->sha256 : NULL, "source", e->source, "modified", (json_int_t)e->mtime,
        "architecture", has_arch ? arch.ptr : "", has_arch ? arch.len : 0, "parameters",
        (json_int_t)s.n_params, "quant", quant_of(e->path, q, sizeof q),
        "file_type", has_ft ? json_integer(ft) : json_null(), "context_length",
        runnable ? json_integer(model_hparams_of(m)->n_ctx_train) : json_null(),
        "chat_template", has_tmpl, "runnable", runnable);
    if (o && !runnable)
        json_object_set_new(o, "not_runnable", json_string(err));
    model_free(m);
    return o;
}

int hearth_cmd_show(int argc, char **argv)
{
    static const store_cmd k = {"show", show_help, "store config json", 1, 1, "no model named",
                                "one model at a time, not"};
    store_args a;
    char dir[4096], err[600];
    int rc = command_start(&k, argc, argv, &a, NULL, dir, sizeof dir);
    if (rc >= 0)
        return rc;
    store_entry e;
    rc = store_find(dir, a.pos[0], &e, err, sizeof err);
    if (rc != 0)
        return fail("show", "%s", err);
    gguf_file *f = NULL;
    if (gguf_open(e.path, &f, err, sizeof err) != 0) {
        fail("show", "%s: %s", e.path, err);
        store_entry_clear(&e);
        return EXIT_FAILURE;
    }
    if (a.json) {
        json_print(show_json(&e, f));
    } else {
        char when[64];
        time_str(e.mtime, when, sizeof when);
        printf("%-16s %s\n", "model", e.name);
        printf("%-16s %s\n", "source", e.source ? e.source : "- (put in the store by hand)");
        printf("%-16s %s\n", "sha256", e.sha256[0] ? e.sha256 : "- (not recorded)");
        printf("%-16s %s\n", "modified", when);
        hearth_info_print(e.path, f);
    }
    gguf_close(f);
    store_entry_clear(&e);
    return 0;
}
