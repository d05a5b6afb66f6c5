/* sampler.h - turn a row of logits into the next token.
 *
 * Order of operations in sampler_sample() (llama.cpp's default chain):
 *   1. logit bias: logit[id] += bias (a bias of -INFINITY bans the token);
 *      NaN logits count as -INFINITY;
 *   2. penalties over the last `penalty_last_n` accepted tokens: for a token
 *      seen c > 0 times, the repetition penalty divides a positive logit and
 *      multiplies a negative one, then logit -= c * frequency_penalty +
 *      presence_penalty;
 *   3. temperature <= 0: greedy - the highest logit wins (lowest id on a
 *      tie) and steps 4-7 are skipped;
 *   4. top-k: keep the k highest logits (k <= 0: all);
 *   5. top-p: keep the smallest set of most likely tokens whose probability
 *      (softmax of the logits so far, temperature 1) reaches p;
 *   6. min-p: drop tokens whose probability is below min_p times the most
 *      likely one's;
 *   7. temperature: softmax(logit / temp) over what is left, then one draw
 *      from the sampler's own RNG (xoshiro256** seeded through splitmix64),
 *      so a seed gives the same draws on every machine.
 * At least one token always survives steps 4-6.
 *
 * The log-probabilities reported with the choice are those of the raw model
 * (log-softmax of the logits as given, before bias, penalties and
 * temperature) - what an API's "logprobs" shows.
 */
#ifndef HEARTH_SAMPLER_H
#define HEARTH_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAMPLER_MAX_TOP 20 /* most alternatives sampler_sample can report */

typedef struct sampler_bias {
    int32_t id;
    float bias; /* added to the logit; -INFINITY bans the token */
} sampler_bias;

typedef struct sampler_params {
    float temp;            /* <= 0: greedy */
    int32_t top_k;         /* <= 0: disabled */
    float top_p;           /* >= 1: disabled */
    float min_p;           /* <= 0: disabled */
    float repeat_penalty;  /* 1: disabled */
    float freq_penalty;    /* 0: disabled */
    float presence_penalty;/* 0: disabled */
    int32_t penalty_last_n;/* window of accepted tokens; 0 disables
                              penalties, < 0 means the whole window cap */
    uint64_t seed;
    const sampler_bias *bias; /* copied by sampler_new */
    int n_bias;
    int n_probs;           /* top alternatives to report, 0..SAMPLER_MAX_TOP */
} sampler_params;

/* Defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, no penalties
 * (repeat 1, window 64), seed 0, no bias, no reported alternatives. */
void sampler_params_default(sampler_params *p);

typedef struct sampler_logprob {
    int32_t id;
    float logprob;
} sampler_logprob;

typedef struct sampler_result {
    int32_t id;                  /* the chosen token */
    float logprob;               /* its raw log-probability */
    int n_top;                   /* entries of top[] filled (n_probs) */
    sampler_logprob top[SAMPLER_MAX_TOP]; /* most likely first */
} sampler_result;

typedef struct sampler sampler;

/* -1 + message for parameters out of range (NaN, negative temperature is
 * fine and means greedy, a bias id outside the vocabulary, ...). */
int sampler_new(const sampler_params *p, int32_t n_vocab, sampler **out,
                char *err, size_t errlen);
void sampler_free(sampler *s);

/* Record a token as part of the text (prompt or generated) for the
 * penalty window. */
void sampler_accept(sampler *s, int32_t id);
/* Forget the window and reseed the RNG with the original seed. */
void sampler_reset(sampler *s);

/* Choose a token from n_vocab logits (not modified). Returns the token id,
 * or -1 when every token is banned or non-finite; res may be NULL. */
int32_t sampler_sample(sampler *s, const float *logits, sampler_result *res);

/* Applies steps 1-2 only, in place (exposed for tests and for callers
 * that inspect the adjusted distribution). */
void sampler_apply_adjustments(const sampler *s, float *logits);

/* The RNG on its own: uniform double in [0, 1). */
double sampler_rand(sampler *s);

#endif
