/* test_model.c - architectures, forward pass and KV cache against the
 * reference outputs of llama.cpp ($HEARTH_TEST_DATA/reference), refusal
 * of bad models built here with the GGUF writer, batch/KV consistency,
 * and quantization (round trip, requantization, the hearth quantize CLI).
 *
 * About the reference comparison. stories260K (dim 64, head dim 8) is so
 * small that any difference in the last bit of one float operation flips
 * an F16 or 8-bit rounding somewhere and moves its logprobs by hundredths
 * (F32) to tenths (Q8_0/Q4_0). So the engine does the float work in the
 * order llama.cpp's CPU backend does it (docs/design.md, "Numerics"), and
 * the cases are replayed as the reference was made: prompt in one batch,
 * then one token at a time (the reference: llama.cpp de3ff81, 2 threads,
 * flash attention, one ubatch per prompt; a build of that source with
 * those settings reproduces the quantized files' JSON to 1e-6). Every
 * position is held to the README's bounds. Measured (printed on every
 * run, AVX2 or AVX-512 kernels):
 *   - Q8_0 and Q4_0: all 216 positions equal to the reference to 1e-4
 *     (1e-6 in fact), the 359-token prompt included, and asserted so;
 *   - F32: max 0.0025 on prompts < 64 tokens, 0.0045 on the 359-token
 *     one (README: 0.01), 78 of 216 positions equal. A build of the
 *     reference's source with the same settings is as far from the F32
 *     file (0.0043) though it matches the quantized ones: the reference's
 *     F32 run differs from that build somewhere; not pursued;
 *   - synth-llama-56m-Q4_0: argmax 214/216, mean 0.0046, max 0.129; its
 *     short prompts equal the reference, the 152-token case does not
 *     (mean 0.041 there; llama.cpp most likely runs that prompt batch
 *     through its tiled attention, head dim 64 - not verified);
 *   - the Q4_K_M files: argmax 199/216 and 213/216, mean 0.061 and
 *     0.0076, max 0.368 and 0.050. llama.cpp repacks Q4_K matrices too
 *     (q4_K_8x8) and sums them in an order not reproduced here.
 * The scalar path (HEARTH_KERNEL=scalar, non-x86 builds) sums dequantized
 * floats and does not reach these bounds on the quantized stories files
 * (measured 0.14 on Q8_0). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "kernels.h"
#include "kv.h"
#include "model.h"
#include "ops.h"
#include "quant.h"
#include "repack.h"
#include "tok.h"

/* ------------------------------------------------------------ helpers */

static const char *data_dir(void)
{
    static char buf[4096];
    const char *d = getenv("HEARTH_TEST_DATA");
    if (!d || !*d)
        d = "../shared";
    snprintf(buf, sizeof buf, "%s", d);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/models/stories260K.gguf", buf);
    struct stat st;
    if (stat(probe, &st) != 0)
        return NULL;
    return buf;
}

#define SKIP_WITHOUT_DATA(dir)                                                \
    const char *dir = data_dir();                                             \
    if (!dir) {                                                               \
        fprintf(stderr, "SKIP %s: no test data (set HEARTH_TEST_DATA)\n",     \
                __func__);                                                    \
        return;                                                               \
    }

static model *load_or_fail(const char *path)
{
    char err[512];
    model *m = NULL;
    int rc = model_load(path, &m, err, sizeof err);
    ck_assert_msg(rc == 0, "load %s: %s", path, err);
    return m;
}

static void argmax_of(const float *l, int n, int32_t *best)
{
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    *best = b;
}

static double log_sum_exp(const float *l, int n)
{
    float mx = l[0];
    for (int i = 1; i < n; i++)
        if (l[i] > mx)
            mx = l[i];
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += exp((double)l[i] - mx);
    return mx + log(s);
}

/* ------------------------------------------------------------ reference */

typedef struct ref_case {
    int32_t *prompt, *greedy;
    int n_prompt, n_greedy;
    int32_t (*top_id)[5];
    double (*top_lp)[5];
} ref_case;

typedef struct ref_file {
    ref_case *c;
    int n;
} ref_file;

static int32_t *int_array(json_t *a, int *n)
{
    ck_assert(json_is_array(a));
    *n = (int)json_array_size(a);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(*n + 1));
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return v;
}

static void ref_load(const char *dir, const char *name, ref_file *rf)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/reference/%s.json", dir, name);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    ck_assert_msg(root != NULL, "%s: %s", path, je.text);
    json_t *cases = json_object_get(root, "cases");
    ck_assert(json_is_array(cases));
    rf->n = (int)json_array_size(cases);
    rf->c = calloc((size_t)rf->n, sizeof *rf->c);
    ck_assert_ptr_nonnull(rf->c);
    for (int i = 0; i < rf->n; i++) {
        json_t *c = json_array_get(cases, (size_t)i);
        ref_case *r = &rf->c[i];
        r->prompt = int_array(json_object_get(c, "prompt_ids"), &r->n_prompt);
        r->greedy = int_array(json_object_get(c, "greedy_ids"), &r->n_greedy);
        json_t *steps = json_object_get(c, "steps");
        ck_assert_int_eq((int)json_array_size(steps), r->n_greedy);
        r->top_id = calloc((size_t)r->n_greedy, sizeof *r->top_id);
        r->top_lp = calloc((size_t)r->n_greedy, sizeof *r->top_lp);
        ck_assert(r->top_id && r->top_lp);
        for (int s = 0; s < r->n_greedy; s++) {
            json_t *top = json_object_get(json_array_get(steps, (size_t)s), "top");
            ck_assert_int_eq((int)json_array_size(top), 5);
            for (int j = 0; j < 5; j++) {
                json_t *p = json_array_get(top, (size_t)j);
                r->top_id[s][j] = (int32_t)json_integer_value(json_array_get(p, 0));
                r->top_lp[s][j] = json_real_value(json_array_get(p, 1));
            }
        }
    }
    json_decref(root);
}

static void ref_free(ref_file *rf)
{
    for (int i = 0; i < rf->n; i++) {
        free(rf->c[i].prompt);
        free(rf->c[i].greedy);
        free(rf->c[i].top_id);
        free(rf->c[i].top_lp);
    }
    free(rf->c);
}

enum ref_kind { REF_F32, REF_Q, REF_SYNTH };

typedef struct ref_model {
    const char *name;
    int kind;
} ref_model;

static const ref_model ref_models[] = {
    {"stories260K", REF_F32},
    {"stories260K-Q8_0", REF_Q},
    {"stories260K-Q4_0", REF_Q},
    {"synth-llama-56m-Q4_0", REF_SYNTH},
    {"synth-llama-56m-Q4_K_M", REF_SYNTH},
    {"synth-qwen2-45m-Q4_K_M", REF_SYNTH},
};

/* Per-kind statistics of the top-5 logprob differences. */
typedef struct ref_stats {
    double max_diff, sum_diff;
    long n_diff;
} ref_stats;

static void stats_add(ref_stats *st, double d)
{
    if (d > st->max_diff)
        st->max_diff = d;
    st->sum_diff += d;
    st->n_diff++;
}

/* The figures are printed apart for prompts shorter than this and the
 * longer ones (the 359-token stories case goes through llama.cpp's
 * split-KV decoding, the 152-token synth case through its tiled
 * attention); the bounds hold for both. */
#define LONG_PROMPT 64

/* Teacher forcing, replayed as the reference was made: the prompt in one
 * batch, then the reference's greedy tokens one at a time, the logits of
 * each step compared with the reference's. Accumulates into `st` and
 * counts positions whose worst difference is below 1e-4 (the same bits,
 * give or take the reference's printed digits). */
static void teacher_force(model *m, model_ctx *mc, const ref_case *r,
                          bool replay, ref_stats *st, int *exact, int *agree,
                          int *positions)
{
    const model_hparams *hp = model_hparams_of(m);
    int n = r->n_prompt + r->n_greedy;
    char err[256];
    kv_cache *kv = NULL;
    ck_assert_msg(model_kv_new(m, n, 0, KV_F16, &kv, err, sizeof err) == 0,
                  "%s", err);
    model_token *t = calloc((size_t)n, sizeof *t);
    float *all = malloc(sizeof(float) * (size_t)hp->n_vocab *
                        (size_t)r->n_greedy);
    ck_assert(t && all);
    for (int i = 0; i < n; i++) {
        t[i].id = i < r->n_prompt ? r->prompt[i] : r->greedy[i - r->n_prompt];
        t[i].pos = i;
        t[i].kv = kv;
        t[i].want_logits = i >= r->n_prompt - 1 && i < n - 1;
    }
    /* replay: the prompt, then one token at a time; else all in one batch */
    model_batch b = {replay ? r->n_prompt : n, t};
    ck_assert_msg(model_decode(mc, &b, all, err, sizeof err) == 0, "%s", err);
    for (int s = 0; s < r->n_greedy; s++) {
        float *lg = all + (size_t)s * (size_t)hp->n_vocab;
        if (replay && s > 0) {
            model_batch b1 = {1, t + r->n_prompt - 1 + s};
            ck_assert_msg(model_decode(mc, &b1, lg, err, sizeof err) == 0,
                          "%s", err);
        }
        double lse = log_sum_exp(lg, hp->n_vocab);
        double pos_max = 0;
        for (int j = 0; j < 5; j++) {
            double d = fabs((double)lg[r->top_id[s][j]] - lse - r->top_lp[s][j]);
            if (d > pos_max)
                pos_max = d;
            stats_add(st, d);
        }
        if (pos_max < 1e-4)
            (*exact)++;
        int32_t am;
        argmax_of(lg, hp->n_vocab, &am);
        (*positions)++;
        if (am == r->greedy[s])
            (*agree)++;
    }
    free(t);
    free(all);
    kv_free(kv);
}

/* Our own greedy run: prefill, then one token at a time. Returns the
 * number of tokens equal to the reference before the first difference. */
static int greedy_run(model *m, model_ctx *mc, const int32_t *prompt,
                      int n_prompt, int n_gen, int32_t *out)
{
    const model_hparams *hp = model_hparams_of(m);
    char err[256];
    kv_cache *kv = NULL;
    ck_assert_msg(model_kv_new(m, n_prompt + n_gen, 0, KV_F16, &kv, err,
                               sizeof err) == 0, "%s", err);
    model_token *t = calloc((size_t)n_prompt, sizeof *t);
    float *lg = malloc(sizeof(float) * (size_t)hp->n_vocab);
    ck_assert(t && lg);
    for (int i = 0; i < n_prompt; i++) {
        t[i].id = prompt[i];
        t[i].pos = i;
        t[i].kv = kv;
        t[i].want_logits = i == n_prompt - 1;
    }
    model_batch b = {n_prompt, t};
    ck_assert_msg(model_decode(mc, &b, lg, err, sizeof err) == 0, "%s", err);
    for (int s = 0; s < n_gen; s++) {
        argmax_of(lg, hp->n_vocab, &out[s]);
        model_token one = {out[s], n_prompt + s, kv, true};
        model_batch b1 = {1, &one};
        if (s + 1 < n_gen)
            ck_assert_msg(model_decode(mc, &b1, lg, err, sizeof err) == 0, "%s",
                          err);
    }
    free(t);
    free(lg);
    kv_free(kv);
    return n_gen;
}

START_TEST(reference_outputs)
{
    SKIP_WITHOUT_DATA(dir);
    const ref_model *rm = &ref_models[_i];
    char path[4400];
    snprintf(path, sizeof path, "%s/models/%s.gguf", dir, rm->name);
    model *m = load_or_fail(path);
    ref_file rf;
    ref_load(dir, rm->name, &rf);
    char err[256];
    model_ctx *mc = NULL;
    ck_assert_msg(model_ctx_new(m, 512, &mc, err, sizeof err) == 0, "%s", err);

    ref_stats sh = {0, 0, 0}, lo = {0, 0, 0}; /* short / long prompts */
    int exact = 0, agree = 0, positions = 0, greedy_ok = 0, greedy_total = 0;
    for (int ci = 0; ci < rf.n; ci++) {
        const ref_case *r = &rf.c[ci];
        teacher_force(m, mc, r, rm->kind != REF_SYNTH,
                      r->n_prompt < LONG_PROMPT ? &sh : &lo, &exact, &agree,
                      &positions);
        if (rm->kind == REF_SYNTH)
            continue;
        /* README: the greedy tokens reproduced exactly by our own run */
        int32_t *mine = malloc(sizeof(int32_t) * (size_t)r->n_greedy);
        ck_assert_ptr_nonnull(mine);
        greedy_run(m, mc, r->prompt, r->n_prompt, r->n_greedy, mine);
        for (int s = 0; s < r->n_greedy; s++) {
            greedy_total++;
            greedy_ok += mine[s] == r->greedy[s];
            ck_assert_msg(mine[s] == r->greedy[s],
                          "%s case %d: greedy token %d is %d, reference %d "
                          "(reference margin %.4f)", rm->name, ci, s, mine[s],
                          r->greedy[s], r->top_lp[s][0] - r->top_lp[s][1]);
        }
        free(mine);
    }
    double mean_sh = sh.sum_diff / (double)(sh.n_diff ? sh.n_diff : 1);
    double mean_lo = lo.sum_diff / (double)(lo.n_diff ? lo.n_diff : 1);
    double mean = (sh.sum_diff + lo.sum_diff) /
                  (double)(sh.n_diff + lo.n_diff ? sh.n_diff + lo.n_diff : 1);
    double max_all = sh.max_diff > lo.max_diff ? sh.max_diff : lo.max_diff;
    printf("%-24s top-5 logprob diff: prompts < %d max %.4f mean %.5f; "
           "longer max %.4f mean %.5f; same to 1e-4 at %d/%d positions; "
           "argmax agrees %d/%d", rm->name, LONG_PROMPT, sh.max_diff, mean_sh,
           lo.max_diff, mean_lo, exact, positions, agree, positions);
    if (rm->kind != REF_SYNTH)
        printf("; greedy tokens equal %d/%d", greedy_ok, greedy_total);
    printf("\n");
    fflush(stdout);

    /* The README's bounds, at every position (short and long prompts) */
    switch (rm->kind) {
    case REF_F32:
        ck_assert_int_eq(agree, positions);
        ck_assert_msg(max_all <= 0.01, "max diff %.4f", max_all);
        ck_assert_msg(mean <= 0.001, "mean diff %.5f", mean); /* 0.0002 */
        break;
    case REF_Q:
        ck_assert_int_eq(agree, positions);
        ck_assert_msg(max_all <= 0.1, "max diff %.4f", max_all);
        /* Beyond the README: the SIMD kernels compute llama.cpp's bits,
         * so every position equals the reference (a regression guard for
         * the float order; the scalar path sums in another order). */
        if (strcmp(kern_get()->name, "scalar") != 0)
            ck_assert_msg(exact == positions, "same to 1e-4 at %d/%d",
                          exact, positions);
        break;
    default:
        ck_assert_msg(agree * 10 >= positions * 9, "argmax agrees %d/%d",
                      agree, positions);
        ck_assert_msg(max_all <= 0.5, "max diff %.4f", max_all);
        ck_assert_msg(mean <= 0.1, "mean diff %.4f", mean);
        break;
    }
    model_ctx_free(mc);
    ref_free(&rf);
    model_free(m);
}
END_TEST

/* ------------------------------------------------------------ tiny models */

/* A deterministic generator for weights (values in [-scale, scale)). */
static uint64_t rng_state;
static float frand(float scale)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((float)(rng_state >> 40) / (float)(1u << 24) * 2.0f - 1.0f) * scale;
}

typedef struct tiny_opts {
    const char *arch;         /* "llama", "qwen2", anything */
    const char *skip;         /* tensor left out */
    const char *bad_shape;    /* tensor written with one extra row */
    const char *bad_type_name;/* tensor written in bad_type */
    uint32_t bad_type;
    uint32_t weight_type;     /* F32 (default 0) or F16 for the matrices */
    const char *rope_type;    /* <arch>.rope.scaling.type */
    float rope_factor;        /* <arch>.rope.scaling.factor when > 0 */
    bool llama3_keys;         /* low/high freq factors 1/4, original ctx 1 */
    float rope_freqs;         /* rope_freqs.weight filled with this when > 0 */
} tiny_opts;

enum { T_EMBD = 32, T_LAYERS = 2, T_FF = 64, T_HEADS = 4, T_KV_HEADS = 2,
       T_VOCAB = 48, T_CTX = 64 };

static void add_tensor(gguf_writer *w, const tiny_opts *o, const char *name,
                       uint64_t ne0, uint64_t ne1)
{
    if (o->skip && strcmp(o->skip, name) == 0)
        return;
    if (o->bad_shape && strcmp(o->bad_shape, name) == 0)
        ne1 = ne1 ? ne1 + 1 : 2;
    uint64_t ne[2] = {ne0, ne1 ? ne1 : 1};
    uint32_t nd = ne1 ? 2 : 1;
    uint32_t type = ne1 ? o->weight_type : QT_F32;
    if (o->bad_type_name && strcmp(o->bad_type_name, name) == 0)
        type = o->bad_type;
    uint64_t n = ne[0] * ne[1];
    float *v = malloc(sizeof(float) * n);
    ck_assert_ptr_nonnull(v);
    bool norm = strstr(name, "norm") != NULL;
    for (uint64_t i = 0; i < n; i++)
        v[i] = norm ? 1.0f + frand(0.1f) : frand(0.3f);
    uint64_t rb = 0;
    unsigned char *data = (unsigned char *)v;
    if (type != QT_F32) {
        const qt_traits *tr = qt_traits_of(type);
        ck_assert_ptr_nonnull(tr);
        ck_assert_int_eq(qt_row_size(type, ne[0], &rb), 0);
        data = calloc(ne[1], rb);
        ck_assert_ptr_nonnull(data);
        if (tr->can_quantize)
            for (uint64_t r = 0; r < ne[1]; r++)
                qt_quantize_row(type, v + r * ne[0], data + r * rb, (int64_t)ne[0]);
    }
    ck_assert_int_eq(gguf_writer_add_tensor(w, name, type, nd, ne, data, false), 0);
    if (data != (unsigned char *)v)
        free(data);
    free(v);
}

/* Write a small random model to a temporary file; returns its path. */
static void write_tiny(const tiny_opts *o, char *path, size_t cap)
{
    rng_state = 12345;
    snprintf(path, cap, "/tmp/hearth_test_model_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    const char *arch = o->arch ? o->arch : "llama";
    bool qwen = strcmp(arch, "qwen2") == 0;
    gguf_writer *w = gguf_writer_new();
    ck_assert_ptr_nonnull(w);
    char key[128];
#define SETU(k, v)                                                            \
    do {                                                                      \
        snprintf(key, sizeof key, "%s.%s", arch, k);                          \
        ck_assert_int_eq(gguf_writer_set_u32(w, key, v), 0);                  \
    } while (0)
    ck_assert_int_eq(gguf_writer_set_str(w, "general.architecture", arch), 0);
    SETU("context_length", T_CTX);
    SETU("embedding_length", T_EMBD);
    SETU("block_count", T_LAYERS);
    SETU("feed_forward_length", T_FF);
    SETU("attention.head_count", T_HEADS);
    SETU("attention.head_count_kv", T_KV_HEADS);
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    ck_assert_int_eq(gguf_writer_set_f32(w, key, 1e-5f), 0);
    if (o->rope_type) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        ck_assert_int_eq(gguf_writer_set_str(w, key, o->rope_type), 0);
    }
    if (o->rope_factor > 0) {
        snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
        ck_assert_int_eq(gguf_writer_set_f32(w, key, o->rope_factor), 0);
    }
    if (o->llama3_keys) {
        /* every wavelength (>= 2 pi) exceeds 1/1: all scaled by factor */
        snprintf(key, sizeof key, "%s.rope.scaling.low_freq_factor", arch);
        ck_assert_int_eq(gguf_writer_set_f32(w, key, 1.0f), 0);
        snprintf(key, sizeof key, "%s.rope.scaling.high_freq_factor", arch);
        ck_assert_int_eq(gguf_writer_set_f32(w, key, 4.0f), 0);
        SETU("rope.scaling.original_context_length", 1);
    }
#undef SETU
    int hd = T_EMBD / T_HEADS, kvd = hd * T_KV_HEADS;
    if (o->rope_freqs > 0) {
        float f[T_EMBD / T_HEADS / 2];
        for (int i = 0; i < hd / 2; i++)
            f[i] = o->rope_freqs;
        uint64_t ne[1] = {(uint64_t)hd / 2};
        ck_assert_int_eq(gguf_writer_add_tensor(w, "rope_freqs.weight", QT_F32,
                                                1, ne, f, false), 0);
    }
    add_tensor(w, o, "token_embd.weight", T_EMBD, T_VOCAB);
    add_tensor(w, o, "output_norm.weight", T_EMBD, 0);
    if (!qwen)
        add_tensor(w, o, "output.weight", T_EMBD, T_VOCAB);
    for (int l = 0; l < T_LAYERS; l++) {
        char n[64];
#define T(suffix, a, b)                                                       \
    do {                                                                      \
        snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                        \
        add_tensor(w, o, n, a, b);                                            \
    } while (0)
        T("attn_norm.weight", T_EMBD, 0);
        T("attn_q.weight", T_EMBD, T_EMBD);
        T("attn_k.weight", T_EMBD, kvd);
        T("attn_v.weight", T_EMBD, kvd);
        if (qwen) {
            T("attn_q.bias", T_EMBD, 0);
            T("attn_k.bias", kvd, 0);
            T("attn_v.bias", kvd, 0);
        }
        T("attn_output.weight", T_EMBD, T_EMBD);
        T("ffn_norm.weight", T_EMBD, 0);
        T("ffn_gate.weight", T_EMBD, T_FF);
        T("ffn_up.weight", T_EMBD, T_FF);
        T("ffn_down.weight", T_FF, T_EMBD);
#undef T
    }
    char err[256];
    ck_assert_msg(gguf_writer_write(w, path, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
}

static void expect_refusal(const tiny_opts *o, const char *needle1,
                           const char *needle2)
{
    char path[128], err[512] = "";
    write_tiny(o, path, sizeof path);
    model *m = NULL;
    int rc = model_load(path, &m, err, sizeof err);
    unlink(path);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, needle1) != NULL, "message '%s' lacks '%s'", err,
                  needle1);
    if (needle2)
        ck_assert_msg(strstr(err, needle2) != NULL, "message '%s' lacks '%s'",
                      err, needle2);
}

START_TEST(refuse_unsupported_architecture)
{
    tiny_opts o = {.arch = "gpt2"};
    expect_refusal(&o, "unsupported architecture", "gpt2");
}
END_TEST

START_TEST(refuse_missing_tensor)
{
    tiny_opts o = {.skip = "blk.1.ffn_up.weight"};
    expect_refusal(&o, "missing tensor", "blk.1.ffn_up.weight");
}
END_TEST

START_TEST(refuse_missing_bias)
{
    tiny_opts o = {.arch = "qwen2", .skip = "blk.0.attn_k.bias"};
    expect_refusal(&o, "missing tensor", "blk.0.attn_k.bias");
}
END_TEST

START_TEST(refuse_wrong_shape)
{
    tiny_opts o = {.bad_shape = "blk.0.attn_k.weight"};
    expect_refusal(&o, "blk.0.attn_k.weight", "shape [32, 17], expected [32, 16]");
}
END_TEST

START_TEST(refuse_unsupported_type)
{
    /* Find a type the GGUF layer knows (block size 32 divides our rows)
     * but the engine cannot read (IQ4_NL in today's table). */
    uint32_t bad = UINT32_MAX;
    for (uint32_t t = 0; t < QT_TYPE_MAX; t++) {
        const qt_traits *tr = qt_traits_of(t);
        if (tr && !tr->can_dequantize && T_EMBD % tr->block_size == 0) {
            bad = t;
            break;
        }
    }
    ck_assert_uint_ne(bad, UINT32_MAX);
    tiny_opts o = {.bad_type_name = "blk.1.attn_q.weight", .bad_type = bad};
    expect_refusal(&o, "blk.1.attn_q.weight", "unsupported type");
    char err[512];
    char path[128];
    write_tiny(&o, path, sizeof path);
    model *m = NULL;
    ck_assert_int_ne(model_load(path, &m, err, sizeof err), 0);
    unlink(path);
    ck_assert_msg(strstr(err, qt_name(bad)) != NULL, "'%s' lacks %s", err,
                  qt_name(bad));
}
END_TEST

/* A file that cannot be loaded is named once in the message, whichever
 * layer refused it (gguf_open names it; model_load adds it to its own). */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

START_TEST(load_error_names_path_once)
{
    char err[512], path[128];
    model *m = NULL;
    snprintf(path, sizeof path, "/tmp/hearth-broken-%d.gguf", (int)getpid());
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("this is not a GGUF file", f);
    fclose(f);
    ck_assert_int_ne(model_load(path, &m, err, sizeof err), 0);
    ck_assert_msg(count_of(err, path) == 1, "%s", err);
    ck_assert_msg(strstr(err, "not a GGUF file"), "%s", err);
    unlink(path);
    ck_assert_int_ne(model_load(path, &m, err, sizeof err), 0); /* gone now */
    ck_assert_msg(count_of(err, path) == 1, "%s", err);
    ck_assert_msg(strstr(err, "No such file"), "%s", err);
    /* a GGUF file the model refuses */
    tiny_opts o = {.bad_type_name = "output_norm.weight", .bad_type = QT_F16};
    write_tiny(&o, path, sizeof path);
    ck_assert_int_ne(model_load(path, &m, err, sizeof err), 0);
    unlink(path);
    ck_assert_msg(count_of(err, path) == 1, "%s", err);
    ck_assert_msg(strstr(err, "output_norm.weight"), "%s", err);
}
END_TEST

/* general.file_type by llama.cpp's names (hearth info prints them). */
START_TEST(file_type_names)
{
    ck_assert_str_eq(model_file_type_name(0), "ALL_F32");
    ck_assert_str_eq(model_file_type_name(1), "MOSTLY_F16");
    ck_assert_str_eq(model_file_type_name(7), "MOSTLY_Q8_0");
    ck_assert_str_eq(model_file_type_name(14), "MOSTLY_Q4_K_S");
    ck_assert_str_eq(model_file_type_name(15), "MOSTLY_Q4_K_M");
    ck_assert_str_eq(model_file_type_name(18), "MOSTLY_Q6_K");
    ck_assert_str_eq(model_file_type_name(30), "MOSTLY_IQ4_XS");
    ck_assert_str_eq(model_file_type_name(32), "MOSTLY_BF16");
    ck_assert_str_eq(model_file_type_name(37), "MOSTLY_TQ2_0");
    ck_assert_ptr_null(model_file_type_name(1000));
    ck_assert_ptr_null(model_file_type_name(UINT32_MAX));
}
END_TEST

START_TEST(refuse_f16_norm)
{
    tiny_opts o = {.bad_type_name = "output_norm.weight", .bad_type = QT_F16};
    expect_refusal(&o, "output_norm.weight", "must be F32");
}
END_TEST

START_TEST(tiny_models_run)
{
    /* llama (separate output, adjacent rope pairs) and qwen2 (biases, tied
     * output, NeoX pairs), F32 and F16 weights: load, hyperparameters as
     * written, finite logits. */
    const char *arch[] = {"llama", "qwen2", "llama"};
    uint32_t wt[] = {QT_F32, QT_F32, QT_F16};
    for (int k = 0; k < 3; k++) {
        tiny_opts o = {.arch = arch[k], .weight_type = wt[k]};
        char path[128], err[256];
        write_tiny(&o, path, sizeof path);
        model *m = load_or_fail(path);
        const model_hparams *hp = model_hparams_of(m);
        ck_assert_str_eq(hp->arch_name, arch[k]);
        ck_assert_int_eq(hp->n_vocab, T_VOCAB);
        ck_assert_int_eq(hp->n_layer, T_LAYERS);
        ck_assert_int_eq(hp->head_dim, T_EMBD / T_HEADS);
        ck_assert(hp->tied_output == (k == 1));
        ck_assert(hp->qkv_bias == (k == 1));
        ck_assert(hp->rope_neox == (k == 1));
        kv_cache *kv = NULL;
        model_ctx *mc = NULL;
        ck_assert(model_kv_new(m, 0, 16, KV_F32, &kv, err, sizeof err) == 0);
        ck_assert_int_eq(kv_n_ctx(kv), 16); /* capped */
        ck_assert(model_ctx_new(m, 4, &mc, err, sizeof err) == 0);
        float lg[T_VOCAB];
        for (int p = 0; p < 6; p++) {
            model_token t = {(p * 7) % T_VOCAB, p, kv, true};
            model_batch b = {1, &t};
            ck_assert_msg(model_decode(mc, &b, lg, err, sizeof err) == 0, "%s", err);
            for (int i = 0; i < T_VOCAB; i++)
                ck_assert(isfinite(lg[i]));
        }
        model_ctx_free(mc);
        kv_free(kv);
        model_free(m);
        unlink(path);
    }
}
END_TEST

static void assert_close(const float *a, const float *b, int n, float tol);

/* Logits after feeding 8 tokens to the model in `path`. */
static void file_logits(const char *path, float *out, int *scaling)
{
    char err[256];
    model *m = load_or_fail(path);
    if (scaling)
        *scaling = model_hparams_of(m)->rope_scaling;
    kv_cache *kv = NULL;
    model_ctx *mc = NULL;
    ck_assert(model_kv_new(m, 16, 0, KV_F32, &kv, err, sizeof err) == 0);
    ck_assert(model_ctx_new(m, 8, &mc, err, sizeof err) == 0);
    model_token t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (model_token){(i * 5 + 3) % T_VOCAB, i, kv, i == 7};
    model_batch b = {8, t};
    ck_assert_msg(model_decode(mc, &b, out, err, sizeof err) == 0, "%s", err);
    model_ctx_free(mc);
    kv_free(kv);
    model_free(m);
}

/* Logits after feeding 8 tokens to a tiny model written with o. */
static void tiny_logits(const tiny_opts *o, float *out, int *scaling)
{
    char path[128];
    write_tiny(o, path, sizeof path);
    file_logits(path, out, scaling);
    unlink(path);
}

START_TEST(rope_scaling_variants)
{
    /* linear x2, rope_freqs.weight = 2 and llama3 scaling whose band puts
     * every frequency in the scaled range all halve every rotation speed:
     * the same logits. Factors of 1 change nothing. */
    float plain[T_VOCAB], lin[T_VOCAB], freqs2[T_VOCAB], l3[T_VOCAB],
        ones[T_VOCAB];
    int sc;
    tiny_opts o0 = {.arch = "llama"};
    tiny_logits(&o0, plain, &sc);
    ck_assert_int_eq(sc, MODEL_ROPE_SCALING_NONE);
    tiny_opts o1 = {.arch = "llama", .rope_type = "linear", .rope_factor = 2.0f};
    tiny_logits(&o1, lin, &sc);
    ck_assert_int_eq(sc, MODEL_ROPE_SCALING_LINEAR);
    tiny_opts o2 = {.arch = "llama", .rope_freqs = 2.0f};
    tiny_logits(&o2, freqs2, &sc);
    ck_assert_int_eq(sc, MODEL_ROPE_SCALING_FREQS);
    tiny_opts o3 = {.arch = "llama", .rope_type = "llama3", .rope_factor = 2.0f,
                    .llama3_keys = true};
    tiny_logits(&o3, l3, &sc);
    ck_assert_int_eq(sc, MODEL_ROPE_SCALING_FREQS);
    tiny_opts o4 = {.arch = "llama", .rope_freqs = 1.0f};
    tiny_logits(&o4, ones, &sc);

    assert_close(lin, freqs2, T_VOCAB, 0.0f);
    assert_close(lin, l3, T_VOCAB, 0.0f);
    assert_close(plain, ones, T_VOCAB, 0.0f);
    float diff = 0;
    for (int i = 0; i < T_VOCAB; i++)
        diff = fmaxf(diff, fabsf(plain[i] - lin[i]));
    ck_assert_msg(diff > 1e-4f, "scaling changed nothing (%g)", (double)diff);
}
END_TEST

START_TEST(refuse_unsupported_rope_scaling)
{
    tiny_opts o = {.rope_type = "yarn", .rope_factor = 4.0f};
    expect_refusal(&o, "rope scaling", "yarn");
}
END_TEST

/* ------------------------------------------------------------ ops */

START_TEST(fast_dequantize_matches_reference)
{
    /* ops' fast row converters give exactly quant.c's values */
    const uint32_t types[] = {QT_F16, QT_Q8_0, QT_Q4_0, QT_Q4_K, QT_Q6_K,
                              QT_Q5_0, QT_F32};
    enum { N = 1024 };
    float x[N], a[N], b[N];
    static unsigned char q[N * 4];
    rng_state = 777;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        for (int round = 0; round < 20; round++) {
            float scale = powf(10.0f, (float)(round % 7) - 3.0f);
            for (int i = 0; i < N; i++)
                x[i] = frand(scale) + (round % 3 == 0 ? 0.5f * scale : 0.0f);
            ck_assert_int_eq(qt_quantize_row(types[k], x, q, N), 0);
            ck_assert_int_eq(qt_dequantize_row(types[k], q, a, N), 0);
            ops_dequantize_row(types[k], q, b, N);
            ck_assert_msg(memcmp(a, b, sizeof a) == 0, "%s differs (round %d)",
                          qt_name(types[k]), round);
        }
    }
}
END_TEST

START_TEST(matmul_rounds_activations_like_the_kernels)
{
    /* a Q8_0 matrix product equals the integer reference dot product of
     * quant.c (activations quantized to Q8_0) up to float rounding */
    enum { ROWS = 8, COLS = 256, BATCH = 3 };
    static float w[ROWS * COLS], x[BATCH * COLS], out[BATCH * ROWS];
    static unsigned char wq[ROWS * COLS * 2], xq[COLS * 2];
    rng_state = 99;
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = frand(1.0f);
    for (int i = 0; i < BATCH * COLS; i++)
        x[i] = frand(2.0f);
    const uint32_t types[] = {QT_Q8_0, QT_Q4_K, QT_Q6_K, QT_Q4_0};
    for (size_t k = 0; k < 4; k++) {
        uint64_t rb;
        ck_assert_int_eq(qt_row_size(types[k], COLS, &rb), 0);
        for (int r = 0; r < ROWS; r++)
            ck_assert_int_eq(qt_quantize_row(types[k], w + r * COLS, wq + r * rb, COLS), 0);
        ops_matrix m = {wq, types[k], ROWS, COLS, rb, REPACK_NONE};
        static float row[COLS], act[BATCH * COLS];
        static unsigned char actq[COLS * 4 + 64];
        ops_scratch sc = {row, act, actq};
        ops_matmul(out, ROWS, &m, x, COLS, BATCH, &sc);
        for (int t = 0; t < BATCH; t++) {
            ck_assert_int_eq(qt_quantize_act(types[k], x + t * COLS, xq, COLS), 0);
            for (int r = 0; r < ROWS; r++) {
                float want = qt_dot_q(types[k], wq + r * rb, xq, COLS);
                ck_assert_msg(fabsf(out[t * ROWS + r] - want) <= 1e-4f * (1.0f + fabsf(want)),
                              "%s row %d: %g vs %g", qt_name(types[k]), r,
                              (double)out[t * ROWS + r], (double)want);
            }
        }
    }
}
END_TEST

/* ------------------------------------------------------------ KV cache */

static model *tiny_llama(char *path, size_t cap)
{
    tiny_opts o = {.arch = "llama"};
    write_tiny(&o, path, cap);
    return load_or_fail(path);
}

/* Logits of the last token of ids[0..n) fed one at a time into kv. */
static void feed_one_by_one(model *m, model_ctx *mc, kv_cache *kv,
                            const int32_t *ids, int n, int pos0, float *out)
{
    char err[256];
    for (int i = 0; i < n; i++) {
        model_token t = {ids[i], pos0 + i, kv, i == n - 1};
        model_batch b = {1, &t};
        ck_assert_msg(model_decode(mc, &b, out, err, sizeof err) == 0, "%s", err);
    }
}

static void assert_close(const float *a, const float *b, int n, float tol)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= tol, "logit %d: %g vs %g", i,
                      (double)a[i], (double)b[i]);
}

START_TEST(kv_batch_equals_one_by_one)
{
    const int kv_types[] = {KV_F16, KV_F32};
    char path[128], err[256];
    model *m = tiny_llama(path, sizeof path);
    model_ctx *mc = NULL;
    ck_assert(model_ctx_new(m, 5, &mc, err, sizeof err) == 0); /* 12 > 5: slices */
    int32_t ids[12] = {1, 5, 9, 13, 2, 40, 41, 7, 7, 7, 30, 11};
    for (int k = 0; k < 2; k++) {
        kv_cache *a = NULL, *b = NULL;
        ck_assert(model_kv_new(m, 32, 0, kv_types[k], &a, err, sizeof err) == 0);
        ck_assert(model_kv_new(m, 32, 0, kv_types[k], &b, err, sizeof err) == 0);
        float la[T_VOCAB], lb[T_VOCAB];
        /* prefill 12 tokens in one batch, then one more token */
        model_token t[12];
        for (int i = 0; i < 12; i++)
            t[i] = (model_token){ids[i], i, a, i == 11};
        model_batch bt = {12, t};
        ck_assert(model_decode(mc, &bt, la, err, sizeof err) == 0);
        feed_one_by_one(m, mc, b, ids, 12, 0, lb);
        assert_close(la, lb, T_VOCAB, 1e-5f);
        ck_assert_int_eq(kv_len(a), 12);
        int32_t next = 17;
        feed_one_by_one(m, mc, a, &next, 1, 12, la);
        feed_one_by_one(m, mc, b, &next, 1, 12, lb);
        assert_close(la, lb, T_VOCAB, 1e-5f);
        kv_free(a);
        kv_free(b);
    }
    model_ctx_free(mc);
    model_free(m);
    unlink(path);
}
END_TEST

START_TEST(kv_two_sequences_in_one_batch)
{
    /* Continuous batching: tokens of two sequences interleaved in one
     * batch give each sequence the logits it gets alone. */
    char path[128], err[256];
    model *m = tiny_llama(path, sizeof path);
    model_ctx *mc = NULL;
    ck_assert(model_ctx_new(m, 16, &mc, err, sizeof err) == 0);
    int32_t s1[4] = {3, 4, 5, 6}, s2[3] = {20, 21, 22};
    kv_cache *a = NULL, *b = NULL, *a1 = NULL, *b1 = NULL;
    ck_assert(model_kv_new(m, 16, 0, KV_F16, &a, err, sizeof err) == 0);
    ck_assert(model_kv_new(m, 16, 0, KV_F16, &b, err, sizeof err) == 0);
    ck_assert(model_kv_new(m, 16, 0, KV_F16, &a1, err, sizeof err) == 0);
    ck_assert(model_kv_new(m, 16, 0, KV_F16, &b1, err, sizeof err) == 0);
    model_token t[7] = {
        {s1[0], 0, a, false}, {s2[0], 0, b, false}, {s1[1], 1, a, false},
        {s2[1], 1, b, false}, {s1[2], 2, a, false}, {s1[3], 3, a, true},
        {s2[2], 2, b, true},
    };
    float both[2 * T_VOCAB], la[T_VOCAB], lb[T_VOCAB];
    model_batch bt = {7, t};
    ck_assert_msg(model_decode(mc, &bt, both, err, sizeof err) == 0, "%s", err);
    feed_one_by_one(m, mc, a1, s1, 4, 0, la);
    feed_one_by_one(m, mc, b1, s2, 3, 0, lb);
    assert_close(both, la, T_VOCAB, 1e-5f);
    assert_close(both + T_VOCAB, lb, T_VOCAB, 1e-5f);
    kv_free(a);
    kv_free(b);
    kv_free(a1);
    kv_free(b1);
    model_ctx_free(mc);
    model_free(m);
    unlink(path);
}
END_TEST

START_TEST(kv_truncate_and_redo)
{
    char path[128], err[256];
    model *m = tiny_llama(path, sizeof path);
    model_ctx *mc = NULL;
    ck_assert(model_ctx_new(m, 8, &mc, err, sizeof err) == 0);
    kv_cache *a = NULL, *b = NULL;
    ck_assert(model_kv_new(m, 16, 0, KV_F16, &a, err, sizeof err) == 0);
    ck_assert(model_kv_new(m, 16, 0, KV_F16, &b, err, sizeof err) == 0);
    int32_t x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {1, 2, 3, 40, 41, 42};
    float la[T_VOCAB], lb[T_VOCAB];
    feed_one_by_one(m, mc, a, x, 6, 0, la);
    /* keep the common prefix, continue differently */
    ck_assert_int_eq(kv_truncate(a, 3), 0);
    ck_assert_int_eq(kv_len(a), 3);
    ck_assert_int_ne(kv_truncate(a, 4), 0); /* cannot grow */
    feed_one_by_one(m, mc, a, y + 3, 3, 3, la);
    feed_one_by_one(m, mc, b, y, 6, 0, lb);
    assert_close(la, lb, T_VOCAB, 1e-5f);
    kv_clear(a);
    ck_assert_int_eq(kv_len(a), 0);
    feed_one_by_one(m, mc, a, y, 6, 0, la);
    assert_close(la, lb, T_VOCAB, 1e-5f);
    kv_free(a);
    kv_free(b);
    model_ctx_free(mc);
    model_free(m);
    unlink(path);
}
END_TEST

START_TEST(decode_refuses_bad_batches)
{
    char path[128], err[256];
    model *m = tiny_llama(path, sizeof path);
    model_ctx *mc = NULL;
    ck_assert(model_ctx_new(m, 8, &mc, err, sizeof err) == 0);
    kv_cache *a = NULL, *other = NULL;
    ck_assert(model_kv_new(m, 4, 0, KV_F16, &a, err, sizeof err) == 0);
    ck_assert(kv_new(3, 16, 4, KV_F16, &other, err, sizeof err) == 0);
    float lg[T_VOCAB];

    model_token bad_id = {T_VOCAB, 0, a, true};
    model_batch b = {1, &bad_id};
    ck_assert_int_ne(model_decode(mc, &b, lg, err, sizeof err), 0);
    ck_assert(strstr(err, "out of range") != NULL);

    /* a good token followed by a gap: nothing is applied */
    model_token gap[2] = {{1, 0, a, false}, {2, 2, a, true}};
    b = (model_batch){2, gap};
    ck_assert_int_ne(model_decode(mc, &b, lg, err, sizeof err), 0);
    ck_assert(strstr(err, "position 2") != NULL);
    ck_assert_int_eq(kv_len(a), 0);

    model_token wrong_kv = {1, 0, other, true};
    b = (model_batch){1, &wrong_kv};
    ck_assert_int_ne(model_decode(mc, &b, lg, err, sizeof err), 0);

    model_token want = {1, 0, a, true};
    b = (model_batch){1, &want};
    ck_assert_int_ne(model_decode(mc, &b, NULL, err, sizeof err), 0);

    /* fill the 4 positions, the fifth is refused */
    int32_t ids[4] = {1, 2, 3, 4};
    feed_one_by_one(m, mc, a, ids, 4, 0, lg);
    model_token full = {5, 4, a, true};
    b = (model_batch){1, &full};
    ck_assert_int_ne(model_decode(mc, &b, lg, err, sizeof err), 0);
    ck_assert(strstr(err, "context full") != NULL);
    ck_assert_int_eq(kv_len(a), 4);

    kv_free(a);
    kv_free(other);
    model_ctx_free(mc);
    model_free(m);
    unlink(path);
}
END_TEST

/* ------------------------------------------------------------ quantize */

START_TEST(quantize_round_trip)
{
    SKIP_WITHOUT_DATA(dir);
    char in[4400];
    snprintf(in, sizeof in, "%s/models/stories260K.gguf", dir);
    ref_file rf;
    ref_load(dir, "stories260K", &rf);
    const ref_case *r = &rf.c[0];
    char err[512];

    const uint32_t types[] = {QT_Q8_0, QT_Q4_0, QT_Q4_K};
    for (int k = 0; k < 3; k++) {
        char out[64];
        snprintf(out, sizeof out, "/tmp/hearth_test_q_XXXXXX");
        int fd = mkstemp(out);
        ck_assert_int_ge(fd, 0);
        close(fd);
        model_quantize_stats st;
        ck_assert_msg(model_quantize(in, out, types[k], 0, &st, err, sizeof err) == 0,
                      "%s", err);
        printf("quantize %s: %d tensors, %d quantized, %d fallback, %d kept; "
               "%llu -> %llu bytes\n", qt_name(types[k]), st.n_tensors,
               st.n_quantized, st.n_fallback, st.n_kept,
               (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out);
        ck_assert_int_eq(st.n_tensors, 48);
        ck_assert_int_eq(st.n_kept, 11); /* 10 layer norms + output norm */
        ck_assert_int_lt(st.bytes_out, st.bytes_in / 2);

        model *m = load_or_fail(out);
        const gguf_file *f = model_gguf(m);
        /* metadata copied, file type updated, tensor types as promised */
        gguf_str s;
        ck_assert_int_eq(gguf_get_str(f, "general.architecture", &s), 0);
        ck_assert(gguf_str_eq(s, "llama"));
        const gguf_kv *toks = NULL;
        ck_assert_int_eq(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &toks), 0);
        ck_assert_uint_eq(toks->arr_len, 512);
        uint32_t ft = 99;
        ck_assert_int_eq(gguf_get_u32(f, "general.file_type", &ft), 0);
        /* q4_k: every matrix falls back (rows of 64), most to Q5_0 */
        ck_assert_uint_eq(ft, types[k] == QT_Q8_0 ? 7 : types[k] == QT_Q4_0 ? 2 : 8);
        ck_assert_str_eq(model_file_type_name(ft), types[k] == QT_Q8_0   ? "MOSTLY_Q8_0"
                                                   : types[k] == QT_Q4_0 ? "MOSTLY_Q4_0"
                                                                         : "MOSTLY_Q5_0");
        ck_assert_uint_eq(st.file_type, ft);
        const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
        ck_assert_uint_eq(t->type, QT_F16); /* rows of 172 */
        t = gguf_find_tensor(f, "blk.0.attn_norm.weight");
        ck_assert_uint_eq(t->type, QT_F32);
        t = gguf_find_tensor(f, "blk.0.attn_q.weight");
        if (types[k] == QT_Q4_K) {
            /* rows of 64 do not hold a 256-value super-block */
            ck_assert_uint_eq(t->type, QT_Q5_0);
            ck_assert_int_eq(st.n_quantized, 0);
            ck_assert_int_eq(st.n_fallback, 37);
            ck_assert_uint_eq(st.main_type, QT_Q5_0);
        } else {
            ck_assert_uint_eq(t->type, types[k]);
            ck_assert_int_eq(st.n_quantized, 32);
            ck_assert_int_eq(st.n_fallback, 5);
        }

        model_ctx *mc = NULL;
        ck_assert(model_ctx_new(m, 64, &mc, err, sizeof err) == 0);
        int32_t gen[32];
        greedy_run(m, mc, r->prompt, r->n_prompt, 32, gen);
        int same = 0;
        while (same < 32 && gen[same] == r->greedy[same])
            same++;
        printf("  greedy tokens equal to the F32 reference: %d of 32\n", same);
        if (types[k] == QT_Q8_0)
            ck_assert_int_ge(same, 16);
        else
            ck_assert_int_ge(same, 4); /* ", there was a" */
        /* sane text: tokens decode to printable text, not one repeated id */
        tok_vocab *v = NULL;
        ck_assert_msg(tok_load(f, &v, err, sizeof err) == 0, "%s", err);
        char text[1024];
        long len = tok_decode(v, gen, 32, false, text, sizeof text - 1);
        ck_assert(len > 0 && len < (long)sizeof text);
        text[len] = 0;
        int printable = 0, distinct = 0;
        for (long i = 0; i < len; i++)
            printable += (text[i] >= 32 && text[i] < 127) || text[i] == '\n';
        for (int i = 1; i < 32; i++)
            distinct += gen[i] != gen[0];
        printf("  text: %s\n", text);
        ck_assert_int_ge(printable * 10, (int)len * 9);
        ck_assert_int_ge(distinct, 8);
        tok_free(v);
        model_ctx_free(mc);
        model_free(m);
        unlink(out);
    }
    /* a type without quantize support is refused before anything is written */
    ck_assert_int_ne(model_quantize(in, "/tmp/hearth_never_written", QT_TYPE_MAX + 1, 0,
                                    NULL, err, sizeof err), 0);
    ck_assert_int_ne(access("/tmp/hearth_never_written", F_OK), 0);
    ref_free(&rf);
}
END_TEST

/* The tiny llama model: 16 matrices (token_embd, output, 7 per layer)
 * and 5 norms. */
enum { TINY_MATRICES = 2 + 7 * T_LAYERS, TINY_NORMS = 1 + 2 * T_LAYERS };

/* Every matrix of `path` is `want`, every 1-D tensor F32, and
 * general.file_type is `ft`. */
static void assert_file_types(const char *path, uint32_t want, uint32_t ft)
{
    char err[256];
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f, err, sizeof err) == 0, "%s", err);
    int n_matrix = 0;
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        bool matrix = t->n_dims >= 2 && t->ne[1] > 1;
        n_matrix += matrix;
        ck_assert_msg(t->type == (matrix ? want : QT_F32), "%.*s is %s",
                      (int)t->name.len, t->name.ptr, qt_name(t->type));
    }
    ck_assert_int_eq(n_matrix, TINY_MATRICES);
    uint32_t got = 99;
    ck_assert_int_eq(gguf_get_u32(f, "general.file_type", &got), 0);
    ck_assert_uint_eq(got, ft);
    gguf_close(f);
}

/* Stats of a tiny model quantized with every matrix in the type asked. */
static void assert_tiny_stats(const model_quantize_stats *st,
                              int n_requantized, uint32_t ft)
{
    ck_assert_int_eq(st->n_tensors, TINY_MATRICES + TINY_NORMS);
    ck_assert_int_eq(st->n_quantized, TINY_MATRICES);
    ck_assert_int_eq(st->n_fallback, 0);
    ck_assert_int_eq(st->n_kept, TINY_NORMS);
    ck_assert_int_eq(st->n_requantized, n_requantized);
    ck_assert_uint_eq(st->file_type, ft);
}

static float max_diff(const float *a, const float *b, int n)
{
    float d = 0;
    for (int i = 0; i < n; i++)
        d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

static int count_dir(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    int n = -1;
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static void read_small(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = 0;
    fclose(fp);
}

START_TEST(quantize_refuses_requantize_without_flag)
{
    tiny_opts o = {.weight_type = QT_Q4_0};
    char in[128], err[512] = "";
    write_tiny(&o, in, sizeof in);
    char dir[] = "/tmp/hearth_test_qdir_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char out[64];
    snprintf(out, sizeof out, "%s/out.gguf", dir);

    model_quantize_stats st;
    memset(&st, 0xff, sizeof st);
    int rc = model_quantize(in, out, QT_Q8_0, 0, &st, err, sizeof err);
    ck_assert_int_eq(rc, MODEL_QUANTIZE_NEEDS_REQUANT);
    ck_assert_msg(strstr(err, "16 weight matrices are already quantized") &&
                  strstr(err, "is Q4_0") && strstr(err, "Q8_0"), "%s", err);
    ck_assert_int_eq(st.n_tensors, 0); /* refused before any work */
    ck_assert_int_eq(count_dir(dir), 0);

    /* an existing OUT is left as it was */
    FILE *fp = fopen(out, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("keep", fp);
    fclose(fp);
    rc = model_quantize(in, out, QT_F16, 0, &st, err, sizeof err);
    ck_assert_int_eq(rc, MODEL_QUANTIZE_NEEDS_REQUANT);
    char buf[16];
    read_small(out, buf, sizeof buf);
    ck_assert_str_eq(buf, "keep");
    ck_assert_int_eq(count_dir(dir), 1);

    /* Q4_0 matrices asked for as Q4_0 need no requantization: copied */
    rc = model_quantize(in, out, QT_Q4_0, 0, &st, err, sizeof err);
    ck_assert_msg(rc == MODEL_QUANTIZE_OK, "%s", err);
    assert_tiny_stats(&st, 0, 2);
    ck_assert_uint_eq(st.bytes_out, st.bytes_in);
    assert_file_types(out, QT_Q4_0, 2);
    unlink(out);
    rmdir(dir);
    unlink(in);
}
END_TEST

START_TEST(quantize_requantizes_when_allowed)
{
    /* the same random weights as F32 and as Q4_0 (write_tiny is seeded) */
    tiny_opts of = {.weight_type = QT_F32}, oq = {.weight_type = QT_Q4_0};
    float lf[T_VOCAB], lq[T_VOCAB], lr[T_VOCAB];
    tiny_logits(&of, lf, NULL);
    char in[128], out[160], err[512];
    write_tiny(&oq, in, sizeof in);
    file_logits(in, lq, NULL);
    snprintf(out, sizeof out, "%s.q8", in);

    model_quantize_stats st;
    int rc = model_quantize(in, out, QT_Q8_0, MODEL_QUANTIZE_ALLOW_REQUANTIZE,
                            &st, err, sizeof err);
    ck_assert_msg(rc == MODEL_QUANTIZE_OK, "%s", err);
    assert_tiny_stats(&st, TINY_MATRICES, 7);
    ck_assert_uint_eq(st.requant_from, UINT64_C(1) << QT_Q4_0);
    ck_assert_uint_eq(st.main_type, QT_Q8_0);
    assert_file_types(out, QT_Q8_0, 7);

    /* Q8_0 holds Q4_0's values almost exactly: the result is much closer
     * to its source than the Q4_0 model is to the F32 one */
    file_logits(out, lr, NULL);
    float d_req = max_diff(lr, lq, T_VOCAB), d_q4 = max_diff(lq, lf, T_VOCAB);
    printf("requantize Q4_0 -> Q8_0: logits within %g of the source "
           "(Q4_0 vs F32: %g)\n", (double)d_req, (double)d_q4);
    ck_assert_msg(d_q4 > 1e-3f, "Q4_0 changed nothing (%g)", (double)d_q4);
    ck_assert_msg(d_req < d_q4 / 4, "%g vs %g", (double)d_req, (double)d_q4);
    unlink(out);
    unlink(in);
}
END_TEST

START_TEST(quantize_float_sources_unchanged)
{
    /* F32 -> Q4_0 gives exactly the bytes of quantizing each row (as
     * write_tiny does for a Q4_0 model); F16 -> Q4_0 needs no flag and
     * stays close to its source. */
    tiny_opts of = {.weight_type = QT_F32}, oh = {.weight_type = QT_F16},
              oq = {.weight_type = QT_Q4_0};
    char f32p[128], f16p[128], q4p[128], out[160], err[512];
    write_tiny(&of, f32p, sizeof f32p);
    write_tiny(&oh, f16p, sizeof f16p);
    write_tiny(&oq, q4p, sizeof q4p);
    snprintf(out, sizeof out, "%s.q4", f32p);
    model_quantize_stats st;
    ck_assert_msg(model_quantize(f32p, out, QT_Q4_0, 0, &st, err, sizeof err)
                  == MODEL_QUANTIZE_OK, "%s", err);
    assert_tiny_stats(&st, 0, 2);
    gguf_file *a = NULL, *b = NULL;
    ck_assert(gguf_open(out, &a, err, sizeof err) == 0);
    ck_assert(gguf_open(q4p, &b, err, sizeof err) == 0);
    ck_assert_uint_eq(gguf_n_tensors(a), gguf_n_tensors(b));
    for (size_t i = 0; i < gguf_n_tensors(a); i++) {
        const gguf_tensor *ta = gguf_tensor_at(a, i), *tb = gguf_tensor_at(b, i);
        ck_assert_uint_eq(ta->type, tb->type);
        ck_assert_uint_eq(ta->nbytes, tb->nbytes);
        ck_assert(memcmp(ta->data, tb->data, ta->nbytes) == 0);
    }
    gguf_close(a);
    gguf_close(b);
    unlink(out);

    float lh[T_VOCAB], lq[T_VOCAB], lr[T_VOCAB];
    file_logits(f16p, lh, NULL);
    file_logits(q4p, lq, NULL);
    snprintf(out, sizeof out, "%s.q4", f16p);
    ck_assert_msg(model_quantize(f16p, out, QT_Q4_0, 0, &st, err, sizeof err)
                  == MODEL_QUANTIZE_OK, "%s", err);
    assert_tiny_stats(&st, 0, 2);
    assert_file_types(out, QT_Q4_0, 2);
    file_logits(out, lr, NULL);
    /* as far from the F16 model as the Q4_0 model is from the F32 one */
    float d = max_diff(lr, lh, T_VOCAB), d_ref = max_diff(lq, lh, T_VOCAB);
    printf("F16 -> Q4_0: logits within %g of the source (%g for Q4_0 "
           "made from F32)\n", (double)d, (double)d_ref);
    ck_assert_msg(d <= 2 * d_ref + 1e-3f, "%g vs %g", (double)d, (double)d_ref);
    unlink(out);
    unlink(f32p);
    unlink(f16p);
    unlink(q4p);
}
END_TEST

START_TEST(quantize_refuses_undequantizable_type)
{
    /* a matrix in a type the engine cannot read (IQ4_NL today) cannot be
     * requantized, flag or not; the message names tensor and type */
    uint32_t bad = UINT32_MAX;
    for (uint32_t t = 0; t < QT_TYPE_MAX && bad == UINT32_MAX; t++) {
        const qt_traits *tr = qt_traits_of(t);
        if (tr && !tr->can_dequantize && T_EMBD % tr->block_size == 0)
            bad = t;
    }
    ck_assert_uint_ne(bad, UINT32_MAX);
    tiny_opts o = {.bad_type_name = "blk.1.attn_q.weight", .bad_type = bad};
    char in[128], out[160], err[512] = "";
    write_tiny(&o, in, sizeof in);
    snprintf(out, sizeof out, "%s.out", in);
    model_quantize_stats st;
    int rc = model_quantize(in, out, QT_Q8_0, MODEL_QUANTIZE_ALLOW_REQUANTIZE,
                            &st, err, sizeof err);
    ck_assert_int_eq(rc, MODEL_QUANTIZE_ERROR);
    ck_assert_msg(strstr(err, "blk.1.attn_q.weight") &&
                  strstr(err, qt_name(bad)) && strstr(err, "cannot be "
                  "dequantized"), "%s", err);
    ck_assert_int_ne(access(out, F_OK), 0);
    unlink(in);
}
END_TEST

/* A llama.cpp Q4_K_M file (Q4_K and Q6_K matrices) to Q8_0: refused
 * without the flag, with it every matrix is Q8_0 and the logits stay
 * close to the source's. */
START_TEST(quantize_requantizes_q4_k_m)
{
    SKIP_WITHOUT_DATA(dir);
    char in[4400], out[128], err[512];
    snprintf(in, sizeof in, "%s/models/synth-llama-56m-Q4_K_M.gguf", dir);
    snprintf(out, sizeof out, "/tmp/hearth_test_rq_XXXXXX");
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    close(fd);
    model_quantize_stats st;
    ck_assert_int_eq(model_quantize(in, out, QT_Q8_0, 0, &st, err, sizeof err),
                     MODEL_QUANTIZE_NEEDS_REQUANT);
    ck_assert_msg(model_quantize(in, out, QT_Q8_0,
                                 MODEL_QUANTIZE_ALLOW_REQUANTIZE, &st, err,
                                 sizeof err) == MODEL_QUANTIZE_OK, "%s", err);
    ck_assert_int_eq(st.n_quantized, st.n_requantized);
    ck_assert_int_eq(st.n_quantized + st.n_kept, st.n_tensors);
    ck_assert_uint_eq(st.requant_from, (UINT64_C(1) << QT_Q4_K) |
                                           (UINT64_C(1) << QT_Q6_K));
    ck_assert_uint_eq(st.file_type, 7);

    model *ms = load_or_fail(in), *mr = load_or_fail(out);
    ck_assert_uint_eq(gguf_find_tensor(model_gguf(mr), "output.weight")->type,
                      QT_Q8_0);
    int n_vocab = model_hparams_of(ms)->n_vocab;
    float *ls = malloc(sizeof(float) * (size_t)n_vocab * 2);
    ck_assert_ptr_nonnull(ls);
    float *lr = ls + n_vocab;
    model *mods[2] = {ms, mr};
    float *lgs[2] = {ls, lr};
    for (int k = 0; k < 2; k++) {
        kv_cache *kv = NULL;
        model_ctx *mc = NULL;
        ck_assert(model_kv_new(mods[k], 8, 0, KV_F32, &kv, err, sizeof err) == 0);
        ck_assert(model_ctx_new(mods[k], 8, &mc, err, sizeof err) == 0);
        model_token t[4];
        for (int i = 0; i < 4; i++)
            t[i] = (model_token){1 + i * 997, i, kv, i == 3};
        model_batch b = {4, t};
        ck_assert_msg(model_decode(mc, &b, lgs[k], err, sizeof err) == 0, "%s",
                      err);
        model_ctx_free(mc);
        kv_free(kv);
    }
    int32_t as, ar;
    argmax_of(ls, n_vocab, &as);
    argmax_of(lr, n_vocab, &ar);
    float d = max_diff(ls, lr, n_vocab), spread = 0;
    for (int i = 0; i < n_vocab; i++)
        spread = fmaxf(spread, fabsf(ls[i] - ls[as]));
    printf("requantize Q4_K_M -> Q8_0: logits within %g (range %g), "
           "argmax %d / %d\n", (double)d, (double)spread, as, ar);
    ck_assert_int_eq(as, ar);
    ck_assert_msg(d < spread * 0.05f, "%g of %g", (double)d, (double)spread);
    free(ls);
    model_free(ms);
    model_free(mr);
    unlink(out);
}
END_TEST

/* ------------------------------------------------------------ hearth quantize */

/* $HEARTH, or NULL after a visible SKIP line when it is not built. */
static const char *hearth_bin(const char *test)
{
    const char *bin = getenv("HEARTH");
    if (!bin || access(bin, X_OK) != 0) {
        fprintf(stderr, "SKIP %s: $HEARTH not built\n", test);
        return NULL;
    }
    return bin;
}

/* Runs `hearth ARGS`, stdout and stderr into files; the exit status. */
static int run_hearth(const char *bin, const char *args, const char *so,
                      const char *se)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", bin, args, so, se);
    int st = system(cmd);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(hearth_quantize_requantize_flag)
{
    const char *bin = hearth_bin(__func__);
    if (!bin)
        return;
    tiny_opts o = {.weight_type = QT_Q4_0};
    char in[128];
    write_tiny(&o, in, sizeof in);
    char dir[] = "/tmp/hearth_test_qcli_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char out[64], so[160], se[160], args[512], buf[4096];
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    snprintf(so, sizeof so, "%s.stdout", in);
    snprintf(se, sizeof se, "%s.stderr", in);

    snprintf(args, sizeof args, "quantize '%s' '%s' q8_0", in, out);
    ck_assert_int_eq(run_hearth(bin, args, so, se), 1);
    read_small(se, buf, sizeof buf);
    ck_assert_int_eq(count_lines(buf), 1);
    ck_assert_msg(strstr(buf, "already quantized") &&
                  strstr(buf, "--allow-requantize"), "%s", buf);
    ck_assert_int_eq(count_dir(dir), 0);

    snprintf(args, sizeof args, "quantize --allow-requantize '%s' '%s' q8_0",
             in, out);
    ck_assert_int_eq(run_hearth(bin, args, so, se), 0);
    read_small(se, buf, sizeof buf);
    ck_assert_int_eq(count_lines(buf), 1);
    ck_assert_msg(strstr(buf, "warning") && strstr(buf, "16 matrices") &&
                  strstr(buf, "Q4_0") && strstr(buf, "loses quality"), "%s",
                  buf);
    read_small(so, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "(16 Q8_0, 0 fell back, 5 kept)"), "%s", buf);
    assert_file_types(out, QT_Q8_0, 7);
    ck_assert_int_eq(count_dir(dir), 1);

    unlink(out);
    rmdir(dir);
    unlink(so);
    unlink(se);
    unlink(in);
}
END_TEST

/* ------------------------------------------------------------ hearth bench */

/* The table: setup lines, one row per test, the peak RSS; nothing on a
 * stderr that is not a terminal. --json: one object with every field. */
START_TEST(hearth_bench_output)
{
    const char *bin = hearth_bin(__func__);
    if (!bin)
        return;
    tiny_opts o = {.weight_type = QT_Q8_0};
    char in[128], so[160], se[160], args[512], buf[4096];
    write_tiny(&o, in, sizeof in);
    snprintf(so, sizeof so, "%s.stdout", in);
    snprintf(se, sizeof se, "%s.stderr", in);

    snprintf(args, sizeof args, "bench -m '%s' -p 8 -n 4 -r 2 -t 1 "
             "--kernel scalar", in);
    ck_assert_int_eq(run_hearth(bin, args, so, se), 0);
    read_small(se, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
    read_small(so, buf, sizeof buf);
    const char *want[] = {"model:   ", "kernel:  scalar   threads: 1   reps: 2\n",
                          "test ", "pp8 ", "tg4 ", "peak RSS: "};
    const char *line = buf;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_msg(line && strncmp(line, want[i], strlen(want[i])) == 0,
                      "line %zu: want '%s' in:\n%s", i, want[i], buf);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    ck_assert_msg(line && *line == 0, "%s", buf);
    ck_assert(strstr(buf, " ± ") != NULL);

    snprintf(args, sizeof args, "bench -m '%s' -p 8 -n 4 -r 2 -t 1 --json", in);
    ck_assert_int_eq(run_hearth(bin, args, so, se), 0);
    json_error_t je;
    json_t *root = json_load_file(so, 0, &je);
    ck_assert_msg(root != NULL, "%s", je.text);
    ck_assert(json_is_object(root));
    ck_assert_str_eq(json_string_value(json_object_get(root, "arch")), "llama");
    ck_assert(json_string_length(json_object_get(root, "kernel")) > 0);
    ck_assert(json_string_value(json_object_get(root, "model")) != NULL);
    const char *ints[] = {"params", "file_bytes", "kv_bytes", "threads",
                          "reps", "peak_rss_bytes"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        ck_assert_msg(json_integer_value(json_object_get(root, ints[i])) > 0,
                      "%s", ints[i]);
    json_t *res = json_object_get(root, "results");
    ck_assert_int_eq((int)json_array_size(res), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *r = json_array_get(res, i);
        ck_assert_str_eq(json_string_value(json_object_get(r, "test")),
                         i ? "tg4" : "pp8");
        ck_assert_int_eq(json_integer_value(json_object_get(r, "n_tokens")),
                         i ? 4 : 8);
        ck_assert(json_number_value(json_object_get(r, "tps_mean")) > 0);
        ck_assert(json_is_number(json_object_get(r, "tps_stddev")));
        ck_assert_int_eq((int)json_array_size(json_object_get(r, "samples")), 2);
    }
    json_decref(root);
    unlink(so);
    unlink(se);
    unlink(in);
}
END_TEST

/* On a terminal (script(1) makes one) each repetition shows on stderr,
 * erased before the row. */
START_TEST(hearth_bench_progress_on_a_terminal)
{
    const char *bin = hearth_bin(__func__);
    if (!bin)
        return;
    if (system("script -qc true /dev/null >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIP %s: no script(1) to make a terminal\n",
                __func__);
        return;
    }
    tiny_opts o = {.weight_type = QT_F32};
    char in[128], so[160], cmd[1024], buf[4096];
    write_tiny(&o, in, sizeof in);
    snprintf(so, sizeof so, "%s.tty", in);
    snprintf(cmd, sizeof cmd, "script -qc \"'%s' bench -m '%s' -p 8 -n 4 -r 2 "
             "-t 1\" /dev/null >'%s' 2>&1 </dev/null", bin, in, so);
    ck_assert_int_eq(system(cmd), 0);
    read_small(so, buf, sizeof buf);
    const char *order[] = {"test ", "pp8: warm-up", "pp8: rep 1/2, last ",
                           "pp8: rep 2/2, last ", "\r\033[Kpp8 ",
                           "tg4: rep 2/2", "\r\033[Ktg4 ", "peak RSS"};
    const char *at = buf;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *hit = strstr(at, order[i]);
        ck_assert_msg(hit != NULL, "'%s' missing after offset %td in:\n%s",
                      order[i], at - buf, buf);
        at = hit + strlen(order[i]);
    }
    unlink(so);
    unlink(in);
}
END_TEST

/* ------------------------------------------------------------ hearth run */

START_TEST(hearth_run_prints_reference_story)
{
    SKIP_WITHOUT_DATA(dir);
    const char *bin = hearth_bin(__func__);
    if (!bin)
        return;
    char cmd[9000];
    snprintf(cmd, sizeof cmd,
             "'%s' run -m '%s/models/stories260K.gguf' -p 'Once upon a time' "
             "-n 64 --temp 0 2>/dev/null", bin, dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    ck_assert_int_eq(pclose(p), 0);

    char path[4400];
    snprintf(path, sizeof path, "%s/reference/stories260K.json", dir);
    json_t *root = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(root);
    json_t *c0 = json_array_get(json_object_get(root, "cases"), 0);
    char want[8192];
    snprintf(want, sizeof want, "%s%s",
             json_string_value(json_object_get(c0, "prompt")),
             json_string_value(json_object_get(c0, "greedy_text")));
    ck_assert_str_eq(out, want);
    json_decref(root);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *t = tcase_create("reference");
    tcase_set_timeout(t, 600);
    tcase_add_loop_test(t, reference_outputs, 0,
                        (int)(sizeof ref_models / sizeof ref_models[0]));
    tcase_add_test(t, quantize_round_trip);
    tcase_add_test(t, quantize_requantizes_q4_k_m);
    tcase_add_test(t, hearth_run_prints_reference_story);
    suite_add_tcase(s, t);

    t = tcase_create("load");
    tcase_add_test(t, refuse_unsupported_architecture);
    tcase_add_test(t, refuse_missing_tensor);
    tcase_add_test(t, refuse_missing_bias);
    tcase_add_test(t, refuse_wrong_shape);
    tcase_add_test(t, refuse_unsupported_type);
    tcase_add_test(t, refuse_f16_norm);
    tcase_add_test(t, load_error_names_path_once);
    tcase_add_test(t, file_type_names);
    tcase_add_test(t, tiny_models_run);
    tcase_add_test(t, rope_scaling_variants);
    tcase_add_test(t, refuse_unsupported_rope_scaling);
    suite_add_tcase(s, t);

    t = tcase_create("quantize");
    tcase_add_test(t, quantize_refuses_requantize_without_flag);
    tcase_add_test(t, quantize_requantizes_when_allowed);
    tcase_add_test(t, quantize_float_sources_unchanged);
    tcase_add_test(t, quantize_refuses_undequantizable_type);
    tcase_add_test(t, hearth_quantize_requantize_flag);
    suite_add_tcase(s, t);

    t = tcase_create("bench");
    tcase_add_test(t, hearth_bench_output);
    tcase_add_test(t, hearth_bench_progress_on_a_terminal);
    suite_add_tcase(s, t);

    t = tcase_create("ops");
    tcase_add_test(t, fast_dequantize_matches_reference);
    tcase_add_test(t, matmul_rounds_activations_like_the_kernels);
    suite_add_tcase(s, t);

    t = tcase_create("kv");
    tcase_add_test(t, kv_batch_equals_one_by_one);
    tcase_add_test(t, kv_two_sequences_in_one_batch);
    tcase_add_test(t, kv_truncate_and_redo);
    tcase_add_test(t, decode_refuses_bad_batches);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    /* The reference comparisons check llama.cpp's float order, which
     * OpenBLAS does not keep; on kernel paths without the x16 kernels it
     * would be on by default for long prompts (ops.h). */
    if (!getenv("HEARTH_BLAS_MIN"))
        setenv("HEARTH_BLAS_MIN", "0", 1);
    SRunner *r = srunner_create(model_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    /* without the data most tests could not run: SKIP, not PASS */
    return failed ? EXIT_FAILURE : data_dir() ? EXIT_SUCCESS : 77;
}
