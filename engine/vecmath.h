/* vecmath.h - float dot products, exp and SwiGLU in llama.cpp's order.
 *
 * Why this exists: a GGUF model's reference outputs come from llama.cpp's
 * CPU backend (ggml), and small models amplify rounding. With F16 values
 * rounded at every step of attention and 8-bit activations rounded before
 * every integer product, a difference in the last bit of one float sum
 * flips a rounding somewhere, and the logits of stories260K move by
 * hundredths to tenths (tests/test_model.c measures it). So the float
 * operations that feed those roundings are done here in the order ggml's
 * x86 build does them:
 *
 *  - vm_dot_f16 / vm_dot_f32: ggml_vec_dot_f16 / _f32 as an AVX-512 build
 *    reduces them: 64 values at a time in four accumulators of 16 lanes
 *    (fused multiply-adds), the accumulators added pairwise (0+2, 1+3,
 *    then 0+1), the 16 lanes folded 16->8->4 and summed as (0+2)+(1+3);
 *    the values past the last whole 64 added one by one (F16: products
 *    summed in double; F32: fused into the float sum).
 *  - vm_dot_*_tile: llamafile's tinyBLAS, which ggml uses for products of
 *    two or more activation rows whose length is a multiple of 16: one
 *    accumulator of 16 lanes over the whole row, folded as above.
 *  - vm_expf: the vectorized exp ggml's SiLU uses (a degree-5 polynomial
 *    after range reduction by ln 2, in fused multiply-adds), one lane.
 *  - vm_swiglu: silu(gate) * up with vm_expf over whole groups of 16 and
 *    the C library's expf for the rest, as ggml's swiglu does.
 *
 * These are the portable scalar versions (fmaf); kernels_avx2.c has the
 * same arithmetic in SIMD, equal bit for bit (tests/test_kernels.c). */
#ifndef HEARTH_VECMATH_H
#define HEARTH_VECMATH_H

#include <stdint.h>

/* Lanes of one accumulator and values per step of the vector dot. */
#define VM_LANES 16
#define VM_STEP 64

/* sum_i w[i] * x[i]; w in F16 (binary16 bits), x floats. */
float vm_dot_f16(int64_t n, const uint16_t *w, const float *x);
float vm_dot_f32(int64_t n, const float *w, const float *x);

/* The tinyBLAS order; n must be a multiple of VM_LANES. */
float vm_dot_f16_tile(int64_t n, const uint16_t *w, const float *x);
float vm_dot_f32_tile(int64_t n, const float *w, const float *x);

/* Which order ggml uses for a product over rows of length n with n_act
 * activation rows: the tile order for two or more rows of a length that
 * divides into 16-lane steps. */
static inline int vm_use_tile(int64_t n, int n_act)
{
    return n_act >= 2 && n % VM_LANES == 0;
}

/* Fold 16 lanes to one float: 16->8->4 pairwise, then (0+2)+(1+3). */
float vm_fold16(const float *lanes);

float vm_expf(float x);

/* silu(x) = x / (1 + e^-x) with vm_expf, as ggml's vector lanes do it. */
static inline float vm_silu(float x)
{
    return x / (1.0f + vm_expf(0.0f - x));
}

/* gate[i] = silu(gate[i]) * up[i], i < n. */
void vm_swiglu(float *gate, const float *up, int64_t n);

#endif
