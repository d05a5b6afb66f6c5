/* fuzz_chat.c - libFuzzer target: arbitrary template text through the
 * chat-template parser and renderer, and arbitrary JSON through the
 * variable reader.
 *
 * Build and run (from a configured build dir, for config.h):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
 *     -include config.h -I$SRC/engine \
 *     $SRC/tests/fuzz/fuzz_chat.c $SRC/engine/jinja.c $SRC/engine/chat.c \
 *     -lm -o fuzz_chat
 *   cp -r $SHARED/templates corpus
 *   ./fuzz_chat -max_total_time=300 -timeout=10 corpus/
 *
 * The first byte picks a mode: bit 0 add_generation_prompt, bit 1 "the
 * rest is JSON for `tools` rendered by a fixed template" instead of "the
 * rest is a template". Besides crashes, sanitizer reports, timeouts and
 * leaks it aborts when a failure has no message or a render exceeds the
 * output cap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0; /* the API takes NUL-terminated text */

    static const chat_msg msgs[] = {
        {"system", " Be brief.\n", NULL},
        {"user", "Hi \xc3\xa9\xf0\x9f\x98\x80 \"q\" <t>", NULL},
        {"assistant", "<think>x</think>Hello", "{\"tool_calls\": [{\"id\": \"call_1\", "
                                               "\"function\": {\"name\": \"f\", \"arguments\": "
                                               "{\"a\": [1, 2.5, null]}}}]}"},
        {"tool", NULL, "{\"tool_call_id\": \"call_1\"}"},
        {"user", "again", NULL},
    };
    chat_var var = {.name = "tools", .type = CHAT_VAR_JSON, .s = "[]"};
    chat_opts o = {.now = 1768478400, .vars = &var, .nvars = 1};
    o.limits.max_output = 1 << 20;
    o.limits.max_memory = 64 << 20;
    o.limits.max_steps = 2000000;
    const char *src = text;
    if (mode & 2) {
        var.s = text;
        src = "{% for t in tools %}{{ t|tojson }}{{ t|tojson(indent=2) }}{{ t }}"
              "{% if t is mapping %}{% for k, v in t|items %}{{ k }}={{ v|string }}{% endfor %}"
              "{% endif %}{% endfor %}{{ messages|tojson }}";
    }
    char err[512] = "";
    chat_template *t = NULL;
    if (chat_template_parse(src, &t, err, sizeof(err)) == 0) {
        check(t != NULL);
        err[0] = 0;
        char *out = chat_template_apply_opts(t, msgs, sizeof(msgs) / sizeof(msgs[0]), mode & 1,
                                             "<s>", "</s>", &o, err, sizeof(err));
        check(out != NULL || err[0] != 0);
        if (out)
            check(strlen(out) <= o.limits.max_output);
        free(out);
        (void)chat_template_family(src);
        (void)chat_template_stop(src);
        chat_template_free(t);
    } else {
        check(t == NULL && err[0] != 0);
    }
    free(text);
    return 0;
}
