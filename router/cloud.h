/* cloud.h - HTTP requests to upstream servers, on the daemon's libuv loop.
 *
 * libcurl's multi interface drives every transfer: its sockets are watched
 * by uv_poll handles and its timeout by a uv_timer (CURLMOPT_SOCKETFUNCTION
 * and CURLMOPT_TIMERFUNCTION), so a hundred forwarded requests cost no
 * threads, and every callback runs on the loop thread. Response bytes are
 * handed over as they arrive (a streamed answer is relayed, not buffered).
 *
 * TLS peers are always verified (the system's CA bundle, or opts.ca_file).
 * Nothing here logs: URLs, headers (API keys) and bodies never reach a
 * log line or an error message from this module beyond curl's own error
 * text, which names the host at most.
 */
#ifndef HEARTH_ROUTER_CLOUD_H
#define HEARTH_ROUTER_CLOUD_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct cloud cloud;
typedef struct cloud_req cloud_req;

typedef struct cloud_opts {
    const char *url;
    const char *const *headers; /* "Name: value" lines, n_headers of them */
    size_t n_headers;
    const char *body;           /* POST this (copied) when not NULL, else GET */
    size_t body_len;
    long connect_timeout_ms;    /* 0: libcurl's default (300 s) */
    long total_timeout_ms;      /* 0: none */
    const char *ca_file;        /* PEM bundle; NULL: the system's */
    /* Called on the loop thread. on_data gets the response body as it
     * arrives, after the status is known (status >= 100). on_done comes
     * exactly once per request that was not cancelled: result 0 when the
     * transfer completed (whatever the HTTP status), else non-zero with a
     * one-line reason in err. */
    void (*on_data)(cloud_req *r, long status, const char *data, size_t len, void *arg);
    void (*on_done)(cloud_req *r, int result, long status, const char *err, void *arg);
    void *arg;
} cloud_opts;

int cloud_new(uv_loop_t *loop, cloud **out, char *err, size_t errlen);
/* Cancels what is still running (no more callbacks) and closes the
 * handles; the memory goes once the loop has run their close callbacks. */
void cloud_free(cloud *c);

/* Start a request. NULL with err filled when it cannot start. */
cloud_req *cloud_start(cloud *c, const cloud_opts *o, char *err, size_t errlen);
/* Stop a request: no callback of it runs after this returns. Safe from
 * inside its own on_data. Not after its on_done. */
void cloud_cancel(cloud_req *r);

/* Requests started and not yet done or cancelled. */
int cloud_active(const cloud *c);

#endif
