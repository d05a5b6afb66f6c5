/* upstream.h - the cloud endpoints hearthd may forward to: their
 * configuration, their API keys and their health.
 *
 * An upstream is any server that speaks the OpenAI API (OpenAI,
 * OpenRouter, vLLM, llama-server, another hearthd). Its key is read once,
 * at start, from an environment variable or a file (systemd's
 * LoadCredential puts one under $CREDENTIALS_DIRECTORY); it lives only in
 * the Authorization header line built here, and nothing in this module
 * prints it. After `failures` consecutive failures (connection error,
 * timeout, 5xx) an upstream cools down: it is skipped for `cooldown`
 * seconds; then one request tries it (the trial) while the others still
 * skip it, until that one's outcome is recorded: a success resets the
 * count, a failure starts another cool-down. */
#ifndef HEARTH_ROUTER_UPSTREAM_H
#define HEARTH_ROUTER_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One [upstream.NAME] section of the configuration. */
typedef struct upstream_conf {
    char *name;             /* NAME, [A-Za-z0-9_.-]+ */
    char *url;              /* base URL, e.g. https://api.openai.com/v1 */
    char *model;            /* the model to ask for (required) */
    char *api_key_env;      /* environment variable holding the key, or NULL */
    char *api_key_file;     /* file holding the key, or NULL */
    int connect_timeout;    /* seconds */
    int timeout;            /* seconds for the whole answer; 0: none */
    char **headers;         /* extra "Name: value" lines */
    size_t n_headers;
    char *ca_file;          /* PEM CA bundle; NULL: the system's */
} upstream_conf;

typedef struct upstream {
    const upstream_conf *conf; /* borrowed: outlives the upstream */
    char **headers;         /* Content-Type, Authorization (when keyed), extras */
    size_t n_headers;
    bool keyed;
    /* health (loop thread) */
    int failures;           /* consecutive */
    uint64_t cool_until_ms; /* 0: not cooling down */
    bool trial;             /* the request trying it after a cool-down is
                               in flight */
    uint64_t n_ok, n_failed;
} upstream;

/* Build the request headers and read the key. A key variable that is
 * unset or a key file that cannot be read is an error naming the
 * variable or file (never the key). */
int upstream_init(upstream *u, const upstream_conf *conf, char *err, size_t errlen);
void upstream_fini(upstream *u); /* wipes the key */

/* The URL of an endpoint: base + "/chat/completions" (or "/completions");
 * malloc'd. */
char *upstream_url(const upstream *u, const char *endpoint);

/* Not cooling down; or its cool-down is over and no trial is in flight. */
bool upstream_available(const upstream *u, uint64_t now_ms);
/* A request is sent to it now; true when that request is the trial (its
 * cool-down is over): others skip it until upstream_record. */
bool upstream_begin(upstream *u, uint64_t now_ms);
/* Record the outcome of one forwarded request (and end a trial). */
void upstream_record(upstream *u, bool ok, uint64_t now_ms, int cooldown_s, int max_failures);
/* The trial ended without an outcome (its client went away): the next
 * request may try. */
void upstream_abandon(upstream *u);

#endif
