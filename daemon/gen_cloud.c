/* gen_cloud.c - a generation request answered by a cloud upstream.
 *
 * The body goes upstream rewritten by router/forward.c (the upstream's
 * model name, placeholders when redacting) through router/cloud.c on the
 * loop. The answer comes back through router/relay.c:
 *   - streamed: the client's response (200, text/event-stream) starts
 *     with the first event the upstream produced, and each event is
 *     passed on as it arrives; a failure after that ends the stream with
 *     an error event the SDKs raise;
 *   - not streamed: the whole body, restored, with the upstream's status.
 * A connection failure, a timeout or a 5xx before anything reached the
 * client falls back to the local model when the policy allows
 * ("cloud-error-fallback"); a 4xx reaches the client as the upstream sent
 * it. Keys, bodies and matched text never reach a log line. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "chat_body.h"
#include "forward.h"
#include "gen_internal.h"
#include "log.h"

static int cbuf_add(gen_req *gr, const char *d, size_t n)
{
    return buf_append(&gr->cbuf, &gr->cbuf_len, &gr->cbuf_cap, d, n, 4096);
}

/* The upstream answers with a stream worth relaying. */
static bool relaying(const gen_req *gr)
{
    return gr->prep.req.stream && gr->c_status >= 200 && gr->c_status < 300;
}

static void on_data(cloud_req *cr, long status, const char *data, size_t len, void *arg)
{
    (void)cr;
    gen_req *gr = arg;
    gr->c_status = status;
    if (relaying(gr)) {
        relay_status st = relay_feed(gr->rl, data, len);
        if (st != RELAY_OK) {
            /* ended ([DONE], an error event, malformed data): the rest of
             * the body is not wanted */
            cloud_cancel(gr->creq);
            gr->creq = NULL;
            gr->c_done = true;
            gr->c_failed = st != RELAY_DONE;
            if (gr->c_failed)
                snprintf(gr->c_err, sizeof gr->c_err, "%s", relay_strerror(st));
        }
        if (relay_produced(gr->rl) || gr->c_done)
            http_resume(gr->r);
        return;
    }
    /* a whole body (or an error page): kept up to max_body */
    if (gr->cbuf_len + len > (size_t)16 << 20 || cbuf_add(gr, data, len) < 0) {
        cloud_cancel(gr->creq);
        gr->creq = NULL;
        gr->c_done = gr->c_failed = true;
        snprintf(gr->c_err, sizeof gr->c_err, "the upstream's answer is too large");
        http_resume(gr->r);
    }
}

static void on_done(cloud_req *cr, int result, long status, const char *err, void *arg)
{
    (void)cr;
    gen_req *gr = arg;
    gr->creq = NULL;
    gr->c_done = true;
    gr->c_status = status;
    if (result != 0) {
        gr->c_failed = true;
        snprintf(gr->c_err, sizeof gr->c_err, "%s", err ? err : "transfer failed");
    }
    if (relaying(gr)) {
        relay_status st = relay_finish(gr->rl, result == 0);
        if (st != RELAY_DONE && !gr->c_failed) {
            gr->c_failed = true;
            snprintf(gr->c_err, sizeof gr->c_err, "%s", relay_strerror(st));
        }
    }
    http_resume(gr->r);
}

/* The answer is over: health, budget, log. */
static void account(gen_req *gr, const relay_usage *whole)
{
    if (gr->c_accounted)
        return;
    gr->c_accounted = true;
    routing *rt = gr->g->rt;
    const hearth_config *cfg = rt->cfg;
    bool ok = !gr->c_failed && gr->c_status > 0 && gr->c_status < 500;
    upstream_record(gr->up, ok, routing_now_ms(), cfg->cooldown, cfg->cooldown_failures);
    if (!ok)
        rt->n_cloud_failed++;
    relay_usage u = {0};
    if (whole)
        u = *whole;
    else if (gr->rl)
        u = *relay_get_usage(gr->rl);
    long long tokens = u.seen ? (u.total_tokens ? u.total_tokens
                                                : u.prompt_tokens + u.completion_tokens)
                              : (long long)(gr->prep.body_len / 4 + u.content_bytes / 4);
    if (gr->c_status >= 200 && gr->c_status < 300)
        budget_charge_tokens(rt->budget, time(NULL), tokens);
    log_info("route", "%s: cloud:%s answered %ld%s%s, %lld tokens%s", gr->id,
             gr->up->conf->name, gr->c_status, gr->c_failed ? ", failed: " : "",
             gr->c_failed ? gr->c_err : "", tokens, u.seen ? "" : " (estimated)");
}

/* Before anything reached the client: answer locally instead? */
static bool may_fall_back(const gen_req *gr)
{
    bool failed = gr->c_failed || gr->c_status >= 500 || gr->c_status == 0;
    return failed && gr->g->rt->cfg->cloud_fallback && gr->lm && gr->lm->s &&
           !gr->prep.failed &&
           gr->pol.reason[0] != 'p'; /* never privacy-kept */
}

static int fall_back(gen_req *gr)
{
    routing *rt = gr->g->rt;
    rt->n_fallback++;
    log_info("route", "%s: local (cloud-error-fallback)", gr->id);
    http_add_header(gr->r, "X-Hearth-Route", "local");
    http_add_header(gr->r, "X-Hearth-Route-Reason", "cloud-error-fallback");
    gr->r->on_resume = NULL;
    return gen_local_start(gr);
}

/* A stream translated into the client's dialect: served from gr->pend. */
static ssize_t translated_reader(gen_req *gr, char *buf, size_t max)
{
    if (gr->pend_off == gr->pend_len) {
        gr->pend_off = gr->pend_len = 0;
        if (gen_translate_pull(gr) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (gr->pend_len == 0 && gr->c_done && !gr->fc->ended &&
            api_from_chat_done(gr->fc, &gr->pend, &gr->pend_len, &gr->pend_cap) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (gr->pend_len == 0) {
            if (gr->c_done || gr->fc->ended) {
                account(gr, NULL);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            http_suspend(gr->r); /* on_data resumes it */
            return 0;
        }
    }
    return (ssize_t)gen_pend_out(gr, buf, max);
}

static ssize_t cloud_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    gen_req *gr = cls;
    if (gr->r->client_gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (gen_translating(gr))
        return translated_reader(gr, buf, max);
    size_t n = 0;
    const char *p = relay_pending(gr->rl, &n);
    if (n == 0) {
        if (gr->c_done) {
            account(gr, NULL);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        http_suspend(gr->r); /* on_data resumes it */
        return 0;
    }
    if (n > max)
        n = max;
    memcpy(buf, p, n);
    relay_consume(gr->rl, n);
    gr->r->bytes += n;
    return (ssize_t)n;
}

/* Resumed by the cloud callbacks: start or finish the client's answer. */
static int on_cloud(http_req *r, void *user)
{
    (void)user;
    gen_req *gr = r->app;
    if (r->client_gone)
        return -1;
    if (relaying(gr) && relay_produced(gr->rl)) {
        r->on_resume = NULL;
        gr->c_started = true;
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, cloud_reader, gr, NULL);
        if (!resp)
            return -1;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        return http_respond_custom(r, 200, resp);
    }
    if (!gr->c_done) { /* woken early */
        http_suspend(r);
        return 0;
    }
    r->on_resume = NULL;
    if (!relaying(gr) && !gr->c_failed && gr->c_status >= 200 && gr->c_status < 300 &&
        gr->cbuf_len == 0) {
        /* a success without a body is no answer */
        gr->c_failed = true;
        snprintf(gr->c_err, sizeof gr->c_err, "the upstream sent an empty answer");
    }
    bool unusable = gr->c_status == 0 || (gr->c_failed && !relaying(gr)) ||
                    (relaying(gr) && !relay_produced(gr->rl));
    if (unusable || gr->c_status >= 500) {
        account(gr, NULL);
        if (may_fall_back(gr))
            return fall_back(gr);
    }
    gr->c_started = true;
    if (unusable) {
        char msg[240];
        snprintf(msg, sizeof msg, "The upstream '%s' failed: %s", gr->up->conf->name,
                 gr->c_err[0] ? gr->c_err : "no answer");
        return gen_error(gr, 502, "server_error", msg, NULL, "upstream_error");
    }
    /* a whole body: restored when redacted, with the upstream's status */
    char *out = NULL;
    size_t out_len = 0;
    relay_usage u;
    if (relay_json(gr->cbuf ? gr->cbuf : "", gr->cbuf_len, gr->map, &out, &out_len, &u) !=
        RELAY_OK)
        return http_respond_error(r, 500, "server_error", "out of memory", NULL, NULL);
    account(gr, &u);
    int rc = gen_translating(gr)
                 ? gen_translate_full(gr, out, out_len, (unsigned)gr->c_status)
                 : http_respond(r, (unsigned)gr->c_status, "application/json", out, out_len);
    free(out);
    return rc;
}

int gen_cloud_start(gen_req *gr)
{
    gen_service *g = gr->g;
    routing *rt = g->rt;
    upstream *u = gr->up;
    gen_prep *p = &gr->prep;
    char err[200];
    if (gr->pol.redact) {
        gr->map = privacy_map_new();
        if (!gr->map)
            return -1;
    }
    /* Messages and Responses go out in the upstream's format */
    char *chat = gen_translating(gr) ? api_chat_body(&p->req) : NULL;
    if (gen_translating(gr) && !chat)
        return -1;
    forward_result fr;
    forward_status fs = forward_body(chat ? chat : p->body, chat ? strlen(chat) : p->body_len,
                                     u->conf->model, gr->pol.redact ? rt->privacy : NULL,
                                     gr->map, &fr, err, sizeof err);
    free(chat);
    if (fs == FORWARD_EBODY)
        return http_respond_error(gr->r, 400, "invalid_request_error", err, NULL,
                                  "invalid_json");
    if (fs == FORWARD_ENOMEM)
        return -1;
    privacy_hit hit;
    size_t n = 0;
    if (fs == FORWARD_EUNSCANNED ||
        (gr->pol.redact && /* what the redaction did not reach stays here */
         (privacy_scan(rt->privacy, fr.body, fr.len, &hit, 1, &n) != PRIVACY_OK || n))) {
        free(fr.body);
        log_info("route", "%s: local (privacy:%s outside the messages)", gr->id,
                 n ? privacy_kind_name(hit.kind) : "unscanned");
        http_add_header(gr->r, "X-Hearth-Route", "local");
        http_add_header(gr->r, "X-Hearth-Route-Reason", "privacy");
        if (!gr->lm || p->failed)
            return http_respond_error(gr->r, 400, "invalid_request_error",
                                      "The request holds data the privacy policy keeps "
                                      "here, outside the messages", NULL, "privacy");
        return gen_local_start(gr);
    }
    gr->client_usage = fr.client_wants_usage;
    if (p->req.stream || fr.stream) {
        /* a translated stream reads the usage itself (api/from_chat.h) */
        relay_opts ro = {.map = gr->map,
                         .drop_usage = !fr.client_wants_usage && !gen_translating(gr)};
        gr->rl = relay_new(&ro);
        if (!gr->rl) {
            free(fr.body);
            return -1;
        }
        p->req.stream = true;
    }
    char *url = upstream_url(u, p->kind == API_COMPLETION ? "completions" : "chat/completions");
    cloud_opts co = {.url = url, .headers = (const char *const *)u->headers,
                     .n_headers = u->n_headers, .body = fr.body, .body_len = fr.len,
                     .connect_timeout_ms = (long)u->conf->connect_timeout * 1000,
                     .total_timeout_ms = (long)u->conf->timeout * 1000,
                     .ca_file = u->conf->ca_file, .on_data = on_data, .on_done = on_done,
                     .arg = gr};
    gr->creq = url ? cloud_start(rt->cloud, &co, err, sizeof err) : NULL;
    free(url);
    free(fr.body);
    if (!gr->creq) {
        gr->c_done = gr->c_failed = true;
        snprintf(gr->c_err, sizeof gr->c_err, "%.150s", url ? err : "out of memory");
    } else
        budget_charge_request(rt->budget, time(NULL));
    gr->r->on_resume = on_cloud;
    if (!gr->creq)
        return on_cloud(gr->r, NULL);
    http_suspend(gr->r);
    return 0;
}

void gen_cloud_disconnect(gen_req *gr)
{
    if (gr->creq) {
        cloud_cancel(gr->creq);
        gr->creq = NULL;
        gr->c_done = gr->c_failed = true;
        snprintf(gr->c_err, sizeof gr->c_err, "the client went away");
    }
}

void gen_cloud_free(gen_req *gr)
{
    gen_cloud_disconnect(gr);
    gen_translate_free(gr);
    relay_free(gr->rl);
    privacy_map_free(gr->map);
    free(gr->cbuf);
    gr->rl = NULL;
    gr->map = NULL;
    gr->cbuf = NULL;
}
