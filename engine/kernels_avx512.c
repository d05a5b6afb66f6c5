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

/* The eight registers of one block's weights as unsigned bytes: register
 * i holds values 4i..4i+3 of each row (repack.h). */
static inline __attribute__((always_inline)) void
x16_weights(int layout, const uint8_t *blk, __m512i w[8])
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    if (layout == REPACK_Q8_0_X16) {
        for (int i = 0; i < 8; i++)
            w[i] = _mm512_loadu_si512(blk + 32 + 64 * i);
        return;
    }
    for (int c = 0; c < 4; c++) {
        __m512i v = _mm512_loadu_si512(blk + 32 + 64 * c);
        w[2 * c] = _mm512_and_si512(v, m4);
        w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    if (layout == REPACK_Q5_0_X16) {
        const __m512i sixteen = _mm512_set1_epi8(16);
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
    for (int t = 0; t < T; t++)
        facc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, grp += block) {
        __m512i w[8];
        x16_weights(layout, grp, w);
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)grp));
        for (int t = 0; t < T; t++) {
            const repack_act *a =
                (const repack_act *)(const void *)(act + (size_t)t * as) + b;
            int32_t q[8];
            memcpy(q, a->q, 32);
            __m512i acc = _mm512_setzero_si512();
            for (int i = 0; i < 8; i++)
                acc = _mm512_dpbusd_epi32(acc, w[i], _mm512_set1_epi32(q[i]));
            acc = _mm512_sub_epi32(acc, _mm512_set1_epi32(offset * a->s));
            facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc),
                                      _mm512_mul_ps(dw, _mm512_set1_ps(a->d)),
                                      facc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        _mm512_storeu_ps(out + (int64_t)t * os, facc[t]);
}

#define X16_TILE(LAYOUT, BLOCK, OFFSET)                                       \
    static void tile_##LAYOUT(int64_t nb, const uint8_t *g, const uint8_t *a, \
                              size_t as, int T, float *o, int64_t os)        \
    {                                                                         \
        switch (T) {                                                          \
        case 1: x16_tile(LAYOUT, BLOCK, OFFSET, nb, g, a, as, 1, o, os); break; \
        case 2: x16_tile(LAYOUT, BLOCK, OFFSET, nb, g, a, as, 2, o, os); break; \
        case 3: x16_tile(LAYOUT, BLOCK, OFFSET, nb, g, a, as, 3, o, os); break; \
        case 4: x16_tile(LAYOUT, BLOCK, OFFSET, nb, g, a, as, 4, o, os); break; \
        case 5: x16_tile(LAYOUT, BLOCK, OFFSET, nb, g, a, as, 5, o, os); break; \
        case 6: x16_tile(LAYOUT, BLOCK, OFFSET, nb, g, a, as, 6, o, os); break; \
        case 7: x16_tile(LAYOUT, BLOCK, OFFSET, nb, g, a, as, 7, o, os); break; \
        default: x16_tile(LAYOUT, BLOCK, OFFSET, nb, g, a, as, 8, o, os); break; \
        }                                                                     \
    }

X16_TILE(REPACK_Q4_0_X16, 288, 8)
X16_TILE(REPACK_Q5_0_X16, 352, 16)
X16_TILE(REPACK_Q8_0_X16, 544, 128)

#define X16_DRIVER(NAME, TILE, BLOCK_BYTES)                                   \
    void NAME(int64_t cols, const void *groups, int64_t n_groups,            \
              const void *act, size_t as, int n_act, float *out, int64_t os) \
    {                                                                         \
        int64_t nb = cols / 32;                                               \
        const uint8_t *g = groups;                                            \
        const uint8_t *ab = act;                                              \
        for (int64_t i = 0; i < n_groups; i++, g += (size_t)nb * BLOCK_BYTES) \
            for (int t0 = 0; t0 < n_act; t0 += X16_T)                         \
                TILE(nb, g, ab + (size_t)t0 * as, as,                         \
                     n_act - t0 < X16_T ? n_act - t0 : X16_T,                 \
                     out + (int64_t)t0 * os + i * REPACK_ROWS, os);           \
    }

X16_DRIVER(kern_avx512_q4_0_x16, tile_REPACK_Q4_0_X16, 288)
X16_DRIVER(kern_avx512_q5_0_x16, tile_REPACK_Q5_0_X16, 352)
X16_DRIVER(kern_avx512_q8_0_x16, tile_REPACK_Q8_0_X16, 544)

#else
typedef int kernels_avx512_unused;
#endif
