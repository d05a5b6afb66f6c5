/* quant.h - tensor element types: block layouts, (de)quantization and the
 * scalar reference dot products.
 *
 * Type ids and block layouts are those of GGUF/ggml, so files written by
 * llama.cpp load unchanged. The scalar functions here are the oracle the
 * SIMD kernels are tested against; they favour clarity over speed.
 */
#ifndef HEARTH_QUANT_H
#define HEARTH_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum qt_type {
    QT_F32 = 0,
    QT_F16 = 1,
    QT_Q4_0 = 2,
    QT_Q4_1 = 3,
    QT_Q5_0 = 6,
    QT_Q5_1 = 7,
    QT_Q8_0 = 8,
    QT_Q8_1 = 9,
    QT_Q2_K = 10,
    QT_Q3_K = 11,
    QT_Q4_K = 12,
    QT_Q5_K = 13,
    QT_Q6_K = 14,
    QT_Q8_K = 15,
    QT_BF16 = 30,
    QT_TYPE_MAX = 40 /* ids at or above this are refused */
};

#define QK_K 256 /* super-block size of the K-quants */

typedef struct qt_traits {
    const char *name;     /* "Q4_K" */
    uint32_t block_size;  /* values per block */
    uint32_t type_size;   /* bytes per block */
    bool can_dequantize;  /* supported as weight storage */
    bool can_quantize;    /* qt_quantize_row() implemented */
} qt_traits;

/* NULL for ids the engine does not know. */
const qt_traits *qt_traits_of(uint32_t type);
const char *qt_name(uint32_t type); /* "?" when unknown */
/* Type id for a name such as "q4_0" or "Q4_K" (case-insensitive); -1 if none. */
int qt_from_name(const char *name);

/* Bytes for a row of n values: -1 when n is not a multiple of the block
 * size or the product overflows, else 0 with *out set. */
int qt_row_size(uint32_t type, uint64_t n, uint64_t *out);

/* Convert one row of n values (n a multiple of the block size). Return 0,
 * or -1 (dst untouched) when the type cannot be converted (traits say so)
 * or n is negative or not a multiple of the block size. Blocks are read
 * byte by byte: src/dst need no particular alignment (float buffers
 * excepted). */
int qt_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
int qt_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

/* Scalar reference: dot product of a weight row of `type` with an F32
 * vector, computed by dequantizing in F32 and accumulating in double.
 * NaN for a type that cannot be dequantized or a bad n. */
float qt_dot_ref(uint32_t type, const void *row, const float *x, int64_t n);

/* Integer reference dot products, the way the SIMD kernels compute them:
 * the activation row is quantized to 8 bits (qt_act_type: Q8_0 for
 * Q4_0/Q5_0/Q8_0 weights, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, F32
 * for F32/F16/BF16 weights, QT_ACT_NONE for the rest), then
 * qt_dot_q sums integer products per block and scales them.
 * qt_quantize_act writes qt_row_size(qt_act_type(w), n) bytes to xq;
 * -1 for a weight type without an activation type or a bad n. qt_dot_q
 * returns NaN in those cases. */
#define QT_ACT_NONE UINT32_MAX
uint32_t qt_act_type(uint32_t weight_type);
int qt_quantize_act(uint32_t weight_type, const float *x, void *xq, int64_t n);
float qt_dot_q(uint32_t weight_type, const void *w, const void *xq, int64_t n);

/* The 6-bit scale and min of group j (< 8) of a Q4_K/Q5_K super-block,
 * from its 12 bytes of packed scales s. */
void qt_k4_scale_min(const uint8_t *s, int j, int *sc, int *mn);

/* half <-> float (IEEE binary16) and bfloat16, round to nearest even;
 * inf, nan and subnormals are handled (f16 overflow gives inf). */
float qt_f16_to_f32(uint16_t h);
uint16_t qt_f32_to_f16(float f);
float qt_bf16_to_f32(uint16_t h);
uint16_t qt_f32_to_bf16(float f);

#endif
