/* test_gguf.c - GGUF reader and writer: round trips through the writer,
 * the real llama.cpp-written files in $HEARTH_TEST_DATA/models, and one
 * test per refusal path of the reader on hand-made bad files (each checks
 * that the message names the field at fault). */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"

/* ------------------------------------------------------------ helpers */

static const char *data_dir(void)
{
    static char buf[4096];
    const char *d = getenv("HEARTH_TEST_DATA");
    if (!d || !*d)
        d = "../shared";
    snprintf(buf, sizeof buf, "%s/models", d);
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    return buf;
}

#define SKIP_WITHOUT_DATA(dir)                                                \
    const char *dir = data_dir();                                             \
    if (!dir) {                                                               \
        fprintf(stderr, "SKIP %s: no test data (set HEARTH_TEST_DATA)\n",     \
                __func__);                                                    \
        return;                                                               \
    }

/* A byte builder for hand-made (mostly bad) files. */
typedef struct tb {
    uint8_t *p;
    size_t len, cap;
} tb;

static void tb_put(tb *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void tb_u8(tb *b, uint8_t v) { tb_put(b, &v, 1); }
static void tb_u32(tb *b, uint32_t v) { tb_put(b, &v, 4); } /* LE host */
static void tb_u64(tb *b, uint64_t v) { tb_put(b, &v, 8); }

static void tb_str(tb *b, const char *s)
{
    tb_u64(b, strlen(s));
    tb_put(b, s, strlen(s));
}

static void tb_pad(tb *b, size_t align)
{
    while (b->len % align)
        tb_u8(b, 0);
}

static void tb_zeros(tb *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tb_u8(b, 0);
}

static void tb_hdr(tb *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
    tb_u32(b, GGUF_MAGIC);
    tb_u32(b, version);
    tb_u64(b, nt);
    tb_u64(b, nkv);
}

static void tb_kv_u32(tb *b, const char *key, uint32_t v)
{
    tb_str(b, key);
    tb_u32(b, GGUF_VT_UINT32);
    tb_u32(b, v);
}

static void tb_tinfo(tb *b, const char *name, uint32_t n_dims,
                     const uint64_t *ne, uint32_t type, uint64_t offset)
{
    tb_str(b, name);
    tb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        tb_u64(b, ne[i]);
    tb_u32(b, type);
    tb_u64(b, offset);
}

/* A file with one tensor description followed by `data_len` data bytes. */
static void one_tensor(tb *b, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type, uint64_t offset, size_t data_len)
{
    tb_hdr(b, 3, 1, 0);
    tb_tinfo(b, "t", n_dims, ne, type, offset);
    tb_pad(b, 32);
    tb_zeros(b, data_len);
}

/* Asserts the buffer is refused and the message contains `what`. */
static void expect_refused(const tb *b, const char *what)
{
    gguf_file *f = (gguf_file *)1;
    char err[512] = "";
    int r = gguf_open_mem(b->p, b->len, &f, err, sizeof err);
    ck_assert_int_eq(r, -1);
    ck_assert_ptr_null(f);
    ck_assert_msg(strncmp(err, "gguf: ", 6) == 0, "message: %s", err);
    ck_assert_msg(strstr(err, what) != NULL, "expected '%s' in: %s", what,
                  err);
}

static gguf_file *open_ok(const void *buf, size_t len)
{
    gguf_file *f = NULL;
    char err[512] = "";
    int r = gguf_open_mem(buf, len, &f, err, sizeof err);
    ck_assert_msg(r == 0, "open failed: %s", err);
    ck_assert_ptr_nonnull(f);
    return f;
}

static bool str_is(gguf_str s, const char *c) { return gguf_str_eq(s, c); }

/* ------------------------------------------------------------ round trip */

static const char *const strs[] = {"alpha", "", "gamma \xe2\x9c\x93"};

/* A writer with one value of every type, arrays of every element type and
 * tensors of several types and ranks. */
static gguf_writer *full_writer(void)
{
    gguf_writer *w = gguf_writer_new();
    ck_assert_ptr_nonnull(w);
    uint8_t u8 = 250;
    int8_t i8 = -100;
    uint16_t u16 = 65000;
    int16_t i16 = -30000;
    int64_t i64 = -((int64_t)1 << 40);
    double f64 = 3.141592653589793;
    ck_assert_int_eq(gguf_writer_set_val(w, "v.u8", GGUF_VT_UINT8, &u8), 0);
    ck_assert_int_eq(gguf_writer_set_val(w, "v.i8", GGUF_VT_INT8, &i8), 0);
    ck_assert_int_eq(gguf_writer_set_val(w, "v.u16", GGUF_VT_UINT16, &u16), 0);
    ck_assert_int_eq(gguf_writer_set_val(w, "v.i16", GGUF_VT_INT16, &i16), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "v.u32", 4000000000u), 0);
    ck_assert_int_eq(gguf_writer_set_i32(w, "v.i32", -2000000000), 0);
    ck_assert_int_eq(gguf_writer_set_f32(w, "v.f32", -1.5f), 0);
    ck_assert_int_eq(gguf_writer_set_bool(w, "v.bool", true), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "v.str", "hello"), 0);
    ck_assert_int_eq(gguf_writer_set_u64(w, "v.u64", UINT64_MAX), 0);
    ck_assert_int_eq(gguf_writer_set_val(w, "v.i64", GGUF_VT_INT64, &i64), 0);
    ck_assert_int_eq(gguf_writer_set_val(w, "v.f64", GGUF_VT_FLOAT64, &f64),
                     0);
    ck_assert_int_eq(gguf_writer_set_str(w, "general.architecture", "llama"),
                     0);

    uint8_t a_u8[3] = {1, 2, 255};
    int8_t a_i8[2] = {-1, 127};
    uint16_t a_u16[2] = {1, 65535};
    int16_t a_i16[2] = {-32768, 5};
    uint32_t a_u32[3] = {7, 8, 9};
    int32_t a_i32[4] = {-1, 0, 1, INT32_MIN};
    float a_f32[2] = {0.25f, -8.0f};
    bool a_b[3] = {true, false, true};
    uint64_t a_u64[1] = {1ull << 63};
    int64_t a_i64[2] = {INT64_MIN, INT64_MAX};
    double a_f64[2] = {1e300, -0.0};
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.u8", GGUF_VT_UINT8, a_u8, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.i8", GGUF_VT_INT8, a_i8, 2), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.u16", GGUF_VT_UINT16, a_u16, 2),
                     0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.i16", GGUF_VT_INT16, a_i16, 2),
                     0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.u32", GGUF_VT_UINT32, a_u32, 3),
                     0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.i32", GGUF_VT_INT32, a_i32, 4),
                     0);
    ck_assert_int_eq(
        gguf_writer_set_arr(w, "a.f32", GGUF_VT_FLOAT32, a_f32, 2), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.bool", GGUF_VT_BOOL, a_b, 3),
                     0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.u64", GGUF_VT_UINT64, a_u64, 1),
                     0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.i64", GGUF_VT_INT64, a_i64, 2),
                     0);
    ck_assert_int_eq(
        gguf_writer_set_arr(w, "a.f64", GGUF_VT_FLOAT64, a_f64, 2), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.empty", GGUF_VT_INT32, NULL, 0),
                     0);
    ck_assert_int_eq(gguf_writer_set_arr_str(w, "a.str", strs, 3), 0);

    /* tensors: F32 2-D, F16 1-D, Q8_0 3-D, Q4_K 4-D */
    float t0[6] = {1, 2, 3, 4, 5, 6};
    uint64_t ne0[2] = {3, 2};
    ck_assert_int_eq(
        gguf_writer_add_tensor(w, "t.f32", QT_F32, 2, ne0, t0, false), 0);
    uint16_t t1[5];
    for (int i = 0; i < 5; i++)
        t1[i] = qt_f32_to_f16((float)i - 2.0f);
    uint64_t ne1[1] = {5};
    ck_assert_int_eq(
        gguf_writer_add_tensor(w, "t.f16", QT_F16, 1, ne1, t1, false), 0);
    uint8_t t2[34 * 6];
    for (size_t i = 0; i < sizeof t2; i++)
        t2[i] = (uint8_t)(i * 7 + 1);
    uint64_t ne2[3] = {64, 3, 1};
    ck_assert_int_eq(
        gguf_writer_add_tensor(w, "t.q8", QT_Q8_0, 3, ne2, t2, false), 0);
    static uint8_t t3[144 * 4];
    for (size_t i = 0; i < sizeof t3; i++)
        t3[i] = (uint8_t)(i * 13);
    uint64_t ne3[4] = {256, 1, 2, 2};
    ck_assert_int_eq(
        gguf_writer_add_tensor(w, "t.q4k", QT_Q4_K, 4, ne3, t3, true), 0);
    return w;
}

static void check_full(const gguf_file *f)
{
    ck_assert_uint_eq(gguf_version(f), 3);
    ck_assert_uint_eq(gguf_alignment(f), 32);
    ck_assert_uint_eq(gguf_n_kv(f), 26);
    ck_assert_uint_eq(gguf_n_tensors(f), 4);
    const gguf_kv *kv;
    kv = gguf_find_kv(f, "v.u8");
    ck_assert(kv && kv->type == GGUF_VT_UINT8 && kv->v.u == 250);
    kv = gguf_find_kv(f, "v.i8");
    ck_assert(kv && kv->type == GGUF_VT_INT8 && kv->v.i == -100);
    kv = gguf_find_kv(f, "v.u16");
    ck_assert(kv && kv->type == GGUF_VT_UINT16 && kv->v.u == 65000);
    kv = gguf_find_kv(f, "v.i16");
    ck_assert(kv && kv->type == GGUF_VT_INT16 && kv->v.i == -30000);
    kv = gguf_find_kv(f, "v.u32");
    ck_assert(kv && kv->type == GGUF_VT_UINT32 && kv->v.u == 4000000000u);
    kv = gguf_find_kv(f, "v.i32");
    ck_assert(kv && kv->type == GGUF_VT_INT32 && kv->v.i == -2000000000);
    kv = gguf_find_kv(f, "v.f32");
    ck_assert(kv && kv->type == GGUF_VT_FLOAT32 && kv->v.f == -1.5);
    kv = gguf_find_kv(f, "v.bool");
    ck_assert(kv && kv->type == GGUF_VT_BOOL && kv->v.b);
    kv = gguf_find_kv(f, "v.str");
    ck_assert(kv && kv->type == GGUF_VT_STRING && str_is(kv->v.s, "hello"));
    kv = gguf_find_kv(f, "v.u64");
    ck_assert(kv && kv->type == GGUF_VT_UINT64 && kv->v.u == UINT64_MAX);
    kv = gguf_find_kv(f, "v.i64");
    ck_assert(kv && kv->type == GGUF_VT_INT64 &&
              kv->v.i == -((int64_t)1 << 40));
    kv = gguf_find_kv(f, "v.f64");
    ck_assert(kv && kv->type == GGUF_VT_FLOAT64 &&
              kv->v.f == 3.141592653589793);

    const gguf_kv *a;
    ck_assert_int_eq(gguf_get_arr(f, "a.u8", GGUF_VT_UINT8, &a), 0);
    ck_assert_uint_eq(a->arr_len, 3);
    ck_assert_uint_eq(((const uint8_t *)a->arr_data)[2], 255);
    ck_assert_int_eq(gguf_get_arr(f, "a.i8", GGUF_VT_INT8, &a), 0);
    ck_assert_int_eq(((const int8_t *)a->arr_data)[0], -1);
    ck_assert_int_eq(gguf_get_arr(f, "a.u16", GGUF_VT_UINT16, &a), 0);
    uint16_t u16;
    memcpy(&u16, (const uint8_t *)a->arr_data + 2, 2);
    ck_assert_uint_eq(u16, 65535);
    ck_assert_int_eq(gguf_get_arr(f, "a.i16", GGUF_VT_INT16, &a), 0);
    int16_t i16;
    memcpy(&i16, a->arr_data, 2);
    ck_assert_int_eq(i16, -32768);
    ck_assert_int_eq(gguf_get_arr(f, "a.u32", GGUF_VT_UINT32, &a), 0);
    uint32_t u32[3];
    memcpy(u32, a->arr_data, 12);
    ck_assert(u32[0] == 7 && u32[1] == 8 && u32[2] == 9);
    ck_assert_int_eq(gguf_get_arr(f, "a.i32", GGUF_VT_INT32, &a), 0);
    int32_t i32[4];
    memcpy(i32, a->arr_data, 16);
    ck_assert(i32[0] == -1 && i32[3] == INT32_MIN);
    ck_assert_int_eq(gguf_get_arr(f, "a.f32", GGUF_VT_FLOAT32, &a), 0);
    float f32[2];
    memcpy(f32, a->arr_data, 8);
    ck_assert(f32[0] == 0.25f && f32[1] == -8.0f);
    ck_assert_int_eq(gguf_get_arr(f, "a.bool", GGUF_VT_BOOL, &a), 0);
    const uint8_t *bb = a->arr_data;
    ck_assert(a->arr_len == 3 && bb[0] == 1 && bb[1] == 0 && bb[2] == 1);
    ck_assert_int_eq(gguf_get_arr(f, "a.u64", GGUF_VT_UINT64, &a), 0);
    uint64_t u64;
    memcpy(&u64, a->arr_data, 8);
    ck_assert(u64 == 1ull << 63);
    ck_assert_int_eq(gguf_get_arr(f, "a.i64", GGUF_VT_INT64, &a), 0);
    int64_t i64[2];
    memcpy(i64, a->arr_data, 16);
    ck_assert(i64[0] == INT64_MIN && i64[1] == INT64_MAX);
    ck_assert_int_eq(gguf_get_arr(f, "a.f64", GGUF_VT_FLOAT64, &a), 0);
    double f64[2];
    memcpy(f64, a->arr_data, 16);
    ck_assert(f64[0] == 1e300 && f64[1] == 0 && signbit(f64[1]));
    ck_assert_int_eq(gguf_get_arr(f, "a.empty", GGUF_VT_INT32, &a), 0);
    ck_assert_uint_eq(a->arr_len, 0);
    ck_assert_int_eq(gguf_get_arr(f, "a.str", GGUF_VT_STRING, &a), 0);
    ck_assert_uint_eq(a->arr_len, 3);
    for (int i = 0; i < 3; i++)
        ck_assert(str_is(a->arr_strs[i], strs[i]));

    const gguf_tensor *t = gguf_find_tensor(f, "t.f32");
    ck_assert_ptr_nonnull(t);
    ck_assert(t->type == QT_F32 && t->n_dims == 2 && t->ne[0] == 3 &&
              t->ne[1] == 2 && t->ne[2] == 1 && t->ne[3] == 1);
    ck_assert_uint_eq(t->nbytes, 24);
    float tf[6];
    memcpy(tf, t->data, 24);
    for (int i = 0; i < 6; i++)
        ck_assert(tf[i] == (float)(i + 1));
    t = gguf_find_tensor(f, "t.f16");
    ck_assert(t && t->type == QT_F16 && t->n_dims == 1 && t->nbytes == 10);
    float y[5];
    ck_assert_int_eq(qt_dequantize_row(QT_F16, t->data, y, 5), 0);
    for (int i = 0; i < 5; i++)
        ck_assert(y[i] == (float)i - 2.0f);
    t = gguf_find_tensor(f, "t.q8");
    ck_assert(t && t->type == QT_Q8_0 && t->n_dims == 3 && t->nbytes == 204);
    for (size_t i = 0; i < t->nbytes; i++)
        ck_assert_uint_eq(((const uint8_t *)t->data)[i], (uint8_t)(i * 7 + 1));
    t = gguf_find_tensor(f, "t.q4k");
    ck_assert(t && t->type == QT_Q4_K && t->n_dims == 4 && t->ne[3] == 2 &&
              t->nbytes == 576);
    for (size_t i = 0; i < t->nbytes; i++)
        ck_assert_uint_eq(((const uint8_t *)t->data)[i], (uint8_t)(i * 13));
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        t = gguf_tensor_at(f, i);
        ck_assert_uint_eq(t->offset % 32, 0);
    }
    ck_assert_uint_eq(gguf_data_offset(f) % 32, 0);
    ck_assert_ptr_null(gguf_find_tensor(f, "t.none"));
    ck_assert_ptr_null(gguf_find_kv(f, "v.none"));
    ck_assert_ptr_null(gguf_kv_at(f, gguf_n_kv(f)));
    ck_assert_ptr_null(gguf_tensor_at(f, gguf_n_tensors(f)));
}

START_TEST(writer_roundtrip_mem)
{
    gguf_writer *w = full_writer();
    void *buf;
    size_t len;
    char err[256];
    ck_assert_int_eq(gguf_writer_write_mem(w, &buf, &len, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_file *f = open_ok(buf, len);
    check_full(f);
    ck_assert_uint_eq(gguf_file_size(f), len);
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(writer_roundtrip_file)
{
    gguf_writer *w = full_writer();
    char path[] = "/tmp/test_gguf_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char err[256];
    ck_assert_int_eq(gguf_writer_write(w, path, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f, err, sizeof err) == 0, "%s", err);
    check_full(f);
    gguf_close(f);
    unlink(path);
}
END_TEST

/* Entries of a directory other than . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fputs(text, fp) >= 0, 1);
    ck_assert_int_eq(fclose(fp), 0);
}

/* An existing file is replaced whole, through a temporary file that does
 * not stay behind; a symlink's target is replaced, the link kept. */
START_TEST(writer_replaces_file_by_rename)
{
    char dir[] = "/tmp/test_gguf_dir_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64], link[64];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    snprintf(link, sizeof link, "%s/l.gguf", dir);
    write_text(path, "an old file, longer than nothing");
    struct stat before;
    ck_assert_int_eq(stat(path, &before), 0);
    ck_assert_int_eq(symlink("m.gguf", link), 0);

    gguf_writer *w = full_writer();
    char err[256];
    ck_assert_msg(gguf_writer_write(w, link, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    struct stat lst, after;
    ck_assert_int_eq(lstat(link, &lst), 0);
    ck_assert(S_ISLNK(lst.st_mode));
    ck_assert_int_eq(stat(path, &after), 0);
    ck_assert(before.st_ino != after.st_ino); /* a new file, renamed in */
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f, err, sizeof err) == 0, "%s", err);
    check_full(f);
    gguf_close(f);
    ck_assert_int_eq(dir_entries(dir), 2); /* no temporary left */
    unlink(link);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* A write that fails half-way (the file size limit stops it) leaves the
 * old file as it was and no temporary file. */
START_TEST(writer_write_error_keeps_old_file)
{
    char dir[] = "/tmp/test_gguf_dir_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    write_text(path, "old");

    gguf_writer *w = gguf_writer_new();
    ck_assert_ptr_nonnull(w);
    uint64_t ne[2] = {1024, 64}; /* 256 KiB of zeros */
    ck_assert_int_eq(gguf_writer_add_tensor(w, "t", QT_F32, 2, ne, NULL,
                                            false), 0);
    struct rlimit old_lim, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
    lim = old_lim;
    lim.rlim_cur = 65536;
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    char err[256] = "";
    int rc = gguf_writer_write(w, path, err, sizeof err);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old_lim), 0);
    signal(SIGXFSZ, old_sig);
    gguf_writer_free(w);

    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(err, "write") != NULL, "%s", err);
    char buf[16] = "";
    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    ck_assert_str_eq(buf, "old");
    ck_assert_int_eq(dir_entries(dir), 1);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* copy_kv + tensors from a parsed file reproduce the same bytes. */
START_TEST(writer_copy_kv_identical)
{
    gguf_writer *w = full_writer();
    void *buf, *buf2;
    size_t len, len2;
    char err[256];
    ck_assert_int_eq(gguf_writer_write_mem(w, &buf, &len, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_file *f = open_ok(buf, len);
    gguf_writer *w2 = gguf_writer_new();
    ck_assert_int_eq(gguf_writer_copy_kv(w2, f), 0);
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        ck_assert_int_eq(gguf_writer_add_tensor(w2, name, t->type, t->n_dims,
                                                t->ne, t->data, true),
                         0);
    }
    ck_assert_int_eq(gguf_writer_write_mem(w2, &buf2, &len2, err, sizeof err),
                     0);
    ck_assert_uint_eq(len, len2);
    ck_assert(memcmp(buf, buf2, len) == 0);
    gguf_writer_free(w2);
    gguf_close(f);
    free(buf);
    free(buf2);
}
END_TEST

START_TEST(writer_replaces_existing_key)
{
    gguf_writer *w = gguf_writer_new();
    ck_assert_int_eq(gguf_writer_set_u32(w, "k", 1), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "other", "x"), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "k", "now a string"), 0);
    void *buf;
    size_t len;
    char err[256];
    ck_assert_int_eq(gguf_writer_write_mem(w, &buf, &len, err, sizeof err), 0);
    gguf_file *f = open_ok(buf, len);
    ck_assert_uint_eq(gguf_n_kv(f), 2);
    gguf_str s;
    ck_assert_int_eq(gguf_get_str(f, "k", &s), 0);
    ck_assert(str_is(s, "now a string"));
    ck_assert(str_is(gguf_kv_at(f, 0)->key, "k")); /* kept its place */
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
}
END_TEST

START_TEST(writer_custom_alignment)
{
    gguf_writer *w = gguf_writer_new();
    ck_assert_int_eq(gguf_writer_set_u32(w, "general.alignment", 256), 0);
    float a[3] = {1, 2, 3}, b[5] = {4, 5, 6, 7, 8};
    uint64_t na = 3, nb = 5;
    ck_assert_int_eq(gguf_writer_add_tensor(w, "a", QT_F32, 1, &na, a, false),
                     0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "b", QT_F32, 1, &nb, b, false),
                     0);
    void *buf;
    size_t len;
    char err[256];
    ck_assert_int_eq(gguf_writer_write_mem(w, &buf, &len, err, sizeof err), 0);
    gguf_file *f = open_ok(buf, len);
    ck_assert_uint_eq(gguf_alignment(f), 256);
    ck_assert_uint_eq(gguf_data_offset(f) % 256, 0);
    ck_assert_uint_eq(gguf_tensor_at(f, 1)->offset, 256);
    float y[5];
    memcpy(y, gguf_find_tensor(f, "b")->data, 20);
    ck_assert(y[0] == 4 && y[4] == 8);
    gguf_close(f);
    free(buf);
    /* a non-power-of-two alignment is refused at write time */
    ck_assert_int_eq(gguf_writer_set_u32(w, "general.alignment", 48), 0);
    ck_assert_int_eq(gguf_writer_write_mem(w, &buf, &len, err, sizeof err),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "general.alignment"));
    gguf_writer_free(w);
}
END_TEST

START_TEST(writer_rejects_bad_tensors)
{
    gguf_writer *w = gguf_writer_new();
    float x[64] = {0};
    uint64_t ne[5] = {64, 1, 1, 1, 1};
    ck_assert_int_eq(gguf_writer_add_tensor(w, "a", QT_F32, 1, ne, x, false),
                     0);
    /* duplicate name */
    ck_assert_int_eq(gguf_writer_add_tensor(w, "a", QT_F32, 1, ne, x, false),
                     -1);
    /* 5 dims */
    ck_assert_int_eq(gguf_writer_add_tensor(w, "b", QT_F32, 5, ne, x, false),
                     -1);
    /* block does not divide */
    uint64_t ne33 = 33;
    ck_assert_int_eq(
        gguf_writer_add_tensor(w, "c", QT_Q8_0, 1, &ne33, x, false), -1);
    /* unknown type */
    ck_assert_int_eq(gguf_writer_add_tensor(w, "d", 99, 1, ne, x, false), -1);
    /* zero dimension */
    uint64_t ne0[2] = {64, 0};
    ck_assert_int_eq(gguf_writer_add_tensor(w, "e", QT_F32, 2, ne0, x, false),
                     -1);
    /* bad scalar type */
    ck_assert_int_eq(gguf_writer_set_val(w, "k", GGUF_VT_STRING, "x"), -1);
    gguf_writer_free(w);
}
END_TEST

START_TEST(typed_getters_convert_and_refuse)
{
    gguf_writer *w = gguf_writer_new();
    uint8_t u8 = 7;
    int8_t neg = -5;
    double d = 0.5;
    gguf_writer_set_val(w, "u8", GGUF_VT_UINT8, &u8);
    gguf_writer_set_val(w, "neg", GGUF_VT_INT8, &neg);
    gguf_writer_set_u64(w, "big", 1ull << 40);
    gguf_writer_set_val(w, "f64", GGUF_VT_FLOAT64, &d);
    gguf_writer_set_str(w, "s", "x");
    gguf_writer_set_bool(w, "b", false);
    void *buf;
    size_t len;
    char err[256];
    ck_assert_int_eq(gguf_writer_write_mem(w, &buf, &len, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_file *f = open_ok(buf, len);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f32;
    bool b = true;
    gguf_str s;
    const gguf_kv *kv;
    ck_assert_int_eq(gguf_get_u32(f, "u8", &u32), 0);
    ck_assert_uint_eq(u32, 7);
    ck_assert_int_eq(gguf_get_i32(f, "u8", &i32), 0);
    ck_assert_int_eq(i32, 7);
    ck_assert_int_eq(gguf_get_i32(f, "neg", &i32), 0);
    ck_assert_int_eq(i32, -5);
    ck_assert_int_eq(gguf_get_u32(f, "neg", &u32), -2);
    ck_assert_int_eq(gguf_get_u64(f, "neg", &u64), -2);
    ck_assert_int_eq(gguf_get_u32(f, "big", &u32), -2);
    ck_assert_int_eq(gguf_get_i32(f, "big", &i32), -2);
    ck_assert_int_eq(gguf_get_u64(f, "big", &u64), 0);
    ck_assert_uint_eq(u64, 1ull << 40);
    ck_assert_int_eq(gguf_get_f32(f, "f64", &f32), 0);
    ck_assert(f32 == 0.5f);
    ck_assert_int_eq(gguf_get_f32(f, "u8", &f32), -2);
    ck_assert_int_eq(gguf_get_str(f, "u8", &s), -2);
    ck_assert_int_eq(gguf_get_str(f, "s", &s), 0);
    ck_assert_int_eq(gguf_get_bool(f, "b", &b), 0);
    ck_assert(!b);
    ck_assert_int_eq(gguf_get_bool(f, "u8", &b), -2);
    ck_assert_int_eq(gguf_get_u32(f, "missing", &u32), -1);
    ck_assert_int_eq(gguf_get_arr(f, "s", GGUF_VT_STRING, &kv), -2);
    ck_assert_int_eq(gguf_get_arr(f, "missing", GGUF_VT_STRING, &kv), -1);
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(vtype_names)
{
    ck_assert_str_eq(gguf_vtype_name(GGUF_VT_UINT8), "uint8");
    ck_assert_str_eq(gguf_vtype_name(GGUF_VT_FLOAT64), "float64");
    ck_assert_str_eq(gguf_vtype_name(GGUF_VT_COUNT), "?");
    gguf_str s = {"abc", 3};
    ck_assert(gguf_str_eq(s, "abc"));
    ck_assert(!gguf_str_eq(s, "ab"));
    ck_assert(!gguf_str_eq(s, "abcd"));
}
END_TEST

/* ------------------------------------------------------------ real files */

START_TEST(real_stories260k)
{
    SKIP_WITHOUT_DATA(dir);
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/stories260K.gguf", dir);
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f, err, sizeof err) == 0, "%s", err);
    gguf_str arch;
    ck_assert_int_eq(gguf_get_str(f, "general.architecture", &arch), 0);
    ck_assert(str_is(arch, "llama"));
    const gguf_kv *tokens;
    ck_assert_int_eq(
        gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &tokens), 0);
    ck_assert_uint_eq(tokens->arr_len, 512);
    uint32_t n_embd;
    ck_assert_int_eq(gguf_get_u32(f, "llama.embedding_length", &n_embd), 0);
    ck_assert_uint_eq(n_embd, 64);
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->type, QT_F32);
    ck_assert_uint_eq(t->n_dims, 2);
    ck_assert_uint_eq(t->ne[0], 64);
    ck_assert_uint_eq(t->ne[1], 512);
    ck_assert_uint_eq(gguf_n_tensors(f), 48);
    /* F32 data is finite and not all zero */
    const uint8_t *p = t->data;
    double ss = 0;
    for (uint64_t i = 0; i < t->ne[0] * t->ne[1]; i++) {
        float v;
        memcpy(&v, p + 4 * i, 4);
        ck_assert(isfinite(v));
        ss += (double)v * v;
    }
    ck_assert(ss > 0);
    gguf_close(f);
}
END_TEST

/* Every .gguf under models/ and models/vocab/ opens; each tensor's data
 * lies inside the file and every key is found again by name. */
static int open_all_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf") != 0)
            continue;
        char path[8192], err[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        gguf_file *f = NULL;
        ck_assert_msg(gguf_open(path, &f, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_ge(gguf_version(f), 2);
        for (size_t i = 0; i < gguf_n_kv(f); i++) {
            const gguf_kv *kv = gguf_kv_at(f, i);
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
            ck_assert_ptr_eq(gguf_find_kv(f, key), kv);
        }
        for (size_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            ck_assert_uint_le(gguf_data_offset(f) + t->offset + t->nbytes,
                              gguf_file_size(f));
        }
        gguf_close(f);
        n++;
    }
    closedir(d);
    return n;
}

START_TEST(real_all_files_open)
{
    SKIP_WITHOUT_DATA(dir);
    char vocab[4200];
    snprintf(vocab, sizeof vocab, "%s/vocab", dir);
    int n = open_all_in(dir) + open_all_in(vocab);
    ck_assert_int_ge(n, 7);
}
END_TEST

/* ------------------------------------------------------------ bad files */

/* A small valid file whose last tensor ends exactly at the end of the
 * file, so that every shorter prefix is invalid. */
static void small_valid(void **buf, size_t *len)
{
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "n", 3);
    const char *toks[2] = {"a", "bc"};
    gguf_writer_set_arr_str(w, "toks", toks, 2);
    int32_t ia[2] = {1, 2};
    gguf_writer_set_arr(w, "ints", GGUF_VT_INT32, ia, 2);
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t ne = 8, ne2[2] = {4, 2};
    gguf_writer_add_tensor(w, "a", QT_F32, 1, &ne, x, false);
    gguf_writer_add_tensor(w, "b", QT_F32, 2, ne2, x, false);
    char err[256];
    ck_assert_int_eq(gguf_writer_write_mem(w, buf, len, err, sizeof err), 0);
    gguf_writer_free(w);
}

START_TEST(truncated_at_every_byte)
{
    void *buf;
    size_t len;
    small_valid(&buf, &len);
    gguf_file *f = open_ok(buf, len);
    gguf_close(f);
    for (size_t n = 0; n < len; n++) {
        /* a fresh allocation of exactly n bytes so ASan sees overreads */
        void *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        char err[512] = "";
        f = (gguf_file *)1;
        ck_assert_msg(gguf_open_mem(cut, n, &f, err, sizeof err) == -1,
                      "prefix of %zu bytes accepted", n);
        ck_assert_ptr_null(f);
        ck_assert_msg(strncmp(err, "gguf: ", 6) == 0, "%zu: %s", n, err);
        free(cut);
    }
    free(buf);
}
END_TEST

START_TEST(bad_magic)
{
    tb b = {0};
    tb_u32(&b, 0x46554746); /* "FGUF" */
    tb_u32(&b, 3);
    tb_u64(&b, 0);
    tb_u64(&b, 0);
    expect_refused(&b, "bad magic");
    free(b.p);
}
END_TEST

START_TEST(version_1_refused)
{
    tb b = {0};
    tb_hdr(&b, 1, 0, 0);
    expect_refused(&b, "version 1 is not supported");
    free(b.p);
}
END_TEST

START_TEST(version_4_refused)
{
    tb b = {0};
    tb_hdr(&b, 4, 0, 0);
    expect_refused(&b, "version 4 is not supported");
    free(b.p);
}
END_TEST

START_TEST(version_2_accepted)
{
    tb b = {0};
    tb_hdr(&b, 2, 0, 1);
    tb_kv_u32(&b, "x", 5);
    gguf_file *f = open_ok(b.p, b.len);
    ck_assert_uint_eq(gguf_version(f), 2);
    uint32_t v;
    ck_assert_int_eq(gguf_get_u32(f, "x", &v), 0);
    ck_assert_uint_eq(v, 5);
    gguf_close(f);
    free(b.p);
}
END_TEST

START_TEST(huge_n_kv)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, UINT64_MAX / 2);
    tb_kv_u32(&b, "x", 5);
    expect_refused(&b, "n_kv");
    free(b.p);
}
END_TEST

START_TEST(huge_n_tensors)
{
    tb b = {0};
    tb_hdr(&b, 3, 1000000, 0);
    tb_zeros(&b, 100);
    expect_refused(&b, "n_tensors");
    free(b.p);
}
END_TEST

START_TEST(key_length_past_end)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_u64(&b, 1000); /* key length */
    tb_put(&b, "abcdefgh", 8);
    expect_refused(&b, "key 0: key string length 1000 past end");
    free(b.p);
}
END_TEST

START_TEST(empty_key)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_kv_u32(&b, "", 1);
    expect_refused(&b, "empty key");
    free(b.p);
}
END_TEST

START_TEST(string_value_past_end)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "general.name");
    tb_u32(&b, GGUF_VT_STRING);
    tb_u64(&b, UINT64_MAX); /* string length */
    tb_put(&b, "xyz", 3);
    expect_refused(&b, "'general.name': value: string length");
    free(b.p);
}
END_TEST

START_TEST(unknown_value_type)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "k");
    tb_u32(&b, 13);
    tb_u32(&b, 0);
    expect_refused(&b, "'k': unknown value type 13");
    free(b.p);
}
END_TEST

START_TEST(bool_value_not_0_or_1)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "flag");
    tb_u32(&b, GGUF_VT_BOOL);
    tb_u8(&b, 2);
    expect_refused(&b, "'flag': bool value 2");
    free(b.p);
}
END_TEST

START_TEST(truncated_scalar_value)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "big");
    tb_u32(&b, GGUF_VT_UINT64);
    tb_u32(&b, 1); /* 4 of 8 bytes */
    expect_refused(&b, "'big': truncated uint64 value");
    free(b.p);
}
END_TEST

START_TEST(array_length_overflow)
{
    /* 2^61 uint64 elements: n * 8 wraps a 64-bit size to 0 */
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "arr");
    tb_u32(&b, GGUF_VT_ARRAY);
    tb_u32(&b, GGUF_VT_UINT64);
    tb_u64(&b, 1ull << 61);
    tb_zeros(&b, 64);
    expect_refused(&b, "'arr': array length 2305843009213693952 of uint64");
    free(b.p);
}
END_TEST

START_TEST(string_array_length_past_end)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "tokenizer.ggml.tokens");
    tb_u32(&b, GGUF_VT_ARRAY);
    tb_u32(&b, GGUF_VT_STRING);
    tb_u64(&b, 1ull << 40);
    tb_str(&b, "a");
    expect_refused(&b, "'tokenizer.ggml.tokens': array length 1099511627776");
    free(b.p);
}
END_TEST

START_TEST(string_array_element_past_end)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "toks");
    tb_u32(&b, GGUF_VT_ARRAY);
    tb_u32(&b, GGUF_VT_STRING);
    tb_u64(&b, 2);
    tb_str(&b, "a");
    tb_u64(&b, 500);
    tb_put(&b, "bcdefgh", 7);
    expect_refused(&b, "'toks': array element 1: string length 500");
    free(b.p);
}
END_TEST

START_TEST(nested_array_refused)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "nest");
    tb_u32(&b, GGUF_VT_ARRAY);
    tb_u32(&b, GGUF_VT_ARRAY);
    tb_u64(&b, 1);
    tb_u32(&b, GGUF_VT_UINT8);
    tb_u64(&b, 1);
    tb_u8(&b, 1);
    expect_refused(&b, "'nest': arrays of arrays");
    free(b.p);
}
END_TEST

START_TEST(unknown_array_element_type)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "arr");
    tb_u32(&b, GGUF_VT_ARRAY);
    tb_u32(&b, 77);
    tb_u64(&b, 0);
    expect_refused(&b, "'arr': unknown array element type 77");
    free(b.p);
}
END_TEST

START_TEST(duplicate_key)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 3);
    tb_kv_u32(&b, "a", 1);
    tb_kv_u32(&b, "b", 2);
    tb_kv_u32(&b, "a", 3);
    expect_refused(&b, "key 2 'a': duplicate key (also key 0)");
    free(b.p);
}
END_TEST

START_TEST(alignment_not_power_of_two)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_kv_u32(&b, "general.alignment", 48);
    expect_refused(&b, "'general.alignment': 48 is not a nonzero power of two");
    free(b.p);
}
END_TEST

START_TEST(alignment_zero)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_kv_u32(&b, "general.alignment", 0);
    expect_refused(&b, "'general.alignment': 0 is not");
    free(b.p);
}
END_TEST

START_TEST(alignment_wrong_type)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "general.alignment");
    tb_u32(&b, GGUF_VT_UINT64);
    tb_u64(&b, 64);
    expect_refused(&b, "'general.alignment': type uint64, expected uint32");
    free(b.p);
}
END_TEST

START_TEST(tensor_name_past_end)
{
    tb b = {0};
    tb_hdr(&b, 3, 1, 0);
    tb_u64(&b, 1ull << 62);
    tb_zeros(&b, 40);
    expect_refused(&b, "tensor 0: name string length");
    free(b.p);
}
END_TEST

START_TEST(tensor_empty_name)
{
    tb b = {0};
    uint64_t ne[1] = {8};
    tb_hdr(&b, 3, 1, 0);
    tb_tinfo(&b, "", 1, ne, QT_F32, 0);
    tb_pad(&b, 32);
    tb_zeros(&b, 32);
    expect_refused(&b, "tensor 0 '': empty name");
    free(b.p);
}
END_TEST

START_TEST(duplicate_tensor_name)
{
    tb b = {0};
    uint64_t ne[1] = {8};
    tb_hdr(&b, 3, 2, 0);
    tb_tinfo(&b, "w", 1, ne, QT_F32, 0);
    tb_tinfo(&b, "w", 1, ne, QT_F32, 32);
    tb_pad(&b, 32);
    tb_zeros(&b, 64);
    expect_refused(&b, "tensor 1 'w': duplicate tensor name (also tensor 0)");
    free(b.p);
}
END_TEST

START_TEST(n_dims_5)
{
    tb b = {0};
    uint64_t ne[5] = {1, 1, 1, 1, 1};
    one_tensor(&b, 5, ne, QT_F32, 0, 32);
    expect_refused(&b, "tensor 0 't': n_dims 5 exceeds 4");
    free(b.p);
}
END_TEST

START_TEST(dimension_zero)
{
    tb b = {0};
    uint64_t ne[2] = {4, 0};
    one_tensor(&b, 2, ne, QT_F32, 0, 32);
    expect_refused(&b, "tensor 0 't': dimension 1 is 0");
    free(b.p);
}
END_TEST

START_TEST(dimension_above_int64)
{
    tb b = {0};
    uint64_t ne[1] = {1ull << 63};
    one_tensor(&b, 1, ne, QT_F32, 0, 32);
    expect_refused(&b, "tensor 0 't': dimension 0 is 9223372036854775808");
    free(b.p);
}
END_TEST

START_TEST(dimensions_product_overflow)
{
    tb b = {0};
    uint64_t ne[3] = {1ull << 32, 1ull << 20, 1ull << 12};
    one_tensor(&b, 3, ne, QT_F32, 0, 32);
    expect_refused(&b, "tensor 0 't': dimension 2: element count overflows");
    free(b.p);
}
END_TEST

START_TEST(byte_size_overflow)
{
    /* 2^62 F32 elements fit in int64 but not as bytes in uint64 */
    tb b = {0};
    uint64_t ne[2] = {1ull << 31, 1ull << 31};
    one_tensor(&b, 2, ne, QT_F32, 0, 32);
    expect_refused(&b, "tensor 0 't': byte size overflows");
    free(b.p);
}
END_TEST

START_TEST(bad_type_id)
{
    tb b = {0};
    uint64_t ne[1] = {8};
    one_tensor(&b, 1, ne, 99, 0, 32);
    expect_refused(&b, "tensor 0 't': unknown type id 99");
    free(b.p);
}
END_TEST

START_TEST(removed_type_id)
{
    tb b = {0};
    uint64_t ne[1] = {32};
    one_tensor(&b, 1, ne, 4 /* the removed Q4_2 */, 0, 32);
    expect_refused(&b, "unknown type id 4");
    free(b.p);
}
END_TEST

START_TEST(block_does_not_divide_row)
{
    tb b = {0};
    uint64_t ne[2] = {48, 2};
    one_tensor(&b, 2, ne, QT_Q4_0, 0, 64);
    expect_refused(&b, "tensor 0 't': type Q4_0: ne[0] 48 is not a multiple "
                       "of the block size 32");
    free(b.p);
}
END_TEST

START_TEST(misaligned_offset)
{
    tb b = {0};
    uint64_t ne[1] = {4};
    one_tensor(&b, 1, ne, QT_F32, 8, 64);
    expect_refused(&b, "tensor 0 't': offset 8 not aligned to 32");
    free(b.p);
}
END_TEST

START_TEST(offset_plus_size_past_end)
{
    tb b = {0};
    uint64_t ne[1] = {16}; /* 64 bytes, only 32 present */
    one_tensor(&b, 1, ne, QT_F32, 0, 32);
    expect_refused(&b, "tensor 0 't': offset 0 + size 64 past end of file");
    free(b.p);
}
END_TEST

START_TEST(offset_past_end)
{
    tb b = {0};
    uint64_t ne[1] = {4};
    one_tensor(&b, 1, ne, QT_F32, 1024, 32);
    expect_refused(&b, "tensor 0 't': offset 1024 + size 16 past end");
    free(b.p);
}
END_TEST

START_TEST(offset_overflow)
{
    /* an aligned offset near 2^64: offset + size wraps around */
    tb b = {0};
    uint64_t ne[1] = {16};
    one_tensor(&b, 1, ne, QT_F32, UINT64_MAX - 31, 64);
    expect_refused(&b, "past end of file");
    free(b.p);
}
END_TEST

START_TEST(data_section_missing)
{
    /* tensor infos end the file: the padded data section starts past it */
    tb b = {0};
    uint64_t ne[1] = {4};
    tb_hdr(&b, 3, 1, 0);
    tb_tinfo(&b, "t", 1, ne, QT_F32, 0);
    expect_refused(&b, "tensor 0 't': offset 0 + size 16 past end of file");
    free(b.p);
}
END_TEST

START_TEST(key_with_nul_byte)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_u64(&b, 3);
    tb_put(&b, "a\0b", 3);
    tb_u32(&b, GGUF_VT_UINT8);
    tb_u8(&b, 1);
    expect_refused(&b, "key 0 'a?b': key contains a NUL byte");
    free(b.p);
}
END_TEST

START_TEST(tensor_name_with_nul_byte)
{
    tb b = {0};
    tb_hdr(&b, 3, 1, 0);
    tb_u64(&b, 2);
    tb_put(&b, "w\0", 2);
    tb_u32(&b, 1);
    tb_u64(&b, 4);
    tb_u32(&b, QT_F32);
    tb_u64(&b, 0);
    tb_pad(&b, 32);
    tb_zeros(&b, 32);
    expect_refused(&b, "tensor 0 'w?': name contains a NUL byte");
    free(b.p);
}
END_TEST

/* A type the engine knows the size of but cannot compute with (IQ2_XXS,
 * id 16, 66 bytes per 256 values) opens; using it is the model's call. */
START_TEST(known_unsupported_type_accepted)
{
    tb b = {0};
    uint64_t ne[2] = {256, 2};
    one_tensor(&b, 2, ne, 16, 0, 132 + 28);
    gguf_file *f = open_ok(b.p, b.len);
    const gguf_tensor *t = gguf_tensor_at(f, 0);
    ck_assert_uint_eq(t->nbytes, 132);
    ck_assert(!qt_traits_of(t->type)->can_dequantize);
    gguf_close(f);
    free(b.p);
}
END_TEST

/* n_dims 0 is a scalar: one element. */
START_TEST(zero_dims_is_scalar)
{
    tb b = {0};
    one_tensor(&b, 0, NULL, QT_F32, 0, 32);
    gguf_file *f = open_ok(b.p, b.len);
    const gguf_tensor *t = gguf_tensor_at(f, 0);
    ck_assert_uint_eq(t->n_dims, 0);
    ck_assert(t->ne[0] == 1 && t->ne[3] == 1 && t->nbytes == 4);
    gguf_close(f);
    free(b.p);
}
END_TEST

START_TEST(open_missing_file)
{
    gguf_file *f = (gguf_file *)1;
    char err[512];
    ck_assert_int_eq(
        gguf_open("/nonexistent/dir/x.gguf", &f, err, sizeof err), -1);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(err, "cannot open '/nonexistent/dir/x.gguf'"));
}
END_TEST

START_TEST(open_directory)
{
    gguf_file *f = (gguf_file *)1;
    char err[512];
    ck_assert_int_eq(gguf_open("/tmp", &f, err, sizeof err), -1);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
}
END_TEST

START_TEST(open_empty_file)
{
    char path[] = "/tmp/test_gguf_empty_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    gguf_file *f = (gguf_file *)1;
    char err[512];
    ck_assert_int_eq(gguf_open(path, &f, err, sizeof err), -1);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(err, "is empty"));
    unlink(path);
}
END_TEST

START_TEST(open_file_error_names_path)
{
    /* a bad file on disk: the message has the field and the path */
    char path[] = "/tmp/test_gguf_bad_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    tb b = {0};
    tb_hdr(&b, 1, 0, 0);
    ck_assert_int_eq(write(fd, b.p, b.len), (ssize_t)b.len);
    close(fd);
    gguf_file *f = (gguf_file *)1;
    char err[512];
    ck_assert_int_eq(gguf_open(path, &f, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "version 1"));
    ck_assert_ptr_nonnull(strstr(err, path));
    unlink(path);
    free(b.p);
}
END_TEST

START_TEST(names_in_messages_are_sanitized)
{
    tb b = {0};
    tb_hdr(&b, 3, 0, 1);
    tb_str(&b, "bad\x01\nkey");
    tb_u32(&b, 99);
    expect_refused(&b, "'bad??key': unknown value type 99");
    free(b.p);
}
END_TEST

static Suite *gguf_suite(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("writer");
    tcase_add_test(tc, writer_roundtrip_mem);
    tcase_add_test(tc, writer_roundtrip_file);
    tcase_add_test(tc, writer_replaces_file_by_rename);
    tcase_add_test(tc, writer_write_error_keeps_old_file);
    tcase_add_test(tc, writer_copy_kv_identical);
    tcase_add_test(tc, writer_replaces_existing_key);
    tcase_add_test(tc, writer_custom_alignment);
    tcase_add_test(tc, writer_rejects_bad_tensors);
    tcase_add_test(tc, typed_getters_convert_and_refuse);
    tcase_add_test(tc, vtype_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("real");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, real_stories260k);
    tcase_add_test(tc, real_all_files_open);
    suite_add_tcase(s, tc);

    tc = tcase_create("refused");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, truncated_at_every_byte);
    tcase_add_test(tc, bad_magic);
    tcase_add_test(tc, version_1_refused);
    tcase_add_test(tc, version_4_refused);
    tcase_add_test(tc, version_2_accepted);
    tcase_add_test(tc, huge_n_kv);
    tcase_add_test(tc, huge_n_tensors);
    tcase_add_test(tc, key_length_past_end);
    tcase_add_test(tc, empty_key);
    tcase_add_test(tc, string_value_past_end);
    tcase_add_test(tc, unknown_value_type);
    tcase_add_test(tc, bool_value_not_0_or_1);
    tcase_add_test(tc, truncated_scalar_value);
    tcase_add_test(tc, array_length_overflow);
    tcase_add_test(tc, string_array_length_past_end);
    tcase_add_test(tc, string_array_element_past_end);
    tcase_add_test(tc, nested_array_refused);
    tcase_add_test(tc, unknown_array_element_type);
    tcase_add_test(tc, duplicate_key);
    tcase_add_test(tc, alignment_not_power_of_two);
    tcase_add_test(tc, alignment_zero);
    tcase_add_test(tc, alignment_wrong_type);
    tcase_add_test(tc, tensor_name_past_end);
    tcase_add_test(tc, tensor_empty_name);
    tcase_add_test(tc, duplicate_tensor_name);
    tcase_add_test(tc, n_dims_5);
    tcase_add_test(tc, dimension_zero);
    tcase_add_test(tc, dimension_above_int64);
    tcase_add_test(tc, dimensions_product_overflow);
    tcase_add_test(tc, byte_size_overflow);
    tcase_add_test(tc, bad_type_id);
    tcase_add_test(tc, removed_type_id);
    tcase_add_test(tc, block_does_not_divide_row);
    tcase_add_test(tc, misaligned_offset);
    tcase_add_test(tc, offset_plus_size_past_end);
    tcase_add_test(tc, offset_past_end);
    tcase_add_test(tc, offset_overflow);
    tcase_add_test(tc, data_section_missing);
    tcase_add_test(tc, key_with_nul_byte);
    tcase_add_test(tc, tensor_name_with_nul_byte);
    tcase_add_test(tc, known_unsupported_type_accepted);
    tcase_add_test(tc, zero_dims_is_scalar);
    tcase_add_test(tc, open_missing_file);
    tcase_add_test(tc, open_directory);
    tcase_add_test(tc, open_empty_file);
    tcase_add_test(tc, open_file_error_names_path);
    tcase_add_test(tc, names_in_messages_are_sanitized);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(gguf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
