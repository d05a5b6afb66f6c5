/* ops.c - scalar forward-pass building blocks (see ops.h). */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "quant.h"

float ops_dot(const float *a, const float *b, int64_t n)
{
    /* Eight independent lanes: lets the compiler vectorize without
     * -ffast-math, and keeps rounding error lower than one serial sum. */
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
              ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void ops_rmsnorm(float *out, const float *x, const float *w, int64_t n,
                 float eps)
{
    /* Squares in float, their sum in double, the scale in float: the same
     * roundings as ggml, so results agree with llama.cpp to the last bit
     * more often (it matters for tiny models, see tests/test_model.c). */
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)(x[i] * x[i]);
    float mean = (float)(ss / (double)(n > 0 ? n : 1));
    float scale = 1.0f / sqrtf(mean + eps);
    if (w) {
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * scale * w[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * scale;
    }
}

void ops_softmax(float *x, int64_t n)
{
    if (n <= 0)
        return;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    if (mx == -INFINITY) {
        for (int64_t i = 0; i < n; i++)
            x[i] = 0.0f;
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float e = expf(x[i] - mx);
        x[i] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}

void ops_swiglu(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void ops_add(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

void ops_rope_table(float *cs, int n_rot, int32_t pos, const float *inv_freq)
{
    for (int j = 0; j < n_rot / 2; j++) {
        double theta = (double)pos * (double)inv_freq[j];
        cs[2 * j] = (float)cos(theta);
        cs[2 * j + 1] = (float)sin(theta);
    }
}

void ops_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs,
              bool neox)
{
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)head_dim;
        for (int j = 0; j < half; j++) {
            float c = cs[2 * j], s = cs[2 * j + 1];
            int i0 = neox ? j : 2 * j;
            int i1 = neox ? j + half : 2 * j + 1;
            float a = v[i0], b = v[i1];
            v[i0] = a * c - b * s;
            v[i1] = a * s + b * c;
        }
    }
}

/* ---- row dequantization fast paths ----
 * quant.c's converters are the clear reference; these do the same
 * arithmetic (bit for bit: tests/test_model.c compares them) in loops the
 * compiler can vectorize, for the types real models use most. */

static inline float ops_h2f(const unsigned char *p)
{
    return qt_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static void deq_f16_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = ops_h2f(b + 2 * i);
}

static void deq_q8_0_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 32, b += 34, y += 32) {
        float d = ops_h2f(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < 32; j++)
            y[j] = d * (float)q[j];
    }
}

static void deq_q4_0_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 32, b += 18, y += 32) {
        float d = ops_h2f(b);
        const unsigned char *q = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((q[j] & 0xf) - 8);
            y[j + 16] = d * (float)((q[j] >> 4) - 8);
        }
    }
}

/* Q4_K super-block: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins
 * for 8 groups of 32, then 128 bytes of nibbles (two groups per 32 bytes,
 * low nibbles first). value = d*scale*q - dmin*min. */
static void deq_q4_k_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 256, b += 144, y += 256) {
        float d = ops_h2f(b), dmin = ops_h2f(b + 2);
        const unsigned char *s = b + 4, *qs = b + 16;
        for (int g = 0; g < 8; g += 2) {
            int sc[2], mn[2];
            for (int k = 0; k < 2; k++) {
                int j = g + k;
                if (j < 4) {
                    sc[k] = s[j] & 63;
                    mn[k] = s[j + 4] & 63;
                } else {
                    sc[k] = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
                    mn[k] = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
                }
            }
            float d0 = d * (float)sc[0], m0 = dmin * (float)mn[0];
            float d1 = d * (float)sc[1], m1 = dmin * (float)mn[1];
            const unsigned char *q = qs + 16 * g;
            float *o = y + 32 * g;
            for (int l = 0; l < 32; l++) {
                o[l] = d0 * (float)(q[l] & 0xf) - m0;
                o[l + 32] = d1 * (float)(q[l] >> 4) - m1;
            }
        }
    }
}

/* Q6_K super-block: 128 bytes of low nibbles, 64 bytes of 2-bit highs,
 * 16 int8 scales (one per 16 values), f16 d. value = d*scale*(q - 32). */
static void deq_q6_k_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 256, b += 210, y += 256) {
        float d = ops_h2f(b + 208);
        const unsigned char *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float *o = y;
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, o += 128) {
            for (int half = 0; half < 2; half++) {
                int l0 = 16 * half;
                float s0 = d * (float)sc[half + 0], s1 = d * (float)sc[half + 2];
                float s2 = d * (float)sc[half + 4], s3 = d * (float)sc[half + 6];
                for (int l = l0; l < l0 + 16; l++) {
                    int q0 = (ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4;
                    int q1 = (ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4;
                    int q2 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
                    int q3 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
                    o[l] = s0 * (float)(q0 - 32);
                    o[l + 32] = s1 * (float)(q1 - 32);
                    o[l + 64] = s2 * (float)(q2 - 32);
                    o[l + 96] = s3 * (float)(q3 - 32);
                }
            }
        }
    }
}

void ops_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    const unsigned char *b = src;
    switch (type) {
    case QT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case QT_F16: deq_f16_row(b, dst, n); break;
    case QT_Q8_0: deq_q8_0_row(b, dst, n); break;
    case QT_Q4_0: deq_q4_0_row(b, dst, n); break;
    case QT_Q4_K: deq_q4_k_row(b, dst, n); break;
    case QT_Q6_K: deq_q6_k_row(b, dst, n); break;
    default: (void)qt_dequantize_row(type, src, dst, n); break;
    }
}

void ops_get_row(const ops_matrix *w, int64_t r, float *dst)
{
    const unsigned char *row =
        (const unsigned char *)w->data + (uint64_t)r * w->row_bytes;
    /* The model checked type and row length at load: this cannot fail. */
    ops_dequantize_row(w->type, row, dst, w->cols);
}

void ops_round_act(uint32_t wtype, const float *x, float *dst, int64_t n,
                   unsigned char *actq)
{
    uint32_t at = qt_act_type(wtype);
    if (wtype == QT_F16 || wtype == QT_BF16)
        at = wtype; /* half-precision dot products: activations in half */
    if (at == QT_F32 || at == QT_ACT_NONE ||
        qt_quantize_row(at, x, actq, n) != 0 ||
        qt_dequantize_row(at, actq, dst, n) != 0) {
        if (dst != x)
            memcpy(dst, x, (size_t)n * sizeof(float));
    }
}

void ops_matmul(float *out, int64_t out_stride, const ops_matrix *w,
                const float *x, int64_t x_stride, int n,
                const ops_scratch *s)
{
    if (w->type != QT_F32) {
        for (int t = 0; t < n; t++)
            ops_round_act(w->type, x + (int64_t)t * x_stride,
                          s->act + (int64_t)t * w->cols, w->cols, s->actq);
        x = s->act;
        x_stride = w->cols;
    }
    for (int64_t r = 0; r < w->rows; r++) {
        const float *row;
        if (w->type == QT_F32) {
            row = (const float *)((const unsigned char *)w->data +
                                  (uint64_t)r * w->row_bytes);
        } else {
            ops_get_row(w, r, s->row);
            row = s->row;
        }
        for (int t = 0; t < n; t++)
            out[(int64_t)t * out_stride + r] =
                ops_dot(row, x + (int64_t)t * x_stride, w->cols);
    }
}
