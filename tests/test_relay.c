/* test_relay.c - the body forwarded upstream (router/forward.h) and the
 * answer relayed back (router/relay.h): streams fed whole, byte by byte and
 * in random cuts, placeholders restored across chunks, usage captured and
 * dropped, and every way a stream can fail. */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/forward.h"
#include "router/relay.h"
#include "tests/testrand.h"

#define EMAIL "alice@example.com"
#define CARD "4111 1111 1111 1111"

/* ============================================================ helpers */

/* How relay_feed is given its input. */
enum cut { WHOLE, BYTES, RANDOM };

/* Feed in to a new relay (cut as asked; RANDOM with the seed), consume
 * the output in pieces as a daemon would, finish with transfer_ok.
 * Returns the output (malloc'd, NUL-terminated); *st the final state. */
static char *run(const relay_opts *o, const char *in, size_t n, enum cut cut,
                 uint64_t seed, bool transfer_ok, relay_status *st,
                 relay_usage *u, bool *produced)
{
    relay *r = relay_new(o);
    ck_assert_ptr_nonnull(r);
    rng_state = seed ? seed : 1;
    size_t cap = 1024, len = 0;
    char *out = malloc(cap);
    for (size_t pos = 0;;) {
        bool end = pos >= n;
        if (end) {
            relay_finish(r, transfer_ok);
        } else {
            size_t piece = n - pos;
            if (cut == BYTES)
                piece = 1;
            else if (cut == RANDOM)
                piece = 1 + rng_u32() % (piece < 40 ? piece : 40);
            relay_feed(r, in + pos, piece);
            pos += piece;
        }
        /* take what is pending in one or two bites */
        size_t plen;
        const char *p = relay_pending(r, &plen);
        size_t bite = cut == RANDOM && plen > 1 ? plen / 2 : plen;
        for (int k = 0; k < 2 && plen; k++) {
            while (len + bite + 1 > cap)
                out = realloc(out, cap *= 2);
            memcpy(out + len, p, bite);
            len += bite;
            relay_consume(r, bite);
            p = relay_pending(r, &plen);
            bite = plen;
        }
        ck_assert_uint_eq(plen, 0);
        if (end)
            break;
    }
    out[len] = '\0';
    *st = relay_state(r);
    if (u)
        *u = *relay_get_usage(r);
    if (produced)
        *produced = relay_produced(r);
    relay_free(r);
    return out;
}

/* run() three ways (whole, byte by byte, 20 random cuttings): the same
 * output each time, which is returned. */
static char *run_all(const relay_opts *o, const char *in, relay_status *st,
                     relay_usage *u)
{
    size_t n = strlen(in);
    char *ref = run(o, in, n, WHOLE, 0, true, st, u, NULL);
    relay_status st2;
    char *b = run(o, in, n, BYTES, 0, true, &st2, NULL, NULL);
    ck_assert_str_eq(b, ref);
    ck_assert_int_eq(st2, *st);
    free(b);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        b = run(o, in, n, RANDOM, seed * 7919, true, &st2, NULL, NULL);
        ck_assert_msg(strcmp(b, ref) == 0, "seed %llu: differs",
                      (unsigned long long)seed);
        free(b);
    }
    return ref;
}

/* The value at a dotted path: "choices.0.delta.content" (numbers index
 * arrays); NULL when it is not there. */
static json_t *at(json_t *j, const char *path)
{
    char key[64];
    while (j && *path) {
        size_t n = strcspn(path, ".");
        ck_assert_uint_lt(n, sizeof key);
        memcpy(key, path, n);
        key[n] = '\0';
        path += n + (path[n] == '.');
        j = json_is_array(j) ? json_array_get(j, strtoul(key, NULL, 10))
                             : json_object_get(j, key);
    }
    return j;
}

static const char *str_at(json_t *j, const char *path)
{
    const char *s = json_string_value(at(j, path));
    ck_assert_msg(s != NULL, "no string at %s", path);
    return s;
}

/* The events' data in out: the JSON of each chunk (not [DONE]) into a
 * new array. */
static json_t *chunks(const char *out)
{
    json_t *arr = json_array();
    const char *p = out;
    while ((p = strstr(p, "data: ")) != NULL) {
        p += 6;
        size_t n = strcspn(p, "\r\n");
        if (strncmp(p, "[DONE]", 6) != 0) {
            json_error_t je;
            json_t *j = json_loadb(p, n, 0, &je);
            ck_assert_msg(j != NULL, "not JSON: %.*s", (int)n, p);
            json_array_append_new(arr, j);
        }
        p += n;
    }
    return arr;
}

/* The concatenation of one field over all chunks: path (for at()) in the
 * choice whose index is choice. */
static char *joined(const char *out, int choice, const char *path)
{
    json_t *arr = chunks(out);
    size_t i;
    json_t *c;
    char *s = calloc(1, 1);
    size_t len = 0;
    json_array_foreach(arr, i, c) {
        size_t k;
        json_t *ch, *found = NULL;
        json_array_foreach(json_object_get(c, "choices"), k, ch) {
            if (json_integer_value(json_object_get(ch, "index")) == choice)
                found = ch;
        }
        json_t *v = at(found, path);
        if (!json_is_string(v))
            continue;
        s = realloc(s, len + json_string_length(v) + 1);
        memcpy(s + len, json_string_value(v), json_string_length(v));
        len += json_string_length(v);
        s[len] = '\0';
    }
    json_decref(arr);
    return s;
}

static privacy_set *set;

static void setup(void)
{
    char err[256];
    ck_assert_int_eq(privacy_set_new(NULL, 0, &set, err, sizeof err),
                     PRIVACY_OK);
}

static void teardown(void)
{
    privacy_set_free(set);
    set = NULL;
}

/* A map with [EMAIL_1] = EMAIL and [CARD_1] = CARD, made the way the
 * daemon makes it: forward_body on a request with both. */
static privacy_map *request_map(void)
{
    const char *req =
        "{\"model\":\"auto\",\"stream\":true,\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"Write to " EMAIL " please\"},"
        "{\"role\":\"user\",\"content\":\"and charge " CARD ".\"}]}";
    privacy_map *m = privacy_map_new();
    forward_result res;
    char err[128];
    ck_assert_int_eq(forward_body(req, strlen(req), "up", set, m, &res, err,
                                  sizeof err),
                     FORWARD_OK);
    ck_assert_uint_eq(privacy_map_count(m), 2);
    free(res.body);
    return m;
}

/* A chat chunk: "data: {...}\n\n" with the delta given as JSON text. */
#define CHUNK(delta, finish)                                                   \
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\","      \
    "\"created\":1700000000,\"model\":\"gpt-x\",\"system_fingerprint\":"      \
    "\"fp_1\",\"choices\":[{\"index\":0,\"delta\":" delta ",\"logprobs\":"    \
    "null,\"finish_reason\":" finish "}]}\n\n"

static const char chat_stream[] =
    ": OPENROUTER PROCESSING\n\n"
    CHUNK("{\"role\":\"assistant\",\"content\":\"\"}", "null")
    CHUNK("{\"content\":\"Hello\"}", "null")
    ": ping\n\n"
    CHUNK("{\"content\":\" w\\u00f6rld, 1.5 [x]\"}", "null")
    CHUNK("{\"content\":\" \\ud83d\\ude00\"}", "null")
    CHUNK("{}", "\"stop\"")
    "data: [DONE]\n\n";

/* ============================================================ streams */

START_TEST(stream_without_map_is_byte_for_byte)
{
    relay_opts o = {0};
    relay_status st;
    relay_usage u;
    char *out = run_all(&o, chat_stream, &st, &u);
    ck_assert_str_eq(out, chat_stream);
    ck_assert_int_eq(st, RELAY_DONE);
    ck_assert(!u.seen);
    /* "Hello" + " wörld, 1.5 [x]" (ö: 2 bytes) + " 😀" (4 bytes) */
    ck_assert_uint_eq(u.content_bytes, 5 + 16 + 5);
    free(out);
}
END_TEST

START_TEST(stream_with_map_untouched_text_is_byte_for_byte)
{
    privacy_map *m = request_map();
    relay_opts o = {.map = m};
    relay_status st;
    char *out = run_all(&o, chat_stream, &st, NULL);
    ck_assert_str_eq(out, chat_stream);
    ck_assert_int_eq(st, RELAY_DONE);
    free(out);
    privacy_map_free(m);
}
END_TEST

START_TEST(stream_restores_split_placeholder)
{
    privacy_map *m = request_map();
    relay_opts o = {.map = m};
    const char *in = CHUNK("{\"role\":\"assistant\",\"content\":\"\"}", "null")
        CHUNK("{\"content\":\"Mail [EM\"}", "null")
        CHUNK("{\"content\":\"AIL\"}", "null")
        CHUNK("{\"content\":\"_1] ok, card [CARD_1]\"}", "null")
        CHUNK("{}", "\"stop\"") "data: [DONE]\n\n";
    relay_status st;
    relay_usage u;
    char *out = run_all(&o, in, &st, &u);
    ck_assert_int_eq(st, RELAY_DONE);
    char *text = joined(out, 0, "delta.content");
    ck_assert_str_eq(text, "Mail " EMAIL " ok, card " CARD);
    ck_assert_uint_eq(u.content_bytes, strlen(text));
    ck_assert_ptr_null(strstr(out, "[EMAIL_1]"));
    ck_assert_ptr_null(strstr(out, "[CARD_1]"));
    /* "[EM" is held back: the chunk that brought it says "Mail " only */
    json_t *arr = chunks(out);
    ck_assert_str_eq(str_at(arr, "1.choices.0.delta.content"), "Mail ");
    /* re-serialized compactly, the other members kept */
    ck_assert_ptr_nonnull(strstr(out, "\"system_fingerprint\":\"fp_1\""));
    ck_assert_ptr_nonnull(strstr(out, "\"logprobs\":null"));
    ck_assert_ptr_null(strstr(out, "\": "));
    json_decref(arr);
    free(text);
    free(out);
    privacy_map_free(m);
}
END_TEST

START_TEST(finish_reason_flushes_held_text)
{
    privacy_map *m = request_map();
    relay_opts o = {.map = m};
    const char *in = CHUNK("{\"content\":\"see [CA\"}", "null")
        CHUNK("{}", "\"length\"") "data: [DONE]\n\n";
    relay_status st;
    char *out = run_all(&o, in, &st, NULL);
    json_t *arr = chunks(out);
    ck_assert_uint_eq(json_array_size(arr), 2);
    ck_assert_str_eq(str_at(arr, "1.choices.0.finish_reason"), "length");
    ck_assert_str_eq(str_at(arr, "1.choices.0.delta.content"), "[CA");
    char *text = joined(out, 0, "delta.content");
    ck_assert_str_eq(text, "see [CA");
    free(text);
    json_decref(arr);
    free(out);
    privacy_map_free(m);
}
END_TEST

START_TEST(done_flushes_held_text_in_a_last_chunk)
{
    privacy_map *m = request_map();
    relay_opts o = {.map = m};
    const char *in = CHUNK("{\"content\":\"x [EMAIL_\"}", "null")
        "data: [DONE]\n\n";
    relay_status st;
    char *out = run_all(&o, in, &st, NULL);
    ck_assert_int_eq(st, RELAY_DONE);
    json_t *arr = chunks(out);
    ck_assert_uint_eq(json_array_size(arr), 2);
    ck_assert_str_eq(str_at(arr, "1.id"), "chatcmpl-7");
    ck_assert_str_eq(str_at(arr, "1.object"), "chat.completion.chunk");
    char *text = joined(out, 0, "delta.content");
    ck_assert_str_eq(text, "x [EMAIL_");
    /* the extra chunk comes before [DONE], which ends the output */
    size_t n = strlen(out);
    ck_assert_str_eq(out + n - 14, "data: [DONE]\n\n");
    free(text);
    json_decref(arr);
    free(out);
    privacy_map_free(m);
}
END_TEST

START_TEST(tool_call_arguments_restored)
{
    privacy_map *m = request_map();
    relay_opts o = {.map = m};
    const char *in =
        CHUNK("{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
              "\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":"
              "{\"name\":\"send\",\"arguments\":\"\"}}]}", "null")
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
              "\"{\\\"to\\\":\\\"[EMA\"}}]}", "null")
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
              "\"IL_1]\\\"}\"}}]}", "null")
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
              "\"[CARD\"}}]}", "null")
        CHUNK("{}", "\"tool_calls\"") "data: [DONE]\n\n";
    relay_status st;
    char *out = run_all(&o, in, &st, NULL);
    ck_assert_int_eq(st, RELAY_DONE);
    char *args = joined(out, 0, "delta.tool_calls.0.function.arguments");
    /* "[CARD" is no placeholder: it comes out with the finishing chunk */
    ck_assert_str_eq(args, "{\"to\":\"" EMAIL "\"}[CARD");
    free(args);
    free(out);
    privacy_map_free(m);
}
END_TEST

START_TEST(completions_text_and_choices_apart)
{
    privacy_map *m = request_map();
    relay_opts o = {.map = m};
#define TCHUNK(i, text, finish)                                                \
    "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,"  \
    "\"model\":\"m\",\"choices\":[{\"index\":" #i ",\"text\":\"" text "\","   \
    "\"logprobs\":null,\"finish_reason\":" finish "}]}\n\n"
    const char *in = TCHUNK(0, "A [EMA", "null") TCHUNK(1, "B [CA", "null")
        TCHUNK(0, "IL_1]", "null") TCHUNK(1, "RD_1]", "\"stop\"")
        TCHUNK(0, " end [", "\"stop\"") "data: [DONE]\n\n";
    relay_status st;
    char *out = run_all(&o, in, &st, NULL);
    char *t0 = joined(out, 0, "text"), *t1 = joined(out, 1, "text");
    ck_assert_str_eq(t0, "A " EMAIL " end [");
    ck_assert_str_eq(t1, "B " CARD);
    free(t0);
    free(t1);
    free(out);
    privacy_map_free(m);
}
END_TEST

/* ============================================================ usage */

static const char usage_stream[] =
    CHUNK("{\"content\":\"Hi\"}", "null")
    CHUNK("{}", "\"stop\"")
    "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\","
    "\"created\":1700000000,\"model\":\"gpt-x\",\"choices\":[],\"usage\":{"
    "\"prompt_tokens\":12,\"completion_tokens\":2,\"total_tokens\":14}}\n\n"
    "data: [DONE]\n\n";

START_TEST(usage_captured_and_kept)
{
    relay_opts o = {.drop_usage = false};
    relay_status st;
    relay_usage u;
    char *out = run_all(&o, usage_stream, &st, &u);
    ck_assert_str_eq(out, usage_stream);
    ck_assert(u.seen);
    ck_assert_int_eq(u.prompt_tokens, 12);
    ck_assert_int_eq(u.completion_tokens, 2);
    ck_assert_int_eq(u.total_tokens, 14);
    free(out);
}
END_TEST

START_TEST(usage_only_chunk_dropped)
{
    relay_opts o = {.drop_usage = true};
    relay_status st;
    relay_usage u;
    char *out = run_all(&o, usage_stream, &st, &u);
    ck_assert_str_eq(out, CHUNK("{\"content\":\"Hi\"}", "null")
                     CHUNK("{}", "\"stop\"") "data: [DONE]\n\n");
    ck_assert(u.seen);
    ck_assert_int_eq(u.total_tokens, 14);
    free(out);

    /* a chunk with choices and usage loses only its usage */
    const char *both =
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: [DONE]\n\n";
    out = run_all(&o, both, &st, &u);
    ck_assert_str_eq(out, "data: {\"id\":\"c\",\"choices\":[{\"index\":0,"
                          "\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
                          "data: [DONE]\n\n");
    ck_assert_int_eq(u.total_tokens, 2);
    free(out);

    /* "usage": null is left alone */
    const char *null_usage =
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":null}\n\n"
        "data: [DONE]\n\n";
    out = run_all(&o, null_usage, &st, &u);
    ck_assert_str_eq(out, null_usage);
    ck_assert(!u.seen);
    free(out);
}
END_TEST

/* ============================================================ failures */

/* The error event and [DONE] that end a failed stream. */
static void error_end(relay_status st, char *want, size_t n)
{
    snprintf(want, n,
             "data: {\"error\":{\"message\":\"%s\",\"type\":\"server_error\","
             "\"param\":null,\"code\":\"upstream_error\"}}\n\ndata: [DONE]\n\n",
             relay_strerror(st));
}

/* out ends with them, and the event has the shape the SDKs read
 * (data.error.message). */
static void assert_error_end(const char *out, relay_status st)
{
    char want[512];
    error_end(st, want, sizeof want);
    size_t n = strlen(out), w = strlen(want);
    ck_assert_msg(n >= w && strcmp(out + n - w, want) == 0,
                  "no error event at the end of: %s", out);
    json_t *arr = chunks(out + n - w);
    ck_assert_str_eq(str_at(arr, "0.error.message"), relay_strerror(st));
    ck_assert_str_eq(str_at(arr, "0.error.type"), "server_error");
    ck_assert(json_is_null(at(arr, "0.error.param")));
    json_decref(arr);
}

START_TEST(missing_done_ends_with_error_event)
{
    relay_opts o = {0};
    const char *in = CHUNK("{\"content\":\"Hi\"}", "null");
    relay_status st;
    bool produced;
    char *out = run(&o, in, strlen(in), BYTES, 0, true, &st, NULL, &produced);
    ck_assert_int_eq(st, RELAY_EEARLY);
    ck_assert(produced);
    ck_assert(strncmp(out, in, strlen(in)) == 0);
    assert_error_end(out, st);
    free(out);

    /* the transfer failed, and a partial event is dropped */
    const char *cut = CHUNK("{\"content\":\"Hi\"}", "null") "data: {\"id";
    out = run(&o, cut, strlen(cut), RANDOM, 5, false, &st, NULL, NULL);
    ck_assert_int_eq(st, RELAY_ETRANSFER);
    char want[512];
    error_end(st, want, sizeof want);
    ck_assert(strncmp(out, in, strlen(in)) == 0);
    ck_assert_str_eq(out + strlen(in), want);
    free(out);
}
END_TEST

START_TEST(nothing_produced_before_failure)
{
    relay_opts o = {0};
    const char *in = ": ping\n\n: ping\n\n";
    relay_status st;
    bool produced;
    char *out = run(&o, in, strlen(in), WHOLE, 0, false, &st, NULL, &produced);
    ck_assert_int_eq(st, RELAY_ETRANSFER);
    ck_assert(!produced); /* comments and the error event do not count */
    ck_assert(strncmp(out, in, strlen(in)) == 0);
    free(out);
}
END_TEST

START_TEST(malformed_json_ends_with_error_event)
{
    relay_opts o = {0};
    const char *in = CHUNK("{\"content\":\"Hi\"}", "null")
        "data: {\"choices\": [secret-upstream-bytes\n\n"
        CHUNK("{\"content\":\"after\"}", "null") "data: [DONE]\n\n";
    relay_status st;
    char *out = run_all(&o, in, &st, NULL);
    ck_assert_int_eq(st, RELAY_EMALFORMED);
    ck_assert_ptr_null(strstr(out, "secret-upstream-bytes"));
    ck_assert_ptr_null(strstr(out, "after")); /* input after it: ignored */
    assert_error_end(out, st);
    free(out);

    /* JSON but not an object, and an empty data line */
    const char *bad[] = {"data: [1,2]\n\n", "data: \"x\"\n\n", "data:\n\n",
                         "data: {\"a\":1}{\n\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        out = run(&o, bad[i], strlen(bad[i]), WHOLE, 0, true, &st, NULL, NULL);
        ck_assert_int_eq(st, RELAY_EMALFORMED);
        assert_error_end(out, st);
        free(out);
    }
}
END_TEST

START_TEST(huge_line_ends_with_error_event_bounded)
{
    relay_opts o = {0};
    relay *r = relay_new(&o);
    static char piece[64 * 1024];
    memset(piece, 'x', sizeof piece);
    memcpy(piece, "data: ", 6);
    size_t fed = 0;
    relay_status st = RELAY_OK;
    /* 2 MiB without a line end: it must fail as soon as the event passes
     * RELAY_MAX_EVENT, having held no more than that */
    while (fed < 2 * 1024 * 1024 && st == RELAY_OK) {
        st = relay_feed(r, piece, sizeof piece);
        fed += sizeof piece;
        if (fed > 6)
            memset(piece, 'x', 6);
    }
    ck_assert_int_eq(st, RELAY_ETOOBIG);
    ck_assert_uint_le(fed, RELAY_MAX_EVENT + sizeof piece);
    ck_assert_uint_gt(fed, RELAY_MAX_EVENT);
    /* more input and the end change nothing */
    ck_assert_int_eq(relay_feed(r, "\n\ndata: [DONE]\n\n", 16), RELAY_ETOOBIG);
    ck_assert_int_eq(relay_finish(r, true), RELAY_ETOOBIG);
    size_t n;
    const char *p = relay_pending(r, &n);
    char *out = malloc(n + 1);
    memcpy(out, p, n);
    out[n] = '\0';
    assert_error_end(out, RELAY_ETOOBIG);
    ck_assert(!relay_produced(r));
    free(out);
    relay_free(r);

    /* an event of exactly RELAY_MAX_EVENT bytes is fine */
    r = relay_new(&o);
    char *big = malloc(RELAY_MAX_EVENT);
    memset(big, ' ', RELAY_MAX_EVENT);
    memcpy(big, "data: {\"a\":\"", 12);
    memcpy(big + RELAY_MAX_EVENT - 4, "\"}\n\n", 4);
    ck_assert_int_eq(relay_feed(r, big, RELAY_MAX_EVENT), RELAY_OK);
    ck_assert_int_eq(relay_finish(r, true), RELAY_EEARLY);
    free(big);
    relay_free(r);
}
END_TEST

START_TEST(upstream_error_event_forwarded)
{
    relay_opts o = {0};
    const char *err = "data: {\"error\":{\"message\":\"overloaded\",\"type\":"
                      "\"server_error\",\"param\":null,\"code\":null}}\n\n";
    char in[1024];
    snprintf(in, sizeof in, "%s%s%s", CHUNK("{\"content\":\"Hi\"}", "null"), err,
             CHUNK("{\"content\":\"more\"}", "null"));
    relay_status st;
    char *out = run_all(&o, in, &st, NULL);
    ck_assert_int_eq(st, RELAY_EUPSTREAM);
    char want[1024];
    snprintf(want, sizeof want, "%s%sdata: [DONE]\n\n",
             CHUNK("{\"content\":\"Hi\"}", "null"), err);
    ck_assert_str_eq(out, want);
    free(out);
}
END_TEST

START_TEST(events_after_done_ignored)
{
    relay_opts o = {0};
    const char *in = CHUNK("{\"content\":\"Hi\"}", "null") "data: [DONE]\n\n"
        CHUNK("{\"content\":\"late\"}", "null") "data: {broken\n\n";
    relay_status st;
    char *out = run_all(&o, in, &st, NULL);
    ck_assert_int_eq(st, RELAY_DONE);
    ck_assert_str_eq(out, CHUNK("{\"content\":\"Hi\"}", "null")
                     "data: [DONE]\n\n");
    free(out);

    /* a last [DONE] without its blank line still ends cleanly */
    const char *open = CHUNK("{\"content\":\"Hi\"}", "null") "data: [DONE]";
    out = run(&o, open, strlen(open), BYTES, 0, true, &st, NULL, NULL);
    ck_assert_int_eq(st, RELAY_DONE);
    ck_assert_str_eq(out, CHUNK("{\"content\":\"Hi\"}", "null")
                     "data: [DONE]\n\n");
    free(out);
}
END_TEST

/* ============================================================ framing */

START_TEST(crlf_comments_and_event_lines)
{
    const char *in =
        ": hello\r\n\r\n"
        "event: message\r\n"
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"to [EM\"},\"finish_reason\":null}]}\r\n\r\n"
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"AIL_1]\"},\"finish_reason\":null}]}\r\n\r\n"
        ": ping\r\n\r\n"
        "data: [DONE]\r\n\r\n";
    relay_opts o = {0};
    relay_status st;
    char *out = run_all(&o, in, &st, NULL);
    ck_assert_str_eq(out, in);
    ck_assert_int_eq(st, RELAY_DONE);
    free(out);

    privacy_map *m = request_map();
    o.map = m;
    out = run_all(&o, in, &st, NULL);
    ck_assert_int_eq(st, RELAY_DONE);
    char *text = joined(out, 0, "delta.content");
    ck_assert_str_eq(text, "to " EMAIL);
    /* comments as received, the event line kept before its new data */
    ck_assert(strncmp(out, ": hello\r\n\r\nevent: message\r\ndata: {", 34) == 0);
    ck_assert_ptr_nonnull(strstr(out, "}\n\n: ping\r\n\r\ndata: [DONE]\r\n\r\n"));
    free(text);
    free(out);
    privacy_map_free(m);
}
END_TEST

START_TEST(data_over_several_lines)
{
    const char *in = "data: {\"id\":\"c\",\n"
                     "data: \"choices\":[{\"index\":0,\"delta\":{\"content\":"
                     "\"[CARD_1]\"},\"finish_reason\":null}]}\n\n"
                     "data:[DONE]\n\n";
    privacy_map *m = request_map();
    relay_opts o = {.map = m};
    relay_status st;
    char *out = run_all(&o, in, &st, NULL);
    ck_assert_int_eq(st, RELAY_DONE);
    char *text = joined(out, 0, "delta.content");
    ck_assert_str_eq(text, CARD);
    free(text);
    free(out);
    privacy_map_free(m);
}
END_TEST

/* ============================================================ whole */

START_TEST(json_restored_and_usage)
{
    privacy_map *m = request_map();
    const char *body =
        "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"choices\":[{"
        "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"Sent to [EMAIL_1].\",\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
        "\"function\",\"function\":{\"name\":\"pay\",\"arguments\":"
        "\"{\\\"card\\\":\\\"[CARD_1]\\\"}\"}}]},\"finish_reason\":\"stop\"},"
        "{\"index\":1,\"text\":\"[EMAIL_1]\",\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":9,"
        "\"total_tokens\":39}}";
    char *out;
    size_t n;
    relay_usage u;
    ck_assert_int_eq(relay_json(body, strlen(body), m, &out, &n, &u), RELAY_OK);
    ck_assert_uint_eq(strlen(out), n);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    ck_assert_str_eq(str_at(j, "choices.0.message.content"),
                     "Sent to " EMAIL ".");
    ck_assert_str_eq(str_at(j, "choices.0.message.tool_calls.0.function.arguments"),
                     "{\"card\":\"" CARD "\"}");
    ck_assert_str_eq(str_at(j, "choices.1.text"), EMAIL);
    ck_assert(u.seen);
    ck_assert_int_eq(u.prompt_tokens, 30);
    ck_assert_int_eq(u.completion_tokens, 9);
    ck_assert_int_eq(u.total_tokens, 39);
    ck_assert_uint_eq(u.content_bytes, strlen("Sent to " EMAIL ".") +
                                           strlen("{\"card\":\"" CARD "\"}") +
                                           strlen(EMAIL));
    json_decref(j);
    free(out);

    /* no map: the body as it came */
    ck_assert_int_eq(relay_json(body, strlen(body), NULL, &out, &n, &u),
                     RELAY_OK);
    ck_assert_str_eq(out, body);
    free(out);
    privacy_map_free(m);
}
END_TEST

START_TEST(json_not_json_passes_through)
{
    privacy_map *m = request_map();
    const char *bodies[] = {"<html>502 Bad Gateway [EMAIL_1]</html>", "",
                            "[\"[EMAIL_1]\"]",
                            "{\"error\":{\"message\":\"bad [EMAIL_1]\"}}"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        char *out;
        size_t n;
        relay_usage u;
        ck_assert_int_eq(relay_json(bodies[i], strlen(bodies[i]), m, &out, &n,
                                    &u),
                         RELAY_OK);
        ck_assert_str_eq(out, bodies[i]);
        ck_assert_uint_eq(n, strlen(bodies[i]));
        ck_assert(!u.seen);
        free(out);
    }
    privacy_map_free(m);
}
END_TEST

/* ============================================================ forward */

static json_t *forward(const char *req, privacy_map *m, forward_result *res)
{
    char err[128];
    ck_assert_int_eq(forward_body(req, strlen(req), "gpt-up", m ? set : NULL,
                                  m, res, err, sizeof err),
                     FORWARD_OK);
    ck_assert_uint_eq(strlen(res->body), res->len);
    json_error_t je;
    json_t *j = json_loads(res->body, 0, &je);
    ck_assert_ptr_nonnull(j);
    return j;
}

START_TEST(forward_sets_model_and_usage)
{
    forward_result res;
    json_t *j = forward("{\"model\":\"auto\",\"temperature\":0.5,\"messages\":"
                        "[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        NULL, &res);
    ck_assert_str_eq(str_at(j, "model"), "gpt-up");
    ck_assert(!res.stream);
    ck_assert_ptr_null(json_object_get(j, "stream_options"));
    ck_assert(json_real_value(json_object_get(j, "temperature")) == 0.5);
    json_decref(j);
    free(res.body);

    j = forward("{\"stream\":true,\"messages\":[]}", NULL, &res);
    ck_assert(res.stream);
    ck_assert(!res.client_wants_usage);
    ck_assert_str_eq(str_at(j, "model"), "gpt-up");
    ck_assert(json_is_true(at(j, "stream_options.include_usage")));
    json_decref(j);
    free(res.body);

    j = forward("{\"model\":\"x\",\"stream\":true,\"stream_options\":{"
                "\"include_usage\":true,\"other\":1},\"messages\":[]}",
                NULL, &res);
    ck_assert(res.client_wants_usage);
    ck_assert_int_eq(json_integer_value(at(j, "stream_options.other")), 1);
    json_decref(j);
    free(res.body);

    j = forward("{\"stream\":true,\"stream_options\":null,\"prompt\":\"x\"}",
                NULL, &res);
    ck_assert(!res.client_wants_usage);
    ck_assert(json_is_true(at(j, "stream_options.include_usage")));
    json_decref(j);
    free(res.body);
}
END_TEST

START_TEST(forward_rejects_what_is_not_an_object)
{
    const char *bad[] = {"", "nope", "[1]", "\"x\"", "{\"a\":", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        forward_result res;
        char err[128];
        ck_assert_int_eq(forward_body(bad[i], strlen(bad[i]), "m", NULL, NULL,
                                      &res, err, sizeof err),
                         FORWARD_EBODY);
        ck_assert_ptr_null(res.body);
        ck_assert_str_eq(err, "the request body is not a JSON object");
    }
}
END_TEST

START_TEST(forward_redacts_messages)
{
    privacy_map *m = privacy_map_new();
    forward_result res;
    json_t *j = forward(
        "{\"model\":\"auto\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Reply to " EMAIL ".\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"card "
        CARD " and " EMAIL "\"},{\"type\":\"image_url\",\"image_url\":{"
        "\"url\":\"https://x.test/" EMAIL "\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
        "\"{\\\"to\\\":\\\"" EMAIL "\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"ok " CARD "\"}]}",
        m, &res);
    ck_assert_uint_eq(res.kinds,
                      (1u << PRIVACY_EMAIL) | (1u << PRIVACY_CARD));
    ck_assert_uint_eq(privacy_map_count(m), 2);
    ck_assert_str_eq(str_at(j, "messages.0.content"), "Reply to [EMAIL_1].");
    ck_assert_str_eq(str_at(j, "messages.1.content.0.text"),
                     "card [CARD_1] and [EMAIL_1]");
    /* an image's URL is not text the detectors read */
    ck_assert_str_eq(str_at(j, "messages.1.content.1.image_url.url"),
                     "https://x.test/" EMAIL);
    ck_assert_str_eq(str_at(j, "messages.2.tool_calls.0.function.arguments"),
                     "{\"to\":\"[EMAIL_1]\"}");
    ck_assert_str_eq(str_at(j, "messages.3.content"), "ok [CARD_1]");
    json_decref(j);
    free(res.body);
    privacy_map_free(m);

    /* nothing found: nothing changed but the model */
    m = privacy_map_new();
    j = forward("{\"messages\":[{\"role\":\"user\",\"content\":\"plain\"}]}",
                m, &res);
    ck_assert_uint_eq(res.kinds, 0);
    ck_assert_uint_eq(privacy_map_count(m), 0);
    ck_assert_str_eq(res.body, "{\"messages\":[{\"role\":\"user\",\"content\":"
                               "\"plain\"}],\"model\":\"gpt-up\"}");
    json_decref(j);
    free(res.body);
    privacy_map_free(m);
}
END_TEST

START_TEST(forward_redacts_prompts)
{
    privacy_map *m = privacy_map_new();
    forward_result res;
    json_t *j = forward("{\"model\":\"m\",\"prompt\":\"to " EMAIL "\","
                        "\"suffix\":\"" CARD "\"}", m, &res);
    ck_assert_str_eq(str_at(j, "prompt"), "to [EMAIL_1]");
    ck_assert_str_eq(str_at(j, "suffix"), "[CARD_1]");
    json_decref(j);
    free(res.body);

    j = forward("{\"prompt\":[\"a " EMAIL "\",\"b\",\"" EMAIL "\"]}", m, &res);
    ck_assert_str_eq(str_at(j, "prompt.0"), "a [EMAIL_1]");
    ck_assert_str_eq(str_at(j, "prompt.1"), "b");
    ck_assert_str_eq(str_at(j, "prompt.2"), "[EMAIL_1]");
    json_decref(j);
    free(res.body);

    /* token ids are left alone */
    const char *tok = "{\"prompt\":[[4111,1111],[1,2]],\"model\":\"gpt-up\"}";
    j = forward(tok, m, &res);
    ck_assert_str_eq(res.body, tok);
    json_decref(j);
    free(res.body);
    tok = "{\"prompt\":[4111,1111,1111,1111],\"model\":\"gpt-up\"}";
    j = forward(tok, m, &res);
    ck_assert_str_eq(res.body, tok);
    json_decref(j);
    free(res.body);
    privacy_map_free(m);
}
END_TEST

START_TEST(forward_fails_closed_when_not_scanned)
{
    const char *pats[] = {"(a+)+$"};
    privacy_set *s;
    char err[256];
    ck_assert_int_eq(privacy_set_new(pats, 1, &s, err, sizeof err), PRIVACY_OK);
    char text[64];
    memset(text, 'a', 40);
    memcpy(text + 40, "!", 2);
    size_t n;
    if (privacy_scan(s, text, strlen(text), NULL, 0, &n) != PRIVACY_EMATCH) {
        fprintf(stderr, "SKIP %s: the pattern did not hit the match limit\n",
                __func__);
        privacy_set_free(s);
        return;
    }
    char req[256];
    snprintf(req, sizeof req,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", text);
    privacy_map *m = privacy_map_new();
    forward_result res;
    ck_assert_int_eq(forward_body(req, strlen(req), "m", s, m, &res, err,
                                  sizeof err),
                     FORWARD_EUNSCANNED);
    ck_assert_ptr_null(res.body);
    ck_assert_ptr_null(strstr(err, "aaaa"));
    ck_assert_ptr_nonnull(strstr(err, "scanned"));
    privacy_map_free(m);
    privacy_set_free(s);
}
END_TEST

/* The whole way: a request redacted by forward_body, its answer streamed
 * back with the placeholders split anywhere, restored. */
START_TEST(round_trip_every_split)
{
    privacy_map *m = request_map();
    relay_opts o = {.map = m};
    const char *text = "To [EMAIL_1], [CARD_1] [EMAIL_1]";
    /* one chunk per piece: every way of cutting text in two */
    for (size_t cut = 0; cut <= strlen(text); cut++) {
        char in[1024];
        snprintf(in, sizeof in,
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                 "\"%.*s\"},\"finish_reason\":null}]}\n\n"
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                 "\"%s\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
                 (int)cut, text, text + cut);
        relay_status st;
        char *out = run(&o, in, strlen(in), RANDOM, cut + 1, true, &st, NULL,
                        NULL);
        char *got = joined(out, 0, "delta.content");
        ck_assert_str_eq(got, "To " EMAIL ", " CARD " " EMAIL);
        free(got);
        free(out);
    }
    privacy_map_free(m);
}
END_TEST

/* Mutated streams (bytes flipped, dropped, repeated) in random cuts:
 * never a crash or a leak (the sanitizer build checks), always whole
 * events, and every stream that does not end cleanly ends with the error
 * event. */
START_TEST(random_mutations)
{
    privacy_map *m = request_map();
    const char *base = CHUNK("{\"content\":\"Mail [EM\"}", "null")
        CHUNK("{\"content\":\"AIL_1] [CA\"}", "null") ": ping\r\n\r\n"
        CHUNK("{}", "\"stop\"") "data: [DONE]\n\n";
    size_t n = strlen(base);
    static const char alphabet[] = "\n\r:[]{}\"\\ data";
    char buf[2048];
    int counts[RELAY_ENOMEM + 1] = {0};
    rng_state = 0x9e3779b97f4a7c15ull;
    for (int iter = 0; iter < 400; iter++) {
        size_t len = 0;
        for (size_t i = 0; i < n && len < sizeof buf - 2; i++) {
            uint32_t x = rng_u32() % 1500;
            if (x == 0)
                continue; /* dropped */
            buf[len++] = x == 1 ? alphabet[rng_u32() % (sizeof alphabet - 1)]
                                : base[i];
            if (x == 2)
                buf[len++] = base[i];
        }
        relay_opts o = {.map = iter % 2 ? m : NULL, .drop_usage = iter % 3 == 0};
        relay_status st;
        char *out = run(&o, buf, len, RANDOM, (uint64_t)iter + 1, iter % 5 != 0,
                        &st, NULL, NULL);
        ck_assert_int_ne(st, RELAY_OK);
        ck_assert_int_ne(st, RELAY_ENOMEM);
        size_t ol = strlen(out);
        /* a blank line ends the output: "\n\n" or "\n\r\n" */
        bool whole = ol == 0 ||
                     (ol >= 2 && out[ol - 1] == '\n' &&
                      (out[ol - 2] == '\n' ||
                       (ol >= 3 && out[ol - 2] == '\r' && out[ol - 3] == '\n')));
        ck_assert_msg(whole, "iteration %d: output ends inside an event", iter);
        counts[st]++;
        if (st != RELAY_DONE && st != RELAY_EUPSTREAM)
            assert_error_end(out, st);
        free(out);
    }
    /* the mutations reach the clean end and the failures both */
    ck_assert_int_gt(counts[RELAY_DONE], 0);
    ck_assert_int_gt(counts[RELAY_EMALFORMED], 0);
    ck_assert_int_gt(counts[RELAY_EEARLY] + counts[RELAY_ETRANSFER], 0);
    privacy_map_free(m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, stream_without_map_is_byte_for_byte);
    tcase_add_test(tc, stream_with_map_untouched_text_is_byte_for_byte);
    tcase_add_test(tc, stream_restores_split_placeholder);
    tcase_add_test(tc, finish_reason_flushes_held_text);
    tcase_add_test(tc, done_flushes_held_text_in_a_last_chunk);
    tcase_add_test(tc, tool_call_arguments_restored);
    tcase_add_test(tc, completions_text_and_choices_apart);
    tcase_add_test(tc, round_trip_every_split);
    suite_add_tcase(s, tc);

    tc = tcase_create("usage");
    tcase_add_test(tc, usage_captured_and_kept);
    tcase_add_test(tc, usage_only_chunk_dropped);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_test(tc, missing_done_ends_with_error_event);
    tcase_add_test(tc, nothing_produced_before_failure);
    tcase_add_test(tc, malformed_json_ends_with_error_event);
    tcase_add_test(tc, huge_line_ends_with_error_event_bounded);
    tcase_add_test(tc, upstream_error_event_forwarded);
    tcase_add_test(tc, events_after_done_ignored);
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, random_mutations);
    suite_add_tcase(s, tc);

    tc = tcase_create("framing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, crlf_comments_and_event_lines);
    tcase_add_test(tc, data_over_several_lines);
    suite_add_tcase(s, tc);

    tc = tcase_create("whole");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, json_restored_and_usage);
    tcase_add_test(tc, json_not_json_passes_through);
    suite_add_tcase(s, tc);

    tc = tcase_create("forward");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, forward_sets_model_and_usage);
    tcase_add_test(tc, forward_rejects_what_is_not_an_object);
    tcase_add_test(tc, forward_redacts_messages);
    tcase_add_test(tc, forward_redacts_prompts);
    tcase_add_test(tc, forward_fails_closed_when_not_scanned);
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
