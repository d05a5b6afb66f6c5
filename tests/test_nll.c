/* test_nll.c - the prompt's negative log-likelihood (engine/nll.h).
 *
 * Without a model: which positions are sampled (spread, ascending,
 * deterministic, the edge cases), and nll_token against a naive
 * computation, shifted by huge constants, with -inf, NaN and +inf logits.
 * On ../shared/models/stories260K.gguf ($HEARTH_TEST_DATA; SKIP without
 * it): a TinyStories sentence reads as clearly less surprising than its
 * own tokens shuffled or than C code; nll_prompt refuses bad input; and
 * the scheduler's measure during a prefill (sched_job.want_nll, in chunks
 * of another size) gives the same mean on the same positions.
 */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "daemon/scheduler.h"
#include "engine/model.h"
#include "engine/nll.h"
#include "engine/tok.h"
#include "tests/testrand.h"
#include "tests/testutil.h"

/* ------------------------------------------------------------ positions */

START_TEST(positions_all_when_few)
{
    int pos[NLL_MAX_SAMPLES];
    /* 10 tokens: positions 0..8 predict tokens 1..9 */
    ck_assert_int_eq(nll_positions(0, 10, NLL_MAX_SAMPLES, pos), 9);
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(pos[i], i);
    /* the first 4 cached: 4..8 */
    ck_assert_int_eq(nll_positions(4, 10, NLL_MAX_SAMPLES, pos), 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(pos[i], 4 + i);
    /* exactly max of them */
    ck_assert_int_eq(nll_positions(0, 33, 32, pos), 32);
    ck_assert_int_eq(pos[0], 0);
    ck_assert_int_eq(pos[31], 31);
}
END_TEST

START_TEST(positions_edge_cases)
{
    int pos[NLL_MAX_SAMPLES];
    memset(pos, 0x7f, sizeof pos);
    ck_assert_int_eq(nll_positions(0, 0, 32, pos), 0);  /* empty */
    ck_assert_int_eq(nll_positions(0, 1, 32, pos), 0);  /* one token predicts none */
    ck_assert_int_eq(nll_positions(1, 2, 32, pos), 0);  /* from == n-1 */
    ck_assert_int_eq(nll_positions(5, 3, 32, pos), 0);  /* from past the end */
    ck_assert_int_eq(nll_positions(0, 100, 0, pos), 0); /* max 0 */
    ck_assert_int_eq(nll_positions(0, 100, -3, pos), 0);
    ck_assert_int_eq(pos[0], 0x7f7f7f7f); /* nothing written */
    ck_assert_int_eq(nll_positions(0, 2, 32, pos), 1);
    ck_assert_int_eq(pos[0], 0);
    ck_assert_int_eq(nll_positions(-7, 3, 32, pos), 2); /* negative from: 0 */
    ck_assert_int_eq(pos[0], 0);
    ck_assert_int_eq(pos[1], 1);
    ck_assert_int_eq(nll_positions(0, 1000, 1, pos), 1); /* one: the middle */
    ck_assert_int_eq(pos[0], 499);
}
END_TEST

/* Long prompts: max distinct ascending positions within [from, n-2], one
 * in each of max equal parts, the same on every call. */
START_TEST(positions_spread_evenly)
{
    static const int cases[][3] = {{0, 34, 32},   {0, 100, 32},   {0, 2000, 32},
                                   {17, 500, 32}, {0, 65, 32},    {100, 133, 32},
                                   {3, 40, 7},    {0, 100000, 32}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int from = cases[c][0], n = cases[c][1], max = cases[c][2];
        int pos[NLL_MAX_SAMPLES], again[NLL_MAX_SAMPLES];
        int np = nll_positions(from, n, max, pos);
        ck_assert_int_eq(np, max);
        ck_assert_int_eq(nll_positions(from, n, max, again), np);
        ck_assert_mem_eq(pos, again, (size_t)np * sizeof *pos);
        double part = (double)(n - 1 - from) / max;
        for (int i = 0; i < np; i++) {
            ck_assert_int_ge(pos[i], from);
            ck_assert_int_le(pos[i], n - 2);
            if (i > 0)
                ck_assert_int_gt(pos[i], pos[i - 1]);
            /* inside part i */
            ck_assert_msg(pos[i] - from >= (int)floor(i * part) &&
                              pos[i] - from < (int)ceil((i + 1) * part),
                          "case %zu: position %d = %d is not in part %d (%.2f wide)", c, i,
                          pos[i], i, part);
        }
    }
}
END_TEST

/* ------------------------------------------------------------ nll_token */

/* -log(exp(l[next]) / sum exp(l)) the plain way (finite, modest logits). */
static double naive_nll(const float *l, int n, int next)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)l[i]);
    return -log(exp((double)l[next]) / sum);
}

START_TEST(token_matches_naive)
{
    enum { V = 1000 };
    float l[V];
    rng_state = 0x11aa22bb;
    for (int trial = 0; trial < 20; trial++) {
        float scale = trial < 10 ? 3.0f : 20.0f;
        for (int i = 0; i < V; i++)
            l[i] = frand(scale);
        for (int next = 0; next < V; next += 97) {
            double got = nll_token(l, V, next), want = naive_nll(l, V, next);
            ck_assert_msg(fabs(got - want) < 1e-9 * (1 + fabs(want)),
                          "trial %d token %d: %.12f, naive %.12f", trial, next, got, want);
            ck_assert(got >= 0);
        }
    }
    /* uniform: log V */
    for (int i = 0; i < V; i++)
        l[i] = 1.5f;
    ck_assert_double_eq_tol(nll_token(l, V, 7), log((double)V), 1e-12);
}
END_TEST

/* Logits shifted by 1e4 or 3e38 (the naive sum overflows) give the same
 * NLL: the maximum is taken out first. Values are small integers, so the
 * shifted floats are exact. */
START_TEST(token_huge_logits)
{
    enum { V = 64 };
    float l[V], big[V];
    rng_state = 0x33cc44dd;
    for (int i = 0; i < V; i++)
        l[i] = (float)(int)(rng_u32() % 17) - 8.0f;
    for (int next = 0; next < V; next++) {
        double want = naive_nll(l, V, next);
        for (int i = 0; i < V; i++)
            big[i] = l[i] + 10000.0f;
        ck_assert_double_eq_tol(nll_token(big, V, next), want, 1e-9);
        for (int i = 0; i < V; i++)
            big[i] = l[i] - 10000.0f;
        ck_assert_double_eq_tol(nll_token(big, V, next), want, 1e-9);
    }
    /* 3e38 and a neighbour: one dominates by far more than exp can show */
    float two[2] = {3e38f, -3e38f};
    ck_assert_double_eq_tol(nll_token(two, 2, 0), 0.0, 1e-12);
    ck_assert(isinf(nll_token(two, 2, 1)) || nll_token(two, 2, 1) > 1e38);
    float same[3] = {3e38f, 3e38f, 3e38f};
    ck_assert_double_eq_tol(nll_token(same, 3, 1), log(3.0), 1e-12);
}
END_TEST

START_TEST(token_inf_and_nan)
{
    /* -inf logits take no probability: the same as leaving them out */
    float l[6] = {1.0f, -INFINITY, 2.0f, -INFINITY, 0.5f, NAN};
    float finite[3] = {1.0f, 2.0f, 0.5f};
    ck_assert_double_eq_tol(nll_token(l, 6, 0), naive_nll(finite, 3, 0), 1e-12);
    ck_assert_double_eq_tol(nll_token(l, 6, 2), naive_nll(finite, 3, 1), 1e-12);
    ck_assert_double_eq_tol(nll_token(l, 6, 4), naive_nll(finite, 3, 2), 1e-12);
    /* a banned (or NaN) token is infinitely surprising */
    ck_assert(isinf(nll_token(l, 6, 1)) && nll_token(l, 6, 1) > 0);
    ck_assert(isinf(nll_token(l, 6, 5)) && nll_token(l, 6, 5) > 0);
    /* every logit -inf */
    float none[3] = {-INFINITY, -INFINITY, NAN};
    ck_assert(isinf(nll_token(none, 3, 0)) && nll_token(none, 3, 0) > 0);
    /* +inf logits share the probability */
    float pinf[4] = {INFINITY, 5.0f, INFINITY, -INFINITY};
    ck_assert_double_eq_tol(nll_token(pinf, 4, 0), log(2.0), 1e-12);
    ck_assert(isinf(nll_token(pinf, 4, 1)) && nll_token(pinf, 4, 1) > 0);
    /* a token outside the vocabulary */
    ck_assert(isnan(nll_token(finite, 3, 3)));
    ck_assert(isnan(nll_token(finite, 3, -1)));
}
END_TEST

/* ------------------------------------------------------------ on a model */

static const char STORY[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside.";
static const char CODE[] =
    "#include <stdio.h>\nint main(void) { for (int i = 0; i < 10; i++) "
    "printf(\"%d\\n\", i * i); return 0; }";

typedef struct loaded {
    model *m;
    tok_vocab *v;
    model_ctx *c;
} loaded;

static void load(loaded *L, int max_batch)
{
    char path[1200], err[512];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", tu_data_dir());
    ck_assert_msg(model_load(path, &L->m, err, sizeof err) == 0, "model_load: %s", err);
    ck_assert_msg(tok_load(model_gguf(L->m), &L->v, err, sizeof err) == 0, "tok_load: %s",
                  err);
    ck_assert_msg(model_ctx_new(L->m, max_batch, &L->c, err, sizeof err) == 0,
                  "model_ctx_new: %s", err);
}

static void unload(loaded *L)
{
    model_ctx_free(L->c);
    tok_free(L->v);
    model_free(L->m);
}

static int encode(const loaded *L, const char *text, int32_t **ids)
{
    int n = tok_encode_alloc(L->v, text, strlen(text), true, false, ids);
    ck_assert_int_gt(n, 2);
    return n;
}

static double mean_nll(const loaded *L, const int32_t *ids, int n, int *np)
{
    char err[256] = "";
    double mean = -1;
    ck_assert_msg(nll_prompt(L->m, L->c, ids, n, NLL_MAX_SAMPLES, &mean, np, err,
                             sizeof err) == 0,
                  "nll_prompt: %s", err);
    return mean;
}

START_TEST(story_less_surprising)
{
    TU_NEED_DATA();
    loaded L;
    load(&L, 16); /* several slices for the longer texts */
    int32_t *story, *code;
    int ns = encode(&L, STORY, &story), nc = encode(&L, CODE, &code);
    /* the same tokens in a random order (BOS stays first) */
    int32_t *shuf = malloc((size_t)ns * sizeof *shuf);
    ck_assert_ptr_nonnull(shuf);
    memcpy(shuf, story, (size_t)ns * sizeof *shuf);
    rng_state = 0x5eedf00d;
    for (int i = ns - 1; i > 1; i--) {
        int k = 1 + (int)(rng_u32() % (uint32_t)i);
        int32_t t = shuf[i];
        shuf[i] = shuf[k];
        shuf[k] = t;
    }
    int np_s, np_x, np_c;
    double s = mean_nll(&L, story, ns, &np_s);
    double x = mean_nll(&L, shuf, ns, &np_x);
    double c = mean_nll(&L, code, nc, &np_c);
    fprintf(stderr, "stories260K mean NLL: story %.3f (%d of %d tokens), shuffled %.3f, "
                    "code %.3f (%d of %d)\n",
            s, np_s, ns, x, c, np_c, nc);
    ck_assert_int_eq(np_s, ns - 1 < NLL_MAX_SAMPLES ? ns - 1 : NLL_MAX_SAMPLES);
    ck_assert_int_eq(np_x, np_s);
    ck_assert_int_eq(np_c, nc - 1 < NLL_MAX_SAMPLES ? nc - 1 : NLL_MAX_SAMPLES);
    ck_assert(isfinite(s) && isfinite(x) && isfinite(c) && s > 0);
    /* clearly: by at least one nat per token */
    ck_assert_msg(s + 1.0 < x, "story %.3f, shuffled %.3f", s, x);
    ck_assert_msg(s + 1.0 < c, "story %.3f, code %.3f", s, c);
    /* the same again: deterministic */
    int np2;
    ck_assert_double_eq(mean_nll(&L, story, ns, &np2), s);
    free(story);
    free(code);
    free(shuf);
    unload(&L);
}
END_TEST

START_TEST(prompt_bad_input)
{
    TU_NEED_DATA();
    loaded L;
    load(&L, 8);
    int32_t ids[4] = {1, 20, 30, 40};
    char err[256] = "";
    double mean = -1;
    int np = -1;
    /* one token: nothing to measure, not an error */
    ck_assert_int_eq(nll_prompt(L.m, L.c, ids, 1, 32, &mean, &np, err, sizeof err), 0);
    ck_assert_int_eq(np, 0);
    ck_assert_double_eq(mean, 0.0);
    /* a token outside the vocabulary */
    ids[2] = model_hparams_of(L.m)->n_vocab;
    ck_assert_int_eq(nll_prompt(L.m, L.c, ids, 4, 32, &mean, &np, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "vocabulary") != NULL, "error \"%s\"", err);
    ck_assert_int_eq(np, 0);
    err[0] = '\0';
    ck_assert_int_eq(nll_prompt(L.m, L.c, ids, -1, 32, &mean, &np, err, sizeof err), -1);
    ck_assert(err[0] != '\0');
    /* max_samples caps the count */
    ids[2] = 30;
    ck_assert_int_eq(nll_prompt(L.m, L.c, ids, 4, 2, &mean, &np, err, sizeof err), 0);
    ck_assert_int_eq(np, 2);
    unload(&L);
}
END_TEST

/* ------------------------------------------- against the scheduler's measure */

static const char STORY_LONG[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside "
    "in the park with her friends. One day, she saw a big red ball under a tree. "
    "She ran to the ball and picked it up. She was very happy.";

/* The scheduler measures during its prefill, in 16-token chunks on its
 * own context; nll_prompt in 64-token slices: the same positions, the same
 * mean. */
START_TEST(prompt_equals_scheduler)
{
    TU_NEED_DATA();
    loaded L;
    load(&L, 64);
    int32_t *ids;
    int n = encode(&L, STORY_LONG, &ids);
    ck_assert_int_gt(n, NLL_MAX_SAMPLES + 1); /* a spread sample, not all */
    int np;
    double want = mean_nll(&L, ids, n, &np);
    ck_assert_int_eq(np, NLL_MAX_SAMPLES);

    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    sched_params p = {.n_slots = 2, .n_ctx = 256, .max_queue = 4, .batch = 16, .threads = 2};
    sched *s;
    char err[256];
    ck_assert_msg(sched_new(&s, L.m, L.v, &p, &loop, err, sizeof err) == 0, "sched_new: %s",
                  err);
    sched_job *j = sched_job_new(1);
    ck_assert_ptr_nonnull(j);
    j->prompt = ids; /* the job owns it now */
    j->n_prompt = n;
    sampler_params_default(&j->sp);
    j->sp.temp = 0.0f;
    j->max_tokens = 1;
    j->want_nll = true;
    ck_assert_int_eq(sched_submit(s, j, err, sizeof err), SCHED_OK);
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 60000 && !sched_job_done(j); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        nanosleep(&ms, NULL);
    }
    pthread_mutex_lock(&j->mu);
    bool done = j->done, prefilled = j->prefilled;
    double sum = j->nll_sum;
    int nn = j->nll_n;
    pthread_mutex_unlock(&j->mu);
    ck_assert_msg(done, "the job did not end within a minute");
    ck_assert(prefilled);
    ck_assert_int_eq(nn, np);
    fprintf(stderr, "prompt_equals_scheduler: %d tokens, nll_prompt %.6f, scheduler %.6f\n", n,
            want, sum / nn);
    ck_assert_double_eq_tol(sum / nn, want, 1e-3);
    sched_counters c;
    sched_stats(s, &c);
    ck_assert_uint_eq(c.nll_rows, (uint64_t)np);
    sched_job_unref(j);
    sched_free(s);
    while (uv_loop_close(&loop) != 0)
        uv_run(&loop, UV_RUN_NOWAIT);
    unload(&L);
}
END_TEST

/* ------------------------------------------------------------ runner */

static Suite *nll_suite(void)
{
    Suite *s = suite_create("nll");
    TCase *tc = tcase_create("nll");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, positions_all_when_few);
    tcase_add_test(tc, positions_edge_cases);
    tcase_add_test(tc, positions_spread_evenly);
    tcase_add_test(tc, token_matches_naive);
    tcase_add_test(tc, token_huge_logits);
    tcase_add_test(tc, token_inf_and_nan);
    tcase_add_test(tc, story_less_surprising);
    tcase_add_test(tc, prompt_bad_input);
    tcase_add_test(tc, prompt_equals_scheduler);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* one numeric path whatever the batch size (see test_sched.c) */
    setenv("HEARTH_BLAS_MIN", "0", 1);
    SRunner *sr = srunner_create(nll_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    /* without the data the model tests could not run: SKIP, not PASS */
    return failed ? EXIT_FAILURE : tu_data_dir() ? EXIT_SUCCESS : 77;
}
