/* msglimit.h - [server] max_messages: how many messages one generation
 * request may carry, refused with 400 before the body is parsed.
 *
 * gen_prep.c runs this check on libuv's thread pool before the parser, so
 * that a body of a million messages is refused without building them: it
 * does not parse, it walks the JSON's structure (strings, brackets, commas) once, without
 * allocating, and counts the elements of the top-level array that holds
 * the messages. A body it cannot follow is not its business: it lets it
 * through and the parser reports what is wrong. Keys are compared after
 * their escapes are undone ("messa\u0067es" counts), and a key given
 * twice is counted at its larger array. */
#ifndef HEARTH_MSGLIMIT_H
#define HEARTH_MSGLIMIT_H

#include <stddef.h>

#include "request.h"

/* Elements of the array under `key` (ASCII) at the top level of the JSON
 * object in body[0..len); -1 when there is no such array or the body is
 * not a JSON object the walk can follow. */
long msglimit_count(const char *body, size_t len, const char *key);

/* The count of the request's messages (`input` for the Responses API,
 * named in *key) when it is above max, else 0 (also when max is 0: no
 * limit, and for completions, which have no messages). */
long msglimit_over(const char *body, size_t len, api_kind kind, int max, const char **key);

#endif
