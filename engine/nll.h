/* nll.h - how surprising a prompt is to the model: the mean negative
 * log-likelihood (NLL) of its tokens.
 *
 * The NLL of token k+1 is -log softmax(logits at position k)[token k+1],
 * in nats. Logits for a position cost one row through the output
 * projection (n_embd x n_vocab multiply-adds) on top of the forward pass,
 * so the mean is taken over a sample: at most NLL_MAX_SAMPLES positions
 * spread evenly over the prompt, always the same ones for the same prompt
 * length (nll_positions). The scheduler measures them during a job's
 * prefill (sched_job.want_nll); nll_prompt measures a whole prompt on its
 * own, for the command line and for a model's reference texts, on the same
 * positions, so the two agree.
 *
 * Position k predicts token k+1: positions run over 0..n-2 (the last
 * prompt token predicts what is generated, not the prompt). Positions
 * whose keys and values come from a prefix cache (the first `from`) are
 * not recomputed and therefore not measured.
 */
#ifndef HEARTH_NLL_H
#define HEARTH_NLL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define NLL_MAX_SAMPLES 32 /* positions measured per prompt at most */

/* The positions to measure for a prompt of n tokens whose first `from` are
 * not recomputed: every position of [from, n-2] when there are at most
 * `max` of them, else `max` positions spread evenly over that range (the
 * middle of each of `max` equal parts), ascending and distinct. Writes up
 * to max entries to out and returns the count: 0 when n < 2, from >= n-1
 * or max <= 0. A negative `from` counts as 0. */
int nll_positions(int from, int n, int max, int *out);

/* -log softmax(logits)[next] over n_vocab logits, in double with the
 * log-sum-exp trick (no overflow for huge logits). NaN logits count as
 * -INFINITY (as the sampler treats them). +INFINITY when logits[next] is
 * -INFINITY or every logit is; NAN when next is outside 0..n_vocab-1. */
double nll_token(const float *logits, int32_t n_vocab, int32_t next);

/* The mean NLL of a whole prompt over nll_positions(0, n, max_samples):
 * runs ids through the model on a temporary KV cache of n positions (F16,
 * as the scheduler's slots) in slices of the context's max batch, with
 * logits only on the measured positions. *mean gets the mean (0 when no
 * position is measured, n < 2), *n_samples the count. max_samples is
 * capped to NLL_MAX_SAMPLES. -1 with a message in err on a bad argument, a
 * token outside the vocabulary, or memory. Not while another model_decode
 * on c runs. */
int nll_prompt(const model *m, model_ctx *c, const int32_t *ids, int n, int max_samples,
               double *mean, int *n_samples, char *err, size_t errlen);

#endif
