/* pool.h - a small persistent thread pool for the forward pass.
 *
 * A pool of n threads is the calling thread plus n-1 workers created once
 * (pool_new) and kept until pool_free: nothing is created per token.
 * pool_run() hands out task indices 0..n_tasks-1 dynamically (an atomic
 * counter) to the caller and the workers, and returns when every task has
 * run exactly once. Between runs a worker spins briefly (the next matrix
 * product usually follows within microseconds) and then sleeps on a
 * condition variable, so an idle pool does not keep a core busy.
 *
 * One pool serves one caller at a time: pool_run is not reentrant and must
 * not be called concurrently on the same pool (each model_ctx owns one).
 */
#ifndef HEARTH_POOL_H
#define HEARTH_POOL_H

#include <stddef.h>
#include <stdint.h>

#define POOL_MAX_THREADS 256

typedef struct pool pool;

/* Called once per task: `thread` is 0 for the caller, 1..n-1 for the
 * workers (an index for per-thread scratch memory). */
typedef void (*pool_fn)(void *arg, int64_t task, int thread);

/* Number of online CPUs (at least 1, at most POOL_MAX_THREADS). */
int pool_default_threads(void);

/* n_threads <= 0 means pool_default_threads(). -1 + message when a thread
 * cannot be created or n_threads > POOL_MAX_THREADS. */
int pool_new(int n_threads, pool **out, char *err, size_t errlen);
void pool_free(pool *p);

/* Threads taking part in a run, the caller included; 1 for a NULL pool. */
int pool_size(const pool *p);

/* Run fn(arg, t, thread) for t = 0..n_tasks-1 and wait for all of them.
 * A NULL pool (or a pool of one thread) runs them in order on the caller.
 * Only the active threads (pool_active) take part. */
void pool_run(pool *p, int64_t n_tasks, pool_fn fn, void *arg);

/* ---- fitting the thread count to a busy machine ----
 * A run waits for its slowest thread; when other programs want the cores,
 * the OS deschedules a thread in the middle of its task for a whole time
 * slice and every step stalls behind it (two threads beside one busy
 * program made generation 2.6x slower than one thread). An adaptive pool
 * watches the CPU time its threads actually get during a step against the
 * step's wall time: a share well below 1 means they are being preempted,
 * and it retires one thread (it sleeps and takes no tasks); now and then
 * it tries one more again, and keeps it if the share stays high. Probes
 * that fail come less often (1 s, doubling up to 16 s). */

/* Threads taking part in runs now (1..pool_size). */
int pool_active(const pool *p);
/* Fix the number of threads taking part (1..pool_size) and stop adapting;
 * k <= 0 adapts again (starting from all). Not during a run. */
void pool_set_active(pool *p, int k);
/* Bracket one step (a forward pass: many runs). Cheap: a few clock reads
 * per thread. No-ops for a NULL or fixed pool. */
void pool_step_begin(pool *p);
void pool_step_end(pool *p);

#endif
