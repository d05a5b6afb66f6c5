/* score.h - the complexity score: how much a request needs a cloud model,
 * computed on the device and explainable feature by feature.
 *
 * Features are numbers, most in 0..1, each computed from one thing a
 * person could check by reading the request (score.c says how):
 *
 *   prompt_ctx         prompt tokens / the local context (capped at 2)
 *   length_log         log2(1 + words) / 12 (capped at 1.5): the length of
 *                      the text read (words: runs of non-space, and each
 *                      CJK character), in the text's own units so that
 *                      it means the same whatever the model's tokenizer
 *   turns              log2(user turns) / 4 (capped at 1)
 *   code               code in the prompt or asked for: fences, code-shaped
 *                      lines, programming words; saturating in the count
 *   math               mathematics beyond arithmetic: LaTeX, proof and
 *                      calculus words, dense symbols; saturating
 *   multi_step         multi-step instructions and reasoning: "step by
 *                      step", "compare", numbered asks, several questions
 *   output_len         a long answer asked for: max_tokens, "essay",
 *                      "detailed", "N words"...
 *   non_latin          the share of letters outside the Latin script
 *   tools              tools or a structured output format asked for
 *   nll                the local model's surprise at the prompt: its mean
 *                      negative log-likelihood per token over its mean on
 *                      fixed reference texts, minus 1 (0 = as familiar as
 *                      plain prose; 0 when not measured), in -1..3
 *   battery_low        1 on battery below the configured level
 *   thermal            0..1, the hottest zone against its trip point
 *   queue_wait         the estimated local queue wait over the configured
 *                      bound (capped at 2)
 *
 * They combine by logistic regression: score = 1 / (1 + exp(-(bias +
 * sum of weight * value))), in 0..1; "cloud" when score >= threshold. The
 * weights come from a text file (score_weights_parse); the default one is
 * built in (conf/router-weights.txt, trained by scripts/router_train.py).
 * Computing the features of a 2,000-token prompt takes well under a
 * millisecond (one pass over the text per word list; the NLL is measured
 * by the scheduler during the prefill and only passed in here).
 */
#ifndef HEARTH_ROUTER_SCORE_H
#define HEARTH_ROUTER_SCORE_H

#include <stdbool.h>
#include <stddef.h>

#include "chat.h"
#include "model.h"
#include "request.h"
#include "tok.h"

typedef enum score_feature {
    SF_PROMPT_CTX,
    SF_LENGTH_LOG,
    SF_TURNS,
    SF_CODE,
    SF_MATH,
    SF_MULTI_STEP,
    SF_OUTPUT_LEN,
    SF_NON_LATIN,
    SF_TOOLS,
    SF_NLL,
    SF_BATTERY_LOW,
    SF_THERMAL,
    SF_QUEUE_WAIT,
    SF_COUNT
} score_feature;

/* "prompt_ctx", ...; NULL out of range. */
const char *score_feature_name(score_feature f);

typedef struct score_weights {
    double bias;
    double threshold; /* 0..1 */
    double w[SF_COUNT];
} score_weights;

/* Parse a weights file: '#' comments and blank lines, then one "name
 * value" per line: "bias", "threshold" and every feature exactly once.
 * -1 with "line N: reason" in err on anything else. */
int score_weights_parse(const char *text, size_t len, score_weights *out, char *err,
                        size_t errlen);
/* Read and parse a file; path NULL or "" gives the built-in weights. */
int score_weights_load(const char *path, score_weights *out, char *err, size_t errlen);
/* The built-in weights (cannot fail: checked by the tests). */
void score_weights_builtin(score_weights *out);

/* What the features are computed from. */
typedef struct score_input {
    const api_request *req; /* chat (messages) or completion (prompt) */
    bool tools;             /* tools or a structured format asked for */
    int n_prompt;           /* prompt tokens */
    int n_ctx;              /* the local context */
    bool has_nll;
    double nll_ratio;       /* prompt NLL / the model's reference NLL */
    bool battery_low;
    double thermal;         /* 0..1 */
    double queue_wait_s;    /* estimated local wait */
    double queue_wait_max;  /* the configured bound (> 0) */
} score_input;

/* Plain prose the local model's NLL is measured on once at load, to
 * normalise the nll feature per model (nll_ratio = prompt NLL / their
 * mean NLL). */
extern const char *const score_reference_texts[];
extern const size_t score_n_reference_texts;

/* The model's mean NLL over the reference texts, each rendered through its
 * chat template as one user message (engine/prompt.h) and measured with
 * nll_prompt on c; 0 when none could be measured. hearthd at load and
 * `hearth route` both take it from here. */
double score_reference_nll(const model *m, model_ctx *c, const chat_template *t,
                           const tok_vocab *v);

/* Feature values (every one finite). */
void score_features(const score_input *in, double x[SF_COUNT]);
/* Only the features that change while a request waits (nll, battery_low,
 * thermal, queue_wait), recomputed from in over x; reads no text. */
void score_set_state(const score_input *in, double x[SF_COUNT]);

/* The score of the values; contrib (may be NULL) gets weight * value per
 * feature. */
double score_combine(const score_weights *w, const double x[SF_COUNT],
                     double contrib[SF_COUNT]);

/* The feature that pushed hardest towards the cloud (largest positive
 * contribution), or -1 when none did. */
int score_top_feature(const double contrib[SF_COUNT]);

#endif
