/* kernels_avx2.c - AVX2 + FMA + F16C matrix-product kernels (kernels.h).
 *
 * Compiled for those instructions by the pragma below whatever the build's
 * -march; kernels.c calls these only on a CPU that has them.
 *
 * Integer products: a weight quant (unsigned, or made signed) times an
 * activation quant (signed 8-bit) with vpmaddubsw, which multiplies
 * unsigned by signed bytes and adds adjacent pairs into int16. The operand
 * ranges keep every pair sum inside int16: |w| <= 63 (K-quants, Q4_0) or
 * sign-folded Q8_0 (|w| <= 127 against |a| <= 127: 2*127*127 < 32768).
 * Sums within a block are exact in int32; block results are scaled and
 * added in float, in a different order from qt_dot_q's double sum.
 */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma,f16c")

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kernels_x86.h"
#include "repack.h"

/* signed bytes a*b summed in pairs of pairs to int32 (|a| folded into
 * the unsigned operand, its sign moved onto b) */
static inline __m256i dot_s8(__m256i a, __m256i b)
{
    __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a),
                                       _mm256_sign_epi8(b, a));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

/* ---------------------------------------------------------- Q4_0 x Q8_0 */

static float dot_q4_0(int64_t n, const uint8_t *w, const uint8_t *a)
{
    __m256 acc = _mm256_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    for (int64_t i = 0; i < n; i += 32, w += 18, a += 34) {
        __m256i q = _mm256_sub_epi8(unpack_q4(w + 2), eight);
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + 2));
        __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_s8(q, x)), acc);
    }
    return hsum_ps(acc);
}

/* Q4_0 x Q8_0 as llama.cpp computes a repacked Q4_0 matrix (x86
 * ggml_gemv/gemm_q4_0_8x8_q8_0, for matrices of 8k rows): each block's
 * integer sum exact, then one fused multiply-add per block into a single
 * float, in block order. */
static float dot_q4_0_x8(int64_t n, const uint8_t *w, const uint8_t *a)
{
    float acc = 0.0f;
    const __m256i eight = _mm256_set1_epi8(8);
    for (int64_t i = 0; i < n; i += 32, w += 18, a += 34) {
        __m256i q = _mm256_sub_epi8(unpack_q4(w + 2), eight);
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + 2));
        __m256i s8 = dot_s8(q, x);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8),
                                   _mm256_extracti128_si256(s8, 1));
        s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
        acc = fmaf((float)_mm_cvtsi128_si32(s4), h2f(w) * h2f(a), acc);
    }
    return acc;
}

/* ---------------------------------------------------------- Q8_0 x Q8_0 */

static float dot_q8_0(int64_t n, const uint8_t *w, const uint8_t *a)
{
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 32, w += 34, a += 34) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(w + 2));
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + 2));
        __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_s8(q, x)), acc);
    }
    return hsum_ps(acc);
}

/* -------------------------------------------- Q5_0 x Q8_0, Q4_1/Q5_1 x Q8_1 */

/* The fifth bits of a Q5 block: bit j of the 32-bit qh goes to byte j,
 * as 0x10 when set. */
static inline __m256i q5_high(const uint8_t *qhp)
{
    uint32_t qh;
    memcpy(&qh, qhp, 4);
    __m256i b = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)qh),
        _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                          0x0101010101010101LL, 0));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

static float dot_q5_0(int64_t n, const uint8_t *w, const uint8_t *a)
{
    __m256 acc = _mm256_setzero_ps();
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < n; i += 32, w += 22, a += 34) {
        __m256i q = _mm256_or_si256(unpack_q4(w + 6), q5_high(w + 2));
        q = _mm256_sub_epi8(q, sixteen);
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + 2));
        __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_s8(q, x)), acc);
    }
    return hsum_ps(acc);
}

/* sum (d q + m)(da qa) = d da sum(q qa) + m s, s = da sum(qa) stored in
 * the Q8_1 block; q is unsigned (0..15 / 0..31), fine for vpmaddubsw. */
static float dot_q4_1(int64_t n, const uint8_t *w, const uint8_t *a)
{
    __m256 acc = _mm256_setzero_ps();
    float ms = 0.0f;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < n; i += 32, w += 20, a += 36) {
        __m256i q = unpack_q4(w + 4);
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + 4));
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), ones);
        __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        ms += h2f(w + 2) * h2f(a + 2);
    }
    return hsum_ps(acc) + ms;
}

static float dot_q5_1(int64_t n, const uint8_t *w, const uint8_t *a)
{
    __m256 acc = _mm256_setzero_ps();
    float ms = 0.0f;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < n; i += 32, w += 24, a += 36) {
        __m256i q = _mm256_or_si256(unpack_q4(w + 8), q5_high(w + 4));
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + 4));
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), ones);
        __m256 d = _mm256_set1_ps(h2f(w) * h2f(a));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        ms += h2f(w + 2) * h2f(a + 2);
    }
    return hsum_ps(acc) + ms;
}

/* ---------------------------------------------------------- Q4_K x Q8_K */

/* The 8 six-bit scales and 8 mins of a Q4_K super-block (12 bytes), as
 * 8 bytes each: scales/mins 0-3 are the low 6 bits of bytes 0-3 / 4-7;
 * 4-7 take their low 4 bits from the nibbles of bytes 8-11 and their top
 * 2 bits from the top of bytes 0-3 / 4-7. */
static inline void k4_scales(const uint8_t *s, __m128i *sc16, __m128i *mn16)
{
    uint32_t u[3];
    memcpy(u, s, 12);
    uint32_t sc_lo = u[0] & 0x3f3f3f3fu;
    uint32_t mn_lo = u[1] & 0x3f3f3f3fu;
    uint32_t sc_hi = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 6) & 0x03030303u) << 4;
    uint32_t mn_hi =
        ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 6) & 0x03030303u) << 4;
    *sc16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo));
    *mn16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)mn_hi, (int)mn_lo));
}

/* Block scales and mins are applied in int32; each super-block's int32
 * sums are scaled into float accumulators, reduced once per row. */
static float dot_q4_k(int64_t n, const uint8_t *w, const uint8_t *a)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    /* shuffle masks broadcasting int16 element 2k / 2k+1 of a lane */
    __m256i bc[8];
    for (int e = 0; e < 8; e++)
        bc[e] = _mm256_set1_epi16((short)(0x0100 + 0x0202 * e));
    __m256 accf = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 256, w += 144, a += 292) {
        __m128i sc16, mn16;
        k4_scales(w + 4, &sc16, &mn16);
        float da;
        memcpy(&da, a, 4);
        /* mins: sum over the 16 Q8_K sums of 16 of mn[k/2] * bsum[k] */
        __m256i bs = _mm256_loadu_si256((const __m256i *)(a + 260));
        __m256i mn2 = _mm256_set_m128i(_mm_unpackhi_epi16(mn16, mn16),
                                       _mm_unpacklo_epi16(mn16, mn16));
        __m256i msum = _mm256_madd_epi16(bs, mn2);
        accm = _mm256_fmadd_ps(_mm256_set1_ps(da * h2f(w + 2)),
                               _mm256_cvtepi32_ps(msum), accm);
        __m256i scb = _mm256_broadcastsi128_si256(sc16);
        const uint8_t *qs = w + 16;
        const uint8_t *aq = a + 4;
        __m256i acc = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(aq + 64 * k));
            __m256i x1 =
                _mm256_loadu_si256((const __m256i *)(aq + 64 * k + 32));
            __m256i p0 = _mm256_maddubs_epi16(lo, x0);
            __m256i p1 = _mm256_maddubs_epi16(hi, x1);
            __m256i s0 = _mm256_shuffle_epi8(scb, bc[2 * k]);
            __m256i s1 = _mm256_shuffle_epi8(scb, bc[2 * k + 1]);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p0, s0));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p1, s1));
        }
        accf = _mm256_fmadd_ps(_mm256_set1_ps(da * h2f(w)),
                               _mm256_cvtepi32_ps(acc), accf);
    }
    return hsum_ps(accf) - hsum_ps(accm);
}

/* ---------------------------------------------------------- Q6_K x Q8_K */

/* value i of a super-block (h = i/128, j = i%128/32, l = i%32):
 *   low 4 bits  ql[64h + l + 32(j&1)] >> 4(j>>1)
 *   high 2 bits qh[32h + l] >> 2j
 * q - 32 with one int8 scale per 16 values. The quants are used unsigned
 * (0..63) and 32 * sum(scale * activation sum) is taken off afterwards,
 * from Q8_K's per-16 sums. */
static float dot_q6_k(int64_t n, const uint8_t *w, const uint8_t *a)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m3 = _mm256_set1_epi8(0x03);
    __m256 accf = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 256, w += 210, a += 292) {
        const int8_t *sc = (const int8_t *)(w + 192);
        const uint8_t *aq = a + 4;
        float da;
        memcpy(&da, a, 4);
        __m256i sc16 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        __m256i bs = _mm256_loadu_si256((const __m256i *)(a + 260));
        __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
        __m256i acc = _mm256_sub_epi32(_mm256_setzero_si256(), corr);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
            for (int j = 0; j < 4; j++) {
                __m256i lb = (j & 1) ? l1 : l0;
                if (j >> 1)
                    lb = _mm256_srli_epi16(lb, 4);
                lb = _mm256_and_si256(lb, m4);
                __m256i hi = _mm256_and_si256(
                    _mm256_srli_epi16(hb, 2 * j), m3);
                __m256i q = _mm256_or_si256(lb, _mm256_slli_epi16(hi, 4));
                __m256i x = _mm256_loadu_si256(
                    (const __m256i *)(aq + 128 * h + 32 * j));
                __m256i p = _mm256_maddubs_epi16(q, x);
                int s = 8 * h + 2 * j; /* scale of the first 16 values */
                __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[s + 1]),
                                               _mm_set1_epi16(sc[s]));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, scv));
            }
        }
        accf = _mm256_fmadd_ps(_mm256_set1_ps(da * h2f(w + 208)),
                               _mm256_cvtepi32_ps(acc), accf);
    }
    return hsum_ps(accf);
}

/* ------------------------------------------------ F16 / F32 x F32 rows */

/* vecmath.h's orders: a 16-lane accumulator is two ymm registers (lanes
 * 0-7, 8-15); folding it is (lo + hi) then hsum_ps's 8->4->(0+2)+(1+3). */
static inline __m256 ld_h8(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}

static inline float fold16(__m256 lo, __m256 hi)
{
    return hsum_ps(_mm256_add_ps(lo, hi));
}

#define AVX2_STEPS(LD, w, x, np, out)                                         \
    do {                                                                      \
        __m256 a_[4][2];                                                      \
        for (int j_ = 0; j_ < 4; j_++)                                        \
            a_[j_][0] = a_[j_][1] = _mm256_setzero_ps();                      \
        for (int64_t i_ = 0; i_ < (np); i_ += 64)                             \
            for (int j_ = 0; j_ < 4; j_++)                                    \
                for (int h_ = 0; h_ < 2; h_++) {                              \
                    int64_t k_ = i_ + 16 * j_ + 8 * h_;                       \
                    a_[j_][h_] = _mm256_fmadd_ps(LD((w) + k_),                \
                                                 _mm256_loadu_ps((x) + k_),   \
                                                 a_[j_][h_]);                 \
                }                                                             \
        for (int h_ = 0; h_ < 2; h_++) {                                      \
            a_[0][h_] = _mm256_add_ps(a_[0][h_], a_[2][h_]);                  \
            a_[1][h_] = _mm256_add_ps(a_[1][h_], a_[3][h_]);                  \
            a_[0][h_] = _mm256_add_ps(a_[0][h_], a_[1][h_]);                  \
        }                                                                     \
        (out) = fold16(a_[0][0], a_[0][1]);                                   \
    } while (0)

#define AVX2_TILE(LD, w, x, n, out)                                           \
    do {                                                                      \
        __m256 lo_ = _mm256_setzero_ps(), hi_ = _mm256_setzero_ps();          \
        for (int64_t i_ = 0; i_ < (n); i_ += 16) {                            \
            lo_ = _mm256_fmadd_ps(LD((w) + i_), _mm256_loadu_ps((x) + i_),    \
                                  lo_);                                       \
            hi_ = _mm256_fmadd_ps(LD((w) + i_ + 8),                           \
                                  _mm256_loadu_ps((x) + i_ + 8), hi_);        \
        }                                                                     \
        (out) = fold16(lo_, hi_);                                             \
    } while (0)

static inline float dot_f16_vec(int64_t n, const uint16_t *w, const float *x)
{
    int64_t np = n / 64 * 64;
    float head = 0.0f;
    if (np > 0)
        AVX2_STEPS(ld_h8, w, x, np, head);
    double sum = head;
    for (int64_t i = np; i < n; i++)
        sum += (double)(_cvtsh_ss(w[i]) * x[i]);
    return (float)sum;
}

static float dot_f16(int64_t n, const uint8_t *w, const uint8_t *a)
{
    return dot_f16_vec(n, (const uint16_t *)(const void *)w,
                       (const float *)(const void *)a);
}

static float dot_f16_tile(int64_t n, const uint8_t *w, const uint8_t *a)
{
    float s;
    AVX2_TILE(ld_h8, (const uint16_t *)(const void *)w,
              (const float *)(const void *)a, n, s);
    return s;
}

static float dot_f32(int64_t n, const uint8_t *wb, const uint8_t *a)
{
    const float *w = (const float *)(const void *)wb;
    const float *x = (const float *)(const void *)a;
    int64_t np = n / 64 * 64;
    float s = 0.0f;
    if (np > 0)
        AVX2_STEPS(_mm256_loadu_ps, w, x, np, s);
    for (int64_t i = np; i < n; i++)
        s = fmaf(w[i], x[i], s);
    return s;
}

static float dot_f32_tile(int64_t n, const uint8_t *w, const uint8_t *a)
{
    float s;
    AVX2_TILE(_mm256_loadu_ps, (const float *)(const void *)w,
              (const float *)(const void *)a, n, s);
    return s;
}

/* ---------------------------------------------------------- SwiGLU */

/* vm_expf on 8 lanes. 2^n is built in the exponent field, exact for
 * |n| <= 126; lanes beyond that (x below about -87 or above 87) are
 * redone one by one by vm_expf. */
static inline __m256 expf8(__m256 x, int *out_of_range)
{
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
    __m256 n = _mm256_sub_ps(z, shift);
    __m256 b = _mm256_fnmadd_ps(
        n, _mm256_set1_ps(0x1.7f7d1cp-20f),
        _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    __m256 u = _mm256_mul_ps(b, b);
    __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b,
                                        _mm256_set1_ps(0x1.573e2ep-5f)),
                        u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b,
                                        _mm256_set1_ps(0x1.fffdb6p-2f))),
        u,
        _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b,
                        _mm256_set1_ps(1.0f)));
    __m256 big = _mm256_cmp_ps(
        _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n), _mm256_set1_ps(126.0f),
        _CMP_GT_OQ);
    *out_of_range = _mm256_movemask_ps(big) |
                    _mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(j, _mm256_castsi256_ps(e));
}

void kern_avx2_swiglu(float *gate, const float *up, int64_t n)
{
    int64_t nv = n / VM_LANES * VM_LANES, i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i < nv; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        int bad;
        __m256 e = expf8(_mm256_sub_ps(_mm256_setzero_ps(), g), &bad);
        if (bad) { /* rare: these 8 one by one, as vm_swiglu does them */
            for (int l = 0; l < 8; l++)
                gate[i + l] = vm_silu(gate[i + l]) * up[i + l];
            continue;
        }
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    vm_swiglu(gate + nv, up + nv, n - nv); /* < 16 values: libm's expf */
}

/* ---------------------------------------------------------- attention */

static inline __m256 round_f16(__m256 x)
{
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

static inline float round1_f16(float x)
{
    return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}

/* One pass of kv_attend's F16 path with F16C conversions and FMA, the
 * same operations in the same order: q rounded to F16; each score
 * vm_dot_f16's sum times scale; the running value sum kept in F16,
 * rounded after every fused multiply-add; the sum of exponentials fused.
 * The results equal kv.c's loop bit for bit (tests/test_kernels.c), NaN
 * payloads aside. */
void kern_avx2_attend_f16(const uint16_t *k, const uint16_t *v,
                          size_t stride, int hd, const float *q, int n_pos,
                          float scale, float *acc_out, float *m_s)
{
    float qh[KERN_MAX_HEAD_DIM], acc[KERN_MAX_HEAD_DIM];
    int i8 = hd / 8 * 8;
    for (int i = 0; i < hd; i++) {
        qh[i] = round1_f16(q[i]);
        acc[i] = 0.0f;
    }
    float M = -INFINITY, S = 0.0f;
    for (int p = 0; p < n_pos; p++) {
        const uint16_t *kp = k + (size_t)p * stride;
        const uint16_t *vp = v + (size_t)p * stride;
        float s = dot_f16_vec(hd, kp, qh) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            ms = expf(M - s);
            M = s;
            __m256 m8 = _mm256_set1_ps(ms);
            int i = 0;
            for (; i < i8; i += 8)
                _mm256_storeu_ps(acc + i, round_f16(_mm256_mul_ps(
                                              _mm256_loadu_ps(acc + i), m8)));
            for (; i < hd; i++)
                acc[i] = round1_f16(acc[i] * ms);
        } else {
            vs = expf(s - M);
        }
        __m256 v8 = _mm256_set1_ps(vs);
        int i = 0;
        for (; i < i8; i += 8)
            _mm256_storeu_ps(acc + i,
                             round_f16(_mm256_fmadd_ps(ld_h8(vp + i), v8,
                                                       _mm256_loadu_ps(acc + i))));
        for (; i < hd; i++)
            acc[i] = round1_f16(fmaf(_cvtsh_ss(vp[i]), vs, acc[i]));
        S = fmaf(S, ms, vs);
    }
    memcpy(acc_out, acc, sizeof(float) * (size_t)hd);
    m_s[0] = M;
    m_s[1] = S;
}

/* ------------------------------------------------ x16 layouts (repack.h)
 * Q4_0 and Q5_0 with sixteen rows in two 256-bit halves (rows 0-7, 8-15).
 * Without VNNI, vpmaddubsw multiplies the unsigned quants by the signed
 * activation bytes into int16 pairs: at most 2 * 15 * 127 = 3810 for Q4_0
 * (eight of them still fit int16, so one vpmaddwd per block) and 7874 for
 * Q5_0 (four). Integer block sums are exact, then one fused multiply-add
 * per block as repack_mm_ref() does: the same bits. Two activation rows
 * per tile (the sixteen registers hold no more). */

static inline __attribute__((always_inline)) void
x16_blk_tile(int layout, size_t block, int offset, int64_t nb,
             const uint8_t *grp, const uint8_t *act, size_t as, int T,
             float *out, int64_t os)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 f[2][2];
    for (int t = 0; t < T; t++)
        f[t][0] = f[t][1] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, grp += block) {
        __m256i s16[2][2], s32[2][2];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < 2; h++)
                s16[t][h] = s32[t][h] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_loadu_si256(
                    (const __m256i *)(grp + 32 + 64 * c + 32 * h));
                __m256i lo = _mm256_and_si256(v, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                if (layout == REPACK_Q5_0_X16) {
                    lo = _mm256_or_si256(lo, q5_high(grp + 288 + 8 * (2 * c) + 4 * h));
                    hi = _mm256_or_si256(hi,
                                         q5_high(grp + 288 + 8 * (2 * c + 1) + 4 * h));
                }
                for (int t = 0; t < T; t++) {
                    const repack_act *a =
                        (const repack_act *)(const void *)(act + (size_t)t * as) + b;
                    s16[t][h] = _mm256_add_epi16(
                        s16[t][h], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(a->q4[2 * c])));
                    s16[t][h] = _mm256_add_epi16(
                        s16[t][h],
                        _mm256_maddubs_epi16(hi, _mm256_set1_epi32(a->q4[2 * c + 1])));
                }
            }
            if (layout == REPACK_Q5_0_X16 && (c & 1)) { /* four per int16 */
                for (int t = 0; t < T; t++)
                    for (int h = 0; h < 2; h++) {
                        s32[t][h] = _mm256_add_epi32(s32[t][h],
                                                     _mm256_madd_epi16(s16[t][h], ones));
                        s16[t][h] = _mm256_setzero_si256();
                    }
            }
        }
        for (int t = 0; t < T; t++) {
            const repack_act *a =
                (const repack_act *)(const void *)(act + (size_t)t * as) + b;
            __m256i off = _mm256_set1_epi32(offset * a->s);
            __m256 da = _mm256_set1_ps(a->d);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256i is = layout == REPACK_Q5_0_X16
                                 ? s32[t][h]
                                 : _mm256_madd_epi16(s16[t][h], ones);
                is = _mm256_sub_epi32(is, off);
                __m256 dw = _mm256_cvtph_ps(
                    _mm_loadu_si128((const __m128i *)(grp + 16 * h)));
                f[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is),
                                          _mm256_mul_ps(dw, da), f[t][h]);
            }
        }
    }
    for (int t = 0; t < T; t++) {
        _mm256_storeu_ps(out + (int64_t)t * os, f[t][0]);
        _mm256_storeu_ps(out + (int64_t)t * os + 8, f[t][1]);
    }
}

/* the block types' tiles, in the K tiles' form (blocks, group, ...) */
static inline __attribute__((always_inline)) void
x16_q4_0_tile(int64_t nb, const uint8_t *g, const uint8_t *a, size_t as, int T,
              float *o, int64_t os)
{
    x16_blk_tile(REPACK_Q4_0_X16, 288, 8, nb, g, a, as, T, o, os);
}

static inline __attribute__((always_inline)) void
x16_q5_0_tile(int64_t nb, const uint8_t *g, const uint8_t *a, size_t as, int T,
              float *o, int64_t os)
{
    x16_blk_tile(REPACK_Q5_0_X16, 352, 16, nb, g, a, as, T, o, os);
}

/* An int32 lane per row holding the row's 8-bit scale in both int16
 * halves, so that vpmaddwd of int16 pair sums by it gives
 * (p0 + p1) * scale. Rows 8h..8h+7 from the bytes at p. */
static inline __m256i scale_pairs(const uint8_t *p, int is_signed)
{
    __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)p);
    __m256i x = is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
    return _mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi32(0xffff)),
                           _mm256_slli_epi32(x, 16));
}

/* Q4_K: per 32-value group, eight vpmaddubsw summed in int16 (<= 30480),
 * then one vpmaddwd by the rows' scales; the mins by vpmaddwd of (min,
 * min) pairs and the activation's group sums. repack_mm_ref's bits. */
static inline __attribute__((always_inline)) void
x16_q4_k_tile(int64_t ns, const uint8_t *grp, const uint8_t *act, size_t as,
              int T, float *out, int64_t os)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 f[2][2];
    for (int t = 0; t < T; t++)
        f[t][0] = f[t][1] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < ns; sb++, grp += 2368) {
        __m256i is[2][2];
        for (int t = 0; t < T; t++)
            is[t][0] = is[t][1] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            __m256i s16[2][2];
            for (int t = 0; t < T; t++)
                s16[t][0] = s16[t][1] = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    __m256i v = _mm256_loadu_si256(
                        (const __m256i *)(grp + 320 + 256 * j + 64 * c + 32 * h));
                    __m256i lo = _mm256_and_si256(v, m4);
                    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    for (int t = 0; t < T; t++) {
                        const repack_act_k *a =
                            (const repack_act_k *)(const void *)(act + (size_t)t * as) + sb;
                        s16[t][h] = _mm256_add_epi16(
                            s16[t][h], _mm256_maddubs_epi16(
                                           lo, _mm256_set1_epi32(a->q4[8 * j + 2 * c])));
                        s16[t][h] = _mm256_add_epi16(
                            s16[t][h], _mm256_maddubs_epi16(
                                           hi, _mm256_set1_epi32(a->q4[8 * j + 2 * c + 1])));
                    }
                }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256i sc = scale_pairs(grp + 64 + 16 * j + 8 * h, 0);
                for (int t = 0; t < T; t++)
                    is[t][h] = _mm256_add_epi32(is[t][h],
                                                _mm256_madd_epi16(s16[t][h], sc));
            }
        }
        for (int t = 0; t < T; t++) {
            const repack_act_k *a =
                (const repack_act_k *)(const void *)(act + (size_t)t * as) + sb;
            int32_t pairs[4];
            memcpy(pairs, a->s32, 16);
            __m256 da = _mm256_set1_ps(a->d);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256i macc = _mm256_setzero_si256();
#pragma GCC unroll 4
                for (int p = 0; p < 4; p++)
                    macc = _mm256_add_epi32(
                        macc, _mm256_madd_epi16(
                                  _mm256_cvtepu8_epi16(_mm_loadu_si128(
                                      (const __m128i *)(grp + 192 + 32 * p + 16 * h))),
                                  _mm256_set1_epi32(pairs[p])));
                __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(grp + 16 * h)));
                __m256 dm = _mm256_cvtph_ps(
                    _mm_loadu_si128((const __m128i *)(grp + 32 + 16 * h)));
                f[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t][h]),
                                          _mm256_mul_ps(dw, da), f[t][h]);
                f[t][h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(macc),
                                           _mm256_mul_ps(dm, da), f[t][h]);
            }
        }
    }
    for (int t = 0; t < T; t++) {
        _mm256_storeu_ps(out + (int64_t)t * os, f[t][0]);
        _mm256_storeu_ps(out + (int64_t)t * os + 8, f[t][1]);
    }
}

/* Q6_K: per 16-value group, the low nibbles and top bits merged, two
 * vpmaddubsw per int16 sum (<= 32004), vpmaddwd by the rows' int8 scales,
 * and the offset: 32 * scale * the group's activation sum. */
static inline __attribute__((always_inline)) void
x16_q6_k_tile(int64_t ns, const uint8_t *grp, const uint8_t *act, size_t as,
              int T, float *out, int64_t os)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    __m256 f[2][2];
    for (int t = 0; t < T; t++)
        f[t][0] = f[t][1] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < ns; sb++, grp += 3360) {
        __m256i is[2][2];
        for (int t = 0; t < T; t++)
            is[t][0] = is[t][1] = _mm256_setzero_si256();
        for (int k = 0; k < 16; k++) {
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const uint8_t *nb = grp + 288 + 256 * (k / 2) + 128 * (k % 2) + 32 * h;
                __m256i v0 = _mm256_loadu_si256((const __m256i *)nb);
                __m256i v1 = _mm256_loadu_si256((const __m256i *)(nb + 64));
                __m256i hb = _mm256_loadu_si256(
                    (const __m256i *)(grp + 2336 + 64 * k + 32 * h));
                __m256i w[4] = {
                    _mm256_or_si256(_mm256_and_si256(v0, m4),
                                    _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v0, 4), m4),
                                    _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30)),
                    _mm256_or_si256(_mm256_and_si256(v1, m4), _mm256_and_si256(hb, m30)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v1, 4), m4),
                                    _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30))};
                __m256i sc = scale_pairs(grp + 32 + 16 * k + 8 * h, 1);
                __m256i sc32 = _mm256_cvtepi8_epi32(_mm_loadl_epi64(
                    (const __m128i *)(const void *)(grp + 32 + 16 * k + 8 * h)));
                for (int t = 0; t < T; t++) {
                    const repack_act_k *a =
                        (const repack_act_k *)(const void *)(act + (size_t)t * as) + sb;
                    const int32_t *q = a->q4 + 4 * k;
                    __m256i p0 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(w[0], _mm256_set1_epi32(q[0])),
                        _mm256_maddubs_epi16(w[1], _mm256_set1_epi32(q[1])));
                    __m256i p1 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(w[2], _mm256_set1_epi32(q[2])),
                        _mm256_maddubs_epi16(w[3], _mm256_set1_epi32(q[3])));
                    __m256i g = _mm256_add_epi32(_mm256_madd_epi16(p0, sc),
                                                 _mm256_madd_epi16(p1, sc));
                    g = _mm256_sub_epi32(
                        g, _mm256_mullo_epi32(sc32, _mm256_set1_epi32(32 * a->s16[k])));
                    is[t][h] = _mm256_add_epi32(is[t][h], g);
                }
            }
        }
        for (int t = 0; t < T; t++) {
            const repack_act_k *a =
                (const repack_act_k *)(const void *)(act + (size_t)t * as) + sb;
            __m256 da = _mm256_set1_ps(a->d);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(grp + 16 * h)));
                f[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t][h]),
                                          _mm256_mul_ps(dw, da), f[t][h]);
            }
        }
    }
    for (int t = 0; t < T; t++) {
        _mm256_storeu_ps(out + (int64_t)t * os, f[t][0]);
        _mm256_storeu_ps(out + (int64_t)t * os + 8, f[t][1]);
    }
}

/* Over the groups, and within each over tiles of two activation rows.
 * BLOCK_VALUES and BLOCK_BYTES: one block (or super-block) of 16 rows. */
#define X16_AVX2_DRIVER(NAME, TILE, BLOCK_VALUES, BLOCK_BYTES)                \
    void NAME(int64_t cols, const void *groups, int64_t n_groups,            \
              const void *act, size_t as, int n_act, float *out, int64_t os) \
    {                                                                         \
        int64_t nb = cols / BLOCK_VALUES;                                     \
        const uint8_t *g = groups, *ab = act;                                 \
        for (int64_t i = 0; i < n_groups; i++, g += (size_t)nb * BLOCK_BYTES) \
            for (int t0 = 0; t0 < n_act; t0 += 2) {                           \
                float *o = out + (int64_t)t0 * os + i * REPACK_ROWS;          \
                if (n_act - t0 >= 2)                                          \
                    TILE(nb, g, ab + (size_t)t0 * as, as, 2, o, os);          \
                else                                                          \
                    TILE(nb, g, ab + (size_t)t0 * as, as, 1, o, os);          \
            }                                                                 \
    }

X16_AVX2_DRIVER(kern_avx2_q4_0_x16, x16_q4_0_tile, 32, 288)
X16_AVX2_DRIVER(kern_avx2_q5_0_x16, x16_q5_0_tile, 32, 352)
X16_AVX2_DRIVER(kern_avx2_q4_k_x16, x16_q4_k_tile, QK_K, 2368)
X16_AVX2_DRIVER(kern_avx2_q6_k_x16, x16_q6_k_tile, QK_K, 3360)

/* ---------------------------------------------------------- drivers */

KERN_DEF_MM(kern_avx2_q4_0, dot_q4_0)
KERN_DEF_MM(kern_avx2_q4_0_x8, dot_q4_0_x8)
KERN_DEF_MM(kern_avx2_q8_0, dot_q8_0)
KERN_DEF_MM(kern_avx2_q5_0, dot_q5_0)
KERN_DEF_MM(kern_avx2_q4_1, dot_q4_1)
KERN_DEF_MM(kern_avx2_q5_1, dot_q5_1)
KERN_DEF_MM(kern_avx2_q4_k, dot_q4_k)
KERN_DEF_MM(kern_avx2_q6_k, dot_q6_k)
KERN_DEF_MM2(kern_avx2_f16, dot_f16, dot_f16_tile)
KERN_DEF_MM2(kern_avx2_f32, dot_f32, dot_f32_tile)

#else
/* ISO C wants something in every translation unit. */
typedef int kernels_avx2_unused;
#endif
