/* forward.c - the body sent upstream: the model renamed, usage asked for
 * when streaming, the client's texts redacted (see forward.h). */
#include "router/forward.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What redacting one request needs. */
typedef struct redactor {
    const privacy_set *set;
    privacy_map *map;
    unsigned kinds;
    forward_status st;
} redactor;

/* Scan the string v; *out: its redacted copy (a new reference), or NULL
 * when nothing was found. Returns false (with rd->st set) on an error. */
static bool redact_text(redactor *rd, json_t *v, json_t **out)
{
    *out = NULL;
    const char *text = json_string_value(v);
    size_t len = json_string_length(v);

    privacy_hit few[16], *hits = few;
    size_t n;
    privacy_status ps = privacy_scan(rd->set, text, len, few, 16, &n);
    if (ps == PRIVACY_OK && n > 16) {
        hits = malloc(n * sizeof *hits);
        if (!hits) {
            rd->st = FORWARD_ENOMEM;
            return false;
        }
        size_t again;
        ps = privacy_scan(rd->set, text, len, hits, n, &again);
    }
    bool ok = false;
    char *red = NULL;
    size_t red_len;
    if (ps == PRIVACY_EMATCH) {
        rd->st = FORWARD_EUNSCANNED;
    } else if (ps != PRIVACY_OK) {
        rd->st = FORWARD_ENOMEM;
    } else if (n == 0) {
        ok = true;
    } else if (privacy_redact(rd->map, text, len, hits, n, &red, &red_len) !=
               PRIVACY_OK) {
        rd->st = FORWARD_ENOMEM;
    } else {
        for (size_t i = 0; i < n; i++)
            rd->kinds |= 1u << hits[i].kind;
        /* Placeholders are ASCII and replace whole hits, which end on
         * character boundaries: the copy stays valid UTF-8 (json_stringn
         * checks it anyway). */
        *out = json_stringn(red, red_len);
        free(red);
        ok = *out != NULL;
        if (!ok)
            rd->st = FORWARD_ENOMEM;
    }
    if (hits != few)
        free(hits);
    return ok;
}

/* The string at parent[key] (an object's member), or at parent[i] (an
 * array's item) when key is NULL; anything else is left alone. */
static bool redact_at(redactor *rd, json_t *parent, const char *key, size_t i)
{
    json_t *v = key ? json_object_get(parent, key) : json_array_get(parent, i);
    json_t *red;
    if (!json_is_string(v))
        return true;
    if (!redact_text(rd, v, &red))
        return false;
    if (red && (key ? json_object_set_new(parent, key, red)
                    : json_array_set_new(parent, i, red)) != 0) {
        rd->st = FORWARD_ENOMEM;
        return false;
    }
    return true;
}

static bool redact_member(redactor *rd, json_t *obj, const char *key)
{
    return redact_at(rd, obj, key, 0);
}

/* One chat message: its content (a string or parts) and the arguments of
 * the tool calls an assistant message carries. */
static bool redact_message(redactor *rd, json_t *msg)
{
    if (!json_is_object(msg))
        return true;
    json_t *content = json_object_get(msg, "content");
    if (json_is_string(content)) {
        if (!redact_member(rd, msg, "content"))
            return false;
    } else if (json_is_array(content)) {
        size_t i;
        json_t *part;
        json_array_foreach(content, i, part) {
            const char *type = json_string_value(json_object_get(part, "type"));
            if (json_is_object(part) && type && strcmp(type, "text") == 0 &&
                !redact_member(rd, part, "text"))
                return false;
        }
    }
    size_t i;
    json_t *call;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, call) {
        json_t *fn = json_object_get(call, "function");
        if (json_is_object(fn) && !redact_member(rd, fn, "arguments"))
            return false;
    }
    return true;
}

/* messages[*], prompt (string or strings) and suffix. */
static bool redact_request(redactor *rd, json_t *root)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "messages"), i, v) {
        if (!redact_message(rd, v))
            return false;
    }
    if (!redact_member(rd, root, "prompt") ||
        !redact_member(rd, root, "suffix"))
        return false;
    /* an array of strings; token ids (numbers, arrays) are skipped */
    json_t *prompt = json_object_get(root, "prompt");
    for (i = 0; i < json_array_size(prompt); i++)
        if (!redact_at(rd, prompt, NULL, i))
            return false;
    return true;
}

/* A streamed request asks for usage; report whether the client had. */
static bool ask_for_usage(json_t *root, bool *client_wants_usage)
{
    json_t *so = json_object_get(root, "stream_options");
    *client_wants_usage = json_is_true(json_object_get(so, "include_usage"));
    if (!json_is_object(so)) {
        so = json_object();
        if (!so || json_object_set_new(root, "stream_options", so) != 0)
            return false;
    }
    return json_object_set_new(so, "include_usage", json_true()) == 0;
}

static forward_status fail(forward_status st, forward_result *res, char *err,
                           size_t errlen)
{
    static const char *const msg[] = {
        [FORWARD_EBODY] = "the request body is not a JSON object",
        [FORWARD_EUNSCANNED] = "a message could not be fully scanned for "
                               "private data (a custom pattern failed)",
        [FORWARD_ENOMEM] = "out of memory while preparing the upstream request",
    };
    free(res->body);
    memset(res, 0, sizeof *res);
    snprintf(err, errlen, "%s", msg[st]);
    return st;
}

forward_status forward_body(const char *body, size_t len,
                            const char *upstream_model,
                            const privacy_set *set, privacy_map *map,
                            forward_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (errlen)
        err[0] = '\0';
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(FORWARD_EBODY, res, err, errlen);
    }
    forward_status st = FORWARD_ENOMEM;
    if (json_object_set_new(root, "model", json_string(upstream_model)) != 0)
        goto out;
    res->stream = json_is_true(json_object_get(root, "stream"));
    if (res->stream && !ask_for_usage(root, &res->client_wants_usage))
        goto out;
    if (set && map) {
        redactor rd = {.set = set, .map = map};
        if (!redact_request(&rd, root)) {
            st = rd.st;
            goto out;
        }
        res->kinds = rd.kinds;
    }
    res->body = json_dumps(root, JSON_COMPACT);
    if (res->body) {
        res->len = strlen(res->body);
        st = FORWARD_OK;
    }
out:
    json_decref(root);
    return st == FORWARD_OK ? st : fail(st, res, err, errlen);
}
