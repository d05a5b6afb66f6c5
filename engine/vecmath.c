/* vecmath.c - float dot products, exp and SwiGLU in llama.cpp's order
 * (see vecmath.h for why and for the exact orders). */
#include "vecmath.h"

#include <math.h>
#include <string.h>

#include "quant.h"

float vm_fold16(const float *l)
{
    float a[8], b[4];
    for (int i = 0; i < 8; i++)
        a[i] = l[i] + l[i + 8];
    for (int i = 0; i < 4; i++)
        b[i] = a[i] + a[i + 4];
    return (b[0] + b[2]) + (b[1] + b[3]);
}

/* Four accumulators of 16 lanes over whole steps of 64, reduced 0+2, 1+3,
 * 0+1, then folded. W(i) reads weight i as a float. */
#define VM_STEPS(W, n, x, np, out)                                            \
    do {                                                                      \
        float acc_[4][VM_LANES];                                              \
        memset(acc_, 0, sizeof acc_);                                         \
        for (int64_t i_ = 0; i_ < (np); i_ += VM_STEP)                        \
            for (int j_ = 0; j_ < 4; j_++)                                    \
                for (int l_ = 0; l_ < VM_LANES; l_++) {                       \
                    int64_t k_ = i_ + j_ * VM_LANES + l_;                     \
                    acc_[j_][l_] = fmaf(W(k_), (x)[k_], acc_[j_][l_]);        \
                }                                                             \
        for (int l_ = 0; l_ < VM_LANES; l_++) {                               \
            acc_[0][l_] += acc_[2][l_];                                       \
            acc_[1][l_] += acc_[3][l_];                                       \
        }                                                                     \
        for (int l_ = 0; l_ < VM_LANES; l_++)                                 \
            acc_[0][l_] += acc_[1][l_];                                       \
        (out) = vm_fold16(acc_[0]);                                           \
    } while (0)

/* One accumulator of 16 lanes over the whole row (n % 16 == 0). */
#define VM_TILE(W, n, x, out)                                                 \
    do {                                                                      \
        float acc_[VM_LANES] = {0};                                           \
        for (int64_t i_ = 0; i_ < (n); i_ += VM_LANES)                        \
            for (int l_ = 0; l_ < VM_LANES; l_++)                             \
                acc_[l_] = fmaf(W(i_ + l_), (x)[i_ + l_], acc_[l_]);          \
        (out) = vm_fold16(acc_);                                              \
    } while (0)

#define W16(k) qt_f16_to_f32(w[k])
#define W32(k) (w[k])

float vm_dot_f16(int64_t n, const uint16_t *w, const float *x)
{
    int64_t np = n / VM_STEP * VM_STEP;
    float head = 0.0f;
    if (np > 0)
        VM_STEPS(W16, n, x, np, head);
    /* products of two half-precision values are exact in float */
    double sum = head;
    for (int64_t i = np; i < n; i++)
        sum += (double)(qt_f16_to_f32(w[i]) * x[i]);
    return (float)sum;
}

float vm_dot_f32(int64_t n, const float *w, const float *x)
{
    int64_t np = n / VM_STEP * VM_STEP;
    float sum = 0.0f;
    if (np > 0)
        VM_STEPS(W32, n, x, np, sum);
    for (int64_t i = np; i < n; i++)
        sum = fmaf(w[i], x[i], sum);
    return sum;
}

float vm_dot_f16_tile(int64_t n, const uint16_t *w, const float *x)
{
    float s;
    VM_TILE(W16, n, x, s);
    return s;
}

float vm_dot_f32_tile(int64_t n, const float *w, const float *x)
{
    float s;
    VM_TILE(W32, n, x, s);
    return s;
}

float vm_expf(float x)
{
    /* x = n ln2 + b, |b| <= ln2/2: n by rounding x/ln2 with the 1.5*2^23
     * trick, b in two steps (ln2 split in a high and a low part), then
     * e^b by a polynomial and the result scaled by 2^n. */
    const float shift = 0x1.8p23f;
    float z = fmaf(x, 0x1.715476p+0f, shift);
    float n = z - shift;
    float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    float u = b * b;
    float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                        fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                   u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f)
        return n <= 0.0f ? 0.0f : INFINITY;
    return n == n ? ldexpf(j, (int)n) : j; /* NaN stays NaN */
}

void vm_swiglu(float *gate, const float *up, int64_t n)
{
    int64_t nv = n / VM_LANES * VM_LANES, i = 0;
    for (; i < nv; i++)
        gate[i] = vm_silu(gate[i]) * up[i];
    for (; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
