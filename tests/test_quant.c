/* test_quant.c - tensor element types: traits, f16/bf16 conversions,
 * hand-built blocks of every type with known values (catches layout
 * mistakes), quantize/dequantize error bounds, the reference dot products,
 * and cross-checks against llama.cpp-quantized files in
 * $HEARTH_TEST_DATA/models. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "quant.h"

/* ------------------------------------------------------------ helpers */

/* For checks inside big loops: Check records every passing ck_assert
 * (a write to its log), which makes millions of them slow. */
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond))                                                          \
            ck_abort_msg(__VA_ARGS__);                                        \
    } while (0)

static const char *data_dir(void)
{
    static char buf[4096];
    const char *d = getenv("HEARTH_TEST_DATA");
    if (!d || !*d)
        d = "../shared";
    snprintf(buf, sizeof buf, "%s/models", d);
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    return buf;
}

#define SKIP_WITHOUT_DATA(dir)                                                \
    const char *dir = data_dir();                                             \
    if (!dir) {                                                               \
        fprintf(stderr, "SKIP %s: no test data (set HEARTH_TEST_DATA)\n",     \
                __func__);                                                    \
        return;                                                               \
    }

static uint64_t rng_state;

static void rng_seed(uint64_t s) { rng_state = s * 2654435761u + 1; }

static uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rng_uniform(void) /* (0, 1) */
{
    return ((float)(rng_u32() >> 8) + 0.5f) / 16777216.0f;
}

static float rng_gauss(void)
{
    float u = rng_uniform(), v = rng_uniform();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static void fill_gauss(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * rng_gauss();
}

static double rel_rms(const float *ref, const float *y, int64_t n)
{
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)ref[i] - y[i]) * ((double)ref[i] - y[i]);
        s += (double)ref[i] * ref[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

static size_t row_bytes(uint32_t type, int64_t n)
{
    uint64_t b;
    ck_assert_int_eq(qt_row_size(type, (uint64_t)n, &b), 0);
    return (size_t)b;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Dequantizes one block into y (256 floats are always enough). */
static void deq(uint32_t type, const uint8_t *blk, float *y)
{
    ck_assert_int_eq(
        qt_dequantize_row(type, blk, y, qt_traits_of(type)->block_size), 0);
}

#define H_1 0x3c00     /* 1.0 in f16 */
#define H_2 0x4000     /* 2.0 */
#define H_HALF 0x3800  /* 0.5 */
#define H_QUART 0x3400 /* 0.25 */
#define H_M1 0xbc00    /* -1.0 */

/* Every type with a quantizer and a dequantizer. */
static const uint32_t all_types[] = {
    QT_F32,  QT_F16,  QT_BF16, QT_Q8_0, QT_Q8_1, QT_Q4_0, QT_Q4_1, QT_Q5_0,
    QT_Q5_1, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_Q8_K,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* ------------------------------------------------------------ traits */

START_TEST(traits_match_ggml)
{
    static const struct {
        uint32_t type;
        const char *name;
        uint32_t bs, ts;
    } want[] = {
        {QT_F32, "F32", 1, 4},       {QT_F16, "F16", 1, 2},
        {QT_BF16, "BF16", 1, 2},     {QT_Q4_0, "Q4_0", 32, 18},
        {QT_Q4_1, "Q4_1", 32, 20},   {QT_Q5_0, "Q5_0", 32, 22},
        {QT_Q5_1, "Q5_1", 32, 24},   {QT_Q8_0, "Q8_0", 32, 34},
        {QT_Q8_1, "Q8_1", 32, 36},   {QT_Q2_K, "Q2_K", 256, 84},
        {QT_Q3_K, "Q3_K", 256, 110}, {QT_Q4_K, "Q4_K", 256, 144},
        {QT_Q5_K, "Q5_K", 256, 176}, {QT_Q6_K, "Q6_K", 256, 210},
        {QT_Q8_K, "Q8_K", 256, 292},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const qt_traits *t = qt_traits_of(want[i].type);
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(t->name, want[i].name);
        ck_assert_str_eq(qt_name(want[i].type), want[i].name);
        ck_assert_uint_eq(t->block_size, want[i].bs);
        ck_assert_uint_eq(t->type_size, want[i].ts);
        ck_assert(t->can_dequantize);
        ck_assert(t->can_quantize);
        ck_assert_int_eq(qt_from_name(want[i].name), (int)want[i].type);
    }
    ck_assert_int_eq(qt_from_name("q4_k"), QT_Q4_K);
    ck_assert_int_eq(qt_from_name("bf16"), QT_BF16);
    ck_assert_int_eq(qt_from_name("Q4"), -1);
    ck_assert_int_eq(qt_from_name("Q4_K_M"), -1);
    ck_assert_int_eq(qt_from_name(""), -1);
    ck_assert_ptr_null(qt_traits_of(4)); /* removed Q4_2 */
    ck_assert_ptr_null(qt_traits_of(QT_TYPE_MAX));
    ck_assert_ptr_null(qt_traits_of(UINT32_MAX));
    ck_assert_str_eq(qt_name(99), "?");
    /* known-but-unsupported types: listed so files open, not usable */
    const qt_traits *iq = qt_traits_of(16);
    ck_assert(iq && !iq->can_dequantize && strcmp(iq->name, "IQ2_XXS") == 0);
}
END_TEST

START_TEST(row_size_checks)
{
    uint64_t b = 0;
    ck_assert_int_eq(qt_row_size(QT_Q4_0, 64, &b), 0);
    ck_assert_uint_eq(b, 36);
    ck_assert_int_eq(qt_row_size(QT_Q6_K, 512, &b), 0);
    ck_assert_uint_eq(b, 420);
    ck_assert_int_eq(qt_row_size(QT_F16, 7, &b), 0);
    ck_assert_uint_eq(b, 14);
    ck_assert_int_eq(qt_row_size(QT_Q4_0, 33, &b), -1);
    ck_assert_int_eq(qt_row_size(QT_Q4_K, 128, &b), -1);
    ck_assert_int_eq(qt_row_size(99, 32, &b), -1);
    ck_assert_int_eq(qt_row_size(QT_F32, UINT64_MAX / 2, &b), -1);
}
END_TEST

START_TEST(convert_rejects_bad_args)
{
    uint8_t buf[1024] = {0};
    float y[256];
    ck_assert_int_eq(qt_dequantize_row(QT_Q4_0, buf, y, 33), -1);
    ck_assert_int_eq(qt_dequantize_row(16 /* IQ2_XXS */, buf, y, 256), -1);
    ck_assert_int_eq(qt_dequantize_row(99, buf, y, 32), -1);
    ck_assert_int_eq(qt_dequantize_row(QT_F32, buf, y, -1), -1);
    ck_assert_int_eq(qt_quantize_row(QT_Q4_K, y, buf, 32), -1);
    ck_assert_int_eq(qt_quantize_row(16, y, buf, 256), -1);
    ck_assert(isnan(qt_dot_ref(QT_Q4_0, buf, y, 31)));
    ck_assert(isnan(qt_dot_q(16, buf, buf, 256)));
    ck_assert_uint_eq(qt_act_type(16), QT_ACT_NONE);
    ck_assert_int_eq(qt_quantize_act(16, y, buf, 256), -1);
}
END_TEST

/* ------------------------------------------------------------ halves */

START_TEST(f16_edge_cases)
{
    ck_assert_uint_eq(qt_f32_to_f16(0.0f), 0x0000);
    ck_assert_uint_eq(qt_f32_to_f16(-0.0f), 0x8000);
    ck_assert_uint_eq(qt_f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(qt_f32_to_f16(-2.0f), 0xc000);
    ck_assert_uint_eq(qt_f32_to_f16(65504.0f), 0x7bff);  /* largest half */
    ck_assert_uint_eq(qt_f32_to_f16(65519.0f), 0x7bff);  /* rounds down */
    ck_assert_uint_eq(qt_f32_to_f16(65520.0f), 0x7c00);  /* tie -> inf */
    ck_assert_uint_eq(qt_f32_to_f16(1e10f), 0x7c00);
    ck_assert_uint_eq(qt_f32_to_f16(-INFINITY), 0xfc00);
    ck_assert_uint_eq(qt_f32_to_f16(INFINITY), 0x7c00);
    uint16_t n = qt_f32_to_f16(NAN);
    ck_assert((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    ck_assert(isnan(qt_f16_to_f32(0x7e00)));
    ck_assert(isnan(qt_f16_to_f32(0xfc01)));
    ck_assert(isinf(qt_f16_to_f32(0x7c00)) && qt_f16_to_f32(0x7c00) > 0);
    /* subnormals: 2^-24 is the smallest */
    ck_assert_uint_eq(qt_f32_to_f16(0x1p-24f), 0x0001);
    ck_assert(qt_f16_to_f32(0x0001) == 0x1p-24f);
    ck_assert(qt_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    ck_assert(qt_f16_to_f32(0x8001) == -0x1p-24f);
    ck_assert_uint_eq(qt_f32_to_f16(0x1p-25f), 0x0000);        /* tie, even */
    ck_assert_uint_eq(qt_f32_to_f16(0x1.8p-25f), 0x0001);      /* above tie */
    ck_assert_uint_eq(qt_f32_to_f16(0x1p-26f), 0x0000);
    ck_assert_uint_eq(qt_f32_to_f16(3 * 0x1p-25f), 0x0002);    /* 1.5 -> 2 */
    ck_assert_uint_eq(qt_f32_to_f16(5 * 0x1p-25f), 0x0002);    /* 2.5 -> 2 */
    ck_assert_uint_eq(qt_f32_to_f16(0x1p-14f), 0x0400);        /* min normal */
    ck_assert_uint_eq(qt_f32_to_f16(0x1.ffcp-15f), 0x0400);    /* rounds up */
    ck_assert_uint_eq(qt_f32_to_f16(-0x1p-30f), 0x8000);
    /* ties between normals go to even */
    ck_assert_uint_eq(qt_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    ck_assert_uint_eq(qt_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    ck_assert_uint_eq(qt_f32_to_f16(1.0f + 0x1.01p-11f), 0x3c01);
    /* rounding carries into the exponent */
    ck_assert_uint_eq(qt_f32_to_f16(2.0f - 0x1p-12f), 0x4000);
}
END_TEST

/* Every finite half survives half -> float -> half; nan stays nan. */
START_TEST(f16_all_values_roundtrip)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = qt_f16_to_f32((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            uint16_t back = qt_f32_to_f16(f);
            CHECK(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff) != 0,
                  "nan %04x", h);
            continue;
        }
        CHECK(qt_f32_to_f16(f) == h, "h=%04x", h);
    }
}
END_TEST

/* Random floats against the compiler's own conversion where it has one
 * (gcc >= 12 on x86-64 has _Float16 with correct rounding). */
#if defined(__FLT16_MAX__) && !defined(__clang__)
#define HAVE_FLOAT16 1
static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
#endif

START_TEST(f16_matches_compiler)
{
#ifdef HAVE_FLOAT16
    rng_seed(5);
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = rng_u32() << 16 ^ rng_u32();
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f))
            continue;
        _Float16 h = (_Float16)f;
        uint16_t hb;
        memcpy(&hb, &h, 2);
        CHECK(qt_f32_to_f16(f) == hb, "f=%a (%08x)", f, u);
        CHECK(fbits(qt_f16_to_f32(hb)) == fbits((float)h), "h=%04x", hb);
    }
#else
    fprintf(stderr, "SKIP f16_matches_compiler: no _Float16\n");
#endif
}
END_TEST

START_TEST(bf16_edge_cases)
{
    ck_assert_uint_eq(qt_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(qt_f32_to_bf16(-0.0f), 0x8000);
    ck_assert(qt_bf16_to_f32(0x3f80) == 1.0f);
    ck_assert(qt_bf16_to_f32(0xc0a0) == -5.0f);
    /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: to even (1) */
    ck_assert_uint_eq(qt_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    ck_assert_uint_eq(qt_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    ck_assert_uint_eq(qt_f32_to_bf16(1.0f + 0x1.2p-8f), 0x3f81);
    ck_assert_uint_eq(qt_f32_to_bf16(INFINITY), 0x7f80);
    ck_assert_uint_eq(qt_f32_to_bf16(FLT_MAX), 0x7f80); /* rounds to inf */
    uint16_t n = qt_f32_to_bf16(NAN);
    ck_assert(isnan(qt_bf16_to_f32(n)));
    /* a nan whose payload is only in the low bits must stay a nan */
    uint32_t u = 0x7f800001;
    float f;
    memcpy(&f, &u, 4);
    ck_assert(isnan(qt_bf16_to_f32(qt_f32_to_bf16(f))));
    /* subnormal floats are kept (bf16 has the same exponent range) */
    ck_assert(qt_bf16_to_f32(qt_f32_to_bf16(0x1p-130f)) == 0x1p-130f);
    for (uint32_t h = 0; h < 0x10000; h++) {
        float g = qt_bf16_to_f32((uint16_t)h);
        CHECK(isnan(g) || qt_f32_to_bf16(g) == h, "bf16 %04x", h);
    }
}
END_TEST

/* ------------------------------------------------------------ known blocks */

START_TEST(known_f16_bf16_f32)
{
    uint8_t b[4] = {0x00, 0x3c, 0x00, 0xc0};
    float y[2];
    ck_assert_int_eq(qt_dequantize_row(QT_F16, b, y, 2), 0);
    ck_assert(y[0] == 1.0f && y[1] == -2.0f);
    uint8_t c[4] = {0x80, 0x3f, 0x40, 0xc0};
    ck_assert_int_eq(qt_dequantize_row(QT_BF16, c, y, 2), 0);
    ck_assert(y[0] == 1.0f && y[1] == -3.0f);
    float x[2] = {0.5f, -7.25f};
    ck_assert_int_eq(qt_dequantize_row(QT_F32, x, y, 2), 0);
    ck_assert(y[0] == 0.5f && y[1] == -7.25f);
}
END_TEST

START_TEST(known_q4_0)
{
    uint8_t b[18] = {0};
    put16(b, H_2);
    b[2 + 0] = 0x1f;  /* value 0: 15-8=7, value 16: 1-8=-7 */
    b[2 + 15] = 0x80; /* value 15: 0-8=-8, value 31: 8-8=0 */
    float y[32];
    deq(QT_Q4_0, b, y);
    ck_assert(y[0] == 14.0f && y[16] == -14.0f);
    ck_assert(y[15] == -16.0f && y[31] == 0.0f);
    ck_assert(y[1] == -16.0f && y[17] == -16.0f); /* nibble 0 */
}
END_TEST

START_TEST(known_q4_1)
{
    uint8_t b[20] = {0};
    put16(b, H_2);
    put16(b + 2, H_M1);
    b[4 + 3] = 0x5a; /* value 3: 10, value 19: 5 */
    float y[32];
    deq(QT_Q4_1, b, y);
    ck_assert(y[3] == 19.0f && y[19] == 9.0f);
    ck_assert(y[0] == -1.0f && y[31] == -1.0f);
}
END_TEST

START_TEST(known_q5_0)
{
    uint8_t b[22] = {0};
    put16(b, H_1);
    b[2] = 0x01; /* qh bit 0: value 0 has 16 added */
    b[4] = 0x02; /* qh bit 17: value 17 has 16 added */
    b[6 + 1] = 0x3f;
    float y[32];
    deq(QT_Q5_0, b, y);
    ck_assert(y[0] == 0.0f);   /* (0|16) - 16 */
    ck_assert(y[16] == -16.0f); /* 0 - 16 */
    ck_assert(y[1] == -1.0f);  /* 15 - 16 */
    ck_assert(y[17] == 3.0f);  /* (3|16) - 16 */
}
END_TEST

START_TEST(known_q5_1)
{
    uint8_t b[24] = {0};
    put16(b, H_HALF);
    put16(b + 2, H_1);
    b[4 + 3] = 0x80;  /* qh bit 31 */
    b[8 + 15] = 0xf0; /* value 15: 0, value 31: 15 (+16) */
    float y[32];
    deq(QT_Q5_1, b, y);
    ck_assert(y[15] == 1.0f);
    ck_assert(y[31] == 16.5f); /* 31 * 0.5 + 1 */
    ck_assert(y[0] == 1.0f);
}
END_TEST

START_TEST(known_q8_0_q8_1)
{
    uint8_t b[34] = {0};
    put16(b, H_QUART);
    b[2 + 5] = (uint8_t)(int8_t)-100;
    b[2 + 31] = 127;
    float y[32];
    deq(QT_Q8_0, b, y);
    ck_assert(y[5] == -25.0f && y[31] == 31.75f && y[0] == 0.0f);
    uint8_t c[36] = {0};
    put16(c, H_HALF);
    put16(c + 2, 0x7bff); /* s is not used to dequantize */
    c[4 + 31] = 127;
    c[4 + 0] = (uint8_t)(int8_t)-128;
    deq(QT_Q8_1, c, y);
    ck_assert(y[31] == 63.5f && y[0] == -64.0f);
}
END_TEST

START_TEST(known_q8_k)
{
    uint8_t b[292] = {0};
    float d = 0.125f;
    memcpy(b, &d, 4);
    b[4 + 255] = (uint8_t)(int8_t)-1;
    b[4 + 7] = 40;
    float y[256];
    deq(QT_Q8_K, b, y);
    ck_assert(y[255] == -0.125f && y[7] == 5.0f && y[0] == 0.0f);
}
END_TEST

START_TEST(known_q2_k)
{
    uint8_t b[84] = {0};
    put16(b + 80, H_1);  /* d */
    put16(b + 82, H_1);  /* dmin */
    b[5] = 0x23;         /* group 5: scale 3, min 2 */
    b[12] = 0x01;        /* group 12: scale 1, min 0 */
    /* value 80 (group 5): first half, shift 2*2, byte 16 */
    b[16 + 16] = 0x30;
    /* value 192 (group 12): second half, shift 4, byte 32+0 */
    b[16 + 32] = 0x20;
    float y[256];
    deq(QT_Q2_K, b, y);
    ck_assert(y[80] == 7.0f);  /* 3*3 - 2 */
    ck_assert(y[81] == -2.0f); /* 3*0 - 2 */
    ck_assert(y[95] == -2.0f);
    ck_assert(y[192] == 2.0f);
    ck_assert(y[128] == 0.0f); /* same byte, bits 0-1, group 8 scale 0 */
    ck_assert(y[96] == 0.0f);
}
END_TEST

START_TEST(known_q3_k)
{
    uint8_t b[110] = {0};
    uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    put16(b + 108, H_1);
    /* every scale defaults to stored 0 = -32; group 0: stored 37 = +5
     * (low nibble 5 in byte 0, top bits 2 in byte 8 bits 0-1) */
    sc[0] = 5;
    sc[8] = 2;
    /* group 13: stored 29 = -3 (low nibble 13 in byte 5's high nibble,
     * top bits 1 in byte 8 + 13%4 = 9, bits 2*(13/4) = 6..7) */
    sc[5] = 13 << 4;
    sc[9] = 1 << 6;
    qs[0] = 0x03;  /* value 0: q=3 */
    hm[0] = 0x01;  /* ... with its high bit set: no -4 */
    qs[48] = 0x10; /* value 208: half 1, shift 4, byte 32+16: q=1 */
    float y[256];
    deq(QT_Q3_K, b, y);
    ck_assert(y[0] == 15.0f);   /* 5 * 3 */
    ck_assert(y[1] == -20.0f);  /* 5 * (0-4) */
    ck_assert(y[208] == 9.0f);  /* -3 * (1-4) */
    ck_assert(y[209] == 12.0f); /* -3 * (0-4) */
    ck_assert(y[16] == 128.0f); /* group 1: -32 * (0-4) */
    /* the high-mask bit of value 32*j+l in half h is bit 4h+j of hm[l] */
    hm[5] = 1 << 5; /* value 128+32+5 = 165 (group 10, scale -32) */
    deq(QT_Q3_K, b, y);
    ck_assert(y[165] == 0.0f);
    ck_assert(y[37] == 128.0f);
}
END_TEST

START_TEST(known_q4_k)
{
    uint8_t b[144] = {0};
    uint8_t *s = b + 4, *qs = b + 16;
    put16(b, H_1);
    put16(b + 2, H_HALF);
    s[1] = 7; /* group 1: scale 7 */
    s[5] = 4; /* group 1: min 4 */
    /* group 6: scale 43 = 0b10'1011, min 21 = 0b01'0101 */
    s[10] = 11 | 5 << 4; /* low nibbles in byte 6+4 */
    s[2] |= 2 << 6;      /* scale top bits in byte 6-4 */
    s[6] |= 1 << 6;      /* min top bits in byte 6 */
    qs[0] = 0x90;  /* value 32 (group 1, high nibble of byte 0) = 9 */
    qs[96] = 0x0f; /* value 192 (group 6, low nibble of byte 96) = 15 */
    float y[256];
    deq(QT_Q4_K, b, y);
    ck_assert(y[0] == 0.0f);
    ck_assert(y[32] == 61.0f);    /* 7*9 - 0.5*4 */
    ck_assert(y[33] == -2.0f);
    ck_assert(y[192] == 634.5f);  /* 43*15 - 0.5*21 */
    ck_assert(y[193] == -10.5f);
    ck_assert(y[224] == 0.0f);    /* group 7 */
}
END_TEST

START_TEST(known_q5_k)
{
    uint8_t b[176] = {0};
    uint8_t *s = b + 4, *qh = b + 16, *qs = b + 48;
    put16(b, H_1);
    put16(b + 2, H_HALF);
    s[1] = 7;
    s[5] = 4;
    s[10] = 11 | 5 << 4;
    s[2] |= 2 << 6;
    s[6] |= 1 << 6;
    qs[0] = 0x90;
    qs[96] = 0x0f;
    qh[0] = 1 << 6; /* fifth bit of value 0 of group 6 (value 192) */
    qh[1] = 1 << 1; /* fifth bit of value 1 of group 1 (value 33) */
    float y[256];
    deq(QT_Q5_K, b, y);
    ck_assert(y[32] == 61.0f);     /* 7*9 - 2 */
    ck_assert(y[33] == 110.0f);    /* 7*16 - 2 */
    ck_assert(y[192] == 1322.5f);  /* 43*31 - 10.5 */
    ck_assert(y[193] == -10.5f);
}
END_TEST

START_TEST(known_q6_k)
{
    uint8_t b[210] = {0};
    uint8_t *ql = b, *qh = b + 128;
    int8_t *sc = (int8_t *)(b + 192);
    put16(b + 208, H_HALF);
    sc[0] = 2;
    sc[4] = 1;
    sc[6] = 4;
    sc[9] = -3;
    /* value 0: low nibble of ql[0], bits 0-1 of qh[0] */
    ql[0] = 0x0a;
    qh[0] = 0x02;
    /* value 69 (half 0, j=2, l=5): high nibble of ql[5], bits 4-5 qh[5] */
    ql[5] = 0x30;
    qh[5] = 0x30;
    /* value 101 (j=3, l=5): high nibble of ql[37], bits 6-7 of qh[5] */
    qh[5] |= 0x40;
    /* value 144 (half 1, j=0, l=16): low nibble ql[64+16], qh[32+16] */
    ql[80] = 0x01;
    float y[256];
    deq(QT_Q6_K, b, y);
    ck_assert(y[0] == 10.0f);   /* 0.5*2*(42-32) */
    ck_assert(y[69] == 9.5f);   /* 0.5*1*(51-32) */
    ck_assert(y[101] == -32.0f); /* 0.5*4*(16-32) */
    ck_assert(y[144] == 46.5f); /* 0.5*-3*(1-32) */
    ck_assert(y[37] == 0.0f);   /* group 2, scale 0 */
    ck_assert(y[1] == -32.0f);  /* 0.5*2*(0-32) */
}
END_TEST

/* ------------------------------------------------------------ round trips */

/* Relative RMS error bounds for Gaussian data (measured values are about
 * half of these: Q8 0.005, Q6_K 0.017, Q5 0.04, Q4 0.08, Q3_K 0.14,
 * Q2_K 0.27, F16 2e-4, BF16 2e-3). */
static double bound_of(uint32_t type)
{
    switch (type) {
    case QT_F32: return 0;
    case QT_F16: return 5e-4;
    case QT_BF16: return 4e-3;
    case QT_Q8_0: case QT_Q8_1: case QT_Q8_K: return 0.01;
    case QT_Q6_K: return 0.03;
    case QT_Q5_0: case QT_Q5_1: case QT_Q5_K: return 0.06;
    case QT_Q4_0: case QT_Q4_1: case QT_Q4_K: return 0.11;
    case QT_Q3_K: return 0.2;
    case QT_Q2_K: return 0.35;
    default: return 0;
    }
}

START_TEST(roundtrip_error_bounds)
{
    /* one block, then odd numbers of blocks */
    static const int nblocks[] = {1, 3, 7, 33};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        uint32_t bs = qt_traits_of(type)->block_size;
        if (bs == 1)
            bs = 32;
        for (size_t k = 0; k < 4; k++) {
            int64_t n = (int64_t)bs * nblocks[k];
            float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
            uint8_t *q = malloc(row_bytes(type, n));
            rng_seed(100 + k + 17 * ti);
            fill_gauss(x, n, 0.02f + (float)k);
            ck_assert_int_eq(qt_quantize_row(type, x, q, n), 0);
            ck_assert_int_eq(qt_dequantize_row(type, q, y, n), 0);
            double e = rel_rms(x, y, n);
            ck_assert_msg(e <= bound_of(type), "%s n=%lld: rel rms %g > %g",
                          qt_name(type), (long long)n, e, bound_of(type));
            free(x);
            free(y);
            free(q);
        }
    }
}
END_TEST

/* Zeros, constants, one outlier, all-positive and all-negative blocks:
 * output stays finite and zeros stay exactly zero. */
START_TEST(quantize_special_inputs)
{
    enum { N = 512 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        memset(x, 0, sizeof x);
        ck_assert_int_eq(qt_quantize_row(type, x, q, N), 0);
        ck_assert_int_eq(qt_dequantize_row(type, q, y, N), 0);
        for (int i = 0; i < N; i++)
            CHECK(y[i] == 0.0f, "%s zero -> %g", qt_name(type), y[i]);

        for (int i = 0; i < N; i++)
            x[i] = 3.0f;
        qt_quantize_row(type, x, q, N);
        qt_dequantize_row(type, q, y, N);
        ck_assert_msg(rel_rms(x, y, N) < 0.05, "%s constant: %g",
                      qt_name(type), rel_rms(x, y, N));

        for (int i = 0; i < N; i++)
            x[i] = -1.0f - (float)(i % 7) * 0.1f;
        qt_quantize_row(type, x, q, N);
        qt_dequantize_row(type, q, y, N);
        ck_assert_msg(rel_rms(x, y, N) < 2 * bound_of(type) + 0.02,
                      "%s negative: %g", qt_name(type), rel_rms(x, y, N));

        rng_seed(9);
        fill_gauss(x, N, 0.01f);
        x[77] = 1000.0f;
        qt_quantize_row(type, x, q, N);
        qt_dequantize_row(type, q, y, N);
        for (int i = 0; i < N; i++)
            CHECK(isfinite(y[i]), "%s: non-finite", qt_name(type));
        ck_assert_msg(fabsf(y[77] - 1000.0f) < 1000.0f * 0.15f,
                      "%s outlier -> %g", qt_name(type), y[77]);
    }
}
END_TEST

/* Exactly representable inputs come back exactly. */
START_TEST(quantize_exact_grid)
{
    float x[32], y[32];
    uint8_t q[64];
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i * 8 - 127); /* amax 127: d = 1 exactly */
    ck_assert_int_eq(qt_quantize_row(QT_Q8_0, x, q, 32), 0);
    qt_dequantize_row(QT_Q8_0, q, y, 32);
    for (int i = 0; i < 32; i++)
        CHECK(y[i] == x[i], "%d: %g != %g", i, y[i], x[i]);
    for (int i = 0; i < 32; i++)
        x[i] = (float)((i * 5) % 16 - 8); /* integers -8..7 */
    qt_quantize_row(QT_Q4_0, x, q, 32);
    qt_dequantize_row(QT_Q4_0, q, y, 32);
    for (int i = 0; i < 32; i++)
        CHECK(y[i] == x[i], "%d: %g != %g", i, y[i], x[i]);
    for (int i = 0; i < 32; i++)
        x[i] = (float)((i * 7) % 32) + 2.0f; /* 2..33 */
    qt_quantize_row(QT_Q5_1, x, q, 32);
    qt_dequantize_row(QT_Q5_1, q, y, 32);
    for (int i = 0; i < 32; i++)
        CHECK(y[i] == x[i], "%d: %g != %g", i, y[i], x[i]);
}
END_TEST

/* ------------------------------------------------------------ dots */

START_TEST(dot_ref_equals_dequantize_dot)
{
    enum { N = 1536 };
    static float w[N], x[N], y[N];
    static uint8_t q[N * 4];
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        rng_seed(7 + ti);
        fill_gauss(w, N, 0.05f);
        fill_gauss(x, N, 1.0f);
        qt_quantize_row(type, w, q, N);
        qt_dequantize_row(type, q, y, N);
        double want = 0, mag = 0;
        for (int i = 0; i < N; i++) {
            want += (double)y[i] * x[i];
            mag += fabs((double)y[i] * x[i]);
        }
        float got = qt_dot_ref(type, q, x, N);
        ck_assert_msg(fabs(got - want) <= 1e-6 * mag, "%s: %g vs %g",
                      qt_name(type), got, want);
    }
}
END_TEST

static const uint32_t weight_types[] = {
    QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
    QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K,
};

/* The integer dot equals the F32 dot of the dequantized weights with the
 * dequantized activations (same numbers, other summation order), and is
 * close to the dot with the unquantized activations. */
START_TEST(dot_q_matches_reference)
{
    enum { N = 2048 };
    static float w[N], x[N], xd[N];
    static uint8_t wq[N * 4], xq[N * 4];
    for (size_t ti = 0; ti < sizeof weight_types / sizeof weight_types[0];
         ti++) {
        uint32_t type = weight_types[ti];
        uint32_t at = qt_act_type(type);
        for (int rep = 0; rep < 5; rep++) {
            rng_seed(1000 + 10 * ti + (uint64_t)rep);
            fill_gauss(w, N, 0.04f);
            fill_gauss(x, N, 1.0f + (float)rep);
            if (rep == 4)
                for (int i = 0; i < N; i++)
                    x[i] = fabsf(x[i]); /* all-positive: mins matter */
            ck_assert_int_eq(qt_quantize_row(type, w, wq, N), 0);
            ck_assert_int_eq(qt_quantize_act(type, x, xq, N), 0);
            ck_assert_int_eq(qt_dequantize_row(at, xq, xd, N), 0);
            float got = qt_dot_q(type, wq, xq, N);
            float same = qt_dot_ref(type, wq, xd, N);
            float exact = qt_dot_ref(type, wq, x, N);
            double wn = 0, xn = 0;
            for (int i = 0; i < N; i++) {
                wn += (double)w[i] * w[i];
                xn += (double)x[i] * x[i];
            }
            double scale = sqrt(wn * xn);
            /* Q8_1's s = d*sum(q) is stored as f16: its rounding shows */
            double tol = at == QT_Q8_1 ? 2e-4 : 2e-5;
            ck_assert_msg(fabs(got - same) <= tol * scale,
                          "%s: dot_q %g vs dequantized %g", qt_name(type), got,
                          same);
            ck_assert_msg(fabs(got - exact) <= 0.01 * scale,
                          "%s: dot_q %g vs exact activations %g",
                          qt_name(type), got, exact);
        }
    }
    ck_assert_uint_eq(qt_act_type(QT_Q4_0), QT_Q8_0);
    ck_assert_uint_eq(qt_act_type(QT_Q5_1), QT_Q8_1);
    ck_assert_uint_eq(qt_act_type(QT_Q6_K), QT_Q8_K);
    ck_assert_uint_eq(qt_act_type(QT_BF16), QT_F32);
}
END_TEST

/* The block sums of Q8_K and the s field of Q8_1 hold what they claim. */
START_TEST(act_block_sums)
{
    enum { N = 512 };
    static float x[N];
    static uint8_t q[N * 2];
    rng_seed(3);
    fill_gauss(x, N, 2.0f);
    qt_quantize_row(QT_Q8_K, x, q, N);
    for (int b = 0; b < N / 256; b++) {
        const uint8_t *blk = q + 292 * b;
        for (int k = 0; k < 16; k++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += (int8_t)blk[4 + 16 * k + l];
            int16_t bs;
            memcpy(&bs, blk + 260 + 2 * k, 2);
            CHECK(bs == sum, "bsum %d: %d != %d", k, bs, sum);
        }
    }
    qt_quantize_row(QT_Q8_1, x, q, N);
    for (int b = 0; b < N / 32; b++) {
        const uint8_t *blk = q + 36 * b;
        int sum = 0;
        for (int l = 0; l < 32; l++)
            sum += (int8_t)blk[4 + l];
        float d = qt_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
        float s = qt_f16_to_f32((uint16_t)(blk[2] | blk[3] << 8));
        CHECK(fabsf(s - d * (float)sum) <= 1e-3f * fabsf(d * (float)sum) + 1e-6f,
              "block %d: s %g, d*sum %g", b, s, d * (float)sum);
    }
}
END_TEST

/* Activations for Q4_0/Q5_0/Q8_0 (Q8_0 blocks) and Q4_1/Q5_1 (Q8_1) are
 * scaled by 127/amax, as ggml's x86 quantize_row_q8_0/_q8_1 do; weights
 * by 1/(amax/127), as its reference quantizer does. The two differ in
 * the last bit for some amax, enough to move a value across a rounding
 * boundary now and then. */
START_TEST(act_q8_scale_is_127_over_amax)
{
    const uint32_t wtypes[] = {QT_Q8_0, QT_Q4_1};
    for (int k = 0; k < 2; k++) {
        uint32_t at = qt_act_type(wtypes[k]);
        size_t off = at == QT_Q8_0 ? 2 : 4;
        uint8_t qa[36], qw[36];
        float x[32];
        int differ = 0, b = 0;
        rng_seed(11);
        /* blocks until one rounds differently (a few hundred thousand at
         * most for this seed), at least 4096 */
        for (; b < 1000000 && (differ == 0 || b < 4096); b++) {
            fill_gauss(x, 32, 1.5f);
            ck_assert_int_eq(qt_quantize_act(wtypes[k], x, qa, 32), 0);
            ck_assert_int_eq(qt_quantize_row(at, x, qw, 32), 0);
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(x[j]));
            float id = 127.0f / amax;
            for (int j = 0; j < 32; j++) {
                int want = (int)lrintf(x[j] * id);
                int got = (int8_t)qa[off + (size_t)j];
                CHECK(got == want, "%s block %d [%d]: %d, want %d",
                      qt_name(at), b, j, got, want);
                differ += got != (int8_t)qw[off + (size_t)j];
            }
        }
        /* not a vacuous distinction: some values do round differently */
        CHECK(differ > 0, "%s: activation and weight quantization agree "
              "on %d blocks", qt_name(at), b);
    }
}
END_TEST

/* ------------------------------------------------------------ real data */

static gguf_file *open_model(const char *dir, const char *name)
{
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f, err, sizeof err) == 0, "%s", err);
    return f;
}

/* The whole tensor as F32 (malloc'ed). */
static float *tensor_f32(const gguf_tensor *t, int64_t *n_out)
{
    int64_t n = (int64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    float *y = malloc((size_t)n * 4);
    ck_assert_ptr_nonnull(y);
    size_t rb = row_bytes(t->type, (int64_t)t->ne[0]);
    int64_t rows = n / (int64_t)t->ne[0];
    for (int64_t r = 0; r < rows; r++)
        CHECK(qt_dequantize_row(t->type, (const uint8_t *)t->data + r * rb,
                                y + r * (int64_t)t->ne[0],
                                (int64_t)t->ne[0]) == 0,
              "dequantize row %lld", (long long)r);
    *n_out = n;
    return y;
}

/* Dequantized llama.cpp Q8_0/Q4_0 tensors are close to the F32 originals,
 * and our own quantizer reproduces llama.cpp's bytes for Q8_0 (and nearly
 * for Q4_0: the two differ only where x*id falls exactly on .5). */
static void cross_check(const char *qfile, uint32_t qtype, double bound,
                        double min_same)
{
    SKIP_WITHOUT_DATA(dir);
    gguf_file *ff = open_model(dir, "stories260K.gguf");
    gguf_file *fq = open_model(dir, qfile);
    static const char *names[] = {"blk.0.attn_q.weight", "blk.3.ffn_up.weight",
                                  "blk.4.attn_k.weight"};
    for (int k = 0; k < 3; k++) {
        const gguf_tensor *tf = gguf_find_tensor(ff, names[k]);
        const gguf_tensor *tq = gguf_find_tensor(fq, names[k]);
        ck_assert(tf && tq);
        ck_assert_uint_eq(tf->type, QT_F32);
        ck_assert_uint_eq(tq->type, qtype);
        ck_assert(tf->ne[0] == tq->ne[0] && tf->ne[1] == tq->ne[1]);
        int64_t n, n2;
        float *x = tensor_f32(tf, &n);
        float *y = tensor_f32(tq, &n2);
        ck_assert_int_eq(n, n2);
        double e = rel_rms(x, y, n);
        ck_assert_msg(e < bound, "%s %s: rel rms %g", qfile, names[k], e);
        /* re-quantize the F32 tensor ourselves and compare bytes */
        uint8_t *mine = malloc(tq->nbytes);
        ck_assert_int_eq(qt_quantize_row(qtype, x, mine, n), 0);
        uint64_t same = 0;
        for (uint64_t i = 0; i < tq->nbytes; i++)
            same += mine[i] == ((const uint8_t *)tq->data)[i];
        ck_assert_msg((double)same >= min_same * (double)tq->nbytes,
                      "%s %s: only %llu of %llu bytes equal", qfile, names[k],
                      (unsigned long long)same,
                      (unsigned long long)tq->nbytes);
        free(mine);
        free(x);
        free(y);
    }
    gguf_close(ff);
    gguf_close(fq);
}

START_TEST(real_q8_0_matches_f32)
{
    cross_check("stories260K-Q8_0.gguf", QT_Q8_0, 0.01, 0.99);
}
END_TEST

START_TEST(real_q4_0_matches_f32)
{
    cross_check("stories260K-Q4_0.gguf", QT_Q4_0, 0.12, 0.95);
}
END_TEST

/* F16 ffn_down of the quantized files equals the F32 original rounded. */
START_TEST(real_f16_matches_f32)
{
    SKIP_WITHOUT_DATA(dir);
    gguf_file *ff = open_model(dir, "stories260K.gguf");
    gguf_file *fq = open_model(dir, "stories260K-Q8_0.gguf");
    const gguf_tensor *tf = gguf_find_tensor(ff, "blk.2.ffn_down.weight");
    const gguf_tensor *tq = gguf_find_tensor(fq, "blk.2.ffn_down.weight");
    ck_assert(tf && tq && tq->type == QT_F16);
    int64_t n, n2;
    float *x = tensor_f32(tf, &n);
    float *y = tensor_f32(tq, &n2);
    ck_assert_int_eq(n, n2);
    for (int64_t i = 0; i < n; i++)
        CHECK(y[i] == qt_f16_to_f32(qt_f32_to_f16(x[i])), "value %lld",
              (long long)i);
    free(x);
    free(y);
    gguf_close(ff);
    gguf_close(fq);
}
END_TEST

/* K-quant tensors of a llama.cpp Q4_K_M file: finite values, an RMS
 * comparable across tensors, and our quantizer re-encodes them closely
 * (they already lie on a Q4_K/Q6_K grid). Integer dots agree with the
 * reference on real rows. */
START_TEST(real_k_quants_sane)
{
    SKIP_WITHOUT_DATA(dir);
    gguf_file *f = open_model(dir, "synth-llama-56m-Q4_K_M.gguf");
    int seen[QT_TYPE_MAX] = {0};
    double rms_min = INFINITY, rms_max = 0;
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (t->type != QT_Q4_K && t->type != QT_Q6_K)
            continue;
        seen[t->type]++;
        int64_t n;
        float *y = tensor_f32(t, &n);
        double ss = 0;
        for (int64_t j = 0; j < n; j++) {
            CHECK(isfinite(y[j]), "non-finite value %lld", (long long)j);
            ss += (double)y[j] * y[j];
        }
        double rms = sqrt(ss / (double)n);
        rms_min = fmin(rms_min, rms);
        rms_max = fmax(rms_max, rms);

        /* re-quantize the first rows with our quantizer */
        int64_t ne0 = (int64_t)t->ne[0];
        int64_t rows = n / ne0 < 4 ? n / ne0 : 4;
        uint8_t *q = malloc(row_bytes(t->type, ne0 * rows));
        float *z = malloc((size_t)(ne0 * rows) * 4);
        qt_quantize_row(t->type, y, q, ne0 * rows);
        qt_dequantize_row(t->type, q, z, ne0 * rows);
        double e = rel_rms(y, z, ne0 * rows);
        ck_assert_msg(e < (t->type == QT_Q4_K ? 0.08 : 0.02),
                      "requantize %.*s: %g", (int)t->name.len, t->name.ptr, e);

        /* integer dot of row 0 with a random vector */
        float *x = malloc((size_t)ne0 * 4);
        uint8_t *xq = malloc(row_bytes(QT_Q8_K, ne0));
        rng_seed(i);
        fill_gauss(x, ne0, 1.0f);
        qt_quantize_act(t->type, x, xq, ne0);
        float got = qt_dot_q(t->type, t->data, xq, ne0);
        float want = qt_dot_ref(t->type, t->data, x, ne0);
        double wn = 0, xn = 0;
        for (int64_t j = 0; j < ne0; j++) {
            wn += (double)y[j] * y[j];
            xn += (double)x[j] * x[j];
        }
        ck_assert_msg(fabs(got - want) <= 0.01 * sqrt(wn * xn),
                      "dot %.*s: %g vs %g", (int)t->name.len, t->name.ptr,
                      got, want);
        free(x);
        free(xq);
        free(q);
        free(z);
        free(y);
    }
    ck_assert_int_gt(seen[QT_Q4_K], 10);
    ck_assert_int_gt(seen[QT_Q6_K], 5);
    /* seeded weights of rms ~0.04 (output ~0.1): nothing off by a scale */
    ck_assert_msg(rms_min > 0.02 && rms_max < 0.2, "rms %g .. %g", rms_min,
                  rms_max);
    ck_assert_msg(rms_max / rms_min < 4, "rms %g .. %g", rms_min, rms_max);
    gguf_close(f);
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("traits");
    tcase_add_test(tc, traits_match_ggml);
    tcase_add_test(tc, row_size_checks);
    tcase_add_test(tc, convert_rejects_bad_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("halves");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, f16_edge_cases);
    tcase_add_test(tc, f16_all_values_roundtrip);
    tcase_add_test(tc, f16_matches_compiler);
    tcase_add_test(tc, bf16_edge_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("known_blocks");
    tcase_add_test(tc, known_f16_bf16_f32);
    tcase_add_test(tc, known_q4_0);
    tcase_add_test(tc, known_q4_1);
    tcase_add_test(tc, known_q5_0);
    tcase_add_test(tc, known_q5_1);
    tcase_add_test(tc, known_q8_0_q8_1);
    tcase_add_test(tc, known_q8_k);
    tcase_add_test(tc, known_q2_k);
    tcase_add_test(tc, known_q3_k);
    tcase_add_test(tc, known_q4_k);
    tcase_add_test(tc, known_q5_k);
    tcase_add_test(tc, known_q6_k);
    suite_add_tcase(s, tc);

    tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, roundtrip_error_bounds);
    tcase_add_test(tc, quantize_special_inputs);
    tcase_add_test(tc, quantize_exact_grid);
    tcase_add_test(tc, dot_ref_equals_dequantize_dot);
    tcase_add_test(tc, dot_q_matches_reference);
    tcase_add_test(tc, act_block_sums);
    tcase_add_test(tc, act_q8_scale_is_127_over_amax);
    suite_add_tcase(s, tc);

    tc = tcase_create("real");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, real_q8_0_matches_f32);
    tcase_add_test(tc, real_q4_0_matches_f32);
    tcase_add_test(tc, real_f16_matches_f32);
    tcase_add_test(tc, real_k_quants_sane);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(quant_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
