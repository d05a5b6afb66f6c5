/* resident.c - see resident.h. */
#include "daemon/resident.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/resident_load.h"
#include "daemon/store.h"
#include "kernels.h"

struct resident {
    resident_params p;     /* strings owned */
    char *path_name;       /* the pinned model's name, NULL: none */
    char *store_default;   /* the store's only model, cached */
    resident_model *list;  /* resident and loading models */
    sched_counters retired; /* the counters of models unloaded */
    uv_timer_t timer;      /* keep-alive expiry */
    bool stopping;
};

typedef struct load_job {
    uv_work_t work;
    resident *rs;
    resident_model *lm;
    uint64_t t0;
    int rc;
    char err[512];
} load_job;

static uint64_t now_ns(void) { return uv_hrtime(); }

static char *name_of_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".gguf") == 0)
        n -= 5;
    return strndup(base, n);
}

static resident_model *find(resident *rs, const char *name)
{
    for (resident_model *lm = rs->list; lm; lm = lm->next)
        if (strcmp(lm->name, name) == 0)
            return lm;
    return NULL;
}

static void unlink_model(resident *rs, resident_model *lm)
{
    for (resident_model **pp = &rs->list; *pp; pp = &(*pp)->next)
        if (*pp == lm) {
            *pp = lm->next;
            return;
        }
}

static void add_counters(sched_counters *to, const sched_counters *c)
{
    to->running += c->running;
    to->queued += c->queued;
    to->slots_busy += c->slots_busy;
    to->submitted += c->submitted;
    to->ended += c->ended;
    to->steps += c->steps;
    to->failed_steps += c->failed_steps;
    to->tokens += c->tokens;
    to->decode_ns += c->decode_ns;
    to->sample_ns += c->sample_ns;
    to->nll_rows += c->nll_rows;
    to->nll_ns += c->nll_ns;
}

static void unload(resident *rs, resident_model *lm, const char *why)
{
    sched_counters c;
    sched_stats(lm->s, &c);
    c.running = c.queued = c.slots_busy = 0; /* gauges: gone with it */
    add_counters(&rs->retired, &c);
    unlink_model(rs, lm);
    metrics_model_unloaded(rs->p.metrics, lm->name);
    log_info("model", "unloaded %s (%s)", lm->name, why);
    resident_load_free(lm);
}

/* Memory the resident models take (loading ones by their file size). */
static uint64_t held_bytes(const resident *rs, const resident_model *except)
{
    uint64_t sum = 0;
    for (const resident_model *lm = rs->list; lm; lm = lm->next)
        if (lm != except && (lm->state == RESIDENT_READY || lm->started))
            sum += lm->state == RESIDENT_READY ? lm->bytes : lm->file_bytes;
    return sum;
}

static uint64_t pinned_bytes(const resident *rs)
{
    uint64_t sum = 0;
    for (const resident_model *lm = rs->list; lm; lm = lm->next)
        if (lm->pinned)
            sum += lm->bytes;
    return sum;
}

static bool idle(const resident_model *lm)
{
    return lm->state == RESIDENT_READY && lm->refs == 0 && !lm->pinned && !lm->waiters;
}

/* Unload idle models, least recently used first, until need more bytes
 * fit the budget: whether they do. */
static bool make_room(resident *rs, uint64_t need, const resident_model *for_lm)
{
    if (!rs->p.budget_bytes)
        return true;
    for (;;) {
        if (held_bytes(rs, for_lm) + need <= rs->p.budget_bytes)
            return true;
        resident_model *lru = NULL;
        for (resident_model *lm = rs->list; lm; lm = lm->next)
            if (idle(lm) && (!lru || lm->last_used_ns < lru->last_used_ns))
                lru = lm;
        if (!lru)
            return false;
        unload(rs, lru, "memory budget");
    }
}

/* ---------------------------------------------------------- keep-alive */

static void arm_timer(resident *rs);

uint64_t resident_expiry_ns(const resident_model *lm)
{
    if (!idle(lm) || lm->keep_alive_ms < 0)
        return UINT64_MAX;
    return lm->last_used_ns + (uint64_t)lm->keep_alive_ms * 1000000u;
}

static void on_timer(uv_timer_t *t)
{
    resident *rs = t->data;
    uint64_t now = now_ns();
    resident_model *lm = rs->list, *next;
    for (; lm; lm = next) {
        next = lm->next;
        if (resident_expiry_ns(lm) <= now)
            unload(rs, lm, "keep_alive expired");
    }
    arm_timer(rs);
}

static void arm_timer(resident *rs)
{
    if (rs->stopping)
        return;
    uint64_t first = UINT64_MAX;
    for (resident_model *lm = rs->list; lm; lm = lm->next) {
        uint64_t at = resident_expiry_ns(lm);
        if (at < first)
            first = at;
    }
    if (first == UINT64_MAX) {
        uv_timer_stop(&rs->timer);
        return;
    }
    uint64_t now = now_ns();
    uint64_t ms = first > now ? (first - now + 999999u) / 1000000u : 0;
    uv_timer_start(&rs->timer, on_timer, ms, 0);
}

/* ---------------------------------------------------------- loading */

static void wake(resident_model *lm, const char *err)
{
    resident_wait *w = lm->waiters;
    lm->waiters = NULL;
    while (w) {
        resident_wait *next = w->next;
        w->on = NULL;
        w->next = NULL;
        if (!err) {
            lm->refs++;
            lm->last_used_ns = now_ns();
        }
        w->done(w, err ? NULL : lm, err);
        w = next;
    }
}

static void load_work(uv_work_t *w)
{
    load_job *lj = w->data;
    /* [model] chat_template is the --model model's, loaded in resident_new */
    lj->rc = resident_load_files(lj->lm, NULL, lj->rs->p.want_nll, lj->err, sizeof lj->err);
}

static void start_queued(resident *rs);

static void loaded(resident *rs, resident_model *lm)
{
    lm->state = RESIDENT_READY;
    lm->last_used_ns = now_ns();
    metrics_model_loaded(rs->p.metrics, lm->name, lm->load_seconds);
    if (lm->warning[0])
        log_warn("model", "%s: %s", lm->name, lm->warning);
    const model_hparams *hp = model_hparams_of(lm->m);
    log_info("model", "loaded %s (%s): %s, %d layers, %.1fM parameters, context %d x %d "
             "slots, chat template %s, %s kernels, about %.0f MiB, in %.0f ms",
             lm->name, lm->path, hp->arch_name, hp->n_layer,
             (double)model_n_params(lm->m) / 1e6, lm->n_ctx, lm->n_slots, lm->tmpl_source,
             kern_get()->name, (double)lm->bytes / 1048576.0, lm->load_seconds * 1e3);
    if (lm->nll_ref > 0)
        log_info("router", "%s: reference NLL %.3f nats/token", lm->name, lm->nll_ref);
}

static void load_done(uv_work_t *w, int status)
{
    load_job *lj = w->data;
    resident *rs = lj->rs;
    resident_model *lm = lj->lm;
    if (lj->rc == 0 && status == 0 && !rs->stopping &&
        resident_load_sched(lm, &rs->p, lj->err, sizeof lj->err) == 0) {
        lm->load_seconds = (double)(now_ns() - lj->t0) / 1e9;
        loaded(rs, lm);
        wake(lm, NULL);
        make_room(rs, 0, NULL); /* the estimate grew by the KV cache */
    } else {
        char msg[700];
        if (rs->stopping)
            snprintf(msg, sizeof msg, "the server is stopping");
        else
            snprintf(msg, sizeof msg, "the model '%.100s' cannot be loaded: %s", lm->name,
                     status ? uv_strerror(status) : lj->err);
        if (!rs->stopping)
            log_warn("model", "%s", msg);
        unlink_model(rs, lm);
        wake(lm, msg);
        resident_load_free(lm);
    }
    free(lj);
    start_queued(rs);
    arm_timer(rs);
}

static void start_load(resident *rs, resident_model *lm)
{
    load_job *lj = calloc(1, sizeof *lj);
    lm->started = true;
    if (lj) {
        lj->t0 = now_ns();
        lj->rs = rs;
        lj->lm = lm;
        lj->work.data = lj;
        if (uv_queue_work(rs->p.loop, &lj->work, load_work, load_done) == 0)
            return;
        free(lj);
    }
    unlink_model(rs, lm);
    wake(lm, "cannot start loading the model (out of memory)");
    resident_load_free(lm);
}

/* Loads that wait for room start once idle models can make it, the
 * oldest first (it is not overtaken by smaller ones). make_room and
 * start_load change the list: it is scanned afresh each time. */
static void start_queued(resident *rs)
{
    while (!rs->stopping) {
        resident_model *oldest = NULL;
        for (resident_model *lm = rs->list; lm; lm = lm->next)
            if (lm->state == RESIDENT_LOADING && !lm->started)
                oldest = lm; /* new models go first in the list */
        if (!oldest || !make_room(rs, oldest->file_bytes, oldest))
            return;
        start_load(rs, oldest);
    }
}

/* ---------------------------------------------------------- public */

int resident_parse_duration(const char *s, int64_t *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (strcmp(s, "-1") == 0) {
        *out = RESIDENT_FOREVER;
        return 0;
    }
    double total = 0;
    bool any = false;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0 || v > 1e9)
            return -1;
        s = end;
        double unit = 1000; /* a bare number: seconds */
        if (s[0] == 'm' && s[1] == 's') {
            unit = 1;
            s += 2;
        } else if (*s == 'h' || *s == 'm' || *s == 's') {
            unit = *s == 'h' ? 3600000 : *s == 'm' ? 60000 : 1000;
            s++;
        } else if (*s && !isspace((unsigned char)*s)) {
            return -1;
        }
        while (isspace((unsigned char)*s))
            s++;
        total += v * unit;
        any = true;
    }
    if (!any || total > 9e15)
        return -1;
    *out = (int64_t)total;
    return 0;
}

int resident_new(resident **out, const resident_params *p, char *err, size_t errlen)
{
    resident *rs = calloc(1, sizeof *rs);
    if (!rs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rs->p = *p;
    rs->p.store_dir = p->store_dir ? strdup(p->store_dir) : NULL;
    rs->p.path = p->path ? strdup(p->path) : NULL;
    rs->p.chat_template = p->chat_template ? strdup(p->chat_template) : NULL;
    rs->p.default_name = p->default_name ? strdup(p->default_name) : NULL;
    uv_timer_init(p->loop, &rs->timer);
    rs->timer.data = rs;
    *out = rs;
    if (!p->path)
        return 0;
    /* the pinned model, loaded now: start-up fails without it */
    resident_model *lm = calloc(1, sizeof *lm);
    struct stat st;
    if (!lm || !(lm->path = strdup(p->path)) || !(lm->name = name_of_path(p->path))) {
        resident_load_free(lm);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    lm->pinned = true;
    lm->keep_alive_ms = RESIDENT_FOREVER;
    if (stat(p->path, &st) == 0) {
        lm->created = (long long)st.st_mtime;
        lm->file_bytes = (uint64_t)st.st_size;
    }
    uint64_t t0 = now_ns();
    char why[512];
    if (resident_load_files(lm, p->chat_template, p->want_nll, why, sizeof why) < 0 ||
        resident_load_sched(lm, &rs->p, why, sizeof why) < 0) {
        /* as an on-demand load says it; model_load's reasons name the file */
        snprintf(err, errlen, "the model '%.100s' cannot be loaded: %s", lm->name, why);
        resident_load_free(lm);
        return -1;
    }
    lm->load_seconds = (double)(now_ns() - t0) / 1e9;
    rs->path_name = strdup(lm->name);
    lm->next = rs->list;
    rs->list = lm;
    loaded(rs, lm);
    return 0;
}

static void on_timer_closed(uv_handle_t *h) { (void)h; }

void resident_stop(resident *rs)
{
    if (!rs || rs->stopping)
        return;
    rs->stopping = true;
    uv_close((uv_handle_t *)&rs->timer, on_timer_closed);
    for (resident_model *lm = rs->list; lm; lm = lm->next) {
        sched_free(lm->s);
        lm->s = NULL;
    }
}

void resident_free(resident *rs)
{
    if (!rs)
        return;
    resident_stop(rs);
    while (rs->list) {
        resident_model *lm = rs->list;
        rs->list = lm->next;
        wake(lm, "the server is stopping");
        resident_load_free(lm);
    }
    free((char *)rs->p.store_dir);
    free((char *)rs->p.path);
    free((char *)rs->p.chat_template);
    free((char *)rs->p.default_name);
    free(rs->path_name);
    free(rs->store_default);
    free(rs);
}

static resident_status got_or_wait(resident_model *lm, resident_model **out, resident_wait *w)
{
    if (lm->state == RESIDENT_READY) {
        lm->refs++;
        lm->last_used_ns = now_ns();
        *out = lm;
        return RESIDENT_GOT;
    }
    w->on = lm;
    w->next = lm->waiters;
    lm->waiters = w;
    return RESIDENT_WAIT;
}

/* A model of the store, queued for loading. */
static resident_status from_store(resident *rs, const store_entry *e, resident_model **out,
                                  resident_wait *w, char *err, size_t errlen)
{
    uint64_t cap = rs->p.budget_bytes;
    if (cap && e->size > cap - (pinned_bytes(rs) < cap ? pinned_bytes(rs) : cap)) {
        snprintf(err, errlen, "The model '%.100s' needs at least %.1f MiB, more than "
                 "[model] memory_budget leaves (%.1f MiB, %.1f MiB of it held by the "
                 "--model model)", e->name, (double)e->size / 1048576.0,
                 (double)cap / 1048576.0, (double)pinned_bytes(rs) / 1048576.0);
        return RESIDENT_FAILED;
    }
    resident_model *lm = calloc(1, sizeof *lm);
    if (!lm || !(lm->name = strdup(e->name)) || !(lm->path = strdup(e->path))) {
        resident_load_free(lm);
        snprintf(err, errlen, "out of memory");
        return RESIDENT_FAILED;
    }
    lm->state = RESIDENT_LOADING;
    lm->file_bytes = e->size;
    lm->created = e->mtime;
    lm->keep_alive_ms = rs->p.keep_alive_ms;
    lm->next = rs->list;
    rs->list = lm;
    resident_status st = got_or_wait(lm, out, w);
    log_info("model", "loading %s from the store (%s)", lm->name, lm->path);
    if (make_room(rs, lm->file_bytes, lm))
        start_load(rs, lm);
    else
        log_info("model", "%s waits for memory: the resident models are busy", lm->name);
    return st;
}

resident_status resident_acquire(resident *rs, const char *name, bool named_only,
                                 resident_model **out, resident_wait *w, char *err,
                                 size_t errlen)
{
    *out = NULL;
    if (rs->stopping) {
        snprintf(err, errlen, "the server is stopping");
        return RESIDENT_FAILED;
    }
    if (name && *name) {
        resident_model *lm = find(rs, name);
        if (lm)
            return got_or_wait(lm, out, w);
        if (rs->p.store_dir && store_name_valid(name)) {
            store_entry e = {0};
            int rc = store_find(rs->p.store_dir, name, &e, err, errlen);
            resident_status st = rc == 0 ? from_store(rs, &e, out, w, err, errlen)
                                         : RESIDENT_FAILED;
            store_entry_clear(&e);
            if (rc != 1)
                return st;
        }
        if (named_only)
            return RESIDENT_NONE;
    }
    const char *d = resident_default(rs);
    if (!d || (name && strcmp(d, name) == 0))
        return RESIDENT_NONE;
    return resident_acquire(rs, d, true, out, w, err, errlen);
}

void resident_cancel_wait(resident *rs, resident_wait *w)
{
    resident_model *lm = w->on;
    if (!lm)
        return;
    for (resident_wait **pp = &lm->waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    w->on = NULL;
    w->next = NULL;
    if (!lm->started && !lm->waiters) { /* nobody wants it any more */
        unlink_model(rs, lm);
        resident_load_free(lm);
    }
}

void resident_release(resident *rs, resident_model *lm, int64_t keep_alive_ms)
{
    if (!lm)
        return;
    if (lm->refs > 0)
        lm->refs--;
    lm->last_used_ns = now_ns();
    if (keep_alive_ms != RESIDENT_UNSET && !lm->pinned)
        lm->keep_alive_ms = keep_alive_ms;
    if (rs->stopping)
        return;
    if (idle(lm) && lm->keep_alive_ms == 0)
        unload(rs, lm, "keep_alive 0");
    start_queued(rs);
    arm_timer(rs);
}

bool resident_has(resident *rs, const char *name)
{
    if (!name || !*name)
        return false;
    if (find(rs, name))
        return true;
    if (!rs->p.store_dir || !store_name_valid(name))
        return false;
    store_entry e = {0};
    char err[256];
    int rc = store_find(rs->p.store_dir, name, &e, err, sizeof err);
    store_entry_clear(&e);
    return rc == 0;
}

const char *resident_default(resident *rs)
{
    if (rs->path_name)
        return rs->path_name;
    if (rs->p.default_name)
        return rs->p.default_name;
    /* the most recently used model, else the store's only one */
    resident_model *best = NULL;
    for (resident_model *lm = rs->list; lm; lm = lm->next)
        if (!best || lm->last_used_ns > best->last_used_ns)
            best = lm;
    if (best)
        return best->name;
    if (!rs->p.store_dir)
        return NULL;
    store_entry *e = NULL;
    size_t n = 0;
    char err[256];
    free(rs->store_default);
    rs->store_default = NULL;
    if (store_list(rs->p.store_dir, &e, &n, err, sizeof err) == 0 && n == 1)
        rs->store_default = strdup(e[0].name);
    store_entries_free(e, n);
    return rs->store_default;
}

void resident_stats(resident *rs, sched_counters *sum)
{
    memset(sum, 0, sizeof *sum);
    if (!rs)
        return;
    *sum = rs->retired;
    for (resident_model *lm = rs->list; lm; lm = lm->next)
        if (lm->s) {
            sched_counters c;
            sched_stats(lm->s, &c);
            add_counters(sum, &c);
        }
}

resident_model *resident_first(resident *rs) { return rs ? rs->list : NULL; }
const char *resident_store_dir(const resident *rs) { return rs->p.store_dir; }

/* A number from the first line of a file, 0 when absent or "max". */
static uint64_t read_u64(const char *path)
{
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    if (f) {
        if (fscanf(f, "%llu", &v) != 1)
            v = 0;
        fclose(f);
    }
    return (uint64_t)v;
}

uint64_t resident_auto_budget(void)
{
    uint64_t total = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
            total = (uint64_t)kb * 1024u;
            break;
        }
    }
    if (f)
        fclose(f);
    /* the cgroup's limit (systemd's MemoryMax=), cgroup v2 */
    f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        char path[512];
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
        uint64_t max = read_u64(path);
        if (max && (!total || max < total))
            total = max;
    }
    if (f)
        fclose(f);
    return total / 4 * 3;
}
