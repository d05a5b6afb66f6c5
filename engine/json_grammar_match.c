/* json_grammar_match.c - following output bytes through a compiled jgram.
 *
 * A thread is a stack of frames, one per open value (object, array, key,
 * string, number, literal). A byte goes to the top frame; a number or a
 * literal that is complete but could go on ("1" of "12") stays on the stack
 * until a byte that does not continue it, which then closes it and goes to
 * the frame below. Starting a value of an anyOf node forks the thread once
 * per alternative; threads that a byte kills are dropped, identical threads
 * merged, and past JGRAM_MAX_THREADS the extra alternatives are dropped
 * (conservative: what is accepted stays valid).
 */
#include <string.h>

#include "json_grammar_internal.h"

enum { F_OBJ = 1, F_ARR, F_KEY, F_STR, F_NUM, F_LIT };

/* object: after '{'; after ','; after the key; after ':'; after a value */
enum { O_START, O_NEXT, O_COLON, O_VALUE, O_AFTER };
/* array: after '['; after ','; after an item */
enum { A_START, A_NEXT, A_AFTER };
/* string */
enum { S_NORMAL, S_ESC, S_HEX, S_U8, S_LOW_BS, S_LOW_U };
/* number: after '-', "0", nonzero int, '.', fraction, 'e', exponent sign, exponent */
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

#define FL_LOW 1     /* string: a low surrogate escape must come next */
#define FL_KMATCH 2  /* key: still a prefix of a declared name */
#define FL_INTONLY 4 /* number: no fraction or exponent */
#define FL_NEG 8     /* bounded number: a minus sign came first */

typedef struct tset {
    uint32_t n;
    jgram_thread *t; /* JGRAM_MAX_THREADS */
} tset;

static size_t thread_size(const jgram_thread *t)
{
    return offsetof(jgram_thread, f) + (size_t)t->depth * sizeof(jgram_frame);
}

static void tset_add(tset *s, const jgram_thread *t)
{
    size_t sz = thread_size(t);
    for (uint32_t i = 0; i < s->n; i++)
        if (thread_size(&s->t[i]) == sz && memcmp(&s->t[i], t, sz) == 0)
            return;
    if (s->n < JGRAM_MAX_THREADS)
        memcpy(&s->t[s->n++], t, sz);
}

static int32_t deref(const jgram *g, int32_t node)
{
    for (int hops = 0; g->nodes[node].kind == JN_REF && hops < 64; hops++)
        node = g->nodes[node].ref;
    return node;
}

static jgram_frame *push(jgram_thread *t, uint8_t kind, int32_t node)
{
    if (t->depth >= JGRAM_MAX_DEPTH)
        return NULL;
    jgram_frame *f = &t->f[t->depth++];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->node = node;
    f->prop = -1;
    return f;
}

/* The top value is complete: pop it and tell the frame below. */
static void value_done(const jgram *g, jgram_thread *t)
{
    t->depth--;
    if (t->depth == 0) {
        t->root_done = 1;
        return;
    }
    jgram_frame *p = &t->f[t->depth - 1];
    if (p->kind == F_OBJ) {
        if (p->prop >= 0)
            p->seen |= 1ull << (p->prop - (int32_t)g->nodes[p->node].first);
        p->sub = O_AFTER;
    } else {
        p->n++;
        p->sub = A_AFTER;
    }
}

/* ---------------------------------------------------------------- literals */

static const jg_span *lit_at(const jgram *g, const jgram_frame *f, uint32_t i)
{
    return f->kind == F_KEY ? &g->props[i].name : &g->lits[i];
}

/* Advance a sorted candidate set [lo, end) by byte b at position pos. */
static bool cand_step(const jgram *g, const jgram_frame *f, uint32_t end, uint32_t pos, uint8_t b,
                      uint32_t *lo)
{
    const jg_span *base = lit_at(g, f, *lo);
    for (uint32_t i = *lo; i < end; i++) {
        const jg_span *s = lit_at(g, f, i);
        if (s->len < pos || memcmp(g->pool + s->off, g->pool + base->off, pos) != 0)
            break;
        if (s->len > pos && (uint8_t)g->pool[s->off + pos] == b) {
            *lo = i;
            return true;
        }
    }
    return false;
}

static bool lit_complete(const jgram *g, const jgram_frame *f)
{
    return g->lits[f->lo].len == f->n;
}

/* Could the literal go on past its complete current candidate? */
static bool lit_extends(const jgram *g, const jgram_frame *f)
{
    const jg_node *nd = &g->nodes[f->node];
    if (f->lo + 1 >= nd->first + nd->n)
        return false;
    const jg_span *a = &g->lits[f->lo], *b = &g->lits[f->lo + 1];
    return b->len > f->n && memcmp(g->pool + a->off, g->pool + b->off, f->n) == 0;
}

static bool lit_feed(const jgram *g, jgram_thread *t, uint8_t b)
{
    jgram_frame *f = &t->f[t->depth - 1];
    const jg_node *nd = &g->nodes[f->node];
    if (!cand_step(g, f, nd->first + nd->n, f->n, b, &f->lo))
        return false;
    f->n++;
    if (lit_complete(g, f) && !lit_extends(g, f))
        value_done(g, t);
    return true;
}

/* ---------------------------------------------------------------- numbers */

/* A bounded number (jg_node.bounded): its magnitude so far is f->seen.
 * Can some completion of the digits so far (the value itself, or it
 * followed by m more digits) land in [lo, hi]? */
static bool num_viable(const jg_node *nd, const jgram_frame *f)
{
    bool neg = f->flags & FL_NEG;
    if (f->sub == N_MINUS)
        return nd->lo <= 0;
    if (f->sub == N_ZERO)
        return nd->lo <= 0 && nd->hi >= 0;
    int64_t v = (int64_t)f->seen, span = 1; /* [v * 10^m, v * 10^m + 10^m - 1] */
    for (uint32_t digits = f->n - neg; digits <= 18 && v <= JG_NUM_LIMIT; digits++) {
        int64_t top = v + span - 1;
        if (neg ? (-v >= nd->lo && -top <= nd->hi) : (top >= nd->lo && v <= nd->hi))
            return true;
        if (neg ? -v < nd->lo : v > nd->hi)
            return false; /* longer numbers only go further out */
        v *= 10;
        span *= 10;
    }
    return false;
}

static bool num_can_end(const jgram *g, const jgram_frame *f)
{
    if (!(f->sub == N_ZERO || f->sub == N_INT || f->sub == N_FRAC || f->sub == N_EXP))
        return false;
    const jg_node *nd = &g->nodes[f->node];
    if (!nd->bounded)
        return true;
    int64_t v = f->sub == N_ZERO ? 0 : (f->flags & FL_NEG) ? -(int64_t)f->seen : (int64_t)f->seen;
    return v >= nd->lo && v <= nd->hi;
}

static bool num_feed(const jgram *g, jgram_frame *f, uint8_t b)
{
    bool digit = b >= '0' && b <= '9', intonly = f->flags & FL_INTONLY;
    uint8_t next;
    if (f->n >= JGRAM_NUM_MAX)
        return false;
    switch (f->sub) {
    case N_MINUS:
        if (!digit)
            return false;
        next = b == '0' ? N_ZERO : N_INT;
        break;
    case N_ZERO:
    case N_INT:
        if (digit && f->sub == N_INT)
            next = N_INT;
        else if (b == '.' && !intonly)
            next = N_DOT;
        else if ((b == 'e' || b == 'E') && !intonly)
            next = N_E;
        else
            return false;
        break;
    case N_DOT:
    case N_FRAC:
        if (digit)
            next = N_FRAC;
        else if ((b == 'e' || b == 'E') && f->sub == N_FRAC)
            next = N_E;
        else
            return false;
        break;
    case N_E:
        if (b == '+' || b == '-')
            next = N_ESIGN;
        else if (digit)
            next = N_EXP;
        else
            return false;
        break;
    default: /* N_ESIGN, N_EXP */
        if (!digit)
            return false;
        next = N_EXP;
        break;
    }
    /* leave room to end: a number that cannot end within the cap is refused */
    if (f->n + 1 >= JGRAM_NUM_MAX && !(next == N_ZERO || next == N_INT || next == N_FRAC ||
                                      next == N_EXP))
        return false;
    const jg_node *nd = &g->nodes[f->node];
    if (nd->bounded) {
        jgram_frame try = *f;
        try.sub = next;
        try.n++;
        if (next == N_INT)
            try.seen = try.seen * 10 + (uint64_t)(b - '0');
        if (try.seen > (uint64_t)JG_NUM_LIMIT || !num_viable(nd, &try))
            return false;
        *f = try;
        return true;
    }
    f->sub = next;
    f->n++;
    return true;
}

/* ---------------------------------------------------------------- strings */

static bool is_hex(uint8_t b)
{
    return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}

static uint32_t hex_val(uint8_t b)
{
    return b <= '9' ? (uint32_t)(b - '0') : (uint32_t)((b | 0x20) - 'a' + 10);
}

/* One byte inside a string body (not the closing quote). max: code points
 * allowed. Returns false if the byte is not valid JSON string content. */
static bool str_byte(jgram_frame *f, uint8_t b, uint32_t max)
{
    switch (f->sub) {
    case S_NORMAL:
        if (b < 0x20 || b == '"' || f->n >= max)
            return false;
        if (b == '\\') {
            f->sub = S_ESC;
        } else if (b >= 0x80) {
            if (b >= 0xC2 && b <= 0xDF) {
                f->u8rem = 1;
                f->u8lo = 0x80, f->u8hi = 0xBF;
            } else if (b >= 0xE0 && b <= 0xEF) {
                f->u8rem = 2;
                f->u8lo = b == 0xE0 ? 0xA0 : 0x80; /* no overlong forms */
                f->u8hi = b == 0xED ? 0x9F : 0xBF; /* no surrogates */
            } else if (b >= 0xF0 && b <= 0xF4) {
                f->u8rem = 3;
                f->u8lo = b == 0xF0 ? 0x90 : 0x80;
                f->u8hi = b == 0xF4 ? 0x8F : 0xBF; /* nothing past U+10FFFF */
            } else {
                return false;
            }
            f->sub = S_U8;
        }
        f->n++;
        return true;
    case S_U8:
        if (b < f->u8lo || b > f->u8hi)
            return false;
        f->u8lo = 0x80, f->u8hi = 0xBF;
        if (--f->u8rem == 0)
            f->sub = S_NORMAL;
        return true;
    case S_ESC:
        if (b == 'u') {
            f->sub = S_HEX;
            f->hexn = 0;
            f->hex = 0;
            return true;
        }
        if (!b || !strchr("\"\\/bfnrt", b))
            return false;
        f->sub = S_NORMAL;
        return true;
    case S_HEX: {
        if (!is_hex(b))
            return false;
        uint32_t v = f->hex * 16 + hex_val(b);
        bool low = f->flags & FL_LOW;
        /* decide the surrogate cases by the second digit, never later */
        if (f->hexn == 0 && low && v != 0xD)
            return false;
        if (f->hexn == 1 && low && (v < 0xDC || v > 0xDF))
            return false;
        if (f->hexn == 1 && !low && v >= 0xDC && v <= 0xDF)
            return false;
        f->hex = v;
        if (++f->hexn < 4)
            return true;
        if (low) {
            f->flags &= (uint8_t)~FL_LOW;
            f->sub = S_NORMAL;
        } else if (v >= 0xD800 && v <= 0xDBFF) {
            f->flags |= FL_LOW;
            f->sub = S_LOW_BS;
        } else {
            f->sub = S_NORMAL;
        }
        return true;
    }
    case S_LOW_BS:
        if (b != '\\')
            return false;
        f->sub = S_LOW_U;
        return true;
    default: /* S_LOW_U */
        if (b != 'u')
            return false;
        f->sub = S_HEX;
        f->hexn = 0;
        f->hex = 0;
        return true;
    }
}

/* Is there an undeclared-so-far name in props [lo, end) extending prefix
 * of length pos of candidate lo (all candidates when lo == first, pos 0)? */
static bool unseen_with_prefix(const jgram *g, const jgram_frame *obj, uint32_t lo, uint32_t pos)
{
    const jg_node *nd = &g->nodes[obj->node];
    const jg_span *base = &g->props[lo].name;
    for (uint32_t i = lo; i < nd->first + nd->n; i++) {
        const jg_span *s = &g->props[i].name;
        if (s->len < pos || memcmp(g->pool + s->off, g->pool + base->off, pos) != 0)
            break;
        if (!(obj->seen >> (i - nd->first) & 1))
            return true;
    }
    return false;
}

static bool key_feed(const jgram *g, jgram_thread *t, uint8_t b)
{
    jgram_frame *k = &t->f[t->depth - 1], *obj = &t->f[t->depth - 2];
    const jg_node *nd = &g->nodes[obj->node];
    bool strict = nd->addl < 0, declared = nd->n > 0;
    if (b == '"' && k->sub == S_NORMAL) {
        int32_t prop = -1;
        if ((k->flags & FL_KMATCH) && g->props[k->lo].name.len == k->kpos) {
            prop = (int32_t)k->lo;
            if (obj->seen >> (k->lo - nd->first) & 1)
                return false; /* a duplicate */
        } else if (strict) {
            return false;
        }
        t->depth--;
        obj->prop = prop;
        obj->sub = O_COLON;
        return true;
    }
    bool in_escape = k->sub != S_NORMAL && k->sub != S_U8;
    if (!str_byte(k, b, UINT32_MAX))
        return false;
    if (k->flags & FL_KMATCH) {
        uint32_t lo = k->lo;
        if (cand_step(g, k, nd->first + nd->n, k->kpos, b, &lo) &&
            (!strict || unseen_with_prefix(g, obj, lo, k->kpos + 1))) {
            k->lo = lo;
            k->kpos++;
            return true;
        }
        k->flags &= (uint8_t)~FL_KMATCH;
    }
    /* an extra key: escapes could spell a declared name another way */
    if (strict || (declared && (b == '\\' || in_escape)))
        return false;
    return true;
}

static bool str_feed(const jgram *g, jgram_thread *t, uint8_t b)
{
    jgram_frame *f = &t->f[t->depth - 1];
    const jg_node *nd = &g->nodes[f->node];
    if (b == '"' && f->sub == S_NORMAL) {
        if (f->n < nd->min_len)
            return false;
        value_done(g, t);
        return true;
    }
    return str_byte(f, b, nd->max_len);
}

/* ---------------------------------------------------------------- values */

/* The first byte of a value of node `node`: push its frame (forking on
 * anyOf) and add every thread that accepts b to out. */
static void start_value(const jgram *g, const jgram_thread *t0, int32_t node, uint8_t b, tset *out,
                        int hops)
{
    node = deref(g, node);
    const jg_node *nd = &g->nodes[node];
    if (nd->kind == JN_ANYOF) {
        if (hops > 8)
            return;
        for (uint32_t i = 0; i < nd->n; i++)
            start_value(g, t0, g->alts[nd->first + i], b, out, hops + 1);
        return;
    }
    jgram_thread t;
    memcpy(&t, t0, thread_size(t0));
    jgram_frame *f;
    if (nd->kind == JN_LITS || ((b == 't' || b == 'f') && (nd->types & JT_BOOL)) ||
        (b == 'n' && (nd->types & JT_NULL))) {
        int32_t ln = nd->kind == JN_LITS ? node : b == 'n' ? JG_NULL : JG_BOOLS;
        if (!(f = push(&t, F_LIT, ln)))
            return;
        f->lo = g->nodes[ln].first;
        if (!lit_feed(g, &t, b))
            return;
    } else if (b == '{' && (nd->types & JT_OBJ)) {
        if (!(f = push(&t, F_OBJ, node)))
            return;
        f->sub = O_START;
    } else if (b == '[' && (nd->types & JT_ARR)) {
        if (!(f = push(&t, F_ARR, node)))
            return;
        f->sub = A_START;
    } else if (b == '"' && (nd->types & JT_STR)) {
        if (!(f = push(&t, F_STR, node)))
            return;
    } else if ((b == '-' || (b >= '0' && b <= '9')) && (nd->types & JT_INT)) {
        if (!(f = push(&t, F_NUM, node)))
            return;
        f->flags = (nd->types & JT_NUM) ? 0 : FL_INTONLY;
        f->sub = b == '-' ? N_MINUS : b == '0' ? N_ZERO : N_INT;
        f->n = 1;
        f->seen = b >= '1' && b <= '9' ? (uint64_t)(b - '0') : 0;
        if (b == '-')
            f->flags |= FL_NEG;
        if (nd->bounded && !num_viable(nd, f))
            return;
    } else {
        return;
    }
    t.ws = 0;
    tset_add(out, &t);
}

static bool can_add_key(const jgram *g, const jgram_frame *f)
{
    const jg_node *nd = &g->nodes[f->node];
    return nd->addl >= 0 || (nd->n > 0 && unseen_with_prefix(g, f, nd->first, 0));
}

/* A byte for an object or array frame (the top one). */
static void container_feed(const jgram *g, const jgram_thread *t0, uint8_t b, tset *out)
{
    jgram_thread t;
    memcpy(&t, t0, thread_size(t0));
    jgram_frame *f = &t.f[t.depth - 1];
    const jg_node *nd = &g->nodes[f->node];
    if (b == ' ' || b == '\n') {
        if (t.ws >= JGRAM_WS_MAX)
            return;
        t.ws++;
        tset_add(out, &t);
        return;
    }
    if (f->kind == F_ARR) {
        if (f->sub == A_NEXT || (f->sub == A_START && nd->max_items > 0))
            start_value(g, &t, nd->items, b, out, 0); /* copies t */
        if (b == ']' && f->sub != A_NEXT && f->n >= nd->min_items) {
            value_done(g, &t);
        } else if (b == ',' && f->sub == A_AFTER && f->n < nd->max_items) {
            f->sub = A_NEXT;
        } else {
            return;
        }
        t.ws = 0;
        tset_add(out, &t);
        return;
    }
    switch (f->sub) {
    case O_START:
    case O_NEXT:
        if (b == '"' && can_add_key(g, f)) {
            jgram_frame *k = push(&t, F_KEY, f->node);
            if (!k)
                return;
            k->lo = nd->first;
            k->flags = nd->n ? FL_KMATCH : 0;
        } else if (b == '}' && f->sub == O_START && (nd->required & ~f->seen) == 0) {
            value_done(g, &t);
        } else {
            return;
        }
        break;
    case O_COLON:
        if (b != ':')
            return;
        f->sub = O_VALUE;
        break;
    case O_VALUE:
        start_value(g, &t, f->prop >= 0 ? g->props[f->prop].node : nd->addl, b, out, 0);
        return;
    default: /* O_AFTER */
        if (b == ',' && can_add_key(g, f))
            f->sub = O_NEXT;
        else if (b == '}' && (nd->required & ~f->seen) == 0)
            value_done(g, &t);
        else
            return;
        break;
    }
    t.ws = 0;
    tset_add(out, &t);
}

static void thread_feed(const jgram *g, const jgram_thread *t0, uint8_t b, tset *out)
{
    if (t0->depth == 0) {
        if (!t0->root_done)
            start_value(g, t0, g->root, b, out, 0);
        return;
    }
    jgram_thread t;
    memcpy(&t, t0, thread_size(t0));
    jgram_frame *f = &t.f[t.depth - 1];
    bool ok;
    switch (f->kind) {
    case F_OBJ:
    case F_ARR:
        container_feed(g, &t, b, out);
        return;
    case F_KEY:
        ok = key_feed(g, &t, b);
        break;
    case F_STR:
        ok = str_feed(g, &t, b);
        break;
    case F_NUM:
        ok = num_feed(g, f, b);
        if (!ok && num_can_end(g, f)) {
            value_done(g, &t);
            thread_feed(g, &t, b, out); /* the byte belongs to the frame below */
            return;
        }
        break;
    default: /* F_LIT */
        ok = lit_feed(g, &t, b);
        if (!ok && lit_complete(g, f)) {
            value_done(g, &t);
            thread_feed(g, &t, b, out);
            return;
        }
        break;
    }
    if (ok)
        tset_add(out, &t);
}

/* ---------------------------------------------------------------- interface */

void jgram_init(const jgram *g, jgram_state *st)
{
    (void)g;
    st->n = 1;
    memset(&st->t[0], 0, offsetof(jgram_thread, f));
}

void jgram_state_copy(jgram_state *dst, const jgram_state *src)
{
    dst->n = src->n;
    for (uint32_t i = 0; i < src->n; i++)
        memcpy(&dst->t[i], &src->t[i], thread_size(&src->t[i]));
}

static bool feed_into(const jgram *g, const jgram_state *st, uint8_t b, jgram_state *next)
{
    tset out = {0, next->t};
    for (uint32_t i = 0; i < st->n; i++)
        thread_feed(g, &st->t[i], b, &out);
    next->n = out.n;
    return out.n > 0;
}

bool jgram_feed(const jgram *g, jgram_state *st, uint8_t byte)
{
    jgram_state next;
    if (!feed_into(g, st, byte, &next))
        return false;
    jgram_state_copy(st, &next);
    return true;
}

bool jgram_accepting(const jgram *g, const jgram_state *st)
{
    for (uint32_t i = 0; i < st->n; i++) {
        const jgram_thread *t = &st->t[i];
        if (t->depth == 0 && t->root_done)
            return true;
        if (t->depth == 1 && t->f[0].kind == F_NUM && num_can_end(g, &t->f[0]))
            return true;
        if (t->depth == 1 && t->f[0].kind == F_LIT && lit_complete(g, &t->f[0]))
            return true;
    }
    return false;
}

void jgram_allowed_bytes(const jgram *g, const jgram_state *st, bool out[256])
{
    jgram_state next;
    for (int b = 0; b < 256; b++)
        out[b] = feed_into(g, st, (uint8_t)b, &next);
}

bool jgram_feed_to(const jgram *g, const jgram_state *src, uint8_t byte, jgram_state *dst)
{
    return feed_into(g, src, byte, dst);
}

/* One thread's part of jgram_string_room. */
static bool thread_string_room(const jgram *g, const jgram_thread *t, uint32_t *room)
{
    if (t->depth == 0)
        return false;
    const jgram_frame *f = &t->f[t->depth - 1];
    if (f->sub != S_NORMAL)
        return false;
    if (f->kind == F_STR) {
        uint32_t max = g->nodes[f->node].max_len;
        *room = f->n < max ? max - f->n : 0;
        return true;
    }
    /* an extra key (see key_feed): plain bytes go through str_byte alone */
    if (f->kind == F_KEY && !(f->flags & FL_KMATCH) && t->depth >= 2 &&
        g->nodes[t->f[t->depth - 2].node].addl >= 0) {
        *room = UINT32_MAX;
        return true;
    }
    return false;
}

bool jgram_string_room(const jgram *g, const jgram_state *st, uint32_t *room)
{
    *room = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        uint32_t r;
        if (!thread_string_room(g, &st->t[i], &r))
            return false;
        if (r > *room)
            *room = r;
    }
    return st->n > 0;
}
