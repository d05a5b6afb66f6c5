/* sched_job.c - see sched_job.h. */
#include "sched_job.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

sched_job *sched_job_new(int n_choices)
{
    if (n_choices < 1 || n_choices > 64)
        return NULL;
    sched_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->choices = calloc((size_t)n_choices, sizeof *j->choices);
    if (!j->choices) {
        free(j);
        return NULL;
    }
    j->n_choices = n_choices;
    for (int i = 0; i < n_choices; i++)
        j->choices[i].stop_index = -1;
    j->stop_token = -1;
    pthread_mutex_init(&j->mu, NULL);
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, false);
    atomic_init(&j->released, false);
    return j;
}

void sched_job_ref(sched_job *j) { atomic_fetch_add(&j->refs, 1); }

void sched_job_unref(sched_job *j)
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
    jgram_free(j->grammar);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

bool sched_job_done(sched_job *j)
{
    pthread_mutex_lock(&j->mu);
    bool d = j->done;
    pthread_mutex_unlock(&j->mu);
    return d;
}

int sched_choice_append(sched_choice *c, const char *text, size_t len)
{
    if (len == 0)
        return 0;
    return buf_append(&c->text, &c->len, &c->cap, text, len, 256);
}

int sched_choice_add_lp(sched_choice *c, const sampler_result *r)
{
    if (c->n_lp == c->cap_lp) {
        size_t cap = c->cap_lp ? c->cap_lp * 2 : 64;
        sched_lp *nl = realloc(c->lp, cap * sizeof *nl);
        if (!nl)
            return -1;
        c->lp = nl;
        c->cap_lp = cap;
    }
    sched_lp *e = &c->lp[c->n_lp++];
    e->id = r->id;
    e->logprob = r->logprob;
    e->n_top = r->n_top;
    memcpy(e->top, r->top, sizeof e->top);
    return 0;
}

const char *sched_finish_name(sched_finish f)
{
    return f == SCHED_FINISH_LENGTH ? "length" : "stop";
}
