/* kv.h - the key/value cache of one sequence.
 *
 * One kv_cache holds, for every layer and every position 0..n_ctx-1, the
 * rotated key and the value vector of that position (kv_dim = n_head_kv *
 * head_dim values each), in F16 (default: half the memory, as llama.cpp
 * stores it) or F32. Positions are filled in order: kv_len() is the number
 * of positions held, and a new position can only be appended at kv_len()
 * (truncate first to rewrite history, e.g. to reuse a common prefix).
 *
 * Layout: k[layer][pos][kv_dim], v[layer][pos][kv_dim]. A cache belongs to
 * one sequence; a batch may mix tokens of many caches.
 */
#ifndef HEARTH_KV_H
#define HEARTH_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kv_type { KV_F16 = 0, KV_F32 = 1 };

typedef struct kv_cache kv_cache;

/* Allocate a cache for n_layer layers, kv_dim values per position and n_ctx
 * positions. -1 + message when a size is out of range or memory is short. */
int kv_new(int n_layer, int kv_dim, int n_ctx, int type, kv_cache **out,
           char *err, size_t errlen);
void kv_free(kv_cache *kv);

int kv_n_ctx(const kv_cache *kv);
int kv_n_layer(const kv_cache *kv);
int kv_dim(const kv_cache *kv);
int kv_type(const kv_cache *kv);
int kv_len(const kv_cache *kv);
/* Bytes allocated for keys and values. */
size_t kv_bytes(const kv_cache *kv);

/* Forget every position (the memory is kept). */
void kv_clear(kv_cache *kv);
/* Keep positions 0..n-1 only. -1 when n > kv_len() or n < 0. */
int kv_truncate(kv_cache *kv, int n);

/* Write the key and value of position pos in one layer (kv_dim floats
 * each). The caller has checked pos < n_ctx; kv_len becomes at least pos+1
 * once kv_commit() is called (the forward pass writes every layer first). */
void kv_store(kv_cache *kv, int layer, int pos, const float *k,
              const float *v);
/* Mark positions 0..len-1 as filled (len <= n_ctx). */
void kv_set_len(kv_cache *kv, int len);

/* Largest head dimension kv_attend handles. */
#define KV_MAX_HEAD_DIM 1024

/* Attention of one query head over positions 0..n_pos-1 of one layer; the
 * head's keys and values are the hd values at `off` within kv_dim:
 *   out = sum_i softmax_i(scale * q.k_i) v_i
 * computed in one pass with a running maximum (no score buffer). With an
 * F16 cache the query is rounded to F16 and the weighted sum of values is
 * accumulated in F16, as llama.cpp's CPU flash attention does: the results
 * then agree with it more closely than an F32 sum would. With an F32 cache
 * everything is F32. hd <= KV_MAX_HEAD_DIM, n_pos >= 1.
 *
 * `lone`: the query is the only row of its batch (a decode step on its
 * own). llama.cpp then splits a long cache (kv_split_len) into parts,
 * sums each part alone (in F16) and merges the parts in F32, and so does
 * kv_attend: one F16 sum over a few hundred positions and two shorter
 * ones differ by whole F16 steps. */
void kv_attend(const kv_cache *kv, int layer, int off, int hd, const float *q,
               int n_pos, bool lone, float scale, float *out);

/* kv_attend (not lone) for n_heads consecutive query heads that share the
 * KV head at `off` (grouped-query attention): head g's query at q + g*hd,
 * its output at out + g*hd; each head's result is exactly kv_attend's. The
 * F16 cache's keys and values are read once for all of them when the
 * kernel path has a grouped kernel. */
void kv_attend_heads(const kv_cache *kv, int layer, int off, int hd, int n_heads,
                     const float *q, int n_pos, float scale, float *out);
/* The most heads kv_attend_heads takes together (beyond, one at a time). */
#define KV_GROUP_HEADS 8

/* Positions per part of a lone query's attention over n_pos positions, 0
 * when it is one pass. llama.cpp views its cache in steps of KV_PAD cells
 * and, for a batch of one row over a view of KV_SPLIT_MIN cells or more,
 * gives each of its threads an equal share of the view (cells past the
 * last position are masked, so the last share is shorter). Its split
 * depends on its thread count; KV_SPLIT_PARTS is that of the reference
 * outputs ($HEARTH_TEST_DATA/reference, 2 threads), fixed here so that
 * hearth's results do not depend on its own thread count. (llama.cpp
 * caps the view at its cache size, but pads that to 256 cells too, so
 * for one sequence the view is always the positions rounded up.) */
#define KV_PAD 256
#define KV_SPLIT_MIN 512
#define KV_SPLIT_PARTS 2
int kv_split_len(int n_pos);

#endif
