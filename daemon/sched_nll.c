/* sched_nll.c - the prompt's NLL measured during the prefill (sched_job
 * want_nll; nll.h). All on the scheduler thread.
 *
 * When a job is placed, choice 0's sequence gets the positions to measure:
 * nll_positions over the part of the prompt its slot did not have cached.
 * The batch builder asks for logits on those positions as their chunks go
 * through (SCHED_NLL_ROWS per step at most; a chunk that would need more is
 * cut short) and records each row here; after the forward pass the rows'
 * NLL is computed on the context's threads and added to the job. */
#include "sched_internal.h"

void sched_nll_place(seq *q, const sched_job *j, int choice, int keep)
{
    /* one measure per job: the choices share the prompt */
    q->n_nll_pos = j->want_nll && choice == 0
                       ? nll_positions(keep, j->n_prompt, NLL_MAX_SAMPLES, q->nll_pos)
                       : 0;
}

int sched_nll_first(const seq *q, int k)
{
    int p = 0;
    while (p < q->n_nll_pos && q->nll_pos[p] < k)
        p++;
    return p;
}

int sched_nll_fit(const sched *s, const seq *q, int take)
{
    int room = SCHED_NLL_ROWS - s->n_nll;
    int end = q->n_fed + take;
    for (int p = sched_nll_first(q, q->n_fed); p < q->n_nll_pos && q->nll_pos[p] < end; p++)
        if (room-- == 0)
            return q->nll_pos[p] - q->n_fed; /* up to this one, next step */
    return take;
}

void sched_nll_add(sched *s, seq *q, int row, int32_t next)
{
    s->nll[s->n_nll++] = (sched_nll_row){.q = q, .row = row, .next = next};
}

static void nll_task(void *arg, int64_t i, int thread)
{
    (void)thread;
    sched *s = arg;
    sched_nll_row *r = &s->nll[i];
    r->val = nll_token(s->logits + (size_t)r->row * (size_t)s->n_vocab, s->n_vocab, r->next);
}

void sched_nll_collect(sched *s)
{
    if (s->n_nll == 0)
        return;
    uint64_t t0 = sched_now_ns();
    /* a pass of exp() over the vocabulary per row: side by side */
    model_ctx_run(s->ctx, s->n_nll, nll_task, s);
    for (int i = 0; i < s->n_nll; i++) {
        sched_job *j = s->nll[i].q->job;
        pthread_mutex_lock(&j->mu);
        j->nll_sum += s->nll[i].val;
        j->nll_n++;
        pthread_mutex_unlock(&j->mu);
    }
    uint64_t t1 = sched_now_ns();
    pthread_mutex_lock(&s->mu);
    s->n.nll_rows += (uint64_t)s->n_nll;
    s->n.nll_ns += t1 - t0;
    pthread_mutex_unlock(&s->mu);
    s->n_nll = 0;
}
