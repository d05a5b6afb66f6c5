/* test_http.c - the HTTP skeleton through a real hearthd on a free
 * loopback port: routes, errors, limits, keep-alive, signals, start-up
 * failures. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static daemon_proc d;

static void start(const char *const *args)
{
    ck_assert_msg(tu_daemon_start(&d, args) == 0, "hearthd did not start (log %s)",
                  d.log_path);
}

static void stop_ok(void)
{
    int rc = tu_daemon_stop(&d, SIGTERM, 10000);
    ck_assert_msg(rc == 0, "hearthd exit status %d after SIGTERM", rc);
}

static json_t *parse(const http_resp *r)
{
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    ck_assert_msg(j != NULL, "body is not JSON: %s", r->body);
    return j;
}

/* The OpenAI error shape: {"error":{"message","type","param","code"}}. */
static void assert_error_object(const http_resp *r, const char *type, const char *code)
{
    char ct[128];
    ck_assert_ptr_nonnull(tu_header(r, "Content-Type", ct, sizeof ct));
    ck_assert_str_eq(ct, "application/json");
    json_t *j = parse(r);
    json_t *e = json_object_get(j, "error");
    ck_assert_msg(json_is_object(e), "no error object: %s", r->body);
    ck_assert(json_is_string(json_object_get(e, "message")));
    ck_assert(strlen(json_string_value(json_object_get(e, "message"))) > 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "type")), type);
    ck_assert(json_object_get(e, "param") != NULL);
    json_t *c = json_object_get(e, "code");
    ck_assert(c != NULL);
    if (code)
        ck_assert_str_eq(json_string_value(c), code);
    json_decref(j);
}

START_TEST(http_health)
{
    start(NULL);
    http_resp r;
    ck_assert_int_eq(tu_request(d.port, "GET", "/health", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    json_t *j = parse(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    ck_assert(json_is_number(json_object_get(j, "uptime_seconds")));
    ck_assert(json_is_false(json_object_get(json_object_get(j, "model"), "loaded")));
    json_decref(j);
    tu_resp_free(&r);
    /* one log line per request: method, path, status, bytes, duration */
    ck_assert(tu_log_contains(&d, "http: GET /health 200 ", 2000));
    stop_ok();
}
END_TEST

START_TEST(http_models_empty)
{
    start(NULL);
    http_resp r;
    ck_assert_int_eq(tu_request(d.port, "GET", "/v1/models", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    json_t *j = parse(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "list");
    ck_assert(json_is_array(json_object_get(j, "data")));
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

START_TEST(http_not_found)
{
    start(NULL);
    http_resp r;
    ck_assert_int_eq(tu_request(d.port, "GET", "/v1/nothing-here", NULL, &r), 0);
    ck_assert_int_eq(r.status, 404);
    assert_error_object(&r, "invalid_request_error", "not_found");
    ck_assert(strstr(r.body, "/v1/nothing-here") != NULL);
    tu_resp_free(&r);
    /* non-UTF-8 bytes in the path still give valid JSON */
    ck_assert_int_eq(tu_request(d.port, "GET", "/\xff\xfe", NULL, &r), 0);
    ck_assert_int_eq(r.status, 404);
    assert_error_object(&r, "invalid_request_error", "not_found");
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

START_TEST(http_method_not_allowed)
{
    start(NULL);
    http_resp r;
    ck_assert_int_eq(tu_request(d.port, "POST", "/health", "{}", &r), 0);
    ck_assert_int_eq(r.status, 405);
    assert_error_object(&r, "invalid_request_error", "method_not_allowed");
    char allow[64];
    ck_assert_ptr_nonnull(tu_header(&r, "Allow", allow, sizeof allow));
    ck_assert_str_eq(allow, "GET");
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

START_TEST(http_body_too_large)
{
    const char *args[] = {"--max-body-size", "1k", NULL};
    start(args);
    char *big = malloc(4000);
    memset(big, 'x', 3999);
    big[3999] = '\0';
    http_resp r;
    /* announced by Content-Length */
    ck_assert_int_eq(tu_request(d.port, "POST", "/v1/chat/completions", big, &r), 0);
    ck_assert_int_eq(r.status, 413);
    assert_error_object(&r, "invalid_request_error", "request_too_large");
    tu_resp_free(&r);

    /* chunked: no length up front, the limit applies as the body arrives */
    int fd = tu_connect(d.port);
    ck_assert_int_ge(fd, 0);
    const char *head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    ck_assert_int_eq(tu_send(fd, head, strlen(head)), 0);
    char chunk[700];
    for (int i = 0; i < 3; i++) {
        int n = snprintf(chunk, sizeof chunk, "200\r\n");
        memset(chunk + n, 'y', 0x200);
        memcpy(chunk + n + 0x200, "\r\n", 2);
        ck_assert_int_eq(tu_send(fd, chunk, (size_t)n + 0x200 + 2), 0);
    }
    ck_assert_int_eq(tu_send(fd, "0\r\n\r\n", 5), 0);
    ck_assert_int_eq(tu_read_response(fd, &r, 10000), 0);
    ck_assert_int_eq(r.status, 413);
    assert_error_object(&r, "invalid_request_error", "request_too_large");
    tu_resp_free(&r);
    close(fd);

    /* and a body under the limit is not refused for its size */
    ck_assert_int_eq(tu_request(d.port, "POST", "/v1/nothing", "{\"a\":1}", &r), 0);
    ck_assert_int_eq(r.status, 404);
    tu_resp_free(&r);
    free(big);
    stop_ok();
}
END_TEST

START_TEST(http_malformed_request_line)
{
    start(NULL);
    int fd = tu_connect(d.port);
    ck_assert_int_ge(fd, 0);
    const char *junk = "THIS IS NOT HTTP\r\n\r\n";
    ck_assert_int_eq(tu_send(fd, junk, strlen(junk)), 0);
    http_resp r;
    ck_assert_int_eq(tu_read_response(fd, &r, 10000), 0);
    ck_assert_int_eq(r.status, 400);
    tu_resp_free(&r);
    close(fd);
    /* the daemon keeps serving */
    ck_assert_int_eq(tu_request(d.port, "GET", "/health", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

START_TEST(http_keep_alive)
{
    start(NULL);
    int fd = tu_connect(d.port);
    ck_assert_int_ge(fd, 0);
    const char *paths[] = {"/health", "/nope", "/v1/models"};
    const int want[] = {200, 404, 200};
    for (int i = 0; i < 3; i++) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", paths[i]);
        ck_assert_int_eq(tu_send(fd, req, (size_t)n), 0);
        http_resp r;
        ck_assert_int_eq(tu_read_response(fd, &r, 10000), 0);
        ck_assert_int_eq(r.status, want[i]);
        tu_resp_free(&r);
    }
    close(fd);
    stop_ok();
}
END_TEST

/* Poll /health until requests.in_flight (the poll itself included) is n. */
static bool wait_in_flight(int n, int ms)
{
    for (int waited = 0;; waited += 20) {
        http_resp r;
        ck_assert_int_eq(tu_request(d.port, "GET", "/health", NULL, &r), 0);
        json_t *j = json_loads(r.body, 0, NULL);
        int have = (int)json_integer_value(
            json_object_get(json_object_get(j, "requests"), "in_flight"));
        json_decref(j);
        tu_resp_free(&r);
        if (have == n)
            return true;
        if (waited >= ms)
            return false;
        usleep(20000);
    }
}

/* SIGTERM while a request is still arriving: it is finished, then exit 0. */
START_TEST(http_sigterm_finishes_inflight)
{
    start(NULL);
    int fd = tu_connect(d.port);
    ck_assert_int_ge(fd, 0);
    const char *head = "POST /v1/models HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n01234";
    ck_assert_int_eq(tu_send(fd, head, strlen(head)), 0);
    ck_assert_msg(wait_in_flight(2, 5000), "the partial request never arrived");
    kill(d.pid, SIGTERM);
    ck_assert(tu_log_contains(&d, "1 request(s) in flight", 5000));
    /* still running, and no longer accepting new connections */
    ck_assert_int_lt(tu_daemon_wait(&d, 300), 0);
    int fd2 = tu_connect(d.port);
    ck_assert_int_lt(fd2, 0);
    ck_assert_int_eq(tu_send(fd, "56789", 5), 0);
    http_resp r;
    ck_assert_int_eq(tu_read_response(fd, &r, 10000), 0);
    ck_assert_int_eq(r.status, 405);
    char conn[32];
    ck_assert_ptr_nonnull(tu_header(&r, "Connection", conn, sizeof conn));
    ck_assert_str_eq(conn, "close");
    tu_resp_free(&r);
    close(fd);
    ck_assert_int_eq(tu_daemon_wait(&d, 10000), 0);
}
END_TEST

/* The deadline bounds the wait for a request that never completes. */
START_TEST(http_sigterm_deadline)
{
    const char *args[] = {"--shutdown-timeout", "1", NULL};
    start(args);
    int fd = tu_connect(d.port);
    const char *head = "POST /v1/models HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n01";
    ck_assert_int_eq(tu_send(fd, head, strlen(head)), 0);
    ck_assert_msg(wait_in_flight(2, 5000), "the partial request never arrived");
    kill(d.pid, SIGTERM);
    ck_assert_int_eq(tu_daemon_wait(&d, 10000), 0);
    ck_assert(tu_log_contains(&d, "deadline reached with 1 request(s) in flight", 1000));
    close(fd);
}
END_TEST

START_TEST(http_sigint_idle_exits_zero)
{
    start(NULL);
    int rc = tu_daemon_stop(&d, SIGINT, 10000);
    ck_assert_int_eq(rc, 0);
    ck_assert(tu_log_contains(&d, "stopped", 1000));
}
END_TEST

START_TEST(http_sighup_reload)
{
    const char *conf = tu_write_temp(0, "[server]\nmax_body_size = 100k\n[log]\nlevel = info\n");
    const char *args[] = {"--config", conf, NULL};
    start(args);
    char body[2001];
    memset(body, 'z', 2000);
    body[2000] = '\0';
    http_resp r;
    ck_assert_int_eq(tu_request(d.port, "POST", "/x", body, &r), 0);
    ck_assert_int_eq(r.status, 404);
    tu_resp_free(&r);

    /* port is also a flag (--port 0 from the harness): the flag still wins,
     * so only threads counts as a change that needs a restart */
    tu_write_temp(0, "[server]\nmax_body_size = 1k\nport = 1234\n[model]\nthreads = 3\n"
                     "[log]\nlevel = info\n");
    kill(d.pid, SIGHUP);
    ck_assert(tu_log_contains(&d, "need a restart to apply: model.threads\n", 5000));
    ck_assert(tu_log_contains(&d, "reloaded", 5000));
    /* the live key applies at once */
    ck_assert_int_eq(tu_request(d.port, "POST", "/x", body, &r), 0);
    ck_assert_int_eq(r.status, 413);
    tu_resp_free(&r);

    /* a broken file is refused and the daemon keeps its settings */
    tu_write_temp(0, "[server]\nmax_body_size = lots\n");
    kill(d.pid, SIGHUP);
    ck_assert(tu_log_contains(&d, "reload failed", 5000));
    ck_assert_int_eq(tu_request(d.port, "GET", "/health", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

static int get_with_auth(const char *path, const char *auth)
{
    int fd = tu_connect(d.port);
    ck_assert_int_ge(fd, 0);
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n%s%s%sConnection: close\r\n\r\n",
                     path, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    ck_assert_int_eq(tu_send(fd, req, (size_t)n), 0);
    http_resp r;
    ck_assert_int_eq(tu_read_response(fd, &r, 10000), 0);
    close(fd);
    if (r.status == 401)
        assert_error_object(&r, "invalid_request_error", "invalid_api_key");
    int st = r.status;
    tu_resp_free(&r);
    return st;
}

START_TEST(http_api_key_required)
{
    const char *args[] = {"--api-key", "s3cret", NULL};
    start(args);
    ck_assert_int_eq(get_with_auth("/v1/models", NULL), 401);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer wrong"), 401);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer s3cre"), 401);
    ck_assert_int_eq(get_with_auth("/v1/models", "Basic s3cret"), 401);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer s3cret"), 200);
    ck_assert_int_eq(get_with_auth("/v1/models", "bearer s3cret"), 200);
    /* health checks need no key */
    ck_assert_int_eq(get_with_auth("/health", NULL), 200);
    stop_ok();
}
END_TEST

/* ---- the door: Host check, CORS, keys, the Unix socket, deadlines and
 * limits (daemon/door.h, daemon/http.h) ---- */

/* Send a raw request on a new connection and read the answer. */
static void raw(const char *req, http_resp *r)
{
    int fd = tu_connect(d.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_send(fd, req, strlen(req)), 0);
    ck_assert_int_eq(tu_read_response(fd, r, 10000), 0);
    close(fd);
}

/* A connection that sent `text` (part of a request, say) and waits. */
static int send_partial(const char *text)
{
    int fd = tu_connect(d.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_send(fd, text, strlen(text)), 0);
    return fd;
}

static int get_host(const char *host)
{
    char req[512];
    snprintf(req, sizeof req, "GET /v1/models HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
             host);
    http_resp r;
    raw(req, &r);
    if (r.status == 403)
        assert_error_object(&r, "permission_error", "host_not_allowed");
    int st = r.status;
    tu_resp_free(&r);
    return st;
}

static long long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the server closes fd (reading and dropping whatever it
 * sends); the milliseconds it took, or -1 when it is still open after
 * timeout_ms. */
static long long wait_closed(int fd, int timeout_ms)
{
    long long t0 = ms_now();
    for (;;) {
        long long left = t0 + timeout_ms - ms_now();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return ms_now() - t0;
    }
}

START_TEST(door_host_check_on_loopback)
{
    start(NULL);
    char host[64];
    snprintf(host, sizeof host, "localhost:%d", d.port);
    ck_assert_int_eq(get_host(host), 200);
    snprintf(host, sizeof host, "127.0.0.1:%d", d.port);
    ck_assert_int_eq(get_host(host), 200);
    snprintf(host, sizeof host, "[::1]:%d", d.port);
    ck_assert_int_eq(get_host(host), 200);
    ck_assert_int_eq(get_host("app.localhost"), 200);
    /* DNS rebinding: a name that resolved to 127.0.0.1 for a browser */
    ck_assert_int_eq(get_host("evil.example.com"), 403);
    snprintf(host, sizeof host, "evil.example.com:%d", d.port);
    ck_assert_int_eq(get_host(host), 403);
    ck_assert_int_eq(get_host("localhost.evil.example.com"), 403);
    ck_assert_int_eq(get_host("127.0.0.1.nip.io"), 403);
    /* every path, /health included */
    http_resp r;
    raw("GET /health HTTP/1.1\r\nHost: evil.example.com\r\nConnection: close\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 403);
    ck_assert(strstr(r.body, "evil.example.com") != NULL);
    tu_resp_free(&r);
    /* a body is refused before it is read */
    raw("POST /v1/chat/completions HTTP/1.1\r\nHost: evil.example.com\r\n"
        "Content-Length: 2\r\n\r\n{}", &r);
    ck_assert_int_eq(r.status, 403);
    tu_resp_free(&r);
    /* HTTP/1.0 without Host: not a browser */
    raw("GET /health HTTP/1.0\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

START_TEST(door_allowed_hosts)
{
    const char *args[] = {"--allowed-hosts", "mybox.lan, hearth.internal", NULL};
    start(args);
    ck_assert_int_eq(get_host("mybox.lan"), 200);
    ck_assert_int_eq(get_host("HEARTH.internal:8080"), 200);
    ck_assert_int_eq(get_host("other.lan"), 403);
    stop_ok();
}
END_TEST

/* Not on loopback (a key is then required): no Host check. */
START_TEST(door_no_host_check_in_the_open)
{
    const char *args[] = {"--host", "0.0.0.0", "--api-key", "k", NULL};
    start(args);
    http_resp r;
    raw("GET /v1/models HTTP/1.1\r\nHost: hearth.example.com\r\nAuthorization: Bearer k\r\n"
        "Connection: close\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

START_TEST(startup_open_address_without_key)
{
    const char *hosts[] = {"0.0.0.0", "::"};
    for (int i = 0; i < 2; i++) {
        const char *args[] = {"--host", hosts[i], "--port", "0", NULL};
        char err[4096];
        ck_assert_int_eq(tu_run_hearthd(args, err, sizeof err), 2);
        char want[128];
        snprintf(want, sizeof want, "hearthd: refusing to listen on %s without an API key",
                 hosts[i]);
        ck_assert_msg(strstr(err, want) != NULL, "stderr: %s", err);
        /* one line */
        ck_assert_msg(strchr(err, '\n') == err + strlen(err) - 1, "stderr: %s", err);
    }
}
END_TEST

/* A request with an Origin: the CORS headers it gets. */
static void get_origin(const char *method, const char *origin, const char *extra,
                       http_resp *r)
{
    char req[1024];
    snprintf(req, sizeof req, "%s /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
             "Origin: %s\r\n%sConnection: close\r\n\r\n", method, origin, extra);
    raw(req, r);
}

START_TEST(door_cors)
{
    const char *args[] = {"--cors-origins", "http://app.example, https://ui.example:8443",
                          "--api-key", "k", NULL};
    start(args);
    const char *pre = "Access-Control-Request-Method: POST\r\n"
                      "Access-Control-Request-Headers: authorization, content-type\r\n";
    http_resp r;
    char v[256];
    /* preflight of an allowed origin: 204, no key needed */
    get_origin("OPTIONS", "https://ui.example:8443", pre, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert_ptr_nonnull(tu_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    ck_assert_str_eq(v, "https://ui.example:8443");
    ck_assert_ptr_nonnull(tu_header(&r, "Access-Control-Allow-Methods", v, sizeof v));
    ck_assert(strstr(v, "POST") && strstr(v, "GET"));
    ck_assert_ptr_nonnull(tu_header(&r, "Access-Control-Allow-Headers", v, sizeof v));
    const char *need[] = {"Authorization", "Content-Type", "x-api-key", "anthropic-version",
                          "X-Hearth-Route"};
    for (int i = 0; i < 5; i++)
        ck_assert_msg(strcasestr(v, need[i]) != NULL, "Allow-Headers lacks %s: %s", need[i], v);
    ck_assert_ptr_nonnull(tu_header(&r, "Access-Control-Max-Age", v, sizeof v));
    ck_assert_int_gt(atoi(v), 0);
    ck_assert_ptr_nonnull(tu_header(&r, "Vary", v, sizeof v));
    ck_assert_str_eq(v, "Origin");
    tu_resp_free(&r);
    /* preflight of another origin: 403, no CORS headers */
    get_origin("OPTIONS", "http://evil.example", pre, &r);
    ck_assert_int_eq(r.status, 403);
    assert_error_object(&r, "permission_error", "cors_origin_not_allowed");
    ck_assert_ptr_null(tu_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    ck_assert_ptr_null(tu_header(&r, "Access-Control-Allow-Methods", v, sizeof v));
    tu_resp_free(&r);
    /* the request itself: the origin echoed and the route headers exposed,
     * on errors too (401 here, without the key) */
    get_origin("POST", "http://app.example", "Content-Length: 0\r\n", &r);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(tu_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    ck_assert_str_eq(v, "http://app.example");
    ck_assert_ptr_nonnull(tu_header(&r, "Access-Control-Expose-Headers", v, sizeof v));
    ck_assert(strstr(v, "X-Hearth-Route") && strstr(v, "X-Hearth-Route-Reason"));
    tu_resp_free(&r);
    get_origin("GET", "http://evil.example", "Authorization: Bearer k\r\n", &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_ptr_null(tu_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    ck_assert_ptr_nonnull(tu_header(&r, "Vary", v, sizeof v));
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

START_TEST(door_no_cors_by_default)
{
    start(NULL);
    http_resp r;
    char v[256];
    get_origin("OPTIONS", "http://app.example", "Access-Control-Request-Method: POST\r\n", &r);
    ck_assert_int_eq(r.status, 403);
    ck_assert_ptr_null(tu_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    tu_resp_free(&r);
    raw("GET /v1/models HTTP/1.1\r\nHost: localhost\r\nOrigin: http://app.example\r\n"
        "Connection: close\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(tu_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    ck_assert_ptr_null(tu_header(&r, "Vary", v, sizeof v));
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

/* Several keys, from the flag and a key file; SIGHUP re-reads the file. */
START_TEST(door_api_keys_list_and_file)
{
    const char *kf = tu_write_temp(1, "# hearth keys\nfile-one\n");
    chmod(kf, 0600);
    const char *conf = tu_write_temp(0, "[server]\n");
    const char *args[] = {"--config", conf, "--api-key", "k1, k2", "--api-key-file", kf, NULL};
    start(args);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer k1"), 200);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer k2"), 200);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer file-one"), 200);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer k1, k2"), 401);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer file-two"), 401);
    /* rotate: the file's new key in, the old one out */
    tu_write_temp(1, "file-two\n");
    kill(d.pid, SIGHUP);
    ck_assert(tu_log_contains(&d, "reloaded", 5000));
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer file-two"), 200);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer file-one"), 401);
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer k2"), 200);
    /* a key file that became unreadable keeps the keys in force */
    unlink(kf);
    kill(d.pid, SIGHUP);
    ck_assert(tu_log_contains(&d, "keeping the running keys", 5000));
    ck_assert_int_eq(get_with_auth("/v1/models", "Bearer file-two"), 200);
    ck_assert_int_eq(get_with_auth("/v1/models", NULL), 401);
    stop_ok();
}
END_TEST

START_TEST(startup_bad_key_file)
{
    const char *args[] = {"--port", "0", "--api-key-file", "/nonexistent/keys", NULL};
    char err[4096];
    ck_assert_int_eq(tu_run_hearthd(args, err, sizeof err), 2);
    ck_assert_msg(strstr(err, "api_key_file: cannot read /nonexistent/keys") != NULL,
                  "stderr: %s", err);
}
END_TEST

static int unix_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static int unix_get(const char *path, const char *host, http_resp *r)
{
    int fd = unix_connect(path);
    if (fd < 0)
        return -1;
    char req[256];
    snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
             host);
    int rc = tu_send(fd, req, strlen(req)) == 0 ? tu_read_response(fd, r, 10000) : -1;
    close(fd);
    return rc;
}

START_TEST(door_unix_socket)
{
    char dir[64], sock[100];
    ck_assert_ptr_nonnull(tu_temp_dir("sock", dir, sizeof dir));
    snprintf(sock, sizeof sock, "%s/hearth.sock", dir);
    /* a socket left by a dead server is replaced */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
    ck_assert_int_eq(bind(stale, (struct sockaddr *)&a, sizeof a), 0);
    close(stale);
    const char *args[] = {"--socket", sock, "--socket-mode", "0660", NULL};
    start(args);
    ck_assert(tu_log_contains(&d, "removed the stale socket", 1000));
    char want[300];
    snprintf(want, sizeof want, " and unix:%s (", sock);
    ck_assert(tu_log_contains(&d, want, 1000));
    struct stat st;
    ck_assert_int_eq(stat(sock, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0660);
    /* served, and no Host check there (no browser reaches a Unix socket) */
    http_resp r;
    ck_assert_int_eq(unix_get(sock, "evil.example.com", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_resp_free(&r);
    /* TCP still serves, with its Host check */
    ck_assert_int_eq(get_host("evil.example.com"), 403);
    /* a second server on the same path is refused, the first keeps it */
    const char *again[] = {"--port", "0", "--socket", sock, NULL};
    char err[4096];
    ck_assert_int_eq(tu_run_hearthd(again, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "another process is listening on it") != NULL, "stderr: %s", err);
    ck_assert_int_eq(unix_get(sock, "localhost", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_resp_free(&r);
    stop_ok();
    /* removed at exit */
    ck_assert_int_lt(lstat(sock, &st), 0);
    /* a path that is not a socket is never replaced */
    ck_assert_int_eq(tu_write_file(sock, "precious\n"), 0);
    ck_assert_int_eq(tu_run_hearthd(again, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "exists and is not a socket") != NULL, "stderr: %s", err);
    ck_assert_int_eq(stat(sock, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    tu_rm_tree(dir);
}
END_TEST

/* tcp = no: the Unix socket only, and it needs no key. */
START_TEST(door_unix_socket_only)
{
    char dir[64], sock[100];
    ck_assert_ptr_nonnull(tu_temp_dir("sock", dir, sizeof dir));
    snprintf(sock, sizeof sock, "%s/h.sock", dir);
    const char *args[] = {"--tcp", "no", "--host", "0.0.0.0", "--socket", sock, NULL};
    char err[4096];
    /* the harness waits for a TCP port: start by hand, wait for the socket */
    daemon_proc p = {0};
    snprintf(p.log_path, sizeof p.log_path, "/tmp/hearth-unixonly-%d.log", (int)getpid());
    p.pid = fork();
    if (p.pid == 0) {
        FILE *f = freopen(p.log_path, "w", stderr);
        (void)f;
        execl(tu_hearthd(), "hearthd", args[0], args[1], args[2], args[3], args[4], args[5],
              (char *)NULL);
        _exit(127);
    }
    ck_assert(tu_log_contains(&p, "listening on unix:", 10000));
    http_resp r;
    ck_assert_int_eq(unix_get(sock, "localhost", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_resp_free(&r);
    ck_assert_int_eq(tu_daemon_stop(&p, SIGTERM, 10000), 0);
    unlink(p.log_path);
    tu_rm_tree(dir);
    /* and with neither, nothing to listen on */
    const char *none[] = {"--tcp", "no", NULL};
    ck_assert_int_eq(tu_run_hearthd(none, err, sizeof err), 2);
    ck_assert_msg(strstr(err, "nothing to listen on") != NULL, "stderr: %s", err);
}
END_TEST

/* header_timeout bounds the time to send the headers, however slowly the
 * bytes come; idle keep-alive connections wait for their next request as
 * long. */
START_TEST(door_header_timeout)
{
    const char *args[] = {"--header-timeout", "1", NULL};
    start(args);
    const char *part = "GET /health HTTP/1.1\r\nHost: local";
    int idle = send_partial(part);
    long long t = wait_closed(idle, 10000);
    ck_assert_msg(t >= 900, "closed after %lld ms (-1: not within 10 s), deadline 1 s", t);
    close(idle);
    ck_assert(tu_log_contains(&d, "sent no complete request headers within 1 s", 2000));

    /* a byte every 200 ms keeps MHD's idle timer happy, not the deadline */
    int drip = tu_connect(d.port);
    long long t0 = ms_now(), closed = -1;
    for (size_t i = 0; closed < 0 && ms_now() - t0 < 10000; i++) {
        if (send(drip, &part[i % strlen(part)], 1, MSG_NOSIGNAL) != 1)
            closed = ms_now() - t0;
        else if (wait_closed(drip, 200) >= 0)
            closed = ms_now() - t0;
    }
    close(drip);
    ck_assert_msg(closed >= 900 && closed < 5000, "drip closed after %lld ms", closed);

    /* kept alive after an answer: the next request's headers within 1 s */
    int ka = send_partial("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    http_resp r;
    ck_assert_int_eq(tu_read_response(ka, &r, 10000), 0);
    ck_assert_int_eq(r.status, 200);
    tu_resp_free(&r);
    t = wait_closed(ka, 10000);
    ck_assert_msg(t >= 0, "the idle kept-alive connection stayed open");
    close(ka);
    stop_ok();
}
END_TEST

/* idle_timeout: a body that stops arriving. */
START_TEST(door_idle_timeout)
{
    const char *args[] = {"--idle-timeout", "1", "--header-timeout", "0", NULL};
    start(args);
    int fd = send_partial("POST /v1/models HTTP/1.1\r\nHost: localhost\r\n"
                          "Content-Length: 10\r\n\r\n01");
    long long t = wait_closed(fd, 10000);
    ck_assert_msg(t >= 900, "closed after %lld ms (-1: not within 10 s), timeout 1 s", t);
    close(fd);
    ck_assert(tu_log_contains(&d, "(connection ended early: timeout)", 2000));
    stop_ok();
}
END_TEST

static int health_connections(void)
{
    http_resp r;
    ck_assert_int_eq(tu_request(d.port, "GET", "/health", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    json_t *j = parse(&r);
    json_t *c = json_object_get(j, "connections");
    ck_assert(json_is_integer(json_object_get(c, "max")));
    int open = (int)json_integer_value(json_object_get(c, "open"));
    json_decref(j);
    tu_resp_free(&r);
    return open;
}

START_TEST(door_connection_limit)
{
    const char *args[] = {"--max-connections", "4", NULL};
    start(args);
    int fds[3];
    const char *part = "GET /health HTTP/1.1\r\nHost: local";
    for (int i = 0; i < 3; i++)
        fds[i] = send_partial(part);
    /* the three idle ones and this request make four: still answered */
    long long t0 = ms_now();
    while (health_connections() != 4)
        ck_assert_msg(ms_now() - t0 < 5000, "the idle connections were not accepted");
    int fourth = send_partial(part);
    /* the fifth: a clear refusal, and the connection closed */
    http_resp r;
    ck_assert_int_eq(tu_request(d.port, "GET", "/health", NULL, &r), 0);
    ck_assert_int_eq(r.status, 503);
    assert_error_object(&r, "service_unavailable", "too_many_connections");
    ck_assert(strstr(r.body, "max_connections") != NULL);
    char v[64];
    ck_assert_ptr_nonnull(tu_header(&r, "Retry-After", v, sizeof v));
    ck_assert_ptr_nonnull(tu_header(&r, "Connection", v, sizeof v));
    ck_assert_str_eq(v, "close");
    tu_resp_free(&r);
    /* room again once one goes */
    close(fourth);
    t0 = ms_now();
    for (;;) {
        ck_assert_int_eq(tu_request(d.port, "GET", "/health", NULL, &r), 0);
        int st = r.status;
        tu_resp_free(&r);
        if (st == 200)
            break;
        ck_assert_msg(ms_now() - t0 < 5000, "still refused after a connection closed");
        usleep(20000);
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    stop_ok();
}
END_TEST

START_TEST(door_header_size_limit)
{
    const char *args[] = {"--max-header-size", "4k", NULL};
    start(args);
    char *req = malloc(40000);
    for (int i = 0; i < 2; i++) {
        size_t n = i == 0 ? 3000 : 20000;
        int k = sprintf(req, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ");
        memset(req + k, 'a', n);
        strcpy(req + k + n, "\r\nConnection: close\r\n\r\n");
        http_resp r;
        raw(req, &r);
        ck_assert_int_eq(r.status, i == 0 ? 200 : 431);
        tu_resp_free(&r);
    }
    free(req);
    stop_ok();
}
END_TEST

static void post_messages(const char *path, int n, http_resp *r)
{
    char *body = malloc((size_t)n * 48 + 64);
    int k = sprintf(body, "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[");
    for (int i = 0; i < n; i++)
        k += sprintf(body + k, "%s{\"role\":\"user\",\"content\":\"hello %d\"}", i ? "," : "", i);
    strcpy(body + k, "]}");
    ck_assert_int_eq(tu_request(d.port, "POST", path, body, r), 0);
    free(body);
}

START_TEST(door_max_messages)
{
    const char *args[] = {"--max-messages", "3", NULL};
    start(args);
    http_resp r;
    post_messages("/v1/chat/completions", 4, &r);
    ck_assert_int_eq(r.status, 400);
    assert_error_object(&r, "invalid_request_error", "too_many_messages");
    json_t *j = parse(&r);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "param")),
                     "messages");
    json_decref(j);
    ck_assert(strstr(r.body, "max_messages") != NULL);
    tu_resp_free(&r);
    /* the Anthropic endpoint answers in its own error shape */
    post_messages("/v1/messages", 4, &r);
    ck_assert_int_eq(r.status, 400);
    j = parse(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                     "invalid_request_error");
    json_decref(j);
    tu_resp_free(&r);
    /* at the limit the request goes on (no model here: 503) */
    post_messages("/v1/chat/completions", 3, &r);
    ck_assert_int_eq(r.status, 503);
    tu_resp_free(&r);
    stop_ok();
}
END_TEST

/* ---- start-up failures: a one-line message and a non-zero status ---- */

START_TEST(startup_bad_config_value)
{
    const char *conf = tu_write_temp(1, "[server]\nport = 99999\n");
    const char *args[] = {"--config", conf, NULL};
    char err[4096];
    ck_assert_int_eq(tu_run_hearthd(args, err, sizeof err), 2);
    char want[400];
    snprintf(want, sizeof want, "hearthd: %s:2: port: '99999'", conf);
    ck_assert_msg(strstr(err, want) != NULL, "stderr: %s", err);
}
END_TEST

START_TEST(startup_unknown_flag)
{
    const char *args[] = {"--no-such-flag", NULL};
    char err[4096];
    ck_assert_int_eq(tu_run_hearthd(args, err, sizeof err), 2);
    ck_assert_msg(strstr(err, "unknown option '--no-such-flag'") != NULL, "stderr: %s", err);
}
END_TEST

START_TEST(startup_port_in_use)
{
    start(NULL);
    char port[16];
    snprintf(port, sizeof port, "%d", d.port);
    const char *args[] = {"--host", "127.0.0.1", "--port", port, NULL};
    char err[4096];
    ck_assert_int_eq(tu_run_hearthd(args, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "address already in use") != NULL, "stderr: %s", err);
    stop_ok();
}
END_TEST

START_TEST(startup_missing_model)
{
    const char *args[] = {"--port", "0", "--model", "/nonexistent/m.gguf", NULL};
    char err[4096];
    ck_assert_int_eq(tu_run_hearthd(args, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "/nonexistent/m.gguf") != NULL, "stderr: %s", err);
}
END_TEST

START_TEST(startup_help)
{
    const char *args[] = {"--help", NULL};
    char out[8192];
    ck_assert_int_eq(tu_run_hearthd(args, out, sizeof out), 0);
    /* every flag is listed */
    const char *flags[] = {"--config", "--host", "--port", "--model", "--threads",
                           "--log-level", "--max-body-size", "--shutdown-timeout",
                           "--context", "--parallel", "--chat-template", "--max-queue",
                           "--ping-interval", "--request-timeout", "--api-key",
                           "--api-key-file", "--allowed-hosts", "--cors-origins", "--socket",
                           "--socket-mode", "--tcp", "--max-connections", "--header-timeout",
                           "--idle-timeout", "--max-header-size", "--max-messages"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        ck_assert_msg(strstr(out, flags[i]) != NULL, "--help lacks %s", flags[i]);
    /* every flag's description starts in the same column, the longest
     * flag's included: a flag line is "  -x, --flag VALUE  text" */
    int col = -1, lines = 0;
    for (char *l = out; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        if (strncmp(l, "  -", 3) != 0 && strncmp(l, "      --", 8) != 0)
            continue;
        const char *flag = strstr(l, "--");
        const char *end = flag + strcspn(flag, " \n");
        if (strncmp(end, " VALUE", 6) == 0 || strncmp(end, " FILE", 5) == 0)
            end = strchr(end + 1, ' ') ? strchr(end + 1, ' ') : end;
        int c = (int)(end - l) + (int)strspn(end, " ");
        ck_assert_msg(strspn(end, " ") >= 2, "no two spaces after the flag: %.60s", l);
        if (col < 0)
            col = c;
        ck_assert_msg(c == col, "description at column %d, not %d: %.80s", c, col, l);
        lines++;
    }
    ck_assert_int_ge(lines, (int)(sizeof flags / sizeof flags[0]));
}
END_TEST

/* conf/hearth.conf lists every key --help names, in its section, and
 * hearthd starts with it as it is. */
START_TEST(startup_shipped_config)
{
    const char *srcdir = getenv("srcdir");
    char conf_path[1024];
    snprintf(conf_path, sizeof conf_path, "%s/conf/hearth.conf", srcdir ? srcdir : "..");
    FILE *f = fopen(conf_path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", conf_path);
    static char conf[65536];
    size_t n = fread(conf, 1, sizeof conf - 1, f);
    conf[n] = '\0';
    fclose(f);
    const char *help[] = {"--help", NULL};
    static char out[16384];
    ck_assert_int_eq(tu_run_hearthd(help, out, sizeof out), 0);
    int keys = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char *open = strrchr(line, '[');
        char section[64], name[64];
        if (!open || sscanf(open, "[%63[a-z_.]] %63[a-z_]", section, name) != 2)
            continue;
        /* the key, set or commented out, after its [section] header */
        char head[80], set[80], off[80];
        snprintf(head, sizeof head, "\n[%s]\n", section);
        snprintf(set, sizeof set, "\n%s =", name);
        snprintf(off, sizeof off, "\n# %s =", name);
        const char *sec = strstr(conf, head);
        ck_assert_msg(sec != NULL, "%s has no [%s]", conf_path, section);
        const char *next = strstr(sec + 1, "\n[");
        const char *at = strstr(sec, set);
        if (!at || (next && at > next))
            at = strstr(sec, off);
        ck_assert_msg(at && (!next || at < next), "%s lacks [%s] %s", conf_path, section, name);
        keys++;
    }
    ck_assert_int_gt(keys, 30);
    const char *args[] = {"--config", conf_path, NULL};
    start(args);
    stop_ok();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http");
    TCase *t = tcase_create("http");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, http_health);
    tcase_add_test(t, http_models_empty);
    tcase_add_test(t, http_not_found);
    tcase_add_test(t, http_method_not_allowed);
    tcase_add_test(t, http_body_too_large);
    tcase_add_test(t, http_malformed_request_line);
    tcase_add_test(t, http_keep_alive);
    tcase_add_test(t, http_sigterm_finishes_inflight);
    tcase_add_test(t, http_sigterm_deadline);
    tcase_add_test(t, http_sigint_idle_exits_zero);
    tcase_add_test(t, http_sighup_reload);
    tcase_add_test(t, http_api_key_required);
    tcase_add_test(t, door_host_check_on_loopback);
    tcase_add_test(t, door_allowed_hosts);
    tcase_add_test(t, door_no_host_check_in_the_open);
    tcase_add_test(t, startup_open_address_without_key);
    tcase_add_test(t, door_cors);
    tcase_add_test(t, door_no_cors_by_default);
    tcase_add_test(t, door_api_keys_list_and_file);
    tcase_add_test(t, startup_bad_key_file);
    tcase_add_test(t, door_unix_socket);
    tcase_add_test(t, door_unix_socket_only);
    tcase_add_test(t, door_header_timeout);
    tcase_add_test(t, door_idle_timeout);
    tcase_add_test(t, door_connection_limit);
    tcase_add_test(t, door_header_size_limit);
    tcase_add_test(t, door_max_messages);
    tcase_add_test(t, startup_bad_config_value);
    tcase_add_test(t, startup_unknown_flag);
    tcase_add_test(t, startup_port_in_use);
    tcase_add_test(t, startup_missing_model);
    tcase_add_test(t, startup_help);
    tcase_add_test(t, startup_shipped_config);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
