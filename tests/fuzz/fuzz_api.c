/* fuzz_api.c - libFuzzer target: arbitrary bodies into both request
 * parsers, and whatever they accept through the renderers and the stop
 * matcher.
 *
 * Build and run (from a configured build dir, for config.h):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
 *     -include config.h -I$SRC/api -I$SRC/engine \
 *     $SRC/tests/fuzz/fuzz_api.c $SRC/api/{request,response,stop,error}.c \
 *     $SRC/engine/sampler.c -ljansson -lm -o fuzz_api
 *   ./fuzz_api -max_total_time=300 corpus/
 *
 * Besides crashes and sanitizer reports it aborts when an accepted request
 * breaks a documented invariant, when an error has no message or a
 * rendered object is not valid JSON.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "response.h"
#include "stop.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void check_json(char *s)
{
    check(s != NULL);
    json_error_t je;
    json_t *j = json_loads(s, JSON_ALLOW_NUL, &je);
    check(j != NULL);
    json_decref(j);
    free(s);
}

/* The accepted request's texts: rendered as a response and streamed through
 * a stop matcher built from its own stop strings. */
static void exercise(const api_request *r, const uint8_t *data, size_t size)
{
    check(r->n >= 1 && r->n <= API_MAX_N);
    check(r->n_stop <= API_MAX_STOP);
    check(r->top_logprobs >= 0 && r->top_logprobs <= API_MAX_TOP_LOGPROBS);
    check(r->max_tokens >= -1 && r->max_tokens <= INT32_MAX);
    check(!r->include_usage || r->stream);
    check(r->sampling.temp >= 0 && r->sampling.temp <= 2);
    check(r->sampling.repeat_penalty > 0);
    if (r->kind == API_CHAT)
        check(r->n_messages >= 1);
    else
        check((r->prompt != NULL) != (r->prompt_tokens != NULL));

    const char *text = r->kind == API_CHAT ? r->messages[0].content : r->prompt;
    size_t len = r->kind == API_CHAT ? r->messages[0].content_len : r->prompt_len;
    if (!text) {
        /* token prompt: use the raw input as (possibly invalid) text */
        text = (const char *)data;
        len = size;
    }
    api_top_logprob top = {text, len < 8 ? len : 8, -INFINITY};
    api_logprob lp = {text, len, -0.5f, &top, 1};
    api_choice c = {.text = text, .len = len, .finish_reason = "stop",
                    .logprobs = r->logprobs, .lp = &lp, .n_lp = 1, .role = true};
    api_head h = {"id", r->model ? r->model : "", 1, r->user};
    api_usage u = {1, 2, 0};
    check_json(api_response_json(r->kind, &h, &c, 1, &u));
    check_json(api_chunk_json(r->kind, &h, &c, 1));
    check_json(api_usage_chunk_json(r->kind, &h, &u));

    api_stop *m;
    if (api_stop_new((const char *const *)r->stop, r->n_stop, &m) < 0)
        return;
    size_t emitted = 0;
    api_stop_out o;
    for (size_t i = 0; i < len && !api_stop_done(m);) {
        size_t k = 1 + (i * 7 + len) % 5;
        if (k > len - i)
            k = len - i;
        if (api_stop_feed(m, text + i, k, &o) < 0)
            break;
        check(emitted + o.len <= len);
        check(!memcmp(o.text, text + emitted, o.len));
        emitted += o.len;
        i += k;
    }
    api_stop_flush(m, &o);
    check(!memcmp(o.text, text + emitted, o.len));
    api_stop_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int kind = 0; kind < 2; kind++) {
        api_request r;
        api_err e;
        int rc = kind == 0
            ? api_parse_chat((const char *)data, size, &r, &e)
            : api_parse_completion((const char *)data, size, &r, &e);
        if (rc == 0) {
            exercise(&r, data, size);
        } else {
            check(e.status == 400 || e.status == 500);
            check(e.message[0] != '\0');
            check_json(api_err_json(&e));
        }
        api_request_free(&r);
    }
    return 0;
}
