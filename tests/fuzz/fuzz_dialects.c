/* fuzz_dialects.c - libFuzzer target: arbitrary bodies into the Anthropic
 * Messages parsers (api_parse_messages, api_parse_count_tokens) and the
 * OpenAI Responses parser (api_parse_responses), and whatever they accept
 * rendered through its dialect (dialect.h): the whole response, a stream
 * (start, delta, finish, end), a stream error and an error body. The
 * OpenAI parsers' (api_parse_chat, api_parse_completion) requests go
 * through their dialects too (fuzz_api checks those requests themselves).
 *
 * Build and run (from a configured build dir, for config.h):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
 *     -include config.h -I$SRC/api -I$SRC/engine \
 *     $SRC/tests/fuzz/fuzz_dialects.c $SRC/api/{request,response,stop,error}.c \
 *     $SRC/api/{dialect_openai,messages,messages_parse,responses,responses_parse}.c \
 *     $SRC/engine/sampler.c -ljansson -lm -o fuzz_dialects
 *   ./fuzz_dialects -max_total_time=300 corpus/
 *
 * Besides crashes and sanitizer reports it aborts when an accepted request
 * breaks a documented invariant, when an error has no message, when a
 * rendered body is not valid JSON, or when a rendered stream piece is not
 * whole SSE events whose every "data: " payload is valid JSON.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "messages.h"
#include "request.h"
#include "response.h"
#include "responses.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void check_json_n(const char *s, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(s, len, JSON_ALLOW_NUL, &je);
    check(j != NULL);
    json_decref(j);
}

static void check_json(char *s)
{
    check(s != NULL);
    check_json_n(s, strlen(s));
    free(s);
}

/* OpenAI's streams end with "data: [DONE]"; the other dialects' do not. */
static bool allow_done;

/* s is "" or whole SSE events: lines ending in "\n", events ending in a
 * blank line, every "data: " payload one JSON value. */
static void check_sse_str(const char *s)
{
    check(s != NULL);
    size_t len = strlen(s);
    if (len == 0)
        return;
    check(len >= 2 && s[len - 1] == '\n' && s[len - 2] == '\n');
    for (const char *p = s; p < s + len;) {
        const char *nl = memchr(p, '\n', (size_t)(s + len - p));
        check(nl != NULL);
        check(memchr(p, '\r', (size_t)(nl - p)) == NULL);
        bool done = nl - p == 12 && !memcmp(p, "data: [DONE]", 12);
        check(!done || allow_done);
        if (nl - p >= 6 && !memcmp(p, "data: ", 6) && !done)
            check_json_n(p + 6, (size_t)(nl - p - 6));
        p = nl + 1;
    }
}

static void check_sse(char *s)
{
    check_sse_str(s);
    free(s);
}

/* What the parser accepted, as the documented invariants say. */
static void check_request(const api_request *r, api_kind kind)
{
    check(r->kind == kind);
    check(r->n == 1);
    check(r->n_messages >= 1 && r->messages != NULL);
    check(r->n_stop <= API_MAX_STOP);
    for (size_t i = 0; i < r->n_stop; i++)
        check(r->stop[i] != NULL && r->stop[i][0] != '\0');
    for (size_t i = 0; i < r->n_messages; i++) {
        check(r->messages[i].content != NULL);
        check(strlen(r->messages[i].content) == r->messages[i].content_len);
    }
    check(r->max_tokens >= -1 && r->max_tokens <= INT32_MAX);
    check(r->sampling.temp >= 0 && r->sampling.temp <= 2);
}

/* Render the accepted request through d: text is a slice of the input (any
 * bytes, not necessarily UTF-8), cut into deltas of a few bytes. */
static void render(const api_dialect *d, const api_request *r, const uint8_t *data,
                   size_t size)
{
    const char *text = (const char *)data;
    size_t len = size < 512 ? size : 512;
    static const char *const reasons[] = {"stop", "length", "content_filter", "tool_calls"};
    const char *reason = reasons[size % 4];
    char id[API_ID_MAX];
    api_format_id(id, r->kind, size * 2654435761u);

    api_stream s = {.q = r, .h = {id, r->model ? r->model : "", 1700000000, NULL},
                    .stop_matched = r->n_stop && size % 3 == 0 ? r->stop[0] : NULL};
    api_usage u = {(int64_t)r->n_messages, (int64_t)len, (int64_t)(size % 2)};
    api_choice whole = {.text = text, .len = len, .finish_reason = reason, .role = true};

    check_json(d->full(&s, &whole, 1, &u));

    s.seq = 0;
    check_sse(d->start(&s, 0, &u));
    for (size_t i = 0; i < len;) {
        size_t k = 1 + (i * 5 + len) % 7;
        if (k > len - i)
            k = len - i;
        api_choice dc = {.text = text + i, .len = k, .text_offset = i, .role = i == 0};
        check_sse(d->delta(&s, &dc));
        i += k;
    }
    check_sse(d->finish(&s, &whole));
    check_sse(d->end(&s, &whole, 1, &u));

    /* A failure in the middle of a stream, with input text as the message. */
    char msg[64];
    size_t ml = len < sizeof msg - 1 ? len : sizeof msg - 1;
    memcpy(msg, text, ml);
    msg[ml] = '\0';
    s.seq = 0;
    check_sse(d->start(&s, 0, &u));
    check_sse(d->stream_error(&s, 500 + (unsigned)(size % 4), NULL, msg));
    check_json(d->error(400, NULL, msg, ml % 2 ? msg : NULL, ml % 3 ? NULL : msg));
    check_json(d->error(429, "rate_limit_error", msg, NULL, NULL));
    check_sse_str(d->ping);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const api_kind kinds[] = {API_MESSAGES, API_MESSAGES, API_RESPONSES, API_CHAT,
                                     API_COMPLETION};
    for (int which = 0; which < 5; which++) {
        api_request r;
        api_err e;
        const char *body = (const char *)data;
        api_kind kind = kinds[which];
        const api_dialect *d = api_dialect_of(kind);
        check(d != NULL);
        allow_done = kind == API_CHAT || kind == API_COMPLETION;
        int rc;
        switch (which) {
        case 0: rc = api_parse_messages(body, size, &r, &e); break;
        case 1: rc = api_parse_count_tokens(body, size, &r, &e); break;
        case 2: rc = api_parse_responses(body, size, &r, &e); break;
        case 3: rc = api_parse_chat(body, size, &r, &e); break;
        default: rc = api_parse_completion(body, size, &r, &e); break;
        }
        if (rc == 0) {
            if (which <= 2)
                check_request(&r, kind);
            if (which <= 1)
                check(api_messages_continues(&r) ==
                      (r.messages[r.n_messages - 1].role == API_ROLE_ASSISTANT));
            if (which == 1) {
                check(r.max_tokens == -1 || r.max_tokens >= 1);
                check_json(api_messages_count_json((long long)size));
            }
            render(d, &r, data, size);
            api_request_free(&r);
        } else {
            check(e.status >= 400 && e.status < 600);
            check(e.message[0] != '\0');
            if (which <= 1)
                check_json(api_messages_err_json(&e));
            check_json(d->error(e.status, NULL, e.message, e.param[0] ? e.param : NULL,
                                e.code[0] ? e.code : NULL));
        }
    }
    return 0;
}
