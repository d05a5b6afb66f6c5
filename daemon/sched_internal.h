/* sched_internal.h - what scheduler.c and sched_seq.c share: the scheduler
 * itself and its slots. Not for other modules. */
#ifndef HEARTH_SCHED_INTERNAL_H
#define HEARTH_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "kv.h"
#include "scheduler.h"
#include "stop.h"

enum seq_state { SEQ_FREE = 0, SEQ_PREFILL, SEQ_DECODE };

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
    /* this step */
    int logit_row;  /* row in the step's logits, or -1 */
    bool fed;       /* put tokens into the batch */
    int n_fed0, n_hist0; /* before the step, to roll back */
    int32_t drawn;       /* the token sampled, or -1 */
    sampler_result res;  /* its log-probabilities, when asked for */
} seq;

struct sched {
    const model *m;
    const tok_vocab *v;
    sched_params p;
    int32_t n_vocab;
    model_ctx *ctx;
    seq *seqs;         /* n_slots */
    int *order;        /* n_slots: scratch of the batch builder and sampling */
    float *logits;     /* n_slots rows of n_vocab */
    model_token *batch;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;  /* the scheduler thread waits on it */
    sched_job *q_head, *q_tail; /* waiting jobs, oldest first */
    sched_counters n;   /* running, queued and the totals */
    bool stop;
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

/* sched_seq.c, all on the scheduler thread */
int sched_free_slots(const sched *s);
/* Bind a job's choices to free slots (the caller checked they fit). */
void sched_place(sched *s, sched_job *j);
/* One engine step; false when there was nothing to do. */
bool sched_step(sched *s);
/* Fail every running job with msg (the scheduler is stopping). */
void sched_fail_all(sched *s, const char *msg);

#endif
