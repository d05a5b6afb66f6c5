/* fuzz_jgram.c - libFuzzer target: the JSON-schema matcher (json_grammar.h).
 *
 * The input is a schema and a document separated by the first NUL byte
 * (no NUL: all schema, empty document). The schema is compiled; when it is
 * refused the document runs against jgram_any_object() instead. The
 * document is then fed byte by byte, and at every position:
 *  - jgram_allowed_bytes() must agree with jgram_feed() on a copied state
 *    for a dozen byte values (the next byte, its neighbours, the JSON
 *    structural bytes and one that rotates through all 256);
 *  - a refused byte must leave the state unchanged.
 * A document accepted whole with jgram_accepting() true must be JSON
 * (jansson decides, with its own number-range limits tolerated).
 *
 * Build and run (from a configured build dir, for config.h):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
 *     -include config.h -I$SRC/engine \
 *     $SRC/tests/fuzz/fuzz_jgram.c $SRC/engine/json_grammar_{compile,match,read}.c \
 *     -ljansson -lm -o fuzz_jgram
 *   ./fuzz_jgram -max_total_time=300 corpus/
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_grammar.h"

#define DOC_MAX 4096

static void check(int cond)
{
    if (!cond)
        abort();
}

static size_t live_size(const jgram_thread *t)
{
    return offsetof(jgram_thread, f) + t->depth * sizeof(jgram_frame);
}

static bool same_state(const jgram_state *a, const jgram_state *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->t[i].depth != b->t[i].depth || memcmp(&a->t[i], &b->t[i], live_size(&a->t[i])))
            return false;
    return true;
}

/* jansson refuses some valid JSON numbers (out of its double / int64
 * range); those are not the matcher's fault. */
static bool jansson_range_error(const json_error_t *je)
{
    return strstr(je->text, "overflow") || strstr(je->text, "too big") ||
           strstr(je->text, "too small");
}

static jgram_state st, probe, before;

static void run(const jgram *g, const uint8_t *doc, size_t len)
{
    static const uint8_t fixed[] = {'"', '{', '}', '[', ']', ',', ':', ' ', '\n', '0', '\\', 'e'};
    jgram_init(g, &st);
    size_t i = 0;
    for (; i < len; i++) {
        bool allowed[256];
        jgram_allowed_bytes(g, &st, allowed);
        uint8_t tries[sizeof fixed + 4];
        memcpy(tries, fixed, sizeof fixed);
        tries[sizeof fixed] = doc[i];
        tries[sizeof fixed + 1] = (uint8_t)(doc[i] + 1);
        tries[sizeof fixed + 2] = (uint8_t)(doc[i] - 1);
        tries[sizeof fixed + 3] = (uint8_t)(i * 37 + len);
        for (size_t k = 0; k < sizeof tries; k++) {
            jgram_state_copy(&probe, &st);
            jgram_state_copy(&before, &st);
            bool ok = jgram_feed(g, &probe, tries[k]);
            check(ok == allowed[tries[k]]);
            if (!ok)
                check(same_state(&probe, &before));
        }
        jgram_state_copy(&before, &st);
        if (!jgram_feed(g, &st, doc[i])) {
            check(same_state(&st, &before));
            break;
        }
        check(st.n >= 1 && st.n <= JGRAM_MAX_THREADS);
    }
    if (i == len && len > 0 && jgram_accepting(g, &st)) {
        json_error_t je;
        json_t *j = json_loadb((const char *)doc, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        check(j != NULL || jansson_range_error(&je));
        json_decref(j);
    }
    if (len == 0)
        check(!jgram_accepting(g, &st));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, 0, size);
    size_t slen = sep ? (size_t)(sep - data) : size;
    const uint8_t *doc = sep ? sep + 1 : data + size;
    size_t dlen = (size_t)(data + size - doc);
    if (dlen > DOC_MAX)
        dlen = DOC_MAX;

    jgram *g = NULL;
    char err[256] = "";
    jgram_status s = jgram_compile((const char *)data, slen, &g, err, sizeof err);
    if (s == JGRAM_OK) {
        check(g != NULL);
    } else {
        check(g == NULL);
        check(err[0] != '\0' && strlen(err) < sizeof err);
        if (s == JGRAM_ENOMEM)
            return 0;
        g = jgram_any_object();
        if (!g)
            return 0;
    }
    run(g, doc, dlen);
    jgram_free(g);
    return 0;
}
