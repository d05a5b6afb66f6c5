/* door.h - who may come in: the rules hearthd applies to every request
 * before it reaches a handler (daemon/http.c asks; this module decides).
 *
 * - Host check (DNS rebinding): a web page on evil.example.com can make its
 *   name resolve to 127.0.0.1 and then call a server on loopback from the
 *   browser as if it were same-origin; the request still carries
 *   "Host: evil.example.com". A loopback listener therefore answers only
 *   requests whose Host names loopback (localhost, *.localhost,
 *   127.0.0.0/8, [::1], with or without a port) or one of allowed_hosts.
 *   A request without Host (HTTP/1.0) is let in: a browser always sends one.
 * - API keys: any number, from api_key (a list) and api_key_file (one a
 *   line). A presented key is compared with every key of the set, each
 *   comparison without an early exit, so the time taken tells neither
 *   which key nor how much of one matched.
 * - CORS: cors_origins lists the origins whose pages may read responses;
 *   "*" allows any origin but "null" (sandboxed frames and files), which
 *   must be listed itself.
 *
 * A door is immutable once built: SIGHUP builds a new one (re-reading the
 * key file) and swaps it in on the loop thread. */
#ifndef HEARTH_DOOR_H
#define HEARTH_DOOR_H

#include <stdbool.h>
#include <stddef.h>

#include "hconfig.h"

typedef struct door door;

/* Build the rules from the configuration; reads api_key_file. -1 with a
 * message naming the key on a bad value or an unreadable key file. */
int door_new(door **out, const hearth_config *c, char *err, size_t errlen);
void door_free(door *d);

/* An address of [server] host (IPv4/IPv6 literal or "localhost") that is
 * on loopback: 127.0.0.0/8, ::1, ::ffff:127.x.x.x. */
bool door_addr_is_loopback(const char *addr);

/* Whether a feature with an auto/yes/no key ([server] webui, metrics:
 * 1 yes, 0 no, -1 auto) is on for the listen address host: auto is on
 * when host is on loopback, where only this machine can reach it. */
bool door_auto_on(int setting, const char *host);

/* Refuse a TCP listener on a non-loopback address without any API key
 * (0 when the configuration is acceptable). */
int door_check_listen(const door *d, const hearth_config *c, char *err, size_t errlen);

/* The Host header (NULL when absent) is acceptable on a loopback listener. */
bool door_host_allowed(const door *d, const char *host);

bool door_needs_key(const door *d);
/* key (what the client sent, NUL-terminated) is one of the set. */
bool door_key_ok(const door *d, const char *key);
size_t door_n_keys(const door *d);

/* Any origin configured (then every response varies by Origin). */
bool door_cors_on(const door *d);
bool door_origin_allowed(const door *d, const char *origin);

#endif
