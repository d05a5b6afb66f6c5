/* quant.c - tensor element types: traits, half-float conversions, block
 * (de)quantization and scalar reference dot products.
 *
 * Block layouts are those of ggml/GGUF (ggml-common.h), so that files written
 * by llama.cpp load unchanged; the code is our own. All block fields are read
 * and written byte by byte (little-endian), never through struct casts, so a
 * block may sit at any address: ggml blocks are only 2-byte aligned and a
 * GGUF file with alignment 1 could place them anywhere.
 *
 * Layouts (sizes in bytes):
 *   Q4_0  (32 values, 18)  f16 d | u8 qs[16]          x = d*(q-8)
 *   Q4_1  (32, 20)         f16 d | f16 m | qs[16]     x = d*q + m
 *   Q5_0  (32, 22)         f16 d | u8 qh[4] | qs[16]  x = d*(q-16)
 *   Q5_1  (32, 24)         f16 d | f16 m | qh[4] | qs[16]
 *   Q8_0  (32, 34)         f16 d | i8 qs[32]
 *   Q8_1  (32, 36)         f16 d | f16 s (= d*sum qs) | i8 qs[32]
 *     (for the 4/5-bit types value j<16 is the low nibble of qs[j], value
 *      j+16 the high nibble; Q5's fifth bit of value i is bit i of qh)
 *   Q2_K  (256, 84)   u8 scales[16] (lo: scale, hi: min) | qs[64] | f16 d | f16 dmin
 *   Q3_K  (256, 110)  u8 hmask[32] | qs[64] | scales[12] (16 x 6 bit) | f16 d
 *   Q4_K  (256, 144)  f16 d | f16 dmin | scales[12] (8 scales + 8 mins, 6 bit) | qs[128]
 *   Q5_K  (256, 176)  f16 d | f16 dmin | scales[12] | qh[32] | qs[128]
 *   Q6_K  (256, 210)  ql[128] | qh[64] | i8 scales[16] | f16 d
 *   Q8_K  (256, 292)  f32 d | i8 qs[256] | i16 bsums[16]
 * The per-type functions below describe where each value's bits live.
 */
#include "quant.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ traits */

/* Types we only know the size of (IQ*, TQ*, MXFP4, integer and F64
 * tensors): files holding them open, but they cannot be used as weights.
 * Their sizes come from ggml's block definitions. */
static const qt_traits traits[QT_TYPE_MAX] = {
    [QT_F32] = {"F32", 1, 4, true, true},
    [QT_F16] = {"F16", 1, 2, true, true},
    [QT_Q4_0] = {"Q4_0", 32, 18, true, true},
    [QT_Q4_1] = {"Q4_1", 32, 20, true, true},
    [QT_Q5_0] = {"Q5_0", 32, 22, true, true},
    [QT_Q5_1] = {"Q5_1", 32, 24, true, true},
    [QT_Q8_0] = {"Q8_0", 32, 34, true, true},
    [QT_Q8_1] = {"Q8_1", 32, 36, true, true},
    [QT_Q2_K] = {"Q2_K", QK_K, 84, true, true},
    [QT_Q3_K] = {"Q3_K", QK_K, 110, true, true},
    [QT_Q4_K] = {"Q4_K", QK_K, 144, true, true},
    [QT_Q5_K] = {"Q5_K", QK_K, 176, true, true},
    [QT_Q6_K] = {"Q6_K", QK_K, 210, true, true},
    [QT_Q8_K] = {"Q8_K", QK_K, 292, true, true},
    [16] = {"IQ2_XXS", QK_K, 66, false, false},
    [17] = {"IQ2_XS", QK_K, 74, false, false},
    [18] = {"IQ3_XXS", QK_K, 98, false, false},
    [19] = {"IQ1_S", QK_K, 50, false, false},
    [20] = {"IQ4_NL", 32, 18, false, false},
    [21] = {"IQ3_S", QK_K, 110, false, false},
    [22] = {"IQ2_S", QK_K, 82, false, false},
    [23] = {"IQ4_XS", QK_K, 136, false, false},
    [24] = {"I8", 1, 1, false, false},
    [25] = {"I16", 1, 2, false, false},
    [26] = {"I32", 1, 4, false, false},
    [27] = {"I64", 1, 8, false, false},
    [28] = {"F64", 1, 8, false, false},
    [29] = {"IQ1_M", QK_K, 56, false, false},
    [QT_BF16] = {"BF16", 1, 2, true, true},
    [34] = {"TQ1_0", QK_K, 54, false, false},
    [35] = {"TQ2_0", QK_K, 66, false, false},
    [39] = {"MXFP4", 32, 17, false, false},
};

const qt_traits *qt_traits_of(uint32_t type)
{
    if (type >= QT_TYPE_MAX || traits[type].name == NULL)
        return NULL;
    return &traits[type];
}

const char *qt_name(uint32_t type)
{
    const qt_traits *t = qt_traits_of(type);
    return t ? t->name : "?";
}

int qt_from_name(const char *name)
{
    if (!name)
        return -1;
    for (uint32_t i = 0; i < QT_TYPE_MAX; i++) {
        const char *a = traits[i].name;
        if (!a)
            continue;
        const char *b = name;
        while (*a && *b && toupper((unsigned char)*a) ==
                               toupper((unsigned char)*b)) {
            a++;
            b++;
        }
        if (*a == '\0' && *b == '\0')
            return (int)i;
    }
    return -1;
}

int qt_row_size(uint32_t type, uint64_t n, uint64_t *out)
{
    const qt_traits *t = qt_traits_of(type);
    if (!t || n % t->block_size != 0)
        return -1;
    uint64_t nb = n / t->block_size;
    if (nb > UINT64_MAX / t->type_size)
        return -1;
    *out = nb * t->type_size;
    return 0;
}

/* ------------------------------------------------------------ halves */

float qt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f;
    uint32_t m = h & 0x3ff;
    uint32_t bits;
    if (e == 0) {
        /* zero or subnormal: m * 2^-24 is exact in float */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    if (e == 31)
        bits = sign | 0x7f800000u | (m << 13); /* inf, nan (payload kept) */
    else
        bits = sign | ((e + 112) << 23) | (m << 13); /* rebias 15 -> 127 */
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qt_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* nan: keep it a (quiet) nan */
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x1ff));
    if (ax >= 0x477ff000u) /* >= 65520 rounds past the largest half */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) {
        /* below 2^-14: a half subnormal (units of 2^-24) or zero */
        if (ax < 0x33000000u) /* < 2^-25: rounds to zero */
            return sign;
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14 .. 24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++; /* may carry into the smallest normal: still right */
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax - 0x38000000u; /* rebias 127 -> 15 */
    uint32_t q = r >> 13;
    uint32_t rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1)))
        q++;
    return (uint16_t)(sign | q);
}

float qt_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qt_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* nan: truncate, force quiet */
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1); /* round to nearest even */
    return (uint16_t)(x >> 16);
}

/* ------------------------------------------------------------ bytes */

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline float rdh(const uint8_t *p) { return qt_f16_to_f32(rd16(p)); }
static inline void wrh(uint8_t *p, float v) { wr16(p, qt_f32_to_f16(v)); }

static inline float rdf(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline void wrf(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static inline int nearest(float x) { return (int)lrintf(x); }

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ------------------------------------------------------------ dequantize */

static void deq_q4_0(const uint8_t *b, float *y)
{
    float d = rdh(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 0xf) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

static void deq_q4_1(const uint8_t *b, float *y)
{
    float d = rdh(b), m = rdh(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(qs[j] & 0xf) + m;
        y[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

/* Q5_0/Q5_1: bit i of the 32-bit qh is the fifth bit of value i. */
static uint32_t rd_qh(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void deq_q5_0(const uint8_t *b, float *y)
{
    float d = rdh(b);
    uint32_t qh = rd_qh(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static void deq_q5_1(const uint8_t *b, float *y)
{
    float d = rdh(b), m = rdh(b + 2);
    uint32_t qh = rd_qh(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

static void deq_q8_0(const uint8_t *b, float *y)
{
    float d = rdh(b);
    for (int j = 0; j < 32; j++)
        y[j] = d * (float)(int8_t)b[2 + j];
}

static void deq_q8_1(const uint8_t *b, float *y)
{
    float d = rdh(b);
    for (int j = 0; j < 32; j++)
        y[j] = d * (float)(int8_t)b[4 + j];
}

/* Q2_K: 16 groups of 16 values; group k has scale (scales[k] & 15) * d and
 * min (scales[k] >> 4) * dmin. In each half (128 values, 32 qs bytes) value
 * 32*j + l (j < 4, l < 32) is bits 2j..2j+1 of qs[l]. */
static void deq_q2_k(const uint8_t *b, float *y)
{
    const uint8_t *sc = b, *qs = b + 16;
    float d = rdh(b + 80), dmin = rdh(b + 82);
    for (int i = 0; i < QK_K; i++) {
        int half = i / 128, j = (i % 128) / 32, l = i % 32, k = i / 16;
        int q = (qs[half * 32 + l] >> (2 * j)) & 3;
        y[i] = d * (float)(sc[k] & 0xf) * (float)q -
               dmin * (float)(sc[k] >> 4);
    }
}

/* Q3_K's 16 six-bit signed scales (stored +32): the low 4 bits of scale k
 * are the low nibble of bytes 0..7 (k < 8) or their high nibble (k >= 8);
 * the top 2 bits are bits 2*(k/4) of byte 8 + k%4. */
static int q3k_scale(const uint8_t *s, int k)
{
    int lo = k < 8 ? s[k] & 0xf : s[k - 8] >> 4;
    int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* Q3_K values: 3-bit q - 4 where the low two bits are placed as in Q2_K
 * and the third bit of value 32*j + l in half h is bit 4h + j of hmask[l];
 * a set bit means "no -4". */
static void deq_q3_k(const uint8_t *b, float *y)
{
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    float d = rdh(b + 108);
    for (int i = 0; i < QK_K; i++) {
        int half = i / 128, j = (i % 128) / 32, l = i % 32;
        int q = (qs[half * 32 + l] >> (2 * j)) & 3;
        if (!((hm[l] >> (4 * half + j)) & 1))
            q -= 4;
        y[i] = d * (float)q3k_scale(sc, i / 16) * (float)q;
    }
}

/* Q4_K/Q5_K: 8 groups of 32 values with 6-bit scale and min. Groups 0..3
 * keep them in the low 6 bits of bytes j and j+4; groups 4..7 keep their
 * low 4 bits in byte j+4 (scale low nibble, min high nibble) and their top
 * 2 bits in the top bits of bytes j-4 (scale) and j (min). */
void qt_k4_scale_min(const uint8_t *s, int j, int *sc, int *mn)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q4_K values: in chunk c of 64, the first 32 are the low nibbles of
 * qs[32c .. 32c+31] (group 2c), the next 32 their high nibbles (2c+1). */
static void deq_q4_k(const uint8_t *b, float *y)
{
    float d = rdh(b), dmin = rdh(b + 2);
    const uint8_t *s = b + 4, *qs = b + 16;
    for (int g = 0; g < 8; g++) {
        int sc, mn;
        qt_k4_scale_min(s, g, &sc, &mn);
        float dl = d * (float)sc, ml = dmin * (float)mn;
        const uint8_t *q = qs + 32 * (g / 2);
        int shift = 4 * (g % 2);
        for (int l = 0; l < 32; l++)
            y[32 * g + l] = dl * (float)((q[l] >> shift) & 0xf) - ml;
    }
}

/* Q5_K: as Q4_K plus a fifth bit: value l of group g is bit g of qh[l]. */
static void deq_q5_k(const uint8_t *b, float *y)
{
    float d = rdh(b), dmin = rdh(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *qs = b + 48;
    for (int g = 0; g < 8; g++) {
        int sc, mn;
        qt_k4_scale_min(s, g, &sc, &mn);
        float dl = d * (float)sc, ml = dmin * (float)mn;
        const uint8_t *q = qs + 32 * (g / 2);
        int shift = 4 * (g % 2);
        for (int l = 0; l < 32; l++) {
            int v = ((q[l] >> shift) & 0xf) | ((qh[l] >> g) & 1) << 4;
            y[32 * g + l] = dl * (float)v - ml;
        }
    }
}

/* Q6_K: 6-bit q - 32, 16 groups of 16 with int8 scales. In half h (128
 * values; ql bytes 64h.., qh bytes 32h..), value 32*j + l (j < 4, l < 32)
 * has its low nibble in ql[64h + l + 32*(j&1)] (low nibble for j < 2, high
 * for j >= 2) and its top two bits at bits 2j of qh[32h + l]. */
static void deq_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rdh(b + 208);
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, j = (i % 128) / 32, l = i % 32;
        int lo = (ql[64 * h + l + 32 * (j & 1)] >> (4 * (j >> 1))) & 0xf;
        int hi = (qh[32 * h + l] >> (2 * j)) & 3;
        y[i] = d * (float)sc[i / 16] * (float)((lo | hi << 4) - 32);
    }
}

static void deq_q8_k(const uint8_t *b, float *y)
{
    float d = rdf(b);
    for (int i = 0; i < QK_K; i++)
        y[i] = d * (float)(int8_t)b[4 + i];
}

typedef void (*deq_fn)(const uint8_t *, float *);

static deq_fn deq_of(uint32_t type)
{
    switch (type) {
    case QT_Q4_0: return deq_q4_0;
    case QT_Q4_1: return deq_q4_1;
    case QT_Q5_0: return deq_q5_0;
    case QT_Q5_1: return deq_q5_1;
    case QT_Q8_0: return deq_q8_0;
    case QT_Q8_1: return deq_q8_1;
    case QT_Q2_K: return deq_q2_k;
    case QT_Q3_K: return deq_q3_k;
    case QT_Q4_K: return deq_q4_k;
    case QT_Q5_K: return deq_q5_k;
    case QT_Q6_K: return deq_q6_k;
    case QT_Q8_K: return deq_q8_k;
    default: return NULL;
    }
}

int qt_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    const qt_traits *t = qt_traits_of(type);
    if (!t || !t->can_dequantize || n < 0 || n % t->block_size != 0)
        return -1;
    const uint8_t *s = src;
    switch (type) {
    case QT_F32:
        memcpy(dst, s, (size_t)n * 4);
        return 0;
    case QT_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = qt_f16_to_f32(rd16(s + 2 * i));
        return 0;
    case QT_BF16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = qt_bf16_to_f32(rd16(s + 2 * i));
        return 0;
    default: break;
    }
    deq_fn f = deq_of(type);
    int64_t nb = n / t->block_size;
    for (int64_t i = 0; i < nb; i++)
        f(s + i * t->type_size, dst + i * t->block_size);
    return 0;
}

/* ------------------------------------------------------------ quantize */

/* The scale of a Q8_0/Q8_1 block and its inverse. Weights: 1/d, as
 * ggml's reference quantizer (and hearth quantize) computes it.
 * Activations: 127/amax, as ggml's x86 quantize_row_q8_0/_q8_1 (the
 * activation rows of its products) compute it; the two differ in the
 * last bit for some amax, which flips a rounding now and then. */
static float q8_scale(const float *x, bool act, float *id)
{
    float amax = 0;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f;
    if (act)
        *id = amax != 0.0f ? 127.0f / amax : 0.0f;
    else
        *id = d > 0 ? 1.0f / d : 0.0f;
    return d;
}

static void q8_0_block(const float *x, uint8_t *b, bool act)
{
    float id;
    float d = q8_scale(x, act, &id);
    wrh(b, d);
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)clampi(nearest(x[j] * id), -127, 127);
}

static void q_q8_0(const float *x, uint8_t *b) { q8_0_block(x, b, false); }
static void act_q8_0(const float *x, uint8_t *b) { q8_0_block(x, b, true); }

static void q8_1_block(const float *x, uint8_t *b, bool act)
{
    float id;
    float d = q8_scale(x, act, &id);
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        int q = clampi(nearest(x[j] * id), -127, 127);
        b[4 + j] = (uint8_t)(int8_t)q;
        sum += q;
    }
    wrh(b, d);
    wrh(b + 2, d * (float)sum);
}

static void q_q8_1(const float *x, uint8_t *b) { q8_1_block(x, b, false); }
static void act_q8_1(const float *x, uint8_t *b) { q8_1_block(x, b, true); }

/* The value of largest magnitude, with its sign. Mapping it to the most
 * negative level (-8, -16) uses the one extra level of the asymmetric
 * signed range. */
static float signed_amax(const float *x, int n)
{
    float amax = 0, m = 0;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            m = x[j];
        }
    }
    return m;
}

static void q_q4_0(const float *x, uint8_t *b)
{
    float m = signed_amax(x, 32);
    float d = m / -8.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    wrh(b, d);
    for (int j = 0; j < 16; j++) {
        int lo = clampi(nearest(x[j] * id) + 8, 0, 15);
        int hi = clampi(nearest(x[j + 16] * id) + 8, 0, 15);
        b[2 + j] = (uint8_t)(lo | hi << 4);
    }
}

static void q_q5_0(const float *x, uint8_t *b)
{
    float m = signed_amax(x, 32);
    float d = m / -16.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    wrh(b, d);
    for (int j = 0; j < 16; j++) {
        int lo = clampi(nearest(x[j] * id) + 16, 0, 31);
        int hi = clampi(nearest(x[j + 16] * id) + 16, 0, 31);
        b[6 + j] = (uint8_t)((lo & 0xf) | (hi & 0xf) << 4);
        qh |= (uint32_t)(lo >> 4) << j | (uint32_t)(hi >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++)
        b[2 + k] = (uint8_t)(qh >> (8 * k));
}

/* Q4_1/Q5_1: x = d*q + m over [min, max], q in 0..nmax. */
static void minmax(const float *x, int n, float *mn, float *mx)
{
    *mn = x[0];
    *mx = x[0];
    for (int j = 1; j < n; j++) {
        *mn = fminf(*mn, x[j]);
        *mx = fmaxf(*mx, x[j]);
    }
}

static void q_q4_1(const float *x, uint8_t *b)
{
    float mn, mx;
    minmax(x, 32, &mn, &mx);
    float d = (mx - mn) / 15.0f;
    float id = d > 0 ? 1.0f / d : 0.0f;
    wrh(b, d);
    wrh(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        int lo = clampi(nearest((x[j] - mn) * id), 0, 15);
        int hi = clampi(nearest((x[j + 16] - mn) * id), 0, 15);
        b[4 + j] = (uint8_t)(lo | hi << 4);
    }
}

static void q_q5_1(const float *x, uint8_t *b)
{
    float mn, mx;
    minmax(x, 32, &mn, &mx);
    float d = (mx - mn) / 31.0f;
    float id = d > 0 ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    wrh(b, d);
    wrh(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        int lo = clampi(nearest((x[j] - mn) * id), 0, 31);
        int hi = clampi(nearest((x[j + 16] - mn) * id), 0, 31);
        b[8 + j] = (uint8_t)((lo & 0xf) | (hi & 0xf) << 4);
        qh |= (uint32_t)(lo >> 4) << j | (uint32_t)(hi >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++)
        b[4 + k] = (uint8_t)(qh >> (8 * k));
}

/* Symmetric group fit for the K-quants: find s so that x ~ s*q with q in
 * [-nmax, nmax-1], minimising the squared error. A handful of candidate
 * reciprocal scales around the one that maps the largest value to -nmax
 * are tried; for each the rounding fixes q and the least-squares s for
 * that q is sum(x q)/sum(q q). Returns s (0 for an all-zero group). */
static float fit_sym(const float *x, int n, int nmax)
{
    float m = signed_amax(x, n);
    if (m == 0)
        return 0;
    float best_s = 0, best_gain = -1;
    for (int k = -9; k <= 9; k++) {
        float is = -((float)nmax + 0.1f * (float)k) / m;
        double sxq = 0, sqq = 0;
        for (int j = 0; j < n; j++) {
            int q = clampi(nearest(is * x[j]), -nmax, nmax - 1);
            sxq += (double)x[j] * q;
            sqq += (double)q * q;
        }
        /* error = sum x^2 - sxq^2/sqq: maximise the second term */
        if (sqq > 0 && sxq * sxq / sqq > best_gain) {
            best_gain = sxq * sxq / sqq;
            best_s = (float)(sxq / sqq);
        }
    }
    return best_s;
}

/* Asymmetric group fit: x ~ a*q - b with q in 0..nmax, a >= 0, b >= 0
 * (the formats store a non-negative min subtracted, so the offset can
 * only be <= 0). Candidate scales around (max - min)/nmax, each refined by
 * least squares on (a, offset). */
static void fit_asym(const float *x, int n, int nmax, float *a_out,
                     float *b_out)
{
    float mn, mx;
    minmax(x, n, &mn, &mx);
    if (mn > 0)
        mn = 0;
    if (mx <= mn) {
        *a_out = 0;
        *b_out = -mn;
        return;
    }
    float best_a = (mx - mn) / (float)nmax, best_b = -mn;
    double best_err = INFINITY;
    for (int k = -6; k <= 12; k++) {
        float is = ((float)nmax + 0.1f * (float)k) / (mx - mn);
        double sq = 0, sqq = 0, sx = 0, sxq = 0;
        int qv[32]; /* n <= 32 */
        for (int j = 0; j < n; j++) {
            int q = clampi(nearest(is * (x[j] - mn)), 0, nmax);
            qv[j] = q;
            sq += q;
            sqq += (double)q * q;
            sx += x[j];
            sxq += (double)x[j] * q;
        }
        double det = n * sqq - sq * sq;
        double a, off;
        if (det > 0) {
            a = (n * sxq - sq * sx) / det;
            off = (sx * sqq - sq * sxq) / det;
        } else {
            a = 0;
            off = sx / n;
        }
        if (off > 0) { /* offset must be <= 0: refit a alone */
            off = 0;
            a = sqq > 0 ? sxq / sqq : 0;
        }
        if (a < 0)
            continue;
        double err = 0;
        for (int j = 0; j < n; j++) {
            double e = a * qv[j] + off - x[j];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_a = (float)a;
            best_b = (float)-off;
        }
    }
    *a_out = best_a;
    *b_out = best_b;
}

/* Q4_K / Q5_K: per group of 32 an asymmetric fit, then the 8 scales and 8
 * mins are quantized to 6 bits against the super-block d and dmin, and the
 * values are re-quantized with the scales as they will be decoded. */
static void q_k45(const float *x, uint8_t *b, int bits)
{
    int nmax = (1 << bits) - 1;
    float a[8], m[8], amax = 0, mmax = 0;
    for (int g = 0; g < 8; g++) {
        fit_asym(x + 32 * g, 32, nmax, &a[g], &m[g]);
        amax = fmaxf(amax, a[g]);
        mmax = fmaxf(mmax, m[g]);
    }
    uint16_t dh = qt_f32_to_f16(amax / 63.0f);
    uint16_t mh = qt_f32_to_f16(mmax / 63.0f);
    float d = qt_f16_to_f32(dh), dmin = qt_f16_to_f32(mh);
    int sc[8], mn[8];
    for (int g = 0; g < 8; g++) {
        sc[g] = d > 0 ? clampi(nearest(a[g] / d), 0, 63) : 0;
        mn[g] = dmin > 0 ? clampi(nearest(m[g] / dmin), 0, 63) : 0;
    }
    wr16(b, dh);
    wr16(b + 2, mh);
    uint8_t *s = b + 4;
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | (mn[j + 4] & 0xf) << 4);
    }
    uint8_t *qh = bits == 5 ? b + 16 : NULL;
    uint8_t *qs = bits == 5 ? b + 48 : b + 16;
    memset(qs, 0, 128);
    if (qh)
        memset(qh, 0, 32);
    for (int g = 0; g < 8; g++) {
        float dl = d * (float)sc[g], ml = dmin * (float)mn[g];
        float idl = dl > 0 ? 1.0f / dl : 0.0f;
        uint8_t *q = qs + 32 * (g / 2);
        int shift = 4 * (g % 2);
        for (int l = 0; l < 32; l++) {
            int v = clampi(nearest((x[32 * g + l] + ml) * idl), 0, nmax);
            q[l] |= (uint8_t)((v & 0xf) << shift);
            if (qh)
                qh[l] |= (uint8_t)((v >> 4) << g);
        }
    }
}

/* Fit each of the 16 groups of 16 values symmetrically (q in -qh..qh-1)
 * into s[]; returns the group scale of largest magnitude, which the
 * super-block scale is derived from. */
static float fit_groups16(const float *x, int qh, float *s)
{
    float smax = 0, sm = 0;
    for (int k = 0; k < 16; k++) {
        s[k] = fit_sym(x + 16 * k, 16, qh);
        if (fabsf(s[k]) > smax) {
            smax = fabsf(s[k]);
            sm = s[k];
        }
    }
    return sm;
}

/* Q6_K: symmetric fit per group of 16, int8 group scales against d. */
static void q_q6_k(const float *x, uint8_t *b)
{
    float s[16];
    float sm = fit_groups16(x, 32, s);
    /* the group scale of largest magnitude becomes -128 or 127 */
    uint16_t dh = qt_f32_to_f16(sm != 0 ? sm / -128.0f : 0.0f);
    float d = qt_f16_to_f32(dh);
    int8_t *sc = (int8_t *)(b + 192);
    for (int k = 0; k < 16; k++)
        sc[k] = (int8_t)(d != 0 ? clampi(nearest(s[k] / d), -128, 127) : 0);
    wr16(b + 208, dh);
    uint8_t *ql = b, *qh = b + 128;
    memset(ql, 0, 192);
    for (int i = 0; i < QK_K; i++) {
        float dl = d * (float)sc[i / 16];
        int q = dl != 0 ? clampi(nearest(x[i] / dl), -32, 31) : 0;
        int v = q + 32;
        int h = i / 128, j = (i % 128) / 32, l = i % 32;
        ql[64 * h + l + 32 * (j & 1)] |= (uint8_t)((v & 0xf) << (4 * (j >> 1)));
        qh[32 * h + l] |= (uint8_t)((v >> 4) << (2 * j));
    }
}

/* Q3_K: symmetric fit per group of 16 (q in -4..3), 6-bit signed scales. */
static void q_q3_k(const float *x, uint8_t *b)
{
    float s[16];
    float sm = fit_groups16(x, 4, s);
    uint16_t dh = qt_f32_to_f16(sm != 0 ? sm / -32.0f : 0.0f);
    float d = qt_f16_to_f32(dh);
    int sc[16];
    for (int k = 0; k < 16; k++)
        sc[k] = d != 0 ? clampi(nearest(s[k] / d), -32, 31) : 0;
    memset(b, 0, 110);
    uint8_t *hm = b, *qs = b + 32, *ss = b + 96;
    for (int k = 0; k < 16; k++) {
        int v = sc[k] + 32;
        if (k < 8)
            ss[k] |= (uint8_t)(v & 0xf);
        else
            ss[k - 8] |= (uint8_t)((v & 0xf) << 4);
        ss[8 + k % 4] |= (uint8_t)((v >> 4) << (2 * (k / 4)));
    }
    wr16(b + 108, dh);
    for (int i = 0; i < QK_K; i++) {
        float dl = d * (float)sc[i / 16];
        int q = dl != 0 ? clampi(nearest(x[i] / dl), -4, 3) : 0;
        int v = q + 4;
        int half = i / 128, j = (i % 128) / 32, l = i % 32;
        qs[32 * half + l] |= (uint8_t)((v & 3) << (2 * j));
        if (v & 4)
            hm[l] |= (uint8_t)(1u << (4 * half + j));
    }
}

/* Q2_K: asymmetric fit per group of 16 (q in 0..3), 4-bit scales/mins. */
static void q_q2_k(const float *x, uint8_t *b)
{
    float a[16], m[16], amax = 0, mmax = 0;
    for (int k = 0; k < 16; k++) {
        fit_asym(x + 16 * k, 16, 3, &a[k], &m[k]);
        amax = fmaxf(amax, a[k]);
        mmax = fmaxf(mmax, m[k]);
    }
    uint16_t dh = qt_f32_to_f16(amax / 15.0f);
    uint16_t mh = qt_f32_to_f16(mmax / 15.0f);
    float d = qt_f16_to_f32(dh), dmin = qt_f16_to_f32(mh);
    memset(b, 0, 84);
    int sc[16], mn[16];
    for (int k = 0; k < 16; k++) {
        sc[k] = d > 0 ? clampi(nearest(a[k] / d), 0, 15) : 0;
        mn[k] = dmin > 0 ? clampi(nearest(m[k] / dmin), 0, 15) : 0;
        b[k] = (uint8_t)(sc[k] | mn[k] << 4);
    }
    wr16(b + 80, dh);
    wr16(b + 82, mh);
    uint8_t *qs = b + 16;
    for (int i = 0; i < QK_K; i++) {
        float dl = d * (float)sc[i / 16], ml = dmin * (float)mn[i / 16];
        int q = dl > 0 ? clampi(nearest((x[i] + ml) / dl), 0, 3) : 0;
        int half = i / 128, j = (i % 128) / 32, l = i % 32;
        qs[32 * half + l] |= (uint8_t)(q << (2 * j));
    }
}

/* Q8_K: symmetric, d = amax/127 in f32, plus the sums of each 16 quants
 * (the K-quant dot products use them to apply the mins). */
static void q_q8_k(const float *x, uint8_t *b)
{
    /* ggml's Q8_K: the scale from the signed value of largest magnitude,
     * iscale = -127 / max, d = 1 / iscale (so d may be negative) */
    float amax = 0, max = 0;
    for (int i = 0; i < QK_K; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    float id = amax > 0 ? -127.0f / max : 0.0f;
    float d = amax > 0 ? 1.0f / id : 0.0f;
    wrf(b, d);
    for (int k = 0; k < 16; k++) {
        int sum = 0;
        for (int l = 0; l < 16; l++) {
            int q = clampi(nearest(x[16 * k + l] * id), -127, 127);
            b[4 + 16 * k + l] = (uint8_t)(int8_t)q;
            sum += q;
        }
        wr16(b + 260 + 2 * k, (uint16_t)(int16_t)sum);
    }
}

static void q_q4_k(const float *x, uint8_t *b) { q_k45(x, b, 4); }
static void q_q5_k(const float *x, uint8_t *b) { q_k45(x, b, 5); }

typedef void (*q_fn)(const float *, uint8_t *);

static q_fn q_of(uint32_t type)
{
    switch (type) {
    case QT_Q4_0: return q_q4_0;
    case QT_Q4_1: return q_q4_1;
    case QT_Q5_0: return q_q5_0;
    case QT_Q5_1: return q_q5_1;
    case QT_Q8_0: return q_q8_0;
    case QT_Q8_1: return q_q8_1;
    case QT_Q2_K: return q_q2_k;
    case QT_Q3_K: return q_q3_k;
    case QT_Q4_K: return q_q4_k;
    case QT_Q5_K: return q_q5_k;
    case QT_Q6_K: return q_q6_k;
    case QT_Q8_K: return q_q8_k;
    default: return NULL;
    }
}

int qt_quantize_row(uint32_t type, const float *src, void *dst, int64_t n)
{
    const qt_traits *t = qt_traits_of(type);
    if (!t || !t->can_quantize || n < 0 || n % t->block_size != 0)
        return -1;
    uint8_t *d = dst;
    switch (type) {
    case QT_F32:
        memcpy(d, src, (size_t)n * 4);
        return 0;
    case QT_F16:
        for (int64_t i = 0; i < n; i++)
            wr16(d + 2 * i, qt_f32_to_f16(src[i]));
        return 0;
    case QT_BF16:
        for (int64_t i = 0; i < n; i++)
            wr16(d + 2 * i, qt_f32_to_bf16(src[i]));
        return 0;
    default: break;
    }
    q_fn f = q_of(type);
    int64_t nb = n / t->block_size;
    for (int64_t i = 0; i < nb; i++)
        f(src + i * t->block_size, d + i * t->type_size);
    return 0;
}

/* ------------------------------------------------------------ dot (F32) */

float qt_dot_ref(uint32_t type, const void *row, const float *x, int64_t n)
{
    const qt_traits *t = qt_traits_of(type);
    if (!t || !t->can_dequantize || n < 0 || n % t->block_size != 0)
        return NAN;
    /* dequantize a few blocks at a time into a small stack buffer */
    enum { CHUNK = 512 };
    float buf[CHUNK];
    int64_t per = CHUNK / t->block_size * t->block_size;
    const uint8_t *r = row;
    double acc = 0;
    for (int64_t i = 0; i < n; i += per) {
        int64_t k = n - i < per ? n - i : per;
        qt_dequantize_row(type, r + i / t->block_size * t->type_size, buf, k);
        for (int64_t j = 0; j < k; j++)
            acc += (double)buf[j] * x[i + j];
    }
    return (float)acc;
}

/* ------------------------------------------------------------ dot (int) */

/* The integer path the SIMD kernels follow (as ggml does): activations are
 * quantized to 8 bits per block (Q8_0, Q8_1 or Q8_K), products of small
 * integers are summed exactly in int32 within a block, and only the block
 * scales are floating point. Results differ from qt_dot_ref by the
 * activation rounding only. */

uint32_t qt_act_type(uint32_t weight_type)
{
    switch (weight_type) {
    case QT_F32: case QT_F16: case QT_BF16: return QT_F32;
    case QT_Q4_0: case QT_Q5_0: case QT_Q8_0: return QT_Q8_0;
    case QT_Q4_1: case QT_Q5_1: return QT_Q8_1;
    case QT_Q2_K: case QT_Q3_K: case QT_Q4_K: case QT_Q5_K: case QT_Q6_K:
        return QT_Q8_K;
    default: return QT_ACT_NONE;
    }
}

int qt_quantize_act(uint32_t weight_type, const float *x, void *xq, int64_t n)
{
    uint32_t at = qt_act_type(weight_type);
    if (at == QT_ACT_NONE)
        return -1;
    if (at != QT_Q8_0 && at != QT_Q8_1)
        return qt_quantize_row(at, x, xq, n);
    if (n < 0 || n % 32 != 0)
        return -1;
    q_fn f = at == QT_Q8_0 ? act_q8_0 : act_q8_1;
    size_t ts = qt_traits_of(at)->type_size;
    for (int64_t i = 0; i < n / 32; i++)
        f(x + i * 32, (uint8_t *)xq + (size_t)i * ts);
    return 0;
}

/* The 32 4/5-bit quants of a Q4/Q5 block, unsigned (0..15 or 0..31). */
static void unpack32(uint32_t type, const uint8_t *b, int *q)
{
    const uint8_t *qs;
    uint32_t qh = 0;
    switch (type) {
    case QT_Q4_0: qs = b + 2; break;
    case QT_Q4_1: qs = b + 4; break;
    case QT_Q5_0: qh = rd_qh(b + 2); qs = b + 6; break;
    default: qh = rd_qh(b + 4); qs = b + 8; break; /* Q5_1 */
    }
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
        q[j + 16] = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
    }
}

static double dot_q8_0(uint32_t type, const uint8_t *w, const uint8_t *a,
                       int64_t nb, size_t ts)
{
    double acc = 0;
    int q[32];
    for (int64_t i = 0; i < nb; i++, w += ts, a += 34) {
        const int8_t *aq = (const int8_t *)(a + 2);
        int32_t sumi = 0;
        if (type == QT_Q8_0) {
            for (int j = 0; j < 32; j++)
                sumi += (int32_t)(int8_t)w[2 + j] * aq[j];
        } else {
            int off = type == QT_Q4_0 ? 8 : 16;
            unpack32(type, w, q);
            for (int j = 0; j < 32; j++)
                sumi += (q[j] - off) * aq[j];
        }
        acc += (double)rdh(w) * rdh(a) * sumi;
    }
    return acc;
}

/* Q4_1/Q5_1 x Q8_1: sum (d q + m) * (da qa) = d da sum(q qa) + m s, with
 * s = da * sum(qa) stored in the Q8_1 block. */
static double dot_q8_1(uint32_t type, const uint8_t *w, const uint8_t *a,
                       int64_t nb, size_t ts)
{
    double acc = 0;
    int q[32];
    for (int64_t i = 0; i < nb; i++, w += ts, a += 36) {
        const int8_t *aq = (const int8_t *)(a + 4);
        unpack32(type, w, q);
        int32_t sumi = 0;
        for (int j = 0; j < 32; j++)
            sumi += q[j] * aq[j];
        acc += (double)rdh(w) * rdh(a) * sumi + (double)rdh(w + 2) * rdh(a + 2);
    }
    return acc;
}

static int16_t q8k_bsum(const uint8_t *a, int k)
{
    return (int16_t)rd16(a + 260 + 2 * k);
}

/* One K-quant super-block against one Q8_K block. */
static double dot_k_block(uint32_t type, const uint8_t *b, const uint8_t *a)
{
    const int8_t *aq = (const int8_t *)(a + 4);
    double da = rdf(a);
    switch (type) {
    case QT_Q2_K: {
        const uint8_t *sc = b, *qs = b + 16;
        int32_t sumi = 0, summ = 0;
        for (int k = 0; k < 16; k++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) {
                int i = 16 * k + l;
                int half = i / 128, j = (i % 128) / 32;
                s += ((qs[32 * half + i % 32] >> (2 * j)) & 3) * aq[i];
            }
            sumi += (sc[k] & 0xf) * s;
            summ += (sc[k] >> 4) * q8k_bsum(a, k);
        }
        return da * ((double)rdh(b + 80) * sumi - (double)rdh(b + 82) * summ);
    }
    case QT_Q3_K: {
        const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
        int32_t sumi = 0;
        for (int k = 0; k < 16; k++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) {
                int i = 16 * k + l;
                int half = i / 128, j = (i % 128) / 32, li = i % 32;
                int q = (qs[32 * half + li] >> (2 * j)) & 3;
                if (!((hm[li] >> (4 * half + j)) & 1))
                    q -= 4;
                s += q * aq[i];
            }
            sumi += q3k_scale(sc, k) * s;
        }
        return da * rdh(b + 108) * sumi;
    }
    case QT_Q4_K:
    case QT_Q5_K: {
        const uint8_t *s6 = b + 4;
        const uint8_t *qh = type == QT_Q5_K ? b + 16 : NULL;
        const uint8_t *qs = type == QT_Q5_K ? b + 48 : b + 16;
        int32_t sumi = 0, summ = 0;
        for (int g = 0; g < 8; g++) {
            int sc, mn;
            qt_k4_scale_min(s6, g, &sc, &mn);
            const uint8_t *q = qs + 32 * (g / 2);
            int shift = 4 * (g % 2);
            int32_t s = 0;
            for (int l = 0; l < 32; l++) {
                int v = (q[l] >> shift) & 0xf;
                if (qh)
                    v |= ((qh[l] >> g) & 1) << 4;
                s += v * aq[32 * g + l];
            }
            sumi += sc * s;
            summ += mn * (q8k_bsum(a, 2 * g) + q8k_bsum(a, 2 * g + 1));
        }
        return da * ((double)rdh(b) * sumi - (double)rdh(b + 2) * summ);
    }
    case QT_Q6_K: {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        int32_t sumi = 0;
        for (int k = 0; k < 16; k++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) {
                int i = 16 * k + l;
                int h = i / 128, j = (i % 128) / 32, li = i % 32;
                int lo = (ql[64 * h + li + 32 * (j & 1)] >> (4 * (j >> 1))) & 0xf;
                int hi = (qh[32 * h + li] >> (2 * j)) & 3;
                s += ((lo | hi << 4) - 32) * aq[i];
            }
            sumi += sc[k] * s;
        }
        return da * rdh(b + 208) * sumi;
    }
    default: return NAN;
    }
}

float qt_dot_q(uint32_t weight_type, const void *w, const void *xq, int64_t n)
{
    uint32_t at = qt_act_type(weight_type);
    const qt_traits *t = qt_traits_of(weight_type);
    if (at == QT_ACT_NONE || !t || n < 0 || n % t->block_size != 0)
        return NAN;
    if (at == QT_F32)
        return qt_dot_ref(weight_type, w, xq, n);
    int64_t nb = n / t->block_size;
    const uint8_t *wb = w, *ab = xq;
    if (at == QT_Q8_0)
        return (float)dot_q8_0(weight_type, wb, ab, nb, t->type_size);
    if (at == QT_Q8_1)
        return (float)dot_q8_1(weight_type, wb, ab, nb, t->type_size);
    double acc = 0;
    for (int64_t i = 0; i < nb; i++)
        acc += dot_k_block(weight_type, wb + i * t->type_size, ab + i * 292);
    return (float)acc;
}
