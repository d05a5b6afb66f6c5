/* scheduler.c - the scheduler's lifecycle, its wait queue, the wake list
 * and the thread's loop (see scheduler.h). Lock order: s->mu before a
 * job's mu, never the other way round. */
#include "sched_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* ---------------------------------------------------------- wake list */

/* The scheduler thread adds jobs with news; the loop takes them one at a
 * time, each under the lock, so a job that is added again while the loop
 * notifies another is simply seen again - no list is ever walked
 * unlocked. The list holds a reference to each job on it. */
void sched_wake(sched *s, sched_job *j)
{
    pthread_mutex_lock(&s->mu);
    bool added = !j->in_wake;
    if (added) {
        j->in_wake = true;
        sched_job_ref(j);
        j->wake_next = NULL;
        if (s->wake_tail)
            s->wake_tail->wake_next = j;
        else
            s->wake_head = j;
        s->wake_tail = j;
    }
    pthread_mutex_unlock(&s->mu);
    if (added)
        uv_async_send(&s->async);
}

static sched_job *wake_pop(sched *s)
{
    pthread_mutex_lock(&s->mu);
    sched_job *j = s->wake_head;
    if (j) {
        s->wake_head = j->wake_next;
        if (!s->wake_head)
            s->wake_tail = NULL;
        j->wake_next = NULL;
        j->in_wake = false;
    }
    pthread_mutex_unlock(&s->mu);
    return j;
}

/* On the loop thread. */
static void on_async(uv_async_t *a)
{
    sched *s = a->data;
    sched_job *j;
    while ((j = wake_pop(s))) {
        if (j->notify && !atomic_load(&j->cancel))
            j->notify(j, j->notify_arg);
        sched_job_unref(j);
    }
}

/* ---------------------------------------------------------- ending jobs */

uint64_t sched_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Finish every open choice with f and mark the job done (j->mu held).
 * False when it was done already. */
static bool mark_done(sched_job *j, sched_finish f)
{
    if (j->done)
        return false;
    for (int i = 0; i < j->n_choices; i++)
        if (j->choices[i].finish == SCHED_RUNNING)
            j->choices[i].finish = f;
    j->done = true;
    j->t_done_ns = sched_now_ns();
    return true;
}

void sched_job_ended(sched *s, sched_job *j)
{
    pthread_mutex_lock(&s->mu);
    s->n.running--;
    s->n.ended++;
    pthread_mutex_unlock(&s->mu);
    sched_wake(s, j);
    sched_job_unref(j);
}

/* ---------------------------------------------------------- queue */

static void queue_unlink(sched *s, sched_job *j)
{
    if (j->q_prev)
        j->q_prev->q_next = j->q_next;
    else
        s->q_head = j->q_next;
    if (j->q_next)
        j->q_next->q_prev = j->q_prev;
    else
        s->q_tail = j->q_prev;
    j->q_prev = j->q_next = NULL;
    j->queued = false;
    s->n.queued--;
}

/* Capacity: one job per slot running, max_queue more waiting (s->mu
 * held). True, with the reason in err, when a new job cannot be taken. */
static bool full(const sched *s, char *err, size_t errlen)
{
    if (s->stop)
        snprintf(err, errlen, "the server is stopping");
    else if (s->n.queued + s->n.running >= s->p.max_queue + s->p.n_slots)
        snprintf(err, errlen, "the server is busy: %d requests are waiting (max_queue %d)",
                 s->n.queued, s->p.max_queue);
    else
        return false;
    return true;
}

sched_status sched_submit(sched *s, sched_job *j, char *err, size_t errlen)
{
    /* jobs that could never run are refused here, not failed in a step
     * where they would take other sequences down with them */
    if (j->n_choices > s->p.n_slots) {
        snprintf(err, errlen, "n=%d needs more parallel slots than the %d configured",
                 j->n_choices, s->p.n_slots);
        return SCHED_INVALID;
    }
    if (j->n_prompt < 1 || j->n_prompt >= s->p.n_ctx || j->max_tokens < 1) {
        snprintf(err, errlen, "a prompt of %d tokens (max_tokens %d) does not fit a context "
                 "of %d", j->n_prompt, j->max_tokens, s->p.n_ctx);
        return SCHED_INVALID;
    }
    for (int i = 0; i < j->n_prompt; i++)
        if (j->prompt[i] < 0 || j->prompt[i] >= s->n_vocab) {
            snprintf(err, errlen, "prompt token %d is outside the vocabulary (0..%d)",
                     j->prompt[i], s->n_vocab - 1);
            return SCHED_INVALID;
        }
    pthread_mutex_lock(&s->mu);
    if (full(s, err, errlen)) {
        pthread_mutex_unlock(&s->mu);
        return SCHED_BUSY;
    }
    sched_job_ref(j);
    j->t_submit_ns = sched_now_ns();
    j->q_next = NULL;
    j->q_prev = s->q_tail;
    if (s->q_tail)
        s->q_tail->q_next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    j->queued = true;
    s->n.queued++;
    s->n.submitted++;
    s->kick = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return SCHED_OK;
}

void sched_cancel(sched *s, sched_job *j)
{
    atomic_store(&j->cancel, true);
    pthread_mutex_lock(&s->mu);
    if (j->queued) {
        /* It never ran: out of the queue now, so that its place is free
         * for the next request. */
        queue_unlink(s, j);
        pthread_mutex_lock(&j->mu);
        bool ended = mark_done(j, SCHED_FINISH_CANCELLED);
        pthread_mutex_unlock(&j->mu);
        if (ended)
            s->n.ended++;
        sched_job_unref(j); /* the queue's; the caller keeps its own */
    }
    s->kick = true; /* a held job's slot frees in the next step */
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sched_release(sched *s, sched_job *j)
{
    atomic_store(&j->released, true);
    pthread_mutex_lock(&s->mu);
    s->kick = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Move the queued jobs that fit into free slots, oldest first; a job starts
 * only when all of its choices fit. The queue is read under the lock, the
 * slots are the scheduler thread's own. */
static void admit(sched *s)
{
    int free_slots = sched_free_slots(s);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        sched_job *j = s->q_head;
        if (!j || j->n_choices > free_slots) {
            s->n.slots_busy = s->p.n_slots - free_slots;
            pthread_mutex_unlock(&s->mu);
            return;
        }
        queue_unlink(s, j);
        s->n.running++;
        pthread_mutex_unlock(&s->mu);
        /* the queue's reference is now the running job's */
        sched_place(s, j);
        free_slots -= j->n_choices;
    }
}

/* ---------------------------------------------------------- thread */

static void *sched_thread(void *arg)
{
    sched *s = arg;
    /* Test hook: slow every step down so that tests can act in the middle
     * of a generation (disconnects, queue limits, keep-alive pings). */
    const char *delay_env = getenv("HEARTH_DEBUG_STEP_DELAY_MS");
    long delay_ms = delay_env ? strtol(delay_env, NULL, 10) : 0;
    for (;;) {
        admit(s);
        bool work = sched_has_work(s);
        pthread_mutex_lock(&s->mu);
        /* nothing to run (idle, or every running job held): sleep until a
         * job is submitted, cancelled or released. A job that cannot be
         * admitted while slots run waits for the next step instead. */
        while (!s->stop && !work && !s->kick)
            pthread_cond_wait(&s->cv, &s->mu);
        s->kick = false;
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (!work)
            continue; /* admit, and look again */
        if (sched_step(s) && delay_ms > 0) {
            struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    sched_fail_all(s, "server stopping");
    return NULL;
}

/* ---------------------------------------------------------- lifecycle */

static void release(sched *s)
{
    if (s->seqs)
        for (int i = 0; i < s->p.n_slots; i++) {
            kv_free(s->seqs[i].kv);
            free(s->seqs[i].hist);
        }
    model_ctx_free(s->ctx);
    sched_grammar_free(s);
    free(s->seqs);
    free(s->order);
    free(s->pre);
    free(s->logits);
    free(s->batch);
}

static void on_async_closed(uv_handle_t *h) { free(h->data); }

int sched_new(sched **out, const model *m, const tok_vocab *v, const sched_params *p,
              uv_loop_t *loop, char *err, size_t errlen)
{
    *out = NULL;
    if (p->n_slots < 1 || p->n_slots > 256 || p->batch < 1 || p->n_ctx < 8) {
        snprintf(err, errlen, "scheduler: bad parameters (slots %d, batch %d, ctx %d)",
                 p->n_slots, p->batch, p->n_ctx);
        return -1;
    }
    sched *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->m = m;
    s->v = v;
    s->p = *p;
    if (!s->p.decode)
        s->p.decode = model_decode;
    s->n_vocab = model_hparams_of(m)->n_vocab;
    s->loop = loop;
    int batch_cap = p->batch + p->n_slots;
    s->seqs = calloc((size_t)p->n_slots, sizeof *s->seqs);
    s->order = calloc((size_t)p->n_slots, sizeof *s->order);
    s->pre = calloc((size_t)p->n_slots, sizeof *s->pre);
    /* a row per sequence (decode, or a prompt's last token) and the NLL
     * rows (sched_nll.c) */
    size_t rows = (size_t)p->n_slots + SCHED_NLL_ROWS;
    s->logits = malloc(rows * (size_t)s->n_vocab * sizeof(float));
    s->batch = malloc((size_t)batch_cap * sizeof *s->batch);
    if (!s->seqs || !s->order || !s->pre || !s->logits || !s->batch) {
        snprintf(err, errlen, "out of memory for %d slots", p->n_slots);
        goto fail;
    }
    if (model_ctx_new(m, batch_cap, &s->ctx, err, errlen) < 0)
        goto fail;
    if (p->threads > 0 && model_ctx_set_threads(s->ctx, p->threads, err, errlen) < 0)
        goto fail;
    for (int i = 0; i < p->n_slots; i++) {
        if (model_kv_new(m, p->n_ctx, 0, KV_F16, &s->seqs[i].kv, err, errlen) < 0)
            goto fail;
        s->seqs[i].hist = malloc((size_t)kv_n_ctx(s->seqs[i].kv) * sizeof(int32_t));
        if (!s->seqs[i].hist) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    uv_async_init(loop, &s->async, on_async);
    s->async.data = s;
    if (pthread_create(&s->thread, NULL, sched_thread, s) != 0) {
        snprintf(err, errlen, "cannot start the scheduler thread");
        release(s);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        uv_close((uv_handle_t *)&s->async, on_async_closed); /* frees s */
        return -1;
    }
    s->thread_started = true;
    *out = s;
    return 0;
fail:
    release(s);
    free(s);
    return -1;
}

void sched_free(sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    /* jobs still queued end here; nobody waits for their news */
    sched_job *j;
    while ((j = s->q_head)) {
        queue_unlink(s, j);
        pthread_mutex_lock(&j->mu);
        if (!j->error[0])
            snprintf(j->error, sizeof j->error, "server stopping");
        if (mark_done(j, SCHED_FINISH_ERROR))
            s->n.ended++;
        pthread_mutex_unlock(&j->mu);
        sched_job_unref(j);
    }
    while ((j = wake_pop(s)))
        sched_job_unref(j);
    release(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    uv_close((uv_handle_t *)&s->async, on_async_closed);
}

bool sched_is_full(sched *s, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    bool f = full(s, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return f;
}

int sched_n_ctx(const sched *s) { return s->p.n_ctx; }
int sched_n_slots(const sched *s) { return s->p.n_slots; }

void sched_stats(sched *s, sched_counters *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->n;
    pthread_mutex_unlock(&s->mu);
}
