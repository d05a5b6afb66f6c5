/* kernels.h - SIMD matrix-product kernels, chosen at run time.
 *
 * A kernel computes, for a block of weight rows and a batch of activation
 * rows, every dot product of one with the other:
 *
 *   out[t * out_stride + r] = row_r(W) . act_t     r < n_rows, t < n_act
 *
 * so one pass over a tile of weights serves the whole batch (prompt
 * tokens, or the next token of several sequences). Activations arrive in
 * the form qt_act_type() names for the weight type - quantized to
 * Q8_0 / Q8_K blocks (act_stride bytes apart) for the quantized weights,
 * floats already rounded by ops_round_act() for F16 weights - and the
 * integer products are summed exactly within a block as quant.c's
 * qt_dot_q() does; only the order of the floating-point sums of block
 * results differs from it (tests/test_kernels.c holds them together).
 *
 * Paths: "avx512" (AVX-512 F/BW/VL + VNNI, falls back to the AVX2 entry
 * for a type it has no kernel for), "avx2" (AVX2 + FMA + F16C: Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K, F16, F32; SwiGLU) and
 * "scalar" (no kernels: ops.c dequantizes each row to floats, its portable
 * path). The best path the CPU supports is used unless the environment
 * variable HEARTH_KERNEL names another (scalar, avx2, avx512); a path the
 * CPU lacks is never chosen. ARM NEON kernels do not exist yet: they could
 * not be built or tested on the development machines, so non-x86 builds
 * use the scalar path.
 */
#ifndef HEARTH_KERNELS_H
#define HEARTH_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"
#include "repack.h"
#include "vecmath.h"

/* n: values per row (a multiple of the type's block); w: first weight row,
 * rows w_stride bytes apart; act: first activation row, act_stride bytes
 * apart. */
typedef void (*kern_mm_fn)(int64_t n, const void *w, size_t w_stride,
                           int64_t n_rows, const void *act, size_t act_stride,
                           int n_act, float *out, int64_t out_stride);

/* One pass of attention of one query head over an F16 KV cache, exactly
 * as kv_attend() computes each part for KV_F16 (same roundings, same
 * order, so the results are identical): k and v point at the first
 * position of the head's values, positions `stride` values apart;
 * hd <= KERN_MAX_HEAD_DIM, n_pos >= 1. acc gets the hd values of the
 * weighted sum before the division (F16 values), m_s[0] the largest
 * score and m_s[1] the sum of exponentials relative to it. */
#define KERN_MAX_HEAD_DIM 1024
typedef void (*kern_attend_fn)(const uint16_t *k, const uint16_t *v,
                               size_t stride, int hd, const float *q,
                               int n_pos, float scale, float *acc,
                               float *m_s);

/* kern_attend_fn for n_heads query heads that share one KV head: head g's
 * query at q + g * q_stride, its acc at out + g * out_stride, its maximum
 * and sum at m_s[2g], m_s[2g + 1]; each head's results are exactly
 * kern_attend_fn's. */
#define KERN_MAX_GROUP 8
typedef void (*kern_attend_group_fn)(const uint16_t *k, const uint16_t *v,
                                     size_t stride, int hd, int n_heads,
                                     const float *q, size_t q_stride, int n_pos,
                                     float scale, float *out, size_t out_stride,
                                     float *m_s);

/* gate[i] = silu(gate[i]) * up[i], exactly as vm_swiglu() computes it. */
typedef void (*kern_swiglu_fn)(float *gate, const float *up, int64_t n);

/* A kernel for a repacked matrix (repack.h): groups of REPACK_ROWS rows
 * (repack_group_bytes apart) times activation rows of repack_act blocks
 * (act_stride bytes apart):
 *   out[t * out_stride + 16g + r] = row (16g + r) . act_t
 * with the same bits as repack_mm_ref(). */
typedef void (*kern_mmx_fn)(int64_t cols, const void *groups,
                            int64_t n_groups, const void *act,
                            size_t act_stride, int n_act, float *out,
                            int64_t out_stride);

#define KERN_LAYOUTS 8 /* > the largest enum repack_layout */

typedef struct kern_table {
    const char *name;               /* "avx512", "avx2", "scalar" */
    kern_mm_fn mm[QT_TYPE_MAX];     /* NULL: no kernel for that weight type */
    /* kernels for repacked layouts; a model loaded while this table is in
     * use repacks the matrices whose layout has one */
    kern_mmx_fn mmx[KERN_LAYOUTS];
    /* repack_quantize_act() with the same bits, or NULL */
    void (*quant_act)(const float *x, repack_act *dst, int64_t n);
    /* Q4_0 matrices of a multiple of 8 rows: llama.cpp's CPU backend
     * repacks those (eight rows interleaved) and sums each output's
     * blocks in one chain of fused multiply-adds instead of mm[QT_Q4_0]'s
     * eight lanes. NULL: use mm[QT_Q4_0]. */
    kern_mm_fn mm_q4_0_x8;
    kern_attend_fn attend_f16;      /* NULL: use kv.c's scalar loop */
    kern_attend_group_fn attend_f16_group; /* NULL: one head at a time */
    kern_swiglu_fn swiglu;          /* NULL: vm_swiglu() */
} kern_table;

/* The table in use (chosen once, on first call, from the CPU and
 * HEARTH_KERNEL). Never NULL. */
const kern_table *kern_get(void);

/* Use the named path from now on ("scalar", "avx2", "avx512" or "auto").
 * -1 when the name is unknown or the CPU lacks the instructions. Meant for
 * tests and benchmarks; not safe while another thread runs a kernel. */
int kern_select(const char *name);

/* The table of a named path, or NULL if unknown / unsupported here (tests
 * compare the paths with each other). */
const kern_table *kern_table_of(const char *name);

/* ---- the per-ISA entry points (kernels_avx2.c, kernels_avx512.c) ----
 * Only called after the CPU was checked for the instructions. */
#if defined(__x86_64__) || defined(__i386__)
void kern_avx2_q4_0_x8(int64_t, const void *, size_t, int64_t, const void *,
                       size_t, int, float *, int64_t);
void kern_avx2_q4_0(int64_t, const void *, size_t, int64_t, const void *,
                    size_t, int, float *, int64_t);
void kern_avx2_q8_0(int64_t, const void *, size_t, int64_t, const void *,
                    size_t, int, float *, int64_t);
void kern_avx2_q5_0(int64_t, const void *, size_t, int64_t, const void *,
                    size_t, int, float *, int64_t);
void kern_avx2_q4_1(int64_t, const void *, size_t, int64_t, const void *,
                    size_t, int, float *, int64_t);
void kern_avx2_q5_1(int64_t, const void *, size_t, int64_t, const void *,
                    size_t, int, float *, int64_t);
void kern_avx2_q4_k(int64_t, const void *, size_t, int64_t, const void *,
                    size_t, int, float *, int64_t);
void kern_avx2_q6_k(int64_t, const void *, size_t, int64_t, const void *,
                    size_t, int, float *, int64_t);
void kern_avx2_f16(int64_t, const void *, size_t, int64_t, const void *,
                   size_t, int, float *, int64_t);
void kern_avx2_f32(int64_t, const void *, size_t, int64_t, const void *,
                   size_t, int, float *, int64_t);
void kern_avx2_swiglu(float *, const float *, int64_t);
void kern_avx2_attend_f16(const uint16_t *, const uint16_t *, size_t, int,
                          const float *, int, float, float *, float *);
void kern_avx512_q4_0(int64_t, const void *, size_t, int64_t, const void *,
                      size_t, int, float *, int64_t);
void kern_avx512_q8_0(int64_t, const void *, size_t, int64_t, const void *,
                      size_t, int, float *, int64_t);
void kern_avx2_q4_0_x16(int64_t, const void *, int64_t, const void *, size_t,
                        int, float *, int64_t);
void kern_avx2_q5_0_x16(int64_t, const void *, int64_t, const void *, size_t,
                        int, float *, int64_t);
void kern_avx2_q4_k_x16(int64_t, const void *, int64_t, const void *, size_t,
                        int, float *, int64_t);
void kern_avx2_q6_k_x16(int64_t, const void *, int64_t, const void *, size_t,
                        int, float *, int64_t);
void kern_avx512_q4_0_x16(int64_t, const void *, int64_t, const void *, size_t,
                          int, float *, int64_t);
void kern_avx512_q5_0_x16(int64_t, const void *, int64_t, const void *, size_t,
                          int, float *, int64_t);
void kern_avx512_q8_0_x16(int64_t, const void *, int64_t, const void *, size_t,
                          int, float *, int64_t);
void kern_avx512_attend_f16_group(const uint16_t *, const uint16_t *, size_t, int,
                                  int, const float *, size_t, int, float, float *,
                                  size_t, float *);
void kern_avx512_attend_f16(const uint16_t *, const uint16_t *, size_t, int,
                            const float *, int, float, float *, float *);
void kern_avx512_quant_act(const float *, repack_act *, int64_t);
void kern_avx512_q4_k_x16(int64_t, const void *, int64_t, const void *, size_t,
                          int, float *, int64_t);
void kern_avx512_q6_k_x16(int64_t, const void *, int64_t, const void *, size_t,
                          int, float *, int64_t);
#endif

/* For the ISA files: a kern_mm_fn NAME from a one-row dot product
 * DOT(n, weight_row, activation_row). Rows in tiles of 4: each tile's
 * weights stay in L1 while every activation row of the batch passes over
 * them. Expanded inside each ISA file, so DOT is compiled for its ISA.
 * KERN_DEF_MM2 takes a second DOT for the products vm_use_tile() picks
 * (the float types, whose summation order follows the batch's shape). */
#define KERN_DEF_MM2(NAME, DOT, DOT_TILE)                                     \
    void NAME(int64_t n, const void *w, size_t ws, int64_t nr,                \
              const void *act, size_t as, int na, float *out, int64_t os)    \
    {                                                                         \
        const uint8_t *wb = w, *ab = act;                                     \
        int tile_ = vm_use_tile(n, na);                                       \
        for (int64_t r0 = 0; r0 < nr; r0 += 4) {                              \
            int64_t r1 = r0 + 4 < nr ? r0 + 4 : nr;                           \
            for (int t = 0; t < na; t++)                                      \
                for (int64_t r = r0; r < r1; r++)                             \
                    out[(int64_t)t * os + r] =                                \
                        tile_ ? DOT_TILE(n, wb + (size_t)r * ws,              \
                                         ab + (size_t)t * as)                 \
                              : DOT(n, wb + (size_t)r * ws,                   \
                                    ab + (size_t)t * as);                     \
        }                                                                     \
    }
#define KERN_DEF_MM(NAME, DOT) KERN_DEF_MM2(NAME, DOT, DOT)

#endif
