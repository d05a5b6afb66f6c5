/* sched_grammar.c - structured output in the scheduler: a job with a
 * grammar (sched_job.grammar, a compiled JSON Schema, engine/json_grammar.h)
 * has each draw masked so that only tokens the grammar allows next can be
 * sampled (engine/json_mask.h), and each drawn token fed to its choice's
 * matcher. The vocabulary's mask tables are built once, on the scheduler
 * thread, by the first job that needs them. All on the scheduler thread,
 * apart from sched_grammar_mask, which runs on the context's threads for
 * one sequence each. */
#include <stdlib.h>

#include "sched_internal.h"

int sched_grammar_place(sched *s, seq *q)
{
    const jgram *g = q->job->grammar;
    if (!g)
        return 0;
    if (!s->mv && jmask_vocab_new(s->v, &s->mv) != 0)
        return -1;
    if (!q->gst && !(q->gst = malloc(sizeof *q->gst)))
        return -1;
    if (!q->mask && !(q->mask = malloc((size_t)s->n_vocab)))
        return -1;
    jgram_init(g, q->gst);
    return 0;
}

bool sched_grammar_mask(sched *s, seq *q, float *row)
{
    const jgram *g = q->job->grammar;
    if (!g)
        return true;
    long n = jmask_compute(s->mv, g, q->gst, q->mask);
    if (n <= 0)
        return false;
    jmask_apply(row, s->n_vocab, q->mask);
    return true;
}

void sched_grammar_advance(sched *s, seq *q, int32_t id)
{
    const jgram *g = q->job->grammar;
    if (!g)
        return;
    size_t len = 0;
    const uint8_t *b = jmask_token_bytes(s->mv, id, &len);
    if (b)
        jmask_advance(g, q->gst, b, len); /* the mask allowed it: it fits */
}

void sched_grammar_free(sched *s)
{
    for (int i = 0; s->seqs && i < s->p.n_slots; i++) {
        free(s->seqs[i].gst);
        free(s->seqs[i].mask);
    }
    jmask_vocab_free(s->mv);
    s->mv = NULL;
}
