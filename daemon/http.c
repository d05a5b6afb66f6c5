/* http.c - see http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

struct http_server {
    struct MHD_Daemon *mhd;
    uv_loop_t *loop;
    uv_poll_t poll;
    uv_timer_t timer;
    int handles_open; /* uv handles not yet closed */
    http_config cfg;
    unsigned inflight;
    int port;
    bool stopping;
    bool drained; /* set inside MHD_run, acted on after it returns */
    void (*on_drained)(void *);
    void *drained_arg;
    http_req *suspended; /* list of suspended requests */
};

uint64_t http_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------- responses */

int http_respond_custom(http_req *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return -1;
    if (r->srv->stopping)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    for (int i = 0; i < r->n_extra; i++)
        MHD_add_response_header(resp, r->extra_name[i], r->extra_value[i]);
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    if (ok != MHD_YES)
        return -1;
    r->status = status;
    r->responded = true;
    return 0;
}

int http_add_header(http_req *r, const char *name, const char *value)
{
    for (int i = 0; i < r->n_extra; i++)
        if (strcasecmp(r->extra_name[i], name) == 0) { /* replace */
            char *v = strdup(value);
            if (!v)
                return -1;
            free(r->extra_value[i]);
            r->extra_value[i] = v;
            goto clean;
        }
    if (r->n_extra == HTTP_MAX_EXTRA)
        return -1;
    r->extra_name[r->n_extra] = strdup(name);
    r->extra_value[r->n_extra] = strdup(value);
    if (!r->extra_name[r->n_extra] || !r->extra_value[r->n_extra]) {
        free(r->extra_name[r->n_extra]);
        free(r->extra_value[r->n_extra]);
        return -1;
    }
    r->n_extra++;
clean:
    for (int i = 0; i < r->n_extra; i++)
        for (char *p = r->extra_value[i]; *p; p++)
            if (*p == '\r' || *p == '\n')
                *p = ' ';
    return 0;
}

int http_respond(http_req *r, unsigned status, const char *content_type,
                 const char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return -1;
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    r->bytes = len;
    return http_respond_custom(r, status, resp);
}

int http_respond_json(http_req *r, unsigned status, const char *json)
{
    return http_respond(r, status, "application/json", json, strlen(json));
}

int http_respond_error(http_req *r, unsigned status, const char *type,
                       const char *message, const char *param, const char *code)
{
    char *json = api_error_json(status, type, message, param, code);
    if (!json)
        return -1;
    int rc = http_respond_json(r, status, json);
    free(json);
    return rc;
}

int http_respond_not_found(http_req *r)
{
    size_t plen = strcspn(r->url, "?");
    char msg[256];
    snprintf(msg, sizeof msg, "Invalid URL (%s %.*s)", r->method,
             (int)(plen > 160 ? 160 : plen), r->url);
    return http_respond_error(r, 404, "invalid_request_error", msg, NULL, "not_found");
}

/* ---------------------------------------------------------- routing */

/* Compare without an early exit, so the time taken does not tell how much
 * of a guessed key was right. */
static bool key_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++)
        diff |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
    return diff == 0;
}

static bool authorized(http_server *s, http_req *r)
{
    const char *key = s->cfg.api_key ? *s->cfg.api_key : NULL;
    if (!key || !*key)
        return true;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && strncasecmp(h, "Bearer ", 7) == 0 && key_equal(h + 7, key))
        return true;
    /* Anthropic's clients send the key as x-api-key */
    const char *x = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-api-key");
    return x && key_equal(x, key);
}

static int route(http_server *s, http_req *r)
{
    const char *method = strcmp(r->method, "HEAD") == 0 ? "GET" : r->method;
    /* Ignore a query string when matching. */
    size_t plen = strcspn(r->url, "?");
    bool path_known = false;
    const http_route *hit = NULL;
    char allow[64] = "";
    for (size_t i = 0; i < s->cfg.n_routes; i++) {
        const http_route *rt = &s->cfg.routes[i];
        size_t rl = strlen(rt->path);
        bool prefix = rl >= 2 && strcmp(rt->path + rl - 2, "/*") == 0;
        if (prefix ? plen <= rl - 1 || strncmp(rt->path, r->url, rl - 1) != 0
                   : rl != plen || strncmp(rt->path, r->url, plen) != 0)
            continue;
        path_known = true;
        if (strcmp(rt->method, method) == 0) {
            hit = rt;
            break;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "",
                 rt->method);
    }
    /* The key is asked for before anything else is told, even whether the
     * path exists; open routes only are answered without it. */
    if (!(hit && hit->open) && !authorized(s, r))
        return http_respond_error(r, 401, "invalid_request_error",
                                  "Missing or incorrect API key: send it as "
                                  "'Authorization: Bearer KEY'",
                                  NULL, "invalid_api_key");
    if (hit)
        return hit->fn(r, s->cfg.user);
    if (!path_known)
        return http_respond_not_found(r);
    char msg[256];
    snprintf(msg, sizeof msg, "Method %s not allowed for %.*s (allowed: %s)",
             r->method, (int)(plen > 160 ? 160 : plen), r->url, allow);
    char *json = api_error_json(405, "invalid_request_error", msg, NULL,
                                "method_not_allowed");
    if (!json)
        return -1;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(json), json, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(json);
        return -1;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    r->bytes = strlen(json);
    return http_respond_custom(r, 405, resp);
}

static int respond_too_large(http_server *s, http_req *r)
{
    char msg[160];
    snprintf(msg, sizeof msg,
             "Request body too large: the limit is %lld bytes (max_body_size)",
             s->cfg.max_body);
    return http_respond_error(r, 413, "invalid_request_error", msg, NULL,
                              "request_too_large");
}

/* ---------------------------------------------------------- suspend/resume */

static void on_timer(uv_timer_t *t);

static void on_watch_closed(uv_handle_t *h) { free(h); }

/* Stop watching the socket of a request (it is resumed or done). */
static void unwatch(http_req *r)
{
    if (r->watch) {
        r->watch->data = NULL;
        uv_close((uv_handle_t *)r->watch, on_watch_closed);
        r->watch = NULL;
    }
    if (r->suspended) {
        http_server *s = r->srv;
        if (r->prev_susp)
            r->prev_susp->next_susp = r->next_susp;
        else
            s->suspended = r->next_susp;
        if (r->next_susp)
            r->next_susp->prev_susp = r->prev_susp;
        r->next_susp = r->prev_susp = NULL;
        r->suspended = false;
    }
}

static void on_watch(uv_poll_t *p, int status, int events)
{
    http_req *r = p->data;
    if (!r)
        return;
    /* EPOLLRDHUP (or an error) while suspended: the client hung up. A
     * pipelined next request would only make the socket readable, which
     * is not watched, so this never spins. */
    if (status < 0 || (events & UV_DISCONNECT)) {
        uv_poll_stop(p);
        r->client_gone = true;
        if (r->on_disconnect)
            r->on_disconnect(r);
    }
}

void http_suspend(http_req *r)
{
    if (r->suspended)
        return;
    http_server *s = r->srv;
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    r->next_susp = s->suspended;
    r->prev_susp = NULL;
    if (s->suspended)
        s->suspended->prev_susp = r;
    s->suspended = r;
    if (r->fd >= 0 && !r->client_gone) {
        r->watch = malloc(sizeof *r->watch);
        if (r->watch && uv_poll_init(s->loop, r->watch, r->fd) == 0) {
            r->watch->data = r;
            uv_poll_start(r->watch, UV_DISCONNECT, on_watch);
        } else {
            free(r->watch);
            r->watch = NULL;
        }
    }
}

void http_resume(http_req *r)
{
    if (!r->suspended)
        return;
    unwatch(r);
    MHD_resume_connection(r->conn);
    /* MHD's ITC wakes its epoll fd too; the zero timer makes sure the
     * resumed connection gets a pass on the next loop iteration. */
    uv_timer_start(&r->srv->timer, on_timer, 0, 0);
}

/* ---------------------------------------------------------- MHD callbacks */

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->method = method;
        r->url = url;
        r->t_start_ns = http_now_ns();
        r->fd = -1;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            r->fd = ci->connect_fd;
        *con_cls = r;
        s->inflight++;
        /* Refuse an announced oversized body before reading it. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || (long long)n > s->cfg.max_body || n > (1ull << 62)) {
                r->body_too_large = true;
                return respond_too_large(s, r) == 0 ? MHD_YES : MHD_NO;
            }
        }
        return MHD_YES;
    }
    if (r->responded) {
        *upload_data_size = 0; /* discard what follows a queued response */
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->body_too_large)
            return MHD_YES;
        if ((long long)(r->body_len + n) > s->cfg.max_body) {
            r->body_too_large = true;
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
            return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 4096;
            while (cap < r->body_len + n + 1)
                cap *= 2;
            char *nb = realloc(r->body, cap);
            if (!nb)
                return MHD_NO;
            r->body = nb;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }
    /* The whole request is in. */
    if (r->on_resume)
        return r->on_resume(r, s->cfg.user) == 0 ? MHD_YES : MHD_NO;
    if (r->body_too_large)
        return respond_too_large(s, r) == 0 ? MHD_YES : MHD_NO;
    if (!r->body) {
        r->body = calloc(1, 1);
        if (!r->body)
            return MHD_NO;
    }
    return route(s, r) == 0 ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    double ms = (double)(http_now_ns() - r->t_start_ns) / 1e6;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_info("http", "%s %s %u %lluB %.1fms", r->method, r->url, r->status,
                 (unsigned long long)r->bytes, ms);
    else
        log_info("http", "%s %s %u %lluB %.1fms (connection ended early: %s)",
                 r->method, r->url, r->status, (unsigned long long)r->bytes, ms,
                 toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client closed"
                 : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                 : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                                  : "error");
    unwatch(r);
    if (r->app_free)
        r->app_free(r->app);
    for (int i = 0; i < r->n_extra; i++) {
        free(r->extra_name[i]);
        free(r->extra_value[i]);
    }
    free(r->body);
    free(r);
    if (s->inflight)
        s->inflight--;
    if (s->stopping && s->inflight == 0)
        s->drained = true;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    log_debug("mhd", "%s", buf);
}

/* ---------------------------------------------------------- loop glue */

static void schedule(http_server *s);

static void run_mhd(http_server *s)
{
    if (!s->mhd)
        return;
    MHD_run(s->mhd);
    /* The drain callback may stop the server, which must not happen from
     * inside MHD_run: it runs here, after MHD is done. */
    if (s->drained && s->on_drained) {
        void (*cb)(void *) = s->on_drained;
        s->on_drained = NULL;
        cb(s->drained_arg);
        return; /* s may be stopped now */
    }
    schedule(s);
}

static void on_timer(uv_timer_t *t) { run_mhd(t->data); }

static void on_poll(uv_poll_t *p, int status, int events) { run_mhd(p->data); }

/* Arm the timer with MHD's next deadline (idle timeouts, resumed
 * connections that need a pass). */
static void schedule(http_server *s)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (s->mhd && MHD_get_timeout(s->mhd, &ms) == MHD_YES)
        uv_timer_start(&s->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&s->timer);
}

void http_kick(http_server *s) { run_mhd(s); }

int http_start(http_server **out, uv_loop_t *loop, const http_config *cfg,
               char *err, size_t errlen)
{
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->loop = loop;
    s->cfg = *cfg;

    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    const char *host = strcmp(cfg->host, "localhost") == 0 ? "127.0.0.1" : cfg->host;
    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&sin;
    } else if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "listen address '%s' is not an IP address", cfg->host);
        free(s);
        return -1;
    }

    struct MHD_OptionItem where[] = {
        cfg->listen_fd > 0
            ? (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, cfg->listen_fd, NULL}
            : (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, addr},
        {MHD_OPTION_END, 0, NULL}};
    s->mhd = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_access, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first, to catch all */
        MHD_OPTION_ARRAY, where,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_END);
    if (!s->mhd) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port,
                 e == EADDRINUSE ? "address already in use"
                 : e ? strerror(e) : "libmicrohttpd refused to start");
        free(s);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info) {
        snprintf(err, errlen, "libmicrohttpd built without epoll support");
        MHD_stop_daemon(s->mhd);
        free(s);
        return -1;
    }
    uv_poll_init(loop, &s->poll, info->epoll_fd);
    uv_timer_init(loop, &s->timer);
    s->poll.data = s;
    s->timer.data = s;
    s->handles_open = 2;
    uv_poll_start(&s->poll, UV_READABLE, on_poll);
    schedule(s);
    *out = s;
    return 0;
}

void http_quiesce(http_server *s, void (*on_drained)(void *), void *arg)
{
    if (!s->stopping) {
        s->stopping = true;
        MHD_socket fd = MHD_quiesce_daemon(s->mhd);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
    s->on_drained = on_drained;
    s->drained_arg = arg;
    if (s->inflight == 0 && on_drained) {
        s->on_drained = NULL;
        on_drained(arg);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    http_server *s = h->data;
    if (--s->handles_open == 0)
        free(s);
}

void http_stop(http_server *s)
{
    if (!s)
        return;
    s->on_drained = NULL;
    /* MHD must not be stopped with suspended connections. */
    while (s->suspended) {
        http_req *r = s->suspended;
        unwatch(r);
        MHD_resume_connection(r->conn);
    }
    uv_poll_stop(&s->poll);
    uv_timer_stop(&s->timer);
    MHD_stop_daemon(s->mhd); /* completes (and logs) what is left */
    s->mhd = NULL;
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

int http_bound_port(const http_server *s) { return s->port; }
unsigned http_inflight(const http_server *s) { return s->inflight; }
void http_set_max_body(http_server *s, long long max_body) { s->cfg.max_body = max_body; }
