/* membw - memory read bandwidth with 1 and 2 (or N) threads.
 *
 *   membw [MiB] [max_threads]
 *
 * Each thread sums its share of a buffer (default 1024 MiB, far larger
 * than any cache) with 32-byte-wide integer adds the compiler vectorizes;
 * the best of 5 passes is printed in GB/s (10^9 bytes per second). This is
 * the ceiling of token generation: every weight is read once per token,
 * so tokens/s <= bandwidth / model bytes.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct part {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} part;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 16-byte vectors (SSE2 on any x86-64, NEON on arm64), four independent
 * sums: two loads per cycle of 16 bytes are far above what memory gives
 * one core, so the loop measures the memory, not the adds (a scalar loop
 * of 8-byte adds read a third less here). */
typedef uint64_t membw_v2 __attribute__((vector_size(16)));

static void *reader(void *arg)
{
    part *pt = arg;
    membw_v2 a[4] = {{0, 0}, {0, 0}, {0, 0}, {0, 0}};
    size_t i = 0;
    for (; i + 8 <= pt->n; i += 8)
        for (int l = 0; l < 4; l++) {
            membw_v2 v;
            memcpy(&v, pt->p + i + 2 * l, sizeof v);
            a[l] += v;
        }
    uint64_t s = 0;
    for (; i < pt->n; i++)
        s += pt->p[i];
    for (int l = 0; l < 4; l++)
        s += a[l][0] + a[l][1];
    pt->sum = s;
    return NULL;
}

static double pass(const uint64_t *buf, size_t n, int threads, uint64_t *sink)
{
    pthread_t th[64];
    part pt[64];
    size_t per = n / (size_t)threads;
    double t0 = now_s();
    for (int t = 0; t < threads; t++) {
        pt[t].p = buf + (size_t)t * per;
        pt[t].n = t == threads - 1 ? n - (size_t)t * per : per;
        if (t > 0 && pthread_create(&th[t], NULL, reader, &pt[t]) != 0)
            return -1;
    }
    reader(&pt[0]);
    for (int t = 1; t < threads; t++)
        pthread_join(th[t], NULL);
    double dt = now_s() - t0;
    for (int t = 0; t < threads; t++)
        *sink += pt[t].sum;
    return dt;
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 1024;
    long maxt = argc > 2 ? strtol(argv[2], NULL, 10) : 2;
    if (mib < 16 || mib > 65536 || maxt < 1 || maxt > 64) {
        fprintf(stderr, "usage: membw [MiB 16..65536] [max_threads 1..64]\n");
        return 2;
    }
    size_t bytes = (size_t)mib << 20;
    uint64_t *buf = malloc(bytes);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    /* touch every page (and give the sums something to add) */
    size_t n = bytes / sizeof *buf;
    for (size_t i = 0; i < n; i++)
        buf[i] = i;
    uint64_t sink = 0;
    printf("buffer: %ld MiB\n", mib);
    for (long t = 1; t <= maxt; t++) {
        double best = 1e30;
        for (int r = 0; r < 5; r++) {
            double dt = pass(buf, n, (int)t, &sink);
            if (dt < 0) {
                fprintf(stderr, "membw: cannot create threads\n");
                free(buf);
                return 1;
            }
            if (dt < best)
                best = dt;
        }
        printf("threads %ld: %.1f GB/s\n", t, (double)bytes / best / 1e9);
    }
    fprintf(stderr, "(checksum %llu)\n", (unsigned long long)sink);
    free(buf);
    return 0;
}
