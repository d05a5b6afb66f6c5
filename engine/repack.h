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
};

#define REPACK_ROWS 16          /* rows side by side in an x16 group */

/* One 32-value activation block as the x16 kernels read it: the Q8_0
 * quants, the scale as a float and the sum of the quants. */
typedef struct repack_act {
    int8_t q[32];
    float d;
    int32_t s;
} repack_act;

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

/* The reference kernel: for groups g < n_groups of a repacked matrix and
 * activation rows t < n_act (act_stride bytes apart, cols/32 blocks each),
 *     out[t * out_stride + 16g + r] = row (16g + r) . act_t
 * in the order the header describes. The SIMD kernels (kernels.h,
 * kern_mmx_fn) must give the same bits. */
void repack_mm_ref(int layout, int64_t cols, const void *groups,
                   int64_t n_groups, const void *act, size_t act_stride,
                   int n_act, float *out, int64_t out_stride);

#endif
