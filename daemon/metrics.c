/* metrics.c - see metrics.h. */
#include "daemon/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/buf.h"

/* ---------------------------------------------------------- the writer */

static void put(metrics_text *t, const char *s, size_t n)
{
    if (!t->failed && buf_append(&t->buf, &t->len, &t->cap, s, n, 4096) < 0)
        t->failed = true;
}

static void puts_(metrics_text *t, const char *s) { put(t, s, strlen(s)); }

/* HELP text escapes backslash and newline; a label value also the double
 * quote. Everything else, UTF-8 included, goes as it is. */
static void put_escaped(metrics_text *t, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                        : *s == '"' && quote ? "\\\"" : NULL;
        if (!esc)
            continue;
        put(t, run, (size_t)(s - run));
        puts_(t, esc);
        run = s + 1;
    }
    put(t, run, (size_t)(s - run));
}

/* The shortest text that reads back as v; integers without a fraction,
 * and the format's +Inf, -Inf and NaN. */
static void fmt_value(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "NaN");
    else if (isinf(v))
        snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
    else if (v == 0)
        snprintf(buf, n, "0");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, n, "%.0f", v);
    else {
        snprintf(buf, n, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, n, "%.17g", v);
    }
}

static void put_head(metrics_text *t, const char *name, const char *suffix,
                     const metrics_label *labels, size_t n_labels, const char *le)
{
    puts_(t, name);
    puts_(t, suffix);
    if (n_labels == 0 && !le)
        return;
    puts_(t, "{");
    for (size_t i = 0; i < n_labels; i++) {
        if (i)
            puts_(t, ",");
        puts_(t, labels[i].name);
        puts_(t, "=\"");
        put_escaped(t, labels[i].value ? labels[i].value : "", true);
        puts_(t, "\"");
    }
    if (le) {
        puts_(t, n_labels ? ",le=\"" : "le=\"");
        puts_(t, le);
        puts_(t, "\"");
    }
    puts_(t, "}");
}

void metrics_text_family(metrics_text *t, const char *name, const char *type,
                         const char *help)
{
    puts_(t, "# HELP ");
    puts_(t, name);
    puts_(t, " ");
    put_escaped(t, help, false);
    puts_(t, "\n# TYPE ");
    puts_(t, name);
    puts_(t, " ");
    puts_(t, type);
    puts_(t, "\n");
}

void metrics_text_sample(metrics_text *t, const char *name, const metrics_label *labels,
                         size_t n_labels, double value)
{
    char v[40];
    fmt_value(v, sizeof v, value);
    put_head(t, name, "", labels, n_labels, NULL);
    puts_(t, " ");
    puts_(t, v);
    puts_(t, "\n");
}

void metrics_text_count(metrics_text *t, const char *name, const metrics_label *labels,
                        size_t n_labels, uint64_t value)
{
    char v[32];
    snprintf(v, sizeof v, "%" PRIu64, value);
    put_head(t, name, "", labels, n_labels, NULL);
    puts_(t, " ");
    puts_(t, v);
    puts_(t, "\n");
}

void metrics_text_histogram(metrics_text *t, const char *name, const metrics_label *labels,
                            size_t n_labels, const metrics_hist *h)
{
    uint64_t cum = 0;
    char le[40], v[32];
    for (size_t i = 0; i <= h->n_le; i++) {
        cum += h->bucket[i];
        if (i < h->n_le)
            fmt_value(le, sizeof le, h->le[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        put_head(t, name, "_bucket", labels, n_labels, le);
        snprintf(v, sizeof v, " %" PRIu64 "\n", cum);
        puts_(t, v);
    }
    put_head(t, name, "_sum", labels, n_labels, NULL);
    fmt_value(v, sizeof v, h->sum);
    puts_(t, " ");
    puts_(t, v);
    puts_(t, "\n");
    put_head(t, name, "_count", labels, n_labels, NULL);
    snprintf(v, sizeof v, " %" PRIu64 "\n", h->count);
    puts_(t, v);
}

void metrics_text_free(metrics_text *t)
{
    free(t->buf);
    *t = (metrics_text){0};
}

void metrics_hist_init(metrics_hist *h, const double *le, size_t n_le)
{
    *h = (metrics_hist){.le = le, .n_le = n_le < METRICS_MAX_BUCKETS ? n_le
                                                                     : METRICS_MAX_BUCKETS};
}

void metrics_hist_observe(metrics_hist *h, double v)
{
    if (isnan(v))
        return;
    size_t i = 0;
    while (i < h->n_le && v > h->le[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += v;
}

/* ---------------------------------------------------------- the registry */

/* Requests by (method, endpoint, status); the table's size bounds the
 * series whatever clients send, the rest count as "other". */
#define MAX_REQ_SERIES 256

typedef struct req_series {
    const char *method;  /* one of methods[] or "other" */
    char endpoint[64];
    unsigned status;
    uint64_t n;
} req_series;

typedef struct model_entry {
    char *id;
    double load_s;
} model_entry;

struct metrics {
    req_series req[MAX_REQ_SERIES];
    size_t n_req;
    uint64_t req_other;
    uint64_t prompt_tokens, cached_tokens, completion_tokens;
    metrics_hist ttft, itl;
    model_entry *models;
    size_t n_models;
};

/* From a fast local answer to a long wait in a full queue. */
static const double ttft_le[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
/* From a tiny model (well under a millisecond a token) to a large one on
 * a slow machine. */
static const double itl_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05,   0.1,   0.25,   0.5,   1,    2.5};

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                      "OPTIONS"};

metrics *metrics_new(void)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    metrics_hist_init(&m->ttft, ttft_le, sizeof ttft_le / sizeof ttft_le[0]);
    metrics_hist_init(&m->itl, itl_le, sizeof itl_le / sizeof itl_le[0]);
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_models; i++)
        free(m->models[i].id);
    free(m->models);
    free(m);
}

void metrics_request(metrics *m, const char *method, const char *endpoint, unsigned status)
{
    if (!m)
        return;
    const char *meth = "other";
    for (size_t i = 0; method && i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(method, methods[i]) == 0)
            meth = methods[i];
    char ep[sizeof m->req[0].endpoint];
    snprintf(ep, sizeof ep, "%s", endpoint ? endpoint : "other");
    for (size_t i = 0; i < m->n_req; i++) {
        req_series *q = &m->req[i];
        if (q->method == meth && q->status == status && strcmp(q->endpoint, ep) == 0) {
            q->n++;
            return;
        }
    }
    if (m->n_req == MAX_REQ_SERIES) {
        m->req_other++;
        return;
    }
    req_series *q = &m->req[m->n_req++];
    q->method = meth;
    memcpy(q->endpoint, ep, sizeof ep);
    q->status = status;
    q->n = 1;
}

void metrics_generation(metrics *m, long long prompt, long long cached, long long completion,
                        double ttft, double itl)
{
    if (!m)
        return;
    if (ttft >= 0) {
        m->prompt_tokens += prompt > 0 ? (uint64_t)prompt : 0;
        m->cached_tokens += cached > 0 ? (uint64_t)cached : 0;
        metrics_hist_observe(&m->ttft, ttft);
    }
    m->completion_tokens += completion > 0 ? (uint64_t)completion : 0;
    if (itl >= 0)
        metrics_hist_observe(&m->itl, itl);
}

/* TTFT: from the request's arrival to the step that sampled its first
 * token. Between tokens: the job records when its first token came and
 * when it ended, not every token's time, so a request gives one figure,
 * its mean: (end - first) / (tokens - 1), with the tokens of its longest
 * choice; only a job that ended normally (not cancelled, not failed: its
 * end is then its last token) and made two tokens or more. */
void metrics_job_end(metrics *m, sched_job *j, uint64_t t_arrival_ns)
{
    if (!m || !j)
        return;
    pthread_mutex_lock(&j->mu);
    uint64_t t0 = t_arrival_ns && t_arrival_ns <= j->t_submit_ns ? t_arrival_ns
                                                                 : j->t_submit_ns;
    uint64_t first = j->t_first_ns, end = j->t_done_ns;
    bool whole = j->done && !j->error[0];
    long long completion = 0;
    int longest = 0;
    for (int i = 0; i < j->n_choices; i++) {
        const sched_choice *c = &j->choices[i];
        completion += c->n_gen;
        longest = c->n_gen > longest ? c->n_gen : longest;
        whole &= c->finish == SCHED_FINISH_STOP || c->finish == SCHED_FINISH_LENGTH;
    }
    long long prompt = j->n_prompt, cached = j->cached_tokens;
    pthread_mutex_unlock(&j->mu);
    double ttft = first && first >= t0 ? (double)(first - t0) / 1e9 : -1;
    double itl = whole && first && end >= first && longest >= 2
                     ? (double)(end - first) / 1e9 / (longest - 1)
                     : -1;
    metrics_generation(m, prompt, cached, completion, ttft, itl);
}

void metrics_model_loaded(metrics *m, const char *id, double seconds)
{
    if (!m || !id)
        return;
    for (size_t i = 0; i < m->n_models; i++)
        if (strcmp(m->models[i].id, id) == 0) {
            m->models[i].load_s = seconds;
            return;
        }
    model_entry *nm = realloc(m->models, (m->n_models + 1) * sizeof *nm);
    if (!nm)
        return;
    m->models = nm;
    char *dup = strdup(id);
    if (!dup)
        return;
    m->models[m->n_models++] = (model_entry){.id = dup, .load_s = seconds};
}

void metrics_model_unloaded(metrics *m, const char *id)
{
    if (!m || !id)
        return;
    for (size_t i = 0; i < m->n_models; i++)
        if (strcmp(m->models[i].id, id) == 0) {
            free(m->models[i].id);
            m->models[i] = m->models[--m->n_models];
            return;
        }
}

/* ---------------------------------------------------------- rendering */

/* Resident set size from /proc/self/statm (pages); -1 when unknown. */
static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    unsigned long long size, resident;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (double)resident * (double)page : -1;
}

static int req_cmp(const void *a, const void *b)
{
    const req_series *x = a, *y = b;
    int c = strcmp(x->endpoint, y->endpoint);
    if (c == 0)
        c = strcmp(x->method, y->method);
    return c ? c : (x->status > y->status) - (x->status < y->status);
}

static void render_requests(metrics_text *t, const metrics *m, unsigned in_flight)
{
    const char *name = "hearth_http_requests_total";
    metrics_text_family(t, name, "counter",
                        "HTTP requests that ended, by method, endpoint (the route's path "
                        "pattern) and status (none: ended before any response)");
    req_series sorted[MAX_REQ_SERIES];
    memcpy(sorted, m->req, m->n_req * sizeof *sorted);
    qsort(sorted, m->n_req, sizeof *sorted, req_cmp);
    for (size_t i = 0; i < m->n_req; i++) {
        char st[16];
        snprintf(st, sizeof st, "%u", sorted[i].status);
        metrics_label l[] = {{"method", sorted[i].method},
                             {"endpoint", sorted[i].endpoint},
                             {"status", sorted[i].status ? st : "none"}};
        metrics_text_count(t, name, l, 3, sorted[i].n);
    }
    if (m->req_other) {
        metrics_label l[] = {{"method", "other"}, {"endpoint", "other"}, {"status", "other"}};
        metrics_text_count(t, name, l, 3, m->req_other);
    }
    metrics_text_family(t, "hearth_http_requests_in_flight", "gauge",
                        "HTTP requests received and not yet ended");
    metrics_text_count(t, "hearth_http_requests_in_flight", NULL, 0, in_flight);
}

static void render_generation(metrics_text *t, const metrics *m)
{
    metrics_text_family(t, "hearth_prompt_tokens_total", "counter",
                        "Prompt tokens of local generations, cached ones included");
    metrics_text_count(t, "hearth_prompt_tokens_total", NULL, 0, m->prompt_tokens);
    metrics_text_family(t, "hearth_prompt_tokens_cached_total", "counter",
                        "Prompt tokens of local generations found in a slot's cache");
    metrics_text_count(t, "hearth_prompt_tokens_cached_total", NULL, 0, m->cached_tokens);
    metrics_text_family(t, "hearth_completion_tokens_total", "counter",
                        "Tokens generated by the local model");
    metrics_text_count(t, "hearth_completion_tokens_total", NULL, 0, m->completion_tokens);
    metrics_text_family(t, "hearth_time_to_first_token_seconds", "histogram",
                        "Time from a local generation request's arrival to its first token");
    metrics_text_histogram(t, "hearth_time_to_first_token_seconds", NULL, 0, &m->ttft);
    metrics_text_family(t, "hearth_inter_token_latency_seconds", "histogram",
                        "Mean time between two tokens of a local generation, one "
                        "observation per request that made two tokens or more");
    metrics_text_histogram(t, "hearth_inter_token_latency_seconds", NULL, 0, &m->itl);
}

static void render_scheduler(metrics_text *t, const metrics_now *now)
{
    sched_counters zero = {0};
    const sched_counters *c = now->sched ? now->sched : &zero;
    static const struct {
        const char *name, *help;
    } g[] = {
        {"hearth_queue_depth", "Local generation requests waiting for a slot"},
        {"hearth_requests_running", "Local generation requests holding slots"},
        {"hearth_slots", "Slots: sequences the scheduler runs at once ([model] parallel)"},
        {"hearth_slots_busy", "Slots holding a sequence"},
    };
    double v[] = {c->queued, c->running, now->sched ? now->n_slots : 0, c->slots_busy};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        metrics_text_family(t, g[i].name, "gauge", g[i].help);
        metrics_text_sample(t, g[i].name, NULL, 0, v[i]);
    }
    metrics_text_family(t, "hearth_forward_passes_total", "counter",
                        "Forward passes (scheduler steps) of the local model");
    metrics_text_count(t, "hearth_forward_passes_total", NULL, 0, c->steps);
    metrics_text_family(t, "hearth_forward_tokens_total", "counter",
                        "Tokens through the local model's forward passes, prompt and "
                        "generated");
    metrics_text_count(t, "hearth_forward_tokens_total", NULL, 0, c->tokens);
    metrics_text_family(t, "hearth_forward_seconds_total", "counter",
                        "Time spent in the local model's forward passes");
    metrics_text_sample(t, "hearth_forward_seconds_total", NULL, 0, (double)c->decode_ns / 1e9);
}

static void render_process(metrics_text *t, const metrics *m)
{
    metrics_text_family(t, "hearth_models_loaded", "gauge", "Models loaded");
    metrics_text_count(t, "hearth_models_loaded", NULL, 0, m->n_models);
    metrics_text_family(t, "hearth_model_load_seconds", "gauge",
                        "Time the model took to load (weights, tokenizer, template, "
                        "scheduler)");
    for (size_t i = 0; i < m->n_models; i++) {
        metrics_label l[] = {{"model", m->models[i].id}};
        metrics_text_sample(t, "hearth_model_load_seconds", l, 1, m->models[i].load_s);
    }
    double rss = rss_bytes();
    if (rss >= 0) {
        metrics_text_family(t, "hearth_resident_memory_bytes", "gauge",
                            "Resident set size of hearthd (/proc/self/statm)");
        metrics_text_sample(t, "hearth_resident_memory_bytes", NULL, 0, rss);
    }
}

static void render_router(metrics_text *t, const routing *rt)
{
    static const char *const to_name[] = {"local", "cloud", "refused"};
    const char *name = "hearth_route_decisions_total";
    metrics_text_family(t, name, "counter",
                        "Where generation requests were sent, and why (the reason of "
                        "X-Hearth-Route-Reason; score=X counts as score)");
    for (size_t i = 0; i < rt->n_reasons; i++) {
        const routing_reason *r = &rt->reasons[i];
        metrics_label l[] = {{"route", to_name[r->to <= ROUTE_TO_REFUSE ? r->to : 2]},
                             {"reason", r->reason}};
        metrics_text_count(t, name, l, 2, r->n);
    }
    for (int to = 0; to <= ROUTE_TO_REFUSE; to++)
        if (rt->reasons_other[to]) {
            metrics_label l[] = {{"route", to_name[to]}, {"reason", "other"}};
            metrics_text_count(t, name, l, 2, rt->reasons_other[to]);
        }
    metrics_text_family(t, "hearth_route_fallbacks_total", "counter",
                        "Requests sent to the cloud and answered locally after the "
                        "upstream failed");
    metrics_text_count(t, "hearth_route_fallbacks_total", NULL, 0, rt->n_fallback);
    if (!rt->n_ups)
        return;
    name = "hearth_cloud_requests_total";
    metrics_text_family(t, name, "counter",
                        "Requests answered by a cloud upstream, by upstream and result "
                        "(error: a transport failure or a 5xx)");
    for (size_t i = 0; i < rt->n_ups; i++) {
        const upstream *u = &rt->ups[i];
        metrics_label ok[] = {{"upstream", u->conf->name}, {"result", "ok"}};
        metrics_label bad[] = {{"upstream", u->conf->name}, {"result", "error"}};
        metrics_text_count(t, name, ok, 2, u->n_ok);
        metrics_text_count(t, name, bad, 2, u->n_failed);
    }
}

char *metrics_render(const metrics *m, const metrics_now *now, size_t *len)
{
    metrics_text t = {0};
    render_requests(&t, m, now->in_flight);
    render_generation(&t, m);
    render_scheduler(&t, now);
    render_process(&t, m);
    if (now->rt)
        render_router(&t, now->rt);
    if (t.failed || !t.buf) {
        metrics_text_free(&t);
        return NULL;
    }
    *len = t.len;
    return t.buf;
}
