/* test_json_mask.c - the token mask of constrained decoding
 * (engine/json_mask.h) on real vocabularies, a byte-level BPE one (qwen2)
 * and a SentencePiece one (llama-spm): the mask equals feeding every
 * token's bytes from a copied state, at states along valid documents
 * (inside strings, mid-character, in escapes, numbers, keys); special
 * tokens are never allowed and EOS only at a complete document; random
 * decodes over the allowed tokens give documents that the matcher accepts
 * and jansson parses; a document's own tokenization, non-ASCII text
 * included, passes the mask token by token. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_mask.h"
#include "testrand.h"
#include "testutil.h"

typedef struct fixture {
    tok_vocab *v;
    jmask_vocab *mv;
    int32_t n;
    uint8_t *got, *want;
} fixture;

/* false (the test then returns) when the vocabulary file is absent */
static bool fx_open(fixture *fx, const char *name)
{
    memset(fx, 0, sizeof *fx);
    const char *d = tu_data_dir();
    if (!d)
        return false;
    char path[1024], err[256] = "";
    snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-%s.gguf", d, name);
    gguf_file *f = NULL;
    if (gguf_open(path, &f, err, sizeof err) != 0) {
        fprintf(stderr, "SKIP %s: %s\n", name, err);
        return false;
    }
    ck_assert_msg(tok_load(f, &fx->v, err, sizeof err) == 0, "%s: %s", path, err);
    gguf_close(f);
    ck_assert_int_eq(jmask_vocab_new(fx->v, &fx->mv), 0);
    fx->n = tok_n_vocab(fx->v);
    ck_assert_int_eq(jmask_n_vocab(fx->mv), fx->n);
    fx->got = malloc((size_t)fx->n);
    fx->want = malloc((size_t)fx->n);
    ck_assert(fx->got && fx->want);
    return true;
}

static void fx_close(fixture *fx)
{
    free(fx->got);
    free(fx->want);
    jmask_vocab_free(fx->mv);
    tok_free(fx->v);
}

static jgram *make(const char *schema)
{
    if (!schema)
        return jgram_any_object();
    char err[256];
    jgram *g = NULL;
    ck_assert_msg(jgram_compile(schema, strlen(schema), &g, err, sizeof err) == JGRAM_OK, "%s: %s",
                  schema, err);
    return g;
}

/* The reference: every token's piece fed byte by byte from a copy of st. */
static long brute(const fixture *fx, const jgram *g, const jgram_state *st, uint8_t *want)
{
    static jgram_state tmp;
    char buf[2048];
    long count = 0;
    bool acc = jgram_accepting(g, st);
    for (int32_t id = 0; id < fx->n; id++) {
        size_t len = 0;
        const uint8_t *b = jmask_token_bytes(fx->mv, id, &len);
        want[id] = 0;
        if (tok_is_eog(fx->v, id)) {
            want[id] = acc;
        } else if (b) {
            /* the mask's bytes are the piece a streamed generation emits */
            int n = tok_piece(fx->v, id, false, buf, sizeof buf);
            /* (no ck_assert per token: Check writes to a pipe for each) */
            if (n != (int)len || memcmp(buf, b, len) != 0 || tok_is_control(fx->v, id))
                ck_abort_msg("token %d: bytes differ from its piece or control", (int)id);
            jgram_state_copy(&tmp, st);
            size_t k = 0;
            while (k < len && jgram_feed(g, &tmp, b[k]))
                k++;
            want[id] = k == len;
        }
        count += want[id];
    }
    return count;
}

static void check_state(fixture *fx, const jgram *g, const jgram_state *st, const char *where)
{
    long n = jmask_compute(fx->mv, g, st, fx->got);
    long m = brute(fx, g, st, fx->want);
    for (int32_t id = 0; id < fx->n; id++)
        if (fx->got[id] != fx->want[id])
            ck_abort_msg("%s: token %d mask %d, brute force %d", where, (int)id, fx->got[id],
                         fx->want[id]);
    ck_assert_int_eq(n, m);
    int32_t eos = tok_eos(fx->v);
    if (eos >= 0)
        ck_assert_int_eq(fx->got[eos], jgram_accepting(g, st));
}

/* Check the mask at states along doc: every `step`-th byte and every byte
 * next to a non-ASCII or escape byte (mid-character and \u states). */
static void check_doc(fixture *fx, const char *schema, const char *doc, size_t step)
{
    jgram *g = make(schema);
    static jgram_state st;
    jgram_init(g, &st);
    size_t len = strlen(doc);
    for (size_t i = 0; i <= len; i++) {
        bool odd = i > 0 && ((uint8_t)doc[i - 1] >= 0x80 || doc[i - 1] == '\\' ||
                             (i >= 2 && doc[i - 2] == '\\'));
        if (i % step == 0 || odd || i == len) {
            char where[64];
            snprintf(where, sizeof where, "'%.*s'", (int)(i < 40 ? i : 40), doc);
            check_state(fx, g, &st, where);
        }
        if (i < len)
            ck_assert_msg(jgram_feed(g, &st, (uint8_t)doc[i]), "byte %zu of %s", i, doc);
    }
    ck_assert(jgram_accepting(g, &st));
    jgram_free(g);
}

static const char person[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"name\",\"age\"],"
    "\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},\"age\":{\"type\":\"integer\"},"
    "\"note\":{\"type\":\"string\"},"
    "\"tags\":{\"type\":\"array\",\"maxItems\":3,\"items\":{\"enum\":[\"red\",\"green\",\"日本\"]}}}}";
static const char choice[] =
    "{\"anyOf\":[{\"type\":\"string\",\"minLength\":2},{\"type\":\"number\"},"
    "{\"type\":\"array\",\"items\":{\"type\":\"boolean\"}}]}";

static void mask_equals_brute(const char *vocab)
{
    fixture fx;
    if (!fx_open(&fx, vocab))
        return;
    check_doc(&fx, person,
              "{\"name\": \"Zoë Ünal\", \"age\": -12,\n\"note\": \"a \\\"q\\\" \\u00e9 日本語\","
              " \"tags\": [\"日本\", \"red\"]}",
              5);
    check_doc(&fx, NULL, "{\"k\":\"x\\n😀y\",\"n\":[1.5e3,true,null,{}],\"ключ\":\"\\ud83d\\ude00\"}",
              6);
    check_doc(&fx, choice, "\"héllo wörld\"", 3);
    check_doc(&fx, choice, "-0.25e+7", 2);
    /* several string threads at once, with different room */
    check_doc(&fx,
              "{\"anyOf\":[{\"enum\":[\"ab\"]},{\"type\":\"string\",\"maxLength\":2},"
              "{\"type\":\"string\",\"maxLength\":5}]}",
              "\"abé\"", 1);
    fx_close(&fx);
}

START_TEST(test_mask_equals_brute_force_bpe)
{
    TU_NEED_DATA();
    mask_equals_brute("qwen2");
}
END_TEST

START_TEST(test_mask_equals_brute_force_spm)
{
    TU_NEED_DATA();
    mask_equals_brute("llama-spm");
}
END_TEST

/* ---------------------------------------------------------- decoding */

/* Pick a token among the allowed ones; late in the run, prefer those that
 * close something so the document ends within the step budget. */
static int32_t pick(const fixture *fx, int step, int32_t *cand)
{
    int nc = 0;
    if (step > 60) {
        static const char closers[] = "\"}]";
        for (int c = 0; c < 3 && !nc; c++)
            for (int32_t id = 0; id < fx->n; id++) {
                size_t len;
                const uint8_t *b = jmask_token_bytes(fx->mv, id, &len);
                if (fx->got[id] && b && len == 1 && b[0] == (uint8_t)closers[c])
                    cand[nc++] = id;
            }
        if (!nc) { /* the shortest allowed tokens */
            size_t best = SIZE_MAX;
            for (int32_t id = 0; id < fx->n; id++) {
                size_t len;
                if (!fx->got[id] || !jmask_token_bytes(fx->mv, id, &len))
                    continue;
                if (len < best)
                    best = len, nc = 0;
                if (len == best)
                    cand[nc++] = id;
            }
        }
    }
    if (!nc)
        for (int32_t id = 0; id < fx->n; id++)
            if (fx->got[id] && !tok_is_eog(fx->v, id))
                cand[nc++] = id;
    return nc ? cand[rng_u32() % (uint32_t)nc] : -1; /* only EOS is left */
}

static void random_decodes(const char *vocab)
{
    fixture fx;
    if (!fx_open(&fx, vocab))
        return;
    const char *schemas[] = {person, NULL, choice};
    int32_t *cand = malloc((size_t)fx.n * sizeof *cand);
    static jgram_state st;
    bool non_ascii = false;
    for (int s = 0; s < 3; s++)
        for (int run = 0; run < 4; run++) {
            rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)(s * 16 + run + 1);
            jgram *g = make(schemas[s]);
            jgram_init(g, &st);
            char doc[16384];
            size_t dl = 0;
            int step;
            for (step = 0; step < 400; step++) {
                ck_assert_int_gt(jmask_compute(fx.mv, g, &st, fx.got), 0);
                int32_t eos = tok_eos(fx.v);
                if (jgram_accepting(g, &st) && (step > 30 || rng_u32() % 4 == 0)) {
                    ck_assert(eos < 0 || fx.got[eos]);
                    break;
                }
                int32_t id = pick(&fx, step, cand);
                if (id < 0) {
                    ck_assert(jgram_accepting(g, &st));
                    break;
                }
                size_t len;
                const uint8_t *b = jmask_token_bytes(fx.mv, id, &len);
                ck_assert(b && !tok_is_control(fx.v, id));
                ck_assert_msg(jmask_advance(g, &st, b, len), "allowed token %d refused", (int)id);
                ck_assert(dl + len < sizeof doc);
                memcpy(doc + dl, b, len);
                dl += len;
            }
            ck_assert_msg(step < 400 && jgram_accepting(g, &st), "%s: no document in 400 steps: %.*s",
                          vocab, (int)dl, doc);
            json_error_t e;
            json_t *j = json_loadb(doc, dl, JSON_DECODE_ANY, &e);
            ck_assert_msg(j, "%s: not JSON (%s): %.*s", vocab, e.text, (int)dl, doc);
            json_decref(j);
            for (size_t i = 0; i < dl; i++)
                non_ascii |= (uint8_t)doc[i] >= 0x80;
            jgram_free(g);
        }
    ck_assert_msg(non_ascii, "%s: no random document held non-ASCII text", vocab);
    free(cand);
    fx_close(&fx);
}

START_TEST(test_random_decode_bpe)
{
    TU_NEED_DATA();
    random_decodes("qwen2");
}
END_TEST

START_TEST(test_random_decode_spm)
{
    TU_NEED_DATA();
    random_decodes("llama-spm");
}
END_TEST

/* ------------------------------------------------ real tokenizations */

/* The document as the tokenizer splits it passes the mask token by token;
 * a SentencePiece space prefix on the first piece is taken off first. */
static void own_tokens(const char *vocab)
{
    fixture fx;
    if (!fx_open(&fx, vocab))
        return;
    static const char doc[] = "{\"name\":\"Ann\",\"age\":7,\"note\":\"日本語のテキスト ß Ωμέγα 😀 𝄞𓀀\"}";
    jgram *g = make(person);
    static jgram_state st;
    jgram_init(g, &st);
    int32_t *ids = NULL;
    int n = tok_encode_alloc(fx.v, doc, sizeof doc - 1, false, false, &ids);
    ck_assert_int_gt(n, 0);
    bool partial = false;
    for (int i = 0; i < n; i++) {
        size_t len;
        const uint8_t *b = jmask_token_bytes(fx.mv, ids[i], &len);
        ck_assert(b);
        if (i == 0 && len > 1 && b[0] == ' ')
            b++, len--; /* SentencePiece's add_space_prefix */
        else if (i == 0 && len == 1 && b[0] == ' ')
            continue;
        else {
            ck_assert(jmask_compute(fx.mv, g, &st, fx.got) > 0);
            ck_assert_msg(fx.got[ids[i]], "%s: token %d (#%d) of the document refused", vocab,
                          (int)ids[i], i);
        }
        /* a token that ends inside a character (BPE split or byte token) */
        int lead = 0;
        for (size_t k = 0; k < len; k++)
            if (b[k] >= 0xC0)
                lead = b[k] >= 0xF0 ? 4 : b[k] >= 0xE0 ? 3 : 2, partial |= len - k < (size_t)lead;
        ck_assert(jmask_advance(g, &st, b, len));
    }
    ck_assert(jgram_accepting(g, &st));
    ck_assert_msg(partial, "%s: no token of the document split a character", vocab);
    /* a refused token leaves the state as it was */
    jgram_state before;
    jgram_state_copy(&before, &st);
    ck_assert(!jmask_advance(g, &st, (const uint8_t *)"x", 1));
    ck_assert_int_eq(before.n, st.n);
    ck_assert(jgram_accepting(g, &st));
    free(ids);
    jgram_free(g);
    fx_close(&fx);
}

START_TEST(test_own_tokenization_bpe)
{
    TU_NEED_DATA();
    own_tokens("qwen2");
}
END_TEST

START_TEST(test_own_tokenization_spm)
{
    TU_NEED_DATA();
    own_tokens("llama-spm");
}
END_TEST

/* Byte-fallback tokens: <0xE6> is allowed in a string, then only the
 * continuation bytes that can follow it; never outside a string. */
START_TEST(test_spm_byte_tokens)
{
    TU_NEED_DATA();
    fixture fx;
    if (!fx_open(&fx, "llama-spm"))
        return;
    int32_t e6 = tok_find(fx.v, "<0xE6>"), x97 = tok_find(fx.v, "<0x97>"),
            x41 = tok_find(fx.v, "<0x41>"), c0 = tok_find(fx.v, "<0xC0>");
    ck_assert(e6 >= 0 && x97 >= 0 && x41 >= 0 && c0 >= 0);
    jgram *g = make(NULL);
    static jgram_state st;
    jgram_init(g, &st);
    ck_assert_int_gt(jmask_compute(fx.mv, g, &st, fx.got), 0);
    ck_assert(!fx.got[e6] && !fx.got[x41]);
    ck_assert(jmask_advance(g, &st, (const uint8_t *)"{\"k\":\"", 6));
    ck_assert_int_gt(jmask_compute(fx.mv, g, &st, fx.got), 0);
    ck_assert(fx.got[e6] && fx.got[x41] && !fx.got[c0] && !fx.got[x97]);
    ck_assert(jmask_advance(g, &st, (const uint8_t *)"\xE6", 1));
    ck_assert_int_gt(jmask_compute(fx.mv, g, &st, fx.got), 0);
    ck_assert(fx.got[x97] && !fx.got[x41] && !fx.got[e6]);
    for (int32_t id = 0; id < fx.n; id++)
        if (fx.got[id] && tok_is_control(fx.v, id))
            ck_abort_msg("control token %d allowed", (int)id);
    jgram_free(g);
    fx_close(&fx);
}
END_TEST

START_TEST(test_apply_bans_disallowed)
{
    float logits[5] = {1, 2, 3, 4, 5};
    const uint8_t allowed[5] = {1, 0, 1, 0, 0};
    jmask_apply(logits, 5, allowed);
    ck_assert(logits[0] == 1 && logits[2] == 3);
    ck_assert(logits[1] < -1e30f && logits[3] < -1e30f && logits[4] < -1e30f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("json_mask");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_mask_equals_brute_force_bpe);
    tcase_add_test(tc, test_mask_equals_brute_force_spm);
    tcase_add_test(tc, test_random_decode_bpe);
    tcase_add_test(tc, test_random_decode_spm);
    tcase_add_test(tc, test_own_tokenization_bpe);
    tcase_add_test(tc, test_own_tokenization_spm);
    tcase_add_test(tc, test_spm_byte_tokens);
    tcase_add_test(tc, test_apply_bans_disallowed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (!tu_data_dir()) {
        fprintf(stderr, "SKIP: HEARTH_TEST_DATA not found\n");
        return 77;
    }
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
