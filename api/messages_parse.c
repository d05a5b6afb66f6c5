/* messages_parse.c - the request side of messages.h: Anthropic's body
 * into an api_request.
 *
 * Fields are checked in a fixed order (model, max_tokens, system,
 * messages, the refused features, then sampling, stop_sequences and
 * stream), so the first error reported for a body is always the same one.
 */
#include "json_read.h"
#include "messages.h"
#include "messages_tools.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ------------------------------------------------------------ errors */

/* A 400 whose message starts with the field's path (none for errors about
 * the whole body); returns -1 so that callers can `return bad(...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int bad(api_err *err, const char *path, const char *code,
               const char *fmt, ...)
{
    err->status = 400;
    snprintf(err->param, sizeof err->param, "%s", path ? path : "");
    snprintf(err->code, sizeof err->code, "%s", code ? code : "");
    int k = path ? snprintf(err->message, sizeof err->message, "%s: ", path)
                 : 0;
    if (k < 0 || (size_t)k >= sizeof err->message)
        k = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message + k, sizeof err->message - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}


/* ------------------------------------------------------------ scalars */

/* The readers return 1 (value stored), 0 (not given) or -1 (err set). */

static int read_number(json_t *root, const char *key, double lo, double hi,
                       double *out, api_err *err)
{
    json_t *v = json_read_given(root, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return bad(err, key, API_CODE_INVALID_TYPE,
                   "must be a number from %g to %g (got %s)", lo, hi,
                   json_read_kind(v));
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return bad(err, key, API_CODE_INVALID_VALUE,
                   "must be a number from %g to %g (got %g)", lo, hi, x);
    *out = x;
    return 1;
}

/* An integer lo..hi; an integral real (16.0) counts, as JavaScript cannot
 * tell them apart. */
static int read_integer(json_t *root, const char *key, int64_t lo,
                        int64_t hi, int64_t *out, api_err *err)
{
    json_t *v = json_read_given(root, key);
    if (!v)
        return 0;
    double d = json_number_value(v);
    bool integral = json_is_integer(v) ||
                    (json_is_real(v) && d == floor(d) && fabs(d) < 9.2e18);
    if (!integral)
        return bad(err, key, API_CODE_INVALID_TYPE,
                   "must be an integer from %lld to %lld (got %s)",
                   (long long)lo, (long long)hi, json_read_kind(v));
    int64_t x = json_is_integer(v) ? (int64_t)json_integer_value(v)
                                   : (int64_t)d;
    if (x < lo || x > hi)
        return bad(err, key, API_CODE_INVALID_VALUE,
                   "must be an integer from %lld to %lld (got %lld)",
                   (long long)lo, (long long)hi, (long long)x);
    *out = x;
    return 1;
}

/* ------------------------------------------------------------ blocks */

/* Why a block type is refused; NULL for types this server does not know. */
static const char *refused_block(const char *type)
{
    static const struct {
        const char *type, *why;
    } known[] = {
        {"image", "this server reads text only"},
        {"document", "this server reads text only"},
        {"search_result", "this server reads text only"},
        {"container_upload", "this server reads text only"},
        {"tool_use", "it belongs in an assistant message"},
        {"tool_result", "it belongs in a user message"},
        {"server_tool_use", "server tools are not supported"},
        {"web_search_tool_result", "server tools are not supported"},
        {"thinking", "extended thinking is not supported"},
        {"redacted_thinking", "extended thinking is not supported"},
    };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(type, known[i].type))
            return known[i].why;
    return NULL;
}

/* Content as a string or an array of text blocks, concatenated (no
 * separator) into *out / *out_len. path names the field ("system",
 * "messages.2.content"). Blocks of type `other` (tool_use, tool_result;
 * NULL: none) are passed over: the caller reads them. */
static int read_text(json_t *c, const char *path, const char *other, char **out,
                     size_t *out_len, api_err *err)
{
    char at[64];
    if (json_is_string(c)) {
        *out_len = json_string_length(c);
        *out = malloc(*out_len + 1);
        if (!*out)
            return json_read_oom(err);
        memcpy(*out, json_string_value(c), *out_len + 1);
        return 0;
    }
    if (!json_is_array(c))
        return bad(err, path, API_CODE_INVALID_TYPE,
                   "must be a string or an array of content blocks (got %s)",
                   json_read_kind(c));
    /* First pass: check every block and add up the text. */
    size_t total = 0;
    for (size_t i = 0; i < json_array_size(c); i++) {
        json_t *b = json_array_get(c, i);
        snprintf(at, sizeof at, "%s.%zu", path, i);
        if (!json_is_object(b))
            return bad(err, at, API_CODE_INVALID_TYPE,
                       "must be a content block object (got %s)", json_read_kind(b));
        json_t *t = json_object_get(b, "type");
        if (!json_is_string(t)) {
            snprintf(at, sizeof at, "%s.%zu.type", path, i);
            return bad(err, at, t ? API_CODE_INVALID_TYPE : API_CODE_MISSING,
                       "must be a string such as \"text\"");
        }
        const char *type = json_string_value(t);
        if (other && !strcmp(type, other))
            continue;
        if (strcmp(type, "text")) {
            const char *why = refused_block(type);
            if (why)
                return bad(err, at, API_CODE_UNSUPPORTED_VALUE,
                           "content blocks of type '%s' are not supported (%s)",
                           type, why);
            return bad(err, at, API_CODE_INVALID_VALUE,
                       "unknown content block type '%.40s' (only \"text\" is "
                       "supported)", type);
        }
        json_t *text = json_object_get(b, "text");
        if (!json_is_string(text)) {
            snprintf(at, sizeof at, "%s.%zu.text", path, i);
            return bad(err, at, text ? API_CODE_INVALID_TYPE : API_CODE_MISSING,
                       "must be a string");
        }
        total += json_string_length(text);
    }
    /* Second pass: copy. */
    *out = malloc(total + 1);
    if (!*out)
        return json_read_oom(err);
    size_t o = 0;
    for (size_t i = 0; i < json_array_size(c); i++) {
        json_t *text = json_object_get(json_array_get(c, i), "text");
        if (!json_is_string(text))
            continue; /* a block of type `other` */
        memcpy(*out + o, json_string_value(text), json_string_length(text));
        o += json_string_length(text);
    }
    (*out)[o] = '\0';
    *out_len = o;
    return 0;
}

/* ------------------------------------------------------------ messages */

/* Message i into r->messages: a user's tool_result blocks first, each a
 * tool message, then its text (unless it held only results); an
 * assistant's text and its tool_use blocks as calls. */
static int read_message(json_t *m, size_t i, api_request *rq, api_err *err)
{
    api_message *dst = &rq->messages[rq->n_messages];
    char at[64];
    snprintf(at, sizeof at, "messages.%zu", i);
    if (!json_is_object(m))
        return bad(err, at, API_CODE_INVALID_TYPE,
                   "must be an object with 'role' and 'content' (got %s)",
                   json_read_kind(m));
    snprintf(at, sizeof at, "messages.%zu.role", i);
    json_t *r = json_read_given(m, "role");
    if (!r)
        return bad(err, at, API_CODE_MISSING, "is required");
    if (!json_is_string(r))
        return bad(err, at, API_CODE_INVALID_TYPE,
                   "must be \"user\" or \"assistant\" (got %s)", json_read_kind(r));
    const char *name = json_string_value(r);
    api_role role;
    if (!strcmp(name, "user"))
        role = API_ROLE_USER;
    else if (!strcmp(name, "assistant"))
        role = API_ROLE_ASSISTANT;
    else if (!strcmp(name, "system"))
        return bad(err, at, API_CODE_INVALID_VALUE,
                   "must be \"user\" or \"assistant\"; give the system "
                   "prompt in the top-level 'system' field");
    else
        return bad(err, at, API_CODE_INVALID_VALUE,
                   "must be \"user\" or \"assistant\" (got \"%.40s\")", name);
    snprintf(at, sizeof at, "messages.%zu.content", i);
    json_t *c = json_read_given(m, "content");
    if (!c)
        return bad(err, at, API_CODE_MISSING, "is required");
    size_t results = role == API_ROLE_USER ? api_messages_n_results(c) : 0;
    if (results) {
        if (api_messages_results(c, at, rq, err) < 0)
            return -1;
        if (json_array_size(c) == results)
            return 0; /* only results: no user text */
        dst = &rq->messages[rq->n_messages];
    }
    dst->role = role;
    rq->n_messages++; /* counted now so that api_request_free frees it */
    if (read_text(c, at, role == API_ROLE_USER ? "tool_result" : "tool_use", &dst->content,
                  &dst->content_len, err) < 0)
        return -1;
    return role == API_ROLE_ASSISTANT ? api_messages_calls(c, at, dst, err) : 0;
}

/* system (optional) and messages (required, at least one) into
 * r->messages, the system prompt first. */
static int read_conversation(json_t *root, api_request *r, api_err *err)
{
    json_t *sys = json_read_given(root, "system");
    json_t *msgs = json_read_given(root, "messages");
    char *sys_text = NULL;
    size_t sys_len = 0;
    if (sys && read_text(sys, "system", NULL, &sys_text, &sys_len, err) < 0)
        return -1;
    if (sys_text && sys_len == 0) { /* "" or []: no system prompt */
        free(sys_text);
        sys_text = NULL;
    }
    int rc = -1;
    if (!msgs) {
        bad(err, "messages", API_CODE_MISSING, "is required");
        goto out;
    }
    if (!json_is_array(msgs)) {
        bad(err, "messages", API_CODE_INVALID_TYPE,
            "must be an array of messages (got %s)", json_read_kind(msgs));
        goto out;
    }
    size_t n = json_array_size(msgs);
    if (n == 0) {
        bad(err, "messages", API_CODE_INVALID_VALUE,
            "must hold at least one message");
        goto out;
    }
    size_t first = sys_text ? 1 : 0, room = n + first;
    for (size_t i = 0; i < n; i++) /* tool results become messages of their own */
        room += api_messages_n_results(json_object_get(json_array_get(msgs, i), "content"));
    r->messages = calloc(room, sizeof *r->messages);
    if (!r->messages) {
        json_read_oom(err);
        goto out;
    }
    if (sys_text) {
        r->messages[0].role = API_ROLE_SYSTEM;
        r->messages[0].content = sys_text;
        r->messages[0].content_len = sys_len;
        r->n_messages = 1;
        sys_text = NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (read_message(json_array_get(msgs, i), i, r, err) < 0)
            goto out;
    rc = 0;
out:
    free(sys_text);
    return rc;
}

/* ------------------------------------------------------------ refused */

/* Tools and output_format (messages_tools.c), and Anthropic features this
 * server cannot honour. Neutral values are let through, as some clients
 * always send them: thinking {"type":"disabled"}. */
static int refuse_features(json_t *root, api_request *r, api_err *err)
{
    if (api_messages_tools(root, r, err) < 0)
        return -1;
    json_t *v = json_read_given(root, "thinking");
    if (v) {
        const char *t = json_string_value(json_object_get(v, "type"));
        if (!t || strcmp(t, "disabled"))
            return bad(err, "thinking", API_CODE_UNSUPPORTED_PARAM,
                       "extended thinking is not supported");
    }
    static const char *const unsupported[] = {"mcp_servers", "container"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (json_read_given(root, unsupported[i]))
            return bad(err, unsupported[i], API_CODE_UNSUPPORTED_PARAM,
                       "is not supported");
    return 0;
}

/* ------------------------------------------------------------ generation */

static int read_stop_sequences(json_t *root, api_request *r, api_err *err)
{
    json_t *v = json_read_given(root, "stop_sequences");
    if (!v)
        return 0;
    if (!json_is_array(v))
        return bad(err, "stop_sequences", API_CODE_INVALID_TYPE,
                   "must be an array of strings (got %s)", json_read_kind(v));
    if (json_array_size(v) > API_MAX_STOP)
        return bad(err, "stop_sequences", API_CODE_INVALID_VALUE,
                   "holds %zu strings; this server takes at most %d",
                   json_array_size(v), API_MAX_STOP);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        char at[64];
        snprintf(at, sizeof at, "stop_sequences.%zu", i);
        if (!json_is_string(s))
            return bad(err, at, API_CODE_INVALID_TYPE,
                       "must be a string (got %s)", json_read_kind(s));
        size_t n = json_string_length(s);
        if (n == 0)
            continue; /* it would match everywhere */
        if (n > API_MAX_STOP_LEN)
            return bad(err, at, API_CODE_INVALID_VALUE,
                       "is %zu bytes long; the limit is %d", n,
                       API_MAX_STOP_LEN);
        r->stop[r->n_stop] = strdup(json_string_value(s));
        if (!r->stop[r->n_stop])
            return json_read_oom(err);
        r->n_stop++;
    }
    r->set |= API_SET_STOP;
    return 0;
}

static int read_max_tokens(json_t *root, api_request *r, bool need_max,
                           api_err *err)
{
    int64_t i;
    int rc = read_integer(root, "max_tokens", 1, INT32_MAX, &i, err);
    if (rc < 0)
        return -1;
    if (rc == 0 && need_max)
        return bad(err, "max_tokens", API_CODE_MISSING, "is required");
    if (rc) {
        r->max_tokens = i;
        r->set |= API_SET_MAX_TOKENS;
    }
    return 0;
}

static int read_generation(json_t *root, api_request *r, api_err *err)
{
    int64_t i;
    double d;
    int rc;
    if ((rc = read_number(root, "temperature", 0, 1, &d, err)) < 0)
        return -1;
    if (rc) {
        r->sampling.temp = (float)d;
        r->set |= API_SET_TEMPERATURE;
    }
    if ((rc = read_number(root, "top_p", 0, 1, &d, err)) < 0)
        return -1;
    if (rc) {
        r->sampling.top_p = (float)d;
        r->set |= API_SET_TOP_P;
    }
    if ((rc = read_integer(root, "top_k", 0, INT32_MAX, &i, err)) < 0)
        return -1;
    if (rc) {
        r->sampling.top_k = (int32_t)i;
        r->set |= API_SET_TOP_K;
    }
    if (read_stop_sequences(root, r, err) < 0)
        return -1;
    json_t *s = json_read_given(root, "stream");
    if (s && !json_is_boolean(s))
        return bad(err, "stream", API_CODE_INVALID_TYPE,
                   "must be a boolean (got %s)", json_read_kind(s));
    r->stream = json_is_true(s);
    return 0;
}

/* ------------------------------------------------------------ entry */

/* jansson before 2.14 reads nested arrays by recursion without a limit: a
 * body of a few megabytes of '[' would overflow the stack. No request
 * nests deeper than a handful of levels; bodies deeper than this are
 * refused before parsing. Brackets inside strings do not count. */
#define MESSAGES_MAX_DEPTH 64

static bool nests_too_deep(const char *s, size_t len)
{
    size_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"') { /* skip the string, escapes included */
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
        } else if (c == '[' || c == '{') {
            if (++depth > MESSAGES_MAX_DEPTH)
                return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return false;
}

/* The body as a JSON object, or NULL with err set. */
static json_t *load_object(const char *body, size_t len, api_err *err)
{
    if (!body || len == 0) {
        bad(err, NULL, API_CODE_INVALID_JSON,
            "the request body is empty; expected a JSON object");
        return NULL;
    }
    if (nests_too_deep(body, len)) {
        bad(err, NULL, API_CODE_INVALID_JSON,
            "invalid JSON: nested deeper than %d levels", MESSAGES_MAX_DEPTH);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (!root) {
        bad(err, NULL, API_CODE_INVALID_JSON,
            "invalid JSON: %s at line %d column %d", api_json_error_text(&je),
            je.line, je.column);
    } else if (!json_is_object(root)) {
        bad(err, NULL, API_CODE_INVALID_TYPE,
            "the request body must be a JSON object (got %s)",
            json_read_kind(root));
        json_decref(root);
        root = NULL;
    }
    return root;
}

static int read_model(json_t *root, api_request *r, api_err *err)
{
    json_t *model = json_read_given(root, "model");
    if (!model)
        return bad(err, "model", API_CODE_MISSING, "is required");
    if (!json_is_string(model))
        return bad(err, "model", API_CODE_INVALID_TYPE,
                   "must be a string (got %s)", json_read_kind(model));
    r->model = strdup(json_string_value(model));
    return r->model ? 0 : json_read_oom(err);
}

static int parse(const char *body, size_t len, bool need_max, api_request *r,
                 api_err *err)
{
    memset(r, 0, sizeof *r);
    memset(err, 0, sizeof *err);
    r->kind = API_MESSAGES;
    r->max_tokens = -1;
    r->n = 1;
    sampler_params_default(&r->sampling);

    json_t *root = load_object(body, len, err);
    if (!root)
        return -1;
    /* max_tokens before the conversation: Anthropic reports a missing one
     * first. */
    bool fine = read_model(root, r, err) == 0 &&
                read_max_tokens(root, r, need_max, err) == 0 &&
                read_conversation(root, r, err) == 0 &&
                refuse_features(root, r, err) == 0 &&
                read_generation(root, r, err) == 0;
    json_decref(root);
    if (fine)
        return 0;
    api_request_free(r);
    r->kind = API_MESSAGES;
    return -1;
}

int api_parse_messages(const char *body, size_t len, api_request *out,
                       api_err *err)
{
    return parse(body, len, true, out, err);
}

int api_parse_count_tokens(const char *body, size_t len, api_request *out,
                           api_err *err)
{
    return parse(body, len, false, out, err);
}

bool api_messages_continues(const api_request *q)
{
    return q && q->n_messages > 0 &&
           q->messages[q->n_messages - 1].role == API_ROLE_ASSISTANT;
}
