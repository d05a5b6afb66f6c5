/* json_grammar_compile.c - JSON Schema text -> jgram nodes (json_grammar.h).
 *
 * Two passes: a small JSON reader builds a tree (strings decoded, numbers
 * kept as written), then compile() walks the schema, checking every keyword
 * against the supported list and building nodes. $ref targets are compiled
 * once each and memoised before their body is compiled, so a recursive
 * schema becomes a cycle in the node graph (the matcher's depth cap bounds
 * it). enum/const values become canonical compact JSON byte strings.
 */
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_grammar_internal.h"

/* ------------------------------------------------------------ compiler */

typedef struct cc {
    jgram *g;
    const jgram_jv *root;
    char path[512]; /* JSON pointer of the schema being compiled */
    size_t plen;
    char *err;
    size_t errlen;
    jgram_status st;
    const jgram_jv **memo_v; /* $ref targets compiled so far ... */
    int32_t *memo_n;   /* ... and their (JN_REF) nodes */
    size_t nmemo, cap_memo;
    char *buf; /* canonical serialisation scratch */
    size_t nbuf, cap_buf;
} cc;

static int32_t fail(cc *c, jgram_status st, const char *fmt, ...)
{
    if (c->st != JGRAM_OK)
        return -1;
    c->st = st;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->errlen)
        snprintf(c->err, c->errlen, "%s at %s", msg, c->plen ? c->path : "the schema root");
    return -1;
}

/* Push one path segment (escaped per RFC 6901); returns the old length. */
static size_t path_push(cc *c, const char *seg, size_t len)
{
    size_t old = c->plen;
    if (c->plen + 1 < sizeof c->path)
        c->path[c->plen++] = '/';
    for (size_t i = 0; i < len && c->plen + 3 < sizeof c->path; i++) {
        if (seg[i] == '~' || seg[i] == '/') {
            c->path[c->plen++] = '~';
            c->path[c->plen++] = seg[i] == '~' ? '0' : '1';
        } else {
            c->path[c->plen++] = seg[i];
        }
    }
    c->path[c->plen] = 0;
    return old;
}

static void path_pop(cc *c, size_t old)
{
    c->plen = old;
    c->path[old] = 0;
}

#define GROW(c, arr, n, cap)                                                                   \
    do {                                                                                       \
        if ((n) == (cap)) {                                                                    \
            uint32_t nc_ = (cap) ? (cap) * 2 : 16;                                             \
            void *p_ = realloc((arr), (size_t)nc_ * sizeof *(arr));                            \
            if (!p_)                                                                           \
                return fail((c), JGRAM_ENOMEM, "out of memory");                               \
            (arr) = p_;                                                                        \
            (cap) = nc_;                                                                       \
        }                                                                                      \
    } while (0)

static int32_t new_node(cc *c)
{
    jgram *g = c->g;
    if (g->nnodes >= JGRAM_MAX_NODES)
        return fail(c, JGRAM_ELIMIT, "schema too large (over %d nodes)", JGRAM_MAX_NODES);
    GROW(c, g->nodes, g->nnodes, g->cap_nodes);
    jg_node *n = &g->nodes[g->nnodes];
    memset(n, 0, sizeof *n);
    n->addl = JG_ANY;
    n->items = JG_ANY;
    n->max_items = UINT32_MAX;
    n->max_len = UINT32_MAX;
    return (int32_t)g->nnodes++;
}

static int32_t pool_add(cc *c, const char *s, size_t len, jg_span *out)
{
    jgram *g = c->g;
    if (len > JGRAM_MAX_SCHEMA || g->npool + len > JGRAM_MAX_SCHEMA * 4u)
        return fail(c, JGRAM_ELIMIT, "schema too large");
    while (g->npool + len + 1 > g->cap_pool) {
        uint32_t nc = g->cap_pool ? g->cap_pool * 2 : 1024;
        char *p = realloc(g->pool, nc);
        if (!p)
            return fail(c, JGRAM_ENOMEM, "out of memory");
        g->pool = p;
        g->cap_pool = nc;
    }
    memcpy(g->pool + g->npool, s, len);
    out->off = g->npool;
    out->len = (uint32_t)len;
    g->npool += (uint32_t)len;
    return 0;
}

static int buf_put(cc *c, const char *s, size_t len)
{
    if (c->nbuf + len > JGRAM_MAX_SCHEMA)
        return -1;
    if (c->nbuf + len > c->cap_buf) {
        size_t nc = (c->nbuf + len) * 2 + 64;
        char *b = realloc(c->buf, nc);
        if (!b)
            return -1;
        c->buf = b;
        c->cap_buf = nc;
    }
    memcpy(c->buf + c->nbuf, s, len);
    c->nbuf += len;
    return 0;
}

/* A JSON string body the way it must be written: only '"', '\\' and control
 * characters escaped, the short forms where JSON has them. */
static int ser_str(cc *c, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char e[8];
        const char *k = ch ? strchr("\"\\\b\f\n\r\t", ch) : NULL;
        if (k) {
            e[0] = '\\';
            e[1] = "\"\\bfnrt"[k - "\"\\\b\f\n\r\t"];
            if (buf_put(c, e, 2) < 0)
                return -1;
        } else if (ch < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", ch);
            if (buf_put(c, e, 6) < 0)
                return -1;
        } else if (buf_put(c, (const char *)&s[i], 1) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Canonical compact JSON: no whitespace, members in the order given. */
static int ser(cc *c, const jgram_jv *v)
{
    switch (v->t) {
    case 's':
        return buf_put(c, "\"", 1) || ser_str(c, v->s, v->len) || buf_put(c, "\"", 1) ? -1 : 0;
    case 'n':
        return buf_put(c, v->s, v->len);
    case 't':
        return buf_put(c, "true", 4);
    case 'f':
        return buf_put(c, "false", 5);
    case 'z':
        return buf_put(c, "null", 4);
    default:
        break;
    }
    if (buf_put(c, v->t == 'o' ? "{" : "[", 1) < 0)
        return -1;
    for (size_t i = 0; i < v->n; i++) {
        if (i && buf_put(c, ",", 1) < 0)
            return -1;
        if (v->t == 'o' && (buf_put(c, "\"", 1) || ser_str(c, v->key[i], v->klen[i]) ||
                            buf_put(c, "\":", 2)))
            return -1;
        if (ser(c, &v->kid[i]) < 0)
            return -1;
    }
    return buf_put(c, v->t == 'o' ? "}" : "]", 1);
}

static int span_cmp(const jgram *g, const jg_span *a, const jg_span *b)
{
    uint32_t m = a->len < b->len ? a->len : b->len;
    int r = memcmp(g->pool + a->off, g->pool + b->off, m);
    if (r)
        return r;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Insertion sorts (n <= JGRAM_MAX_LITS): qsort has no context argument. */
static void sort_spans(const jgram *g, jg_span *s, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        jg_span x = s[i];
        uint32_t j = i;
        for (; j > 0 && span_cmp(g, &s[j - 1], &x) > 0; j--)
            s[j] = s[j - 1];
        s[j] = x;
    }
}

static void sort_props(const jgram *g, jg_prop *p, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        jg_prop x = p[i];
        uint32_t j = i;
        for (; j > 0 && span_cmp(g, &p[j - 1].name, &x.name) > 0; j--)
            p[j] = p[j - 1];
        p[j] = x;
    }
}

/* A node matching exactly the canonical forms of vals (n of them). */
static int32_t compile_lits(cc *c, const jgram_jv *vals, size_t n)
{
    jgram *g = c->g;
    if (n == 0)
        return fail(c, JGRAM_EINVALID, "empty 'enum' is unsatisfiable");
    if (n > JGRAM_MAX_LITS)
        return fail(c, JGRAM_ELIMIT, "'enum' has more than %d values", JGRAM_MAX_LITS);
    int32_t id = new_node(c);
    if (id < 0)
        return -1;
    uint32_t first = g->nlits;
    for (size_t i = 0; i < n; i++) {
        c->nbuf = 0;
        if (ser(c, &vals[i]) < 0)
            return fail(c, JGRAM_ELIMIT, "'enum' value too large");
        GROW(c, g->lits, g->nlits, g->cap_lits);
        if (pool_add(c, c->buf, c->nbuf, &g->lits[g->nlits]) < 0)
            return -1;
        g->nlits++;
    }
    sort_spans(g, g->lits + first, g->nlits - first);
    uint32_t k = first + 1; /* drop duplicates */
    for (uint32_t i = first + 1; i < g->nlits; i++)
        if (span_cmp(g, &g->lits[i], &g->lits[k - 1]) != 0)
            g->lits[k++] = g->lits[i];
    g->nlits = k;
    g->nodes[id].kind = JN_LITS;
    g->nodes[id].first = first;
    g->nodes[id].n = k - first;
    return id;
}

static int32_t compile(cc *c, const jgram_jv *s);

/* "#", "#/$defs/name" or "#/definitions/name" (RFC 6901 escapes). */
static int32_t compile_ref(cc *c, const jgram_jv *ref)
{
    if (ref->t != 's')
        return fail(c, JGRAM_EINVALID, "'$ref' is not a string");
    const jgram_jv *t = c->root;
    const char *p = ref->s, *end = ref->s + ref->len;
    if (p == end || *p++ != '#')
        return fail(c, JGRAM_EUNSUPPORTED, "unsupported '$ref' \"%s\" (only local #/$defs/...)",
                    ref->s);
    int seg = 0;
    while (p < end) {
        if (*p++ != '/' || seg > 1)
            goto bad;
        char name[256];
        size_t nl = 0;
        while (p < end && *p != '/' && nl + 1 < sizeof name) {
            if (*p == '~' && p + 1 < end && (p[1] == '0' || p[1] == '1')) {
                name[nl++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else {
                name[nl++] = *p++;
            }
        }
        name[nl] = 0;
        if (seg == 0 && strcmp(name, "$defs") != 0 && strcmp(name, "definitions") != 0)
            goto bad;
        t = jgram_jv_get(t, name);
        if (!t)
            return fail(c, JGRAM_EINVALID, "'$ref' \"%s\" does not resolve", ref->s);
        seg++;
    }
    if (seg == 1)
        goto bad;
    for (size_t i = 0; i < c->nmemo; i++)
        if (c->memo_v[i] == t)
            return c->memo_n[i];
    int32_t id = new_node(c);
    if (id < 0)
        return -1;
    c->g->nodes[id].kind = JN_REF;
    c->g->nodes[id].ref = -1;
    GROW(c, c->memo_v, c->nmemo, c->cap_memo);
    int32_t *mn = realloc(c->memo_n, c->cap_memo * sizeof *mn);
    if (!mn)
        return fail(c, JGRAM_ENOMEM, "out of memory");
    c->memo_n = mn;
    c->memo_v[c->nmemo] = t;
    c->memo_n[c->nmemo++] = id;
    char saved[sizeof c->path];
    size_t saved_len = c->plen;
    memcpy(saved, c->path, sizeof saved);
    snprintf(c->path, sizeof c->path, "%s", ref->s + 1);
    c->plen = strlen(c->path);
    int32_t target = compile(c, t);
    memcpy(c->path, saved, sizeof saved);
    c->plen = saved_len;
    if (target < 0)
        return -1;
    c->g->nodes[id].ref = target;
    return id;
bad:
    return fail(c, JGRAM_EUNSUPPORTED, "unsupported '$ref' \"%s\" (only local #/$defs/...)",
                ref->s);
}

static int type_bit(const jgram_jv *t)
{
    static const char *const names[] = {"null", "boolean", "integer", "number",
                                        "string", "array", "object"};
    if (t->t != 's')
        return 0;
    for (int i = 0; i < 7; i++)
        if (strcmp(t->s, names[i]) == 0)
            return 1 << i;
    return 0;
}

static int get_count(cc *c, const jgram_jv *s, const char *kw, uint32_t *out)
{
    const jgram_jv *v = jgram_jv_get(s, kw);
    if (!v)
        return 0;
    char *e = NULL;
    double d = v->t == 'n' ? strtod(v->s, &e) : -1;
    if (d < 0 || d != (double)(uint32_t)d)
        return fail(c, JGRAM_EINVALID, "'%s' is not a non-negative integer", kw);
    *out = (uint32_t)d;
    return 0;
}

/* minimum, maximum, exclusiveMinimum, exclusiveMaximum: the integers in
 * [lo, hi] are matched exactly, digit by digit; a bounded "number" is
 * matched as an integer (a subset of what it allows: the output still
 * validates). Bounds beyond +-JG_NUM_LIMIT are clamped to it. */
static int compile_bounds(cc *c, const jgram_jv *s, jg_node *nd)
{
    static const char *const kw[] = {"minimum", "exclusiveMinimum", "maximum",
                                     "exclusiveMaximum"};
    double lo = -(double)JG_NUM_LIMIT, hi = (double)JG_NUM_LIMIT;
    double rlo = -HUGE_VAL, rhi = HUGE_VAL; /* the real bounds, as written */
    bool any = false, rlo_ex = false, rhi_ex = false;
    for (int i = 0; i < 4; i++) {
        const jgram_jv *v = jgram_jv_get(s, kw[i]);
        if (!v)
            continue;
        if (v->t != 'n')
            return fail(c, JGRAM_EINVALID, "'%s' is not a number", kw[i]);
        double d = strtod(v->s, NULL);
        double b = i == 0 ? ceil(d) : i == 1 ? floor(d) + 1 : i == 2 ? floor(d) : ceil(d) - 1;
        if (i < 2 && b > lo)
            lo = b;
        if (i >= 2 && b < hi)
            hi = b;
        if (i < 2 && (d > rlo || (d == rlo && i == 1))) {
            rlo = d;
            rlo_ex = i == 1;
        }
        if (i >= 2 && (d < rhi || (d == rhi && i == 3))) {
            rhi = d;
            rhi_ex = i == 3;
        }
        any = true;
    }
    if (!any)
        return 0;
    if (!(nd->types & JT_INT))
        return 0; /* only numbers are bounded; other types ignore it */
    bool real_empty = rlo > rhi || (rlo == rhi && (rlo_ex || rhi_ex));
    if (real_empty)
        return fail(c, JGRAM_EINVALID, "minimum > maximum is unsatisfiable");
    if (lo > hi || lo > (double)JG_NUM_LIMIT || hi < -(double)JG_NUM_LIMIT)
        return fail(c, (nd->types & JT_NUM) ? JGRAM_EUNSUPPORTED : JGRAM_EINVALID,
                    (nd->types & JT_NUM)
                        ? "unsupported bounds: no integer lies between minimum and maximum "
                          "(bounded numbers are matched as integers)"
                        : "no integer lies between minimum and maximum");
    nd->bounded = 1;
    nd->lo = lo < -(double)JG_NUM_LIMIT ? -JG_NUM_LIMIT : (int64_t)lo;
    nd->hi = hi > (double)JG_NUM_LIMIT ? JG_NUM_LIMIT : (int64_t)hi;
    nd->types = (uint8_t)(nd->types & ~JT_NUM);
    return 0;
}

/* Object keywords: properties, required, additionalProperties. */
static int compile_object(cc *c, const jgram_jv *s, int32_t id)
{
    jgram *g = c->g;
    const jgram_jv *props = jgram_jv_get(s, "properties"), *req = jgram_jv_get(s, "required");
    const jgram_jv *addl = jgram_jv_get(s, "additionalProperties");
    jg_prop tmp[JGRAM_MAX_PROPS];
    uint32_t n = 0;
    if (props && props->t != 'o')
        return fail(c, JGRAM_EINVALID, "'properties' is not an object");
    if (req && req->t != 'a')
        return fail(c, JGRAM_EINVALID, "'required' is not an array");
    int32_t addl_node = JG_ANY;
    if (addl && addl->t == 'f') {
        addl_node = -1;
    } else if (addl && addl->t != 't') {
        size_t old = path_push(c, "additionalProperties", 20);
        addl_node = compile(c, addl);
        path_pop(c, old);
        if (addl_node < 0)
            return -1;
    }
    size_t nprops = props ? props->n : 0;
    for (size_t i = 0; i < nprops + (req ? req->n : 0); i++) {
        const char *name;
        size_t nl;
        int32_t node = JG_ANY;
        if (i < nprops) {
            name = props->key[i];
            nl = props->klen[i];
        } else {
            const jgram_jv *r = &req->kid[i - nprops];
            if (r->t != 's')
                return fail(c, JGRAM_EINVALID, "'required' holds a non-string");
            name = r->s;
            nl = r->len;
        }
        c->nbuf = 0;
        if (ser_str(c, name, nl) < 0)
            return fail(c, JGRAM_ELIMIT, "property name too long");
        uint32_t k = 0;
        while (k < n && !(g->pool && tmp[k].name.len == c->nbuf &&
                          memcmp(g->pool + tmp[k].name.off, c->buf, c->nbuf) == 0))
            k++;
        if (k < n)
            continue; /* a required name already declared */
        if (i >= nprops && addl_node < 0)
            return fail(c, JGRAM_EINVALID,
                        "required property '%s' is not allowed by additionalProperties", name);
        if (n == JGRAM_MAX_PROPS)
            return fail(c, JGRAM_ELIMIT, "more than %d properties", JGRAM_MAX_PROPS);
        if (i < nprops) {
            size_t old = path_push(c, "properties", 10);
            path_push(c, name, nl);
            node = compile(c, &props->kid[i]);
            path_pop(c, old);
            if (node < 0)
                return -1;
            c->nbuf = 0;
            ser_str(c, name, nl); /* compile() reused the scratch buffer */
        } else if (addl_node >= 0) {
            node = addl_node;
        }
        if (pool_add(c, c->buf, c->nbuf, &tmp[n].name) < 0)
            return -1;
        tmp[n++].node = node;
    }
    sort_props(g, tmp, n);
    uint64_t required = 0;
    for (size_t r = 0; req && r < req->n; r++) {
        c->nbuf = 0;
        ser_str(c, req->kid[r].s, req->kid[r].len);
        for (uint32_t k = 0; k < n; k++)
            if (tmp[k].name.len == c->nbuf &&
                memcmp(g->pool + tmp[k].name.off, c->buf, c->nbuf) == 0)
                required |= 1ull << k;
    }
    uint32_t first = g->nprops;
    for (uint32_t k = 0; k < n; k++) {
        GROW(c, g->props, g->nprops, g->cap_props);
        g->props[g->nprops++] = tmp[k];
    }
    jg_node *nd = &g->nodes[id];
    nd->first = first;
    nd->n = n;
    nd->required = required;
    nd->addl = addl_node;
    return 0;
}

/* Keywords accepted and ignored (annotations, and format, which 2020-12
 * makes an annotation by default), then the ones compile() handles. */
static const char *const annotations[] = {
    "title", "description", "examples", "default", "$schema", "$id", "$comment", "format",
    "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "contentMediaType",
    "contentEncoding", NULL};
static const char *const handled[] = {
    "type", "properties", "required", "additionalProperties", "enum", "const", "items",
    "minItems", "maxItems", "anyOf", "oneOf", "allOf", "minLength", "maxLength", "$ref",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};

static int in_list(const char *const *l, const char *k)
{
    for (; *l; l++)
        if (strcmp(*l, k) == 0)
            return 1;
    return 0;
}

static int32_t compile(cc *c, const jgram_jv *s)
{
    if (s->t == 't')
        return JG_ANY;
    if (s->t == 'f')
        return fail(c, JGRAM_EUNSUPPORTED, "unsupported schema 'false'");
    if (s->t != 'o')
        return fail(c, JGRAM_EINVALID, "a schema must be an object or a boolean");
    size_t nconstraints = 0;
    const char *combiner = NULL;
    for (size_t i = 0; i < s->n; i++) {
        const char *k = s->key[i];
        if (in_list(annotations, k))
            continue;
        if (!in_list(handled, k))
            return fail(c, JGRAM_EUNSUPPORTED, "unsupported schema keyword '%s'", k);
        if (!strcmp(k, "anyOf") || !strcmp(k, "oneOf") || !strcmp(k, "allOf") || !strcmp(k, "$ref"))
            combiner = combiner ? combiner : k;
        nconstraints++;
    }
    if (combiner && nconstraints > 1)
        return fail(c, JGRAM_EUNSUPPORTED, "unsupported: '%s' combined with other keywords",
                    combiner);
    const jgram_jv *v;
    if ((v = jgram_jv_get(s, "$ref")))
        return compile_ref(c, v);
    if ((v = jgram_jv_get(s, "allOf"))) {
        if (v->t != 'a' || v->n != 1)
            return fail(c, JGRAM_EUNSUPPORTED, "unsupported 'allOf' with more than one schema");
        size_t old = path_push(c, "allOf", 5);
        path_push(c, "0", 1);
        int32_t r = compile(c, &v->kid[0]);
        path_pop(c, old);
        return r;
    }
    if ((v = jgram_jv_get(s, "anyOf")) || (v = jgram_jv_get(s, "oneOf"))) {
        /* oneOf is matched as anyOf: exclusivity is not checked */
        const char *kw = jgram_jv_get(s, "anyOf") ? "anyOf" : "oneOf";
        if (v->t != 'a' || v->n == 0)
            return fail(c, JGRAM_EINVALID, "'%s' is not a non-empty array", kw);
        int32_t alts[64];
        if (v->n > 64)
            return fail(c, JGRAM_ELIMIT, "'%s' has more than 64 schemas", kw);
        for (size_t i = 0; i < v->n; i++) {
            char seg[32];
            int sl = snprintf(seg, sizeof seg, "%zu", i);
            size_t old = path_push(c, kw, strlen(kw));
            path_push(c, seg, (size_t)sl);
            alts[i] = compile(c, &v->kid[i]);
            path_pop(c, old);
            if (alts[i] < 0)
                return -1;
        }
        int32_t id = new_node(c);
        if (id < 0)
            return -1;
        jgram *g = c->g;
        uint32_t first = g->nalts;
        for (size_t i = 0; i < v->n; i++) {
            GROW(c, g->alts, g->nalts, g->cap_alts);
            g->alts[g->nalts++] = alts[i];
        }
        g->nodes[id].kind = JN_ANYOF;
        g->nodes[id].first = first;
        g->nodes[id].n = (uint32_t)v->n;
        return id;
    }
    /* enum/const take precedence: the values listed are not checked
     * against the other keywords beside them */
    if ((v = jgram_jv_get(s, "const")))
        return compile_lits(c, v, 1);
    if ((v = jgram_jv_get(s, "enum"))) {
        if (v->t != 'a')
            return fail(c, JGRAM_EINVALID, "'enum' is not an array");
        return compile_lits(c, v->kid, v->n);
    }
    int types = JT_ALL;
    if ((v = jgram_jv_get(s, "type"))) {
        types = 0;
        for (size_t i = 0; i < (v->t == 'a' ? v->n : 1); i++) {
            int b = type_bit(v->t == 'a' ? &v->kid[i] : v);
            if (!b)
                return fail(c, JGRAM_EINVALID, "unknown 'type'");
            types |= b;
        }
    }
    if (types & JT_NUM)
        types |= JT_INT;
    int32_t id = new_node(c);
    if (id < 0)
        return -1;
    jg_node nd = c->g->nodes[id];
    nd.kind = JN_TYPES;
    nd.types = (uint8_t)types;
    if (get_count(c, s, "minItems", &nd.min_items) || get_count(c, s, "maxItems", &nd.max_items) ||
        get_count(c, s, "minLength", &nd.min_len) || get_count(c, s, "maxLength", &nd.max_len))
        return -1;
    if (compile_bounds(c, s, &nd))
        return -1;
    if (nd.min_items > nd.max_items)
        return fail(c, JGRAM_EINVALID, "minItems > maxItems is unsatisfiable");
    if (nd.min_len > nd.max_len)
        return fail(c, JGRAM_EINVALID, "minLength > maxLength is unsatisfiable");
    if ((v = jgram_jv_get(s, "items"))) {
        if (v->t == 'a')
            return fail(c, JGRAM_EUNSUPPORTED, "unsupported 'items' as an array (tuple)");
        size_t old = path_push(c, "items", 5);
        nd.items = compile(c, v);
        path_pop(c, old);
        if (nd.items < 0)
            return -1;
    }
    c->g->nodes[id] = nd;
    if (compile_object(c, s, id) < 0)
        return -1;
    return id;
}

/* ------------------------------------------------------------ entry points */

void jgram_free(jgram *g)
{
    if (!g)
        return;
    free(g->nodes);
    free(g->props);
    free(g->lits);
    free(g->alts);
    free(g->pool);
    free(g);
}

/* The fixed nodes: any value, {false,true}, {null}. */
static int fixed_nodes(cc *c)
{
    static const jgram_jv bools[2] = {{.t = 'f'}, {.t = 't'}}, null = {.t = 'z'};
    int32_t any = new_node(c);
    if (any != JG_ANY)
        return -1;
    c->g->nodes[any].kind = JN_TYPES;
    c->g->nodes[any].types = JT_ALL;
    return compile_lits(c, bools, 2) == JG_BOOLS && compile_lits(c, &null, 1) == JG_NULL ? 0 : -1;
}

jgram_status jgram_compile(const char *schema_json, size_t len, jgram **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = 0;
    cc c = {.err = err, .errlen = errlen};
    if (len > JGRAM_MAX_SCHEMA) {
        fail(&c, JGRAM_ELIMIT, "schema over %u bytes", JGRAM_MAX_SCHEMA);
        return c.st;
    }
    jgram_jv root;
    size_t stop;
    bool too_deep;
    if (jgram_jv_parse(schema_json, len, &root, &stop, &too_deep) < 0) {
        if (errlen && too_deep)
            snprintf(err, errlen, "schema nested over %d levels", JGRAM_MAX_NESTING);
        else if (errlen)
            snprintf(err, errlen, "schema is not valid JSON (near byte %zu)", stop);
        return too_deep ? JGRAM_ELIMIT : JGRAM_EJSON;
    }
    c.g = calloc(1, sizeof *c.g);
    c.root = &root;
    if (!c.g) {
        fail(&c, JGRAM_ENOMEM, "out of memory");
    } else if (fixed_nodes(&c) == 0) {
        c.g->root = compile(&c, &root);
        /* a $ref cycle with no structure in between would never consume a byte */
        for (uint32_t i = 0; c.st == JGRAM_OK && i < c.g->nnodes; i++) {
            int32_t k = (int32_t)i;
            uint32_t hops = 0;
            while (c.g->nodes[k].kind == JN_REF && hops++ <= c.g->nnodes)
                k = c.g->nodes[k].ref;
            if (c.g->nodes[k].kind == JN_REF)
                fail(&c, JGRAM_EINVALID, "'$ref' cycle that matches nothing");
        }
    }
    jgram_jv_free(&root);
    free(c.memo_v);
    free(c.memo_n);
    free(c.buf);
    if (c.st != JGRAM_OK) {
        jgram_free(c.g);
        return c.st;
    }
    *out = c.g;
    return JGRAM_OK;
}

jgram *jgram_any_object(void)
{
    static const char schema[] = "{\"type\":\"object\"}";
    jgram *g = NULL;
    char err[64];
    jgram_compile(schema, sizeof schema - 1, &g, err, sizeof err);
    return g;
}
