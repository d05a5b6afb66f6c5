/* test_tok.c - tokenizer tests.
 *
 * Test vectors: shared/models/vocab/ggml-vocab-*.gguf with .inp (cases
 * separated by "\n__ggml_vocab_test__\n") and .out (one line of ids per
 * case). They were produced the way llama.cpp's tests/test-tokenizer-0.cpp
 * checks them: common_tokenize(ctx, text, add_special = false,
 * parse_special = false), i.e. no BOS/EOS, control tokens not recognised
 * in the text, user-defined tokens recognised. We tokenize the same way:
 * tok_encode(v, text, len, add_bos = false, parse_special = false).
 *
 * Tests that need shared/ read HEARTH_TEST_DATA (default "../shared") and
 * print "SKIP" when the data is absent.
 */
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "tok.h"
#include "utf8.h"

/* ------------------------------------------------------------ helpers */

static const char *data_dir(void)
{
    const char *d = getenv("HEARTH_TEST_DATA");
    return d && *d ? d : "../shared";
}

/* Path under the data dir, or NULL (and a SKIP line) when it is absent. */
static const char *data_path(const char *rel, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", data_dir(), rel);
    if (access(buf, R_OK) != 0) {
        printf("SKIP: %s not found (set HEARTH_TEST_DATA)\n", buf);
        return NULL;
    }
    return buf;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, fp)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(fp);
    if (b) {
        b[n] = '\0';
        *len = n;
    }
    return b;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Open a GGUF file and load its tokenizer; fails the test on error. */
static tok_vocab *load_vocab(const char *path)
{
    char err[256] = "";
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f, err, sizeof err) == 0, "%s: %s", path,
                  err);
    tok_vocab *v = NULL;
    int rc = tok_load(f, &v, err, sizeof err);
    gguf_close(f); /* the vocabulary must not depend on the file */
    ck_assert_msg(rc == 0 && v, "%s: %s", path, err);
    return v;
}

/* Encode into a fresh array (*n ids); exercises the "buffer too small"
 * contract on the way. */
static int32_t *encode(const tok_vocab *v, const char *s, size_t len,
                       bool add_bos, bool special, int *n)
{
    int32_t one;
    int need = tok_encode(v, s, len, add_bos, special, &one, 1);
    ck_assert_int_ge(need, 0);
    int32_t *ids = malloc(((size_t)need + 1) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    int got = tok_encode(v, s, len, add_bos, special, ids, need);
    ck_assert_int_eq(got, need);
    if (need > 0)
        ck_assert_int_eq(ids[0], one);
    *n = need;
    return ids;
}

static char *decode(const tok_vocab *v, const int32_t *ids, int n,
                    size_t *len)
{
    long need = tok_decode(v, ids, (size_t)n, false, NULL, 0);
    ck_assert_int_ge(need, 0);
    char *s = malloc((size_t)need + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(tok_decode(v, ids, (size_t)n, false, s, (size_t)need),
                     need);
    s[need] = '\0';
    *len = (size_t)need;
    return s;
}

static void print_escaped(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_ids(const char *label, const int32_t *ids, int n)
{
    printf("    %s:", label);
    for (int i = 0; i < n; i++)
        printf(" %d", (int)ids[i]);
    printf("\n");
}

/* ------------------------------------------------------ vocab vectors */

/* Every ggml-vocab-*.gguf in shared/models/vocab; a new file there that
 * is not listed makes test_vocab_list_complete fail. */
static const char *const vocabs[] = {
    "bert-bge", "command-r", "deepseek-coder", "deepseek-llm", "falcon",
    "gpt-2", "llama-bpe", "llama-spm", "mpt", "phi-3", "qwen2", "qwen35",
    "refact", "starcoder",
};
#define N_VOCABS ((int)(sizeof vocabs / sizeof vocabs[0]))

typedef struct vcase {
    const char *text;
    size_t len;
    int32_t *ids;
    int n;
} vcase;

typedef struct vectors {
    char *inp, *out;
    vcase *c;
    int n;
} vectors;

static void vectors_free(vectors *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->c[i].ids);
    free(t->c);
    free(t->inp);
    free(t->out);
}

/* Read <gguf>.inp / <gguf>.out as llama.cpp's test-tokenizer-0 does. */
static void read_vectors(const char *gguf_path, vectors *t)
{
    char p[1024];
    size_t ilen, olen;
    memset(t, 0, sizeof *t);
    snprintf(p, sizeof p, "%s.inp", gguf_path);
    t->inp = read_all(p, &ilen);
    ck_assert_msg(t->inp != NULL, "cannot read %s", p);
    snprintf(p, sizeof p, "%s.out", gguf_path);
    t->out = read_all(p, &olen);
    ck_assert_msg(t->out != NULL, "cannot read %s", p);

    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t cap = 0;
    size_t pos = 0;
    while (pos < ilen) {
        char *next = strstr(t->inp + pos, sep);
        size_t end = next ? (size_t)(next - t->inp) : ilen;
        if (t->n == (int)cap) {
            cap = cap ? cap * 2 : 64;
            t->c = realloc(t->c, cap * sizeof *t->c);
            ck_assert_ptr_nonnull(t->c);
        }
        t->c[t->n].text = t->inp + pos;
        t->c[t->n].len = end - pos;
        t->c[t->n].ids = NULL;
        t->c[t->n].n = 0;
        t->n++;
        if (!next)
            break;
        pos = end + sizeof sep - 1;
    }

    int line = 0;
    char *s = t->out;
    while (*s && line < t->n) {
        char *eol = strchr(s, '\n');
        if (eol)
            *eol = '\0';
        vcase *c = &t->c[line];
        c->ids = malloc((strlen(s) / 2 + 1) * sizeof *c->ids);
        ck_assert_ptr_nonnull(c->ids);
        char *q = s, *e;
        long x;
        while ((x = strtol(q, &e, 10)), e != q) {
            c->ids[c->n++] = (int32_t)x;
            q = e;
        }
        line++;
        if (!eol)
            break;
        s = eol + 1;
    }
    ck_assert_msg(line == t->n, "%s: %d input cases but %d output lines",
                  gguf_path, t->n, line);
}

/* Load a test vocabulary, or report why it is skipped (returns NULL). */
static tok_vocab *vocab_or_skip(const char *name, char *path, size_t pn)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/vocab/ggml-vocab-%s.gguf", name);
    if (!data_path(rel, path, pn))
        return NULL;
    char err[256] = "";
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f, err, sizeof err) == 0, "%s: %s", path,
                  err);
    tok_vocab *v = NULL;
    int rc = tok_load(f, &v, err, sizeof err);
    gguf_close(f);
    ck_assert_msg(rc == 0, "%s: %s", path, err);
    return v;
}

START_TEST(test_vocab_vectors)
{
    const char *name = vocabs[_i];
    char path[1024];
    double t0 = now_ms();
    tok_vocab *v = vocab_or_skip(name, path, sizeof path);
    if (!v)
        return;
    double t1 = now_ms();
    vectors t;
    read_vectors(path, &t);
    int bad = 0;
    double t2 = now_ms();
    for (int i = 0; i < t.n; i++) {
        int n;
        int32_t *ids = encode(v, t.c[i].text, t.c[i].len, false, false, &n);
        bool same = n == t.c[i].n &&
                    (n == 0 || memcmp(ids, t.c[i].ids, n * sizeof *ids) == 0);
        if (!same) {
            bad++;
            printf("MISMATCH vocab %s case %d input ", name, i);
            print_escaped(t.c[i].text, t.c[i].len);
            printf("\n");
            print_ids("expected", t.c[i].ids, t.c[i].n);
            print_ids("got     ", ids, n);
        }
        free(ids);
    }
    double t3 = now_ms();
    /* a figure for the report, not an assertion */
    printf("vocab %-15s pre=%-15s %6d tokens: load %.1f ms, %d cases in "
           "%.2f ms\n", name, tok_pre_name(v), (int)tok_n_vocab(v), t1 - t0,
           t.n, t3 - t2);
    ck_assert_msg(bad == 0, "vocab %s: %d of %d cases differ", name, bad, t.n);
    vectors_free(&t);
    tok_free(v);
}
END_TEST

/* decode(encode(s)) == s: SentencePiece and byte-level BPE are lossless
 * on valid UTF-8 (through byte fallback, by design). WordPiece is not
 * (it lower-cases, strips accents, drops spacing): test_wpm_decode. */
START_TEST(test_vocab_roundtrip)
{
    const char *name = vocabs[_i];
    char path[1024];
    tok_vocab *v = vocab_or_skip(name, path, sizeof path);
    if (!v)
        return;
    if (tok_kind(v) == TOK_KIND_WPM) {
        printf("SKIP: roundtrip of vocab %s: WordPiece is lossy (checked by "
               "test_wpm_decode)\n", name);
        tok_free(v);
        return;
    }
    vectors t;
    read_vectors(path, &t);
    int bad = 0;
    for (int i = 0; i < t.n; i++) {
        int n;
        int32_t *ids = encode(v, t.c[i].text, t.c[i].len, false, false, &n);
        size_t len;
        char *s = decode(v, ids, n, &len);
        if (len != t.c[i].len || memcmp(s, t.c[i].text, len) != 0) {
            bad++;
            printf("ROUNDTRIP vocab %s case %d: ", name, i);
            print_escaped(t.c[i].text, t.c[i].len);
            printf(" -> ");
            print_escaped(s, len);
            printf("\n");
        }
        free(s);
        free(ids);
    }
    ck_assert_msg(bad == 0, "vocab %s: %d cases do not round-trip", name,
                  bad);
    vectors_free(&t);
    tok_free(v);
}
END_TEST

START_TEST(test_vocab_list_complete)
{
    char path[1024];
    if (!data_path("models/vocab", path, sizeof path))
        return;
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        size_t l = strlen(n);
        if (strncmp(n, "ggml-vocab-", 11) != 0 || l < 16 ||
            strcmp(n + l - 5, ".gguf") != 0)
            continue;
        bool listed = false;
        for (int i = 0; i < N_VOCABS; i++)
            listed |= strlen(vocabs[i]) == l - 16 &&
                      strncmp(vocabs[i], n + 11, l - 16) == 0;
        ck_assert_msg(listed, "%s has no test: add it to vocabs[]", n);
        seen++;
    }
    closedir(d);
    ck_assert_int_eq(seen, N_VOCABS);
}
END_TEST

/* ------------------------------------------------------ reference ids */

/* prompt_ids of every case in shared/reference/<model>.json (written by
 * llama.cpp with BOS as the model asks) from the model's own tokenizer. */
static void check_reference(const char *model)
{
    char rel[256], gpath[1024], jpath[1024];
    snprintf(rel, sizeof rel, "models/%s.gguf", model);
    if (!data_path(rel, gpath, sizeof gpath))
        return;
    snprintf(rel, sizeof rel, "reference/%s.json", model);
    if (!data_path(rel, jpath, sizeof jpath))
        return;
    tok_vocab *v = load_vocab(gpath);
    json_error_t je;
    json_t *root = json_load_file(jpath, 0, &je);
    ck_assert_msg(root != NULL, "%s: %s", jpath, je.text);
    json_t *cases = json_object_get(root, "cases");
    ck_assert(json_is_array(cases));
    ck_assert_int_gt(json_array_size(cases), 0);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        json_t *want = json_object_get(c, "prompt_ids");
        ck_assert(prompt && json_is_array(want));
        int n;
        int32_t *ids = encode(v, prompt, strlen(prompt),
                              tok_add_bos_default(v), false, &n);
        bool same = (size_t)n == json_array_size(want);
        for (int k = 0; same && k < n; k++)
            same = json_integer_value(json_array_get(want, (size_t)k)) ==
                   ids[k];
        if (!same) {
            printf("MISMATCH %s case %zu: ", model, i);
            print_escaped(prompt, strlen(prompt));
            printf("\n");
            print_ids("got", ids, n);
        }
        ck_assert_msg(same, "%s: prompt_ids of case %zu differ", model, i);
        free(ids);
    }
    json_decref(root);
    tok_free(v);
}

START_TEST(test_stories260k_once_upon_a_time)
{
    /* the case the brief names, spelled out */
    char path[1024];
    if (!data_path("models/stories260K.gguf", path, sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    ck_assert_int_eq(tok_kind(v), TOK_KIND_SPM);
    ck_assert(tok_add_bos_default(v));
    int n;
    int32_t *ids = encode(v, "Once upon a time", 16, true, false, &n);
    const int32_t want[] = {1, 403, 407, 261, 378};
    ck_assert_int_eq(n, 5);
    ck_assert_mem_eq(ids, want, sizeof want);
    free(ids);
    tok_free(v);
    check_reference("stories260K");
}
END_TEST

START_TEST(test_reference_prompts_synth)
{
    check_reference("synth-llama-56m-Q4_0");
    check_reference("synth-qwen2-45m-Q4_K_M");
}
END_TEST

/* ------------------------------------------------------ special tokens */

START_TEST(test_parse_special_qwen2)
{
    char path[1024];
    if (!data_path("models/vocab/ggml-vocab-qwen2.gguf", path, sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    const char *s = "<|im_start|>user\nHi<|im_end|>";
    int32_t start = tok_find(v, "<|im_start|>"), end = tok_find(v, "<|im_end|>");
    ck_assert_int_eq(start, 151644);
    ck_assert_int_eq(end, 151645);
    ck_assert(tok_is_control(v, start));
    ck_assert(tok_is_eog(v, end));
    ck_assert(!tok_is_eog(v, start));

    int n;
    int32_t *ids = encode(v, "<|im_start|>", 12, false, true, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], start);
    free(ids);

    ids = encode(v, "<|im_start|>", 12, false, false, &n);
    ck_assert_int_gt(n, 1); /* spelled out as plain text */
    for (int i = 0; i < n; i++)
        ck_assert(!tok_is_control(v, ids[i]));
    size_t len;
    char *back = decode(v, ids, n, &len);
    ck_assert_str_eq(back, "<|im_start|>");
    free(back);
    free(ids);

    ids = encode(v, s, strlen(s), false, true, &n);
    ck_assert_int_ge(n, 4);
    ck_assert_int_eq(ids[0], start);
    ck_assert_int_eq(ids[n - 1], end);
    /* control tokens render only when asked */
    char buf[64];
    ck_assert_int_eq(tok_piece(v, end, false, buf, sizeof buf), 0);
    ck_assert_int_eq(tok_piece(v, end, true, buf, sizeof buf), 10);
    ck_assert_mem_eq(buf, "<|im_end|>", 10);
    free(ids);
    tok_free(v);
}
END_TEST

/* Text is text: without special parsing no control token comes out,
 * whatever the text. For every vocabulary, the text of every control,
 * unknown, user-defined and end-of-generation token is encoded alone,
 * inside words, between spaces, repeated and all of them in one text; no
 * id may be a control or end-of-generation token, nor the token itself
 * unless it is a user-defined one (matched whole in any text, as
 * llama.cpp and transformers do). The text comes back from the ids
 * (except WordPiece, which normalises). */
static void check_no_control(const tok_vocab *v, const char *vocab, const char *s, size_t len,
                             int32_t self, int *bad)
{
    int n;
    int32_t *ids = encode(v, s, len, false, false, &n);
    for (int i = 0; i < n; i++) {
        bool wrong = tok_is_control(v, ids[i]) || tok_is_eog(v, ids[i]) ||
                     ids[i] == tok_bos(v) || ids[i] == tok_eos(v) ||
                     (ids[i] == self && !tok_is_user_defined(v, self));
        if (wrong && (*bad)++ < 10) {
            size_t tl;
            const char *t = tok_text(v, ids[i], &tl);
            printf("CONTROL vocab %s: \"%.*s\" gave id %d \"%.*s\"\n", vocab,
                   (int)(len > 60 ? 60 : len), s, (int)ids[i], (int)tl, t);
        }
    }
    if (tok_kind(v) != TOK_KIND_WPM) {
        size_t bl;
        char *back = decode(v, ids, n, &bl);
        if ((bl != len || memcmp(back, s, len) != 0) && (*bad)++ < 10)
            printf("ROUNDTRIP vocab %s: \"%.*s\" came back as \"%.*s\"\n", vocab,
                   (int)(len > 60 ? 60 : len), s, (int)(bl > 60 ? 60 : bl), back);
        free(back);
    }
    free(ids);
}

START_TEST(test_no_control_without_special)
{
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "models/vocab/ggml-vocab-%s.gguf", vocabs[_i]);
    if (!data_path(rel, path, sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    size_t all_cap = 4096, all_len = 0;
    char *all = malloc(all_cap);
    ck_assert_ptr_nonnull(all);
    int checked = 0, bad = 0;
    for (int32_t id = 0; id < tok_n_vocab(v); id++) {
        if (!tok_is_control(v, id) && !tok_is_user_defined(v, id) && !tok_is_markup(v, id) &&
            !tok_is_eog(v, id))
            continue;
        size_t tl;
        const char *t = tok_text(v, id, &tl);
        if (tl == 0 || tl > 200)
            continue;
        char buf[1024];
        const char *forms[] = {"%.*s", "a%.*sb", " %.*s ", "word%.*s word", "%.*s%.*s%.*s",
                               "x %.*s\n%.*s  %.*sy"};
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
            int n = snprintf(buf, sizeof buf, forms[f], (int)tl, t, (int)tl, t, (int)tl, t);
            ck_assert(n > 0 && (size_t)n < sizeof buf);
            check_no_control(v, vocabs[_i], buf, (size_t)n, id, &bad);
        }
        if (all_len + tl + 1 > all_cap) {
            all_cap = 2 * (all_len + tl + 1);
            all = realloc(all, all_cap);
            ck_assert_ptr_nonnull(all);
        }
        memcpy(all + all_len, t, tl);
        all_len += tl;
        all[all_len++] = ' ';
        checked++;
    }
    check_no_control(v, vocabs[_i], all, all_len, -1, &bad);
    printf("vocab %s: the texts of %d special tokens, as text: %d wrong\n", vocabs[_i], checked,
           bad);
    fflush(stdout);
    ck_assert_msg(bad == 0, "vocab %s: %d texts gave control tokens or did not come back",
                  vocabs[_i], bad);
    ck_assert_int_gt(checked, 0);
    free(all);
    tok_free(v);
}
END_TEST

/* Phi-3 writes </s> (id 2, SentencePiece's end of sequence) as
 * user-defined: it is a control token all the same, so "</s>" in text is
 * spelled out, and only special parsing gives id 2. BERT's [UNK] is
 * written as control: it is the unknown token, not a control one. */
START_TEST(test_structure_tokens_are_control)
{
    char path[1024];
    if (!data_path("models/vocab/ggml-vocab-phi-3.gguf", path, sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    int32_t eos2 = tok_find(v, "</s>");
    ck_assert_int_eq(eos2, 2);
    ck_assert(tok_is_control(v, eos2));
    ck_assert(tok_is_markup(v, eos2));
    int n;
    int32_t *ids = encode(v, "Hello</s>", 9, false, false, &n);
    ck_assert_int_gt(n, 2);
    for (int i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], eos2);
    free(ids);
    ids = encode(v, "Hello</s>", 9, false, true, &n);
    ck_assert_int_eq(ids[n - 1], eos2);
    free(ids);
    /* the unknown token is not control; <unk> in text is text */
    ck_assert(!tok_is_control(v, 0));
    ck_assert(tok_is_markup(v, 0));
    tok_free(v);

    if (!data_path("models/vocab/ggml-vocab-bert-bge.gguf", path, sizeof path))
        return;
    v = load_vocab(path);
    ck_assert(!tok_is_control(v, 100)); /* [UNK] */
    ck_assert(tok_is_control(v, 101) && tok_is_control(v, 102));
    /* an unknown word is the unknown token */
    ids = encode(v, "\xF0\x9F\xA6\x99", 4, false, false, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 100);
    free(ids);
    tok_free(v);
}
END_TEST

/* What is markup: DeepSeek-Coder's <|User|> (user-defined) is, MPT's runs
 * of spaces and DeepSeek's byte characters (user-defined too) are not;
 * tok_markup_find finds the leftmost markup text, the longest there. */
START_TEST(test_markup_find)
{
    char path[1024];
    if (!data_path("models/vocab/ggml-vocab-deepseek-coder.gguf", path, sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    int32_t user = tok_find(v, "<|User|>");
    ck_assert(user >= 0 && tok_is_user_defined(v, user) && !tok_is_control(v, user));
    ck_assert(tok_is_markup(v, user));
    int32_t ch = tok_find(v, "\xC3\xB5"); /* õ */
    ck_assert(ch >= 0 && tok_is_user_defined(v, ch) && !tok_is_markup(v, ch));
    const char *s = "say \xC3\xB5 <|User|> then <\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81"
                    "sentence\xEF\xBD\x9C>";
    size_t len = strlen(s), tl;
    int32_t id = -1;
    size_t at = tok_markup_find(v, s, len, TOK_MARKUP_ALL, &id, &tl);
    ck_assert_uint_eq(at, 7);
    ck_assert_int_eq(id, user);
    ck_assert_uint_eq(tl, 8);
    /* control tokens only: the user-defined one is passed over */
    at = tok_markup_find(v, s, len, TOK_MARKUP_CONTROL, &id, &tl);
    ck_assert_uint_eq(at, 21);
    ck_assert(tok_is_control(v, id));
    ck_assert_uint_eq(tl, len - 21);
    ck_assert_uint_eq(tok_markup_find(v, s, 7, TOK_MARKUP_ALL, &id, &tl), 7);
    ck_assert_uint_eq(tok_markup_find(v, "<|User|", 7, TOK_MARKUP_ALL, &id, &tl), 7);
    tok_free(v);

    if (!data_path("models/vocab/ggml-vocab-mpt.gguf", path, sizeof path))
        return;
    v = load_vocab(path);
    int32_t sp = tok_find(v, "    ");
    ck_assert(sp >= 0 && tok_is_user_defined(v, sp) && !tok_is_markup(v, sp));
    ck_assert_uint_eq(tok_markup_find(v, "a    b", 6, TOK_MARKUP_ALL, &id, &tl), 6);
    ck_assert_uint_eq(tok_markup_find(v, "a <|endoftext|>", 15, TOK_MARKUP_ALL, &id, &tl), 2);
    tok_free(v);
}
END_TEST

/* tok_encode_plain: special parsing except in the plain spans, whose text
 * is tokenized with the text around it, exactly as tok_encode does
 * without special parsing when nothing else is special. */
START_TEST(test_encode_plain_spans)
{
    char path[1024];
    if (!data_path("models/vocab/ggml-vocab-qwen2.gguf", path, sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    int32_t start = tok_find(v, "<|im_start|>"), end = tok_find(v, "<|im_end|>");
    const char *s = "<|im_start|>user\nsay <|im_end|> now<|im_end|>";
    size_t len = strlen(s);
    const char *inner = strstr(s, "<|im_end|> now");
    tok_span sp = {(size_t)(inner - s), 10};
    int32_t *ids;
    int n = tok_encode_plain(v, s, len, false, &sp, 1, &ids);
    ck_assert_int_gt(n, 4);
    ck_assert_int_eq(ids[0], start);
    ck_assert_int_eq(ids[n - 1], end);
    int n_end = 0;
    for (int i = 0; i < n; i++)
        n_end += ids[i] == end;
    ck_assert_int_eq(n_end, 1);
    /* the middle is the plain tokenization of "user\nsay <|im_end|> now" */
    int m;
    const char *mid = "user\nsay <|im_end|> now";
    int32_t *want = encode(v, mid, strlen(mid), false, false, &m);
    ck_assert_int_eq(n, m + 2);
    ck_assert_mem_eq(ids + 1, want, (size_t)m * sizeof *ids);
    free(want);
    free(ids);
    /* no spans: as tok_encode_alloc with special parsing */
    int32_t *a, *b;
    int na = tok_encode_plain(v, s, len, false, NULL, 0, &a);
    int nb = tok_encode_alloc(v, s, len, false, true, &b);
    ck_assert_int_eq(na, nb);
    ck_assert_mem_eq(a, b, (size_t)na * sizeof *a);
    free(a);
    free(b);
    /* a cut (a span of length 0) inside a special text: no match across */
    tok_span cut = {3, 0};
    n = tok_encode_plain(v, "<|im_end|>", 10, false, &cut, 1, &ids);
    ck_assert_int_gt(n, 1);
    for (int i = 0; i < n; i++)
        ck_assert(!tok_is_control(v, ids[i]));
    free(ids);
    /* spans out of order or past the end are refused */
    tok_span bad2[2] = {{5, 3}, {6, 1}};
    ck_assert_int_eq(tok_encode_plain(v, s, len, false, bad2, 2, &ids), -1);
    ck_assert_ptr_null(ids);
    tok_span past = {len - 1, 2};
    ck_assert_int_eq(tok_encode_plain(v, s, len, false, &past, 1, &ids), -1);
    ck_assert_int_eq(tok_encode_plain(v, s, len, false, NULL, 1, &ids), -1);
    tok_free(v);
}
END_TEST

START_TEST(test_spm_special_and_bos)
{
    char path[1024];
    if (!data_path("models/vocab/ggml-vocab-llama-spm.gguf", path,
                   sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    ck_assert_int_eq(tok_bos(v), 1);
    ck_assert_int_eq(tok_eos(v), 2);
    ck_assert(tok_is_eog(v, 2));
    int n;
    /* "<s>" after parsing is the BOS id, and the text after a special
     * token gets its SentencePiece space prefix again */
    int32_t *a = encode(v, "<s>Hello", 8, false, true, &n);
    int n2;
    int32_t *b = encode(v, "Hello", 5, true, false, &n2);
    ck_assert_int_eq(n, n2);
    ck_assert_mem_eq(a, b, (size_t)n * sizeof *a);
    free(a);
    free(b);
    a = encode(v, "<s>", 3, false, false, &n);
    ck_assert_int_gt(n, 1);
    ck_assert_int_ne(a[0], 1);
    free(a);
    /* empty text: nothing, or just BOS */
    ck_assert_int_eq(tok_encode(v, "", 0, false, false, NULL, 0), 0);
    int32_t one = -1;
    ck_assert_int_eq(tok_encode(v, NULL, 0, true, false, &one, 1), 1);
    ck_assert_int_eq(one, 1);
    /* bad arguments */
    ck_assert_int_eq(tok_encode(v, NULL, 3, false, false, &one, 1), -1);
    ck_assert_int_eq(tok_encode(v, "a", 1, false, false, &one, -1), -1);
    ck_assert_int_eq(tok_piece(v, -1, false, NULL, 0), -1);
    ck_assert_int_eq(tok_piece(v, tok_n_vocab(v), false, NULL, 0), -1);
    int32_t bad = tok_n_vocab(v);
    ck_assert_int_eq(tok_decode(v, &bad, 1, false, NULL, 0), -1);
    tok_free(v);
}
END_TEST

/* Phi-3 (general.name "Phi3"): whitespace after its special tokens is
 * dropped when they are parsed (llama.cpp's per-model RSTRIP rule), and
 * the text after a special token gets the SentencePiece space prefix. */
START_TEST(test_phi3_rstrip_special)
{
    char path[1024];
    if (!data_path("models/vocab/ggml-vocab-phi-3.gguf", path, sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    int32_t user = tok_find(v, "<|user|>"), end = tok_find(v, "<|end|>");
    int32_t asst = tok_find(v, "<|assistant|>");
    ck_assert(user >= 0 && end >= 0 && asst >= 0);
    ck_assert(tok_is_eog(v, end));
    const char *s = "<|user|>\nHello<|end|>\n<|assistant|>";
    int n, nh;
    int32_t *ids = encode(v, s, strlen(s), false, true, &n);
    int32_t *hello = encode(v, "Hello", 5, false, false, &nh);
    ck_assert_int_eq(n, nh + 3);
    ck_assert_int_eq(ids[0], user);
    ck_assert_mem_eq(ids + 1, hello, (size_t)nh * sizeof *ids);
    ck_assert_int_eq(ids[nh + 1], end);
    ck_assert_int_eq(ids[nh + 2], asst);
    free(ids);
    free(hello);
    size_t len;
    const char *t = tok_text(v, end, &len);
    ck_assert_uint_eq(len, 7);
    ck_assert_mem_eq(t, "<|end|>", 7);
    ck_assert_ptr_null(tok_text(v, -1, &len));
    tok_free(v);
}
END_TEST

/* ------------------------------------------------------ streaming */

static void stream_all(const tok_vocab *v, const int32_t *ids, int n,
                       char *out, size_t *len, int *chunks_with_text)
{
    tok_stream st;
    tok_stream_init(&st, v);
    *len = 0;
    *chunks_with_text = 0;
    for (int i = 0; i < n; i++) {
        char buf[256];
        int w = tok_stream_push(&st, ids[i], buf, sizeof buf);
        ck_assert_int_ge(w, 0);
        if (w > 0)
            (*chunks_with_text)++;
        memcpy(out + *len, buf, (size_t)w);
        *len += (size_t)w;
    }
    char buf[8];
    int w = tok_stream_flush(&st, buf, sizeof buf);
    ck_assert_int_ge(w, 0);
    memcpy(out + *len, buf, (size_t)w);
    *len += (size_t)w;
}

START_TEST(test_stream_spm_byte_tokens)
{
    char path[1024];
    if (!data_path("models/stories260K.gguf", path, sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    /* 512 tokens: "🦙" (F0 9F A6 99) is not one, it is spelled in bytes */
    int n;
    int32_t *ids = encode(v, "a\xF0\x9F\xA6\x99", 5, false, false, &n);
    int32_t b0 = tok_find(v, "<0xF0>"), b1 = tok_find(v, "<0x9F>");
    int32_t b2 = tok_find(v, "<0xA6>"), b3 = tok_find(v, "<0x99>");
    ck_assert_int_ge(n, 4);
    ck_assert_int_eq(ids[n - 4], b0);
    ck_assert_int_eq(ids[n - 3], b1);
    ck_assert_int_eq(ids[n - 2], b2);
    ck_assert_int_eq(ids[n - 1], b3);

    tok_stream st;
    tok_stream_init(&st, v);
    char buf[64];
    int w = 0;
    for (int i = 0; i < n - 4; i++)
        w += tok_stream_push(&st, ids[i], buf + w, sizeof buf - (size_t)w);
    ck_assert_int_eq(w, 2); /* " a": a continuation keeps its space */
    ck_assert_mem_eq(buf, " a", 2);
    /* the first three bytes of the emoji stay pending */
    ck_assert_int_eq(tok_stream_push(&st, b0, buf, sizeof buf), 0);
    ck_assert_int_eq(tok_stream_push(&st, b1, buf, sizeof buf), 0);
    ck_assert_int_eq(tok_stream_push(&st, b2, buf, sizeof buf), 0);
    ck_assert_int_eq(tok_stream_push(&st, b3, buf, 3), -1); /* no room */
    ck_assert_int_eq(tok_stream_push(&st, b3, buf, sizeof buf), 4);
    ck_assert_mem_eq(buf, "\xF0\x9F\xA6\x99", 4);
    ck_assert_int_eq(tok_stream_flush(&st, buf, sizeof buf), 0);

    /* a sequence cut short by another token: U+FFFD, then the token */
    int32_t e2 = tok_find(v, "<0xE2>"), x = tok_find(v, "<0x78>");
    ck_assert_int_ge(x, 0);
    tok_stream_init(&st, v);
    ck_assert_int_eq(tok_stream_push(&st, e2, buf, sizeof buf), 0);
    ck_assert_int_eq(tok_stream_push(&st, x, buf, sizeof buf), 4);
    ck_assert_mem_eq(buf, "\xEF\xBF\xBDx", 4);
    /* a lone continuation byte is replaced at once */
    ck_assert_int_eq(tok_stream_push(&st, b1, buf, sizeof buf), 3);
    ck_assert_mem_eq(buf, "\xEF\xBF\xBD", 3);
    /* and an unfinished sequence at the end flushes as U+FFFD */
    ck_assert_int_eq(tok_stream_push(&st, b0, buf, sizeof buf), 0);
    ck_assert_int_eq(tok_stream_push(&st, b1, buf, sizeof buf), 0);
    ck_assert_int_eq(tok_stream_flush(&st, buf, 2), -1);
    ck_assert_int_eq(tok_stream_flush(&st, buf, sizeof buf), 3);
    ck_assert_mem_eq(buf, "\xEF\xBF\xBD", 3);
    ck_assert_int_eq(tok_stream_flush(&st, buf, sizeof buf), 0);

    /* strip_space: decoding from the start drops the prefix space, like
     * tok_decode; BOS (control) renders as nothing */
    free(ids);
    ids = encode(v, "Once upon a time", 16, true, false, &n);
    tok_stream_init(&st, v);
    st.strip_space = true;
    w = 0;
    for (int i = 0; i < n; i++)
        w += tok_stream_push(&st, ids[i], buf + w, sizeof buf - (size_t)w);
    ck_assert_int_eq(w, 16);
    ck_assert_mem_eq(buf, "Once upon a time", 16);
    free(ids);
    tok_free(v);
}
END_TEST

/* Byte-level BPE: a streamed decode equals the whole decode, and every
 * chunk is whole UTF-8 (no chunk ends inside a character). */
START_TEST(test_stream_bpe_matches_decode)
{
    char path[1024];
    if (!data_path("models/vocab/ggml-vocab-qwen2.gguf", path, sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    const char *s = "\xE1\x9E\x80\xE1\x9E\xB6\xE1\x9E\x93 \xF0\x9F\xA6\x99"
                    " \xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F"
                    " caf\xC3\xA9";
    int n;
    int32_t *ids = encode(v, s, strlen(s), false, false, &n);
    /* some token must end inside a character, or the test tests nothing */
    int partial = 0;
    for (int i = 0; i < n; i++) {
        char p[64];
        int pl = tok_piece(v, ids[i], false, p, sizeof p);
        ck_assert_int_ge(pl, 0);
        partial += !utf8_valid(p, (size_t)pl);
    }
    ck_assert_int_gt(partial, 0);
    char out[256];
    size_t len;
    int chunks;
    stream_all(v, ids, n, out, &len, &chunks);
    ck_assert_uint_eq(len, strlen(s));
    ck_assert_mem_eq(out, s, len);
    ck_assert_int_lt(chunks, n); /* some pushes had to wait */
    free(ids);
    tok_free(v);
}
END_TEST

/* ------------------------------------------------------ bad metadata */

/* A tiny SentencePiece vocabulary; the `drop`/`override` knobs break it in
 * one place at a time. */
typedef struct tiny_opts {
    const char *model;      /* tokenizer.ggml.model */
    bool no_tokens;
    int n_scores;           /* -1: as many as tokens */
    int32_t bad_type;       /* if nonzero: token_type[3] */
    int64_t bos;            /* -1: not written */
    const char *pre;        /* NULL: not written */
    bool merges;            /* write tokenizer.ggml.merges */
    int32_t type_ba;        /* if nonzero: token_type of "ba" (id 8) */
} tiny_opts;

static const char *const tiny_tokens[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81",
                                          "a", "b", "\xE2\x96\x81" "a", "ab",
                                          "ba"};
#define N_TINY 9

static int load_tiny(const tiny_opts *o, tok_vocab **v, char *err,
                     size_t errlen)
{
    gguf_writer *w = gguf_writer_new();
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "tokenizer.ggml.model",
                                         o->model ? o->model : "llama"), 0);
    if (o->pre)
        ck_assert_int_eq(gguf_writer_set_str(w, "tokenizer.ggml.pre", o->pre),
                         0);
    if (!o->no_tokens)
        ck_assert_int_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                                 tiny_tokens, N_TINY), 0);
    float scores[N_TINY] = {0, 0, 0, -1, -2, -3, -1.5f, -2.5f, -0.5f};
    int ns = o->n_scores < 0 ? N_TINY : o->n_scores;
    ck_assert_int_eq(gguf_writer_set_arr(w, "tokenizer.ggml.scores",
                                         GGUF_VT_FLOAT32, scores,
                                         (uint64_t)ns), 0);
    int32_t types[N_TINY] = {2, 3, 3, 1, 1, 1, 1, 1, 1};
    if (o->bad_type)
        types[3] = o->bad_type;
    if (o->type_ba)
        types[8] = o->type_ba;
    ck_assert_int_eq(gguf_writer_set_arr(w, "tokenizer.ggml.token_type",
                                         GGUF_VT_INT32, types, N_TINY), 0);
    if (o->bos >= 0)
        ck_assert_int_eq(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id",
                                             (uint32_t)o->bos), 0);
    if (o->merges) {
        const char *const m[] = {"a b"};
        ck_assert_int_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                                 m, 1), 0);
    }
    char path[] = "/tmp/hearth-test-tok-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char werr[256];
    ck_assert_msg(gguf_writer_write(w, path, werr, sizeof werr) == 0, "%s",
                  werr);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f, werr, sizeof werr) == 0, "%s", werr);
    unlink(path);
    err[0] = '\0';
    int rc = tok_load(f, v, err, errlen);
    gguf_close(f);
    if (rc != 0) {
        ck_assert_ptr_null(*v);
        ck_assert_msg(err[0] != '\0', "refused without a message");
        printf("refused as expected: %s\n", err);
    }
    return rc;
}

static const tiny_opts tiny_ok = {NULL, false, -1, 0, -1, NULL, false, 0};

START_TEST(test_tiny_spm_loads_and_merges_by_score)
{
    tok_vocab *v = NULL;
    char err[256];
    ck_assert_msg(load_tiny(&tiny_ok, &v, err, sizeof err) == 0, "%s", err);
    /* "▁ab": the pairs "▁a" (score -1.5) and "ab" (-2.5) compete; the
     * higher score wins, giving ["▁a", "b"] rather than ["▁", "ab"] */
    int n;
    int32_t *ids = encode(v, "ab", 2, true, false, &n);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[1], 6);
    ck_assert_int_eq(ids[2], 5);
    free(ids);
    /* "▁ba": "▁b" is no token, "ba" is */
    ids = encode(v, "ba", 2, false, false, &n);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[1], 8);
    free(ids);
    /* "c" is no token and there are no byte tokens: unknown */
    ids = encode(v, "c", 1, false, false, &n);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[1], 0);
    free(ids);
    tok_free(v);
}
END_TEST

/* A control token is never a piece of text, even when the merges lead to
 * it: with "ba" declared control, "ba" without special parsing is spelled
 * "▁", "b", "a"; with special parsing it is the control token. */
START_TEST(test_tiny_spm_never_merges_into_control)
{
    tok_vocab *v = NULL;
    char err[256];
    tiny_opts o = tiny_ok;
    o.type_ba = 3;
    ck_assert_msg(load_tiny(&o, &v, err, sizeof err) == 0, "%s", err);
    ck_assert(tok_is_control(v, 8));
    int n;
    int32_t *ids = encode(v, "ba", 2, false, false, &n);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[1], 5);
    ck_assert_int_eq(ids[2], 4);
    free(ids);
    ids = encode(v, "ba", 2, false, true, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 8);
    free(ids);
    tok_free(v);
}
END_TEST

START_TEST(test_bad_tokens_missing)
{
    tiny_opts o = tiny_ok;
    o.no_tokens = true;
    tok_vocab *v = NULL;
    char err[256];
    ck_assert_int_eq(load_tiny(&o, &v, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "tokenizer.ggml.tokens"));
}
END_TEST

START_TEST(test_bad_scores_length)
{
    tiny_opts o = tiny_ok;
    o.n_scores = N_TINY - 2;
    tok_vocab *v = NULL;
    char err[256];
    ck_assert_int_eq(load_tiny(&o, &v, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "tokenizer.ggml.scores"));
}
END_TEST

START_TEST(test_bad_token_type)
{
    tiny_opts o = tiny_ok;
    o.bad_type = 7;
    tok_vocab *v = NULL;
    char err[256];
    ck_assert_int_eq(load_tiny(&o, &v, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "token_type[3]"));
}
END_TEST

START_TEST(test_bad_bos_id)
{
    tiny_opts o = tiny_ok;
    o.bos = N_TINY;
    tok_vocab *v = NULL;
    char err[256];
    ck_assert_int_eq(load_tiny(&o, &v, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "bos_token_id"));
    /* UINT32_MAX is how converters write "none" */
    o.bos = UINT32_MAX;
    ck_assert_int_eq(load_tiny(&o, &v, err, sizeof err), 0);
    ck_assert_int_eq(tok_bos(v), -1);
    tok_free(v);
}
END_TEST

START_TEST(test_bad_model_name)
{
    tiny_opts o = tiny_ok;
    o.model = "t5";
    tok_vocab *v = NULL;
    char err[256];
    ck_assert_int_eq(load_tiny(&o, &v, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "Unigram"));
    o.model = "rwkv";
    ck_assert_int_eq(load_tiny(&o, &v, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "rwkv"));
}
END_TEST

START_TEST(test_bad_bpe_merges_missing)
{
    tiny_opts o = tiny_ok;
    o.model = "gpt2";
    tok_vocab *v = NULL;
    char err[256];
    ck_assert_int_eq(load_tiny(&o, &v, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "merges"));
}
END_TEST

START_TEST(test_bad_bpe_pre_unknown)
{
    tiny_opts o = tiny_ok;
    o.model = "gpt2";
    o.merges = true;
    o.pre = "no-such-pre";
    tok_vocab *v = NULL;
    char err[256];
    ck_assert_int_eq(load_tiny(&o, &v, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no-such-pre"));
}
END_TEST

/* Every pre-tokenizer name we claim to know compiles its regexes and
 * splits a text with letters, digits, marks, CJK and whitespace without
 * losing a byte. */
START_TEST(test_bpe_all_pre_tokenizers_compile)
{
    static const char *const pres[] = {
        "default", "llama-bpe", "llama3", "dbrx", "smaug-bpe", "glm4",
        "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon",
        "starcoder", "refact", "command-r", "gpt-2", "mpt", "qwen2",
        "qwen35", "stablelm2", "poro-chat", "viking", "tekken", "chameleon",
        "gpt-4o", "llama4", "seed-coder", "bailingmoe", "exaone-moe",
        "tiny_aya", "smollm", "olmo", "jais", "bloom", "megrez"};
    for (size_t i = 0; i < sizeof pres / sizeof pres[0]; i++) {
        tiny_opts o = tiny_ok;
        o.model = "gpt2";
        o.merges = true;
        o.pre = pres[i];
        tok_vocab *v = NULL;
        char err[256];
        ck_assert_msg(load_tiny(&o, &v, err, sizeof err) == 0, "%s: %s",
                      pres[i], err);
        ck_assert_str_eq(tok_pre_name(v), pres[i]);
        /* tokens here are mostly not in the tiny vocabulary: what matters
         * is that splitting terminates and encode succeeds */
        const char *s = "Hello  wor1d 12345 \xE4\xBD\xA0\xE5\xA5\xBD "
                        "e\xCC\x81t\xC3\xA9\n\n\t it's  ";
        ck_assert_int_ge(tok_encode(v, s, strlen(s), true, true, NULL, 0), 0);
        tok_free(v);
    }
}
END_TEST

/* Invalid UTF-8 does not break either tokenizer. */
START_TEST(test_invalid_utf8_input)
{
    const char *names[] = {"models/vocab/ggml-vocab-qwen2.gguf",
                           "models/vocab/ggml-vocab-llama-spm.gguf"};
    for (int k = 0; k < 2; k++) {
        char path[1024];
        if (!data_path(names[k], path, sizeof path))
            continue;
        tok_vocab *v = load_vocab(path);
        const char s[] = "ok\xFF\xC3(\xE2\x82 \xF0\x9F\xA6 end\x80";
        int n;
        int32_t *ids = encode(v, s, sizeof s - 1, false, false, &n);
        ck_assert_int_gt(n, 0);
        size_t len;
        char *back = decode(v, ids, n, &len);
        if (tok_kind(v) == TOK_KIND_SPM) { /* byte fallback: lossless */
            ck_assert_uint_eq(len, sizeof s - 1);
            ck_assert_mem_eq(back, s, len);
        } else { /* bad bytes became U+FFFD */
            ck_assert_ptr_nonnull(strstr(back, "ok\xEF\xBF\xBD"));
            ck_assert_ptr_nonnull(strstr(back, " end\xEF\xBF\xBD"));
        }
        free(back);
        free(ids);
        tok_free(v);
    }
}
END_TEST

/* A byte a byte-level BPE vocabulary has no character for: Falcon lacks
 * 0x03 and others, StarCoder and Refact 0xF1 (lead byte of U+40000 and
 * up), and their unknown token is <|endoftext|>, a control token. The
 * byte is dropped (as llama.cpp does), never turned into the end of text
 * (found by tests/fuzz/fuzz_tok.c). */
START_TEST(test_bpe_missing_byte_no_control)
{
    static const struct {
        const char *vocab, *text;
    } cases[] = {
        {"falcon", "a\x03" "b"},
        {"starcoder", "a\xf1\x80\x80\x80" "b"},
        {"refact", "x \xf1\x80\x80\x80 y"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char rel[256], path[1024];
        snprintf(rel, sizeof rel, "models/vocab/ggml-vocab-%s.gguf", cases[k].vocab);
        if (!data_path(rel, path, sizeof path))
            continue;
        tok_vocab *v = load_vocab(path);
        int n;
        int32_t *ids = encode(v, cases[k].text, strlen(cases[k].text), false, false, &n);
        ck_assert_int_gt(n, 0);
        for (int i = 0; i < n; i++)
            ck_assert_msg(!tok_is_control(v, ids[i]), "vocab %s: id %d (control) at %d",
                          cases[k].vocab, (int)ids[i], i);
        free(ids);
        tok_free(v);
    }
}
END_TEST

/* SentencePiece writes a space as U+2581 ("\xe2\x96\x81") and reads it back
 * as a space, so text holding U+2581 is tokenized as if it held a space
 * there and decodes with a space (as llama.cpp does): the one valid UTF-8
 * text that does not round-trip on a lossless SentencePiece vocabulary
 * (tests/fuzz/fuzz_tok.c excepts it; its first finding). */
START_TEST(test_spm_space_character)
{
    const char *names[] = {"models/vocab/ggml-vocab-llama-spm.gguf",
                           "models/vocab/ggml-vocab-phi-3.gguf"};
    for (int k = 0; k < 2; k++) {
        char path[1024];
        if (!data_path(names[k], path, sizeof path))
            continue;
        tok_vocab *v = load_vocab(path);
        int na, nb;
        int32_t *a = encode(v, "a\xe2\x96\x81" "b", 5, false, false, &na);
        int32_t *b = encode(v, "a b", 3, false, false, &nb);
        ck_assert_int_eq(na, nb);
        ck_assert_mem_eq(a, b, (size_t)na * sizeof *a);
        size_t len;
        char *back = decode(v, a, na, &len);
        ck_assert_uint_eq(len, 3);
        ck_assert_mem_eq(back, "a b", 3);
        free(back);
        free(a);
        free(b);
        tok_free(v);
    }
}
END_TEST

/* ------------------------------------------------------------ WordPiece */

/* What BERT's basic tokenizer makes of ASCII text, written independently
 * of tok_wpm.c: lower-cased words, whitespace dropped, each punctuation or
 * symbol character a word of its own, control characters dropped, the
 * words joined by one space. */
static char *ascii_words(const char *s, size_t n)
{
    char *o = malloc(2 * n + 1);
    ck_assert_ptr_nonnull(o);
    size_t w = 0;
    bool in_word = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || (c >= '\t' && c <= '\r')) {
            in_word = false;
            continue;
        }
        if (c < 0x20 || c == 0x7F)
            continue;
        bool single = ispunct(c);
        if ((single || !in_word) && w > 0)
            o[w++] = ' ';
        o[w++] = (char)tolower(c);
        in_word = !single;
    }
    o[w] = '\0';
    return o;
}

static bool is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* Encodings of two texts are the same id sequence. */
static void assert_same_encoding(const tok_vocab *v, const char *a,
                                 const char *b)
{
    int na, nb;
    int32_t *ia = encode(v, a, strlen(a), false, false, &na);
    int32_t *ib = encode(v, b, strlen(b), false, false, &nb);
    if (na != nb || memcmp(ia, ib, (size_t)na * sizeof *ia) != 0) {
        printf("MISMATCH normalisation: ");
        print_escaped(a, strlen(a));
        printf(" vs ");
        print_escaped(b, strlen(b));
        printf("\n");
        print_ids("first ", ia, na);
        print_ids("second", ib, nb);
        ck_abort_msg("\"%s\" and \"%s\" encode differently", a, b);
    }
    free(ia);
    free(ib);
}

static void assert_decodes_to(const tok_vocab *v, const char *text,
                              const char *want)
{
    int n;
    int32_t *ids = encode(v, text, strlen(text), false, false, &n);
    size_t len;
    char *s = decode(v, ids, n, &len);
    ck_assert_msg(len == strlen(want) && memcmp(s, want, len) == 0,
                  "\"%s\" decodes to \"%s\", want \"%s\"", text, s, want);
    /* the stream, told to drop the first space, agrees with decode */
    char out[256];
    size_t slen = 0;
    tok_stream st;
    tok_stream_init(&st, v);
    st.strip_space = true;
    for (int i = 0; i < n; i++) {
        int w = tok_stream_push(&st, ids[i], out + slen, sizeof out - slen);
        ck_assert_int_ge(w, 0);
        slen += (size_t)w;
    }
    ck_assert_uint_eq(slen, len);
    ck_assert_mem_eq(out, s, len);
    free(s);
    free(ids);
}

START_TEST(test_wpm_decode)
{
    char path[1024];
    if (!data_path("models/vocab/ggml-vocab-bert-bge.gguf", path,
                   sizeof path))
        return;
    tok_vocab *v = load_vocab(path);
    ck_assert_int_eq(tok_kind(v), TOK_KIND_WPM);
    /* [CLS] first, [SEP] last, [UNK] for unknown words */
    ck_assert_int_eq(tok_bos(v), 101);
    ck_assert_int_eq(tok_eos(v), 102);
    ck_assert(tok_add_bos_default(v));
    ck_assert(tok_add_eos_default(v));
    ck_assert(tok_is_control(v, 101) && tok_is_control(v, 102));
    int n;
    int32_t *ids = encode(v, "Hello, World!", 13, true, false, &n);
    const int32_t want[] = {101, 7592, 1010, 2088, 999};
    ck_assert_int_eq(n, 5);
    ck_assert_mem_eq(ids, want, sizeof want);
    free(ids);
    /* control tokens in the text are text unless parse_special */
    ids = encode(v, "[CLS]", 5, false, true, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 101);
    free(ids);

    /* every ASCII test case without unknown words decodes to its words */
    vectors t;
    read_vectors(path, &t);
    int checked = 0, bad = 0;
    for (int i = 0; i < t.n; i++) {
        const vcase *c = &t.c[i];
        bool unk = false;
        for (int k = 0; k < c->n; k++)
            unk |= c->ids[k] == 100;
        if (!is_ascii(c->text, c->len) || unk)
            continue;
        size_t len;
        char *s = decode(v, c->ids, c->n, &len);
        char *want_s = ascii_words(c->text, c->len);
        checked++;
        if (len != strlen(want_s) || memcmp(s, want_s, len) != 0) {
            bad++;
            printf("DECODE vocab bert-bge case %d: ", i);
            print_escaped(c->text, c->len);
            printf(" -> ");
            print_escaped(s, len);
            printf(", want ");
            print_escaped(want_s, strlen(want_s));
            printf("\n");
        }
        free(s);
        free(want_s);
    }
    vectors_free(&t);
    ck_assert_int_ge(checked, 20);
    ck_assert_msg(bad == 0, "%d of %d cases decode wrong", bad, checked);

    assert_decodes_to(v, "  Hello,\tWORLD!! ", "hello , world ! !");
    assert_decodes_to(v, "\xC3\x84pfel", "apfel");
    assert_decodes_to(v, "C\xE1\xBB\xAD" "a Vi\xE1\xBB\x87t", "cua viet");

    /* accents of precomposed letters go, case folds, in several scripts:
     * É, Ω/μ/έ/γ, Cyrillic upper case, İ, the Kelvin sign U+212A */
    assert_same_encoding(v, "\xC3\x89l\xC3\xA9phant", "elephant");
    assert_same_encoding(v, "\xCE\xA9\xCE\xBC\xCE\xAD\xCE\xB3\xCE\xB1",
                         "\xCF\x89\xCE\xBC\xCE\xB5\xCE\xB3\xCE\xB1");
    assert_same_encoding(v, "\xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2",
                         "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
    assert_same_encoding(v, "\xC4\xB0stanbul", "istanbul");
    assert_same_encoding(v, "\xE2\x84\xAA" "ELVIN", "kelvin");
    /* U+00A0 and U+3000 are whitespace, U+200B (format) vanishes */
    assert_same_encoding(v, "a\xC2\xA0" "b\xE3\x80\x80" "c", "a b c");
    assert_same_encoding(v, "hel\xE2\x80\x8Blo", "hello");
    /* bytes that are not UTF-8 vanish without splitting the word */
    assert_same_encoding(v, "hel\xFFlo\xC3", "hello");
    /* a combining mark of its own is kept in the word (llama.cpp), and
     * this vocabulary has no piece for U+0301: the word is unknown */
    ids = encode(v, "cafe\xCC\x81", 6, false, false, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 100);
    free(ids);
    tok_free(v);
}
END_TEST

/* WordPiece without test data: greedy longest match on a tiny vocabulary
 * (the tiny SentencePiece one loaded as "bert"; it has no [UNK], so an
 * unmatched word vanishes). */
START_TEST(test_wpm_tiny_greedy)
{
    tiny_opts o = tiny_ok;
    o.model = "bert";
    tok_vocab *v = NULL;
    char err[256];
    ck_assert_msg(load_tiny(&o, &v, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(tok_kind(v), TOK_KIND_WPM);
    ck_assert_int_eq(tok_bos(v), -1); /* 101 is past 9 tokens */
    int n;
    /* "▁ab" -> "▁a" "b"; "BA" -> "▁ba" -> "▁" "ba"; "c" unmatched;
     * "a,b" -> "▁a" | "▁," unmatched | "▁b" -> "▁" "b" */
    const char *s = "ab BA c a,b";
    int32_t *ids = encode(v, s, strlen(s), false, false, &n);
    const int32_t want[] = {6, 5, 3, 8, 6, 3, 5};
    if (n != 7 || memcmp(ids, want, sizeof want) != 0) {
        print_ids("expected", want, 7);
        print_ids("got     ", ids, n);
        ck_abort_msg("tiny WordPiece encoding differs");
    }
    free(ids);
    size_t len;
    char *back = decode(v, want, 7, &len);
    ck_assert_str_eq(back, "ab ba a b");
    free(back);
    tok_free(v);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *tok_suite(void)
{
    Suite *s = suite_create("tok");
    TCase *tc = tcase_create("vectors");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_vocab_vectors, 0, N_VOCABS);
    tcase_add_loop_test(tc, test_vocab_roundtrip, 0, N_VOCABS);
    tcase_add_test(tc, test_vocab_list_complete);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stories260k_once_upon_a_time);
    tcase_add_test(tc, test_reference_prompts_synth);
    suite_add_tcase(s, tc);

    tc = tcase_create("special");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_parse_special_qwen2);
    tcase_add_test(tc, test_spm_special_and_bos);
    tcase_add_test(tc, test_phi3_rstrip_special);
    tcase_add_test(tc, test_structure_tokens_are_control);
    tcase_add_test(tc, test_markup_find);
    tcase_add_test(tc, test_encode_plain_spans);
    tcase_add_loop_test(tc, test_no_control_without_special, 0, N_VOCABS);
    tcase_add_test(tc, test_invalid_utf8_input);
    tcase_add_test(tc, test_spm_space_character);
    tcase_add_test(tc, test_bpe_missing_byte_no_control);
    suite_add_tcase(s, tc);

    tc = tcase_create("stream");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stream_spm_byte_tokens);
    tcase_add_test(tc, test_stream_bpe_matches_decode);
    suite_add_tcase(s, tc);

    tc = tcase_create("wordpiece");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wpm_decode);
    tcase_add_test(tc, test_wpm_tiny_greedy);
    suite_add_tcase(s, tc);

    tc = tcase_create("metadata");
    tcase_add_test(tc, test_tiny_spm_loads_and_merges_by_score);
    tcase_add_test(tc, test_tiny_spm_never_merges_into_control);
    tcase_add_test(tc, test_bad_tokens_missing);
    tcase_add_test(tc, test_bad_scores_length);
    tcase_add_test(tc, test_bad_token_type);
    tcase_add_test(tc, test_bad_bos_id);
    tcase_add_test(tc, test_bad_model_name);
    tcase_add_test(tc, test_bad_bpe_merges_missing);
    tcase_add_test(tc, test_bad_bpe_pre_unknown);
    tcase_add_test(tc, test_bpe_all_pre_tokenizers_compile);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tok_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    /* without the vocabularies most tests could not run: SKIP, not PASS */
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/models", data_dir());
    if (failed == 0 && access(probe, R_OK) != 0)
        return 77;
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
