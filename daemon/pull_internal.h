/* pull_internal.h - what pull.c, pull_curl.c, pull_hub.c and pull_ref.c
 * share; not for other modules (they use pull.h). */
#ifndef HEARTH_PULL_INTERNAL_H
#define HEARTH_PULL_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/pull.h"

/* ---- pull_curl.c: clocks, notes, parsing what servers say, curl handles */

double pull_now(void); /* monotonic seconds */
void pull_note(const pull_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool pull_stopped(const pull_opts *o);
/* "abc..." (64 hex, any case, maybe quoted, maybe W/ or sha256: before)
 * into out[65] lower-case; false when it is not a SHA-256 */
bool pull_sha256_parse(const char *s, size_t n, char *out);
bool pull_u64_parse(const char *s, size_t n, uint64_t *out); /* decimal digits only */
void pull_url_host(const char *url, char *buf, size_t len); /* "" when none */

/* The progress and stop state of one transfer (curl's XFERINFO data). */
typedef struct pull_xfer {
    const pull_opts *o;
    uint64_t base;    /* bytes already in the file */
    uint64_t total;   /* expected file size, 0 unknown */
    bool report;      /* the model's transfer (not the file list) */
    double t0, last;  /* start, last progress report */
} pull_xfer;

void pull_progress_report(pull_xfer *x, uint64_t now_bytes, bool final);

/* An easy handle with what every request shares: redirects, timeouts,
 * http(s) only, the stop flag (through x), and the token when url is on
 * hub_host. *hdrs is the header list to free after the transfer. */
CURL *pull_curl_new(const pull_opts *o, const char *url, const char *hub_host,
                    struct curl_slist **hdrs, pull_xfer *x);
/* One line for a failed transfer, without curl's own wording where a
 * plainer one exists. */
void pull_curl_err(char *err, size_t errlen, CURL *c, CURLcode rc, const char *url,
                   const pull_opts *o);

/* ---- what is pulled */

typedef struct pull_target {
    char url[4096];      /* what is downloaded */
    char source[1024];   /* recorded in the manifest */
    char file[1024];     /* the file's name, for messages */
    char name[STORE_NAME_MAX + 1];
    char sha256[65];     /* expected, "" unknown */
    uint64_t size;       /* expected, 0 unknown */
} pull_target;

/* ---- pull_ref.c */

/* The store name from a file name: without folders, query and .gguf;
 * false when that is not a valid name. */
bool pull_name_from_file(const char *file, char *name, size_t len);

/* ---- pull_hub.c */

/* Resolve hf:OWNER/REPO[:SEL] through the hub's file list into t (url,
 * source, file, expected sha256 and size, and the name unless o->name). */
pull_status pull_hub_resolve(const pull_opts *o, const char *hub, const char *hub_host,
                             const pull_ref *r, pull_target *t, char *err, size_t errlen);

#endif
