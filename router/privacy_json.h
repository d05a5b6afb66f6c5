/* privacy_json.h - the privacy guard over a JSON request body.
 *
 * A client may write any character of a string as a JSON escape
 * ("jane\u0040example.org", "4111\u00201111 ..."): the bytes on the wire
 * then hold no address or card number, but the value a server decodes and
 * forwards does. So a body is scanned twice: its raw bytes (privacy_scan,
 * as they came), then the decoded text of every string value and every
 * object key of its parsed tree, in document order. The first hit wins:
 * a raw hit before any decoded one.
 *
 * The tree is read only; the same thread-safety as privacy_scan (any
 * number of threads with one set). Nothing here logs.
 */
#ifndef HEARTH_ROUTER_PRIVACY_JSON_H
#define HEARTH_ROUTER_PRIVACY_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "router/privacy.h"

/* Deeper trees are not walked to the end: PRIVACY_EMATCH (not fully
 * scanned, treat as a hit). jansson's parser stops at 2048 levels. */
#define PRIVACY_JSON_MAX_DEPTH 4096

/* The decoded strings and keys below root (NULL: nothing to walk). *kind:
 * the first hit's kind, or -1 when none. PRIVACY_EMATCH or PRIVACY_ENOMEM
 * when a string could not be scanned to its end (*kind is then -1; the
 * caller treats the body as if it held something, privacy.h). */
privacy_status privacy_json_scan(const privacy_set *set, json_t *root, int *kind);

/* The raw body (len bytes, any bytes; body may be NULL), then root's
 * decoded strings: the first hit of either. */
privacy_status privacy_json_check(const privacy_set *set, const char *body, size_t len,
                                  json_t *root, int *kind);

#endif
