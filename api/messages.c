/* messages.c - the response side of messages.h: api_dialect_messages.
 *
 * A stream, as Anthropic sends it (each event "event: NAME\ndata: JSON"):
 *
 *   start   message_start (the message, content [], usage so far)
 *           content_block_start (index 0, {"type":"text","text":""})
 *           ping
 *   delta   content_block_delta ({"type":"text_delta","text":...})
 *   finish  content_block_stop
 *   end     message_delta (stop_reason, stop_sequence, usage.output_tokens)
 *           message_stop
 *
 * Objects are jansson trees dumped compact; field order follows
 * Anthropic's own responses.
 */
#include "messages.h"
#include "stop.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ values */

/* A JSON string of any bytes: each maximal invalid UTF-8 subpart becomes
 * one U+FFFD. NULL only when out of memory. */
static json_t *str_of(const char *s, size_t len)
{
    if (!s)
        return json_string("");
    json_t *j = json_stringn(s, len);
    if (j || len > (SIZE_MAX - 1) / 3)
        return j;
    /* An invalid subpart of n >= 1 bytes turns into 3: 3 * len bounds it. */
    char *clean = malloc(3 * len + 1);
    if (!clean)
        return NULL;
    size_t o = 0, i = 0;
    while (i < len) {
        bool valid;
        size_t n = api_utf8_next(s + i, len - i, &valid);
        const char *from = valid ? s + i : "\xef\xbf\xbd";
        size_t k = valid ? n : 3;
        memcpy(clean + o, from, k);
        o += k;
        i += n;
    }
    j = json_stringn(clean, o);
    free(clean);
    return j;
}

static json_t *cstr_of(const char *s)
{
    return str_of(s, s ? strlen(s) : 0);
}

/* A string, or JSON null for NULL. */
static json_t *opt_str(const char *s)
{
    return s ? cstr_of(s) : json_null();
}

/* Sets key on o; any failure (a NULL value included) clears *ok. The
 * value's reference is taken in every case. */
static void set(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (json_object_set_new(o, key, v) < 0)
        *ok = false;
}

/* ------------------------------------------------------------ events */

/* The bytes of a stream call, grown one event at a time. */
typedef struct sse_buf {
    char *s;
    size_t len;
    bool ok;
} sse_buf;

/* Appends "event: NAME\ndata: JSON\n\n" and releases data; a NULL data
 * (a failed allocation) or a full memory marks the buffer failed. */
static void sse_add(sse_buf *b, api_stream *st, const char *name,
                    json_t *data, bool data_ok)
{
    char *json = b->ok && data && data_ok ? json_dumps(data, JSON_COMPACT)
                                          : NULL;
    json_decref(data);
    if (!json) {
        b->ok = false;
        return;
    }
    size_t add = strlen("event: \ndata: \n\n") + strlen(name) + strlen(json);
    char *grown = realloc(b->s, b->len + add + 1);
    if (!grown) {
        b->ok = false;
        free(json);
        return;
    }
    b->s = grown;
    b->len += (size_t)sprintf(b->s + b->len, "event: %s\ndata: %s\n\n", name,
                              json);
    free(json);
    if (st)
        st->seq++;
}

/* The buffer's bytes ("" when no event was added), or NULL on failure. */
static char *sse_done(sse_buf *b)
{
    if (b->ok && !b->s)
        return strdup("");
    if (b->ok)
        return b->s;
    free(b->s);
    return NULL;
}

/* {"type": type} plus fields set by the caller. */
static json_t *typed(const char *type, bool *ok)
{
    json_t *o = json_object();
    if (!o)
        *ok = false;
    set(o, "type", json_string(type), ok);
    return o;
}

/* ------------------------------------------------------------ objects */

const char *api_messages_stop_reason(const char *finish_reason,
                                     const char *stop_matched)
{
    if (!finish_reason)
        return NULL;
    if (!strcmp(finish_reason, "length"))
        return "max_tokens";
    if (!strcmp(finish_reason, "tool_calls"))
        return "tool_use";
    if (!strcmp(finish_reason, "stop") && stop_matched)
        return "stop_sequence";
    return "end_turn";
}

/* The stop_sequence field: the matched string when it ended the message. */
static json_t *stop_sequence_of(const char *reason, const char *matched)
{
    return reason && !strcmp(reason, "stop_sequence") ? cstr_of(matched)
                                                       : json_null();
}

/* Anthropic's usage: input_tokens are the prompt tokens not read from the
 * cache (its total input is input + cache_creation + cache_read). */
static json_t *usage_of(const api_usage *u, bool *ok)
{
    api_usage zero = {0, 0, 0};
    if (!u)
        u = &zero;
    int64_t cached = u->cached_tokens < 0 ? 0 : u->cached_tokens;
    if (cached > u->prompt_tokens)
        cached = u->prompt_tokens;
    json_t *o = json_object();
    if (!o)
        *ok = false;
    set(o, "input_tokens", json_integer(u->prompt_tokens - cached), ok);
    set(o, "cache_creation_input_tokens", json_integer(0), ok);
    set(o, "cache_read_input_tokens", json_integer(cached), ok);
    set(o, "output_tokens", json_integer(u->completion_tokens), ok);
    return o;
}

/* The "message" object; content is taken. */
static json_t *message_of(const api_stream *s, json_t *content,
                          const char *reason, const api_usage *u, bool *ok)
{
    json_t *m = json_object();
    if (!m)
        *ok = false;
    set(m, "id", cstr_of(s->h.id), ok);
    set(m, "type", json_string("message"), ok);
    set(m, "role", json_string("assistant"), ok);
    set(m, "model", cstr_of(s->h.model), ok);
    set(m, "content", content, ok);
    set(m, "stop_reason", opt_str(reason), ok);
    set(m, "stop_sequence", stop_sequence_of(reason, s->stop_matched), ok);
    set(m, "usage", usage_of(u, ok), ok);
    return m;
}

/* {"type":"text","text":...} */
static json_t *text_block(const char *text, size_t len, bool *ok)
{
    json_t *b = typed("text", ok);
    set(b, "text", str_of(text, len), ok);
    return b;
}

/* {"type":"tool_use","id":..,"name":..,"input":ARGS}; empty: input {} */
static json_t *tool_block(const api_tool_call *t, bool empty, bool *ok)
{
    json_t *input = empty ? NULL : json_loads(t->arguments, 0, NULL);
    if (!input)
        input = json_object();
    json_t *b = typed("tool_use", ok);
    set(b, "id", cstr_of(t->id), ok);
    set(b, "name", cstr_of(t->name), ok);
    set(b, "input", input, ok);
    return b;
}

static char *dump(json_t *o, bool ok)
{
    char *s = o && ok ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* ------------------------------------------------------------ dialect */

static char *msg_full(api_stream *s, const api_choice *choices, size_t n,
                      const api_usage *u)
{
    bool ok = true;
    json_t *content = json_array();
    const char *reason = "end_turn";
    if (n > 0 && choices) {
        const api_choice *c = &choices[0];
        if ((c->len > 0 || c->n_calls == 0) &&
            json_array_append_new(content, text_block(c->text, c->len, &ok)) < 0)
            ok = false;
        for (size_t k = 0; k < c->n_calls; k++)
            if (json_array_append_new(content, tool_block(&c->calls[k], false, &ok)) < 0)
                ok = false;
        reason = api_messages_stop_reason(choices[0].finish_reason,
                                          s->stop_matched);
    }
    return dump(message_of(s, content, reason, u, &ok), ok);
}

static char *msg_start(api_stream *s, unsigned index, const api_usage *u)
{
    sse_buf b = {NULL, 0, true};
    if (index != 0)
        return sse_done(&b);
    bool ok = true;
    json_t *e = typed("message_start", &ok);
    set(e, "message", message_of(s, json_array(), NULL, u, &ok), &ok);
    sse_add(&b, s, "message_start", e, ok);

    e = typed("content_block_start", &ok);
    set(e, "index", json_integer(0), &ok);
    set(e, "content_block", text_block("", 0, &ok), &ok);
    sse_add(&b, s, "content_block_start", e, ok);
    s->n_blocks = 1;

    sse_add(&b, s, "ping", typed("ping", &ok), ok);
    return sse_done(&b);
}

static char *msg_delta(api_stream *s, const api_choice *d)
{
    sse_buf b = {NULL, 0, true};
    if (d->index != 0 || !d->text || d->len == 0)
        return sse_done(&b);
    bool ok = true;
    if (s->text_closed) { /* text after a tool call: a new text block */
        s->text_closed = false;
        s->text_at = s->n_blocks++;
        json_t *e = typed("content_block_start", &ok);
        set(e, "index", json_integer(s->text_at), &ok);
        set(e, "content_block", text_block("", 0, &ok), &ok);
        sse_add(&b, s, "content_block_start", e, ok);
    }
    json_t *delta = typed("text_delta", &ok);
    set(delta, "text", str_of(d->text, d->len), &ok);
    json_t *e = typed("content_block_delta", &ok);
    set(e, "index", json_integer(s->text_at), &ok);
    set(e, "delta", delta, &ok);
    sse_add(&b, s, "content_block_delta", e, ok);
    return sse_done(&b);
}

/* Closes the open text block, if any. */
static void text_stop(sse_buf *b, api_stream *s)
{
    if (s->text_closed)
        return;
    s->text_closed = true;
    bool ok = true;
    json_t *e = typed("content_block_stop", &ok);
    set(e, "index", json_integer(s->text_at), &ok);
    sse_add(b, s, "content_block_stop", e, ok);
}

/* A tool_use block after the text: start (input {}), the arguments as one
 * input_json_delta, stop. */
static char *msg_tool(api_stream *s, unsigned index, unsigned k, const api_tool_call *t)
{
    (void)k;
    sse_buf b = {NULL, 0, true};
    if (index != 0)
        return sse_done(&b);
    text_stop(&b, s);
    unsigned at = s->n_blocks++;
    bool ok = true;
    json_t *e = typed("content_block_start", &ok);
    set(e, "index", json_integer(at), &ok);
    set(e, "content_block", tool_block(t, true, &ok), &ok);
    sse_add(&b, s, "content_block_start", e, ok);
    json_t *delta = typed("input_json_delta", &ok);
    set(delta, "partial_json", cstr_of(t->arguments), &ok);
    e = typed("content_block_delta", &ok);
    set(e, "index", json_integer(at), &ok);
    set(e, "delta", delta, &ok);
    sse_add(&b, s, "content_block_delta", e, ok);
    e = typed("content_block_stop", &ok);
    set(e, "index", json_integer(at), &ok);
    sse_add(&b, s, "content_block_stop", e, ok);
    return sse_done(&b);
}

static char *msg_finish(api_stream *s, const api_choice *c)
{
    sse_buf b = {NULL, 0, true};
    if (c->index != 0)
        return sse_done(&b);
    text_stop(&b, s);
    return sse_done(&b);
}

static char *msg_end(api_stream *s, const api_choice *choices, size_t n,
                     const api_usage *u)
{
    sse_buf b = {NULL, 0, true};
    bool ok = true;
    const char *reason = n > 0 && choices
        ? api_messages_stop_reason(choices[0].finish_reason, s->stop_matched)
        : "end_turn";
    json_t *delta = json_object();
    set(delta, "stop_reason", opt_str(reason), &ok);
    set(delta, "stop_sequence", stop_sequence_of(reason, s->stop_matched),
        &ok);
    json_t *usage = json_object();
    set(usage, "output_tokens", json_integer(u ? u->completion_tokens : 0),
        &ok);
    json_t *e = typed("message_delta", &ok);
    set(e, "delta", delta, &ok);
    set(e, "usage", usage, &ok);
    sse_add(&b, s, "message_delta", e, ok);
    sse_add(&b, s, "message_stop", typed("message_stop", &ok), ok);
    return sse_done(&b);
}

const char *api_messages_error_type(unsigned status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

/* The type to send: the status's when none is given; OpenAI's names for
 * server failures in Anthropic's words. */
static const char *error_type(unsigned status, const char *type)
{
    if (!type)
        return api_messages_error_type(status);
    if (!strcmp(type, "server_error"))
        return "api_error";
    if (!strcmp(type, "service_unavailable"))
        return "overloaded_error";
    return type;
}

/* {"type":"error","error":{"type":...,"message":...}} as a tree. */
static json_t *error_of(unsigned status, const char *type,
                        const char *message, bool *ok)
{
    json_t *inner = typed(error_type(status, type), ok);
    set(inner, "message", cstr_of(message ? message : ""), ok);
    json_t *e = typed("error", ok);
    set(e, "error", inner, ok);
    return e;
}

static char *msg_stream_error(api_stream *s, unsigned status,
                              const char *type, const char *message)
{
    sse_buf b = {NULL, 0, true};
    bool ok = true;
    json_t *e = error_of(status, type, message, &ok);
    sse_add(&b, s, "error", e, ok);
    return sse_done(&b);
}

char *api_messages_error_json(unsigned status, const char *type,
                              const char *message)
{
    bool ok = true;
    json_t *e = error_of(status, type, message, &ok);
    return dump(e, ok);
}

char *api_messages_err_json(const api_err *err)
{
    return api_messages_error_json(err->status ? err->status : 400, NULL,
                                   err->message);
}

/* Anthropic's error object has no param or code: the parsers put the
 * field's path in the message instead. */
static char *msg_error(unsigned status, const char *type, const char *message,
                       const char *param, const char *code)
{
    (void)param;
    (void)code;
    return api_messages_error_json(status, type, message);
}

char *api_messages_count_json(long long n)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    set(o, "input_tokens", json_integer((json_int_t)n), &ok);
    return dump(o, ok);
}

const api_dialect api_dialect_messages = {
    .full = msg_full,
    .start = msg_start,
    .delta = msg_delta,
    .finish = msg_finish,
    .end = msg_end,
    .tool = msg_tool,
    .stream_error = msg_stream_error,
    .error = msg_error,
    .ping = "event: ping\ndata: {\"type\": \"ping\"}\n\n",
};
