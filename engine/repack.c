/* repack.c - the x16 weight layouts and their reference kernel (repack.h). */
#include "repack.h"

#include <math.h>
#include <string.h>

#include "quant.h"

/* What differs between the layouts of the 32-value block types. */
typedef struct x16_fmt {
    uint32_t type;         /* the file's type */
    size_t file_block;     /* its bytes per block */
    size_t block;          /* x16 bytes per block of 16 rows */
    int offset;            /* weight = d * (u - offset) */
} x16_fmt;

static const x16_fmt fmts[] = {
    [REPACK_Q4_0_X16] = {QT_Q4_0, 18, 32 + 256, 8},
    [REPACK_Q5_0_X16] = {QT_Q5_0, 22, 32 + 256 + 64, 16},
    [REPACK_Q8_0_X16] = {QT_Q8_0, 34, 32 + 512, 128},
};

static const x16_fmt *fmt_of(int layout)
{
    if (layout <= REPACK_NONE || layout > REPACK_Q8_0_X16)
        return NULL;
    return &fmts[layout];
}

int repack_layout_for(uint32_t type, int64_t rows, int64_t cols)
{
    if (rows <= 0 || rows % REPACK_ROWS != 0 || cols <= 0 || cols % 32 != 0)
        return REPACK_NONE;
    for (int l = REPACK_Q4_0_X16; l <= REPACK_Q8_0_X16; l++)
        if (fmts[l].type == type)
            return l;
    return REPACK_NONE;
}

size_t repack_group_bytes(int layout, int64_t cols)
{
    const x16_fmt *f = fmt_of(layout);
    return f ? (size_t)(cols / 32) * f->block : 0;
}

/* u of value k (< 32) of one block in the file's layout */
static unsigned file_u(int layout, const uint8_t *blk, int k)
{
    switch (layout) {
    case REPACK_Q4_0_X16: {
        const uint8_t *qs = blk + 2;
        return k < 16 ? qs[k] & 0x0f : qs[k - 16] >> 4;
    }
    case REPACK_Q5_0_X16: {
        uint32_t qh = (uint32_t)blk[2] | (uint32_t)blk[3] << 8 |
                      (uint32_t)blk[4] << 16 | (uint32_t)blk[5] << 24;
        const uint8_t *qs = blk + 6;
        unsigned lo = k < 16 ? qs[k] & 0x0f : qs[k - 16] >> 4;
        return lo | ((qh >> k) & 1u) << 4;
    }
    default: /* Q8_0 */
        return (uint8_t)((int8_t)blk[2 + k] + 128);
    }
}

/* store / load u of row r (< 16) at value k (< 32) of an x16 block */
static void x16_put(int layout, uint8_t *blk, int r, int k, unsigned u)
{
    if (layout == REPACK_Q8_0_X16) {
        blk[32 + 64 * (k / 4) + 4 * r + k % 4] = (uint8_t)u;
        return;
    }
    int c = k / 8, h = (k % 8) / 4, j = k % 4;
    blk[32 + 64 * c + 4 * r + j] |= (uint8_t)((u & 15u) << (4 * h));
    if (layout == REPACK_Q5_0_X16 && (u & 16u)) {
        int bit = 4 * r + j;
        blk[288 + 8 * (k / 4) + bit / 8] |= (uint8_t)(1u << (bit % 8));
    }
}

static unsigned x16_get(int layout, const uint8_t *blk, int r, int k)
{
    if (layout == REPACK_Q8_0_X16)
        return blk[32 + 64 * (k / 4) + 4 * r + k % 4];
    int c = k / 8, h = (k % 8) / 4, j = k % 4;
    unsigned u = (blk[32 + 64 * c + 4 * r + j] >> (4 * h)) & 15u;
    if (layout == REPACK_Q5_0_X16) {
        int bit = 4 * r + j;
        u |= ((blk[288 + 8 * (k / 4) + bit / 8] >> (bit % 8)) & 1u) << 4;
    }
    return u;
}

void repack_matrix(int layout, const void *src, size_t row_bytes,
                   int64_t rows, int64_t cols, void *dst)
{
    const x16_fmt *f = fmt_of(layout);
    if (!f)
        return;
    int64_t nb = cols / 32;
    uint8_t *out = dst;
    memset(out, 0, (size_t)(rows / REPACK_ROWS) * (size_t)nb * f->block);
    for (int64_t g = 0; g < rows / REPACK_ROWS; g++)
        for (int64_t b = 0; b < nb; b++, out += f->block)
            for (int r = 0; r < REPACK_ROWS; r++) {
                const uint8_t *blk = (const uint8_t *)src +
                                     (size_t)(g * REPACK_ROWS + r) * row_bytes +
                                     (size_t)b * f->file_block;
                memcpy(out + 2 * r, blk, 2);
                for (int k = 0; k < 32; k++)
                    x16_put(layout, out, r, k, file_u(layout, blk, k));
            }
}

static inline float f16_at(const uint8_t *p)
{
    return qt_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

void repack_get_row(int layout, const void *data, int64_t cols, int64_t r,
                    float *dst)
{
    const x16_fmt *f = fmt_of(layout);
    if (!f)
        return;
    int64_t nb = cols / 32;
    const uint8_t *blk = (const uint8_t *)data +
                         (size_t)(r / REPACK_ROWS) * repack_group_bytes(layout, cols);
    int rr = (int)(r % REPACK_ROWS);
    for (int64_t b = 0; b < nb; b++, blk += f->block) {
        float d = f16_at(blk + 2 * rr);
        for (int k = 0; k < 32; k++)
            dst[32 * b + k] =
                d * (float)((int)x16_get(layout, blk, rr, k) - f->offset);
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
    const x16_fmt *f = fmt_of(layout);
    if (!f)
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
                for (int64_t b = 0; b < nb; b++, blk += f->block) {
                    int32_t isum = 0;
                    for (int k = 0; k < 32; k++)
                        isum += (int32_t)x16_get(layout, blk, r, k) * a[b].q[k];
                    isum -= f->offset * a[b].s;
                    acc = fmaf((float)isum, f16_at(blk + 2 * r) * a[b].d, acc);
                }
                out[(int64_t)t * out_stride + g * REPACK_ROWS + r] = acc;
            }
        }
    }
}
