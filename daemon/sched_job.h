/* sched_job.h - one generation request as the scheduler sees it, and its
 * lifetime.
 *
 * A job is shared by two threads: the loop thread (gen.c) builds it,
 * submits it, reads its output as it grows and drops it; the scheduler
 * thread fills the output. It is reference counted: the loop holds one
 * reference, the scheduler one while the job is queued or running, and the
 * wake list one while the job waits for its notify call. The last unref
 * frees it.
 *
 * Fields fall into four groups:
 *   input    set before sched_submit, read-only afterwards;
 *   output   written by the scheduler, read by the loop, under `mu`;
 *   loop     the loop thread's alone;
 *   links    the scheduler's queue and wake list, under the scheduler's
 *            own mutex (never the job's).
 */
#ifndef HEARTH_SCHED_JOB_H
#define HEARTH_SCHED_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_grammar.h"
#include "sampler.h"

/* How a choice ended. SCHED_RUNNING (0) until it does. */
typedef enum sched_finish {
    SCHED_RUNNING = 0,
    SCHED_FINISH_STOP,      /* end of text, end of turn or a stop string */
    SCHED_FINISH_LENGTH,    /* max_tokens or the context is full */
    SCHED_FINISH_CANCELLED, /* the loop dropped the job */
    SCHED_FINISH_ERROR      /* the job failed: see sched_job.error */
} sched_finish;

/* One generated token's log-probabilities (raw model, as sampler reports). */
typedef struct sched_lp {
    int32_t id;
    float logprob;
    int n_top;
    sampler_logprob top[SAMPLER_MAX_TOP];
} sched_lp;

/* The output of one choice. */
typedef struct sched_choice {
    char *text;          /* output: released text, complete UTF-8, stops cut */
    size_t len, cap;
    sched_lp *lp;        /* output: per generated token, when logprobs asked */
    size_t n_lp, cap_lp;
    int n_gen;           /* output: tokens generated */
    sched_finish finish; /* output */
    int stop_index;      /* output: the stop string that ended it, or -1 */
    size_t sent;         /* loop: bytes of text already sent */
    size_t lp_sent;      /* loop: logprob entries already sent */
} sched_choice;

typedef struct sched_job {
    /* input */
    int32_t *prompt;     /* owned */
    int n_prompt;
    sampler_params sp;   /* sp.bias points into `bias` */
    sampler_bias *bias;  /* owned */
    int max_tokens;      /* > 0 */
    int n_choices;       /* 1..64 */
    char **stops;        /* owned, n_stops strings */
    int n_stops;
    bool want_logprobs;
    int top_logprobs;    /* 0..SAMPLER_MAX_TOP */
    bool special_text;   /* control tokens (not end of generation) add
                            their text: tool-call markers such as
                            [TOOL_CALLS] (api/toolcall.h) */
    int32_t stop_token;  /* ends generation like EOS (a chat template's
                            end-of-turn token), or -1 */
    bool want_nll;       /* measure the prompt's NLL during the prefill
                            (nll.h: up to NLL_MAX_SAMPLES positions of
                            choice 0's prompt, into nll_sum / nll_n) */
    jgram *grammar;      /* owned, or NULL: structured output - every draw
                            is masked to what this compiled JSON Schema
                            allows next (sched_grammar.c) */
    bool hold;           /* once every choice's prompt is in the cache and
                            its first token sampled, run no further step
                            for the job until sched_release (or cancel) */

    /* loop: called on the loop thread when the output changed; cleared by
     * the loop before it drops the job. */
    void (*notify)(struct sched_job *j, void *arg);
    void *notify_arg;

    /* shared */
    pthread_mutex_t mu;
    atomic_int refs;
    atomic_bool cancel;  /* set by sched_cancel */
    atomic_bool released; /* set by sched_release: `hold` no longer holds */

    /* output (under mu) */
    int cached_tokens;   /* prompt tokens reused from a slot's cache */
    bool prefilled;      /* every choice's prompt is in its cache: set once,
                            after the forward pass that completed the last
                            one, and followed by a notify (unless the job
                            ended in that step: then before done) */
    double nll_sum;      /* the NLL (nats) summed over the sampled prompt
                            positions computed in this job's prefill... */
    int nll_n;           /* ...and their count: final once prefilled. The
                            positions taken from the prefix cache are not
                            recomputed, so a prompt found whole in a cache
                            gives 0 - read it as "unknown", not as 0 nats */
    bool done;           /* every choice finished; set exactly once */
    char error[256];     /* non-empty when the job failed */
    sched_choice *choices; /* n_choices */
    uint64_t t_submit_ns, t_first_ns, t_done_ns;

    /* links (under the scheduler's mutex) */
    struct sched_job *q_prev, *q_next; /* the wait queue */
    bool queued;
    struct sched_job *wake_next;       /* the wake list */
    bool in_wake;
} sched_job;

/* A job with n_choices empty choices and one reference (the caller's);
 * stop_token -1. NULL when n_choices is out of range or memory is short. */
sched_job *sched_job_new(int n_choices);
void sched_job_ref(sched_job *j);
void sched_job_unref(sched_job *j);

/* Whether every choice finished (takes mu). */
bool sched_job_done(sched_job *j);

/* Scheduler side, mu held: append released text or a token's
 * log-probabilities to a choice. -1 when memory is short. */
int sched_choice_append(sched_choice *c, const char *text, size_t len);
int sched_choice_add_lp(sched_choice *c, const sampler_result *r);

/* The API's name of a finish: "stop", "length"; cancelled and failed
 * choices are never shown to a client and read "stop". */
const char *sched_finish_name(sched_finish f);

#endif
