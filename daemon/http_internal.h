/* http_internal.h - the server's state, shared by http.c (requests,
 * routing, the loop glue) and http_conn.c (connections: their count and
 * header deadlines). Not for other modules. */
#ifndef HEARTH_HTTP_INTERNAL_H
#define HEARTH_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "listen.h"

struct door;

/* One MHD daemon per listening socket; its epoll fd is watched by poll. */
typedef struct http_listener {
    http_server *srv;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;
    bool check_host; /* loopback TCP: the Host header must name loopback */
} http_listener;

#define HTTP_MAX_LISTENERS 2

/* A connection from accept to close (MHD_OPTION_NOTIFY_CONNECTION). */
struct http_conn {
    http_server *srv;
    int fd;
    bool over_limit;   /* accepted beyond max_connections: answered 503 */
    uint64_t t_wait_ns; /* waiting for request headers since; 0: not */
    struct http_conn *prev_wait, *next_wait; /* the server's waiting list */
    uv_poll_t hup;      /* hang-up watch while the client owes bytes; its
                           close callback frees the record */
    bool hup_init;      /* hup is initialized (closed with the record) */
    bool hup_on;        /* hup is started */
    int hup_unread;     /* its fires with bytes still unread (http_conn.c) */
    bool closed;        /* MHD closed the connection; the record waits for
                           hup's close callback */
};

struct http_server {
    uv_loop_t *loop;
    uv_timer_t timer;      /* MHD's next deadline, for every listener */
    uv_timer_t hdr_timer;  /* the oldest connection's header deadline */
    uv_timer_t trim_timer; /* the heap trimmed once quiet (http_trim.c) */
    int handles_open;      /* uv handles not yet closed */
    http_listener lis[HTTP_MAX_LISTENERS];
    int n_lis;
    http_config cfg;
    unsigned inflight;
    unsigned n_conns;       /* open connections, every listener */
    unsigned max_conns;     /* max_connections, after the file limit */
    /* connections waiting for request headers, oldest first: their
     * deadlines (t_wait_ns + header_timeout) come in the same order */
    http_conn *wait_head, *wait_tail;
    int port;
    char *unix_path;        /* NULL: no Unix socket */
    listen_unix unix_sock;
    bool unix_file;         /* the socket file is ours to remove */
    bool stopping;
    bool drained; /* set inside MHD_run, acted on after it returns */
    void (*on_drained)(void *);
    void *drained_arg;
    http_req *suspended; /* list of suspended requests */
};

/* http_conn.c */
void http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe);
/* The record of conn (NULL when its allocation failed). */
http_conn *http_conn_of(struct MHD_Connection *conn);
/* The request's headers are in: its header deadline no longer applies. */
void http_conn_headers_in(http_conn *c);
/* A response is done and the connection stays open: the next request's
 * header deadline and hang-up watch start now. */
void http_conn_wait_again(http_conn *c);
/* The request is whole (headers and body): the client owes nothing more,
 * the hang-up watch stops (a suspended request has its own, http.c). */
void http_conn_request_in(http_conn *c);
/* header_timeout changed (or the server stops): arm the timer anew. */
void http_conn_rearm(http_server *s);

/* http_trim.c */
void http_trim_init(http_server *s);
/* Memory was freed (a request ended, a connection closed): once no request
 * is in flight for a second, the heap's free pages go back to the system. */
void http_trim_poke(http_server *s);

/* http.c: run every listener's MHD now and rearm the timer. */
void http_run(http_server *s);

#endif
