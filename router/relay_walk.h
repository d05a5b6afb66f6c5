/* relay_walk.h - inside the relay (relay.c streams, relay_json.c whole
 * bodies): the walk over the texts of an answer's choices, and usage.
 *
 * A choice carries the model's text in three places: the content of its
 * "delta" (a chunk) or "message" (a whole answer), the arguments of that
 * member's tool_calls[*].function, and "text" (completions). relay_visit
 * calls fn on each of them that is a string, with the choice's index and,
 * for arguments, the tool call's ("index" members, else the position in
 * the array). fn may replace obj[key]; it returns false to stop the walk
 * (out of memory), which relay_visit then returns. Not for other files.
 */
#ifndef HEARTH_ROUTER_RELAY_WALK_H
#define HEARTH_ROUTER_RELAY_WALK_H

#include <jansson.h>
#include <stdbool.h>

#include "router/relay.h"

typedef enum relay_field { RELAY_CONTENT, RELAY_TEXT, RELAY_ARGS } relay_field;

typedef bool (*relay_text_fn)(void *ctx, json_t *obj, const char *key,
                              long long choice, relay_field f, long long tool);

/* obj's "index" member when an integer, else pos. */
long long relay_index_of(json_t *obj, size_t pos);

/* Each text of choice c (its index: choice); member: "delta" or
 * "message". */
bool relay_visit(json_t *c, long long choice, const char *member,
                 relay_text_fn fn, void *ctx);

/* root's "usage" object, when it has one, into u (u->seen set). */
void relay_capture_usage(json_t *root, relay_usage *u);

/* obj[key] = s, a new reference; false when s is NULL (out of memory, or
 * not UTF-8, which restoring valid text cannot produce). */
bool relay_set_string(json_t *obj, const char *key, json_t *s);

#endif
