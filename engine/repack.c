/* repack.c - the x16 weight layouts and their reference kernel (repack.h). */
#include "repack.h"

#include <math.h>
#include <string.h>

#include "quant.h"

#define Q4_0_BLOCK_BYTES 18               /* f16 d + 16 bytes of nibbles */
#define X16_Q4_0_BLOCK (32 + 4 * 64)      /* 16 scales + 4 chunks */

int repack_layout_for(uint32_t type, int64_t rows, int64_t cols)
{
    if (rows <= 0 || rows % REPACK_ROWS != 0 || cols <= 0 || cols % 32 != 0)
        return REPACK_NONE;
    if (type == QT_Q4_0)
        return REPACK_Q4_0_X16;
    return REPACK_NONE;
}

size_t repack_group_bytes(int layout, int64_t cols)
{
    if (layout == REPACK_Q4_0_X16)
        return (size_t)(cols / 32) * X16_Q4_0_BLOCK;
    return 0;
}

/* value k (< 32) of a Q4_0 block's nibbles, unsigned 0..15 */
static inline unsigned q4_0_nibble(const uint8_t *qs, int k)
{
    return k < 16 ? qs[k] & 0x0f : qs[k - 16] >> 4;
}

static void repack_q4_0(const uint8_t *src, size_t row_bytes, int64_t rows,
                        int64_t cols, uint8_t *dst)
{
    int64_t nb = cols / 32;
    for (int64_t g = 0; g < rows / REPACK_ROWS; g++) {
        for (int64_t b = 0; b < nb; b++, dst += X16_Q4_0_BLOCK) {
            for (int r = 0; r < REPACK_ROWS; r++) {
                const uint8_t *blk = src + (size_t)(g * REPACK_ROWS + r) * row_bytes +
                                     (size_t)b * Q4_0_BLOCK_BYTES;
                memcpy(dst + 2 * r, blk, 2);
                const uint8_t *qs = blk + 2;
                for (int c = 0; c < 4; c++)
                    for (int j = 0; j < 4; j++)
                        dst[32 + 64 * c + 4 * r + j] =
                            (uint8_t)(q4_0_nibble(qs, 8 * c + j) |
                                      q4_0_nibble(qs, 8 * c + 4 + j) << 4);
            }
        }
    }
}

void repack_matrix(int layout, const void *src, size_t row_bytes,
                   int64_t rows, int64_t cols, void *dst)
{
    if (layout == REPACK_Q4_0_X16)
        repack_q4_0(src, row_bytes, rows, cols, dst);
}

static inline float f16_at(const uint8_t *p)
{
    return qt_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* quant of row r (< 16) at value k (< 32) of an x16 Q4_0 block */
static inline int x16_q4_0_quant(const uint8_t *blk, int r, int k)
{
    int c = k / 8, j = k % 8;
    uint8_t byte = blk[32 + 64 * c + 4 * r + (j & 3)];
    return j < 4 ? byte & 0x0f : byte >> 4;
}

void repack_get_row(int layout, const void *data, int64_t cols, int64_t r,
                    float *dst)
{
    if (layout != REPACK_Q4_0_X16)
        return;
    int64_t nb = cols / 32;
    const uint8_t *blk = (const uint8_t *)data +
                         (size_t)(r / REPACK_ROWS) * repack_group_bytes(layout, cols);
    int rr = (int)(r % REPACK_ROWS);
    for (int64_t b = 0; b < nb; b++, blk += X16_Q4_0_BLOCK) {
        float d = f16_at(blk + 2 * rr);
        for (int k = 0; k < 32; k++)
            dst[32 * b + k] = d * (float)(x16_q4_0_quant(blk, rr, k) - 8);
    }
}

void repack_quantize_act(const float *x, repack_act *dst, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++) {
        /* the Q8_0 block quant.c writes for Q4_0 weights: f16 d + 32 quants */
        unsigned char blk[34];
        (void)qt_quantize_act(QT_Q4_0, x + 32 * b, blk, 32);
        repack_act *a = &dst[b];
        a->d = f16_at(blk);
        memcpy(a->q, blk + 2, 32);
        int32_t s = 0;
        for (int k = 0; k < 32; k++)
            s += a->q[k];
        a->s = s;
    }
}

void repack_mm_ref(int layout, int64_t cols, const void *groups,
                   int64_t n_groups, const void *act, size_t act_stride,
                   int n_act, float *out, int64_t out_stride)
{
    if (layout != REPACK_Q4_0_X16)
        return;
    int64_t nb = cols / 32;
    size_t gb = repack_group_bytes(layout, cols);
    for (int64_t g = 0; g < n_groups; g++) {
        const uint8_t *grp = (const uint8_t *)groups + (size_t)g * gb;
        for (int t = 0; t < n_act; t++) {
            const repack_act *a =
                (const repack_act *)(const void *)((const uint8_t *)act +
                                                   (size_t)t * act_stride);
            for (int r = 0; r < REPACK_ROWS; r++) {
                float acc = 0.0f;
                const uint8_t *blk = grp;
                for (int64_t b = 0; b < nb; b++, blk += X16_Q4_0_BLOCK) {
                    int32_t isum = 0;
                    for (int k = 0; k < 32; k++)
                        isum += x16_q4_0_quant(blk, r, k) * a[b].q[k];
                    isum -= 8 * a[b].s;
                    acc = fmaf((float)isum, f16_at(blk + 2 * r) * a[b].d, acc);
                }
                out[(int64_t)t * out_stride + g * REPACK_ROWS + r] = acc;
            }
        }
    }
}
