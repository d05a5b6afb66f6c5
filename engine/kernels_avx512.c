/* kernels_avx512.c - AVX-512 VNNI matrix-product kernels (kernels.h).
 *
 * Two 32-value blocks per 512-bit register; vpdpbusd multiplies unsigned
 * by signed bytes and adds groups of four straight into int32 (no int16
 * intermediate, so no saturation concerns).
 *   Q4_0: the nibbles are used unsigned (0..15); sum((q-8)*a) is
 *         sum(q*a) - sum(8*a), the second term one more vpdpbusd.
 *   Q8_0: |w| is the unsigned operand and w's sign is moved onto a.
 * An odd trailing block goes through the 256-bit form (AVX-512 VL).
 * The block sums are then scaled and added in float exactly as the AVX2
 * kernels (and ggml's) do: eight lanes, one fused multiply-add per block
 * in block order. Only the integer work is 512 bits wide, so both paths
 * give the same bits. The other types use the AVX2 kernels (kernels.c).
 */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kernels_x86.h"
#include "repack.h"

static inline __m512i join(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* acc += d0 * (lanes 0-7 of s) then d1 * (lanes 8-15): two blocks */
static inline __m256 fma2(__m256 acc, __m512i s, float d0, float d1)
{
    __m512 f = _mm512_cvtepi32_ps(s);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d0), _mm512_castps512_ps256(f), acc);
    return _mm256_fmadd_ps(_mm256_set1_ps(d1),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(
                               _mm512_castps_pd(f), 1)),
                           acc);
}

static float dot_q4_0(int64_t n, const uint8_t *w, const uint8_t *a)
{
    int64_t nb = n / 32, i = 0;
    __m256 acc = _mm256_setzero_ps();
    const __m512i eight = _mm512_set1_epi8(8);
    for (; i + 2 <= nb; i += 2, w += 36, a += 68) {
        __m512i q = join(unpack_q4(w + 2), unpack_q4(w + 20));
        __m512i x = join(_mm256_loadu_si256((const __m256i *)(a + 2)),
                         _mm256_loadu_si256((const __m256i *)(a + 36)));
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, x);
        __m512i c = _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, x);
        acc = fma2(acc, _mm512_sub_epi32(s, c), h2f(w) * h2f(a),
                   h2f(w + 18) * h2f(a + 34));
    }
    if (i < nb) {
        __m256i q = unpack_q4(w + 2);
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + 2));
        __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, x);
        __m256i c = _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                        _mm256_set1_epi8(8), x);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w) * h2f(a)),
                              _mm256_cvtepi32_ps(_mm256_sub_epi32(s, c)), acc);
    }
    return hsum_ps(acc);
}

static float dot_q8_0(int64_t n, const uint8_t *w, const uint8_t *a)
{
    int64_t nb = n / 32, i = 0;
    __m256 acc = _mm256_setzero_ps();
    for (; i + 2 <= nb; i += 2, w += 68, a += 68) {
        __m512i q = join(_mm256_loadu_si256((const __m256i *)(w + 2)),
                         _mm256_loadu_si256((const __m256i *)(w + 36)));
        __m512i x = join(_mm256_loadu_si256((const __m256i *)(a + 2)),
                         _mm256_loadu_si256((const __m256i *)(a + 36)));
        __mmask64 neg = _mm512_movepi8_mask(q);
        x = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                        _mm512_abs_epi8(q), x);
        acc = fma2(acc, s, h2f(w) * h2f(a), h2f(w + 34) * h2f(a + 34));
    }
    if (i < nb) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(w + 2));
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + 2));
        x = _mm256_sign_epi8(x, q);
        __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                        _mm256_abs_epi8(q), x);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w) * h2f(a)),
                              _mm256_cvtepi32_ps(s), acc);
    }
    return hsum_ps(acc);
}

KERN_DEF_MM(kern_avx512_q4_0, dot_q4_0)
KERN_DEF_MM(kern_avx512_q8_0, dot_q8_0)

/* ------------------------------------------------ x16 layouts (repack.h)
 * Each lane is one of the group's sixteen rows. A tile is the group times
 * T activation rows: per block, the weight chunks are loaded and unpacked
 * once and serve all T rows; the four activation bytes that pair with a
 * chunk are broadcast (vpdpbusd's embedded broadcast). Integer sums per
 * block, then one fused multiply-add per block and activation row, in
 * block order, as repack_mm_ref() does: the bits are the same. */

#define X16_T 8 /* activation rows per tile */

/* The eight registers of one Q4_0 / Q5_0 block's weights as unsigned
 * bytes: register i holds values 4i..4i+3 of each row (repack.h). Q8_0
 * has its own tile (q8_0_tile). */
static inline __attribute__((always_inline)) void
x16_weights(int layout, const uint8_t *blk, __m512i w[8])
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    #pragma GCC unroll 16
    for (int c = 0; c < 4; c++) {
        __m512i v = _mm512_loadu_si512(blk + 32 + 64 * c);
        w[2 * c] = _mm512_and_si512(v, m4);
        w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    if (layout == REPACK_Q5_0_X16) {
        const __m512i sixteen = _mm512_set1_epi8(16);
        #pragma GCC unroll 16
        for (int i = 0; i < 8; i++) {
            uint64_t hb;
            memcpy(&hb, blk + 288 + 8 * i, 8);
            w[i] = _mm512_mask_add_epi8(w[i], _cvtu64_mask64(hb), w[i], sixteen);
        }
    }
}

static inline __attribute__((always_inline)) void
x16_tile(int layout, size_t block, int offset, int64_t nb, const uint8_t *grp,
         const uint8_t *act, size_t as, int T, float *out, int64_t os)
{
    __m512 facc[X16_T];
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        facc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, grp += block) {
        __m512i w[8];
        x16_weights(layout, grp, w);
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)grp));
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const repack_act *a =
                (const repack_act *)(const void *)(act + (size_t)t * as) + b;
            const int32_t *q = a->q4;
            __m512i acc = _mm512_setzero_si512();
            #pragma GCC unroll 16
            for (int i = 0; i < 8; i++)
                acc = _mm512_dpbusd_epi32(acc, w[i], _mm512_set1_epi32(q[i]));
            acc = _mm512_sub_epi32(acc, _mm512_set1_epi32(offset * a->s));
            facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc),
                                      _mm512_mul_ps(dw, _mm512_set1_ps(a->d)),
                                      facc[t]);
        }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        _mm512_storeu_ps(out + (int64_t)t * os, facc[t]);
}

/* Q8_0 in ggml's order (repack.h): eight float accumulators per row, one
 * per four-value slice of the blocks, folded at the end as hsum_ps folds
 * its eight lanes. Each slice's sum starts from -128 times the slice's
 * activation sum (the offset of u = q + 128). */
static inline __attribute__((always_inline)) void
q8_0_tile(int64_t nb, const uint8_t *grp, const uint8_t *act, size_t as,
          int T, float *out, int64_t os)
{
    __m512 l[X16_T / 2][8];
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        #pragma GCC unroll 16
        for (int i = 0; i < 8; i++)
            l[t][i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, grp += 544) {
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)grp));
        #pragma GCC unroll 16
        for (int i = 0; i < 8; i++) {
            __m512i w = _mm512_loadu_si512(grp + 32 + 64 * i);
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const repack_act *a =
                    (const repack_act *)(const void *)(act + (size_t)t * as) + b;
                __m512i p = _mm512_dpbusd_epi32(_mm512_set1_epi32(a->c4[i]), w,
                                                _mm512_set1_epi32(a->q4[i]));
                l[t][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p),
                                          _mm512_mul_ps(dw, _mm512_set1_ps(a->d)),
                                          l[t][i]);
            }
        }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        __m512 s = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(l[t][0], l[t][4]),
                          _mm512_add_ps(l[t][2], l[t][6])),
            _mm512_add_ps(_mm512_add_ps(l[t][1], l[t][5]),
                          _mm512_add_ps(l[t][3], l[t][7])));
        _mm512_storeu_ps(out + (int64_t)t * os, s);
    }
}

/* The four unsigned nibble registers of 32 values in Q4_0 form (repack.h)
 * whose first chunk is at p: values 4i..4i+3 of each row in w[i]. */
static inline __attribute__((always_inline)) void
nibbles2(const uint8_t *p, __m512i w[4])
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    #pragma GCC unroll 16
    for (int c = 0; c < 2; c++) {
        __m512i v = _mm512_loadu_si512(p + 64 * c);
        w[2 * c] = _mm512_and_si512(v, m4);
        w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
}

/* Q4_K: per 32-value group j, the integer block sum times the rows' scale
 * (vpmulld), summed over the super-block; the mins against the group sums
 * of the activation with vpdpwssd on (min, min) pairs. */
static inline __attribute__((always_inline)) void
q4_k_tile(int64_t ns, const uint8_t *grp, const uint8_t *act, size_t as,
          int T, float *out, int64_t os)
{
    __m512 facc[X16_T];
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        facc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < ns; sb++, grp += 2368) {
        __m512i isum[X16_T];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            isum[t] = _mm512_setzero_si512();
        #pragma GCC unroll 16
        for (int j = 0; j < 8; j++) {
            __m512i w[8];
            nibbles2(grp + 320 + 256 * j, w);
            nibbles2(grp + 320 + 256 * j + 128, w + 4);
            __m512i sc = _mm512_cvtepu8_epi32(
                _mm_loadu_si128((const __m128i *)(grp + 64 + 16 * j)));
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const repack_act_k *a =
                    (const repack_act_k *)(const void *)(act + (size_t)t * as) + sb;
                const int32_t *q = a->q4 + 8 * j;
                __m512i acc = _mm512_setzero_si512();
                #pragma GCC unroll 16
                for (int i = 0; i < 8; i++)
                    acc = _mm512_dpbusd_epi32(acc, w[i], _mm512_set1_epi32(q[i]));
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(acc, sc));
            }
        }
        __m512i mn[4];
        #pragma GCC unroll 16
        for (int p = 0; p < 4; p++)
            mn[p] = _mm512_cvtepu8_epi16(
                _mm256_loadu_si256((const __m256i *)(grp + 192 + 32 * p)));
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)grp));
        __m512 dm =
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(grp + 32)));
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const repack_act_k *a =
                (const repack_act_k *)(const void *)(act + (size_t)t * as) + sb;
            int32_t pairs[4];
            memcpy(pairs, a->s32, 16);
            __m512i macc = _mm512_setzero_si512();
            #pragma GCC unroll 16
            for (int p = 0; p < 4; p++)
                macc = _mm512_dpwssd_epi32(macc, mn[p], _mm512_set1_epi32(pairs[p]));
            __m512 da = _mm512_set1_ps(a->d);
            facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]),
                                      _mm512_mul_ps(dw, da), facc[t]);
            facc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(macc),
                                       _mm512_mul_ps(dm, da), facc[t]);
        }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        _mm512_storeu_ps(out + (int64_t)t * os, facc[t]);
}

/* Q6_K: per 16-value group k, the low nibbles and the top two bits merged
 * (vpternlogd), four vpdpbusd, the offset 32 taken off with the group's
 * activation sum, times the rows' int8 scale. */
static inline __attribute__((always_inline)) void
q6_k_tile(int64_t ns, const uint8_t *grp, const uint8_t *act, size_t as,
          int T, float *out, int64_t os)
{
    const __m512i m30 = _mm512_set1_epi8(0x30);
    __m512 facc[X16_T];
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        facc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < ns; sb++, grp += 3360) {
        __m512i isum[X16_T];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            isum[t] = _mm512_setzero_si512();
        #pragma GCC unroll 16
        for (int k = 0; k < 16; k++) {
            __m512i w[4];
            nibbles2(grp + 288 + 256 * (k / 2) + 128 * (k % 2), w);
            __m512i h = _mm512_loadu_si512(grp + 2336 + 64 * k);
            __m512i hs[4] = {_mm512_slli_epi16(h, 4), _mm512_slli_epi16(h, 2), h,
                             _mm512_srli_epi16(h, 2)};
            #pragma GCC unroll 16
            for (int m = 0; m < 4; m++) /* (hs & 0x30) | w */
                w[m] = _mm512_ternarylogic_epi32(hs[m], m30, w[m], 0xea);
            __m512i sc = _mm512_cvtepi8_epi32(
                _mm_loadu_si128((const __m128i *)(grp + 32 + 16 * k)));
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const repack_act_k *a =
                    (const repack_act_k *)(const void *)(act + (size_t)t * as) + sb;
                const int32_t *q = a->q4 + 4 * k;
                __m512i acc = _mm512_set1_epi32(-32 * a->s16[k]);
                #pragma GCC unroll 16
                for (int i = 0; i < 4; i++)
                    acc = _mm512_dpbusd_epi32(acc, w[i], _mm512_set1_epi32(q[i]));
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(acc, sc));
            }
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)grp));
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const repack_act_k *a =
                (const repack_act_k *)(const void *)(act + (size_t)t * as) + sb;
            facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]),
                                      _mm512_mul_ps(dw, _mm512_set1_ps(a->d)),
                                      facc[t]);
        }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        _mm512_storeu_ps(out + (int64_t)t * os, facc[t]);
}

/* A tile function for each T <= X16_T, each compiled with T constant so
 * the accumulators stay in registers. */
#define X16_TILE(NAME, CALL)                                                  \
    static void NAME(int64_t nb, const uint8_t *g, const uint8_t *a,          \
                     size_t as, int T, float *o, int64_t os)                 \
    {                                                                         \
        switch (T) {                                                          \
        case 1: CALL(1); break;                                               \
        case 2: CALL(2); break;                                               \
        case 3: CALL(3); break;                                               \
        case 4: CALL(4); break;                                               \
        case 5: CALL(5); break;                                               \
        case 6: CALL(6); break;                                               \
        case 7: CALL(7); break;                                               \
        default: CALL(8); break;                                              \
        }                                                                     \
    }

#define CALL_Q4_0(T) x16_tile(REPACK_Q4_0_X16, 288, 8, nb, g, a, as, T, o, os)
#define CALL_Q5_0(T) x16_tile(REPACK_Q5_0_X16, 352, 16, nb, g, a, as, T, o, os)
#define CALL_Q4_K(T) q4_k_tile(nb, g, a, as, T, o, os)
#define CALL_Q6_K(T) q6_k_tile(nb, g, a, as, T, o, os)
X16_TILE(tile_q4_0, CALL_Q4_0)
X16_TILE(tile_q5_0, CALL_Q5_0)
/* Q8_0: four activation rows at a time (32 accumulators) */
static void tile_q8_0(int64_t nb, const uint8_t *g, const uint8_t *a,
                      size_t as, int T, float *o, int64_t os)
{
    for (int t0 = 0; t0 < T; t0 += 4) {
        const uint8_t *a0 = a + (size_t)t0 * as;
        float *o0 = o + (int64_t)t0 * os;
        switch (T - t0 < 4 ? T - t0 : 4) {
        case 1: q8_0_tile(nb, g, a0, as, 1, o0, os); break;
        case 2: q8_0_tile(nb, g, a0, as, 2, o0, os); break;
        case 3: q8_0_tile(nb, g, a0, as, 3, o0, os); break;
        default: q8_0_tile(nb, g, a0, as, 4, o0, os); break;
        }
    }
}
X16_TILE(tile_q4_k, CALL_Q4_K)
X16_TILE(tile_q6_k, CALL_Q6_K)

/* Over the groups, and within each group over tiles of X16_T activation
 * rows (the group's weights stay in L1 meanwhile). BLOCK_VALUES and
 * BLOCK_BYTES: one block (or super-block) of 16 rows. */
#define X16_DRIVER(NAME, TILE, BLOCK_VALUES, BLOCK_BYTES)                     \
    void NAME(int64_t cols, const void *groups, int64_t n_groups,            \
              const void *act, size_t as, int n_act, float *out, int64_t os) \
    {                                                                         \
        int64_t nb = cols / BLOCK_VALUES;                                     \
        const uint8_t *g = groups;                                            \
        const uint8_t *ab = act;                                              \
        for (int64_t i = 0; i < n_groups; i++, g += (size_t)nb * BLOCK_BYTES) \
            for (int t0 = 0; t0 < n_act; t0 += X16_T)                         \
                TILE(nb, g, ab + (size_t)t0 * as, as,                         \
                     n_act - t0 < X16_T ? n_act - t0 : X16_T,                 \
                     out + (int64_t)t0 * os + i * REPACK_ROWS, os);           \
    }

X16_DRIVER(kern_avx512_q4_0_x16, tile_q4_0, 32, 288)
X16_DRIVER(kern_avx512_q5_0_x16, tile_q5_0, 32, 352)
X16_DRIVER(kern_avx512_q8_0_x16, tile_q8_0, 32, 544)
X16_DRIVER(kern_avx512_q4_k_x16, tile_q4_k, 256, 2368)
X16_DRIVER(kern_avx512_q6_k_x16, tile_q6_k, 256, 3360)
/* ---------------------------------------------------------- attention */

/* kern_avx2_attend_f16 for head dimensions of 64 and 128, with the same
 * operations on the same values in the same order (so the same bits as
 * kv_attend): a 512-bit register is the AVX2 kernel's pair of 8-lane
 * halves, and the head's value accumulator stays in registers across the
 * positions instead of going through memory. */
static inline __attribute__((always_inline)) void
attend_hd(int HD, const uint16_t *k, const uint16_t *v, size_t stride,
          const float *q, int n_pos, float scale, float *out, float *m_s)
{
    __m512 qh[8], acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < HD / 16; i++) {
        qh[i] = _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(q + 16 * i),
                                                _MM_FROUND_TO_NEAREST_INT));
        acc[i] = _mm512_setzero_ps();
    }
    float M = -INFINITY, S = 0.0f;
    for (int p = 0; p < n_pos; p++) {
        const uint16_t *kp = k + (size_t)p * stride;
        const uint16_t *vp = v + (size_t)p * stride;
        /* vm_dot_f16's order: four 16-lane accumulators per 64 values */
        __m512 a[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            a[j] = _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int i = 0; i < HD / 16; i++)
            a[i % 4] = _mm512_fmadd_ps(
                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kp + 16 * i))),
                qh[i], a[i % 4]);
        a[0] = _mm512_add_ps(a[0], a[2]);
        a[1] = _mm512_add_ps(a[1], a[3]);
        a[0] = _mm512_add_ps(a[0], a[1]);
        __m256 lo = _mm512_castps512_ps256(a[0]);
        __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a[0]), 1));
        float s = hsum_ps(_mm256_add_ps(lo, hi)) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            ms = expf(M - s);
            M = s;
            __m512 m16 = _mm512_set1_ps(ms);
#pragma GCC unroll 8
            for (int i = 0; i < HD / 16; i++)
                acc[i] = _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_mul_ps(acc[i], m16),
                                                         _MM_FROUND_TO_NEAREST_INT));
        } else {
            vs = expf(s - M);
        }
        __m512 v16 = _mm512_set1_ps(vs);
#pragma GCC unroll 8
        for (int i = 0; i < HD / 16; i++)
            acc[i] = _mm512_cvtph_ps(_mm512_cvtps_ph(
                _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(
                                    (const __m256i *)(vp + 16 * i))),
                                v16, acc[i]),
                _MM_FROUND_TO_NEAREST_INT));
        S = fmaf(S, ms, vs);
    }
#pragma GCC unroll 8
    for (int i = 0; i < HD / 16; i++)
        _mm512_storeu_ps(out + 16 * i, acc[i]);
    m_s[0] = M;
    m_s[1] = S;
}

void kern_avx512_attend_f16(const uint16_t *k, const uint16_t *v,
                            size_t stride, int hd, const float *q, int n_pos,
                            float scale, float *out, float *m_s)
{
    if (hd == 64)
        attend_hd(64, k, v, stride, q, n_pos, scale, out, m_s);
    else if (hd == 128)
        attend_hd(128, k, v, stride, q, n_pos, scale, out, m_s);
    else
        kern_avx2_attend_f16(k, v, stride, hd, q, n_pos, scale, out, m_s);
}

/* attend_hd for G query heads that share one KV head (grouped-query
 * attention), position by position: each position's keys and values are
 * loaded and widened once for all G heads, and each head's operations are
 * attend_hd's in attend_hd's order (the same bits). The heads' chains are
 * independent, so the core overlaps them instead of waiting on one head's
 * reduction, exp and F16 rounding at every position. */
static inline __attribute__((always_inline)) void
attend_group_hd(int HD, int G, const uint16_t *k, const uint16_t *v, size_t stride,
                const float *q, size_t qs, int n_pos, float scale, float *out,
                size_t os, float *m_s)
{
    __m512 qh[KERN_MAX_GROUP][8], acc[KERN_MAX_GROUP][8];
    float M[KERN_MAX_GROUP], S[KERN_MAX_GROUP];
    for (int g = 0; g < G; g++) {
#pragma GCC unroll 8
        for (int i = 0; i < HD / 16; i++) {
            qh[g][i] = _mm512_cvtph_ps(_mm512_cvtps_ph(
                _mm512_loadu_ps(q + (size_t)g * qs + 16 * i), _MM_FROUND_TO_NEAREST_INT));
            acc[g][i] = _mm512_setzero_ps();
        }
        M[g] = -INFINITY;
        S[g] = 0.0f;
    }
    for (int p = 0; p < n_pos; p++) {
        const uint16_t *kp = k + (size_t)p * stride;
        const uint16_t *vp = v + (size_t)p * stride;
        __m512 kf[8], vf[8];
#pragma GCC unroll 8
        for (int i = 0; i < HD / 16; i++) {
            kf[i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kp + 16 * i)));
            vf[i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vp + 16 * i)));
        }
        for (int g = 0; g < G; g++) {
            __m512 a[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                a[j] = _mm512_setzero_ps();
#pragma GCC unroll 8
            for (int i = 0; i < HD / 16; i++)
                a[i % 4] = _mm512_fmadd_ps(kf[i], qh[g][i], a[i % 4]);
            a[0] = _mm512_add_ps(a[0], a[2]);
            a[1] = _mm512_add_ps(a[1], a[3]);
            a[0] = _mm512_add_ps(a[0], a[1]);
            __m256 lo = _mm512_castps512_ps256(a[0]);
            __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a[0]), 1));
            float s = hsum_ps(_mm256_add_ps(lo, hi)) * scale;
            float ms = 1.0f, vs = 1.0f;
            if (s > M[g]) {
                ms = expf(M[g] - s);
                M[g] = s;
                __m512 m16 = _mm512_set1_ps(ms);
#pragma GCC unroll 8
                for (int i = 0; i < HD / 16; i++)
                    acc[g][i] = _mm512_cvtph_ps(_mm512_cvtps_ph(
                        _mm512_mul_ps(acc[g][i], m16), _MM_FROUND_TO_NEAREST_INT));
            } else {
                vs = expf(s - M[g]);
            }
            __m512 v16 = _mm512_set1_ps(vs);
#pragma GCC unroll 8
            for (int i = 0; i < HD / 16; i++)
                acc[g][i] = _mm512_cvtph_ps(_mm512_cvtps_ph(
                    _mm512_fmadd_ps(vf[i], v16, acc[g][i]), _MM_FROUND_TO_NEAREST_INT));
            S[g] = fmaf(S[g], ms, vs);
        }
    }
    for (int g = 0; g < G; g++) {
#pragma GCC unroll 8
        for (int i = 0; i < HD / 16; i++)
            _mm512_storeu_ps(out + (size_t)g * os + 16 * i, acc[g][i]);
        m_s[2 * g] = M[g];
        m_s[2 * g + 1] = S[g];
    }
}

void kern_avx512_attend_f16_group(const uint16_t *k, const uint16_t *v, size_t stride,
                                  int hd, int n_heads, const float *q, size_t q_stride,
                                  int n_pos, float scale, float *out, size_t out_stride,
                                  float *m_s)
{
    if (hd == 64 && n_heads <= KERN_MAX_GROUP) {
        attend_group_hd(64, n_heads, k, v, stride, q, q_stride, n_pos, scale, out,
                        out_stride, m_s);
    } else if (hd == 128 && n_heads <= KERN_MAX_GROUP) {
        attend_group_hd(128, n_heads, k, v, stride, q, q_stride, n_pos, scale, out,
                        out_stride, m_s);
    } else {
        for (int g = 0; g < n_heads; g++)
            kern_avx512_attend_f16(k, v, stride, hd, q + (size_t)g * q_stride, n_pos,
                                   scale, out + (size_t)g * out_stride, m_s + 2 * g);
    }
}

/* repack_quantize_act() with the same bits: quant.c's Q8_0 activation
 * rounding (d = amax / 127 rounded to f16 for storage, quants
 * round(x * 127 / amax) to nearest even under the default rounding mode,
 * as lrintf does). */
void kern_avx512_quant_act(const float *x, repack_act *dst, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(
            _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f; /* quant.c's act */
        __m512 idv = _mm512_set1_ps(id);
        const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, idv));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, idv));
        q0 = _mm512_min_epi32(_mm512_max_epi32(q0, lo), hi);
        q1 = _mm512_min_epi32(_mm512_max_epi32(q1, lo), hi);
        repack_act *a = &dst[b];
        _mm_storeu_si128((__m128i *)(void *)a->q, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(void *)(a->q + 16), _mm512_cvtepi32_epi8(q1));
        a->d = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
        /* sums of each four quants: lanes 4i..4i+3 of q0 / q1 */
        __m512i s = _mm512_add_epi32(q0, _mm512_bsrli_epi128(q0, 4));
        s = _mm512_add_epi32(s, _mm512_bsrli_epi128(s, 8));
        __m512i t = _mm512_add_epi32(q1, _mm512_bsrli_epi128(q1, 4));
        t = _mm512_add_epi32(t, _mm512_bsrli_epi128(t, 8));
        int32_t s0[16], s1[16];
        _mm512_storeu_si512(s0, s);
        _mm512_storeu_si512(s1, t);
        int32_t total = 0;
        for (int i = 0; i < 4; i++) {
            a->c4[i] = -128 * s0[4 * i];
            a->c4[4 + i] = -128 * s1[4 * i];
            total += s0[4 * i] + s1[4 * i];
        }
        a->s = total;
    }
}

#else
typedef int kernels_avx512_unused;
#endif
