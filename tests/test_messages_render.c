/* test_messages_render.c - the Anthropic Messages API's rendering
 * (api_dialect_messages): the message object for each finish, the
 * stream's events one by one, the error bodies. Part of test_messages. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "messages.h"
#include "testmsg.h"

static api_stream stream_for(const api_request *q)
{
    api_stream s;
    memset(&s, 0, sizeof s);
    s.q = q;
    s.h.id = "msg_00000000000000ab";
    s.h.model = "tiny";
    s.h.created = 1700000000;
    return s;
}

/* The full message for one finish, checked field by field; returns the
 * parsed object for more checks (the caller releases it). */
static json_t *full_for(const char *finish, const char *matched,
                        const char *want_reason)
{
    api_stream s = stream_for(NULL);
    s.stop_matched = matched;
    api_choice c = {.index = 0, .text = "Hello \"you\"\n", .len = 12,
                    .finish_reason = finish};
    api_usage u = {.prompt_tokens = 10, .completion_tokens = 3,
                   .cached_tokens = 4};
    char *out = api_dialect_messages.full(&s, &c, 1, &u);
    ck_assert_ptr_nonnull(out);
    json_t *j = tm_load(out);
    free(out);
    ck_assert_str_eq(tm_str(j, "id"), "msg_00000000000000ab");
    ck_assert_str_eq(tm_str(j, "type"), "message");
    ck_assert_str_eq(tm_str(j, "role"), "assistant");
    ck_assert_str_eq(tm_str(j, "model"), "tiny");
    json_t *content = json_object_get(j, "content");
    ck_assert_uint_eq(json_array_size(content), 1);
    json_t *b = json_array_get(content, 0);
    ck_assert_str_eq(tm_str(b, "type"), "text");
    ck_assert_str_eq(tm_str(b, "text"), "Hello \"you\"\n");
    ck_assert_str_eq(tm_str(j, "stop_reason"), want_reason);
    json_t *usage = json_object_get(j, "usage");
    ck_assert_int_eq(tm_int(usage, "input_tokens"), 6);
    ck_assert_int_eq(tm_int(usage, "cache_creation_input_tokens"), 0);
    ck_assert_int_eq(tm_int(usage, "cache_read_input_tokens"), 4);
    ck_assert_int_eq(tm_int(usage, "output_tokens"), 3);
    return j;
}

START_TEST(render_full_finish_mapping)
{
    json_t *j = full_for("stop", NULL, "end_turn");
    ck_assert(json_is_null(json_object_get(j, "stop_sequence")));
    json_decref(j);
    j = full_for("length", NULL, "max_tokens");
    ck_assert(json_is_null(json_object_get(j, "stop_sequence")));
    json_decref(j);
    j = full_for("stop", "\n\nHuman:", "stop_sequence");
    ck_assert_str_eq(tm_str(j, "stop_sequence"), "\n\nHuman:");
    json_decref(j);
    /* a stop string that matched does not make "length" a stop_sequence */
    j = full_for("length", "END", "max_tokens");
    ck_assert(json_is_null(json_object_get(j, "stop_sequence")));
    json_decref(j);

    ck_assert_str_eq(api_messages_stop_reason("stop", NULL), "end_turn");
    ck_assert_str_eq(api_messages_stop_reason("stop", "x"), "stop_sequence");
    ck_assert_str_eq(api_messages_stop_reason("length", NULL), "max_tokens");
    ck_assert_str_eq(api_messages_stop_reason("cancelled", NULL), "end_turn");
    ck_assert_ptr_null(api_messages_stop_reason(NULL, NULL));
}
END_TEST

START_TEST(render_full_no_usage_invalid_utf8)
{
    api_stream s = stream_for(NULL);
    api_choice c = {.index = 0, .text = "a\xff" "b\xe2\x82", .len = 5,
                    .finish_reason = "length"};
    char *out = api_dialect_messages.full(&s, &c, 1, NULL);
    json_t *j = tm_load(out);
    free(out);
    json_t *b = json_array_get(json_object_get(j, "content"), 0);
    ck_assert_str_eq(tm_str(b, "text"), "a\xef\xbf\xbd" "b\xef\xbf\xbd");
    json_t *usage = json_object_get(j, "usage");
    ck_assert_int_eq(tm_int(usage, "input_tokens"), 0);
    ck_assert_int_eq(tm_int(usage, "output_tokens"), 0);
    json_decref(j);
}
END_TEST

/* One SSE event cut off the front of *p: its name, and its data parsed;
 * checks the framing and that the data's "type" is the event's name. */
static json_t *next_event(const char **p, const char *want_name)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "event: %s\ndata: ", want_name);
    ck_assert_msg(!strncmp(*p, prefix, strlen(prefix)),
                  "expected event %s at: %.80s", want_name, *p);
    const char *data = *p + strlen(prefix);
    const char *end = strstr(data, "\n\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_ptr_null(memchr(data, '\n', (size_t)(end - data)));
    json_error_t je;
    json_t *j = json_loadb(data, (size_t)(end - data), 0, &je);
    ck_assert_msg(j != NULL, "event %s: bad JSON (%s)", want_name, je.text);
    ck_assert_str_eq(tm_str(j, "type"), want_name);
    *p = end + 2;
    return j;
}

/* The text of a content_block_delta event. */
static void expect_delta(const char **p, const char *want_text)
{
    json_t *e = next_event(p, "content_block_delta");
    ck_assert_int_eq(tm_int(e, "index"), 0);
    json_t *d = json_object_get(e, "delta");
    ck_assert_str_eq(tm_str(d, "type"), "text_delta");
    ck_assert_str_eq(tm_str(d, "text"), want_text);
    json_decref(e);
}

START_TEST(render_stream)
{
    api_stream s = stream_for(NULL);
    api_usage u = {.prompt_tokens = 12, .completion_tokens = 0,
                   .cached_tokens = 2};

    char *out = api_dialect_messages.start(&s, 0, &u);
    const char *p = out;
    json_t *e = next_event(&p, "message_start");
    json_t *m = json_object_get(e, "message");
    ck_assert_str_eq(tm_str(m, "id"), "msg_00000000000000ab");
    ck_assert_str_eq(tm_str(m, "type"), "message");
    ck_assert_str_eq(tm_str(m, "role"), "assistant");
    ck_assert_str_eq(tm_str(m, "model"), "tiny");
    ck_assert_uint_eq(json_array_size(json_object_get(m, "content")), 0);
    ck_assert(json_is_null(json_object_get(m, "stop_reason")));
    ck_assert(json_is_null(json_object_get(m, "stop_sequence")));
    json_t *mu = json_object_get(m, "usage");
    ck_assert_int_eq(tm_int(mu, "input_tokens"), 10);
    ck_assert_int_eq(tm_int(mu, "cache_read_input_tokens"), 2);
    ck_assert_int_eq(tm_int(mu, "output_tokens"), 0);
    json_decref(e);
    e = next_event(&p, "content_block_start");
    ck_assert_int_eq(tm_int(e, "index"), 0);
    json_t *cb = json_object_get(e, "content_block");
    ck_assert_str_eq(tm_str(cb, "type"), "text");
    ck_assert_str_eq(tm_str(cb, "text"), "");
    json_decref(e);
    json_decref(next_event(&p, "ping"));
    ck_assert_str_eq(p, "");
    free(out);

    /* deltas: plain, quotes and newlines, invalid UTF-8 */
    static const struct {
        const char *text, *want;
        size_t len;
    } deltas[] = {
        {"Hello", "Hello", 5},
        {" \"quoted\"\n\tline\\", " \"quoted\"\n\tline\\", 16},
        {"\xc3(\xff", "\xef\xbf\xbd(\xef\xbf\xbd", 3},
    };
    for (size_t i = 0; i < sizeof deltas / sizeof *deltas; i++) {
        api_choice d = {.index = 0, .text = deltas[i].text,
                        .len = deltas[i].len};
        out = api_dialect_messages.delta(&s, &d);
        p = out;
        expect_delta(&p, deltas[i].want);
        ck_assert_str_eq(p, "");
        free(out);
    }
    /* no text, nothing to send */
    api_choice empty = {.index = 0, .text = "", .len = 0};
    out = api_dialect_messages.delta(&s, &empty);
    ck_assert_str_eq(out, "");
    free(out);

    s.stop_matched = "END";
    api_choice fin = {.index = 0, .text = "Hello ...", .len = 9,
                      .finish_reason = "stop"};
    out = api_dialect_messages.finish(&s, &fin);
    p = out;
    e = next_event(&p, "content_block_stop");
    ck_assert_int_eq(tm_int(e, "index"), 0);
    json_decref(e);
    ck_assert_str_eq(p, "");
    free(out);

    u.completion_tokens = 5;
    out = api_dialect_messages.end(&s, &fin, 1, &u);
    p = out;
    e = next_event(&p, "message_delta");
    json_t *d = json_object_get(e, "delta");
    ck_assert_str_eq(tm_str(d, "stop_reason"), "stop_sequence");
    ck_assert_str_eq(tm_str(d, "stop_sequence"), "END");
    ck_assert_int_eq(tm_int(json_object_get(e, "usage"), "output_tokens"), 5);
    json_decref(e);
    json_decref(next_event(&p, "message_stop"));
    ck_assert_str_eq(p, "");
    free(out);
    /* 3 + 3 deltas + 1 + 2 events */
    ck_assert_uint_eq(s.seq, 9);
}
END_TEST

/* Text, a tool call, then more text: the first text block closes before
 * the tool_use block, and the later text opens a third block; finish closes
 * that one; the stop reason is tool_use. */
START_TEST(render_stream_tool_between_text)
{
    api_stream s = stream_for(NULL);
    api_usage u = {.prompt_tokens = 5};
    free(api_dialect_messages.start(&s, 0, &u));
    api_choice d = {.index = 0, .text = "Let me look.", .len = 12};
    free(api_dialect_messages.delta(&s, &d));
    api_tool_call call = {.id = "call_1", .name = "get", .arguments = "{\"city\":\"Oslo\"}"};
    char *out = api_dialect_messages.tool(&s, 0, 0, &call);
    const char *p = out;
    json_t *e = next_event(&p, "content_block_stop");
    ck_assert_int_eq(tm_int(e, "index"), 0);
    json_decref(e);
    e = next_event(&p, "content_block_start");
    ck_assert_int_eq(tm_int(e, "index"), 1);
    json_t *cb = json_object_get(e, "content_block");
    ck_assert_str_eq(tm_str(cb, "type"), "tool_use");
    ck_assert_str_eq(tm_str(cb, "id"), "call_1");
    ck_assert_str_eq(tm_str(cb, "name"), "get");
    ck_assert_uint_eq(json_object_size(json_object_get(cb, "input")), 0);
    json_decref(e);
    e = next_event(&p, "content_block_delta");
    ck_assert_int_eq(tm_int(e, "index"), 1);
    ck_assert_str_eq(tm_str(json_object_get(e, "delta"), "type"), "input_json_delta");
    ck_assert_str_eq(tm_str(json_object_get(e, "delta"), "partial_json"), "{\"city\":\"Oslo\"}");
    json_decref(e);
    e = next_event(&p, "content_block_stop");
    ck_assert_int_eq(tm_int(e, "index"), 1);
    json_decref(e);
    ck_assert_str_eq(p, "");
    free(out);
    /* text after the call: a new text block, index 2 */
    api_choice more = {.index = 0, .text = "Done.", .len = 5};
    out = api_dialect_messages.delta(&s, &more);
    p = out;
    e = next_event(&p, "content_block_start");
    ck_assert_int_eq(tm_int(e, "index"), 2);
    ck_assert_str_eq(tm_str(json_object_get(e, "content_block"), "type"), "text");
    json_decref(e);
    e = next_event(&p, "content_block_delta");
    ck_assert_int_eq(tm_int(e, "index"), 2);
    json_decref(e);
    ck_assert_str_eq(p, "");
    free(out);
    api_choice fin = {.index = 0, .text = "Let me look.Done.", .len = 17,
                      .finish_reason = "tool_calls", .calls = &call, .n_calls = 1};
    out = api_dialect_messages.finish(&s, &fin);
    p = out;
    e = next_event(&p, "content_block_stop");
    ck_assert_int_eq(tm_int(e, "index"), 2);
    json_decref(e);
    ck_assert_str_eq(p, "");
    free(out);
    out = api_dialect_messages.end(&s, &fin, 1, &u);
    p = out;
    e = next_event(&p, "message_delta");
    ck_assert_str_eq(tm_str(json_object_get(e, "delta"), "stop_reason"), "tool_use");
    json_decref(e);
    free(out);
    /* the whole message: the text, then the tool_use block with its input */
    api_stream s2 = stream_for(NULL);
    out = api_dialect_messages.full(&s2, &fin, 1, &u);
    json_t *j = tm_load(out);
    free(out);
    json_t *content = json_object_get(j, "content");
    ck_assert_uint_eq(json_array_size(content), 2);
    ck_assert_str_eq(tm_str(json_array_get(content, 1), "type"), "tool_use");
    ck_assert_str_eq(tm_str(json_object_get(json_array_get(content, 1), "input"), "city"), "Oslo");
    ck_assert_str_eq(tm_str(j, "stop_reason"), "tool_use");
    json_decref(j);
}
END_TEST

START_TEST(render_stream_end_reasons)
{
    api_stream s = stream_for(NULL);
    api_choice fin = {.index = 0, .finish_reason = "length"};
    char *out = api_dialect_messages.end(&s, &fin, 1, NULL);
    const char *p = out;
    json_t *e = next_event(&p, "message_delta");
    json_t *d = json_object_get(e, "delta");
    ck_assert_str_eq(tm_str(d, "stop_reason"), "max_tokens");
    ck_assert(json_is_null(json_object_get(d, "stop_sequence")));
    ck_assert_int_eq(tm_int(json_object_get(e, "usage"), "output_tokens"), 0);
    json_decref(e);
    json_decref(next_event(&p, "message_stop"));
    free(out);
}
END_TEST

START_TEST(render_other_choices_silent)
{
    api_stream s = stream_for(NULL);
    char *out = api_dialect_messages.start(&s, 1, NULL);
    ck_assert_str_eq(out, "");
    free(out);
    api_choice c = {.index = 1, .text = "x", .len = 1, .finish_reason = "stop"};
    out = api_dialect_messages.delta(&s, &c);
    ck_assert_str_eq(out, "");
    free(out);
    out = api_dialect_messages.finish(&s, &c);
    ck_assert_str_eq(out, "");
    free(out);
    ck_assert_uint_eq(s.seq, 0);
}
END_TEST

START_TEST(render_ping)
{
    const char *p = api_dialect_messages.ping;
    json_decref(next_event(&p, "ping"));
    ck_assert_str_eq(p, "");
}
END_TEST

/* ============================================================ errors */

static const struct {
    unsigned status;
    const char *type;
} error_types[] = {
    {400, "invalid_request_error"}, {401, "authentication_error"},
    {403, "permission_error"},      {404, "not_found_error"},
    {413, "request_too_large"},     {429, "rate_limit_error"},
    {500, "api_error"},             {503, "overloaded_error"},
    {529, "overloaded_error"},      {422, "invalid_request_error"},
    {502, "api_error"},
};

START_TEST(render_error_per_status)
{
    unsigned status = error_types[_i].status;
    ck_assert_str_eq(api_messages_error_type(status), error_types[_i].type);
    char *out = api_dialect_messages.error(status, NULL, "went \"wrong\"\n",
                                           "param", "code");
    json_t *j = tm_load(out);
    free(out);
    ck_assert_uint_eq(json_object_size(j), 2);
    ck_assert_str_eq(tm_str(j, "type"), "error");
    json_t *e = json_object_get(j, "error");
    ck_assert_uint_eq(json_object_size(e), 2);
    ck_assert_str_eq(tm_str(e, "type"), error_types[_i].type);
    ck_assert_str_eq(tm_str(e, "message"), "went \"wrong\"\n");
    json_decref(j);
}
END_TEST

START_TEST(render_error_types_given)
{
    static const struct {
        const char *given, *want;
    } cases[] = {
        {"server_error", "api_error"},
        {"service_unavailable", "overloaded_error"},
        {"rate_limit_error", "rate_limit_error"},
        {"not_found_error", "not_found_error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = api_messages_error_json(500, cases[i].given, "m");
        json_t *j = tm_load(out);
        free(out);
        ck_assert_str_eq(tm_str(json_object_get(j, "error"), "type"),
                         cases[i].want);
        json_decref(j);
    }
    /* a message echoing invalid bytes still makes JSON */
    char *out = api_messages_error_json(400, NULL, "bad \xff byte");
    json_t *j = tm_load(out);
    free(out);
    ck_assert_str_eq(tm_str(json_object_get(j, "error"), "message"),
                     "bad \xef\xbf\xbd byte");
    json_decref(j);
}
END_TEST

START_TEST(render_stream_error)
{
    api_stream s = stream_for(NULL);
    char *out = api_dialect_messages.stream_error(&s, 503, NULL, "Overloaded");
    const char *p = out;
    json_t *e = next_event(&p, "error");
    json_t *inner = json_object_get(e, "error");
    ck_assert_str_eq(tm_str(inner, "type"), "overloaded_error");
    ck_assert_str_eq(tm_str(inner, "message"), "Overloaded");
    json_decref(e);
    ck_assert_str_eq(p, "");
    free(out);
    out = api_dialect_messages.stream_error(&s, 500, NULL, "engine failed");
    p = out;
    e = next_event(&p, "error");
    ck_assert_str_eq(tm_str(json_object_get(e, "error"), "type"), "api_error");
    json_decref(e);
    free(out);
}
END_TEST

TCase *messages_render_tcase(void)
{
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, render_full_finish_mapping);
    tcase_add_test(tc, render_full_no_usage_invalid_utf8);
    tcase_add_test(tc, render_stream);
    tcase_add_test(tc, render_stream_tool_between_text);
    tcase_add_test(tc, render_stream_end_reasons);
    tcase_add_test(tc, render_other_choices_silent);
    tcase_add_test(tc, render_ping);
    tcase_add_loop_test(tc, render_error_per_status, 0,
                        (int)(sizeof error_types / sizeof *error_types));
    tcase_add_test(tc, render_error_types_given);
    tcase_add_test(tc, render_stream_error);
    return tc;
}
