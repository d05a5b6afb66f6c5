/* test_http.c - the HTTP skeleton through a real hearthd on a free
 * loopback port: routes, errors, limits, keep-alive, signals, start-up
 * failures. */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
                           "--ping-interval", "--request-timeout", "--api-key"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        ck_assert_msg(strstr(out, flags[i]) != NULL, "--help lacks %s", flags[i]);
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
    tcase_add_test(t, startup_bad_config_value);
    tcase_add_test(t, startup_unknown_flag);
    tcase_add_test(t, startup_port_in_use);
    tcase_add_test(t, startup_missing_model);
    tcase_add_test(t, startup_help);
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
