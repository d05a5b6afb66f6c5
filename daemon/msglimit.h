/* msglimit.h - [server] max_messages: how many messages one generation
 * request may carry, refused with 400 before the body is parsed.
 *
 * The body is parsed on libuv's thread pool (daemon/gen_prep.h); this
 * check runs before that, on the loop thread, so it does not parse: it
 * walks the JSON's structure (strings, brackets, commas) once, without
 * allocating, and counts the elements of the top-level array that holds
 * the messages. A body it cannot follow is not its business: it lets it
 * through and the parser reports what is wrong. Keys are compared after
 * their escapes are undone ("messa\u0067es" counts), and a key given
 * twice is counted at its larger array. */
#ifndef HEARTH_MSGLIMIT_H
#define HEARTH_MSGLIMIT_H

#include <stddef.h>

#include "http.h"
#include "request.h"

/* Elements of the array under `key` (ASCII) at the top level of the JSON
 * object in body[0..len); -1 when there is no such array or the body is
 * not a JSON object the walk can follow. */
long msglimit_count(const char *body, size_t len, const char *key);

/* The request's messages (`input` for the Responses API) against max
 * (0: no limit): 0 to go on, 1 when answered 400 (the dialect's error
 * shape, param naming the field, code "too_many_messages"), -1 when the
 * answer could not be queued. */
int msglimit_check(http_req *r, api_kind kind, int max);

#endif
