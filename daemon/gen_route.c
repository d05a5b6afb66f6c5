/* gen_route.c - where a prepared generation request is answered: the
 * local model or a cloud upstream (router/policy.h has the rules), said
 * in the response headers X-Hearth-Route and X-Hearth-Route-Reason and in
 * one log line per decision. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>

#include "gen_internal.h"
#include "log.h"

/* The mode a request asks for: X-Hearth-Route, then the model name, then
 * the configured default. Sets *preferred when an upstream is named.
 * -1 with the error queued in *rc. */
static int mode_of(gen_req *gr, route_mode *mode, const char **source, upstream **preferred,
                   int *rc)
{
    gen_service *g = gr->g;
    routing *rt = g->rt;
    const char *name = gr->prep.model_name;
    const char *hdr = MHD_lookup_connection_value(gr->r->conn, MHD_HEADER_KIND,
                                                  "X-Hearth-Route");
    *preferred = name ? routing_find(rt, name) : NULL;
    if (hdr) {
        int m = route_mode_parse(hdr);
        if (m < 0) {
            *rc = gen_error(gr, 400, "invalid_request_error",
                                     "X-Hearth-Route must be auto, local or cloud", NULL,
                                     "invalid_value");
            return -1;
        }
        *mode = (route_mode)m;
        *source = "header";
        return 0;
    }
    *source = "model";
    if (name && strcmp(name, "auto") == 0) {
        *mode = ROUTE_AUTO;
        return 0;
    }
    if (name && ((gr->lm && strcmp(name, gr->lm->name) == 0) || resident_has(g->res, name))) {
        *mode = ROUTE_LOCAL;
        return 0;
    }
    if (*preferred) {
        *mode = ROUTE_CLOUD;
        return 0;
    }
    /* Anthropic's and the Responses API's clients name their own models
     * ("claude-..."): an unknown name there takes the default route */
    bool lenient = gr->prep.kind == API_MESSAGES || gr->prep.kind == API_RESPONSES;
    bool any_local = resident_first(g->res) || resident_default(g->res);
    if (name && !lenient && (any_local || rt->n_ups)) {
        char msg[400];
        snprintf(msg, sizeof msg, "The model '%.200s' does not exist here%s (GET /v1/models "
                 "lists the models; `hearth pull` adds one to the store)", name,
                 rt->n_ups ? "; 'auto' and the upstreams' names route" : "");
        *rc = gen_error(gr, 404, "invalid_request_error", msg, "model",
                                 "model_not_found");
        return -1;
    }
    *mode = (route_mode)route_mode_parse(rt->cfg->route_default);
    *source = "default";
    return 0;
}

/* The local queue's wait, estimated: when every slot is busy, the jobs
 * ahead times the mean job time, over the slots. */
static double queue_wait(gen_service *g, const resident_model *lm)
{
    if (!lm || !lm->s)
        return 0;
    sched_counters c;
    sched_stats(lm->s, &c);
    int slots = lm->n_slots > 0 ? lm->n_slots : 1;
    if (c.running < slots)
        return 0;
    double per = g->rt->job_secs > 0 ? g->rt->job_secs : 2.0;
    return (double)(c.queued + 1) * per / slots;
}

static local_state local_of(const gen_req *gr)
{
    const gen_prep *p = &gr->prep;
    if (p->no_local || !gr->lm || !gr->lm->s)
        return LOCAL_NONE;
    if (p->context)
        return LOCAL_CONTEXT;
    if (p->unsupported)
        return LOCAL_UNSUPPORTED;
    return LOCAL_OK;
}

static void state_input(gen_req *gr, score_input *in)
{
    routing *rt = gr->g->rt;
    device_state d = {0};
    if (rt->device)
        device_get(rt->device, (int64_t)routing_now_ms(), &d);
    bool low = d.on_battery && d.battery_percent >= 0 && d.battery_percent < rt->cfg->battery_min;
    *in = (score_input){.battery_low = low, .thermal = d.thermal,
                        .queue_wait_s = queue_wait(gr->g, gr->lm),
                        .queue_wait_max = rt->cfg->max_queue_wait};
}

static double threshold(const routing *rt)
{
    return rt->cfg->router_threshold >= 0 ? rt->cfg->router_threshold : rt->weights.threshold;
}

/* Headers, log line, counters; then act. */
static int act(gen_req *gr, double score, bool scored)
{
    routing *rt = gr->g->rt;
    policy_out *o = &gr->pol;
    char dest[96];
    if (o->to == ROUTE_TO_CLOUD)
        snprintf(dest, sizeof dest, "cloud:%s", gr->up->conf->name);
    else
        snprintf(dest, sizeof dest, "%s", o->to == ROUTE_TO_LOCAL ? "local" : "refused");
    if (scored && strncmp(o->reason, "score=", 6) != 0)
        log_info("route", "%s: %s (%s; score %.3f)", gr->id, dest, o->reason, score);
    else
        log_info("route", "%s: %s (%s)", gr->id, dest, o->reason);
    if (o->to != ROUTE_TO_REFUSE) {
        http_add_header(gr->r, "X-Hearth-Route", dest);
        http_add_header(gr->r, "X-Hearth-Route-Reason", o->reason);
    }
    routing_count(rt, o->to, o->reason);
    switch (o->to) {
    case ROUTE_TO_CLOUD:
        return gen_cloud_start(gr);
    case ROUTE_TO_LOCAL:
        if (local_of(gr) != LOCAL_OK) {
            if (gr->prep.failed)
                return gen_prep_error(gr);
            return gen_error(gr, 503, "service_unavailable",
                             "No local model is loaded: name a model of the store (`hearth "
                             "pull` adds one; GET /v1/models lists them), or start hearthd "
                             "with --model", NULL, "model_not_loaded");
        }
        if (gr->job) { /* held for its NLL: go on */
            sched_release(gr->lm->s, gr->job);
            return gen_local_respond(gr);
        }
        return gen_local_start(gr);
    case ROUTE_TO_REFUSE:
    default: {
        char msg[200];
        if (strncmp(o->reason, "privacy:", 8) == 0)
            snprintf(msg, sizeof msg, "The request contains data the privacy policy keeps "
                     "on this machine (%s), and it cannot be answered here", o->reason + 8);
        else if (strncmp(o->reason, "budget:", 7) == 0)
            snprintf(msg, sizeof msg, "The cloud budget is spent (%s) and no local model "
                     "can answer", o->reason + 7);
        else
            snprintf(msg, sizeof msg, "No upstream is available (%s) and fallback is off",
                     o->reason);
        http_add_header(gr->r, "X-Hearth-Route-Reason", o->reason);
        return gen_error(gr, o->status ? o->status : 503,
                                  o->status == 429 ? "rate_limit_error"
                                  : o->status == 400 ? "invalid_request_error"
                                                     : "service_unavailable",
                                  msg, NULL, o->reason[0] == 'p' ? "privacy" : "route");
    }
    }
}

static void fill_policy(gen_req *gr, policy_in *in, route_mode mode, const char *source,
                        upstream *preferred)
{
    routing *rt = gr->g->rt;
    const hearth_config *cfg = rt->cfg;
    uint64_t now = routing_now_ms();
    gr->up = rt->n_ups ? routing_pick(rt, preferred, now) : NULL;
    budget_limits lim = {cfg->budget_requests_hour, cfg->budget_requests_day,
                         cfg->budget_tokens_hour, cfg->budget_tokens_day};
    if (rt->budget)
        budget_set_limits(rt->budget, &lim);
    score_input si;
    state_input(gr, &si);
    *in = (policy_in){
        .mode = mode, .mode_source = source, .local = local_of(gr),
        .queue_over = (cfg->max_queue_wait > 0 && si.queue_wait_s > cfg->max_queue_wait) ||
                      (gr->lm && gr->lm->s && sched_is_full(gr->lm->s, NULL, 0)),
        .cloud_configured = rt->n_ups > 0, .cloud_available = gr->up != NULL,
        .fallback = cfg->cloud_fallback != 0,
        /* the budget's windows are clock hours and days: wall time, not
         * the monotonic clock the cool-downs use */
        .budget_cap = rt->n_ups ? budget_check(rt->budget, time(NULL)) : NULL,
        .privacy_kind = gr->prep.privacy_kind >= 0
                            ? privacy_kind_name((privacy_kind)gr->prep.privacy_kind)
                            : NULL,
        .action = (privacy_action)privacy_action_parse(cfg->privacy_action),
        .threshold = threshold(rt)};
}

/* The request's mode and what the policy needs; -1 with an error queued
 * (its status in *rc) when the route asked for is wrong. */
static int policy_of(gen_req *gr, policy_in *in, int *rc)
{
    route_mode mode;
    const char *source;
    upstream *preferred;
    if (mode_of(gr, &mode, &source, &preferred, rc) < 0)
        return -1;
    fill_policy(gr, in, mode, source, preferred);
    return 0;
}

static double score_now(gen_req *gr, const sched_job *j)
{
    routing *rt = gr->g->rt;
    score_input si;
    state_input(gr, &si);
    double ref = gr->lm ? gr->lm->nll_ref : 0;
    if (j && j->nll_n > 0 && ref > 0) {
        si.has_nll = true;
        si.nll_ratio = (j->nll_sum / j->nll_n) / ref;
    }
    score_set_state(&si, gr->prep.x);
    return score_combine(&rt->weights, gr->prep.x, NULL);
}

int gen_route(gen_req *gr)
{
    gen_prep *p = &gr->prep;
    if (p->failed && !p->unsupported && !p->context)
        return gen_prep_error(gr);
    if ((p->kind == API_MESSAGES || p->kind == API_RESPONSES) && p->failed && !p->parsed)
        return gen_prep_error(gr); /* forwarded from the parsed request only */
    policy_in in;
    int rc = 0;
    if (policy_of(gr, &in, &rc) < 0)
        return rc;
    policy_decide(&in, &gr->pol);
    if (!gr->pol.needs_score)
        return act(gr, 0, false);
    /* the score decides. Measure the prompt's NLL on the way when it is
     * worth its cost: a held job prefills, then the score is final. */
    routing *rt = gr->g->rt;
    bool nll = gr->lm && gr->lm->nll_ref > 0 && rt->weights.w[SF_NLL] != 0 && p->max_tokens > 0 &&
               p->n_ids <= rt->cfg->nll_max_tokens;
    if (nll) {
        rc = gen_local_submit(gr, true);
        if (rc != 1)
            return rc;
        gr->awaiting_score = true;
        gr->r->on_resume = gen_route_scored;
        http_suspend(gr->r);
        return 0;
    }
    in.scored = true;
    in.score = score_now(gr, NULL);
    policy_decide(&in, &gr->pol);
    return act(gr, in.score, true);
}

int gen_route_scored(http_req *r, void *user)
{
    (void)user;
    gen_req *gr = r->app;
    if (r->client_gone)
        return -1;
    sched_job *j = gr->job;
    pthread_mutex_lock(&j->mu);
    bool ready = j->prefilled || j->done;
    pthread_mutex_unlock(&j->mu);
    if (!ready) {
        http_suspend(r);
        return 0;
    }
    gr->awaiting_score = false;
    r->on_resume = NULL;
    policy_in in;
    int rc = 0;
    if (policy_of(gr, &in, &rc) < 0)
        return rc;
    in.queue_over = false; /* it has its slot now */
    in.scored = true;
    pthread_mutex_lock(&j->mu);
    in.score = score_now(gr, j);
    pthread_mutex_unlock(&j->mu);
    policy_decide(&in, &gr->pol);
    if (gr->pol.to != ROUTE_TO_LOCAL) {
        /* the prompt stays in the slot's cache as history */
        j->notify = NULL;
        gen_cancel_job(gr);
        sched_job_unref(j);
        gr->job = NULL;
    }
    return act(gr, in.score, true);
}
