/* testrand.h - the small seeded generator the kernel suites share
 * (xorshift64; set rng_state to seed). Header-only: each suite gets its
 * own state. */
#ifndef HEARTH_TESTRAND_H
#define HEARTH_TESTRAND_H

#include <stdint.h>

static uint64_t rng_state;

static inline uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static inline float frand(float scale) /* (-scale, scale) */
{
    return ((float)(rng_u32() >> 8) / 8388608.0f - 1.0f) * scale;
}

#endif
