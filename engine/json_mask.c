/* json_mask.c - the token mask over a vocabulary (json_mask.h). */
#include "json_mask.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define JM_MAX_TOKEN 1024 /* longer tokens are never allowed (none are real) */
#define JM_NOT_PLAIN 255  /* cp[]: not plain string content */

/* One trie node, in depth-first order: its subtree is [index+1, end). */
typedef struct jm_node {
    uint32_t end;  /* first node after the subtree */
    uint32_t tok;  /* toks[tok .. tok+ntok): the tokens whose bytes end here */
    uint16_t ntok;
    uint16_t depth; /* 1 for the children of the root */
    uint8_t byte;
} jm_node;

typedef struct jm_trie {
    jm_node *nodes;
    uint32_t n;
    int32_t *toks;
    uint32_t max_depth;
} jm_trie;

struct jmask_vocab {
    int32_t n;         /* tokens in the vocabulary */
    uint32_t *off;     /* (n + 1) token i's bytes are pool[off[i] .. off[i+1]) */
    uint8_t *pool;
    uint8_t *ok;       /* (n) 1: a normal token with bytes */
    uint8_t *cp;       /* (n) code points of a plain token, JM_NOT_PLAIN otherwise */
    int32_t *eog;      /* end-of-generation tokens */
    int32_t neog;
    uint32_t max_len;  /* longest token, bytes */
    jm_trie all;       /* every allowed-in-principle token */
    jm_trie rest;      /* the tokens that are not plain */
};

/* ---------------------------------------------------------------- build */

typedef struct jm_ent {
    const uint8_t *p;
    uint32_t len;
    int32_t id;
} jm_ent;

static int ent_cmp(const void *a, const void *b)
{
    const jm_ent *x = a, *y = b;
    uint32_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, m);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The trie of the tokens i with want(i): sorted by bytes, so that each
 * token shares the path of its longest common prefix with the previous. */
static int trie_build(jmask_vocab *mv, jm_trie *tr, bool plain)
{
    size_t nent = 0, nbytes = 0;
    for (int32_t i = 0; i < mv->n; i++)
        if (mv->ok[i] && (plain || mv->cp[i] == JM_NOT_PLAIN)) {
            nent++;
            nbytes += mv->off[i + 1] - mv->off[i];
        }
    jm_ent *ents = malloc((nent ? nent : 1) * sizeof *ents);
    uint32_t *stack = malloc((mv->max_len + 1) * sizeof *stack);
    tr->nodes = malloc((nbytes ? nbytes : 1) * sizeof *tr->nodes);
    tr->toks = malloc((nent ? nent : 1) * sizeof *tr->toks);
    if (!ents || !stack || !tr->nodes || !tr->toks) {
        free(ents);
        free(stack);
        return -1;
    }
    nent = 0;
    for (int32_t i = 0; i < mv->n; i++)
        if (mv->ok[i] && (plain || mv->cp[i] == JM_NOT_PLAIN))
            ents[nent++] = (jm_ent){mv->pool + mv->off[i], mv->off[i + 1] - mv->off[i], i};
    qsort(ents, nent, sizeof *ents, ent_cmp);

    uint32_t nn = 0, sp = 0, nt = 0;
    const jm_ent *prev = NULL;
    for (size_t e = 0; e < nent; e++) {
        const jm_ent *t = &ents[e];
        uint32_t lcp = 0;
        if (prev)
            while (lcp < prev->len && lcp < t->len && prev->p[lcp] == t->p[lcp])
                lcp++;
        while (sp > lcp)
            tr->nodes[stack[--sp]].end = nn;
        for (uint32_t d = lcp; d < t->len; d++) {
            tr->nodes[nn] = (jm_node){0, 0, 0, (uint16_t)(d + 1), t->p[d]};
            stack[sp++] = nn++;
        }
        jm_node *last = &tr->nodes[stack[t->len - 1]];
        if (last->ntok++ == 0)
            last->tok = nt;
        tr->toks[nt++] = t->id;
        if (t->len > tr->max_depth)
            tr->max_depth = t->len;
        prev = t;
    }
    while (sp > 0)
        tr->nodes[stack[--sp]].end = nn;
    tr->n = nn;
    free(ents);
    free(stack);
    return 0;
}

/* Is each token plain string content, and of how many code points? Decided
 * by the matcher itself, inside the string of {"type":"string"}, so it
 * agrees with jgram_string_room by construction. */
static int classify_plain(jmask_vocab *mv)
{
    static const char schema[] = "{\"type\":\"string\"}";
    jgram *g = NULL;
    char err[128];
    if (jgram_compile(schema, sizeof schema - 1, &g, err, sizeof err) != JGRAM_OK)
        return -1;
    jgram_state *base = malloc(2 * sizeof *base);
    if (!base) {
        jgram_free(g);
        return -1;
    }
    jgram_state *st = base + 1;
    jgram_init(g, base);
    jgram_feed(g, base, '"');
    for (int32_t i = 0; i < mv->n; i++) {
        mv->cp[i] = JM_NOT_PLAIN;
        if (!mv->ok[i])
            continue;
        const uint8_t *p = mv->pool + mv->off[i];
        uint32_t len = mv->off[i + 1] - mv->off[i], cp = 0, k;
        jgram_state_copy(st, base);
        for (k = 0; k < len; k++) {
            if (p[k] == '"' || p[k] == '\\' || !jgram_feed(g, st, p[k]))
                break;
            cp += (p[k] & 0xC0) != 0x80;
        }
        if (k == len && cp < JM_NOT_PLAIN)
            mv->cp[i] = (uint8_t)cp;
    }
    free(base);
    jgram_free(g);
    return 0;
}

int jmask_vocab_new(const tok_vocab *v, jmask_vocab **out)
{
    *out = NULL;
    jmask_vocab *mv = calloc(1, sizeof *mv);
    if (!mv)
        return -1;
    int32_t n = mv->n = tok_n_vocab(v);
    mv->off = calloc((size_t)n + 1, sizeof *mv->off);
    mv->ok = calloc((size_t)n + 1, 1);
    mv->cp = calloc((size_t)n + 1, 1);
    mv->eog = calloc((size_t)n + 1, sizeof *mv->eog);
    size_t cap = 1u << 20, used = 0;
    mv->pool = malloc(cap);
    if (!mv->off || !mv->ok || !mv->cp || !mv->eog || !mv->pool)
        goto err;
    const uint16_t never = TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN |
                           TOK_ATTR_UNUSED | TOK_ATTR_EOG;
    char buf[JM_MAX_TOKEN];
    for (int32_t i = 0; i < n; i++) {
        mv->off[i] = (uint32_t)used;
        if (tok_is_eog(v, i))
            mv->eog[mv->neog++] = i;
        if (v->attr[i] & never)
            continue;
        int len = tok_piece(v, i, false, buf, sizeof buf);
        if (len <= 0 || len > (int)sizeof buf)
            continue;
        if (used + (size_t)len > cap) {
            uint8_t *p = realloc(mv->pool, cap * 2);
            if (!p)
                goto err;
            mv->pool = p;
            cap *= 2;
        }
        memcpy(mv->pool + used, buf, (size_t)len);
        used += (size_t)len;
        mv->ok[i] = 1;
        if ((uint32_t)len > mv->max_len)
            mv->max_len = (uint32_t)len;
    }
    mv->off[n] = (uint32_t)used;
    if (classify_plain(mv) || trie_build(mv, &mv->all, true) || trie_build(mv, &mv->rest, false))
        goto err;
    *out = mv;
    return 0;
err:
    jmask_vocab_free(mv);
    return -1;
}

static void trie_free(jm_trie *tr)
{
    free(tr->nodes);
    free(tr->toks);
}

void jmask_vocab_free(jmask_vocab *mv)
{
    if (!mv)
        return;
    trie_free(&mv->all);
    trie_free(&mv->rest);
    free(mv->off);
    free(mv->pool);
    free(mv->ok);
    free(mv->cp);
    free(mv->eog);
    free(mv);
}

int32_t jmask_n_vocab(const jmask_vocab *mv)
{
    return mv->n;
}

const uint8_t *jmask_token_bytes(const jmask_vocab *mv, int32_t id, size_t *len)
{
    if (id < 0 || id >= mv->n || !mv->ok[id])
        return NULL;
    *len = mv->off[id + 1] - mv->off[id];
    return mv->pool + mv->off[id];
}

/* ---------------------------------------------------------------- masks */

/* The hot loop: stk[d] is the state after the first d bytes of the current
 * path; a refused byte skips the node's whole subtree. */
static long trie_walk(const jm_trie *tr, const jgram *g, jgram_state *stk, uint8_t *allowed)
{
    long count = 0;
    for (uint32_t i = 0; i < tr->n;) {
        const jm_node *nd = &tr->nodes[i];
        if (!jgram_feed_to(g, &stk[nd->depth - 1], nd->byte, &stk[nd->depth])) {
            i = nd->end;
            continue;
        }
        for (uint32_t k = 0; k < nd->ntok; k++) {
            int32_t id = tr->toks[nd->tok + k];
            count += !allowed[id];
            allowed[id] = 1;
        }
        i++;
    }
    return count;
}

/* The mask of one state without its end-of-generation tokens. */
static long mask_state(const jmask_vocab *mv, const jgram *g, const jgram_state *st,
                       uint8_t *allowed)
{
    memset(allowed, 0, (size_t)mv->n);
    long count = 0;
    const jm_trie *tr = &mv->all;
    uint32_t room;
    if (jgram_string_room(g, st, &room)) {
        /* plain tokens of at most `room` code points: from the table */
        uint8_t lim = room < JM_NOT_PLAIN ? (uint8_t)room : JM_NOT_PLAIN - 1;
        for (int32_t i = 0; i < mv->n; i++) {
            allowed[i] = mv->cp[i] <= lim;
            count += allowed[i];
        }
        tr = &mv->rest;
    }
    jgram_state *stk = malloc(((size_t)tr->max_depth + 1) * sizeof *stk);
    if (!stk)
        return -1;
    jgram_state_copy(&stk[0], st);
    count += trie_walk(tr, g, stk, allowed);
    free(stk);
    return count;
}

long jmask_compute(const jmask_vocab *mv, const jgram *g, const jgram_state *st,
                   uint8_t *allowed)
{
    long count;
    if (st->n <= 1 || jgram_string_room(g, st, &(uint32_t){0})) {
        count = mask_state(mv, g, st, allowed);
    } else {
        /* Alternatives (anyOf threads) advance independently, so a token
         * is allowed iff one of them alone takes it: mask each on its own
         * so a string thread still gets the table while an enum thread
         * beside it prunes the trie at once. (Differs from feeding the
         * whole state only when forks pass JGRAM_MAX_THREADS.) */
        uint8_t *one = malloc((size_t)mv->n);
        jgram_state *t1 = malloc(sizeof *t1);
        count = one && t1 ? 0 : -1;
        memset(allowed, 0, (size_t)mv->n);
        for (uint32_t i = 0; i < st->n && count >= 0; i++) {
            t1->n = 1;
            t1->t[0] = st->t[i];
            if (mask_state(mv, g, t1, one) < 0) {
                count = -1;
                break;
            }
            for (int32_t k = 0; k < mv->n; k++) {
                count += one[k] & !allowed[k];
                allowed[k] |= one[k];
            }
        }
        free(one);
        free(t1);
        if (count < 0)
            return -1;
    }
    if (count < 0)
        return -1;
    if (jgram_accepting(g, st))
        for (int32_t k = 0; k < mv->neog; k++) {
            count += !allowed[mv->eog[k]];
            allowed[mv->eog[k]] = 1;
        }
    return count;
}

void jmask_apply(float *logits, int32_t n_vocab, const uint8_t *allowed)
{
    for (int32_t i = 0; i < n_vocab; i++)
        if (!allowed[i])
            logits[i] = -INFINITY;
}

bool jmask_advance(const jgram *g, jgram_state *st, const uint8_t *bytes, size_t len)
{
    if (len == 0)
        return true;
    jgram_state *tmp = malloc(sizeof *tmp);
    if (!tmp)
        return false;
    jgram_state_copy(tmp, st);
    bool ok = true;
    for (size_t i = 0; i < len && ok; i++)
        ok = jgram_feed(g, tmp, bytes[i]);
    if (ok)
        jgram_state_copy(st, tmp);
    free(tmp);
    return ok;
}
