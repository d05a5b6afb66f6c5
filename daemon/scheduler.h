/* scheduler.h - the scheduler thread: continuous batching of generation jobs.
 *
 * The loop thread submits jobs (sched_job.h: a tokenized prompt plus
 * sampling settings). The scheduler thread owns the model context and a
 * fixed set of slots (one KV cache each). Every step it builds one batch
 * from the next token of every sequence that is generating plus chunks of
 * pending prompts (shortest first), runs the forward pass once - each
 * weight matrix is read once for all of them - samples, detokenizes,
 * applies stop strings, and appends the text to the job. It then wakes the
 * loop (uv_async), which calls each changed job's notify callback there.
 *
 * A job is cancelled when the loop drops it: a queued job leaves the queue
 * at once, a running one frees its slots before the next step, so a client
 * that disconnects costs at most one more step. A slot's cache outlives its
 * job (prefix cache), whichever way the job ended.
 *
 * The router's view of a prompt: a job with want_nll has the NLL of a
 * sample of its prompt positions measured during its prefill (nll.h: their
 * logits rows are computed with the chunk, one output-projection row each,
 * and their NLL on the context's threads). A job with hold stops after its
 * prefill and first token (sched_job.prefilled, with a notify) until the
 * loop releases it (sched_release: it goes on as if never stopped) or
 * cancels it (its prefilled cache stays for the next request that starts
 * the same way).
 *
 * Source files: scheduler.c (lifecycle, queue, wake list, thread loop),
 * sched_seq.c (slots, batch builder, sampling), sched_nll.c (the NLL rows),
 * sched_job.c (the job).
 */
#ifndef HEARTH_SCHEDULER_H
#define HEARTH_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "model.h"
#include "sched_job.h"
#include "tok.h"

typedef struct sched sched;

/* The forward pass: model_decode, or a test's stand-in that fails. */
typedef int (*sched_decode_fn)(model_ctx *c, const model_batch *b, float *logits,
                               char *err, size_t errlen);

typedef struct sched_params {
    int n_slots;   /* sequences that run at once */
    int n_ctx;     /* context of each slot (tokens) */
    int max_queue; /* jobs waiting beyond the running ones; more is refused */
    int batch;     /* most tokens in one forward pass */
    int threads;   /* compute threads; 0: one per core, adapting */
    sched_decode_fn decode; /* NULL: model_decode */
} sched_params;

typedef enum sched_status {
    SCHED_OK = 0,
    SCHED_BUSY,    /* running + queued jobs are at capacity (HTTP 429) */
    SCHED_INVALID  /* the job can never run here, e.g. n > slots (400) */
} sched_status;

typedef struct sched_counters {
    int running;         /* jobs holding slots */
    int queued;          /* jobs waiting for slots */
    int slots_busy;      /* slots holding a sequence, as of the last
                            admission (before each step, and once more
                            before the thread sleeps) */
    uint64_t submitted;  /* jobs accepted by sched_submit */
    uint64_t ended;      /* jobs that ended (done), however they ended */
    uint64_t steps;      /* forward passes run */
    uint64_t failed_steps;
    uint64_t tokens;     /* tokens through forward passes */
    uint64_t decode_ns;  /* time in forward passes */
    uint64_t sample_ns;  /* time sampling and detokenizing after them */
    uint64_t nll_rows;   /* prompt positions whose NLL was measured */
    uint64_t nll_ns;     /* time computing their NLL from the logits (the
                            rows' forward pass is in decode_ns) */
} sched_counters;

int sched_new(sched **out, const model *m, const tok_vocab *v,
              const sched_params *p, uv_loop_t *loop, char *err, size_t errlen);
/* Ends every job (running ones fail with "server stopping"), joins the
 * thread, closes the uv_async handle (the memory goes once the loop has
 * closed it). */
void sched_free(sched *s);

/* Queue a job; the scheduler takes its own reference. On refusal err says
 * why and the job is untouched. */
sched_status sched_submit(sched *s, sched_job *j, char *err, size_t errlen);
/* Cancel a job: a queued one ends at once, a running one before the next
 * step. The caller still holds its reference. Safe to call more than once
 * and on a job that already ended. */
void sched_cancel(sched *s, sched_job *j);
/* Let a held job (sched_job.hold) go on: its sequences are scheduled again
 * from the next step, and it generates what it would have unheld. Harmless
 * on a job that is not held (yet: it then never stops) or has ended. */
void sched_release(sched *s, sched_job *j);

/* Whether running + queued jobs are at capacity now (a new job would get
 * SCHED_BUSY, with the message err then holds): lets a caller refuse
 * before costly preparation. */
bool sched_is_full(sched *s, char *err, size_t errlen);

int sched_n_ctx(const sched *s);
int sched_n_slots(const sched *s);
void sched_stats(sched *s, sched_counters *out);

#endif
