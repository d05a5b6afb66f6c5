/* test_api.c - the OpenAI wire format: request parsing and validation,
 * response / chunk / SSE rendering, stop strings. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "request.h"
#include "tools.h"
#include "response.h"
#include "stop.h"

/* A body around one field, for the per-field tables. */
#define CHAT(x) "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," x "}"
#define CMPL(x) "{\"prompt\":\"hi\"," x "}"
#define MSGS(x) "{\"messages\":" x "}"

static api_request req;
static api_err err;

static void teardown(void)
{
    api_request_free(&req);
}

static int chat(const char *body)
{
    return api_parse_chat(body, strlen(body), &req, &err);
}

static int cmpl(const char *body)
{
    return api_parse_completion(body, strlen(body), &req, &err);
}

/* ============================================================ bad bodies */

typedef struct bad_case {
    api_kind kind;
    const char *body;
    const char *param; /* "" when none */
    const char *code;
} bad_case;

static const bad_case bad_cases[] = {
    /* model */
    {API_CHAT, CHAT("\"model\":1"), "model", "invalid_type"},
    {API_COMPLETION, CMPL("\"model\":[\"m\"]"), "model", "invalid_type"},
    /* temperature 0..2 */
    {API_CHAT, CHAT("\"temperature\":\"hot\""), "temperature", "invalid_type"},
    {API_CHAT, CHAT("\"temperature\":true"), "temperature", "invalid_type"},
    {API_CHAT, CHAT("\"temperature\":2.5"), "temperature", "invalid_value"},
    {API_CHAT, CHAT("\"temperature\":-0.1"), "temperature", "invalid_value"},
    {API_COMPLETION, CMPL("\"temperature\":3"), "temperature", "invalid_value"},
    /* top_p 0..1 */
    {API_CHAT, CHAT("\"top_p\":\"x\""), "top_p", "invalid_type"},
    {API_CHAT, CHAT("\"top_p\":1.5"), "top_p", "invalid_value"},
    {API_CHAT, CHAT("\"top_p\":-1"), "top_p", "invalid_value"},
    /* top_k >= 0, integer */
    {API_CHAT, CHAT("\"top_k\":-1"), "top_k", "invalid_value"},
    {API_CHAT, CHAT("\"top_k\":1.5"), "top_k", "invalid_type"},
    {API_CHAT, CHAT("\"top_k\":\"5\""), "top_k", "invalid_type"},
    {API_CHAT, CHAT("\"top_k\":3000000000"), "top_k", "invalid_value"},
    /* min_p 0..1 */
    {API_CHAT, CHAT("\"min_p\":2"), "min_p", "invalid_value"},
    {API_CHAT, CHAT("\"min_p\":[]"), "min_p", "invalid_type"},
    /* penalties -2..2, repeat > 0 */
    {API_CHAT, CHAT("\"frequency_penalty\":3"), "frequency_penalty", "invalid_value"},
    {API_CHAT, CHAT("\"frequency_penalty\":-2.5"), "frequency_penalty", "invalid_value"},
    {API_CHAT, CHAT("\"frequency_penalty\":\"a\""), "frequency_penalty", "invalid_type"},
    {API_CHAT, CHAT("\"presence_penalty\":-3"), "presence_penalty", "invalid_value"},
    {API_CHAT, CHAT("\"presence_penalty\":{}"), "presence_penalty", "invalid_type"},
    {API_CHAT, CHAT("\"repeat_penalty\":0"), "repeat_penalty", "invalid_value"},
    {API_CHAT, CHAT("\"repeat_penalty\":-1"), "repeat_penalty", "invalid_value"},
    {API_CHAT, CHAT("\"repeat_penalty\":\"x\""), "repeat_penalty", "invalid_type"},
    /* seed: integer */
    {API_CHAT, CHAT("\"seed\":\"42\""), "seed", "invalid_type"},
    {API_CHAT, CHAT("\"seed\":1.5"), "seed", "invalid_type"},
    /* max_tokens: chat >= 1, -1 = no limit */
    {API_CHAT, CHAT("\"max_tokens\":0"), "max_tokens", "invalid_value"},
    {API_CHAT, CHAT("\"max_tokens\":-2"), "max_tokens", "invalid_value"},
    {API_CHAT, CHAT("\"max_tokens\":3000000000"), "max_tokens", "invalid_value"},
    {API_CHAT, CHAT("\"max_tokens\":\"10\""), "max_tokens", "invalid_type"},
    {API_CHAT, CHAT("\"max_tokens\":1.5"), "max_tokens", "invalid_type"},
    {API_CHAT, CHAT("\"max_completion_tokens\":0"), "max_completion_tokens", "invalid_value"},
    {API_CHAT, CHAT("\"max_completion_tokens\":\"x\""), "max_completion_tokens", "invalid_type"},
    {API_COMPLETION, CMPL("\"max_tokens\":-5"), "max_tokens", "invalid_value"},
    /* stop */
    {API_CHAT, CHAT("\"stop\":5"), "stop", "invalid_type"},
    {API_CHAT, CHAT("\"stop\":[\"a\",1]"), "stop", "invalid_type"},
    {API_CHAT, CHAT("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), "stop", "invalid_value"},
    {API_COMPLETION, CMPL("\"stop\":{}"), "stop", "invalid_type"},
    /* logit_bias */
    {API_CHAT, CHAT("\"logit_bias\":[]"), "logit_bias", "invalid_type"},
    {API_CHAT, CHAT("\"logit_bias\":{\"abc\":1}"), "logit_bias", "invalid_value"},
    {API_CHAT, CHAT("\"logit_bias\":{\"-1\":1}"), "logit_bias", "invalid_value"},
    {API_CHAT, CHAT("\"logit_bias\":{\"\":1}"), "logit_bias", "invalid_value"},
    {API_CHAT, CHAT("\"logit_bias\":{\"1e3\":1}"), "logit_bias", "invalid_value"},
    {API_CHAT, CHAT("\"logit_bias\":{\"99999999999\":1}"), "logit_bias", "invalid_value"},
    {API_CHAT, CHAT("\"logit_bias\":{\"5\":\"x\"}"), "logit_bias", "invalid_type"},
    {API_CHAT, CHAT("\"logit_bias\":{\"5\":101}"), "logit_bias", "invalid_value"},
    {API_CHAT, CHAT("\"logit_bias\":{\"5\":-100.5}"), "logit_bias", "invalid_value"},
    /* n 1..16 */
    {API_CHAT, CHAT("\"n\":0"), "n", "invalid_value"},
    {API_CHAT, CHAT("\"n\":17"), "n", "invalid_value"},
    {API_CHAT, CHAT("\"n\":\"2\""), "n", "invalid_type"},
    /* logprobs / top_logprobs (chat) */
    {API_CHAT, CHAT("\"logprobs\":1"), "logprobs", "invalid_type"},
    {API_CHAT, CHAT("\"logprobs\":true,\"top_logprobs\":21"), "top_logprobs", "invalid_value"},
    {API_CHAT, CHAT("\"logprobs\":true,\"top_logprobs\":-1"), "top_logprobs", "invalid_value"},
    {API_CHAT, CHAT("\"top_logprobs\":5"), "top_logprobs", "invalid_value"},
    {API_CHAT, CHAT("\"logprobs\":true,\"top_logprobs\":\"x\""), "top_logprobs", "invalid_type"},
    /* logprobs (completions: an integer) */
    {API_COMPLETION, CMPL("\"logprobs\":true"), "logprobs", "invalid_type"},
    {API_COMPLETION, CMPL("\"logprobs\":21"), "logprobs", "invalid_value"},
    /* user, stream, stream_options */
    {API_CHAT, CHAT("\"user\":5"), "user", "invalid_type"},
    {API_CHAT, CHAT("\"stream\":\"yes\""), "stream", "invalid_type"},
    {API_CHAT, CHAT("\"stream_options\":{\"include_usage\":true}"), "stream_options", "invalid_value"},
    {API_CHAT, CHAT("\"stream\":false,\"stream_options\":{}"), "stream_options", "invalid_value"},
    {API_CHAT, CHAT("\"stream\":true,\"stream_options\":5"), "stream_options", "invalid_type"},
    {API_CHAT, CHAT("\"stream\":true,\"stream_options\":{\"include_usage\":\"y\"}"),
     "stream_options.include_usage", "invalid_type"},
    {API_COMPLETION, CMPL("\"stream_options\":{\"include_usage\":true}"), "stream_options", "invalid_value"},
    /* response_format */
    {API_CHAT, CHAT("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":5}"),
     "response_format.json_schema", "invalid_type"},
    {API_CHAT, CHAT("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":\"x\"}}"),
     "response_format.json_schema.schema", "invalid_type"},
    {API_CHAT, CHAT("\"response_format\":{\"type\":\"xml\"}"), "response_format", "invalid_value"},
    {API_CHAT, CHAT("\"response_format\":\"text\""), "response_format", "invalid_type"},
    {API_CHAT, CHAT("\"response_format\":{}"), "response_format", "invalid_type"},
    /* tools */
    {API_CHAT, CHAT("\"tools\":[{\"type\":\"function\"}]"), "tools[0].function",
     "missing_required_parameter"},
    {API_CHAT, CHAT("\"functions\":[{\"name\":\"f\"}]"), "functions", "unsupported_parameter"},
    {API_CHAT, CHAT("\"tool_choice\":\"required\""), "tool_choice", "invalid_value"},
    {API_CHAT, CHAT("\"tool_choice\":{\"type\":\"function\"}"), "tool_choice", "invalid_value"},
    {API_CHAT, CHAT("\"tool_choice\":\"sometimes\""), "tool_choice", "invalid_value"},
    {API_CHAT, CHAT("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                    "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}"),
     "tool_choice", "invalid_value"},
    {API_CHAT, CHAT("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]"),
     "tools[0].function.name", "invalid_value"},
    {API_CHAT, CHAT("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
                    "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"),
     "tools[1].function.name", "invalid_value"},
    {API_CHAT, CHAT("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                    "\"parameters\":[]}}]"),
     "tools[0].function.parameters", "invalid_type"},
    {API_CHAT, CHAT("\"tools\":[{\"type\":\"web_search\"}]"), "tools[0]", "unsupported_value"},
    {API_CHAT, CHAT("\"parallel_tool_calls\":1"), "parallel_tool_calls", "invalid_type"},
    {API_CHAT, MSGS("[{\"role\":\"tool\",\"content\":\"4\"}]"),
     "messages[0].tool_call_id", "missing_required_parameter"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]"),
     "messages[0].tool_calls", "invalid_value"},
    {API_CHAT, CHAT("\"functions\":[{}]"), "functions", "unsupported_parameter"},
    {API_CHAT, CHAT("\"function_call\":{\"name\":\"f\"}"), "function_call", "unsupported_parameter"},
    {API_CHAT, CHAT("\"audio\":{}"), "audio", "unsupported_parameter"},
    {API_CHAT, CHAT("\"modalities\":[\"text\",\"audio\"]"), "modalities", "unsupported_value"},
    {API_CHAT, CHAT("\"modalities\":\"text\""), "modalities", "invalid_type"},
    /* messages */
    {API_CHAT, "{}", "messages", "missing_required_parameter"},
    {API_CHAT, "{\"messages\":null}", "messages", "missing_required_parameter"},
    {API_CHAT, MSGS("{}"), "messages", "invalid_type"},
    {API_CHAT, MSGS("[]"), "messages", "invalid_value"},
    {API_CHAT, MSGS("[1]"), "messages[0]", "invalid_type"},
    {API_CHAT, MSGS("[{\"content\":\"x\"}]"), "messages[0].role", "missing_required_parameter"},
    {API_CHAT, MSGS("[{\"role\":5,\"content\":\"x\"}]"), "messages[0].role", "invalid_type"},
    {API_CHAT, MSGS("[{\"role\":\"robot\",\"content\":\"x\"}]"), "messages[0].role", "invalid_value"},
    {API_CHAT, MSGS("[{\"role\":\"function\",\"content\":\"x\"}]"), "messages[0].role",
     "unsupported_value"},
    {API_CHAT, MSGS("[{\"role\":\"user\"}]"), "messages[0].content", "missing_required_parameter"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":null}]"), "messages[0].content",
     "missing_required_parameter"},
    {API_CHAT, MSGS("[{\"role\":\"system\",\"content\":null}]"), "messages[0].content",
     "missing_required_parameter"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":5}]"), "messages[0].content", "invalid_type"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":{\"type\":\"text\"}}]"), "messages[0].content",
     "invalid_type"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]"),
     "messages[0].content[0]", "unsupported_value"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                    "{\"type\":\"input_audio\",\"input_audio\":{}}]}]"),
     "messages[0].content[1]", "unsupported_value"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":[5]}]"), "messages[0].content[0]", "invalid_type"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]"),
     "messages[0].content[0].type", "missing_required_parameter"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":[{\"type\":7}]}]"),
     "messages[0].content[0].type", "invalid_type"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]"),
     "messages[0].content[0].text", "missing_required_parameter"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":5}]}]"),
     "messages[0].content[0].text", "invalid_type"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]"),
     "messages[0].content[0]", "invalid_value"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":7}]"),
     "messages[1].content", "invalid_type"},
    {API_CHAT, MSGS("[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"1\"}]}]"),
     "messages[0].tool_calls[0]", "invalid_value"},
    {API_CHAT, MSGS("[{\"role\":\"user\",\"content\":\"a\",\"name\":5}]"), "messages[0].name",
     "invalid_type"},
    /* prompt */
    {API_COMPLETION, "{}", "prompt", "missing_required_parameter"},
    {API_COMPLETION, "{\"prompt\":5}", "prompt", "invalid_type"},
    {API_COMPLETION, "{\"prompt\":{}}", "prompt", "invalid_type"},
    {API_COMPLETION, "{\"prompt\":[]}", "prompt", "invalid_value"},
    {API_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt", "unsupported_value"},
    {API_COMPLETION, "{\"prompt\":[[1,2],[3]]}", "prompt", "unsupported_value"},
    {API_COMPLETION, "{\"prompt\":[1,-2]}", "prompt", "invalid_value"},
    {API_COMPLETION, "{\"prompt\":[1,3000000000]}", "prompt", "invalid_value"},
    {API_COMPLETION, "{\"prompt\":[1,\"a\"]}", "prompt", "invalid_type"},
    {API_COMPLETION, "{\"prompt\":[[1,\"a\"]]}", "prompt", "invalid_type"},
    {API_COMPLETION, "{\"prompt\":[[]]}", "prompt", "invalid_type"},
    {API_COMPLETION, "{\"prompt\":[true]}", "prompt", "invalid_type"},
    /* completions extras */
    {API_COMPLETION, CMPL("\"echo\":\"y\""), "echo", "invalid_type"},
    {API_COMPLETION, CMPL("\"suffix\":\"end\""), "suffix", "unsupported_parameter"},
    {API_COMPLETION, CMPL("\"suffix\":5"), "suffix", "invalid_type"},
    {API_COMPLETION, CMPL("\"best_of\":2"), "best_of", "unsupported_value"},
    {API_COMPLETION, CMPL("\"best_of\":0"), "best_of", "invalid_value"},
    {API_COMPLETION, CMPL("\"n\":2,\"best_of\":1"), "best_of", "invalid_value"},
    {API_COMPLETION, CMPL("\"best_of\":\"1\""), "best_of", "invalid_type"},
    /* not JSON / not an object */
    {API_CHAT, "", "", "invalid_json"},
    {API_CHAT, "{", "", "invalid_json"},
    {API_CHAT, "{\"messages\":}", "", "invalid_json"},
    {API_CHAT, "{\"model\":\"\xff\"}", "", "invalid_json"},
    {API_CHAT, "{\"a\":1} x", "", "invalid_json"},
    {API_CHAT, "[1]", "", "invalid_type"},
    {API_COMPLETION, "\"prompt\"", "", "invalid_type"},
    {API_COMPLETION, "null", "", "invalid_type"},
    {API_COMPLETION, "42", "", "invalid_type"},
};

START_TEST(parse_bad_field)
{
    const bad_case *c = &bad_cases[_i];
    int rc = c->kind == API_CHAT ? chat(c->body) : cmpl(c->body);
    ck_assert_msg(rc == -1, "accepted: %s", c->body);
    ck_assert_uint_eq(err.status, 400);
    ck_assert_msg(!strcmp(err.param, c->param), "%s: param '%s', want '%s' (%s)",
                  c->body, err.param, c->param, err.message);
    ck_assert_msg(!strcmp(err.code, c->code), "%s: code '%s', want '%s' (%s)",
                  c->body, err.code, c->code, err.message);
    ck_assert(err.message[0] != '\0');
    /* The field is named in the message too. */
    if (c->param[0]) {
        char quoted[80];
        snprintf(quoted, sizeof quoted, "'%s'", c->param);
        ck_assert_msg(strstr(err.message, quoted) || strstr(err.message, c->param),
                      "message does not name %s: %s", c->param, err.message);
    }
    /* A failed parse leaves nothing to free. */
    ck_assert_ptr_null(req.messages);
    ck_assert_ptr_null(req.model);
    ck_assert_ptr_null(req.prompt);
    ck_assert_ptr_null(req.logit_bias);
    ck_assert_uint_eq(req.n_stop, 0);
}
END_TEST

START_TEST(parse_range_message)
{
    ck_assert_int_eq(chat(CHAT("\"temperature\":3")), -1);
    ck_assert_msg(strstr(err.message, "'temperature' must be a number between 0 and 2"),
                  "%s", err.message);
    ck_assert_ptr_nonnull(strstr(err.message, "3"));
    ck_assert_int_eq(chat(CHAT("\"temperature\":\"warm\"")), -1);
    ck_assert_msg(strstr(err.message, "'temperature' must be a number between 0 and 2"),
                  "%s", err.message);
    ck_assert_ptr_nonnull(strstr(err.message, "a string"));
    /* structured output is parsed here and compiled by the daemon */
    ck_assert_int_eq(chat(CHAT("\"response_format\":{\"type\":\"json_object\"}")), 0);
    ck_assert(req.json_object && !req.json_schema);
    api_request_free(&req);
    ck_assert_int_eq(chat(CHAT("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                               "{\"name\":\"n\",\"strict\":true,\"schema\":{\"type\":\"object\"}}}")), 0);
    ck_assert(!req.json_object);
    ck_assert_str_eq(req.json_schema, "{\"type\":\"object\"}");
    api_request_free(&req);
    ck_assert_int_eq(chat(CHAT("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}")), 0);
    ck_assert(req.json_object); /* no schema: any JSON object */
    api_request_free(&req);
    ck_assert_int_eq(chat(MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]")), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "image_url"));
    ck_assert_ptr_nonnull(strstr(err.message, "text only"));
}
END_TEST

/* A stop string may be 1,024 bytes long, not one more; the refusal names
 * the limit and frees what the parse kept so far. */
START_TEST(parse_stop_length_cap)
{
    char body[3000], big[API_MAX_STOP_LEN + 2];
    memset(big, 'x', sizeof big - 1);
    big[API_MAX_STOP_LEN] = '\0';
    snprintf(body, sizeof body, CHAT("\"stop\":[\"a\",\"%s\"]"), big);
    ck_assert_int_eq(chat(body), 0);
    ck_assert_uint_eq(req.n_stop, 2);
    ck_assert_uint_eq(strlen(req.stop[1]), API_MAX_STOP_LEN);
    api_request_free(&req);
    big[API_MAX_STOP_LEN] = 'x';
    big[API_MAX_STOP_LEN + 1] = '\0';
    snprintf(body, sizeof body, CHAT("\"stop\":[\"a\",\"%s\"]"), big);
    ck_assert_int_eq(chat(body), -1);
    ck_assert_uint_eq(err.status, 400);
    ck_assert_str_eq(err.param, "stop");
    ck_assert_msg(strstr(err.message, "1024"), "%s", err.message);
    ck_assert_uint_eq(req.n_stop, 0);
    ck_assert_ptr_null(req.stop[0]);
}
END_TEST

START_TEST(parse_invalid_json_position)
{
    const char *body = "{\n  \"model\": \"m\",\n  \"messages\": [}\n}";
    ck_assert_int_eq(chat(body), -1);
    ck_assert_uint_eq(err.status, 400);
    ck_assert_str_eq(err.code, "invalid_json");
    ck_assert_str_eq(err.param, "");
    ck_assert_msg(!strncmp(err.message, "invalid JSON: ", 14), "%s", err.message);
    ck_assert_msg(strstr(err.message, " at line 3 column "), "%s", err.message);

    /* The body need not be NUL-terminated: only len bytes are read. */
    const char buf[] = "{\"prompt\":\"x\"}GARBAGE";
    ck_assert_int_eq(api_parse_completion(buf, 14, &req, &err), 0);
    ck_assert_str_eq(req.prompt, "x");
    api_request_free(&req);
    ck_assert_int_eq(api_parse_completion(NULL, 0, &req, &err), -1);
    ck_assert_str_eq(err.code, "invalid_json");
}
END_TEST

/* A \u0000 in a string is said plainly, not as jansson's flag name. */
START_TEST(parse_invalid_json_nul)
{
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000\"}]}";
    ck_assert_int_eq(chat(body), -1);
    ck_assert_uint_eq(err.status, 400);
    ck_assert_str_eq(err.code, "invalid_json");
    ck_assert_msg(strstr(err.message, "JSON_ALLOW_NUL") == NULL, "%s", err.message);
    ck_assert_str_eq(err.message, "invalid JSON: \\u0000 (the NUL character) is not allowed "
                                  "in strings at line 1 column 59");
    /* a raw NUL byte: jansson's own words, which say what is wrong */
    const char raw[] = "{\"prompt\":\"a\0b\"}";
    ck_assert_int_eq(api_parse_completion(raw, sizeof raw - 1, &req, &err), -1);
    ck_assert_msg(strstr(err.message, "control character 0x0"), "%s", err.message);
}
END_TEST

START_TEST(parse_error_json)
{
    ck_assert_int_eq(chat(CHAT("\"top_p\":7")), -1);
    char *s = api_err_json(&err);
    ck_assert_ptr_nonnull(s);
    json_error_t je;
    json_t *root = json_loads(s, 0, &je);
    ck_assert_ptr_nonnull(root);
    json_t *e = json_object_get(root, "error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "message")), err.message);
    ck_assert_str_eq(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "param")), "top_p");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "invalid_value");
    json_decref(root);
    free(s);

    /* No param: JSON null. */
    ck_assert_int_eq(chat("nope"), -1);
    s = api_err_json(&err);
    root = json_loads(s, 0, &je);
    ck_assert_ptr_nonnull(root);
    ck_assert(json_is_null(json_object_get(json_object_get(root, "error"), "param")));
    json_decref(root);
    free(s);
}
END_TEST

/* ============================================================ good bodies */

START_TEST(parse_chat_defaults)
{
    ck_assert_int_eq(chat(MSGS("[{\"role\":\"user\",\"content\":\"Hello\"}]")), 0);
    ck_assert_int_eq(req.kind, API_CHAT);
    ck_assert_ptr_null(req.model);
    ck_assert_uint_eq(req.n_messages, 1);
    ck_assert_int_eq(req.messages[0].role, API_ROLE_USER);
    ck_assert_str_eq(req.messages[0].content, "Hello");
    ck_assert_uint_eq(req.messages[0].content_len, 5);
    ck_assert_ptr_null(req.messages[0].name);
    ck_assert_int_eq(req.max_tokens, -1);
    ck_assert_uint_eq(req.set, 0);
    ck_assert_uint_eq(req.n, 1);
    ck_assert(!req.stream && !req.include_usage && !req.logprobs);
    ck_assert_uint_eq(req.n_stop, 0);
    ck_assert_ptr_null(req.user);
    sampler_params d;
    sampler_params_default(&d);
    ck_assert_float_eq(req.sampling.temp, d.temp);
    ck_assert_int_eq(req.sampling.top_k, d.top_k);
    ck_assert_float_eq(req.sampling.top_p, d.top_p);
    ck_assert_float_eq(req.sampling.min_p, d.min_p);
    ck_assert_float_eq(req.sampling.repeat_penalty, d.repeat_penalty);
    ck_assert_int_eq(req.sampling.penalty_last_n, d.penalty_last_n);
    ck_assert_int_eq(req.sampling.n_bias, 0);
    ck_assert_int_eq(req.sampling.n_probs, 0);
}
END_TEST

/* Tools, tool_choice and a call round trip in the history, read into the
 * common form (api/tools.h): the template sees arguments as an object. */
START_TEST(parse_chat_tools)
{
    const char *body =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
        "\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":"
        "\"{\\\"city\\\":\\\"Oslo\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"-3 C\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get\","
        "\"description\":\"Weather\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}}}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"noop\"}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"noop\"}},"
        "\"parallel_tool_calls\":false}";
    ck_assert_msg(chat(body) == 0, "%s", err.message);
    ck_assert_uint_eq(req.n_tools, 2);
    ck_assert_str_eq(req.tools[0].name, "get");
    ck_assert_str_eq(req.tools[0].description, "Weather");
    ck_assert_str_eq(req.tools[0].parameters,
                     "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}");
    ck_assert_ptr_null(req.tools[1].description);
    ck_assert_str_eq(req.tools[1].parameters, "{\"type\":\"object\",\"properties\":{}}");
    ck_assert_int_eq(req.tool_choice, API_TOOL_NAMED);
    ck_assert_str_eq(req.tool_choice_name, "noop");
    ck_assert(!req.parallel_tool_calls);
    ck_assert_str_eq(req.messages[1].tool_calls,
                     "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"get\","
                     "\"arguments\":{\"city\":\"Oslo\"}}}]");
    ck_assert_str_eq(req.messages[2].tool_call_id, "c1");
    bool oom;
    char *x = api_message_extra_json(&req.messages[2], &oom);
    ck_assert_str_eq(x, "{\"tool_call_id\":\"c1\"}");
    free(x);
    ck_assert_ptr_null(api_message_extra_json(&req.messages[0], &oom));
    ck_assert(!oom);
    char *tj = api_tools_json(&req);
    ck_assert_str_eq(tj, "[{\"type\":\"function\",\"function\":{\"name\":\"get\","
                         "\"description\":\"Weather\",\"parameters\":{\"type\":\"object\","
                         "\"properties\":{\"city\":{\"type\":\"string\"}}}}},"
                         "{\"type\":\"function\",\"function\":{\"name\":\"noop\",\"parameters\":"
                         "{\"type\":\"object\",\"properties\":{}}}}]");
    free(tj);
}
END_TEST

START_TEST(parse_chat_all_fields)
{
    const char *body =
        "{\"model\":\"stories\",\"messages\":["
        "{\"role\":\"developer\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"name\":\"ann\",\"content\":[{\"type\":\"text\",\"text\":\"Hel\"},"
        "{\"type\":\"text\",\"text\":\"lo\"}]},"
        "{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
        "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"x\"},"
        "{\"role\":\"system\",\"content\":\"\"}],"
        "\"max_tokens\":50,\"temperature\":0,\"top_p\":0.5,\"top_k\":7,\"min_p\":0.1,"
        "\"frequency_penalty\":-2,\"presence_penalty\":2,\"repeat_penalty\":1.1,"
        "\"seed\":-5,\"stop\":[\"\",\"END\",\"\\n\\nUser:\"],"
        "\"logit_bias\":{\"15\":-100,\"2\":5.5,\"0\":100},"
        "\"n\":2.0,\"logprobs\":true,\"top_logprobs\":3,\"user\":\"u1\","
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"response_format\":{\"type\":\"text\"},\"tools\":[],\"tool_choice\":\"none\","
        "\"modalities\":[\"text\"],\"parallel_tool_calls\":false,"
        "\"unknown_field\":{\"nested\":[1,2,{\"x\":null}]},\"metadata\":{},\"store\":true}";
    ck_assert_msg(chat(body) == 0, "%s", err.message);
    ck_assert_str_eq(req.model, "stories");
    ck_assert_uint_eq(req.n_messages, 6);
    ck_assert_int_eq(req.messages[0].role, API_ROLE_SYSTEM);
    ck_assert_str_eq(api_role_name(req.messages[0].role), "system");
    ck_assert_str_eq(req.messages[1].content, "Hello");
    ck_assert_uint_eq(req.messages[1].content_len, 5);
    ck_assert_str_eq(req.messages[1].name, "ann");
    ck_assert_int_eq(req.messages[2].role, API_ROLE_ASSISTANT);
    ck_assert_str_eq(req.messages[2].content, "");
    ck_assert_int_eq(req.messages[4].role, API_ROLE_TOOL);
    ck_assert_str_eq(api_role_name(req.messages[4].role), "tool");
    ck_assert_str_eq(req.messages[5].content, "");
    ck_assert_int_eq(req.max_tokens, 50);
    ck_assert_float_eq(req.sampling.temp, 0.0f);
    ck_assert_float_eq(req.sampling.top_p, 0.5f);
    ck_assert_int_eq(req.sampling.top_k, 7);
    ck_assert_float_eq_tol(req.sampling.min_p, 0.1f, 1e-7);
    ck_assert_float_eq(req.sampling.freq_penalty, -2.0f);
    ck_assert_float_eq(req.sampling.presence_penalty, 2.0f);
    ck_assert_float_eq_tol(req.sampling.repeat_penalty, 1.1f, 1e-7);
    ck_assert_uint_eq(req.sampling.seed, (uint64_t)-5);
    ck_assert_uint_eq(req.n_stop, 2);
    ck_assert_str_eq(req.stop[0], "END");
    ck_assert_str_eq(req.stop[1], "\n\nUser:");
    ck_assert_uint_eq(req.n_logit_bias, 3);
    ck_assert_ptr_eq(req.sampling.bias, req.logit_bias);
    ck_assert_int_eq(req.sampling.n_bias, 3);
    int found = 0;
    for (size_t i = 0; i < req.n_logit_bias; i++) {
        const sampler_bias *b = &req.logit_bias[i];
        if (b->id == 15) {
            ck_assert(isinf(b->bias) && b->bias < 0);
            found++;
        } else if (b->id == 2) {
            ck_assert_float_eq(b->bias, 5.5f);
            found++;
        } else if (b->id == 0) {
            ck_assert_float_eq(b->bias, 100.0f);
            found++;
        }
    }
    ck_assert_int_eq(found, 3);
    ck_assert_uint_eq(req.n, 2);
    ck_assert(req.logprobs);
    ck_assert_int_eq(req.top_logprobs, 3);
    ck_assert_int_eq(req.sampling.n_probs, 3);
    ck_assert_str_eq(req.user, "u1");
    ck_assert(req.stream && req.include_usage);
    unsigned all = API_SET_MAX_TOKENS | API_SET_TEMPERATURE | API_SET_TOP_P | API_SET_TOP_K |
                   API_SET_MIN_P | API_SET_FREQUENCY_PENALTY | API_SET_PRESENCE_PENALTY |
                   API_SET_REPEAT_PENALTY | API_SET_SEED | API_SET_LOGIT_BIAS | API_SET_STOP;
    ck_assert_uint_eq(req.set, all);
}
END_TEST

START_TEST(parse_nulls_are_absent)
{
    const char *body = CHAT("\"model\":null,\"temperature\":null,\"top_p\":null,\"top_k\":null,"
                            "\"min_p\":null,\"seed\":null,\"stop\":null,\"logit_bias\":null,"
                            "\"n\":null,\"logprobs\":null,\"top_logprobs\":null,\"user\":null,"
                            "\"stream\":null,\"stream_options\":null,\"max_tokens\":null,"
                            "\"response_format\":null,\"tools\":null,\"tool_choice\":null,"
                            "\"audio\":null");
    ck_assert_msg(chat(body) == 0, "%s", err.message);
    ck_assert_uint_eq(req.set, 0);
    ck_assert_ptr_null(req.model);
    ck_assert_int_eq(req.max_tokens, -1);
    ck_assert_uint_eq(req.n, 1);
}
END_TEST

START_TEST(parse_edge_values)
{
    /* Bounds are inclusive. */
    ck_assert_int_eq(chat(CHAT("\"temperature\":2,\"top_p\":0,\"min_p\":1,\"top_k\":0,"
                               "\"frequency_penalty\":2,\"presence_penalty\":-2,\"n\":16,"
                               "\"logprobs\":true,\"top_logprobs\":20,\"max_tokens\":2147483647")),
                     0);
    ck_assert_float_eq(req.sampling.temp, 2.0f);
    ck_assert_int_eq(req.sampling.top_k, 0);
    ck_assert_uint_eq(req.n, 16);
    ck_assert_int_eq(req.sampling.n_probs, 20);
    ck_assert_int_eq(req.max_tokens, INT32_MAX);
    api_request_free(&req);

    /* seed -1: llama-server's "random", i.e. not set. */
    ck_assert_int_eq(chat(CHAT("\"seed\":-1")), 0);
    ck_assert_uint_eq(req.set & API_SET_SEED, 0);
    api_request_free(&req);
    ck_assert_int_eq(chat(CHAT("\"seed\":18446744073709551615")), -1); /* > int64 */
    ck_assert_int_eq(chat(CHAT("\"seed\":9223372036854775807")), 0);
    ck_assert_uint_eq(req.sampling.seed, (uint64_t)INT64_MAX);
    api_request_free(&req);

    /* max_tokens -1 = no limit; max_completion_tokens wins over max_tokens. */
    ck_assert_int_eq(chat(CHAT("\"max_tokens\":-1")), 0);
    ck_assert_int_eq(req.max_tokens, -1);
    ck_assert_uint_eq(req.set & API_SET_MAX_TOKENS, API_SET_MAX_TOKENS);
    api_request_free(&req);
    ck_assert_int_eq(chat(CHAT("\"max_tokens\":100,\"max_completion_tokens\":7")), 0);
    ck_assert_int_eq(req.max_tokens, 7);
    api_request_free(&req);

    /* A lone stop string; a stop list of only empty strings. */
    ck_assert_int_eq(chat(CHAT("\"stop\":\"###\"")), 0);
    ck_assert_uint_eq(req.n_stop, 1);
    ck_assert_str_eq(req.stop[0], "###");
    api_request_free(&req);
    ck_assert_int_eq(chat(CHAT("\"stop\":[\"\",\"\"]")), 0);
    ck_assert_uint_eq(req.n_stop, 0);
    api_request_free(&req);
    ck_assert_int_eq(chat(CHAT("\"stop\":\"\"")), 0);
    ck_assert_uint_eq(req.n_stop, 0);
    api_request_free(&req);

    /* logprobs without top_logprobs, top_logprobs 0 without logprobs. */
    ck_assert_int_eq(chat(CHAT("\"logprobs\":true")), 0);
    ck_assert(req.logprobs);
    ck_assert_int_eq(req.sampling.n_probs, 0);
    api_request_free(&req);
    ck_assert_int_eq(chat(CHAT("\"top_logprobs\":0")), 0);
    ck_assert(!req.logprobs);
    api_request_free(&req);

    /* Empty content parts array, non-ASCII text intact. */
    ck_assert_int_eq(chat(MSGS("[{\"role\":\"user\",\"content\":[]},"
                               "{\"role\":\"user\",\"content\":\"caf\\u00e9 \xe2\x82\xac\"}]")),
                     0);
    ck_assert_str_eq(req.messages[0].content, "");
    ck_assert_str_eq(req.messages[1].content, "caf\xc3\xa9 \xe2\x82\xac");
    api_request_free(&req);

    /* stream true with stream_options but no include_usage. */
    ck_assert_int_eq(chat(CHAT("\"stream\":true,\"stream_options\":{}")), 0);
    ck_assert(req.stream && !req.include_usage);
}
END_TEST

START_TEST(parse_completion_prompts)
{
    ck_assert_int_eq(cmpl("{\"prompt\":\"Once upon\"}"), 0);
    ck_assert_int_eq(req.kind, API_COMPLETION);
    ck_assert_str_eq(req.prompt, "Once upon");
    ck_assert_uint_eq(req.prompt_len, 9);
    ck_assert_ptr_null(req.prompt_tokens);
    ck_assert_ptr_null(req.messages);
    api_request_free(&req);

    ck_assert_int_eq(cmpl("{\"prompt\":[\"one\"]}"), 0);
    ck_assert_str_eq(req.prompt, "one");
    api_request_free(&req);

    ck_assert_int_eq(cmpl("{\"prompt\":\"\"}"), 0);
    ck_assert_str_eq(req.prompt, "");
    ck_assert_uint_eq(req.prompt_len, 0);
    api_request_free(&req);

    ck_assert_int_eq(cmpl("{\"prompt\":[1,2,2147483647]}"), 0);
    ck_assert_ptr_null(req.prompt);
    ck_assert_uint_eq(req.n_prompt_tokens, 3);
    ck_assert_int_eq(req.prompt_tokens[0], 1);
    ck_assert_int_eq(req.prompt_tokens[2], INT32_MAX);
    api_request_free(&req);

    ck_assert_int_eq(cmpl("{\"prompt\":[[4,5]]}"), 0);
    ck_assert_uint_eq(req.n_prompt_tokens, 2);
    ck_assert_int_eq(req.prompt_tokens[1], 5);
    api_request_free(&req);

    /* Completion-only fields and limits. */
    ck_assert_int_eq(cmpl(CMPL("\"echo\":true,\"max_tokens\":0,\"logprobs\":5,\"suffix\":\"\","
                               "\"best_of\":1,\"suffix\":null")),
                     0);
    ck_assert(req.echo);
    ck_assert_int_eq(req.max_tokens, 0);
    ck_assert(req.logprobs);
    ck_assert_int_eq(req.top_logprobs, 5);
    ck_assert_int_eq(req.sampling.n_probs, 5);
    api_request_free(&req);

    ck_assert_int_eq(cmpl(CMPL("\"logprobs\":0,\"n\":3,\"best_of\":3")), 0);
    ck_assert(req.logprobs);
    ck_assert_int_eq(req.top_logprobs, 0);
    ck_assert_uint_eq(req.n, 3);
    api_request_free(&req);

    /* Chat-only refusals do not apply to completions (unknown there). */
    ck_assert_int_eq(cmpl(CMPL("\"response_format\":{\"type\":\"json_object\"},\"tools\":[1]")), 0);
    api_request_free(&req);
    /* Completions does not read messages, chat does not read prompt. */
    ck_assert_int_eq(cmpl(CMPL("\"messages\":5")), 0);
    api_request_free(&req);
    ck_assert_int_eq(chat(CHAT("\"prompt\":5")), 0);
}
END_TEST

START_TEST(parse_depth_limit)
{
    /* 70 nested arrays in an unknown field: refused before the parser
     * recurses; the same brackets inside a string are only text. */
    char body[512], deep[160];
    memset(deep, '[', 70);
    memset(deep + 70, ']', 70);
    deep[140] = '\0';
    snprintf(body, sizeof body, CHAT("\"x\":%s"), deep);
    ck_assert_int_eq(chat(body), -1);
    ck_assert_str_eq(err.code, "invalid_json");
    ck_assert_ptr_nonnull(strstr(err.message, "nested deeper than"));
    snprintf(body, sizeof body, CHAT("\"x\":\"%s\\\"%s\""), deep, deep);
    ck_assert_msg(chat(body) == 0, "%s", err.message);
    api_request_free(&req);
    /* 20 levels are fine. */
    memset(deep, '[', 20);
    memset(deep + 20, ']', 20);
    deep[40] = '\0';
    snprintf(body, sizeof body, CHAT("\"x\":%s"), deep);
    ck_assert_msg(chat(body) == 0, "%s", err.message);
}
END_TEST

/* A parsed request can be freed twice (free zeroes it). */
START_TEST(parse_free_twice)
{
    ck_assert_int_eq(chat(CHAT("\"stop\":[\"a\"],\"logit_bias\":{\"1\":2}")), 0);
    api_request_free(&req);
    api_request_free(&req);
    api_request_free(NULL);
}
END_TEST

/* ============================================================ rendering */

/* obj has exactly the keys listed in `keys` (comma-separated, "" for
 * none). */
static void assert_keys(json_t *obj, const char *keys)
{
    ck_assert_msg(json_is_object(obj), "not an object");
    size_t n = 0;
    for (const char *k = keys; *k;) {
        size_t l = strcspn(k, ",");
        char name[64];
        ck_assert(l < sizeof name);
        memcpy(name, k, l);
        name[l] = '\0';
        ck_assert_msg(json_object_get(obj, name) != NULL, "missing key '%s'", name);
        n++;
        k += l + (k[l] == ',');
    }
    ck_assert_msg(json_object_size(obj) == n, "%zu keys, want %zu (%s)", json_object_size(obj), n,
                  keys);
}

static json_t *load(char *s)
{
    ck_assert_ptr_nonnull(s);
    json_error_t je;
    json_t *j = json_loads(s, JSON_ALLOW_NUL, &je); /* \u0000 is valid JSON */
    ck_assert_msg(j != NULL, "invalid JSON (%s): %s", je.text, s);
    free(s);
    return j;
}

static const char *str_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_string(v), "'%s' is not a string", key);
    return json_string_value(v);
}

static const api_head head = {"chatcmpl-0000000000000001", "stories260K", 1700000000, "fp_hearth"};
static const api_usage usage = {10, 5, 4};

static void check_usage(json_t *u)
{
    assert_keys(u, "prompt_tokens,completion_tokens,total_tokens,prompt_tokens_details");
    ck_assert_int_eq(json_integer_value(json_object_get(u, "prompt_tokens")), 10);
    ck_assert_int_eq(json_integer_value(json_object_get(u, "completion_tokens")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(u, "total_tokens")), 15);
    json_t *d = json_object_get(u, "prompt_tokens_details");
    assert_keys(d, "cached_tokens");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "cached_tokens")), 4);
}

START_TEST(render_chat_completion)
{
    api_choice c[2] = {
        {.index = 0, .text = "Hello there", .len = 11, .finish_reason = "stop"},
        {.index = 1, .text = "Hi", .len = 2, .finish_reason = "length"},
    };
    json_t *j = load(api_response_json(API_CHAT, &head, c, 2, &usage));
    assert_keys(j, "id,object,created,model,system_fingerprint,choices,usage");
    ck_assert_str_eq(str_of(j, "id"), "chatcmpl-0000000000000001");
    ck_assert_str_eq(str_of(j, "object"), "chat.completion");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "created")), 1700000000);
    ck_assert_str_eq(str_of(j, "model"), "stories260K");
    ck_assert_str_eq(str_of(j, "system_fingerprint"), "fp_hearth");
    json_t *ch = json_object_get(j, "choices");
    ck_assert_uint_eq(json_array_size(ch), 2);
    json_t *c0 = json_array_get(ch, 0);
    assert_keys(c0, "index,message,logprobs,finish_reason");
    ck_assert_int_eq(json_integer_value(json_object_get(c0, "index")), 0);
    ck_assert(json_is_null(json_object_get(c0, "logprobs")));
    ck_assert_str_eq(str_of(c0, "finish_reason"), "stop");
    json_t *m = json_object_get(c0, "message");
    assert_keys(m, "role,content,refusal");
    ck_assert_str_eq(str_of(m, "role"), "assistant");
    ck_assert_str_eq(str_of(m, "content"), "Hello there");
    json_t *c1 = json_array_get(ch, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(c1, "index")), 1);
    ck_assert_str_eq(str_of(c1, "finish_reason"), "length");
    check_usage(json_object_get(j, "usage"));
    json_decref(j);

    /* No usage, no fingerprint, unfinished: the keys shrink or go null. */
    api_head h2 = {"x", "m", 1, NULL};
    api_choice c2 = {.text = NULL};
    j = load(api_response_json(API_CHAT, &h2, &c2, 1, NULL));
    assert_keys(j, "id,object,created,model,system_fingerprint,choices");
    ck_assert(json_is_null(json_object_get(j, "system_fingerprint")));
    json_t *cc = json_array_get(json_object_get(j, "choices"), 0);
    ck_assert(json_is_null(json_object_get(cc, "finish_reason")));
    ck_assert(json_is_null(json_object_get(json_object_get(cc, "message"), "content")));
    json_decref(j);
}
END_TEST

START_TEST(render_chat_logprobs)
{
    api_top_logprob top[2] = {{"Hel", 3, -0.25f}, {"\xe2\x82", 2, -INFINITY}};
    api_logprob lp[2] = {
        {"Hel", 3, -0.25f, top, 2},
        {"lo", 2, -1.5f, NULL, 0},
    };
    api_choice c = {.index = 0, .text = "Hello", .len = 5, .finish_reason = "stop",
                    .logprobs = true, .lp = lp, .n_lp = 2};
    json_t *j = load(api_response_json(API_CHAT, &head, &c, 1, &usage));
    json_t *l = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs");
    assert_keys(l, "content,refusal");
    json_t *content = json_object_get(l, "content");
    ck_assert_uint_eq(json_array_size(content), 2);
    json_t *t0 = json_array_get(content, 0);
    assert_keys(t0, "token,logprob,bytes,top_logprobs");
    ck_assert_str_eq(str_of(t0, "token"), "Hel");
    ck_assert_double_eq(json_real_value(json_object_get(t0, "logprob")), -0.25);
    json_t *bytes = json_object_get(t0, "bytes");
    ck_assert_uint_eq(json_array_size(bytes), 3);
    ck_assert_int_eq(json_integer_value(json_array_get(bytes, 0)), 'H');
    json_t *tops = json_object_get(t0, "top_logprobs");
    ck_assert_uint_eq(json_array_size(tops), 2);
    json_t *a1 = json_array_get(tops, 1);
    assert_keys(a1, "token,logprob,bytes");
    /* A partial character: U+FFFD as text, the raw bytes in "bytes", and
     * -inf as -9999. */
    ck_assert_str_eq(str_of(a1, "token"), "\xef\xbf\xbd");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(a1, "bytes"), 0)), 0xe2);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(a1, "bytes"), 1)), 0x82);
    ck_assert_double_eq(json_real_value(json_object_get(a1, "logprob")), -9999.0);
    ck_assert_uint_eq(json_array_size(json_object_get(json_array_get(content, 1), "top_logprobs")),
                      0);
    json_decref(j);

    /* logprobs requested but no tokens yet: an empty content list. */
    api_choice e = {.text = "", .logprobs = true};
    j = load(api_response_json(API_CHAT, &head, &e, 1, NULL));
    l = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs");
    ck_assert_uint_eq(json_array_size(json_object_get(l, "content")), 0);
    json_decref(j);
}
END_TEST

START_TEST(render_chat_chunks)
{
    /* First: role and empty content. */
    api_choice first = {.index = 0, .text = "", .len = 0, .role = true};
    json_t *j = load(api_chunk_json(API_CHAT, &head, &first, 1));
    assert_keys(j, "id,object,created,model,system_fingerprint,choices");
    ck_assert_str_eq(str_of(j, "object"), "chat.completion.chunk");
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    assert_keys(c, "index,delta,logprobs,finish_reason");
    json_t *d = json_object_get(c, "delta");
    assert_keys(d, "role,content");
    ck_assert_str_eq(str_of(d, "role"), "assistant");
    ck_assert_str_eq(str_of(d, "content"), "");
    ck_assert(json_is_null(json_object_get(c, "finish_reason")));
    json_decref(j);

    /* Content. */
    api_choice mid = {.index = 0, .text = "Once", .len = 4};
    j = load(api_chunk_json(API_CHAT, &head, &mid, 1));
    d = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
    assert_keys(d, "content");
    ck_assert_str_eq(str_of(d, "content"), "Once");
    json_decref(j);

    /* Last: empty delta and the finish reason. */
    api_choice last = {.index = 0, .text = NULL, .finish_reason = "stop"};
    j = load(api_chunk_json(API_CHAT, &head, &last, 1));
    c = json_array_get(json_object_get(j, "choices"), 0);
    assert_keys(json_object_get(c, "delta"), "");
    ck_assert_str_eq(str_of(c, "finish_reason"), "stop");
    json_decref(j);

    /* Usage chunk: no choices, usage. */
    j = load(api_usage_chunk_json(API_CHAT, &head, &usage));
    assert_keys(j, "id,object,created,model,system_fingerprint,choices,usage");
    ck_assert_str_eq(str_of(j, "object"), "chat.completion.chunk");
    ck_assert(json_is_array(json_object_get(j, "choices")));
    ck_assert_uint_eq(json_array_size(json_object_get(j, "choices")), 0);
    check_usage(json_object_get(j, "usage"));
    json_decref(j);
}
END_TEST

START_TEST(render_text_completion)
{
    api_top_logprob top[2] = {{" upon", 5, -0.1f}, {" a", 2, -3.0f}};
    api_logprob lp[2] = {{" upon", 5, -0.1f, top, 2}, {" a", 2, -0.5f, top + 1, 1}};
    api_head h = {"cmpl-0000000000000002", "stories260K", 1700000001, NULL};
    api_choice c = {.index = 0, .text = "Once upon a", .len = 11, .finish_reason = "length",
                    .logprobs = true, .lp = lp, .n_lp = 2, .text_offset = 4};
    json_t *j = load(api_response_json(API_COMPLETION, &h, &c, 1, &usage));
    assert_keys(j, "id,object,created,model,system_fingerprint,choices,usage");
    ck_assert_str_eq(str_of(j, "object"), "text_completion");
    ck_assert_str_eq(str_of(j, "id"), "cmpl-0000000000000002");
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    assert_keys(ch, "text,index,logprobs,finish_reason");
    ck_assert_str_eq(str_of(ch, "text"), "Once upon a");
    ck_assert_str_eq(str_of(ch, "finish_reason"), "length");
    json_t *l = json_object_get(ch, "logprobs");
    assert_keys(l, "tokens,token_logprobs,top_logprobs,text_offset");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(l, "tokens"), 1)), " a");
    ck_assert_double_eq_tol(json_real_value(json_array_get(json_object_get(l, "token_logprobs"), 0)),
                            -0.1, 1e-7);
    json_t *offs = json_object_get(l, "text_offset");
    ck_assert_int_eq(json_integer_value(json_array_get(offs, 0)), 4);
    ck_assert_int_eq(json_integer_value(json_array_get(offs, 1)), 9);
    json_t *t0 = json_array_get(json_object_get(l, "top_logprobs"), 0);
    ck_assert_uint_eq(json_object_size(t0), 2);
    ck_assert_double_eq(json_real_value(json_object_get(t0, " a")), -3.0);
    check_usage(json_object_get(j, "usage"));
    json_decref(j);

    /* Chunk: same object name, no usage; text NULL renders "". */
    api_choice k = {.index = 0, .text = NULL};
    j = load(api_chunk_json(API_COMPLETION, &h, &k, 1));
    assert_keys(j, "id,object,created,model,system_fingerprint,choices");
    ck_assert_str_eq(str_of(j, "object"), "text_completion");
    ch = json_array_get(json_object_get(j, "choices"), 0);
    ck_assert_str_eq(str_of(ch, "text"), "");
    ck_assert(json_is_null(json_object_get(ch, "logprobs")));
    json_decref(j);

    j = load(api_usage_chunk_json(API_COMPLETION, &h, &usage));
    ck_assert_str_eq(str_of(j, "object"), "text_completion");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "choices")), 0);
    check_usage(json_object_get(j, "usage"));
    json_decref(j);
}
END_TEST

START_TEST(render_invalid_utf8)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"a\xff" "b", 3, "a\xef\xbf\xbd" "b"},
        {"ok\xe2\x82", 4, "ok\xef\xbf\xbd"},              /* truncated: one U+FFFD */
        {"\xe2\x82" "x", 3, "\xef\xbf\xbd" "x"},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},      /* overlong */
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80", 4,
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},      /* valid emoji kept */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        api_choice c = {.text = cases[i].in, .len = cases[i].len, .finish_reason = "stop"};
        json_t *j = load(api_response_json(API_COMPLETION, &head, &c, 1, NULL));
        json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
        ck_assert_msg(!strcmp(str_of(ch, "text"), cases[i].want), "case %zu", i);
        json_decref(j);
    }
    /* NUL bytes survive as \u0000. */
    api_choice z = {.text = "a\0b", .len = 3};
    char *s = api_chunk_json(API_CHAT, &head, &z, 1);
    ck_assert_ptr_nonnull(strstr(s, "a\\u0000b"));
    free(s);
    /* Bad bytes in the model name too. */
    api_head h = {"id", "bad\xfe", 0, NULL};
    json_t *j = load(api_usage_chunk_json(API_CHAT, &h, &usage));
    ck_assert_str_eq(str_of(j, "model"), "bad\xef\xbf\xbd");
    json_decref(j);

    /* Random bytes always render as JSON that jansson reads back. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    char buf[64];
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 64);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (char)(x >> 24);
        }
        api_top_logprob t = {buf, n, -1.0f};
        api_logprob lp = {buf, n, -1.0f, &t, 1};
        api_choice c = {.text = buf, .len = n, .logprobs = true, .lp = &lp, .n_lp = 1};
        json_decref(load(api_response_json(API_CHAT, &head, &c, 1, NULL)));
        json_decref(load(api_response_json(API_COMPLETION, &head, &c, 1, NULL)));
    }
}
END_TEST

START_TEST(render_sse_and_id)
{
    char *s = api_sse_event("{\"a\":1}");
    ck_assert_str_eq(s, "data: {\"a\":1}\n\n");
    free(s);
    s = api_sse_event("");
    ck_assert_str_eq(s, "data: \n\n");
    free(s);
    ck_assert_str_eq(API_SSE_DONE, "data: [DONE]\n\n");
    ck_assert_str_eq(API_SSE_PING, ": ping\n\n");

    /* A chunk framed as an event is one line of JSON. */
    api_choice c = {.text = "line1\nline2", .len = 11};
    char *json = api_chunk_json(API_CHAT, &head, &c, 1);
    ck_assert_ptr_null(strchr(json, '\n'));
    s = api_sse_event(json);
    ck_assert(!strncmp(s, "data: {", 7));
    ck_assert_uint_eq(strlen(s), strlen(json) + 8);
    ck_assert_str_eq(s + strlen(s) - 2, "\n\n");
    free(json);
    free(s);

    char id[API_ID_MAX];
    api_format_id(id, API_CHAT, 0xff);
    ck_assert_str_eq(id, "chatcmpl-00000000000000ff");
    api_format_id(id, API_COMPLETION, UINT64_MAX);
    ck_assert_str_eq(id, "cmpl-ffffffffffffffff");
}
END_TEST

/* ============================================================ stop */

/* Feed pieces (NULL-terminated) to a matcher with the given stops;
 * returns what was emitted (static) and the stop index via *which, or -1
 * when no stop matched (the rest is flushed then). */
static const char *run_stop(const char *const *stops, size_t n_stops, const char *const *pieces,
                            int *which)
{
    static char out[1024];
    size_t o = 0;
    api_stop *m;
    ck_assert_int_eq(api_stop_new(stops, n_stops, &m), 0);
    *which = -1;
    for (size_t i = 0; pieces[i]; i++) {
        api_stop_out r;
        ck_assert_int_eq(api_stop_feed(m, pieces[i], strlen(pieces[i]), &r), 0);
        ck_assert(o + r.len < sizeof out);
        memcpy(out + o, r.text, r.len);
        o += r.len;
        if (r.stop >= 0) {
            *which = r.stop;
            ck_assert(api_stop_done(m));
        }
    }
    if (*which < 0) {
        api_stop_out r;
        api_stop_flush(m, &r);
        memcpy(out + o, r.text, r.len);
        o += r.len;
    }
    ck_assert(api_stop_done(m));
    out[o] = '\0';
    api_stop_free(m);
    return out;
}

START_TEST(stop_across_pieces)
{
    const char *stops[] = {"\n\nUser:"};
    api_stop *m;
    ck_assert_int_eq(api_stop_new(stops, 1, &m), 0);
    api_stop_out r;
    const char *pieces[] = {"Hello", "\n", "\n", "Us", "er:"};
    size_t want_len[] = {5, 0, 0, 0, 0};
    for (size_t i = 0; i < 5; i++) {
        ck_assert_int_eq(api_stop_feed(m, pieces[i], strlen(pieces[i]), &r), 0);
        ck_assert_uint_eq(r.len, want_len[i]);
        if (i == 0)
            ck_assert(!memcmp(r.text, "Hello", 5));
        ck_assert_int_eq(r.stop, i == 4 ? 0 : -1);
    }
    ck_assert(api_stop_done(m));
    /* Nothing more after a stop. */
    ck_assert_int_eq(api_stop_feed(m, "more", 4, &r), 0);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_int_eq(r.stop, -1);
    api_stop_flush(m, &r);
    ck_assert_uint_eq(r.len, 0);
    api_stop_free(m);

    /* The stop's start was a false alarm: held text comes out at once. */
    int which;
    const char *p2[] = {"Hello", "\n", "\n", "Us", "Sure", NULL};
    ck_assert_str_eq(run_stop(stops, 1, p2, &which), "Hello\n\nUsSure");
    ck_assert_int_eq(which, -1);
    ck_assert_int_eq(api_stop_new(stops, 1, &m), 0);
    const char *seen[] = {"Hello", "", "", "", "\n\nUsSure"};
    for (size_t i = 0; i < 5; i++) {
        ck_assert_int_eq(api_stop_feed(m, p2[i], strlen(p2[i]), &r), 0);
        ck_assert_uint_eq(r.len, strlen(seen[i]));
        ck_assert(!memcmp(r.text, seen[i], r.len));
    }
    api_stop_free(m);

    /* Stop in the middle of a piece: text before it in the same piece. */
    const char *p3[] = {"ab", "c\n\nUser: x", NULL};
    ck_assert_str_eq(run_stop(stops, 1, p3, &which), "abc");
    ck_assert_int_eq(which, 0);
}
END_TEST

START_TEST(stop_overlapping_prefix)
{
    const char *stops[] = {"aab"};
    int which;
    const char *bytes[] = {"a", "a", "a", "b", NULL};
    ck_assert_str_eq(run_stop(stops, 1, bytes, &which), "a");
    ck_assert_int_eq(which, 0);
    const char *whole[] = {"aaab", NULL};
    ck_assert_str_eq(run_stop(stops, 1, whole, &which), "a");
    const char *split[] = {"xa", "aa", "b", "tail", NULL};
    ck_assert_str_eq(run_stop(stops, 1, split, &which), "xa");
    ck_assert_int_eq(which, 0);
    /* A prefix that diverges: "abab" + "d" against "abc". */
    const char *stops2[] = {"abc"};
    const char *p2[] = {"xab", "abd", NULL};
    ck_assert_str_eq(run_stop(stops2, 1, p2, &which), "xababd");
    ck_assert_int_eq(which, -1);
    const char *p3[] = {"xab", "ab", "c", NULL};
    ck_assert_str_eq(run_stop(stops2, 1, p3, &which), "xab");
    ck_assert_int_eq(which, 0);
}
END_TEST

START_TEST(stop_multiple)
{
    int which;
    const char *stops[] = {"END", "STOP"};
    const char *p[] = {"hello STO", "P now END", NULL};
    ck_assert_str_eq(run_stop(stops, 2, p, &which), "hello ");
    ck_assert_int_eq(which, 1);
    /* The first stop to be complete wins, regardless of pieces. */
    const char *s2[] = {"abcd", "bc"};
    const char *whole[] = {"abcd", NULL};
    ck_assert_str_eq(run_stop(s2, 2, whole, &which), "a");
    ck_assert_int_eq(which, 1);
    const char *bytes[] = {"a", "b", "c", "d", NULL};
    ck_assert_str_eq(run_stop(s2, 2, bytes, &which), "a");
    ck_assert_int_eq(which, 1);
    /* Complete on the same byte: the longer (earlier) one. */
    const char *s3[] = {"bc", "abc"};
    const char *p3[] = {"xa", "bc", NULL};
    ck_assert_str_eq(run_stop(s3, 2, p3, &which), "x");
    ck_assert_int_eq(which, 1);
    /* Empty stops are skipped; indexes refer to the caller's array. */
    const char *s4[] = {"", "z", ""};
    const char *p4[] = {"xyz", NULL};
    ck_assert_str_eq(run_stop(s4, 3, p4, &which), "xy");
    ck_assert_int_eq(which, 1);
    /* The stop is the very first text. */
    const char *p5[] = {"END", NULL};
    ck_assert_str_eq(run_stop(stops, 2, p5, &which), "");
    ck_assert_int_eq(which, 0);
}
END_TEST

START_TEST(stop_utf8)
{
    api_stop *m;
    api_stop_out r;
    /* No stops: only character boundaries are held. */
    ck_assert_int_eq(api_stop_new(NULL, 0, &m), 0);
    ck_assert_int_eq(api_stop_feed(m, "h\xc3", 2, &r), 0);
    ck_assert_uint_eq(r.len, 1);
    ck_assert_int_eq(api_stop_feed(m, "\xa9!", 2, &r), 0);
    ck_assert_uint_eq(r.len, 3);
    ck_assert(!memcmp(r.text, "\xc3\xa9!", 3));
    /* A 4-byte character over three pieces. */
    ck_assert_int_eq(api_stop_feed(m, "\xf0\x9f", 2, &r), 0);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_int_eq(api_stop_feed(m, "\x98", 1, &r), 0);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_int_eq(api_stop_feed(m, "\x80", 1, &r), 0);
    ck_assert_uint_eq(r.len, 4);
    /* Invalid bytes are not held (nothing could complete them). */
    ck_assert_int_eq(api_stop_feed(m, "\xff", 1, &r), 0);
    ck_assert_uint_eq(r.len, 1);
    ck_assert_int_eq(api_stop_feed(m, "\xe0\x80", 2, &r), 0);
    ck_assert_uint_eq(r.len, 2);
    /* An incomplete character at the end is flushed as is. */
    ck_assert_int_eq(api_stop_feed(m, "x\xe2\x82", 3, &r), 0);
    ck_assert_uint_eq(r.len, 1);
    api_stop_flush(m, &r);
    ck_assert_uint_eq(r.len, 2);
    ck_assert(!memcmp(r.text, "\xe2\x82", 2));
    api_stop_free(m);

    /* A multi-byte stop string split inside its character. */
    int which;
    const char *stops[] = {"\xc3\xa9t\xc3\xa9"};
    const char *p[] = {"caf", "\xc3", "\xa9", "t\xc3", "\xa9", NULL};
    ck_assert_str_eq(run_stop(stops, 1, p, &which), "caf");
    ck_assert_int_eq(which, 0);
    /* Emitted text never ends inside a character, stops or not. */
    const char *stops2[] = {"\xc3\xa9!"};
    const char *p2[] = {"a\xc3\xa9", "b\xe2", "\x82\xac", NULL};
    ck_assert_str_eq(run_stop(stops2, 1, p2, &which), "a\xc3\xa9" "b\xe2\x82\xac");

    ck_assert_uint_eq(api_utf8_complete_len("ab", 2), 2);
    ck_assert_uint_eq(api_utf8_complete_len("a\xe2\x82", 3), 1);
    ck_assert_uint_eq(api_utf8_complete_len("a\xe2\x82\xac", 4), 4);
    ck_assert_uint_eq(api_utf8_complete_len("\xf0", 1), 0);
    ck_assert_uint_eq(api_utf8_complete_len("\xf0\x80", 2), 2); /* overlong: invalid */
    ck_assert_uint_eq(api_utf8_complete_len("\xed\xa0", 2), 2); /* surrogate */
    ck_assert_uint_eq(api_utf8_complete_len("\x80\x80\x80", 3), 3);
    ck_assert_uint_eq(api_utf8_complete_len("", 0), 0);
}
END_TEST

START_TEST(stop_flush_at_end)
{
    const char *stops[] = {"###"};
    api_stop *m;
    api_stop_out r;
    ck_assert_int_eq(api_stop_new(stops, 1, &m), 0);
    ck_assert_int_eq(api_stop_feed(m, "ab", 2, &r), 0);
    ck_assert_uint_eq(r.len, 2);
    ck_assert_int_eq(api_stop_feed(m, "##", 2, &r), 0);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_int_eq(api_stop_feed(m, "", 0, &r), 0);
    ck_assert_uint_eq(r.len, 0);
    ck_assert(!api_stop_done(m));
    api_stop_flush(m, &r);
    ck_assert_uint_eq(r.len, 2);
    ck_assert(!memcmp(r.text, "##", 2));
    ck_assert_int_eq(r.stop, -1);
    ck_assert(api_stop_done(m));
    ck_assert_int_eq(api_stop_feed(m, "#", 1, &r), 0);
    ck_assert_uint_eq(r.len, 0);
    api_stop_free(m);
    api_stop_free(NULL);
}
END_TEST

/* Against a direct search over the whole text, for random texts, stops and
 * piece boundaries: same output and same stop. */
START_TEST(stop_random_vs_reference)
{
    uint64_t x = 88172645463325252u;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    const char alpha[] = "ab\n";
    for (int round = 0; round < 3000; round++) {
        char text[80];
        size_t tn = RND() % 60;
        for (size_t i = 0; i < tn; i++)
            text[i] = alpha[RND() % 3];
        text[tn] = '\0';
        char sbuf[4][8];
        const char *stops[4];
        size_t ns = RND() % 4;
        for (size_t s = 0; s < ns; s++) {
            size_t l = 1 + RND() % 5;
            for (size_t i = 0; i < l; i++)
                sbuf[s][i] = alpha[RND() % 3];
            sbuf[s][l] = '\0';
            stops[s] = sbuf[s];
        }
        /* Reference: the earliest end; on a tie the longest. */
        size_t best_end = SIZE_MAX, best_len = 0;
        int best = -1;
        for (size_t s = 0; s < ns; s++) {
            const char *hit = strstr(text, stops[s]);
            if (!hit)
                continue;
            size_t l = strlen(stops[s]);
            size_t end = (size_t)(hit - text) + l;
            if (end < best_end || (end == best_end && l > best_len)) {
                best_end = end;
                best_len = l;
                best = (int)s;
            }
        }
        size_t want_len = best >= 0 ? best_end - best_len : tn;

        api_stop *m;
        ck_assert_int_eq(api_stop_new(stops, ns, &m), 0);
        char out[80];
        size_t o = 0;
        int which = -1;
        for (size_t i = 0; i < tn && which < 0;) {
            size_t k = RND() % 5;
            if (k > tn - i)
                k = tn - i;
            api_stop_out r;
            ck_assert_int_eq(api_stop_feed(m, text + i, k, &r), 0);
            memcpy(out + o, r.text, r.len);
            o += r.len;
            which = r.stop;
            i += k;
        }
        if (which < 0) {
            api_stop_out r;
            api_stop_flush(m, &r);
            memcpy(out + o, r.text, r.len);
            o += r.len;
        }
        api_stop_free(m);
        ck_assert_msg(which == best, "round %d: stop %d, want %d", round, which, best);
        ck_assert_msg(o == want_len && !memcmp(out, text, o), "round %d: %zu bytes, want %zu",
                      round, o, want_len);
    }
#undef RND
}
END_TEST

/* ============================================================ suite */

static Suite *suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("request");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, parse_bad_field, 0, (int)(sizeof bad_cases / sizeof *bad_cases));
    tcase_add_test(tc, parse_range_message);
    tcase_add_test(tc, parse_stop_length_cap);
    tcase_add_test(tc, parse_invalid_json_position);
    tcase_add_test(tc, parse_invalid_json_nul);
    tcase_add_test(tc, parse_error_json);
    tcase_add_test(tc, parse_chat_defaults);
    tcase_add_test(tc, parse_chat_all_fields);
    tcase_add_test(tc, parse_chat_tools);
    tcase_add_test(tc, parse_nulls_are_absent);
    tcase_add_test(tc, parse_edge_values);
    tcase_add_test(tc, parse_completion_prompts);
    tcase_add_test(tc, parse_depth_limit);
    tcase_add_test(tc, parse_free_twice);
    suite_add_tcase(s, tc);

    tc = tcase_create("response");
    tcase_add_test(tc, render_chat_completion);
    tcase_add_test(tc, render_chat_logprobs);
    tcase_add_test(tc, render_chat_chunks);
    tcase_add_test(tc, render_text_completion);
    tcase_add_test(tc, render_invalid_utf8);
    tcase_add_test(tc, render_sse_and_id);
    suite_add_tcase(s, tc);

    tc = tcase_create("stop");
    tcase_add_test(tc, stop_across_pieces);
    tcase_add_test(tc, stop_overlapping_prefix);
    tcase_add_test(tc, stop_multiple);
    tcase_add_test(tc, stop_utf8);
    tcase_add_test(tc, stop_flush_at_end);
    tcase_add_test(tc, stop_random_vs_reference);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
