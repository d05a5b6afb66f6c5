/* http.h - libmicrohttpd driven by a libuv loop.
 *
 * MHD runs without threads of its own (MHD_USE_EPOLL): its epoll fd is
 * watched by a uv_poll handle and its timeouts by a uv_timer, so the HTTP
 * server, the scheduler's wake-ups (uv_async) and the cloud client all run
 * on the one loop of the main thread.
 *
 * This module owns the connection plumbing: request bodies (with the size
 * limit), routing by method and path (404/405), response helpers, the
 * per-request log line, in-flight accounting and the graceful stop. */
#ifndef HEARTH_HTTP_H
#define HEARTH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct MHD_Connection;
struct MHD_Response;
typedef struct http_server http_server;

#define HTTP_MAX_EXTRA 4

typedef struct http_req {
    http_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* owned by MHD, valid for the request */
    const char *url;
    char *body;         /* NUL-terminated; body_len bytes */
    size_t body_len;
    size_t body_cap;
    bool body_too_large;
    bool responded;
    uint64_t t_start_ns;
    unsigned status;    /* 0 until a response is queued */
    uint64_t bytes;     /* body bytes of the response (when known) */
    void *app;          /* handler's per-request state */
    void (*app_free)(void *app);
    /* Set by a handler that suspended the request: called instead of the
     * route when the connection is resumed, to queue the response. */
    int (*on_resume)(struct http_req *r, void *user);
    /* Called on the loop when the client goes away while the request is
     * suspended (MHD itself does not watch suspended connections). */
    void (*on_disconnect)(struct http_req *r);
    bool suspended;
    bool client_gone;
    int fd;             /* the connection's socket */
    uv_poll_t *watch;   /* disconnect watch while suspended */
    struct http_req *next_susp, *prev_susp;
    /* headers added to whatever response is queued (http_add_header) */
    char *extra_name[HTTP_MAX_EXTRA], *extra_value[HTTP_MAX_EXTRA];
    int n_extra;
} http_req;

/* Add a header to the response this request will get, whichever helper
 * queues it (route headers, set before the answer is known). The value
 * is copied; CR and LF in it become spaces. -1 when full or out of memory. */
int http_add_header(http_req *r, const char *name, const char *value);

/* A handler queues exactly one response (through the http_respond_*
 * helpers) and returns 0, or returns -1 on an internal failure (the
 * connection is then closed). */
typedef int (*http_handler)(http_req *r, void *user);

typedef struct http_route {
    const char *method; /* "GET", "POST"; HEAD is served by GET routes */
    const char *path;   /* exact match; a path ending in a slash and a star
                           matches the path up to the slash and anything
                           non-empty after it */
    http_handler fn;
    bool open;          /* served without the API key (/health, the chat
                           page's files: they hold no secret) */
} http_route;

typedef struct http_config {
    const char *host;
    int port;
    int listen_fd;        /* > 0: a socket already listening (systemd's socket
                             activation), served instead of binding host:port */
    long long max_body;
    char *const *api_key; /* *api_key: required bearer token, or NULL
                             (a pointer so a config reload applies) */
    const http_route *routes;
    size_t n_routes;
    void *user;
} http_config;

int http_start(http_server **out, uv_loop_t *loop, const http_config *cfg,
               char *err, size_t errlen);
/* Stop accepting: the listening socket closes, open requests go on.
 * `on_drained` runs on the loop once no request is in flight. */
void http_quiesce(http_server *s, void (*on_drained)(void *), void *arg);
/* Close every connection and release the server (after the loop handles
 * are closed, the loop may be closed). */
void http_stop(http_server *s);

int http_bound_port(const http_server *s);
unsigned http_inflight(const http_server *s);
void http_set_max_body(http_server *s, long long max_body);
/* Run MHD now (after resuming a connection from loop code). */
void http_kick(http_server *s);

/* Suspend a request until http_resume(): from a handler, an on_resume
 * callback or a response content reader only (libmicrohttpd's rule). While
 * suspended, the socket is watched for the client hanging up. */
void http_suspend(http_req *r);
/* Resume from loop code; MHD then calls on_resume (or the content reader
 * again). Safe to call on a request that is not suspended. */
void http_resume(http_req *r);

/* Response helpers. They set Content-Type, record status and size for the
 * log line, and add "Connection: close" while the server is stopping. */
int http_respond(http_req *r, unsigned status, const char *content_type,
                 const char *body, size_t len);
int http_respond_json(http_req *r, unsigned status, const char *json);
int http_respond_error(http_req *r, unsigned status, const char *type,
                       const char *message, const char *param,
                       const char *code);
/* The 404 of a path no route serves, in the API's error shape. */
int http_respond_not_found(http_req *r);
/* Queue an MHD response built by the caller (streaming). */
int http_respond_custom(http_req *r, unsigned status, struct MHD_Response *resp);

uint64_t http_now_ns(void);

#endif
