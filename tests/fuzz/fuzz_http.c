/* fuzz_http.c - libFuzzer target: HTTP requests through the daemon's real
 * connection handling (daemon/http.c, http_conn.c and the door's rules of
 * daemon/door.c: Host check, API key, CORS) over a real loopback socket.
 *
 * The server is started once, on 127.0.0.1 port 0 with a small route
 * table: GET /health (open), POST /v1/echo (keyed: answers the body it
 * got), POST /v1/slow (keyed: suspends, is resumed from a timer and
 * answers the body then) and GET /v1/stream (keyed: a chunked answer from
 * a content reader). Everything runs on one thread: the harness polls the
 * loop's backend descriptor and its own socket together and runs the loop
 * without blocking in between, so there is no thread and no sleep.
 *
 * Per input: connect, write the request, half-close (mode bit), read the
 * answer until the server closes or waits for more, with a deadline of
 * 5 s (a hang aborts), close.
 *
 * Input layout (so that the fuzzer reaches the body handling at once):
 *   byte 0 mode: bit 0 body chunked (else Content-Length when non-empty),
 *     bit 1 add "Host: localhost", bit 2 add the API key, bit 3 add
 *     "Origin: http://ok.example", bit 4 raw (the rest is sent as it is,
 *     nothing added), bit 5 keep the write side open, bit 6 send in two
 *     writes with loop passes between them, bit 7 a second request
 *     pipelined after the first. Unless raw, the last request asks for
 *     "Connection: close": a kept-alive connection whose client half-closed
 *     after its request stays open after the answer until header_timeout
 *     closes it (MHD 0.9.75 does not act on the end of stream there), 1 s
 *     here, which would slow the fuzzer down without finding anything.
 *   byte 1: chunk sizes (1 + byte % 61, then varied) for a chunked body.
 *   the rest: header text up to the first empty line ("\n\n"), the body
 *     after it. The header text's first line is the request line; each
 *     line is sent with CRLF.
 *
 * Invariants, besides sanitizer reports and leaks: every answer starts
 * with "HTTP/1.x NNN " (or nothing at all: the connection was closed); a
 * keyed route never runs without the key and a loopback Host; a framed
 * body that reached a handler is the body sent (when the fuzzer's headers
 * did not frame it themselves); a request the harness framed whole is
 * answered; the server answers or closes within the deadline, or is seen
 * waiting for more bytes (see exchange()); once the client is gone no
 * request stays in flight and no connection open. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/door.h"
#include "daemon/hconfig.h"
#include "daemon/http.h"
#include "daemon/log.h"

#define KEY "fuzz-key-0123"
#define DEADLINE_MS 5000
#define MAX_BODY (64 * 1024)

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_http: invariant broken: %s\n", what);
        abort();
    }
}

static uv_loop_t loop;
static http_server *srv;
static door *the_door;
static int port;
static int header_timeout = 1;

/* What the handlers saw, for the client side's checks. */
static struct {
    int calls;
    char *body;
    size_t len;
} seen;

static void seen_body(const http_req *r)
{
    seen.calls++;
    free(seen.body);
    seen.body = malloc(r->body_len + 1);
    check(seen.body != NULL, "out of memory");
    memcpy(seen.body, r->body, r->body_len);
    seen.len = r->body_len;
}

static const char *hdr(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* A keyed route runs only for a request that passed the door. */
static void assert_admitted(const http_req *r)
{
    const char *a = hdr(r, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *x = hdr(r, "x-api-key");
    int keyed = (a && strncasecmp(a, "Bearer ", 7) == 0 && strcmp(a + 7, KEY) == 0) ||
                (x && strcmp(x, KEY) == 0);
    check(keyed, "a keyed route ran without the key");
    check(door_host_allowed(the_door, hdr(r, MHD_HTTP_HEADER_HOST)),
          "a route ran for a Host that is not loopback");
}

static int on_health(http_req *r, void *user)
{
    (void)user;
    return http_respond_json(r, 200, "{\"status\":\"ok\"}");
}

static int on_echo(http_req *r, void *user)
{
    (void)user;
    assert_admitted(r);
    seen_body(r);
    return http_respond(r, 200, "application/octet-stream", r->body, r->body_len);
}

/* /v1/slow: suspended until a timer resumes it (or the client leaves). */
typedef struct slow {
    uv_timer_t t;
    http_req *r; /* NULL once the request is gone */
} slow;

static void slow_closed(uv_handle_t *h) { free(h->data); }

static void slow_free(void *p)
{
    slow *s = p;
    s->r = NULL;
    uv_timer_stop(&s->t);
    uv_close((uv_handle_t *)&s->t, slow_closed);
}

static void slow_fire(uv_timer_t *t)
{
    slow *s = t->data;
    if (s->r) {
        http_resume(s->r);
        http_kick(s->r->srv);
    }
}

static void slow_gone(http_req *r)
{
    http_resume(r); /* on_resume then closes the connection */
}

static int slow_resume(http_req *r, void *user)
{
    (void)user;
    if (r->client_gone)
        return -1;
    return http_respond(r, 200, "application/octet-stream", r->body, r->body_len);
}

static int on_slow(http_req *r, void *user)
{
    (void)user;
    assert_admitted(r);
    seen_body(r);
    slow *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->r = r;
    uv_timer_init(&loop, &s->t);
    s->t.data = s;
    r->app = s;
    r->app_free = slow_free;
    r->on_resume = slow_resume;
    r->on_disconnect = slow_gone;
    http_suspend(r);
    uv_timer_start(&s->t, slow_fire, 0, 0);
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos >= 3000)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = max < 700 ? max : 700;
    memset(buf, 'a' + (int)(pos % 26), n);
    return (ssize_t)n;
}

static int on_stream(http_req *r, void *user)
{
    (void)user;
    assert_admitted(r);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, stream_read, NULL, NULL);
    if (!resp)
        return -1;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    return http_respond_custom(r, 200, resp);
}

static const http_route routes[] = {
    {"GET", "/health", on_health, true},
    {"POST", "/v1/echo", on_echo, false},
    {"POST", "/v1/slow", on_slow, false},
    {"GET", "/v1/stream", on_stream, false},
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    check(uv_loop_init(&loop) == 0, "uv_loop_init");
    /* the door's configuration, as hconfig would build it from
     * api_key, allowed_hosts and cors_origins */
    hearth_config c;
    memset(&c, 0, sizeof c);
    c.api_key = KEY;
    c.allowed_hosts = "fuzz.lan";
    c.cors_origins = "http://ok.example";
    char err[256];
    check(door_new(&the_door, &c, err, sizeof err) == 0, err);
    http_config hc = {
        .host = "127.0.0.1",
        .port = 0,
        .max_body = MAX_BODY,
        .max_connections = 4,
        .header_timeout = &header_timeout,
        .idle_timeout = 3,
        .max_header = 4096,
        .door = the_door,
        .routes = routes,
        .n_routes = sizeof routes / sizeof routes[0],
    };
    check(http_start(&srv, &loop, &hc, err, sizeof err) == 0, err);
    port = http_bound_port(srv);
    check(port > 0, "no port");
    return 0;
}

static uint64_t clock_ms(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

/* A hang is DEADLINE_MS of this process's CPU time (the loop busy without
 * an end) or twelve times that on the clock: on a loaded machine a niced
 * fuzzer may get little of the clock's time, and a wall-clock deadline
 * alone then reports hangs that are not. */
typedef struct deadline {
    uint64_t cpu, wall;
} deadline;

static deadline deadline_in(uint64_t ms)
{
    return (deadline){clock_ms(CLOCK_PROCESS_CPUTIME_ID) + ms, now_ms() + 12 * ms};
}

static int deadline_passed(const deadline *d)
{
    return clock_ms(CLOCK_PROCESS_CPUTIME_ID) >= d->cpu || now_ms() >= d->wall;
}

/* ------------------------------------------------------------ the request */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        check(b->p != NULL, "out of memory");
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* Does the fuzzer's header text name h (case-insensitive)? */
static int names(const char *text, size_t len, const char *h)
{
    size_t hl = strlen(h);
    for (size_t i = 0; i + hl <= len; i++)
        if (strncasecmp(text + i, h, hl) == 0)
            return 1;
    return 0;
}

/* One request from the structured input: header lines with CRLF, the
 * harness's headers, the framed body. */
static void build(buf *out, unsigned mode, unsigned sizes, const char *head, size_t hlen,
                  const char *body, size_t blen)
{
    size_t i = 0;
    while (i <= hlen) {
        size_t e = i;
        while (e < hlen && head[e] != '\n')
            e++;
        if (e > i || i == 0) {
            put(out, head + i, e - i);
            puts_(out, "\r\n");
        }
        if (i == 0) { /* after the request line */
            if (mode & 2)
                puts_(out, "Host: localhost\r\n");
            if (mode & 4)
                puts_(out, "Authorization: Bearer " KEY "\r\n");
            if (mode & 8)
                puts_(out, "Origin: http://ok.example\r\n");
            if (!(mode & 128))
                puts_(out, "Connection: close\r\n");
        }
        i = e + 1;
    }
    char line[64];
    if (mode & 1) {
        puts_(out, "Transfer-Encoding: chunked\r\n\r\n");
        size_t off = 0, step = 1 + sizes % 61;
        while (off < blen) {
            size_t n = blen - off < step ? blen - off : step;
            snprintf(line, sizeof line, "%zx\r\n", n);
            puts_(out, line);
            put(out, body + off, n);
            puts_(out, "\r\n");
            off += n;
            step = 1 + (step * 7 + 3) % 97;
        }
        puts_(out, "0\r\n\r\n");
    } else {
        if (blen) {
            snprintf(line, sizeof line, "Content-Length: %zu\r\n", blen);
            puts_(out, line);
        }
        puts_(out, "\r\n");
        put(out, body, blen);
    }
}

/* ------------------------------------------------------------ the client */

/* Run the loop and the client together: write `out` (in two parts with a
 * loop pass between them when split), half-close unless told not to, and
 * read until the server closes or waits for bytes that will not come.
 * Returns 1 in the latter case: everything was sent, and for QUIET_MS
 * neither the server's loop nor the client's socket had anything to do
 * while no timer of the loop was due. (Loopback delivers what was sent at
 * once, and the loop runs on this thread, so nothing can be in flight
 * then: the server is waiting.) MHD does not notice a client's half-close
 * while it waits for the rest of a request, so without this every
 * incomplete request would last until header_timeout. */
#define QUIET_MS 10

static int exchange(const buf *out, size_t split, int half_close, buf *in)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    check(fd >= 0, "socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    check(rc == 0 || errno == EINPROGRESS, "connect");
    size_t sent = 0;
    int shut = 0, closed = 0, passes = 0, waiting = 0;
    deadline dl = deadline_in(DEADLINE_MS);
    while (!closed && !waiting) {
        check(!deadline_passed(&dl), "the server neither answered nor closed within 5 s");
        size_t limit = sent < split && passes < 2 ? split : out->len;
        struct pollfd p[2] = {
            {.fd = uv_backend_fd(&loop), .events = POLLIN},
            {.fd = fd, .events = POLLIN | (sent < limit ? POLLOUT : 0)},
        };
        int t = uv_backend_timeout(&loop);
        if (t < 0 || t > DEADLINE_MS)
            t = DEADLINE_MS;
        int quiet_cap = sent == out->len && t >= QUIET_MS;
        if (quiet_cap)
            t = QUIET_MS;
        int ready = poll(p, 2, t);
        uv_run(&loop, UV_RUN_NOWAIT);
        passes++;
        if (ready == 0 && quiet_cap)
            waiting = 1;
        if (sent < limit && (p[1].revents & POLLOUT)) {
            ssize_t n = send(fd, out->p + sent, limit - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                sent = out->len; /* reset by the server: stop writing */
        }
        if (sent == out->len && half_close && !shut) {
            shutdown(fd, SHUT_WR);
            shut = 1;
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            char tmp[16384];
            ssize_t n = recv(fd, tmp, sizeof tmp, 0);
            if (n > 0)
                put(in, tmp, (size_t)n);
            else if (n == 0 || errno != EAGAIN)
                closed = 1;
        }
    }
    if (waiting) { /* a reset: the end of stream went unnoticed already */
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    /* let the server finish with the connection before the next input */
    deadline settle = deadline_in(DEADLINE_MS);
    while (http_inflight(srv) || http_connections(srv)) {
        check(!deadline_passed(&settle), "a connection stayed open after the client left");
        struct pollfd p = {.fd = uv_backend_fd(&loop), .events = POLLIN};
        int t = uv_backend_timeout(&loop);
        poll(&p, 1, t < 0 || t > 100 ? 100 : t);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    return waiting;
}

/* Every response in `in` starts with a status line (pipelined ones too,
 * as far as their Content-Length lets us find them). */
static void check_answer(const buf *in)
{
    if (in->len == 0)
        return; /* closed without an answer */
    check(in->len >= 13, "a truncated status line");
    check(memcmp(in->p, "HTTP/1.1 ", 9) == 0 || memcmp(in->p, "HTTP/1.0 ", 9) == 0,
          "the answer does not start with HTTP/1.x");
    for (int i = 9; i < 12; i++)
        check(in->p[i] >= '0' && in->p[i] <= '9', "the status is not three digits");
    check(in->p[12] == ' ', "no space after the status");
    int status = atoi(in->p + 9);
    check(status >= 100 && status <= 599, "status out of range");
    check(memmem(in->p, in->len, "\r\n\r\n", 4) != NULL || in->len < 65536,
          "headers without an end");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned mode = data[0], sizes = data[1];
    const char *rest = (const char *)data + 2;
    size_t rlen = size - 2;
    buf out = {0}, in = {0};
    const char *sep = memmem(rest, rlen, "\n\n", 2);
    size_t hlen = sep ? (size_t)(sep - rest) : rlen;
    const char *body = sep ? sep + 2 : rest + rlen;
    size_t blen = sep ? rlen - hlen - 2 : 0;
    if (mode & 16) {
        put(&out, rest, rlen);
    } else {
        build(&out, mode, sizes, rest, hlen, body, blen);
        if (mode & 128) /* a second request on the same connection */
            puts_(&out, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    }
    seen.calls = 0;
    uint64_t t0 = now_ms();
    size_t split = mode & 64 ? out.len / 2 : out.len;
    int waiting = exchange(&out, split, !(mode & 32), &in);
    check_answer(&in);
    /* A request the harness framed whole, with plain header lines, is
     * answered (the server never waits for more of it), and the body a
     * handler got is the body sent. Not checked when the fuzzer's header
     * text frames the body itself (Content-Length, Transfer-Encoding,
     * Expect), or holds a CR or a NUL: MHD 0.9.75 ends the header block at
     * a line that starts with a NUL, so the harness's framing that
     * follows is read as the start of another request. */
    int plain = !(mode & 16) && !memchr(rest, '\r', hlen) && !memchr(rest, '\0', hlen) &&
                !names(rest, hlen, "content-length") && !names(rest, hlen, "transfer-encoding") &&
                !names(rest, hlen, "expect");
    if (plain)
        check(!waiting || in.len > 0, "the server waits for more of a complete request");
    if (plain && seen.calls == 1)
        check(seen.len == blen && memcmp(seen.body, body, blen) == 0,
              "the handler got another body than the one sent");
    free(out.p);
    free(in.p);
    return 0;
}
