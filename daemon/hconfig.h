/* hconfig.h - hearthd configuration: built-in defaults, overridden by the
 * INI file, overridden by command-line flags; nothing else.
 *
 * Every key is described once, in the table in config.c, which drives the
 * file parser, the flags, --help and the reload logic. conf/hearth.conf
 * documents each key with its default. */
#ifndef HEARTH_HCONFIG_H
#define HEARTH_HCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "upstream.h"

typedef struct hearth_config {
    char *config_path;      /* the file read, or NULL */
    /* [server] */
    char *host;             /* listen address (IPv4 or IPv6 literal, or "localhost") */
    int port;               /* 0 picks a free port (tests) */
    long long max_body;     /* bytes */
    int shutdown_timeout;   /* seconds to finish in-flight requests */
    int max_queue;          /* generation requests waiting for a slot */
    int ping_interval;      /* seconds between SSE ": ping" lines while waiting */
    int request_timeout;    /* seconds a generation may take; 0: no limit */
    char *api_key;          /* keys, comma or space separated; NULL: open */
    int webui;              /* the chat page at /: 1 on, 0 off, -1 (auto) on when
                               host is a loopback address (daemon/webui.h) */
    char *api_key_file;     /* more keys, one a line (daemon/door.h) */
    char *allowed_hosts;    /* host names besides loopback ones, as a list */
    char *cors_origins;     /* origins that may read responses, as a list */
    char *socket_path;      /* Unix domain socket to listen on too; NULL: none */
    int socket_mode;        /* its permission bits */
    int tcp;                /* bool: listen on host:port */
    int max_connections;    /* open at once; more are answered 503 */
    int header_timeout;     /* seconds to receive a request's headers; 0: none */
    int idle_timeout;       /* seconds without a byte either way; 0: none */
    long long max_header;   /* bytes of request line and headers */
    int max_messages;       /* messages in one generation request; 0: no limit */
    int metrics;            /* GET /metrics: as webui (daemon/metrics.h) */
    /* [model] */
    char *model_path;       /* NULL: start without a model */
    int threads;            /* 0: one per core */
    int context;            /* tokens per sequence; 0: the model's own */
    int parallel;           /* sequences generated at once (slots) */
    char *chat_template;    /* builtin template name; NULL: the model's */
    char *model_default;    /* a store model for requests naming none */
    char *keep_alive;       /* duration (daemon/resident.h) */
    char *memory_budget;    /* "auto", "0" or a size */
    /* [store] */
    char *store_dir;        /* NULL: the default (daemon/store.h) */
    /* [log] */
    int log_level;          /* enum log_level */
    /* [router] (docs/router.md) */
    char *route_default;    /* "local", "auto" or "cloud": requests naming no model */
    char *router_weights;   /* score weights file; NULL: built in */
    double router_threshold; /* < 0: the weights file's */
    int max_queue_wait;     /* seconds of estimated local wait before forwarding */
    int cloud_fallback;     /* bool: a failed cloud answer falls back to local */
    int cooldown;           /* seconds an upstream is skipped after failures */
    int cooldown_failures;  /* consecutive failures that start a cool-down */
    int nll_max_tokens;     /* measure the prompt NLL up to this many tokens; 0: off */
    char *sysfs_root;       /* where battery and thermal state are read */
    int battery_min;        /* percent: below it, on battery, forward more */
    char *state_dir;        /* budgets; NULL: $STATE_DIRECTORY, else per user */
    /* [privacy] */
    char *privacy_action;   /* "local", "reject" or "redact" */
    char **privacy_patterns; /* user PCRE2 patterns (key "pattern", repeatable) */
    size_t n_privacy_patterns;
    /* [budget]: 0 = no cap */
    long long budget_requests_hour, budget_requests_day;
    long long budget_tokens_hour, budget_tokens_day;
    /* [upstream.NAME] sections, in file order */
    upstream_conf *upstreams;
    size_t n_upstreams;
} hearth_config;

enum config_status {
    CONFIG_OK = 0,
    CONFIG_EXIT = 1,   /* --help or --version printed: exit 0 */
    CONFIG_ERROR = -1, /* err holds "file:line: reason" or "--flag: reason" */
};

void config_init(hearth_config *c); /* defaults */
/* "123", "64k", "8M", "1G" (binary units) into bytes; -1 when malformed. */
int config_parse_size(const char *s, long long *out);
void config_free(hearth_config *c);

/* Defaults, then the file (--config PATH, else the default path when it
 * exists), then the flags. `out` is written only for --help/--version. */
int config_load(hearth_config *c, int argc, char **argv, const char *default_path,
                char *err, size_t errlen);

/* Read one INI file over the current values (no flags). */
int config_read_file(hearth_config *c, const char *path, char *err, size_t errlen);

/* Re-read the file for SIGHUP: the new values of keys that can change
 * live are applied to `c`; for the others a warning naming the key is
 * written to `restart_keys` (comma-separated). Flags given at start stay
 * in force over the file, as at start. */
int config_reload(hearth_config *c, int argc, char **argv, char *restart_keys,
                  size_t rk_len, char *err, size_t errlen);

void config_print_help(const char *prog, void *stream /* FILE* */);

#endif
