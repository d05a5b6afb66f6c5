/* sched_internal.h - what scheduler.c, sched_seq.c and sched_nll.c share:
 * the scheduler itself and its slots. Not for other modules. */
#ifndef HEARTH_SCHED_INTERNAL_H
#define HEARTH_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "json_mask.h"
#include "kv.h"
#include "nll.h"
#include "scheduler.h"
#include "stop.h"

enum seq_state { SEQ_FREE = 0, SEQ_PREFILL, SEQ_DECODE };

/* NLL logits rows in one step at most (sched_nll.c): a prompt chunk whose
 * sampled positions do not fit is cut short and goes on next step. One
 * prompt has at most NLL_MAX_SAMPLES, so a step always makes progress. */
#define SCHED_NLL_ROWS NLL_MAX_SAMPLES

/* One running choice of a job, bound to a slot (its KV cache). Only the
 * scheduler thread touches it. */
typedef struct seq {
    enum seq_state state;
    sched_job *job;
    int choice;
    kv_cache *kv;
    sampler *smp;
    api_stop *stop;
    tok_stream ts;
    int n_fed;      /* prompt tokens in the cache so far */
    int32_t *hist;  /* the tokens whose keys/values the cache holds, kept
                       after the sequence ends for prefix reuse */
    int n_hist;
    int32_t next;   /* sampled token to feed in the next step */
    int nll_pos[NLL_MAX_SAMPLES]; /* prompt positions whose NLL is measured
                                     (choice 0 of a want_nll job), ascending */
    int n_nll_pos;
    /* this step */
    int logit_row;  /* row in the step's logits, or -1 */
    bool fed;       /* put tokens into the batch */
    int n_fed0, n_hist0; /* before the step, to roll back */
    int32_t drawn;       /* the token sampled, -1 (all banned) or -2 (the
                            grammar allows no token) */
    jgram_state *gst;    /* the job's grammar: where this choice is in it */
    uint8_t *mask;       /* n_vocab: the tokens the grammar allows next */
    sampler_result res;  /* its log-probabilities, when asked for */
} seq;

/* One NLL row of the step: the logits of a sampled prompt position. */
typedef struct sched_nll_row {
    seq *q;        /* whose prompt */
    int row;       /* in the step's logits */
    int32_t next;  /* the prompt token the row predicts */
    double val;    /* its NLL, once computed */
} sched_nll_row;

struct sched {
    const model *m;
    const tok_vocab *v;
    sched_params p;
    int32_t n_vocab;
    model_ctx *ctx;
    seq *seqs;         /* n_slots */
    int *order;        /* n_slots: scratch of the batch builder and sampling */
    sched_job **pre;   /* n_slots: scratch, jobs completing their prefill */
    float *logits;     /* n_slots + SCHED_NLL_ROWS rows of n_vocab: one per
                          sequence (decode or last prompt token), plus the
                          step's NLL rows */
    model_token *batch;
    jmask_vocab *mv;   /* the vocabulary's mask tables, built by the first
                          job with a grammar */
    sched_nll_row nll[SCHED_NLL_ROWS]; /* this step's NLL rows */
    int n_nll;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;  /* the scheduler thread waits on it */
    sched_job *q_head, *q_tail; /* waiting jobs, oldest first */
    sched_counters n;   /* running, queued and the totals */
    bool stop;
    bool kick;          /* a job was submitted, cancelled or released: the
                           thread looks again before it sleeps */
    sched_job *wake_head, *wake_tail; /* jobs with news for the loop */

    uv_loop_t *loop;
    uv_async_t async;
};

/* scheduler.c */
uint64_t sched_now_ns(void); /* CLOCK_MONOTONIC */
/* Put a job on the wake list (once) and wake the loop; s->mu not held. */
void sched_wake(sched *s, sched_job *j);
/* A running job's last choice finished: count it ended, wake the loop and
 * drop the scheduler's reference. Exactly once per job (done flips). */
void sched_job_ended(sched *s, sched_job *j);

/* sched_grammar.c: structured output. place: a choice starts (-1 when
 * memory is short); mask: before its draw, the disallowed logits to -inf
 * (false when no token is allowed); advance: feed the drawn token. */
int sched_grammar_place(sched *s, seq *q);
bool sched_grammar_mask(sched *s, seq *q, float *row);
void sched_grammar_advance(sched *s, seq *q, int32_t id);
void sched_grammar_free(sched *s);

/* sched_seq.c, all on the scheduler thread */
int sched_free_slots(const sched *s);
/* Bind a job's choices to free slots (the caller checked they fit). */
void sched_place(sched *s, sched_job *j);
/* One engine step; false when there was nothing to do. */
bool sched_step(sched *s);
/* Fail every running job with msg (the scheduler is stopping). */
void sched_fail_all(sched *s, const char *msg);
/* Whether a step has anything to do: a sequence that is neither free nor
 * held (sched_job.hold), or a held one whose job was cancelled. */
bool sched_has_work(const sched *s);

/* sched_nll.c, on the scheduler thread */
/* Choose the positions to measure for a placed sequence (keep: the tokens
 * found in its cache). */
void sched_nll_place(seq *q, const sched_job *j, int choice, int keep);
/* The tokens of a prompt chunk of `take` from q->n_fed whose sampled
 * positions fit the step's NLL rows left: take, or fewer. */
int sched_nll_fit(const sched *s, const seq *q, int take);
/* Index in q->nll_pos of the first position >= k. */
int sched_nll_first(const seq *q, int k);
/* Record that logits row `row` measures q's position before `next`. */
void sched_nll_add(sched *s, seq *q, int row, int32_t next);
/* After a forward pass that succeeded: compute the step's NLL rows and add
 * them to their jobs (counters nll_rows, nll_ns). */
void sched_nll_collect(sched *s);

#endif
