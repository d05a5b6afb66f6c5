/* json_grammar_read.c - the small JSON reader behind jgram_compile(): a
 * tree of values with strings decoded to UTF-8 and numbers kept as written
 * (so that enum values are matched as the schema spells them). Nesting is
 * capped at JGRAM_MAX_NESTING; escapes and surrogate pairs are checked; the
 * schema's raw UTF-8 is copied as is (the matcher validates the output).
 */
#include <stdlib.h>
#include <string.h>

#include "json_grammar_internal.h"
#include "utf8.h"

typedef struct rd {
    const char *p, *end;
    int depth;
} rd;

void jgram_jv_free(jgram_jv *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jgram_jv_free(&v->kid[i]);
        if (v->key)
            free(v->key[i]);
    }
    free(v->kid);
    free(v->key);
    free(v->klen);
    free(v->s);
}

static void rd_ws(rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int rd_hex4(rd *r, uint32_t *cp)
{
    if (r->end - r->p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexv(r->p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + (uint32_t)h;
    }
    r->p += 4;
    *cp = v;
    return 0;
}

/* At the opening quote; the decoded bytes go to a new buffer. The schema's
 * own UTF-8 is trusted as far as copying it (the output side checks it). */
static int rd_string(rd *r, char **out, size_t *olen)
{
    r->p++;
    const char *q = r->p;
    while (q < r->end && *q != '"')
        q += (*q == '\\' && q + 1 < r->end) ? 2 : 1;
    if (q >= r->end)
        return -1;
    char *o = malloc((size_t)(q - r->p) + 1);
    if (!o)
        return -1;
    size_t n = 0;
    while (*r->p != '"') {
        unsigned char c = (unsigned char)*r->p++;
        if (c < 0x20)
            goto bad;
        if (c != '\\') {
            o[n++] = (char)c;
            continue;
        }
        char e = *r->p++;
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *k = e ? strchr(from, e) : NULL;
        if (k) {
            o[n++] = to[k - from];
            continue;
        }
        uint32_t cp, lo;
        if (e != 'u' || rd_hex4(r, &cp) < 0)
            goto bad;
        if (cp >= 0xD800 && cp < 0xDC00) {
            if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                goto bad;
            r->p += 2;
            if (rd_hex4(r, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                goto bad;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            goto bad;
        }
        n += utf8_put(cp, o + n); /* never longer than the escape */
    }
    r->p++;
    o[n] = 0;
    *out = o;
    *olen = n;
    return 0;
bad:
    free(o);
    return -1;
}

static int rd_value(rd *r, jgram_jv *v);

static int rd_grow(jgram_jv *v, size_t *cap, int obj)
{
    if (v->n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 4;
    jgram_jv *k = realloc(v->kid, nc * sizeof *k);
    if (!k)
        return -1;
    v->kid = k;
    if (obj) {
        char **ks = realloc(v->key, nc * sizeof *ks);
        if (!ks)
            return -1;
        v->key = ks;
        size_t *kl = realloc(v->klen, nc * sizeof *kl);
        if (!kl)
            return -1;
        v->klen = kl;
    }
    *cap = nc;
    return 0;
}

static int rd_container(rd *r, jgram_jv *v, int obj)
{
    size_t cap = 0;
    char close = obj ? '}' : ']';
    if (++r->depth > JGRAM_MAX_NESTING)
        return -1;
    r->p++;
    rd_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        r->depth--;
        return 0;
    }
    for (;;) {
        if (rd_grow(v, &cap, obj) < 0)
            return -1;
        memset(&v->kid[v->n], 0, sizeof v->kid[0]);
        if (obj) {
            rd_ws(r);
            v->key[v->n] = NULL;
            if (r->p >= r->end || *r->p != '"' || rd_string(r, &v->key[v->n], &v->klen[v->n]) < 0)
                return -1;
            rd_ws(r);
            if (r->p >= r->end || *r->p++ != ':') {
                v->n++; /* so that the key is freed */
                return -1;
            }
        }
        int rc = rd_value(r, &v->kid[v->n]);
        v->n++;
        if (rc < 0)
            return -1;
        rd_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == close) {
            r->p++;
            r->depth--;
            return 0;
        }
        return -1;
    }
}

static int rd_value(rd *r, jgram_jv *v)
{
    rd_ws(r);
    if (r->p >= r->end)
        return -1;
    char c = *r->p;
    if (c == '{' || c == '[') {
        v->t = c == '{' ? 'o' : 'a';
        return rd_container(r, v, c == '{');
    }
    if (c == '"') {
        v->t = 's';
        return rd_string(r, &v->s, &v->len);
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t wl = strlen(words[i]);
        if ((size_t)(r->end - r->p) >= wl && memcmp(r->p, words[i], wl) == 0) {
            v->t = "tfz"[i];
            r->p += wl;
            return 0;
        }
    }
    /* a number, checked against the JSON grammar and kept as written */
    const char *s = r->p;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p >= r->end || *r->p < '0' || *r->p > '9')
        return -1;
    if (*r->p == '0')
        r->p++;
    else
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9')
            return -1;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9')
            return -1;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    v->t = 'n';
    v->len = (size_t)(r->p - s);
    v->s = malloc(v->len + 1);
    if (!v->s)
        return -1;
    memcpy(v->s, s, v->len);
    v->s[v->len] = 0;
    return 0;
}

const jgram_jv *jgram_jv_get(const jgram_jv *o, const char *key)
{
    if (o->t != 'o')
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (o->klen[i] == strlen(key) && memcmp(o->key[i], key, o->klen[i]) == 0)
            return &o->kid[i];
    return NULL;
}

int jgram_jv_parse(const char *text, size_t len, jgram_jv *out, size_t *stop, bool *too_deep)
{
    memset(out, 0, sizeof *out);
    rd r = {text, text + len, 0};
    int rc = rd_value(&r, out);
    rd_ws(&r);
    *stop = (size_t)(r.p - text);
    *too_deep = r.depth > JGRAM_MAX_NESTING;
    if (rc < 0 || r.p != r.end) {
        jgram_jv_free(out);
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}
