/* ids.c - see ids.h. */
#include "ids.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static atomic_uint_fast64_t counter;

static void key_init(void)
{
    uint64_t k;
    if (getrandom(&k, sizeof k, 0) != (ssize_t)sizeof k) {
        /* no entropy source (a very old kernel): different per start all
         * the same, though guessable */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
    }
    key = k;
}

uint64_t ids_mix(uint64_t k, uint64_t n)
{
    /* an odd multiplier makes n -> k + n * c a bijection too */
    uint64_t z = k + n * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t ids_next(void)
{
    pthread_once(&key_once, key_init);
    return ids_mix(key, atomic_fetch_add(&counter, 1));
}

/* FNV-1a, 64 bits, continued from h */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

void ids_fingerprint(char out[IDS_FP_MAX], const char *version, const char *model_path)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, version, strlen(version) + 1);
    const char *slash = strrchr(model_path, '/');
    const char *name = slash ? slash + 1 : model_path;
    h = fnv(h, name, strlen(name) + 1);
    struct stat st;
    if (stat(model_path, &st) == 0) {
        uint64_t f[3] = {(uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
                         (uint64_t)st.st_mtim.tv_nsec};
        h = fnv(h, f, sizeof f);
    }
    snprintf(out, IDS_FP_MAX, "fp_%016llx", (unsigned long long)ids_mix(h, 0));
}
