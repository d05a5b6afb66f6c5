/* scheduler.h - the scheduler thread: continuous batching of generation jobs.
 *
 * The loop thread submits jobs (a tokenized prompt plus sampling settings).
 * The scheduler thread owns the model context and a fixed set of slots
 * (one KV cache each). Every step it builds one batch from the next token
 * of every sequence that is generating plus a chunk of pending prompt
 * tokens, runs the forward pass once, samples, detokenizes, applies stop
 * strings, and appends the text to the job. It then wakes the loop
 * (uv_async), which calls each changed job's notify callback there.
 *
 * A job is cancelled (its slots freed before the next step) when the loop
 * drops it, so a client that disconnects costs at most one more step, in
 * prompt processing as well as in generation.
 */
#ifndef HEARTH_SCHEDULER_H
#define HEARTH_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "model.h"
#include "sampler.h"
#include "tok.h"

typedef struct sched sched;

typedef struct sched_params {
    int n_slots;   /* sequences that run at once */
    int n_ctx;     /* context of each slot (tokens) */
    int max_queue; /* jobs waiting beyond the running ones; more is refused */
    int batch;     /* most tokens in one forward pass */
    int threads;   /* compute threads; 0: one per core */
} sched_params;

/* One generated token's log-probabilities (raw model, as sampler reports). */
typedef struct gen_lp {
    int32_t id;
    float logprob;
    int n_top;
    sampler_logprob top[SAMPLER_MAX_TOP];
} gen_lp;

/* The output of one choice. Fields marked (mu) are written by the
 * scheduler and read by the loop under the job's mutex. */
typedef struct gen_choice {
    char *text;          /* (mu) released text: complete UTF-8, stops cut */
    size_t len, cap;
    gen_lp *lp;          /* (mu) per generated token, when logprobs asked */
    size_t n_lp, cap_lp;
    int n_gen;           /* (mu) tokens generated */
    const char *finish;  /* (mu) "stop" or "length" once finished */
    size_t sent;         /* loop only: bytes of text already sent */
    size_t lp_sent;      /* loop only: logprob entries already sent */
    void *priv;          /* scheduler only */
} gen_choice;

typedef struct gen_job {
    /* input: set before sched_submit, read-only afterwards */
    int32_t *prompt;     /* owned by the job */
    int n_prompt;
    sampler_params sp;   /* sp.bias points into `bias` */
    sampler_bias *bias;
    int max_tokens;      /* > 0 */
    int n_choices;       /* >= 1 */
    char **stops;        /* owned */
    int n_stops;
    bool want_logprobs;
    int top_logprobs;    /* 0..SAMPLER_MAX_TOP */
    int32_t stop_token;  /* ends generation like EOS (a chat template's
                            end-of-turn token), or -1 */

    void (*notify)(struct gen_job *j, void *arg); /* on the loop thread */
    void *notify_arg;

    /* shared state */
    pthread_mutex_t mu;
    atomic_int refs;
    atomic_bool cancel;  /* set by the loop: stop and free the slots */
    bool started;        /* (mu) prompt processing has begun */
    int cached_tokens;   /* (mu) prompt tokens reused from a slot's cache */
    bool done;           /* (mu) every choice finished */
    char error[256];     /* (mu) non-empty when the scheduler failed it */
    gen_choice *choices; /* n_choices */
    uint64_t t_submit_ns, t_first_ns, t_done_ns; /* (mu) */

    struct gen_job *next; /* scheduler queue / wake list links */
    bool in_wake_list;
} gen_job;

/* A job with n_choices empty choices and one reference (the caller's). */
gen_job *gen_job_new(int n_choices); /* stop_token -1 */
void gen_job_ref(gen_job *j);
void gen_job_unref(gen_job *j);

int sched_new(sched **out, const model *m, const tok_vocab *v,
              const sched_params *p, uv_loop_t *loop, char *err, size_t errlen);
/* Cancels everything, joins the thread, closes the uv_async handle. */
void sched_free(sched *s);

/* Queue a job (the scheduler takes its own reference). -1 when the queue
 * is full (HTTP 429) or the job needs more slots than exist. */
int sched_submit(sched *s, gen_job *j, char *err, size_t errlen);
/* Mark a job cancelled and wake the scheduler. The caller still holds its
 * reference. */
void sched_cancel(sched *s, gen_job *j);

int sched_n_ctx(const sched *s);
int sched_n_slots(const sched *s);
/* Counters for /health and metrics. */
void sched_stats(sched *s, int *running, int *queued);

#endif
