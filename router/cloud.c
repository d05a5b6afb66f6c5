/* cloud.c - see cloud.h.
 *
 * The rule libcurl sets: no handle may be removed from the multi handle
 * inside one of its callbacks. Every entry into libcurl and every round of
 * our own callbacks therefore runs with c->depth > 0; a cancel made then
 * only marks the request (its write callback refuses further bytes, which
 * ends the transfer) and the request is removed once the round is over. */
#include "router/cloud.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    cloud *c;
    struct sock_ctx *prev, *next; /* the cloud's open sockets */
} sock_ctx;

struct cloud_req {
    cloud *c;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    cloud_opts o;           /* the callbacks and arg (pointers not kept) */
    bool cancelled;
    char errbuf[CURL_ERROR_SIZE];
    cloud_req *prev, *next; /* the active list */
};

struct cloud {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    cloud_req *reqs;
    sock_ctx *socks;
    int depth;              /* inside libcurl or our callbacks */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---------------------------------------------------------- requests */

static void req_free(cloud_req *r)
{
    cloud *c = r->c;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    curl_multi_remove_handle(c->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r->body);
    free(r);
}

/* Remove the requests cancelled during a round (depth back to 0). */
static void reap_cancelled(cloud *c)
{
    cloud_req *r = c->reqs;
    while (r) {
        cloud_req *next = r->next;
        if (r->cancelled)
            req_free(r);
        r = next;
    }
}

/* Hand each finished transfer to its on_done, then let it go. */
static void finish_done(cloud *c)
{
    CURLMsg *m;
    int left;
    c->depth++;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        cloud_req *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        if (!r || r->cancelled)
            continue; /* reaped below */
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        const char *why = rc == CURLE_OK ? ""
                          : r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
        if (r->o.on_done)
            r->o.on_done(r, rc == CURLE_OK ? 0 : (int)rc, status, why, r->o.arg);
        r->cancelled = true; /* done: nothing more of it runs */
    }
    c->depth--;
    if (c->depth == 0)
        reap_cancelled(c);
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
    cloud_req *r = arg;
    size_t len = size * n;
    if (r->cancelled)
        return 0; /* ends the transfer (CURLE_WRITE_ERROR), quietly */
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (r->o.on_data)
        r->o.on_data(r, status, p, len, r->o.arg);
    return r->cancelled ? 0 : len;
}

/* ---------------------------------------------------------- the loop */

static void socket_action(cloud *c, curl_socket_t fd, int flags)
{
    int running;
    c->depth++;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    c->depth--;
    finish_done(c);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *sc = p->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    socket_action(sc->c, sc->fd, flags); /* may close sc: not used after */
}

static void on_timeout(uv_timer_t *t) { socket_action(t->data, CURL_SOCKET_TIMEOUT, 0); }

static void on_sock_closed(uv_handle_t *h) { free(h->data); }

static void sock_close(cloud *c, sock_ctx *sc)
{
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        c->socks = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    uv_poll_stop(&sc->poll);
    uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    cloud *c = userp;
    sock_ctx *sc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            sock_close(c, sc);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (!sc) {
        sc = calloc(1, sizeof *sc);
        if (!sc)
            return -1;
        sc->fd = fd;
        sc->c = c;
        if (uv_poll_init_socket(c->loop, &sc->poll, fd) != 0) {
            free(sc);
            return -1;
        }
        sc->poll.data = sc;
        sc->next = c->socks;
        if (c->socks)
            c->socks->prev = sc;
        c->socks = sc;
        curl_multi_assign(c->multi, fd, sc);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&sc->poll, ev, on_poll);
    return 0;
}

/* libcurl's one timeout: run it from the loop, never from inside here */
static int on_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    cloud *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---------------------------------------------------------- API */

int cloud_new(uv_loop_t *loop, cloud **out, char *err, size_t errlen)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_init_rc));
        return -1;
    }
    cloud *c = calloc(1, sizeof *c);
    if (!c || !(c->multi = curl_multi_init())) {
        free(c);
        snprintf(err, errlen, "out of memory for the cloud client");
        return -1;
    }
    c->loop = loop;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    *out = c;
    return 0;
}

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

void cloud_free(cloud *c)
{
    if (!c)
        return;
    while (c->reqs)
        req_free(c->reqs);
    /* closes the cached connections (their sockets may come back as
     * CURL_POLL_REMOVE); what libcurl did not hand back closes here */
    curl_multi_cleanup(c->multi);
    while (c->socks)
        sock_close(c, c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

cloud_req *cloud_start(cloud *c, const cloud_opts *o, char *err, size_t errlen)
{
    cloud_req *r = calloc(1, sizeof *r);
    if (!r || !(r->easy = curl_easy_init())) {
        free(r);
        snprintf(err, errlen, "out of memory for a cloud request");
        return NULL;
    }
    r->c = c;
    r->o = *o;
    r->o.url = NULL;
    r->o.headers = NULL;
    r->o.body = NULL;
    r->o.ca_file = NULL;
    bool ok = true;
    for (size_t i = 0; i < o->n_headers && ok; i++) {
        struct curl_slist *h = curl_slist_append(r->hdrs, o->headers[i]);
        ok = h != NULL;
        if (h)
            r->hdrs = h;
    }
    if (ok && o->body) {
        r->body = malloc(o->body_len ? o->body_len : 1);
        ok = r->body != NULL;
        if (ok)
            memcpy(r->body, o->body, o->body_len);
    }
    CURL *e = r->easy;
    ok = ok && curl_easy_setopt(e, CURLOPT_URL, o->url) == CURLE_OK;
    if (!ok) {
        curl_easy_cleanup(e);
        curl_slist_free_all(r->hdrs);
        free(r->body);
        free(r);
        snprintf(err, errlen, "cannot set up the cloud request (out of memory or a bad URL)");
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (o->connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    if (o->total_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->total_timeout_ms);
    if (r->hdrs)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    if (r->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    }
    CURLMcode mc = curl_multi_add_handle(c->multi, e);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(r->hdrs);
        free(r->body);
        free(r);
        snprintf(err, errlen, "libcurl: %s", curl_multi_strerror(mc));
        return NULL;
    }
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    return r;
}

void cloud_cancel(cloud_req *r)
{
    if (!r)
        return;
    r->cancelled = true;
    if (r->c->depth == 0)
        req_free(r);
}

int cloud_active(const cloud *c)
{
    int n = 0;
    for (const cloud_req *r = c->reqs; r; r = r->next)
        n += !r->cancelled;
    return n;
}
