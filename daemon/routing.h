/* routing.h - the daemon's side of the router: what router/ needs, built
 * from the configuration, and the counters /health shows.
 *
 * One routing per server, used on the loop thread only (the privacy set
 * and the weights are read-only and may be read from the preparation
 * threads too). It owns the upstreams (their keys), the cloud client on
 * the loop, the privacy detectors, the score weights, the budget and the
 * device-state cache. The per-request decision is in gen_route.c. */
#ifndef HEARTH_ROUTING_H
#define HEARTH_ROUTING_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "budget.h"
#include "cloud.h"
#include "device.h"
#include "hconfig.h"
#include "policy.h"
#include "privacy.h"
#include "score.h"
#include "upstream.h"

/* Decisions counted by where they went and why (/metrics). */
#define ROUTING_MAX_REASONS 48
typedef struct routing_reason {
    route_to to;
    char reason[40]; /* policy_out.reason, cut at '=' ("score=0.81": "score") */
    uint64_t n;
} routing_reason;

typedef struct routing {
    const hearth_config *cfg; /* live: reloads apply */
    upstream *ups;
    size_t n_ups;
    cloud *cloud;             /* NULL when no upstream is configured */
    privacy_set *privacy;
    score_weights weights;
    budget *budget;
    device_cache *device;
    double job_secs;          /* moving mean of local request durations */
    /* counters, for /health */
    uint64_t n_local, n_cloud, n_fallback, n_refused, n_cloud_failed;
    /* the same decisions by reason, for /metrics: the reasons are a small
     * set (router/policy.h); should the table fill, the rest count in
     * reasons_other, by route_to */
    routing_reason reasons[ROUTING_MAX_REASONS];
    size_t n_reasons;
    uint64_t reasons_other[ROUTE_TO_REFUSE + 1];
} routing;

int routing_init(routing *rt, const hearth_config *cfg, uv_loop_t *loop, char *err,
                 size_t errlen);
void routing_fini(routing *rt);

/* The upstream a model name stands for (its section name or its model),
 * NULL when none. */
upstream *routing_find(routing *rt, const char *name);
/* The first upstream not cooling down (preferred first when given and
 * available), NULL when none. */
upstream *routing_pick(routing *rt, upstream *preferred, uint64_t now_ms);
uint64_t routing_now_ms(void);

/* Count one decision of the policy (the totals and the count by reason). */
void routing_count(routing *rt, route_to to, const char *reason);

/* The "router" object of /health (a jansson json_t *). */
void *routing_health(routing *rt);

#endif
