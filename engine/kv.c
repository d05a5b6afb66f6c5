/* kv.c - per-sequence key/value cache (see kv.h). */
#include "kv.h"
#include "kernels.h"
#include "vecmath.h"

#include <limits.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


struct kv_cache {
    int n_layer, kv_dim, n_ctx, type, len;
    size_t elt;    /* bytes per value: 2 or 4 */
    void *k, *v;   /* [n_layer][n_ctx][kv_dim] each */
};

/* binary16 -> binary32 without a table: shifting the 15 magnitude bits
 * into a float's exponent/mantissa and scaling by 2^112 rebiases the
 * exponent and turns half subnormals into the right float values.
 * Only infinities and NaNs need their own path. */
static inline float kv_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    uint32_t bits;
    float f;
    if (em >= 0x7c00u) {
        bits = sign | 0x7f800000u | ((em & 0x3ffu) << 13);
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    bits = em << 13;
    memcpy(&f, &bits, sizeof f);
    f *= 0x1p112f;
    return sign ? -f : f;
}

/* binary32 -> binary16, round to nearest even (the hot-loop twin of
 * qt_f32_to_f16, inlined because attention calls it per value). */
static inline uint16_t kv_f2h(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf, nan (kept quiet) */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below 2^-14: a half subnormal (or zero) */
        float a;
        memcpy(&a, &ax, sizeof a);
        /* value = m * 2^-24; adding and removing 2^23 rounds m to even */
        float m = (a * 0x1p24f + 0x1p23f) - 0x1p23f;
        return (uint16_t)(sign | (uint16_t)m);
    }
    /* rebias the exponent (127 -> 15) and round the 13 dropped bits */
    ax += 0xc8000fffu + ((ax >> 13) & 1u);
    return (uint16_t)(sign | (ax >> 13));
}

/* Upper bounds that keep every index product far from overflow. */
#define KV_MAX_LAYERS 4096
#define KV_MAX_DIM (1 << 20)
#define KV_MAX_CTX (1 << 24)

int kv_new(int n_layer, int kv_dim, int n_ctx, int type, kv_cache **out,
           char *err, size_t errlen)
{
    *out = NULL;
    if (n_layer <= 0 || n_layer > KV_MAX_LAYERS || kv_dim <= 0 ||
        kv_dim > KV_MAX_DIM || n_ctx <= 0 || n_ctx > KV_MAX_CTX) {
        snprintf(err, errlen,
                 "kv cache: size out of range (layers %d, dim %d, ctx %d)",
                 n_layer, kv_dim, n_ctx);
        return -1;
    }
    if (type != KV_F16 && type != KV_F32) {
        snprintf(err, errlen, "kv cache: unknown type %d", type);
        return -1;
    }
    size_t elt = type == KV_F16 ? 2 : 4;
    size_t per_layer = (size_t)n_ctx * (size_t)kv_dim;
    if (per_layer > SIZE_MAX / elt / (size_t)n_layer) {
        snprintf(err, errlen, "kv cache: size overflows");
        return -1;
    }
    size_t bytes = per_layer * elt * (size_t)n_layer;
    kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv)
        goto oom;
    kv->k = malloc(bytes);
    kv->v = malloc(bytes);
    if (!kv->k || !kv->v)
        goto oom;
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;
    kv->n_ctx = n_ctx;
    kv->type = type;
    kv->elt = elt;
    kv->len = 0;
    *out = kv;
    return 0;
oom:
    kv_free(kv);
    snprintf(err, errlen, "kv cache: out of memory (%zu bytes for %d positions)",
             2 * bytes, n_ctx);
    return -1;
}

void kv_free(kv_cache *kv)
{
    if (!kv)
        return;
    free(kv->k);
    free(kv->v);
    free(kv);
}

int kv_n_ctx(const kv_cache *kv) { return kv->n_ctx; }
int kv_n_layer(const kv_cache *kv) { return kv->n_layer; }
int kv_dim(const kv_cache *kv) { return kv->kv_dim; }
int kv_type(const kv_cache *kv) { return kv->type; }
int kv_len(const kv_cache *kv) { return kv->len; }

size_t kv_bytes(const kv_cache *kv)
{
    return 2 * (size_t)kv->n_layer * (size_t)kv->n_ctx * (size_t)kv->kv_dim *
           kv->elt;
}

void kv_clear(kv_cache *kv) { kv->len = 0; }

int kv_truncate(kv_cache *kv, int n)
{
    if (n < 0 || n > kv->len)
        return -1;
    kv->len = n;
    return 0;
}

void kv_set_len(kv_cache *kv, int len)
{
    if (len >= 0 && len <= kv->n_ctx)
        kv->len = len;
}

static size_t kv_index(const kv_cache *kv, int layer, int pos)
{
    return ((size_t)layer * (size_t)kv->n_ctx + (size_t)pos) *
           (size_t)kv->kv_dim;
}

void kv_store(kv_cache *kv, int layer, int pos, const float *k,
              const float *v)
{
    size_t at = kv_index(kv, layer, pos);
    if (kv->type == KV_F32) {
        memcpy((float *)kv->k + at, k, (size_t)kv->kv_dim * sizeof(float));
        memcpy((float *)kv->v + at, v, (size_t)kv->kv_dim * sizeof(float));
    } else {
        uint16_t *kd = (uint16_t *)kv->k + at, *vd = (uint16_t *)kv->v + at;
        for (int i = 0; i < kv->kv_dim; i++) {
            kd[i] = kv_f2h(k[i]);
            vd[i] = kv_f2h(v[i]);
        }
    }
}

/* One online-softmax pass over positions [0, n_pos) of the head whose
 * keys and values start at element `base`: the value sum before division
 * (kept in F16 with an F16 cache) goes to acc, the running maximum and
 * sum of exponentials to m_s[0] and m_s[1]. */
static void attend_part(const kv_cache *kv, size_t base, int hd,
                        const float *q, int n_pos, float scale, float *acc,
                        float m_s[2])
{
    size_t stride = (size_t)kv->kv_dim;
    float M = -INFINITY, S = 0.0f;
    if (kv->type == KV_F32) {
        for (int i = 0; i < hd; i++)
            acc[i] = 0.0f;
        for (int p = 0; p < n_pos; p++) {
            const float *k = (const float *)kv->k + base + (size_t)p * stride;
            const float *v = (const float *)kv->v + base + (size_t)p * stride;
            float a4[4] = {0, 0, 0, 0};
            int i = 0;
            for (; i + 4 <= hd; i += 4)
                for (int l = 0; l < 4; l++)
                    a4[l] += q[i + l] * k[i + l];
            for (; i < hd; i++)
                a4[0] += q[i] * k[i];
            float s = ((a4[0] + a4[1]) + (a4[2] + a4[3])) * scale;
            float ms = 1.0f, vs = 1.0f;
            if (s > M) {
                ms = expf(M - s);
                M = s;
                for (i = 0; i < hd; i++)
                    acc[i] *= ms;
            } else {
                vs = expf(s - M);
            }
            for (i = 0; i < hd; i++)
                acc[i] += v[i] * vs;
            S = S * ms + vs;
        }
        m_s[0] = M;
        m_s[1] = S;
        return;
    }
    const kern_table *kt = kern_get();
    if (kt->attend_f16 && hd <= KERN_MAX_HEAD_DIM) {
        kt->attend_f16((const uint16_t *)kv->k + base,
                       (const uint16_t *)kv->v + base, stride, hd, q, n_pos,
                       scale, acc, m_s);
        return;
    }
    /* ggml's F16 flash attention (vecmath.h): q rounded to F16, each
     * score vm_dot_f16's sum, the value sum kept in F16 and rounded after
     * every fused multiply-add */
    float qh[KV_MAX_HEAD_DIM];
    uint16_t acc16[KV_MAX_HEAD_DIM];
    for (int i = 0; i < hd; i++) {
        qh[i] = kv_h2f(kv_f2h(q[i]));
        acc16[i] = 0;
    }
    for (int p = 0; p < n_pos; p++) {
        const uint16_t *k = (const uint16_t *)kv->k + base + (size_t)p * stride;
        const uint16_t *v = (const uint16_t *)kv->v + base + (size_t)p * stride;
        float s = vm_dot_f16(hd, k, qh) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            ms = expf(M - s);
            M = s;
            for (int i = 0; i < hd; i++)
                acc16[i] = kv_f2h(kv_h2f(acc16[i]) * ms);
        } else {
            vs = expf(s - M);
        }
        for (int i = 0; i < hd; i++)
            acc16[i] = kv_f2h(fmaf(kv_h2f(v[i]), vs, kv_h2f(acc16[i])));
        S = fmaf(S, ms, vs); /* fused: GCC contracts ggml's S*ms + vs */
    }
    for (int i = 0; i < hd; i++)
        acc[i] = kv_h2f(acc16[i]);
    m_s[0] = M;
    m_s[1] = S;
}

void kv_attend_heads(const kv_cache *kv, int layer, int off, int hd, int n_heads,
                     const float *q, int n_pos, float scale, float *out)
{
    const kern_table *kt = kern_get();
    if (kv->type != KV_F16 || !kt->attend_f16_group || n_heads > KV_GROUP_HEADS ||
        hd > KERN_MAX_HEAD_DIM) {
        for (int g = 0; g < n_heads; g++)
            kv_attend(kv, layer, off, hd, q + (size_t)g * (size_t)hd, n_pos, false, scale,
                      out + (size_t)g * (size_t)hd);
        return;
    }
    size_t base = kv_index(kv, layer, 0) + (size_t)off;
    _Static_assert(KV_GROUP_HEADS <= KERN_MAX_GROUP, "the grouped kernel takes them all");
    float m_s[2 * KV_GROUP_HEADS];
    kt->attend_f16_group((const uint16_t *)kv->k + base, (const uint16_t *)kv->v + base,
                         (size_t)kv->kv_dim, hd, n_heads, q, (size_t)hd, n_pos, scale,
                         out, (size_t)hd, m_s);
    for (int g = 0; g < n_heads; g++) {
        float inv = m_s[2 * g + 1] > 0.0f ? 1.0f / m_s[2 * g + 1] : 0.0f;
        for (int i = 0; i < hd; i++)
            out[(size_t)g * (size_t)hd + (size_t)i] *= inv;
    }
}

int kv_split_len(int n_pos)
{
    int n_kv = (n_pos + KV_PAD - 1) / KV_PAD * KV_PAD;
    if (n_kv < KV_SPLIT_MIN)
        return 0;
    return (n_kv + KV_SPLIT_PARTS - 1) / KV_SPLIT_PARTS;
}

void kv_attend(const kv_cache *kv, int layer, int off, int hd, const float *q,
               int n_pos, bool lone, float scale, float *out)
{
    size_t base = kv_index(kv, layer, 0) + (size_t)off;
    int part = lone ? kv_split_len(n_pos) : 0;
    float m_s[2];
    if (part == 0 || part >= n_pos) {
        attend_part(kv, base, hd, q, n_pos, scale, out, m_s);
    } else {
        /* parts in order, each merged into the total in F32 after
         * rescaling both to the larger maximum, as ggml reduces its
         * threads' partial sums: total * scale first, the part's product
         * added to it with one rounding (GCC fuses it there) */
        float acc[KV_MAX_HEAD_DIM], ps[2];
        float M = -INFINITY, S = 0.0f;
        for (int i = 0; i < hd; i++)
            out[i] = 0.0f;
        for (int p0 = 0; p0 < n_pos; p0 += part) {
            int np = n_pos - p0 < part ? n_pos - p0 : part;
            attend_part(kv, base + (size_t)p0 * (size_t)kv->kv_dim, hd, q, np,
                        scale, acc, ps);
            if (ps[1] == 0.0f)
                continue;
            float Mn = fmaxf(M, ps[0]);
            float so = expf(M - Mn), sn = expf(ps[0] - Mn);
            for (int i = 0; i < hd; i++)
                out[i] = fmaf(out[i], so, acc[i] * sn);
            S = fmaf(S, so, ps[1] * sn);
            M = Mn;
        }
        m_s[1] = S;
    }
    float inv = m_s[1] > 0.0f ? 1.0f / m_s[1] : 0.0f;
    for (int i = 0; i < hd; i++)
        out[i] *= inv;
}
