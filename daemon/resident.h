/* resident.h - the models hearthd holds in memory, by name.
 *
 * A request names a model; the registry hands out the resident model of
 * that name, or loads it from the model store (daemon/store.h) on demand:
 * the file is read, the tokenizer and chat template set up on libuv's
 * thread pool, then the model gets its own scheduler on the loop thread.
 * Requests that arrive meanwhile wait for the same load. Several models may
 * be resident within a memory budget; when a load would exceed it, the
 * least recently used idle models are unloaded first. A model unused for
 * its keep-alive time is unloaded too (Ollama's keep_alive). A model that
 * fails to load is an error for the requests that wanted it and leaves the
 * others serving.
 *
 * The model given by --model (or [model] path) is loaded at start-up and
 * never unloaded for idleness.
 *
 * Loop thread only. A resident_model a request acquired stays valid, and
 * its fields unchanged, until the request releases it. */
#ifndef HEARTH_RESIDENT_H
#define HEARTH_RESIDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "chat.h"
#include "daemon/ids.h"
#include "model.h"
#include "scheduler.h"
#include "tok.h"
#include "toolcall.h"

struct metrics;

/* keep_alive values */
#define RESIDENT_FOREVER (-1) /* never unloaded for idleness */
#define RESIDENT_UNSET (-2)   /* no per-request value: the model's own */

typedef enum resident_state {
    RESIDENT_LOADING,
    RESIDENT_READY,
} resident_state;

typedef struct resident_model {
    char *name;            /* what requests call it */
    char *path;            /* the GGUF file */
    char fingerprint[IDS_FP_MAX]; /* system_fingerprint (daemon/ids.h) */
    long long created;     /* the file's mtime */
    model *m;
    tok_vocab *v;
    chat_template *tmpl;
    const char *tmpl_source; /* "the model's", "configured", ... */
    int32_t turn_end;      /* the template's end-of-turn token, or -1 */
    api_tool_format tool_format;
    sched *s;
    int n_ctx;
    int n_slots;
    double nll_ref;        /* the router's reference NLL, 0: none */
    double load_seconds;
    uint64_t file_bytes;   /* the GGUF file's size */
    uint64_t bytes;        /* estimated memory: weights and KV cache */
    char warning[480];     /* set by the load when the model's template failed */
    /* the registry's bookkeeping */
    resident_state state;
    bool started;          /* LOADING: the load runs (else it waits for room) */
    int refs;              /* requests holding it */
    bool pinned;           /* --model: never unloaded for idleness */
    int64_t keep_alive_ms; /* RESIDENT_FOREVER, or >= 0 */
    uint64_t last_used_ns;
    struct resident_wait *waiters;
    struct resident_model *next;
} resident_model;

/* A request waiting for a model that is loading. done is called once on
 * the loop thread: m set (acquired for the waiter) or NULL with err. */
typedef struct resident_wait {
    void (*done)(struct resident_wait *w, resident_model *m, const char *err);
    struct resident_wait *next;
    resident_model *on;    /* set while waiting */
} resident_wait;

typedef struct resident_params {
    const char *store_dir;     /* the model store; NULL: none */
    const char *path;          /* --model / [model] path; NULL: none */
    const char *chat_template; /* [model] chat_template, for path's model */
    const char *default_name;  /* [model] default: a store name */
    int context, parallel, threads, max_queue;
    int64_t keep_alive_ms;     /* for models loaded on demand */
    uint64_t budget_bytes;     /* 0: no limit */
    bool want_nll;             /* measure nll_ref (the router has upstreams) */
    uv_loop_t *loop;
    struct metrics *metrics;   /* may be NULL */
} resident_params;

typedef struct resident resident;

/* The registry, with path's model loaded (start-up fails when it cannot
 * be). p's strings are copied. */
int resident_new(resident **out, const resident_params *p, char *err, size_t errlen);
/* Stop every scheduler and close the timer (shutdown, before the loop's
 * last run); the models stay until resident_free, as preparations on the
 * thread pool may still read them. */
void resident_stop(resident *rs);
/* Unload everything once the loop has run out (after resident_stop). */
void resident_free(resident *rs);

typedef enum resident_status {
    RESIDENT_GOT,     /* *out acquired and ready */
    RESIDENT_WAIT,    /* loading: w->done will be called */
    RESIDENT_NONE,    /* no local model answers to this name */
    RESIDENT_FAILED,  /* err filled (too large for the budget, store error) */
} resident_status;

/* The model named name (NULL or a name that is not a local model: the
 * default model, when there is one, unless named_only). */
resident_status resident_acquire(resident *rs, const char *name, bool named_only,
                                 resident_model **out, resident_wait *w, char *err,
                                 size_t errlen);
/* Stop waiting (the request went away before the load ended). */
void resident_cancel_wait(resident *rs, resident_wait *w);
/* The request is done with m; keep_alive_ms (RESIDENT_UNSET or a value)
 * becomes the model's keep-alive from now on, as in Ollama. */
void resident_release(resident *rs, resident_model *m, int64_t keep_alive_ms);

/* Whether name is a local model (resident, loading or in the store). */
bool resident_has(resident *rs, const char *name);
/* The default model's name (NULL: none). */
const char *resident_default(resident *rs);

/* When keep_alive unloads lm (uv_hrtime's clock, ns); UINT64_MAX while it
 * is not counting down (in use, pinned, loading, or kept for ever). */
uint64_t resident_expiry_ns(const resident_model *lm);
/* The schedulers' counters summed over the resident models, and over
 * those unloaded (so totals never go down). */
void resident_stats(resident *rs, sched_counters *sum);
/* Iterate the resident models (loading ones included). */
resident_model *resident_first(resident *rs);
const char *resident_store_dir(const resident *rs);

/* Three quarters of the machine's memory, or of the cgroup's limit
 * (systemd's MemoryMax=) when lower; 0 when unknown. */
uint64_t resident_auto_budget(void);

/* "5m", "1h30m", "300" (seconds), "-1" (forever), "0": milliseconds in
 * *out; -1 on a malformed value. */
int resident_parse_duration(const char *s, int64_t *out);

#endif
