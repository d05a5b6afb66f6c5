/* responses_parse.c - api_parse_responses, see responses.h.
 *
 * Fields are checked in a fixed order (model, instructions, input, the
 * generation fields, then the refused ones) so that the first error a
 * body gets is always the same one.
 */
#include "json_read.h"
#include "responses.h"
#include "responses_tools.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Deepest nesting accepted (the same guard as the chat parser's: jansson
 * before 2.14 reads nesting recursively without a limit). */
#define RSP_MAX_DEPTH 64

/* ------------------------------------------------------------ errors */

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int rsp_fail(api_err *err, const char *param, const char *code,
                    const char *fmt, ...)
{
    err->status = 400;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    snprintf(err->code, sizeof err->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}


/* ------------------------------------------------------------ input */

/* Appends n bytes to the NUL-terminated heap string *buf of length *len. */
static int rsp_append(char **buf, size_t *len, const char *s, size_t n)
{
    if (n > SIZE_MAX - 1 - *len)
        return -1;
    char *nb = realloc(*buf, *len + n + 1);
    if (!nb)
        return -1;
    memcpy(nb + *len, s, n);
    *len += n;
    nb[*len] = '\0';
    *buf = nb;
    return 0;
}

/* Adds a message to r (the array was sized for every item beforehand). */
static int rsp_push(api_request *r, api_role role, const char *text,
                    size_t len, api_err *err)
{
    api_message *m = &r->messages[r->n_messages];
    m->content = malloc(len + 1);
    if (!m->content)
        return json_read_oom(err);
    memcpy(m->content, text, len);
    m->content[len] = '\0';
    m->content_len = len;
    m->role = role;
    r->n_messages++;
    return 0;
}

static int rsp_role(json_t *item, size_t i, api_role *role, api_err *err)
{
    char param[64];
    snprintf(param, sizeof param, "input[%zu].role", i);
    json_t *v = json_object_get(item, "role");
    if (!json_is_string(v))
        return rsp_fail(err, param, v ? API_CODE_INVALID_TYPE : API_CODE_MISSING,
                        "'%s' must be one of 'user', 'assistant', 'system', "
                        "'developer'", param);
    const char *s = json_string_value(v);
    if (!strcmp(s, "user"))
        *role = API_ROLE_USER;
    else if (!strcmp(s, "assistant"))
        *role = API_ROLE_ASSISTANT;
    else if (!strcmp(s, "system") || !strcmp(s, "developer"))
        *role = API_ROLE_SYSTEM;
    else
        return rsp_fail(err, param, API_CODE_INVALID_VALUE,
                        "'%s' must be one of 'user', 'assistant', 'system', "
                        "'developer'", param);
    return 0;
}

/* A message's content: a string, or text parts concatenated as they are. */
static int rsp_content(json_t *c, size_t i, char **buf, size_t *len,
                       api_err *err)
{
    char param[64];
    snprintf(param, sizeof param, "input[%zu].content", i);
    if (json_is_string(c))
        return rsp_append(buf, len, json_string_value(c),
                          json_string_length(c)) < 0 ? json_read_oom(err) : 0;
    if (!json_is_array(c))
        return rsp_fail(err, param, c ? API_CODE_INVALID_TYPE : API_CODE_MISSING,
                        "'%s' must be a string or an array of input_text "
                        "parts", param);
    for (size_t j = 0; j < json_array_size(c); j++) {
        json_t *part = json_array_get(c, j);
        json_t *type = json_object_get(part, "type");
        snprintf(param, sizeof param, "input[%zu].content[%zu]", i, j);
        if (!json_is_string(type))
            return rsp_fail(err, param, API_CODE_INVALID_TYPE,
                            "'%s' must be an object with a string 'type' "
                            "such as \"input_text\"", param);
        const char *t = json_string_value(type);
        if (!strcmp(t, "input_image") || !strcmp(t, "input_file") ||
            !strcmp(t, "input_audio"))
            return rsp_fail(err, param, API_CODE_UNSUPPORTED_VALUE,
                            "'%s': content parts of type '%s' are not "
                            "supported; this server accepts text only",
                            param, t);
        if (strcmp(t, "input_text") && strcmp(t, "output_text"))
            return rsp_fail(err, param, API_CODE_INVALID_VALUE,
                            "'%s': unknown content part type (expected "
                            "\"input_text\" or \"output_text\")", param);
        json_t *text = json_object_get(part, "text");
        if (!json_is_string(text)) {
            snprintf(param, sizeof param, "input[%zu].content[%zu].text", i, j);
            return rsp_fail(err, param,
                            text ? API_CODE_INVALID_TYPE : API_CODE_MISSING,
                            "'%s' must be a string", param);
        }
        if (rsp_append(buf, len, json_string_value(text),
                       json_string_length(text)) < 0)
            return json_read_oom(err);
    }
    return 0;
}

static int rsp_item(json_t *item, size_t i, api_request *r, api_err *err)
{
    char param[64];
    snprintf(param, sizeof param, "input[%zu]", i);
    if (!json_is_object(item))
        return rsp_fail(err, param, API_CODE_INVALID_TYPE,
                        "'%s' must be a message object (got %s)", param,
                        json_read_kind(item));
    json_t *type = json_read_given(item, "type");
    if (type && !json_is_string(type))
        return rsp_fail(err, param, API_CODE_INVALID_TYPE,
                        "'%s.type' must be a string", param);
    const char *t = type ? json_string_value(type) : "message";
    if (!strcmp(t, "function_call") || !strcmp(t, "function_call_output"))
        return api_responses_tool_item(item, t, i, r, err);
    /* web_search_call, file_search_call, ... */
    if (strstr(t, "_call"))
        return rsp_fail(err, param, API_CODE_UNSUPPORTED_VALUE,
                        "'%s': items of type '%s' are not supported (only "
                        "function tools are)", param, t);
    if (!strcmp(t, "item_reference"))
        return rsp_fail(err, param, API_CODE_UNSUPPORTED_VALUE,
                        "'%s': item_reference is not supported: hearth does "
                        "not store responses; send the whole conversation "
                        "in input", param);
    if (!strcmp(t, "reasoning"))
        return rsp_fail(err, param, API_CODE_UNSUPPORTED_VALUE,
                        "'%s': reasoning items are not supported", param);
    if (strcmp(t, "message"))
        return rsp_fail(err, param, API_CODE_INVALID_VALUE,
                        "'%s': unknown item type '%s' (only \"message\" is "
                        "supported)", param, t);
    api_role role = API_ROLE_USER;
    if (rsp_role(item, i, &role, err) < 0)
        return -1;
    char *buf = NULL;
    size_t len = 0;
    if (rsp_append(&buf, &len, "", 0) < 0)
        return json_read_oom(err);
    int rc = rsp_content(json_object_get(item, "content"), i, &buf, &len, err);
    if (rc == 0)
        rc = rsp_push(r, role, buf, len, err);
    free(buf);
    return rc;
}

static int rsp_input(json_t *root, api_request *r, api_err *err)
{
    json_t *ins = json_read_given(root, "instructions");
    if (ins && !json_is_string(ins))
        return rsp_fail(err, "instructions", API_CODE_INVALID_TYPE,
                        "'instructions' must be a string (got %s)",
                        json_read_kind(ins));
    json_t *in = json_read_given(root, "input");
    if (!in)
        return rsp_fail(err, "input", API_CODE_MISSING, "'input' is required");
    if (!json_is_string(in) && !json_is_array(in))
        return rsp_fail(err, "input", API_CODE_INVALID_TYPE,
                        "'input' must be a string or an array of message "
                        "items (got %s)", json_read_kind(in));
    size_t n = json_is_array(in) ? json_array_size(in) : 1;
    if (n == 0)
        return rsp_fail(err, "input", API_CODE_INVALID_VALUE,
                        "'input' must not be empty");
    r->messages = calloc(n + 1, sizeof *r->messages);
    if (!r->messages)
        return json_read_oom(err);
    if (ins && rsp_push(r, API_ROLE_SYSTEM, json_string_value(ins),
                        json_string_length(ins), err) < 0)
        return -1;
    if (json_is_string(in))
        return rsp_push(r, API_ROLE_USER, json_string_value(in),
                        json_string_length(in), err);
    for (size_t i = 0; i < n; i++)
        if (rsp_item(json_array_get(in, i), i, r, err) < 0)
            return -1;
    return 0;
}

/* ------------------------------------------------------------ fields */

/* A number in [lo, hi]: 1 when given, 0 when absent, -1 when invalid. */
static int rsp_number(json_t *root, const char *key, double lo, double hi,
                      double *out, api_err *err)
{
    json_t *v = json_read_given(root, key);
    if (!v)
        return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || !isfinite(x) || x < lo || x > hi)
        return rsp_fail(err, key, json_is_number(v) ? API_CODE_INVALID_VALUE
                                                    : API_CODE_INVALID_TYPE,
                        "'%s' must be a number between %g and %g", key, lo, hi);
    *out = x;
    return 1;
}

static int rsp_bool(json_t *root, const char *key, bool *out, api_err *err)
{
    json_t *v = json_read_given(root, key);
    if (v && !json_is_boolean(v))
        return rsp_fail(err, key, API_CODE_INVALID_TYPE,
                        "'%s' must be a boolean (got %s)", key,
                        json_read_kind(v));
    if (v && out)
        *out = json_is_true(v);
    return 0;
}

static int rsp_sampling(json_t *root, api_request *r, api_err *err)
{
    double d;
    int rc;
    /* Integers may come as integral reals (JavaScript clients). */
    rc = rsp_number(root, "max_output_tokens", 1, INT32_MAX, &d, err);
    if (rc < 0 || (rc && d != floor(d)))
        return rsp_fail(err, "max_output_tokens",
                        rc < 0 && !strcmp(err->code, API_CODE_INVALID_VALUE)
                            ? API_CODE_INVALID_VALUE : API_CODE_INVALID_TYPE,
                        "'max_output_tokens' must be an integer between 1 "
                        "and 2147483647");
    if (rc) {
        r->max_tokens = (int64_t)d;
        r->set |= API_SET_MAX_TOKENS;
    }
    if ((rc = rsp_number(root, "temperature", 0, 2, &d, err)) < 0)
        return -1;
    if (rc) {
        r->sampling.temp = (float)d;
        r->set |= API_SET_TEMPERATURE;
    }
    if ((rc = rsp_number(root, "top_p", 0, 1, &d, err)) < 0)
        return -1;
    if (rc) {
        r->sampling.top_p = (float)d;
        r->set |= API_SET_TOP_P;
    }
    if ((rc = rsp_number(root, "top_logprobs", 0, 20, &d, err)) < 0)
        return -1;
    if (rc && d > 0)
        return rsp_fail(err, "top_logprobs", API_CODE_UNSUPPORTED_VALUE,
                        "'top_logprobs' is not supported yet by /v1/responses");
    if (rsp_bool(root, "stream", &r->stream, err) < 0 ||
        rsp_bool(root, "store", NULL, err) < 0 ||
        api_responses_tools(root, r, err) < 0)
        return -1;
    json_t *user = json_read_given(root, "user");
    if (user && !json_is_string(user))
        return rsp_fail(err, "user", API_CODE_INVALID_TYPE,
                        "'user' must be a string (got %s)", json_read_kind(user));
    if (user && !(r->user = strdup(json_string_value(user))))
        return json_read_oom(err);
    json_t *meta = json_read_given(root, "metadata");
    if (meta && !json_is_object(meta))
        return rsp_fail(err, "metadata", API_CODE_INVALID_TYPE,
                        "'metadata' must be an object (got %s)",
                        json_read_kind(meta));
    return 0;
}

/* ------------------------------------------------------------ refused */

/* A string field that may only hold one of the accepted values. */
static int rsp_only(json_t *root, const char *key, const char *ok1,
                    const char *ok2, const char *why, api_err *err)
{
    json_t *v = json_read_given(root, key);
    if (!v)
        return 0;
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s && (!strcmp(s, ok1) || (ok2 && !strcmp(s, ok2))))
        return 0;
    return rsp_fail(err, key, s ? API_CODE_UNSUPPORTED_VALUE
                                : API_CODE_UNSUPPORTED_PARAM,
                    "'%s' %s", key, why);
}

static int rsp_stateful(json_t *root, api_err *err)
{
    static const char *const keys[] = {"previous_response_id", "conversation"};
    for (size_t i = 0; i < 2; i++)
        if (json_read_given(root, keys[i]))
            return rsp_fail(err, keys[i], API_CODE_UNSUPPORTED_PARAM,
                            "%s is not supported: hearth does not store "
                            "responses; send the whole conversation in input",
                            keys[i]);
    if (json_read_given(root, "prompt"))
        return rsp_fail(err, "prompt", API_CODE_UNSUPPORTED_PARAM,
                        "prompt (a stored prompt template) is not supported: "
                        "hearth stores nothing; send the text in input");
    json_t *bg = json_read_given(root, "background");
    if (bg && !json_is_false(bg))
        return rsp_fail(err, "background", json_is_boolean(bg)
                        ? API_CODE_UNSUPPORTED_VALUE : API_CODE_INVALID_TYPE,
                        "background mode is not supported: hearth does not "
                        "store responses; use stream to get text as it comes");
    return 0;
}

static int rsp_unsupported(json_t *root, api_err *err)
{
    if (rsp_only(root, "truncation", "disabled", NULL,
                 "must be \"disabled\": hearth never drops input to make "
                 "it fit the context", err) < 0)
        return -1;
    if (json_read_given(root, "reasoning"))
        return rsp_fail(err, "reasoning", API_CODE_UNSUPPORTED_PARAM,
                        "reasoning is not supported yet");
    json_t *inc = json_read_given(root, "include");
    if (inc && !json_is_array(inc))
        return rsp_fail(err, "include", API_CODE_INVALID_TYPE,
                        "'include' must be an array of strings (got %s)",
                        json_read_kind(inc));
    for (size_t i = 0; inc && i < json_array_size(inc); i++) {
        json_t *v = json_array_get(inc, i);
        if (!json_is_string(v))
            return rsp_fail(err, "include", API_CODE_INVALID_TYPE,
                            "'include' must be an array of strings");
        if (!strcmp(json_string_value(v), "message.output_text.logprobs"))
            return rsp_fail(err, "include", API_CODE_UNSUPPORTED_VALUE,
                            "'include': message.output_text.logprobs is not "
                            "supported yet by /v1/responses");
    }
    return 0;
}

/* ------------------------------------------------------------ entry */

static bool rsp_too_deep(const char *s, size_t len)
{
    size_t depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        if (in_str)
            in_str = s[i] == '\\' ? (i++, true) : s[i] != '"';
        else if (s[i] == '"')
            in_str = true;
        else if ((s[i] == '[' || s[i] == '{') && ++depth > RSP_MAX_DEPTH)
            return true;
        else if ((s[i] == ']' || s[i] == '}') && depth > 0)
            depth--;
    }
    return false;
}

static int rsp_parse(json_t *root, api_request *r, api_err *err)
{
    if (!json_is_object(root))
        return rsp_fail(err, NULL, API_CODE_INVALID_TYPE,
                        "the request body must be a JSON object (got %s)",
                        json_read_kind(root));
    json_t *model = json_read_given(root, "model");
    if (model && !json_is_string(model))
        return rsp_fail(err, "model", API_CODE_INVALID_TYPE,
                        "'model' must be a string (got %s)",
                        json_read_kind(model));
    if (model && !(r->model = strdup(json_string_value(model))))
        return json_read_oom(err);
    if (rsp_input(root, r, err) < 0 || rsp_sampling(root, r, err) < 0 ||
        rsp_stateful(root, err) < 0 || rsp_unsupported(root, err) < 0)
        return -1;
    return 0;
}

int api_parse_responses(const char *body, size_t len, api_request *out,
                        api_err *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    out->kind = API_RESPONSES;
    out->max_tokens = -1;
    out->n = 1;
    sampler_params_default(&out->sampling);
    if (!body || len == 0)
        return rsp_fail(err, NULL, API_CODE_INVALID_JSON,
                        "the request body is empty; expected a JSON object");
    if (rsp_too_deep(body, len))
        return rsp_fail(err, NULL, API_CODE_INVALID_JSON,
                        "invalid JSON: nested deeper than %d levels",
                        RSP_MAX_DEPTH);
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (!root)
        return rsp_fail(err, NULL, API_CODE_INVALID_JSON,
                        "invalid JSON: %s at line %d column %d",
                        api_json_error_text(&je), je.line, je.column);
    int rc = rsp_parse(root, out, err);
    json_decref(root);
    if (rc < 0) {
        api_request_free(out);
        out->kind = API_RESPONSES;
    }
    return rc;
}
