/* relay_json.c - the walk over an answer's texts (relay_walk.h) and the
 * non-streaming relay, relay_json (relay.h): a whole body restored in one
 * go with privacy_restore. */
#include "router/relay_walk.h"

#include <stdlib.h>
#include <string.h>

long long relay_index_of(json_t *obj, size_t pos)
{
    json_t *ix = json_object_get(obj, "index");
    return json_is_integer(ix) ? json_integer_value(ix) : (long long)pos;
}

static bool visit_field(json_t *obj, const char *key, long long choice,
                        relay_field f, long long tool, relay_text_fn fn,
                        void *ctx)
{
    if (!json_is_string(json_object_get(obj, key)))
        return true;
    return fn(ctx, obj, key, choice, f, tool);
}

/* Each text of one choice: in a chunk (member "delta") or a whole answer
 * ("message"), the content and the tool calls' arguments; and "text"
 * (completions). */
bool relay_visit(json_t *c, long long choice, const char *member,
                 relay_text_fn fn, void *ctx)
{
    json_t *m = json_object_get(c, member);
    if (json_is_object(m)) {
        if (!visit_field(m, "content", choice, RELAY_CONTENT, 0, fn, ctx))
            return false;
        size_t k;
        json_t *call;
        json_array_foreach(json_object_get(m, "tool_calls"), k, call) {
            json_t *f = json_object_get(call, "function");
            if (json_is_object(f) &&
                !visit_field(f, "arguments", choice, RELAY_ARGS,
                             relay_index_of(call, k), fn, ctx))
                return false;
        }
    }
    return visit_field(c, "text", choice, RELAY_TEXT, 0, fn, ctx);
}

void relay_capture_usage(json_t *root, relay_usage *u)
{
    json_t *us = json_object_get(root, "usage");
    if (!json_is_object(us))
        return;
    u->seen = true;
    u->prompt_tokens = json_integer_value(json_object_get(us, "prompt_tokens"));
    u->completion_tokens =
        json_integer_value(json_object_get(us, "completion_tokens"));
    u->total_tokens = json_integer_value(json_object_get(us, "total_tokens"));
}

bool relay_set_string(json_t *obj, const char *key, json_t *s)
{
    return s && json_object_set_new(obj, key, s) == 0;
}

/* ------------------------------------------------------------ whole */

typedef struct whole {
    const privacy_map *map;
    relay_usage *u;
    bool changed;
} whole;

/* A text field of a whole answer (relay_text_fn). */
static bool restore_whole(void *ctx, json_t *obj, const char *key,
                          long long choice, relay_field f, long long tool)
{
    (void)choice, (void)f, (void)tool;
    whole *w = ctx;
    json_t *v = json_object_get(obj, key);
    const char *in = json_string_value(v);
    size_t in_len = json_string_length(v);
    if (!w->map) {
        w->u->content_bytes += in_len;
        return true;
    }
    char *out;
    size_t out_len;
    if (privacy_restore(w->map, in, in_len, &out, &out_len) != PRIVACY_OK)
        return false;
    w->u->content_bytes += out_len;
    bool ok = true;
    if (out_len != in_len || memcmp(out, in, in_len) != 0) {
        w->changed = true;
        ok = relay_set_string(obj, key, json_stringn(out, out_len));
    }
    free(out);
    return ok;
}

relay_status relay_json(const char *body, size_t len, const privacy_map *map,
                        char **out, size_t *out_len, relay_usage *u)
{
    memset(u, 0, sizeof *u);
    *out = NULL;
    *out_len = 0;
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    whole w = {.map = map && privacy_map_count(map) ? map : NULL, .u = u};
    bool ok = true;
    if (json_is_object(root)) {
        relay_capture_usage(root, u);
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(root, "choices"), i, c) {
            if (ok && json_is_object(c))
                ok = relay_visit(c, relay_index_of(c, i), "message",
                                 restore_whole, &w);
        }
    }
    if (ok && w.changed) {
        *out = json_dumps(root, JSON_COMPACT);
        ok = *out != NULL;
        if (ok)
            *out_len = strlen(*out);
    } else if (ok) {
        *out = malloc(len + 1);
        ok = *out != NULL;
        if (ok) {
            memcpy(*out, body, len);
            (*out)[len] = '\0';
            *out_len = len;
        }
    }
    json_decref(root);
    return ok ? RELAY_OK : RELAY_ENOMEM;
}
