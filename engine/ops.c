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

void ops_get_row(const ops_matrix *w, int64_t r, float *dst)
{
    const unsigned char *row =
        (const unsigned char *)w->data + (uint64_t)r * w->row_bytes;
    /* The model checked type and row length at load: this cannot fail. */
    (void)qt_dequantize_row(w->type, row, dst, w->cols);
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
