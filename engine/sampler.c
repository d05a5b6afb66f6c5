/* sampler.c - logits to token (see sampler.h for the order of operations). */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Window used when penalty_last_n < 0. */
#define SAMPLER_WINDOW_MAX 8192

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct sampler {
    sampler_params p;
    sampler_bias *bias;
    int32_t n_vocab;
    /* penalty window: ring of the last `win_cap` accepted tokens */
    int32_t *win;
    int win_cap, win_len, win_head;
    int32_t *counts;   /* (n_vocab) scratch, all zero between calls */
    float *work;       /* (n_vocab) adjusted logits */
    cand *cands;       /* (n_vocab) */
    uint64_t rng[4];
};

/* ------------------------------------------------------------ RNG */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna, public domain algorithm) */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void rng_seed(uint64_t *s, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        s[i] = splitmix64(&x);
}

double sampler_rand(sampler *s)
{
    return (double)(rng_next(s->rng) >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------ setup */

void sampler_params_default(sampler_params *p)
{
    memset(p, 0, sizeof *p);
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->penalty_last_n = 64;
}

int sampler_new(const sampler_params *p, int32_t n_vocab, sampler **out,
                char *err, size_t errlen)
{
    *out = NULL;
    if (n_vocab <= 0) {
        snprintf(err, errlen, "sampler: vocabulary size %d", n_vocab);
        return -1;
    }
    if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p) ||
        !isfinite(p->repeat_penalty) || p->repeat_penalty <= 0.0f ||
        !isfinite(p->freq_penalty) || !isfinite(p->presence_penalty)) {
        snprintf(err, errlen,
                 "sampler: temperature, top_p, min_p and penalties must be "
                 "numbers (repeat penalty > 0)");
        return -1;
    }
    if (p->n_probs < 0 || p->n_probs > SAMPLER_MAX_TOP) {
        snprintf(err, errlen, "sampler: n_probs %d out of range [0, %d]",
                 p->n_probs, SAMPLER_MAX_TOP);
        return -1;
    }
    if (p->n_bias < 0 || (p->n_bias > 0 && !p->bias)) {
        snprintf(err, errlen, "sampler: invalid logit bias list");
        return -1;
    }
    for (int i = 0; i < p->n_bias; i++) {
        if (p->bias[i].id < 0 || p->bias[i].id >= n_vocab) {
            snprintf(err, errlen, "sampler: logit bias for token %d outside the "
                     "vocabulary [0, %d)", p->bias[i].id, n_vocab);
            return -1;
        }
        if (isnan(p->bias[i].bias) || p->bias[i].bias == INFINITY) {
            snprintf(err, errlen, "sampler: logit bias for token %d is not a "
                     "number or -inf", p->bias[i].id);
            return -1;
        }
    }
    sampler *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->p = *p;
    s->n_vocab = n_vocab;
    if (p->n_bias > 0) {
        s->bias = malloc((size_t)p->n_bias * sizeof *s->bias);
        if (!s->bias)
            goto oom;
        memcpy(s->bias, p->bias, (size_t)p->n_bias * sizeof *s->bias);
    }
    s->p.bias = s->bias;
    s->win_cap = p->penalty_last_n < 0 ? SAMPLER_WINDOW_MAX
               : p->penalty_last_n > SAMPLER_WINDOW_MAX ? SAMPLER_WINDOW_MAX
               : p->penalty_last_n;
    s->win = malloc((size_t)(s->win_cap > 0 ? s->win_cap : 1) * sizeof *s->win);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    s->work = malloc((size_t)n_vocab * sizeof *s->work);
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    if (!s->win || !s->counts || !s->work || !s->cands)
        goto oom;
    rng_seed(s->rng, p->seed);
    *out = s;
    return 0;
oom:
    sampler_free(s);
    snprintf(err, errlen, "sampler: out of memory");
    return -1;
}

void sampler_free(sampler *s)
{
    if (!s)
        return;
    free(s->bias);
    free(s->win);
    free(s->counts);
    free(s->work);
    free(s->cands);
    free(s);
}

void sampler_accept(sampler *s, int32_t id)
{
    if (s->win_cap <= 0 || id < 0 || id >= s->n_vocab)
        return;
    s->win[s->win_head] = id;
    s->win_head = (s->win_head + 1) % s->win_cap;
    if (s->win_len < s->win_cap)
        s->win_len++;
}

void sampler_reset(sampler *s)
{
    s->win_len = 0;
    s->win_head = 0;
    rng_seed(s->rng, s->p.seed);
}

/* ------------------------------------------------------------ steps 1-2 */

void sampler_apply_adjustments(const sampler *s, float *l)
{
    for (int32_t i = 0; i < s->n_vocab; i++)
        if (isnan(l[i]))
            l[i] = -INFINITY;
    for (int i = 0; i < s->p.n_bias; i++)
        l[s->bias[i].id] += s->bias[i].bias;

    const sampler_params *p = &s->p;
    bool any = p->repeat_penalty != 1.0f || p->freq_penalty != 0.0f ||
               p->presence_penalty != 0.0f;
    if (!any || s->win_len == 0)
        return;
    /* counts[] is shared scratch, zero on entry and on exit */
    int32_t *counts = s->counts;
    for (int i = 0; i < s->win_len; i++)
        counts[s->win[i]]++;
    for (int i = 0; i < s->win_len; i++) {
        int32_t id = s->win[i];
        int32_t c = counts[id];
        if (c == 0)
            continue; /* already applied */
        if (l[id] > -INFINITY) {
            if (l[id] > 0.0f)
                l[id] /= p->repeat_penalty;
            else
                l[id] *= p->repeat_penalty;
            l[id] -= (float)c * p->freq_penalty + p->presence_penalty;
        }
        counts[id] = 0;
    }
}

/* ------------------------------------------------------------ steps 3-7 */

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit > y->logit)
        return -1;
    if (x->logit < y->logit)
        return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Whether a ranks before b: higher logit, then lower id. */
static bool cand_before(const cand *a, const cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* The first +inf logit, or -1. A +inf logit takes all the mass. */
static int32_t first_inf(const float *l, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (l[i] == INFINITY)
            return i;
    return -1;
}

/* Greedy: the highest logit, the lowest id on a tie; -1 when none is
 * above -inf (NaN never is). Two passes that vectorize: the maximum, then
 * its first position. */
static int32_t argmax(const float *l, int32_t n)
{
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        mx = l[i] > mx ? l[i] : mx;
    if (!(mx > -INFINITY))
        return -1;
    for (int32_t i = 0; i < n; i++)
        if (l[i] == mx)
            return i;
    return -1;
}

/* Every finite logit as a candidate, in id order (or the first +inf
 * alone). */
static int candidates(const float *l, int32_t n_vocab, cand *c)
{
    int32_t inf = first_inf(l, n_vocab);
    if (inf >= 0) {
        c[0] = (cand){0.0f, inf};
        return 1;
    }
    int n = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (l[i] > -INFINITY && l[i] < INFINITY)
            c[n++] = (cand){l[i], i};
    return n;
}

static int cand_id_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Step 4: the k best finite logits (higher logit, then lower id), sorted,
 * or the first +inf alone. When no more than k logits are finite top-k
 * keeps them all and leaves them in id order, as it always has (the order
 * decides the draw). A bounded insertion for small k: almost every logit
 * fails the one comparison with the k-th best. */
static int top_k_of(const float *l, int32_t n_vocab, int k, cand *c, bool *cut)
{
    *cut = false;
    if (k > 64) {
        int n = candidates(l, n_vocab, c);
        if (n <= k)
            return n;
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
        *cut = true;
        return k;
    }
    int32_t inf = first_inf(l, n_vocab);
    if (inf >= 0) {
        c[0] = (cand){0.0f, inf};
        return 1;
    }
    int have = 0, n_finite = 0;
    float thr = -INFINITY; /* c[k-1].logit once k are kept */
    for (int32_t i = 0; i < n_vocab; i++) {
        float v = l[i];
        n_finite += v > -INFINITY;
        if (!(v > thr) && (have == k || !(v > -INFINITY)))
            continue; /* ties with the k-th lose: their id is higher */
        cand x = {v, i};
        int j = have < k ? have++ : k - 1;
        while (j > 0 && cand_before(&x, &c[j - 1])) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
        if (have == k)
            thr = c[k - 1].logit;
    }
    *cut = n_finite > k;
    if (!*cut)
        qsort(c, (size_t)have, sizeof *c, cand_id_cmp);
    return have;
}

/* Log-probabilities under the raw logits: chosen token and the top n. */
static void raw_logprobs(const sampler *s, const float *logits, int32_t id,
                         sampler_result *res)
{
    float mx = -INFINITY;
    for (int32_t i = 0; i < s->n_vocab; i++)
        if (logits[i] > mx) /* NaN never compares greater */
            mx = logits[i];
    double sum = 0.0;
    if (isfinite(mx))
        for (int32_t i = 0; i < s->n_vocab; i++)
            if (logits[i] > -INFINITY)
                sum += exp((double)logits[i] - (double)mx);
    /* No finite logit: nothing is defined, report -inf everywhere. */
    double lse = isfinite(mx) ? (double)mx + log(sum) : INFINITY;

    cand top[SAMPLER_MAX_TOP];
    int n = s->p.n_probs, have = 0;
    for (int32_t i = 0; i < s->n_vocab && n > 0; i++) {
        cand x = {isnan(logits[i]) ? -INFINITY : logits[i], i};
        if (have == n && !cand_before(&x, &top[n - 1]))
            continue;
        int j = have < n ? have++ : n - 1;
        while (j > 0 && cand_before(&x, &top[j - 1])) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = x;
    }
    float li = isnan(logits[id]) ? -INFINITY : logits[id];
    res->logprob = isfinite(lse) ? (float)((double)li - lse) : -INFINITY;
    res->n_top = have;
    for (int i = 0; i < have; i++) {
        res->top[i].id = top[i].id;
        res->top[i].logprob =
            isfinite(lse) ? (float)((double)top[i].logit - lse) : -INFINITY;
    }
}

int32_t sampler_sample(sampler *s, const float *logits, sampler_result *res)
{
    const sampler_params *p = &s->p;
    float *l = s->work;
    memcpy(l, logits, (size_t)s->n_vocab * sizeof *l);
    sampler_apply_adjustments(s, l);

    cand *c = s->cands;
    int32_t chosen = -1;
    int n;
    if (!(p->temp > 0.0f)) { /* 3. greedy */
        chosen = argmax(l, s->n_vocab);
        goto out;
    }
    /* 4. top-k, straight from the logits (no candidate list of the whole
     * vocabulary), or every finite logit */
    bool sorted = false; /* top-k sorts what it cuts */
    n = p->top_k > 0 ? top_k_of(l, s->n_vocab, p->top_k, c, &sorted)
                     : candidates(l, s->n_vocab, c);
    if (n == 0)
        goto out;
    /* 5. top-p */
    if (p->top_p < 1.0f && n > 1) {
        if (!sorted)
            qsort(c, (size_t)n, sizeof *c, cand_cmp);
        sorted = true;
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += exp((double)c[i].logit - (double)c[0].logit);
        double cum = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += exp((double)c[i].logit - (double)c[0].logit) / sum;
            if (cum >= (double)p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    /* 6. min-p: p_i >= min_p * p_max  <=>  l_i >= l_max + log(min_p) */
    if (p->min_p > 0.0f && n > 1) {
        float mx = c[0].logit;
        for (int i = 1; i < n; i++)
            if (c[i].logit > mx)
                mx = c[i].logit;
        float thr = mx + logf(p->min_p);
        int keep = 0;
        for (int i = 0; i < n; i++)
            if (c[i].logit >= thr)
                c[keep++] = c[i];
        n = keep; /* the maximum always stays */
    }
    /* 7. temperature and the draw */
    {
        float mx = c[0].logit;
        for (int i = 1; i < n; i++)
            if (c[i].logit > mx)
                mx = c[i].logit;
        double total = 0.0;
        for (int i = 0; i < n; i++)
            total += exp(((double)c[i].logit - (double)mx) / (double)p->temp);
        double u = sampler_rand(s) * total;
        double cum = 0.0;
        chosen = c[n - 1].id;
        for (int i = 0; i < n; i++) {
            cum += exp(((double)c[i].logit - (double)mx) / (double)p->temp);
            if (u < cum) {
                chosen = c[i].id;
                break;
            }
        }
    }

out:
    if (res) {
        memset(res, 0, sizeof *res);
        res->id = chosen;
        res->logprob = -INFINITY;
        if (chosen >= 0)
            raw_logprobs(s, logits, chosen, res);
        else
            res->n_top = 0;
    }
    return chosen;
}
