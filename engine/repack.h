/* repack.h - weight matrices rearranged at load for the integer kernels,
 * and the activation blocks those kernels read.
 *
 * A GGUF file stores a matrix row after row. A SIMD kernel that works on
 * one row at a time must unpack each block's bytes and then fold the lanes
 * of its sum into one number per block before scaling: most of its
 * instructions are bookkeeping. The "x16" layouts put sixteen rows side by
 * side instead, so that one 512-bit register holds four consecutive values
 * of each of sixteen rows and one vpdpbusd advances sixteen dot products
 * at once; each lane of the result is one row, so no folding is needed,
 * and the sixteen block scales are one load. Prompt processing (many
 * activation rows) and generation (one) use the same layout and the same
 * arithmetic, so a token's logits do not depend on the batch it was in.
 *
 * The x16 layouts of the 32-value block types, for rows % 16 == 0: group
 * g holds rows 16g..16g+15; for each block b of those rows, the sixteen
 * rows' f16 scales (32 bytes), then the quants as unsigned numbers u, the
 * weight being d * (u - offset):
 *   Q4_0 (offset 8, 288 bytes): 4 chunks c of 64 bytes; byte 4r + j of
 *        chunk c holds row r's u at value 8c + j in its low nibble and at
 *        8c + 4 + j in its high nibble (j < 4);
 *   Q5_0 (offset 16, 352 bytes): the four low bits as Q4_0's chunks, then
 *        8 little-endian 64-bit masks: bit 4r + j of mask i is the fifth
 *        bit of row r's u at value 4i + j;
 *   Q8_0 (offset 128, 544 bytes): 8 chunks i of 64 bytes; byte 4r + j of
 *        chunk i is row r's u (= q + 128) at value 4i + j.
 * Each keeps the file's bytes per row and block (18, 22, 34).
 *
 * Arithmetic (the order the kernels and the reference below share):
 *     isum = sum_k u[k] * q_a[k] - offset * sum_k q_a[k]   (exact, int32)
 *     acc  = fma((float)isum, d_w * d_a, acc)               block by block
 * with q_a, d_a the activation's Q8_0 quantization (quant.h), so a dot
 * product differs from qt_dot_q's only in the order of float additions.
 * Q8_0 keeps ggml's order instead (that of its vec_dot and tinyBLAS, which
 * llama.cpp runs for Q8_0 on x86, and of hearth's row kernels): eight
 * float lanes per row, lane i taking the integer sum of values 4i..4i+3
 * of every block, fma((float)sum_i, d_w * d_a, lane_i); at the end
 * ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
 *
 * The K-quant layouts keep a 256-value super-block per 16 rows, with
 * per-row tables the kernels widen once per super-block:
 *   Q4_K (2368 bytes): 16 f16 d, 16 f16 dmin, then for each 32-value
 *        group j the 16 rows' 6-bit scales (8 x 16 bytes), the mins as
 *        pairs (byte 32p + 2r + e = min of group 2p + e of row r; 128
 *        bytes), then the nibbles of group j in Q4_0's four-chunk form
 *        (8 x 256 bytes); weight = d sc_j u - dmin m_j.
 *        isum = sum_j sc_j sum_k u q_a,  msum = sum_j m_j s32_j,
 *        acc = fma((float)isum, d d_a, acc); acc = fma(-(float)msum,
 *        dmin d_a, acc).
 *   Q6_K (3360 bytes): 16 f16 d, the int8 scales of the 16 sixteen-value
 *        groups (16 x 16 bytes), the low nibbles of the 256 values as
 *        eight Q4_0-form groups of 32 (2048 bytes), then the top two bits:
 *        for values 4i..4i+3 (i = 4k + m), byte 64k + 4r + j holds those
 *        of value 4i + j in bits 2m, 2m+1 (1024 bytes); weight =
 *        d sc_k (u - 32).  isum = sum_k sc_k (sum u q_a - 32 s16_k),
 *        acc = fma((float)isum, d d_a, acc).
 * Both keep the file's bytes per row (Q4_K 148 against 144, Q6_K 210),
 * with q_a, d_a, s16, s32 from the activation's Q8_K quantization.
 */
#ifndef HEARTH_REPACK_H
#define HEARTH_REPACK_H

#include <stddef.h>
#include <stdint.h>

enum repack_layout {
    REPACK_NONE = 0,      /* rows as in the file */
    REPACK_Q4_0_X16 = 1,
    REPACK_Q5_0_X16 = 2,
    REPACK_Q8_0_X16 = 3,
    REPACK_Q4_K_X16 = 4,
    REPACK_Q6_K_X16 = 5,
};

#define REPACK_ROWS 16          /* rows side by side in an x16 group */

/* One 32-value activation block as the x16 kernels read it: the Q8_0
 * quants, the scale as a float and the sum of the quants. */
typedef struct repack_act {
    union {
        int8_t q[32];
        int32_t q4[8];   /* the same bytes, four at a time (broadcasts) */
    };
    float d;
    int32_t s;
    int32_t c4[8];  /* -128 * the sum of quants 4i..4i+3 (Q8_0's offset) */
} repack_act;

/* One 256-value activation super-block for the K-quant layouts: the Q8_K
 * quants and scale, and the sums of each 16 and each 32 quants. */
typedef struct repack_act_k {
    union {
        int8_t q[256];
        int32_t q4[64];
    };
    float d;
    int32_t s16[16];
    int16_t s32[8];
} repack_act_k;

/* The layout `type` is repacked into for a rows x cols matrix, or
 * REPACK_NONE when there is none (type, or rows not a multiple of 16). */
int repack_layout_for(uint32_t type, int64_t rows, int64_t cols);

/* Bytes of one group of REPACK_ROWS rows in `layout` (cols values each). */
size_t repack_group_bytes(int layout, int64_t cols);

/* Rearrange rows x cols of the file's layout (rows row_bytes apart) into
 * dst (rows / 16 * repack_group_bytes bytes). */
void repack_matrix(int layout, const void *src, size_t row_bytes,
                   int64_t rows, int64_t cols, void *dst);

/* Row r of a repacked matrix back to floats (the same values
 * qt_dequantize_row gives for the original row). */
void repack_get_row(int layout, const void *data, int64_t cols, int64_t r,
                    float *dst);

/* Quantize n values (n % 32 == 0) into n/32 activation blocks, with the
 * rounding of quant.h's Q8_0 (the activation type of Q4_0 weights). */
void repack_quantize_act(const float *x, repack_act *dst, int64_t n);
/* The same into n/256 super-blocks with Q8_K's rounding (n % 256 == 0). */
void repack_quantize_act_k(const float *x, repack_act_k *dst, int64_t n);

/* Bytes of one activation row of cols values for `layout`'s kernels, and
 * that row written (repack_quantize_act or _k by layout). */
size_t repack_act_bytes(int layout, int64_t cols);
void repack_quantize_row(int layout, const float *x, void *dst, int64_t n);

/* The reference kernel: for groups g < n_groups of a repacked matrix and
 * activation rows t < n_act (act_stride bytes apart, cols/32 blocks each),
 *     out[t * out_stride + 16g + r] = row (16g + r) . act_t
 * in the order the header describes. The SIMD kernels (kernels.h,
 * kern_mmx_fn) must give the same bits. */
void repack_mm_ref(int layout, int64_t cols, const void *groups,
                   int64_t n_groups, const void *act, size_t act_stride,
                   int n_act, float *out, int64_t out_stride);

#endif
