/* tok_internal.h - what tok.c, tok_spm.c, tok_bpe.c and tok_wpm.c share:
 * the vocabulary layout, the token-text hash, a growable id list, and the
 * per-algorithm entry points. Not for use outside engine/tok*.c.
 */
#ifndef HEARTH_TOK_INTERNAL_H
#define HEARTH_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok.h"

/* Token attributes, derived from tokenizer.ggml.token_type (one type per
 * token) plus what the loader adds (EOG, strip rules). Bit flags because a
 * token can be e.g. USER_DEFINED and promoted to CONTROL. */
enum {
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 6, /* eat whitespace before the token */
    TOK_ATTR_RSTRIP = 1 << 7, /* eat whitespace after the token */
    TOK_ATTR_EOG = 1 << 8,    /* ends generation */
};

/* At most this many pre-tokenizer regexes run in sequence. */
#define TOK_MAX_RE 6

struct tok_pre; /* a pre-tokenizer recipe (tok_bpe.c) */

struct tok_vocab {
    int kind;             /* TOK_KIND_* */
    char pre_name[48];    /* tokenizer.ggml.pre as loaded, or "default" */
    int32_t n;            /* number of tokens */

    char *pool;           /* all token texts back to back */
    uint32_t *off;        /* (n + 1) offsets into pool: text i is
                           * pool[off[i] .. off[i+1]) */
    float *score;         /* (n) SentencePiece scores; 0 for BPE */
    uint16_t *attr;       /* (n) TOK_ATTR_* */

    uint32_t *tab;        /* text -> id: open addressing, slot = id + 1 */
    uint32_t tab_mask;

    int32_t *special;     /* ids matched as whole tokens in the text,
                           * longest text first */
    int32_t n_special;
    int32_t *markup;      /* the markup tokens among them (see
                           * tok_markup_find), by first byte of their
                           * text, longest text first within one byte */
    uint32_t markup_at[257]; /* markup[markup_at[b] .. markup_at[b+1]):
                              * the texts that start with byte b */

    int32_t bos, eos, eot, eom, unk, pad, sep; /* -1 when absent */
    bool add_bos, add_eos, add_space_prefix;
    bool ignore_merges;   /* BPE: a pre-token that is a token is taken whole */
    size_t max_len;       /* WordPiece: longest token text, in bytes */

    int32_t byte_tok[256]; /* SPM: <0xNN>; BPE: the token of the byte's
                            * mapped character; -1 when absent */

    /* ---- byte-level BPE only ---- */
    char *mpool;          /* merge texts "left right", back to back */
    uint32_t *moff;       /* (n_merges + 1) offsets into mpool */
    uint32_t *mleft;      /* (n_merges) length of the left part */
    int32_t n_merges;
    uint32_t *mtab;       /* (left, right) -> rank: slot = rank + 1 */
    uint32_t mtab_mask;
    const struct tok_pre *pre;
    void *re[TOK_MAX_RE]; /* pcre2_code_8 *, compiled per vocabulary */
    int n_re;
};

/* A growable list of ids. */
typedef struct tok_ids {
    int32_t *a;
    size_t n, cap;
} tok_ids;

int tok_ids_push(tok_ids *l, int32_t id); /* 0, or -1 out of memory */

uint64_t tok_hash(const char *p, size_t n, uint64_t h);
#define TOK_HASH_SEED 1469598103934665603ull

/* Id of the token whose text is exactly p[0..n), or -1. */
int32_t tok_lookup(const tok_vocab *v, const char *p, size_t n);

/* tok_lookup for the text algorithms (SentencePiece, BPE, WordPiece): a
 * control or unknown token never spells text, however its text reads, so
 * it counts as absent. This is what keeps tok_encode without special
 * parsing from ever emitting a control token. */
static inline int32_t tok_lookup_text(const tok_vocab *v, const char *p,
                                      size_t n)
{
    int32_t id = tok_lookup(v, p, n);
    return id >= 0 && (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))
               ? -1
               : id;
}

static inline const char *tok_text_ptr(const tok_vocab *v, int32_t id,
                                       size_t *len)
{
    *len = v->off[id + 1] - v->off[id];
    return v->pool + v->off[id];
}

/* Length of the well-formed UTF-8 sequence at p (1..4), or 0 when the
 * bytes at p do not start one (invalid lead byte, bad or missing
 * continuation, overlong form, surrogate, > U+10FFFF). */
size_t tok_utf8_len(const unsigned char *p, size_t avail);

/* The merge queue both tokenizers use: candidate merges of two adjacent
 * symbols, best first (higher `prio`, then the leftmost). Entries go stale
 * when a neighbour merges first; the lengths recorded at push time let the
 * caller spot that and skip them. */
typedef struct tok_bigram {
    int32_t left, right;
    float prio;          /* SentencePiece: the merged token's score;
                            BPE: minus the merge rank */
    uint32_t llen, rlen; /* symbol lengths when queued */
} tok_bigram;

typedef struct tok_queue {
    tok_bigram *heap;
    size_t n, cap;
} tok_queue;

int tok_queue_push(tok_queue *q, tok_bigram b); /* -1: out of memory */
tok_bigram tok_queue_pop(tok_queue *q);         /* q->n > 0 */
void tok_queue_free(tok_queue *q);

/* SentencePiece: one text fragment (prefix_space adds the leading "▁"). */
int tok_spm_encode(const tok_vocab *v, const char *text, size_t len,
                   bool prefix_space, tok_ids *out);

/* Byte-level BPE: choose the pre-tokenizer named `pre`, compile its
 * regexes, load the merges. -1 + message. */
int tok_bpe_setup(tok_vocab *v, const char *pre, const gguf_kv *merges,
                  char *err, size_t errlen);
void tok_bpe_release(tok_vocab *v);
int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len,
                   tok_ids *out);
/* Byte-level BPE: the raw bytes a token's text stands for. Returns the
 * byte count (writes at most cap). */
size_t tok_bpe_decode_text(const char *s, size_t n, char *buf, size_t cap);
/* Unicode code point of byte b under the GPT-2 byte-to-unicode map. */
uint32_t tok_bpe_byte_cp(unsigned b);

/* WordPiece: record what the encoder needs (the longest token text). */
void tok_wpm_setup(tok_vocab *v);
/* WordPiece: normalise, split into words, cut each word greedily. */
int tok_wpm_encode(const tok_vocab *v, const char *text, size_t len,
                   tok_ids *out);

#endif
