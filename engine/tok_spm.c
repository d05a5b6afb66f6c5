/* tok_spm.c - SentencePiece BPE ("llama" tokenizer model), the way
 * llama.cpp runs it on a GGUF vocabulary.
 *
 * Spaces become "▁" (U+2581), and a fragment that starts the text or
 * follows a special token gets one more in front (add_space_prefix). The
 * text is cut into UTF-8 characters; then, repeatedly, the adjacent pair
 * whose concatenation is the vocabulary token with the highest score is
 * merged (ties: leftmost first). A final symbol that is not a token is
 * spelled with byte tokens <0xNN>, or the unknown token when the
 * vocabulary has no byte tokens.
 *
 * Cost: O(n log n) in the fragment length, one hash lookup per candidate
 * pair.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct sym {
    uint32_t start, len; /* bytes of the escaped text */
    int32_t prev, next;
} sym;

typedef struct work {
    const char *s;
    sym *syms;
    tok_queue q;
} work;

static int try_pair(const tok_vocab *v, work *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    const sym *a = &w->syms[l], *b = &w->syms[r];
    /* a and b are adjacent, so their texts are contiguous */
    int32_t id = tok_lookup_text(v, w->s + a->start, a->len + b->len);
    if (id < 0)
        return 0;
    tok_bigram bg = {l, r, v->score[id], a->len, b->len};
    return tok_queue_push(&w->q, bg);
}

static int emit_symbol(const tok_vocab *v, const unsigned char *p, size_t n,
                       tok_ids *out)
{
    int32_t id = tok_lookup_text(v, (const char *)p, n);
    if (id >= 0)
        return tok_ids_push(out, id);
    for (size_t i = 0; i < n; i++) {
        id = v->byte_tok[p[i]];
        if (id < 0)
            id = v->unk;
        if (id >= 0 && tok_ids_push(out, id))
            return -1;
    }
    return 0;
}

int tok_spm_encode(const tok_vocab *v, const char *text, size_t len,
                   bool prefix_space, tok_ids *out)
{
    static const char ws[3] = {'\xE2', '\x96', '\x81'}; /* "▁" */
    size_t n_sp = 0;
    for (size_t i = 0; i < len; i++)
        n_sp += text[i] == ' ';
    if (len > UINT32_MAX / 4)
        return -1;
    /* each space grows from 1 to 3 bytes; the prefix adds 3 */
    size_t elen = len + 2 * n_sp + (prefix_space ? 3 : 0);
    if (elen == 0)
        return 0;

    int rc = -1;
    char *s = malloc(elen);
    sym *syms = malloc(elen * sizeof *syms);
    work w = {.s = s, .syms = syms};
    if (!s || !syms)
        goto done;
    size_t p = 0;
    if (prefix_space) {
        memcpy(s, ws, 3);
        p = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + p, ws, 3);
            p += 3;
        } else {
            s[p++] = text[i];
        }
    }

    /* one symbol per UTF-8 character; a byte that does not start a
     * well-formed sequence is a symbol of its own (it ends up as <0xNN>) */
    int32_t n = 0;
    for (size_t i = 0; i < elen;) {
        size_t l = tok_utf8_len((const unsigned char *)s + i, elen - i);
        if (!l)
            l = 1;
        syms[n].start = (uint32_t)i;
        syms[n].len = (uint32_t)l;
        syms[n].prev = n - 1;
        syms[n].next = n + 1;
        n++;
        i += l;
    }
    syms[n - 1].next = -1;

    for (int32_t i = 1; i < n; i++)
        if (try_pair(v, &w, i - 1, i))
            goto done;
    while (w.q.n > 0) {
        tok_bigram b = tok_queue_pop(&w.q);
        sym *l = &syms[b.left], *r = &syms[b.right];
        if (l->len == 0 || r->len == 0 || l->len != b.llen || r->len != b.rlen ||
            l->next != b.right)
            continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = b.left;
        if (try_pair(v, &w, l->prev, b.left) ||
            try_pair(v, &w, b.left, l->next))
            goto done;
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next)
        if (emit_symbol(v, (const unsigned char *)s + syms[i].start,
                        syms[i].len, out))
            goto done;
    rc = 0;
done:
    free(s);
    free(syms);
    tok_queue_free(&w.q);
    return rc;
}
