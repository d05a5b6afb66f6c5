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
 * A NULL pool (or a pool of one thread) runs them in order on the caller. */
void pool_run(pool *p, int64_t n_tasks, pool_fn fn, void *arg);

#endif
