/* resident_json.c - see resident_json.h. */
#include "daemon/resident_json.h"

#include <stdio.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/store.h"

/* The resident models for /health. */
json_t *resident_json_list(resident *rs)
{
    json_t *a = json_array();
    uint64_t now = uv_hrtime();
    for (resident_model *lm = resident_first(rs); lm; lm = lm->next) {
        sched_counters c = {0};
        if (lm->s)
            sched_stats(lm->s, &c);
        uint64_t at = resident_expiry_ns(lm);
        double left = at == UINT64_MAX ? -1 /* not counting down */
                      : at > now ? (double)(at - now) / 1e9 : 0;
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:i, s:b, s:I, s:I, s:f, s:f, s:i, s:i}", "id", lm->name,
                         "state", lm->state == RESIDENT_READY ? "ready" : "loading",
                         "requests", lm->refs, "pinned", lm->pinned,
                         "memory_bytes", (json_int_t)(lm->bytes ? lm->bytes : lm->file_bytes),
                         "keep_alive_ms", (json_int_t)lm->keep_alive_ms,
                         "expires_in_seconds", left, "load_seconds", lm->load_seconds,
                         "running", c.running, "queued", c.queued));
    }
    return a;
}

static json_t *model_entry(const char *id, long long created, const resident_model *lm,
                           const store_entry *e)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                          (json_int_t)created, "owned_by", "hearth");
    if (lm && lm->state == RESIDENT_READY) {
        const model_hparams *hp = model_hparams_of(lm->m);
        json_object_set_new(o, "context_length", json_integer(lm->n_ctx));
        json_object_set_new(o, "meta", json_pack("{s:s, s:i, s:i, s:I, s:i}", "architecture",
                                                 hp->arch_name, "n_ctx_train", hp->n_ctx_train,
                                                 "n_vocab", hp->n_vocab, "n_params",
                                                 (json_int_t)model_n_params(lm->m), "n_embd",
                                                 hp->n_embd));
    }
    json_object_set_new(o, "loaded", json_boolean(lm && lm->state == RESIDENT_READY));
    uint64_t size = lm ? lm->file_bytes : e ? e->size : 0;
    if (size)
        json_object_set_new(o, "size", json_integer((json_int_t)size));
    return o;
}

/* The models this daemon serves: the resident ones, the store's, then
 * auto and the upstreams when the router has any. */
json_t *resident_json_models(resident *rs, const routing *rt)
{
    json_t *data = json_array();
    for (resident_model *lm = resident_first(rs); lm; lm = lm->next)
        json_array_append_new(data, model_entry(lm->name, lm->created, lm, NULL));
    store_entry *e = NULL;
    size_t n = 0;
    char err[256];
    const char *dir = resident_store_dir(rs);
    if (dir && store_list(dir, &e, &n, err, sizeof err) < 0)
        log_warn("store", "%s", err);
    for (size_t i = 0; i < n; i++) {
        bool held = false;
        for (resident_model *lm = resident_first(rs); lm && !held; lm = lm->next)
            held = strcmp(lm->name, e[i].name) == 0;
        if (!held)
            json_array_append_new(data, model_entry(e[i].name, (long long)e[i].mtime, NULL,
                                                    &e[i]));
    }
    store_entries_free(e, n);
    if (rt->n_ups) {
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s}", "id", "auto", "object",
                                              "model", "created", (json_int_t)0,
                                              "owned_by", "hearth-router"));
        for (size_t i = 0; i < rt->n_ups; i++) {
            char owner[96];
            snprintf(owner, sizeof owner, "cloud:%s", rt->ups[i].conf->name);
            json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s, s:s}", "id",
                                                  rt->ups[i].conf->name, "object", "model",
                                                  "created", (json_int_t)0, "owned_by", owner,
                                                  "upstream_model", rt->ups[i].conf->model));
        }
    }
    return data;
}

