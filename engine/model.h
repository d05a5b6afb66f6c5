/* model.h - transformer architectures loaded from GGUF, and the batched
 * forward pass.
 *
 * Supported: `llama` (Llama 2/3.x, Mistral, TinyLlama, SmolLM: RMSNorm,
 * rotary embeddings on adjacent pairs, grouped-query attention, SwiGLU,
 * tied or separate output matrix, Llama-3 rope frequency factors) and
 * `qwen2` (the same with q/k/v biases and NeoX-ordered rotary pairs).
 * Anything else - another architecture, a missing tensor, a tensor of the
 * wrong shape or of a type the engine cannot read - is refused at load with
 * a message naming it; a model that loads runs as its hyperparameters say.
 *
 * Weights are never copied: every matrix points into the GGUF mapping.
 *
 * The forward pass takes a batch of tokens; each token carries its own
 * position and its own sequence's KV cache, so one call can prefill a
 * prompt, decode the next token of many sequences, or both.
 */
#ifndef HEARTH_MODEL_H
#define HEARTH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "kv.h"

enum model_arch { MODEL_ARCH_LLAMA = 1, MODEL_ARCH_QWEN2 = 2 };

enum model_rope_scaling {
    MODEL_ROPE_SCALING_NONE = 0,
    MODEL_ROPE_SCALING_LINEAR = 1,  /* positions divided by a factor */
    MODEL_ROPE_SCALING_FREQS = 2    /* per-frequency factors (Llama 3.1+) */
};

typedef struct model_hparams {
    int arch;                 /* enum model_arch */
    const char *arch_name;    /* "llama", "qwen2" */
    int32_t n_vocab;
    int32_t n_ctx_train;      /* <arch>.context_length */
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_ff;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;         /* <arch>.attention.key_length, or n_embd/n_head */
    int32_t n_rot;            /* rotated dims per head (even, <= head_dim) */
    float norm_eps;
    float rope_freq_base;
    float rope_freq_scale;    /* 1/factor under linear scaling, else 1 */
    int rope_scaling;         /* enum model_rope_scaling */
    bool rope_neox;           /* pairs (j, j+n_rot/2) instead of (2j, 2j+1) */
    bool qkv_bias;
    bool tied_output;         /* no output.weight: token_embd is reused */
} model_hparams;

typedef struct model model;

/* Open a GGUF file and load the model in it. -1 + message on failure. */
int model_load(const char *path, model **out, char *err, size_t errlen);
/* Load from a file the caller keeps open for the model's lifetime. */
int model_load_gguf(const gguf_file *f, model **out, char *err,
                    size_t errlen);
/* The same with flags: MODEL_LOAD_INSPECT checks and describes the model
 * without rearranging its weights for the kernels (repack.h), which reads
 * the whole file: for `hearth info`; the model still runs, slower. */
#define MODEL_LOAD_INSPECT 1u
int model_load_gguf_flags(const gguf_file *f, unsigned flags, model **out,
                          char *err, size_t errlen);
void model_free(model *m);

const model_hparams *model_hparams_of(const model *m);
const gguf_file *model_gguf(const model *m);
/* Number of weight values (sum over tensors of their element counts). */
uint64_t model_n_params(const model *m);

/* A KV cache shaped for this model. n_ctx <= 0 means the model's training
 * context; the result is then capped to n_ctx_cap when n_ctx_cap > 0.
 * type is KV_F16 or KV_F32. */
int model_kv_new(const model *m, int n_ctx, int n_ctx_cap, int type,
                 kv_cache **out, char *err, size_t errlen);

/* ---- forward pass ---- */

typedef struct model_token {
    int32_t id;        /* token id, 0 <= id < n_vocab */
    int32_t pos;       /* position in its sequence: must equal the length
                          its cache has when this token is reached */
    kv_cache *kv;      /* the sequence's cache (from model_kv_new) */
    bool want_logits;  /* compute next-token logits for this token */
} model_token;

typedef struct model_batch {
    int n;
    const model_token *tok;
} model_batch;

/* Scratch memory for forward passes over batches of up to max_batch
 * tokens at a time (larger batches are processed in slices). One context
 * per thread that calls model_decode. */
typedef struct model_ctx model_ctx;

int model_ctx_new(const model *m, int max_batch, model_ctx **out, char *err,
                  size_t errlen);
void model_ctx_free(model_ctx *c);

/* Threads the context's forward passes use (the caller of model_decode
 * plus persistent workers that sleep when idle). A new context uses one
 * per online CPU and retires some while other programs keep the cores
 * busy (pool.h); n_threads <= 0 restores that, n_threads > 0 fixes the
 * count. -1 + message (and the
 * context unchanged) when threads or memory cannot be had. Not while a
 * model_decode on this context runs. */
int model_ctx_set_threads(model_ctx *c, int n_threads, char *err,
                          size_t errlen);
int model_ctx_threads(const model_ctx *c);
/* The max_batch the context was made for (larger batches run in slices). */
int model_ctx_max_batch(const model_ctx *c);

/* Run fn(arg, i, thread) for i in 0..n-1 on the context's threads, each
 * index once, and return when all are done (for work that goes with a
 * forward pass, such as sampling each sequence's logits). Not during a
 * model_decode on this context, and fn must not call one. */
void model_ctx_run(model_ctx *c, int64_t n, void (*fn)(void *arg, int64_t i, int thread),
                   void *arg);

/* Run the batch. For each token with want_logits, n_vocab logits are
 * written to `logits`, rows in batch order (logits may be NULL when no
 * token wants them). The batch is checked whole before anything runs: a
 * bad id, a position that is not its cache's next one, a full cache or a
 * cache of another shape gives -1 with a message and leaves every cache as
 * it was. On success each cache holds the new positions. */
int model_decode(model_ctx *c, const model_batch *b, float *logits,
                 char *err, size_t errlen);

/* ---- quantization (hearth quantize) ---- */

typedef struct model_quantize_stats {
    uint64_t bytes_in, bytes_out;   /* tensor data bytes */
    int n_tensors;
    int n_quantized;                /* matrices written in the requested type */
    int n_fallback;                 /* matrices whose rows do not fit its
                                     * blocks, written in another type */
    int n_kept;                     /* 1-D tensors (F32 or as they were) and
                                     * matrices copied as they were */
    int n_requantized;              /* of quantized + fallback: converted
                                     * from an already quantized type */
    uint64_t requant_from;          /* bit t set: some came from qt type t */
    uint32_t main_type;             /* the type most output matrices have */
    uint32_t file_type;             /* general.file_type written */
} model_quantize_stats;

/* The name of a general.file_type value, llama.cpp's enum llama_ftype
 * without its LLAMA_FTYPE_ prefix ("MOSTLY_Q4_K_M" for 15, "ALL_F32" for
 * 0), or NULL for a number it does not define. */
const char *model_file_type_name(uint32_t file_type);

/* model_quantize flags */
#define MODEL_QUANTIZE_ALLOW_REQUANTIZE 1u /* convert quantized matrices too */

/* model_quantize results */
enum {
    MODEL_QUANTIZE_OK = 0,
    MODEL_QUANTIZE_ERROR = -1,        /* err says why */
    MODEL_QUANTIZE_NEEDS_REQUANT = -2 /* quantized matrices would have to be
                                       * requantized and the flag is absent */
};

/* Write `out` with the 2-D weight tensors of `in` converted to `type` (a
 * qt type with quantize support, or F16/F32). A tensor whose rows do not
 * divide into the type's blocks falls back to a type that fits (for the
 * K-quants Q5_0 or Q8_0 when available, else F16). 1-D F32/F16/BF16
 * tensors (norms, biases) are written as F32, other 1-D tensors copied.
 * F32/F16/BF16 matrices are converted; a matrix already in the type it
 * would be written in is copied. A quantized matrix that would change type
 * is requantized (dequantized to F32, then quantized) only with
 * MODEL_QUANTIZE_ALLOW_REQUANTIZE; without it the result is
 * MODEL_QUANTIZE_NEEDS_REQUANT, checked before any work, and nothing is
 * written. All metadata is copied; general.file_type is llama.cpp's
 * number for the type most output matrices have (ties: `type`), so it
 * never names a type the tensors do not have. The file is written under a
 * temporary name and renamed (gguf_writer_write): on failure `out` is
 * untouched. `st` (may be NULL) is filled in every case. */
int model_quantize(const char *in, const char *out, uint32_t type,
                   unsigned flags, model_quantize_stats *st, char *err,
                   size_t errlen);

#endif
