/* metrics.h - GET /metrics: what hearthd has done, in the Prometheus text
 * exposition format 0.0.4 (docs/api/metrics.md lists every metric).
 *
 * Two halves. The writer (metrics_text_*) renders metric families,
 * samples and histograms into a growing buffer, with the format's escaping
 * of label values and HELP text; it knows nothing of hearthd. The registry
 * (metrics) keeps what only events can tell - requests by endpoint and
 * status, tokens, time to first token and between tokens, models loaded -
 * and renders it with what is read at scrape time: the scheduler's queue
 * and slots, the router's decisions, the resident memory.
 *
 * Threads: the registry is the loop thread's alone. Its counters are
 * bumped by loop code (http.c's on_done hook as a request ends, gen.c as a
 * local generation ends, server.c when a model loads), and what the
 * scheduler thread owns is read through sched_stats, under the
 * scheduler's lock, when /metrics is scraped; a job's output is read under
 * the job's mutex. So nothing here needs atomics.
 *
 * Cardinality stays bounded: an endpoint is the route's path pattern, not
 * the URL; a method outside a fixed list is "other"; route reasons are a
 * small set (routing.h); and every table has a fixed size. */
#ifndef HEARTH_METRICS_H
#define HEARTH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/routing.h"
#include "daemon/sched_job.h"
#include "daemon/scheduler.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---------------------------------------------------------- the writer */

/* The text being built. On a failed allocation `failed` is set and
 * further writes are dropped: the caller answers 500. */
typedef struct metrics_text {
    char *buf; /* NUL-terminated */
    size_t len, cap;
    bool failed;
} metrics_text;

typedef struct metrics_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]* */
    const char *value; /* any UTF-8: escaped as the format wants */
} metrics_label;

#define METRICS_MAX_BUCKETS 16

/* A histogram: observations counted per bucket (not cumulative here: the
 * writer sums them as it renders). */
typedef struct metrics_hist {
    const double *le; /* finite upper bounds, ascending (inclusive) */
    size_t n_le;      /* <= METRICS_MAX_BUCKETS */
    uint64_t bucket[METRICS_MAX_BUCKETS + 1]; /* the last one: above le[n_le-1] */
    uint64_t count;
    double sum;
} metrics_hist;

void metrics_hist_init(metrics_hist *h, const double *le, size_t n_le);
/* A NaN is not counted. */
void metrics_hist_observe(metrics_hist *h, double v);

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram):
 * once per family, before its samples. */
void metrics_text_family(metrics_text *t, const char *name, const char *type,
                         const char *help);
/* One sample line "name{labels} value". */
void metrics_text_sample(metrics_text *t, const char *name, const metrics_label *labels,
                         size_t n_labels, double value);
void metrics_text_count(metrics_text *t, const char *name, const metrics_label *labels,
                        size_t n_labels, uint64_t value);
/* name_bucket{labels,le="..."} for every bound and +Inf (cumulative),
 * name_sum and name_count. */
void metrics_text_histogram(metrics_text *t, const char *name, const metrics_label *labels,
                            size_t n_labels, const metrics_hist *h);
void metrics_text_free(metrics_text *t);

/* ---------------------------------------------------------- the registry */

typedef struct metrics metrics;

/* NULL when memory is short. */
metrics *metrics_new(void);
void metrics_free(metrics *m);

/* A request ended (http.c's on_done): its method (any; kept when one of
 * GET HEAD POST PUT DELETE PATCH OPTIONS, else "other"), endpoint (a route
 * path pattern; NULL: "other") and status (0: it ended unanswered). */
void metrics_request(metrics *m, const char *method, const char *endpoint, unsigned status);

/* A local generation ended, however it ended: its tokens, and its times
 * (t_arrival_ns: when the request arrived, CLOCK_MONOTONIC; 0: use the
 * job's submission). Takes the job's mutex. */
void metrics_job_end(metrics *m, sched_job *j, uint64_t t_arrival_ns);

/* The same, from figures (what metrics_job_end measures): prompt tokens
 * only when the prompt was processed (ttft >= 0), ttft and itl in seconds,
 * < 0 when not known. */
void metrics_generation(metrics *m, long long prompt, long long cached, long long completion,
                        double ttft, double itl);

/* A model was loaded in `seconds` (a reload replaces the figure), or
 * unloaded. */
void metrics_model_loaded(metrics *m, const char *id, double seconds);
void metrics_model_unloaded(metrics *m, const char *id);

/* What the scrape reads from elsewhere. */
typedef struct metrics_now {
    const sched_counters *sched; /* NULL: no local model */
    int n_slots;
    unsigned in_flight;          /* HTTP requests open */
    const routing *rt;           /* NULL: none */
} metrics_now;

/* The whole exposition, malloc'd and NUL-terminated (its length in *len);
 * NULL when memory is short. */
char *metrics_render(const metrics *m, const metrics_now *now, size_t *len);

#endif
