/* listen.h - what listening needs from the operating system beyond what
 * libmicrohttpd does itself: the Unix domain socket ([server] socket) and
 * enough file descriptors for max_connections.
 *
 * The Unix socket is for desktop applications on the same machine: no
 * port, no browser can reach it, and who may connect is decided by the
 * file's permissions (socket_mode). A socket file left behind by a
 * hearthd that died is replaced; one that still has a listener, or a path
 * that is not a socket at all, is refused and left alone. */
#ifndef HEARTH_LISTEN_H
#define HEARTH_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

typedef struct listen_unix {
    int fd;     /* listening, non-blocking, close-on-exec */
    dev_t dev;  /* the socket file, so that only it is removed at exit */
    ino_t ino;
} listen_unix;

/* Create, bind (with `mode` as its permission bits) and listen. */
int listen_unix_open(listen_unix *u, const char *path, unsigned mode, char *err,
                     size_t errlen);
/* Remove the socket file when it is still the one listen_unix_open made
 * (the descriptor is closed by whoever owns it then). */
void listen_unix_remove(const listen_unix *u, const char *path);

/* Raise the soft limit on open files towards `need` (up to the hard
 * limit); returns the limit now in force. */
unsigned long listen_raise_nofile(unsigned long need);

#endif
