/* test_sampler.c - the sampler on hand-made logits: determinism, greedy,
 * top-k/top-p/min-p sets, exact penalty amounts, logit bias, reported
 * log-probabilities, and parameter validation. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

static sampler *make(const sampler_params *p, int32_t n_vocab)
{
    char err[256];
    sampler *s = NULL;
    ck_assert_msg(sampler_new(p, n_vocab, &s, err, sizeof err) == 0, "%s", err);
    return s;
}

/* Parameters with every filter off: plain sampling at temperature t. */
static sampler_params plain(float temp, uint64_t seed)
{
    sampler_params p;
    sampler_params_default(&p);
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

/* Logits whose softmax is exactly probs (up to float rounding). */
static void logits_of(const double *probs, int n, float *l)
{
    for (int i = 0; i < n; i++)
        l[i] = probs[i] > 0 ? (float)log(probs[i]) : -INFINITY;
}

/* Sample `draws` times; count[i] gets the number of times i came out. */
static void histogram(sampler *s, const float *l, int n, int draws, int *count)
{
    memset(count, 0, sizeof(int) * (size_t)n);
    for (int d = 0; d < draws; d++) {
        int32_t id = sampler_sample(s, l, NULL);
        ck_assert(id >= 0 && id < n);
        count[id]++;
    }
}

static const double P4[4] = {0.5, 0.3, 0.15, 0.05};

/* ---- the chain as sampler.h documents it, written plainly: every finite
 * logit a candidate in id order, sorted only by a top-k that cuts or by
 * top-p; draws from a second sampler with the same seed. */
typedef struct rcand {
    float logit;
    int32_t id;
} rcand;

static int rcand_cmp(const void *a, const void *b)
{
    const rcand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int32_t ref_sample(const sampler_params *p, const float *in, int nv, sampler *rng)
{
    float l[256];
    rcand c[256];
    for (int i = 0; i < nv; i++)
        l[i] = isnan(in[i]) ? -INFINITY : in[i];
    for (int i = 0; i < p->n_bias; i++)
        l[p->bias[i].id] += p->bias[i].bias;
    int n = 0;
    for (int i = 0; i < nv; i++) {
        if (l[i] == INFINITY) {
            c[0] = (rcand){0.0f, i};
            n = 1;
            break;
        }
        if (l[i] > -INFINITY)
            c[n++] = (rcand){l[i], i};
    }
    if (n == 0)
        return -1;
    if (!(p->temp > 0.0f)) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        return c[best].id;
    }
    bool sorted = false;
    if (p->top_k > 0 && p->top_k < n) {
        qsort(c, (size_t)n, sizeof *c, rcand_cmp);
        n = p->top_k;
        sorted = true;
    }
    if (p->top_p < 1.0f && n > 1) {
        if (!sorted)
            qsort(c, (size_t)n, sizeof *c, rcand_cmp);
        double sum = 0.0, cum = 0.0;
        for (int i = 0; i < n; i++)
            sum += exp((double)c[i].logit - (double)c[0].logit);
        for (int i = 0; i < n; i++) {
            cum += exp((double)c[i].logit - (double)c[0].logit) / sum;
            if (cum >= (double)p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f && n > 1) {
        float mx = c[0].logit;
        for (int i = 1; i < n; i++)
            mx = c[i].logit > mx ? c[i].logit : mx;
        float thr = mx + logf(p->min_p);
        int keep = 0;
        for (int i = 0; i < n; i++)
            if (c[i].logit >= thr)
                c[keep++] = c[i];
        n = keep;
    }
    float mx = c[0].logit;
    for (int i = 1; i < n; i++)
        mx = c[i].logit > mx ? c[i].logit : mx;
    double total = 0.0, cum = 0.0;
    for (int i = 0; i < n; i++)
        total += exp(((double)c[i].logit - (double)mx) / (double)p->temp);
    double u = sampler_rand(rng) * total;
    for (int i = 0; i < n; i++) {
        cum += exp(((double)c[i].logit - (double)mx) / (double)p->temp);
        if (u < cum)
            return c[i].id;
    }
    return c[n - 1].id;
}

/* The sampler's fast paths (top-k straight from the logits, a vectorized
 * argmax) choose exactly what the plain chain chooses: random logits with
 * ties, NaN, -inf, +inf, bans that leave fewer finite logits than top_k. */
START_TEST(matches_plain_chain)
{
    uint64_t st = 12345;
    static const int ks[] = {0, 1, 3, 40, 100};
    for (int trial = 0; trial < 3000; trial++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = st >> 11;
        int nv = 2 + (int)(r % 200);
        float l[256];
        for (int i = 0; i < nv; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t x = st >> 20;
            l[i] = (float)((int)(x % 64) - 32) / 4.0f; /* ties are common */
            if (x % 97 == 0)
                l[i] = NAN;
            else if (x % 89 == 0)
                l[i] = -INFINITY;
            else if (x % 3001 == 0)
                l[i] = INFINITY;
        }
        sampler_params p = plain((float)(r % 5) * 0.4f, trial);
        p.top_k = ks[(r >> 8) % 5];
        p.top_p = (r >> 12) % 3 == 0 ? 0.9f : 1.0f;
        p.min_p = (r >> 14) % 3 == 0 ? 0.05f : 0.0f;
        sampler_bias bias[200];
        int nb = 0;
        if ((r >> 16) % 4 == 0) /* ban all but a few */
            for (int i = 0; i < nv && nb < 200; i++)
                if (i % 7 != 0)
                    bias[nb++] = (sampler_bias){i, -INFINITY};
        p.bias = bias;
        p.n_bias = nb;
        sampler *s = make(&p, nv), *rng = make(&p, nv);
        for (int d = 0; d < 3; d++) {
            int32_t want = ref_sample(&p, l, nv, rng);
            int32_t got = sampler_sample(s, l, NULL);
            ck_assert_msg(got == want, "trial %d draw %d (nv %d, temp %g, top_k %d, top_p %g, "
                          "min_p %g, %d banned): %d, plain chain %d", trial, d, nv,
                          (double)p.temp, p.top_k, (double)p.top_p, (double)p.min_p, nb,
                          got, want);
        }
        sampler_free(s);
        sampler_free(rng);
    }
}
END_TEST

START_TEST(rng_known_sequence)
{
    /* xoshiro256** seeded through splitmix64: fixed on every machine */
    sampler_params p = plain(1.0f, 42);
    sampler *s = make(&p, 4);
    ck_assert_double_eq_tol(sampler_rand(s), 0.08386297105988216, 1e-15);
    ck_assert_double_eq_tol(sampler_rand(s), 0.3789802506626686, 1e-15);
    ck_assert_double_eq_tol(sampler_rand(s), 0.6800434110281394, 1e-15);
    sampler_free(s);
}
END_TEST

START_TEST(same_seed_same_sequence)
{
    float l[64];
    for (int i = 0; i < 64; i++)
        l[i] = (float)sin(i * 1.7) * 3.0f;
    sampler_params p;
    sampler_params_default(&p);
    p.seed = 1234;
    sampler *a = make(&p, 64), *b = make(&p, 64);
    p.seed = 1235;
    sampler *c = make(&p, 64);
    int32_t first[200];
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        first[i] = sampler_sample(a, l, NULL);
        ck_assert_int_eq(first[i], sampler_sample(b, l, NULL));
        differ += first[i] != sampler_sample(c, l, NULL);
    }
    ck_assert_int_gt(differ, 0);
    /* reset replays the same draws */
    sampler_reset(a);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(first[i], sampler_sample(a, l, NULL));
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}
END_TEST

START_TEST(greedy_is_argmax)
{
    sampler_params p = plain(0.0f, 7);
    sampler *s = make(&p, 100);
    float l[100];
    unsigned x = 99;
    for (int round = 0; round < 50; round++) {
        int32_t best = 0;
        for (int i = 0; i < 100; i++) {
            x = x * 1103515245u + 12345u;
            l[i] = (float)((x >> 8) % 10000) / 100.0f - 50.0f;
            if (l[i] > l[best])
                best = i;
        }
        ck_assert_int_eq(sampler_sample(s, l, NULL), best);
    }
    /* ties go to the lowest id */
    for (int i = 0; i < 100; i++)
        l[i] = (i == 30 || i == 70) ? 5.0f : 0.0f;
    ck_assert_int_eq(sampler_sample(s, l, NULL), 30);
    sampler_free(s);
}
END_TEST

START_TEST(top_k_one_is_greedy)
{
    float l[64];
    for (int i = 0; i < 64; i++)
        l[i] = (float)cos(i * 0.9) * 2.0f;
    sampler_params p = plain(1.5f, 3);
    p.top_k = 1;
    sampler *s = make(&p, 64);
    sampler_params g = plain(0.0f, 3);
    sampler *gs = make(&g, 64);
    int32_t want = sampler_sample(gs, l, NULL);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(sampler_sample(s, l, NULL), want);
    sampler_free(s);
    sampler_free(gs);
}
END_TEST

START_TEST(top_k_keeps_k_best)
{
    float l[4];
    logits_of(P4, 4, l);
    sampler_params p = plain(1.0f, 5);
    p.top_k = 2;
    sampler *s = make(&p, 4);
    int count[4];
    histogram(s, l, 4, 2000, count);
    ck_assert_int_gt(count[0], 0);
    ck_assert_int_gt(count[1], 0);
    ck_assert_int_eq(count[2] + count[3], 0);
    sampler_free(s);
}
END_TEST

START_TEST(top_p_excludes_the_tail)
{
    float l[4];
    logits_of(P4, 4, l);
    int count[4];
    /* 0.5 < 0.75 <= 0.5 + 0.3: keep ids 0 and 1 */
    sampler_params p = plain(1.0f, 11);
    p.top_p = 0.75f;
    sampler *s = make(&p, 4);
    histogram(s, l, 4, 2000, count);
    ck_assert_int_gt(count[0], 0);
    ck_assert_int_gt(count[1], 0);
    ck_assert_int_eq(count[2] + count[3], 0);
    sampler_free(s);
    /* 0.9 needs the third too (0.95 >= 0.9), never the fourth */
    p.top_p = 0.9f;
    s = make(&p, 4);
    histogram(s, l, 4, 4000, count);
    ck_assert_int_gt(count[2], 0);
    ck_assert_int_eq(count[3], 0);
    sampler_free(s);
    /* a tiny p still keeps the best token */
    p.top_p = 0.01f;
    s = make(&p, 4);
    histogram(s, l, 4, 200, count);
    ck_assert_int_eq(count[0], 200);
    sampler_free(s);
}
END_TEST

START_TEST(min_p_excludes_below_fraction_of_max)
{
    float l[4];
    logits_of(P4, 4, l);
    int count[4];
    /* threshold 0.35 * 0.5 = 0.175: keeps 0.5 and 0.3 */
    sampler_params p = plain(1.0f, 13);
    p.min_p = 0.35f;
    sampler *s = make(&p, 4);
    histogram(s, l, 4, 2000, count);
    ck_assert_int_gt(count[1], 0);
    ck_assert_int_eq(count[2] + count[3], 0);
    sampler_free(s);
    /* threshold 0.25 * 0.5 = 0.125: keeps the third, not the fourth */
    p.min_p = 0.25f;
    s = make(&p, 4);
    histogram(s, l, 4, 4000, count);
    ck_assert_int_gt(count[2], 0);
    ck_assert_int_eq(count[3], 0);
    sampler_free(s);
}
END_TEST

START_TEST(temperature_one_follows_the_distribution)
{
    float l[4];
    logits_of(P4, 4, l);
    sampler_params p = plain(1.0f, 17);
    sampler *s = make(&p, 4);
    int count[4];
    histogram(s, l, 4, 20000, count);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fabs(count[i] / 20000.0 - P4[i]) < 0.015, "id %d: %d", i,
                      count[i]);
    sampler_free(s);
    /* a low temperature sharpens: the best token dominates */
    p.temp = 0.1f; /* p^10: the best has 99.4% */
    s = make(&p, 4);
    histogram(s, l, 4, 2000, count);
    ck_assert_int_gt(count[0], 1960);
    sampler_free(s);
}
END_TEST

START_TEST(penalties_exact_amounts)
{
    sampler_params p = plain(1.0f, 1);
    p.repeat_penalty = 2.0f;
    p.freq_penalty = 0.1f;
    p.presence_penalty = 0.5f;
    p.penalty_last_n = 8;
    sampler *s = make(&p, 4);
    sampler_accept(s, 0);
    sampler_accept(s, 1);
    sampler_accept(s, 0);
    float l[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    sampler_apply_adjustments(s, l);
    /* id 0 seen twice: 2/2 - 2*0.1 - 0.5; id 1 once: -2*2 - 0.1 - 0.5 */
    ck_assert_float_eq_tol(l[0], 0.3f, 1e-6f);
    ck_assert_float_eq_tol(l[1], -4.6f, 1e-6f);
    ck_assert_float_eq(l[2], 1.0f);
    ck_assert_float_eq(l[3], 0.5f);
    sampler_free(s);

    /* only the last 2 accepted tokens count: 3 twice */
    p.penalty_last_n = 2;
    s = make(&p, 4);
    sampler_accept(s, 0);
    sampler_accept(s, 1);
    sampler_accept(s, 3);
    sampler_accept(s, 3);
    float m[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    sampler_apply_adjustments(s, m);
    ck_assert_float_eq(m[0], 2.0f); /* left the window */
    ck_assert_float_eq(m[1], -2.0f);
    ck_assert_float_eq_tol(m[3], 0.5f / 2.0f - 2 * 0.1f - 0.5f, 1e-6f);
    /* the window slid: now 3 and 0, once each */
    sampler_accept(s, 0);
    float k[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    sampler_apply_adjustments(s, k);
    ck_assert_float_eq_tol(k[0], 2.0f / 2.0f - 0.1f - 0.5f, 1e-6f);
    ck_assert_float_eq_tol(k[3], 0.5f / 2.0f - 0.1f - 0.5f, 1e-6f);
    sampler_free(s);

    /* penalties steer the draw: greedy avoids a penalized winner */
    sampler_params g = plain(0.0f, 1);
    g.repeat_penalty = 4.0f;
    s = make(&g, 4);
    float w[4] = {2.0f, 1.0f, 0.0f, 0.0f};
    ck_assert_int_eq(sampler_sample(s, w, NULL), 0);
    sampler_accept(s, 0);
    ck_assert_int_eq(sampler_sample(s, w, NULL), 1);
    sampler_free(s);
}
END_TEST

START_TEST(logit_bias_ban_is_never_sampled)
{
    float l[16];
    for (int i = 0; i < 16; i++)
        l[i] = 0.1f * (float)i;
    l[5] = 10.0f; /* would win almost always */
    sampler_bias b[2] = {{5, -INFINITY}, {2, 1.0f}};
    sampler_params p = plain(1.5f, 19);
    p.bias = b;
    p.n_bias = 2;
    sampler *s = make(&p, 16);
    int count[16];
    histogram(s, l, 16, 3000, count);
    ck_assert_int_eq(count[5], 0);
    sampler_free(s);

    sampler_params g = plain(0.0f, 19);
    g.bias = b;
    g.n_bias = 2;
    s = make(&g, 16);
    ck_assert_int_eq(sampler_sample(s, l, NULL), 15); /* next best */
    float m[16];
    memcpy(m, l, sizeof m);
    sampler_apply_adjustments(s, m);
    ck_assert_float_eq_tol(m[2], 0.2f + 1.0f, 1e-6f);
    sampler_free(s);

    /* everything banned: no token */
    sampler_bias all[3] = {{0, -INFINITY}, {1, -INFINITY}, {2, -INFINITY}};
    sampler_params q = plain(1.0f, 1);
    q.bias = all;
    q.n_bias = 3;
    s = make(&q, 3);
    float three[3] = {1, 2, 3};
    sampler_result r;
    ck_assert_int_eq(sampler_sample(s, three, &r), -1);
    ck_assert_int_eq(r.id, -1);
    sampler_free(s);
}
END_TEST

START_TEST(logprobs_reported)
{
    float l[6] = {1.0f, 3.0f, -1.0f, 2.5f, 0.0f, 2.5f};
    double lse = 0;
    for (int i = 0; i < 6; i++)
        lse += exp(l[i]);
    lse = log(lse);
    sampler_params p = plain(0.0f, 1);
    p.n_probs = 4;
    p.repeat_penalty = 3.0f; /* adjustments do not change reported logprobs */
    sampler *s = make(&p, 6);
    sampler_result r;
    ck_assert_int_eq(sampler_sample(s, l, &r), 1);
    ck_assert_int_eq(r.id, 1);
    ck_assert_double_eq_tol(r.logprob, 3.0 - lse, 1e-5);
    ck_assert_int_eq(r.n_top, 4);
    const int32_t want[4] = {1, 3, 5, 0}; /* ties by lower id */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(r.top[i].id, want[i]);
        ck_assert_double_eq_tol(r.top[i].logprob, l[want[i]] - lse, 1e-5);
    }
    sampler_accept(s, 1);
    ck_assert_int_eq(sampler_sample(s, l, &r), 3); /* 3/3 = 1 < 2.5 */
    ck_assert_double_eq_tol(r.logprob, 2.5 - lse, 1e-5);
    ck_assert_double_eq_tol(r.top[0].logprob, 3.0 - lse, 1e-5);
    sampler_free(s);
}
END_TEST

START_TEST(invalid_params_refused)
{
    char err[256];
    sampler *s = NULL;
    sampler_params p = plain(1.0f, 1);
    p.n_probs = SAMPLER_MAX_TOP + 1;
    ck_assert_int_ne(sampler_new(&p, 10, &s, err, sizeof err), 0);
    ck_assert_ptr_null(s);
    ck_assert(strstr(err, "n_probs") != NULL);

    sampler_bias b = {10, 1.0f};
    p = plain(1.0f, 1);
    p.bias = &b;
    p.n_bias = 1;
    ck_assert_int_ne(sampler_new(&p, 10, &s, err, sizeof err), 0);
    ck_assert(strstr(err, "token 10") != NULL);

    p = plain(NAN, 1);
    ck_assert_int_ne(sampler_new(&p, 10, &s, err, sizeof err), 0);
    p = plain(1.0f, 1);
    p.repeat_penalty = 0.0f;
    ck_assert_int_ne(sampler_new(&p, 10, &s, err, sizeof err), 0);
    ck_assert_int_ne(sampler_new(&p, 0, &s, err, sizeof err), 0);
}
END_TEST

START_TEST(nan_logits_are_never_chosen)
{
    float l[5] = {NAN, 1.0f, NAN, 0.5f, -INFINITY};
    sampler_params p = plain(1.0f, 23);
    sampler *s = make(&p, 5);
    int count[5];
    histogram(s, l, 5, 1000, count);
    ck_assert_int_eq(count[0] + count[2] + count[4], 0);
    sampler_free(s);
}
END_TEST

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *t = tcase_create("core");
    tcase_add_test(t, rng_known_sequence);
    tcase_add_test(t, matches_plain_chain);
    tcase_add_test(t, same_seed_same_sequence);
    tcase_add_test(t, greedy_is_argmax);
    tcase_add_test(t, top_k_one_is_greedy);
    tcase_add_test(t, top_k_keeps_k_best);
    tcase_add_test(t, top_p_excludes_the_tail);
    tcase_add_test(t, min_p_excludes_below_fraction_of_max);
    tcase_add_test(t, temperature_one_follows_the_distribution);
    tcase_add_test(t, penalties_exact_amounts);
    tcase_add_test(t, logit_bias_ban_is_never_sampled);
    tcase_add_test(t, logprobs_reported);
    tcase_add_test(t, invalid_params_refused);
    tcase_add_test(t, nan_logits_are_never_chosen);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(sampler_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
