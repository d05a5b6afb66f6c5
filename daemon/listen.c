/* listen.c - see listen.h. */
#include "listen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

static int fill_addr(struct sockaddr_un *a, const char *path, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a->sun_path) {
        snprintf(err, errlen, "socket: the path is longer than %zu bytes: %s",
                 sizeof a->sun_path - 1, path);
        return -1;
    }
    memcpy(a->sun_path, path, strlen(path) + 1);
    return 0;
}

/* A socket file already at path: remove it when nothing listens there. */
static int clear_stale(const struct sockaddr_un *a, const char *path, char *err,
                       size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "socket %s: the path exists and is not a socket; not "
                 "replacing it", path);
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(probe, (const struct sockaddr *)a, sizeof *a);
    int e = errno;
    close(probe);
    if (rc == 0) {
        snprintf(err, errlen, "socket %s: another process is listening on it", path);
        return -1;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "socket %s: %s", path, strerror(e));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "socket %s: cannot remove the stale socket: %s", path,
                 strerror(errno));
        return -1;
    }
    log_info("listen", "removed the stale socket %s (nothing listened on it)", path);
    return 0;
}

int listen_unix_open(listen_unix *u, const char *path, unsigned mode, char *err,
                     size_t errlen)
{
    u->fd = -1;
    struct sockaddr_un a;
    if (fill_addr(&a, path, err, errlen) < 0 || clear_stale(&a, path, err, errlen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* The file appears with the umask's permissions at bind; owner-only
     * until chmod, so that no one else can connect in between. The loop
     * and the scheduler create no files while this runs at start-up. */
    mode_t old = umask(0177);
    int rc = bind(fd, (const struct sockaddr *)&a, sizeof a);
    int e = errno;
    umask(old);
    struct stat st;
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(e));
    } else if (chmod(path, (mode_t)mode) < 0 || stat(path, &st) < 0) {
        snprintf(err, errlen, "socket %s: cannot set mode %04o: %s", path, mode,
                 strerror(errno));
        unlink(path);
        rc = -1;
    } else if (listen(fd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        unlink(path);
        rc = -1;
    }
    if (rc < 0) {
        close(fd);
        return -1;
    }
    u->fd = fd;
    u->dev = st.st_dev;
    u->ino = st.st_ino;
    return 0;
}

void listen_unix_remove(const listen_unix *u, const char *path)
{
    struct stat st;
    if (path && lstat(path, &st) == 0 && st.st_dev == u->dev && st.st_ino == u->ino)
        unlink(path);
}

unsigned long listen_raise_nofile(unsigned long need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        struct rlimit nl = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
            rl.rlim_cur = want;
    }
    return rl.rlim_cur == RLIM_INFINITY ? need : (unsigned long)rl.rlim_cur;
}
