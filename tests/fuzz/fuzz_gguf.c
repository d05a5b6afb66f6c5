/* fuzz_gguf.c - libFuzzer target for the GGUF reader and the dequantizers.
 *
 * Each input is parsed with gguf_open_mem(); when it is accepted, every kv
 * and tensor is walked (all bytes the reader hands out are touched), the
 * first row of each tensor is dequantized, dotted and re-quantized, and the
 * file is copied through the writer and parsed again, which must succeed
 * with the same counts.
 *
 * Build with -DFUZZ_GEN_SEEDS instead to get a program that writes a seed
 * corpus of small valid files into a directory (see README.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

static volatile uint64_t sink; /* keeps the walks from being optimised out */

static uint64_t touch(const void *p, uint64_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0;
    for (uint64_t i = 0; i < n; i++)
        h = h * 31 + b[i];
    return h;
}

static void walk_kv(const gguf_kv *kv)
{
    uint64_t h = touch(kv->key.ptr, kv->key.len);
    if (kv->type == GGUF_VT_STRING)
        h += touch(kv->v.s.ptr, kv->v.s.len);
    if (kv->type == GGUF_VT_ARRAY) {
        if (kv->arr_type == GGUF_VT_STRING) {
            for (uint64_t i = 0; i < kv->arr_len; i++)
                h += touch(kv->arr_strs[i].ptr, kv->arr_strs[i].len);
        } else {
            static const uint8_t es[GGUF_VT_COUNT] = {1, 1, 2, 2, 4, 4, 4,
                                                      1, 0, 0, 8, 8, 8};
            h += touch(kv->arr_data, kv->arr_len * es[kv->arr_type]);
        }
    }
    sink += h;
}

static void walk_tensor(const gguf_tensor *t)
{
    sink += touch(t->data, t->nbytes);
    const qt_traits *tr = qt_traits_of(t->type);
    if (!tr || !tr->can_dequantize)
        return;
    int64_t n = (int64_t)t->ne[0];
    float *row = malloc((size_t)n * sizeof(float));
    if (!row)
        return;
    if (qt_dequantize_row(t->type, t->data, row, n) != 0)
        abort(); /* the reader validated type and row length */
    float d = qt_dot_ref(t->type, t->data, row, n);
    uint32_t at = qt_act_type(t->type);
    uint64_t ab;
    if (at != QT_ACT_NONE && qt_row_size(at, (uint64_t)n, &ab) == 0) {
        void *xq = malloc(ab ? (size_t)ab : 1);
        if (xq && qt_quantize_act(t->type, row, xq, n) == 0)
            d += qt_dot_q(t->type, t->data, xq, n);
        free(xq);
    }
    uint64_t rb;
    if (tr->can_quantize && qt_row_size(t->type, (uint64_t)n, &rb) == 0) {
        void *q = malloc(rb ? (size_t)rb : 1);
        if (q && qt_quantize_row(t->type, row, q, n) != 0)
            abort();
        free(q);
    }
    sink += (uint64_t)(d == d);
    free(row);
}

/* The writer must reproduce any file the reader accepts. */
static void rewrite(const gguf_file *f)
{
    gguf_writer *w = gguf_writer_new();
    if (!w)
        return;
    if (gguf_writer_copy_kv(w, f) != 0)
        abort();
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char *name = malloc((size_t)t->name.len + 1);
        if (!name)
            abort();
        memcpy(name, t->name.ptr, (size_t)t->name.len);
        name[t->name.len] = '\0';
        if (gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data,
                                   true) != 0)
            abort();
        free(name);
    }
    void *buf;
    size_t len;
    char err[256];
    if (gguf_writer_write_mem(w, &buf, &len, err, sizeof err) != 0)
        abort();
    gguf_writer_free(w);
    gguf_file *g = NULL;
    if (gguf_open_mem(buf, len, &g, err, sizeof err) != 0) {
        fprintf(stderr, "re-read failed: %s\n", err);
        abort();
    }
    if (gguf_n_kv(g) != gguf_n_kv(f) || gguf_n_tensors(g) != gguf_n_tensors(f))
        abort();
    for (size_t i = 0; i < gguf_n_tensors(f); i++)
        if (gguf_tensor_at(g, i)->nbytes != gguf_tensor_at(f, i)->nbytes ||
            memcmp(gguf_tensor_at(g, i)->data, gguf_tensor_at(f, i)->data,
                   (size_t)gguf_tensor_at(f, i)->nbytes) != 0)
            abort();
    gguf_close(g);
    free(buf);
}

#ifndef FUZZ_GEN_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f = NULL;
    char err[512];
    if (gguf_open_mem(data, size, &f, err, sizeof err) != 0) {
        if (f || strncmp(err, "gguf: ", 6) != 0)
            abort(); /* a refusal always explains itself */
        return 0;
    }
    for (size_t i = 0; i < gguf_n_kv(f); i++)
        walk_kv(gguf_kv_at(f, i));
    for (size_t i = 0; i < gguf_n_tensors(f); i++)
        walk_tensor(gguf_tensor_at(f, i));
    rewrite(f);
    gguf_close(f);
    return 0;
}

#else /* seed generator: fuzz_gguf_seeds DIR */

static int save(gguf_writer *w, const char *dir, const char *name)
{
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    int r = gguf_writer_write(w, path, err, sizeof err);
    if (r != 0)
        fprintf(stderr, "%s\n", err);
    gguf_writer_free(w);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    static const uint32_t types[] = {
        QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
        QT_Q8_0, QT_Q8_1, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K,
        QT_Q8_K,
    };
    float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = (float)((i * 37) % 101 - 50) / 25.0f;
    uint8_t q[1024];
    int bad = 0;
    /* one file per tensor type: one block-row, a couple of keys */
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        uint32_t t = types[k];
        uint64_t ne = qt_traits_of(t)->block_size == 1
                          ? 8
                          : qt_traits_of(t)->block_size;
        qt_quantize_row(t, x, q, (int64_t)ne);
        gguf_writer *w = gguf_writer_new();
        gguf_writer_set_str(w, "general.architecture", "llama");
        gguf_writer_set_u32(w, "general.alignment", k % 2 ? 32 : 8);
        gguf_writer_add_tensor(w, "w", t, 1, &ne, q, false);
        bad |= save(w, dir, qt_name(t));
    }
    /* every value type, string arrays, a 4-D tensor */
    gguf_writer *w = gguf_writer_new();
    uint8_t u8 = 1;
    int8_t i8 = -1;
    uint16_t u16 = 2;
    int16_t i16 = -2;
    int64_t i64 = -3;
    double f64 = 0.5;
    gguf_writer_set_val(w, "u8", GGUF_VT_UINT8, &u8);
    gguf_writer_set_val(w, "i8", GGUF_VT_INT8, &i8);
    gguf_writer_set_val(w, "u16", GGUF_VT_UINT16, &u16);
    gguf_writer_set_val(w, "i16", GGUF_VT_INT16, &i16);
    gguf_writer_set_u32(w, "u32", 3);
    gguf_writer_set_i32(w, "i32", -4);
    gguf_writer_set_f32(w, "f32", 1.5f);
    gguf_writer_set_bool(w, "b", true);
    gguf_writer_set_str(w, "s", "text");
    gguf_writer_set_u64(w, "u64", 5);
    gguf_writer_set_val(w, "i64", GGUF_VT_INT64, &i64);
    gguf_writer_set_val(w, "f64", GGUF_VT_FLOAT64, &f64);
    const char *toks[4] = {"<s>", "</s>", "a", ""};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    float sc[4] = {0, 0, -1, -2};
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, sc, 4);
    bool bs[2] = {true, false};
    gguf_writer_set_arr(w, "bools", GGUF_VT_BOOL, bs, 2);
    uint64_t ne4[4] = {2, 2, 2, 2};
    gguf_writer_add_tensor(w, "t4", QT_F32, 4, ne4, x, false);
    uint64_t ne2[2] = {32, 2};
    qt_quantize_row(QT_Q4_0, x, q, 64);
    gguf_writer_add_tensor(w, "t2", QT_Q4_0, 2, ne2, q, false);
    bad |= save(w, dir, "all_types");
    /* no tensors at all (like the vocab files) */
    w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    bad |= save(w, dir, "vocab_only");
    return bad ? 1 : 0;
}

#endif
