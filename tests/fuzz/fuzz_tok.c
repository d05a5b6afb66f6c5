/* fuzz_tok.c - libFuzzer target: arbitrary text through the tokenizers of
 * the real vocabularies in $HEARTH_TEST_DATA/models/vocab (default
 * ../shared; every ggml-vocab-*.gguf there is loaded once, at start).
 *
 * The first byte picks the vocabulary (its value modulo their count) and
 * bit 0 of the second byte add_bos; the rest is the text. Besides crashes,
 * sanitizer reports, timeouts and leaks it aborts when:
 * - encoding without special parsing gives a control token, or an id
 *   outside the vocabulary (the same through tok_encode_plain with the
 *   whole text marked plain);
 * - the text is valid UTF-8, the vocabulary is lossless (SentencePiece with
 *   its 256 byte tokens, byte-level BPE with its 256 byte characters: the
 *   notion of tests/test_tok.c's test_vocab_roundtrip) and decoding the
 *   ids does not give the text back (SentencePiece's space character
 *   U+2581 excepted: it is read as a space);
 * - the streaming detokenizer gives text that is not valid UTF-8, or, for
 *   valid UTF-8 on a lossless vocabulary, other text than tok_decode (but
 *   for the SentencePiece space in front, which only tok_decode drops);
 * - tok_encode's count disagrees between a sizing call and the real one.
 * Encoding with special parsing only has to survive (its ids in range).
 *
 * Run (from a build tree; make fuzz builds it):
 *   tests/fuzz/fuzz_tok -max_total_time=300 -max_len=512 corpus/ \
 *     $SRC/tests/fuzz/corpus/tok
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tok.h"
#include "utf8.h"

static void check(int cond, const char *what, const char *vocab)
{
    if (!cond) {
        fprintf(stderr, "fuzz_tok: vocab %s: %s\n", vocab, what);
        abort();
    }
}

#define MAX_VOCABS 32

static struct {
    char name[128];
    tok_vocab *v;
    bool lossless;
} vocabs[MAX_VOCABS];
static int n_vocabs;

/* Byte-level BPE spells byte b with one character: b itself for the
 * printable bytes, U+0100 + n for the n-th of the others (GPT-2's
 * byte-to-unicode table). */
static uint32_t bpe_byte_char(unsigned b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)))
            n++;
    return 0x100 + n;
}

/* Every byte has a token of its own: nothing a valid text holds is lost. */
static bool is_lossless(const tok_vocab *v)
{
    char t[16];
    for (unsigned b = 0; b < 256; b++) {
        if (tok_kind(v) == TOK_KIND_SPM) {
            snprintf(t, sizeof t, "<0x%02X>", b);
        } else if (tok_kind(v) == TOK_KIND_BPE) {
            t[utf8_put(bpe_byte_char(b), t)] = '\0';
        } else {
            return false; /* WordPiece normalises */
        }
        if (tok_find(v, t) < 0)
            return false;
    }
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *data = getenv("HEARTH_TEST_DATA");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/vocab", data && *data ? data : "../shared");
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fuzz_tok: no vocabularies in %s (set HEARTH_TEST_DATA)\n", dir);
        exit(77);
    }
    char *names[MAX_VOCABS];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_VOCABS) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "ggml-vocab-", 11) == 0 && l > 5 &&
            strcmp(e->d_name + l - 5, ".gguf") == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], by_name); /* a stable vocab index */
    for (int i = 0; i < n; i++) {
        char path[1200], err[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        gguf_file *f = NULL;
        tok_vocab *v = NULL;
        if (gguf_open(path, &f, err, sizeof err) == 0 && tok_load(f, &v, err, sizeof err) == 0) {
            snprintf(vocabs[n_vocabs].name, sizeof vocabs[0].name, "%s", names[i]);
            vocabs[n_vocabs].v = v;
            vocabs[n_vocabs].lossless = is_lossless(v);
            fprintf(stderr, "fuzz_tok: %d %s%s\n", n_vocabs, names[i],
                    vocabs[n_vocabs].lossless ? " (lossless)" : "");
            n_vocabs++;
        } else {
            fprintf(stderr, "fuzz_tok: %s: %s\n", path, err);
            exit(1);
        }
        gguf_close(f);
        free(names[i]);
    }
    if (n_vocabs == 0) {
        fprintf(stderr, "fuzz_tok: no ggml-vocab-*.gguf in %s\n", dir);
        exit(77);
    }
    return 0;
}

static char *decode(const tok_vocab *v, const int32_t *ids, int n, bool special, size_t *len,
                    const char *name)
{
    long need = tok_decode(v, ids, (size_t)n, special, NULL, 0);
    check(need >= 0, "tok_decode refused ids it made", name);
    char *s = malloc((size_t)need + 1);
    check(s != NULL, "out of memory", name);
    check(tok_decode(v, ids, (size_t)n, special, s, (size_t)need) == need,
          "tok_decode's size changed between calls", name);
    *len = (size_t)need;
    return s;
}

/* The streaming detokenizer's whole output for ids. */
static char *stream(const tok_vocab *v, const int32_t *ids, int n, size_t *len,
                    const char *name)
{
    size_t cap = 64, used = 0;
    char *s = malloc(cap);
    check(s != NULL, "out of memory", name);
    tok_stream st;
    tok_stream_init(&st, v); /* strip_space off, as the daemon streams */
    for (int i = 0; i <= n; i++) {
        for (;;) {
            size_t room = cap - used;
            int w = i < n ? tok_stream_push(&st, ids[i], s + used, room)
                          : tok_stream_flush(&st, s + used, room);
            if (w >= 0) {
                used += (size_t)w;
                break;
            }
            check(room < 1 << 20, "tok_stream refused a token with 1 MiB of room", name);
            cap *= 2;
            s = realloc(s, cap);
            check(s != NULL, "out of memory", name);
        }
    }
    *len = used;
    return s;
}

static void in_range(const tok_vocab *v, const int32_t *ids, int n, bool no_control,
                     bool add_bos, const char *name)
{
    for (int i = 0; i < n; i++) {
        check(ids[i] >= 0 && ids[i] < tok_n_vocab(v), "an id outside the vocabulary", name);
        if (no_control)
            check(!tok_is_control(v, ids[i]) || (add_bos && i == 0 && ids[i] == tok_bos(v)),
                  "a control token from text without special parsing", name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int k = data[0] % n_vocabs;
    bool add_bos = data[1] & 1;
    const tok_vocab *v = vocabs[k].v;
    const char *name = vocabs[k].name;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;

    int32_t small[8];
    int need = tok_encode(v, text, len, add_bos, false, small, 8);
    check(need >= 0, "tok_encode failed", name);
    int32_t *ids = NULL;
    int n = tok_encode_alloc(v, text, len, add_bos, false, &ids);
    check(n == need, "tok_encode_alloc's count differs from tok_encode's", name);
    check(n <= 8 || memcmp(small, ids, sizeof small) == 0,
          "a short buffer got other ids than a long one", name);
    in_range(v, ids, n, true, add_bos, name);

    bool valid = utf8_valid(text, len);
    /* SentencePiece writes a space as U+2581 and reads U+2581 back as a
     * space, so text with U+2581 in it cannot come back (llama.cpp's
     * SentencePiece does the same) */
    bool spm_space = tok_kind(v) == TOK_KIND_SPM && memmem(text, len, "\xe2\x96\x81", 3);
    size_t dl, sl;
    char *dec = decode(v, ids, n, false, &dl, name);
    char *str = stream(v, ids, n, &sl, name);
    check(utf8_valid(str, sl), "the stream gave text that is not UTF-8", name);
    if (valid && vocabs[k].lossless && !spm_space) {
        check(dl == len && memcmp(dec, text, len) == 0,
              "decode(encode(text)) is not the text", name);
        /* tok_decode drops the space SentencePiece put in front */
        size_t sp = sl == dl + 1 && tok_kind(v) == TOK_KIND_SPM && str[0] == ' ';
        check(sl - sp == dl && memcmp(str + sp, dec, dl) == 0,
              "the stream's text differs from tok_decode's", name);
    }
    free(dec);
    free(str);
    free(ids);

    /* the whole text marked plain: no special token matched at all */
    tok_span all = {0, len};
    n = tok_encode_plain(v, text, len, add_bos, &all, 1, &ids);
    check(n >= 0, "tok_encode_plain failed", name);
    in_range(v, ids, n, true, add_bos, name);
    free(ids);

    /* special parsing: only has to hold together */
    n = tok_encode_alloc(v, text, len, add_bos, true, &ids);
    check(n >= 0, "tok_encode with special parsing failed", name);
    in_range(v, ids, n, false, add_bos, name);
    dec = decode(v, ids, n, true, &dl, name);
    free(dec);
    free(ids);
    return 0;
}
