/* ops.h - the numeric building blocks of the forward pass: RMSNorm, RoPE,
 * softmax, SiLU-gated product, and the matrix products over weight rows of
 * any tensor type (quant.h).
 *
 * Everything here works on plain float arrays the caller owns; nothing
 * allocates. These are scalar C loops written so the compiler can vectorize
 * them; the faster per-ISA kernels of later issues plug in behind
 * ops_matmul() and must agree with it.
 */
#ifndef HEARTH_OPS_H
#define HEARTH_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A 2-D weight matrix as stored in a GGUF file: `rows` rows of `cols`
 * values of `type`, each row `row_bytes` long, rows contiguous - or, when
 * `layout` is not REPACK_NONE, rearranged for the kernels (repack.h;
 * row_bytes is then the file's row size, data the rearranged copy). */
typedef struct ops_matrix {
    const void *data;
    uint32_t type;     /* enum qt_type */
    int64_t rows;      /* output features (ne[1]) */
    int64_t cols;      /* input features (ne[0]), a multiple of the block size */
    uint64_t row_bytes;
    int layout;        /* enum repack_layout */
} ops_matrix;

/* Rearrange w for the kernels of the path in use, when that path has a
 * kernel for the layout repack_layout_for() picks: the copy is allocated
 * (*owned, for the caller to free()), w points at it, and, when
 * drop_source says w->data lies in a private read-only file mapping, the
 * pages that held only this matrix are given back to the kernel
 * (MADV_DONTNEED: such a mapping reads them again from the file if they
 * are ever touched), so the copy costs no memory in all. Never for a
 * caller's buffer: there the call would zero it.
 * 0 when w is unchanged (no layout, no kernel: *owned NULL) or repacked;
 * -1 when the copy cannot be allocated (w unchanged). */
int ops_matrix_repack(ops_matrix *w, bool drop_source, void **owned);

/* Sum of a[i]*b[i], accumulated in several float lanes. */
float ops_dot(const float *a, const float *b, int64_t n);

/* out = x / sqrt(mean(x^2) + eps) * w   (out may alias x; w may be NULL
 * for a plain normalization). The sum of squares is accumulated in double. */
void ops_rmsnorm(float *out, const float *x, const float *w, int64_t n,
                 float eps);

/* In-place softmax of n values; -INFINITY entries get probability 0.
 * When every entry is -INFINITY the result is all zeros. */
void ops_softmax(float *x, int64_t n);

/* gate[i] = silu(gate[i]) * up[i]   (the SwiGLU feed-forward product) */
void ops_swiglu(float *gate, const float *up, int64_t n);

/* y[i] += x[i] */
void ops_add(float *y, const float *x, int64_t n);

/* Rotary position embedding of one token's heads, in place.
 * x holds n_heads vectors of head_dim values; the first n_rot values of
 * each head are rotated (n_rot even, <= head_dim), the rest left alone.
 * cs holds n_rot/2 (cos, sin) pairs for this token's position.
 * neox=false: rotate adjacent pairs (x[2j], x[2j+1]) - GGUF llama models,
 *             whose q/k rows the converter permuted into that order;
 * neox=true:  rotate (x[j], x[j + n_rot/2]) - qwen2 and other NeoX-style. */
void ops_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs,
              bool neox);

/* The (cos, sin) table of one position: cs[2j] = cos(a_j), cs[2j+1] =
 * sin(a_j), j < n_rot/2, with a_j = freq_scale * pos * theta_scale^j /
 * ff[j] (ff may be NULL: all ones). Computed in float in ggml's order. */
void ops_rope_table(float *cs, int n_rot, int32_t pos, float theta_scale,
                    float freq_scale, const float *ff);

/* Scratch memory of ops_matmul for rows of up to max_cols values and
 * batches of up to max_batch vectors (see ops_scratch_size). */
typedef struct ops_scratch {
    float *row;            /* (max_cols) one dequantized weight row */
    float *act;            /* (max_batch, max_cols) rounded activations */
    unsigned char *actq;   /* one quantized activation row (4 bytes/value) */
} ops_scratch;

/* What ops_matmul_par adds: threads, and memory for whole batches. Any
 * field may be NULL/0 (then: the caller alone, one activation row at a
 * time, no BLAS). model_ctx fills it. */
typedef struct ops_par {
    struct pool *pool;     /* threads sharing the rows of each product */
    unsigned char *actqb;  /* (actqb_bytes) the batch's quantized rows */
    size_t actqb_bytes;
    float *tiles;          /* pool_size * tile_floats: per-thread weight
                              tiles (BLAS path) and row buffers */
    int64_t tile_floats;   /* >= ops_tile_floats(cols) for BLAS */
} ops_par;

/* Floats of per-thread tile memory for rows of max_cols values. */
int64_t ops_tile_floats(int64_t max_cols);

/* With HEARTH_BLAS_MIN=N (N > 0), batches of at least N vectors go
 * through cblas_sgemm on dequantized weight tiles (when tiles are given)
 * instead of the integer kernels: the weights' unpacking is then paid
 * once per tile, not once per vector, and prefill is faster (N = 32:
 * docs/performance.md). Off by default (0 = never): sgemm sums float
 * products in its own order where llama.cpp, like the kernels, sums
 * integer products per block, and on small models that difference moves
 * logprobs past the reference tolerances (stories260K-Q8_0: 0.14 on a
 * 359-token prompt with BLAS, 0 without).
 * Unset, the choice is the kernel path's, per weight type: 0 for types it
 * has x16 kernels for (repack.h: faster there, and in llama.cpp's order),
 * OPS_BLAS_MIN_BATCH for the others (F16, the K-quants on AVX2, every
 * type on scalar machines: sgemm on tiles is about twice the row kernels'
 * speed on prompts). */
#define OPS_BLAS_MIN_BATCH 32

/* Round an activation vector the way a kernel for weight type `wtype`
 * sees it: through Q8_0 / Q8_1 / Q8_K blocks for quantized weights (the
 * 8-bit integer dot products of the SIMD kernels, and of llama.cpp), to
 * F16 / BF16 for F16 / BF16 weights, unchanged for F32. actq needs
 * 4*n + 64 bytes. */
void ops_round_act(uint32_t wtype, const float *x, float *dst, int64_t n,
                   unsigned char *actq);

/* Matrix product over a batch: for each of the n input vectors x[t]
 * (stride x_stride floats), out[t*out_stride + r] = row_r(W) . x[t],
 * with x[t] first rounded by ops_round_act. The rows are shared among the
 * pool's threads. Three ways, by batch and weight type:
 *  - the SIMD kernel of kernels.h for the type (activations quantized
 *    once per product), when there is one;
 *  - large batches (HEARTH_BLAS_MIN, off by default) with tiles: weight tiles
 *    dequantized to floats once, multiplied by the whole batch with
 *    cblas_sgemm (OpenBLAS limited to one thread: the pool is the
 *    parallelism);
 *  - otherwise each row dequantized once and dotted in F32 with the
 *    batch (the portable path; HEARTH_KERNEL=scalar forces it).
 * All three round activations the same way and agree to float rounding. */
void ops_matmul(float *out, int64_t out_stride, const ops_matrix *w,
                const float *x, int64_t x_stride, int n,
                const ops_scratch *s);
/* The same with threads and batch memory (par may be NULL). */
void ops_matmul_par(float *out, int64_t out_stride, const ops_matrix *w,
                    const float *x, int64_t x_stride, int n,
                    const ops_scratch *s, const ops_par *par);

/* One row of n values of `type` to floats: the same values as
 * qt_dequantize_row, with faster loops for F16, Q8_0, Q4_0, Q4_K and
 * Q6_K. The caller has checked type and n (a multiple of the block). */
void ops_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

/* Dequantize row r of W into dst (w->cols floats). */
void ops_get_row(const ops_matrix *w, int64_t r, float *dst);

#endif
