/* kernels_x86.h - small helpers shared by kernels_avx2.c and
 * kernels_avx512.c. Include it after the file's `#pragma GCC target`, so
 * the helpers are compiled for that file's instructions. One definition
 * of the eight-lane fold matters: the two paths must give the same bits
 * (tests/test_kernels.c). */
#ifndef HEARTH_KERNELS_X86_H
#define HEARTH_KERNELS_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* An F16 value stored at p (little-endian, possibly unaligned). */
static inline float h2f(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Eight lanes to one: 8 -> 4 (lane i + lane i+4), then (0+2) + (1+3). */
static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The 32 nibbles of a Q4_0/Q5_0 block as bytes 0..15: low nibbles
 * first, then high. */
static inline __m256i unpack_q4(const uint8_t *qs)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

#endif
