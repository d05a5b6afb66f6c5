/* responses.c - api_dialect_responses: the OpenAI Responses wire format
 * (see responses.h; the parser is in responses_parse.c).
 *
 * The whole answer is a Response object whose output holds one message
 * item with one output_text part. A stream is a sequence of named SSE
 * events ("event: TYPE\ndata: {...}\n\n"), each carrying its type and a
 * sequence_number counted from 0 in api_stream.seq:
 *
 *   start    response.created, response.in_progress (status in_progress,
 *            output []), response.output_item.added (the message item,
 *            in_progress, content []), response.content_part.added (an
 *            empty output_text part)
 *   delta    response.output_text.delta
 *   finish   response.output_text.done, response.content_part.done,
 *            response.output_item.done
 *   end      response.completed, or response.incomplete (incomplete_details
 *            {"reason":"max_output_tokens"}) when finish_reason is "length"
 *   failure  error, then response.failed (status failed, error set)
 *
 * There is no "data: [DONE]" line: the last event ends the stream. The
 * message item's id is the response id with "resp_" turned into "msg_",
 * so every event of one stream names the same item.
 */
#include "dialect.h"
#include "error.h"
#include "stop.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ values */

/* A JSON string from any bytes: each maximal invalid UTF-8 subpart becomes
 * U+FFFD (as response.c renders chat text). */
static json_t *rsp_text(const char *s, size_t len)
{
    if (!s)
        return json_string("");
    json_t *j = json_stringn(s, len);
    if (j || len > (SIZE_MAX - 1) / 3)
        return j;
    char *fix = malloc(3 * len + 1);
    size_t o = 0;
    for (size_t i = 0; fix && i < len;) {
        bool valid;
        size_t n = api_utf8_next(s + i, len - i, &valid);
        memcpy(fix + o, valid ? s + i : "\xef\xbf\xbd", valid ? n : 3);
        o += valid ? n : 3;
        i += n;
    }
    j = fix ? json_stringn(fix, o) : NULL;
    free(fix);
    return j;
}

static json_t *rsp_cstr(const char *s)
{
    return rsp_text(s ? s : "", s ? strlen(s) : 0);
}

/* A float as the short decimal a client wrote (0.8, not 0.800000012). */
static json_t *rsp_float(float f)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)f);
    return json_real(strtod(buf, NULL));
}

/* json_object_set_new that records a failure in *ok (v's reference is
 * taken either way). */
static void rsp_put(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (json_object_set_new(o, key, v) < 0)
        *ok = false;
}

/* "msg_<the response id's tail>". */
static void rsp_item_id(const api_stream *s, char *buf, size_t cap)
{
    const char *id = s->h.id ? s->h.id : "";
    if (!strncmp(id, "resp_", 5))
        id += 5;
    snprintf(buf, cap, "msg_%s", id);
}

static bool rsp_is_length(const api_choice *c)
{
    return c && c->finish_reason && !strcmp(c->finish_reason, "length");
}

/* {"type":"output_text","text":...,"annotations":[],"logprobs":[]} */
static json_t *rsp_part(const char *text, size_t len)
{
    return json_pack("{s:s, s:o, s:[], s:[]}", "type", "output_text", "text",
                     rsp_text(text, len), "annotations", "logprobs");
}

/* The message item; c NULL: in progress, no content yet. */
static json_t *rsp_message(const api_stream *s, const api_choice *c)
{
    char id[API_ID_MAX + 8];
    rsp_item_id(s, id, sizeof id);
    const char *status = !c ? "in_progress"
                         : rsp_is_length(c) ? "incomplete" : "completed";
    json_t *content = json_array();
    if (c && json_array_append_new(content, rsp_part(c->text, c->len)) < 0) {
        json_decref(content);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, "type", "message",
                     "status", status, "role", "assistant", "content", content);
}

/* Call k's function_call item; done false: in progress, no arguments. */
static json_t *rsp_call(const api_stream *s, unsigned k, const api_tool_call *t, bool done)
{
    char id[API_ID_MAX + 24];
    const char *tail = s->h.id && !strncmp(s->h.id, "resp_", 5) ? s->h.id + 5 : "";
    snprintf(id, sizeof id, "fc_%s_%u", tail, k);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "id", id, "type", "function_call",
                     "status", done ? "completed" : "in_progress", "call_id", rsp_cstr(t->id),
                     "name", rsp_cstr(t->name), "arguments", rsp_cstr(done ? t->arguments : ""));
}

static json_t *rsp_usage(const api_usage *u)
{
    if (!u)
        return json_null();
    return json_pack("{s:I, s:{s:I}, s:I, s:{s:i}, s:I}",
                     "input_tokens", (json_int_t)u->prompt_tokens,
                     "input_tokens_details", "cached_tokens",
                     (json_int_t)u->cached_tokens,
                     "output_tokens", (json_int_t)u->completion_tokens,
                     "output_tokens_details", "reasoning_tokens", 0,
                     "total_tokens",
                     (json_int_t)(u->prompt_tokens + u->completion_tokens));
}

/* The Response object. c: the finished message (NULL: output []); error:
 * the failure's {code, message} (NULL: null). Fields OpenAI's SDKs require
 * are all present; the request's settings are echoed as they were used. */
static json_t *rsp_response(const api_stream *s, const char *status,
                            const api_choice *c, const api_usage *u,
                            json_t *error)
{
    const api_request *q = s->q;
    bool ok = true;
    json_t *o = json_object();
    rsp_put(o, "id", rsp_cstr(s->h.id), &ok);
    rsp_put(o, "object", json_string("response"), &ok);
    rsp_put(o, "created_at", json_integer(s->h.created), &ok);
    rsp_put(o, "status", json_string(status), &ok);
    rsp_put(o, "background", json_false(), &ok);
    rsp_put(o, "error", error ? error : json_null(), &ok);
    rsp_put(o, "incomplete_details", rsp_is_length(c)
            ? json_pack("{s:s}", "reason", "max_output_tokens") : json_null(),
            &ok);
    /* api_request keeps instructions as a system message only. */
    rsp_put(o, "instructions", json_null(), &ok);
    rsp_put(o, "max_output_tokens", q && q->max_tokens > 0
            ? json_integer(q->max_tokens) : json_null(), &ok);
    rsp_put(o, "max_tool_calls", json_null(), &ok);
    rsp_put(o, "model", rsp_cstr(s->h.model), &ok);
    json_t *output = json_array();
    if (c && json_array_append_new(output, rsp_message(s, c)) < 0)
        ok = false;
    for (size_t k = 0; c && k < c->n_calls; k++)
        if (json_array_append_new(output, rsp_call(s, (unsigned)k, &c->calls[k], true)) < 0)
            ok = false;
    rsp_put(o, "output", output, &ok);
    rsp_put(o, "parallel_tool_calls", json_true(), &ok);
    rsp_put(o, "previous_response_id", json_null(), &ok);
    rsp_put(o, "reasoning", json_pack("{s:n, s:n}", "effort", "summary"), &ok);
    rsp_put(o, "service_tier", json_string("default"), &ok);
    rsp_put(o, "store", json_false(), &ok);
    rsp_put(o, "temperature", q ? rsp_float(q->sampling.temp) : json_null(), &ok);
    rsp_put(o, "text", json_pack("{s:{s:s}}", "format", "type", "text"), &ok);
    rsp_put(o, "tool_choice", json_string("auto"), &ok);
    rsp_put(o, "tools", json_array(), &ok);
    rsp_put(o, "top_logprobs", json_integer(0), &ok);
    rsp_put(o, "top_p", q ? rsp_float(q->sampling.top_p) : json_null(), &ok);
    rsp_put(o, "truncation", json_string("disabled"), &ok);
    rsp_put(o, "usage", rsp_usage(u), &ok);
    rsp_put(o, "user", q && q->user ? rsp_cstr(q->user) : json_null(), &ok);
    rsp_put(o, "metadata", json_object(), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ------------------------------------------------------------ events */

/* A growing buffer of SSE events; NULL data after an allocation failed. */
typedef struct rsp_buf {
    char *data;
    size_t len;
    bool failed;
} rsp_buf;

/* Appends "event: TYPE\ndata: {"type":TYPE, ...fields, "sequence_number":N}
 * \n\n" and releases fields (an object, or NULL after a failure). */
static void rsp_event(rsp_buf *b, api_stream *s, const char *type,
                      json_t *fields)
{
    json_t *o = json_pack("{s:s}", "type", type);
    bool ok = fields != NULL && o != NULL;
    if (ok && json_object_update(o, fields) < 0)
        ok = false;
    json_decref(fields);
    rsp_put(o, "sequence_number", json_integer(s->seq++), &ok);
    char *js = ok ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    size_t add = js ? strlen(type) + strlen(js) + 18 : 0;
    char *nd = js && !b->failed ? realloc(b->data, b->len + add + 1) : NULL;
    if (!nd) {
        b->failed = true;
        free(js);
        return;
    }
    b->data = nd;
    b->len += (size_t)snprintf(nd + b->len, add + 1, "event: %s\ndata: %s\n\n",
                               type, js);
    free(js);
}

/* The buffer's bytes ("" when empty), NULL after a failure. */
static char *rsp_done(rsp_buf *b)
{
    if (b->failed) {
        free(b->data);
        return NULL;
    }
    return b->data ? b->data : strdup("");
}

/* item_id, output_index, content_index (where a text event belongs), then
 * key: v (its reference taken) and, for the text events, "logprobs": []. */
static json_t *rsp_where(const api_stream *s, const char *key, json_t *v,
                         bool logprobs)
{
    char id[API_ID_MAX + 8];
    rsp_item_id(s, id, sizeof id);
    json_t *o = json_pack("{s:s, s:i, s:i}", "item_id", id, "output_index", 0,
                          "content_index", 0);
    bool ok = o != NULL;
    rsp_put(o, key, v, &ok);
    if (logprobs)
        rsp_put(o, "logprobs", json_array(), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *rsp_with_response(json_t *response)
{
    return response ? json_pack("{s:o}", "response", response) : NULL;
}

static json_t *rsp_with_item(json_t *item)
{
    return item ? json_pack("{s:i, s:o}", "output_index", 0, "item", item)
                : NULL;
}

/* ------------------------------------------------------------ dialect */

static char *rsp_full(api_stream *s, const api_choice *choices, size_t n,
                      const api_usage *u)
{
    const api_choice *c = n ? choices : NULL;
    json_t *o = rsp_response(s, rsp_is_length(c) ? "incomplete" : "completed",
                             c, u, NULL);
    char *js = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    return js;
}

static char *rsp_start(api_stream *s, unsigned index, const api_usage *u)
{
    (void)index; /* one choice: the daemon runs n = 1 */
    (void)u;
    rsp_buf b = {0};
    rsp_event(&b, s, "response.created",
              rsp_with_response(rsp_response(s, "in_progress", NULL, NULL, NULL)));
    rsp_event(&b, s, "response.in_progress",
              rsp_with_response(rsp_response(s, "in_progress", NULL, NULL, NULL)));
    rsp_event(&b, s, "response.output_item.added",
              rsp_with_item(rsp_message(s, NULL)));
    rsp_event(&b, s, "response.content_part.added",
              rsp_where(s, "part", rsp_part("", 0), false));
    return rsp_done(&b);
}

static char *rsp_delta(api_stream *s, const api_choice *d)
{
    rsp_buf b = {0};
    if (d->text && d->len)
        rsp_event(&b, s, "response.output_text.delta",
                  rsp_where(s, "delta", rsp_text(d->text, d->len), true));
    return rsp_done(&b);
}

/* A function call: its item (output_index k + 1, after the message),
 * the arguments in one delta, then done. */
static char *rsp_tool(api_stream *s, unsigned index, unsigned k, const api_tool_call *t)
{
    (void)index;
    rsp_buf b = {0};
    json_t *item = rsp_call(s, k, t, false);
    const char *item_id = item ? json_string_value(json_object_get(item, "id")) : NULL;
    char id[API_ID_MAX + 24];
    snprintf(id, sizeof id, "%s", item_id ? item_id : "");
    rsp_event(&b, s, "response.output_item.added",
              item ? json_pack("{s:i, s:o}", "output_index", k + 1, "item", item) : NULL);
    rsp_event(&b, s, "response.function_call_arguments.delta",
              json_pack("{s:s, s:i, s:o}", "item_id", id, "output_index", k + 1, "delta",
                        rsp_cstr(t->arguments)));
    rsp_event(&b, s, "response.function_call_arguments.done",
              json_pack("{s:s, s:i, s:o}", "item_id", id, "output_index", k + 1, "arguments",
                        rsp_cstr(t->arguments)));
    json_t *done = rsp_call(s, k, t, true);
    rsp_event(&b, s, "response.output_item.done",
              done ? json_pack("{s:i, s:o}", "output_index", k + 1, "item", done) : NULL);
    return rsp_done(&b);
}

static char *rsp_finish(api_stream *s, const api_choice *c)
{
    rsp_buf b = {0};
    rsp_event(&b, s, "response.output_text.done",
              rsp_where(s, "text", rsp_text(c->text, c->len), true));
    rsp_event(&b, s, "response.content_part.done",
              rsp_where(s, "part", rsp_part(c->text, c->len), false));
    rsp_event(&b, s, "response.output_item.done",
              rsp_with_item(rsp_message(s, c)));
    return rsp_done(&b);
}

static char *rsp_end(api_stream *s, const api_choice *choices, size_t n,
                     const api_usage *u)
{
    const api_choice *c = n ? choices : NULL;
    bool length = rsp_is_length(c);
    rsp_buf b = {0};
    rsp_event(&b, s, length ? "response.incomplete" : "response.completed",
              rsp_with_response(rsp_response(
                  s, length ? "incomplete" : "completed", c, u, NULL)));
    return rsp_done(&b);
}

/* OpenAI's stream error event carries code, message and param; the
 * response.failed that follows carries the Response with status "failed"
 * and error {code, message}, where code is one of OpenAI's ResponseError
 * codes (server_error, rate_limit_exceeded). */
static char *rsp_stream_error(api_stream *s, unsigned status, const char *type,
                              const char *message)
{
    const char *code = status == 429 ? "rate_limit_exceeded" : "server_error";
    const char *etype = type ? type : api_error_type_for_status(status);
    rsp_buf b = {0};
    rsp_event(&b, s, "error",
              json_pack("{s:o, s:o, s:n}", "code", rsp_cstr(etype), "message",
                        rsp_cstr(message), "param"));
    json_t *error = json_pack("{s:s, s:o}", "code", code, "message",
                              rsp_cstr(message));
    rsp_event(&b, s, "response.failed",
              error ? rsp_with_response(rsp_response(s, "failed", NULL, NULL,
                                                     error))
                    : NULL);
    return rsp_done(&b);
}

const api_dialect api_dialect_responses = {
    .full = rsp_full,
    .start = rsp_start,
    .delta = rsp_delta,
    .finish = rsp_finish,
    .end = rsp_end,
    .tool = rsp_tool,
    .stream_error = rsp_stream_error,
    .error = api_error_json, /* the OpenAI error object, as for chat */
    .ping = API_SSE_PING,
};
