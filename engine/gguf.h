/* gguf.h - GGUF (v2, v3) reader and writer.
 *
 * The reader memory-maps the file (or borrows a caller buffer) and validates
 * every count, length, dimension, type id and offset against the file size
 * and against integer overflow before it is used. Nothing is copied: strings
 * and tensor data point into the mapping, so they live until gguf_close().
 *
 * The writer builds a file in memory (metadata + tensors) and writes it out;
 * tests, the benchmark model generator and `hearth quantize` use it.
 *
 * Refused by the reader (with a message naming the field): versions other
 * than 2 and 3, arrays of arrays, empty keys or tensor names and ones with
 * a NUL byte, duplicate keys or tensor names, bools other than 0/1,
 * general.alignment that is not a uint32 power of two, more than 4 dims, a
 * zero dimension, an element count above INT64_MAX, type ids unknown to
 * qt_traits_of() (types known but not dequantizable, e.g. IQ2_XXS, are
 * accepted: check qt_traits_of(t->type)->can_dequantize), ne[0] not a
 * multiple of the block size, misaligned offsets, data past the end.
 * Tensor data is aligned to gguf_alignment() relative to the start of the
 * mapping (page aligned for gguf_open; for gguf_open_mem only as aligned as
 * the caller's buffer). Little-endian hosts only.
 */
#ifndef HEARTH_GGUF_H
#define HEARTH_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

/* Metadata value types, as numbered by the format. */
enum gguf_vtype {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT
};

/* A string inside the file: not NUL-terminated. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

/* One metadata key/value. Scalars are decoded into `v`; arrays keep a
 * pointer to their first element (`arr_data`, little-endian, packed) and,
 * for arrays of strings, a table of decoded strings (`arr_strs`). */
typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;     /* enum gguf_vtype */
    uint32_t arr_type; /* element type when type == GGUF_VT_ARRAY */
    uint64_t arr_len;
    const void *arr_data;    /* numeric arrays: the packed elements */
    const gguf_str *arr_strs; /* string arrays: arr_len strings */
    union {
        uint64_t u;
        int64_t i;
        double f;
        bool b;
        gguf_str s;
    } v;
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dims are 1 */
    uint32_t type;              /* ggml type id (see quant.h) */
    uint64_t offset;            /* relative to the data section */
    uint64_t nbytes;            /* validated: offset + nbytes within the file */
    const void *data;           /* into the mapping */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Open and validate. On failure returns -1, *out is NULL and err holds a
 * one-line message naming the field at fault. */
int gguf_open(const char *path, gguf_file **out, char *err, size_t errlen);
/* Parse a buffer the caller keeps alive (fuzzing, tests). */
int gguf_open_mem(const void *buf, size_t len, gguf_file **out, char *err,
                  size_t errlen);
void gguf_close(gguf_file *f);

/* True when the data is gguf_open's private read-only mapping of the
 * file (pages of it may be dropped and read again), false for a caller's
 * buffer from gguf_open_mem (whose pages must never be dropped). */
bool gguf_is_mapped(const gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f); /* start of tensor data */

size_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, size_t i);
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);

/* Typed getters. Return 0 on success, -1 when the key is absent, -2 when
 * the value has a type that cannot represent the request (integers convert
 * between widths when the value fits). */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Array whose elements are exactly elem_type (GGUF_VT_*; no conversion:
 * -2 for another element type); *out gets its kv (arr_len, and arr_data
 * or, for strings, arr_strs). arr_data is packed little-endian and may be
 * unaligned: read elements with memcpy. */
int gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type,
                 const gguf_kv **out);

size_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

const char *gguf_vtype_name(uint32_t t);
/* true when s equals the NUL-terminated c string */
bool gguf_str_eq(gguf_str s, const char *c);

/* ---- writer ---- */
typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
/* Setters copy their arguments. Setting a key that is already present
 * replaces its value in place (so quantize can copy_kv then override
 * general.file_type). They return 0, or -1 on allocation failure or an
 * invalid argument. */
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Any scalar type (GGUF_VT_UINT8 .. GGUF_VT_FLOAT64 except STRING and
 * ARRAY): `val` points to a value of the matching C type (uint8_t, int8_t,
 * uint16_t, int16_t, uint32_t, int32_t, float, bool, uint64_t, int64_t,
 * double). -1 for a bad type. */
int gguf_writer_set_val(gguf_writer *w, const char *key, uint32_t type,
                        const void *val);
/* Numeric or bool array (elem_type not STRING/ARRAY): n packed elements of
 * the element type's C type. */
int gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type,
                        const void *data, uint64_t n);
int gguf_writer_set_arr_str(gguf_writer *w, const char *key,
                            const char *const *strs, uint64_t n);
/* Copy every key/value of an open file (used by quantize). */
int gguf_writer_copy_kv(gguf_writer *w, const gguf_file *src);
/* Add a tensor; data (nbytes, computed from type and ne) is copied unless
 * `borrow` is true, in which case it must stay valid until the write.
 * -1 on a duplicate name, an unknown type, n_dims > 4, a zero dimension, a
 * row length that is not a multiple of the type's block size, a size
 * overflow, or allocation failure. data may be NULL: the tensor is then
 * written as zeros. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                           uint32_t n_dims, const uint64_t *ne,
                           const void *data, bool borrow);
/* Write a GGUF v3 file. The alignment is general.alignment when set (a
 * uint32 power of two), else GGUF_DEFAULT_ALIGNMENT. A regular file is
 * written under a temporary name in the same directory, synced and renamed
 * over `path` (a symlink's target is replaced): on failure `path` is as it
 * was before (absent, or the old file) and the temporary file is removed. */
int gguf_writer_write(gguf_writer *w, const char *path, char *err,
                      size_t errlen);
/* The same file into a malloc'ed buffer (*out, *outlen; free() it). */
int gguf_writer_write_mem(gguf_writer *w, void **out, size_t *outlen,
                          char *err, size_t errlen);

#endif
