/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *tu_data_dir(void)
{
    const char *d = getenv("HEARTH_TEST_DATA");
    if (!d || !*d)
        d = "../shared";
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/models/stories260K.gguf", d);
    return access(probe, R_OK) == 0 ? d : NULL;
}

const char *tu_hearthd(void)
{
    const char *p = getenv("HEARTHD");
    return p && *p ? p : "./hearthd";
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

bool tu_log_contains(daemon_proc *d, const char *needle, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    do {
        char *log = slurp(d->log_path, NULL);
        bool found = log && strstr(log, needle);
        free(log);
        if (found)
            return true;
        usleep(20000);
    } while (now_ms() < end);
    return false;
}

static pid_t spawn(const char *const *args, bool add_listen, const char *log_path)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = tu_hearthd();
    bool has_port = false, has_host = false;
    for (int i = 0; args && args[i] && n < 56; i++) {
        if (strcmp(args[i], "--port") == 0 || strcmp(args[i], "-p") == 0)
            has_port = true;
        if (strcmp(args[i], "--host") == 0)
            has_host = true;
        argv[n++] = args[i];
    }
    if (add_listen && !has_port) {
        argv[n++] = "--port";
        argv[n++] = "0";
    }
    if (add_listen && !has_host) {
        argv[n++] = "--host";
        argv[n++] = "127.0.0.1";
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int tu_daemon_start(daemon_proc *d, const char *const *args)
{
    memset(d, 0, sizeof *d);
    snprintf(d->log_path, sizeof d->log_path, "/tmp/hearth-test-%d-%ld.log",
             (int)getpid(), (long)now_ms() % 1000000);
    d->pid = spawn(args, true, d->log_path);
    if (d->pid < 0)
        return -1;
    long long end = now_ms() + 30000;
    while (now_ms() < end) {
        char *log = slurp(d->log_path, NULL);
        const char *p = log ? strstr(log, "listening on ") : NULL;
        if (p) {
            p += strlen("listening on ");
            const char *colon = strchr(p, ' ');
            /* "HOST:PORT (model..." -> last ':' before the space */
            const char *q = p;
            const char *last = NULL;
            while (q < colon) {
                if (*q == ':')
                    last = q;
                q++;
            }
            d->port = last ? atoi(last + 1) : 0;
            free(log);
            return d->port > 0 ? 0 : -1;
        }
        free(log);
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return -1;
        }
        usleep(20000);
    }
    return -1;
}

int tu_daemon_wait(daemon_proc *d, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    while (d->pid > 0) {
        int st;
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) {
            d->pid = 0;
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return 128 + WTERMSIG(st);
        }
        if (now_ms() >= end)
            return -1;
        usleep(10000);
    }
    return -1;
}

int tu_daemon_stop(daemon_proc *d, int sig, int timeout_ms)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    int rc = tu_daemon_wait(d, timeout_ms);
    if (rc < 0 && d->pid > 0) {
        kill(d->pid, SIGKILL);
        tu_daemon_wait(d, 5000);
    }
    return rc;
}

int tu_run_hearthd(const char *const *args, char *err, size_t errlen)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/hearth-run-%d-%ld.log", (int)getpid(),
             (long)now_ms() % 1000000);
    daemon_proc d = {.pid = spawn(args, false, path)};
    int rc = tu_daemon_wait(&d, 30000);
    if (rc < 0 && d.pid > 0) {
        kill(d.pid, SIGKILL);
        tu_daemon_wait(&d, 5000);
    }
    char *text = slurp(path, NULL);
    snprintf(err, errlen, "%s", text ? text : "");
    free(text);
    unlink(path);
    return rc;
}

int tu_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int tu_send(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Buffered reader over a socket with an overall deadline. */
typedef struct rd {
    int fd;
    long long deadline;
    char buf[65536];
    size_t len;
    bool eof;
} rd;

static int rd_fill(rd *r)
{
    if (r->eof || r->len == sizeof r->buf)
        return r->eof ? 0 : 1;
    long long left = r->deadline - now_ms();
    if (left <= 0)
        return -1;
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    int pr = poll(&p, 1, (int)left);
    if (pr <= 0)
        return -1;
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
    if (n < 0)
        return errno == EINTR ? 1 : -1;
    if (n == 0) {
        r->eof = true;
        return 0;
    }
    r->len += (size_t)n;
    return 1;
}

static void rd_consume(rd *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
}

/* Find "\r\n" (line) in the buffer, filling as needed; returns its length
 * without CRLF, or -1. */
static long rd_line(rd *r, char *out, size_t cap)
{
    for (;;) {
        char *p = memmem(r->buf, r->len, "\r\n", 2);
        if (p) {
            size_t n = (size_t)(p - r->buf);
            size_t c = n < cap - 1 ? n : cap - 1;
            memcpy(out, r->buf, c);
            out[c] = '\0';
            rd_consume(r, n + 2);
            return (long)n;
        }
        if (rd_fill(r) <= 0)
            return -1;
    }
}

static int body_append(http_resp *resp, const char *data, size_t n)
{
    char *nb = realloc(resp->body, resp->body_len + n + 1);
    if (!nb)
        return -1;
    resp->body = nb;
    memcpy(resp->body + resp->body_len, data, n);
    resp->body_len += n;
    resp->body[resp->body_len] = '\0';
    return 0;
}

static int rd_exact(rd *r, http_resp *resp, size_t n)
{
    while (n) {
        if (r->len == 0 && rd_fill(r) <= 0)
            return -1;
        size_t c = r->len < n ? r->len : n;
        if (body_append(resp, r->buf, c) < 0)
            return -1;
        rd_consume(r, c);
        n -= c;
    }
    return 0;
}

/* Socket readers are per call; a keep-alive test reads responses one at
 * a time, and the server never pipelines ahead of a request, so no bytes
 * of a next response can be lost between calls. */
int tu_read_response(int fd, http_resp *resp, int timeout_ms)
{
    memset(resp, 0, sizeof *resp);
    rd *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->fd = fd;
    r->deadline = now_ms() + timeout_ms;
    char line[8192];
    int rc = -1;
    if (rd_line(r, line, sizeof line) < 0 || strncmp(line, "HTTP/1.", 7) != 0)
        goto out;
    resp->status = atoi(line + 9);
    size_t hl = 0;
    long long clen = -1;
    bool chunked = false;
    for (;;) {
        long n = rd_line(r, line, sizeof line);
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        size_t add = strlen(line);
        if (hl + add + 2 < sizeof resp->headers) {
            memcpy(resp->headers + hl, line, add);
            memcpy(resp->headers + hl + add, "\r\n", 2);
            hl += add + 2;
            resp->headers[hl] = '\0';
        }
        if (strncasecmp(line, "content-length:", 15) == 0)
            clen = atoll(line + 15);
        if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strcasestr(line, "chunked"))
            chunked = true;
    }
    body_append(resp, "", 0);
    if (chunked) {
        for (;;) {
            if (rd_line(r, line, sizeof line) < 0)
                goto out;
            size_t n = strtoul(line, NULL, 16);
            if (n == 0) {
                rd_line(r, line, sizeof line); /* trailing CRLF */
                break;
            }
            if (rd_exact(r, resp, n) < 0 || rd_line(r, line, sizeof line) < 0)
                goto out;
        }
    } else if (clen >= 0) {
        if (rd_exact(r, resp, (size_t)clen) < 0)
            goto out;
    } else {
        while (rd_fill(r) > 0)
            ;
        body_append(resp, r->buf, r->len);
    }
    rc = 0;
out:
    free(r);
    return rc;
}

int tu_request(int port, const char *method, const char *path, const char *body,
               http_resp *r)
{
    memset(r, 0, sizeof *r);
    int fd = tu_connect(port);
    if (fd < 0)
        return -1;
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, body ? strlen(body) : 0);
    int rc = -1;
    if (tu_send(fd, head, (size_t)n) == 0 &&
        (!body || tu_send(fd, body, strlen(body)) == 0))
        rc = tu_read_response(fd, r, 30000);
    close(fd);
    return rc;
}

const char *tu_header(const http_resp *r, const char *name, char *buf, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t len = (size_t)(eol - v);
            if (len >= cap)
                len = cap - 1;
            memcpy(buf, v, len);
            buf[len] = '\0';
            return buf;
        }
        p = eol + 2;
    }
    return NULL;
}

void tu_resp_free(http_resp *r)
{
    free(r->body);
    r->body = NULL;
}

const char *tu_write_temp(int slot, const char *contents)
{
    static char paths[4][256];
    snprintf(paths[slot], sizeof paths[slot], "/tmp/hearth-test-%d-%d.conf",
             (int)getpid(), slot);
    FILE *f = fopen(paths[slot], "w");
    if (!f)
        return NULL;
    fputs(contents, f);
    fclose(f);
    return paths[slot];
}

char *tu_temp_dir(const char *tag, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "/tmp/hearth-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= cap)
        return NULL;
    return mkdtemp(buf);
}

int tu_write_file(const char *path, const char *contents)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *s = dir + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t len = strlen(contents);
    int r = fwrite(contents, 1, len, f) == len ? 0 : -1;
    if (fclose(f) != 0)
        r = -1;
    return r;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path);
    return unlink(path);
}

int tu_rm_tree(const char *path)
{
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
