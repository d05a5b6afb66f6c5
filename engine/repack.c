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

#define X16_Q4_K 2368   /* bytes per super-block of 16 rows */
#define X16_Q6_K 3360
#define Q4_K_FILE 144
#define Q6_K_FILE 210

int repack_layout_for(uint32_t type, int64_t rows, int64_t cols)
{
    if (rows <= 0 || rows % REPACK_ROWS != 0 || cols <= 0 || cols % 32 != 0)
        return REPACK_NONE;
    for (int l = REPACK_Q4_0_X16; l <= REPACK_Q8_0_X16; l++)
        if (fmts[l].type == type)
            return l;
    if (cols % QK_K == 0 && type == QT_Q4_K)
        return REPACK_Q4_K_X16;
    if (cols % QK_K == 0 && type == QT_Q6_K)
        return REPACK_Q6_K_X16;
    return REPACK_NONE;
}

size_t repack_group_bytes(int layout, int64_t cols)
{
    if (layout == REPACK_Q4_K_X16)
        return (size_t)(cols / QK_K) * X16_Q4_K;
    if (layout == REPACK_Q6_K_X16)
        return (size_t)(cols / QK_K) * X16_Q6_K;
    const x16_fmt *f = fmt_of(layout);
    return f ? (size_t)(cols / 32) * f->block : 0;
}

size_t repack_act_bytes(int layout, int64_t cols)
{
    if (layout == REPACK_Q4_K_X16 || layout == REPACK_Q6_K_X16)
        return (size_t)(cols / QK_K) * sizeof(repack_act_k);
    return (size_t)(cols / 32) * sizeof(repack_act);
}

void repack_quantize_row(int layout, const float *x, void *dst, int64_t n)
{
    if (layout == REPACK_Q4_K_X16 || layout == REPACK_Q6_K_X16)
        repack_quantize_act_k(x, dst, n);
    else
        repack_quantize_act(x, dst, n);
}

/* Row r's 32 quants u[] into a Q4_0-form nibble area (four 64-byte
 * chunks): every byte of the row's share written, nothing read. */
static void put_nibbles(uint8_t *area, int r, const uint8_t *u)
{
    for (int c = 0; c < 4; c++)
        for (int j = 0; j < 4; j++)
            area[64 * c + 4 * r + j] =
                (uint8_t)((u[8 * c + j] & 15u) | (u[8 * c + 4 + j] & 15u) << 4);
}

/* ---- K-quant layouts ---- */

/* where u of value v (< 256) of row r goes in a Q4_0-form nibble area
 * (eight groups of 32, four 64-byte chunks each) */
static inline size_t nib_byte(int r, int v, int *shift)
{
    int g = v / 32, k = v % 32;
    *shift = 4 * ((k % 8) / 4);
    return (size_t)(256 * g + 64 * (k / 8) + 4 * r + k % 4);
}

static void repack_q4_k(const uint8_t *src, size_t row_bytes, int64_t rows,
                        int64_t cols, uint8_t *out)
{
    int64_t ns = cols / QK_K;
    for (int64_t g = 0; g < rows / REPACK_ROWS; g++)
        for (int64_t sb = 0; sb < ns; sb++, out += X16_Q4_K)
            for (int r = 0; r < REPACK_ROWS; r++) {
                const uint8_t *b = src + (size_t)(g * REPACK_ROWS + r) * row_bytes +
                                   (size_t)sb * Q4_K_FILE;
                memcpy(out + 2 * r, b, 2);
                memcpy(out + 32 + 2 * r, b + 2, 2);
                for (int j = 0; j < 8; j++) {
                    int sc, mn;
                    qt_k4_scale_min(b + 4, j, &sc, &mn);
                    out[64 + 16 * j + r] = (uint8_t)sc;
                    out[192 + 32 * (j / 2) + 2 * r + j % 2] = (uint8_t)mn;
                }
                const uint8_t *qs = b + 16;
                for (int j = 0; j < 8; j++) {
                    uint8_t u[32];
                    for (int l = 0; l < 32; l++)
                        u[l] = (uint8_t)(qs[32 * (j / 2) + l] >> (4 * (j % 2)));
                    put_nibbles(out + 320 + 256 * j, r, u);
                }
            }
}

static void repack_q6_k(const uint8_t *src, size_t row_bytes, int64_t rows,
                        int64_t cols, uint8_t *out)
{
    int64_t ns = cols / QK_K;
    for (int64_t g = 0; g < rows / REPACK_ROWS; g++)
        for (int64_t sb = 0; sb < ns; sb++, out += X16_Q6_K)
            for (int r = 0; r < REPACK_ROWS; r++) {
                const uint8_t *b = src + (size_t)(g * REPACK_ROWS + r) * row_bytes +
                                   (size_t)sb * Q6_K_FILE;
                const uint8_t *ql = b, *qh = b + 128;
                memcpy(out + 2 * r, b + 208, 2);
                for (int k = 0; k < 16; k++)
                    out[32 + 16 * k + r] = b[192 + k];
                uint8_t lo[QK_K], hi[QK_K];
                for (int v = 0; v < QK_K; v++) {
                    int h = v / 128, j = (v % 128) / 32, l = v % 32;
                    lo[v] = (uint8_t)(ql[64 * h + l + 32 * (j & 1)] >> (4 * (j >> 1)));
                    hi[v] = (uint8_t)((qh[32 * h + l] >> (2 * j)) & 3u);
                }
                for (int g8 = 0; g8 < 8; g8++)
                    put_nibbles(out + 288 + 256 * g8, r, lo + 32 * g8);
                /* values 16k + 4m + j: bits 2m of byte 64k + 4r + j */
                for (int k = 0; k < 16; k++)
                    for (int j = 0; j < 4; j++)
                        out[2336 + 64 * k + 4 * r + j] =
                            (uint8_t)(hi[16 * k + j] | hi[16 * k + 4 + j] << 2 |
                                      hi[16 * k + 8 + j] << 4 | hi[16 * k + 12 + j] << 6);
            }
}

/* u of value v (< 256) of row r in a K super-block */
static unsigned k_u(int layout, const uint8_t *blk, int r, int v)
{
    int sh;
    if (layout == REPACK_Q4_K_X16) {
        size_t at = 320 + nib_byte(r, v, &sh);
        return (blk[at] >> sh) & 15u;
    }
    size_t at = 288 + nib_byte(r, v, &sh);
    unsigned lo = (blk[at] >> sh) & 15u;
    int i = v / 4;
    unsigned hi = (blk[2336 + 64 * (i / 4) + 4 * r + v % 4] >> (2 * (i % 4))) & 3u;
    return lo | hi << 4;
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

/* u of row r (< 16) at value k (< 32) of an x16 block */
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

static void repack_blocks(const x16_fmt *f, int layout, const uint8_t *src,
                          size_t row_bytes, int64_t rows, int64_t cols,
                          uint8_t *out)
{
    int64_t nb = cols / 32;
    for (int64_t g = 0; g < rows / REPACK_ROWS; g++)
        for (int64_t b = 0; b < nb; b++, out += f->block) {
            uint32_t fifth[REPACK_ROWS]; /* Q5_0: bit k = fifth bit of u[k] */
            for (int r = 0; r < REPACK_ROWS; r++) {
                const uint8_t *blk = src + (size_t)(g * REPACK_ROWS + r) * row_bytes +
                                     (size_t)b * f->file_block;
                memcpy(out + 2 * r, blk, 2);
                uint8_t u[32];
                fifth[r] = 0;
                for (int k = 0; k < 32; k++) {
                    u[k] = (uint8_t)file_u(layout, blk, k);
                    fifth[r] |= (uint32_t)(u[k] >> 4 & 1u) << k;
                }
                if (layout == REPACK_Q8_0_X16) {
                    for (int k = 0; k < 32; k++)
                        out[32 + 64 * (k / 4) + 4 * r + k % 4] = u[k];
                } else {
                    put_nibbles(out + 32, r, u);
                }
            }
            if (layout != REPACK_Q5_0_X16)
                continue;
            for (int i = 0; i < 8; i++) { /* mask i: bit 4r + j = u[4i + j] */
                uint64_t m = 0;
                for (int r = 0; r < REPACK_ROWS; r++)
                    m |= (uint64_t)(fifth[r] >> (4 * i) & 15u) << (4 * r);
                for (int by = 0; by < 8; by++)
                    out[288 + 8 * i + by] = (uint8_t)(m >> (8 * by));
            }
        }
}

void repack_matrix(int layout, const void *src, size_t row_bytes,
                   int64_t rows, int64_t cols, void *dst)
{
    if (layout == REPACK_Q4_K_X16)
        repack_q4_k(src, row_bytes, rows, cols, dst);
    else if (layout == REPACK_Q6_K_X16)
        repack_q6_k(src, row_bytes, rows, cols, dst);
    else if (fmt_of(layout))
        repack_blocks(fmt_of(layout), layout, src, row_bytes, rows, cols, dst);
}

static inline float f16_at(const uint8_t *p)
{
    return qt_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static void k_get_row(int layout, const uint8_t *blk, int64_t cols, int r,
                      float *dst)
{
    size_t bytes = layout == REPACK_Q4_K_X16 ? X16_Q4_K : X16_Q6_K;
    for (int64_t sb = 0; sb < cols / QK_K; sb++, blk += bytes, dst += QK_K) {
        float d = f16_at(blk + 2 * r);
        if (layout == REPACK_Q4_K_X16) {
            float dmin = f16_at(blk + 32 + 2 * r);
            for (int j = 0; j < 8; j++) {
                float dl = d * (float)blk[64 + 16 * j + r];
                float ml = dmin * (float)blk[192 + 32 * (j / 2) + 2 * r + j % 2];
                for (int l = 0; l < 32; l++)
                    dst[32 * j + l] = dl * (float)k_u(layout, blk, r, 32 * j + l) - ml;
            }
        } else {
            for (int v = 0; v < QK_K; v++)
                dst[v] = d * (float)(int8_t)blk[32 + 16 * (v / 16) + r] *
                         (float)((int)k_u(layout, blk, r, v) - 32);
        }
    }
}

void repack_get_row(int layout, const void *data, int64_t cols, int64_t r,
                    float *dst)
{
    if (layout == REPACK_Q4_K_X16 || layout == REPACK_Q6_K_X16) {
        k_get_row(layout, (const uint8_t *)data + (size_t)(r / REPACK_ROWS) *
                                                      repack_group_bytes(layout, cols),
                  cols, (int)(r % REPACK_ROWS), dst);
        return;
    }
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
        for (int i = 0; i < 8; i++) {
            int32_t s4 = a->q[4 * i] + a->q[4 * i + 1] + a->q[4 * i + 2] +
                         a->q[4 * i + 3];
            a->c4[i] = -128 * s4;
            s += s4;
        }
        a->s = s;
    }
}

void repack_quantize_act_k(const float *x, repack_act_k *dst, int64_t n)
{
    for (int64_t b = 0; b < n / QK_K; b++) {
        unsigned char blk[292]; /* Q8_K: f32 d, 256 quants, 16 int16 sums */
        (void)qt_quantize_act(QT_Q4_K, x + QK_K * b, blk, QK_K);
        repack_act_k *a = &dst[b];
        memcpy(&a->d, blk, 4);
        memcpy(a->q, blk + 4, QK_K);
        for (int k = 0; k < 16; k++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++)
                s += a->q[16 * k + l];
            a->s16[k] = s;
        }
        for (int j = 0; j < 8; j++)
            a->s32[j] = (int16_t)(a->s16[2 * j] + a->s16[2 * j + 1]);
    }
}

/* row r of a K super-block times one activation super-block */
static float k_dot_sb(int layout, const uint8_t *blk, int r,
                      const repack_act_k *a, float acc)
{
    int32_t isum = 0;
    if (layout == REPACK_Q4_K_X16) {
        int32_t msum = 0;
        for (int j = 0; j < 8; j++) {
            int32_t s = 0;
            for (int l = 0; l < 32; l++)
                s += (int32_t)k_u(layout, blk, r, 32 * j + l) * a->q[32 * j + l];
            isum += blk[64 + 16 * j + r] * s;
            msum += blk[192 + 32 * (j / 2) + 2 * r + j % 2] * a->s32[j];
        }
        acc = fmaf((float)isum, f16_at(blk + 2 * r) * a->d, acc);
        return fmaf(-(float)msum, f16_at(blk + 32 + 2 * r) * a->d, acc);
    }
    for (int k = 0; k < 16; k++) {
        int32_t s = 0;
        for (int l = 0; l < 16; l++)
            s += (int32_t)k_u(layout, blk, r, 16 * k + l) * a->q[16 * k + l];
        isum += (int8_t)blk[32 + 16 * k + r] * (s - 32 * a->s16[k]);
    }
    return fmaf((float)isum, f16_at(blk + 2 * r) * a->d, acc);
}

static void k_mm_ref(int layout, int64_t cols, const void *groups,
                     int64_t n_groups, const void *act, size_t act_stride,
                     int n_act, float *out, int64_t out_stride)
{
    size_t gb = repack_group_bytes(layout, cols);
    size_t sbb = layout == REPACK_Q4_K_X16 ? X16_Q4_K : X16_Q6_K;
    for (int64_t g = 0; g < n_groups; g++)
        for (int t = 0; t < n_act; t++) {
            const repack_act_k *a =
                (const repack_act_k *)(const void *)((const uint8_t *)act +
                                                     (size_t)t * act_stride);
            for (int r = 0; r < REPACK_ROWS; r++) {
                const uint8_t *blk = (const uint8_t *)groups + (size_t)g * gb;
                float acc = 0.0f;
                for (int64_t sb = 0; sb < cols / QK_K; sb++, blk += sbb)
                    acc = k_dot_sb(layout, blk, r, &a[sb], acc);
                out[(int64_t)t * out_stride + g * REPACK_ROWS + r] = acc;
            }
        }
}

/* row r of a Q8_0 x16 matrix times one activation row, in ggml's order */
static float q8_0_dot_lanes(const uint8_t *blk, int64_t nb, int r,
                            const repack_act *a)
{
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++, blk += fmts[REPACK_Q8_0_X16].block) {
        float d = f16_at(blk + 2 * r) * a[b].d;
        for (int i = 0; i < 8; i++) {
            int32_t p = a[b].c4[i];
            for (int k = 4 * i; k < 4 * i + 4; k++)
                p += (int32_t)x16_get(REPACK_Q8_0_X16, blk, r, k) * a[b].q[k];
            l[i] = fmaf((float)p, d, l[i]);
        }
    }
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

void repack_mm_ref(int layout, int64_t cols, const void *groups,
                   int64_t n_groups, const void *act, size_t act_stride,
                   int n_act, float *out, int64_t out_stride)
{
    if (layout == REPACK_Q4_K_X16 || layout == REPACK_Q6_K_X16) {
        k_mm_ref(layout, cols, groups, n_groups, act, act_stride, n_act, out,
                 out_stride);
        return;
    }
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
                if (layout == REPACK_Q8_0_X16) {
                    out[(int64_t)t * out_stride + g * REPACK_ROWS + r] =
                        q8_0_dot_lanes(blk, nb, r, a);
                    continue;
                }
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
