/* pool.c - persistent worker threads (see pool.h).
 *
 * Hand-off: the caller publishes the job (fn, arg, n_tasks), resets the
 * task counter and bumps `gen`. A worker that sees a new generation takes
 * tasks until the counter passes n_tasks, then decrements `active`; the
 * caller, after taking tasks itself, waits for `active` to reach zero, so
 * the job's fields are never rewritten while a worker still reads them.
 *
 * `gen` carries, in its low 16 bits, how many threads take part in the job
 * (the caller and workers 1..n-1 below it), in one atomic word with the
 * job's number, so a worker never pairs one job with another's count: it
 * takes part exactly in the jobs that count it, each once (the caller
 * publishes the next job only after every counted worker finished this
 * one). Retired workers (ids at or above n_active) sleep on `idle_cv`.
 *
 * Sleeping: a worker spins on `gen` for about POOL_SPIN_NS, then sleeps on
 * `cv`. It registers in `sleepers` and re-checks `gen` under the mutex; the
 * caller bumps `gen` before reading `sleepers` (both sequentially
 * consistent), so either the caller sees the sleeper and broadcasts, or
 * the worker sees the new generation and does not sleep.
 */
/* (config.h, included first, defines _GNU_SOURCE for sysconf) */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Adaptation (pool.h): a step shorter than this says nothing (a clock
 * tick of CPU accounting is far coarser); a smoothed CPU share below
 * POOL_SHARE_LOW retires a thread. */
#define POOL_STEP_MIN_NS 2000000LL
#define POOL_SHARE_LOW 0.80
#define POOL_PROBE_MIN_NS 1000000000LL
#define POOL_PROBE_MAX_NS 16000000000LL

/* How long an idle worker spins before sleeping. Longer than the gaps
 * between the matrix products of one forward pass (attention, norms),
 * short enough that an idle daemon sleeps almost at once. */
#define POOL_SPIN_NS 2000000LL

struct pool;

typedef struct pool_worker {
    struct pool *p;
    int id;
    pthread_t th;
} pool_worker;

struct pool {
    int n;                 /* threads, the caller included */
    _Atomic int n_active;  /* threads taking part in runs (ids < n_active) */
    bool adaptive;
    /* adaptation state (the caller's alone) */
    long long step_t0;     /* wall clock at pool_step_begin, or 0 */
    long long cpu0[POOL_MAX_THREADS];
    double share_avg;      /* smoothed min CPU share of the active threads */
    int share_steps;       /* steps averaged since the last change */
    long long next_probe;  /* wall clock of the next try with one more */
    long long probe_gap;   /* ns between probes */
    bool probing;          /* the current n_active is a probe */
    pthread_cond_t idle_cv;/* retired workers sleep here */
    pool_worker *w;        /* n-1 workers */
    int n_started;
    /* the current job */
    pool_fn fn;
    void *arg;
    int64_t n_tasks;
    _Atomic int64_t next;  /* next task index to hand out */
    _Atomic int active;    /* workers still inside the current job */
    _Atomic uint64_t gen;  /* (job number << 16) | threads in the job */
    _Atomic int sleepers;
    _Atomic bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int pool_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > POOL_MAX_THREADS)
        n = POOL_MAX_THREADS;
    return (int)n;
}

static void take_tasks(pool *p, int thread)
{
    for (;;) {
        int64_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks)
            break;
        p->fn(p->arg, t, thread);
    }
}

static void *worker_main(void *arg)
{
    pool_worker *w = arg;
    pool *p = w->p;
    /* gen was 0 when the thread was created; a job published before the
     * thread got here must still be seen as new */
    uint64_t seen = 0;
    for (;;) {
        /* wait for a new job: spin, then sleep */
        long long t0 = now_ns();
        int spins = 0;
        while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) {
            cpu_relax();
            if (++spins % 256 == 0 && now_ns() - t0 > POOL_SPIN_NS) {
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleepers, 1);
                while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                    pthread_cond_wait(&p->cv, &p->mu);
                atomic_fetch_sub(&p->sleepers, 1);
                pthread_mutex_unlock(&p->mu);
            }
        }
        if (atomic_load(&p->stop))
            break;
        seen = atomic_load(&p->gen);
        if (w->id < (int)(seen & 0xffff)) {
            take_tasks(p, w->id);
            atomic_fetch_sub(&p->active, 1);
            continue;
        }
        /* not in this job: retired, sleep until n_active takes it back
         * (set_active raises it before any job that counts this worker) */
        pthread_mutex_lock(&p->mu);
        while (w->id >= atomic_load(&p->n_active) && !atomic_load(&p->stop))
            pthread_cond_wait(&p->idle_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

static void wake_all(pool *p)
{
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

int pool_new(int n_threads, pool **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n_threads <= 0)
        n_threads = pool_default_threads();
    if (n_threads > POOL_MAX_THREADS) {
        snprintf(err, errlen, "%d threads: at most %d", n_threads,
                 POOL_MAX_THREADS);
        return -1;
    }
    pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->n = n_threads;
    atomic_init(&p->n_active, n_threads);
    p->adaptive = true;
    p->probe_gap = POOL_PROBE_MIN_NS;
    atomic_init(&p->next, 0);
    atomic_init(&p->active, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, false);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        snprintf(err, errlen, "cannot create a mutex");
        return -1;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        snprintf(err, errlen, "cannot create a condition variable");
        return -1;
    }
    if (pthread_cond_init(&p->idle_cv, NULL) != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        snprintf(err, errlen, "cannot create a condition variable");
        return -1;
    }
    if (n_threads > 1) {
        p->w = calloc((size_t)n_threads - 1, sizeof *p->w);
        if (!p->w) {
            pool_free(p);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->w[i].p = p;
            p->w[i].id = i + 1;
            int rc = pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]);
            if (rc != 0) {
                pool_free(p);
                snprintf(err, errlen, "cannot create thread %d of %d: %s",
                         i + 2, n_threads, strerror(rc));
                return -1;
            }
            p->n_started++;
        }
    }
    *out = p;
    return 0;
}

void pool_free(pool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->idle_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->w[i].th, NULL);
    pthread_cond_destroy(&p->idle_cv);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->w);
    free(p);
}

int pool_size(const pool *p)
{
    return p ? p->n : 1;
}

void pool_run(pool *p, int64_t n_tasks, pool_fn fn, void *arg)
{
    if (n_tasks <= 0)
        return;
    int na = p ? atomic_load(&p->n_active) : 1;
    if (!p || na == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->active, na - 1);
    uint64_t g = atomic_load(&p->gen);
    atomic_store(&p->gen, ((g >> 16) + 1) << 16 | (uint64_t)na); /* publishes */
    wake_all(p);
    take_tasks(p, 0);
    while (atomic_load(&p->active) > 0)
        cpu_relax();
}

/* ---- adapting the number of active threads ---- */

int pool_active(const pool *p)
{
    return p ? atomic_load(&p->n_active) : 1;
}

static void set_active(pool *p, int k)
{
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->n_active, k);
    pthread_cond_broadcast(&p->idle_cv);
    pthread_mutex_unlock(&p->mu);
    p->share_avg = 1.0;
    p->share_steps = 0;
}

void pool_set_active(pool *p, int k)
{
    if (!p)
        return;
    p->adaptive = k <= 0;
    p->probe_gap = POOL_PROBE_MIN_NS;
    p->probing = false;
    p->next_probe = 0;
    set_active(p, k <= 0 || k > p->n ? p->n : k);
}

/* CPU time of thread i (0: the calling thread), or -1 */
static long long thread_cpu_ns(pool *p, int i)
{
    clockid_t cid;
    if (i == 0)
        cid = CLOCK_THREAD_CPUTIME_ID;
    else if (pthread_getcpuclockid(p->w[i - 1].th, &cid) != 0)
        return -1;
    struct timespec ts;
    if (clock_gettime(cid, &ts) != 0)
        return -1;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void pool_step_begin(pool *p)
{
    if (!p || !p->adaptive || p->n == 1)
        return;
    int na = atomic_load(&p->n_active);
    for (int i = 0; i < na; i++)
        p->cpu0[i] = thread_cpu_ns(p, i);
    p->step_t0 = now_ns();
}

void pool_step_end(pool *p)
{
    if (!p || !p->adaptive || p->n == 1 || p->step_t0 == 0)
        return;
    long long now = now_ns(), wall = now - p->step_t0;
    p->step_t0 = 0;
    if (p->next_probe == 0)
        p->next_probe = now + p->probe_gap;
    int na = atomic_load(&p->n_active);
    if (wall >= POOL_STEP_MIN_NS && na > 1) {
        /* the least CPU any active thread got over the step */
        double share = 1.0;
        for (int i = 0; i < na; i++) {
            long long c = thread_cpu_ns(p, i);
            if (c < 0 || p->cpu0[i] < 0)
                return;
            double sh = (double)(c - p->cpu0[i]) / (double)wall;
            share = sh < share ? sh : share;
        }
        p->share_avg = p->share_steps == 0 ? share
                                           : 0.7 * p->share_avg + 0.3 * share;
        p->share_steps++;
        if (p->share_steps >= 3 && p->share_avg < POOL_SHARE_LOW) {
            /* preempted: one thread fewer; a failed probe waits longer */
            if (p->probing && p->probe_gap < POOL_PROBE_MAX_NS)
                p->probe_gap *= 2;
            p->probing = false;
            set_active(p, na - 1);
            p->next_probe = now + p->probe_gap;
            return;
        }
        if (p->probing && p->share_steps >= 8) {
            p->probing = false; /* the probe held: keep it */
            p->probe_gap = POOL_PROBE_MIN_NS;
        }
    }
    if (na < p->n && !p->probing && now >= p->next_probe) {
        p->probing = true;
        set_active(p, na + 1);
    }
}
