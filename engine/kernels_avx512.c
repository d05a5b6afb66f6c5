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

#else
typedef int kernels_avx512_unused;
#endif
