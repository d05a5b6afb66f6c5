/* response.c - see response.h.
 *
 * Objects are built as jansson trees and dumped compact. Field order
 * follows OpenAI's own responses (jansson keeps insertion order), which
 * only matters to people reading the output.
 */
#include "response.h"
#include "stop.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ values */

/* A JSON string from any bytes: invalid UTF-8 becomes U+FFFD (one per
 * maximal invalid subpart). NUL bytes are kept (rendered \u0000). */
static json_t *text_value(const char *s, size_t len)
{
    if (!s)
        return json_string("");
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    /* Invalid UTF-8 (or out of memory): each invalid byte run turns into
     * 3 bytes at most, so 3 * len bounds the copy. */
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *fix = malloc(3 * len + 1);
    if (!fix)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        bool valid;
        size_t n = api_utf8_next(s + i, len - i, &valid);
        if (valid) {
            memcpy(fix + o, s + i, n);
            o += n;
        } else {
            memcpy(fix + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
        i += n;
    }
    j = json_stringn(fix, o);
    free(fix);
    return j;
}

static json_t *cstr_value(const char *s)
{
    return text_value(s ? s : "", s ? strlen(s) : 0);
}

/* JSON has no infinities: OpenAI reports impossible tokens as -9999. */
static json_t *logprob_value(float lp)
{
    return json_real(isfinite(lp) ? (double)lp : -9999.0);
}

/* The token's raw bytes, as chat logprobs report them. */
static json_t *bytes_value(const char *s, size_t len)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < len; i++)
        if (json_array_append_new(a, json_integer((unsigned char)s[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* json_object_set_new that remembers a failure (a NULL value from an
 * allocation that failed, or the set itself failing) in *ok. The value's
 * reference is taken in every case. */
static void put(json_t *o, const char *key, json_t *v, bool *ok)
{
    /* jansson releases v when o is NULL or not an object. */
    if (json_object_set_new(o, key, v) < 0)
        *ok = false;
}

static void push(json_t *a, json_t *v, bool *ok)
{
    if (json_array_append_new(a, v) < 0)
        *ok = false;
}

/* Dump and release; NULL when the tree is incomplete. %.9g keeps every
 * float exactly. */
static char *finish(json_t *root, bool ok)
{
    char *s = NULL;
    if (root && ok)
        s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(root);
    return s;
}

/* ------------------------------------------------------------ logprobs */

/* Chat: {"content":[{token, logprob, bytes, top_logprobs:[...]}],
 *        "refusal":null} */
static json_t *chat_logprobs(const api_choice *c)
{
    bool ok = true;
    json_t *lp = json_object();
    json_t *content = json_array();
    for (size_t i = 0; i < c->n_lp && c->lp; i++) {
        const api_logprob *t = &c->lp[i];
        json_t *e = json_object();
        put(e, "token", text_value(t->token, t->len), &ok);
        put(e, "logprob", logprob_value(t->logprob), &ok);
        put(e, "bytes", bytes_value(t->token, t->len), &ok);
        json_t *top = json_array();
        for (size_t k = 0; k < t->n_top && t->top; k++) {
            const api_top_logprob *a = &t->top[k];
            json_t *ae = json_object();
            put(ae, "token", text_value(a->token, a->len), &ok);
            put(ae, "logprob", logprob_value(a->logprob), &ok);
            put(ae, "bytes", bytes_value(a->token, a->len), &ok);
            push(top, ae, &ok);
        }
        put(e, "top_logprobs", top, &ok);
        push(content, e, &ok);
    }
    put(lp, "content", content, &ok);
    put(lp, "refusal", json_null(), &ok);
    if (!ok) {
        json_decref(lp);
        return NULL;
    }
    return lp;
}

/* Completions: {"tokens":[...], "token_logprobs":[...],
 *               "top_logprobs":[{text: logprob, ...}, ...],
 *               "text_offset":[...]} */
static json_t *completion_logprobs(const api_choice *c)
{
    bool ok = true;
    json_t *lp = json_object();
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(),
           *offs = json_array();
    size_t off = c->text_offset;
    for (size_t i = 0; i < c->n_lp && c->lp; i++) {
        const api_logprob *t = &c->lp[i];
        push(tokens, text_value(t->token, t->len), &ok);
        push(lps, logprob_value(t->logprob), &ok);
        json_t *top = json_object();
        /* Alternatives whose text renders the same (two byte tokens that
         * both become U+FFFD) share a key: the more likely one is kept. */
        for (size_t k = t->n_top; k > 0 && t->top; k--) {
            const api_top_logprob *a = &t->top[k - 1];
            json_t *key = text_value(a->token, a->len);
            if (!key) {
                ok = false;
                break;
            }
            put(top, json_string_value(key), logprob_value(a->logprob), &ok);
            json_decref(key);
        }
        push(tops, top, &ok);
        push(offs, json_integer((json_int_t)off), &ok);
        off += t->len;
    }
    put(lp, "tokens", tokens, &ok);
    put(lp, "token_logprobs", lps, &ok);
    put(lp, "top_logprobs", tops, &ok);
    put(lp, "text_offset", offs, &ok);
    if (!ok) {
        json_decref(lp);
        return NULL;
    }
    return lp;
}

static json_t *logprobs_value(api_kind kind, const api_choice *c)
{
    if (!c->logprobs)
        return json_null();
    return kind == API_CHAT ? chat_logprobs(c) : completion_logprobs(c);
}

static json_t *finish_value(const api_choice *c)
{
    return c->finish_reason ? cstr_value(c->finish_reason) : json_null();
}

/* ------------------------------------------------------------ objects */

static json_t *usage_value(const api_usage *u)
{
    bool ok = true;
    json_t *o = json_object();
    put(o, "prompt_tokens", json_integer(u->prompt_tokens), &ok);
    put(o, "completion_tokens", json_integer(u->completion_tokens), &ok);
    put(o, "total_tokens",
        json_integer(u->prompt_tokens + u->completion_tokens), &ok);
    json_t *d = json_object();
    put(d, "cached_tokens", json_integer(u->cached_tokens), &ok);
    put(o, "prompt_tokens_details", d, &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *head_object(const api_head *h, const char *object, bool *ok)
{
    json_t *o = json_object();
    if (!o) {
        *ok = false;
        return NULL;
    }
    put(o, "id", cstr_value(h->id), ok);
    put(o, "object", json_string(object), ok);
    put(o, "created", json_integer(h->created), ok);
    put(o, "model", cstr_value(h->model), ok);
    put(o, "system_fingerprint",
        h->system_fingerprint ? cstr_value(h->system_fingerprint)
                              : json_null(), ok);
    return o;
}

/* {"id", "type": "function", "function": {"name", "arguments"}}, with
 * "index" k in a chunk; head false: only the arguments (a later chunk). */
static json_t *tool_call_value(const api_tool_call *t, int k, bool head)
{
    bool ok = true;
    json_t *o = json_object(), *fn = json_object();
    if (k >= 0)
        put(o, "index", json_integer(k), &ok);
    if (head) {
        put(o, "id", cstr_value(t->id), &ok);
        put(o, "type", json_string("function"), &ok);
        put(fn, "name", cstr_value(t->name), &ok);
    }
    put(fn, "arguments", cstr_value(k >= 0 && head ? "" : t->arguments), &ok);
    put(o, "function", fn, &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *chat_choice(const api_choice *c, bool chunk)
{
    bool ok = true;
    json_t *o = json_object();
    put(o, "index", json_integer(c->index), &ok);
    if (chunk) {
        json_t *delta = json_object();
        if (c->role)
            put(delta, "role", json_string("assistant"), &ok);
        if (c->text)
            put(delta, "content", text_value(c->text, c->len), &ok);
        put(o, "delta", delta, &ok);
    } else {
        json_t *msg = json_object();
        put(msg, "role", json_string("assistant"), &ok);
        put(msg, "content",
            c->text && (c->len || !c->n_calls) ? text_value(c->text, c->len) : json_null(),
            &ok);
        put(msg, "refusal", json_null(), &ok);
        if (c->n_calls) {
            json_t *calls = json_array();
            for (size_t k = 0; k < c->n_calls; k++)
                push(calls, tool_call_value(&c->calls[k], -1, true), &ok);
            put(msg, "tool_calls", calls, &ok);
        }
        put(o, "message", msg, &ok);
    }
    put(o, "logprobs", logprobs_value(API_CHAT, c), &ok);
    put(o, "finish_reason", finish_value(c), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *text_choice(const api_choice *c)
{
    bool ok = true;
    json_t *o = json_object();
    put(o, "text", text_value(c->text, c->len), &ok);
    put(o, "index", json_integer(c->index), &ok);
    put(o, "logprobs", logprobs_value(API_COMPLETION, c), &ok);
    put(o, "finish_reason", finish_value(c), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *choices_value(api_kind kind, const api_choice *c, size_t n,
                             bool chunk)
{
    bool ok = true;
    json_t *a = json_array();
    for (size_t i = 0; i < n && c; i++)
        push(a, kind == API_CHAT ? chat_choice(&c[i], chunk)
                                 : text_choice(&c[i]), &ok);
    if (!ok) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* ------------------------------------------------------------ public */

void api_format_id(char *buf, api_kind kind, uint64_t unique)
{
    static const char *const prefix[] = {"chatcmpl-", "cmpl-", "msg_", "resp_"};
    snprintf(buf, API_ID_MAX, "%s%016" PRIx64,
             (unsigned)kind < 4 ? prefix[kind] : "cmpl-", unique);
}

char *api_response_json(api_kind kind, const api_head *h,
                        const api_choice *choices, size_t n_choices,
                        const api_usage *usage)
{
    bool ok = true;
    json_t *o = head_object(h, kind == API_CHAT ? "chat.completion"
                                                : "text_completion", &ok);
    put(o, "choices", choices_value(kind, choices, n_choices, false), &ok);
    if (usage)
        put(o, "usage", usage_value(usage), &ok);
    return finish(o, ok);
}

char *api_chunk_json(api_kind kind, const api_head *h,
                     const api_choice *choices, size_t n_choices)
{
    bool ok = true;
    json_t *o = head_object(h, kind == API_CHAT ? "chat.completion.chunk"
                                                : "text_completion", &ok);
    put(o, "choices", choices_value(kind, choices, n_choices, true), &ok);
    return finish(o, ok);
}

char *api_tool_chunk_json(const api_head *h, unsigned index, unsigned k,
                          const api_tool_call *call, bool head)
{
    bool ok = true;
    json_t *o = head_object(h, "chat.completion.chunk", &ok);
    json_t *choice = json_object(), *delta = json_object(), *calls = json_array();
    push(calls, tool_call_value(call, (int)k, head), &ok);
    put(delta, "tool_calls", calls, &ok);
    put(choice, "index", json_integer(index), &ok);
    put(choice, "delta", delta, &ok);
    put(choice, "logprobs", json_null(), &ok);
    put(choice, "finish_reason", json_null(), &ok);
    json_t *a = json_array();
    push(a, choice, &ok);
    put(o, "choices", a, &ok);
    return finish(o, ok);
}

char *api_usage_chunk_json(api_kind kind, const api_head *h,
                           const api_usage *usage)
{
    bool ok = true;
    json_t *o = head_object(h, kind == API_CHAT ? "chat.completion.chunk"
                                                : "text_completion", &ok);
    put(o, "choices", json_array(), &ok);
    put(o, "usage", usage ? usage_value(usage) : json_null(), &ok);
    return finish(o, ok);
}

char *api_sse_event(const char *json)
{
    static const char pre[] = "data: ", post[] = "\n\n";
    size_t n = strlen(json);
    if (n > SIZE_MAX - sizeof pre - sizeof post)
        return NULL;
    char *s = malloc(sizeof pre - 1 + n + sizeof post);
    if (!s)
        return NULL;
    memcpy(s, pre, sizeof pre - 1);
    memcpy(s + sizeof pre - 1, json, n);
    memcpy(s + sizeof pre - 1 + n, post, sizeof post);
    return s;
}
