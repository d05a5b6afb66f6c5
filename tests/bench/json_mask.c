/* json_mask.c - how long one token mask of constrained decoding takes
 * (engine/json_mask.h) on a real vocabulary, at the states a structured
 * output spends its tokens in. Prints the median microseconds per mask.
 *
 *   tests/bench/json_mask [vocab.gguf] [repeats]
 * default ../shared/models/vocab/ggml-vocab-qwen2.gguf (151,936 tokens), 50.
 * Compare with the decode step of the model (docs/constrained-decoding.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "json_mask.h"
#include "tok.h"

static const char schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"name\",\"age\"],"
    "\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
    "\"email\":{\"type\":\"string\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"score\":{\"type\":\"number\"}}}";

/* Two string alternatives alive at once (the table still serves), and an
 * enum beside a string (it does not: the whole trie is walked). */
static const char two_strings[] =
    "{\"anyOf\":[{\"type\":\"string\",\"maxLength\":300},{\"type\":\"string\",\"minLength\":1}]}";
static const char enum_or_string[] =
    "{\"anyOf\":[{\"enum\":[\"Ada Lovelace\",\"Alan Turing\"]},{\"type\":\"string\"}]}";

/* Each case: the bytes already generated (the state), what it stands for;
 * alt: which schema (0 schema, 1 two_strings, 2 enum_or_string). */
static const struct {
    const char *prefix, *what;
    int alt;
} cases[] = {
    {"", "start of an object", 0},
    {"{\"name\": \"Ada Lovel", "inside a string value", 0},
    {"{\"name\": \"Ada\", \"age\": 3", "inside a number", 0},
    {"{\"name\": \"Ada\", \"age\": 36,", "after a comma (additionalProperties false)", 0},
    {"{\"name\": \"Ada\", \"age\": 36, \"tags\": [", "start of an array item", 0},
    /* the slow path: the whole trie walked, state by state */
    {"{\"name\": \"Ad\xC3", "inside a string, mid-character (no table)", 0},
    {"{\"name\": \"Ad\\u00", "inside a \\u escape (no table)", 0},
    {"\"Ada Lovel", "inside a string of anyOf, 2 string alternatives", 1},
    {"\"Ada Lovel", "inside a string that may be an enum value", 2},
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "../shared/models/vocab/ggml-vocab-qwen2.gguf";
    int reps = argc > 2 ? atoi(argv[2]) : 50;
    if (reps < 1)
        reps = 1;
    char err[256];
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    if (gguf_open(path, &f, err, sizeof err) || tok_load(f, &v, err, sizeof err)) {
        fprintf(stderr, "json_mask: %s: %s\n", path, err);
        return 1;
    }
    gguf_close(f);
    double t0 = now_us();
    jmask_vocab *mv = NULL;
    jgram *gs[3] = {NULL, NULL, NULL};
    if (jmask_vocab_new(v, &mv) ||
        jgram_compile(schema, sizeof schema - 1, &gs[0], err, sizeof err) != JGRAM_OK ||
        jgram_compile(two_strings, sizeof two_strings - 1, &gs[1], err, sizeof err) != JGRAM_OK ||
        jgram_compile(enum_or_string, sizeof enum_or_string - 1, &gs[2], err, sizeof err) !=
            JGRAM_OK) {
        fprintf(stderr, "json_mask: precompute or schema failed: %s\n", err);
        return 1;
    }
    printf("vocabulary %s: %d tokens, precomputed in %.1f ms\n", path, (int)tok_n_vocab(v),
           (now_us() - t0) / 1e3);
    uint8_t *allowed = malloc((size_t)jmask_n_vocab(mv));
    double *t = malloc((size_t)reps * sizeof *t);
    jgram_state *st = malloc(sizeof *st);
    if (!allowed || !t || !st)
        return 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const jgram *g = gs[cases[c].alt];
        jgram_init(g, st);
        if (!jmask_advance(g, st, (const uint8_t *)cases[c].prefix, strlen(cases[c].prefix))) {
            fprintf(stderr, "json_mask: bad prefix '%s'\n", cases[c].prefix);
            return 1;
        }
        long n = 0;
        for (int r = 0; r < reps; r++) {
            double a = now_us();
            n = jmask_compute(mv, g, st, allowed);
            t[r] = now_us() - a;
        }
        qsort(t, (size_t)reps, sizeof *t, dbl_cmp);
        printf("%-45s %8.1f us median (min %.1f)  %ld tokens allowed\n", cases[c].what,
               t[reps / 2], t[0], n);
    }
    free(st);
    free(t);
    free(allowed);
    jgram_free(gs[0]);
    jgram_free(gs[1]);
    jgram_free(gs[2]);
    jmask_vocab_free(mv);
    tok_free(v);
    return 0;
}
