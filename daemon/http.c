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

#include "door.h"
#include "error.h"
#include "http_internal.h"
#include "log.h"

/* CORS: what a preflight allows. Authorization cannot be covered by the
 * wildcard and is named; "*" covers the SDKs' own headers (x-stainless-*,
 * anthropic-dangerous-direct-browser-access, ...). */
#define CORS_METHODS "GET, POST, OPTIONS"
#define CORS_HEADERS "Authorization, Content-Type, x-api-key, anthropic-version, " \
                     "anthropic-beta, X-Hearth-Route, *"
#define CORS_EXPOSE "X-Hearth-Route, X-Hearth-Route-Reason"
#define CORS_MAX_AGE "600"

/* Per-connection memory beyond max_header_size (see http.h). */
#define HTTP_POOL_SLACK 4096

uint64_t http_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------- responses */

static const char *header(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* An allowed Origin may read the response, streams and errors included. */
static void add_cors(const http_req *r, struct MHD_Response *resp)
{
    const door *d = r->srv->cfg.door;
    if (!door_cors_on(d))
        return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    const char *origin = header(r, MHD_HTTP_HEADER_ORIGIN);
    if (!door_origin_allowed(d, origin))
        return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_EXPOSE_HEADERS, CORS_EXPOSE);
}

int http_respond_custom(http_req *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return -1;
    if (r->srv->stopping || r->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    add_cors(r, resp);
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

/* The route serving r's method and path, or NULL; *path_known tells a
 * wrong method from an unknown path, and allow lists the path's methods. */
static const http_route *match_route(const http_server *s, http_req *r,
                                     bool *path_known, char *allow, size_t allow_len)
{
    const char *method = strcmp(r->method, "HEAD") == 0 ? "GET" : r->method;
    /* Ignore a query string when matching. */
    size_t plen = strcspn(r->url, "?");
    *path_known = false;
    allow[0] = '\0';
    for (size_t i = 0; i < s->cfg.n_routes; i++) {
        const http_route *rt = &s->cfg.routes[i];
        size_t rl = strlen(rt->path);
        bool prefix = rl >= 2 && strcmp(rt->path + rl - 2, "/*") == 0;
        if (prefix ? plen <= rl - 1 || strncmp(rt->path, r->url, rl - 1) != 0
                   : rl != plen || strncmp(rt->path, r->url, plen) != 0)
            continue;
        *path_known = true;
        r->endpoint = rt->path;
        if (strcmp(rt->method, method) == 0)
            return rt;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", rt->method);
    }
    return NULL;
}

static bool authorized(const http_server *s, const http_req *r)
{
    const door *d = s->cfg.door;
    if (!door_needs_key(d))
        return true;
    const char *h = header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && strncasecmp(h, "Bearer ", 7) == 0 && door_key_ok(d, h + 7))
        return true;
    /* Anthropic's clients send the key as x-api-key */
    const char *x = header(r, "x-api-key");
    return x && door_key_ok(d, x);
}

/* A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method.
 * No key is asked of it (browsers send none); the request that follows
 * is checked as any other. */
static int preflight(http_req *r, const char *origin)
{
    if (!door_origin_allowed(r->srv->cfg.door, origin)) {
        char msg[300];
        snprintf(msg, sizeof msg, "Origin '%.200s' is not allowed (cors_origins)", origin);
        return http_respond_error(r, 403, NULL, msg, NULL, "cors_origin_not_allowed");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return -1;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_METHODS, CORS_METHODS);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_HEADERS, CORS_HEADERS);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_MAX_AGE, CORS_MAX_AGE);
    return http_respond_custom(r, MHD_HTTP_NO_CONTENT, resp);
}

/* The door's rules, applied as soon as a request's headers are in. True
 * when the request was answered (*rc: the helper's result). */
static bool turned_away(http_server *s, const http_listener *l, http_req *r, int *rc)
{
    if (r->hc && r->hc->over_limit) {
        char msg[200];
        snprintf(msg, sizeof msg, "Too many connections: hearthd keeps at most %u open "
                 "(max_connections); try again shortly", s->max_conns);
        r->close = true;
        http_add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        *rc = http_respond_error(r, 503, NULL, msg, NULL, "too_many_connections");
        return true;
    }
    const char *host = header(r, MHD_HTTP_HEADER_HOST);
    if (l->check_host && !door_host_allowed(s->cfg.door, host)) {
        char msg[400];
        snprintf(msg, sizeof msg, "Host '%.200s' is not allowed: this server listens on "
                 "loopback and answers only localhost and loopback addresses "
                 "(add names to allowed_hosts)", host);
        *rc = http_respond_error(r, 403, NULL, msg, NULL, "host_not_allowed");
        return true;
    }
    const char *origin = header(r, MHD_HTTP_HEADER_ORIGIN);
    if (origin && strcmp(r->method, MHD_HTTP_METHOD_OPTIONS) == 0 &&
        header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_REQUEST_METHOD)) {
        *rc = preflight(r, origin);
        return true;
    }
    /* The key is asked for before anything else is told, even whether the
     * path exists; open routes only are answered without it. */
    bool path_known;
    char allow[64];
    const http_route *hit = match_route(s, r, &path_known, allow, sizeof allow);
    if (!(hit && hit->open) && !authorized(s, r)) {
        *rc = http_respond_error(r, 401, "invalid_request_error",
                                 "Missing or incorrect API key: send it as "
                                 "'Authorization: Bearer KEY'",
                                 NULL, "invalid_api_key");
        return true;
    }
    return false;
}

/* After the door let r in (turned_away). */
static int route(http_server *s, http_req *r)
{
    size_t plen = strcspn(r->url, "?");
    bool path_known;
    char allow[64];
    const http_route *hit = match_route(s, r, &path_known, allow, sizeof allow);
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
    http_listener *l = cls;
    http_server *s = l->srv;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->hc = http_conn_of(conn);
        http_conn_headers_in(r->hc);
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
        /* A request with a body meets the door now, so that a refused
         * body is never read (MHD then closes the connection); one without
         * a body once it is complete, which keeps the connection alive
         * (a preflight, a request without its key). */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        int rc;
        if ((cl && strcmp(cl, "0") != 0) || header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
            r->admitted = true;
            if (turned_away(s, l, r, &rc))
                return rc == 0 ? MHD_YES : MHD_NO;
        }
        /* Refuse an announced oversized body before reading it. */
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
    http_conn_request_in(r->hc);
    if (r->on_resume)
        return r->on_resume(r, s->cfg.user) == 0 ? MHD_YES : MHD_NO;
    int rc;
    if (!r->admitted && (r->admitted = true, turned_away(s, l, r, &rc)))
        return rc == 0 ? MHD_YES : MHD_NO;
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
    http_listener *l = cls;
    http_server *s = l->srv;
    http_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    unwatch(r); /* before the connection's own watch may start on the fd */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !r->close && !s->stopping)
        http_conn_wait_again(r->hc); /* kept alive: the next request's headers */
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
    if (s->cfg.on_done) {
        bool known;
        char allow[64];
        if (!r->endpoint) /* answered before routing (the door, 413) */
            match_route(s, r, &known, allow, sizeof allow);
        s->cfg.on_done(r, s->cfg.user);
    }
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
    http_trim_poke(s);
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

/* After MHD ran: the drain callback may stop the server, which must not
 * happen from inside MHD_run, so it runs here, after MHD is done. */
static void after_run(http_server *s)
{
    if (s->drained && s->on_drained) {
        void (*cb)(void *) = s->on_drained;
        s->on_drained = NULL;
        cb(s->drained_arg);
        return; /* s may be stopped now */
    }
    schedule(s);
}

void http_run(http_server *s)
{
    for (int i = 0; i < s->n_lis; i++)
        if (s->lis[i].mhd)
            MHD_run(s->lis[i].mhd);
    after_run(s);
}

static void on_timer(uv_timer_t *t) { http_run(t->data); }

static void on_poll(uv_poll_t *p, int status, int events)
{
    http_listener *l = p->data;
    if (l->mhd)
        MHD_run(l->mhd);
    after_run(l->srv);
}

/* Arm the timer with MHD's next deadline over every listener (idle
 * timeouts, resumed connections that need a pass). */
static void schedule(http_server *s)
{
    bool any = false;
    MHD_UNSIGNED_LONG_LONG best = 0;
    for (int i = 0; i < s->n_lis; i++) {
        MHD_UNSIGNED_LONG_LONG ms;
        if (s->lis[i].mhd && MHD_get_timeout(s->lis[i].mhd, &ms) == MHD_YES &&
            (!any || ms < best)) {
            best = ms;
            any = true;
        }
    }
    if (any)
        uv_timer_start(&s->timer, on_timer, best, 0);
    else
        uv_timer_stop(&s->timer);
}

void http_kick(http_server *s) { http_run(s); }

/* The TCP listener's address (MHD opens and binds that socket itself). */
typedef union tcp_addr {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
} tcp_addr;

static int tcp_addr_of(const http_config *cfg, tcp_addr *a, bool *v6, char *err, size_t errlen)
{
    const char *host = strcmp(cfg->host, "localhost") == 0 ? "127.0.0.1" : cfg->host;
    memset(a, 0, sizeof *a);
    *v6 = false;
    if (inet_pton(AF_INET, host, &a->v4.sin_addr) == 1) {
        a->v4.sin_family = AF_INET;
        a->v4.sin_port = htons((uint16_t)cfg->port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a->v6.sin6_addr) == 1) {
        a->v6.sin6_family = AF_INET6;
        a->v6.sin6_port = htons((uint16_t)cfg->port);
        *v6 = true;
        return 0;
    }
    snprintf(err, errlen, "listen address '%s' is not an IP address", cfg->host);
    return -1;
}

/* One MHD daemon: on the TCP address, or on the Unix socket's descriptor
 * (unix_fd >= 0). */
/* fd < 0: bind host:port; else serve fd, a Unix socket or (tcp) a TCP
 * socket already listening (systemd's socket activation). */
static int start_listener(http_server *s, http_listener *l, int fd, bool tcp, char *err,
                          size_t errlen)
{
    int unix_fd = fd;
    const http_config *cfg = &s->cfg;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    tcp_addr addr;
    bool v6 = false;
    if (unix_fd < 0 && tcp_addr_of(cfg, &addr, &v6, err, errlen) < 0)
        return -1;
    if (v6)
        flags |= MHD_USE_IPv6;
    /* The pool holds the request line and headers, plus the response's
     * headers and MHD's buffers beside them. */
    size_t pool = (size_t)cfg->max_header + HTTP_POOL_SLACK;
    l->srv = s;
    l->check_host = (unix_fd < 0 || tcp) && cfg->host && door_addr_is_loopback(cfg->host);
    struct MHD_OptionItem where[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &addr.sa},
        {MHD_OPTION_END, 0, NULL},
    };
    if (unix_fd >= 0)
        where[0] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, unix_fd, NULL};
    l->mhd = MHD_start_daemon(
        flags, unix_fd < 0 ? (uint16_t)cfg->port : 0, NULL, NULL, on_access, l,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first, to catch all */
        MHD_OPTION_ARRAY, where,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
        MHD_OPTION_NOTIFY_CONNECTION, http_conn_notify, l,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout,
        MHD_OPTION_CONNECTION_LIMIT, s->max_conns + HTTP_CONN_RESERVE,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
        MHD_OPTION_END);
    if (!l->mhd) {
        int e = errno;
        if (unix_fd >= 0)
            snprintf(err, errlen, "cannot serve on %s: libmicrohttpd refused the socket",
                     tcp ? "the socket systemd passed" : s->unix_path);
        else
            snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port,
                     e == EADDRINUSE ? "address already in use"
                     : e ? strerror(e) : "libmicrohttpd refused to start");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info) {
        snprintf(err, errlen, "libmicrohttpd built without epoll support");
        MHD_stop_daemon(l->mhd);
        l->mhd = NULL;
        return -1;
    }
    if (unix_fd < 0 || tcp) {
        const union MHD_DaemonInfo *pi = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_BIND_PORT);
        s->port = pi ? pi->port : cfg->port;
    }
    uv_poll_init(s->loop, &l->poll, info->epoll_fd);
    l->poll.data = l;
    s->handles_open++;
    uv_poll_start(&l->poll, UV_READABLE, on_poll);
    return 0;
}

/* Enough file descriptors for every connection MHD may accept, plus the
 * model, the cloud client and the loop's own; max_connections is lowered
 * to what the limit allows. */
static void fit_file_limit(http_server *s, int n_listeners)
{
    if (n_listeners < 1)
        n_listeners = 1;
    unsigned long per = (unsigned long)s->cfg.max_connections + HTTP_CONN_RESERVE;
    unsigned long need = per * (unsigned long)n_listeners + 256;
    unsigned long have = listen_raise_nofile(need);
    s->max_conns = (unsigned)s->cfg.max_connections;
    if (have < need) {
        unsigned long fit = have > 256 ? (have - 256) / (unsigned long)n_listeners : 0;
        fit = fit > HTTP_CONN_RESERVE + 1 ? fit - HTTP_CONN_RESERVE : 1;
        if (fit < s->max_conns)
            s->max_conns = (unsigned)fit;
        log_warn("http", "the open-file limit is %lu (ulimit -n): max_connections lowered "
                 "from %d to %u", have, s->cfg.max_connections, s->max_conns);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    http_server *s = h->data;
    if (--s->handles_open == 0) {
        free(s->unix_path);
        free(s);
    }
}

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
    uv_timer_init(loop, &s->timer);
    uv_timer_init(loop, &s->hdr_timer);
    s->timer.data = s->hdr_timer.data = s;
    http_trim_init(s);
    s->handles_open = 3;
    fit_file_limit(s, (cfg->host ? 1 : 0) + (cfg->unix_path ? 1 : 0));
    int rc = 0;
    if (cfg->unix_path) {
        s->unix_path = strdup(cfg->unix_path);
        rc = !s->unix_path ? (snprintf(err, errlen, "out of memory"), -1)
             : listen_unix_open(&s->unix_sock, s->unix_path, cfg->unix_mode, err, errlen);
        s->unix_file = rc == 0;
        if (rc == 0) {
            rc = start_listener(s, &s->lis[s->n_lis], s->unix_sock.fd, false, err, errlen);
            if (rc == 0)
                s->n_lis++;
            /* else the descriptor is left alone: whether a failed
             * MHD_start_daemon closed it is not documented, and start-up
             * ends here */
        }
    }
    if (rc == 0 && cfg->listen_fd > 0) { /* systemd's socket instead of host:port */
        rc = start_listener(s, &s->lis[s->n_lis], cfg->listen_fd, true, err, errlen);
        if (rc == 0)
            s->n_lis++;
    } else if (rc == 0 && cfg->host) {
        rc = start_listener(s, &s->lis[s->n_lis], -1, false, err, errlen);
        if (rc == 0)
            s->n_lis++;
    }
    if (rc < 0) {
        http_stop(s);
        return -1;
    }
    s->cfg.unix_path = s->unix_path; /* the caller's string may go */
    schedule(s);
    *out = s;
    return 0;
}

/* The Unix socket's file goes when nothing listens on it any more (the
 * descriptor is MHD's: it closes it, or hands it back from quiesce). */
static void unix_remove(http_server *s)
{
    if (s->unix_file)
        listen_unix_remove(&s->unix_sock, s->unix_path);
    s->unix_file = false;
}

void http_quiesce(http_server *s, void (*on_drained)(void *), void *arg)
{
    if (!s->stopping) {
        s->stopping = true;
        http_conn_rearm(s); /* header deadlines stop with the server */
        for (int i = 0; i < s->n_lis; i++) {
            MHD_socket fd = MHD_quiesce_daemon(s->lis[i].mhd);
            if (fd != MHD_INVALID_SOCKET)
                close(fd);
        }
        unix_remove(s);
    }
    s->on_drained = on_drained;
    s->drained_arg = arg;
    if (s->inflight == 0 && on_drained) {
        s->on_drained = NULL;
        on_drained(arg);
    }
}

void http_stop(http_server *s)
{
    if (!s)
        return;
    s->on_drained = NULL;
    s->stopping = true;
    /* MHD must not be stopped with suspended connections. */
    while (s->suspended) {
        http_req *r = s->suspended;
        unwatch(r);
        MHD_resume_connection(r->conn);
    }
    uv_timer_stop(&s->timer);
    uv_timer_stop(&s->hdr_timer);
    for (int i = 0; i < s->n_lis; i++) {
        http_listener *l = &s->lis[i];
        uv_poll_stop(&l->poll);
        MHD_stop_daemon(l->mhd); /* completes (and logs) what is left */
        l->mhd = NULL;
        l->poll.data = s;
        uv_close((uv_handle_t *)&l->poll, on_handle_closed);
    }
    unix_remove(s);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->hdr_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->trim_timer, on_handle_closed);
}

int http_bound_port(const http_server *s) { return s->port; }
unsigned http_inflight(const http_server *s) { return s->inflight; }
unsigned http_connections(const http_server *s) { return s->n_conns; }
unsigned http_max_connections(const http_server *s) { return s->max_conns; }
void http_set_max_body(http_server *s, long long max_body) { s->cfg.max_body = max_body; }

void http_reconfigure(http_server *s, const struct door *d)
{
    s->cfg.door = d;
    http_conn_rearm(s);
}
