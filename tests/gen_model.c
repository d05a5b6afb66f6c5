/* gen_model - write a GGUF model with seeded random weights in the exact
 * shapes of a real model, for benchmarks and tests.
 *
 *   gen_model --shape qwen2.5-0.5b --type q4_0 [--vocab FILE] [--seed N]
 *             [--layers N] -o OUT.gguf
 *
 * Speed depends on shapes, not on the weights' values, so a random model of
 * the right shape measures what a real one would. The tokenizer comes from
 * a vocab-only GGUF (../shared/models/vocab/...) when given (its size then
 * sets n_vocab), else a minimal SentencePiece vocabulary of the model's
 * size is made up (byte tokens plus filler) so that `hearth run` works.
 *
 * Types: f16, q8_0, q4_0 (everything but norms/biases in that type) and
 * q4_k_m (the llama.cpp mix: Q4_K, with Q6_K for the output matrix and for
 * attn_v / ffn_down in the layers that get more bits; rows that do not
 * divide into 256-value blocks fall back to Q5_0 / Q8_0).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gguf.h"
#include "quant.h"

typedef struct shape {
    const char *name, *arch;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_base, eps;
    int tied, qkv_bias;
} shape;

static const shape shapes[] = {
    {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1000000.f, 1e-6f, 1, 1},
    {"llama-3.2-1b", "llama", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.f, 1e-5f, 1, 0},
    {"smollm2-135m", "llama", 576, 30, 9, 3, 1536, 49152, 8192, 100000.f, 1e-5f, 1, 0},
    {"tiny", "llama", 256, 2, 4, 2, 512, 1024, 2048, 10000.f, 1e-5f, 0, 0},
};

/* xoshiro128+ style generator: fast, seeded, the same on every machine */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* roughly normal (sum of uniforms), scaled */
static float rng_weight(float scale)
{
    uint64_t r = rng_next();
    float s = 0;
    for (int i = 0; i < 4; i++)
        s += (float)((r >> (16 * i)) & 0xffff) / 65535.0f;
    return (s - 2.0f) * 1.7320508f * scale;
}

static int fail(const char *msg, const char *arg)
{
    fprintf(stderr, "gen_model: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    return 1;
}

/* llama.cpp's rule for the layers that get more bits in the _M mixes */
static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int add_matrix(gguf_writer *w, const char *name, uint32_t type, int cols, int rows,
                      float scale)
{
    /* Rows that do not divide into 256-value super-blocks fall back as
     * llama.cpp does: Q4_K to Q5_0, Q6_K to Q8_0 (qwen2.5-0.5b's 896). */
    if (cols % QK_K != 0) {
        if (type == QT_Q4_K)
            type = QT_Q5_0;
        else if (type == QT_Q6_K)
            type = QT_Q8_0;
    }
    uint64_t row_bytes;
    if (qt_row_size(type, (uint64_t)cols, &row_bytes) < 0)
        return -1;
    uint8_t *data = malloc(row_bytes * (uint64_t)rows);
    float *row = malloc((size_t)cols * sizeof *row);
    if (!data || !row) {
        free(data);
        free(row);
        return -1;
    }
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++)
            row[c] = rng_weight(scale);
        if (qt_quantize_row(type, row, data + row_bytes * (uint64_t)r, cols) < 0) {
            free(data);
            free(row);
            return -1;
        }
    }
    uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows};
    int rc = gguf_writer_add_tensor(w, name, type, 2, ne, data, false);
    free(data);
    free(row);
    return rc;
}

static int add_vector(gguf_writer *w, const char *name, int n, float base, float noise)
{
    float *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return -1;
    for (int i = 0; i < n; i++)
        v[i] = base + rng_weight(noise);
    uint64_t ne[1] = {(uint64_t)n};
    int rc = gguf_writer_add_tensor(w, name, QT_F32, 1, ne, v, false);
    free(v);
    return rc;
}

/* Copy the tokenizer.* keys of a vocab file; returns its token count. */
static int copy_vocab(gguf_writer *w, const char *path)
{
    char err[512];
    gguf_file *f;
    if (gguf_open(path, &f, err, sizeof err) < 0) {
        fprintf(stderr, "gen_model: %s\n", err);
        return -1;
    }
    int n_tokens = -1;
    for (size_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        char key[256];
        if (kv->key.len >= sizeof key)
            continue;
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = '\0';
        if (strncmp(key, "tokenizer.", 10) != 0)
            continue;
        int rc = 0;
        if (kv->type == GGUF_VT_STRING) {
            char *s = strndup(kv->v.s.ptr, kv->v.s.len);
            rc = s ? gguf_writer_set_str(w, key, s) : -1;
            free(s);
        } else if (kv->type == GGUF_VT_ARRAY && kv->arr_type == GGUF_VT_STRING) {
            char **strs = calloc(kv->arr_len ? kv->arr_len : 1, sizeof *strs);
            for (uint64_t k = 0; strs && k < kv->arr_len; k++)
                strs[k] = strndup(kv->arr_strs[k].ptr, kv->arr_strs[k].len);
            rc = strs ? gguf_writer_set_arr_str(w, key, (const char *const *)strs, kv->arr_len) : -1;
            for (uint64_t k = 0; strs && k < kv->arr_len; k++)
                free(strs[k]);
            free(strs);
            if (strcmp(key, "tokenizer.ggml.tokens") == 0)
                n_tokens = (int)kv->arr_len;
        } else if (kv->type == GGUF_VT_ARRAY) {
            rc = gguf_writer_set_arr(w, key, kv->arr_type, kv->arr_data, kv->arr_len);
        } else {
            /* scalars: u/i/f/b are decoded into v; write them back typed */
            switch (kv->type) {
            case GGUF_VT_BOOL: rc = gguf_writer_set_bool(w, key, kv->v.b); break;
            case GGUF_VT_FLOAT32: case GGUF_VT_FLOAT64:
                rc = gguf_writer_set_f32(w, key, (float)kv->v.f); break;
            case GGUF_VT_INT8: case GGUF_VT_INT16: case GGUF_VT_INT32: case GGUF_VT_INT64:
                rc = gguf_writer_set_i32(w, key, (int32_t)kv->v.i); break;
            default: rc = gguf_writer_set_u32(w, key, (uint32_t)kv->v.u); break;
            }
        }
        if (rc < 0) {
            gguf_close(f);
            fprintf(stderr, "gen_model: cannot copy %s\n", key);
            return -1;
        }
    }
    gguf_close(f);
    if (n_tokens <= 0)
        fprintf(stderr, "gen_model: %s has no tokenizer.ggml.tokens\n", path);
    return n_tokens;
}

/* A made-up SentencePiece vocabulary of n tokens. */
static int make_vocab(gguf_writer *w, int n)
{
    char **toks = calloc((size_t)n, sizeof *toks);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    if (!toks || !scores || !types)
        return -1;
    for (int i = 0; i < n; i++) {
        char buf[32];
        if (i == 0)
            snprintf(buf, sizeof buf, "<unk>"), types[i] = 2;
        else if (i == 1)
            snprintf(buf, sizeof buf, "<s>"), types[i] = 3;
        else if (i == 2)
            snprintf(buf, sizeof buf, "</s>"), types[i] = 3;
        else if (i < 3 + 256)
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3), types[i] = 6;
        else
            snprintf(buf, sizeof buf, "\xe2\x96\x81tok%d", i), types[i] = 1;
        toks[i] = strdup(buf);
        scores[i] = -(float)i;
    }
    int rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    rc |= gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)n);
    rc |= gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, (uint64_t)n);
    rc |= gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, (uint64_t)n);
    rc |= gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rc |= gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    rc |= gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    for (int i = 0; i < n; i++)
        free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
    const char *shape_name = NULL, *type_name = "q4_0", *vocab = NULL, *out = NULL;
    uint64_t seed = 42;
    int layers = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: gen_model --shape NAME --type f16|q8_0|q4_0|q4_k_m "
                   "[--vocab FILE] [--seed N] [--layers N] -o OUT.gguf\nshapes:");
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                printf(" %s", shapes[s].name);
            printf("\n");
            return 0;
        }
        if (!v)
            return fail("option needs a value", a);
        if (!strcmp(a, "--shape")) shape_name = v;
        else if (!strcmp(a, "--type")) type_name = v;
        else if (!strcmp(a, "--vocab")) vocab = v;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--layers")) layers = atoi(v);
        else if (!strcmp(a, "-o")) out = v;
        else return fail("unknown option", a);
        i++;
    }
    if (!shape_name || !out)
        return fail("--shape and -o are required (see --help)", NULL);
    const shape *sh = NULL;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        if (!strcasecmp(shapes[s].name, shape_name))
            sh = &shapes[s];
    if (!sh)
        return fail("unknown shape", shape_name);
    int mix_km = !strcasecmp(type_name, "q4_k_m");
    int base_type = mix_km ? QT_Q4_K : qt_from_name(type_name);
    if (base_type < 0 || !qt_traits_of((uint32_t)base_type) ||
        !qt_traits_of((uint32_t)base_type)->can_quantize)
        return fail("unsupported --type", type_name);
    int n_layer = layers > 0 ? layers : sh->n_layer;
    rng_state = seed;

    gguf_writer *w = gguf_writer_new();
    if (!w)
        return fail("out of memory", NULL);
    int n_vocab = sh->n_vocab;
    if (vocab) {
        n_vocab = copy_vocab(w, vocab);
        if (n_vocab <= 0)
            return 1;
    } else if (make_vocab(w, n_vocab) < 0) {
        return fail("out of memory", NULL);
    }
    char key[128];
    const char *A = sh->arch;
    int head_dim = sh->n_embd / sh->n_head;
    int rc = gguf_writer_set_str(w, "general.architecture", A);
    rc |= gguf_writer_set_str(w, "general.name", sh->name);
    rc |= gguf_writer_set_u32(w, "general.file_type",
                              mix_km ? 15u : base_type == QT_Q4_0 ? 2u : base_type == QT_Q8_0 ? 7u
                              : base_type == QT_F16 ? 1u : 0u);
#define SETU(suffix, val) (snprintf(key, sizeof key, "%s." suffix, A), gguf_writer_set_u32(w, key, (uint32_t)(val)))
#define SETF(suffix, val) (snprintf(key, sizeof key, "%s." suffix, A), gguf_writer_set_f32(w, key, (val)))
    rc |= SETU("context_length", sh->n_ctx);
    rc |= SETU("embedding_length", sh->n_embd);
    rc |= SETU("block_count", n_layer);
    rc |= SETU("feed_forward_length", sh->n_ff);
    rc |= SETU("attention.head_count", sh->n_head);
    rc |= SETU("attention.head_count_kv", sh->n_head_kv);
    rc |= SETU("rope.dimension_count", head_dim);
    rc |= SETF("attention.layer_norm_rms_epsilon", sh->eps);
    rc |= SETF("rope.freq_base", sh->rope_base);
    if (rc)
        return fail("out of memory", NULL);

    int kv_dim = head_dim * sh->n_head_kv;
    float s = 0.02f;
    /* token_embd: the base type (Q4_K in the _M mix) */
    if (add_matrix(w, "token_embd.weight", (uint32_t)base_type, sh->n_embd, n_vocab, s) < 0)
        return fail("cannot quantize token_embd.weight", NULL);
    for (int l = 0; l < n_layer; l++) {
        uint32_t tv = mix_km && more_bits(l, n_layer) ? QT_Q6_K : (uint32_t)base_type;
        char name[96];
#define MAT(n, type, cols, rows) \
    (snprintf(name, sizeof name, "blk.%d." n ".weight", l), add_matrix(w, name, (type), (cols), (rows), s))
#define VEC(n, len, base, noise) \
    (snprintf(name, sizeof name, "blk.%d." n, l), add_vector(w, name, (len), (base), (noise)))
        rc = VEC("attn_norm.weight", sh->n_embd, 1.0f, 0.05f);
        rc |= MAT("attn_q", (uint32_t)base_type, sh->n_embd, sh->n_embd);
        rc |= MAT("attn_k", (uint32_t)base_type, sh->n_embd, kv_dim);
        rc |= MAT("attn_v", tv, sh->n_embd, kv_dim);
        rc |= MAT("attn_output", (uint32_t)base_type, sh->n_embd, sh->n_embd);
        if (sh->qkv_bias) {
            rc |= VEC("attn_q.bias", sh->n_embd, 0.0f, 0.02f);
            rc |= VEC("attn_k.bias", kv_dim, 0.0f, 0.02f);
            rc |= VEC("attn_v.bias", kv_dim, 0.0f, 0.02f);
        }
        rc |= VEC("ffn_norm.weight", sh->n_embd, 1.0f, 0.05f);
        rc |= MAT("ffn_gate", (uint32_t)base_type, sh->n_embd, sh->n_ff);
        rc |= MAT("ffn_up", (uint32_t)base_type, sh->n_embd, sh->n_ff);
        rc |= MAT("ffn_down", tv, sh->n_ff, sh->n_embd);
        if (rc)
            return fail("cannot build layer tensors", NULL);
    }
    rc = add_vector(w, "output_norm.weight", sh->n_embd, 1.0f, 0.05f);
    if (!sh->tied)
        rc |= add_matrix(w, "output.weight", mix_km ? QT_Q6_K : (uint32_t)base_type, sh->n_embd,
                         n_vocab, s);
    if (rc)
        return fail("cannot build output tensors", NULL);
    char err[512];
    if (gguf_writer_write(w, out, err, sizeof err) < 0) {
        fprintf(stderr, "gen_model: %s\n", err);
        return 1;
    }
    gguf_writer_free(w);
    fprintf(stderr, "gen_model: wrote %s (%s, %s, %d layers, vocab %d)\n", out, sh->name,
            type_name, n_layer, n_vocab);
    return 0;
}
