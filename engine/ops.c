/* ops.c - scalar forward-pass building blocks (see ops.h). */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels.h"
#include "pool.h"
#include "quant.h"
#include "repack.h"
#include "vecmath.h"

float ops_dot(const float *a, const float *b, int64_t n)
{
    /* Eight independent lanes: lets the compiler vectorize without
     * -ffast-math, and keeps rounding error lower than one serial sum. */
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
              ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void ops_rmsnorm(float *out, const float *x, const float *w, int64_t n,
                 float eps)
{
    /* Squares in float, their sum in double, the scale in float: the same
     * roundings as ggml, so results agree with llama.cpp to the last bit
     * more often (it matters for tiny models, see tests/test_model.c). */
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)(x[i] * x[i]);
    float mean = (float)(ss / (double)(n > 0 ? n : 1));
    float scale = 1.0f / sqrtf(mean + eps);
    if (w) {
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * scale * w[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * scale;
    }
}

void ops_softmax(float *x, int64_t n)
{
    if (n <= 0)
        return;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    if (mx == -INFINITY) {
        for (int64_t i = 0; i < n; i++)
            x[i] = 0.0f;
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float e = expf(x[i] - mx);
        x[i] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}

void ops_swiglu(float *gate, const float *up, int64_t n)
{
    const kern_table *kt = kern_get();
    if (kt->swiglu)
        kt->swiglu(gate, up, n);
    else
        vm_swiglu(gate, up, n);
}

void ops_add(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

void ops_rope_table(float *cs, int n_rot, int32_t pos, float theta_scale,
                    float freq_scale, const float *ff)
{
    /* The angle of pair j is pos * theta_scale^j, built by repeated float
     * multiplication as ggml builds it: the rounding this accumulates is
     * part of what a GGUF model was run with, and a tiny model's logits
     * move by hundredths when the angles differ in the last bits. */
    float theta = (float)pos;
    for (int j = 0; j < n_rot / 2; j++) {
        float t = freq_scale * (ff ? theta / ff[j] : theta);
        cs[2 * j] = cosf(t);
        cs[2 * j + 1] = sinf(t);
        theta *= theta_scale;
    }
}

void ops_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs,
              bool neox)
{
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)head_dim;
        for (int j = 0; j < half; j++) {
            float c = cs[2 * j], s = cs[2 * j + 1];
            int i0 = neox ? j : 2 * j;
            int i1 = neox ? j + half : 2 * j + 1;
            float a = v[i0], b = v[i1];
            /* with the first product fused, as GCC compiles ggml's
             * rotation on an FMA machine */
            v[i0] = fmaf(a, c, -(b * s));
            v[i1] = fmaf(a, s, b * c);
        }
    }
}

/* ---- row dequantization fast paths ----
 * quant.c's converters are the clear reference; these do the same
 * arithmetic (bit for bit: tests/test_model.c compares them) in loops the
 * compiler can vectorize, for the types real models use most. */

static inline float ops_h2f(const unsigned char *p)
{
    return qt_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static void deq_f16_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = ops_h2f(b + 2 * i);
}

static void deq_q8_0_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 32, b += 34, y += 32) {
        float d = ops_h2f(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < 32; j++)
            y[j] = d * (float)q[j];
    }
}

static void deq_q4_0_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 32, b += 18, y += 32) {
        float d = ops_h2f(b);
        const unsigned char *q = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((q[j] & 0xf) - 8);
            y[j + 16] = d * (float)((q[j] >> 4) - 8);
        }
    }
}

/* Q4_K super-block: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins
 * for 8 groups of 32, then 128 bytes of nibbles (two groups per 32 bytes,
 * low nibbles first). value = d*scale*q - dmin*min. */
static void deq_q4_k_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 256, b += 144, y += 256) {
        float d = ops_h2f(b), dmin = ops_h2f(b + 2);
        const unsigned char *s = b + 4, *qs = b + 16;
        for (int g = 0; g < 8; g += 2) {
            int sc[2], mn[2];
            for (int k = 0; k < 2; k++) {
                int j = g + k;
                if (j < 4) {
                    sc[k] = s[j] & 63;
                    mn[k] = s[j + 4] & 63;
                } else {
                    sc[k] = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
                    mn[k] = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
                }
            }
            float d0 = d * (float)sc[0], m0 = dmin * (float)mn[0];
            float d1 = d * (float)sc[1], m1 = dmin * (float)mn[1];
            const unsigned char *q = qs + 16 * g;
            float *o = y + 32 * g;
            for (int l = 0; l < 32; l++) {
                o[l] = d0 * (float)(q[l] & 0xf) - m0;
                o[l + 32] = d1 * (float)(q[l] >> 4) - m1;
            }
        }
    }
}

/* Q6_K super-block: 128 bytes of low nibbles, 64 bytes of 2-bit highs,
 * 16 int8 scales (one per 16 values), f16 d. value = d*scale*(q - 32). */
static void deq_q6_k_row(const unsigned char *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 256, b += 210, y += 256) {
        float d = ops_h2f(b + 208);
        const unsigned char *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float *o = y;
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, o += 128) {
            for (int half = 0; half < 2; half++) {
                int l0 = 16 * half;
                float s0 = d * (float)sc[half + 0], s1 = d * (float)sc[half + 2];
                float s2 = d * (float)sc[half + 4], s3 = d * (float)sc[half + 6];
                for (int l = l0; l < l0 + 16; l++) {
                    int q0 = (ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4;
                    int q1 = (ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4;
                    int q2 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
                    int q3 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
                    o[l] = s0 * (float)(q0 - 32);
                    o[l + 32] = s1 * (float)(q1 - 32);
                    o[l + 64] = s2 * (float)(q2 - 32);
                    o[l + 96] = s3 * (float)(q3 - 32);
                }
            }
        }
    }
}

void ops_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    const unsigned char *b = src;
    switch (type) {
    case QT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case QT_F16: deq_f16_row(b, dst, n); break;
    case QT_Q8_0: deq_q8_0_row(b, dst, n); break;
    case QT_Q4_0: deq_q4_0_row(b, dst, n); break;
    case QT_Q4_K: deq_q4_k_row(b, dst, n); break;
    case QT_Q6_K: deq_q6_k_row(b, dst, n); break;
    default: (void)qt_dequantize_row(type, src, dst, n); break;
    }
}

void ops_get_row(const ops_matrix *w, int64_t r, float *dst)
{
    if (w->layout != REPACK_NONE) {
        repack_get_row(w->layout, w->data, w->cols, r, dst);
        return;
    }
    const unsigned char *row =
        (const unsigned char *)w->data + (uint64_t)r * w->row_bytes;
    /* The model checked type and row length at load: this cannot fail. */
    ops_dequantize_row(w->type, row, dst, w->cols);
}

void ops_round_act(uint32_t wtype, const float *x, float *dst, int64_t n,
                   unsigned char *actq)
{
    uint32_t at = qt_act_type(wtype);
    if (wtype == QT_F16 || wtype == QT_BF16)
        at = wtype; /* half-precision dot products: activations in half */
    if (at == QT_F32 || at == QT_ACT_NONE ||
        (at == QT_F16 || at == QT_BF16 ? qt_quantize_row(at, x, actq, n)
                                       : qt_quantize_act(wtype, x, actq, n)) != 0 ||
        qt_dequantize_row(at, actq, dst, n) != 0) {
        if (dst != x)
            memcpy(dst, x, (size_t)n * sizeof(float));
    }
}

/* ---- repacked weights ---- */

int ops_matrix_repack(ops_matrix *w, bool drop_source, void **owned)
{
    *owned = NULL;
    int layout = repack_layout_for(w->type, w->rows, w->cols);
    if (layout == REPACK_NONE || w->layout != REPACK_NONE ||
        !kern_get()->mmx[layout])
        return 0;
    size_t gb = repack_group_bytes(layout, w->cols);
    size_t ng = (size_t)(w->rows / REPACK_ROWS);
    if (gb == 0 || ng > SIZE_MAX / gb)
        return -1;
    size_t bytes = (gb * ng + 63) / 64 * 64;
    void *copy = aligned_alloc(64, bytes);
    if (!copy)
        return -1;
    /* 64 groups at a time, handing back the whole pages of the file
     * mapping that lie inside this matrix and are done with (the source is
     * read front to back), so that the copy and the mapping never hold a
     * large matrix twice; a page dropped too early would only be read
     * again from the file */
    long pg = drop_source ? sysconf(_SC_PAGESIZE) : 0;
    uintptr_t lo = (uintptr_t)w->data, dropped = lo;
    size_t rows_step = 64 * REPACK_ROWS;
    for (int64_t r = 0; r < w->rows; r += (int64_t)rows_step) {
        int64_t nr = w->rows - r < (int64_t)rows_step ? w->rows - r
                                                      : (int64_t)rows_step;
        repack_matrix(layout,
                      (const unsigned char *)w->data + (uint64_t)r * w->row_bytes,
                      (size_t)w->row_bytes, nr, w->cols,
                      (unsigned char *)copy + (size_t)(r / REPACK_ROWS) * gb);
        if (pg <= 0)
            continue;
        uintptr_t done = lo + (uintptr_t)((uint64_t)(r + nr) * w->row_bytes);
        uintptr_t a = (dropped + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
        uintptr_t b = done / (uintptr_t)pg * (uintptr_t)pg;
        if (b > a) {
            (void)madvise((void *)a, b - a, MADV_DONTNEED);
            dropped = b;
        }
    }
    w->data = copy;
    w->layout = layout;
    *owned = copy;
    return 0;
}

/* ---- matrix products ---- */

/* Rows per task: enough work per hand-off, enough tasks to balance. */
#define OPS_KERNEL_ROWS 16
/* Weight rows dequantized per BLAS call: large enough for sgemm to run at
 * speed, small enough that the tile stays in L2. */
#define OPS_TILE_ROWS 64

int64_t ops_tile_floats(int64_t max_cols)
{
    return OPS_TILE_ROWS * max_cols;
}

static int blas_min_batch = -1; /* -1: by kernel path (ops.h) */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_init(void)
{
    /* One OpenBLAS thread per call: the pool's threads each run their own
     * sgemm on their own tiles, and OpenBLAS's threads would fight them
     * for the same cores. */
    openblas_set_num_threads(1);
    const char *e = getenv("HEARTH_BLAS_MIN");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v >= 0 && v <= 1 << 20)
            blas_min_batch = v == 0 ? 0 : (int)v;
    }
}

typedef struct mm_job {
    const ops_matrix *w;
    float *out;
    int64_t out_stride;
    const float *x;        /* rounded activations (BLAS, F32 dot paths) */
    int64_t x_stride;
    const void *xq;        /* kernel path: activation rows */
    size_t xq_stride;
    int n;
    int64_t rows_per_task;
    kern_mm_fn kern;
    const ops_scratch *s;
    const ops_par *par;
} mm_job;

static void mm_kernel_task(void *arg, int64_t task, int thread)
{
    (void)thread;
    const mm_job *j = arg;
    int64_t r0 = task * j->rows_per_task;
    int64_t nr = j->w->rows - r0 < j->rows_per_task ? j->w->rows - r0
                                                    : j->rows_per_task;
    j->kern(j->w->cols,
            (const unsigned char *)j->w->data + (uint64_t)r0 * j->w->row_bytes,
            j->w->row_bytes, nr, j->xq, j->xq_stride, j->n, j->out + r0,
            j->out_stride);
}

/* An F32 row of the mapping (GGUF aligns tensor data to at least 32 bytes
 * and F32 rows are whole floats, so the cast is sound). */
static const float *row_ptr(const ops_matrix *w, int64_t r)
{
    const void *p = (const unsigned char *)w->data + (uint64_t)r * w->row_bytes;
    return p;
}

/* Dequantize each row once (into this thread's buffer) and dot it with
 * every activation row in F32. */
static void mm_f32_task(void *arg, int64_t task, int thread)
{
    const mm_job *j = arg;
    const ops_matrix *w = j->w;
    float *buf = j->par->tiles
                     ? j->par->tiles + (int64_t)thread * j->par->tile_floats
                     : j->s->row;
    int64_t r0 = task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task < w->rows ? r0 + j->rows_per_task
                                                 : w->rows;
    if (w->type == QT_F32 || w->type == QT_F16) {
        /* the orders ggml uses for these (vecmath.h), so the scalar path
         * gives the kernels' results */
        bool tile = vm_use_tile(w->cols, j->n);
        for (int64_t r = r0; r < r1; r++) {
            const void *row = (const unsigned char *)w->data +
                              (uint64_t)r * w->row_bytes;
            for (int t = 0; t < j->n; t++) {
                const float *xt = j->x + (int64_t)t * j->x_stride;
                float d;
                if (w->type == QT_F32)
                    d = tile ? vm_dot_f32_tile(w->cols, row, xt)
                             : vm_dot_f32(w->cols, row, xt);
                else
                    d = tile ? vm_dot_f16_tile(w->cols, row, xt)
                             : vm_dot_f16(w->cols, row, xt);
                j->out[(int64_t)t * j->out_stride + r] = d;
            }
        }
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        ops_get_row(w, r, buf);
        for (int t = 0; t < j->n; t++)
            j->out[(int64_t)t * j->out_stride + r] =
                ops_dot(buf, j->x + (int64_t)t * j->x_stride, w->cols);
    }
}

/* A tile of rows dequantized to floats, times the whole batch. */
static void mm_blas_task(void *arg, int64_t task, int thread)
{
    const mm_job *j = arg;
    const ops_matrix *w = j->w;
    int64_t r0 = task * j->rows_per_task;
    int64_t nr = w->rows - r0 < j->rows_per_task ? w->rows - r0
                                                 : j->rows_per_task;
    const float *tile;
    int64_t ld = w->cols;
    if (w->type == QT_F32 && w->row_bytes % sizeof(float) == 0) {
        tile = row_ptr(w, r0);
        ld = (int64_t)(w->row_bytes / sizeof(float));
    } else {
        float *buf = j->par->tiles + (int64_t)thread * j->par->tile_floats;
        for (int64_t r = 0; r < nr; r++)
            ops_get_row(w, r0 + r, buf + r * w->cols);
        tile = buf;
    }
    /* out[t][r0 + r] = sum_k x[t][k] * tile[r][k] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, (int)nr,
                (int)w->cols, 1.0f, j->x, (int)j->x_stride, tile, (int)ld, 0.0f,
                j->out + r0, (int)j->out_stride);
}

typedef struct act_job {
    uint32_t wtype;
    const float *x;
    int64_t x_stride;
    int64_t cols;
    unsigned char *xq;
    size_t xq_stride;
} act_job;

static void act_quant_task(void *arg, int64_t t, int thread)
{
    (void)thread;
    const act_job *a = arg;
    (void)qt_quantize_act(a->wtype, a->x + t * a->x_stride,
                          a->xq + (size_t)t * a->xq_stride, a->cols);
}

/* Rows per task for the kernels: about four tasks per thread (dynamic
 * hand-out evens out a slow thread), never fewer than OPS_KERNEL_ROWS. */
static int64_t kernel_rows(int64_t rows, int threads)
{
    int64_t per = rows / ((int64_t)threads * 4);
    per = (per + 15) / 16 * 16; /* whole cache lines of output */
    return per < OPS_KERNEL_ROWS ? OPS_KERNEL_ROWS : per;
}

typedef struct round_job {
    uint32_t wtype;
    const float *x;
    int64_t x_stride, cols;
    float *dst;             /* (n, cols) */
    unsigned char *q;       /* quantized-row scratch, q_stride apart */
    size_t q_stride;        /* 0: one shared row (a single thread) */
} round_job;

static void round_task(void *arg, int64_t t, int thread)
{
    (void)thread;
    const round_job *r = arg;
    ops_round_act(r->wtype, r->x + t * r->x_stride, r->dst + t * r->cols,
                  r->cols, r->q + (size_t)t * r->q_stride);
}

static int64_t n_tasks_for(int64_t rows, int64_t per)
{
    return (rows + per - 1) / per;
}

void ops_matmul(float *out, int64_t out_stride, const ops_matrix *w,
                const float *x, int64_t x_stride, int n,
                const ops_scratch *s)
{
    ops_matmul_par(out, out_stride, w, x, x_stride, n, s, NULL);
}

typedef struct mmx_job {
    const ops_matrix *w;
    kern_mmx_fn kern;       /* NULL: repack_mm_ref */
    const void *act;
    size_t act_stride;
    int n;
    float *out;
    int64_t out_stride;
    int64_t groups_per_task;
} mmx_job;

static void mmx_task(void *arg, int64_t task, int thread)
{
    (void)thread;
    const mmx_job *j = arg;
    int64_t n_groups = j->w->rows / REPACK_ROWS;
    int64_t g0 = task * j->groups_per_task;
    int64_t ng = n_groups - g0 < j->groups_per_task ? n_groups - g0
                                                   : j->groups_per_task;
    size_t gb = repack_group_bytes(j->w->layout, j->w->cols);
    const unsigned char *g = (const unsigned char *)j->w->data + (size_t)g0 * gb;
    float *out = j->out + g0 * REPACK_ROWS;
    if (j->kern)
        j->kern(j->w->cols, g, ng, j->act, j->act_stride, j->n, out,
                j->out_stride);
    else
        repack_mm_ref(j->w->layout, j->w->cols, g, ng, j->act, j->act_stride,
                      j->n, out, j->out_stride);
}

typedef struct xact_job {
    int layout;
    const float *x;
    int64_t x_stride, cols;
    unsigned char *dst;
    size_t dst_stride;
} xact_job;

/* One activation row for a repacked layout, by the kernel path's
 * quantizer when it has one (the same bits as repack.c's). */
static void quantize_act_row(int layout, const float *x, void *dst,
                             int64_t cols)
{
    const kern_table *kt = kern_get();
    if (kt->quant_act && layout != REPACK_Q4_K_X16 && layout != REPACK_Q6_K_X16)
        kt->quant_act(x, dst, cols);
    else
        repack_quantize_row(layout, x, dst, cols);
}

static void xact_task(void *arg, int64_t t, int thread)
{
    (void)thread;
    const xact_job *a = arg;
    quantize_act_row(a->layout, a->x + t * a->x_stride,
                     a->dst + (size_t)t * a->dst_stride, a->cols);
}

/* A repacked matrix: activations into repack_act blocks (the whole batch
 * when the batch buffer holds it, else one row at a time), then the
 * layout's kernel over groups of rows shared among the threads. */
static void matmul_repacked(float *out, int64_t out_stride, const ops_matrix *w,
                            const float *x, int64_t x_stride, int n,
                            const ops_scratch *s, const ops_par *par)
{
    kern_mmx_fn kern = kern_get()->mmx[w->layout];
    size_t rs = repack_act_bytes(w->layout, w->cols);
    int64_t n_groups = w->rows / REPACK_ROWS;
    int threads = pool_size(par->pool);
    int64_t per = n_groups / ((int64_t)threads * 4);
    if (per < 1)
        per = 1;
    mmx_job j = {.w = w, .kern = kern, .act_stride = rs, .out = out,
                 .out_stride = out_stride, .groups_per_task = per};
    int64_t n_tasks = (n_groups + per - 1) / per;
    if (par->actqb && (uint64_t)n <= par->actqb_bytes / rs) {
        xact_job a = {w->layout, x, x_stride, w->cols, par->actqb, rs};
        pool_run(n > 1 ? par->pool : NULL, n, xact_task, &a);
        j.act = par->actqb;
        j.n = n;
        pool_run(par->pool, n_tasks, mmx_task, &j);
        return;
    }
    for (int t = 0; t < n; t++) {
        quantize_act_row(w->layout, x + (int64_t)t * x_stride, s->actq, w->cols);
        j.act = s->actq;
        j.n = 1;
        j.out = out + (int64_t)t * out_stride;
        pool_run(par->pool, n_tasks, mmx_task, &j);
    }
}

void ops_matmul_par(float *out, int64_t out_stride, const ops_matrix *w,
                    const float *x, int64_t x_stride, int n,
                    const ops_scratch *s, const ops_par *par)
{
    static const ops_par none;
    if (!par)
        par = &none;
    if (n <= 0 || w->rows <= 0)
        return;
    if (w->layout != REPACK_NONE) {
        matmul_repacked(out, out_stride, w, x, x_stride, n, s, par);
        return;
    }
    pthread_once(&blas_once, blas_init);
    const kern_table *kt = kern_get();
    kern_mm_fn kern = w->type < QT_TYPE_MAX ? kt->mm[w->type] : NULL;
    if (w->type == QT_Q4_0 && w->rows % 8 == 0 && kt->mm_q4_0_x8)
        kern = kt->mm_q4_0_x8; /* llama.cpp's repacked order (kernels.h) */
    uint32_t at = qt_act_type(w->type);
    int bmin = blas_min_batch;
    if (bmin < 0) /* by kernel path: not for types it has x16 kernels for */
        bmin = kt->mmx[repack_layout_for(w->type, REPACK_ROWS, w->cols)]
                   ? 0 : OPS_BLAS_MIN_BATCH;
    bool blas = par->tiles && par->tile_floats >= ops_tile_floats(w->cols) &&
                bmin > 0 && n >= bmin &&
                w->cols <= 0x7fffffff;
    mm_job j = {.w = w, .out = out, .out_stride = out_stride, .n = n,
                .kern = kern, .s = s, .par = par};

    /* the quantized-activation kernels: quantize the batch once */
    if (kern && !blas && at != QT_F32 && at != QT_ACT_NONE) {
        uint64_t rs;
        if (qt_row_size(at, (uint64_t)w->cols, &rs) == 0 &&
            par->actqb && (uint64_t)n <= par->actqb_bytes / (rs ? rs : 1)) {
            act_job a = {w->type, x, x_stride, w->cols, par->actqb, (size_t)rs};
            pool_run(n > 1 ? par->pool : NULL, n, act_quant_task, &a);
            j.xq = par->actqb;
            j.xq_stride = (size_t)rs;
            j.rows_per_task = kernel_rows(w->rows, pool_size(par->pool));
            pool_run(par->pool, n_tasks_for(w->rows, j.rows_per_task),
                     mm_kernel_task, &j);
            return;
        }
        /* no batch buffer: one activation row at a time */
        for (int t = 0; t < n; t++) {
            (void)qt_quantize_act(w->type, x + (int64_t)t * x_stride, s->actq,
                                  w->cols);
            j.xq = s->actq;
            j.xq_stride = 0;
            j.n = 1;
            j.out = out + (int64_t)t * out_stride;
            j.rows_per_task = OPS_KERNEL_ROWS;
            pool_run(par->pool, n_tasks_for(w->rows, j.rows_per_task),
                     mm_kernel_task, &j);
        }
        return;
    }

    /* the float paths (and F16 kernels): rounded activations in s->act,
     * token by token in parallel when the batch buffer has room for each
     * token's quantized row */
    if (w->type != QT_F32) {
        uint32_t rt = w->type == QT_F16 || w->type == QT_BF16 ? w->type : at;
        uint64_t rs = 0;
        round_job rj = {w->type, x, x_stride, w->cols, s->act, s->actq, 0};
        if (n > 1 && par->actqb && rt != QT_ACT_NONE &&
            qt_row_size(rt, (uint64_t)w->cols, &rs) == 0 &&
            (uint64_t)n <= par->actqb_bytes / (rs + 64)) {
            rj.q = par->actqb;
            rj.q_stride = (size_t)rs + 64;
            pool_run(par->pool, n, round_task, &rj);
        } else {
            pool_run(NULL, n, round_task, &rj);
        }
        x = s->act;
        x_stride = w->cols;
    }
    j.x = x;
    j.x_stride = x_stride;
    if (blas) {
        j.rows_per_task = OPS_TILE_ROWS;
        pool_run(par->pool, n_tasks_for(w->rows, j.rows_per_task), mm_blas_task,
                 &j);
    } else if (kern && at == QT_F32) {
        j.xq = x;
        j.xq_stride = (size_t)x_stride * sizeof(float);
        j.rows_per_task = OPS_KERNEL_ROWS;
        pool_run(par->pool, n_tasks_for(w->rows, j.rows_per_task),
                 mm_kernel_task, &j);
    } else {
        /* per-thread row buffers only with tiles; else the caller alone */
        j.rows_per_task = OPS_KERNEL_ROWS;
        pool_run(par->tiles || w->type == QT_F32 || w->type == QT_F16
                     ? par->pool : NULL,
                 n_tasks_for(w->rows, j.rows_per_task), mm_f32_task, &j);
    }
}
