/* testutil.h - helpers for integration tests: start a real hearthd on a
 * free loopback port, talk raw HTTP/1.1 to it, stop it; and temporary
 * files and directory trees. */
#ifndef HEARTH_TESTUTIL_H
#define HEARTH_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct daemon_proc {
    pid_t pid;
    int port;
    char log_path[256]; /* hearthd's stderr */
} daemon_proc;

/* Directory of the shared test data, or NULL (tests then skip). */
const char *tu_data_dir(void);
/* In a Check test: say SKIP and return when the test data is absent. */
#define TU_NEED_DATA()                                                            \
    do {                                                                          \
        if (!tu_data_dir()) {                                                     \
            fprintf(stderr, "SKIP %s: HEARTH_TEST_DATA not found\n", __func__);  \
            return;                                                               \
        }                                                                         \
    } while (0)
/* Path of the hearthd binary under test ($HEARTHD, default ./hearthd). */
const char *tu_hearthd(void);

/* Start hearthd with extra arguments (NULL-terminated; --port 0 and
 * --host 127.0.0.1 are added unless given). Waits until it logs that it
 * listens; returns 0, or -1 if it exited or did not start within 30 s. */
int tu_daemon_start(daemon_proc *d, const char *const *args);
/* Send a signal and wait for exit (up to timeout_ms); returns the exit
 * status (0..255), 128+signal when killed, -1 when it did not exit. */
int tu_daemon_stop(daemon_proc *d, int sig, int timeout_ms);
int tu_daemon_wait(daemon_proc *d, int timeout_ms);
/* Run hearthd to completion (for start-up failures): exit status, and
 * stderr text into err (NUL-terminated). */
int tu_run_hearthd(const char *const *args, char *err, size_t errlen);
/* true when the daemon's log contains `needle` (polls up to timeout_ms). */
bool tu_log_contains(daemon_proc *d, const char *needle, int timeout_ms);

typedef struct http_resp {
    int status;
    char headers[4096]; /* raw header block, lower-cased names kept as sent */
    char *body;         /* malloc'd, NUL-terminated */
    size_t body_len;
} http_resp;

int tu_connect(int port);
/* Send raw bytes on fd. */
int tu_send(int fd, const char *data, size_t len);
/* Read one response from fd (Content-Length, chunked, or until close). */
int tu_read_response(int fd, http_resp *r, int timeout_ms);
/* One request on a new connection: method, path, optional body. */
int tu_request(int port, const char *method, const char *path,
               const char *body, http_resp *r);
/* Value of a response header (case-insensitive name) into buf; NULL if absent. */
const char *tu_header(const http_resp *r, const char *name, char *buf, size_t cap);
void tu_resp_free(http_resp *r);
/* Write a temporary file with contents; returns its path (static buffer
 * per call index 0..3). */
const char *tu_write_temp(int slot, const char *contents);

/* Files and directories, for suites that build trees of their own. */
/* A new directory /tmp/hearth-<tag>-XXXXXX (mode 0700), its path in buf
 * (>= 64 bytes); NULL on failure. */
char *tu_temp_dir(const char *tag, char *buf, size_t cap);
/* Write contents to path (created or truncated; the missing directories
 * above it are created, 0755). 0, or -1 with errno. */
int tu_write_file(const char *path, const char *contents);
/* Remove a tree (symlinks are removed, not followed). 0, or -1. */
int tu_rm_tree(const char *path);

#endif
