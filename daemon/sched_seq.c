/* sched_seq.c - the scheduler's slots: placing a job's choices, building
 * each step's batch, running it, and turning the logits into text. All on
 * the scheduler thread (see scheduler.h). */
#include "sched_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int sched_free_slots(const sched *s)
{
    int n = 0;
    for (int i = 0; i < s->p.n_slots; i++)
        n += s->seqs[i].state == SEQ_FREE;
    return n;
}

/* Past its prefill and first token, in a job that holds until released. */
static bool seq_held(const seq *q)
{
    return q->state == SEQ_DECODE && q->job->hold && !atomic_load(&q->job->released);
}

bool sched_has_work(const sched *s)
{
    for (int i = 0; i < s->p.n_slots; i++) {
        const seq *q = &s->seqs[i];
        if (q->state != SEQ_FREE && (!seq_held(q) || atomic_load(&q->job->cancel)))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------- ending */

static void seq_release(seq *q)
{
    sampler_free(q->smp);
    api_stop_free(q->stop);
    q->smp = NULL;
    q->stop = NULL;
    /* The cache is kept: the next prompt that starts with the same tokens
     * (a chat's history) reuses it. Should the cache and hist ever
     * disagree, forget both. */
    if (kv_len(q->kv) != q->n_hist) {
        kv_clear(q->kv);
        q->n_hist = 0;
    }
    q->state = SEQ_FREE;
    q->job = NULL;
}

/* Set a choice's finish (unless set) and end the job once all are. */
static void choice_end(sched *s, sched_job *j, int choice, sched_finish f)
{
    pthread_mutex_lock(&j->mu);
    if (j->choices[choice].finish == SCHED_RUNNING)
        j->choices[choice].finish = f;
    bool all = true;
    for (int i = 0; i < j->n_choices; i++)
        all &= j->choices[i].finish != SCHED_RUNNING;
    bool now_done = all && !j->done;
    if (now_done) {
        j->done = true;
        j->t_done_ns = sched_now_ns();
    }
    pthread_mutex_unlock(&j->mu);
    if (now_done)
        sched_job_ended(s, j);
}

/* Fail a running job: its slots free, every open choice ends with an
 * error, and the job ends. */
static void job_fail(sched *s, sched_job *j, const char *msg)
{
    for (int i = 0; i < s->p.n_slots; i++)
        if (s->seqs[i].job == j)
            seq_release(&s->seqs[i]);
    pthread_mutex_lock(&j->mu);
    if (!j->error[0])
        snprintf(j->error, sizeof j->error, "%s", msg);
    for (int i = 0; i < j->n_choices; i++)
        if (j->choices[i].finish == SCHED_RUNNING)
            j->choices[i].finish = SCHED_FINISH_ERROR;
    pthread_mutex_unlock(&j->mu);
    choice_end(s, j, 0, SCHED_FINISH_ERROR); /* ends the job */
}

void sched_fail_all(sched *s, const char *msg)
{
    for (int i = 0; i < s->p.n_slots; i++)
        if (s->seqs[i].job)
            job_fail(s, s->seqs[i].job, msg);
}

/* Finish one choice: release held-back text (unless a stop matched). */
static void seq_finish(sched *s, seq *q, sched_finish f, bool stop_string)
{
    sched_job *j = q->job;
    sched_choice *c = &j->choices[q->choice];
    int choice = q->choice;
    api_stop_out o = {0};
    char tail[64];
    int nt = tok_stream_flush(&q->ts, tail, sizeof tail);
    pthread_mutex_lock(&j->mu);
    if (!stop_string) {
        if (nt > 0) {
            api_stop_feed(q->stop, tail, (size_t)nt, &o);
            sched_choice_append(c, o.text, o.len);
            if (o.stop >= 0)
                c->stop_index = o.stop;
        }
        if (o.stop < 0 || nt <= 0) {
            api_stop_flush(q->stop, &o);
            sched_choice_append(c, o.text, o.len);
        }
    }
    pthread_mutex_unlock(&j->mu);
    seq_release(q);
    choice_end(s, j, choice, f);
}

/* ---------------------------------------------------------- placing */

void sched_place(sched *s, sched_job *j)
{
    for (int placed = 0; placed < j->n_choices; placed++) {
        /* the free slot whose cache shares the longest prefix; on a tie
         * the one with the least history, so that a stranger does not
         * wipe a conversation's cache while an empty slot waits */
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
            if (common > best || (common == best && c->n_hist < q->n_hist)) {
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
        sched_nll_place(q, j, placed, keep);
        tok_stream_init(&q->ts, s->v);
        /* a failure leaves smp or stop NULL: the next step fails the job */
        if (sched_grammar_place(s, q) == 0 &&
            sampler_new(&sp, s->n_vocab, &q->smp, err, sizeof err) == 0)
            api_stop_new((const char *const *)j->stops, (size_t)j->n_stops, &q->stop);
    }
}

/* ---------------------------------------------------------- sampling */

/* Handle the token sampled for q (r: its log-probabilities, when the job
 * asked for them). */
static void seq_accept(sched *s, seq *q, int32_t id, const sampler_result *r)
{
    sched_job *j = q->job;
    sched_choice *c = &j->choices[q->choice];
    sampler_accept(q->smp, id);
    sched_grammar_advance(s, q, id);

    if (tok_is_eog(s->v, id) || id == j->stop_token) {
        pthread_mutex_lock(&j->mu);
        c->n_gen++;
        pthread_mutex_unlock(&j->mu);
        seq_finish(s, q, SCHED_FINISH_STOP, false);
        return;
    }
    char piece[512];
    int n;
    if (j->special_text && tok_is_control(s->v, id)) {
        /* pending UTF-8 bytes first, then the marker's text */
        n = tok_stream_flush(&q->ts, piece, sizeof piece);
        int m = n >= 0 ? tok_piece(s->v, id, true, piece + n, sizeof piece - (size_t)n) : -1;
        n = m >= 0 && (size_t)m <= sizeof piece - (size_t)n ? n + m : n;
    } else {
        n = tok_stream_push(&q->ts, id, piece, sizeof piece);
    }
    if (n < 0)
        n = 0; /* a piece longer than the buffer: dropped, not overrun */
    api_stop_out o;
    api_stop_feed(q->stop, piece, (size_t)n, &o);
    pthread_mutex_lock(&j->mu);
    c->n_gen++;
    int rc = sched_choice_append(c, o.text, o.len);
    if (o.stop >= 0)
        c->stop_index = o.stop;
    if (rc == 0 && r)
        rc = sched_choice_add_lp(c, r);
    int n_gen = c->n_gen;
    pthread_mutex_unlock(&j->mu);
    if (rc < 0)
        job_fail(s, j, "out of memory");
    else if (o.stop >= 0)
        seq_finish(s, q, SCHED_FINISH_STOP, true);
    else if (n_gen >= j->max_tokens || kv_len(q->kv) >= kv_n_ctx(q->kv))
        seq_finish(s, q, SCHED_FINISH_LENGTH, false);
    else {
        q->next = id;
        q->state = SEQ_DECODE;
        sched_wake(s, j);
    }
}

/* One sequence's draw, on the context's threads (each sequence has its
 * own sampler and scratch). The raw log-probabilities cost a pass of exp()
 * over the whole vocabulary: only when the job asks for them. */
static void sample_task(void *arg, int64_t i, int thread)
{
    (void)thread;
    sched *s = arg;
    seq *q = &s->seqs[s->order[i]];
    float *row = s->logits + (size_t)q->logit_row * (size_t)s->n_vocab;
    if (!sched_grammar_mask(s, q, row)) {
        q->drawn = -2;
        return;
    }
    q->drawn = sampler_sample(q->smp, row, q->job->want_logprobs ? &q->res : NULL);
}

/* Whether every choice of j has its whole prompt in its cache. */
static bool job_prefilled(const sched *s, const sched_job *j)
{
    for (int i = 0; i < s->p.n_slots; i++)
        if (s->seqs[i].job == j && s->seqs[i].n_fed < j->n_prompt)
            return false;
    return true;
}

/* A prompt was completed this step: when it was the job's last, mark the
 * job prefilled (before its first tokens are handled, so that before the
 * job can end) and keep a reference to wake it after them. Returns the
 * number of jobs in s->pre. */
static int note_prefilled(sched *s, sched_job *j, int n_pre)
{
    for (int i = 0; i < n_pre; i++)
        if (s->pre[i] == j)
            return n_pre;
    if (!job_prefilled(s, j))
        return n_pre;
    pthread_mutex_lock(&j->mu);
    bool news = !j->prefilled;
    j->prefilled = true;
    pthread_mutex_unlock(&j->mu);
    if (!news)
        return n_pre;
    sched_job_ref(j);
    s->pre[n_pre] = j;
    return n_pre + 1;
}

/* Sample every sequence that has logits this step: the draws side by side,
 * then each token handled in slot order. */
static void sample_all(sched *s)
{
    int n = 0, n_pre = 0;
    for (int i = 0; i < s->p.n_slots; i++) {
        seq *q = &s->seqs[i];
        if (q->state == SEQ_FREE || q->logit_row < 0)
            continue;
        sched_job *j = q->job;
        if (q->state == SEQ_PREFILL) {
            pthread_mutex_lock(&j->mu);
            if (!j->t_first_ns)
                j->t_first_ns = sched_now_ns();
            pthread_mutex_unlock(&j->mu);
            /* the prompt counts for penalties, as llama.cpp does */
            for (int k = 0; k < j->n_prompt; k++)
                sampler_accept(q->smp, j->prompt[k]);
            n_pre = note_prefilled(s, j, n_pre);
        }
        s->order[n++] = i;
    }
    model_ctx_run(s->ctx, n, sample_task, s);
    for (int k = 0; k < n; k++) {
        seq *q = &s->seqs[s->order[k]];
        if (q->state == SEQ_FREE)
            continue; /* its job failed with another of its choices */
        if (q->drawn == -2)
            job_fail(s, q->job, "the response format's schema allows no token of this "
                                "model's vocabulary here");
        else if (q->drawn < 0)
            job_fail(s, q->job, "every token is banned by logit_bias");
        else
            seq_accept(s, q, q->drawn, q->job->want_logprobs ? &q->res : NULL);
    }
    /* the news of a prefilled job comes with its first tokens; a job that
     * ended meanwhile had its last notify already (and read prefilled) */
    for (int i = 0; i < n_pre; i++) {
        sched_job *j = s->pre[i];
        if (!sched_job_done(j))
            sched_wake(s, j);
        sched_job_unref(j);
    }
}

/* ---------------------------------------------------------- the step */

/* Cancelled jobs free their slots; sequences that could not start fail. */
static void reap(sched *s)
{
    for (int i = 0; i < s->p.n_slots; i++) {
        seq *q = &s->seqs[i];
        if (q->state == SEQ_FREE)
            continue;
        sched_job *j = q->job;
        if (atomic_load(&j->cancel)) {
            int choice = q->choice;
            seq_release(q);
            choice_end(s, j, choice, SCHED_FINISH_CANCELLED);
        } else if (!q->smp || !q->stop) {
            job_fail(s, j, "out of memory starting the sequence");
        }
    }
}

/* Record a token fed into a sequence's cache. */
static void hist_push(seq *q, int32_t id)
{
    if (q->n_hist < kv_n_ctx(q->kv))
        q->hist[q->n_hist++] = id;
}

/* Sequences in prefill, fewest prompt tokens left first (shortest
 * remaining first: a short request is not held up behind a long one). */
static int prefill_order(sched *s)
{
    int n = 0;
    for (int i = 0; i < s->p.n_slots; i++) {
        seq *q = &s->seqs[i];
        if (q->state != SEQ_PREFILL)
            continue;
        int left = q->job->n_prompt - q->n_fed, k = n++;
        while (k > 0) {
            seq *p = &s->seqs[s->order[k - 1]];
            if (p->job->n_prompt - p->n_fed <= left)
                break;
            s->order[k] = s->order[k - 1];
            k--;
        }
        s->order[k] = i;
    }
    return n;
}

/* The batch: one token of every generating sequence, then prompt chunks
 * with what is left of the batch. Returns its size. */
static int build_batch(sched *s)
{
    int n = 0, rows = 0;
    s->n_nll = 0;
    for (int i = 0; i < s->p.n_slots; i++) {
        seq *q = &s->seqs[i];
        q->logit_row = -1;
        q->fed = false;
        q->n_fed0 = q->n_fed;
        q->n_hist0 = q->n_hist;
        if (q->state != SEQ_DECODE || seq_held(q))
            continue;
        s->batch[n++] = (model_token){.id = q->next, .pos = kv_len(q->kv),
                                      .kv = q->kv, .want_logits = true};
        hist_push(q, q->next);
        q->fed = true;
        q->logit_row = rows++;
    }
    /* While sequences generate, prompts get half the batch: a chunk then
     * holds their streams up half as long, for one more pass over the
     * weights per chunk (a few percent of a prompt's time). */
    int limit = s->p.batch;
    if (n > 0) {
        int half = s->p.batch / 2 > 0 ? s->p.batch / 2 : 1;
        limit = n + half < s->p.batch ? n + half : s->p.batch;
        if (limit <= n)
            limit = n + 1; /* more generating rows than a batch: still one */
    }
    int n_pre = prefill_order(s);
    for (int o = 0; o < n_pre && n < limit; o++) {
        seq *q = &s->seqs[s->order[o]];
        sched_job *j = q->job;
        int take = j->n_prompt - q->n_fed;
        if (take > limit - n)
            take = limit - n;
        take = sched_nll_fit(s, q, take);
        /* logits rows follow batch order: decode rows first, then the
         * sampled positions and last tokens of prompts as they come */
        int p = sched_nll_first(q, q->n_fed);
        for (int t = 0; t < take; t++) {
            int k = q->n_fed + t;
            bool nll = p < q->n_nll_pos && q->nll_pos[p] == k; /* never the last */
            bool last = k == j->n_prompt - 1;
            s->batch[n++] = (model_token){.id = j->prompt[k], .pos = k, .kv = q->kv,
                                          .want_logits = nll || last};
            hist_push(q, j->prompt[k]);
            if (nll) {
                sched_nll_add(s, q, rows++, j->prompt[k + 1]);
                p++;
            }
            if (last)
                q->logit_row = rows++;
        }
        q->fed = take > 0;
        q->n_fed += take;
    }
    return n;
}

/* The forward pass failed and left every cache as it was (model_decode's
 * contract): the sequences that fed it go back to where they were and
 * their jobs fail; nothing else is touched. */
static void roll_back(sched *s, const char *err)
{
    for (int i = 0; i < s->p.n_slots; i++) {
        seq *q = &s->seqs[i];
        if (q->state == SEQ_FREE || !q->fed)
            continue;
        q->n_fed = q->n_fed0;
        q->n_hist = q->n_hist0;
        q->logit_row = -1;
    }
    s->n_nll = 0;
    for (int i = 0; i < s->p.n_slots; i++) {
        seq *q = &s->seqs[i];
        if (q->state != SEQ_FREE && q->fed)
            job_fail(s, q->job, err);
    }
}

bool sched_step(sched *s)
{
    reap(s);
    int n = build_batch(s);
    if (n == 0)
        return false;
    char err[256];
    model_batch b = {.n = n, .tok = s->batch};
    uint64_t t0 = sched_now_ns();
    int rc = s->p.decode(s->ctx, &b, s->logits, err, sizeof err);
    uint64_t t1 = sched_now_ns();
    /* counted before any job of this step ends */
    pthread_mutex_lock(&s->mu);
    s->n.steps++;
    s->n.failed_steps += rc < 0;
    s->n.tokens += rc < 0 ? 0 : (uint64_t)n;
    s->n.decode_ns += t1 - t0;
    pthread_mutex_unlock(&s->mu);
    uint64_t ts = t1;
    if (rc < 0) {
        log_error("sched", "forward pass failed: %s", err);
        roll_back(s, err);
    } else {
        sched_nll_collect(s); /* counts its own time */
        ts = sched_now_ns();
        sample_all(s);
    }
    uint64_t t2 = sched_now_ns();
    pthread_mutex_lock(&s->mu);
    s->n.sample_ns += t2 - ts;
    pthread_mutex_unlock(&s->mu);
    log_debug("sched", "step: %d tokens, forward %.2f ms, NLL %.2f ms, sampling %.2f ms", n,
              (double)(t1 - t0) / 1e6, (double)(ts - t1) / 1e6, (double)(t2 - ts) / 1e6);
    return true;
}
