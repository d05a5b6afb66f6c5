/* request.c - see request.h.
 *
 * Fields are checked in a fixed order (model, messages/prompt, then the
 * generation fields as listed in parse_common) so the first error reported
 * for a body is always the same one.
 */
#include "json_read.h"
#include "request.h"
#include "request_tools.h"
#include "error.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ errors */

char *api_err_json(const api_err *err)
{
    return api_error_json(err->status ? err->status : 400, NULL, err->message,
                          err->param[0] ? err->param : NULL,
                          err->code[0] ? err->code : NULL);
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Fills err and returns -1, so that callers can `return fail(...)`. */
int api_fail(api_err *err, unsigned status, const char *param, const char *code,
             const char *fmt, ...)
{
    err->status = status;
    copy_field(err->param, sizeof err->param, param);
    copy_field(err->code, sizeof err->code, code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

#define fail api_fail

/* ------------------------------------------------------------ scalars */

/* The getters return 1 when the field is present (and valid), 0 when it is
 * absent or null, -1 (err filled) when it is invalid. */

static int get_number(json_t *obj, const char *key, double lo, double hi,
                      bool lo_open, double *out, api_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    char want[128];
    if (lo_open)
        snprintf(want, sizeof want, "'%s' must be a number greater than %g",
                 key, lo);
    else
        snprintf(want, sizeof want, "'%s' must be a number between %g and %g",
                 key, lo, hi);
    if (!json_is_number(v))
        return fail(err, 400, key, API_CODE_INVALID_TYPE, "%s (got %s)", want,
                    json_read_kind(v));
    double x = json_number_value(v);
    if (!isfinite(x) || (lo_open ? x <= lo : x < lo) || x > hi)
        return fail(err, 400, key, API_CODE_INVALID_VALUE, "%s (got %g)", want,
                    x);
    *out = x;
    return 1;
}

/* Integers; a real with an integral value (3.0) is accepted too, as
 * JavaScript clients cannot tell them apart. */
static int get_int_ex(json_t *obj, const char *key, int64_t lo, int64_t hi,
                      const char *what, int64_t *out, api_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    char want[160];
    if (what)
        snprintf(want, sizeof want, "'%s' must be %s", key, what);
    else
        snprintf(want, sizeof want,
                 "'%s' must be an integer between %lld and %lld", key,
                 (long long)lo, (long long)hi);
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* 2^63 is exactly representable; the cast is defined below it. */
        if (d != floor(d) || d < -9223372036854775808.0 ||
            d >= 9223372036854775808.0)
            return fail(err, 400, key, API_CODE_INVALID_TYPE, "%s (got %g)",
                        want, d);
        x = (int64_t)d;
    } else {
        return fail(err, 400, key, API_CODE_INVALID_TYPE, "%s (got %s)", want,
                    json_read_kind(v));
    }
    if (x < lo || x > hi)
        return fail(err, 400, key, API_CODE_INVALID_VALUE, "%s (got %lld)",
                    want, (long long)x);
    *out = x;
    return 1;
}

static int get_int(json_t *obj, const char *key, int64_t lo, int64_t hi,
                   int64_t *out, api_err *err)
{
    return get_int_ex(obj, key, lo, hi, NULL, out, err);
}

static int get_bool(json_t *obj, const char *key, bool *out, api_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return fail(err, 400, key, API_CODE_INVALID_TYPE,
                    "'%s' must be a boolean (got %s)", key, json_read_kind(v));
    *out = json_is_true(v);
    return 1;
}

/* A string copy in *out (NULL when absent). */
static int get_string(json_t *obj, const char *key, const char *param,
                      char **out, api_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(err, 400, param, API_CODE_INVALID_TYPE,
                    "'%s' must be a string (got %s)", param, json_read_kind(v));
    *out = strdup(json_string_value(v));
    if (!*out)
        return json_read_oom(err);
    return 1;
}

/* ------------------------------------------------------------ messages */

const char *api_role_name(api_role role)
{
    switch (role) {
    case API_ROLE_SYSTEM: return "system";
    case API_ROLE_USER: return "user";
    case API_ROLE_ASSISTANT: return "assistant";
    case API_ROLE_TOOL: return "tool";
    }
    return "user";
}

static int parse_role(json_t *msg, const char *param, api_role *role,
                      api_err *err)
{
    json_t *v = json_object_get(msg, "role");
    if (!v)
        return fail(err, 400, param, API_CODE_MISSING,
                    "'%s' is required", param);
    if (!json_is_string(v))
        return fail(err, 400, param, API_CODE_INVALID_TYPE,
                    "'%s' must be a string (got %s)", param, json_read_kind(v));
    const char *r = json_string_value(v);
    if (!strcmp(r, "system") || !strcmp(r, "developer"))
        *role = API_ROLE_SYSTEM;
    else if (!strcmp(r, "user"))
        *role = API_ROLE_USER;
    else if (!strcmp(r, "assistant"))
        *role = API_ROLE_ASSISTANT;
    else if (!strcmp(r, "tool"))
        *role = API_ROLE_TOOL;
    else if (!strcmp(r, "function"))
        return fail(err, 400, param, API_CODE_UNSUPPORTED_VALUE,
                    "'%s': the deprecated 'function' role is not supported; "
                    "send tool results as 'tool' messages", param);
    else
        return fail(err, 400, param, API_CODE_INVALID_VALUE,
                    "'%s' must be one of 'system', 'developer', 'user', "
                    "'assistant', 'tool'", param);
    return 0;
}

/* Appends s to the growing buffer (*buf, *len, *cap); -1 when out of
 * memory or when the size would overflow. */
static int append(char **buf, size_t *len, size_t *cap, const char *s,
                  size_t n)
{
    if (n > SIZE_MAX - 1 - *len)
        return -1;
    if (*len + n + 1 > *cap) {
        size_t want = *len + n + 1;
        size_t c = *cap ? *cap : 64;
        while (c < want)
            c = c > SIZE_MAX / 2 ? want : c * 2;
        char *nb = realloc(*buf, c);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* Content given as an array of parts: text parts are concatenated as they
 * are (no separator), anything else is refused. */
static int parse_parts(json_t *parts, size_t mi, api_message *m, api_err *err)
{
    char param[96]; /* fits any index pair; api_err.param takes 63 */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (append(&buf, &len, &cap, "", 0) < 0)
        return json_read_oom(err);
    for (size_t j = 0; j < json_array_size(parts); j++) {
        json_t *part = json_array_get(parts, j);
        snprintf(param, sizeof param, "messages[%zu].content[%zu]", mi, j);
        if (!json_is_object(part)) {
            free(buf);
            return fail(err, 400, param, API_CODE_INVALID_TYPE,
                        "'%s' must be an object with a 'type' (got %s)",
                        param, json_read_kind(part));
        }
        json_t *type = json_object_get(part, "type");
        if (!json_is_string(type)) {
            free(buf);
            snprintf(param, sizeof param, "messages[%zu].content[%zu].type",
                     mi, j);
            return fail(err, 400, param,
                        type ? API_CODE_INVALID_TYPE : API_CODE_MISSING,
                        "'%s' must be a string such as \"text\"", param);
        }
        const char *t = json_string_value(type);
        if (!strcmp(t, "text")) {
            json_t *text = json_object_get(part, "text");
            if (!json_is_string(text)) {
                free(buf);
                snprintf(param, sizeof param,
                         "messages[%zu].content[%zu].text", mi, j);
                return fail(err, 400, param,
                            text ? API_CODE_INVALID_TYPE : API_CODE_MISSING,
                            "'%s' must be a string", param);
            }
            if (append(&buf, &len, &cap, json_string_value(text),
                       json_string_length(text)) < 0) {
                free(buf);
                return json_read_oom(err);
            }
        } else if (!strcmp(t, "image_url") || !strcmp(t, "input_audio") ||
                   !strcmp(t, "file") || !strcmp(t, "image") ||
                   !strcmp(t, "audio")) {
            free(buf);
            return fail(err, 400, param, API_CODE_UNSUPPORTED_VALUE,
                        "'%s': content parts of type '%s' are not supported; "
                        "this server accepts text only", param, t);
        } else {
            free(buf);
            return fail(err, 400, param, API_CODE_INVALID_VALUE,
                        "'%s': unknown content part type (only \"text\" is "
                        "supported)", param);
        }
    }
    m->content = buf;
    m->content_len = len;
    return 0;
}

static int parse_message(json_t *msg, size_t i, api_message *m, api_err *err)
{
    char param[96]; /* fits any index pair; api_err.param takes 63 */
    snprintf(param, sizeof param, "messages[%zu]", i);
    if (!json_is_object(msg))
        return fail(err, 400, param, API_CODE_INVALID_TYPE,
                    "'%s' must be an object (got %s)", param, json_read_kind(msg));

    snprintf(param, sizeof param, "messages[%zu].role", i);
    if (parse_role(msg, param, &m->role, err) < 0)
        return -1;

    if (api_chat_message_tools(msg, i, m, err) < 0)
        return -1;

    snprintf(param, sizeof param, "messages[%zu].content", i);
    json_t *c = json_object_get(msg, "content");
    if (!c || json_is_null(c)) {
        if (m->role != API_ROLE_ASSISTANT)
            return fail(err, 400, param, API_CODE_MISSING,
                        "'%s' is required (only assistant messages may have "
                        "null content)", param);
        m->content = strdup("");
        if (!m->content)
            return json_read_oom(err);
        m->content_len = 0;
    } else if (json_is_string(c)) {
        m->content_len = json_string_length(c);
        m->content = malloc(m->content_len + 1);
        if (!m->content)
            return json_read_oom(err);
        memcpy(m->content, json_string_value(c), m->content_len + 1);
    } else if (json_is_array(c)) {
        if (parse_parts(c, i, m, err) < 0)
            return -1;
    } else {
        return fail(err, 400, param, API_CODE_INVALID_TYPE,
                    "'%s' must be a string or an array of content parts "
                    "(got %s)", param, json_read_kind(c));
    }

    snprintf(param, sizeof param, "messages[%zu].name", i);
    if (get_string(msg, "name", param, &m->name, err) < 0)
        return -1;
    return 0;
}

static int parse_messages(json_t *root, api_request *r, api_err *err)
{
    json_t *v = json_object_get(root, "messages");
    if (!v || json_is_null(v))
        return fail(err, 400, "messages", API_CODE_MISSING,
                    "'messages' is required");
    if (!json_is_array(v))
        return fail(err, 400, "messages", API_CODE_INVALID_TYPE,
                    "'messages' must be an array of message objects "
                    "(got %s)", json_read_kind(v));
    size_t n = json_array_size(v);
    if (n == 0)
        return fail(err, 400, "messages", API_CODE_INVALID_VALUE,
                    "'messages' must not be empty");
    r->messages = calloc(n, sizeof *r->messages);
    if (!r->messages)
        return json_read_oom(err);
    for (size_t i = 0; i < n; i++) {
        /* Counted as we go so that api_request_free frees what was made. */
        r->n_messages = i + 1;
        if (parse_message(json_array_get(v, i), i, &r->messages[i], err) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ prompt */

static bool is_token_array(json_t *a)
{
    if (json_array_size(a) == 0)
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_integer(json_array_get(a, i)))
            return false;
    return true;
}

static int take_tokens(json_t *a, api_request *r, api_err *err)
{
    size_t n = json_array_size(a);
    r->prompt_tokens = calloc(n, sizeof *r->prompt_tokens);
    if (!r->prompt_tokens)
        return json_read_oom(err);
    for (size_t i = 0; i < n; i++) {
        json_int_t t = json_integer_value(json_array_get(a, i));
        if (t < 0 || t > INT32_MAX) {
            free(r->prompt_tokens);
            r->prompt_tokens = NULL;
            return fail(err, 400, "prompt", API_CODE_INVALID_VALUE,
                        "'prompt' token ids must be integers between 0 and "
                        "%d (got %lld at index %zu)", INT32_MAX,
                        (long long)t, i);
        }
        r->prompt_tokens[i] = (int32_t)t;
    }
    r->n_prompt_tokens = n;
    return 0;
}

/* prompt: a string, [string], [int, ...] or [[int, ...]]. Several prompts
 * in one request (batch completions) are refused. */
static int parse_prompt(json_t *root, api_request *r, api_err *err)
{
    static const char want[] =
        "'prompt' must be a string, an array of one string, or an array of "
        "token ids";
    json_t *v = json_object_get(root, "prompt");
    if (!v || json_is_null(v))
        return fail(err, 400, "prompt", API_CODE_MISSING,
                    "'prompt' is required");
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n == 0)
            return fail(err, 400, "prompt", API_CODE_INVALID_VALUE,
                        "%s (got an empty array)", want);
        if (is_token_array(v))
            return take_tokens(v, r, err);
        json_t *first = json_array_get(v, 0);
        if (n > 1 && (json_is_string(first) || json_is_array(first)))
            return fail(err, 400, "prompt", API_CODE_UNSUPPORTED_VALUE,
                        "'prompt' holds %zu prompts; this server takes one "
                        "prompt per request", n);
        if (json_is_array(first)) {
            if (!is_token_array(first))
                return fail(err, 400, "prompt", API_CODE_INVALID_TYPE,
                            "%s (got an array that is not token ids)", want);
            return take_tokens(first, r, err);
        }
        if (!json_is_string(first))
            return fail(err, 400, "prompt", API_CODE_INVALID_TYPE,
                        "%s (got an array holding %s)", want,
                        json_read_kind(first));
        v = first;
    } else if (!json_is_string(v)) {
        return fail(err, 400, "prompt", API_CODE_INVALID_TYPE, "%s (got %s)",
                    want, json_read_kind(v));
    }
    r->prompt_len = json_string_length(v);
    r->prompt = malloc(r->prompt_len + 1);
    if (!r->prompt)
        return json_read_oom(err);
    memcpy(r->prompt, json_string_value(v), r->prompt_len + 1);
    return 0;
}

/* ------------------------------------------------------------ stop, bias */

static int parse_stop(json_t *root, api_request *r, api_err *err)
{
    static const char want[] =
        "'stop' must be a string or an array of up to 4 strings";
    json_t *v = json_object_get(root, "stop");
    if (!v || json_is_null(v))
        return 0;
    size_t n = 1;
    bool is_array = json_is_array(v);
    if (is_array) {
        n = json_array_size(v);
        if (n > API_MAX_STOP)
            return fail(err, 400, "stop", API_CODE_INVALID_VALUE,
                        "%s (got %zu)", want, n);
    } else if (!json_is_string(v)) {
        return fail(err, 400, "stop", API_CODE_INVALID_TYPE, "%s (got %s)",
                    want, json_read_kind(v));
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = is_array ? json_array_get(v, i) : v;
        if (!json_is_string(s))
            return fail(err, 400, "stop", API_CODE_INVALID_TYPE,
                        "%s (item %zu is %s)", want, i, json_read_kind(s));
        if (json_string_length(s) == 0)
            continue; /* an empty stop string would match everywhere */
        if (json_string_length(s) > API_MAX_STOP_LEN)
            return fail(err, 400, "stop", API_CODE_INVALID_VALUE,
                        "stop string %zu is %zu bytes long; the limit is %d", i,
                        json_string_length(s), API_MAX_STOP_LEN);
        r->stop[r->n_stop] = strdup(json_string_value(s));
        if (!r->stop[r->n_stop])
            return json_read_oom(err);
        r->n_stop++;
    }
    r->set |= API_SET_STOP;
    return 0;
}

/* A token id as an object key: decimal digits only, 0..INT32_MAX. */
static bool parse_token_key(const char *k, int32_t *id)
{
    if (!*k)
        return false;
    int64_t x = 0;
    for (const char *p = k; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        x = x * 10 + (*p - '0');
        if (x > INT32_MAX)
            return false;
    }
    *id = (int32_t)x;
    return true;
}

static int parse_logit_bias(json_t *root, api_request *r, api_err *err)
{
    json_t *v = json_object_get(root, "logit_bias");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(err, 400, "logit_bias", API_CODE_INVALID_TYPE,
                    "'logit_bias' must be an object mapping token ids to "
                    "numbers between -100 and 100 (got %s)", json_read_kind(v));
    size_t n = json_object_size(v);
    if (n) {
        r->logit_bias = calloc(n, sizeof *r->logit_bias);
        if (!r->logit_bias)
            return json_read_oom(err);
    }
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        int32_t id;
        if (!parse_token_key(key, &id))
            return fail(err, 400, "logit_bias", API_CODE_INVALID_VALUE,
                        "'logit_bias' keys must be token ids (integers from "
                        "0 to %d), got \"%.40s\"", INT32_MAX, key);
        if (!json_is_number(val))
            return fail(err, 400, "logit_bias", API_CODE_INVALID_TYPE,
                        "'logit_bias' values must be numbers between -100 "
                        "and 100 (token %d has %s)", id, json_read_kind(val));
        double b = json_number_value(val);
        if (!(b >= -100.0 && b <= 100.0))
            return fail(err, 400, "logit_bias", API_CODE_INVALID_VALUE,
                        "'logit_bias' values must be numbers between -100 "
                        "and 100 (token %d has %g)", id, b);
        r->logit_bias[r->n_logit_bias].id = id;
        /* OpenAI documents -100 as "ban": make it exact. */
        r->logit_bias[r->n_logit_bias].bias =
            b <= -100.0 ? -INFINITY : (float)b;
        r->n_logit_bias++;
    }
    r->set |= API_SET_LOGIT_BIAS;
    return 0;
}

/* ------------------------------------------------------------ refused */

/* Tools (request_tools.c), and fields OpenAI defines that this server
 * cannot honour. Neutral values ("text" modalities) are let through: some
 * clients always send them. response_format json_object and json_schema
 * are taken here too (r->json_object, r->json_schema); the daemon compiles
 * the schema and refuses what it cannot enforce. */
static int refuse_chat_fields(json_t *root, api_request *r, api_err *err)
{
    if (api_chat_tools_parse(root, r, err) < 0)
        return -1;
    json_t *audio = json_object_get(root, "audio");
    if (audio && !json_is_null(audio))
        return fail(err, 400, "audio", API_CODE_UNSUPPORTED_PARAM,
                    "'audio' is not supported: this server produces text "
                    "only");
    json_t *mod = json_object_get(root, "modalities");
    if (mod && !json_is_null(mod)) {
        if (!json_is_array(mod))
            return fail(err, 400, "modalities", API_CODE_INVALID_TYPE,
                        "'modalities' must be an array of strings (got %s)",
                        json_read_kind(mod));
        for (size_t i = 0; i < json_array_size(mod); i++) {
            json_t *m = json_array_get(mod, i);
            if (!json_is_string(m) || strcmp(json_string_value(m), "text"))
                return fail(err, 400, "modalities",
                            API_CODE_UNSUPPORTED_VALUE,
                            "'modalities' may only contain \"text\"");
        }
    }
    json_t *rf = json_object_get(root, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        if (!json_is_string(t))
            return fail(err, 400, "response_format", API_CODE_INVALID_TYPE,
                        "'response_format' must be an object with a string "
                        "'type' such as \"text\"");
        const char *ts = json_string_value(t);
        if (!strcmp(ts, "json_object")) {
            r->json_object = true;
        } else if (!strcmp(ts, "json_schema")) {
            json_t *js = json_object_get(rf, "json_schema");
            if (!json_is_object(js))
                return fail(err, 400, "response_format.json_schema", API_CODE_INVALID_TYPE,
                            "'response_format.json_schema' must be an object with the "
                            "schema in 'schema'");
            json_t *sc = json_object_get(js, "schema");
            if (sc && !json_is_null(sc) && !json_is_object(sc) && !json_is_boolean(sc))
                return fail(err, 400, "response_format.json_schema.schema",
                            API_CODE_INVALID_TYPE,
                            "'response_format.json_schema.schema' must be a JSON Schema "
                            "object");
            if (!sc || json_is_null(sc))
                r->json_object = true; /* no schema: any JSON object */
            else if (!(r->json_schema = json_dumps(sc, JSON_COMPACT | JSON_ENCODE_ANY)))
                return json_read_oom(err);
        } else if (strcmp(ts, "text")) {
            return fail(err, 400, "response_format", API_CODE_INVALID_VALUE,
                        "'response_format.type' must be \"text\", \"json_object\" or "
                        "\"json_schema\"");
        }
    }
    return 0;
}

/* ------------------------------------------------------------ common */

static int parse_common(json_t *root, api_request *r, api_err *err)
{
    sampler_params *sp = &r->sampling;
    double d;
    int64_t i;
    int rc;

    /* max_tokens (legacy) and max_completion_tokens (its newer name for
     * chat): the newer wins when both are given. -1 is llama-server's
     * "no limit". */
    int64_t lo = r->kind == API_CHAT ? 1 : 0;
    const char *what = r->kind == API_CHAT
        ? "an integer between 1 and 2147483647, or -1 for no limit"
        : "an integer between 0 and 2147483647, or -1 for no limit";
    static const char *const mt[] = {"max_tokens", "max_completion_tokens"};
    for (size_t k = 0; k < 2; k++) {
        rc = get_int_ex(root, mt[k], -1, INT32_MAX, what, &i, err);
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue;
        if (i != -1 && i < lo)
            return fail(err, 400, mt[k], API_CODE_INVALID_VALUE,
                        "'%s' must be %s (got %lld)", mt[k], what,
                        (long long)i);
        r->max_tokens = i;
        r->set |= API_SET_MAX_TOKENS;
    }

    if ((rc = get_number(root, "temperature", 0, 2, false, &d, err)) < 0)
        return -1;
    if (rc) {
        sp->temp = (float)d;
        r->set |= API_SET_TEMPERATURE;
    }
    if ((rc = get_number(root, "top_p", 0, 1, false, &d, err)) < 0)
        return -1;
    if (rc) {
        sp->top_p = (float)d;
        r->set |= API_SET_TOP_P;
    }
    if ((rc = get_int(root, "top_k", 0, INT32_MAX, &i, err)) < 0)
        return -1;
    if (rc) {
        sp->top_k = (int32_t)i;
        r->set |= API_SET_TOP_K;
    }
    if ((rc = get_number(root, "min_p", 0, 1, false, &d, err)) < 0)
        return -1;
    if (rc) {
        sp->min_p = (float)d;
        r->set |= API_SET_MIN_P;
    }
    if ((rc = get_number(root, "frequency_penalty", -2, 2, false, &d, err)) < 0)
        return -1;
    if (rc) {
        sp->freq_penalty = (float)d;
        r->set |= API_SET_FREQUENCY_PENALTY;
    }
    if ((rc = get_number(root, "presence_penalty", -2, 2, false, &d, err)) < 0)
        return -1;
    if (rc) {
        sp->presence_penalty = (float)d;
        r->set |= API_SET_PRESENCE_PENALTY;
    }
    /* FLT_MAX as the bound keeps the float conversion finite. */
    if ((rc = get_number(root, "repeat_penalty", 0, 3.4e38, true, &d, err)) < 0)
        return -1;
    if (rc) {
        sp->repeat_penalty = (float)d;
        r->set |= API_SET_REPEAT_PENALTY;
    }
    /* Any 64-bit integer; -1 is llama-server's "random", i.e. not given. */
    if ((rc = get_int(root, "seed", INT64_MIN, INT64_MAX, &i, err)) < 0)
        return -1;
    if (rc && i != -1) {
        sp->seed = (uint64_t)i;
        r->set |= API_SET_SEED;
    }

    if (parse_stop(root, r, err) < 0 || parse_logit_bias(root, r, err) < 0)
        return -1;
    if (r->n_logit_bias > INT32_MAX)
        return fail(err, 400, "logit_bias", API_CODE_INVALID_VALUE,
                    "'logit_bias' has too many entries");
    sp->bias = r->logit_bias;
    sp->n_bias = (int)r->n_logit_bias;

    if ((rc = get_int(root, "n", 1, API_MAX_N, &i, err)) < 0)
        return -1;
    if (rc)
        r->n = (unsigned)i;

    if (r->kind == API_CHAT) {
        if (get_bool(root, "logprobs", &r->logprobs, err) < 0)
            return -1;
        rc = get_int(root, "top_logprobs", 0, API_MAX_TOP_LOGPROBS, &i, err);
        if (rc < 0)
            return -1;
        if (rc) {
            if (i > 0 && !r->logprobs)
                return fail(err, 400, "top_logprobs", API_CODE_INVALID_VALUE,
                            "'top_logprobs' requires 'logprobs' to be true");
            r->top_logprobs = (int)i;
        }
    } else {
        /* Completions: logprobs is the number of alternatives (OpenAI
         * allows up to 5; the engine reports up to 20). */
        rc = get_int(root, "logprobs", 0, API_MAX_TOP_LOGPROBS, &i, err);
        if (rc < 0)
            return -1;
        if (rc) {
            r->logprobs = true;
            r->top_logprobs = (int)i;
        }
    }
    sp->n_probs = r->logprobs ? r->top_logprobs : 0;

    if (get_string(root, "user", "user", &r->user, err) < 0)
        return -1;
    if (get_bool(root, "stream", &r->stream, err) < 0)
        return -1;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!r->stream)
            return fail(err, 400, "stream_options", API_CODE_INVALID_VALUE,
                        "'stream_options' is only allowed when 'stream' is "
                        "true");
        if (!json_is_object(so))
            return fail(err, 400, "stream_options", API_CODE_INVALID_TYPE,
                        "'stream_options' must be an object (got %s)",
                        json_read_kind(so));
        json_t *iu = json_object_get(so, "include_usage");
        if (iu && !json_is_null(iu) && !json_is_boolean(iu))
            return fail(err, 400, "stream_options.include_usage",
                        API_CODE_INVALID_TYPE,
                        "'stream_options.include_usage' must be a boolean "
                        "(got %s)", json_read_kind(iu));
        r->include_usage = json_is_true(iu);
    }
    return 0;
}

static int parse_completion_extras(json_t *root, api_request *r, api_err *err)
{
    if (get_bool(root, "echo", &r->echo, err) < 0)
        return -1;
    json_t *sfx = json_object_get(root, "suffix");
    if (sfx && !json_is_null(sfx)) {
        if (!json_is_string(sfx))
            return fail(err, 400, "suffix", API_CODE_INVALID_TYPE,
                        "'suffix' must be a string (got %s)", json_read_kind(sfx));
        if (json_string_length(sfx) > 0)
            return fail(err, 400, "suffix", API_CODE_UNSUPPORTED_PARAM,
                        "'suffix' is not supported (no fill-in-the-middle)");
    }
    int64_t b;
    int rc = get_int(root, "best_of", 1, 20, &b, err);
    if (rc < 0)
        return -1;
    if (rc && b < (int64_t)r->n)
        return fail(err, 400, "best_of", API_CODE_INVALID_VALUE,
                    "'best_of' must be at least 'n' (%u)", r->n);
    if (rc && b > (int64_t)r->n)
        return fail(err, 400, "best_of", API_CODE_UNSUPPORTED_VALUE,
                    "'best_of' greater than 'n' is not supported");
    return 0;
}

/* ------------------------------------------------------------ entry */

/* Deepest nesting of arrays and objects accepted. No request needs more
 * than a handful of levels; the limit guards the recursive JSON reader
 * (jansson before 2.14 has no depth limit of its own) against a stack
 * overflow from a body of a few megabytes of '['. */
#define API_MAX_DEPTH 64

/* True when the body nests deeper than API_MAX_DEPTH. Brackets inside
 * strings do not count; malformed JSON is left to the parser. */
static bool too_deep(const char *s, size_t len)
{
    size_t depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > API_MAX_DEPTH)
                return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return false;
}

static int parse(api_kind kind, const char *body, size_t len, api_request *r,
                 api_err *err)
{
    memset(r, 0, sizeof *r);
    memset(err, 0, sizeof *err);
    r->kind = kind;
    r->max_tokens = -1;
    r->n = 1;
    sampler_params_default(&r->sampling);

    if (!body || len == 0)
        return fail(err, 400, NULL, API_CODE_INVALID_JSON,
                    "the request body is empty; expected a JSON object");
    if (too_deep(body, len))
        return fail(err, 400, NULL, API_CODE_INVALID_JSON,
                    "invalid JSON: nested deeper than %d levels",
                    API_MAX_DEPTH);
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (!root)
        return fail(err, 400, NULL, API_CODE_INVALID_JSON,
                    "invalid JSON: %s at line %d column %d",
                    api_json_error_text(&je), je.line, je.column);
    int rc = -1;
    if (!json_is_object(root)) {
        fail(err, 400, NULL, API_CODE_INVALID_TYPE,
             "the request body must be a JSON object (got %s)",
             json_read_kind(root));
        goto out;
    }
    if (get_string(root, "model", "model", &r->model, err) < 0)
        goto out;
    if (kind == API_CHAT) {
        if (parse_messages(root, r, err) < 0 ||
            refuse_chat_fields(root, r, err) < 0)
            goto out;
    } else if (parse_prompt(root, r, err) < 0) {
        goto out;
    }
    if (parse_common(root, r, err) < 0)
        goto out;
    if (kind == API_COMPLETION && parse_completion_extras(root, r, err) < 0)
        goto out;
    rc = 0;
out:
    json_decref(root);
    if (rc < 0) {
        api_request_free(r);
        r->kind = kind;
    }
    return rc;
}

int api_parse_chat(const char *body, size_t len, api_request *out,
                   api_err *err)
{
    return parse(API_CHAT, body, len, out, err);
}

int api_parse_completion(const char *body, size_t len, api_request *out,
                         api_err *err)
{
    return parse(API_COMPLETION, body, len, out, err);
}

void api_request_free(api_request *req)
{
    if (!req)
        return;
    free(req->model);
    for (size_t i = 0; i < req->n_messages; i++) {
        free(req->messages[i].content);
        free(req->messages[i].name);
        free(req->messages[i].tool_calls);
        free(req->messages[i].tool_call_id);
    }
    for (size_t i = 0; i < req->n_tools; i++) {
        free(req->tools[i].name);
        free(req->tools[i].description);
        free(req->tools[i].parameters);
    }
    free(req->tools);
    free(req->tool_choice_name);
    free(req->messages);
    free(req->prompt);
    free(req->prompt_tokens);
    free(req->logit_bias);
    free(req->json_schema);
    for (size_t i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    free(req->user);
    memset(req, 0, sizeof *req);
}
