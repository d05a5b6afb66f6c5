/* kernels.c - run-time choice of the matrix-product kernels (kernels.h). */
#include "kernels.h"

#include "repack.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static kern_table scalar_table = {.name = "scalar"};
#if defined(__x86_64__) || defined(__i386__)
static kern_table avx2_table = {.name = "avx2"};
static kern_table avx512_table = {.name = "avx512"};
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Atomic(const kern_table *) current;

static bool have_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

static bool have_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return have_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

static void fill_tables(void)
{
#if defined(__x86_64__) || defined(__i386__)
    avx2_table.mm[QT_Q4_0] = kern_avx2_q4_0;
    avx2_table.mm_q4_0_x8 = kern_avx2_q4_0_x8;
    avx2_table.mm[QT_Q8_0] = kern_avx2_q8_0;
    avx2_table.mm[QT_Q5_0] = kern_avx2_q5_0;
    avx2_table.mm[QT_Q4_1] = kern_avx2_q4_1;
    avx2_table.mm[QT_Q5_1] = kern_avx2_q5_1;
    avx2_table.mm[QT_Q4_K] = kern_avx2_q4_k;
    avx2_table.mm[QT_Q6_K] = kern_avx2_q6_k;
    avx2_table.mm[QT_F16] = kern_avx2_f16;
    avx2_table.mm[QT_F32] = kern_avx2_f32;
    avx2_table.swiglu = kern_avx2_swiglu;
    avx2_table.attend_f16 = kern_avx2_attend_f16;
    avx2_table.mmx[REPACK_Q4_0_X16] = kern_avx2_q4_0_x16;
    avx2_table.mmx[REPACK_Q5_0_X16] = kern_avx2_q5_0_x16;
    avx2_table.mmx[REPACK_Q4_K_X16] = kern_avx2_q4_k_x16;
    avx2_table.mmx[REPACK_Q6_K_X16] = kern_avx2_q6_k_x16;
    /* AVX-512: its own kernels where they exist, else the AVX2 ones */
    memcpy(avx512_table.mm, avx2_table.mm, sizeof avx512_table.mm);
    memcpy(avx512_table.mmx, avx2_table.mmx, sizeof avx512_table.mmx);
    avx512_table.attend_f16 = kern_avx512_attend_f16;
    avx512_table.attend_f16_group = kern_avx512_attend_f16_group;
    avx512_table.mm_q4_0_x8 = avx2_table.mm_q4_0_x8;
    avx512_table.swiglu = avx2_table.swiglu;
    avx512_table.mm[QT_Q4_0] = kern_avx512_q4_0;
    avx512_table.mm[QT_Q8_0] = kern_avx512_q8_0;
    avx512_table.quant_act = kern_avx512_quant_act;
    avx512_table.mmx[REPACK_Q4_0_X16] = kern_avx512_q4_0_x16;
    avx512_table.mmx[REPACK_Q5_0_X16] = kern_avx512_q5_0_x16;
    avx512_table.mmx[REPACK_Q8_0_X16] = kern_avx512_q8_0_x16;
    avx512_table.mmx[REPACK_Q4_K_X16] = kern_avx512_q4_k_x16;
    avx512_table.mmx[REPACK_Q6_K_X16] = kern_avx512_q6_k_x16;
#endif
}

static const kern_table *lookup(const char *name)
{
    if (!name)
        return NULL;
    if (!strcasecmp(name, "scalar"))
        return &scalar_table;
#if defined(__x86_64__) || defined(__i386__)
    if (!strcasecmp(name, "avx2") && have_avx2())
        return &avx2_table;
    if (!strcasecmp(name, "avx512") && have_avx512())
        return &avx512_table;
#endif
    if (!strcasecmp(name, "auto")) {
#if defined(__x86_64__) || defined(__i386__)
        if (have_avx512())
            return &avx512_table;
        if (have_avx2())
            return &avx2_table;
#endif
        return &scalar_table;
    }
    return NULL;
}

static void init(void)
{
    fill_tables();
    const kern_table *t = lookup(getenv("HEARTH_KERNEL"));
    if (!t)
        t = lookup("auto");
    atomic_store(&current, t);
}

const kern_table *kern_get(void)
{
    pthread_once(&once, init);
    return atomic_load(&current);
}

int kern_select(const char *name)
{
    pthread_once(&once, init);
    const kern_table *t = lookup(name);
    if (!t)
        return -1;
    atomic_store(&current, t);
    return 0;
}

const kern_table *kern_table_of(const char *name)
{
    pthread_once(&once, init);
    return lookup(name);
}
