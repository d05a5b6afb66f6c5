/* test_translate.c - a Messages or Responses request forwarded to an
 * OpenAI-compatible upstream: the request written as a Chat Completions
 * body (api/chat_body.h), and the upstream's answer, whole or streamed in
 * chunks cut anywhere, rendered in the client's dialect (api/from_chat.h). */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat_body.h"
#include "from_chat.h"
#include "messages.h"
#include "responses.h"

static json_t *load(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", e.text, s);
    return j;
}

START_TEST(messages_request_as_chat_body)
{
    const char *body =
        "{\"model\":\"claude-x\",\"max_tokens\":9,\"system\":\"Be brief.\",\"temperature\":0.5,"
        "\"stop_sequences\":[\"END\"],\"stream\":true,\"messages\":["
        "{\"role\":\"user\",\"content\":\"w?\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"get\","
        "\"input\":{\"city\":\"Oslo\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
        "\"content\":\"-3 C\"}]}],"
        "\"tools\":[{\"name\":\"get\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get\",\"disable_parallel_tool_use\":true},"
        "\"output_format\":{\"type\":\"json_schema\",\"schema\":{\"type\":\"object\"}}}";
    api_request q;
    api_err err;
    ck_assert_msg(api_parse_messages(body, strlen(body), &q, &err) == 0, "%s", err.message);
    char *chat = api_chat_body(&q);
    json_t *j = load(chat);
    free(chat);
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), "claude-x");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "max_tokens")), 9);
    ck_assert(json_real_value(json_object_get(j, "temperature")) == 0.5);
    ck_assert(json_is_true(json_object_get(j, "stream")));
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "stop"), 0)), "END");
    json_t *m = json_object_get(j, "messages");
    ck_assert_uint_eq(json_array_size(m), 4);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(m, 0), "role")), "system");
    json_t *a = json_array_get(m, 2);
    ck_assert(json_is_null(json_object_get(a, "content")));
    json_t *fn = json_object_get(json_array_get(json_object_get(a, "tool_calls"), 0), "function");
    /* arguments as JSON text, as OpenAI sends them */
    ck_assert_str_eq(json_string_value(json_object_get(fn, "arguments")), "{\"city\":\"Oslo\"}");
    json_t *t = json_array_get(m, 3);
    ck_assert_str_eq(json_string_value(json_object_get(t, "role")), "tool");
    ck_assert_str_eq(json_string_value(json_object_get(t, "tool_call_id")), "t1");
    ck_assert_str_eq(json_string_value(json_object_get(t, "content")), "-3 C");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
                         json_object_get(j, "tool_choice"), "function"), "name")), "get");
    ck_assert(json_is_false(json_object_get(j, "parallel_tool_calls")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "response_format"),
                                                       "type")), "json_schema");
    ck_assert_ptr_null(json_object_get(j, "top_k"));
    json_decref(j);
    api_request_free(&q);
}
END_TEST

/* Upstream chunks: text, a tool call whose name and arguments come in
 * pieces, the finish, the usage. */
static const char *const CHUNKS[] = {
    "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Let me\"}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\" see.\"}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\","
    "\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"\"}}]}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"{\\\"city\\\":\"}}]}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"\\\"Oslo\\\"}\"}}]}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
    "{\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":7,\"total_tokens\":27}}",
};

static char *run_stream(const api_dialect *d, api_request *q)
{
    api_stream st;
    memset(&st, 0, sizeof st);
    st.q = q;
    st.h = (api_head){.id = "resp_00000000000000ab", .model = "up", .created = 1};
    api_from_chat t;
    api_from_chat_init(&t, d, &st);
    char *out = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < sizeof CHUNKS / sizeof *CHUNKS; i++)
        ck_assert_int_eq(api_from_chat_chunk(&t, CHUNKS[i], strlen(CHUNKS[i]), &out, &len, &cap), 0);
    ck_assert_int_eq(api_from_chat_done(&t, &out, &len, &cap), 0);
    ck_assert_int_eq(api_from_chat_chunk(&t, "[1]", 3, &out, &len, &cap), -1);
    api_from_chat_free(&t);
    return out;
}

/* The event names of an SSE text, in order, space-separated. */
static void names(const char *sse, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = '\0';
    for (const char *p = sse; (p = strstr(p, "event: ")); p += 7) {
        const char *e = strchr(p, '\n');
        k += (size_t)snprintf(buf + k, cap - k, "%s%.*s", k ? " " : "", (int)(e - p - 7), p + 7);
    }
}

START_TEST(stream_as_messages)
{
    api_request q;
    memset(&q, 0, sizeof q);
    q.kind = API_MESSAGES;
    char *out = run_stream(&api_dialect_messages, &q);
    char got[1024];
    names(out, got, sizeof got);
    ck_assert_str_eq(got, "message_start content_block_start ping content_block_delta "
                          "content_block_delta content_block_stop content_block_start "
                          "content_block_delta content_block_stop message_delta message_stop");
    ck_assert_ptr_nonnull(strstr(out, "\"partial_json\":\"{\\\"city\\\":\\\"Oslo\\\"}\""));
    ck_assert_ptr_nonnull(strstr(out, "\"stop_reason\":\"tool_use\""));
    ck_assert_ptr_nonnull(strstr(out, "\"output_tokens\":7"));
    ck_assert_ptr_nonnull(strstr(out, "\"id\":\"call_9\",\"name\":\"get\""));
    free(out);
}
END_TEST

START_TEST(stream_as_responses)
{
    api_request q;
    memset(&q, 0, sizeof q);
    q.kind = API_RESPONSES;
    char *out = run_stream(&api_dialect_responses, &q);
    char got[2048];
    names(out, got, sizeof got);
    ck_assert_str_eq(got, "response.created response.in_progress response.output_item.added "
                          "response.content_part.added response.output_text.delta "
                          "response.output_text.delta response.output_item.added "
                          "response.function_call_arguments.delta "
                          "response.function_call_arguments.done response.output_item.done "
                          "response.output_text.done response.content_part.done "
                          "response.output_item.done response.completed");
    const char *done = strstr(out, "event: response.completed");
    ck_assert_ptr_nonnull(strstr(done, "\"call_id\":\"call_9\""));
    ck_assert_ptr_nonnull(strstr(done, "\"text\":\"Let me see.\""));
    ck_assert_ptr_nonnull(strstr(done, "\"output_tokens\":7"));
    free(out);
}
END_TEST

START_TEST(whole_answer)
{
    const char *chat =
        "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
        "\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"n\\\":3}\"}}]},"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4}}";
    api_request q;
    memset(&q, 0, sizeof q);
    q.kind = API_MESSAGES;
    api_stream st;
    memset(&st, 0, sizeof st);
    st.q = &q;
    st.h = (api_head){.id = "msg_1", .model = "up", .created = 1};
    char *m = api_from_chat_full(&api_dialect_messages, &st, chat, strlen(chat));
    json_t *j = load(m);
    free(m);
    json_t *b = json_array_get(json_object_get(j, "content"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(b, "type")), "tool_use");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(b, "input"), "n")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(j, "stop_reason")), "tool_use");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "output_tokens")), 4);
    json_decref(j);
    ck_assert_ptr_null(api_from_chat_full(&api_dialect_messages, &st, "{\"error\":{}}", 12));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("translate");
    TCase *tc = tcase_create("translate");
    tcase_add_test(tc, messages_request_as_chat_body);
    tcase_add_test(tc, stream_as_messages);
    tcase_add_test(tc, stream_as_responses);
    tcase_add_test(tc, whole_answer);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
