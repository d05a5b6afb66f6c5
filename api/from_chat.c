/* from_chat.c - see from_chat.h. */
#include "from_chat.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void api_from_chat_init(api_from_chat *t, const api_dialect *d, api_stream *st)
{
    memset(t, 0, sizeof *t);
    t->d = d;
    t->st = st;
}

void api_from_chat_free(api_from_chat *t)
{
    for (size_t i = 0; i < t->n_calls; i++) {
        free(t->calls[i].id);
        free(t->calls[i].name);
        free(t->calls[i].arguments);
    }
    free(t->text);
    memset(t, 0, sizeof *t);
}

/* Append rendered bytes (taken; NULL: out of memory). */
static int put(char *bytes, char **out, size_t *len, size_t *cap)
{
    if (!bytes)
        return -1;
    int rc = buf_append(out, len, cap, bytes, strlen(bytes), 1024);
    free(bytes);
    return rc;
}

static void usage_from(json_t *u, api_usage *dst)
{
    if (!json_is_object(u))
        return;
    dst->prompt_tokens = json_integer_value(json_object_get(u, "prompt_tokens"));
    dst->completion_tokens = json_integer_value(json_object_get(u, "completion_tokens"));
    dst->cached_tokens = json_integer_value(
        json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
}

/* Set *s to a copy of v's string (replacing, or appending when append). */
static int take_str(char **s, json_t *v)
{
    if (!json_is_string(v))
        return 0;
    char *c = strdup(json_string_value(v));
    if (!c)
        return -1;
    free(*s);
    *s = c;
    return 0;
}

/* A tool-call delta: id and name once, arguments appended. */
static int call_delta(api_from_chat *t, json_t *d)
{
    json_t *ix = json_object_get(d, "index");
    size_t k = json_is_integer(ix) ? (size_t)json_integer_value(ix) : t->n_calls;
    if (k >= API_FROM_CHAT_MAX_CALLS)
        return 0; /* beyond what is kept: dropped */
    while (t->n_calls <= k) {
        if (!(t->calls[t->n_calls].arguments = strdup("")))
            return -1;
        t->args_cap[t->n_calls] = 1;
        t->n_calls++;
    }
    api_tool_call *c = &t->calls[k];
    json_t *fn = json_object_get(d, "function");
    if (take_str(&c->id, json_object_get(d, "id")) < 0 ||
        take_str(&c->name, json_object_get(fn, "name")) < 0)
        return -1;
    json_t *a = json_object_get(fn, "arguments");
    if (json_is_string(a))
        return buf_append(&c->arguments, &t->args_len[k], &t->args_cap[k], json_string_value(a),
                          json_string_length(a), 64);
    return 0;
}

/* The choice as the dialect sees it at its end. */
static api_choice choice_of(const api_from_chat *t)
{
    api_choice c = {.index = 0, .text = t->text ? t->text : "", .len = t->len,
                    .finish_reason = t->finish[0] ? t->finish : "stop",
                    .calls = t->calls, .n_calls = t->n_calls};
    for (size_t i = 0; i < t->n_calls; i++) /* a call the upstream left unnamed */
        if (!t->calls[i].name || !t->calls[i].id)
            c.n_calls = i < c.n_calls ? i : c.n_calls;
    return c;
}

static int finish_now(api_from_chat *t, char **out, size_t *len, size_t *cap)
{
    if (t->finished)
        return 0;
    t->finished = true;
    api_choice c = choice_of(t);
    for (size_t k = 0; k < c.n_calls && t->d->tool; k++)
        if (put(t->d->tool(t->st, 0, (unsigned)k, &t->calls[k]), out, len, cap) < 0)
            return -1;
    return put(t->d->finish(t->st, &c), out, len, cap);
}

static int end_now(api_from_chat *t, char **out, size_t *len, size_t *cap)
{
    if (t->ended)
        return 0;
    if (finish_now(t, out, len, cap) < 0)
        return -1;
    t->ended = true;
    api_choice c = choice_of(t);
    return put(t->d->end(t->st, &c, 1, &t->usage), out, len, cap);
}

int api_from_chat_chunk(api_from_chat *t, const char *json, size_t n, char **out,
                        size_t *len, size_t *cap)
{
    json_t *o = json_loadb(json, n, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    int rc = 0;
    if (!t->started) {
        t->started = true;
        rc = put(t->d->start(t->st, 0, &t->usage), out, len, cap);
    }
    json_t *choices = json_object_get(o, "choices");
    size_t i;
    json_t *ch;
    json_array_foreach(choices, i, ch) {
        if (rc < 0 || json_integer_value(json_object_get(ch, "index")) != 0 || t->finished)
            continue;
        json_t *d = json_object_get(ch, "delta");
        json_t *content = json_object_get(d, "content");
        if (json_is_string(content) && json_string_length(content) > 0) {
            const char *s = json_string_value(content);
            size_t sl = json_string_length(content);
            rc = buf_append(&t->text, &t->len, &t->cap, s, sl, 256);
            api_choice c = {.index = 0, .text = s, .len = sl};
            if (rc == 0)
                rc = put(t->d->delta(t->st, &c), out, len, cap);
        }
        size_t k;
        json_t *cd;
        json_array_foreach(json_object_get(d, "tool_calls"), k, cd) {
            if (rc == 0)
                rc = call_delta(t, cd);
        }
        json_t *fr = json_object_get(ch, "finish_reason");
        if (rc == 0 && json_is_string(fr)) {
            snprintf(t->finish, sizeof t->finish, "%s", json_string_value(fr));
            rc = finish_now(t, out, len, cap);
        }
    }
    json_t *u = json_object_get(o, "usage");
    if (rc == 0 && json_is_object(u)) {
        usage_from(u, &t->usage);
        if (t->finished)
            rc = end_now(t, out, len, cap);
    }
    json_decref(o);
    return rc;
}

int api_from_chat_done(api_from_chat *t, char **out, size_t *len, size_t *cap)
{
    if (!t->started) {
        t->started = true;
        if (put(t->d->start(t->st, 0, &t->usage), out, len, cap) < 0)
            return -1;
    }
    return end_now(t, out, len, cap);
}

char *api_from_chat_full(const api_dialect *d, api_stream *st, const char *json, size_t n)
{
    json_t *o = json_loadb(json, n, 0, NULL);
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    json_t *msg = json_object_get(ch, "message");
    if (!json_is_object(msg)) {
        json_decref(o);
        return NULL;
    }
    api_from_chat t;
    api_from_chat_init(&t, d, st);
    json_t *content = json_object_get(msg, "content");
    int rc = json_is_string(content)
                 ? buf_append(&t.text, &t.len, &t.cap, json_string_value(content),
                              json_string_length(content), 256)
                 : 0;
    size_t k;
    json_t *c;
    json_array_foreach(json_object_get(msg, "tool_calls"), k, c) {
        if (rc == 0 && k < API_FROM_CHAT_MAX_CALLS) {
            json_t *with_index = json_deep_copy(c);
            rc = with_index && json_object_set_new(with_index, "index", json_integer((json_int_t)k)) == 0
                     ? call_delta(&t, with_index)
                     : -1;
            json_decref(with_index);
        }
    }
    json_t *fr = json_object_get(ch, "finish_reason");
    snprintf(t.finish, sizeof t.finish, "%s", json_is_string(fr) ? json_string_value(fr) : "stop");
    usage_from(json_object_get(o, "usage"), &t.usage);
    api_choice one = choice_of(&t);
    char *s = rc == 0 ? d->full(st, &one, 1, &t.usage) : NULL;
    api_from_chat_free(&t);
    json_decref(o);
    return s;
}
