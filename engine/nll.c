/* nll.c - the prompt's negative log-likelihood (see nll.h). */
#include "nll.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int nll_positions(int from, int n, int max, int *out)
{
    if (from < 0)
        from = 0;
    int span = n - 1 - from; /* positions in [from, n-2] */
    if (span <= 0 || max <= 0)
        return 0;
    if (span <= max) {
        for (int i = 0; i < span; i++)
            out[i] = from + i;
        return span;
    }
    /* the middle of each of max equal parts: parts are longer than one
     * position, so the picks are distinct, and the last is below from+span */
    for (int i = 0; i < max; i++)
        out[i] = from + (int)((int64_t)(2 * i + 1) * span / (2 * (int64_t)max));
    return max;
}

double nll_token(const float *logits, int32_t n_vocab, int32_t next)
{
    if (next < 0 || next >= n_vocab)
        return NAN;
    double mx = -INFINITY;
    int32_t at = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (logits[i] > mx) { /* false for NaN */
            mx = logits[i];
            at = i;
        }
    double x = isnan(logits[next]) ? -INFINITY : (double)logits[next];
    if (mx == -INFINITY || x == -INFINITY)
        return INFINITY;
    if (mx == INFINITY) {
        /* the infinite logits share the probability */
        if (x != INFINITY)
            return INFINITY;
        int n_inf = 1; /* next */
        for (int32_t i = 0; i < n_vocab; i++)
            n_inf += i != next && logits[i] == INFINITY;
        return log((double)n_inf);
    }
    double sum = 1.0; /* the maximum's own term, exp(0) */
    for (int32_t i = 0; i < n_vocab; i++)
        if (i != at && !isnan(logits[i]))
            sum += exp((double)logits[i] - mx); /* exp(-inf) is 0 */
    return (mx - x) + log(sum);
}

/* ------------------------------------------------------------ a prompt */

typedef struct rows_job {
    const float *logits;
    int32_t n_vocab;
    const int32_t *ids;
    const int *pos;
    double *val;
} rows_job;

static void row_task(void *arg, int64_t r, int thread)
{
    (void)thread;
    const rows_job *rj = arg;
    rj->val[r] = nll_token(rj->logits + (size_t)r * (size_t)rj->n_vocab, rj->n_vocab,
                           rj->ids[rj->pos[r] + 1]);
}

int nll_prompt(const model *m, model_ctx *c, const int32_t *ids, int n, int max_samples,
               double *mean, int *n_samples, char *err, size_t errlen)
{
    if (!m || !c || (!ids && n > 0) || n < 0 || !mean || !n_samples) {
        snprintf(err, errlen, "nll_prompt: bad arguments");
        return -1;
    }
    *mean = 0.0;
    *n_samples = 0;
    if (max_samples > NLL_MAX_SAMPLES)
        max_samples = NLL_MAX_SAMPLES;
    int pos[NLL_MAX_SAMPLES];
    int np = nll_positions(0, n, max_samples, pos);
    if (np == 0)
        return 0;
    int32_t V = model_hparams_of(m)->n_vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            snprintf(err, errlen, "prompt token %d is outside the vocabulary (0..%d)", ids[i],
                     V - 1);
            return -1;
        }
    /* nothing after the last measured position needs to run */
    int end = pos[np - 1] + 1;
    int mb = model_ctx_max_batch(c);
    kv_cache *kv = NULL;
    model_token *tok = malloc((size_t)mb * sizeof *tok);
    float *logits = malloc((size_t)np * (size_t)V * sizeof *logits);
    double val[NLL_MAX_SAMPLES];
    int rc = -1;
    if (!tok || !logits) {
        snprintf(err, errlen, "out of memory for the prompt's logits");
        goto out;
    }
    if (model_kv_new(m, end, 0, KV_F16, &kv, err, errlen) < 0)
        goto out;
    int row = 0, next_pos = 0;
    for (int at = 0; at < end;) {
        int take = end - at < mb ? end - at : mb, want = 0;
        for (int t = 0; t < take; t++) {
            int k = at + t;
            bool w = next_pos < np && pos[next_pos] == k;
            next_pos += w;
            want += w;
            tok[t] = (model_token){.id = ids[k], .pos = k, .kv = kv, .want_logits = w};
        }
        model_batch b = {.n = take, .tok = tok};
        if (model_decode(c, &b, logits + (size_t)row * (size_t)V, err, errlen) < 0)
            goto out;
        row += want;
        at += take;
    }
    rows_job rj = {logits, V, ids, pos, val};
    model_ctx_run(c, np, row_task, &rj);
    double sum = 0.0;
    for (int r = 0; r < np; r++)
        sum += val[r];
    *mean = sum / np;
    *n_samples = np;
    rc = 0;
out:
    kv_free(kv);
    free(tok);
    free(logits);
    return rc;
}
