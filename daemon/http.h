/* http.h - libmicrohttpd driven by a libuv loop.
 *
 * MHD runs without threads of its own (MHD_USE_EPOLL): its epoll fd is
 * watched by a uv_poll handle and its timeouts by a uv_timer, so the HTTP
 * server, the scheduler's wake-ups (uv_async) and the cloud client all run
 * on the one loop of the main thread.
 *
 * This module owns the connection plumbing: the listeners (TCP and an
 * optional Unix socket, one MHD daemon each), request bodies (with the
 * size limit), routing by method and path (404/405), response helpers,
 * the per-request log line, in-flight accounting and the graceful stop.
 * Before a request reaches a route, the door's rules apply (daemon/door.h:
 * Host check on a loopback TCP listener, API key, CORS preflight), as soon
 * as its headers are in, so that a refused request's body is never kept.
 *
 * Connection deadlines and limits (every one a clear answer or a close,
 * never a hang):
 * - header_timeout: from accept (or the end of the previous response on a
 *   kept-alive connection) to the end of the request's headers, however
 *   slowly the bytes trickle in; past it the connection is shut down.
 * - idle_timeout: MHD's own connection timeout, seconds without a byte
 *   received or sent. MHD does not count time while a connection is
 *   suspended (a request waiting for its generation, a stream with
 *   nothing to send) and restarts the count on resume: those have
 *   request_timeout, kept by daemon/gen.c.
 * - max_connections: MHD stops accepting at its own limit, and then new
 *   connections wait unanswered in the kernel's queue. So MHD's limit is
 *   set HTTP_CONN_RESERVE above ours, and a connection beyond ours gets a
 *   503 to its first request and is closed.
 * - hang-ups: a client that closes before its request is whole (a body
 *   cut short) is closed at once, also when MHD's epoll mode misses it
 *   (daemon/http_conn.c); a suspended request has its disconnect watch.
 * - max_header_size: MHD's per-connection memory pool holds the request
 *   line and headers, and the response's headers and MHD's buffers; it is
 *   max_header_size plus 4 KiB. Headers that do not fit get MHD's own 431
 *   (an HTML body, not JSON); within about 128 bytes of the pool's size
 *   MHD has no room left for that answer and closes the connection. */
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

typedef struct http_conn http_conn;

typedef struct http_req {
    http_server *srv;
    http_conn *hc;      /* the connection's record (NULL if it has none) */
    struct MHD_Connection *conn;
    const char *method; /* owned by MHD, valid for the request */
    const char *url;
    const char *endpoint; /* the path pattern of the routes the URL matches
                             (http_route.path), NULL when none does; set
                             when the request is routed, or as it ends */
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
    bool close;         /* answer with "Connection: close" */
    bool admitted;      /* the door's rules were applied */
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

/* Connections MHD accepts beyond max_connections, to answer them 503. */
#define HTTP_CONN_RESERVE 64

struct door;

typedef struct http_config {
    const char *host;      /* NULL: no TCP listener */
    int port;
    const char *unix_path; /* NULL: no Unix socket */
    unsigned unix_mode;
    int listen_fd;        /* > 0: a socket already listening (systemd's socket
                             activation), served instead of binding host:port */
    long long max_body;
    int max_connections;
    const int *header_timeout; /* seconds, 0: none; points into the live config */
    int idle_timeout;      /* seconds, 0: none */
    long long max_header;  /* bytes */
    const struct door *door; /* replaced with http_reconfigure */
    const http_route *routes;
    size_t n_routes;
    void *user;
    /* Called with each request as it ends, after its log line (metrics);
     * may be NULL. */
    void (*on_done)(const http_req *r, void *user);
} http_config;

int http_start(http_server **out, uv_loop_t *loop, const http_config *cfg,
               char *err, size_t errlen);
/* Stop accepting: the listening socket closes, open requests go on.
 * `on_drained` runs on the loop once no request is in flight. */
void http_quiesce(http_server *s, void (*on_drained)(void *), void *arg);
/* Close every connection and release the server (after the loop handles
 * are closed, the loop may be closed). */
void http_stop(http_server *s);

/* The TCP port (0 without a TCP listener). */
int http_bound_port(const http_server *s);
unsigned http_inflight(const http_server *s);
/* Open connections, all listeners, and the limit in force (max_connections,
 * lowered when the process may not open that many files). */
unsigned http_connections(const http_server *s);
unsigned http_max_connections(const http_server *s);
void http_set_max_body(http_server *s, long long max_body);
/* Apply the live configuration after SIGHUP: new rules (the caller owns
 * both doors) and header_timeout re-read. */
void http_reconfigure(http_server *s, const struct door *d);
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
