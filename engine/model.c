/* model.c - llama / qwen2 from GGUF, and the batched forward pass.
 *
 * Reads top to bottom in the order a model is used: the weights struct,
 * loading (hyperparameters, then every tensor checked against them), KV
 * cache and scratch allocation, the forward pass, and quantization.
 */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "ops.h"
#include "quant.h"
#include "repack.h"

/* ------------------------------------------------------------ weights */

typedef struct model_layer {
    const float *attn_norm;          /* (n_embd) */
    ops_matrix wq;                   /* (n_head*head_dim rows, n_embd cols) */
    ops_matrix wk, wv;               /* (n_head_kv*head_dim, n_embd) */
    const float *bq, *bk, *bv;       /* qwen2: (n_head*hd), (kv_dim), (kv_dim) */
    ops_matrix wo;                   /* (n_embd, n_head*head_dim) */
    const float *ffn_norm;           /* (n_embd) */
    ops_matrix w_gate, w_up;         /* (n_ff, n_embd) */
    ops_matrix w_down;               /* (n_embd, n_ff) */
} model_layer;

struct model {
    gguf_file *owned;                /* set when model_load opened it */
    const gguf_file *f;
    model_hparams hp;
    char arch_name[16];
    ops_matrix tok_embd;             /* (n_vocab, n_embd) */
    const float *output_norm;        /* (n_embd) */
    ops_matrix output;               /* (n_vocab, n_embd); tok_embd when tied */
    model_layer *layers;             /* n_layer */
    float rope_theta_scale;          /* base^(-2/n_rot) */
    float *rope_ff;                  /* (n_rot/2) frequency divisors, or NULL */
    uint64_t n_params;
    void **repacked;                 /* copies made by ops_matrix_repack */
    int n_repacked;
};

/* Sanity limits on hyperparameters: far above any real model, low enough
 * that products of two of them fit in 64 bits and per-token sizes in int. */
#define MODEL_MAX_EMBD (1 << 16)
#define MODEL_MAX_FF (1 << 20)
#define MODEL_MAX_LAYERS 1024
#define MODEL_MAX_HEADS 1024
#define MODEL_MAX_HEAD_DIM KV_MAX_HEAD_DIM
#define MODEL_MAX_VOCAB (1 << 24)

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ loading */

typedef struct loader {
    model *m;
    const gguf_file *f;
    char *err;
    size_t errlen;
} loader;

/* Integer hyperparameter <arch>.<key>: 1 found, 0 absent, -1 bad. */
static int hp_u32(loader *L, const char *key, bool required, uint32_t lo,
                  uint32_t hi, int32_t *out)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", L->m->arch_name, key);
    uint32_t v;
    int rc = gguf_get_u32(L->f, full, &v);
    if (rc == -1) {
        if (required) {
            seterr(L->err, L->errlen, "missing hyperparameter '%s'", full);
            return -1;
        }
        return 0;
    }
    if (rc != 0) {
        seterr(L->err, L->errlen,
               "hyperparameter '%s' has an unsupported type (per-layer "
               "arrays are not supported)", full);
        return -1;
    }
    if (v < lo || v > hi) {
        seterr(L->err, L->errlen, "hyperparameter '%s' = %u out of range [%u, %u]",
               full, v, lo, hi);
        return -1;
    }
    *out = (int32_t)v;
    return 1;
}

static int hp_f32(loader *L, const char *key, bool required, float *out)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", L->m->arch_name, key);
    float v;
    int rc = gguf_get_f32(L->f, full, &v);
    if (rc == -1) {
        if (required) {
            seterr(L->err, L->errlen, "missing hyperparameter '%s'", full);
            return -1;
        }
        return 0;
    }
    if (rc != 0 || !isfinite(v)) {
        seterr(L->err, L->errlen, "hyperparameter '%s' is not a finite number",
               full);
        return -1;
    }
    *out = v;
    return 1;
}

/* Shape as text for messages: "[64, 172]". */
static void shape_str(char *buf, size_t cap, const uint64_t *ne, uint32_t nd)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < nd && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", i ? ", " : "",
                              (unsigned long long)ne[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

/* Find tensor `name` and check it is (cols) when rows == 0, else
 * (cols, rows); `vec_f32` tensors (norms, biases, factors) must be F32.
 * Fills *mat for matrices, *vec for vectors. -1 + message otherwise. */
static int need_tensor(loader *L, const char *name, int64_t cols, int64_t rows,
                       ops_matrix *mat, const float **vec)
{
    const gguf_tensor *t = gguf_find_tensor(L->f, name);
    if (!t) {
        seterr(L->err, L->errlen, "missing tensor '%s'", name);
        return -1;
    }
    uint64_t want[2] = {(uint64_t)cols, (uint64_t)rows};
    uint32_t want_nd = rows ? 2 : 1;
    bool ok = t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS;
    for (uint32_t i = 0; ok && i < GGUF_MAX_DIMS; i++) {
        uint64_t w = i < want_nd ? want[i] : 1;
        uint64_t have = i < t->n_dims ? t->ne[i] : 1;
        if (w != have)
            ok = false;
    }
    if (!ok) {
        char hs[96], ws[64];
        shape_str(hs, sizeof hs, t->ne, t->n_dims);
        shape_str(ws, sizeof ws, want, want_nd);
        seterr(L->err, L->errlen, "tensor '%s' has shape %s, expected %s", name,
               hs, ws);
        return -1;
    }
    const qt_traits *tr = qt_traits_of(t->type);
    if (!tr || !tr->can_dequantize) {
        seterr(L->err, L->errlen,
               "tensor '%s' has unsupported type %s (id %u)", name,
               qt_name(t->type), t->type);
        return -1;
    }
    if (vec && t->type != QT_F32) {
        seterr(L->err, L->errlen,
               "tensor '%s' has type %s; norms, biases and rope factors must "
               "be F32", name, qt_name(t->type));
        return -1;
    }
    uint64_t row_bytes;
    if (qt_row_size(t->type, (uint64_t)cols, &row_bytes) != 0) {
        seterr(L->err, L->errlen,
               "tensor '%s': rows of %lld values do not divide into %s blocks "
               "of %u", name, (long long)cols, tr->name, tr->block_size);
        return -1;
    }
    uint64_t n_rows = rows ? (uint64_t)rows : 1;
    if (row_bytes == 0 || t->nbytes / row_bytes < n_rows || !t->data) {
        seterr(L->err, L->errlen, "tensor '%s': data is shorter than its shape",
               name);
        return -1;
    }
    /* Rows are read as floats / blocks with 16- and 32-bit fields. */
    if ((uintptr_t)t->data % 4 != 0) {
        seterr(L->err, L->errlen,
               "tensor '%s': data is not 4-byte aligned in the file", name);
        return -1;
    }
    if (mat) {
        mat->data = t->data;
        mat->type = t->type;
        mat->rows = (int64_t)n_rows;
        mat->cols = cols;
        mat->row_bytes = row_bytes;
    }
    if (vec)
        *vec = (const float *)t->data;
    return 0;
}

static int need_layer_tensor(loader *L, int il, const char *what, int64_t cols,
                             int64_t rows, ops_matrix *mat, const float **vec)
{
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", il, what);
    return need_tensor(L, name, cols, rows, mat, vec);
}

/* Llama 3.1 frequency-dependent scaling (Meta's published rule): rotations
 * faster than original_context/high_freq_factor wavelengths are kept,
 * those slower than original_context/low_freq_factor are divided by
 * `factor`, and the band between is interpolated linearly in
 * original_context/wavelength. */
typedef struct llama3_scaling {
    double factor, low, high, orig_ctx;
} llama3_scaling;

static double llama3_scale(const llama3_scaling *s, double freq)
{
    const double two_pi = 6.283185307179586;
    double wavelen = two_pi / freq;
    if (wavelen < s->orig_ctx / s->high)
        return freq;
    if (wavelen > s->orig_ctx / s->low)
        return freq / s->factor;
    double smooth = (s->orig_ctx / wavelen - s->low) / (s->high - s->low);
    return (1.0 - smooth) * freq / s->factor + smooth * freq;
}

static int load_llama3_scaling(loader *L, llama3_scaling *s)
{
    float factor = 0.0f, low = 1.0f, high = 4.0f;
    int32_t orig = 8192;
    if (hp_f32(L, "rope.scaling.factor", true, &factor) < 0 ||
        hp_f32(L, "rope.scaling.low_freq_factor", false, &low) < 0 ||
        hp_f32(L, "rope.scaling.high_freq_factor", false, &high) < 0 ||
        hp_u32(L, "rope.scaling.original_context_length", false, 1,
               INT32_MAX / 2, &orig) < 0)
        return -1;
    if (!(factor > 0.0f) || !(low > 0.0f) || !(high > low)) {
        seterr(L->err, L->errlen,
               "llama3 rope scaling needs factor > 0 and high_freq_factor > "
               "low_freq_factor > 0 (have %g, %g, %g)", (double)factor,
               (double)high, (double)low);
        return -1;
    }
    s->factor = factor;
    s->low = low;
    s->high = high;
    s->orig_ctx = orig;
    return 0;
}

/* Read `<arch>.rope.scaling.*`. The angle of pair j at position p is
 * scale * p * base^(-2j/n_rot) / factor[j], factor[j] from rope_freqs.weight
 * when the file has it (how llama.cpp's converter stores Llama 3.1
 * scaling), else computed from llama3 scaling parameters, else 1. YaRN and
 * other schemes are refused. */
static int load_rope(loader *L)
{
    model *m = L->m;
    model_hparams *hp = &m->hp;
    hp->rope_freq_scale = 1.0f;
    hp->rope_scaling = MODEL_ROPE_SCALING_NONE;
    llama3_scaling l3 = {0, 0, 0, 0};
    bool use_l3 = false;

    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch_name);
    gguf_str st = {0};
    int rc = gguf_get_str(L->f, key, &st);
    if (rc == -2) {
        seterr(L->err, L->errlen, "'%s' is not a string", key);
        return -1;
    }
    if (rc == 0 && !gguf_str_eq(st, "none") && st.len > 0) {
        if (gguf_str_eq(st, "linear")) {
            float factor = 1.0f;
            if (hp_f32(L, "rope.scaling.factor", true, &factor) < 0)
                return -1;
            if (!(factor > 0.0f)) {
                seterr(L->err, L->errlen, "rope scaling factor %g is not positive",
                       (double)factor);
                return -1;
            }
            hp->rope_freq_scale = 1.0f / factor;
            hp->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
        } else if (gguf_str_eq(st, "llama3")) {
            if (load_llama3_scaling(L, &l3) < 0)
                return -1;
            use_l3 = true;
        } else {
            int len = st.len > 32 ? 32 : (int)st.len;
            seterr(L->err, L->errlen,
                   "unsupported rope scaling type '%.*s' (supported: none, "
                   "linear, llama3)", len, st.ptr);
            return -1;
        }
    } else if (rc == -1) {
        /* Older files: <arch>.rope.scale_linear */
        float lin = 0.0f;
        int r2 = hp_f32(L, "rope.scale_linear", false, &lin);
        if (r2 < 0)
            return -1;
        if (r2 == 1 && lin > 0.0f && lin != 1.0f) {
            hp->rope_freq_scale = 1.0f / lin;
            hp->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
        }
    }

    int half = hp->n_rot / 2;
    m->rope_theta_scale =
        powf(hp->rope_freq_base, -2.0f / (float)(hp->n_rot > 0 ? hp->n_rot : 1));
    const float *factors = NULL;
    if (gguf_find_tensor(L->f, "rope_freqs.weight")) {
        if (need_tensor(L, "rope_freqs.weight", half, 0, NULL, &factors) < 0)
            return -1;
        use_l3 = false; /* the tensor already holds the factors */
    }
    if (!factors && !use_l3)
        return 0;
    hp->rope_scaling = MODEL_ROPE_SCALING_FREQS;
    m->rope_ff = malloc((size_t)(half > 0 ? half : 1) * sizeof(float));
    if (!m->rope_ff) {
        seterr(L->err, L->errlen, "out of memory");
        return -1;
    }
    for (int j = 0; j < half; j++) {
        if (factors) {
            if (!(factors[j] > 0.0f) || !isfinite(factors[j])) {
                seterr(L->err, L->errlen,
                       "rope_freqs.weight[%d] = %g is not a positive number", j,
                       (double)factors[j]);
                return -1;
            }
            m->rope_ff[j] = factors[j];
        } else {
            double f = pow((double)hp->rope_freq_base,
                           -2.0 * (double)j / (double)hp->n_rot);
            m->rope_ff[j] = (float)(f / llama3_scale(&l3, f));
        }
    }
    return 0;
}

static int load_hparams(loader *L)
{
    model *m = L->m;
    model_hparams *hp = &m->hp;
    gguf_str arch;
    int rc = gguf_get_str(L->f, "general.architecture", &arch);
    if (rc != 0) {
        seterr(L->err, L->errlen, rc == -1 ? "missing 'general.architecture'"
                                           : "'general.architecture' is not a string");
        return -1;
    }
    if (gguf_str_eq(arch, "llama")) {
        hp->arch = MODEL_ARCH_LLAMA;
        hp->rope_neox = false;
        hp->qkv_bias = false;
    } else if (gguf_str_eq(arch, "qwen2")) {
        hp->arch = MODEL_ARCH_QWEN2;
        hp->rope_neox = true;
        hp->qkv_bias = true;
    } else {
        int len = arch.len > 64 ? 64 : (int)arch.len;
        seterr(L->err, L->errlen,
               "unsupported architecture '%.*s' (supported: llama, qwen2)", len,
               arch.ptr);
        return -1;
    }
    snprintf(m->arch_name, sizeof m->arch_name, "%.*s", (int)arch.len, arch.ptr);
    hp->arch_name = m->arch_name;

    if (hp_u32(L, "context_length", true, 1, INT32_MAX / 2, &hp->n_ctx_train) < 0 ||
        hp_u32(L, "embedding_length", true, 1, MODEL_MAX_EMBD, &hp->n_embd) < 0 ||
        hp_u32(L, "block_count", true, 1, MODEL_MAX_LAYERS, &hp->n_layer) < 0 ||
        hp_u32(L, "feed_forward_length", true, 1, MODEL_MAX_FF, &hp->n_ff) < 0 ||
        hp_u32(L, "attention.head_count", true, 1, MODEL_MAX_HEADS, &hp->n_head) < 0)
        return -1;
    hp->n_head_kv = hp->n_head;
    if (hp_u32(L, "attention.head_count_kv", false, 1, MODEL_MAX_HEADS,
               &hp->n_head_kv) < 0)
        return -1;
    if (hp->n_head % hp->n_head_kv != 0) {
        seterr(L->err, L->errlen,
               "head_count %d is not a multiple of head_count_kv %d", hp->n_head,
               hp->n_head_kv);
        return -1;
    }
    hp->head_dim = hp->n_embd / hp->n_head;
    int has_kl = hp_u32(L, "attention.key_length", false, 1, MODEL_MAX_HEAD_DIM,
                        &hp->head_dim);
    if (has_kl < 0)
        return -1;
    if (has_kl == 0 && hp->n_embd % hp->n_head != 0) {
        seterr(L->err, L->errlen,
               "embedding_length %d is not a multiple of head_count %d",
               hp->n_embd, hp->n_head);
        return -1;
    }
    int32_t vlen = hp->head_dim;
    if (hp_u32(L, "attention.value_length", false, 1, MODEL_MAX_HEAD_DIM, &vlen) < 0)
        return -1;
    if (vlen != hp->head_dim) {
        seterr(L->err, L->errlen,
               "attention key_length %d != value_length %d is not supported",
               hp->head_dim, vlen);
        return -1;
    }
    if (hp->head_dim < 1 || hp->head_dim > MODEL_MAX_HEAD_DIM) {
        seterr(L->err, L->errlen, "head dimension %d out of range", hp->head_dim);
        return -1;
    }
    hp->n_rot = hp->head_dim;
    if (hp_u32(L, "rope.dimension_count", false, 0, MODEL_MAX_HEAD_DIM,
               &hp->n_rot) < 0)
        return -1;
    if (hp->n_rot % 2 != 0 || hp->n_rot > hp->head_dim) {
        seterr(L->err, L->errlen,
               "rope.dimension_count %d must be even and at most the head "
               "dimension %d", hp->n_rot, hp->head_dim);
        return -1;
    }
    if (hp_f32(L, "attention.layer_norm_rms_epsilon", true, &hp->norm_eps) < 0)
        return -1;
    if (hp->norm_eps < 0.0f) {
        seterr(L->err, L->errlen, "layer_norm_rms_epsilon is negative");
        return -1;
    }
    hp->rope_freq_base = 10000.0f;
    if (hp_f32(L, "rope.freq_base", false, &hp->rope_freq_base) < 0)
        return -1;
    if (!(hp->rope_freq_base > 0.0f)) {
        seterr(L->err, L->errlen, "rope.freq_base must be positive");
        return -1;
    }

    /* Vocabulary size: explicit key, else the tokenizer's token list, else
     * the embedding matrix (its shape is then checked against it anyway). */
    int rv = hp_u32(L, "vocab_size", false, 1, MODEL_MAX_VOCAB, &hp->n_vocab);
    if (rv < 0)
        return -1;
    if (rv == 0) {
        const gguf_kv *toks = NULL;
        const gguf_tensor *te = gguf_find_tensor(L->f, "token_embd.weight");
        if (gguf_get_arr(L->f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &toks) == 0)
            hp->n_vocab = toks->arr_len <= MODEL_MAX_VOCAB ? (int32_t)toks->arr_len : -1;
        else if (te && te->n_dims == 2)
            hp->n_vocab = te->ne[1] <= MODEL_MAX_VOCAB ? (int32_t)te->ne[1] : -1;
        else
            hp->n_vocab = 0;
        if (hp->n_vocab <= 0) {
            seterr(L->err, L->errlen, "cannot determine the vocabulary size");
            return -1;
        }
    }
    return 0;
}

static int load_tensors(loader *L)
{
    model *m = L->m;
    model_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff;
    int64_t QD = (int64_t)hp->n_head * hp->head_dim;
    int64_t KD = (int64_t)hp->n_head_kv * hp->head_dim;

    if (need_tensor(L, "token_embd.weight", E, V, &m->tok_embd, NULL) < 0 ||
        need_tensor(L, "output_norm.weight", E, 0, NULL, &m->output_norm) < 0)
        return -1;
    if (gguf_find_tensor(L->f, "output.weight")) {
        if (need_tensor(L, "output.weight", E, V, &m->output, NULL) < 0)
            return -1;
        hp->tied_output = false;
    } else {
        m->output = m->tok_embd;
        hp->tied_output = true;
    }

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        seterr(L->err, L->errlen, "out of memory");
        return -1;
    }
    for (int il = 0; il < hp->n_layer; il++) {
        model_layer *ly = &m->layers[il];
        if (need_layer_tensor(L, il, "attn_norm.weight", E, 0, NULL, &ly->attn_norm) < 0 ||
            need_layer_tensor(L, il, "attn_q.weight", E, QD, &ly->wq, NULL) < 0 ||
            need_layer_tensor(L, il, "attn_k.weight", E, KD, &ly->wk, NULL) < 0 ||
            need_layer_tensor(L, il, "attn_v.weight", E, KD, &ly->wv, NULL) < 0 ||
            need_layer_tensor(L, il, "attn_output.weight", QD, E, &ly->wo, NULL) < 0 ||
            need_layer_tensor(L, il, "ffn_norm.weight", E, 0, NULL, &ly->ffn_norm) < 0 ||
            need_layer_tensor(L, il, "ffn_gate.weight", E, F, &ly->w_gate, NULL) < 0 ||
            need_layer_tensor(L, il, "ffn_up.weight", E, F, &ly->w_up, NULL) < 0 ||
            need_layer_tensor(L, il, "ffn_down.weight", F, E, &ly->w_down, NULL) < 0)
            return -1;
        if (hp->qkv_bias) {
            if (need_layer_tensor(L, il, "attn_q.bias", QD, 0, NULL, &ly->bq) < 0 ||
                need_layer_tensor(L, il, "attn_k.bias", KD, 0, NULL, &ly->bk) < 0 ||
                need_layer_tensor(L, il, "attn_v.bias", KD, 0, NULL, &ly->bv) < 0)
                return -1;
        }
    }

    /* Parameter count over every tensor in the file (saturating). */
    uint64_t total = 0;
    for (size_t i = 0; i < gguf_n_tensors(L->f); i++) {
        const gguf_tensor *t = gguf_tensor_at(L->f, i);
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims && d < GGUF_MAX_DIMS; d++)
            n = (t->ne[d] && n > UINT64_MAX / t->ne[d]) ? UINT64_MAX : n * t->ne[d];
        total = total > UINT64_MAX - n ? UINT64_MAX : total + n;
    }
    m->n_params = total;
    return 0;
}

/* Rearrange every matrix the forward pass multiplies by (not the
 * embedding table when the output matrix is separate: it is only read a
 * row at a time) for the kernels in use (ops_matrix_repack), one matrix
 * per task on a pool of the machine's threads (the rearrangement reads
 * the whole file once: seconds for a 1B model on one core). */
typedef struct repack_job {
    ops_matrix **mats;
    void **owned;
    bool drop;             /* the weights are gguf_open's file mapping */
    _Atomic int failed;
} repack_job;

static void repack_task(void *arg, int64_t i, int thread)
{
    (void)thread;
    repack_job *j = arg;
    if (ops_matrix_repack(j->mats[i], j->drop, &j->owned[i]) != 0)
        atomic_store(&j->failed, 1);
}

static int repack_weights(loader *L)
{
    model *m = L->m;
    int n_max = 7 * m->hp.n_layer + 1, n = 0;
    m->repacked = calloc((size_t)n_max, sizeof *m->repacked);
    ops_matrix **mats = calloc((size_t)n_max, sizeof *mats);
    if (!m->repacked || !mats) {
        free(mats);
        seterr(L->err, L->errlen, "out of memory");
        return -1;
    }
    for (int il = 0; il < m->hp.n_layer; il++) {
        model_layer *ly = &m->layers[il];
        ops_matrix *lm[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo,
                            &ly->w_gate, &ly->w_up, &ly->w_down};
        for (size_t i = 0; i < sizeof lm / sizeof lm[0]; i++)
            mats[n++] = lm[i];
    }
    /* the output matrix first: the largest, it should not start last */
    mats[n++] = m->hp.tied_output ? &m->tok_embd : &m->output;
    ops_matrix *tmp = mats[n - 1];
    memmove(mats + 1, mats, sizeof *mats * (size_t)(n - 1));
    mats[0] = tmp;
    repack_job j = {mats, m->repacked, gguf_is_mapped(m->f), 0};
    pool *p = NULL;
    char perr[128];
    if (pool_new(0, &p, perr, sizeof perr) != 0)
        p = NULL; /* one thread will do */
    pool_set_active(p, pool_size(p));
    pool_run(p, n, repack_task, &j);
    pool_free(p);
    free(mats);
    m->n_repacked = n;
    if (atomic_load(&j.failed)) {
        seterr(L->err, L->errlen, "out of memory rearranging the weights");
        return -1;
    }
    if (m->hp.tied_output)
        m->output = m->tok_embd;
    return 0;
}

int model_load_gguf(const gguf_file *f, model **out, char *err, size_t errlen)
{
    return model_load_gguf_flags(f, 0, out, err, errlen);
}

int model_load_gguf_flags(const gguf_file *f, unsigned flags, model **out,
                          char *err, size_t errlen)
{
    *out = NULL;
    model *m = calloc(1, sizeof *m);
    if (!m) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    m->f = f;
    loader L = {m, f, err, errlen};
    if (load_hparams(&L) < 0 || load_rope(&L) < 0 || load_tensors(&L) < 0 ||
        (!(flags & MODEL_LOAD_INSPECT) && repack_weights(&L) < 0)) {
        model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int model_load(const char *path, model **out, char *err, size_t errlen)
{
    *out = NULL;
    gguf_file *f = NULL;
    /* gguf_open's message names the path already */
    if (gguf_open(path, &f, err, errlen) != 0)
        return -1;
    char merr[256];
    model *m;
    if (model_load_gguf(f, &m, merr, sizeof merr) != 0) {
        seterr(err, errlen, "%s (in '%s')", merr, path);
        gguf_close(f);
        return -1;
    }
    m->owned = f;
    *out = m;
    return 0;
}

void model_free(model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_repacked; i++)
        free(m->repacked[i]);
    free(m->repacked);
    free(m->layers);
    free(m->rope_ff);
    gguf_close(m->owned);
    free(m);
}

const model_hparams *model_hparams_of(const model *m) { return &m->hp; }
const gguf_file *model_gguf(const model *m) { return m->f; }
uint64_t model_n_params(const model *m) { return m->n_params; }

int model_kv_new(const model *m, int n_ctx, int n_ctx_cap, int type,
                 kv_cache **out, char *err, size_t errlen)
{
    int n = n_ctx > 0 ? n_ctx : m->hp.n_ctx_train;
    if (n_ctx_cap > 0 && n > n_ctx_cap)
        n = n_ctx_cap;
    return kv_new(m->hp.n_layer, m->hp.n_head_kv * m->hp.head_dim, n, type, out,
                  err, errlen);
}

/* ------------------------------------------------------------ scratch */

struct model_ctx {
    const model *m;
    int max_batch;
    /* per token of a slice, rows of the given width: */
    float *x;      /* (max_batch, n_embd) residual stream */
    float *xb;     /* (max_batch, max(n_embd, q_dim)) normalized input */
    float *q;      /* (max_batch, q_dim) */
    float *k, *v;  /* (max_batch, kv_dim) */
    float *att;    /* (max_batch, q_dim) attention output */
    float *hb;     /* (max_batch, n_ff) gate, then the SwiGLU product */
    float *hb2;    /* (max_batch, n_ff) up */
    float *cs;     /* (max_batch, n_rot) rope cos/sin */
    ops_scratch ops; /* row (max_cols), act (max_batch, max_cols), actq */
    ops_par par;     /* pool, actqb, tiles (see ops.h) */
    int64_t max_cols;
    pool *pool;      /* NULL when one thread */
    int n_threads;
    /* per token of the whole batch during validation */
    kv_cache **seen_kv;
    int *seen_len;
    int seen_cap;
};

static float *alloc_rows(int n, int64_t width, bool *fail)
{
    if (*fail)
        return NULL;
    size_t cnt = (size_t)n * (size_t)width; /* bounded by the MODEL_MAX_* */
    float *p = calloc(cnt ? cnt : 1, sizeof(float));
    if (!p)
        *fail = true;
    return p;
}

int model_ctx_new(const model *m, int max_batch, model_ctx **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > 65536) {
        seterr(err, errlen, "batch size %d out of range [1, 65536]", max_batch);
        return -1;
    }
    const model_hparams *hp = &m->hp;
    int64_t qd = (int64_t)hp->n_head * hp->head_dim;
    int64_t kd = (int64_t)hp->n_head_kv * hp->head_dim;
    int64_t wide = hp->n_embd > qd ? hp->n_embd : qd;
    int64_t max_cols = wide > hp->n_ff ? wide : hp->n_ff;
    model_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    c->m = m;
    c->max_batch = max_batch;
    bool fail = false;
    c->x = alloc_rows(max_batch, hp->n_embd, &fail);
    c->xb = alloc_rows(max_batch, wide, &fail);
    c->q = alloc_rows(max_batch, qd, &fail);
    c->k = alloc_rows(max_batch, kd, &fail);
    c->v = alloc_rows(max_batch, kd, &fail);
    c->att = alloc_rows(max_batch, qd, &fail);
    c->hb = alloc_rows(max_batch, hp->n_ff, &fail);
    c->hb2 = alloc_rows(max_batch, hp->n_ff, &fail);
    c->cs = alloc_rows(max_batch, hp->n_rot > 0 ? hp->n_rot : 1, &fail);
    c->ops.row = alloc_rows(1, max_cols, &fail);
    c->ops.act = alloc_rows(max_batch, max_cols, &fail);
    c->ops.actq = (unsigned char *)alloc_rows(1, max_cols + 16, &fail);
    /* quantized activation rows: the widest form is repack_act, 72 bytes
     * per 32 values (repack_act_k takes 340 per 256, Q8_K 292) */
    size_t qrow = (size_t)max_cols / 32 * sizeof(repack_act) + 512;
    c->par.actqb = (unsigned char *)alloc_rows(max_batch, (int64_t)(qrow / 4),
                                               &fail);
    c->par.actqb_bytes = (size_t)max_batch * (qrow / 4) * 4;
    c->max_cols = max_cols;
    if (fail) {
        model_ctx_free(c);
        seterr(err, errlen, "out of memory for a batch of %d tokens", max_batch);
        return -1;
    }
    if (model_ctx_set_threads(c, 0, err, errlen) != 0) {
        model_ctx_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

int model_ctx_set_threads(model_ctx *c, int n_threads, char *err,
                          size_t errlen)
{
    bool fixed = n_threads > 0;
    if (n_threads <= 0)
        n_threads = pool_default_threads();
    if (n_threads > POOL_MAX_THREADS) {
        seterr(err, errlen, "%d threads: at most %d", n_threads,
               POOL_MAX_THREADS);
        return -1;
    }
    pool *np = NULL;
    if (n_threads > 1 && pool_new(n_threads, &np, err, errlen) != 0)
        return -1;
    /* a count the user chose is kept; the default fits itself to what the
     * machine gives (pool.h) */
    if (np && fixed)
        pool_set_active(np, n_threads);
    int64_t tf = ops_tile_floats(c->max_cols);
    float *tiles = calloc((size_t)n_threads * (size_t)tf, sizeof(float));
    if (!tiles) {
        pool_free(np);
        seterr(err, errlen, "out of memory for %d threads", n_threads);
        return -1;
    }
    pool_free(c->pool);
    free(c->par.tiles);
    c->pool = np;
    c->par.pool = np;
    c->par.tiles = tiles;
    c->par.tile_floats = tf;
    c->n_threads = n_threads;
    return 0;
}

void model_ctx_run(model_ctx *c, int64_t n, void (*fn)(void *arg, int64_t i, int thread),
                   void *arg)
{
    pool_run(c->pool, n, fn, arg);
}

int model_ctx_max_batch(const model_ctx *c) { return c->max_batch; }

int model_ctx_threads(const model_ctx *c)
{
    return c->n_threads;
}

void model_ctx_free(model_ctx *c)
{
    if (!c)
        return;
    free(c->x);
    free(c->xb);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->hb);
    free(c->hb2);
    free(c->cs);
    free(c->ops.row);
    free(c->ops.act);
    free(c->ops.actq);
    free(c->par.actqb);
    free(c->par.tiles);
    pool_free(c->pool);
    free(c->seen_kv);
    free(c->seen_len);
    free(c);
}

/* ------------------------------------------------------------ forward */

/* Check the whole batch before touching any cache: ids in range, each
 * cache shaped for this model, positions appended in order and within the
 * cache. Nothing is written until the whole batch passed. */
static int check_batch(model_ctx *c, const model_batch *b, char *err,
                       size_t errlen)
{
    const model_hparams *hp = &c->m->hp;
    if (b->n < 0 || (b->n > 0 && !b->tok)) {
        seterr(err, errlen, "invalid batch");
        return -1;
    }
    if (b->n > c->seen_cap) {
        kv_cache **nk = realloc(c->seen_kv, (size_t)b->n * sizeof *nk);
        if (nk)
            c->seen_kv = nk;
        int *nl = realloc(c->seen_len, (size_t)b->n * sizeof *nl);
        if (nl)
            c->seen_len = nl;
        if (!nk || !nl) {
            seterr(err, errlen, "out of memory");
            return -1;
        }
        c->seen_cap = b->n;
    }
    int n_seen = 0;
    int kd = hp->n_head_kv * hp->head_dim;
    for (int i = 0; i < b->n; i++) {
        const model_token *t = &b->tok[i];
        if (t->id < 0 || t->id >= hp->n_vocab) {
            seterr(err, errlen, "batch token %d: id %d out of range [0, %d)", i,
                   t->id, hp->n_vocab);
            return -1;
        }
        if (!t->kv || kv_n_layer(t->kv) != hp->n_layer || kv_dim(t->kv) != kd) {
            seterr(err, errlen, "batch token %d: no KV cache for this model", i);
            return -1;
        }
        int s = 0;
        while (s < n_seen && c->seen_kv[s] != t->kv)
            s++;
        if (s == n_seen) {
            c->seen_kv[s] = t->kv;
            c->seen_len[s] = kv_len(t->kv);
            n_seen++;
        }
        if (t->pos != c->seen_len[s]) {
            seterr(err, errlen,
                   "batch token %d: position %d, but its sequence is at %d", i,
                   t->pos, c->seen_len[s]);
            return -1;
        }
        if (t->pos >= kv_n_ctx(t->kv)) {
            seterr(err, errlen, "batch token %d: context full (%d positions)", i,
                   kv_n_ctx(t->kv));
            return -1;
        }
        c->seen_len[s]++;
    }
    return 0;
}

typedef struct attn_job {
    model_ctx *c;
    const model_token *tok;
    int il, hd, qd, rep;
    int gs, n_sub; /* query heads per task, tasks per KV head */
    float scale;
} attn_job;

/* A token alone in its slice (a decode step on its own): one task per
 * query head, each over llama.cpp's split of the cache (kv.h). */
static void attn_lone_task(void *arg, int64_t h, int thread)
{
    (void)thread;
    const attn_job *j = arg;
    const float *qh = j->c->q + h * j->hd;
    kv_attend(j->tok[0].kv, j->il, (int)(h / j->rep) * j->hd, j->hd, qh,
              j->tok[0].pos + 1, true, j->scale, j->c->att + h * j->hd);
}

/* Several tokens: one task per (token, KV head), the query heads that
 * share the KV head together (their keys and values read once); more than
 * KV_GROUP_HEADS of them (multi-query models) split into several tasks. */
static void attn_group_task(void *arg, int64_t task, int thread)
{
    (void)thread;
    const attn_job *j = arg;
    int per_tok = j->c->m->hp.n_head_kv * j->n_sub;
    int t = (int)(task / per_tok), rem = (int)(task % per_tok);
    int g = rem / j->n_sub, h0 = g * j->rep + (rem % j->n_sub) * j->gs;
    int nh = g * j->rep + j->rep - h0 < j->gs ? g * j->rep + j->rep - h0 : j->gs;
    size_t at = (size_t)t * j->qd + (size_t)h0 * j->hd;
    kv_attend_heads(j->tok[t].kv, j->il, g * j->hd, j->hd, nh, j->c->q + at,
                    j->tok[t].pos + 1, j->scale, j->c->att + at);
}

/* Attention of every token of the slice over its own cache, for one layer.
 * The slice's keys and values are already stored. */
static void attention(model_ctx *c, const model_token *tok, int n, int il)
{
    const model_hparams *hp = &c->m->hp;
    int hd = hp->head_dim;
    int qd = hp->n_head * hd;
    int rep = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)hd);
    int gs = rep < KV_GROUP_HEADS ? rep : KV_GROUP_HEADS;
    attn_job j = {c, tok, il, hd, qd, rep, gs, (rep + gs - 1) / gs, scale};
    if (n == 1)
        pool_run(c->pool, hp->n_head, attn_lone_task, &j);
    else
        pool_run(c->pool, (int64_t)n * hp->n_head_kv * j.n_sub, attn_group_task, &j);
}

/* The per-token steps between the matrix products, shared among the
 * pool's threads token by token (a prompt's 512 SwiGLUs of n_ff values
 * cost as much as a matrix product when one thread does them all). */
typedef struct tok_job {
    model_ctx *c;
    const model_token *tok;
    const model_layer *ly;
    int il;
    const float *norm;     /* norm_task's weights */
} tok_job;

/* Row stride of xb: wide enough for the embedding and the attention
 * output. */
static int64_t xb_stride(const model_hparams *hp)
{
    int64_t E = hp->n_embd, QD = (int64_t)hp->n_head * hp->head_dim;
    return E > QD ? E : QD;
}

/* xb = rmsnorm(x) * norm (rows packed to those that go on, see
 * forward_slice) */
static void norm_task(void *arg, int64_t t, int thread)
{
    (void)thread;
    const tok_job *j = arg;
    const model_hparams *hp = &j->c->m->hp;
    int64_t E = hp->n_embd;
    ops_rmsnorm(j->c->xb + t * xb_stride(hp), j->c->x + t * E, j->norm, E,
                hp->norm_eps);
}

/* biases, rotary embedding, and the token's key and value into its cache */
static void qkv_task(void *arg, int64_t t, int thread)
{
    (void)thread;
    const tok_job *j = arg;
    model_ctx *c = j->c;
    const model_hparams *hp = &c->m->hp;
    const model_layer *ly = j->ly;
    int64_t QD = (int64_t)hp->n_head * hp->head_dim;
    int64_t KD = (int64_t)hp->n_head_kv * hp->head_dim;
    float *q = c->q + t * QD, *k = c->k + t * KD, *v = c->v + t * KD;
    if (ly->bq) {
        ops_add(q, ly->bq, QD);
        ops_add(k, ly->bk, KD);
        ops_add(v, ly->bv, KD);
    }
    const float *cs = c->cs + (size_t)t * (size_t)hp->n_rot;
    ops_rope(q, hp->n_head, hp->head_dim, hp->n_rot, cs, hp->rope_neox);
    ops_rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, cs, hp->rope_neox);
    kv_store(j->tok[t].kv, j->il, j->tok[t].pos, k, v);
}

/* x += xb (the attention or feed-forward block's output) */
static void resid_task(void *arg, int64_t t, int thread)
{
    (void)thread;
    const tok_job *j = arg;
    const model_hparams *hp = &j->c->m->hp;
    int64_t E = hp->n_embd;
    ops_add(j->c->x + t * E, j->c->xb + t * xb_stride(hp), E);
}

static void swiglu_task(void *arg, int64_t t, int thread)
{
    (void)thread;
    const tok_job *j = arg;
    int64_t F = j->c->m->hp.n_ff;
    ops_swiglu(j->c->hb + t * F, j->c->hb2 + t * F, F);
}

/* One slice of at most max_batch tokens through every layer. */
static void forward_slice(model_ctx *c, const model_token *tok, int n,
                          float *logits)
{
    const model *m = c->m;
    const model_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, F = hp->n_ff;
    int64_t QD = (int64_t)hp->n_head * hp->head_dim;
    int64_t KD = (int64_t)hp->n_head_kv * hp->head_dim;
    int64_t XB = xb_stride(hp);
    int n_rows = n; /* rows through the feed-forward block */

    for (int t = 0; t < n; t++) {
        ops_get_row(&m->tok_embd, tok[t].id, c->x + t * E);
        ops_rope_table(c->cs + (size_t)t * (size_t)hp->n_rot, hp->n_rot,
                       tok[t].pos, m->rope_theta_scale, hp->rope_freq_scale,
                       m->rope_ff);
    }

    for (int il = 0; il < hp->n_layer; il++) {
        const model_layer *ly = &m->layers[il];
        tok_job tj = {c, tok, ly, il, ly->attn_norm};

        /* attention block */
        pool_run(c->pool, n, norm_task, &tj);
        ops_matmul_par(c->q, QD, &ly->wq, c->xb, XB, n, &c->ops,
                       &c->par);
        ops_matmul_par(c->k, KD, &ly->wk, c->xb, XB, n, &c->ops,
                       &c->par);
        ops_matmul_par(c->v, KD, &ly->wv, c->xb, XB, n, &c->ops,
                       &c->par);
        pool_run(c->pool, n, qkv_task, &tj);
        attention(c, tok, n, il);
        ops_matmul_par(c->xb, XB, &ly->wo, c->att, QD, n, &c->ops,
                       &c->par);
        pool_run(c->pool, n, resid_task, &tj);

        /* On the last layer only the rows that want logits go on: the
         * feed-forward block of the others feeds nothing. */
        if (il == hp->n_layer - 1) {
            int k = 0;
            for (int t = 0; t < n; t++) {
                if (!tok[t].want_logits)
                    continue;
                if (k != t)
                    memcpy(c->x + k * E, c->x + t * E, (size_t)E * sizeof(float));
                k++;
            }
            n_rows = k;
        }

        /* feed-forward block */
        tj.norm = ly->ffn_norm;
        pool_run(c->pool, n_rows, norm_task, &tj);
        ops_matmul_par(c->hb, F, &ly->w_gate, c->xb, XB, n_rows, &c->ops,
                       &c->par);
        ops_matmul_par(c->hb2, F, &ly->w_up, c->xb, XB, n_rows, &c->ops,
                       &c->par);
        pool_run(c->pool, n_rows, swiglu_task, &tj);
        ops_matmul_par(c->xb, XB, &ly->w_down, c->hb, F, n_rows, &c->ops,
                       &c->par);
        pool_run(c->pool, n_rows, resid_task, &tj);
    }

    for (int t = 0; t < n; t++)
        kv_set_len(tok[t].kv, tok[t].pos + 1);

    /* Logits only for the tokens that want them: normalize those rows
     * into xb, packed, and run the output matrix over them at once. */
    int n_out = n_rows; /* the last layer kept just those rows */
    for (int t = 0; t < n_out; t++)
        ops_rmsnorm(c->xb + t * XB, c->x + t * E, m->output_norm, E,
                    hp->norm_eps);
    if (n_out > 0)
        ops_matmul_par(logits, hp->n_vocab, &m->output, c->xb, XB, n_out,
                       &c->ops, &c->par);
}

int model_decode(model_ctx *c, const model_batch *b, float *logits,
                 char *err, size_t errlen)
{
    if (check_batch(c, b, err, errlen) < 0)
        return -1;
    int n_want = 0;
    for (int i = 0; i < b->n; i++)
        n_want += b->tok[i].want_logits ? 1 : 0;
    if (n_want > 0 && !logits) {
        seterr(err, errlen, "logits requested but no output buffer given");
        return -1;
    }
    pool_step_begin(c->pool);
    for (int at = 0; at < b->n;) {
        int n = b->n - at < c->max_batch ? b->n - at : c->max_batch;
        forward_slice(c, b->tok + at, n, logits);
        for (int i = at; i < at + n; i++)
            if (b->tok[i].want_logits)
                logits += c->m->hp.n_vocab;
        at += n;
    }
    pool_step_end(c->pool);
    return 0;
}

/* ------------------------------------------------------------ quantize */

/* llama.cpp's general.file_type numbering (enum llama_ftype), for readers
 * that show it; the per-tensor types are what actually matter. */
static uint32_t file_type_of(uint32_t type)
{
    switch (type) {
    case QT_F32: return 0;
    case QT_F16: return 1;
    case QT_Q4_0: return 2;
    case QT_Q4_1: return 3;
    case QT_Q8_0: return 7;
    case QT_Q5_0: return 8;
    case QT_Q5_1: return 9;
    case QT_Q2_K: return 10;
    case QT_Q3_K: return 12;
    case QT_Q4_K: return 14; /* Q4_K_S: every tensor Q4_K */
    case QT_Q5_K: return 16;
    case QT_Q6_K: return 18;
    case QT_BF16: return 32;
    default: return 0;
    }
}

const char *model_file_type_name(uint32_t file_type)
{
    /* by number; 4 to 6 and 33 to 35 are types llama.cpp dropped (Q4_1
     * with F16 embeddings, Q4_2, Q4_3, the Q4_0 repackings), still named
     * so that an old file says what it is */
    static const char *const names[] = {
        "ALL_F32", "MOSTLY_F16", "MOSTLY_Q4_0", "MOSTLY_Q4_1", "MOSTLY_Q4_1_SOME_F16",
        "MOSTLY_Q4_2", "MOSTLY_Q4_3", "MOSTLY_Q8_0", "MOSTLY_Q5_0", "MOSTLY_Q5_1",
        "MOSTLY_Q2_K", "MOSTLY_Q3_K_S", "MOSTLY_Q3_K_M", "MOSTLY_Q3_K_L", "MOSTLY_Q4_K_S",
        "MOSTLY_Q4_K_M", "MOSTLY_Q5_K_S", "MOSTLY_Q5_K_M", "MOSTLY_Q6_K", "MOSTLY_IQ2_XXS",
        "MOSTLY_IQ2_XS", "MOSTLY_Q2_K_S", "MOSTLY_IQ3_XS", "MOSTLY_IQ3_XXS", "MOSTLY_IQ1_S",
        "MOSTLY_IQ4_NL", "MOSTLY_IQ3_S", "MOSTLY_IQ3_M", "MOSTLY_IQ2_S", "MOSTLY_IQ2_M",
        "MOSTLY_IQ4_XS", "MOSTLY_IQ1_M", "MOSTLY_BF16", "MOSTLY_Q4_0_4_4", "MOSTLY_Q4_0_4_8",
        "MOSTLY_Q4_0_8_8", "MOSTLY_TQ1_0", "MOSTLY_TQ2_0", "MOSTLY_MXFP4_MOE",
    };
    return file_type < sizeof names / sizeof names[0] ? names[file_type] : NULL;
}

static bool can_write(uint32_t type)
{
    if (type == QT_F32 || type == QT_F16)
        return true;
    const qt_traits *tr = qt_traits_of(type);
    return tr && tr->can_quantize;
}

/* The type a tensor with rows of `cols` values is written in. */
static uint32_t pick_type(uint32_t want, uint64_t cols)
{
    uint64_t rb;
    if (qt_row_size(want, cols, &rb) == 0)
        return want;
    static const uint32_t after_k[] = {QT_Q5_0, QT_Q8_0};
    const qt_traits *tr = qt_traits_of(want);
    if (tr && tr->block_size == QK_K) {
        for (size_t i = 0; i < sizeof after_k / sizeof after_k[0]; i++)
            if (can_write(after_k[i]) &&
                qt_row_size(after_k[i], cols, &rb) == 0)
                return after_k[i];
    }
    return QT_F16;
}

/* Convert one tensor of `rows` rows into `to`, through F32 (from a
 * quantized type too: that is requantization). */
static void *convert_tensor(const gguf_tensor *t, uint32_t to, uint64_t rows,
                            uint64_t cols, uint64_t *out_bytes, float *tmp)
{
    uint64_t in_rb, out_rb;
    if (qt_row_size(t->type, cols, &in_rb) != 0 ||
        qt_row_size(to, cols, &out_rb) != 0)
        return NULL;
    if (out_rb && rows > SIZE_MAX / out_rb)
        return NULL;
    size_t total = (size_t)(rows * out_rb);
    unsigned char *buf = malloc(total ? total : 1);
    if (!buf)
        return NULL;
    for (uint64_t r = 0; r < rows; r++) {
        const unsigned char *src = (const unsigned char *)t->data + r * in_rb;
        unsigned char *dst = buf + r * out_rb;
        /* through tmp: the mapping need not be float-aligned here */
        int rc = qt_dequantize_row(t->type, src, tmp, (int64_t)cols);
        if (rc == 0 && to == QT_F32)
            memcpy(dst, tmp, (size_t)cols * sizeof(float));
        else if (rc == 0)
            rc = qt_quantize_row(to, tmp, dst, (int64_t)cols);
        if (rc != 0) {
            free(buf);
            return NULL;
        }
    }
    *out_bytes = rows * out_rb;
    return buf;
}

static bool is_float_type(uint32_t t)
{
    return t == QT_F32 || t == QT_F16 || t == QT_BF16;
}

/* A weight matrix: 2-D or more, more than one row. */
static bool is_matrix(const gguf_tensor *t, uint64_t *rows)
{
    uint64_t r = 1;
    for (uint32_t d = 1; d < t->n_dims; d++)
        r *= t->ne[d]; /* gguf validated the element count */
    *rows = r;
    return t->n_dims >= 2 && r > 1;
}

/* The type tensor t is written in when `type` is asked for: matrices get
 * `type` or its fallback, 1-D float tensors F32, other 1-D ones stay. */
static uint32_t target_of(const gguf_tensor *t, uint32_t type)
{
    uint64_t rows;
    if (is_matrix(t, &rows))
        return pick_type(type, t->ne[0]);
    return is_float_type(t->type) ? QT_F32 : t->type;
}

static void tensor_name(const gguf_tensor *t, char *name, size_t cap)
{
    snprintf(name, cap, "%.*s", (int)(t->name.len < cap - 1 ? t->name.len
                                                            : cap - 1),
             t->name.ptr);
}

/* Before any work: the quantized matrices that would change type must be
 * dequantizable, and may only be converted when the caller allows it. */
static int check_requantize(const gguf_file *f, const char *in,
                            uint32_t type, unsigned flags, char *err,
                            size_t errlen)
{
    int n_need = 0;
    char first[256] = "";
    uint32_t first_from = 0, first_to = 0;
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint64_t rows;
        uint32_t to = target_of(t, type);
        if (!is_matrix(t, &rows) || is_float_type(t->type) || to == t->type)
            continue;
        const qt_traits *tr = qt_traits_of(t->type);
        if (!tr || !tr->can_dequantize) {
            char name[256];
            tensor_name(t, name, sizeof name);
            seterr(err, errlen, "%s: tensor '%s' is %s, which cannot be "
                   "dequantized to convert it to %s", in, name,
                   qt_name(t->type), qt_name(to));
            return MODEL_QUANTIZE_ERROR;
        }
        if (n_need++ == 0) {
            tensor_name(t, first, sizeof first);
            first_from = t->type;
            first_to = to;
        }
    }
    if (n_need && !(flags & MODEL_QUANTIZE_ALLOW_REQUANTIZE)) {
        seterr(err, errlen, "%s: %d weight matrices are already quantized "
               "('%s' is %s); converting them to %s would requantize them",
               in, n_need, first, qt_name(first_from), qt_name(first_to));
        return MODEL_QUANTIZE_NEEDS_REQUANT;
    }
    return MODEL_QUANTIZE_OK;
}

int model_quantize(const char *in, const char *out, uint32_t type,
                   unsigned flags, model_quantize_stats *st, char *err,
                   size_t errlen)
{
    model_quantize_stats s;
    memset(&s, 0, sizeof s);
    if (st)
        *st = s;
    if (!can_write(type)) {
        seterr(err, errlen, "cannot quantize to %s", qt_name(type));
        return MODEL_QUANTIZE_ERROR;
    }
    gguf_file *f = NULL;
    if (gguf_open(in, &f, err, errlen) != 0) /* its message names the path */
        return MODEL_QUANTIZE_ERROR;
    int rc = check_requantize(f, in, type, flags, err, errlen);
    if (rc != MODEL_QUANTIZE_OK) {
        gguf_close(f);
        return rc;
    }
    rc = MODEL_QUANTIZE_ERROR;
    float *tmp = NULL;
    size_t tmp_cap = 0;
    int n_matrix_of[QT_TYPE_MAX] = {0}; /* output matrices per type */
    gguf_writer *w = gguf_writer_new();
    if (!w) {
        seterr(err, errlen, "out of memory");
        goto done;
    }
    if (gguf_writer_copy_kv(w, f) != 0 ||
        gguf_writer_set_u32(w, "general.quantization_version", 2) != 0) {
        seterr(err, errlen, "out of memory copying metadata");
        goto done;
    }
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char name[256];
        tensor_name(t, name, sizeof name);
        uint64_t cols = t->ne[0], rows;
        bool matrix = is_matrix(t, &rows);
        uint32_t to = target_of(t, type);
        s.n_tensors++;
        s.bytes_in += t->nbytes;
        if (!matrix)
            s.n_kept++;
        else if (to == type)
            s.n_quantized++;
        else
            s.n_fallback++; /* rows do not divide into type's blocks */
        if (matrix && to < QT_TYPE_MAX)
            n_matrix_of[to]++;
        if (to == t->type) {
            /* unchanged: borrow from the mapping, open until the write */
            if (gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne,
                                       t->data, true) != 0) {
                seterr(err, errlen, "tensor '%s': cannot add to output", name);
                goto done;
            }
            s.bytes_out += t->nbytes;
            continue;
        }
        if (matrix && !is_float_type(t->type)) {
            s.n_requantized++;
            if (t->type < 64)
                s.requant_from |= UINT64_C(1) << t->type;
        }
        if (cols > tmp_cap) {
            float *nt = realloc(tmp, (size_t)cols * sizeof(float));
            if (!nt) {
                seterr(err, errlen, "out of memory");
                goto done;
            }
            tmp = nt;
            tmp_cap = (size_t)cols;
        }
        uint64_t nb = 0;
        void *data = convert_tensor(t, to, rows, cols, &nb, tmp);
        if (!data) {
            seterr(err, errlen, "tensor '%s': cannot convert %s to %s", name,
                   qt_name(t->type), qt_name(to));
            goto done;
        }
        int arc = gguf_writer_add_tensor(w, name, to, t->n_dims, t->ne, data,
                                         false);
        free(data);
        if (arc != 0) {
            seterr(err, errlen, "tensor '%s': cannot add to output", name);
            goto done;
        }
        s.bytes_out += nb;
    }
    /* general.file_type names what most matrices are (llama.cpp's MOSTLY_*
     * reading, the way its loader guesses a missing one), so a fallback-
     * heavy result, e.g. stories260K under q4_k (every matrix Q5_0 or
     * F16), is not labelled with a type none of its tensors has. */
    s.main_type = type;
    for (uint32_t ty = 0; ty < QT_TYPE_MAX; ty++)
        if (n_matrix_of[ty] > n_matrix_of[s.main_type])
            s.main_type = ty;
    s.file_type = file_type_of(s.main_type);
    if (gguf_writer_set_u32(w, "general.file_type", s.file_type) != 0) {
        seterr(err, errlen, "out of memory copying metadata");
        goto done;
    }
    char gerr[256];
    if (gguf_writer_write(w, out, gerr, sizeof gerr) != 0) {
        seterr(err, errlen, "%s: %s", out, gerr);
        goto done;
    }
    rc = MODEL_QUANTIZE_OK;
done:
    free(tmp);
    gguf_writer_free(w);
    gguf_close(f);
    if (st)
        *st = s;
    return rc;
}
