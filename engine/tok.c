/* tok.c - vocabulary loading, special-token partitioning, detokenization.
 *
 * The tokenizer algorithms live in tok_spm.c (SentencePiece), tok_bpe.c
 * (byte-level BPE and its pre-tokenizers) and tok_wpm.c (WordPiece); this
 * file builds the vocabulary they share from tokenizer.ggml.* metadata and
 * wraps them:
 *
 *   text --(special tokens matched as whole tokens)--> fragments
 *        --(SPM, BPE or WPM on each text fragment)--> ids
 *   ids  --(pieces: "▁" -> " ", <0xNN> -> byte, GPT-2 map -> bytes)--> text
 *
 * Where llama.cpp decides something by convention rather than metadata
 * (which token texts end generation, which are forced to control type,
 * Phi-3's whitespace stripping around special tokens), we follow it, since
 * models are converted with llama.cpp in mind.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memmem */
#endif
#include "tok.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

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

uint64_t tok_hash(const char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) { /* FNV-1a */
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

int32_t tok_lookup(const tok_vocab *v, const char *p, size_t n)
{
    uint64_t h = tok_hash(p, n, TOK_HASH_SEED);
    for (uint32_t i = (uint32_t)h & v->tab_mask;; i = (i + 1) & v->tab_mask) {
        uint32_t s = v->tab[i];
        if (s == 0)
            return -1;
        int32_t id = (int32_t)(s - 1);
        size_t tl;
        const char *t = tok_text_ptr(v, id, &tl);
        if (tl == n && memcmp(t, p, n) == 0)
            return id;
    }
}

int tok_ids_push(tok_ids *l, int32_t id)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        if (nc > SIZE_MAX / sizeof *l->a)
            return -1;
        int32_t *na = realloc(l->a, nc * sizeof *na);
        if (!na)
            return -1;
        l->a = na;
        l->cap = nc;
    }
    l->a[l->n++] = id;
    return 0;
}

/* Classify the UTF-8 sequence at p: its length (1..4) when well-formed,
 * 0 when it is a well-formed prefix cut short by the end of the buffer,
 * or -k when its first k bytes are a maximal ill-formed subpart. */
static int utf8_scan(const unsigned char *p, size_t avail)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if (c == 0xED)
        need = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
        need = 2;
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c == 0xF4)
        need = 3, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else
        return -1;
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= avail)
            return 0;
        if (p[i] < lo || p[i] > hi)
            return -i;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

/* true when a should come out of the queue before b */
static bool bigram_before(const tok_bigram *a, const tok_bigram *b)
{
    return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

int tok_queue_push(tok_queue *q, tok_bigram b)
{
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 64;
        tok_bigram *na = realloc(q->heap, nc * sizeof *na);
        if (!na)
            return -1;
        q->heap = na;
        q->cap = nc;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &q->heap[p]))
            break;
        q->heap[i] = q->heap[p];
        i = p;
    }
    q->heap[i] = b;
    return 0;
}

tok_bigram tok_queue_pop(tok_queue *q)
{
    tok_bigram top = q->heap[0], last = q->heap[--q->n];
    size_t i = 0, n = q->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && bigram_before(&q->heap[c + 1], &q->heap[c]))
            c++;
        if (!bigram_before(&q->heap[c], &last))
            break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (n > 0)
        q->heap[i] = last;
    return top;
}

void tok_queue_free(tok_queue *q)
{
    free(q->heap);
    q->heap = NULL;
    q->n = q->cap = 0;
}

size_t tok_utf8_len(const unsigned char *p, size_t avail)
{
    int r = avail ? utf8_scan(p, avail) : 0;
    return r > 0 ? (size_t)r : 0;
}

/* ------------------------------------------------------------ loading */

/* tokenizer.ggml.token_type values */
enum {
    TT_UNDEFINED = 0, TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3,
    TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6, TT_COUNT
};

static uint16_t attr_of_type(int32_t t)
{
    switch (t) {
    case TT_NORMAL: return TOK_ATTR_NORMAL;
    case TT_UNKNOWN: return TOK_ATTR_UNKNOWN;
    case TT_CONTROL: return TOK_ATTR_CONTROL;
    case TT_USER_DEFINED: return TOK_ATTR_USER_DEFINED;
    case TT_UNUSED: return TOK_ATTR_UNUSED;
    case TT_BYTE: return TOK_ATTR_BYTE;
    default: return 0;
    }
}

/* An integer metadata value of any width; false when absent or not an
 * integer. */
static bool kv_int(const gguf_file *f, const char *key, int64_t *out,
                   bool *present)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    *present = kv != NULL;
    if (!kv)
        return false;
    switch (kv->type) {
    case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32:
        *out = (int64_t)kv->v.u;
        return true;
    case GGUF_VT_UINT64:
        *out = kv->v.u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)kv->v.u;
        return true;
    case GGUF_VT_INT8: case GGUF_VT_INT16: case GGUF_VT_INT32:
    case GGUF_VT_INT64:
        *out = kv->v.i;
        return true;
    default:
        return false;
    }
}

/* Read a special token id. A missing key keeps *id. UINT32_MAX (and any
 * negative value) is how converters write "none". An id past the
 * vocabulary is an error for the ids the tokenizer uses (required) and is
 * ignored for the others, as llama.cpp does. */
static int read_special(const gguf_file *f, const tok_vocab *v,
                        const char *key, int32_t *id, bool required,
                        char *err, size_t errlen)
{
    int64_t x;
    bool present;
    if (!kv_int(f, key, &x, &present)) {
        if (present) {
            seterr(err, errlen, "%s is not an integer", key);
            return -1;
        }
        return 0;
    }
    if (x < 0 || x == (int64_t)UINT32_MAX) {
        *id = -1;
        return 0;
    }
    if (x >= v->n) {
        if (required) {
            seterr(err, errlen, "%s = %lld is outside the vocabulary "
                   "(%d tokens)", key, (long long)x, (int)v->n);
            return -1;
        }
        *id = -1;
        return 0;
    }
    *id = (int32_t)x;
    return 0;
}

static int read_bool(const gguf_file *f, const char *key, bool *b, char *err,
                     size_t errlen)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return 0;
    if (kv->type != GGUF_VT_BOOL) {
        seterr(err, errlen, "%s is not a boolean", key);
        return -1;
    }
    *b = kv->v.b;
    return 0;
}

static int build_table(tok_vocab *v)
{
    uint32_t cap = 1;
    while (cap < (uint32_t)v->n * 2u + 2u)
        cap <<= 1;
    v->tab = calloc(cap, sizeof *v->tab);
    if (!v->tab)
        return -1;
    v->tab_mask = cap - 1;
    for (int32_t id = 0; id < v->n; id++) {
        size_t n;
        const char *t = tok_text_ptr(v, id, &n);
        if (n == 0)
            continue; /* an empty text can never be matched */
        uint64_t h = tok_hash(t, n, TOK_HASH_SEED);
        uint32_t i = (uint32_t)h & v->tab_mask;
        for (;; i = (i + 1) & v->tab_mask) {
            uint32_t s = v->tab[i];
            if (s == 0)
                break;
            size_t on;
            const char *o = tok_text_ptr(v, (int32_t)(s - 1), &on);
            if (on == n && memcmp(o, t, n) == 0)
                break; /* duplicate text: the later id wins (llama.cpp) */
        }
        v->tab[i] = (uint32_t)id + 1;
    }
    return 0;
}

/* Token texts llama.cpp treats as control tokens whatever their declared
 * type: turn ends, fill-in-the-middle markers. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
    "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    NULL};
/* fim pad/repo/separator tokens end generation too */
static const char *const fim_eog_texts[] = {
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>",
    "<|file_sep|>", NULL};
static const char *const fim_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
    "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>",
    "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
    "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>",
    "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>",
    "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>",
    "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL};

static void mark_texts(tok_vocab *v, const char *const *texts, uint16_t add)
{
    for (; *texts; texts++) {
        int32_t id = tok_find(v, *texts);
        if (id >= 0)
            v->attr[id] |= (uint16_t)(TOK_ATTR_CONTROL | add);
    }
}

static void mark_eog(tok_vocab *v)
{
    mark_texts(v, fim_texts, 0);
    mark_texts(v, fim_eog_texts, TOK_ATTR_EOG);
    mark_texts(v, eog_texts, TOK_ATTR_EOG);
    /* gpt-oss: these structure its output and must always render */
    static const char *const shown[] = {"<|channel|>", "<|message|>",
                                        "<|start|>", "<|constrain|>", NULL};
    for (const char *const *t = shown; *t; t++) {
        int32_t id = tok_find(v, *t);
        if (id >= 0)
            v->attr[id] = TOK_ATTR_USER_DEFINED;
    }
    const int32_t ids[3] = {v->eos, v->eot, v->eom};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= 0)
            v->attr[ids[i]] |= TOK_ATTR_EOG;
    /* harmony-style vocabularies (<|return|> and <|call|>, or <|calls|>
     * and <|flush|>) end a message with <|end|> without ending the turn */
    int32_t end = tok_find(v, "<|end|>");
    int32_t ret = tok_find(v, "<|return|>"), call = tok_find(v, "<|call|>");
    int32_t calls = tok_find(v, "<|calls|>"), flush = tok_find(v, "<|flush|>");
    if (end >= 0 && ((ret >= 0 && (call >= 0 || calls >= 0)) ||
                     ((call >= 0 || calls >= 0) && flush >= 0)))
        v->attr[end] = TOK_ATTR_USER_DEFINED;
}

/* Tokens that mark a sequence's structure are control tokens, whatever
 * type the converter wrote, so that no text ever turns into them:
 * - the ids the metadata names BOS, EOS, end of turn and end of message
 *   (DeepSeek-Coder's <|EOT|> is written as user-defined);
 * - SentencePiece's own <s> and </s> at their conventional ids 1 and 2
 *   (Phi-3 writes </s> as user-defined: text "</s>" became id 2, the
 *   SentencePiece end of sequence, without special parsing);
 * and the unknown token is not one: it stands for text the vocabulary
 * cannot spell (BERT's [UNK] is written as control), so it is UNKNOWN
 * only, unless it also has one of the roles above. Runs before mark_eog,
 * whose per-family exceptions (gpt-oss markers that must render) win. */
static void settle_roles(tok_vocab *v)
{
    const int32_t roles[4] = {v->bos, v->eos, v->eot, v->eom};
    bool unk_has_role = false;
    for (int i = 0; i < 4; i++) {
        if (roles[i] < 0)
            continue;
        if (v->attr[roles[i]] & TOK_ATTR_USER_DEFINED)
            v->attr[roles[i]] |= TOK_ATTR_CONTROL;
        unk_has_role |= roles[i] == v->unk;
    }
    if (v->kind == TOK_KIND_SPM) {
        static const char *const spm_ctl[3] = {NULL, "<s>", "</s>"};
        for (int32_t id = 1; id <= 2 && id < v->n; id++) {
            size_t n;
            const char *t = tok_text_ptr(v, id, &n);
            if (n == strlen(spm_ctl[id]) && memcmp(t, spm_ctl[id], n) == 0)
                v->attr[id] |= TOK_ATTR_CONTROL;
        }
    }
    if (v->unk >= 0 && !unk_has_role)
        v->attr[v->unk] = (uint16_t)((v->attr[v->unk] & ~TOK_ATTR_CONTROL) |
                                     TOK_ATTR_UNKNOWN);
}

typedef struct len_id {
    size_t len;
    int32_t id;
} len_id;

static int cmp_len_id(const void *a, const void *b)
{
    const len_id *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int build_specials(tok_vocab *v)
{
    int32_t n = 0;
    for (int32_t id = 0; id < v->n; id++)
        if (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED |
                           TOK_ATTR_UNKNOWN) &&
            v->off[id + 1] > v->off[id])
            n++;
    len_id *tmp = malloc(((size_t)n + 1) * sizeof *tmp);
    v->special = malloc(((size_t)n + 1) * sizeof *v->special);
    if (!tmp || !v->special) {
        free(tmp);
        return -1;
    }
    n = 0;
    for (int32_t id = 0; id < v->n; id++)
        if (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED |
                           TOK_ATTR_UNKNOWN) &&
            v->off[id + 1] > v->off[id]) {
            tmp[n].len = v->off[id + 1] - v->off[id];
            tmp[n].id = id;
            n++;
        }
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_len_id);
    for (int32_t i = 0; i < n; i++)
        v->special[i] = tmp[i].id;
    v->n_special = n;
    free(tmp);
    return 0;
}

/* A markup token marks structure rather than spells text: a control or
 * unknown token, or a user-defined one, except those that are one
 * character or only whitespace (MPT's and Gemma's runs of spaces and
 * newlines, DeepSeek's byte characters): those are text. */
static bool markup_attr(const tok_vocab *v, int32_t id)
{
    uint16_t a = v->attr[id];
    if (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))
        return true;
    if (!(a & TOK_ATTR_USER_DEFINED))
        return false;
    size_t n;
    const unsigned char *t = (const unsigned char *)tok_text_ptr(v, id, &n);
    if (n == 0 || tok_utf8_len(t, n) == n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == ' ' || (t[i] >= '\t' && t[i] <= '\r'))
            continue;
        if (i + 3 <= n && memcmp(t + i, "\xE2\x96\x81", 3) == 0) { /* "▁" */
            i += 2;
            continue;
        }
        return true;
    }
    return false;
}

/* The markup tokens among the special ones, grouped by the first byte of
 * their text (a counting sort, so each group stays longest first). */
static int build_markup(tok_vocab *v)
{
    uint32_t count[256] = {0};
    for (int32_t k = 0; k < v->n_special; k++)
        if (markup_attr(v, v->special[k]))
            count[(unsigned char)v->pool[v->off[v->special[k]]]]++;
    v->markup_at[0] = 0;
    for (int b = 0; b < 256; b++)
        v->markup_at[b + 1] = v->markup_at[b] + count[b];
    v->markup = malloc(((size_t)v->markup_at[256] + 1) * sizeof *v->markup);
    if (!v->markup)
        return -1;
    uint32_t fill[256];
    memcpy(fill, v->markup_at, sizeof fill);
    for (int32_t k = 0; k < v->n_special; k++)
        if (markup_attr(v, v->special[k]))
            v->markup[fill[(unsigned char)v->pool[v->off[v->special[k]]]]++] =
                v->special[k];
    return 0;
}

/* Per-model whitespace stripping around special tokens, keyed on names as
 * llama.cpp does (the metadata has no field for it). */
static void set_strip_rules(tok_vocab *v, const gguf_file *f)
{
    gguf_str name = {"", 0};
    (void)gguf_get_str(f, "general.name", &name);
    char lower[64];
    size_t n = name.len < sizeof lower - 1 ? (size_t)name.len : sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name.ptr[i]);
    lower[n] = '\0';
    if (strstr(v->pre_name, "jina-v2-")) {
        int32_t id = tok_find(v, "<mask>");
        if (id >= 0)
            v->attr[id] |= TOK_ATTR_LSTRIP;
    } else if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
        for (int32_t i = 0; i < v->n_special; i++)
            v->attr[v->special[i]] |= TOK_ATTR_RSTRIP;
        int32_t id = tok_find(v, "</s>");
        if (id >= 0)
            v->attr[id] |= TOK_ATTR_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>",
                                           NULL};
        for (const char *const *t = keep; *t; t++)
            if ((id = tok_find(v, *t)) >= 0)
                v->attr[id] &= (uint16_t)~TOK_ATTR_RSTRIP;
    } else if (strstr(lower, "modern-bert")) {
        int32_t id = tok_find(v, "[MASK]");
        if (id >= 0)
            v->attr[id] |= TOK_ATTR_LSTRIP;
    }
}

static int load_tokens(tok_vocab *v, const gguf_file *f, char *err,
                       size_t errlen)
{
    const gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!kv) {
        seterr(err, errlen, "tokenizer.ggml.tokens is missing: the file has "
               "no vocabulary");
        return -1;
    }
    if (kv->type != GGUF_VT_ARRAY || kv->arr_type != GGUF_VT_STRING) {
        seterr(err, errlen, "tokenizer.ggml.tokens is not an array of "
               "strings");
        return -1;
    }
    if (kv->arr_len == 0 || kv->arr_len > (uint64_t)INT32_MAX - 1) {
        seterr(err, errlen, "tokenizer.ggml.tokens has %llu tokens",
               (unsigned long long)kv->arr_len);
        return -1;
    }
    v->n = (int32_t)kv->arr_len;
    uint64_t total = 0;
    for (int32_t i = 0; i < v->n; i++)
        total += kv->arr_strs[i].len;
    if (total >= UINT32_MAX) {
        seterr(err, errlen, "tokenizer.ggml.tokens: texts too large");
        return -1;
    }
    size_t n = (size_t)v->n;
    v->pool = malloc(total ? (size_t)total : 1);
    v->off = malloc((n + 1) * sizeof *v->off);
    v->score = calloc(n, sizeof *v->score);
    v->attr = malloc(n * sizeof *v->attr);
    if (!v->pool || !v->off || !v->score || !v->attr) {
        seterr(err, errlen, "out of memory for %d tokens", (int)v->n);
        return -1;
    }
    uint32_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        v->off[i] = pos;
        if (kv->arr_strs[i].len > 0)
            memcpy(v->pool + pos, kv->arr_strs[i].ptr, kv->arr_strs[i].len);
        pos += (uint32_t)kv->arr_strs[i].len;
        v->attr[i] = TOK_ATTR_NORMAL;
    }
    v->off[n] = pos;

    const gguf_kv *sc = gguf_find_kv(f, "tokenizer.ggml.scores");
    if (sc) {
        if (sc->type != GGUF_VT_ARRAY || sc->arr_type != GGUF_VT_FLOAT32) {
            seterr(err, errlen, "tokenizer.ggml.scores is not an array of "
                   "float32");
            return -1;
        }
        if (sc->arr_len != kv->arr_len) {
            seterr(err, errlen, "tokenizer.ggml.scores has %llu entries for "
                   "%d tokens", (unsigned long long)sc->arr_len, (int)v->n);
            return -1;
        }
        /* the array sits unaligned in the file: copy, do not cast */
        memcpy(v->score, sc->arr_data, n * sizeof *v->score);
    }

    const gguf_kv *tt = gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (tt) {
        if (tt->type != GGUF_VT_ARRAY || tt->arr_type != GGUF_VT_INT32) {
            seterr(err, errlen, "tokenizer.ggml.token_type is not an array "
                   "of int32");
            return -1;
        }
        if (tt->arr_len != kv->arr_len) {
            seterr(err, errlen, "tokenizer.ggml.token_type has %llu entries "
                   "for %d tokens", (unsigned long long)tt->arr_len,
                   (int)v->n);
            return -1;
        }
        const unsigned char *p = tt->arr_data;
        for (size_t i = 0; i < n; i++) {
            int32_t t;
            memcpy(&t, p + 4 * i, 4);
            if (t < 0 || t >= TT_COUNT) {
                seterr(err, errlen, "tokenizer.ggml.token_type[%zu] = %d is "
                       "not a token type (0..%d)", i, (int)t, TT_COUNT - 1);
                return -1;
            }
            v->attr[i] = attr_of_type(t);
        }
    }
    return build_table(v);
}

static void find_byte_tokens(tok_vocab *v)
{
    for (unsigned b = 0; b < 256; b++) {
        int32_t id = -1;
        if (v->kind == TOK_KIND_SPM) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            id = tok_find(v, name);
            if (id < 0) {
                char c = (char)b;
                id = tok_lookup(v, &c, 1);
            }
        } else if (v->kind == TOK_KIND_BPE) {
            char u[4];
            uint32_t cp = tok_bpe_byte_cp(b);
            size_t l = cp < 0x80 ? 1 : 2; /* mapped code points < U+0800 */
            if (l == 1) {
                u[0] = (char)cp;
            } else {
                u[0] = (char)(0xC0 | (cp >> 6));
                u[1] = (char)(0x80 | (cp & 0x3F));
            }
            id = tok_lookup(v, u, l);
        }
        v->byte_tok[b] = id;
    }
}

int tok_load(const gguf_file *f, tok_vocab **out, char *err, size_t errlen)
{
    *out = NULL;
    tok_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    gguf_str model;
    int r = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (r == -1) {
        seterr(err, errlen, "tokenizer.ggml.model is missing: the file has "
               "no tokenizer");
        goto fail;
    }
    if (r != 0) {
        seterr(err, errlen, "tokenizer.ggml.model is not a string");
        goto fail;
    }
    if (gguf_str_eq(model, "llama")) {
        v->kind = TOK_KIND_SPM;
    } else if (gguf_str_eq(model, "gpt2")) {
        v->kind = TOK_KIND_BPE;
    } else if (gguf_str_eq(model, "bert")) {
        v->kind = TOK_KIND_WPM;
    } else {
        const char *what = gguf_str_eq(model, "t5") ? " (Unigram)" : "";
        seterr(err, errlen, "tokenizer model '%.*s'%s is not supported: "
               "only 'llama' (SentencePiece), 'gpt2' (byte-level BPE) and "
               "'bert' (WordPiece) are",
               (int)(model.len > 32 ? 32 : model.len), model.ptr, what);
        goto fail;
    }

    gguf_str pre = {"default", 7};
    r = gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    if (r == -2) {
        seterr(err, errlen, "tokenizer.ggml.pre is not a string");
        goto fail;
    }
    if (r == -1 || v->kind == TOK_KIND_SPM)
        pre = (gguf_str){"default", 7}; /* SentencePiece has no pre-split */
    if (pre.len >= sizeof v->pre_name) {
        seterr(err, errlen, "tokenizer.ggml.pre is too long");
        goto fail;
    }
    memcpy(v->pre_name, pre.ptr, pre.len);
    v->pre_name[pre.len] = '\0';
    if (strlen(v->pre_name) != pre.len) {
        seterr(err, errlen, "tokenizer.ggml.pre contains a NUL byte");
        goto fail;
    }

    if (load_tokens(v, f, err, errlen))
        goto fail;

    /* defaults, then what the metadata says. SentencePiece vocabularies
     * conventionally put <unk>, <s>, </s> at 0, 1, 2 (llama.cpp assumes so
     * too); for BPE a missing id means none (llama.cpp would assume 11) */
    v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = v->sep = -1;
    if (v->kind == TOK_KIND_SPM) {
        v->bos = v->n > 1 ? 1 : -1;
        v->eos = v->n > 2 ? 2 : -1;
        v->unk = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
    } else if (v->kind == TOK_KIND_WPM) {
        /* llama.cpp's defaults for BERT vocabularies: [UNK] 100,
         * [CLS] 101 first, [SEP] 102 last. [SEP] serves as EOS here (the
         * API has no separator), so a caller honouring add_eos ends the
         * sequence with it as llama.cpp's add_sep does. */
        v->unk = v->n > 100 ? 100 : -1;
        v->bos = v->n > 101 ? 101 : -1;
        v->sep = v->n > 102 ? 102 : -1;
        v->add_bos = true;
        v->add_eos = true;
        tok_wpm_setup(v);
    } else {
        const gguf_kv *merges = gguf_find_kv(f, "tokenizer.ggml.merges");
        if (!merges) {
            seterr(err, errlen, "tokenizer.ggml.merges is missing (required "
                   "by a 'gpt2' tokenizer)");
            goto fail;
        }
        if (merges->type != GGUF_VT_ARRAY ||
            merges->arr_type != GGUF_VT_STRING) {
            seterr(err, errlen, "tokenizer.ggml.merges is not an array of "
                   "strings");
            goto fail;
        }
        if (tok_bpe_setup(v, v->pre_name, merges, err, errlen))
            goto fail;
    }
    if (read_special(f, v, "tokenizer.ggml.bos_token_id", &v->bos, true, err,
                     errlen) ||
        read_special(f, v, "tokenizer.ggml.eos_token_id", &v->eos, true, err,
                     errlen) ||
        read_special(f, v, "tokenizer.ggml.eot_token_id", &v->eot, true, err,
                     errlen) ||
        read_special(f, v, "tokenizer.ggml.eom_token_id", &v->eom, true, err,
                     errlen) ||
        read_special(f, v, "tokenizer.ggml.unknown_token_id", &v->unk, true,
                     err, errlen) ||
        read_special(f, v, "tokenizer.ggml.padding_token_id", &v->pad, false,
                     err, errlen) ||
        read_special(f, v, "tokenizer.ggml.seperator_token_id", &v->sep,
                     false, err, errlen) ||
        read_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos, err,
                  errlen) ||
        read_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos, err,
                  errlen) ||
        read_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix,
                  err, errlen))
        goto fail;
    if (v->kind == TOK_KIND_WPM) {
        if (read_special(f, v, "tokenizer.ggml.cls_token_id", &v->bos, true,
                         err, errlen))
            goto fail;
        if (v->eos < 0)
            v->eos = v->sep;
    }

    settle_roles(v);
    mark_eog(v);
    if (build_specials(v)) {
        seterr(err, errlen, "out of memory");
        goto fail;
    }
    set_strip_rules(v, f);
    if (build_markup(v)) {
        seterr(err, errlen, "out of memory");
        goto fail;
    }
    find_byte_tokens(v);
    *out = v;
    return 0;
fail:
    tok_free(v);
    return -1;
}

void tok_free(tok_vocab *v)
{
    if (!v)
        return;
    if (v->kind == TOK_KIND_BPE)
        tok_bpe_release(v);
    free(v->pool);
    free(v->off);
    free(v->score);
    free(v->attr);
    free(v->tab);
    free(v->special);
    free(v->markup);
    free(v);
}

/* ------------------------------------------------------------ accessors */

int tok_kind(const tok_vocab *v) { return v->kind; }
const char *tok_pre_name(const tok_vocab *v) { return v->pre_name; }
int32_t tok_n_vocab(const tok_vocab *v) { return v->n; }
int32_t tok_bos(const tok_vocab *v) { return v->bos; }
int32_t tok_eos(const tok_vocab *v) { return v->eos; }
bool tok_add_bos_default(const tok_vocab *v) { return v->add_bos; }
bool tok_add_eos_default(const tok_vocab *v) { return v->add_eos; }

bool tok_is_eog(const tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n && (v->attr[id] & TOK_ATTR_EOG);
}

bool tok_is_control(const tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n && (v->attr[id] & TOK_ATTR_CONTROL);
}

bool tok_is_user_defined(const tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n && (v->attr[id] & TOK_ATTR_USER_DEFINED);
}

bool tok_is_markup(const tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n && v->off[id + 1] > v->off[id] && markup_attr(v, id);
}

size_t tok_markup_find(const tok_vocab *v, const char *text, size_t len, int which,
                       int32_t *id, size_t *tlen)
{
    for (size_t i = 0; i < len; i++) {
        unsigned b = (unsigned char)text[i];
        for (uint32_t k = v->markup_at[b]; k < v->markup_at[b + 1]; k++) {
            int32_t t = v->markup[k];
            bool ctl = v->attr[t] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN);
            if (!(which & (ctl ? TOK_MARKUP_CONTROL : TOK_MARKUP_USER)))
                continue;
            size_t n;
            const char *p = tok_text_ptr(v, t, &n);
            if (n <= len - i && memcmp(text + i, p, n) == 0) {
                *id = t;
                *tlen = n;
                return i;
            }
        }
    }
    return len;
}

int32_t tok_find(const tok_vocab *v, const char *text)
{
    return tok_lookup(v, text, strlen(text));
}

const char *tok_text(const tok_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->n)
        return NULL;
    return tok_text_ptr(v, id, len);
}

/* ------------------------------------------------------------ encode */

/* A piece of the input: raw text [off, off+len), or a special token. */
typedef struct frag {
    int32_t id; /* -1 for text */
    size_t off, len;
} frag;

typedef struct frags {
    frag *a;
    size_t n, cap;
} frags;

static int frags_push(frags *l, int32_t id, size_t off, size_t len)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        frag *na = realloc(l->a, nc * sizeof *na);
        if (!na)
            return -1;
        l->a = na;
        l->cap = nc;
    }
    l->a[l->n++] = (frag){id, off, len};
    return 0;
}

/* The spans of the text where no special token may match (sorted, not
 * overlapping; see tok_encode_plain). */
typedef struct plain_spans {
    const tok_span *a;
    size_t n;
} plain_spans;

/* Whether [off, off + len) overlaps a plain span. A span of length 0 is a
 * cut: a match may end or start there, not run across it. */
static bool in_plain(const plain_spans *p, size_t off, size_t len)
{
    size_t lo = 0, hi = p->n; /* the first span that ends after off */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->a[mid].off + p->a[mid].len > off)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < p->n && p->a[lo].off < off + len;
}

/* Split one text fragment around every occurrence of special token id
 * that does not overlap a plain span. */
static int split_fragment(const tok_vocab *v, const char *text, frag fr,
                          int32_t id, const plain_spans *plain, frags *out)
{
    size_t tl;
    const char *t = tok_text_ptr(v, id, &tl);
    uint16_t attr = v->attr[id];
    size_t base = fr.off, end = fr.off + fr.len, from = base;
    while (from < end) {
        const char *m = memmem(text + from, end - from, t, tl);
        if (!m)
            break;
        size_t mpos = (size_t)(m - text);
        if (in_plain(plain, mpos, tl)) {
            from = mpos + 1; /* text there: look further on */
            continue;
        }
        size_t left = mpos - base;
        if (attr & TOK_ATTR_LSTRIP)
            while (left > 0 && isspace((unsigned char)text[base + left - 1]) &&
                   !in_plain(plain, base + left - 1, 1))
                left--;
        if (left > 0 && frags_push(out, -1, base, left))
            return -1;
        if (frags_push(out, id, 0, 0))
            return -1;
        size_t roff = mpos + tl;
        if (attr & TOK_ATTR_RSTRIP)
            while (roff < end && isspace((unsigned char)text[roff]) &&
                   !in_plain(plain, roff, 1))
                roff++;
        base = from = roff;
    }
    return base < end ? frags_push(out, -1, base, end - base) : 0;
}

/* Find special tokens in the text, longest text first: each one splits
 * the text fragments the earlier ones left. */
static int partition(const tok_vocab *v, const char *text, size_t len,
                     bool parse_special, const plain_spans *plain, frags *cur)
{
    frags nxt = {0};
    bool present[256] = {false};
    for (size_t i = 0; i < len; i++)
        present[(unsigned char)text[i]] = true;
    if (len > 0 && frags_push(cur, -1, 0, len))
        return -1;
    for (int32_t k = 0; k < v->n_special && cur->n > 0; k++) {
        int32_t id = v->special[k];
        uint16_t attr = v->attr[id];
        if (!parse_special && (attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
            continue;
        size_t tl;
        const char *t = tok_text_ptr(v, id, &tl);
        if (tl > len || !present[(unsigned char)t[0]])
            continue;
        bool found = false;
        for (size_t i = 0; i < cur->n && !found; i++)
            found = cur->a[i].id < 0 &&
                    memmem(text + cur->a[i].off, cur->a[i].len, t, tl);
        if (!found)
            continue;
        nxt.n = 0;
        for (size_t i = 0; i < cur->n; i++) {
            int rc = cur->a[i].id >= 0
                         ? frags_push(&nxt, cur->a[i].id, 0, 0)
                         : split_fragment(v, text, cur->a[i], id, plain, &nxt);
            if (rc) {
                free(nxt.a);
                return -1;
            }
        }
        frags t2 = *cur;
        *cur = nxt;
        nxt = t2;
    }
    free(nxt.a);
    return 0;
}

/* The ids of the text, appended to *ids (the caller frees ids->a). */
static int encode_ids(const tok_vocab *v, const char *text, size_t len, bool add_bos,
                      bool parse_special, const plain_spans *plain, tok_ids *ids)
{
    frags fr = {0};
    int rc = -1;
    if (partition(v, text, len, parse_special, plain, &fr))
        goto done;
    if (add_bos && v->bos >= 0 && tok_ids_push(ids, v->bos))
        goto done;
    bool prev_special = true; /* SPM: the text start takes a space too */
    for (size_t i = 0; i < fr.n; i++) {
        const frag *f = &fr.a[i];
        if (f->id >= 0) {
            if (tok_ids_push(ids, f->id))
                goto done;
            prev_special = true;
            continue;
        }
        int r = v->kind == TOK_KIND_SPM
                    ? tok_spm_encode(v, text + f->off, f->len,
                                     v->add_space_prefix && prev_special,
                                     ids)
                : v->kind == TOK_KIND_WPM
                    ? tok_wpm_encode(v, text + f->off, f->len, ids)
                    : tok_bpe_encode(v, text + f->off, f->len, ids);
        if (r)
            goto done;
        prev_special = false;
    }
    rc = ids->n > INT_MAX ? -1 : 0;
done:
    free(fr.a);
    return rc;
}

int tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t *out, int max_out)
{
    if (!v || (!text && len > 0) || max_out < 0 || (!out && max_out > 0))
        return -1;
    tok_ids ids = {0};
    const plain_spans none = {NULL, 0};
    int rc = encode_ids(v, text, len, add_bos, parse_special, &none, &ids);
    if (rc == 0) {
        size_t copy = ids.n < (size_t)max_out ? ids.n : (size_t)max_out;
        if (copy > 0)
            memcpy(out, ids.a, copy * sizeof *out);
        rc = (int)ids.n;
    }
    free(ids.a);
    return rc;
}

/* encode_ids into a malloc'd array of exactly the ids (never NULL on
 * success, even for none). */
static int encode_alloc(const tok_vocab *v, const char *text, size_t len, bool add_bos,
                        bool parse_special, const plain_spans *plain, int32_t **out)
{
    *out = NULL;
    if (!v || (!text && len > 0))
        return -1;
    tok_ids ids = {0};
    if (encode_ids(v, text, len, add_bos, parse_special, plain, &ids)) {
        free(ids.a);
        return -1;
    }
    int32_t *a = realloc(ids.a, (ids.n ? ids.n : 1) * sizeof *a);
    if (!a) {
        free(ids.a);
        return -1;
    }
    *out = a;
    return (int)ids.n;
}

int tok_encode_alloc(const tok_vocab *v, const char *text, size_t len, bool add_bos,
                     bool parse_special, int32_t **out)
{
    const plain_spans none = {NULL, 0};
    return encode_alloc(v, text, len, add_bos, parse_special, &none, out);
}

int tok_encode_plain(const tok_vocab *v, const char *text, size_t len, bool add_bos,
                     const tok_span *plain, size_t n_plain, int32_t **out)
{
    *out = NULL;
    if (!plain && n_plain > 0)
        return -1;
    for (size_t i = 0; i < n_plain; i++)
        if (plain[i].off > len || plain[i].len > len - plain[i].off ||
            (i > 0 && plain[i].off < plain[i - 1].off + plain[i - 1].len))
            return -1;
    const plain_spans p = {plain, n_plain};
    return encode_alloc(v, text, len, add_bos, true, &p, out);
}

/* ------------------------------------------------------------ decode */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static void copy_out(char *buf, size_t cap, const char *t, size_t n)
{
    if (cap > 0)
        memcpy(buf, t, n < cap ? n : cap);
}

/* The bytes of token id, written to buf up to cap; returns the length. */
static size_t piece(const tok_vocab *v, int32_t id, bool special, char *buf,
                    size_t cap)
{
    uint16_t a = v->attr[id];
    size_t n, w = 0;
    const char *t = tok_text_ptr(v, id, &n);
    if (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN) && !special)
        return 0;
    if (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN | TOK_ATTR_USER_DEFINED)) {
        copy_out(buf, cap, t, n);
        return n;
    }
    if (v->kind == TOK_KIND_BPE)
        return a & TOK_ATTR_NORMAL ? tok_bpe_decode_text(t, n, buf, cap) : 0;
    if (a & TOK_ATTR_BYTE) {
        int hi, lo;
        if (n == 6 && memcmp(t, "<0x", 3) == 0 && t[5] == '>' &&
            (hi = hexval(t[3])) >= 0 && (lo = hexval(t[4])) >= 0) {
            char c = (char)(hi * 16 + lo);
            copy_out(buf, cap, &c, 1);
            return 1;
        }
        copy_out(buf, cap, t, n); /* not <0xNN>: show it as it is */
        return n;
    }
    if (!(a & TOK_ATTR_NORMAL))
        return 0; /* unused / undefined tokens render as nothing */
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && memcmp(t + i, "\xE2\x96\x81", 3) == 0) {
            if (w < cap)
                buf[w] = ' ';
            i += 3;
        } else {
            if (w < cap)
                buf[w] = t[i];
            i++;
        }
        w++;
    }
    return w;
}

int tok_piece(const tok_vocab *v, int32_t id, bool special, char *buf,
              size_t cap)
{
    if (!v || id < 0 || id >= v->n || (!buf && cap > 0))
        return -1;
    size_t n = piece(v, id, special, buf, cap);
    return n > INT_MAX ? INT_MAX : (int)n;
}

long tok_decode(const tok_vocab *v, const int32_t *ids, size_t n,
                bool special, char *buf, size_t cap)
{
    if (!v || (!ids && n > 0) || (!buf && cap > 0))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v->n)
            return -1;
    /* which piece loses its leading space (SIZE_MAX: none); WordPiece
     * puts "▁" before every word, the first one included */
    size_t strip_at = SIZE_MAX;
    if ((v->kind == TOK_KIND_SPM && v->add_space_prefix) ||
        v->kind == TOK_KIND_WPM)
        for (size_t i = 0; i < n; i++) {
            char c;
            if (piece(v, ids[i], special, &c, 1) > 0) {
                if (c == ' ')
                    strip_at = i;
                break;
            }
        }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t room = total < cap ? cap - total : 0;
        char *dst = room ? buf + total : NULL;
        size_t pl;
        if (i == strip_at) {
            pl = piece(v, ids[i], special, NULL, 0);
            char *tmp = malloc(pl);
            if (!tmp)
                return -1;
            piece(v, ids[i], special, tmp, pl);
            pl--;
            copy_out(dst, room, tmp + 1, pl);
            free(tmp);
        } else {
            pl = piece(v, ids[i], special, dst, room);
        }
        total += pl;
        if (total > (size_t)LONG_MAX)
            return -1;
    }
    return (long)total;
}

/* ------------------------------------------------------------ stream */

void tok_stream_init(tok_stream *s, const tok_vocab *v)
{
    memset(s, 0, sizeof *s);
    s->v = v;
    s->first = true;
}

/* Turn bytes into complete UTF-8: emits valid sequences, U+FFFD for each
 * maximal ill-formed subpart, and returns in *keep how many trailing bytes
 * are an incomplete sequence to hold back. With out == NULL it only
 * counts. */
static size_t utf8_emit(const unsigned char *p, size_t n, char *out,
                        size_t *keep)
{
    size_t i = 0, w = 0;
    *keep = 0;
    while (i < n) {
        int r = utf8_scan(p + i, n - i);
        if (r == 0) {
            *keep = n - i;
            break;
        }
        if (r > 0) {
            if (out)
                memcpy(out + w, p + i, (size_t)r);
            w += (size_t)r;
            i += (size_t)r;
        } else {
            if (out)
                memcpy(out + w, "\xEF\xBF\xBD", 3);
            w += 3;
            i += (size_t)-r;
        }
    }
    return w;
}

int tok_stream_push(tok_stream *s, int32_t id, char *out, size_t cap)
{
    if (!s || !s->v || id < 0 || id >= s->v->n || (!out && cap > 0))
        return -1;
    unsigned char small[128];
    size_t pl = piece(s->v, id, false, NULL, 0);
    size_t n = (size_t)s->n_pending + pl;
    unsigned char *b = n <= sizeof small ? small : malloc(n);
    if (!b)
        return -1;
    memcpy(b, s->pending, (size_t)s->n_pending);
    piece(s->v, id, false, (char *)b + s->n_pending, pl);

    /* a leading space is a complete character: dropping it does not
     * change how the rest parses */
    size_t skip = s->first && s->strip_space && n > 0 && b[0] == ' ';
    size_t keep;
    size_t w = utf8_emit(b + skip, n - skip, NULL, &keep);
    int rc = -1;
    if (w <= cap && w <= INT_MAX) {
        utf8_emit(b + skip, n - skip, out, &keep);
        memcpy(s->pending, b + n - keep, keep);
        s->n_pending = (int)keep;
        if (w + skip > 0)
            s->first = false;
        rc = (int)w;
    }
    if (b != small)
        free(b);
    return rc;
}

int tok_stream_flush(tok_stream *s, char *out, size_t cap)
{
    if (!s)
        return -1;
    if (s->n_pending == 0)
        return 0;
    if (cap < 3 || !out)
        return -1;
    /* what is pending is a valid prefix cut short: one U+FFFD */
    memcpy(out, "\xEF\xBF\xBD", 3);
    s->n_pending = 0;
    s->first = false;
    return 3;
}
