/* test_messages.c - the Anthropic Messages API (api/messages.h): request
 * parsing and refusals here, rendering in test_messages_render.c. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "messages.h"
#include "testmsg.h"

/* A valid body with one extra field. */
#define BODY(x)                                                                \
    "{\"model\":\"m\",\"max_tokens\":16,"                                      \
    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]" x "}"

static api_request req;
static api_err err;

static void teardown(void)
{
    api_request_free(&req);
}

static int parse(const char *body)
{
    return api_parse_messages(body, strlen(body), &req, &err);
}

/* ============================================================ helpers */

json_t *tm_load(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", je.text, s);
    return j;
}

const char *tm_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_string(v), "'%s' is not a string", key);
    return json_string_value(v);
}

long long tm_int(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_integer(v), "'%s' is not an integer", key);
    return (long long)json_integer_value(v);
}

/* ============================================================ refusals */

typedef struct bad_case {
    const char *body;
    const char *param;   /* "" when none */
    const char *code;
    const char *message; /* a part of the message */
} bad_case;

static const bad_case bad_cases[] = {
    /* the body */
    {"", "", "invalid_json", "empty"},
    {"{\"model\":", "", "invalid_json", "invalid JSON"},
    /* said plainly, not as jansson's JSON_ALLOW_NUL */
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
     "\"a\\u0000b\"}]}", "", "invalid_json",
     "invalid JSON: \\u0000 (the NUL character) is not allowed in strings at line 1"},
    {"[1,2]", "", "invalid_type", "must be a JSON object (got an array)"},
    {"\"hi\"", "", "invalid_type", "must be a JSON object (got a string)"},
    /* model: required */
    {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
     "model", "missing_required_parameter", "model: is required"},
    {"{\"model\":null,\"max_tokens\":5,\"messages\":[]}", "model",
     "missing_required_parameter", "model: is required"},
    {"{\"model\":7,\"max_tokens\":5}", "model", "invalid_type",
     "model: must be a string (got an integer)"},
    /* max_tokens: required, >= 1, reported before the messages */
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
     "max_tokens", "missing_required_parameter", "max_tokens: is required"},
    {"{\"model\":\"m\"}", "max_tokens", "missing_required_parameter",
     "max_tokens: is required"},
    {"{\"model\":\"m\",\"max_tokens\":0}", "max_tokens", "invalid_value",
     "max_tokens: must be an integer from 1 to 2147483647 (got 0)"},
    {"{\"model\":\"m\",\"max_tokens\":-1}", "max_tokens", "invalid_value",
     "(got -1)"},
    {"{\"model\":\"m\",\"max_tokens\":2.5}", "max_tokens", "invalid_type",
     "(got a number)"},
    {"{\"model\":\"m\",\"max_tokens\":\"5\"}", "max_tokens", "invalid_type",
     "(got a string)"},
    {"{\"model\":\"m\",\"max_tokens\":3000000000}", "max_tokens",
     "invalid_value", "(got 3000000000)"},
    /* messages */
    {"{\"model\":\"m\",\"max_tokens\":5}", "messages",
     "missing_required_parameter", "messages: is required"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":{}}", "messages",
     "invalid_type", "messages: must be an array"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}", "messages",
     "invalid_value", "at least one"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[\"hi\"]}", "messages.0",
     "invalid_type", "messages.0: must be an object"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"content\":\"a\"}]}",
     "messages.0.role", "missing_required_parameter",
     "messages.0.role: is required"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":\"a\"},{\"role\":\"tool\",\"content\":\"a\"}]}",
     "messages.1.role", "invalid_value",
     "must be \"user\" or \"assistant\" (got \"tool\")"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\","
     "\"content\":\"a\"}]}",
     "messages.0.role", "invalid_value", "top-level 'system' field"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":1,"
     "\"content\":\"a\"}]}",
     "messages.0.role", "invalid_type", "(got an integer)"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\"}]}",
     "messages.0.content", "missing_required_parameter",
     "messages.0.content: is required"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":5}]}",
     "messages.0.content", "invalid_type",
     "must be a string or an array of content blocks (got an integer)"},
    /* content blocks */
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image\","
     "\"source\":{}}]}]}",
     "messages.0.content.1", "unsupported_value",
     "messages.0.content.1: content blocks of type 'image' are not "
     "supported (this server reads text only)"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"document\"}]}]}",
     "messages.0.content.0", "unsupported_value", "'document'"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}]}]}",
     "messages.0.content.0", "unsupported_value", "belongs in an assistant message"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":\"a\"},{\"role\":\"assistant\",\"content\":[{\"type\":"
     "\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":[]}]}]}",
     "messages.1.content", "invalid_value", "needs \"id\", \"name\" and an object"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"tool_result\"}]}]}",
     "messages.0.content.0", "missing_required_parameter", "tool_use_id"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"thinking\",\"thinking\":\"x\"}]}]}",
     "messages.0.content.0", "unsupported_value", "extended thinking"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"hologram\"}]}]}",
     "messages.0.content.0", "invalid_value",
     "unknown content block type 'hologram'"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"text\":\"a\"}]}]}",
     "messages.0.content.0.type", "missing_required_parameter",
     "must be a string such as \"text\""},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"text\",\"text\":3}]}]}",
     "messages.0.content.0.text", "invalid_type", "must be a string"},
    {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[\"a\"]}]}",
     "messages.0.content.0", "invalid_type", "content block object"},
    /* system */
    {BODY(",\"system\":5"), "system", "invalid_type",
     "system: must be a string or an array"},
    {BODY(",\"system\":[{\"type\":\"image\"}]"), "system.0",
     "unsupported_value", "system.0: content blocks of type 'image'"},
    /* refused features */
    {BODY(",\"tools\":[{\"name\":\"f\"}]"), "tools.0", "missing_required_parameter",
     "tools.0.input_schema: is required"},
    {BODY(",\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web\"}]"), "tools.0",
     "unsupported_value", "not server tools"},
    {BODY(",\"tool_choice\":{\"type\":\"any\"}"), "tool_choice",
     "invalid_value", "no tools are given"},
    {BODY(",\"tool_choice\":\"auto\""), "tool_choice",
     "invalid_type", "must be an object"},
    {BODY(",\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],\"tool_choice\":"
          "{\"type\":\"tool\",\"name\":\"g\"}"), "tool_choice",
     "invalid_value", "'g', which is not among the tools"},
    {BODY(",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}"),
     "thinking", "unsupported_parameter",
     "thinking: extended thinking is not supported"},
    {BODY(",\"output_format\":{\"type\":\"json_schema\"}"), "output_format",
     "invalid_value", "output_format: must be {"},
    /* sampling */
    {BODY(",\"temperature\":1.5"), "temperature", "invalid_value",
     "temperature: must be a number from 0 to 1 (got 1.5)"},
    {BODY(",\"temperature\":-0.1"), "temperature", "invalid_value",
     "(got -0.1)"},
    {BODY(",\"temperature\":\"hot\""), "temperature", "invalid_type",
     "(got a string)"},
    {BODY(",\"top_p\":1.01"), "top_p", "invalid_value", "top_p:"},
    {BODY(",\"top_p\":[]"), "top_p", "invalid_type", "(got an array)"},
    {BODY(",\"top_k\":-1"), "top_k", "invalid_value", "top_k:"},
    {BODY(",\"top_k\":1.5"), "top_k", "invalid_type", "top_k:"},
    /* stop_sequences: the chat parser's limits */
    {BODY(",\"stop_sequences\":\"x\""), "stop_sequences", "invalid_type",
     "must be an array of strings (got a string)"},
    {BODY(",\"stop_sequences\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"),
     "stop_sequences", "invalid_value", "holds 5 strings; this server takes "
     "at most 4"},
    {BODY(",\"stop_sequences\":[\"a\",2]"), "stop_sequences.1",
     "invalid_type", "stop_sequences.1: must be a string (got an integer)"},
    /* stream */
    {BODY(",\"stream\":\"yes\""), "stream", "invalid_type",
     "stream: must be a boolean"},
};

START_TEST(parse_refusals)
{
    const bad_case *c = &bad_cases[_i];
    ck_assert_int_eq(parse(c->body), -1);
    ck_assert_uint_eq(err.status, 400);
    ck_assert_str_eq(err.param, c->param);
    ck_assert_str_eq(err.code, c->code);
    ck_assert_msg(strstr(err.message, c->message),
                  "case %d: message \"%s\" lacks \"%s\"", _i, err.message,
                  c->message);
    /* A failed parse leaves nothing to free. */
    ck_assert_ptr_null(req.messages);
    ck_assert_ptr_null(req.model);
}
END_TEST

START_TEST(parse_stop_too_long)
{
    size_t n = API_MAX_STOP_LEN + 1;
    char *body = malloc(n + 256);
    ck_assert_ptr_nonnull(body);
    int k = sprintf(body, "{\"model\":\"m\",\"max_tokens\":4,\"messages\":[{"
                          "\"role\":\"user\",\"content\":\"a\"}],"
                          "\"stop_sequences\":[\"ok\",\"");
    memset(body + k, 'x', n);
    strcpy(body + k + n, "\"]}");
    ck_assert_int_eq(parse(body), -1);
    ck_assert_str_eq(err.param, "stop_sequences.1");
    ck_assert_str_eq(err.code, "invalid_value");
    ck_assert_ptr_nonnull(strstr(err.message, "is 1025 bytes long; the limit "
                                              "is 1024"));
    /* exactly the limit is fine */
    body[k + n - 1] = '"';
    strcpy(body + k + n, "]}");
    ck_assert_int_eq(parse(body), 0);
    ck_assert_uint_eq(req.n_stop, 2);
    ck_assert_uint_eq(strlen(req.stop[1]), API_MAX_STOP_LEN);
    free(body);
}
END_TEST

START_TEST(parse_depth_limit)
{
    char body[512];
    size_t k = 0;
    for (int i = 0; i < 100; i++)
        body[k++] = '[';
    body[k] = '\0';
    ck_assert_int_eq(api_parse_messages(body, k, &req, &err), -1);
    ck_assert_str_eq(err.code, "invalid_json");
    ck_assert_ptr_nonnull(strstr(err.message, "nested deeper"));
    /* brackets inside strings do not count */
    char deep[600] = "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{"
                     "\"role\":\"user\",\"content\":\"";
    k = strlen(deep);
    for (int i = 0; i < 100; i++)
        deep[k++] = '[';
    strcpy(deep + k, "\\\"[\"}]}");
    ck_assert_int_eq(parse(deep), 0);
}
END_TEST

START_TEST(parse_error_body_shape)
{
    ck_assert_int_eq(parse(BODY(",\"temperature\":1.5")), -1);
    char *s = api_messages_err_json(&err);
    json_t *j = tm_load(s);
    ck_assert_str_eq(tm_str(j, "type"), "error");
    json_t *e = json_object_get(j, "error");
    ck_assert_str_eq(tm_str(e, "type"), "invalid_request_error");
    ck_assert_str_eq(tm_str(e, "message"), err.message);
    ck_assert_uint_eq(json_object_size(e), 2);
    json_decref(j);
    free(s);
}
END_TEST

/* ============================================================ good bodies */

START_TEST(parse_minimal)
{
    ck_assert_int_eq(parse(BODY("")), 0);
    ck_assert_int_eq(req.kind, API_MESSAGES);
    ck_assert_str_eq(req.model, "m");
    ck_assert_int_eq(req.max_tokens, 16);
    ck_assert_uint_eq(req.set, API_SET_MAX_TOKENS);
    ck_assert_uint_eq(req.n, 1);
    ck_assert_uint_eq(req.n_messages, 1);
    ck_assert_int_eq(req.messages[0].role, API_ROLE_USER);
    ck_assert_str_eq(req.messages[0].content, "hi");
    ck_assert_uint_eq(req.messages[0].content_len, 2);
    ck_assert_ptr_null(req.messages[0].name);
    ck_assert(!req.stream);
    ck_assert_uint_eq(req.n_stop, 0);
    /* sampling: the engine's defaults */
    sampler_params d;
    sampler_params_default(&d);
    ck_assert(req.sampling.temp == d.temp);
    ck_assert(req.sampling.top_p == d.top_p);
    ck_assert_int_eq(req.sampling.top_k, d.top_k);
    ck_assert(!api_messages_continues(&req));
}
END_TEST

START_TEST(parse_blocks_and_system)
{
    const char *body =
        "{\"model\":\"claude-x\",\"max_tokens\":100,"
        "\"system\":[{\"type\":\"text\",\"text\":\"Be \"},"
        "{\"type\":\"text\",\"text\":\"brief.\",\"cache_control\":"
        "{\"type\":\"ephemeral\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"Hello\"},{\"type\":\"text\",\"text\":\", you\"}]},"
        "{\"role\":\"assistant\",\"content\":\"Hi.\"},"
        "{\"role\":\"user\",\"content\":\"A\"},"
        "{\"role\":\"user\",\"content\":[]}],"
        "\"metadata\":{\"user_id\":\"u1\"},\"tools\":[],"
        "\"tool_choice\":{\"type\":\"auto\"},\"thinking\":{\"type\":"
        "\"disabled\"}}";
    ck_assert_int_eq(parse(body), 0);
    ck_assert_str_eq(req.model, "claude-x");
    ck_assert_uint_eq(req.n_messages, 5);
    ck_assert_int_eq(req.messages[0].role, API_ROLE_SYSTEM);
    ck_assert_str_eq(req.messages[0].content, "Be brief.");
    ck_assert_int_eq(req.messages[1].role, API_ROLE_USER);
    ck_assert_str_eq(req.messages[1].content, "Hello, you");
    ck_assert_uint_eq(req.messages[1].content_len, 10);
    ck_assert_int_eq(req.messages[2].role, API_ROLE_ASSISTANT);
    ck_assert_str_eq(req.messages[2].content, "Hi.");
    /* consecutive same-role messages pass through as they are */
    ck_assert_int_eq(req.messages[3].role, API_ROLE_USER);
    ck_assert_int_eq(req.messages[4].role, API_ROLE_USER);
    ck_assert_str_eq(req.messages[4].content, "");
    ck_assert(!api_messages_continues(&req));
}
END_TEST

/* tool_use and tool_result blocks become calls and tool messages (the
 * results first, then the user's text); tools, tool_choice any and
 * output_format are read. */
START_TEST(parse_tool_use)
{
    const char *body =
        "{\"model\":\"m\",\"max_tokens\":9,\"messages\":["
        "{\"role\":\"user\",\"content\":\"w?\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Let me see.\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get\",\"input\":{\"city\":\"Oslo\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
        "\"content\":[{\"type\":\"text\",\"text\":\"-3 C\"}]},{\"type\":\"text\",\"text\":\"thanks\"}]}],"
        "\"tools\":[{\"name\":\"get\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true},"
        "\"output_format\":{\"type\":\"json_schema\",\"schema\":{\"type\":\"object\"}}}";
    ck_assert_msg(parse(body) == 0, "%s", err.message);
    ck_assert_uint_eq(req.n_messages, 4);
    ck_assert_int_eq(req.messages[1].role, API_ROLE_ASSISTANT);
    ck_assert_str_eq(req.messages[1].content, "Let me see.");
    ck_assert_str_eq(req.messages[1].tool_calls,
                     "[{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":\"get\","
                     "\"arguments\":{\"city\":\"Oslo\"}}}]");
    ck_assert_int_eq(req.messages[2].role, API_ROLE_TOOL);
    ck_assert_str_eq(req.messages[2].content, "-3 C");
    ck_assert_str_eq(req.messages[2].tool_call_id, "toolu_1");
    ck_assert_int_eq(req.messages[3].role, API_ROLE_USER);
    ck_assert_str_eq(req.messages[3].content, "thanks");
    ck_assert_int_eq(req.tool_choice, API_TOOL_REQUIRED);
    ck_assert(!req.parallel_tool_calls);
    ck_assert_str_eq(req.json_schema, "{\"type\":\"object\"}");
}
END_TEST

START_TEST(parse_system_string)
{
    ck_assert_int_eq(parse(BODY(",\"system\":\"You are terse.\"")), 0);
    ck_assert_uint_eq(req.n_messages, 2);
    ck_assert_int_eq(req.messages[0].role, API_ROLE_SYSTEM);
    ck_assert_str_eq(req.messages[0].content, "You are terse.");
    ck_assert_str_eq(req.messages[1].content, "hi");
    api_request_free(&req);
    /* an empty system prompt is none */
    ck_assert_int_eq(parse(BODY(",\"system\":\"\"")), 0);
    ck_assert_uint_eq(req.n_messages, 1);
    ck_assert_int_eq(req.messages[0].role, API_ROLE_USER);
    api_request_free(&req);
    ck_assert_int_eq(parse(BODY(",\"system\":[]")), 0);
    ck_assert_uint_eq(req.n_messages, 1);
}
END_TEST

START_TEST(parse_prefill)
{
    ck_assert_int_eq(parse("{\"model\":\"m\",\"max_tokens\":8,\"messages\":["
                           "{\"role\":\"user\",\"content\":\"Name a color\"},"
                           "{\"role\":\"assistant\",\"content\":\"The color "
                           "is\"}]}"), 0);
    ck_assert_uint_eq(req.n_messages, 2);
    ck_assert_int_eq(req.messages[1].role, API_ROLE_ASSISTANT);
    ck_assert_str_eq(req.messages[1].content, "The color is");
    ck_assert(api_messages_continues(&req));
    /* the first message may be the assistant's too */
    api_request_free(&req);
    ck_assert_int_eq(parse("{\"model\":\"m\",\"max_tokens\":8,\"messages\":["
                           "{\"role\":\"assistant\",\"content\":\"Once\"}]}"),
                     0);
    ck_assert(api_messages_continues(&req));
}
END_TEST

START_TEST(parse_sampling_and_stop)
{
    ck_assert_int_eq(parse(BODY(",\"temperature\":0.25,\"top_p\":0.5,"
                                "\"top_k\":7.0,\"stream\":true,"
                                "\"stop_sequences\":[\"\\n\\nHuman:\",\"\","
                                "\"END\"]")), 0);
    ck_assert(fabsf(req.sampling.temp - 0.25f) < 1e-6f);
    ck_assert(fabsf(req.sampling.top_p - 0.5f) < 1e-6f);
    ck_assert_int_eq(req.sampling.top_k, 7);
    ck_assert(req.stream);
    ck_assert_uint_eq(req.set, API_SET_MAX_TOKENS | API_SET_TEMPERATURE |
                                   API_SET_TOP_P | API_SET_TOP_K |
                                   API_SET_STOP);
    /* the empty one is skipped: it would match everywhere */
    ck_assert_uint_eq(req.n_stop, 2);
    ck_assert_str_eq(req.stop[0], "\n\nHuman:");
    ck_assert_str_eq(req.stop[1], "END");
    api_request_free(&req);
    /* the range ends */
    ck_assert_int_eq(parse(BODY(",\"temperature\":0,\"top_p\":1,\"top_k\":0")),
                     0);
    ck_assert(req.sampling.temp == 0.0f);
    ck_assert(req.sampling.top_p == 1.0f);
    ck_assert_int_eq(req.sampling.top_k, 0);
    api_request_free(&req);
    ck_assert_int_eq(parse(BODY(",\"temperature\":1,\"max_tokens\":1")), 0);
    ck_assert(req.sampling.temp == 1.0f);
    ck_assert_int_eq(req.max_tokens, 1);
}
END_TEST

START_TEST(parse_nulls_are_absent)
{
    ck_assert_int_eq(parse(BODY(",\"system\":null,\"temperature\":null,"
                                "\"top_p\":null,\"top_k\":null,\"stream\":null,"
                                "\"stop_sequences\":null,\"tools\":null,"
                                "\"tool_choice\":null,\"thinking\":null,"
                                "\"metadata\":null")), 0);
    ck_assert_uint_eq(req.set, API_SET_MAX_TOKENS);
    ck_assert_uint_eq(req.n_messages, 1);
}
END_TEST

START_TEST(parse_count_tokens)
{
    const char *body = "{\"model\":\"m\",\"system\":\"S\",\"messages\":[{"
                       "\"role\":\"user\",\"content\":\"hi\"}]}";
    ck_assert_int_eq(api_parse_count_tokens(body, strlen(body), &req, &err), 0);
    ck_assert_int_eq(req.kind, API_MESSAGES);
    ck_assert_int_eq(req.max_tokens, -1);
    ck_assert_uint_eq(req.n_messages, 2);
    api_request_free(&req);
    /* the rest is checked as for /v1/messages */
    const char *bad = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                      "\"content\":[{\"type\":\"image\"}]}]}";
    ck_assert_int_eq(api_parse_count_tokens(bad, strlen(bad), &req, &err), -1);
    ck_assert_str_eq(err.param, "messages.0.content.0");
    const char *nomodel = "{\"messages\":[{\"role\":\"user\",\"content\":"
                          "\"a\"}]}";
    ck_assert_int_eq(api_parse_count_tokens(nomodel, strlen(nomodel), &req,
                                            &err), -1);
    ck_assert_str_eq(err.param, "model");
    const char *zero = "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{"
                       "\"role\":\"user\",\"content\":\"a\"}]}";
    ck_assert_int_eq(api_parse_count_tokens(zero, strlen(zero), &req, &err), -1);
    ck_assert_str_eq(err.param, "max_tokens");

    char *s = api_messages_count_json(42);
    ck_assert_str_eq(s, "{\"input_tokens\":42}");
    free(s);
}
END_TEST

START_TEST(parse_free_twice)
{
    ck_assert_int_eq(parse(BODY(",\"system\":\"s\",\"stop_sequences\":[\"x\"]")),
                     0);
    api_request_free(&req);
    api_request_free(&req);
    api_request_free(NULL);
}
END_TEST

/* ============================================================ main */

static Suite *suite(void)
{
    Suite *s = suite_create("messages");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, parse_refusals, 0,
                        (int)(sizeof bad_cases / sizeof *bad_cases));
    tcase_add_test(tc, parse_stop_too_long);
    tcase_add_test(tc, parse_depth_limit);
    tcase_add_test(tc, parse_error_body_shape);
    tcase_add_test(tc, parse_minimal);
    tcase_add_test(tc, parse_blocks_and_system);
    tcase_add_test(tc, parse_system_string);
    tcase_add_test(tc, parse_tool_use);
    tcase_add_test(tc, parse_prefill);
    tcase_add_test(tc, parse_sampling_and_stop);
    tcase_add_test(tc, parse_nulls_are_absent);
    tcase_add_test(tc, parse_count_tokens);
    tcase_add_test(tc, parse_free_twice);
    suite_add_tcase(s, tc);

    suite_add_tcase(s, messages_render_tcase());
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
