/* scheduler.c - see scheduler.h. */
#include "scheduler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.h"
#include "log.h"
#include "stop.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------- jobs */

gen_job *gen_job_new(int n_choices)
{
    if (n_choices < 1 || n_choices > 64)
        return NULL;
    gen_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->choices = calloc((size_t)n_choices, sizeof *j->choices);
    if (!j->choices) {
        free(j);
        return NULL;
    }
    j->n_choices = n_choices;
    j->stop_token = -1;
    pthread_mutex_init(&j->mu, NULL);
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, false);
    return j;
}

void gen_job_ref(gen_job *j) { atomic_fetch_add(&j->refs, 1); }

void gen_job_unref(gen_job *j)
{
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    for (int i = 0; i < j->n_choices; i++) {
        free(j->choices[i].text);
        free(j->choices[i].lp);
    }
    for (int i = 0; i < j->n_stops; i++)
        free(j->stops[i]);
    free(j->stops);
    free(j->choices);
    free(j->prompt);
    free(j->bias);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* ---------------------------------------------------------- scheduler */

enum seq_state { SEQ_FREE = 0, SEQ_PREFILL, SEQ_DECODE };

/* One running choice of a job, bound to a slot (its KV cache). */
typedef struct seq {
    enum seq_state state;
    gen_job *job;
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
    int logit_row;  /* row in the step's logits, or -1 */
} seq;

struct sched {
    const model *m;
    const tok_vocab *v;
    sched_params p;
    int32_t n_vocab;
    model_ctx *ctx;
    seq *seqs;         /* n_slots */
    float *logits;     /* n_slots rows of n_vocab */
    model_token *batch;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* queue, wake list, stop flag, counters */
    pthread_cond_t cv;
    gen_job *queue_head, *queue_tail;
    int n_queued;
    int n_running_jobs;
    bool stop;

    uv_loop_t *loop;
    uv_async_t async;
    gen_job *wake;      /* jobs with news for the loop */
};

/* Called with s->mu held or not; takes it itself. */
static void wake_loop(sched *s, gen_job *j)
{
    pthread_mutex_lock(&s->mu);
    if (!j->in_wake_list) {
        j->in_wake_list = true;
        gen_job_ref(j);
        j->next = s->wake;
        s->wake = j;
    }
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
}

static void on_async(uv_async_t *a)
{
    sched *s = a->data;
    pthread_mutex_lock(&s->mu);
    gen_job *list = s->wake;
    s->wake = NULL;
    for (gen_job *j = list; j; j = j->next)
        j->in_wake_list = false;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        gen_job *j = list;
        list = j->next;
        if (j->notify && !atomic_load(&j->cancel))
            j->notify(j, j->notify_arg);
        gen_job_unref(j);
    }
}

/* Append released text to a choice (job mutex held). */
static int choice_append(gen_choice *c, const char *text, size_t len)
{
    if (len == 0)
        return 0;
    if (c->len + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->len + len + 1)
            cap *= 2;
        char *nt = realloc(c->text, cap);
        if (!nt)
            return -1;
        c->text = nt;
        c->cap = cap;
    }
    memcpy(c->text + c->len, text, len);
    c->len += len;
    c->text[c->len] = '\0';
    return 0;
}

static int choice_add_lp(gen_choice *c, const sampler_result *r)
{
    if (c->n_lp == c->cap_lp) {
        size_t cap = c->cap_lp ? c->cap_lp * 2 : 64;
        gen_lp *nl = realloc(c->lp, cap * sizeof *nl);
        if (!nl)
            return -1;
        c->lp = nl;
        c->cap_lp = cap;
    }
    gen_lp *e = &c->lp[c->n_lp++];
    e->id = r->id;
    e->logprob = r->logprob;
    e->n_top = r->n_top;
    memcpy(e->top, r->top, sizeof e->top);
    return 0;
}

static void seq_release(sched *s, seq *q)
{
    sampler_free(q->smp);
    api_stop_free(q->stop);
    q->smp = NULL;
    q->stop = NULL;
    /* The cache is kept: the next prompt that starts with the same tokens
     * (a chat's history) reuses it. A failed step may have left the cache
     * and hist out of step: then forget both. */
    if (kv_len(q->kv) != q->n_hist) {
        kv_clear(q->kv);
        q->n_hist = 0;
    }
    q->state = SEQ_FREE;
    q->job = NULL;
}

/* The job is finished (all choices) or failed: drop the scheduler's hold. */
static void job_finish_if_done(sched *s, gen_job *j)
{
    pthread_mutex_lock(&j->mu);
    bool all = true;
    for (int i = 0; i < j->n_choices; i++)
        if (!j->choices[i].finish)
            all = false;
    bool newly_done = all && !j->done;
    if (newly_done) {
        j->done = true;
        j->t_done_ns = now_ns();
    }
    pthread_mutex_unlock(&j->mu);
    if (newly_done) {
        pthread_mutex_lock(&s->mu);
        s->n_running_jobs--;
        pthread_mutex_unlock(&s->mu);
        wake_loop(s, j);
        gen_job_unref(j);
    }
}

static void job_fail(sched *s, gen_job *j, const char *msg)
{
    pthread_mutex_lock(&j->mu);
    if (!j->error[0])
        snprintf(j->error, sizeof j->error, "%s", msg);
    for (int i = 0; i < j->n_choices; i++)
        if (!j->choices[i].finish)
            j->choices[i].finish = "error";
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < s->p.n_slots; i++)
        if (s->seqs[i].job == j)
            seq_release(s, &s->seqs[i]);
    job_finish_if_done(s, j);
}

/* Finish one choice: release held-back text (unless a stop matched). */
static void seq_finish(sched *s, seq *q, const char *reason)
{
    gen_job *j = q->job;
    gen_choice *c = &j->choices[q->choice];
    api_stop_out o = {0};
    char tail[64];
    int nt = tok_stream_flush(&q->ts, tail, sizeof tail);
    pthread_mutex_lock(&j->mu);
    if (strcmp(reason, "stop_string") != 0) {
        if (nt > 0) {
            api_stop_feed(q->stop, tail, (size_t)nt, &o);
            choice_append(c, o.text, o.len);
        }
        if (o.stop < 0 || nt <= 0) {
            api_stop_flush(q->stop, &o);
            choice_append(c, o.text, o.len);
        }
    }
    c->finish = strcmp(reason, "length") == 0 ? "length" : "stop";
    pthread_mutex_unlock(&j->mu);
    seq_release(s, q);
    job_finish_if_done(s, j);
}

/* Handle the token sampled for q. */
static void seq_accept(sched *s, seq *q, const sampler_result *r)
{
    gen_job *j = q->job;
    gen_choice *c = &j->choices[q->choice];
    sampler_accept(q->smp, r->id);

    if (tok_is_eog(s->v, r->id) || r->id == j->stop_token) {
        pthread_mutex_lock(&j->mu);
        c->n_gen++;
        pthread_mutex_unlock(&j->mu);
        seq_finish(s, q, "stop");
        return;
    }
    char piece[512];
    int n = tok_stream_push(&q->ts, r->id, piece, sizeof piece);
    if (n < 0)
        n = 0; /* a piece longer than the buffer: dropped, not overrun */
    api_stop_out o;
    api_stop_feed(q->stop, piece, (size_t)n, &o);
    pthread_mutex_lock(&j->mu);
    c->n_gen++;
    int rc = choice_append(c, o.text, o.len);
    if (rc == 0 && j->want_logprobs)
        rc = choice_add_lp(c, r);
    int n_gen = c->n_gen;
    pthread_mutex_unlock(&j->mu);
    if (rc < 0) {
        job_fail(s, j, "out of memory");
        return;
    }
    if (o.stop >= 0)
        seq_finish(s, q, "stop_string");
    else if (n_gen >= j->max_tokens || kv_len(q->kv) >= kv_n_ctx(q->kv))
        seq_finish(s, q, "length");
    else {
        q->next = r->id;
        q->state = SEQ_DECODE;
        wake_loop(s, j);
    }
}

/* Move queued jobs into free slots (s->mu held). A job starts only when
 * all of its choices fit. */
static void admit(sched *s)
{
    while (s->queue_head) {
        gen_job *j = s->queue_head;
        int free_slots = 0;
        for (int i = 0; i < s->p.n_slots; i++)
            free_slots += s->seqs[i].state == SEQ_FREE;
        if (atomic_load(&j->cancel)) {
            /* dropped while waiting */
        } else if (free_slots < j->n_choices) {
            return;
        }
        s->queue_head = j->next;
        if (!s->queue_head)
            s->queue_tail = NULL;
        s->n_queued--;
        j->next = NULL;
        if (atomic_load(&j->cancel)) {
            gen_job_unref(j);
            continue;
        }
        s->n_running_jobs++;
        for (int placed = 0; placed < j->n_choices; placed++) {
            /* the free slot whose cache shares the longest prefix */
            seq *q = NULL;
            int best = -1;
            for (int i = 0; i < s->p.n_slots; i++) {
                seq *c = &s->seqs[i];
                if (c->state != SEQ_FREE)
                    continue;
                int common = 0;
                while (common < c->n_hist && common < j->n_prompt &&
                       c->hist[common] == j->prompt[common])
                    common++;
                if (common > best) {
                    best = common;
                    q = c;
                }
            }
            /* at least the last prompt token runs, for its logits */
            int keep = best < j->n_prompt ? best : j->n_prompt - 1;
            kv_truncate(q->kv, keep);
            q->n_hist = keep;
            if (placed == 0) {
                pthread_mutex_lock(&j->mu);
                j->cached_tokens = keep;
                pthread_mutex_unlock(&j->mu);
            }
            sampler_params sp = j->sp;
            if (placed > 0)
                sp.seed = j->sp.seed + (uint64_t)placed; /* distinct choices */
            char err[200];
            q->job = j;
            q->choice = placed;
            q->n_fed = keep;
            q->state = SEQ_PREFILL;
            tok_stream_init(&q->ts, s->v);
            /* a failure leaves smp or stop NULL: step() fails the job */
            if (sampler_new(&sp, s->n_vocab, &q->smp, err, sizeof err) == 0)
                api_stop_new((const char *const *)j->stops, (size_t)j->n_stops, &q->stop);
        }
    }
}

/* Record a token fed into a sequence's cache. */
static void hist_push(seq *q, int32_t id)
{
    int cap = kv_n_ctx(q->kv);
    if (q->n_hist < cap)
        q->hist[q->n_hist++] = id;
}

/* One engine step. Returns false when there was nothing to do. */
static bool step(sched *s)
{
    /* cancelled jobs free their slots first */
    for (int i = 0; i < s->p.n_slots; i++) {
        seq *q = &s->seqs[i];
        if (q->state == SEQ_FREE)
            continue;
        if (!q->smp || !q->stop) {
            job_fail(s, q->job, "out of memory starting the sequence");
            continue;
        }
        if (atomic_load(&q->job->cancel)) {
            gen_job *j = q->job;
            pthread_mutex_lock(&j->mu);
            gen_choice *c = &j->choices[q->choice];
            if (!c->finish)
                c->finish = "cancelled";
            pthread_mutex_unlock(&j->mu);
            seq_release(s, q);
            job_finish_if_done(s, j);
        }
    }

    int n = 0, rows = 0;
    /* decode: one token for each generating sequence */
    for (int i = 0; i < s->p.n_slots; i++) {
        seq *q = &s->seqs[i];
        q->logit_row = -1;
        if (q->state != SEQ_DECODE)
            continue;
        s->batch[n++] = (model_token){.id = q->next, .pos = kv_len(q->kv),
                                      .kv = q->kv, .want_logits = true};
        hist_push(q, q->next);
        q->logit_row = rows++;
    }
    /* prefill: prompt chunks with what is left of the batch */
    for (int i = 0; i < s->p.n_slots && n < s->p.batch; i++) {
        seq *q = &s->seqs[i];
        if (q->state != SEQ_PREFILL)
            continue;
        gen_job *j = q->job;
        if (!j->started) { /* only this thread writes it */
            pthread_mutex_lock(&j->mu);
            j->started = true;
            pthread_mutex_unlock(&j->mu);
        }
        int take = j->n_prompt - q->n_fed;
        if (take > s->p.batch - n)
            take = s->p.batch - n;
        for (int t = 0; t < take; t++) {
            int k = q->n_fed + t;
            s->batch[n++] = (model_token){.id = j->prompt[k], .pos = k, .kv = q->kv,
                                          .want_logits = k == j->n_prompt - 1};
            hist_push(q, j->prompt[k]);
        }
        q->n_fed += take;
        if (q->n_fed == j->n_prompt)
            q->logit_row = rows++;
    }
    if (n == 0)
        return false;

    char err[256];
    model_batch b = {.n = n, .tok = s->batch};
    if (model_decode(s->ctx, &b, s->logits, err, sizeof err) < 0) {
        log_error("sched", "forward pass failed: %s", err);
        for (int i = 0; i < s->p.n_slots; i++)
            if (s->seqs[i].job && s->seqs[i].logit_row >= 0)
                job_fail(s, s->seqs[i].job, err);
        return true;
    }
    for (int i = 0; i < s->p.n_slots; i++) {
        seq *q = &s->seqs[i];
        if (q->state == SEQ_FREE || q->logit_row < 0)
            continue;
        gen_job *j = q->job;
        if (q->state == SEQ_PREFILL) {
            pthread_mutex_lock(&j->mu);
            if (!j->t_first_ns)
                j->t_first_ns = now_ns();
            pthread_mutex_unlock(&j->mu);
            /* the prompt counts for penalties, as llama.cpp does */
            for (int k = 0; k < j->n_prompt; k++)
                sampler_accept(q->smp, j->prompt[k]);
        }
        sampler_result r;
        int32_t id = sampler_sample(q->smp, s->logits + (size_t)q->logit_row * (size_t)s->n_vocab, &r);
        if (id < 0) {
            job_fail(s, j, "every token is banned by logit_bias");
            continue;
        }
        seq_accept(s, q, &r);
    }
    return true;
}

static void *sched_thread(void *arg)
{
    sched *s = arg;
    /* Test hook: slow every step down so that tests can act in the middle
     * of a generation (disconnects, queue limits, keep-alive pings). */
    const char *delay_env = getenv("HEARTH_DEBUG_STEP_DELAY_MS");
    long delay_ms = delay_env ? strtol(delay_env, NULL, 10) : 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        admit(s);
        bool busy = false;
        for (int i = 0; i < s->p.n_slots; i++)
            busy |= s->seqs[i].state != SEQ_FREE;
        while (!s->stop && !busy && !s->queue_head)
            pthread_cond_wait(&s->cv, &s->mu);
        bool stop = s->stop;
        if (!busy)
            admit(s);
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (step(s) && delay_ms > 0) {
            struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* fail whatever is left */
    for (int i = 0; i < s->p.n_slots; i++)
        if (s->seqs[i].job)
            job_fail(s, s->seqs[i].job, "server stopping");
    return NULL;
}

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
    s->n_vocab = model_hparams_of(m)->n_vocab;
    s->loop = loop;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int batch_cap = p->batch + p->n_slots;
    s->seqs = calloc((size_t)p->n_slots, sizeof *s->seqs);
    s->logits = malloc((size_t)p->n_slots * (size_t)s->n_vocab * sizeof(float));
    s->batch = malloc((size_t)batch_cap * sizeof *s->batch);
    if (!s->seqs || !s->logits || !s->batch) {
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
    uv_async_init(loop, &s->async, on_async);
    s->async.data = s;
    if (pthread_create(&s->thread, NULL, sched_thread, s) != 0) {
        snprintf(err, errlen, "cannot start the scheduler thread");
        uv_close((uv_handle_t *)&s->async, NULL);
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return 0;
fail:
    if (s->seqs)
        for (int i = 0; i < p->n_slots; i++) {
            kv_free(s->seqs[i].kv);
            free(s->seqs[i].hist);
        }
    model_ctx_free(s->ctx);
    free(s->seqs);
    free(s->logits);
    free(s->batch);
    free(s);
    return -1;
}

static void on_async_closed(uv_handle_t *h)
{
    sched *s = h->data;
    free(s);
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
    /* jobs still queued */
    while (s->queue_head) {
        gen_job *j = s->queue_head;
        s->queue_head = j->next;
        gen_job_unref(j);
    }
    while (s->wake) {
        gen_job *j = s->wake;
        s->wake = j->next;
        j->in_wake_list = false;
        gen_job_unref(j);
    }
    for (int i = 0; i < s->p.n_slots; i++) {
        kv_free(s->seqs[i].kv);
        free(s->seqs[i].hist);
    }
    model_ctx_free(s->ctx);
    free(s->seqs);
    free(s->logits);
    free(s->batch);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    uv_close((uv_handle_t *)&s->async, on_async_closed);
}

int sched_submit(sched *s, gen_job *j, char *err, size_t errlen)
{
    if (j->n_choices > s->p.n_slots) {
        snprintf(err, errlen, "n=%d needs more parallel slots than the %d configured",
                 j->n_choices, s->p.n_slots);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    /* Capacity: one job per slot running, max_queue more waiting. */
    if (s->n_queued + s->n_running_jobs >= s->p.max_queue + s->p.n_slots) {
        int waiting = s->n_queued;
        pthread_mutex_unlock(&s->mu);
        snprintf(err, errlen, "the server is busy: %d requests are waiting (max_queue %d)",
                 waiting, s->p.max_queue);
        return -1;
    }
    gen_job_ref(j);
    j->t_submit_ns = now_ns();
    j->next = NULL;
    if (s->queue_tail)
        s->queue_tail->next = j;
    else
        s->queue_head = j;
    s->queue_tail = j;
    s->n_queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void sched_cancel(sched *s, gen_job *j)
{
    atomic_store(&j->cancel, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int sched_n_ctx(const sched *s) { return s->p.n_ctx; }
int sched_n_slots(const sched *s) { return s->p.n_slots; }

void sched_stats(sched *s, int *running, int *queued)
{
    pthread_mutex_lock(&s->mu);
    *running = s->n_running_jobs;
    *queued = s->n_queued;
    pthread_mutex_unlock(&s->mu);
}
