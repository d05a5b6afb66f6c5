/* gen.c - see gen.h. */
#include "gen.h"

#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "error.h"
#include "gen_internal.h"
#include "gen_prep.h"
#include "messages.h"
#include "log.h"
#include "daemon/ids.h"
#include "daemon/metrics.h"
#include "request.h"
#include "response.h"


/* ---------------------------------------------------------- helpers */

int gen_error(gen_req *gr, unsigned status, const char *type, const char *message,
              const char *param, const char *code)
{
    const api_dialect *d = api_dialect_of(gr->prep.kind);
    char *json = d->error(status, type, message, param, code);
    if (!json)
        return -1;
    int rc = http_respond_json(gr->r, status, json);
    free(json);
    return rc;
}

/* What every rendering of this request shares. */
static api_stream *stream_of(gen_req *gr)
{
    gr->st.q = &gr->prep.req;
    gr->st.h = (api_head){.id = gr->id, .model = gr->lm ? gr->lm->name : NULL,
                          .created = gr->created,
                          .system_fingerprint = gr->lm ? gr->lm->fingerprint : NULL};
    return &gr->st;
}

static void on_timer_closed(uv_handle_t *h) { free(h); }

void gen_cancel_job(gen_req *gr)
{
    if (gr->job && gr->lm && gr->lm->s) /* s is NULL once the server stopped */
        sched_cancel(gr->lm->s, gr->job);
}

static void gen_req_free(void *arg)
{
    gen_req *gr = arg;
    if (!gr)
        return;
    if (gr->preparing) {
        /* the thread pool still writes gr->prep: prep_done frees it */
        gr->orphaned = true;
        gr->r = NULL;
        return;
    }
    if (gr->tools) /* made with the job (start_stream) */
        gen_tools_free(gr->tools, gr->job->n_choices);
    if (gr->job) {
        if (sched_job_done(gr->job) && !gr->job->error[0] && gr->t_local_ns) {
            /* the router's estimate of the local queue wait */
            double secs = (double)(http_now_ns() - gr->t_local_ns) / 1e9;
            routing *rt = gr->g->rt;
            rt->job_secs = rt->job_secs > 0 ? 0.8 * rt->job_secs + 0.2 * secs : secs;
        }
        metrics_job_end(gr->g->metrics, gr->job, gr->r ? gr->r->t_start_ns : 0);
        gr->job->notify = NULL;
        gen_cancel_job(gr);
        sched_job_unref(gr->job);
    }
    resident_cancel_wait(gr->g->res, &gr->wait);
    resident_release(gr->g->res, gr->lm, gr->prep.keep_alive);
    gen_cloud_free(gr);
    if (gr->ping)
        uv_close((uv_handle_t *)gr->ping, on_timer_closed);
    if (gr->deadline)
        uv_close((uv_handle_t *)gr->deadline, on_timer_closed);
    gen_prep_free(&gr->prep);
    free(gr->pend);
    free(gr->finish_sent);
    free(gr);
}

/* The scheduler has news for this job (on the loop thread). */
static void on_news(sched_job *j, void *arg)
{
    gen_req *gr = arg;
    if (gr->awaiting_score) {
        pthread_mutex_lock(&j->mu);
        bool ready = j->prefilled || j->done;
        pthread_mutex_unlock(&j->mu);
        if (ready)
            http_resume(gr->r);
        return;
    }
    if (gr->prep.req.stream || sched_job_done(j))
        http_resume(gr->r);
}

static void on_disconnect(http_req *r)
{
    gen_req *gr = r->app;
    log_info("gen", "%s: client went away, cancelling", gr->id);
    if (gr->job)
        gen_cancel_job(gr);
    gen_cloud_disconnect(gr);
    /* MHD learns of the closed socket once the connection runs again */
    http_resume(r);
}

/* Token texts for log-probabilities, kept in one buffer per rendering. */
typedef struct lp_build {
    api_logprob *lp;
    api_top_logprob *top;
    char *text;
    size_t text_len, text_cap;
    size_t *offs; /* text offsets, turned into pointers at the end */
} lp_build;

static int lp_text(lp_build *b, const tok_vocab *v, int32_t id, size_t *off, size_t *len)
{
    char buf[256];
    int n = tok_piece(v, id, false, buf, sizeof buf);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof buf)
        n = sizeof buf; /* pieces are short; a longer one is cut */
    *off = b->text_len;
    *len = (size_t)n;
    if (buf_append(&b->text, &b->text_len, &b->text_cap, buf, (size_t)n, 1024) < 0)
        return -1;
    return 0;
}

/* Build api_logprob entries for lp[from, to) (job mutex held). */
static int lp_build_range(lp_build *b, const tok_vocab *v, const sched_lp *lp,
                          size_t from, size_t to, int top_n)
{
    memset(b, 0, sizeof *b);
    size_t n = to - from;
    if (n == 0)
        return 0;
    size_t n_top = n * (size_t)(top_n > 0 ? top_n : 0);
    b->lp = calloc(n, sizeof *b->lp);
    b->top = n_top ? calloc(n_top, sizeof *b->top) : NULL;
    b->offs = calloc(n + n_top, sizeof *b->offs);
    if (!b->lp || (n_top && !b->top) || !b->offs)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const sched_lp *e = &lp[from + i];
        if (lp_text(b, v, e->id, &b->offs[i], &b->lp[i].len) < 0)
            return -1;
        b->lp[i].logprob = e->logprob;
        int tn = e->n_top < top_n ? e->n_top : top_n;
        b->lp[i].n_top = (size_t)(tn > 0 ? tn : 0);
        b->lp[i].top = tn > 0 ? &b->top[k] : NULL;
        for (int t = 0; t < tn; t++, k++) {
            if (lp_text(b, v, e->top[t].id, &b->offs[n + k], &b->top[k].len) < 0)
                return -1;
            b->top[k].logprob = e->top[t].logprob;
        }
    }
    for (size_t i = 0; i < n; i++)
        b->lp[i].token = b->text ? b->text + b->offs[i] : "";
    for (size_t t = 0; t < k; t++)
        b->top[t].token = b->text ? b->text + b->offs[n + t] : "";
    return 0;
}

static void lp_build_free(lp_build *b)
{
    free(b->lp);
    free(b->top);
    free(b->text);
    free(b->offs);
}

static void usage_of(const gen_req *gr, api_usage *u)
{
    u->prompt_tokens = gr->prep.n_ids;
    u->completion_tokens = 0;
    u->cached_tokens = gr->job ? gr->job->cached_tokens : 0;
    if (gr->job)
        for (int i = 0; i < gr->job->n_choices; i++)
            u->completion_tokens += gr->job->choices[i].n_gen;
}

/* ---------------------------------------------------------- non-streaming */

static int respond_full(http_req *r, void *user)
{
    gen_req *gr = r->app;
    sched_job *j = gr->job;
    if (r->client_gone)
        return -1; /* nobody to answer: close */
    if (gr->timed_out) {
        char msg[160];
        snprintf(msg, sizeof msg, "The request took longer than request_timeout (%d s) "
                 "and was cancelled", *gr->g->request_timeout);
        return gen_error(gr, 503, "timeout_error", msg, NULL, "timeout");
    }
    if (j && !sched_job_done(j)) {
        http_suspend(r); /* woken early; wait on */
        return 0;
    }
    int n = j ? j->n_choices : (int)gr->prep.req.n;
    api_choice *ch = calloc((size_t)n, sizeof *ch);
    lp_build *lb = calloc((size_t)n, sizeof *lb);
    char **texts = calloc((size_t)n, sizeof *texts);
    gen_tools *tools = NULL;
    char *json = NULL;
    int rc = -1;
    if (!ch || !lb || !texts || gen_tools_new(gr, n, &tools) < 0)
        goto out;
    if (j) {
        pthread_mutex_lock(&j->mu);
        if (j->error[0]) {
            char msg[300];
            snprintf(msg, sizeof msg, "generation failed: %s", j->error);
            pthread_mutex_unlock(&j->mu);
            rc = gen_error(gr, 500, "server_error", msg, NULL, NULL);
            goto out;
        }
    }
    for (int i = 0; i < n; i++) {
        const sched_choice *c = j ? &j->choices[i] : NULL;
        size_t tl = c ? c->len : 0;
        texts[i] = malloc(gr->prep.echo_len + tl + 1);
        if (!texts[i])
            break;
        memcpy(texts[i], gr->prep.echo ? gr->prep.echo : "", gr->prep.echo_len);
        if (tl)
            memcpy(texts[i] + gr->prep.echo_len, c->text, tl);
        texts[i][gr->prep.echo_len + tl] = '\0';
        ch[i].index = (unsigned)i;
        ch[i].text = texts[i];
        ch[i].len = gr->prep.echo_len + tl;
        ch[i].finish_reason = sched_finish_name(c ? c->finish : SCHED_FINISH_LENGTH);
        ch[i].logprobs = gr->prep.req.logprobs;
        ch[i].text_offset = gr->prep.echo_len;
        if (c && gr->prep.req.logprobs &&
            lp_build_range(&lb[i], gr->lm->v, c->lp, 0, c->n_lp, gr->prep.req.top_logprobs) == 0) {
            ch[i].lp = lb[i].lp;
            ch[i].n_lp = c->n_lp;
        }
        if (tools && gen_tools_whole(&tools[i], ch[i].text, ch[i].len) == 0)
            gen_tools_choice(&tools[i], &ch[i]);
    }
    api_usage u;
    usage_of(gr, &u);
    api_stream *st = stream_of(gr);
    st->stop_matched = j && j->choices[0].stop_index >= 0 ? j->stops[j->choices[0].stop_index]
                                                          : NULL;
    json = api_dialect_of(gr->prep.kind)->full(st, ch, (size_t)n, &u);
    if (j)
        pthread_mutex_unlock(&j->mu);
    rc = json ? http_respond_json(r, 200, json)
              : gen_error(gr, 500, "server_error", "out of memory", NULL, NULL);
out:
    for (int i = 0; texts && i < n; i++)
        free(texts[i]);
    for (int i = 0; lb && i < n; i++)
        lp_build_free(&lb[i]);
    gen_tools_free(tools, n);
    free(texts);
    free(lb);
    free(ch);
    free(json);
    return rc;
}

/* ---------------------------------------------------------- streaming */

int gen_pend_add(gen_req *gr, const char *s, size_t n)
{
    return buf_append(&gr->pend, &gr->pend_len, &gr->pend_cap, s, n, 4096);
}

size_t gen_pend_out(gen_req *gr, char *buf, size_t max)
{
    size_t n = gr->pend_len - gr->pend_off;
    if (n > max)
        n = max;
    memcpy(buf, gr->pend + gr->pend_off, n);
    gr->pend_off += n;
    gr->r->bytes += n;
    return n;
}

/* Queue rendered bytes (takes ownership; NULL: out of memory). */
int gen_pend_take(gen_req *gr, char *bytes)
{
    if (!bytes)
        return -1;
    int rc = gen_pend_add(gr, bytes, strlen(bytes));
    free(bytes);
    return rc;
}

/* Render whatever the job has produced since the last call, through the
 * request's dialect (api/dialect.h). */
static int stream_fill(gen_req *gr)
{
    sched_job *j = gr->job;
    const api_dialect *d = api_dialect_of(gr->prep.kind);
    api_stream *st = stream_of(gr);
    int rc = 0;
    pthread_mutex_lock(&j->mu);
    if (j->error[0] || gr->timed_out) {
        char *e = gr->timed_out
            ? d->stream_error(st, 503, "timeout_error",
                              "The request took longer than request_timeout and was cancelled")
            : d->stream_error(st, 500, "server_error", j->error);
        pthread_mutex_unlock(&j->mu);
        rc = gen_pend_take(gr, e);
        gr->done_sent = true;
        return rc;
    }
    api_usage u;
    usage_of(gr, &u);
    if (!gr->sent_head) {
        gr->sent_head = true;
        for (int i = 0; i < j->n_choices && rc == 0; i++) {
            rc = gen_pend_take(gr, d->start(st, (unsigned)i, &u));
            if (rc == 0 && gr->prep.echo_len) {
                api_choice c = {.index = (unsigned)i, .text = gr->prep.echo,
                                .len = gr->prep.echo_len};
                rc = gen_pend_take(gr, d->delta(st, &c));
            }
        }
    }
    bool all_finished = true;
    for (int i = 0; i < j->n_choices && rc == 0; i++) {
        sched_choice *c = &j->choices[i];
        if (c->len > c->sent && gr->tools) {
            rc = gen_tools_stream(gr, &gr->tools[i], d, st, (unsigned)i, c->text + c->sent,
                                  c->len - c->sent, false);
            c->sent = c->len;
            c->lp_sent = c->n_lp;
        } else if (c->len > c->sent) {
            api_choice ac = {.index = (unsigned)i, .text = c->text + c->sent,
                             .len = c->len - c->sent, .logprobs = gr->prep.req.logprobs,
                             .text_offset = gr->prep.echo_len + c->sent};
            lp_build lb = {0};
            if (gr->prep.req.logprobs &&
                lp_build_range(&lb, gr->lm->v, c->lp, c->lp_sent, c->n_lp,
                               gr->prep.req.top_logprobs) == 0) {
                ac.lp = lb.lp;
                ac.n_lp = c->n_lp - c->lp_sent;
            }
            rc = gen_pend_take(gr, d->delta(st, &ac));
            lp_build_free(&lb);
            c->sent = c->len;
            c->lp_sent = c->n_lp;
        }
        if (c->finish != SCHED_RUNNING && !gr->finish_sent[i] && rc == 0) {
            gr->finish_sent[i] = true;
            if (i == 0 && c->stop_index >= 0)
                st->stop_matched = j->stops[c->stop_index];
            api_choice ac = {.index = (unsigned)i, .text = c->text ? c->text : "",
                             .len = c->len, .finish_reason = sched_finish_name(c->finish)};
            if (gr->tools) {
                rc = gen_tools_stream(gr, &gr->tools[i], d, st, (unsigned)i, NULL, 0, true);
                gen_tools_choice(&gr->tools[i], &ac);
            }
            if (rc == 0)
                rc = gen_pend_take(gr, d->finish(st, &ac));
        }
        if (c->finish == SCHED_RUNNING)
            all_finished = false;
    }
    if (all_finished && rc == 0 && !gr->done_sent) {
        api_choice *all = calloc((size_t)j->n_choices, sizeof *all);
        if (!all)
            rc = -1;
        for (int i = 0; all && i < j->n_choices; i++)
            all[i] = (api_choice){.index = (unsigned)i,
                                  .text = j->choices[i].text ? j->choices[i].text : "",
                                  .len = j->choices[i].len,
                                  .finish_reason = sched_finish_name(j->choices[i].finish)};
        for (int i = 0; all && gr->tools && i < j->n_choices; i++)
            gen_tools_choice(&gr->tools[i], &all[i]);
        if (all)
            rc = gen_pend_take(gr, d->end(st, all, (size_t)j->n_choices, &u));
        free(all);
        gr->done_sent = true;
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    gen_req *gr = cls;
    if (gr->r->client_gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (gr->pend_off == gr->pend_len) {
        gr->pend_off = gr->pend_len = 0;
        if (!gr->done_sent && stream_fill(gr) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (gr->pend_len == 0) {
            if (gr->done_sent)
                return MHD_CONTENT_READER_END_OF_STREAM;
            if (gr->ping_due) {
                gr->ping_due = false;
                const char *ping = api_dialect_of(gr->prep.kind)->ping;
                if (gen_pend_add(gr, ping, strlen(ping)) < 0)
                    return MHD_CONTENT_READER_END_WITH_ERROR;
            } else {
                http_suspend(gr->r); /* the scheduler's news resumes it */
                return 0;
            }
        }
    }
    size_t n = gen_pend_out(gr, buf, max);
    gr->ping_due = false;
    if (gr->ping)
        uv_timer_again(gr->ping);
    return (ssize_t)n;
}

static void on_ping(uv_timer_t *t)
{
    gen_req *gr = t->data;
    if (!gr || gr->done_sent)
        return;
    gr->ping_due = true;
    http_resume(gr->r);
}

static void on_deadline(uv_timer_t *t)
{
    gen_req *gr = t->data;
    /* a finished job's text is all there: a slow reader still gets it */
    if (gr->done_sent || sched_job_done(gr->job))
        return;
    log_warn("gen", "%s: request_timeout reached, cancelling", gr->id);
    gr->timed_out = true;
    gen_cancel_job(gr);
    http_resume(gr->r);
}

static void start_deadline(gen_req *gr)
{
    int secs = *gr->g->request_timeout;
    if (secs <= 0)
        return;
    gr->deadline = malloc(sizeof *gr->deadline);
    if (!gr->deadline)
        return;
    uv_timer_init(gr->g->loop, gr->deadline);
    gr->deadline->data = gr;
    uv_timer_start(gr->deadline, on_deadline, (uint64_t)secs * 1000u, 0);
}

static int start_stream(gen_req *gr)
{
    http_req *r = gr->r;
    gr->finish_sent = calloc((size_t)gr->job->n_choices, sizeof *gr->finish_sent);
    if (!gr->finish_sent || gen_tools_new(gr, gr->job->n_choices, &gr->tools) < 0)
        return -1;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, gr, NULL);
    if (!resp)
        return -1;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    gr->ping = malloc(sizeof *gr->ping);
    if (gr->ping) {
        uv_timer_init(gr->g->loop, gr->ping);
        gr->ping->data = gr;
        uint64_t ms = (uint64_t)*gr->g->ping_interval * 1000u;
        uv_timer_start(gr->ping, on_ping, ms, ms);
    }
    return http_respond_custom(r, 200, resp);
}

/* ---------------------------------------------------------- entry */

int gen_prep_error(gen_req *gr)
{
    gen_prep *p = &gr->prep;
    return gen_error(gr, p->err.status, p->type, p->err.message,
                              p->err.param[0] ? p->err.param : NULL,
                              p->err.code[0] ? p->err.code : NULL);
}

/* The prepared request becomes a job, queued with the scheduler. */
int gen_local_submit(gen_req *gr, bool hold)
{
    gen_service *g = gr->g;
    gen_prep *p = &gr->prep;
    api_request *q = &p->req;
    sched_job *j = sched_job_new((int)q->n);
    if (!j)
        return -1;
    gr->job = j;
    if (hold) { /* the prompt may yet be needed after a cloud failure */
        j->prompt = malloc((size_t)p->n_ids * sizeof *j->prompt);
        if (!j->prompt)
            return -1;
        memcpy(j->prompt, p->ids, (size_t)p->n_ids * sizeof *j->prompt);
    } else {
        j->prompt = p->ids;
        p->ids = NULL;
    }
    j->n_prompt = p->n_ids;
    j->sp = q->sampling;
    if (!(q->set & API_SET_SEED))
        j->sp.seed = (uint64_t)time(NULL) ^ (g->n_requests * 0x2545F4914F6CDD1Dull);
    if (q->n_logit_bias) {
        j->bias = malloc(q->n_logit_bias * sizeof *j->bias);
        if (!j->bias)
            return -1;
        memcpy(j->bias, q->logit_bias, q->n_logit_bias * sizeof *j->bias);
    }
    j->sp.bias = j->bias;
    j->sp.n_bias = (int)q->n_logit_bias;
    j->want_logprobs = q->logprobs;
    j->top_logprobs = q->top_logprobs;
    j->sp.n_probs = q->logprobs ? q->top_logprobs : 0;
    j->max_tokens = p->max_tokens;
    if (p->grammar && !hold) { /* held: kept for a local answer after a cloud failure */
        j->grammar = p->grammar;
        p->grammar = NULL;
    } else if (p->grammar) {
        char err[300];
        if (gen_prep_grammar(q, &j->grammar, err, sizeof err) != 0)
            return -1;
    }
    j->hold = hold;
    j->want_nll = hold;
    if (q->n_stop) {
        j->stops = calloc(q->n_stop, sizeof *j->stops);
        if (!j->stops)
            return -1;
        for (size_t i = 0; i < q->n_stop; i++) {
            j->stops[i] = strdup(q->stop[i]);
            if (!j->stops[i])
                return -1;
            j->n_stops++;
        }
    }
    if (gr->prep.kind == API_CHAT)
        j->stop_token = gr->lm->turn_end;
    /* [TOOL_CALLS] and <|python_tag|> are control tokens */
    j->special_text = p->tool_format == API_TOOLS_MISTRAL ||
                      p->tool_format == API_TOOLS_MISTRAL_ARGS ||
                      p->tool_format == API_TOOLS_LLAMA3;
    j->notify = on_news;
    j->notify_arg = gr;
    gr->t_local_ns = http_now_ns();
    char err[256];
    switch (sched_submit(gr->lm->s, j, err, sizeof err)) {
    case SCHED_OK:
        return 1;
    case SCHED_BUSY:
        return gen_error(gr, 429, "rate_limit_error", err, NULL, "queue_full");
    case SCHED_INVALID:
    default:
        return gen_error(gr, 400, "invalid_request_error", err, "n",
                                  "invalid_value");
    }
}

/* Then the response starts (stream) or waits (one JSON body). */
int gen_local_respond(gen_req *gr)
{
    start_deadline(gr);
    if (gr->prep.req.stream)
        return start_stream(gr);
    if (sched_job_done(gr->job)) /* ended while held: no news will come */
        return respond_full(gr->r, gr->g);
    gr->r->on_resume = respond_full;
    http_suspend(gr->r);
    return 0;
}

int gen_local_start(gen_req *gr)
{
    gen_prep *p = &gr->prep;
    if (p->max_tokens == 0) { /* completions with max_tokens 0: echo only */
        if (p->req.stream)
            return gen_error(gr, 400, "invalid_request_error",
                                      "max_tokens 0 is not supported with stream",
                                      "max_tokens", "invalid_value");
        return respond_full(gr->r, gr->g);
    }
    int rc = gen_local_submit(gr, false);
    return rc == 1 ? gen_local_respond(gr) : rc;
}

/* Resumed once the prompt is rendered (or the client left meanwhile). */
static int on_prepared(http_req *r, void *user)
{
    (void)user;
    gen_req *gr = r->app;
    if (r->client_gone)
        return -1;
    if (gr->preparing) { /* woken early: wait on */
        http_suspend(r);
        return 0;
    }
    r->on_resume = NULL;
    if (gr->prep.count_only) { /* POST /v1/messages/count_tokens */
        if (gr->prep.failed && !gr->prep.context)
            return gen_prep_error(gr);
        if (!gr->prep.ids && !gr->prep.context)
            return gen_error(gr, 503, "service_unavailable", "No local model is loaded", NULL,
                             "model_not_loaded");
        char *json = api_messages_count_json((long long)gr->prep.n_ids);
        int rc = json ? http_respond_json(r, 200, json) : -1;
        free(json);
        return rc;
    }
    return gen_route(gr);
}

static void parse_work(uv_work_t *w)
{
    gen_req *gr = w->data;
    gen_prep_parse(&gr->prep);
}

static void render_work(uv_work_t *w)
{
    gen_req *gr = w->data;
    gen_prep_render(&gr->prep);
}

static void prep_done(uv_work_t *w, int status)
{
    (void)status;
    gen_req *gr = w->data;
    gr->preparing = false;
    if (gr->orphaned) { /* the connection ended meanwhile */
        gen_req_free(gr);
        return;
    }
    http_resume(gr->r);
}

static int queue_prep(gen_req *gr, uv_work_cb work, http_handler next)
{
    gr->work.data = gr;
    if (uv_queue_work(gr->g->loop, &gr->work, work, prep_done) != 0)
        return gen_error(gr, 500, "server_error", "cannot queue the request's preparation",
                         NULL, NULL);
    gr->preparing = true;
    gr->r->on_resume = next;
    http_suspend(gr->r);
    return 0;
}

/* The model is resident (or there is none for this request): render. */
static int render(gen_req *gr)
{
    char err[160];
    gr->prep.lm = gr->lm;
    /* refused before the rendering when nothing could take the job; the
     * submit checks again, as the queue may fill meanwhile. With an
     * upstream configured the router may forward instead. */
    if (gr->lm && !gr->prep.count_only && !gr->g->rt->n_ups &&
        sched_is_full(gr->lm->s, err, sizeof err))
        return gen_error(gr, 429, "rate_limit_error", err, NULL, "queue_full");
    return queue_prep(gr, render_work, on_prepared);
}

/* Resumed when the model's load ended. */
static int on_loaded(http_req *r, void *user)
{
    (void)user;
    gen_req *gr = r->app;
    if (r->client_gone)
        return -1;
    if (gr->load_err[0])
        return gen_error(gr, 503, "service_unavailable", gr->load_err, "model",
                         "model_load_failed");
    if (!gr->lm) { /* woken early: wait on */
        http_suspend(r);
        return 0;
    }
    return render(gr);
}

static void model_ready(resident_wait *w, resident_model *m, const char *err)
{
    gen_req *gr = (gen_req *)((char *)w - offsetof(gen_req, wait));
    gr->lm = m;
    if (!m)
        snprintf(gr->load_err, sizeof gr->load_err, "%s", err ? err : "the model did not load");
    http_resume(gr->r);
}

/* Resumed once the body is parsed: the model it names. */
static int on_parsed(http_req *r, void *user)
{
    (void)user;
    gen_req *gr = r->app;
    if (r->client_gone)
        return -1;
    if (gr->preparing) {
        http_suspend(r);
        return 0;
    }
    r->on_resume = NULL;
    if (gr->prep.failed) /* the router may still forward it */
        return on_prepared(r, NULL);
    char err[700];
    gr->wait.done = model_ready;
    switch (resident_acquire(gr->g->res, gr->prep.model_name, false, &gr->lm, &gr->wait, err,
                             sizeof err)) {
    case RESIDENT_GOT:
    case RESIDENT_NONE:
        return render(gr);
    case RESIDENT_WAIT:
        r->on_resume = on_loaded;
        http_suspend(r);
        return 0;
    case RESIDENT_FAILED:
    default:
        return gen_error(gr, 503, "service_unavailable", err, "model", "model_load_failed");
    }
}

static int handle(gen_service *g, http_req *r, api_kind kind, bool count_only)
{
    gen_req *gr = calloc(1, sizeof *gr);
    if (!gr)
        return -1;
    gr->g = g;
    gr->r = r;
    r->app = gr;
    r->app_free = gen_req_free;
    g->n_requests++;
    api_format_id(gr->id, kind, ids_next());
    gr->created = (int64_t)time(NULL);
    /* The body moves to the preparation, which runs on libuv's thread
     * pool; the connection waits suspended. */
    gr->prep = (gen_prep){.g = g, .kind = kind, .body = r->body, .body_len = r->body_len,
                          .count_only = count_only, .keep_alive = RESIDENT_UNSET,
                          /* with upstreams, the privacy guard reads it */
                          .keep_body = g->rt->n_ups > 0};
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    r->on_disconnect = on_disconnect;
    return queue_prep(gr, parse_work, on_parsed);
}

int gen_chat(gen_service *g, http_req *r) { return handle(g, r, API_CHAT, false); }
int gen_completion(gen_service *g, http_req *r) { return handle(g, r, API_COMPLETION, false); }
int gen_messages(gen_service *g, http_req *r) { return handle(g, r, API_MESSAGES, false); }
int gen_count_tokens(gen_service *g, http_req *r) { return handle(g, r, API_MESSAGES, true); }
int gen_responses(gen_service *g, http_req *r) { return handle(g, r, API_RESPONSES, false); }
