/* gguf.c - GGUF (v2, v3) reader and writer.
 *
 * Layout of a GGUF file (all integers little-endian):
 *
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x      { string key | u32 value type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type |
 *                 u64 offset (relative to the data section) }
 *   padding to `general.alignment` (default 32)
 *   data section: the tensors, each at an aligned offset
 *
 *   string = u64 length + bytes (no NUL); array = u32 elem type + u64 count
 *   + elements.
 *
 * The reader trusts nothing: every read goes through a cursor that checks
 * the remaining length, and every count is compared with what the rest of
 * the file could possibly hold before anything is allocated for it, so a
 * hostile header cannot make us allocate more than a small multiple of
 * the file size. Limits: arrays of arrays are refused (no model we load
 * uses them); the host must be little-endian (numeric arrays are handed out
 * as pointers into the file).
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

/* ------------------------------------------------------------ helpers */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A name from the file, made printable and short enough for a message. */
static void show_name(char *out, size_t outlen, gguf_str s)
{
    size_t n = 0;
    size_t max = outlen - 4; /* room for "..." and NUL */
    for (uint64_t i = 0; i < s.len && n < max; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s.len > n) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static uint64_t hash_bytes(const char *p, uint64_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool str_eq2(gguf_str a, gguf_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool gguf_str_eq(gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

static const char *const vtype_names[GGUF_VT_COUNT] = {
    "uint8", "int8",   "uint16", "int16", "uint32", "int32",  "float32",
    "bool",  "string", "array",  "uint64", "int64", "float64",
};

const char *gguf_vtype_name(uint32_t t)
{
    return t < GGUF_VT_COUNT ? vtype_names[t] : "?";
}

/* Size in bytes of one scalar of type t; 0 for string, array, unknown. */
static size_t vtype_size(uint32_t t)
{
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    default: return 0;
    }
}

static uint64_t le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

/* ------------------------------------------------------------ reader */

/* Hash index over names: slots hold index+1, 0 is empty. */
typedef struct name_index {
    size_t *slots;
    size_t cap; /* power of two */
} name_index;

struct gguf_file {
    const uint8_t *base;
    size_t size;
    void *map; /* our mmap, or NULL for a caller buffer */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    size_t n_kv;
    gguf_kv *kv;
    size_t n_tensors;
    gguf_tensor *tensors;
    name_index kv_idx;
    name_index t_idx;
};

typedef struct cursor {
    const uint8_t *p;
    size_t size;
    size_t pos;
} cursor;

static size_t cur_left(const cursor *c) { return c->size - c->pos; }

static bool rd_u32(cursor *c, uint32_t *v)
{
    if (cur_left(c) < 4)
        return false;
    *v = le32(c->p + c->pos);
    c->pos += 4;
    return true;
}

static bool rd_u64(cursor *c, uint64_t *v)
{
    if (cur_left(c) < 8)
        return false;
    *v = le64(c->p + c->pos);
    c->pos += 8;
    return true;
}

/* Reads a string; on failure `why` says whether the length or the bytes
 * were missing. */
static bool rd_str(cursor *c, gguf_str *s, char *why, size_t whylen)
{
    uint64_t len;
    if (!rd_u64(c, &len)) {
        snprintf(why, whylen, "truncated string length");
        return false;
    }
    if (len > cur_left(c)) {
        snprintf(why, whylen, "string length %" PRIu64 " past end of file"
                 " (%zu bytes left)", len, cur_left(c));
        return false;
    }
    s->ptr = (const char *)(c->p + c->pos);
    s->len = len;
    c->pos += (size_t)len;
    return true;
}

static int index_build(name_index *ix, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2) {
        if (cap > SIZE_MAX / 4 / sizeof(size_t))
            return -1;
        cap *= 2;
    }
    ix->slots = calloc(cap, sizeof(size_t));
    if (!ix->slots)
        return -1;
    ix->cap = cap;
    return 0;
}

/* Inserts item i named s; returns the index of an earlier item with the
 * same name, or (size_t)-1 when the name is new. */
static size_t index_insert(name_index *ix, gguf_str s, size_t i,
                           const gguf_str *(*name_of)(const void *, size_t),
                           const void *items)
{
    size_t m = ix->cap - 1;
    size_t h = (size_t)hash_bytes(s.ptr, s.len) & m;
    while (ix->slots[h]) {
        size_t j = ix->slots[h] - 1;
        if (str_eq2(*name_of(items, j), s))
            return j;
        h = (h + 1) & m;
    }
    ix->slots[h] = i + 1;
    return (size_t)-1;
}

static size_t index_find(const name_index *ix, const char *key,
                         const gguf_str *(*name_of)(const void *, size_t),
                         const void *items)
{
    if (!ix->slots)
        return (size_t)-1;
    size_t n = strlen(key);
    size_t m = ix->cap - 1;
    size_t h = (size_t)hash_bytes(key, n) & m;
    while (ix->slots[h]) {
        size_t j = ix->slots[h] - 1;
        if (gguf_str_eq(*name_of(items, j), key))
            return j;
        h = (h + 1) & m;
    }
    return (size_t)-1;
}

static const gguf_str *kv_name(const void *items, size_t i)
{
    return &((const gguf_kv *)items)[i].key;
}

static const gguf_str *tensor_name(const void *items, size_t i)
{
    return &((const gguf_tensor *)items)[i].name;
}

/* Smallest possible encodings, used to bound counts before allocating:
 * a kv is a key length (8), a type (4) and at least one value byte; a
 * tensor info is a name length (8), n_dims (4), type (4), offset (8). */
#define MIN_KV_BYTES 13u
#define MIN_TENSOR_BYTES 24u

static int read_value(cursor *c, gguf_kv *kv, const char *ctx, char *err,
                      size_t errlen)
{
    uint32_t t = kv->type;
    if (t == GGUF_VT_STRING) {
        char why[96];
        if (!rd_str(c, &kv->v.s, why, sizeof why)) {
            seterr(err, errlen, "gguf: %s: value: %s", ctx, why);
            return -1;
        }
        return 0;
    }
    if (t == GGUF_VT_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (!rd_u32(c, &et)) {
            seterr(err, errlen, "gguf: %s: truncated array element type", ctx);
            return -1;
        }
        if (et == GGUF_VT_ARRAY) {
            seterr(err, errlen,
                   "gguf: %s: arrays of arrays are not supported", ctx);
            return -1;
        }
        if (et >= GGUF_VT_COUNT) {
            seterr(err, errlen, "gguf: %s: unknown array element type %" PRIu32,
                   ctx, et);
            return -1;
        }
        if (!rd_u64(c, &n)) {
            seterr(err, errlen, "gguf: %s: truncated array length", ctx);
            return -1;
        }
        kv->arr_type = et;
        kv->arr_len = n;
        kv->arr_data = c->p + c->pos;
        if (et == GGUF_VT_STRING) {
            /* every string needs at least its 8-byte length */
            if (n > cur_left(c) / 8) {
                seterr(err, errlen,
                       "gguf: %s: array length %" PRIu64
                       " past end of file (%zu bytes left)",
                       ctx, n, cur_left(c));
                return -1;
            }
            gguf_str *strs = NULL;
            if (n > 0) {
                strs = calloc((size_t)n, sizeof(*strs));
                if (!strs) {
                    seterr(err, errlen, "gguf: %s: out of memory", ctx);
                    return -1;
                }
            }
            kv->arr_strs = strs;
            for (uint64_t i = 0; i < n; i++) {
                char why[96];
                if (!rd_str(c, &strs[i], why, sizeof why)) {
                    seterr(err, errlen, "gguf: %s: array element %" PRIu64
                           ": %s", ctx, i, why);
                    return -1;
                }
            }
            kv->arr_data = NULL;
            return 0;
        }
        size_t es = vtype_size(et);
        if (n > cur_left(c) / es) {
            seterr(err, errlen,
                   "gguf: %s: array length %" PRIu64 " of %s past end of file"
                   " (%zu bytes left)", ctx, n, gguf_vtype_name(et),
                   cur_left(c));
            return -1;
        }
        if (et == GGUF_VT_BOOL) {
            for (uint64_t i = 0; i < n; i++) {
                if (c->p[c->pos + i] > 1) {
                    seterr(err, errlen,
                           "gguf: %s: array element %" PRIu64
                           ": bool value %u is not 0 or 1",
                           ctx, i, c->p[c->pos + i]);
                    return -1;
                }
            }
        }
        c->pos += (size_t)(n * es);
        return 0;
    }
    size_t es = vtype_size(t);
    if (es == 0) {
        seterr(err, errlen, "gguf: %s: unknown value type %" PRIu32, ctx, t);
        return -1;
    }
    if (cur_left(c) < es) {
        seterr(err, errlen, "gguf: %s: truncated %s value", ctx,
               gguf_vtype_name(t));
        return -1;
    }
    const uint8_t *b = c->p + c->pos;
    c->pos += es;
    switch (t) {
    case GGUF_VT_UINT8: kv->v.u = b[0]; break;
    case GGUF_VT_INT8: kv->v.i = (int8_t)b[0]; break;
    case GGUF_VT_UINT16: kv->v.u = (uint16_t)(b[0] | b[1] << 8); break;
    case GGUF_VT_INT16: kv->v.i = (int16_t)(uint16_t)(b[0] | b[1] << 8); break;
    case GGUF_VT_UINT32: kv->v.u = le32(b); break;
    case GGUF_VT_INT32: kv->v.i = (int32_t)le32(b); break;
    case GGUF_VT_UINT64: kv->v.u = le64(b); break;
    case GGUF_VT_INT64: kv->v.i = (int64_t)le64(b); break;
    case GGUF_VT_FLOAT32: {
        uint32_t u = le32(b);
        float f;
        memcpy(&f, &u, 4);
        kv->v.f = f;
        break;
    }
    case GGUF_VT_FLOAT64: {
        uint64_t u = le64(b);
        memcpy(&kv->v.f, &u, 8);
        break;
    }
    case GGUF_VT_BOOL:
        if (b[0] > 1) {
            seterr(err, errlen, "gguf: %s: bool value %u is not 0 or 1", ctx,
                   b[0]);
            return -1;
        }
        kv->v.b = b[0] != 0;
        break;
    default: break;
    }
    return 0;
}

static int parse_kvs(gguf_file *f, cursor *c, char *err, size_t errlen)
{
    char ctx[128], nm[80];
    for (size_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        char why[96];
        if (!rd_str(c, &kv->key, why, sizeof why)) {
            seterr(err, errlen, "gguf: key %zu: key %s", i, why);
            return -1;
        }
        show_name(nm, sizeof nm, kv->key);
        snprintf(ctx, sizeof ctx, "key %zu '%s'", i, nm);
        if (kv->key.len == 0) {
            seterr(err, errlen, "gguf: %s: empty key", ctx);
            return -1;
        }
        /* lookups take C strings: such a key could never be found */
        if (memchr(kv->key.ptr, 0, (size_t)kv->key.len)) {
            seterr(err, errlen, "gguf: %s: key contains a NUL byte", ctx);
            return -1;
        }
        size_t dup = index_insert(&f->kv_idx, kv->key, i, kv_name, f->kv);
        if (dup != (size_t)-1) {
            seterr(err, errlen, "gguf: %s: duplicate key (also key %zu)", ctx,
                   dup);
            return -1;
        }
        if (!rd_u32(c, &kv->type)) {
            seterr(err, errlen, "gguf: %s: truncated value type", ctx);
            return -1;
        }
        if (kv->type >= GGUF_VT_COUNT) {
            seterr(err, errlen, "gguf: %s: unknown value type %" PRIu32, ctx,
                   kv->type);
            return -1;
        }
        if (read_value(c, kv, ctx, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* general.alignment: a uint32 power of two, as the format defines it. */
static int read_alignment(gguf_file *f, char *err, size_t errlen)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    size_t i = index_find(&f->kv_idx, "general.alignment", kv_name, f->kv);
    if (i == (size_t)-1)
        return 0;
    const gguf_kv *kv = &f->kv[i];
    if (kv->type != GGUF_VT_UINT32) {
        seterr(err, errlen,
               "gguf: key %zu 'general.alignment': type %s, expected uint32",
               i, gguf_vtype_name(kv->type));
        return -1;
    }
    uint64_t a = kv->v.u;
    if (a == 0 || (a & (a - 1)) != 0) {
        seterr(err, errlen,
               "gguf: key %zu 'general.alignment': %" PRIu64
               " is not a nonzero power of two", i, a);
        return -1;
    }
    f->alignment = (uint32_t)a;
    return 0;
}

static int parse_tensor_infos(gguf_file *f, cursor *c, char *err,
                              size_t errlen)
{
    char ctx[128], nm[80];
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        char why[96];
        if (!rd_str(c, &t->name, why, sizeof why)) {
            seterr(err, errlen, "gguf: tensor %zu: name %s", i, why);
            return -1;
        }
        show_name(nm, sizeof nm, t->name);
        snprintf(ctx, sizeof ctx, "tensor %zu '%s'", i, nm);
        if (t->name.len == 0) {
            seterr(err, errlen, "gguf: %s: empty name", ctx);
            return -1;
        }
        if (memchr(t->name.ptr, 0, (size_t)t->name.len)) {
            seterr(err, errlen, "gguf: %s: name contains a NUL byte", ctx);
            return -1;
        }
        size_t dup = index_insert(&f->t_idx, t->name, i, tensor_name,
                                  f->tensors);
        if (dup != (size_t)-1) {
            seterr(err, errlen, "gguf: %s: duplicate tensor name (also tensor"
                   " %zu)", ctx, dup);
            return -1;
        }
        if (!rd_u32(c, &t->n_dims)) {
            seterr(err, errlen, "gguf: %s: truncated n_dims", ctx);
            return -1;
        }
        if (t->n_dims > GGUF_MAX_DIMS) {
            seterr(err, errlen, "gguf: %s: n_dims %" PRIu32 " exceeds %d", ctx,
                   t->n_dims, GGUF_MAX_DIMS);
            return -1;
        }
        uint64_t nel = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (!rd_u64(c, &t->ne[d])) {
                seterr(err, errlen, "gguf: %s: truncated dimension %" PRIu32,
                       ctx, d);
                return -1;
            }
            if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX) {
                seterr(err, errlen, "gguf: %s: dimension %" PRIu32 " is %"
                       PRIu64 " (must be 1 .. 2^63-1)", ctx, d, t->ne[d]);
                return -1;
            }
            if (nel > (uint64_t)INT64_MAX / t->ne[d]) {
                seterr(err, errlen, "gguf: %s: dimension %" PRIu32
                       ": element count overflows int64", ctx, d);
                return -1;
            }
            nel *= t->ne[d];
        }
        if (!rd_u32(c, &t->type)) {
            seterr(err, errlen, "gguf: %s: truncated type", ctx);
            return -1;
        }
        const qt_traits *tr = qt_traits_of(t->type);
        if (!tr) {
            seterr(err, errlen, "gguf: %s: unknown type id %" PRIu32, ctx,
                   t->type);
            return -1;
        }
        if (t->ne[0] % tr->block_size != 0) {
            seterr(err, errlen, "gguf: %s: type %s: ne[0] %" PRIu64
                   " is not a multiple of the block size %" PRIu32, ctx,
                   tr->name, t->ne[0], tr->block_size);
            return -1;
        }
        if (!rd_u64(c, &t->offset)) {
            seterr(err, errlen, "gguf: %s: truncated offset", ctx);
            return -1;
        }
        uint64_t row;
        if (qt_row_size(t->type, t->ne[0], &row) < 0) {
            seterr(err, errlen, "gguf: %s: row size overflows", ctx);
            return -1;
        }
        uint64_t nrows = nel / t->ne[0];
        if (row != 0 && nrows > UINT64_MAX / row) {
            seterr(err, errlen, "gguf: %s: byte size overflows", ctx);
            return -1;
        }
        t->nbytes = row * nrows;
    }
    return 0;
}

static int check_tensor_data(gguf_file *f, char *err, size_t errlen)
{
    char nm[80];
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        show_name(nm, sizeof nm, t->name);
        if (t->offset % f->alignment != 0) {
            seterr(err, errlen, "gguf: tensor %zu '%s': offset %" PRIu64
                   " not aligned to %" PRIu32, i, nm, t->offset, f->alignment);
            return -1;
        }
        if (f->data_offset > f->size ||
            t->offset > f->size - f->data_offset ||
            t->nbytes > f->size - f->data_offset - t->offset) {
            seterr(err, errlen, "gguf: tensor %zu '%s': offset %" PRIu64
                   " + size %" PRIu64 " past end of file (data section at %"
                   PRIu64 ", file %zu bytes)", i, nm, t->offset, t->nbytes,
                   f->data_offset, f->size);
            return -1;
        }
        t->data = f->base + f->data_offset + t->offset;
    }
    return 0;
}

static int parse(gguf_file *f, char *err, size_t errlen)
{
    cursor c = {f->base, f->size, 0};
    uint32_t magic;
    if (!rd_u32(&c, &magic)) {
        seterr(err, errlen, "gguf: truncated magic (file is %zu bytes)",
               f->size);
        return -1;
    }
    if (magic != GGUF_MAGIC) {
        seterr(err, errlen, "gguf: bad magic 0x%08" PRIx32 ", not a GGUF file",
               magic);
        return -1;
    }
    if (!rd_u32(&c, &f->version)) {
        seterr(err, errlen, "gguf: truncated version");
        return -1;
    }
    if (f->version != 2 && f->version != 3) {
        seterr(err, errlen, "gguf: version %" PRIu32 " is not supported (only"
               " 2 and 3)%s", f->version,
               f->version == 1 ? "; convert the file with a newer tool" : "");
        return -1;
    }
    uint64_t nt, nkv;
    if (!rd_u64(&c, &nt)) {
        seterr(err, errlen, "gguf: truncated n_tensors");
        return -1;
    }
    if (!rd_u64(&c, &nkv)) {
        seterr(err, errlen, "gguf: truncated n_kv");
        return -1;
    }
    /* Both bounds are checked before the other is used, so that their sum
     * of minimal sizes is also within the file. */
    if (nkv > cur_left(&c) / MIN_KV_BYTES) {
        seterr(err, errlen, "gguf: n_kv %" PRIu64 " too large for %zu bytes"
               " of header", nkv, cur_left(&c));
        return -1;
    }
    if (nt > cur_left(&c) / MIN_TENSOR_BYTES) {
        seterr(err, errlen, "gguf: n_tensors %" PRIu64 " too large for %zu"
               " bytes of header", nt, cur_left(&c));
        return -1;
    }
    f->n_kv = (size_t)nkv;
    f->n_tensors = (size_t)nt;
    if ((f->n_kv && !(f->kv = calloc(f->n_kv, sizeof(gguf_kv)))) ||
        (f->n_tensors &&
         !(f->tensors = calloc(f->n_tensors, sizeof(gguf_tensor)))) ||
        index_build(&f->kv_idx, f->n_kv) < 0 ||
        index_build(&f->t_idx, f->n_tensors) < 0) {
        seterr(err, errlen, "gguf: out of memory for %zu keys, %zu tensors",
               f->n_kv, f->n_tensors);
        return -1;
    }
    if (parse_kvs(f, &c, err, errlen) < 0)
        return -1;
    if (read_alignment(f, err, errlen) < 0)
        return -1;
    if (parse_tensor_infos(f, &c, err, errlen) < 0)
        return -1;
    uint64_t a = f->alignment;
    uint64_t pos = c.pos;
    f->data_offset = (pos + a - 1) / a * a; /* pos < 2^63: no overflow */
    return check_tensor_data(f, err, errlen);
}

int gguf_open_mem(const void *buf, size_t len, gguf_file **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (!buf && len) {
        seterr(err, errlen, "gguf: NULL buffer");
        return -1;
    }
    gguf_file *f = calloc(1, sizeof(*f));
    if (!f) {
        seterr(err, errlen, "gguf: out of memory");
        return -1;
    }
    f->base = buf;
    f->size = len;
    if (parse(f, err, errlen) < 0) {
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int gguf_open(const char *path, gguf_file **out, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, errlen, "gguf: cannot open '%s': %s", path,
               strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        seterr(err, errlen, "gguf: cannot stat '%s': %s", path,
               strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        seterr(err, errlen, "gguf: '%s' is not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        seterr(err, errlen, "gguf: '%s' is empty", path);
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        seterr(err, errlen, "gguf: '%s' is too large to map", path);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file */
    if (map == MAP_FAILED) {
        seterr(err, errlen, "gguf: cannot map '%s': %s", path, strerror(e));
        return -1;
    }
    gguf_file *f = calloc(1, sizeof(*f));
    if (!f) {
        munmap(map, size);
        seterr(err, errlen, "gguf: out of memory");
        return -1;
    }
    f->base = map;
    f->size = size;
    f->map = map;
    char msg[512];
    if (parse(f, msg, sizeof msg) < 0) {
        seterr(err, errlen, "%s (in '%s')", msg, path);
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    if (f->kv) {
        for (size_t i = 0; i < f->n_kv; i++)
            free((void *)f->kv[i].arr_strs);
        free(f->kv);
    }
    free(f->tensors);
    free(f->kv_idx.slots);
    free(f->t_idx.slots);
    if (f->map)
        munmap(f->map, f->size);
    free(f);
}

bool gguf_is_mapped(const gguf_file *f)
{
    return f->map != NULL;
}

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }
uint64_t gguf_file_size(const gguf_file *f) { return f->size; }
uint64_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }
size_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
size_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_kv *gguf_kv_at(const gguf_file *f, size_t i)
{
    return i < f->n_kv ? &f->kv[i] : NULL;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key)
{
    size_t i = index_find(&f->kv_idx, key, kv_name, f->kv);
    return i == (size_t)-1 ? NULL : &f->kv[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    size_t i = index_find(&f->t_idx, name, tensor_name, f->tensors);
    return i == (size_t)-1 ? NULL : &f->tensors[i];
}

static bool is_unsigned(uint32_t t)
{
    return t == GGUF_VT_UINT8 || t == GGUF_VT_UINT16 || t == GGUF_VT_UINT32 ||
           t == GGUF_VT_UINT64;
}

static bool is_signed(uint32_t t)
{
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 ||
           t == GGUF_VT_INT64;
}

/* Integer value of kv as a (value, negative) pair; false if not an int. */
static bool kv_int(const gguf_kv *kv, uint64_t *mag, bool *neg)
{
    if (is_unsigned(kv->type)) {
        *mag = kv->v.u;
        *neg = false;
        return true;
    }
    if (is_signed(kv->type)) {
        *neg = kv->v.i < 0;
        *mag = *neg ? (uint64_t)0 - (uint64_t)kv->v.i : (uint64_t)kv->v.i;
        return true;
    }
    return false;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return -1;
    uint64_t m;
    bool neg;
    if (!kv_int(kv, &m, &neg) || neg)
        return -2;
    *out = m;
    return 0;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out)
{
    uint64_t v;
    int r = gguf_get_u64(f, key, &v);
    if (r < 0)
        return r;
    if (v > UINT32_MAX)
        return -2;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return -1;
    uint64_t m;
    bool neg;
    if (!kv_int(kv, &m, &neg))
        return -2;
    if (neg) {
        if (m > (uint64_t)INT32_MAX + 1)
            return -2;
        *out = (int32_t)(-(int64_t)m);
    } else {
        if (m > INT32_MAX)
            return -2;
        *out = (int32_t)m;
    }
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return -1;
    if (kv->type != GGUF_VT_FLOAT32 && kv->type != GGUF_VT_FLOAT64)
        return -2;
    *out = (float)kv->v.f;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return -1;
    if (kv->type != GGUF_VT_BOOL)
        return -2;
    *out = kv->v.b;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return -1;
    if (kv->type != GGUF_VT_STRING)
        return -2;
    *out = kv->v.s;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type,
                 const gguf_kv **out)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return -1;
    if (kv->type != GGUF_VT_ARRAY || kv->arr_type != elem_type)
        return -2;
    *out = kv;
    return 0;
}

/* ------------------------------------------------------------ writer */

typedef struct bbuf {
    uint8_t *p;
    size_t len, cap;
} bbuf;

static int bb_put(bbuf *b, const void *src, size_t n)
{
    if (n > SIZE_MAX - b->len)
        return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static int bb_u32(bbuf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                    (uint8_t)(v >> 24)};
    return bb_put(b, x, 4);
}

static int bb_u64(bbuf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    return bb_put(b, x, 8);
}

static int bb_str(bbuf *b, const char *s, uint64_t n)
{
    if (bb_u64(b, n) < 0)
        return -1;
    return bb_put(b, s, (size_t)n);
}

/* A kv: its key and its encoded type + value, ready to be written. */
typedef struct wkv {
    char *key;
    bbuf val;
    uint32_t type;
    uint32_t u32; /* the value when type == UINT32 (for general.alignment) */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
    bool owned;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

gguf_writer *gguf_writer_new(void)
{
    return calloc(1, sizeof(gguf_writer));
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    free(w->kv);
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        if (w->t[i].owned)
            free((void *)w->t[i].data);
    }
    free(w->t);
    free(w);
}

static char *dup_str(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Stores an encoded value under key, replacing an existing one. Takes
 * ownership of val's buffer in every case. */
static int put_kv(gguf_writer *w, const char *key, uint32_t type, bbuf *val,
                  uint32_t u32)
{
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val.p);
            w->kv[i].val = *val;
            w->kv[i].type = type;
            w->kv[i].u32 = u32;
            return 0;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        wkv *p = realloc(w->kv, cap * sizeof(*p));
        if (!p)
            goto fail;
        w->kv = p;
        w->cap_kv = cap;
    }
    char *k = dup_str(key, strlen(key));
    if (!k)
        goto fail;
    w->kv[w->n_kv++] = (wkv){k, *val, type, u32};
    return 0;
fail:
    free(val->p);
    return -1;
}

static int set_scalar(gguf_writer *w, const char *key, uint32_t type,
                      const void *val)
{
    size_t es = vtype_size(type);
    if (!w || !key || !*key || es == 0 || !val)
        return -1;
    uint8_t raw[8] = {0};
    uint64_t u = 0;
    switch (type) {
    case GGUF_VT_UINT8: u = *(const uint8_t *)val; break;
    case GGUF_VT_INT8: u = (uint8_t) * (const int8_t *)val; break;
    case GGUF_VT_UINT16: u = *(const uint16_t *)val; break;
    case GGUF_VT_INT16: u = (uint16_t) * (const int16_t *)val; break;
    case GGUF_VT_UINT32: u = *(const uint32_t *)val; break;
    case GGUF_VT_INT32: u = (uint32_t) * (const int32_t *)val; break;
    case GGUF_VT_UINT64: u = *(const uint64_t *)val; break;
    case GGUF_VT_INT64: u = (uint64_t) * (const int64_t *)val; break;
    case GGUF_VT_BOOL: u = *(const bool *)val ? 1 : 0; break;
    case GGUF_VT_FLOAT32: {
        uint32_t x;
        memcpy(&x, val, 4);
        u = x;
        break;
    }
    case GGUF_VT_FLOAT64: memcpy(&u, val, 8); break;
    default: return -1;
    }
    for (size_t i = 0; i < es; i++)
        raw[i] = (uint8_t)(u >> (8 * i));
    bbuf b = {0};
    if (bb_u32(&b, type) < 0 || bb_put(&b, raw, es) < 0) {
        free(b.p);
        return -1;
    }
    return put_kv(w, key, type, &b, (uint32_t)u);
}

int gguf_writer_set_val(gguf_writer *w, const char *key, uint32_t type,
                        const void *val)
{
    return set_scalar(w, key, type, val);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, GGUF_VT_UINT32, &v);
}

int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, GGUF_VT_INT32, &v);
}

int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v)
{
    return set_scalar(w, key, GGUF_VT_UINT64, &v);
}

int gguf_writer_set_f32(gguf_writer *w, const char *key, float v)
{
    return set_scalar(w, key, GGUF_VT_FLOAT32, &v);
}

int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v)
{
    return set_scalar(w, key, GGUF_VT_BOOL, &v);
}

static int set_str_n(gguf_writer *w, const char *key, const char *v,
                     uint64_t n)
{
    if (!w || !key || !*key || (!v && n))
        return -1;
    bbuf b = {0};
    if (bb_u32(&b, GGUF_VT_STRING) < 0 || bb_str(&b, v, n) < 0) {
        free(b.p);
        return -1;
    }
    return put_kv(w, key, GGUF_VT_STRING, &b, 0);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return -1;
    return set_str_n(w, key, v, strlen(v));
}

/* Raw little-endian bytes of n elements; the host is little-endian. */
static int set_arr_raw(gguf_writer *w, const char *key, uint32_t et,
                       const void *data, uint64_t n)
{
    size_t es = vtype_size(et);
    if (!w || !key || !*key || es == 0 || (!data && n))
        return -1;
    if (n > SIZE_MAX / es)
        return -1;
    bbuf b = {0};
    if (bb_u32(&b, GGUF_VT_ARRAY) < 0 || bb_u32(&b, et) < 0 ||
        bb_u64(&b, n) < 0) {
        free(b.p);
        return -1;
    }
    if (et == GGUF_VT_BOOL) {
        const bool *bv = data;
        for (uint64_t i = 0; i < n; i++) {
            uint8_t x = bv[i] ? 1 : 0;
            if (bb_put(&b, &x, 1) < 0) {
                free(b.p);
                return -1;
            }
        }
    } else if (bb_put(&b, data, (size_t)(n * es)) < 0) {
        free(b.p);
        return -1;
    }
    return put_kv(w, key, GGUF_VT_ARRAY, &b, 0);
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type,
                        const void *data, uint64_t n)
{
    return set_arr_raw(w, key, elem_type, data, n);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key,
                            const char *const *strs, uint64_t n)
{
    if (!w || !key || !*key || (!strs && n))
        return -1;
    bbuf b = {0};
    if (bb_u32(&b, GGUF_VT_ARRAY) < 0 || bb_u32(&b, GGUF_VT_STRING) < 0 ||
        bb_u64(&b, n) < 0)
        goto fail;
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i] || bb_str(&b, strs[i], strlen(strs[i])) < 0)
            goto fail;
    }
    return put_kv(w, key, GGUF_VT_ARRAY, &b, 0);
fail:
    free(b.p);
    return -1;
}

/* Copies one kv of a parsed file. Strings may hold NUL bytes, so the
 * lengths are kept. */
static int copy_one(gguf_writer *w, const gguf_kv *kv)
{
    char *key = dup_str(kv->key.ptr, (size_t)kv->key.len);
    if (!key)
        return -1;
    int r = -1;
    bbuf b = {0};
    if (kv->type == GGUF_VT_STRING) {
        r = set_str_n(w, key, kv->v.s.ptr, kv->v.s.len);
    } else if (kv->type == GGUF_VT_ARRAY && kv->arr_type == GGUF_VT_STRING) {
        if (bb_u32(&b, GGUF_VT_ARRAY) < 0 || bb_u32(&b, GGUF_VT_STRING) < 0 ||
            bb_u64(&b, kv->arr_len) < 0)
            goto out;
        for (uint64_t i = 0; i < kv->arr_len; i++)
            if (bb_str(&b, kv->arr_strs[i].ptr, kv->arr_strs[i].len) < 0)
                goto out;
        r = put_kv(w, key, GGUF_VT_ARRAY, &b, 0);
        b.p = NULL;
    } else if (kv->type == GGUF_VT_ARRAY) {
        /* Bools were validated as 0/1 bytes: copy them raw too. */
        size_t es = vtype_size(kv->arr_type);
        if (bb_u32(&b, GGUF_VT_ARRAY) < 0 || bb_u32(&b, kv->arr_type) < 0 ||
            bb_u64(&b, kv->arr_len) < 0 ||
            bb_put(&b, kv->arr_data, (size_t)(kv->arr_len * es)) < 0)
            goto out;
        r = put_kv(w, key, GGUF_VT_ARRAY, &b, 0);
        b.p = NULL;
    } else {
        /* scalars: re-encode from the decoded value */
        union {
            uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32;
            int32_t i32; uint64_t u64; int64_t i64; float f32; double f64;
            bool b;
        } v;
        switch (kv->type) {
        case GGUF_VT_UINT8: v.u8 = (uint8_t)kv->v.u; break;
        case GGUF_VT_INT8: v.i8 = (int8_t)kv->v.i; break;
        case GGUF_VT_UINT16: v.u16 = (uint16_t)kv->v.u; break;
        case GGUF_VT_INT16: v.i16 = (int16_t)kv->v.i; break;
        case GGUF_VT_UINT32: v.u32 = (uint32_t)kv->v.u; break;
        case GGUF_VT_INT32: v.i32 = (int32_t)kv->v.i; break;
        case GGUF_VT_UINT64: v.u64 = kv->v.u; break;
        case GGUF_VT_INT64: v.i64 = kv->v.i; break;
        case GGUF_VT_FLOAT32: v.f32 = (float)kv->v.f; break;
        case GGUF_VT_FLOAT64: v.f64 = kv->v.f; break;
        case GGUF_VT_BOOL: v.b = kv->v.b; break;
        default: goto out;
        }
        r = set_scalar(w, key, kv->type, &v);
    }
out:
    free(b.p);
    free(key);
    return r;
}

int gguf_writer_copy_kv(gguf_writer *w, const gguf_file *src)
{
    if (!w || !src)
        return -1;
    for (size_t i = 0; i < src->n_kv; i++)
        if (copy_one(w, &src->kv[i]) < 0)
            return -1;
    return 0;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                           uint32_t n_dims, const uint64_t *ne,
                           const void *data, bool borrow)
{
    if (!w || !name || !*name || n_dims > GGUF_MAX_DIMS || (!ne && n_dims))
        return -1;
    const qt_traits *tr = qt_traits_of(type);
    if (!tr)
        return -1;
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return -1;
    wtensor t = {0};
    t.type = type;
    t.n_dims = n_dims;
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] == 0 || t.ne[d] > (uint64_t)INT64_MAX ||
            nel > (uint64_t)INT64_MAX / t.ne[d])
            return -1;
        nel *= t.ne[d];
    }
    uint64_t row;
    if (qt_row_size(type, t.ne[0], &row) < 0)
        return -1;
    uint64_t nrows = nel / t.ne[0];
    if (row && nrows > UINT64_MAX / row)
        return -1;
    t.nbytes = row * nrows;
    if (t.nbytes > SIZE_MAX)
        return -1;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        wtensor *p = realloc(w->t, cap * sizeof(*p));
        if (!p)
            return -1;
        w->t = p;
        w->cap_t = cap;
    }
    t.name = dup_str(name, strlen(name));
    if (!t.name)
        return -1;
    if (data && !borrow) {
        void *copy = malloc(t.nbytes ? (size_t)t.nbytes : 1);
        if (!copy) {
            free(t.name);
            return -1;
        }
        memcpy(copy, data, (size_t)t.nbytes);
        t.data = copy;
        t.owned = true;
    } else {
        t.data = data;
        t.owned = false;
    }
    w->t[w->n_t++] = t;
    return 0;
}

/* Output: a FILE or a growing buffer. */
typedef struct sink {
    FILE *fp;
    bbuf mem;
    uint64_t written;
} sink;

static int sink_put(sink *s, const void *p, size_t n)
{
    s->written += n;
    if (s->fp)
        return n == 0 || fwrite(p, 1, n, s->fp) == n ? 0 : -1;
    return bb_put(&s->mem, p, n);
}

static int sink_zeros(sink *s, uint64_t n)
{
    static const uint8_t z[256];
    while (n > 0) {
        size_t k = n > sizeof z ? sizeof z : (size_t)n;
        if (sink_put(s, z, k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

static int write_all(gguf_writer *w, sink *s, char *err, size_t errlen)
{
    uint64_t align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0)
            continue;
        uint32_t a = w->kv[i].u32;
        if (w->kv[i].type != GGUF_VT_UINT32 || a == 0 || (a & (a - 1))) {
            seterr(err, errlen, "gguf writer: general.alignment must be a"
                   " uint32 power of two");
            return -1;
        }
        align = a;
    }
    bbuf h = {0};
    int r = -1;
    if (bb_u32(&h, GGUF_MAGIC) < 0 || bb_u32(&h, 3) < 0 ||
        bb_u64(&h, w->n_t) < 0 || bb_u64(&h, w->n_kv) < 0)
        goto oom;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (bb_str(&h, w->kv[i].key, strlen(w->kv[i].key)) < 0 ||
            bb_put(&h, w->kv[i].val.p, w->kv[i].val.len) < 0)
            goto oom;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (bb_str(&h, t->name, strlen(t->name)) < 0 ||
            bb_u32(&h, t->n_dims) < 0)
            goto oom;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (bb_u64(&h, t->ne[d]) < 0)
                goto oom;
        if (bb_u32(&h, t->type) < 0 || bb_u64(&h, off) < 0)
            goto oom;
        uint64_t padded = (t->nbytes + align - 1) / align * align;
        if (padded < t->nbytes || off > UINT64_MAX - padded) {
            seterr(err, errlen, "gguf writer: data section size overflows");
            goto out;
        }
        off += padded;
    }
    uint64_t hlen = h.len;
    uint64_t hpad = (hlen + align - 1) / align * align - hlen;
    if (sink_put(s, h.p, h.len) < 0 || sink_zeros(s, hpad) < 0)
        goto io;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t pad = (t->nbytes + align - 1) / align * align - t->nbytes;
        int e = t->data ? sink_put(s, t->data, (size_t)t->nbytes)
                        : sink_zeros(s, t->nbytes);
        if (e < 0 || sink_zeros(s, pad) < 0)
            goto io;
    }
    r = 0;
    goto out;
oom:
    seterr(err, errlen, "gguf writer: out of memory");
    goto out;
io:
    seterr(err, errlen, "gguf writer: write failed: %s",
           s->fp ? strerror(errno) : "out of memory");
out:
    free(h.p);
    return r;
}

/* Write the whole file to `path` (already created or truncated). */
static int write_to(gguf_writer *w, const char *path, char *err,
                    size_t errlen)
{
    sink s = {0};
    s.fp = fopen(path, "wb");
    if (!s.fp) {
        seterr(err, errlen, "gguf writer: cannot create '%s': %s", path,
               strerror(errno));
        return -1;
    }
    int r = write_all(w, &s, err, errlen);
    if (r == 0 && fflush(s.fp) != 0) {
        seterr(err, errlen, "gguf writer: cannot write '%s': %s", path,
               strerror(errno));
        r = -1;
    }
    /* on disk before the rename makes it visible under its final name */
    if (r == 0 && fsync(fileno(s.fp)) != 0 && errno != EINVAL) {
        seterr(err, errlen, "gguf writer: cannot sync '%s': %s", path,
               strerror(errno));
        r = -1;
    }
    if (fclose(s.fp) != 0 && r == 0) {
        seterr(err, errlen, "gguf writer: cannot write '%s': %s", path,
               strerror(errno));
        r = -1;
    }
    return r;
}

/* A regular file (or nothing yet) at `path` is replaced by writing a
 * temporary file next to it ("<path>.tmp-<pid>-<n>": same directory, so
 * same file system) and renaming it over `path`: a failed write never
 * leaves a truncated file under the final name, and an existing file stays
 * intact until the new one is complete. A symlink is followed (its target
 * is replaced the same way). Anything else (a device, a FIFO) is written
 * in place. An interrupted process can leave the temporary file behind,
 * never a partial `path`. */
int gguf_writer_write(gguf_writer *w, const char *path, char *err,
                      size_t errlen)
{
    struct stat st;
    char *real = NULL;
    const char *dst = path;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
        (real = realpath(path, NULL)) != NULL)
        dst = real;
    if (stat(dst, &st) == 0 && !S_ISREG(st.st_mode)) {
        int r = write_to(w, dst, err, errlen);
        free(real);
        return r;
    }
    size_t cap = strlen(dst) + 48;
    char *tmp = malloc(cap);
    if (!tmp) {
        seterr(err, errlen, "gguf writer: out of memory");
        free(real);
        return -1;
    }
    int fd = -1;
    for (int k = 0; k < 100 && fd < 0; k++) {
        snprintf(tmp, cap, "%s.tmp-%ld-%d", dst, (long)getpid(), k);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    int r = -1;
    if (fd < 0) {
        seterr(err, errlen, "gguf writer: cannot create a temporary file "
               "next to '%s': %s", path, strerror(errno));
        goto done;
    }
    close(fd);
    r = write_to(w, tmp, err, errlen);
    if (r == 0 && rename(tmp, dst) != 0) {
        seterr(err, errlen, "gguf writer: cannot rename '%s' to '%s': %s",
               tmp, dst, strerror(errno));
        r = -1;
    }
    if (r < 0)
        remove(tmp);
done:
    free(tmp);
    free(real);
    return r;
}

int gguf_writer_write_mem(gguf_writer *w, void **out, size_t *outlen,
                          char *err, size_t errlen)
{
    sink s = {0};
    *out = NULL;
    *outlen = 0;
    if (write_all(w, &s, err, errlen) < 0) {
        free(s.mem.p);
        return -1;
    }
    *out = s.mem.p;
    *outlen = s.mem.len;
    return 0;
}
