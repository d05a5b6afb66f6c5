/* http_conn.c - connections from accept to close: how many are open
 * (max_connections) and how long each may take to send a request's
 * headers (header_timeout). See http.h for the deadlines and limits.
 *
 * Waiting connections are kept in one list in the order they started
 * waiting; with one header_timeout for all, that is also the order of
 * their deadlines, so one timer armed for the head serves them all and
 * each expiry costs O(1). A connection past its deadline is shut down
 * (shutdown(2), not close: the descriptor stays MHD's until MHD closes
 * it); MHD then reads the end of stream and closes the connection itself.
 *
 * Hang-ups MHD misses. In its epoll mode MHD takes a read shorter than its
 * buffer to mean that the socket is drained, and its epoll set is
 * edge-triggered: when a client's FIN comes in the same read as its last
 * bytes (a body cut short, a request sent and the socket closed at once,
 * which a busy loop sees as one), no new edge follows and MHD waits for
 * bytes that never come, until idle_timeout (for ever with 0), holding the
 * connection and its request. So while the client owes bytes (headers, a
 * body, the next request of a kept-alive connection) the connection is
 * watched here for the hang-up itself (EPOLLRDHUP, level-triggered in
 * libuv): MHD first reads what came before it, and if the request is
 * still not whole the socket is shut down, which MHD sees. Once a request
 * is whole the watch stops: a client may half-close after sending and
 * still read its answer, and a suspended request has its own watch
 * (http.c; one fd may have one active uv_poll). */
#include "http_internal.h"

#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "log.h"

static void wait_remove(http_conn *c)
{
    http_server *s = c->srv;
    if (!c->t_wait_ns)
        return;
    if (c->prev_wait)
        c->prev_wait->next_wait = c->next_wait;
    else
        s->wait_head = c->next_wait;
    if (c->next_wait)
        c->next_wait->prev_wait = c->prev_wait;
    else
        s->wait_tail = c->prev_wait;
    c->prev_wait = c->next_wait = NULL;
    c->t_wait_ns = 0;
}

static void on_header_deadline(uv_timer_t *t);

static uint64_t header_timeout_ns(const http_server *s)
{
    int secs = s->cfg.header_timeout ? *s->cfg.header_timeout : 0;
    return secs > 0 ? (uint64_t)secs * 1000000000ull : 0;
}

/* Arm the timer for the oldest waiting connection (or stop it). */
static void arm(http_server *s)
{
    uint64_t to = header_timeout_ns(s);
    if (!s->wait_head || !to || s->stopping) {
        uv_timer_stop(&s->hdr_timer);
        return;
    }
    uint64_t due = s->wait_head->t_wait_ns + to, now = http_now_ns();
    uint64_t ms = due > now ? (due - now + 999999) / 1000000 : 0;
    uv_timer_start(&s->hdr_timer, on_header_deadline, ms, 0);
}

static void wait_add(http_conn *c)
{
    http_server *s = c->srv;
    wait_remove(c);
    c->t_wait_ns = http_now_ns();
    c->prev_wait = s->wait_tail;
    c->next_wait = NULL;
    if (s->wait_tail)
        s->wait_tail->next_wait = c;
    else
        s->wait_head = c;
    s->wait_tail = c;
    if (s->wait_head == c)
        arm(s);
}

static void on_header_deadline(uv_timer_t *t)
{
    http_server *s = t->data;
    uint64_t to = header_timeout_ns(s), now = http_now_ns();
    unsigned n = 0;
    while (to && s->wait_head && s->wait_head->t_wait_ns + to <= now) {
        http_conn *c = s->wait_head;
        wait_remove(c);
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR);
        n++;
    }
    if (n) {
        log_info("http", "closed %u connection(s) that sent no complete request headers "
                 "within %d s (header_timeout)", n, *s->cfg.header_timeout);
        http_run(s); /* MHD reads their end now */
    }
    arm(s);
}

/* ---------------------------------------------------------- hang-ups */

/* Fires of the watch with bytes still unread, after which the connection
 * is shut down anyway (MHD not reading them would make the watch spin). */
#define HUP_UNREAD_MAX 64

static void hup_stop(http_conn *c)
{
    if (c->hup_on) {
        uv_poll_stop(&c->hup);
        c->hup_on = false;
    }
}

static void on_hup(uv_poll_t *p, int status, int events)
{
    http_conn *c = p->data;
    if (!c->hup_on || !(status < 0 || (events & UV_DISCONNECT)))
        return;
    http_run(c->srv); /* MHD takes what came before the hang-up */
    if (c->closed || !c->hup_on)
        return; /* closed by MHD meanwhile, or its request is whole now */
    int unread = 0;
    if (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0 && ++c->hup_unread < HUP_UNREAD_MAX)
        return; /* MHD reads on; the watch fires again */
    hup_stop(c);
    log_debug("http", "client hung up before its request was whole: closing the connection");
    shutdown(c->fd, SHUT_RDWR);
    http_run(c->srv); /* MHD reads the end now */
}

static void hup_start(http_conn *c)
{
    if (c->hup_on || c->fd < 0)
        return;
    if (!c->hup_init) {
        if (uv_poll_init(c->srv->loop, &c->hup, c->fd) != 0)
            return; /* unwatched: idle_timeout still applies */
        c->hup.data = c;
        c->hup_init = true;
    }
    c->hup_unread = 0;
    c->hup_on = uv_poll_start(&c->hup, UV_DISCONNECT, on_hup) == 0;
}

static void on_hup_closed(uv_handle_t *h) { free(h->data); }

/* ---------------------------------------------------------- accept, close */

void http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe)
{
    http_listener *l = cls;
    http_server *s = l->srv;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        s->n_conns++;
        http_conn *c = calloc(1, sizeof *c);
        *socket_context = c;
        if (!c)
            return; /* counted, without deadline: idle_timeout still applies */
        c->srv = s;
        c->fd = -1;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            c->fd = ci->connect_fd;
        c->over_limit = s->n_conns > s->max_conns;
        wait_add(c);
        hup_start(c);
        return;
    }
    http_conn *c = *socket_context;
    *socket_context = NULL;
    if (s->n_conns)
        s->n_conns--;
    if (c) {
        bool was_head = s->wait_head == c;
        wait_remove(c);
        if (was_head)
            arm(s);
        c->closed = true;
        http_trim_poke(s);
        if (c->hup_init) /* MHD closes the socket after this returns */
            uv_close((uv_handle_t *)&c->hup, on_hup_closed);
        else
            free(c);
    }
}

http_conn *http_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void http_conn_headers_in(http_conn *c)
{
    if (!c)
        return;
    bool was_head = c->srv->wait_head == c;
    wait_remove(c);
    if (was_head)
        arm(c->srv);
}

void http_conn_rearm(http_server *s) { arm(s); }

void http_conn_wait_again(http_conn *c)
{
    if (c) {
        wait_add(c);
        hup_start(c);
    }
}

void http_conn_request_in(http_conn *c)
{
    if (c)
        hup_stop(c);
}
