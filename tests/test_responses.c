/* test_responses.c - the OpenAI Responses dialect: request parsing and
 * refusals (api_parse_responses), the Response object, the stream's events
 * and the error shape (api_dialect_responses). */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "responses.h"

#define BODY(x) "{\"input\":\"hi\"," x "}"

static api_request req;
static api_err err;

static void teardown(void)
{
    api_request_free(&req);
}

static int parse(const char *body)
{
    return api_parse_responses(body, strlen(body), &req, &err);
}

static void check_msg(size_t i, api_role role, const char *content)
{
    ck_assert_uint_lt(i, req.n_messages);
    ck_assert_int_eq(req.messages[i].role, role);
    ck_assert_str_eq(req.messages[i].content, content);
    ck_assert_uint_eq(req.messages[i].content_len, strlen(content));
}

/* ============================================================ parse */

START_TEST(parse_string_input)
{
    ck_assert_int_eq(parse("{\"model\":\"m\",\"input\":\"Hello\"}"), 0);
    ck_assert_int_eq(req.kind, API_RESPONSES);
    ck_assert_str_eq(req.model, "m");
    ck_assert_uint_eq(req.n_messages, 1);
    check_msg(0, API_ROLE_USER, "Hello");
    ck_assert_int_eq(req.max_tokens, -1);
    ck_assert_uint_eq(req.n, 1);
    ck_assert_uint_eq(req.set, 0);
    ck_assert(!req.stream);
    sampler_params def;
    sampler_params_default(&def);
    ck_assert(req.sampling.temp == def.temp && req.sampling.top_p == def.top_p);
}
END_TEST

START_TEST(parse_items)
{
    ck_assert_int_eq(parse(
        "{\"instructions\":\"Be brief.\",\"input\":["
        "{\"role\":\"developer\",\"content\":\"dev\"},"
        "{\"type\":\"message\",\"role\":\"user\",\"content\":["
        "{\"type\":\"input_text\",\"text\":\"a\"},"
        "{\"type\":\"input_text\",\"text\":\"b\"}]},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"id\":\"msg_1\","
        "\"status\":\"completed\",\"content\":[{\"type\":\"output_text\","
        "\"text\":\"ok\",\"annotations\":[]}]},"
        "{\"role\":\"system\",\"content\":[]},"
        "{\"role\":\"user\",\"content\":\"q\"}]}"), 0);
    ck_assert_uint_eq(req.n_messages, 6);
    check_msg(0, API_ROLE_SYSTEM, "Be brief.");
    check_msg(1, API_ROLE_SYSTEM, "dev");
    check_msg(2, API_ROLE_USER, "ab");
    check_msg(3, API_ROLE_ASSISTANT, "ok");
    check_msg(4, API_ROLE_SYSTEM, "");
    check_msg(5, API_ROLE_USER, "q");
}
END_TEST

/* Function tools, a forced function, text.format, and a call round trip
 * in the input items (calls join the assistant turn before them). */
START_TEST(parse_tools)
{
    ck_assert_msg(parse(
        "{\"input\":[{\"role\":\"user\",\"content\":\"w?\"},"
        "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"get\","
        "\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"},"
        "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"get\",\"arguments\":\"{}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"-3 C\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":"
        "[{\"type\":\"input_text\",\"text\":\"n/a\"}]}],"
        "\"tools\":[{\"type\":\"function\",\"name\":\"get\",\"description\":\"W\","
        "\"parameters\":{\"type\":\"object\"},\"strict\":true}],"
        "\"tool_choice\":{\"type\":\"function\",\"name\":\"get\"},"
        "\"parallel_tool_calls\":false,"
        "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"x\","
        "\"schema\":{\"type\":\"object\"}}}}") == 0, "%s", err.message);
    ck_assert_uint_eq(req.n_messages, 4);
    check_msg(1, API_ROLE_ASSISTANT, "");
    ck_assert_str_eq(req.messages[1].tool_calls,
                     "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"get\","
                     "\"arguments\":{\"city\":\"Oslo\"}}},{\"id\":\"c2\",\"type\":\"function\","
                     "\"function\":{\"name\":\"get\",\"arguments\":{}}}]");
    check_msg(2, API_ROLE_TOOL, "-3 C");
    ck_assert_str_eq(req.messages[2].tool_call_id, "c1");
    check_msg(3, API_ROLE_TOOL, "n/a");
    ck_assert_uint_eq(req.n_tools, 1);
    ck_assert_str_eq(req.tools[0].description, "W");
    ck_assert_int_eq(req.tool_choice, API_TOOL_NAMED);
    ck_assert(!req.parallel_tool_calls);
    ck_assert_str_eq(req.json_schema, "{\"type\":\"object\"}");
}
END_TEST

START_TEST(parse_generation_fields)
{
    ck_assert_int_eq(parse(BODY(
        "\"max_output_tokens\":16.0,\"temperature\":0.5,\"top_p\":0.25,"
        "\"stream\":true,\"user\":\"u\",\"store\":true,\"metadata\":{\"k\":\"v\"},"
        "\"parallel_tool_calls\":false,\"truncation\":\"disabled\","
        "\"tools\":[],\"tool_choice\":\"auto\",\"reasoning\":null,"
        "\"text\":{\"format\":{\"type\":\"text\"}},\"background\":false,"
        "\"include\":[\"reasoning.encrypted_content\"],\"top_logprobs\":0,"
        "\"previous_response_id\":null,\"unknown_field\":[1]")), 0);
    ck_assert_int_eq(req.max_tokens, 16);
    ck_assert(req.sampling.temp == 0.5f);
    ck_assert(req.sampling.top_p == 0.25f);
    ck_assert(req.stream);
    ck_assert_str_eq(req.user, "u");
    ck_assert_uint_eq(req.set, API_SET_MAX_TOKENS | API_SET_TEMPERATURE |
                                   API_SET_TOP_P);
}
END_TEST

typedef struct bad_case {
    const char *body;
    unsigned status;
    const char *param; /* "" when none */
    const char *code;
    const char *needle; /* in the message */
} bad_case;

static const bad_case bad_cases[] = {
    {"", 400, "", "invalid_json", "empty"},
    {"{", 400, "", "invalid_json", "invalid JSON"},
    {"{\"input\":\"a\\u0000b\"}", 400, "", "invalid_json",
     "invalid JSON: \\u0000 (the NUL character) is not allowed in strings at line 1"},
    {"[1]", 400, "", "invalid_type", "JSON object"},
    {"{}", 400, "input", "missing_required_parameter", "'input' is required"},
    {"{\"input\":null}", 400, "input", "missing_required_parameter", "required"},
    {"{\"input\":[]}", 400, "input", "invalid_value", "empty"},
    {"{\"input\":3}", 400, "input", "invalid_type", "got an integer"},
    {BODY("\"model\":1"), 400, "model", "invalid_type", "'model'"},
    {BODY("\"instructions\":[]"), 400, "instructions", "invalid_type", "string"},
    {"{\"input\":[\"hi\"]}", 400, "input[0]", "invalid_type", "message object"},
    {"{\"input\":[{\"content\":\"x\"}]}", 400, "input[0].role",
     "missing_required_parameter", "'user'"},
    {"{\"input\":[{\"role\":\"tool\",\"content\":\"x\"}]}", 400,
     "input[0].role", "invalid_value", "developer"},
    {"{\"input\":[{\"role\":\"user\"}]}", 400, "input[0].content",
     "missing_required_parameter", "input_text"},
    {"{\"input\":[{\"role\":\"user\",\"content\":{}}]}", 400,
     "input[0].content", "invalid_type", "string or an array"},
    {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
     "\"text\":\"x\"}]}]}", 400, "input[0].content[0]", "invalid_value",
     "input_text"},
    {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\"}]}]}",
     400, "input[0].content[0].text", "missing_required_parameter", "string"},
    {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\","
     "\"image_url\":\"http://x\"}]}]}", 400, "input[0].content[0]",
     "unsupported_value", "text only"},
    {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_file\","
     "\"file_id\":\"f\"}]}]}", 400, "input[0].content[0]", "unsupported_value",
     "input_file"},
    {"{\"input\":[{\"type\":\"item_reference\",\"id\":\"msg_1\"}]}", 400,
     "input[0]", "unsupported_value", "does not store"},
    {"{\"input\":[{\"type\":\"reasoning\",\"summary\":[]}]}", 400, "input[0]",
     "unsupported_value", "reasoning"},
    {"{\"input\":[{\"type\":\"banana\"}]}", 400, "input[0]", "invalid_value",
     "unknown item type"},
    {"{\"input\":[{\"type\":7}]}", 400, "input[0]", "invalid_type", "type"},
    {BODY("\"max_output_tokens\":0"), 400, "max_output_tokens",
     "invalid_value", "between 1 and 2147483647"},
    {BODY("\"max_output_tokens\":-1"), 400, "max_output_tokens",
     "invalid_value", "integer"},
    {BODY("\"max_output_tokens\":2.5"), 400, "max_output_tokens",
     "invalid_type", "integer"},
    {BODY("\"max_output_tokens\":\"9\""), 400, "max_output_tokens",
     "invalid_type", "integer"},
    {BODY("\"temperature\":2.5"), 400, "temperature", "invalid_value", "0 and 2"},
    {BODY("\"temperature\":\"hot\""), 400, "temperature", "invalid_type", "number"},
    {BODY("\"top_p\":-0.1"), 400, "top_p", "invalid_value", "0 and 1"},
    {BODY("\"stream\":\"yes\""), 400, "stream", "invalid_type", "boolean"},
    {BODY("\"store\":1"), 400, "store", "invalid_type", "boolean"},
    {BODY("\"user\":5"), 400, "user", "invalid_type", "string"},
    {BODY("\"metadata\":[]"), 400, "metadata", "invalid_type", "object"},
    {BODY("\"previous_response_id\":\"resp_1\""), 400, "previous_response_id",
     "unsupported_parameter",
     "previous_response_id is not supported: hearth does not store responses; "
     "send the whole conversation in input"},
    {BODY("\"conversation\":\"conv_1\""), 400, "conversation",
     "unsupported_parameter", "send the whole conversation in input"},
    {BODY("\"prompt\":{\"id\":\"p\"}"), 400, "prompt", "unsupported_parameter",
     "stores nothing"},
    {BODY("\"background\":true"), 400, "background", "unsupported_value",
     "background mode is not supported"},
    {BODY("\"tools\":[{\"type\":\"web_search\"}]"), 400, "tools[0]",
     "unsupported_value", "only tools of type \"function\""},
    {BODY("\"tools\":{}"), 400, "tools", "invalid_type", "tools"},
    {BODY("\"tool_choice\":\"required\""), 400, "tool_choice",
     "invalid_value", "no tools are given"},
    {BODY("\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"}"), 400,
     "tool_choice", "invalid_value", "no tools are given"},
    {BODY("\"tools\":[{\"type\":\"function\",\"name\":\"g\"}],"
          "\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"}"), 400,
     "tool_choice", "invalid_value", "not among the tools"},
    {"{\"input\":[{\"type\":\"function_call\",\"name\":\"f\"}]}", 400, "input[0]",
     "missing_required_parameter", "call_id"},
    {"{\"input\":[{\"type\":\"web_search_call\",\"id\":\"w\"}]}", 400, "input[0]",
     "unsupported_value", "only function tools"},
    {BODY("\"truncation\":\"auto\""), 400, "truncation", "unsupported_value",
     "disabled"},
    {BODY("\"reasoning\":{\"effort\":\"low\"}"), 400, "reasoning",
     "unsupported_parameter", "reasoning is not supported yet"},
    {BODY("\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"x\"}}"), 400,
     "text.format", "invalid_value", "json_schema"},
    {BODY("\"text\":{\"format\":{\"type\":\"xml\"}}"), 400, "text.format",
     "invalid_value", "text.format"},
    {BODY("\"text\":{\"format\":\"text\"}"), 400, "text.format",
     "invalid_value", "text.format"},
    {BODY("\"text\":3"), 400, "text", "invalid_type", "object"},
    {BODY("\"include\":\"x\""), 400, "include", "invalid_type", "array"},
    {BODY("\"include\":[\"message.output_text.logprobs\"]"), 400, "include",
     "unsupported_value", "logprobs"},
    {BODY("\"top_logprobs\":5"), 400, "top_logprobs", "unsupported_value",
     "not supported yet"},
};

START_TEST(parse_bad)
{
    const bad_case *c = &bad_cases[_i];
    ck_assert_msg(parse(c->body) == -1, "accepted: %s", c->body);
    ck_assert_msg(err.status == c->status, "%s: status %u", c->body, err.status);
    ck_assert_msg(!strcmp(err.param, c->param), "%s: param '%s'", c->body,
                  err.param);
    ck_assert_msg(!strcmp(err.code, c->code), "%s: code '%s'", c->body,
                  err.code);
    ck_assert_msg(strstr(err.message, c->needle), "%s: message '%s'", c->body,
                  err.message);
    /* Nothing is left allocated on failure. */
    ck_assert_ptr_null(req.messages);
    ck_assert_ptr_null(req.model);
    ck_assert_int_eq(req.kind, API_RESPONSES);
}
END_TEST

START_TEST(parse_too_deep)
{
    char body[400] = "{\"input\":";
    size_t n = strlen(body);
    for (int i = 0; i < 100; i++)
        body[n++] = '[';
    body[n] = '\0';
    ck_assert_int_eq(parse(body), -1);
    ck_assert_str_eq(err.code, "invalid_json");
    ck_assert(strstr(err.message, "nested"));
}
END_TEST

/* ============================================================ render */

static const api_request *stream_req(void)
{
    ck_assert_int_eq(parse(BODY("\"max_output_tokens\":8,\"temperature\":0.5,"
                                "\"user\":\"u\"")), 0);
    return &req;
}

static api_stream make_stream(void)
{
    api_stream s = {0};
    s.q = stream_req();
    s.h.id = "resp_00000000000000ab";
    s.h.model = "stories";
    s.h.created = 1700000000;
    return s;
}

static json_t *load(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", je.text, s);
    return j;
}

static const char *str_at(json_t *o, const char *path)
{
    /* "a.b.0.c": objects by key, arrays by index */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = o;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, "."))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok))
                             : json_object_get(v, tok);
    ck_assert_msg(json_is_string(v), "%s is not a string", path);
    return json_string_value(v);
}

static json_int_t int_at(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (k2)
        v = json_object_get(v, k2);
    ck_assert_msg(json_is_integer(v), "%s.%s is not an integer", k1,
                  k2 ? k2 : "");
    return json_integer_value(v);
}

static void check_response_fields(json_t *r, const char *status)
{
    static const char *const required[] = {
        "id", "object", "created_at", "status", "error", "incomplete_details",
        "instructions", "model", "output", "parallel_tool_calls", "temperature",
        "tool_choice", "tools", "top_p", "metadata", "text", "usage"};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        ck_assert_msg(json_object_get(r, required[i]), "no %s", required[i]);
    ck_assert_str_eq(str_at(r, "id"), "resp_00000000000000ab");
    ck_assert_str_eq(str_at(r, "object"), "response");
    ck_assert_str_eq(str_at(r, "status"), status);
    ck_assert_str_eq(str_at(r, "model"), "stories");
    ck_assert_int_eq(int_at(r, "created_at", NULL), 1700000000);
    ck_assert_int_eq(int_at(r, "max_output_tokens", NULL), 8);
    ck_assert(json_real_value(json_object_get(r, "temperature")) == 0.5);
    ck_assert_str_eq(str_at(r, "user"), "u");
    ck_assert_str_eq(str_at(r, "text.format.type"), "text");
    ck_assert(json_is_false(json_object_get(r, "store")));
}

START_TEST(render_full_completed)
{
    api_stream s = make_stream();
    api_choice c = {.text = "Hi \"there\"", .len = 10, .finish_reason = "stop"};
    api_usage u = {.prompt_tokens = 5, .completion_tokens = 3,
                   .cached_tokens = 2};
    char *out = api_dialect_responses.full(&s, &c, 1, &u);
    json_t *r = load(out);
    check_response_fields(r, "completed");
    ck_assert(json_is_null(json_object_get(r, "incomplete_details")));
    ck_assert(json_is_null(json_object_get(r, "error")));
    ck_assert_uint_eq(json_array_size(json_object_get(r, "output")), 1);
    ck_assert_str_eq(str_at(r, "output.0.type"), "message");
    ck_assert_str_eq(str_at(r, "output.0.id"), "msg_00000000000000ab");
    ck_assert_str_eq(str_at(r, "output.0.status"), "completed");
    ck_assert_str_eq(str_at(r, "output.0.role"), "assistant");
    ck_assert_str_eq(str_at(r, "output.0.content.0.type"), "output_text");
    ck_assert_str_eq(str_at(r, "output.0.content.0.text"), "Hi \"there\"");
    json_t *usage = json_object_get(r, "usage");
    ck_assert_int_eq(int_at(usage, "input_tokens", NULL), 5);
    ck_assert_int_eq(int_at(usage, "input_tokens_details", "cached_tokens"), 2);
    ck_assert_int_eq(int_at(usage, "output_tokens", NULL), 3);
    ck_assert_int_eq(int_at(usage, "output_tokens_details", "reasoning_tokens"), 0);
    ck_assert_int_eq(int_at(usage, "total_tokens", NULL), 8);
    ck_assert_uint_eq(s.seq, 0); /* not a stream */
    json_decref(r);
    free(out);
}
END_TEST

START_TEST(render_full_incomplete)
{
    api_stream s = make_stream();
    api_choice c = {.text = "abc", .len = 3, .finish_reason = "length"};
    api_usage u = {.prompt_tokens = 1, .completion_tokens = 8};
    char *out = api_dialect_responses.full(&s, &c, 1, &u);
    json_t *r = load(out);
    check_response_fields(r, "incomplete");
    ck_assert_str_eq(str_at(r, "incomplete_details.reason"), "max_output_tokens");
    ck_assert_str_eq(str_at(r, "output.0.status"), "incomplete");
    ck_assert_str_eq(str_at(r, "output.0.content.0.text"), "abc");
    json_decref(r);
    free(out);
}
END_TEST

/* Splits rendered SSE bytes into events, checking the framing, the type
 * and that sequence numbers continue from *seq. Appends each event's data
 * object to evs. */
static void split_events(const char *bytes, json_t *evs, json_int_t *seq)
{
    const char *p = bytes;
    while (*p) {
        ck_assert_msg(!strncmp(p, "event: ", 7), "no event line: %s", p);
        const char *nl = strchr(p, '\n');
        ck_assert_ptr_nonnull(nl);
        char type[64];
        snprintf(type, sizeof type, "%.*s", (int)(nl - p - 7), p + 7);
        p = nl + 1;
        ck_assert_msg(!strncmp(p, "data: ", 6), "no data line: %s", p);
        const char *end = strstr(p, "\n\n");
        ck_assert_ptr_nonnull(end);
        ck_assert_ptr_null(memchr(p, '\n', (size_t)(end - p)));
        json_error_t je;
        json_t *d = json_loadb(p + 6, (size_t)(end - p - 6), 0, &je);
        ck_assert_msg(d != NULL, "bad data: %s", je.text);
        ck_assert_str_eq(str_at(d, "type"), type);
        ck_assert_int_eq(int_at(d, "sequence_number", NULL), *seq);
        (*seq)++;
        json_array_append_new(evs, d);
        p = end + 2;
    }
}

static void render_into(char *bytes, json_t *evs, json_int_t *seq)
{
    ck_assert_ptr_nonnull(bytes);
    split_events(bytes, evs, seq);
    free(bytes);
}

static void check_types(json_t *evs, const char *const *types, size_t n)
{
    ck_assert_uint_eq(json_array_size(evs), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(str_at(json_array_get(evs, i), "type"), types[i]);
}

START_TEST(render_stream)
{
    api_stream s = make_stream();
    const api_dialect *d = &api_dialect_responses;
    json_t *evs = json_array();
    json_int_t seq = 0;
    render_into(d->start(&s, 0, NULL), evs, &seq);
    static const char *const pieces[] = {"Say \"hi\"", "\n", "\xff\xfe", "", "\xc3"};
    static const size_t lens[] = {8, 1, 2, 0, 1};
    for (size_t i = 0; i < 5; i++) {
        api_choice dc = {.text = pieces[i], .len = lens[i]};
        render_into(d->delta(&s, &dc), evs, &seq);
    }
    const char *whole = "Say \"hi\"\n\xff\xfe\xc3";
    api_choice c = {.text = whole, .len = strlen(whole), .finish_reason = "stop"};
    render_into(d->finish(&s, &c), evs, &seq);
    api_usage u = {.prompt_tokens = 4, .completion_tokens = 5};
    render_into(d->end(&s, &c, 1, &u), evs, &seq);

    static const char *const types[] = {
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"};
    check_types(evs, types, sizeof types / sizeof *types);
    ck_assert_uint_eq(s.seq, 12);

    const char *item = "msg_00000000000000ab";
    json_t *e = json_array_get(evs, 0);
    ck_assert_str_eq(str_at(e, "response.status"), "in_progress");
    ck_assert_uint_eq(json_array_size(json_object_get(
                          json_object_get(e, "response"), "output")), 0);
    e = json_array_get(evs, 2);
    ck_assert_int_eq(int_at(e, "output_index", NULL), 0);
    ck_assert_str_eq(str_at(e, "item.id"), item);
    ck_assert_str_eq(str_at(e, "item.status"), "in_progress");
    ck_assert_uint_eq(json_array_size(json_object_get(
                          json_object_get(e, "item"), "content")), 0);
    e = json_array_get(evs, 3);
    ck_assert_str_eq(str_at(e, "item_id"), item);
    ck_assert_str_eq(str_at(e, "part.type"), "output_text");
    ck_assert_str_eq(str_at(e, "part.text"), "");

    /* The deltas concatenate to the done text and the final response's. */
    char joined[64] = "";
    for (size_t i = 4; i < 8; i++) {
        e = json_array_get(evs, i);
        ck_assert_str_eq(str_at(e, "item_id"), item);
        ck_assert_int_eq(int_at(e, "output_index", NULL), 0);
        ck_assert_int_eq(int_at(e, "content_index", NULL), 0);
        strcat(joined, str_at(e, "delta"));
    }
    ck_assert_str_eq(joined, "Say \"hi\"\n\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(str_at(json_array_get(evs, 8), "text"), joined);
    ck_assert_str_eq(str_at(json_array_get(evs, 8), "item_id"), item);
    ck_assert_str_eq(str_at(json_array_get(evs, 9), "part.text"), joined);
    e = json_array_get(evs, 10);
    ck_assert_str_eq(str_at(e, "item.id"), item);
    ck_assert_str_eq(str_at(e, "item.status"), "completed");
    ck_assert_str_eq(str_at(e, "item.content.0.text"), joined);

    json_t *r = json_object_get(json_array_get(evs, 11), "response");
    check_response_fields(r, "completed");
    ck_assert_str_eq(str_at(r, "output.0.id"), item);
    ck_assert_str_eq(str_at(r, "output.0.content.0.text"), joined);
    ck_assert_int_eq(int_at(json_object_get(r, "usage"), "total_tokens", NULL), 9);
    json_decref(evs);
}
END_TEST

START_TEST(render_stream_incomplete)
{
    api_stream s = make_stream();
    json_t *evs = json_array();
    json_int_t seq = 0;
    api_choice c = {.text = "ab", .len = 2, .finish_reason = "length"};
    render_into(api_dialect_responses.start(&s, 0, NULL), evs, &seq);
    render_into(api_dialect_responses.finish(&s, &c), evs, &seq);
    render_into(api_dialect_responses.end(&s, &c, 1, NULL), evs, &seq);
    json_t *last = json_array_get(evs, json_array_size(evs) - 1);
    ck_assert_str_eq(str_at(last, "type"), "response.incomplete");
    ck_assert_str_eq(str_at(last, "response.status"), "incomplete");
    ck_assert_str_eq(str_at(last, "response.incomplete_details.reason"),
                     "max_output_tokens");
    ck_assert(json_is_null(json_object_get(json_object_get(last, "response"),
                                           "usage")));
    ck_assert_str_eq(str_at(json_array_get(evs, 6), "item.status"), "incomplete");
    json_decref(evs);
}
END_TEST

START_TEST(render_stream_error)
{
    api_stream s = make_stream();
    json_t *evs = json_array();
    json_int_t seq = 0;
    render_into(api_dialect_responses.start(&s, 0, NULL), evs, &seq);
    render_into(api_dialect_responses.stream_error(&s, 500, NULL,
                                                   "the engine \"failed\""),
                evs, &seq);
    ck_assert_uint_eq(json_array_size(evs), 6);
    json_t *e = json_array_get(evs, 4);
    ck_assert_str_eq(str_at(e, "type"), "error");
    ck_assert_str_eq(str_at(e, "code"), "server_error");
    ck_assert_str_eq(str_at(e, "message"), "the engine \"failed\"");
    ck_assert(json_is_null(json_object_get(e, "param")));
    e = json_array_get(evs, 5);
    ck_assert_str_eq(str_at(e, "type"), "response.failed");
    ck_assert_str_eq(str_at(e, "response.status"), "failed");
    ck_assert_str_eq(str_at(e, "response.error.code"), "server_error");
    ck_assert_str_eq(str_at(e, "response.error.message"), "the engine \"failed\"");
    json_decref(evs);

    api_request_free(&req);
    api_stream s2 = make_stream();
    evs = json_array();
    seq = 0;
    render_into(api_dialect_responses.stream_error(&s2, 429, "rate_limit_error",
                                                   "busy"), evs, &seq);
    ck_assert_str_eq(str_at(json_array_get(evs, 0), "code"), "rate_limit_error");
    ck_assert_str_eq(str_at(json_array_get(evs, 1), "response.error.code"),
                     "rate_limit_exceeded");
    json_decref(evs);
}
END_TEST

START_TEST(render_error_and_ping)
{
    char *out = api_dialect_responses.error(400, NULL, "tools are not supported yet",
                                            "tools", "unsupported_parameter");
    json_t *j = load(out);
    ck_assert_str_eq(str_at(j, "error.message"), "tools are not supported yet");
    ck_assert_str_eq(str_at(j, "error.type"), "invalid_request_error");
    ck_assert_str_eq(str_at(j, "error.param"), "tools");
    ck_assert_str_eq(str_at(j, "error.code"), "unsupported_parameter");
    json_decref(j);
    free(out);
    out = api_dialect_responses.error(503, NULL, "loading", NULL, NULL);
    j = load(out);
    ck_assert_str_eq(str_at(j, "error.type"), "service_unavailable");
    ck_assert(json_is_null(json_object_get(json_object_get(j, "error"), "param")));
    json_decref(j);
    free(out);
    ck_assert_str_eq(api_dialect_responses.ping, ": ping\n\n");

    /* A parser error renders in the same shape. */
    ck_assert_int_eq(parse(BODY("\"previous_response_id\":\"resp_x\"")), -1);
    out = api_err_json(&err);
    j = load(out);
    ck_assert_str_eq(str_at(j, "error.param"), "previous_response_id");
    json_decref(j);
    free(out);
}
END_TEST

START_TEST(render_empty_delta)
{
    api_stream s = make_stream();
    api_choice dc = {.text = NULL, .len = 0};
    char *out = api_dialect_responses.delta(&s, &dc);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(s.seq, 0);
    free(out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("responses");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, parse_string_input);
    tcase_add_test(tc, parse_items);
    tcase_add_test(tc, parse_tools);
    tcase_add_test(tc, parse_generation_fields);
    tcase_add_loop_test(tc, parse_bad, 0,
                        (int)(sizeof bad_cases / sizeof *bad_cases));
    tcase_add_test(tc, parse_too_deep);
    suite_add_tcase(s, tc);
    tc = tcase_create("render");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, render_full_completed);
    tcase_add_test(tc, render_full_incomplete);
    tcase_add_test(tc, render_stream);
    tcase_add_test(tc, render_stream_incomplete);
    tcase_add_test(tc, render_stream_error);
    tcase_add_test(tc, render_error_and_ping);
    tcase_add_test(tc, render_empty_delta);
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
