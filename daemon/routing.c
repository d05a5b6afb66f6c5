/* routing.c - see routing.h. */
#include "routing.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

uint64_t routing_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* $STATE_DIRECTORY (systemd's StateDirectory=, the first of a list),
 * else $XDG_STATE_HOME/hearth, else ~/.local/state/hearth; NULL when none
 * can be told. */
static char *state_dir(const hearth_config *cfg)
{
    char buf[4096];
    const char *sd = getenv("STATE_DIRECTORY"), *xdg = getenv("XDG_STATE_HOME"),
               *home = getenv("HOME");
    if (cfg->state_dir)
        snprintf(buf, sizeof buf, "%s", cfg->state_dir);
    else if (sd && *sd)
        snprintf(buf, sizeof buf, "%.*s", (int)strcspn(sd, ":"), sd);
    else if (xdg && *xdg)
        snprintf(buf, sizeof buf, "%s/hearth", xdg);
    else if (home && *home)
        snprintf(buf, sizeof buf, "%s/.local/state/hearth", home);
    else
        return NULL;
    return strdup(buf);
}

int routing_init(routing *rt, const hearth_config *cfg, uv_loop_t *loop, char *err,
                 size_t errlen)
{
    *rt = (routing){.cfg = cfg};
    char why[512];
    if (score_weights_load(cfg->router_weights, &rt->weights, why, sizeof why) != 0) {
        snprintf(err, errlen, "[router] weights: %s", why);
        goto fail;
    }
    if (cfg->n_upstreams == 0)
        return 0; /* everything stays local: nothing else is needed */
    rt->ups = calloc(cfg->n_upstreams, sizeof *rt->ups);
    if (!rt->ups)
        goto oom;
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        if (upstream_init(&rt->ups[i], &cfg->upstreams[i], err, errlen) != 0)
            goto fail;
        rt->n_ups++;
    }
    if (cloud_new(loop, &rt->cloud, err, errlen) != 0)
        goto fail;
    if (privacy_set_new((const char *const *)cfg->privacy_patterns, cfg->n_privacy_patterns,
                        &rt->privacy, why, sizeof why) != PRIVACY_OK) {
        snprintf(err, errlen, "[privacy] pattern: %s", why);
        goto fail;
    }
    budget_limits lim = {cfg->budget_requests_hour, cfg->budget_requests_day,
                         cfg->budget_tokens_hour, cfg->budget_tokens_day};
    char *dir = state_dir(cfg), *path = NULL;
    if (dir) {
        size_t n = strlen(dir) + 32;
        path = malloc(n);
        if (path)
            snprintf(path, n, "%s/router-budget.json", dir);
    }
    free(dir);
    budget_status bs = budget_open(path, &lim, &rt->budget, why, sizeof why);
    if (bs == BUDGET_ECORRUPT || bs == BUDGET_EIO)
        log_warn("router", "budget: %s (counting in memory)", why);
    else if (bs == BUDGET_OK && !path)
        log_warn("router", "budget: no state directory; counts last until restart");
    free(path);
    if (!rt->budget)
        goto oom;
    rt->device = device_cache_new(cfg->sysfs_root ? cfg->sysfs_root : "/sys", cfg->battery_min,
                                  5000);
    if (!rt->device)
        goto oom;
    for (size_t i = 0; i < rt->n_ups; i++)
        log_info("router", "upstream %s: model %s%s", rt->ups[i].conf->name,
                 rt->ups[i].conf->model, rt->ups[i].keyed ? ", with a key" : "");
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    routing_fini(rt);
    return -1;
}

void routing_fini(routing *rt)
{
    if (rt->cloud)
        cloud_free(rt->cloud);
    for (size_t i = 0; i < rt->n_ups; i++)
        upstream_fini(&rt->ups[i]);
    free(rt->ups);
    privacy_set_free(rt->privacy);
    budget_free(rt->budget);
    device_cache_free(rt->device);
    *rt = (routing){0};
}

upstream *routing_find(routing *rt, const char *name)
{
    for (size_t i = 0; i < rt->n_ups; i++)
        if (strcmp(rt->ups[i].conf->name, name) == 0)
            return &rt->ups[i];
    for (size_t i = 0; i < rt->n_ups; i++)
        if (strcmp(rt->ups[i].conf->model, name) == 0)
            return &rt->ups[i];
    return NULL;
}

upstream *routing_pick(routing *rt, upstream *preferred, uint64_t now_ms)
{
    if (preferred)
        return upstream_available(preferred, now_ms) ? preferred : NULL;
    for (size_t i = 0; i < rt->n_ups; i++)
        if (upstream_available(&rt->ups[i], now_ms))
            return &rt->ups[i];
    return NULL;
}

void routing_count(routing *rt, route_to to, const char *reason)
{
    if (to == ROUTE_TO_CLOUD)
        rt->n_cloud++;
    else if (to == ROUTE_TO_LOCAL)
        rt->n_local++;
    else
        rt->n_refused++;
    char key[sizeof rt->reasons[0].reason];
    snprintf(key, sizeof key, "%.*s", (int)strcspn(reason, "="), reason);
    size_t i = 0;
    while (i < rt->n_reasons &&
           !(rt->reasons[i].to == to && strcmp(rt->reasons[i].reason, key) == 0))
        i++;
    if (i == ROUTING_MAX_REASONS) {
        rt->reasons_other[to <= ROUTE_TO_REFUSE ? to : ROUTE_TO_REFUSE]++;
        return;
    }
    if (i == rt->n_reasons) {
        rt->reasons[i] = (routing_reason){.to = to};
        snprintf(rt->reasons[i].reason, sizeof rt->reasons[i].reason, "%s", key);
        rt->n_reasons++;
    }
    rt->reasons[i].n++;
}

void *routing_health(routing *rt)
{
    json_t *ups = json_array();
    uint64_t now = routing_now_ms();
    for (size_t i = 0; i < rt->n_ups; i++) {
        const upstream *u = &rt->ups[i];
        json_array_append_new(
            ups, json_pack("{s:s, s:s, s:b, s:I, s:I, s:i}", "name", u->conf->name, "model",
                           u->conf->model, "available", upstream_available(u, now), "ok",
                           (json_int_t)u->n_ok, "failed", (json_int_t)u->n_failed,
                           "consecutive_failures", u->failures));
    }
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "local", (json_int_t)rt->n_local,
                          "cloud", (json_int_t)rt->n_cloud, "fallbacks",
                          (json_int_t)rt->n_fallback, "refused", (json_int_t)rt->n_refused,
                          "cloud_failed", (json_int_t)rt->n_cloud_failed, "upstreams", ups);
    if (o && rt->budget) {
        budget_usage bu;
        budget_usage_get(rt->budget, time(NULL), &bu);
        json_object_set_new(
            o, "budget",
            json_pack("{s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}", "used",
                      "requests_hour", (json_int_t)bu.requests_hour, "requests_day",
                      (json_int_t)bu.requests_day, "tokens_hour", (json_int_t)bu.tokens_hour,
                      "tokens_day", (json_int_t)bu.tokens_day, "limits", "requests_per_hour",
                      (json_int_t)bu.limits.requests_per_hour, "requests_per_day",
                      (json_int_t)bu.limits.requests_per_day, "tokens_per_hour",
                      (json_int_t)bu.limits.tokens_per_hour, "tokens_per_day",
                      (json_int_t)bu.limits.tokens_per_day));
    }
    return o;
}
