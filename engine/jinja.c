/* jinja.c - a small Jinja2 interpreter for chat templates.
 *
 * Reads top to bottom in the order a template travels: arena and text
 * helpers, the lexer (whitespace control happens there), the parser
 * (tokens to a tree of nodes), values (Python-like str/repr/json/compare),
 * the evaluator (expressions, filters, tests, methods, globals), the
 * statement runner and the public API.
 *
 * Semantics follow Jinja2 3.x as Hugging Face transformers configures it;
 * where a detail matters for real chat templates it was checked against
 * Jinja2 itself. Strings are UTF-8 bytes; indexing, slicing and length
 * count code points as Python does. upper/lower/title/capitalize change
 * ASCII letters only (a documented limit).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memmem */
#endif
#include "jinja.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_OUTPUT ((size_t)64 << 20)
#define DEFAULT_MAX_MEMORY ((size_t)512 << 20)
#define DEFAULT_MAX_STEPS 100000000ULL
#define DEFAULT_MAX_DEPTH 64
#define MAX_PARSE_DEPTH 200 /* nesting of blocks and expressions */

/* ================================================================ arena */

/* Everything a parse or a render makes lives in one arena, freed at once.
 * Small allocations are carved from 64 KiB blocks; large ones get their
 * own block. `limit` bounds the total so that a template cannot exhaust
 * the machine. */
typedef struct ablock {
    struct ablock *next;
    size_t size, used;
} ablock;

typedef struct arena {
    ablock *blocks; /* current block first */
    ablock *big;    /* blocks of single large allocations */
    size_t total, limit;
} arena;

#define ABLOCK_SIZE ((size_t)64 << 10)
#define ABLOCK_HDR ((sizeof(ablock) + 15) & ~(size_t)15)

static void *arena_alloc(arena *a, size_t n)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX - 32)
        return NULL;
    n = (n + 15) & ~(size_t)15;
    if (n > ABLOCK_SIZE / 4) {
        if (n > a->limit - a->total || a->total > a->limit)
            return NULL;
        ablock *b = malloc(ABLOCK_HDR + n);
        if (!b)
            return NULL;
        b->size = b->used = n;
        b->next = a->big;
        a->big = b;
        a->total += n;
        return (char *)b + ABLOCK_HDR;
    }
    ablock *b = a->blocks;
    if (!b || b->size - b->used < n) {
        if (ABLOCK_SIZE > a->limit - a->total || a->total > a->limit)
            return NULL;
        b = malloc(ABLOCK_HDR + ABLOCK_SIZE);
        if (!b)
            return NULL;
        b->size = ABLOCK_SIZE;
        b->used = 0;
        b->next = a->blocks;
        a->blocks = b;
        a->total += ABLOCK_SIZE;
    }
    void *p = (char *)b + ABLOCK_HDR + b->used;
    b->used += n;
    return p;
}

static void arena_free(arena *a)
{
    for (int i = 0; i < 2; i++) {
        ablock *b = i ? a->big : a->blocks;
        while (b) {
            ablock *next = b->next;
            free(b);
            b = next;
        }
    }
    a->blocks = a->big = NULL;
    a->total = 0;
}

/* ================================================================ text */

/* Byte length of the whitespace character at p (Python's str.isspace set,
 * in UTF-8), or 0. */
static size_t ws_len(const char *p, const char *end)
{
    unsigned char c = (unsigned char)*p;
    if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f))
        return 1;
    if (c < 0xc2 || end - p < 2)
        return 0;
    unsigned char c1 = (unsigned char)p[1];
    if (c == 0xc2)
        return (c1 == 0x85 || c1 == 0xa0) ? 2 : 0;
    if (end - p < 3)
        return 0;
    unsigned char c2 = (unsigned char)p[2];
    if (c == 0xe1 && c1 == 0x9a && c2 == 0x80)
        return 3; /* U+1680 */
    if (c == 0xe2 && c1 == 0x80 &&
        (c2 <= 0x8a || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf))
        return 3; /* U+2000..200A, 2028, 2029, 202F */
    if (c == 0xe2 && c1 == 0x81 && c2 == 0x9f)
        return 3; /* U+205F */
    if (c == 0xe3 && c1 == 0x80 && c2 == 0x80)
        return 3; /* U+3000 */
    return 0;
}

/* Length of whitespace that ends at `end` (scanning backwards). */
static size_t ws_len_back(const char *start, const char *end)
{
    for (size_t k = 1; k <= 3 && (size_t)(end - start) >= k; k++) {
        size_t l = ws_len(end - k, end);
        if (l == k)
            return k;
    }
    return 0;
}

static bool utf8_cont(unsigned char c) { return (c & 0xc0) == 0x80; }

/* Code points start at every byte that is not a continuation byte, and at
 * the first byte of a string whatever it is: invalid UTF-8 still splits
 * the same way everywhere (count, index, iterate). */
static bool cp_start(const char *p, size_t i) { return i == 0 || !utf8_cont((unsigned char)p[i]); }

static size_t utf8_count(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += cp_start(p, i);
    return k;
}

static bool is_ascii(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return false;
    return true;
}

/* Byte offset of code point `idx` (idx <= count). */
static size_t utf8_offset(const char *p, size_t n, size_t idx)
{
    size_t i = 0, k = 0;
    while (i < n) {
        if (cp_start(p, i)) {
            if (k == idx)
                return i;
            k++;
        }
        i++;
    }
    return n;
}

static void utf8_put(char *out, size_t *k, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*k)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*k)++] = (char)(0xc0 | (cp >> 6));
        out[(*k)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*k)++] = (char)(0xe0 | (cp >> 12));
        out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*k)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*k)++] = (char)(0xf0 | (cp >> 18));
        out[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*k)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool streq(const char *p, size_t n, const char *s)
{
    size_t m = strlen(s);
    return n == m && memcmp(p, s, n) == 0;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ================================================================ lexer */

enum tok_type {
    TK_EOF,
    TK_TEXT,   /* template data, whitespace control already applied */
    TK_VBEGIN, /* {{ */
    TK_VEND,   /* }} */
    TK_BBEGIN, /* {% */
    TK_BEND,   /* %} */
    TK_NAME,
    TK_STR, /* escapes decoded */
    TK_INT,
    TK_FLOAT,
    TK_OP,
};

typedef struct token {
    int type;
    int line;
    const char *p; /* text, name, decoded string or operator */
    size_t n;
    int64_t i;
    double f;
} token;

typedef struct lexer {
    const char *s; /* normalized source */
    size_t n, pos;
    int line;
    token *toks;
    size_t ntoks, cap;
    arena *a;
    char *err;
    size_t errlen;
} lexer;

static int lex_push(lexer *L, int type, int line, const char *p, size_t n)
{
    if (L->ntoks == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        if (cap > SIZE_MAX / sizeof(token))
            return -1;
        token *t = realloc(L->toks, cap * sizeof(token));
        if (!t) {
            set_err(L->err, L->errlen, "out of memory");
            return -1;
        }
        L->toks = t;
        L->cap = cap;
    }
    token *t = &L->toks[L->ntoks++];
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->line = line;
    t->p = p;
    t->n = n;
    return 0;
}

static int lex_fail(lexer *L, int line, const char *msg, const char *arg)
{
    if (arg)
        set_err(L->err, L->errlen, "line %d: %s%s", line, msg, arg);
    else
        set_err(L->err, L->errlen, "line %d: %s", line, msg);
    return -1;
}

static int count_nl(const char *p, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] == '\n';
    return k;
}

/* Python's unicode-escape decoding of a string literal body. Unknown
 * escapes stay as written; a bad \x/\u/\U escape is a syntax error. */
static int lex_string(lexer *L, const char *p, size_t n, int line)
{
    char *out = arena_alloc(L->a, n + 1);
    if (!out)
        return lex_fail(L, line, "out of memory", NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\\' || i + 1 >= n) {
            out[k++] = p[i];
            continue;
        }
        char c = p[++i];
        switch (c) {
        case '\n': break; /* line continuation */
        case '\\': out[k++] = '\\'; break;
        case '\'': out[k++] = '\''; break;
        case '"': out[k++] = '"'; break;
        case 'a': out[k++] = '\a'; break;
        case 'b': out[k++] = '\b'; break;
        case 'f': out[k++] = '\f'; break;
        case 'n': out[k++] = '\n'; break;
        case 'r': out[k++] = '\r'; break;
        case 't': out[k++] = '\t'; break;
        case 'v': out[k++] = '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
            size_t nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            uint32_t cp = 0;
            if (n - i - 1 < nd)
                return lex_fail(L, line, "truncated \\", "escape in string");
            for (size_t j = 1; j <= nd; j++) {
                char h = p[i + j];
                int v = is_digit(h) ? h - '0'
                        : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                        : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                 : -1;
                if (v < 0)
                    return lex_fail(L, line, "truncated \\", "escape in string");
                cp = cp * 16 + (uint32_t)v;
            }
            if (cp > 0x10ffff)
                return lex_fail(L, line, "illegal Unicode character", NULL);
            i += nd;
            /* Every escape here writes at most 4 bytes for 4+ source bytes. */
            utf8_put(out, &k, cp);
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                uint32_t cp = 0;
                size_t j = 0;
                while (j < 3 && i + j < n && p[i + j] >= '0' && p[i + j] <= '7')
                    cp = cp * 8 + (uint32_t)(p[i + j++] - '0');
                i += j - 1;
                /* up to 4 source bytes give at most 2 UTF-8 bytes */
                utf8_put(out, &k, cp);
            } else {
                out[k++] = '\\';
                out[k++] = c;
            }
        }
    }
    out[k] = 0;
    if (lex_push(L, TK_STR, line, out, k))
        return -1;
    return 0;
}

static int lex_number(lexer *L, int line)
{
    const char *s = L->s;
    size_t i = L->pos, n = L->n;
    /* integer part: digits with single '_' separators */
    while (i < n && (is_digit(s[i]) || (s[i] == '_' && i + 1 < n &&
                                        is_digit(s[i + 1]) && i > L->pos)))
        i++;
    bool isfloat = false;
    if (i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
        isfloat = true;
        i++;
        while (i < n && (is_digit(s[i]) || (s[i] == '_' && i + 1 < n &&
                                            is_digit(s[i + 1]))))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < n && is_digit(s[j])) {
            isfloat = true;
            i = j;
            while (i < n && (is_digit(s[i]) || (s[i] == '_' && i + 1 < n &&
                                                is_digit(s[i + 1]))))
                i++;
        }
    }
    char buf[64];
    size_t k = 0;
    for (size_t j = L->pos; j < i; j++) {
        if (s[j] == '_')
            continue;
        if (k + 1 >= sizeof(buf))
            return lex_fail(L, line, "number literal too long", NULL);
        buf[k++] = s[j];
    }
    buf[k] = 0;
    if (lex_push(L, isfloat ? TK_FLOAT : TK_INT, line, s + L->pos, i - L->pos))
        return -1;
    token *t = &L->toks[L->ntoks - 1];
    errno = 0;
    if (isfloat) {
        t->f = strtod(buf, NULL);
    } else {
        char *e;
        unsigned long long v = strtoull(buf, &e, 10);
        if (errno || v > INT64_MAX)
            return lex_fail(L, line, "integer literal too large", NULL);
        t->i = (int64_t)v;
    }
    L->pos = i;
    return 0;
}

static const char *const OPS[] = {"//", "**", "==", "!=", "<=", ">=", "+",
                                  "-",  "*",  "/",  "%",  "~",  "<",  ">",
                                  "=",  "(",  ")",  "[",  "]",  "{",  "}",
                                  ",",  ".",  ":",  "|",  ";"};

/* Tokens inside {{ }} or {% %} up to the closing marker at bracket depth 0.
 * *strip_after is set for '-}}' / '-%}', *trim for a plain '%}'. */
static int lex_tag(lexer *L, bool block, bool *strip_after, bool *keep)
{
    char stack[MAX_PARSE_DEPTH];
    int depth = 0;
    const char *s = L->s;
    size_t n = L->n;
    *strip_after = *keep = false;
    for (;;) {
        while (L->pos < n) {
            size_t w = ws_len(s + L->pos, s + n);
            if (!w)
                break;
            if (s[L->pos] == '\n')
                L->line++;
            L->pos += w;
        }
        if (L->pos >= n)
            return lex_fail(L, L->line, "unexpected end of template inside a ",
                            block ? "block tag" : "print tag");
        const char *p = s + L->pos;
        size_t rem = n - L->pos;
        int line = L->line;
        if (depth == 0) {
            const char *end = block ? "%}" : "}}";
            size_t m = 0;
            if (rem >= 3 && p[0] == '-' && memcmp(p + 1, end, 2) == 0) {
                *strip_after = true;
                m = 3;
            } else if (block && rem >= 3 && p[0] == '+' &&
                       memcmp(p + 1, end, 2) == 0) {
                *keep = true;
                m = 3;
            } else if (rem >= 2 && memcmp(p, end, 2) == 0) {
                m = 2;
            }
            if (m) {
                L->pos += m;
                return lex_push(L, block ? TK_BEND : TK_VEND, line, p, m);
            }
        }
        if (is_name_start(*p)) {
            size_t k = 1;
            while (k < rem && is_name_char(p[k]))
                k++;
            if (lex_push(L, TK_NAME, line, p, k))
                return -1;
            L->pos += k;
            continue;
        }
        if (is_digit(*p)) {
            if (lex_number(L, line))
                return -1;
            continue;
        }
        if (*p == '\'' || *p == '"') {
            size_t k = 1;
            while (k < rem && p[k] != *p) {
                if (p[k] == '\\' && k + 1 < rem)
                    k++;
                k++;
            }
            if (k >= rem)
                return lex_fail(L, line, "unterminated string", NULL);
            if (lex_string(L, p + 1, k - 1, line))
                return -1;
            L->line += count_nl(p, k);
            L->pos += k + 1;
            continue;
        }
        const char *op = NULL;
        for (size_t k = 0; k < sizeof(OPS) / sizeof(OPS[0]); k++) {
            size_t m = strlen(OPS[k]);
            if (rem >= m && memcmp(p, OPS[k], m) == 0) {
                op = OPS[k];
                break;
            }
        }
        if (!op) {
            char c[8];
            snprintf(c, sizeof(c), "'%c'", *p);
            return lex_fail(L, line, "unexpected char ", c);
        }
        size_t m = strlen(op);
        if (*op == '(' || *op == '[' || *op == '{') {
            if (depth >= MAX_PARSE_DEPTH)
                return lex_fail(L, line, "brackets nested too deeply", NULL);
            stack[depth++] = *op == '(' ? ')' : *op == '[' ? ']' : '}';
        } else if (*op == ')' || *op == ']' || *op == '}') {
            if (depth == 0 || stack[depth - 1] != *op) {
                char c[8];
                snprintf(c, sizeof(c), "'%c'", *op);
                return lex_fail(L, line, "unexpected ", c);
            }
            depth--;
        }
        if (lex_push(L, TK_OP, line, op, m))
            return -1;
        L->pos += m;
    }
}

static size_t find_tag_start(const char *s, size_t n, size_t from)
{
    for (size_t i = from; i + 1 < n; i++) {
        if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#'))
            return i;
        /* skip quickly to the next brace */
        const char *q = memchr(s + i + 1, '{', n - i - 1);
        if (!q)
            return n;
        i = (size_t)(q - s) - 1;
    }
    return n;
}

/* Is there `{%[-+]? raw [-+]?%}`-style text at s+i? Sets *after to the end
 * of the tag, *strip when it ends with '-%}'. For endraw too. */
static bool match_raw_tag(const char *s, size_t n, size_t i, const char *word,
                          size_t *after, bool *strip_before, bool *strip,
                          bool *keep)
{
    if (i + 2 > n || s[i] != '{' || s[i + 1] != '%')
        return false;
    size_t j = i + 2;
    *strip_before = false;
    if (j < n && (s[j] == '-' || s[j] == '+')) {
        *strip_before = s[j] == '-';
        j++;
    }
    while (j < n && ws_len(s + j, s + n))
        j += ws_len(s + j, s + n);
    size_t wl = strlen(word);
    if (n - j < wl || memcmp(s + j, word, wl) != 0)
        return false;
    j += wl;
    while (j < n && ws_len(s + j, s + n))
        j += ws_len(s + j, s + n);
    *strip = *keep = false;
    if (j + 3 <= n && s[j] == '-' && s[j + 1] == '%' && s[j + 2] == '}') {
        *strip = true;
        j += 3;
    } else if (j + 3 <= n && s[j] == '+' && s[j + 1] == '%' && s[j + 2] == '}') {
        *keep = true;
        j += 3;
    } else if (j + 2 <= n && s[j] == '%' && s[j + 1] == '}') {
        j += 2;
    } else {
        return false;
    }
    *after = j;
    return true;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n) {
        size_t w = ws_len(s + i, s + n);
        if (!w)
            break;
        i += w;
    }
    return i;
}

/* Splits the normalized source into text and tag tokens, applying the
 * whitespace rules: '-' strips all whitespace on its side, '+' keeps it,
 * trim_blocks drops the first newline after a block or comment tag, and
 * lstrip_blocks drops spaces and tabs between a line start and a block or
 * comment tag. */
static int lex_all(lexer *L)
{
    const char *s = L->s;
    size_t n = L->n;
    bool line_starting = true; /* the last consumed text ended with '\n' */
    bool strip_next = false;   /* the previous tag ended with '-' */
    for (;;) {
        size_t start = L->pos;
        if (strip_next) {
            start = skip_ws(s, n, start);
            line_starting = start > L->pos ? s[start - 1] == '\n' : line_starting;
            strip_next = false;
        }
        size_t k = find_tag_start(s, n, start);
        size_t tend = k; /* end of the text before the tag */
        char kind = 0, mod = 0;
        if (k < n) {
            kind = s[k + 1];
            mod = (k + 2 < n && (s[k + 2] == '-' || s[k + 2] == '+')) ? s[k + 2] : 0;
            if (mod == '-') {
                while (tend > start) {
                    size_t w = ws_len_back(s + start, s + tend);
                    if (!w)
                        break;
                    tend -= w;
                }
            } else if (mod != '+' && kind != '{') {
                size_t l = tend;
                while (l > start && s[l - 1] != '\n')
                    l--;
                if (l > start || line_starting) {
                    size_t j = l;
                    while (j < tend) {
                        size_t w = ws_len(s + j, s + tend);
                        if (!w)
                            break;
                        j += w;
                    }
                    if (j == tend)
                        tend = l;
                }
            }
        }
        if (tend > start &&
            lex_push(L, TK_TEXT, L->line, s + start, tend - start))
            return -1;
        L->line += count_nl(s + L->pos, k - L->pos);
        if (k >= n)
            break;
        L->pos = k + 2 + (mod ? 1 : 0);
        if (kind == '#') {
            const char *q = NULL;
            for (size_t i = L->pos; i + 1 < n; i++)
                if (s[i] == '#' && s[i + 1] == '}') {
                    q = s + i;
                    break;
                }
            if (!q)
                return lex_fail(L, L->line, "Missing end of comment tag", NULL);
            size_t qe = (size_t)(q - s);
            bool cstrip = qe > L->pos && q[-1] == '-';
            bool ckeep = qe > L->pos && q[-1] == '+';
            L->line += count_nl(s + L->pos, qe + 2 - L->pos);
            L->pos = qe + 2;
            line_starting = false;
            if (cstrip) {
                strip_next = true;
            } else if (!ckeep && L->pos < n && s[L->pos] == '\n') {
                L->pos++;
                L->line++;
                line_starting = true;
            }
            continue;
        }
        size_t after;
        bool sb, rstrip, rkeep;
        if (kind == '%' && match_raw_tag(s, n, k, "raw", &after, &sb, &rstrip, &rkeep)) {
            /* {% raw %}: text up to {% endraw %}, taken literally */
            size_t i = after, e_after = 0;
            bool esb = false, estrip = false, ekeep = false;
            if (rstrip)
                i = skip_ws(s, n, i);
            size_t body = i;
            for (; i < n; i++)
                if (match_raw_tag(s, n, i, "endraw", &e_after, &esb, &estrip, &ekeep))
                    break;
            if (i >= n)
                return lex_fail(L, L->line, "Missing end of raw directive", NULL);
            size_t bend = i;
            if (esb)
                while (bend > body && ws_len_back(s + body, s + bend))
                    bend -= ws_len_back(s + body, s + bend);
            if (bend > body &&
                lex_push(L, TK_TEXT, L->line, s + body, bend - body))
                return -1;
            L->line += count_nl(s + L->pos, e_after - L->pos);
            L->pos = e_after;
            line_starting = s[e_after - 1] == '\n';
            if (estrip) {
                strip_next = true;
            } else if (!ekeep && L->pos < n && s[L->pos] == '\n') {
                L->pos++;
                L->line++;
                line_starting = true;
            }
            continue;
        }
        bool block = kind == '%';
        if (lex_push(L, block ? TK_BBEGIN : TK_VBEGIN, L->line, s + k, 2))
            return -1;
        bool strip_after, keep;
        if (lex_tag(L, block, &strip_after, &keep))
            return -1;
        line_starting = false;
        if (strip_after) {
            strip_next = true;
        } else if (block && !keep && L->pos < n && s[L->pos] == '\n') {
            L->pos++;
            L->line++;
            line_starting = true;
        }
    }
    return lex_push(L, TK_EOF, L->line, s + n, 0);
}

/* ================================================================ values */

enum vtype {
    V_UNDEF, /* s holds the variable name for error messages */
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_LIST, /* also tuples (l->tuple) */
    V_DICT,
    V_NS,    /* namespace(): a dict with attribute assignment */
    V_LOOP,  /* the `loop` variable of a for */
    V_MACRO,
    V_FUNC,  /* a global function, fn = enum gfunc */
};

typedef struct vlist vlist;
typedef struct vdict vdict;
typedef struct vloop vloop;
typedef struct vmacro vmacro;

typedef struct val {
    int t;
    bool safe; /* V_STR: a Markup string (from |safe or |escape) */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        vlist *l;
        vdict *d;
        vloop *lp;
        vmacro *m;
        int fn;
    } u;
} val;

struct vlist {
    size_t n, cap;
    val *v;
    bool tuple;
};

struct vdict {
    size_t n, cap;
    val *k, *v;
};

struct vloop {
    vlist *items;
    size_t i;
    int depth;
};

struct jinja_value {
    val v;
};

/* ================================================================ parser */

enum nkind {
    /* expressions */
    E_LIT, E_NAME, E_LIST, E_TUPLE, E_DICT, E_ATTR, E_ITEM, E_SLICE,
    E_CALL, E_FILTER, E_TEST, E_NEG, E_POS, E_NOT, E_AND, E_OR, E_BIN,
    E_CMP, E_COND, E_CAPTURED,
    /* statements */
    S_TEXT, S_OUT, S_IF, S_FOR, S_SET, S_SETBLOCK, S_MACRO, S_BREAK,
    S_CONTINUE, S_FILTERBLOCK, S_BODY,
};

typedef struct node node;

typedef struct nlist {
    node **v;
    size_t n;
} nlist;

struct node {
    int kind;
    int line;
    val lit;          /* E_LIT */
    const char *name; /* E_NAME, E_ATTR, E_FILTER, E_TEST, S_MACRO, S_SET */
    size_t nlen;
    const char *attr; /* S_SET: ns.attr target */
    size_t alen;
    const char *op;   /* E_BIN: operator text */
    bool neg;         /* E_TEST: `is not` */
    node *a, *b, *c, *d;
    nlist items;      /* E_LIST/E_TUPLE/E_DICT (k,v pairs)/args; E_CMP operands */
    nlist kwv;        /* keyword argument values */
    const char **kwn; /* keyword argument names (NUL-terminated) */
    const char **ops; /* E_CMP operators */
    const char **names; /* S_FOR / S_SET targets, S_MACRO params */
    size_t nnames;
    nlist defaults;   /* S_MACRO parameter defaults (NULL entries: none) */
    nlist body, orelse;
};

struct jinja_template {
    arena a;
    char *src;
    nlist body;
};

typedef struct parser {
    token *t;
    size_t i, n;
    arena *a;
    int depth;
    int loops; /* for-loops open around the current statement */
    char *err;
    size_t errlen;
    bool failed;
} parser;

static token *cur(parser *P) { return &P->t[P->i]; }

static int pfail(parser *P, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int pfail(parser *P, int line, const char *fmt, ...)
{
    if (P->failed)
        return -1;
    P->failed = true;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_err(P->err, P->errlen, "line %d: %s", line, msg);
    return -1;
}

static const char *tok_desc(const token *t, char *buf, size_t len)
{
    switch (t->type) {
    case TK_EOF: return "end of template";
    case TK_TEXT: return "template data";
    case TK_VBEGIN: return "'{{'";
    case TK_VEND: return "end of print statement";
    case TK_BBEGIN: return "'{%'";
    case TK_BEND: return "end of statement block";
    case TK_STR: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    default:
        snprintf(buf, len, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
        return buf;
    }
}

static bool is_op(parser *P, const char *op)
{
    token *t = cur(P);
    return t->type == TK_OP && streq(t->p, t->n, op);
}

static bool is_name(parser *P, const char *name)
{
    token *t = cur(P);
    return t->type == TK_NAME && streq(t->p, t->n, name);
}

static bool skip_op(parser *P, const char *op)
{
    if (is_op(P, op)) {
        P->i++;
        return true;
    }
    return false;
}

static bool skip_name(parser *P, const char *name)
{
    if (is_name(P, name)) {
        P->i++;
        return true;
    }
    return false;
}

static int expect_op(parser *P, const char *op)
{
    if (skip_op(P, op))
        return 0;
    char b[64];
    return pfail(P, cur(P)->line, "expected '%s', got %s", op,
                 tok_desc(cur(P), b, sizeof(b)));
}

static int expect_type(parser *P, int type, const char *what)
{
    if (cur(P)->type == type) {
        P->i++;
        return 0;
    }
    char b[64];
    return pfail(P, cur(P)->line, "expected %s, got %s", what,
                 tok_desc(cur(P), b, sizeof(b)));
}

static node *new_node(parser *P, int kind, int line)
{
    node *nd = arena_alloc(P->a, sizeof(node));
    if (!nd) {
        pfail(P, line, "out of memory");
        return NULL;
    }
    memset(nd, 0, sizeof(*nd));
    nd->kind = kind;
    nd->line = line;
    return nd;
}

/* Growable node lists during parsing: a temporary malloc'd vector copied
 * into the arena when complete. */
typedef struct nvec {
    node **v;
    size_t n, cap;
} nvec;

static int nvec_push(parser *P, nvec *v, node *nd)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        node **nv = realloc(v->v, cap * sizeof(node *));
        if (!nv)
            return pfail(P, cur(P)->line, "out of memory");
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = nd;
    return 0;
}

static int nvec_done(parser *P, nvec *v, nlist *out)
{
    out->n = v->n;
    out->v = NULL;
    if (v->n) {
        out->v = arena_alloc(P->a, v->n * sizeof(node *));
        if (!out->v) {
            free(v->v);
            v->v = NULL;
            return pfail(P, cur(P)->line, "out of memory");
        }
        memcpy(out->v, v->v, v->n * sizeof(node *));
    }
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
    return 0;
}

static const char *pstrdup(parser *P, const char *p, size_t n)
{
    char *s = arena_alloc(P->a, n + 1);
    if (!s) {
        pfail(P, cur(P)->line, "out of memory");
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static node *parse_expr(parser *P, bool with_condexpr);
static node *parse_tuple(parser *P, bool with_condexpr, bool explicit_parens);
static node *parse_unary(parser *P, bool with_filter);

static bool enter(parser *P)
{
    if (++P->depth > MAX_PARSE_DEPTH) {
        pfail(P, cur(P)->line, "template nested too deeply");
        return false;
    }
    return true;
}

/* ( args ) after a callee, filter or test name. */
static int parse_args(parser *P, node *nd)
{
    nvec pos = {0}, kwv = {0};
    const char **kwn = NULL;
    size_t nkw = 0, capkw = 0;
    if (expect_op(P, "("))
        return -1;
    while (!is_op(P, ")")) {
        if (nd->items.n || pos.n || kwv.n) {
            if (expect_op(P, ","))
                goto fail;
            if (is_op(P, ")"))
                break;
        }
        if (is_op(P, "*") || is_op(P, "**")) {
            pfail(P, cur(P)->line, "*args and **kwargs are not supported");
            goto fail;
        }
        if (cur(P)->type == TK_NAME && P->i + 1 < P->n &&
            P->t[P->i + 1].type == TK_OP && streq(P->t[P->i + 1].p, P->t[P->i + 1].n, "=")) {
            const char *k = pstrdup(P, cur(P)->p, cur(P)->n);
            if (!k)
                goto fail;
            P->i += 2;
            node *v = parse_expr(P, true);
            if (!v)
                goto fail;
            if (nkw == capkw) {
                capkw = capkw ? capkw * 2 : 4;
                const char **nk = realloc(kwn, capkw * sizeof(char *));
                if (!nk) {
                    pfail(P, v->line, "out of memory");
                    goto fail;
                }
                kwn = nk;
            }
            kwn[nkw++] = k;
            if (nvec_push(P, &kwv, v))
                goto fail;
        } else {
            if (kwv.n) {
                pfail(P, cur(P)->line, "positional argument follows keyword argument");
                goto fail;
            }
            node *v = parse_expr(P, true);
            if (!v || nvec_push(P, &pos, v))
                goto fail;
        }
    }
    P->i++; /* ) */
    if (nvec_done(P, &pos, &nd->items) || nvec_done(P, &kwv, &nd->kwv))
        goto fail;
    if (nkw) {
        nd->kwn = arena_alloc(P->a, nkw * sizeof(char *));
        if (!nd->kwn) {
            pfail(P, nd->line, "out of memory");
            goto fail;
        }
        memcpy(nd->kwn, kwn, nkw * sizeof(char *));
    }
    free(kwn);
    return 0;
fail:
    free(pos.v);
    free(kwv.v);
    free(kwn);
    return -1;
}

static node *parse_primary(parser *P)
{
    token *t = cur(P);
    node *nd;
    char b[64];
    switch (t->type) {
    case TK_NAME:
        if (streq(t->p, t->n, "true") || streq(t->p, t->n, "True") ||
            streq(t->p, t->n, "false") || streq(t->p, t->n, "False")) {
            if (!(nd = new_node(P, E_LIT, t->line)))
                return NULL;
            nd->lit.t = V_BOOL;
            nd->lit.u.b = t->p[0] == 't' || t->p[0] == 'T';
        } else if (streq(t->p, t->n, "none") || streq(t->p, t->n, "None")) {
            if (!(nd = new_node(P, E_LIT, t->line)))
                return NULL;
            nd->lit.t = V_NONE;
        } else {
            if (!(nd = new_node(P, E_NAME, t->line)))
                return NULL;
            if (!(nd->name = pstrdup(P, t->p, t->n)))
                return NULL;
            nd->nlen = t->n;
        }
        P->i++;
        return nd;
    case TK_STR: {
        /* adjacent string literals concatenate */
        size_t total = 0, j = P->i;
        while (j < P->n && P->t[j].type == TK_STR)
            total += P->t[j++].n;
        char *s = arena_alloc(P->a, total + 1);
        if (!s || !(nd = new_node(P, E_LIT, t->line))) {
            pfail(P, t->line, "out of memory");
            return NULL;
        }
        size_t k = 0;
        for (; P->i < j; P->i++) {
            memcpy(s + k, P->t[P->i].p, P->t[P->i].n);
            k += P->t[P->i].n;
        }
        s[k] = 0;
        nd->lit.t = V_STR;
        nd->lit.u.s.p = s;
        nd->lit.u.s.n = k;
        return nd;
    }
    case TK_INT:
    case TK_FLOAT:
        if (!(nd = new_node(P, E_LIT, t->line)))
            return NULL;
        if (t->type == TK_INT) {
            nd->lit.t = V_INT;
            nd->lit.u.i = t->i;
        } else {
            nd->lit.t = V_FLOAT;
            nd->lit.u.f = t->f;
        }
        P->i++;
        return nd;
    case TK_OP:
        if (is_op(P, "(")) {
            P->i++;
            nd = parse_tuple(P, true, true);
            if (!nd || expect_op(P, ")"))
                return NULL;
            return nd;
        }
        if (is_op(P, "[") || is_op(P, "{")) {
            bool dict = is_op(P, "{");
            const char *close = dict ? "}" : "]";
            P->i++;
            if (!(nd = new_node(P, dict ? E_DICT : E_LIST, t->line)))
                return NULL;
            nvec v = {0};
            while (!is_op(P, close)) {
                if (v.n && (expect_op(P, ",") || 0)) {
                    free(v.v);
                    return NULL;
                }
                if (is_op(P, close))
                    break;
                node *e = parse_expr(P, true);
                if (!e || nvec_push(P, &v, e)) {
                    free(v.v);
                    return NULL;
                }
                if (dict) {
                    if (expect_op(P, ":")) {
                        free(v.v);
                        return NULL;
                    }
                    e = parse_expr(P, true);
                    if (!e || nvec_push(P, &v, e)) {
                        free(v.v);
                        return NULL;
                    }
                }
            }
            P->i++;
            if (nvec_done(P, &v, &nd->items))
                return NULL;
            return nd;
        }
        break;
    default:
        break;
    }
    pfail(P, t->line, "unexpected %s", tok_desc(t, b, sizeof(b)));
    return NULL;
}

/* `callee(args...)`, the "(" being the current token. */
static node *parse_call(parser *P, node *callee, int line)
{
    node *x = new_node(P, E_CALL, line);
    if (!x)
        return NULL;
    x->a = callee;
    return parse_args(P, x) ? NULL : x;
}

static node *parse_postfix(parser *P, node *nd)
{
    for (;;) {
        int line = cur(P)->line;
        if (is_op(P, ".")) {
            P->i++;
            token *t = cur(P);
            node *x = new_node(P, E_ATTR, line);
            if (!x)
                return NULL;
            x->a = nd;
            if (t->type == TK_NAME) {
                if (!(x->name = pstrdup(P, t->p, t->n)))
                    return NULL;
                x->nlen = t->n;
            } else if (t->type == TK_INT) {
                /* a.0 is a subscript */
                x->kind = E_ITEM;
                if (!(x->b = new_node(P, E_LIT, line)))
                    return NULL;
                x->b->lit.t = V_INT;
                x->b->lit.u.i = t->i;
            } else {
                char b[64];
                pfail(P, line, "expected name after '.', got %s",
                      tok_desc(t, b, sizeof(b)));
                return NULL;
            }
            P->i++;
            nd = x;
        } else if (is_op(P, "[")) {
            P->i++;
            node *x = new_node(P, E_ITEM, line);
            if (!x)
                return NULL;
            x->a = nd;
            node *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool slice = false;
            for (;;) {
                if (is_op(P, ":")) {
                    slice = true;
                    P->i++;
                    if (++np > 2) {
                        pfail(P, line, "invalid slice");
                        return NULL;
                    }
                    continue;
                }
                if (is_op(P, "]"))
                    break;
                if (parts[np]) {
                    pfail(P, line, "invalid subscript");
                    return NULL;
                }
                parts[np] = slice || np ? parse_expr(P, true) : parse_tuple(P, true, false);
                if (!parts[np])
                    return NULL;
            }
            P->i++;
            if (slice) {
                x->kind = E_SLICE;
                x->b = parts[0];
                x->c = parts[1];
                x->d = parts[2];
            } else {
                if (!parts[0]) {
                    pfail(P, line, "expected subscript expression");
                    return NULL;
                }
                x->b = parts[0];
            }
            nd = x;
        } else if (is_op(P, "(")) {
            nd = parse_call(P, nd, line);
            if (!nd)
                return NULL;
        } else {
            return nd;
        }
    }
}

static node *parse_filter_test(parser *P, node *nd)
{
    for (;;) {
        int line = cur(P)->line;
        if (is_op(P, "|")) {
            P->i++;
            token *t = cur(P);
            if (t->type != TK_NAME) {
                char b[64];
                pfail(P, line, "expected filter name, got %s", tok_desc(t, b, sizeof(b)));
                return NULL;
            }
            node *x = new_node(P, E_FILTER, line);
            if (!x || !(x->name = pstrdup(P, t->p, t->n)))
                return NULL;
            x->nlen = t->n;
            P->i++;
            while (is_op(P, ".") && P->t[P->i + 1].type == TK_NAME) {
                /* dotted filter names do not exist here: report them */
                pfail(P, line, "no filter named '%s.%.*s'", x->name,
                      (int)P->t[P->i + 1].n, P->t[P->i + 1].p);
                return NULL;
            }
            x->a = nd;
            if (is_op(P, "(") && parse_args(P, x))
                return NULL;
            nd = x;
        } else if (is_name(P, "is")) {
            P->i++;
            node *x = new_node(P, E_TEST, line);
            if (!x)
                return NULL;
            x->neg = skip_name(P, "not");
            token *t = cur(P);
            if (t->type != TK_NAME && !(t->type == TK_OP && (streq(t->p, t->n, "==") ||
                    streq(t->p, t->n, "!=") || streq(t->p, t->n, "<") || streq(t->p, t->n, ">") ||
                    streq(t->p, t->n, "<=") || streq(t->p, t->n, ">=")))) {
                char b[64];
                pfail(P, line, "expected test name, got %s", tok_desc(t, b, sizeof(b)));
                return NULL;
            }
            if (t->type == TK_NAME && (streq(t->p, t->n, "none") || streq(t->p, t->n, "None") ||
                                       streq(t->p, t->n, "true") || streq(t->p, t->n, "True") ||
                                       streq(t->p, t->n, "false") || streq(t->p, t->n, "False"))) {
                /* `is none`, `is true`: the lower-case test names */
                char low[8];
                size_t k;
                for (k = 0; k < t->n && k < 7; k++)
                    low[k] = (char)(t->p[k] | 0x20);
                low[k] = 0;
                x->name = pstrdup(P, low, k);
            } else {
                x->name = pstrdup(P, t->p, t->n);
            }
            if (!x->name)
                return NULL;
            x->nlen = t->n;
            P->i++;
            x->a = nd;
            token *u = cur(P);
            if (is_op(P, "(")) {
                if (parse_args(P, x))
                    return NULL;
            } else if ((u->type == TK_NAME || u->type == TK_STR || u->type == TK_INT ||
                        u->type == TK_FLOAT || is_op(P, "[") || is_op(P, "{")) &&
                       !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and") &&
                       !is_name(P, "if") && !is_name(P, "in") && !is_name(P, "not") &&
                       !is_name(P, "is")) {
                /* one argument without parentheses: `is divisibleby 3` */
                node *arg = parse_primary(P);
                if (!arg || !(arg = parse_postfix(P, arg)))
                    return NULL;
                nvec v = {0};
                if (nvec_push(P, &v, arg) || nvec_done(P, &v, &x->items))
                    return NULL;
            }
            nd = x;
        } else if (is_op(P, "(")) {
            nd = parse_call(P, nd, line);
            if (!nd)
                return NULL;
        } else {
            return nd;
        }
    }
}

static node *parse_unary(parser *P, bool with_filter)
{
    if (!enter(P))
        return NULL;
    int line = cur(P)->line;
    node *nd;
    if (is_op(P, "-") || is_op(P, "+")) {
        bool neg = is_op(P, "-");
        P->i++;
        node *x = parse_unary(P, false);
        if (!x || !(nd = new_node(P, neg ? E_NEG : E_POS, line)))
            return NULL;
        nd->a = x;
    } else {
        nd = parse_primary(P);
        if (nd)
            nd = parse_postfix(P, nd);
    }
    if (nd && with_filter)
        nd = parse_filter_test(P, nd);
    P->depth--;
    return nd;
}

static node *binop(parser *P, const char *op, node *l, node *r, int line)
{
    if (!l || !r)
        return NULL;
    node *nd = new_node(P, E_BIN, line);
    if (!nd)
        return NULL;
    nd->op = op;
    nd->a = l;
    nd->b = r;
    return nd;
}

static node *parse_pow(parser *P)
{
    node *l = parse_unary(P, true);
    while (l && is_op(P, "**")) {
        int line = cur(P)->line;
        P->i++;
        l = binop(P, "**", l, parse_unary(P, true), line);
    }
    return l;
}

static node *parse_math2(parser *P)
{
    node *l = parse_pow(P);
    for (;;) {
        const char *op = is_op(P, "*") ? "*" : is_op(P, "/") ? "/"
                         : is_op(P, "//") ? "//" : is_op(P, "%") ? "%" : NULL;
        if (!l || !op)
            return l;
        int line = cur(P)->line;
        P->i++;
        l = binop(P, op, l, parse_pow(P), line);
    }
}

static node *parse_concat(parser *P)
{
    node *l = parse_math2(P);
    while (l && is_op(P, "~")) {
        int line = cur(P)->line;
        P->i++;
        l = binop(P, "~", l, parse_math2(P), line);
    }
    return l;
}

static node *parse_math1(parser *P)
{
    node *l = parse_concat(P);
    for (;;) {
        const char *op = is_op(P, "+") ? "+" : is_op(P, "-") ? "-" : NULL;
        if (!l || !op)
            return l;
        int line = cur(P)->line;
        P->i++;
        l = binop(P, op, l, parse_concat(P), line);
    }
}

static node *parse_compare(parser *P)
{
    int line = cur(P)->line;
    node *l = parse_math1(P);
    if (!l)
        return NULL;
    nvec operands = {0};
    const char *ops[64];
    size_t nops = 0;
    for (;;) {
        const char *op = NULL;
        if (is_op(P, "==")) op = "==";
        else if (is_op(P, "!=")) op = "!=";
        else if (is_op(P, "<")) op = "<";
        else if (is_op(P, "<=")) op = "<=";
        else if (is_op(P, ">")) op = ">";
        else if (is_op(P, ">=")) op = ">=";
        else if (is_name(P, "in")) op = "in";
        else if (is_name(P, "not") && P->t[P->i + 1].type == TK_NAME &&
                 streq(P->t[P->i + 1].p, P->t[P->i + 1].n, "in")) {
            op = "not in";
            P->i++;
        }
        if (!op)
            break;
        if (nops == 64) {
            free(operands.v);
            pfail(P, line, "too many chained comparisons");
            return NULL;
        }
        P->i++;
        node *r = parse_math1(P);
        if (!r || nvec_push(P, &operands, r)) {
            free(operands.v);
            return NULL;
        }
        ops[nops++] = op;
    }
    if (!nops)
        return l;
    node *nd = new_node(P, E_CMP, line);
    if (!nd || !(nd->ops = arena_alloc(P->a, nops * sizeof(char *)))) {
        free(operands.v);
        return NULL;
    }
    memcpy(nd->ops, ops, nops * sizeof(char *));
    nd->a = l;
    if (nvec_done(P, &operands, &nd->items))
        return NULL;
    return nd;
}

static node *parse_not(parser *P)
{
    if (is_name(P, "not")) {
        int line = cur(P)->line;
        P->i++;
        if (!enter(P))
            return NULL;
        node *x = parse_not(P);
        P->depth--;
        node *nd;
        if (!x || !(nd = new_node(P, E_NOT, line)))
            return NULL;
        nd->a = x;
        return nd;
    }
    return parse_compare(P);
}

/* `a and b and ...` / `a or b or ...`: left-associative, each operand
 * parsed by the next tighter level. */
static node *parse_logic(parser *P, const char *op, int kind, node *(*next)(parser *))
{
    node *l = next(P);
    while (l && is_name(P, op)) {
        int line = cur(P)->line;
        P->i++;
        node *r = next(P);
        node *x = r ? binop(P, op, l, r, line) : NULL;
        if (!x)
            return NULL;
        x->kind = kind;
        l = x;
    }
    return l;
}

static node *parse_and(parser *P) { return parse_logic(P, "and", E_AND, parse_not); }

static node *parse_or(parser *P) { return parse_logic(P, "or", E_OR, parse_and); }

static node *parse_expr(parser *P, bool with_condexpr)
{
    if (!enter(P))
        return NULL;
    node *nd = parse_or(P);
    while (nd && with_condexpr && is_name(P, "if")) {
        int line = cur(P)->line;
        P->i++;
        node *cond = parse_or(P);
        if (!cond)
            return NULL;
        node *x = new_node(P, E_COND, line);
        if (!x)
            return NULL;
        x->a = cond;
        x->b = nd;
        if (skip_name(P, "else") && !(x->c = parse_expr(P, true)))
            return NULL;
        nd = x;
    }
    P->depth--;
    return nd;
}

/* An expression or a comma-separated tuple of them. */
static node *parse_tuple(parser *P, bool with_condexpr, bool explicit_parens)
{
    int line = cur(P)->line;
    if (explicit_parens && is_op(P, ")")) {
        return new_node(P, E_TUPLE, line); /* () */
    }
    node *first = parse_expr(P, with_condexpr);
    if (!first || !is_op(P, ","))
        return first;
    nvec v = {0};
    if (nvec_push(P, &v, first))
        return NULL;
    while (skip_op(P, ",")) {
        token *t = cur(P);
        /* a trailing comma ends the tuple */
        if (t->type == TK_VEND || t->type == TK_BEND || is_op(P, ")") ||
            is_op(P, "]") || is_name(P, "if") || is_op(P, "="))
            break;
        node *e = parse_expr(P, with_condexpr);
        if (!e || nvec_push(P, &v, e)) {
            free(v.v);
            return NULL;
        }
    }
    node *nd = new_node(P, E_TUPLE, line);
    if (!nd || nvec_done(P, &v, &nd->items)) {
        free(v.v);
        return NULL;
    }
    return nd;
}

/* ---------------------------------------------------------------- statements */

static int parse_body(parser *P, const char *const *ends, nlist *out);

/* Names after `for` or `set`: a, b  or  (a, b); for set also ns.attr. */
static int parse_targets(parser *P, node *nd, bool allow_attr)
{
    const char *names[32];
    size_t n = 0;
    bool paren = skip_op(P, "(");
    for (;;) {
        token *t = cur(P);
        if (t->type != TK_NAME) {
            char b[64];
            return pfail(P, t->line, "expected a name to assign to, got %s",
                         tok_desc(t, b, sizeof(b)));
        }
        if (n == 32)
            return pfail(P, t->line, "too many names to assign to");
        if (!(names[n++] = pstrdup(P, t->p, t->n)))
            return -1;
        P->i++;
        if (allow_attr && n == 1 && !paren && is_op(P, ".")) {
            P->i++;
            token *a = cur(P);
            if (a->type != TK_NAME)
                return pfail(P, a->line, "expected attribute name after '.'");
            if (!(nd->attr = pstrdup(P, a->p, a->n)))
                return -1;
            nd->alen = a->n;
            P->i++;
            break;
        }
        if (!skip_op(P, ","))
            break;
        if (paren && is_op(P, ")"))
            break;
        if (!paren && cur(P)->type != TK_NAME)
            break;
    }
    if (paren && expect_op(P, ")"))
        return -1;
    if (!(nd->names = arena_alloc(P->a, n * sizeof(char *))))
        return pfail(P, nd->line, "out of memory");
    memcpy(nd->names, names, n * sizeof(char *));
    nd->nnames = n;
    return 0;
}

/* Consumes `{% name` ... `%}` of an end tag (endif, endfor, ...). */
static int end_tag(parser *P, const char *name)
{
    if (expect_type(P, TK_BBEGIN, "'{%'"))
        return -1;
    if (!skip_name(P, name))
        return pfail(P, cur(P)->line, "expected '%s'", name);
    return expect_type(P, TK_BEND, "end of statement block");
}

/* Filters of a {% filter %} or {% set x | f %} block, applied to the
 * captured text (an E_CAPTURED node). */
static node *parse_filter_chain(parser *P, int line)
{
    node *nd = new_node(P, E_CAPTURED, line);
    if (!nd)
        return NULL;
    if (!is_op(P, "|")) {
        /* {% filter upper %}: the first filter has no '|' */
        token *t = cur(P);
        if (t->type != TK_NAME) {
            pfail(P, line, "expected filter name");
            return NULL;
        }
        node *x = new_node(P, E_FILTER, line);
        if (!x || !(x->name = pstrdup(P, t->p, t->n)))
            return NULL;
        x->nlen = t->n;
        x->a = nd;
        P->i++;
        if (is_op(P, "(") && parse_args(P, x))
            return NULL;
        nd = x;
    }
    return parse_filter_test(P, nd);
}

static node *parse_stmt(parser *P)
{
    token *t = cur(P);
    int line = t->line;
    if (t->type != TK_NAME) {
        pfail(P, line, "tag name expected");
        return NULL;
    }
    node *nd;
    if (skip_name(P, "if")) {
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        node *top = NULL, *last = NULL;
        for (;;) {
            if (!(nd = new_node(P, S_IF, line)))
                return NULL;
            if (!(nd->a = parse_tuple(P, true, false)) ||
                expect_type(P, TK_BEND, "end of statement block") ||
                parse_body(P, ends, &nd->body))
                return NULL;
            if (!top)
                top = nd;
            else {
                /* elif: an if inside the else branch */
                last->orelse.v = arena_alloc(P->a, sizeof(node *));
                if (!last->orelse.v) {
                    pfail(P, line, "out of memory");
                    return NULL;
                }
                last->orelse.v[0] = nd;
                last->orelse.n = 1;
            }
            last = nd;
            P->i++; /* {% */
            line = cur(P)->line;
            if (skip_name(P, "elif"))
                continue;
            if (skip_name(P, "else")) {
                static const char *const e2[] = {"endif", NULL};
                if (expect_type(P, TK_BEND, "end of statement block") ||
                    parse_body(P, e2, &nd->orelse))
                    return NULL;
                P->i++;
            }
            P->i++; /* endif */
            if (expect_type(P, TK_BEND, "end of statement block"))
                return NULL;
            return top;
        }
    }
    if (skip_name(P, "for")) {
        static const char *const ends[] = {"else", "endfor", NULL};
        if (!(nd = new_node(P, S_FOR, line)) || parse_targets(P, nd, false))
            return NULL;
        if (!skip_name(P, "in")) {
            pfail(P, line, "expected 'in' in for loop");
            return NULL;
        }
        if (!(nd->a = parse_tuple(P, false, false)))
            return NULL;
        if (skip_name(P, "if") && !(nd->b = parse_expr(P, true)))
            return NULL;
        if (is_name(P, "recursive")) {
            pfail(P, line, "recursive for loops are not supported");
            return NULL;
        }
        if (expect_type(P, TK_BEND, "end of statement block"))
            return NULL;
        P->loops++;
        int r = parse_body(P, ends, &nd->body);
        P->loops--;
        if (r)
            return NULL;
        P->i++;
        if (skip_name(P, "else")) {
            static const char *const e2[] = {"endfor", NULL};
            if (expect_type(P, TK_BEND, "end of statement block") ||
                parse_body(P, e2, &nd->orelse))
                return NULL;
            P->i++;
        }
        P->i++;
        if (expect_type(P, TK_BEND, "end of statement block"))
            return NULL;
        return nd;
    }
    if (skip_name(P, "set")) {
        if (!(nd = new_node(P, S_SET, line)) || parse_targets(P, nd, true))
            return NULL;
        if (skip_op(P, "=")) {
            if (!(nd->a = parse_tuple(P, true, false)) ||
                expect_type(P, TK_BEND, "end of statement block"))
                return NULL;
            return nd;
        }
        if (nd->nnames != 1 || nd->attr) {
            pfail(P, line, "a block set assigns one plain name");
            return NULL;
        }
        nd->kind = S_SETBLOCK;
        if (is_op(P, "|") && !(nd->a = parse_filter_chain(P, line)))
            return NULL;
        static const char *const ends[] = {"endset", NULL};
        if (expect_type(P, TK_BEND, "end of statement block") ||
            parse_body(P, ends, &nd->body) || end_tag(P, "endset"))
            return NULL;
        return nd;
    }
    if (skip_name(P, "macro")) {
        if (!(nd = new_node(P, S_MACRO, line)))
            return NULL;
        if (cur(P)->type != TK_NAME) {
            pfail(P, line, "expected macro name");
            return NULL;
        }
        if (!(nd->name = pstrdup(P, cur(P)->p, cur(P)->n)))
            return NULL;
        nd->nlen = cur(P)->n;
        P->i++;
        const char *names[64];
        nvec defs = {0};
        size_t n = 0;
        if (expect_op(P, "("))
            return NULL;
        while (!is_op(P, ")")) {
            if (n && expect_op(P, ","))
                goto macro_fail;
            if (is_op(P, ")"))
                break;
            if (cur(P)->type != TK_NAME || n == 64) {
                pfail(P, cur(P)->line, "expected macro parameter name");
                goto macro_fail;
            }
            if (!(names[n++] = pstrdup(P, cur(P)->p, cur(P)->n)))
                goto macro_fail;
            P->i++;
            node *def = NULL;
            if (skip_op(P, "=") && !(def = parse_expr(P, true)))
                goto macro_fail;
            if (nvec_push(P, &defs, def))
                goto macro_fail;
        }
        P->i++;
        if (nvec_done(P, &defs, &nd->defaults))
            return NULL;
        if (n && !(nd->names = arena_alloc(P->a, n * sizeof(char *)))) {
            pfail(P, line, "out of memory");
            return NULL;
        }
        if (n)
            memcpy(nd->names, names, n * sizeof(char *));
        nd->nnames = n;
        static const char *const ends[] = {"endmacro", NULL};
        int saved = P->loops;
        P->loops = 0;
        int r = expect_type(P, TK_BEND, "end of statement block") ||
                parse_body(P, ends, &nd->body) || end_tag(P, "endmacro");
        P->loops = saved;
        return r ? NULL : nd;
    macro_fail:
        free(defs.v);
        return NULL;
    }
    if (is_name(P, "break") || is_name(P, "continue")) {
        bool brk = is_name(P, "break");
        if (!P->loops) {
            pfail(P, line, "'%s' outside of a loop", brk ? "break" : "continue");
            return NULL;
        }
        P->i++;
        if (!(nd = new_node(P, brk ? S_BREAK : S_CONTINUE, line)) ||
            expect_type(P, TK_BEND, "end of statement block"))
            return NULL;
        return nd;
    }
    if (skip_name(P, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        if (!(nd = new_node(P, S_FILTERBLOCK, line)) ||
            !(nd->a = parse_filter_chain(P, line)) ||
            expect_type(P, TK_BEND, "end of statement block") ||
            parse_body(P, ends, &nd->body) || end_tag(P, "endfilter"))
            return NULL;
        return nd;
    }
    if (skip_name(P, "generation")) {
        /* transformers' marker for assistant-token masks: renders its body */
        static const char *const ends[] = {"endgeneration", NULL};
        if (!(nd = new_node(P, S_BODY, line)) ||
            expect_type(P, TK_BEND, "end of statement block") ||
            parse_body(P, ends, &nd->body) || end_tag(P, "endgeneration"))
            return NULL;
        return nd;
    }
    static const char *const unsupported[] = {
        "call", "include", "import", "from", "extends", "block", "with",
        "do", "autoescape", "trans", "print", NULL};
    for (int k = 0; unsupported[k]; k++)
        if (is_name(P, unsupported[k])) {
            pfail(P, line, "the '%s' tag is not supported", unsupported[k]);
            return NULL;
        }
    pfail(P, line, "Encountered unknown tag '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
    return NULL;
}

/* Statements until `{% <one of ends>` (left unconsumed at the '{%'), or
 * the end of the template when ends is NULL. */
static int parse_body(parser *P, const char *const *ends, nlist *out)
{
    nvec v = {0};
    if (!enter(P))
        return -1;
    for (;;) {
        token *t = cur(P);
        node *nd = NULL;
        if (t->type == TK_EOF) {
            if (ends) {
                free(v.v);
                return pfail(P, t->line, "unexpected end of template, expected '%s'", ends[0]);
            }
            break;
        }
        if (t->type == TK_TEXT) {
            if (!(nd = new_node(P, S_TEXT, t->line)))
                goto fail;
            nd->lit.t = V_STR;
            nd->lit.u.s.p = t->p;
            nd->lit.u.s.n = t->n;
            P->i++;
        } else if (t->type == TK_VBEGIN) {
            P->i++;
            if (!(nd = new_node(P, S_OUT, t->line)) ||
                !(nd->a = parse_tuple(P, true, false)) ||
                expect_type(P, TK_VEND, "end of print statement"))
                goto fail;
        } else if (t->type == TK_BBEGIN) {
            token *name = &P->t[P->i + 1];
            if (name->type == TK_NAME && ends) {
                bool stop = false;
                for (int k = 0; ends[k]; k++)
                    stop |= streq(name->p, name->n, ends[k]);
                if (stop)
                    break;
            }
            if (name->type == TK_NAME &&
                (streq(name->p, name->n, "endif") || streq(name->p, name->n, "endfor") ||
                 streq(name->p, name->n, "elif") || streq(name->p, name->n, "else") ||
                 streq(name->p, name->n, "endmacro") || streq(name->p, name->n, "endset") ||
                 streq(name->p, name->n, "endfilter") || streq(name->p, name->n, "endgeneration"))) {
                pfail(P, name->line, "unexpected '%.*s'%s%s%s", (int)name->n, name->p,
                      ends ? " (expected '" : "", ends ? ends[0] : "", ends ? "')" : "");
                goto fail;
            }
            P->i++;
            if (!(nd = parse_stmt(P)))
                goto fail;
        } else {
            char b[64];
            pfail(P, t->line, "unexpected %s", tok_desc(t, b, sizeof(b)));
            goto fail;
        }
        if (nvec_push(P, &v, nd))
            goto fail;
    }
    P->depth--;
    return nvec_done(P, &v, out);
fail:
    free(v.v);
    return -1;
}

/* ================================================================ render state */

typedef struct scope scope;
struct scope {
    scope *parent;
    vdict vars;
    bool captured; /* a macro defined here keeps it */
};

struct vmacro {
    const node *def;
    scope *closure;
};

typedef struct sb {
    char *p;
    size_t n, cap;
} sb;

struct jinja_ctx {
    arena a;
    jinja_limits lim;
    time_t now;
    vdict vars; /* variables given by the caller */
    uint64_t steps;
    int depth;  /* nesting of eval/exec calls (C stack) */
    int mdepth; /* nesting of macro calls */
    bool failed;
    char err[512];
    val captured; /* text of a {% filter %} / {% set %} block being filtered */
    bool oom;     /* a builder ran out of the memory budget */
};

typedef struct jinja_ctx ctx;

enum gfunc { G_RANGE, G_NAMESPACE, G_DICT, G_RAISE, G_STRFTIME, G_CYCLER,
             G_JOINER, G_LIPSUM };

static const char *const GFUNC_NAMES[] = {"range", "namespace", "dict",
    "raise_exception", "strftime_now", "cycler", "joiner", "lipsum", NULL};

static int rfail(ctx *c, const node *nd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rfail(ctx *c, const node *nd, const char *fmt, ...)
{
    if (c->failed)
        return -1;
    c->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (nd)
        snprintf(c->err, sizeof(c->err), "line %d: %s", nd->line, msg);
    else
        snprintf(c->err, sizeof(c->err), "%s", msg);
    return -1;
}

static int oom(ctx *c, const node *nd)
{
    return rfail(c, nd, "template needs more than %zu bytes of memory",
                 c->lim.max_memory);
}

static void *calloc_c(ctx *c, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = arena_alloc(&c->a, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

static int charge(ctx *c, const node *nd, uint64_t n)
{
    c->steps += n;
    if (c->steps > c->lim.max_steps)
        return rfail(c, nd, "template rendering exceeded %" PRIu64 " steps",
                     c->lim.max_steps);
    return 0;
}

/* ---------------------------------------------------------------- builders */

static int sb_grow(ctx *c, sb *b, size_t extra)
{
    if (extra > c->lim.max_output || b->n > c->lim.max_output - extra)
        return -1;
    size_t need = b->n + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = arena_alloc(&c->a, cap);
    if (!p) {
        c->oom = true;
        return -1;
    }
    if (b->n)
        memcpy(p, b->p, b->n);
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Appends; on failure returns -1 and the caller reports sb_error(). */
static int sb_put(ctx *c, sb *b, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (sb_grow(c, b, n))
        return -1;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int sb_puts(ctx *c, sb *b, const char *s) { return sb_put(c, b, s, strlen(s)); }

static int sb_error(ctx *c, const node *nd)
{
    if (c->oom)
        return oom(c, nd);
    return rfail(c, nd, "rendered text exceeds %zu bytes", c->lim.max_output);
}

/* An undefined value carries the message an operation on it reports. */
static val mkundef(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static val mkundef(ctx *c, const char *fmt, ...)
{
    val v = {.t = V_UNDEF};
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    char *p = arena_alloc(&c->a, (size_t)n + 1);
    if (p) {
        memcpy(p, msg, (size_t)n + 1);
        v.u.s.p = p;
        v.u.s.n = (size_t)n;
    } else {
        v.u.s.p = "undefined value";
        v.u.s.n = strlen(v.u.s.p);
    }
    return v;
}

static int undef_err(ctx *c, const node *nd, const val *v)
{
    return rfail(c, nd, "%.*s", (int)v->u.s.n, v->u.s.p);
}

static val mknone(void) { return (val){.t = V_NONE}; }

static val mkbool(bool b)
{
    val v = {.t = V_BOOL};
    v.u.b = b;
    return v;
}

static val mkint(int64_t i)
{
    val v = {.t = V_INT};
    v.u.i = i;
    return v;
}

static val mkfloat(double f)
{
    val v = {.t = V_FLOAT};
    v.u.f = f;
    return v;
}

/* A string value that shares `p` (strings are immutable and everything
 * lives until the context is freed). */
static val mkstr_ref(const char *p, size_t n)
{
    val v = {.t = V_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

static int mkstr(ctx *c, const node *nd, const char *p, size_t n, val *out)
{
    char *s = arena_alloc(&c->a, n + 1);
    if (!s)
        return oom(c, nd);
    if (n)
        memcpy(s, p, n);
    s[n] = 0;
    *out = mkstr_ref(s, n);
    return 0;
}

static val sb_val(sb *b) { return mkstr_ref(b->p ? b->p : "", b->n); }

static vlist *list_new(ctx *c, size_t cap)
{
    vlist *l = calloc_c(c, 1, sizeof(vlist));
    if (!l)
        return NULL;
    if (cap) {
        l->v = calloc_c(c, cap, sizeof(val));
        if (!l->v)
            return NULL;
        l->cap = cap;
    }
    return l;
}

static int list_push(ctx *c, vlist *l, val v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        val *nv = calloc_c(c, cap, sizeof(val));
        if (!nv)
            return -1;
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof(val));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}

static val mklist(vlist *l)
{
    val v = {.t = V_LIST};
    v.u.l = l;
    return v;
}

static val mkdict(vdict *d, int t)
{
    val v = {.t = t};
    v.u.d = d;
    return v;
}

static bool val_eq(const val *a, const val *b);

static val *dict_find(const vdict *d, const val *key)
{
    for (size_t i = 0; i < d->n; i++)
        if (val_eq(&d->k[i], key))
            return &d->v[i];
    return NULL;
}

static val *dict_find_str(const vdict *d, const char *p, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == V_STR && d->k[i].u.s.n == n && memcmp(d->k[i].u.s.p, p, n) == 0)
            return &d->v[i];
    return NULL;
}

static int dict_set(ctx *c, vdict *d, val key, val v)
{
    val *old = dict_find(d, &key);
    if (old) {
        *old = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        val *nk = calloc_c(c, cap, sizeof(val));
        val *nv = calloc_c(c, cap, sizeof(val));
        if (!nk || !nv)
            return -1;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(val));
            memcpy(nv, d->v, d->n * sizeof(val));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n++] = v;
    return 0;
}

static int dict_remove(vdict *d, const val *key, val *out)
{
    for (size_t i = 0; i < d->n; i++)
        if (val_eq(&d->k[i], key)) {
            *out = d->v[i];
            memmove(d->k + i, d->k + i + 1, (d->n - i - 1) * sizeof(val));
            memmove(d->v + i, d->v + i + 1, (d->n - i - 1) * sizeof(val));
            d->n--;
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------- python-like text */

static const char *type_name(const val *v)
{
    switch (v->t) {
    case V_UNDEF: return "Undefined";
    case V_NONE: return "NoneType";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "str";
    case V_LIST: return v->u.l->tuple ? "tuple" : "list";
    case V_DICT: return "dict";
    case V_NS: return "Namespace";
    case V_LOOP: return "LoopContext";
    case V_MACRO: return "Macro";
    default: return "function";
    }
}

/* Python's repr() of a float: the shortest text that reads back the same,
 * fixed notation for exponents -4..15, else d.ddde+XX. */
static void fmt_float(double f, char *out, size_t len)
{
    if (isnan(f)) {
        snprintf(out, len, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(out, len, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp: [-]d[.ddd]e[+-]XX */
    char digits[24] = {0};
    int nd = 0;
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg)
        p++;
    for (; *p && *p != 'e'; p++)
        if (is_digit(*p) && nd < 20)
            digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    size_t k = 0;
    char buf[64];
    if (neg)
        buf[k++] = '-';
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            buf[k++] = '0';
            buf[k++] = '.';
            for (int i = 0; i < -exp - 1; i++)
                buf[k++] = '0';
            for (int i = 0; i < nd; i++)
                buf[k++] = digits[i];
        } else {
            for (int i = 0; i <= exp; i++)
                buf[k++] = i < nd ? digits[i] : '0';
            buf[k++] = '.';
            if (nd > exp + 1)
                for (int i = exp + 1; i < nd; i++)
                    buf[k++] = digits[i];
            else
                buf[k++] = '0';
        }
        buf[k] = 0;
    } else {
        buf[k++] = digits[0];
        if (nd > 1) {
            buf[k++] = '.';
            for (int i = 1; i < nd; i++)
                buf[k++] = digits[i];
        }
        snprintf(buf + k, sizeof(buf) - k, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    snprintf(out, len, "%s", buf);
}

static int put_repr(ctx *c, sb *b, const val *v, int depth);

/* Python str(). */
static int put_str(ctx *c, sb *b, const val *v, int depth)
{
    char buf[64];
    switch (v->t) {
    case V_UNDEF: return 0;
    case V_NONE: return sb_puts(c, b, "None");
    case V_BOOL: return sb_puts(c, b, v->u.b ? "True" : "False");
    case V_INT:
        snprintf(buf, sizeof(buf), "%" PRId64, v->u.i);
        return sb_puts(c, b, buf);
    case V_FLOAT:
        fmt_float(v->u.f, buf, sizeof(buf));
        return sb_puts(c, b, buf);
    case V_STR: return sb_put(c, b, v->u.s.p, v->u.s.n);
    default: return put_repr(c, b, v, depth);
    }
}

static int put_str_repr(ctx *c, sb *b, const char *p, size_t n)
{
    bool sq = memchr(p, '\'', n) != NULL, dq = memchr(p, '"', n) != NULL;
    char q = (sq && !dq) ? '"' : '\'';
    if (sb_put(c, b, &q, 1))
        return -1;
    size_t run = 0; /* start of the pending run of plain bytes */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        char esc[12];
        esc[0] = 0;
        size_t skip = 1;
        if (ch == (unsigned char)q || ch == '\\')
            snprintf(esc, sizeof(esc), "\\%c", ch);
        else if (ch == '\n')
            snprintf(esc, sizeof(esc), "\\n");
        else if (ch == '\r')
            snprintf(esc, sizeof(esc), "\\r");
        else if (ch == '\t')
            snprintf(esc, sizeof(esc), "\\t");
        else if (ch < 0x20 || ch == 0x7f)
            snprintf(esc, sizeof(esc), "\\x%02x", ch);
        else if (ch == 0xc2 && i + 1 < n && (((unsigned char)p[i + 1] >= 0x80 &&
                 (unsigned char)p[i + 1] <= 0xa0) || (unsigned char)p[i + 1] == 0xad)) {
            /* C1 controls, no-break space, soft hyphen: not printable */
            snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)p[i + 1]);
            skip = 2;
        } else if (ch == 0xe2 && i + 2 < n && (unsigned char)p[i + 1] == 0x80 &&
                   (((unsigned char)p[i + 2] >= 0x80 && (unsigned char)p[i + 2] <= 0x8f) ||
                    ((unsigned char)p[i + 2] >= 0xa8 && (unsigned char)p[i + 2] <= 0xaf))) {
            /* U+2000..200F, U+2028..202F */
            snprintf(esc, sizeof(esc), "\\u20%02x", (unsigned char)p[i + 2] - 0x80);
            skip = 3;
        }
        if (!esc[0])
            continue;
        if (sb_put(c, b, p + run, i - run) || sb_puts(c, b, esc))
            return -1;
        i += skip - 1;
        run = i + 1;
    }
    if (sb_put(c, b, p + run, n - run))
        return -1;
    return sb_put(c, b, &q, 1);
}

/* Python repr() (what str() of a list or dict shows for its items). */
static int put_repr(ctx *c, sb *b, const val *v, int depth)
{
    if (depth > 100)
        return sb_puts(c, b, "...");
    switch (v->t) {
    case V_STR: return put_str_repr(c, b, v->u.s.p, v->u.s.n);
    case V_LIST: {
        const vlist *l = v->u.l;
        if (sb_puts(c, b, l->tuple ? "(" : "["))
            return -1;
        for (size_t i = 0; i < l->n; i++)
            if ((i && sb_puts(c, b, ", ")) || put_repr(c, b, &l->v[i], depth + 1))
                return -1;
        if (l->tuple && l->n == 1 && sb_puts(c, b, ","))
            return -1;
        return sb_puts(c, b, l->tuple ? ")" : "]");
    }
    case V_DICT:
    case V_NS: {
        const vdict *d = v->u.d;
        if (sb_puts(c, b, v->t == V_NS ? "<Namespace {" : "{"))
            return -1;
        for (size_t i = 0; i < d->n; i++)
            if ((i && sb_puts(c, b, ", ")) || put_repr(c, b, &d->k[i], depth + 1) ||
                sb_puts(c, b, ": ") || put_repr(c, b, &d->v[i], depth + 1))
                return -1;
        return sb_puts(c, b, v->t == V_NS ? "}>" : "}");
    }
    case V_UNDEF: return 0;
    case V_LOOP: {
        char buf[64];
        snprintf(buf, sizeof(buf), "<LoopContext %zu/%zu>", v->u.lp->i + 1, v->u.lp->items->n);
        return sb_puts(c, b, buf);
    }
    case V_MACRO:
        return sb_puts(c, b, "<Macro '") || sb_puts(c, b, v->u.m->def->name) || sb_puts(c, b, "'>");
    case V_FUNC:
        return sb_puts(c, b, "<function ") || sb_puts(c, b, GFUNC_NAMES[v->u.fn]) || sb_puts(c, b, ">");
    default: return put_str(c, b, v, depth);
    }
}

typedef struct json_opts {
    const char *indent; /* NULL: one line */
    const char *item_sep, *key_sep;
    bool sort_keys, ensure_ascii;
} json_opts;

static int put_json_str(ctx *c, sb *b, const char *p, size_t n, bool ascii)
{
    if (sb_puts(c, b, "\""))
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        char esc[16];
        size_t skip = 1;
        if (ch == '"') snprintf(esc, sizeof(esc), "\\\"");
        else if (ch == '\\') snprintf(esc, sizeof(esc), "\\\\");
        else if (ch == '\n') snprintf(esc, sizeof(esc), "\\n");
        else if (ch == '\r') snprintf(esc, sizeof(esc), "\\r");
        else if (ch == '\t') snprintf(esc, sizeof(esc), "\\t");
        else if (ch == '\b') snprintf(esc, sizeof(esc), "\\b");
        else if (ch == '\f') snprintf(esc, sizeof(esc), "\\f");
        else if (ch < 0x20) snprintf(esc, sizeof(esc), "\\u%04x", ch);
        else if (ascii && ch >= 0x80) {
            /* decode one UTF-8 sequence; invalid bytes pass as U+FFFD */
            uint32_t cp = 0xfffd;
            size_t len = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 1;
            if (len > 1 && i + len <= n) {
                cp = ch & (0x3f >> (len - 1));
                for (size_t j = 1; j < len; j++)
                    cp = (cp << 6) | ((unsigned char)p[i + j] & 0x3f);
                skip = len;
            }
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                snprintf(esc, sizeof(esc), "\\u%04x", cp);
            }
        } else
            continue;
        if (sb_put(c, b, p + run, i - run) || sb_puts(c, b, esc))
            return -1;
        i += skip - 1;
        run = i + 1;
    }
    if (sb_put(c, b, p + run, n - run))
        return -1;
    return sb_puts(c, b, "\"");
}

static int json_newline(ctx *c, sb *b, const json_opts *o, int level)
{
    if (sb_puts(c, b, "\n"))
        return -1;
    for (int i = 0; i < level; i++)
        if (sb_puts(c, b, o->indent))
            return -1;
    return 0;
}

static int val_cmp(ctx *c, const node *nd, const val *a, const val *b, int *r);

/* Python's json.dumps. -2 for a value JSON cannot hold (error set). */
static int put_json(ctx *c, const node *nd, sb *b, const val *v, const json_opts *o, int level)
{
    char buf[64];
    if (level > 100)
        return rfail(c, nd, "tojson: value nested too deeply");
    switch (v->t) {
    case V_NONE: return sb_puts(c, b, "null") ? sb_error(c, nd) : 0;
    case V_BOOL: return sb_puts(c, b, v->u.b ? "true" : "false") ? sb_error(c, nd) : 0;
    case V_INT:
        snprintf(buf, sizeof(buf), "%" PRId64, v->u.i);
        return sb_puts(c, b, buf) ? sb_error(c, nd) : 0;
    case V_FLOAT:
        if (isnan(v->u.f))
            snprintf(buf, sizeof(buf), "NaN");
        else if (isinf(v->u.f))
            snprintf(buf, sizeof(buf), v->u.f < 0 ? "-Infinity" : "Infinity");
        else
            fmt_float(v->u.f, buf, sizeof(buf));
        return sb_puts(c, b, buf) ? sb_error(c, nd) : 0;
    case V_STR:
        return put_json_str(c, b, v->u.s.p, v->u.s.n, o->ensure_ascii) ? sb_error(c, nd) : 0;
    case V_LIST: {
        const vlist *l = v->u.l;
        if (l->n == 0)
            return sb_puts(c, b, "[]") ? sb_error(c, nd) : 0;
        if (sb_puts(c, b, "["))
            return sb_error(c, nd);
        for (size_t i = 0; i < l->n; i++) {
            if (i && sb_puts(c, b, o->item_sep))
                return sb_error(c, nd);
            if (o->indent && json_newline(c, b, o, level + 1))
                return sb_error(c, nd);
            if (put_json(c, nd, b, &l->v[i], o, level + 1))
                return -1;
        }
        if (o->indent && json_newline(c, b, o, level))
            return sb_error(c, nd);
        return sb_puts(c, b, "]") ? sb_error(c, nd) : 0;
    }
    case V_DICT: {
        const vdict *d = v->u.d;
        if (d->n == 0)
            return sb_puts(c, b, "{}") ? sb_error(c, nd) : 0;
        size_t *order = calloc_c(c, d->n, sizeof(size_t));
        if (!order)
            return oom(c, nd);
        for (size_t i = 0; i < d->n; i++)
            order[i] = i;
        if (o->sort_keys) /* insertion sort: dicts in templates are small */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = order[i], j = i;
                while (j > 0) {
                    int r;
                    if (val_cmp(c, nd, &d->k[order[j - 1]], &d->k[x], &r))
                        return -1;
                    if (r <= 0)
                        break;
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        if (sb_puts(c, b, "{"))
            return sb_error(c, nd);
        for (size_t ii = 0; ii < d->n; ii++) {
            size_t i = order[ii];
            if (ii && sb_puts(c, b, o->item_sep))
                return sb_error(c, nd);
            if (o->indent && json_newline(c, b, o, level + 1))
                return sb_error(c, nd);
            const val *k = &d->k[i];
            int r;
            if (k->t == V_STR) {
                r = put_json_str(c, b, k->u.s.p, k->u.s.n, o->ensure_ascii);
            } else if (k->t == V_INT || k->t == V_FLOAT || k->t == V_BOOL || k->t == V_NONE) {
                sb kb = {0};
                if (put_json(c, nd, &kb, k, o, level + 1))
                    return -1;
                r = put_json_str(c, b, kb.p, kb.n, false);
            } else {
                return rfail(c, nd, "keys must be str, int, float, bool or None, not %s", type_name(k));
            }
            if (r || sb_puts(c, b, o->key_sep))
                return sb_error(c, nd);
            if (put_json(c, nd, b, &d->v[i], o, level + 1))
                return -1;
        }
        if (o->indent && json_newline(c, b, o, level))
            return sb_error(c, nd);
        return sb_puts(c, b, "}") ? sb_error(c, nd) : 0;
    }
    default:
        return rfail(c, nd, "Object of type %s is not JSON serializable", type_name(v));
    }
}

/* ---------------------------------------------------------------- compare */

static bool is_num(const val *v) { return v->t == V_INT || v->t == V_FLOAT || v->t == V_BOOL; }

static double num_f(const val *v)
{
    return v->t == V_FLOAT ? v->u.f : v->t == V_INT ? (double)v->u.i : (double)v->u.b;
}

static int64_t num_i(const val *v) { return v->t == V_INT ? v->u.i : (int64_t)v->u.b; }

static bool val_eq_d(const val *a, const val *b, int depth);

static bool val_eq(const val *a, const val *b) { return val_eq_d(a, b, 0); }

/* Python ==. Containers nested deeper than 100 levels compare by identity
 * (no recursion without bound). */
static bool val_eq_d(const val *a, const val *b, int depth)
{
    if (is_num(a) && is_num(b)) {
        if (a->t == V_FLOAT || b->t == V_FLOAT)
            return num_f(a) == num_f(b);
        return num_i(a) == num_i(b);
    }
    if (a->t != b->t)
        return false;
    switch (a->t) {
    case V_UNDEF:
    case V_NONE: return true;
    case V_STR: return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    case V_LIST:
        if (a->u.l == b->u.l)
            return true;
        if (a->u.l->n != b->u.l->n || a->u.l->tuple != b->u.l->tuple || depth > 100)
            return false;
        for (size_t i = 0; i < a->u.l->n; i++)
            if (!val_eq_d(&a->u.l->v[i], &b->u.l->v[i], depth + 1))
                return false;
        return true;
    case V_DICT:
        if (a->u.d == b->u.d)
            return true;
        if (a->u.d->n != b->u.d->n || depth > 100)
            return false;
        for (size_t i = 0; i < a->u.d->n; i++) {
            const val *o = dict_find(b->u.d, &a->u.d->k[i]);
            if (!o || !val_eq_d(&a->u.d->v[i], o, depth + 1))
                return false;
        }
        return true;
    case V_NS: return a->u.d == b->u.d;
    case V_LOOP: return a->u.lp == b->u.lp;
    case V_MACRO: return a->u.m == b->u.m;
    case V_FUNC: return a->u.fn == b->u.fn;
    default: return false;
    }
}

/* Python ordering for numbers, strings and lists; a TypeError otherwise. */
static int val_cmp_d(ctx *c, const node *nd, const val *a, const val *b, int *r, int depth);

static int val_cmp(ctx *c, const node *nd, const val *a, const val *b, int *r)
{
    return val_cmp_d(c, nd, a, b, r, 0);
}

static int val_cmp_d(ctx *c, const node *nd, const val *a, const val *b, int *r, int depth)
{
    if (depth > 100)
        return rfail(c, nd, "values nested too deeply to compare");
    if (is_num(a) && is_num(b)) {
        if (a->t == V_FLOAT || b->t == V_FLOAT) {
            double x = num_f(a), y = num_f(b);
            *r = x < y ? -1 : x > y ? 1 : 0;
        } else {
            int64_t x = num_i(a), y = num_i(b);
            *r = x < y ? -1 : x > y ? 1 : 0;
        }
        return 0;
    }
    if (a->t == V_STR && b->t == V_STR) {
        size_t m = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int k = m ? memcmp(a->u.s.p, b->u.s.p, m) : 0;
        *r = k ? (k < 0 ? -1 : 1) : a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n ? 1 : 0;
        return 0;
    }
    if (a->t == V_LIST && b->t == V_LIST && a->u.l->tuple == b->u.l->tuple) {
        size_t m = a->u.l->n < b->u.l->n ? a->u.l->n : b->u.l->n;
        for (size_t i = 0; i < m; i++) {
            if (val_eq(&a->u.l->v[i], &b->u.l->v[i]))
                continue;
            return val_cmp_d(c, nd, &a->u.l->v[i], &b->u.l->v[i], r, depth + 1);
        }
        *r = a->u.l->n < b->u.l->n ? -1 : a->u.l->n > b->u.l->n ? 1 : 0;
        return 0;
    }
    if (a->t == V_UNDEF || b->t == V_UNDEF)
        return rfail(c, nd, "%.*s", (int)(a->t == V_UNDEF ? a : b)->u.s.n,
                     (a->t == V_UNDEF ? a : b)->u.s.p);
    return rfail(c, nd, "'<' not supported between instances of '%s' and '%s'",
                 type_name(a), type_name(b));
}

static bool truthy(const val *v)
{
    switch (v->t) {
    case V_UNDEF:
    case V_NONE: return false;
    case V_BOOL: return v->u.b;
    case V_INT: return v->u.i != 0;
    case V_FLOAT: return v->u.f != 0;
    case V_STR: return v->u.s.n != 0;
    case V_LIST: return v->u.l->n != 0;
    case V_DICT: return v->u.d->n != 0;
    default: return true;
    }
}

/* ================================================================ evaluator */

typedef struct args {
    val *pos;
    size_t npos;
    const char **kwn;
    val *kwv;
    size_t nkw;
} args;

/* Positional argument i, or the keyword `kw` (NULL when absent). */
static const val *arg(const args *a, size_t i, const char *kw)
{
    if (i < a->npos)
        return &a->pos[i];
    if (kw)
        for (size_t k = 0; k < a->nkw; k++)
            if (strcmp(a->kwn[k], kw) == 0)
                return &a->kwv[k];
    return NULL;
}

static int eval(ctx *c, scope *sc, const node *nd, val *out);
static int exec_body(ctx *c, scope *sc, const nlist *body, sb *out);

static int eval_args(ctx *c, scope *sc, const node *nd, args *a)
{
    memset(a, 0, sizeof(*a));
    a->npos = nd->items.n;
    a->nkw = nd->kwv.n;
    if (a->npos && !(a->pos = calloc_c(c, a->npos, sizeof(val))))
        return oom(c, nd);
    if (a->nkw && !(a->kwv = calloc_c(c, a->nkw, sizeof(val))))
        return oom(c, nd);
    a->kwn = nd->kwn;
    for (size_t i = 0; i < a->npos; i++)
        if (eval(c, sc, nd->items.v[i], &a->pos[i]))
            return -1;
    for (size_t i = 0; i < a->nkw; i++)
        if (eval(c, sc, nd->kwv.v[i], &a->kwv[i]))
            return -1;
    return 0;
}

static val *scope_lookup(ctx *c, scope *sc, const char *name, size_t n)
{
    for (; sc; sc = sc->parent) {
        val *v = dict_find_str(&sc->vars, name, n);
        if (v)
            return v;
    }
    return dict_find_str(&c->vars, name, n);
}

static int scope_set(ctx *c, const node *nd, scope *sc, const char *name, val v)
{
    if (dict_set(c, &sc->vars, mkstr_ref(name, strlen(name)), v))
        return oom(c, nd);
    return 0;
}

static int to_string(ctx *c, const node *nd, const val *v, val *out)
{
    if (v->t == V_STR) {
        *out = *v;
        return 0;
    }
    sb b = {0};
    if (put_str(c, &b, v, 0))
        return sb_error(c, nd);
    *out = sb_val(&b);
    return 0;
}

/* Items of an iterable as a list (shared for lists, so callers must not
 * change it): dict keys, string characters, nothing for undefined. */
static int iterate(ctx *c, const node *nd, const val *v, vlist **out)
{
    switch (v->t) {
    case V_LIST:
        *out = v->u.l;
        return 0;
    case V_UNDEF:
        *out = list_new(c, 0);
        return *out ? 0 : oom(c, nd);
    case V_DICT:
    case V_NS: {
        vlist *l = list_new(c, v->u.d->n);
        if (!l)
            return oom(c, nd);
        for (size_t i = 0; i < v->u.d->n; i++)
            l->v[l->n++] = v->u.d->k[i];
        *out = l;
        return 0;
    }
    case V_STR: {
        size_t n = utf8_count(v->u.s.p, v->u.s.n);
        vlist *l = list_new(c, n);
        if (!l || charge(c, nd, n / 16))
            return l ? -1 : oom(c, nd);
        const char *p = v->u.s.p, *e = p + v->u.s.n;
        while (p < e && l->n < l->cap) {
            const char *q = p + 1;
            while (q < e && utf8_cont((unsigned char)*q))
                q++;
            l->v[l->n++] = mkstr_ref(p, (size_t)(q - p));
            p = q;
        }
        *out = l;
        return 0;
    }
    default:
        return rfail(c, nd, "'%s' object is not iterable", type_name(v));
    }
}

static int length_of(ctx *c, const node *nd, const val *v, int64_t *n)
{
    switch (v->t) {
    case V_STR: *n = (int64_t)utf8_count(v->u.s.p, v->u.s.n); return 0;
    case V_LIST: *n = (int64_t)v->u.l->n; return 0;
    case V_DICT:
    case V_NS: *n = (int64_t)v->u.d->n; return 0;
    case V_UNDEF: *n = 0; return 0;
    default: return rfail(c, nd, "object of type '%s' has no len()", type_name(v));
    }
}

static int loop_attr(ctx *c, const vloop *lp, const char *name, size_t n, val *out)
{
    size_t len = lp->items->n, i = lp->i;
    if (streq(name, n, "index")) *out = mkint((int64_t)i + 1);
    else if (streq(name, n, "index0")) *out = mkint((int64_t)i);
    else if (streq(name, n, "revindex")) *out = mkint((int64_t)(len - i));
    else if (streq(name, n, "revindex0")) *out = mkint((int64_t)(len - i - 1));
    else if (streq(name, n, "first")) *out = mkbool(i == 0);
    else if (streq(name, n, "last")) *out = mkbool(i + 1 == len);
    else if (streq(name, n, "length")) *out = mkint((int64_t)len);
    else if (streq(name, n, "depth")) *out = mkint(lp->depth);
    else if (streq(name, n, "depth0")) *out = mkint(lp->depth - 1);
    else if (streq(name, n, "previtem"))
        *out = i > 0 ? lp->items->v[i - 1] : mkundef(c, "there is no previous item");
    else if (streq(name, n, "nextitem"))
        *out = i + 1 < len ? lp->items->v[i + 1] : mkundef(c, "there is no next item");
    else
        *out = mkundef(c, "'LoopContext' object has no attribute '%.*s'", (int)n, name);
    return 0;
}

static int get_attr(ctx *c, const node *nd, const val *obj, const char *name, size_t n, val *out)
{
    switch (obj->t) {
    case V_UNDEF: return undef_err(c, nd, obj);
    case V_DICT:
    case V_NS: {
        val *v = dict_find_str(obj->u.d, name, n);
        if (v) {
            *out = *v;
            return 0;
        }
        *out = mkundef(c, "'%s' has no attribute '%.*s'",
                       obj->t == V_NS ? "Namespace object" : "dict object", (int)n, name);
        return 0;
    }
    case V_LOOP: return loop_attr(c, obj->u.lp, name, n, out);
    case V_NONE:
        *out = mkundef(c, "'None' has no attribute '%.*s'", (int)n, name);
        return 0;
    default:
        *out = mkundef(c, "'%s object' has no attribute '%.*s'", type_name(obj), (int)n, name);
        return 0;
    }
}

static int to_index(ctx *c, const node *nd, const val *k, int64_t *i)
{
    if (k->t == V_INT || k->t == V_BOOL) {
        *i = num_i(k);
        return 0;
    }
    return rfail(c, nd, "indices must be integers, not %s", type_name(k));
}

static int get_item(ctx *c, const node *nd, const val *obj, const val *key, val *out)
{
    switch (obj->t) {
    case V_UNDEF: return undef_err(c, nd, obj);
    case V_LIST:
    case V_STR: {
        if (key->t != V_INT && key->t != V_BOOL) {
            if (key->t == V_STR) /* obj["attr"] falls back to attributes */
                return get_attr(c, nd, obj, key->u.s.p, key->u.s.n, out);
            *out = mkundef(c, "'%s object' has no element %s", type_name(obj), type_name(key));
            return 0;
        }
        int64_t i = num_i(key);
        int64_t len = 0;
        if (length_of(c, nd, obj, &len))
            return -1;
        if (i < 0)
            i += len;
        if (i < 0 || i >= len) {
            *out = mkundef(c, "'%s object' has no element %" PRId64, type_name(obj), num_i(key));
            return 0;
        }
        if (obj->t == V_LIST) {
            *out = obj->u.l->v[i];
        } else {
            const char *p = obj->u.s.p;
            size_t n = obj->u.s.n;
            size_t a = is_ascii(p, n) ? (size_t)i : utf8_offset(p, n, (size_t)i);
            size_t b = a + 1;
            while (b < n && utf8_cont((unsigned char)p[b]))
                b++;
            *out = mkstr_ref(p + a, b - a);
        }
        return 0;
    }
    case V_DICT: {
        val *v = dict_find(obj->u.d, key);
        if (v) {
            *out = *v;
            return 0;
        }
        if (key->t == V_STR)
            *out = mkundef(c, "'dict object' has no attribute '%.*s'", (int)key->u.s.n, key->u.s.p);
        else
            *out = mkundef(c, "'dict object' has no element");
        return 0;
    }
    case V_NS:
    case V_LOOP:
        if (key->t == V_STR)
            return get_attr(c, nd, obj, key->u.s.p, key->u.s.n, out);
        /* fall through */
    default:
        *out = mkundef(c, "'%s object' has no element", type_name(obj));
        return 0;
    }
}

/* Python slice bounds for a sequence of `len` items. */
static int slice_bounds(ctx *c, const node *nd, const val *s, const val *e, const val *st,
                        int64_t len, int64_t *start, int64_t *stop, int64_t *step)
{
    *step = 1;
    if (st && st->t != V_NONE && st->t != V_UNDEF && to_index(c, nd, st, step))
        return -1;
    if (*step == 0)
        return rfail(c, nd, "slice step cannot be zero");
    int64_t lo = *step < 0 ? -1 : 0, hi = *step < 0 ? len - 1 : len;
    int64_t v[2] = {*step < 0 ? hi : lo, *step < 0 ? lo : hi};
    const val *src[2] = {s, e};
    for (int k = 0; k < 2; k++) {
        if (!src[k] || src[k]->t == V_NONE || src[k]->t == V_UNDEF)
            continue;
        int64_t x = 0;
        if (to_index(c, nd, src[k], &x))
            return -1;
        if (x < 0) {
            x += len;
            if (x < lo)
                x = lo;
        } else if (x > hi) {
            x = hi;
        }
        v[k] = x;
    }
    *start = v[0];
    *stop = v[1];
    return 0;
}

static int do_slice(ctx *c, const node *nd, const val *obj, const val *s, const val *e,
                    const val *st, val *out)
{
    if (obj->t == V_UNDEF)
        return undef_err(c, nd, obj);
    if (obj->t != V_LIST && obj->t != V_STR)
        return rfail(c, nd, "'%s' object is not subscriptable", type_name(obj));
    int64_t len, start = 0, stop = 0, step = 1;
    if (length_of(c, nd, obj, &len) || slice_bounds(c, nd, s, e, st, len, &start, &stop, &step))
        return -1;
    size_t count = 0;
    if (step > 0 && start < stop)
        count = (size_t)((stop - start + step - 1) / step);
    else if (step < 0 && start > stop)
        count = (size_t)((start - stop - step - 1) / -step);
    if (charge(c, nd, count / 16))
        return -1;
    if (obj->t == V_LIST) {
        vlist *l = list_new(c, count);
        if (!l)
            return oom(c, nd);
        l->tuple = obj->u.l->tuple;
        for (int64_t i = start; count--; i += step)
            l->v[l->n++] = obj->u.l->v[i];
        *out = mklist(l);
        return 0;
    }
    const char *p = obj->u.s.p;
    size_t n = obj->u.s.n;
    if (step == 1 && count) {
        size_t a = is_ascii(p, n) ? (size_t)start : utf8_offset(p, n, (size_t)start);
        size_t b = is_ascii(p, n) ? (size_t)stop : utf8_offset(p, n, (size_t)stop);
        *out = mkstr_ref(p + a, b - a);
        return 0;
    }
    vlist *chars;
    if (iterate(c, nd, obj, &chars))
        return -1;
    sb b = {0};
    for (int64_t i = start; count--; i += step)
        if (sb_put(c, &b, chars->v[i].u.s.p, chars->v[i].u.s.n))
            return sb_error(c, nd);
    *out = sb_val(&b);
    return 0;
}

/* ---------------------------------------------------------------- arithmetic */

static int html_escape(ctx *c, const node *nd, const val *in, val *out);

static int arith(ctx *c, const node *nd, const char *op, const val *a, const val *b, val *out)
{
    if (a->t == V_UNDEF)
        return undef_err(c, nd, a);
    if (b->t == V_UNDEF)
        return undef_err(c, nd, b);
    if (op[0] == '+' && a->t == V_STR && b->t == V_STR) {
        if (a->safe != b->safe) {
            /* Markup + str escapes the plain side, as Jinja's Markup does */
            val ea, eb;
            if (html_escape(c, nd, a, &ea) || html_escape(c, nd, b, &eb))
                return -1;
            val x = a->safe ? *a : ea, y = b->safe ? *b : eb;
            x.safe = y.safe = false;
            if (arith(c, nd, op, &x, &y, out))
                return -1;
            out->safe = true;
            return 0;
        }
        sb s = {0};
        if (sb_put(c, &s, a->u.s.p, a->u.s.n) || sb_put(c, &s, b->u.s.p, b->u.s.n))
            return sb_error(c, nd);
        *out = sb_val(&s);
        out->safe = a->safe;
        return charge(c, nd, s.n / 64);
    }
    if (op[0] == '+' && a->t == V_LIST && b->t == V_LIST) {
        vlist *l = list_new(c, a->u.l->n + b->u.l->n);
        if (!l)
            return oom(c, nd);
        l->tuple = a->u.l->tuple;
        if (a->u.l->tuple != b->u.l->tuple)
            return rfail(c, nd, "can only concatenate %s (not \"%s\") to %s",
                         type_name(a), type_name(b), type_name(a));
        for (size_t i = 0; i < a->u.l->n; i++)
            l->v[l->n++] = a->u.l->v[i];
        for (size_t i = 0; i < b->u.l->n; i++)
            l->v[l->n++] = b->u.l->v[i];
        *out = mklist(l);
        return charge(c, nd, l->n / 16);
    }
    if (op[0] == '*' && op[1] == 0 && ((a->t == V_STR || a->t == V_LIST) && (b->t == V_INT || b->t == V_BOOL))) {
        int64_t k = num_i(b);
        if (k < 0)
            k = 0;
        if (a->t == V_STR) {
            sb s = {0};
            if (a->u.s.n && (uint64_t)k > c->lim.max_output / a->u.s.n)
                return sb_error(c, nd);
            for (int64_t i = 0; i < k; i++)
                if (sb_put(c, &s, a->u.s.p, a->u.s.n))
                    return sb_error(c, nd);
            *out = sb_val(&s);
            return charge(c, nd, s.n / 64);
        }
        if (a->u.l->n && (uint64_t)k > (c->lim.max_memory / sizeof(val)) / a->u.l->n)
            return oom(c, nd);
        vlist *l = list_new(c, a->u.l->n * (size_t)k);
        if (!l)
            return oom(c, nd);
        for (int64_t i = 0; i < k; i++)
            for (size_t j = 0; j < a->u.l->n; j++)
                l->v[l->n++] = a->u.l->v[j];
        *out = mklist(l);
        return charge(c, nd, l->n / 16);
    }
    if (op[0] == '*' && op[1] == 0 && (b->t == V_STR || b->t == V_LIST) && (a->t == V_INT || a->t == V_BOOL))
        return arith(c, nd, op, b, a, out);
    if (!is_num(a) || !is_num(b))
        return rfail(c, nd, "unsupported operand type(s) for %s: '%s' and '%s'", op,
                     type_name(a), type_name(b));
    bool fl = a->t == V_FLOAT || b->t == V_FLOAT || strcmp(op, "/") == 0;
    if (strcmp(op, "**") == 0 && !fl && num_i(b) < 0)
        fl = true;
    if (fl) {
        double x = num_f(a), y = num_f(b), r;
        if ((strcmp(op, "/") == 0 || strcmp(op, "//") == 0 || strcmp(op, "%") == 0) && y == 0)
            return rfail(c, nd, "division by zero");
        switch (op[0]) {
        case '+': r = x + y; break;
        case '-': r = x - y; break;
        case '*': r = op[1] ? pow(x, y) : x * y; break;
        case '/':
            if (op[1]) { /* Python's float floor division, through fmod */
                double mod = fmod(x, y), div = (x - mod) / y;
                if (mod != 0 && ((y < 0) != (mod < 0)))
                    div -= 1.0;
                r = floor(div);
                if (div - r > 0.5)
                    r += 1.0;
            } else {
                r = x / y;
            }
            break;
        default: r = fmod(x, y); if (r != 0 && ((r < 0) != (y < 0))) r += y; break;
        }
        *out = mkfloat(r);
        return 0;
    }
    int64_t x = num_i(a), y = num_i(b), r = 0;
    bool ovf = false;
    switch (op[0]) {
    case '+': ovf = __builtin_add_overflow(x, y, &r); break;
    case '-': ovf = __builtin_sub_overflow(x, y, &r); break;
    case '*':
        if (op[1]) { /* ** */
            r = 1;
            for (int64_t e = y, base = x; e > 0 && !ovf; e >>= 1) {
                if (e & 1)
                    ovf |= __builtin_mul_overflow(r, base, &r);
                if (e > 1)
                    ovf |= __builtin_mul_overflow(base, base, &base);
            }
        } else {
            ovf = __builtin_mul_overflow(x, y, &r);
        }
        break;
    case '/': /* // */
    case '%':
        if (y == 0)
            return rfail(c, nd, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) {
            ovf = op[0] == '/';
            r = 0;
            break;
        }
        if (op[0] == '/') {
            r = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0)))
                r--;
        } else {
            r = x % y;
            if (r != 0 && ((r < 0) != (y < 0)))
                r += y;
        }
        break;
    default: break;
    }
    if (ovf)
        return rfail(c, nd, "integer overflow");
    *out = mkint(r);
    return 0;
}

static int contains(ctx *c, const node *nd, const val *needle, const val *hay, bool *out)
{
    switch (hay->t) {
    case V_STR:
        if (needle->t != V_STR)
            return rfail(c, nd, "'in <string>' requires string as left operand, not %s",
                         type_name(needle));
        *out = needle->u.s.n == 0 ||
               (needle->u.s.n <= hay->u.s.n &&
                memmem(hay->u.s.p, hay->u.s.n, needle->u.s.p, needle->u.s.n) != NULL);
        return charge(c, nd, hay->u.s.n / 64);
    case V_LIST:
        *out = false;
        for (size_t i = 0; i < hay->u.l->n && !*out; i++)
            *out = val_eq(needle, &hay->u.l->v[i]);
        return charge(c, nd, hay->u.l->n / 16);
    case V_DICT:
    case V_NS:
        *out = dict_find(hay->u.d, needle) != NULL;
        return charge(c, nd, hay->u.d->n / 16);
    case V_UNDEF:
        *out = false;
        return 0;
    default:
        return rfail(c, nd, "argument of type '%s' is not iterable", type_name(hay));
    }
}

/* ---------------------------------------------------------------- strings */

static size_t cp_len_at(const char *p, const char *e)
{
    size_t k = 1;
    while (p + k < e && utf8_cont((unsigned char)p[k]))
        k++;
    return k;
}

/* Is the code point at p one of the code points of `set`? */
static bool in_charset(const char *p, size_t k, const char *set, size_t n)
{
    const char *e = set + n;
    for (const char *q = set; q < e;) {
        size_t m = cp_len_at(q, e);
        if (m == k && memcmp(p, q, k) == 0)
            return true;
        q += m;
    }
    return false;
}

/* str.strip / lstrip / rstrip; chars NULL means whitespace. */
static val str_strip(const val *s, const val *chars, bool left, bool right)
{
    const char *p = s->u.s.p, *e = p + s->u.s.n;
    bool ws = !chars || chars->t != V_STR;
    if (left)
        while (p < e) {
            size_t k = ws ? ws_len(p, e) : cp_len_at(p, e);
            if (!k || (!ws && !in_charset(p, k, chars->u.s.p, chars->u.s.n)))
                break;
            p += k;
        }
    if (right)
        while (e > p) {
            size_t k;
            if (ws) {
                k = ws_len_back(p, e);
            } else {
                k = 1;
                while (e - k > p && utf8_cont((unsigned char)e[-(ptrdiff_t)k]))
                    k++;
                if (!in_charset(e - k, k, chars->u.s.p, chars->u.s.n))
                    k = 0;
            }
            if (!k)
                break;
            e -= k;
        }
    return mkstr_ref(p, (size_t)(e - p));
}

static char ascii_upper(char ch) { return (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch; }
static char ascii_lower(char ch) { return (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch; }
static bool ascii_alpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }

enum casemode { CASE_UPPER, CASE_LOWER, CASE_CAPITALIZE, CASE_TITLE_PY, CASE_TITLE_JINJA,
                CASE_SWAP };

static int str_case(ctx *c, const node *nd, const val *s, int mode, val *out)
{
    char *p = arena_alloc(&c->a, s->u.s.n + 1);
    if (!p)
        return oom(c, nd);
    bool start = true; /* at the beginning of a word */
    for (size_t i = 0; i < s->u.s.n; i++) {
        char ch = s->u.s.p[i];
        switch (mode) {
        case CASE_UPPER: ch = ascii_upper(ch); break;
        case CASE_LOWER: ch = ascii_lower(ch); break;
        case CASE_CAPITALIZE: ch = i == 0 ? ascii_upper(ch) : ascii_lower(ch); break;
        case CASE_SWAP: ch = (ch >= 'a' && ch <= 'z') ? ascii_upper(ch) : ascii_lower(ch); break;
        case CASE_TITLE_PY:
            /* a letter after a non-letter starts a word */
            ch = start ? ascii_upper(ch) : ascii_lower(ch);
            start = !ascii_alpha(ch) && !((unsigned char)ch >= 0x80);
            break;
        default: { /* Jinja's title: words begin after whitespace - ( { [ < */
            bool sep = ws_len(s->u.s.p + i, s->u.s.p + s->u.s.n) || ch == '-' || ch == '(' ||
                       ch == '{' || ch == '[' || ch == '<';
            ch = sep ? ch : start ? ascii_upper(ch) : ascii_lower(ch);
            start = sep;
            break;
        }
        }
        p[i] = ch;
    }
    p[s->u.s.n] = 0;
    *out = mkstr_ref(p, s->u.s.n);
    return charge(c, nd, s->u.s.n / 64);
}

static int str_replace(ctx *c, const node *nd, const val *s, const val *old, const val *rep,
                       int64_t count, val *out)
{
    if (old->t != V_STR || rep->t != V_STR)
        return rfail(c, nd, "replace() arguments must be str");
    sb b = {0};
    const char *p = s->u.s.p, *e = p + s->u.s.n;
    size_t on = old->u.s.n;
    int64_t done = 0;
    if (on == 0) {
        /* Python inserts the replacement around every character */
        while (count < 0 || done < count) {
            if (sb_put(c, &b, rep->u.s.p, rep->u.s.n))
                return sb_error(c, nd);
            done++;
            if (p >= e)
                break;
            size_t k = cp_len_at(p, e);
            if (sb_put(c, &b, p, k))
                return sb_error(c, nd);
            p += k;
        }
    } else {
        while (p < e && (count < 0 || done < count)) {
            const char *q = memmem(p, (size_t)(e - p), old->u.s.p, on);
            if (!q)
                break;
            if (sb_put(c, &b, p, (size_t)(q - p)) || sb_put(c, &b, rep->u.s.p, rep->u.s.n))
                return sb_error(c, nd);
            p = q + on;
            done++;
        }
    }
    if (sb_put(c, &b, p, (size_t)(e - p)))
        return sb_error(c, nd);
    *out = sb_val(&b);
    return charge(c, nd, b.n / 64);
}

static int str_split(ctx *c, const node *nd, const val *s, const val *sep, int64_t maxsplit,
                     bool from_right, val *out)
{
    vlist *l = list_new(c, 0);
    if (!l)
        return oom(c, nd);
    const char *p = s->u.s.p, *e = p + s->u.s.n;
    if (sep && sep->t != V_NONE && sep->t != V_UNDEF) {
        if (sep->t != V_STR)
            return rfail(c, nd, "must be str or None, not %s", type_name(sep));
        size_t n = sep->u.s.n;
        if (n == 0)
            return rfail(c, nd, "empty separator");
        if (!from_right) {
            for (int64_t k = 0; maxsplit < 0 || k < maxsplit; k++) {
                const char *q = memmem(p, (size_t)(e - p), sep->u.s.p, n);
                if (!q)
                    break;
                if (list_push(c, l, mkstr_ref(p, (size_t)(q - p))))
                    return oom(c, nd);
                p = q + n;
            }
            if (list_push(c, l, mkstr_ref(p, (size_t)(e - p))))
                return oom(c, nd);
        } else {
            /* collect from the right, then reverse */
            const char *end = e;
            for (int64_t k = 0; maxsplit < 0 || k < maxsplit; k++) {
                const char *q = NULL;
                for (size_t i = (size_t)(end - p) + 1; i-- > 0;)
                    if (i + n <= (size_t)(end - p) && memcmp(p + i, sep->u.s.p, n) == 0) {
                        q = p + i;
                        break;
                    }
                if (!q)
                    break;
                if (list_push(c, l, mkstr_ref(q + n, (size_t)(end - q - n))))
                    return oom(c, nd);
                end = q;
            }
            if (list_push(c, l, mkstr_ref(p, (size_t)(end - p))))
                return oom(c, nd);
            for (size_t i = 0; i < l->n / 2; i++) {
                val t = l->v[i];
                l->v[i] = l->v[l->n - 1 - i];
                l->v[l->n - 1 - i] = t;
            }
        }
    } else {
        /* runs of whitespace; no empty strings */
        if (from_right) {
            const char *end = e;
            for (int64_t k = 0;; k++) {
                while (end > p && ws_len_back(p, end))
                    end -= ws_len_back(p, end);
                if (end == p)
                    break;
                const char *t = end;
                if (maxsplit >= 0 && k >= maxsplit) {
                    if (list_push(c, l, mkstr_ref(p, (size_t)(end - p))))
                        return oom(c, nd);
                    break;
                }
                while (t > p && !ws_len_back(p, t))
                    t--;
                if (list_push(c, l, mkstr_ref(t, (size_t)(end - t))))
                    return oom(c, nd);
                end = t;
            }
            for (size_t i = 0; i < l->n / 2; i++) {
                val t = l->v[i];
                l->v[i] = l->v[l->n - 1 - i];
                l->v[l->n - 1 - i] = t;
            }
        } else {
            for (int64_t k = 0;; k++) {
                while (p < e && ws_len(p, e))
                    p += ws_len(p, e);
                if (p == e)
                    break;
                if (maxsplit >= 0 && k >= maxsplit) {
                    /* the rest, with trailing whitespace kept as Python does */
                    if (list_push(c, l, mkstr_ref(p, (size_t)(e - p))))
                        return oom(c, nd);
                    break;
                }
                const char *t = p;
                while (t < e && !ws_len(t, e))
                    t++;
                if (list_push(c, l, mkstr_ref(p, (size_t)(t - p))))
                    return oom(c, nd);
                p = t;
            }
        }
    }
    *out = mklist(l);
    return charge(c, nd, s->u.s.n / 64 + l->n / 16);
}

static bool has_prefix(const val *s, const val *x, bool suffix)
{
    if (x->t != V_STR || x->u.s.n > s->u.s.n)
        return false;
    const char *p = suffix ? s->u.s.p + s->u.s.n - x->u.s.n : s->u.s.p;
    return memcmp(p, x->u.s.p, x->u.s.n) == 0;
}

/* str.format with {} {0} {name} fields; format specs are not supported. */
static int str_format(ctx *c, const node *nd, const val *fmt, const args *a, val *out)
{
    sb b = {0};
    const char *p = fmt->u.s.p, *e = p + fmt->u.s.n;
    size_t auto_idx = 0;
    while (p < e) {
        if (*p == '{' && p + 1 < e && p[1] == '{') {
            if (sb_put(c, &b, "{", 1))
                return sb_error(c, nd);
            p += 2;
        } else if (*p == '}' && p + 1 < e && p[1] == '}') {
            if (sb_put(c, &b, "}", 1))
                return sb_error(c, nd);
            p += 2;
        } else if (*p == '{') {
            const char *q = memchr(p, '}', (size_t)(e - p));
            if (!q)
                return rfail(c, nd, "Single '{' encountered in format string");
            const char *f = p + 1;
            size_t fn = (size_t)(q - f);
            const char *colon = memchr(f, ':', fn), *bang = memchr(f, '!', fn);
            if (colon || bang)
                return rfail(c, nd, "str.format: conversions and format specs are not supported");
            const val *v = NULL;
            if (fn == 0) {
                v = arg(a, auto_idx++, NULL);
            } else if (is_digit(*f)) {
                size_t idx = 0;
                for (size_t i = 0; i < fn && is_digit(f[i]) && idx < 1000; i++)
                    idx = idx * 10 + (size_t)(f[i] - '0');
                v = arg(a, idx, NULL);
            } else {
                for (size_t k = 0; k < a->nkw; k++)
                    if (streq(f, fn, a->kwn[k]))
                        v = &a->kwv[k];
            }
            if (!v)
                return rfail(c, nd, "str.format: no argument for field '{%.*s}'", (int)fn, f);
            if (put_str(c, &b, v, 0))
                return sb_error(c, nd);
            p = q + 1;
        } else if (*p == '}') {
            return rfail(c, nd, "Single '}' encountered in format string");
        } else {
            const char *q = p;
            while (q < e && *q != '{' && *q != '}')
                q++;
            if (sb_put(c, &b, p, (size_t)(q - p)))
                return sb_error(c, nd);
            p = q;
        }
    }
    *out = sb_val(&b);
    return 0;
}

static int join_values(ctx *c, const node *nd, const vlist *l, const val *sep, val *out)
{
    sb b = {0};
    for (size_t i = 0; i < l->n; i++) {
        if (i && sep && put_str(c, &b, sep, 0))
            return sb_error(c, nd);
        if (put_str(c, &b, &l->v[i], 0))
            return sb_error(c, nd);
    }
    *out = sb_val(&b);
    return charge(c, nd, l->n / 16 + b.n / 64);
}

static int str_method(ctx *c, const node *nd, const val *s, const char *m, const args *a,
                      val *out, bool *found)
{
    const val *a0 = arg(a, 0, NULL), *a1 = arg(a, 1, NULL);
    *found = true;
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        *out = str_strip(s, a0, m[0] != 'r', m[0] != 'l');
        return 0;
    }
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        const val *sep = arg(a, 0, "sep"), *mx = arg(a, 1, "maxsplit");
        int64_t maxsplit = -1;
        if (mx && to_index(c, nd, mx, &maxsplit))
            return -1;
        return str_split(c, nd, s, sep, maxsplit, m[0] == 'r', out);
    }
    if (!strcmp(m, "splitlines")) {
        vlist *l = list_new(c, 0);
        if (!l)
            return oom(c, nd);
        const char *p = s->u.s.p, *e = p + s->u.s.n;
        bool keep = a0 && truthy(a0);
        while (p < e) {
            const char *q = p;
            while (q < e && *q != '\n' && *q != '\r')
                q++;
            const char *next = q < e ? q + 1 : q;
            if (q < e && *q == '\r' && next < e && *next == '\n')
                next++;
            if (list_push(c, l, mkstr_ref(p, (size_t)((keep ? next : q) - p))))
                return oom(c, nd);
            p = next;
        }
        *out = mklist(l);
        return 0;
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        bool suffix = m[0] == 'e', r = false;
        if (!a0)
            return rfail(c, nd, "%s() takes at least 1 argument", m);
        if (a0->t == V_LIST) {
            for (size_t i = 0; i < a0->u.l->n && !r; i++)
                r = has_prefix(s, &a0->u.l->v[i], suffix);
        } else if (a0->t == V_STR) {
            r = has_prefix(s, a0, suffix);
        } else {
            return rfail(c, nd, "%s first arg must be str or a tuple of str, not %s", m, type_name(a0));
        }
        *out = mkbool(r);
        return 0;
    }
    if (!strcmp(m, "upper")) return str_case(c, nd, s, CASE_UPPER, out);
    if (!strcmp(m, "lower")) return str_case(c, nd, s, CASE_LOWER, out);
    if (!strcmp(m, "title")) return str_case(c, nd, s, CASE_TITLE_PY, out);
    if (!strcmp(m, "capitalize")) return str_case(c, nd, s, CASE_CAPITALIZE, out);
    if (!strcmp(m, "swapcase")) return str_case(c, nd, s, CASE_SWAP, out);
    if (!strcmp(m, "replace")) {
        int64_t count = -1;
        const val *cn = arg(a, 2, "count");
        if (!a0 || !a1)
            return rfail(c, nd, "replace() takes at least 2 arguments");
        if (cn && to_index(c, nd, cn, &count))
            return -1;
        return str_replace(c, nd, s, a0, a1, count, out);
    }
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") ||
        !strcmp(m, "rindex") || !strcmp(m, "count")) {
        if (!a0 || a0->t != V_STR)
            return rfail(c, nd, "%s() argument must be str", m);
        const char *p = s->u.s.p, *e = p + s->u.s.n, *hit = NULL;
        size_t n = a0->u.s.n;
        int64_t cnt = 0;
        if (!strcmp(m, "count")) {
            if (n == 0) {
                cnt = (int64_t)utf8_count(p, s->u.s.n) + 1;
            } else {
                while ((hit = memmem(p, (size_t)(e - p), a0->u.s.p, n))) {
                    cnt++;
                    p = hit + n;
                }
            }
            *out = mkint(cnt);
            return 0;
        }
        if (m[0] == 'r') {
            for (size_t i = s->u.s.n + 1; i-- > 0 && s->u.s.n >= n;)
                if (i + n <= s->u.s.n && memcmp(p + i, a0->u.s.p, n) == 0) {
                    hit = p + i;
                    break;
                }
        } else {
            hit = n ? memmem(p, s->u.s.n, a0->u.s.p, n) : p;
        }
        if (!hit && (m[0] == 'i' || m[1] == 'i'))
            return rfail(c, nd, "substring not found");
        *out = mkint(hit ? (int64_t)utf8_count(p, (size_t)(hit - p)) : -1);
        return 0;
    }
    if (!strcmp(m, "join")) {
        vlist *l;
        if (!a0 || iterate(c, nd, a0, &l))
            return a0 ? -1 : rfail(c, nd, "join() takes exactly one argument");
        for (size_t i = 0; i < l->n; i++)
            if (l->v[i].t != V_STR)
                return rfail(c, nd, "sequence item %zu: expected str instance, %s found", i,
                             type_name(&l->v[i]));
        return join_values(c, nd, l, s, out);
    }
    if (!strcmp(m, "format"))
        return str_format(c, nd, s, a, out);
    if (!strcmp(m, "isdigit") || !strcmp(m, "isalpha") || !strcmp(m, "isalnum") ||
        !strcmp(m, "isspace") || !strcmp(m, "isupper") || !strcmp(m, "islower")) {
        bool r = s->u.s.n > 0, cased = false;
        for (size_t i = 0; i < s->u.s.n && r; i++) {
            char ch = s->u.s.p[i];
            switch (m[2]) {
            case 'd': r = is_digit(ch); break;
            case 'a': r = m[4] == 'p' ? ascii_alpha(ch) : (ascii_alpha(ch) || is_digit(ch)); break;
            case 's': r = ws_len(s->u.s.p + i, s->u.s.p + s->u.s.n) > 0; break;
            case 'u': r = !(ch >= 'a' && ch <= 'z'); cased |= ch >= 'A' && ch <= 'Z'; break;
            default: r = !(ch >= 'A' && ch <= 'Z'); cased |= ch >= 'a' && ch <= 'z'; break;
            }
        }
        if (m[2] == 'u' || m[2] == 'l')
            r = r && cased;
        *out = mkbool(r);
        return 0;
    }
    *found = false;
    return 0;
}

/* ---------------------------------------------------------------- tests */

static int apply_test(ctx *c, const node *nd, const char *name, const val *v, const args *a,
                      bool *r)
{
    const val *a0 = arg(a, 0, NULL);
    if (!strcmp(name, "defined")) *r = v->t != V_UNDEF;
    else if (!strcmp(name, "undefined")) *r = v->t == V_UNDEF;
    else if (!strcmp(name, "none")) *r = v->t == V_NONE;
    else if (!strcmp(name, "boolean")) *r = v->t == V_BOOL;
    else if (!strcmp(name, "true")) *r = v->t == V_BOOL && v->u.b;
    else if (!strcmp(name, "false")) *r = v->t == V_BOOL && !v->u.b;
    else if (!strcmp(name, "integer")) *r = v->t == V_INT;
    else if (!strcmp(name, "float")) *r = v->t == V_FLOAT;
    else if (!strcmp(name, "number")) *r = is_num(v);
    else if (!strcmp(name, "string")) *r = v->t == V_STR;
    else if (!strcmp(name, "mapping")) *r = v->t == V_DICT;
    else if (!strcmp(name, "iterable"))
        *r = v->t == V_STR || v->t == V_LIST || v->t == V_DICT || v->t == V_UNDEF;
    else if (!strcmp(name, "sequence"))
        *r = v->t == V_STR || v->t == V_LIST || v->t == V_DICT;
    else if (!strcmp(name, "callable")) *r = v->t == V_MACRO || v->t == V_FUNC;
    else if (!strcmp(name, "escaped")) *r = false;
    else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (v->t != V_STR)
            return rfail(c, nd, "test '%s' needs a string", name);
        bool up = name[0] == 'u', cased = false, ok = true;
        for (size_t i = 0; i < v->u.s.n && ok; i++) {
            char ch = v->u.s.p[i];
            bool lo = ch >= 'a' && ch <= 'z', hi = ch >= 'A' && ch <= 'Z';
            cased |= lo || hi;
            ok = up ? !lo : !hi;
        }
        *r = ok && cased;
    } else if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        int64_t x, d = 2;
        if (v->t == V_UNDEF)
            return undef_err(c, nd, v);
        if (v->t != V_INT && v->t != V_BOOL)
            return rfail(c, nd, "test '%s' needs an integer", name);
        x = num_i(v);
        if (name[0] == 'd') {
            if (!a0 || to_index(c, nd, a0, &d))
                return a0 ? -1 : rfail(c, nd, "divisibleby needs an argument");
            if (d == 0)
                return rfail(c, nd, "integer division or modulo by zero");
            *r = d == -1 || x % d == 0;
        } else {
            *r = (x % 2 != 0) == (name[0] == 'o');
        }
    } else if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==") ||
               !strcmp(name, "ne") || !strcmp(name, "!=")) {
        if (!a0)
            return rfail(c, nd, "test '%s' needs an argument", name);
        *r = val_eq(v, a0) == (name[0] != 'n' && name[0] != '!');
    } else if (!strcmp(name, "lt") || !strcmp(name, "lessthan") || !strcmp(name, "<") ||
               !strcmp(name, "le") || !strcmp(name, "<=") || !strcmp(name, "gt") ||
               !strcmp(name, "greaterthan") || !strcmp(name, ">") || !strcmp(name, "ge") ||
               !strcmp(name, ">=")) {
        int k;
        if (!a0)
            return rfail(c, nd, "test '%s' needs an argument", name);
        if (val_cmp(c, nd, v, a0, &k))
            return -1;
        bool less = name[0] == 'l' || name[0] == '<';
        bool eq = name[1] == 'e' || name[1] == '=';
        if (!strcmp(name, "lessthan") || !strcmp(name, "greaterthan"))
            eq = false;
        *r = less ? (eq ? k <= 0 : k < 0) : (eq ? k >= 0 : k > 0);
    } else if (!strcmp(name, "in")) {
        if (!a0)
            return rfail(c, nd, "test 'in' needs an argument");
        return contains(c, nd, v, a0, r);
    } else if (!strcmp(name, "sameas")) {
        if (!a0)
            return rfail(c, nd, "test 'sameas' needs an argument");
        if (v->t != a0->t)
            *r = false;
        else if (v->t == V_LIST || v->t == V_DICT || v->t == V_NS)
            *r = v->u.l == a0->u.l || v->u.d == a0->u.d;
        else
            *r = val_eq(v, a0);
    } else {
        return rfail(c, nd, "No test named '%s'.", name);
    }
    return 0;
}

/* ---------------------------------------------------------------- filters */

/* Attribute path "a.b.0" as Jinja's attribute= arguments take it. */
static int get_path(ctx *c, const node *nd, const val *obj, const val *path, val *out)
{
    if (path->t == V_INT)
        return get_item(c, nd, obj, path, out);
    if (path->t != V_STR)
        return rfail(c, nd, "attribute must be a string");
    val cur = *obj;
    const char *p = path->u.s.p, *e = p + path->u.s.n;
    while (p <= e) {
        const char *q = memchr(p, '.', (size_t)(e - p));
        if (!q)
            q = e;
        val key = mkstr_ref(p, (size_t)(q - p));
        bool num = q > p;
        int64_t ix = 0;
        for (const char *t = p; t < q && num; t++) {
            num = is_digit(*t) && ix < INT64_MAX / 10;
            ix = ix * 10 + (*t - '0');
        }
        if (num)
            key = mkint(ix);
        val next;
        if (cur.t == V_UNDEF)
            return undef_err(c, nd, &cur);
        if (get_item(c, nd, &cur, &key, &next))
            return -1;
        cur = next;
        p = q + 1;
    }
    *out = cur;
    return 0;
}

/* Merge sort (stable, as Python's sort) of vals by keys; fails when two
 * keys cannot be ordered. */
static int sort_vals(ctx *c, const node *nd, val *v, val *keys, size_t n, bool reverse)
{
    if (n < 2)
        return 0;
    val *tv = calloc_c(c, n, sizeof(val)), *tk = calloc_c(c, n, sizeof(val));
    if (!tv || !tk)
        return oom(c, nd);
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int r;
                if (val_cmp(c, nd, &keys[j], &keys[i], &r))
                    return -1;
                bool take_right = reverse ? r > 0 : r < 0;
                size_t from = take_right ? j++ : i++;
                tv[k] = v[from];
                tk[k++] = keys[from];
            }
            while (i < mid) {
                tv[k] = v[i];
                tk[k++] = keys[i++];
            }
            while (j < hi) {
                tv[k] = v[j];
                tk[k++] = keys[j++];
            }
        }
        memcpy(v, tv, n * sizeof(val));
        memcpy(keys, tk, n * sizeof(val));
        if (charge(c, nd, n / 16 + 1))
            return -1;
    }
    return 0;
}

/* Sort/unique/min/max key: the attribute, lower-cased unless
 * case_sensitive. */
static int sort_key(ctx *c, const node *nd, const val *item, const val *attr, bool cs, val *out)
{
    val k = *item;
    if (attr && attr->t != V_NONE && get_path(c, nd, item, attr, &k))
        return -1;
    if (!cs && k.t == V_STR)
        return str_case(c, nd, &k, CASE_LOWER, out);
    *out = k;
    return 0;
}

static int filter_indent(ctx *c, const node *nd, const val *s, const args *a, val *out)
{
    const val *w = arg(a, 0, "width"), *first = arg(a, 1, "first"), *blank = arg(a, 2, "blank");
    sb ind = {0};
    if (w && w->t == V_STR) {
        if (sb_put(c, &ind, w->u.s.p, w->u.s.n))
            return sb_error(c, nd);
    } else {
        int64_t n = 4;
        if (w && to_index(c, nd, w, &n))
            return -1;
        for (int64_t i = 0; i < n && i < 1000; i++)
            if (sb_put(c, &ind, " ", 1))
                return sb_error(c, nd);
    }
    sb b = {0};
    const char *p = s->u.s.p, *e = p + s->u.s.n;
    bool firstline = true;
    if (first && truthy(first) && sb_put(c, &b, ind.p, ind.n))
        return sb_error(c, nd);
    /* Jinja splits s + "\n" into lines: every segment between line breaks,
     * including an empty last one when s ends with a break. */
    for (;;) {
        const char *q = p;
        while (q < e && *q != '\n' && *q != '\r')
            q++;
        if (q == e && p == e && !firstline)
            break; /* the segment the appended "\n" closes is empty: done */
        if (!firstline) {
            if (sb_put(c, &b, "\n", 1))
                return sb_error(c, nd);
            if ((q > p || (blank && truthy(blank))) && sb_put(c, &b, ind.p, ind.n))
                return sb_error(c, nd);
        }
        if (sb_put(c, &b, p, (size_t)(q - p)))
            return sb_error(c, nd);
        firstline = false;
        if (q == e)
            break;
        if (*q == '\r' && q + 1 < e && q[1] == '\n')
            q++;
        p = q + 1;
        if (p == e) {
            /* s ended with a break: one more, empty line */
            if (sb_put(c, &b, "\n", 1) || (blank && truthy(blank) && sb_put(c, &b, ind.p, ind.n)))
                return sb_error(c, nd);
            break;
        }
    }
    *out = sb_val(&b);
    return charge(c, nd, b.n / 64);
}

static int apply_filter(ctx *c, scope *sc, const node *nd, const char *name, const val *in,
                        const args *a, val *out);
static const char *json_parse(ctx *c, const char *p, size_t n, val *out);

static int filter_select(ctx *c, scope *sc, const node *nd, const char *name, const val *in,
                         const args *a, val *out)
{
    bool attr = strstr(name, "attr") != NULL, rej = name[0] == 'r';
    bool is_map = !strcmp(name, "map");
    vlist *items, *res;
    if (!truthy(in)) { /* Jinja walks nothing for a falsy input (None too) */
        if (!(res = list_new(c, 0)))
            return oom(c, nd);
        *out = mklist(res);
        return 0;
    }
    if (iterate(c, nd, in, &items) || !(res = list_new(c, items->n)))
        return c->failed ? -1 : oom(c, nd);
    size_t skip = attr ? 1 : 0;
    const val *attrname = attr ? arg(a, 0, NULL) : NULL;
    if (attr && !attrname)
        return rfail(c, nd, "%s needs an attribute name", name);
    const val *tname = arg(a, skip, NULL);
    const val *map_attr = is_map ? arg(a, 99, "attribute") : NULL;
    const val *map_default = is_map ? arg(a, 99, "default") : NULL;
    if (tname && tname->t != V_STR)
        return rfail(c, nd, "%s: test or filter name must be a string", name);
    args rest = {0};
    if (a->npos > skip + 1) {
        rest.pos = a->pos + skip + 1;
        rest.npos = a->npos - skip - 1;
    }
    if (is_map && !map_attr) {
        rest.kwn = a->kwn;
        rest.kwv = a->kwv;
        rest.nkw = a->nkw;
    }
    char tn[64] = "";
    if (tname)
        snprintf(tn, sizeof(tn), "%.*s", (int)tname->u.s.n, tname->u.s.p);
    for (size_t i = 0; i < items->n; i++) {
        val x = items->v[i], r;
        if (charge(c, nd, 1))
            return -1;
        if (is_map) {
            if (map_attr) {
                if (get_path(c, nd, &x, map_attr, &r))
                    return -1;
                if (r.t == V_UNDEF && map_default)
                    r = *map_default;
            } else {
                if (!tname)
                    return rfail(c, nd, "map needs a filter name or attribute=");
                if (apply_filter(c, sc, nd, tn, &x, &rest, &r))
                    return -1;
            }
            res->v[res->n++] = r;
            continue;
        }
        val subject = x;
        if (attr && get_path(c, nd, &x, attrname, &subject))
            return -1;
        bool ok;
        if (tname) {
            if (apply_test(c, nd, tn, &subject, &rest, &ok))
                return -1;
        } else {
            ok = truthy(&subject);
        }
        if (ok != rej)
            res->v[res->n++] = x;
    }
    *out = mklist(res);
    return 0;
}

static int filter_int(ctx *c, const node *nd, const val *in, const args *a, val *out)
{
    const val *def = arg(a, 0, "default");
    val d = def ? *def : mkint(0);
    switch (in->t) {
    case V_INT: *out = *in; return 0;
    case V_BOOL: *out = mkint(in->u.b); return 0;
    case V_FLOAT:
        if (isnan(in->u.f) || isinf(in->u.f) || fabs(in->u.f) >= 9.2e18)
            return rfail(c, nd, "cannot convert float %f to integer", in->u.f);
        *out = mkint((int64_t)in->u.f);
        return 0;
    case V_STR: {
        char buf[128];
        val t = str_strip(in, NULL, true, true);
        size_t k = 0;
        for (size_t i = 0; i < t.u.s.n && k + 1 < sizeof(buf); i++)
            if (t.u.s.p[i] != '_' || (i > 0 && is_digit(t.u.s.p[i - 1])))
                buf[k++] = t.u.s.p[i];
        buf[k] = 0;
        if (k == 0 || t.u.s.n >= sizeof(buf)) {
            *out = d;
            return 0;
        }
        char *e;
        errno = 0;
        long long v = strtoll(buf, &e, 10);
        if (*e == 0 && !errno && (is_digit(buf[0]) || ((buf[0] == '-' || buf[0] == '+') && is_digit(buf[1])))) {
            *out = mkint(v);
            return 0;
        }
        double f = strtod(buf, &e);
        if (*e == 0 && !isnan(f) && !isinf(f) && fabs(f) < 9.2e18) {
            *out = mkint((int64_t)f);
            return 0;
        }
        *out = d;
        return 0;
    }
    default: *out = d; return 0;
    }
}

static int apply_filter(ctx *c, scope *sc, const node *nd, const char *name, const val *in,
                        const args *a, val *out)
{
    const val *a0 = arg(a, 0, NULL);
    if (charge(c, nd, 1))
        return -1;
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        const val *def = arg(a, 0, "default_value"), *boolean = arg(a, 1, "boolean");
        bool use = in->t == V_UNDEF || (boolean && truthy(boolean) && !truthy(in));
        *out = use ? (def ? *def : mkstr_ref("", 0)) : *in;
        return 0;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        int64_t n = 0;
        if (length_of(c, nd, in, &n))
            return -1;
        *out = mkint(n);
        return 0;
    }
    if (!strcmp(name, "safe")) {
        if (in->t != V_STR && to_string(c, nd, in, out))
            return -1;
        if (in->t == V_STR)
            *out = *in;
        out->safe = true;
        return 0;
    }
    if (!strcmp(name, "string")) {
        if (in->t == V_UNDEF) {
            *out = mkstr_ref("", 0);
            return 0;
        }
        return to_string(c, nd, in, out);
    }
    if (!strcmp(name, "tojson")) {
        const val *indent = arg(a, 0, "indent"), *seps = arg(a, 99, "separators");
        const val *sk = arg(a, 99, "sort_keys"), *ea = arg(a, 99, "ensure_ascii");
        json_opts o = {NULL, ", ", ": ", sk && truthy(sk), ea && truthy(ea)};
        sb ind = {0};
        if (indent && indent->t != V_NONE) {
            if (indent->t == V_STR) {
                if (sb_put(c, &ind, indent->u.s.p, indent->u.s.n))
                    return sb_error(c, nd);
            } else {
                int64_t n = 0;
                if (to_index(c, nd, indent, &n))
                    return -1;
                for (int64_t i = 0; i < n && i < 1000; i++)
                    if (sb_put(c, &ind, " ", 1))
                        return sb_error(c, nd);
            }
            if (sb_put(c, &ind, "", 0) || sb_grow(c, &ind, 1))
                return sb_error(c, nd);
            ind.p[ind.n] = 0;
            o.indent = ind.p;
            o.item_sep = ",";
        }
        if (seps && seps->t == V_LIST && seps->u.l->n == 2 && seps->u.l->v[0].t == V_STR &&
            seps->u.l->v[1].t == V_STR) {
            val s0, s1;
            if (mkstr(c, nd, seps->u.l->v[0].u.s.p, seps->u.l->v[0].u.s.n, &s0) ||
                mkstr(c, nd, seps->u.l->v[1].u.s.p, seps->u.l->v[1].u.s.n, &s1))
                return -1;
            o.item_sep = s0.u.s.p;
            o.key_sep = s1.u.s.p;
        } else if (seps && seps->t != V_NONE) {
            return rfail(c, nd, "tojson: separators must be two strings");
        }
        sb b = {0};
        if (put_json(c, nd, &b, in, &o, 0))
            return -1;
        *out = sb_val(&b);
        return charge(c, nd, b.n / 64);
    }
    if (!strcmp(name, "from_json")) {
        /* not a Jinja builtin; some templates (DeepSeek V3.2+) expect it */
        if (in->t != V_STR)
            return rfail(c, nd, "from_json needs a string, not %s", type_name(in));
        const char *e = json_parse(c, in->u.s.p, in->u.s.n, out);
        if (e)
            return rfail(c, nd, "from_json: %s", e);
        return charge(c, nd, in->u.s.n / 64);
    }
    if (!strcmp(name, "items") || !strcmp(name, "dictsort")) {
        if (in->t == V_UNDEF && name[0] == 'i') {
            vlist *l = list_new(c, 0);
            if (!l)
                return oom(c, nd);
            *out = mklist(l);
            return 0;
        }
        if (in->t != V_DICT)
            return rfail(c, nd, "Can only get item pairs from a mapping.");
        const vdict *d = in->u.d;
        vlist *l = list_new(c, d->n);
        val *keys = calloc_c(c, d->n + 1, sizeof(val));
        if (!l || !keys)
            return oom(c, nd);
        for (size_t i = 0; i < d->n; i++) {
            vlist *pair = list_new(c, 2);
            if (!pair)
                return oom(c, nd);
            pair->tuple = true;
            pair->v[0] = d->k[i];
            pair->v[1] = d->v[i];
            pair->n = 2;
            l->v[l->n++] = mklist(pair);
        }
        if (name[0] == 'd') {
            const val *cs = arg(a, 0, "case_sensitive"), *by = arg(a, 1, "by"),
                      *rev = arg(a, 2, "reverse");
            bool by_value = by && by->t == V_STR && streq(by->u.s.p, by->u.s.n, "value");
            for (size_t i = 0; i < l->n; i++)
                if (sort_key(c, nd, &l->v[i].u.l->v[by_value ? 1 : 0], NULL, cs && truthy(cs), &keys[i]))
                    return -1;
            if (sort_vals(c, nd, l->v, keys, l->n, rev && truthy(rev)))
                return -1;
        }
        *out = mklist(l);
        return 0;
    }
    if (!strcmp(name, "join")) {
        vlist *l;
        const val *sep = arg(a, 0, "d"), *attr = arg(a, 1, "attribute");
        if (iterate(c, nd, in, &l))
            return -1;
        if (attr) {
            vlist *m = list_new(c, l->n);
            if (!m)
                return oom(c, nd);
            for (size_t i = 0; i < l->n; i++)
                if (get_path(c, nd, &l->v[i], attr, &m->v[m->n++]))
                    return -1;
            l = m;
        }
        return join_values(c, nd, l, sep, out);
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        vlist *l;
        if (iterate(c, nd, in, &l))
            return -1;
        if (l->n == 0)
            *out = mkundef(c, "No %s item, sequence was empty.", name);
        else
            *out = l->v[name[0] == 'f' ? 0 : l->n - 1];
        return 0;
    }
    if (!strcmp(name, "list")) {
        vlist *l, *m;
        if (iterate(c, nd, in, &l) || !(m = list_new(c, l->n)))
            return c->failed ? -1 : oom(c, nd);
        if (l->n)
            memcpy(m->v, l->v, l->n * sizeof(val));
        m->n = l->n;
        *out = mklist(m);
        return charge(c, nd, l->n / 16);
    }
    if (!strcmp(name, "int"))
        return filter_int(c, nd, in, a, out);
    if (!strcmp(name, "float")) {
        const val *def = arg(a, 0, "default");
        if (is_num(in)) {
            *out = mkfloat(num_f(in));
        } else if (in->t == V_STR) {
            char buf[128], *e;
            val t = str_strip(in, NULL, true, true);
            snprintf(buf, sizeof(buf), "%.*s", (int)(t.u.s.n < 127 ? t.u.s.n : 127), t.u.s.p);
            double f = strtod(buf, &e);
            *out = (t.u.s.n && t.u.s.n < 127 && *e == 0) ? mkfloat(f) : def ? *def : mkfloat(0);
        } else {
            *out = def ? *def : mkfloat(0);
        }
        return 0;
    }
    if (!strcmp(name, "abs")) {
        if (in->t == V_FLOAT)
            *out = mkfloat(fabs(in->u.f));
        else if ((in->t == V_INT || in->t == V_BOOL) && num_i(in) != INT64_MIN)
            *out = mkint(num_i(in) < 0 ? -num_i(in) : num_i(in));
        else
            return rfail(c, nd, "bad operand type for abs(): '%s'", type_name(in));
        return 0;
    }
    if (!strcmp(name, "round")) {
        const val *prec = arg(a, 0, "precision"), *meth = arg(a, 1, "method");
        int64_t pr = 0;
        if (prec && to_index(c, nd, prec, &pr))
            return -1;
        if (!is_num(in))
            return rfail(c, nd, "round needs a number");
        bool common = !meth || (meth->t == V_STR && streq(meth->u.s.p, meth->u.s.n, "common"));
        if (common && in->t != V_FLOAT && pr >= 0) {
            *out = mkint(num_i(in)); /* Python's round(int, n) is that int */
            return 0;
        }
        if (pr < -300 || pr > 300)
            pr = pr < 0 ? -300 : 300;
        double x = num_f(in), m = pow(10.0, (double)pr), y = x * m;
        if (meth && meth->t == V_STR && streq(meth->u.s.p, meth->u.s.n, "floor"))
            y = floor(y);
        else if (meth && meth->t == V_STR && streq(meth->u.s.p, meth->u.s.n, "ceil"))
            y = ceil(y);
        else
            y = nearbyint(y); /* Python rounds half to even */
        *out = mkfloat(y / m);
        return 0;
    }
    if (!strcmp(name, "attr")) {
        if (!a0 || a0->t != V_STR)
            return rfail(c, nd, "attr needs a name");
        return get_attr(c, nd, in, a0->u.s.p, a0->u.s.n, out);
    }
    if (!strcmp(name, "select") || !strcmp(name, "reject") || !strcmp(name, "selectattr") ||
        !strcmp(name, "rejectattr") || !strcmp(name, "map"))
        return filter_select(c, sc, nd, name, in, a, out);
    if (!strcmp(name, "sort") || !strcmp(name, "unique") || !strcmp(name, "min") ||
        !strcmp(name, "max")) {
        bool sort = name[0] == 's', uniq = name[0] == 'u';
        const val *rev = sort ? arg(a, 0, "reverse") : NULL;
        const val *cs = arg(a, sort ? 1 : 0, "case_sensitive");
        const val *attr = arg(a, sort ? 2 : 1, "attribute");
        vlist *l, *m;
        if (iterate(c, nd, in, &l) || !(m = list_new(c, l->n)))
            return c->failed ? -1 : oom(c, nd);
        val *keys = calloc_c(c, l->n + 1, sizeof(val));
        if (!keys)
            return oom(c, nd);
        for (size_t i = 0; i < l->n; i++) {
            val k;
            if (charge(c, nd, 1) || sort_key(c, nd, &l->v[i], attr, cs && truthy(cs), &k))
                return -1;
            if (uniq) {
                bool seen = false;
                for (size_t j = 0; j < m->n && !seen; j++)
                    seen = val_eq(&keys[j], &k);
                if (charge(c, nd, m->n / 16))
                    return -1;
                if (seen)
                    continue;
            }
            keys[m->n] = k;
            m->v[m->n++] = l->v[i];
        }
        if (sort || uniq) {
            if (sort && sort_vals(c, nd, m->v, keys, m->n, rev && truthy(rev)))
                return -1;
            *out = mklist(m);
            return 0;
        }
        if (m->n == 0) {
            *out = mkundef(c, "No aggregated item, sequence was empty.");
            return 0;
        }
        size_t best = 0;
        for (size_t i = 1; i < m->n; i++) {
            int r;
            if (val_cmp(c, nd, &keys[i], &keys[best], &r))
                return -1;
            if (name[1] == 'i' ? r < 0 : r > 0)
                best = i;
        }
        *out = m->v[best];
        return 0;
    }
    if (!strcmp(name, "sum")) {
        const val *attr = arg(a, 0, "attribute"), *start = arg(a, 1, "start");
        vlist *l;
        val acc = start ? *start : mkint(0);
        if (iterate(c, nd, in, &l))
            return -1;
        for (size_t i = 0; i < l->n; i++) {
            val x = l->v[i];
            if ((attr && get_path(c, nd, &l->v[i], attr, &x)) || arith(c, nd, "+", &acc, &x, &acc))
                return -1;
        }
        *out = acc;
        return 0;
    }
    if (!strcmp(name, "reverse")) {
        if (in->t == V_STR) {
            static const val step = {.t = V_INT, .u.i = -1};
            return do_slice(c, nd, in, NULL, NULL, &step, out);
        }
        vlist *l, *m;
        if (iterate(c, nd, in, &l) || !(m = list_new(c, l->n)))
            return c->failed ? -1 : oom(c, nd);
        for (size_t i = l->n; i-- > 0;)
            m->v[m->n++] = l->v[i];
        *out = mklist(m);
        return 0;
    }
    if (!strcmp(name, "pprint")) {
        sb b = {0};
        if (put_repr(c, &b, in, 0))
            return sb_error(c, nd);
        *out = sb_val(&b);
        return 0;
    }
    /* The rest work on the text of the value. */
    static const char *const text_filters[] = {"trim", "upper", "lower", "title", "capitalize",
        "replace", "indent", "escape", "e", "forceescape", "wordcount", "center", "format",
        "striptags", NULL};
    bool text = false;
    for (int k = 0; text_filters[k]; k++)
        text |= !strcmp(name, text_filters[k]);
    if (!text)
        return rfail(c, nd, "No filter named '%s'.", name);
    val s;
    if (in->t == V_UNDEF)
        s = mkstr_ref("", 0);
    else if (to_string(c, nd, in, &s))
        return -1;
    if (!strcmp(name, "trim")) {
        *out = str_strip(&s, arg(a, 0, "chars"), true, true);
        return 0;
    }
    if (!strcmp(name, "upper")) return str_case(c, nd, &s, CASE_UPPER, out);
    if (!strcmp(name, "lower")) return str_case(c, nd, &s, CASE_LOWER, out);
    if (!strcmp(name, "title")) return str_case(c, nd, &s, CASE_TITLE_JINJA, out);
    if (!strcmp(name, "capitalize")) return str_case(c, nd, &s, CASE_CAPITALIZE, out);
    if (!strcmp(name, "replace")) {
        const val *old = arg(a, 0, "old"), *rep = arg(a, 1, "new"), *cnt = arg(a, 2, "count");
        int64_t count = -1;
        if (!old || !rep)
            return rfail(c, nd, "replace needs two arguments");
        if (cnt && cnt->t != V_NONE && to_index(c, nd, cnt, &count))
            return -1;
        val o2, r2;
        if (to_string(c, nd, old, &o2) || to_string(c, nd, rep, &r2))
            return -1;
        return str_replace(c, nd, &s, &o2, &r2, count, out);
    }
    if (!strcmp(name, "indent"))
        return filter_indent(c, nd, &s, a, out);
    if (!strcmp(name, "wordcount")) {
        val words;
        if (str_split(c, nd, &s, NULL, -1, false, &words))
            return -1;
        *out = mkint((int64_t)words.u.l->n);
        return 0;
    }
    if (!strcmp(name, "center")) {
        int64_t w = 80;
        const val *wv = arg(a, 0, "width");
        if (wv && to_index(c, nd, wv, &w))
            return -1;
        int64_t len = (int64_t)utf8_count(s.u.s.p, s.u.s.n);
        if (w > (int64_t)c->lim.max_output)
            return sb_error(c, nd);
        sb b = {0};
        int64_t pad = w > len ? w - len : 0, left = pad / 2 + (pad & w & 1);
        for (int64_t i = 0; i < left; i++)
            if (sb_put(c, &b, " ", 1))
                return sb_error(c, nd);
        if (sb_put(c, &b, s.u.s.p, s.u.s.n))
            return sb_error(c, nd);
        for (int64_t i = 0; i < pad - left; i++)
            if (sb_put(c, &b, " ", 1))
                return sb_error(c, nd);
        *out = sb_val(&b);
        return 0;
    }
    if (!strcmp(name, "format")) {
        /* printf-style: %s %d %i %r %% */
        sb b = {0};
        size_t ai = 0;
        for (size_t i = 0; i < s.u.s.n; i++) {
            char ch = s.u.s.p[i];
            if (ch != '%') {
                if (sb_put(c, &b, &ch, 1))
                    return sb_error(c, nd);
                continue;
            }
            char f = i + 1 < s.u.s.n ? s.u.s.p[++i] : 0;
            if (f == '%') {
                if (sb_put(c, &b, "%", 1))
                    return sb_error(c, nd);
                continue;
            }
            const val *x = arg(a, ai++, NULL);
            if (!x)
                return rfail(c, nd, "not enough arguments for format string");
            int r;
            if (f == 's')
                r = put_str(c, &b, x, 0);
            else if (f == 'r')
                r = put_repr(c, &b, x, 0);
            else if ((f == 'd' || f == 'i') && is_num(x)) {
                val iv;
                if (filter_int(c, nd, x, &(args){0}, &iv))
                    return -1;
                r = put_str(c, &b, &iv, 0);
            } else
                return rfail(c, nd, "format: unsupported conversion '%%%c'", f ? f : ' ');
            if (r)
                return sb_error(c, nd);
        }
        *out = sb_val(&b);
        return 0;
    }
    if (!strcmp(name, "striptags"))
        return rfail(c, nd, "the striptags filter is not supported");
    /* escape / e / forceescape: HTML-escape into a Markup string */
    if (in->t == V_STR && in->safe && strcmp(name, "forceescape") != 0) {
        *out = *in;
        return 0;
    }
    return html_escape(c, nd, &s, out);
}

static int html_escape(ctx *c, const node *nd, const val *in, val *out)
{
    const val s = *in;
    sb b = {0};
    for (size_t i = 0; i < s.u.s.n; i++) {
        const char *r = NULL;
        switch (s.u.s.p[i]) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&#34;"; break;
        case '\'': r = "&#39;"; break;
        default: break;
        }
        if (r ? sb_puts(c, &b, r) : sb_put(c, &b, s.u.s.p + i, 1))
            return sb_error(c, nd);
    }
    *out = sb_val(&b);
    out->safe = true;
    return 0;
}

/* ---------------------------------------------------------------- calls */

static int call_func(ctx *c, const node *nd, int fn, const args *a, val *out)
{
    switch (fn) {
    case G_RANGE: {
        int64_t v[3] = {0, 0, 1};
        if (a->npos < 1 || a->npos > 3)
            return rfail(c, nd, "range expected 1 to 3 arguments, got %zu", a->npos);
        for (size_t i = 0; i < a->npos; i++)
            if (to_index(c, nd, &a->pos[i], &v[a->npos == 1 ? 1 : i]))
                return -1;
        if (v[2] == 0)
            return rfail(c, nd, "range() arg 3 must not be zero");
        double count = ceil(((double)v[1] - (double)v[0]) / (double)v[2]);
        if (count < 0)
            count = 0;
        if (count > (double)(c->lim.max_memory / sizeof(val)))
            return oom(c, nd);
        vlist *l = list_new(c, (size_t)count);
        if (!l || charge(c, nd, (uint64_t)count / 16))
            return l ? -1 : oom(c, nd);
        for (size_t i = 0; i < (size_t)count; i++)
            l->v[l->n++] = mkint(v[0] + (int64_t)i * v[2]);
        *out = mklist(l);
        return 0;
    }
    case G_NAMESPACE:
    case G_DICT: {
        vdict *d = calloc_c(c, 1, sizeof(vdict));
        if (!d)
            return oom(c, nd);
        for (size_t i = 0; i < a->npos; i++) {
            if (a->pos[i].t != V_DICT)
                return rfail(c, nd, "%s() positional arguments must be mappings",
                             GFUNC_NAMES[fn]);
            for (size_t k = 0; k < a->pos[i].u.d->n; k++)
                if (dict_set(c, d, a->pos[i].u.d->k[k], a->pos[i].u.d->v[k]))
                    return oom(c, nd);
        }
        for (size_t k = 0; k < a->nkw; k++)
            if (dict_set(c, d, mkstr_ref(a->kwn[k], strlen(a->kwn[k])), a->kwv[k]))
                return oom(c, nd);
        *out = mkdict(d, fn == G_NAMESPACE ? V_NS : V_DICT);
        return 0;
    }
    case G_RAISE: {
        val msg = mkstr_ref("", 0);
        if (a->npos && to_string(c, nd, &a->pos[0], &msg))
            return -1;
        if (!c->failed) {
            c->failed = true;
            snprintf(c->err, sizeof(c->err), "%.*s", (int)msg.u.s.n, msg.u.s.p);
        }
        return -1;
    }
    case G_STRFTIME: {
        if (a->npos != 1 || a->pos[0].t != V_STR)
            return rfail(c, nd, "strftime_now() takes one format string");
        char fmt[256], buf[512];
        if (a->pos[0].u.s.n >= sizeof(fmt) - 1)
            return rfail(c, nd, "strftime_now(): format too long");
        /* a trailing space tells an empty result from a failure */
        snprintf(fmt, sizeof(fmt), "%.*s ", (int)a->pos[0].u.s.n, a->pos[0].u.s.p);
        struct tm tm;
        time_t now = c->now ? c->now : time(NULL);
        if (!localtime_r(&now, &tm))
            return rfail(c, nd, "strftime_now(): no local time");
        size_t n = strftime(buf, sizeof(buf), fmt, &tm);
        if (n == 0)
            return rfail(c, nd, "strftime_now(): result too long");
        return mkstr(c, nd, buf, n - 1, out);
    }
    default:
        return rfail(c, nd, "%s() is not supported", GFUNC_NAMES[fn]);
    }
}

static int call_macro(ctx *c, const node *nd, const vmacro *m, const args *a, val *out)
{
    const node *def = m->def;
    if (c->mdepth >= c->lim.max_depth)
        return rfail(c, nd, "macro calls nested deeper than %d", c->lim.max_depth);
    if (a->npos > def->nnames)
        return rfail(c, nd, "macro '%s' takes not more than %zu argument(s)", def->name,
                     def->nnames);
    for (size_t k = 0; k < a->nkw; k++) {
        bool known = false;
        for (size_t i = 0; i < def->nnames && !known; i++)
            known = !strcmp(def->names[i], a->kwn[k]);
        if (!known)
            return rfail(c, nd, "macro '%s' takes no keyword argument '%s'", def->name, a->kwn[k]);
    }
    scope *sc = calloc_c(c, 1, sizeof(scope));
    if (!sc)
        return oom(c, nd);
    sc->parent = m->closure;
    for (size_t i = 0; i < def->nnames; i++) {
        const val *v = arg(a, i, def->names[i]);
        val x;
        if (v)
            x = *v;
        else if (def->defaults.v[i]) {
            if (eval(c, sc, def->defaults.v[i], &x))
                return -1;
        } else
            x = mkundef(c, "'%s' is undefined", def->names[i]);
        if (scope_set(c, nd, sc, def->names[i], x))
            return -1;
    }
    sb b = {0};
    c->mdepth++;
    int r = exec_body(c, sc, &def->body, &b);
    c->mdepth--;
    if (r < 0)
        return -1;
    *out = sb_val(&b);
    return 0;
}

static int call_value(ctx *c, const node *nd, const val *f, const args *a, val *out)
{
    switch (f->t) {
    case V_MACRO: return call_macro(c, nd, f->u.m, a, out);
    case V_FUNC: return call_func(c, nd, f->u.fn, a, out);
    case V_UNDEF: return undef_err(c, nd, f);
    default: return rfail(c, nd, "'%s' object is not callable", type_name(f));
    }
}

static int list_method(ctx *c, const node *nd, const val *o, const char *m, const args *a,
                       val *out, bool *found)
{
    vlist *l = o->u.l;
    const val *a0 = arg(a, 0, NULL);
    *found = true;
    *out = mknone();
    bool mut = !strcmp(m, "append") || !strcmp(m, "pop") || !strcmp(m, "extend") ||
               !strcmp(m, "insert") || !strcmp(m, "remove") || !strcmp(m, "clear");
    if (mut && l->tuple)
        return rfail(c, nd, "'tuple' object has no attribute '%s'", m);
    if (!strcmp(m, "append")) {
        if (!a0)
            return rfail(c, nd, "append() takes exactly one argument");
        return list_push(c, l, *a0) ? oom(c, nd) : 0;
    }
    if (!strcmp(m, "extend")) {
        vlist *src;
        if (!a0 || iterate(c, nd, a0, &src))
            return a0 ? -1 : rfail(c, nd, "extend() takes exactly one argument");
        size_t n = src->n;
        for (size_t i = 0; i < n; i++)
            if (list_push(c, l, src->v[i]))
                return oom(c, nd);
        return charge(c, nd, n / 16);
    }
    if (!strcmp(m, "pop") || !strcmp(m, "insert")) {
        int64_t i = m[0] == 'p' ? -1 : 0;
        if (a0 && to_index(c, nd, a0, &i))
            return -1;
        int64_t n = (int64_t)l->n;
        if (m[0] == 'p') {
            if (n == 0)
                return rfail(c, nd, "pop from empty list");
            if (i < 0)
                i += n;
            if (i < 0 || i >= n)
                return rfail(c, nd, "pop index out of range");
            *out = l->v[i];
            memmove(l->v + i, l->v + i + 1, (size_t)(n - i - 1) * sizeof(val));
            l->n--;
        } else {
            const val *x = arg(a, 1, NULL);
            if (!x)
                return rfail(c, nd, "insert() takes exactly 2 arguments");
            if (i < 0)
                i = i + n < 0 ? 0 : i + n;
            if (i > n)
                i = n;
            if (list_push(c, l, *x))
                return oom(c, nd);
            memmove(l->v + i + 1, l->v + i, (size_t)(n - i) * sizeof(val));
            l->v[i] = *x;
        }
        return charge(c, nd, l->n / 16);
    }
    if (!strcmp(m, "index") || !strcmp(m, "count") || !strcmp(m, "remove")) {
        if (!a0)
            return rfail(c, nd, "%s() takes exactly one argument", m);
        int64_t cnt = 0;
        for (size_t i = 0; i < l->n; i++)
            if (val_eq(&l->v[i], a0)) {
                if (m[0] == 'i') {
                    *out = mkint((int64_t)i);
                    return 0;
                }
                if (m[0] == 'r') {
                    memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof(val));
                    l->n--;
                    return 0;
                }
                cnt++;
            }
        if (m[0] != 'c')
            return rfail(c, nd, "list.%s(x): x not in list", m);
        *out = mkint(cnt);
        return charge(c, nd, l->n / 16);
    }
    if (!strcmp(m, "clear")) {
        l->n = 0;
        return 0;
    }
    if (!strcmp(m, "copy")) {
        vlist *n = list_new(c, l->n);
        if (!n)
            return oom(c, nd);
        if (l->n)
            memcpy(n->v, l->v, l->n * sizeof(val));
        n->n = l->n;
        *out = mklist(n);
        return 0;
    }
    *found = false;
    return 0;
}

static int dict_method(ctx *c, const node *nd, const val *o, const char *m, const args *a,
                       val *out, bool *found)
{
    vdict *d = o->u.d;
    const val *a0 = arg(a, 0, NULL), *a1 = arg(a, 1, NULL);
    *found = true;
    if (!strcmp(m, "get") || !strcmp(m, "pop") || !strcmp(m, "setdefault")) {
        if (!a0)
            return rfail(c, nd, "%s expected at least 1 argument", m);
        val *v = dict_find(d, a0);
        if (m[0] == 'g') {
            *out = v ? *v : a1 ? *a1 : mknone();
        } else if (m[0] == 's') {
            *out = v ? *v : a1 ? *a1 : mknone();
            if (!v && dict_set(c, d, *a0, *out))
                return oom(c, nd);
        } else if (dict_remove(d, a0, out)) {
            if (!a1)
                return rfail(c, nd, "KeyError in dict.pop()");
            *out = *a1;
        }
        return 0;
    }
    if (!strcmp(m, "items") || !strcmp(m, "keys") || !strcmp(m, "values")) {
        vlist *l = list_new(c, d->n);
        if (!l)
            return oom(c, nd);
        for (size_t i = 0; i < d->n; i++) {
            if (m[0] == 'k') {
                l->v[l->n++] = d->k[i];
            } else if (m[0] == 'v') {
                l->v[l->n++] = d->v[i];
            } else {
                vlist *pair = list_new(c, 2);
                if (!pair)
                    return oom(c, nd);
                pair->tuple = true;
                pair->v[0] = d->k[i];
                pair->v[1] = d->v[i];
                pair->n = 2;
                l->v[l->n++] = mklist(pair);
            }
        }
        *out = mklist(l);
        return charge(c, nd, d->n / 16);
    }
    if (!strcmp(m, "update")) {
        if (a0 && a0->t == V_DICT)
            for (size_t i = 0; i < a0->u.d->n; i++)
                if (dict_set(c, d, a0->u.d->k[i], a0->u.d->v[i]))
                    return oom(c, nd);
        for (size_t k = 0; k < a->nkw; k++)
            if (dict_set(c, d, mkstr_ref(a->kwn[k], strlen(a->kwn[k])), a->kwv[k]))
                return oom(c, nd);
        *out = mknone();
        return 0;
    }
    if (!strcmp(m, "copy")) {
        vdict *n = calloc_c(c, 1, sizeof(vdict));
        if (!n)
            return oom(c, nd);
        for (size_t i = 0; i < d->n; i++)
            if (dict_set(c, n, d->k[i], d->v[i]))
                return oom(c, nd);
        *out = mkdict(n, V_DICT);
        return 0;
    }
    *found = false;
    return 0;
}

/* obj.name(args): a method of a str, list or dict, loop.cycle(), or an
 * attribute holding a macro. */
static int eval_method_call(ctx *c, scope *sc, const node *nd, val *out)
{
    const node *callee = nd->a;
    val obj;
    args a;
    if (eval(c, sc, callee->a, &obj))
        return -1;
    if (obj.t == V_UNDEF)
        return undef_err(c, nd, &obj);
    if (eval_args(c, sc, nd, &a))
        return -1;
    bool found = false;
    int r = 0;
    if (obj.t == V_STR)
        r = str_method(c, nd, &obj, callee->name, &a, out, &found);
    else if (obj.t == V_LIST)
        r = list_method(c, nd, &obj, callee->name, &a, out, &found);
    else if (obj.t == V_DICT)
        r = dict_method(c, nd, &obj, callee->name, &a, out, &found);
    else if (obj.t == V_LOOP && !strcmp(callee->name, "cycle")) {
        found = true;
        if (a.npos == 0)
            return rfail(c, nd, "no items for cycling given");
        *out = a.pos[obj.u.lp->i % a.npos];
    }
    if (r || found)
        return r;
    val f;
    if (get_attr(c, nd, &obj, callee->name, callee->nlen, &f))
        return -1;
    if (f.t == V_UNDEF)
        return rfail(c, nd, "'%s' object has no attribute '%s'", type_name(&obj), callee->name);
    return call_value(c, nd, &f, &a, out);
}

/* ---------------------------------------------------------------- expressions */

#define MAX_EVAL_DEPTH 1000

static int eval_inner(ctx *c, scope *sc, const node *nd, val *out)
{
    switch (nd->kind) {
    case E_LIT:
        *out = nd->lit;
        return 0;
    case E_NAME: {
        const val *v = scope_lookup(c, sc, nd->name, nd->nlen);
        if (v) {
            *out = *v;
            return 0;
        }
        for (int k = 0; GFUNC_NAMES[k]; k++)
            if (!strcmp(GFUNC_NAMES[k], nd->name)) {
                out->t = V_FUNC;
                out->u.fn = k;
                return 0;
            }
        *out = mkundef(c, "'%s' is undefined", nd->name);
        return 0;
    }
    case E_CAPTURED:
        *out = c->captured;
        return 0;
    case E_LIST:
    case E_TUPLE: {
        vlist *l = list_new(c, nd->items.n);
        if (!l)
            return oom(c, nd);
        l->tuple = nd->kind == E_TUPLE;
        for (size_t i = 0; i < nd->items.n; i++)
            if (eval(c, sc, nd->items.v[i], &l->v[l->n++]))
                return -1;
        *out = mklist(l);
        return 0;
    }
    case E_DICT: {
        vdict *d = calloc_c(c, 1, sizeof(vdict));
        if (!d)
            return oom(c, nd);
        for (size_t i = 0; i + 1 < nd->items.n; i += 2) {
            val k, v;
            if (eval(c, sc, nd->items.v[i], &k) || eval(c, sc, nd->items.v[i + 1], &v))
                return -1;
            if (k.t == V_LIST && !k.u.l->tuple)
                return rfail(c, nd, "unhashable type: 'list'");
            if (k.t == V_DICT || k.t == V_UNDEF)
                return rfail(c, nd, "unhashable type: '%s'", type_name(&k));
            if (dict_set(c, d, k, v))
                return oom(c, nd);
        }
        *out = mkdict(d, V_DICT);
        return 0;
    }
    case E_ATTR: {
        val o;
        if (eval(c, sc, nd->a, &o))
            return -1;
        return get_attr(c, nd, &o, nd->name, nd->nlen, out);
    }
    case E_ITEM: {
        val o, k;
        if (eval(c, sc, nd->a, &o) || eval(c, sc, nd->b, &k))
            return -1;
        return get_item(c, nd, &o, &k, out);
    }
    case E_SLICE: {
        val o, v[3];
        const node *parts[3] = {nd->b, nd->c, nd->d};
        if (eval(c, sc, nd->a, &o))
            return -1;
        for (int k = 0; k < 3; k++) {
            v[k] = mknone();
            if (parts[k] && eval(c, sc, parts[k], &v[k]))
                return -1;
        }
        return do_slice(c, nd, &o, &v[0], &v[1], &v[2], out);
    }
    case E_CALL: {
        if (nd->a->kind == E_ATTR)
            return eval_method_call(c, sc, nd, out);
        val f;
        args a;
        if (eval(c, sc, nd->a, &f))
            return -1;
        if (f.t == V_UNDEF)
            return undef_err(c, nd, &f);
        if (eval_args(c, sc, nd, &a))
            return -1;
        return call_value(c, nd, &f, &a, out);
    }
    case E_FILTER: {
        val in;
        args a;
        if (eval(c, sc, nd->a, &in) || eval_args(c, sc, nd, &a))
            return -1;
        return apply_filter(c, sc, nd, nd->name, &in, &a, out);
    }
    case E_TEST: {
        val in;
        args a;
        bool r;
        if (eval(c, sc, nd->a, &in) || eval_args(c, sc, nd, &a) ||
            apply_test(c, nd, nd->name, &in, &a, &r))
            return -1;
        *out = mkbool(r != nd->neg);
        return 0;
    }
    case E_NEG:
    case E_POS: {
        val x;
        if (eval(c, sc, nd->a, &x))
            return -1;
        if (x.t == V_UNDEF)
            return undef_err(c, nd, &x);
        if (!is_num(&x))
            return rfail(c, nd, "bad operand type for unary %c: '%s'",
                         nd->kind == E_NEG ? '-' : '+', type_name(&x));
        if (nd->kind == E_POS)
            *out = x.t == V_BOOL ? mkint(x.u.b) : x;
        else if (x.t == V_FLOAT)
            *out = mkfloat(-x.u.f);
        else if (num_i(&x) == INT64_MIN)
            return rfail(c, nd, "integer overflow");
        else
            *out = mkint(-num_i(&x));
        return 0;
    }
    case E_NOT: {
        val x;
        if (eval(c, sc, nd->a, &x))
            return -1;
        *out = mkbool(!truthy(&x));
        return 0;
    }
    case E_AND:
    case E_OR: {
        if (eval(c, sc, nd->a, out))
            return -1;
        if (truthy(out) == (nd->kind == E_OR))
            return 0;
        return eval(c, sc, nd->b, out);
    }
    case E_BIN: {
        val l, r;
        if (eval(c, sc, nd->a, &l) || eval(c, sc, nd->b, &r))
            return -1;
        if (nd->op[0] == '~') {
            sb b = {0};
            if (put_str(c, &b, &l, 0) || put_str(c, &b, &r, 0))
                return sb_error(c, nd);
            *out = sb_val(&b);
            return charge(c, nd, b.n / 64);
        }
        return arith(c, nd, nd->op, &l, &r, out);
    }
    case E_CMP: {
        val l, r;
        if (eval(c, sc, nd->a, &l))
            return -1;
        for (size_t i = 0; i < nd->items.n; i++) {
            if (eval(c, sc, nd->items.v[i], &r))
                return -1;
            const char *op = nd->ops[i];
            bool res;
            if (!strcmp(op, "==") || !strcmp(op, "!=")) {
                res = val_eq(&l, &r) == (op[0] == '=');
            } else if (!strcmp(op, "in") || !strcmp(op, "not in")) {
                if (contains(c, nd, &l, &r, &res))
                    return -1;
                res = res == (op[0] == 'i');
            } else {
                int k;
                if (val_cmp(c, nd, &l, &r, &k))
                    return -1;
                res = op[0] == '<' ? (op[1] ? k <= 0 : k < 0) : (op[1] ? k >= 0 : k > 0);
            }
            if (!res) {
                *out = mkbool(false);
                return 0;
            }
            l = r;
        }
        *out = mkbool(true);
        return 0;
    }
    case E_COND: {
        val cond;
        if (eval(c, sc, nd->a, &cond))
            return -1;
        if (truthy(&cond))
            return eval(c, sc, nd->b, out);
        if (nd->c)
            return eval(c, sc, nd->c, out);
        *out = mkundef(c, "the inline if-expression evaluated to false and no else section was defined.");
        return 0;
    }
    default:
        return rfail(c, nd, "internal error: bad expression node %d", nd->kind);
    }
}

static int eval(ctx *c, scope *sc, const node *nd, val *out)
{
    if (c->failed)
        return -1;
    if (charge(c, nd, 1))
        return -1;
    if (++c->depth > MAX_EVAL_DEPTH) {
        c->depth--;
        return rfail(c, nd, "template evaluation nested too deeply");
    }
    int r = eval_inner(c, sc, nd, out);
    c->depth--;
    return r;
}

/* ---------------------------------------------------------------- statements */

enum { FLOW_OK = 0, FLOW_BREAK = 1, FLOW_CONTINUE = 2 };

static int assign_targets(ctx *c, const node *nd, scope *sc, const val *v)
{
    if (nd->nnames == 1)
        return scope_set(c, nd, sc, nd->names[0], *v);
    if (v->t != V_LIST)
        return rfail(c, nd, "cannot unpack non-iterable %s object", type_name(v));
    if (v->u.l->n != nd->nnames)
        return rfail(c, nd, "%s values to unpack (expected %zu)",
                     v->u.l->n > nd->nnames ? "too many" : "not enough", nd->nnames);
    for (size_t i = 0; i < nd->nnames; i++)
        if (scope_set(c, nd, sc, nd->names[i], v->u.l->v[i]))
            return -1;
    return 0;
}

static int exec_for(ctx *c, scope *sc, const node *nd, sb *out)
{
    val it;
    vlist *items;
    if (eval(c, sc, nd->a, &it) || iterate(c, nd, &it, &items))
        return -1;
    size_t n = items->n;
    if (nd->b) {
        /* `for x in xs if cond`: filter first, so loop.* count what is left */
        vlist *kept = list_new(c, items->n);
        scope *fs = calloc_c(c, 1, sizeof(scope));
        if (!kept || !fs)
            return oom(c, nd);
        fs->parent = sc;
        for (size_t i = 0; i < items->n; i++) {
            val cond;
            fs->vars.n = 0;
            if (charge(c, nd, 1) || assign_targets(c, nd, fs, &items->v[i]) ||
                eval(c, fs, nd->b, &cond))
                return -1;
            if (truthy(&cond))
                kept->v[kept->n++] = items->v[i];
        }
        items = kept;
        n = kept->n;
    }
    if (n == 0)
        return exec_body(c, sc, &nd->orelse, out);
    vloop *lp = calloc_c(c, 1, sizeof(vloop));
    if (!lp)
        return oom(c, nd);
    lp->items = items;
    lp->depth = 1;
    val loopv = {.t = V_LOOP};
    loopv.u.lp = lp;
    /* Each iteration gets a fresh scope (Jinja: a set inside a loop does
     * not outlive the iteration); it is reused unless a macro kept it. The
     * body may change the list: items appended are not visited, and the
     * walk stops early if it shrinks. */
    scope *is = NULL;
    for (size_t i = 0; i < n && i < items->n; i++) {
        if (!is || is->captured) {
            if (!(is = calloc_c(c, 1, sizeof(scope))))
                return oom(c, nd);
            is->parent = sc;
        }
        is->vars.n = 0;
        lp->i = i;
        if (charge(c, nd, 1) || assign_targets(c, nd, is, &items->v[i]) ||
            scope_set(c, nd, is, "loop", loopv))
            return -1;
        int r = exec_body(c, is, &nd->body, out);
        if (r < 0)
            return -1;
        if (r == FLOW_BREAK)
            break;
    }
    return FLOW_OK;
}

static int exec_stmt(ctx *c, scope *sc, const node *nd, sb *out)
{
    switch (nd->kind) {
    case S_TEXT:
        return sb_put(c, out, nd->lit.u.s.p, nd->lit.u.s.n) ? sb_error(c, nd) : 0;
    case S_OUT: {
        val v;
        if (eval(c, sc, nd->a, &v))
            return -1;
        if (put_str(c, out, &v, 0))
            return sb_error(c, nd);
        return 0;
    }
    case S_IF: {
        val v;
        if (eval(c, sc, nd->a, &v))
            return -1;
        return exec_body(c, sc, truthy(&v) ? &nd->body : &nd->orelse, out);
    }
    case S_FOR:
        return exec_for(c, sc, nd, out);
    case S_SET: {
        val v;
        if (eval(c, sc, nd->a, &v))
            return -1;
        if (nd->attr) {
            val *ns = scope_lookup(c, sc, nd->names[0], strlen(nd->names[0]));
            if (!ns || ns->t != V_NS)
                return rfail(c, nd, "cannot assign attribute on non-namespace object");
            if (dict_set(c, ns->u.d, mkstr_ref(nd->attr, nd->alen), v))
                return oom(c, nd);
            return 0;
        }
        return assign_targets(c, nd, sc, &v);
    }
    case S_SETBLOCK:
    case S_FILTERBLOCK: {
        sb b = {0};
        int r = exec_body(c, sc, &nd->body, &b);
        if (r < 0)
            return -1;
        val v = sb_val(&b);
        if (nd->a) {
            val saved = c->captured;
            c->captured = v;
            r = eval(c, sc, nd->a, &v);
            c->captured = saved;
            if (r)
                return -1;
        }
        if (nd->kind == S_SETBLOCK)
            return scope_set(c, nd, sc, nd->names[0], v);
        return put_str(c, out, &v, 0) ? sb_error(c, nd) : 0;
    }
    case S_MACRO: {
        vmacro *m = calloc_c(c, 1, sizeof(vmacro));
        if (!m)
            return oom(c, nd);
        m->def = nd;
        m->closure = sc;
        sc->captured = true;
        val v = {.t = V_MACRO};
        v.u.m = m;
        return scope_set(c, nd, sc, nd->name, v);
    }
    case S_BREAK: return FLOW_BREAK;
    case S_CONTINUE: return FLOW_CONTINUE;
    case S_BODY: return exec_body(c, sc, &nd->body, out);
    default: return rfail(c, nd, "internal error: bad statement node %d", nd->kind);
    }
}

static int exec_body(ctx *c, scope *sc, const nlist *body, sb *out)
{
    if (++c->depth > MAX_EVAL_DEPTH) {
        c->depth--;
        return rfail(c, body->n ? body->v[0] : NULL, "template evaluation nested too deeply");
    }
    int r = FLOW_OK;
    for (size_t i = 0; i < body->n && r == FLOW_OK; i++) {
        if (c->failed || charge(c, body->v[i], 1)) {
            r = -1;
            break;
        }
        r = exec_stmt(c, sc, body->v[i], out);
    }
    c->depth--;
    return r;
}

/* ================================================================ JSON input */

/* A small JSON reader (RFC 8259) for values handed in as text (tools,
 * tool calls) and for the from_json filter. Objects keep their key order,
 * as Python's json.loads does. */
typedef struct jreader {
    ctx *c;
    const char *p, *e;
    int depth;
    const char *err;
} jreader;

static void jr_ws(jreader *r)
{
    while (r->p < r->e && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int jr_hex4(jreader *r, uint32_t *out)
{
    if (r->e - r->p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char h = r->p[i];
        int d = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10
              : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + (uint32_t)d;
    }
    r->p += 4;
    *out = v;
    return 0;
}

static int jr_string(jreader *r, val *out)
{
    r->p++; /* " */
    const char *start = r->p;
    size_t n = 0;
    while (r->p < r->e && *r->p != '"') {
        if ((unsigned char)*r->p < 0x20) {
            r->err = "control character in string";
            return -1;
        }
        r->p += *r->p == '\\' ? 2 : 1;
        n++;
    }
    if (r->p >= r->e) {
        r->err = "unterminated string";
        return -1;
    }
    size_t raw = (size_t)(r->p - start);
    char *s = arena_alloc(&r->c->a, raw + 1);
    if (!s) {
        r->err = "out of memory";
        return -1;
    }
    size_t k = 0;
    const char *end = r->p;
    r->p = start;
    while (r->p < end) {
        char ch = *r->p++;
        if (ch != '\\') {
            s[k++] = ch;
            continue;
        }
        ch = *r->p++;
        switch (ch) {
        case '"': s[k++] = '"'; break;
        case '\\': s[k++] = '\\'; break;
        case '/': s[k++] = '/'; break;
        case 'b': s[k++] = '\b'; break;
        case 'f': s[k++] = '\f'; break;
        case 'n': s[k++] = '\n'; break;
        case 'r': s[k++] = '\r'; break;
        case 't': s[k++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (jr_hex4(r, &cp)) {
                r->err = "bad \\u escape";
                return -1;
            }
            if (cp >= 0xd800 && cp < 0xdc00 && end - r->p >= 6 && r->p[0] == '\\' &&
                r->p[1] == 'u') {
                const char *save = r->p;
                r->p += 2;
                if (!jr_hex4(r, &lo) && lo >= 0xdc00 && lo < 0xe000)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else
                    r->p = save;
            }
            /* 6+ source bytes -> at most 4 output bytes */
            utf8_put(s, &k, cp);
            break;
        }
        default:
            r->err = "bad escape in string";
            return -1;
        }
    }
    r->p = end + 1;
    s[k] = 0;
    (void)n;
    *out = mkstr_ref(s, k);
    return 0;
}

static int jr_value(jreader *r, val *out)
{
    jr_ws(r);
    if (r->p >= r->e) {
        r->err = "unexpected end of JSON";
        return -1;
    }
    if (++r->depth > 200) {
        r->err = "JSON nested too deeply";
        return -1;
    }
    int rc = 0;
    char ch = *r->p;
    if (ch == '"') {
        rc = jr_string(r, out);
    } else if (ch == '{' || ch == '[') {
        bool obj = ch == '{';
        r->p++;
        vlist *l = obj ? NULL : list_new(r->c, 0);
        vdict *d = obj ? calloc_c(r->c, 1, sizeof(vdict)) : NULL;
        if (!l && !d) {
            r->err = "out of memory";
            return -1;
        }
        jr_ws(r);
        if (r->p < r->e && *r->p == (obj ? '}' : ']')) {
            r->p++;
        } else {
            for (;;) {
                val k, v;
                jr_ws(r);
                if (obj) {
                    if (r->p >= r->e || *r->p != '"') {
                        r->err = "expected a string key";
                        return -1;
                    }
                    if (jr_string(r, &k))
                        return -1;
                    jr_ws(r);
                    if (r->p >= r->e || *r->p != ':') {
                        r->err = "expected ':'";
                        return -1;
                    }
                    r->p++;
                }
                if (jr_value(r, &v))
                    return -1;
                if (obj ? dict_set(r->c, d, k, v) : list_push(r->c, l, v)) {
                    r->err = "out of memory";
                    return -1;
                }
                jr_ws(r);
                if (r->p < r->e && *r->p == ',') {
                    r->p++;
                    continue;
                }
                if (r->p < r->e && *r->p == (obj ? '}' : ']')) {
                    r->p++;
                    break;
                }
                r->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
                return -1;
            }
        }
        *out = obj ? mkdict(d, V_DICT) : mklist(l);
    } else if (ch == '-' || is_digit(ch)) {
        const char *q = r->p;
        bool fl = false;
        if (*q == '-')
            q++;
        while (q < r->e && (is_digit(*q) || *q == '.' || *q == 'e' || *q == 'E' ||
                            ((*q == '+' || *q == '-') && (q[-1] == 'e' || q[-1] == 'E')))) {
            fl |= !is_digit(*q);
            q++;
        }
        char buf[64];
        size_t n = (size_t)(q - r->p);
        if (n == 0 || n >= sizeof(buf)) {
            r->err = "bad number";
            return -1;
        }
        memcpy(buf, r->p, n);
        buf[n] = 0;
        char *e;
        errno = 0;
        if (!fl) {
            long long v = strtoll(buf, &e, 10);
            if (errno) /* too big for int64: keep it as a float */
                *out = mkfloat(strtod(buf, &e));
            else
                *out = mkint(v);
        } else {
            *out = mkfloat(strtod(buf, &e));
        }
        if (*e) {
            r->err = "bad number";
            return -1;
        }
        r->p = q;
    } else if (r->e - r->p >= 4 && !memcmp(r->p, "true", 4)) {
        *out = mkbool(true);
        r->p += 4;
    } else if (r->e - r->p >= 5 && !memcmp(r->p, "false", 5)) {
        *out = mkbool(false);
        r->p += 5;
    } else if (r->e - r->p >= 4 && !memcmp(r->p, "null", 4)) {
        *out = mknone();
        r->p += 4;
    } else {
        r->err = "unexpected character";
        rc = -1;
    }
    r->depth--;
    return rc;
}

/* Parses a whole JSON text; NULL err on success. */
static const char *json_parse(ctx *c, const char *p, size_t n, val *out)
{
    jreader r = {c, p, p + n, 0, NULL};
    if (jr_value(&r, out))
        return r.err ? r.err : "bad JSON";
    jr_ws(&r);
    if (r.p != r.e)
        return "extra data after JSON value";
    return NULL;
}

/* ================================================================ API */

int jinja_parse(const char *src, size_t len, jinja_template **out, char *err, size_t errlen)
{
    *out = NULL;
    jinja_template *t = calloc(1, sizeof(*t));
    if (!t) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    t->a.limit = SIZE_MAX / 2;
    /* Line breaks become "\n" and one trailing newline is dropped
     * (Jinja's keep_trailing_newline=False). */
    t->src = malloc(len + 1);
    if (!t->src) {
        free(t);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            t->src[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            t->src[n++] = src[i];
        }
    }
    if (n && t->src[n - 1] == '\n')
        n--;
    t->src[n] = 0;

    lexer L = {.s = t->src, .n = n, .line = 1, .a = &t->a, .err = err, .errlen = errlen};
    if (lex_all(&L)) {
        free(L.toks);
        jinja_free(t);
        return -1;
    }
    parser P = {.t = L.toks, .n = L.ntoks, .a = &t->a, .err = err, .errlen = errlen};
    int r = parse_body(&P, NULL, &t->body);
    free(L.toks);
    if (r) {
        if (!P.failed)
            set_err(err, errlen, "syntax error");
        jinja_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void jinja_free(jinja_template *t)
{
    if (!t)
        return;
    arena_free(&t->a);
    free(t->src);
    free(t);
}

jinja_ctx *jinja_ctx_new(const jinja_limits *limits, time_t now)
{
    jinja_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (limits)
        c->lim = *limits;
    if (!c->lim.max_output)
        c->lim.max_output = DEFAULT_MAX_OUTPUT;
    if (!c->lim.max_memory)
        c->lim.max_memory = DEFAULT_MAX_MEMORY;
    if (!c->lim.max_steps)
        c->lim.max_steps = DEFAULT_MAX_STEPS;
    if (c->lim.max_depth <= 0)
        c->lim.max_depth = DEFAULT_MAX_DEPTH;
    c->a.limit = c->lim.max_memory;
    c->now = now;
    return c;
}

void jinja_ctx_free(jinja_ctx *c)
{
    if (!c)
        return;
    arena_free(&c->a);
    free(c);
}

static jinja_value *wrap(jinja_ctx *c, val v)
{
    jinja_value *w = arena_alloc(&c->a, sizeof(*w));
    if (!w) {
        c->oom = true;
        return NULL;
    }
    w->v = v;
    return w;
}

jinja_value *jinja_none(jinja_ctx *c) { return wrap(c, mknone()); }
jinja_value *jinja_bool(jinja_ctx *c, bool b) { return wrap(c, mkbool(b)); }
jinja_value *jinja_int(jinja_ctx *c, int64_t i) { return wrap(c, mkint(i)); }

jinja_value *jinja_str(jinja_ctx *c, const char *s, size_t len)
{
    char *p = arena_alloc(&c->a, len + 1);
    if (!p) {
        c->oom = true;
        return NULL;
    }
    if (len)
        memcpy(p, s, len);
    p[len] = 0;
    return wrap(c, mkstr_ref(p, len));
}

jinja_value *jinja_json(jinja_ctx *c, const char *text, size_t len, char *err, size_t errlen)
{
    val v;
    const char *e = json_parse(c, text, len, &v);
    if (e) {
        set_err(err, errlen, "%s", e);
        return NULL;
    }
    return wrap(c, v);
}

jinja_value *jinja_list(jinja_ctx *c)
{
    vlist *l = list_new(c, 0);
    if (!l) {
        c->oom = true;
        return NULL;
    }
    return wrap(c, mklist(l));
}

jinja_value *jinja_dict(jinja_ctx *c)
{
    vdict *d = calloc_c(c, 1, sizeof(vdict));
    if (!d) {
        c->oom = true;
        return NULL;
    }
    return wrap(c, mkdict(d, V_DICT));
}

int jinja_list_push(jinja_ctx *c, jinja_value *list, const jinja_value *v)
{
    if (!list || !v || list->v.t != V_LIST)
        return -1;
    if (list_push(c, list->v.u.l, v->v)) {
        c->oom = true;
        return -1;
    }
    return 0;
}

int jinja_dict_set(jinja_ctx *c, jinja_value *dict, const char *key, const jinja_value *v)
{
    if (!dict || !v || !key || dict->v.t != V_DICT)
        return -1;
    jinja_value *k = jinja_str(c, key, strlen(key));
    if (!k || dict_set(c, dict->v.u.d, k->v, v->v)) {
        c->oom = true;
        return -1;
    }
    return 0;
}

int jinja_dict_merge(jinja_ctx *c, jinja_value *to, const jinja_value *from)
{
    if (!to || !from || to->v.t != V_DICT || from->v.t != V_DICT)
        return -1;
    for (size_t i = 0; i < from->v.u.d->n; i++)
        if (dict_set(c, to->v.u.d, from->v.u.d->k[i], from->v.u.d->v[i])) {
            c->oom = true;
            return -1;
        }
    return 0;
}

int jinja_set_var(jinja_ctx *c, const char *name, const jinja_value *v)
{
    return jinja_dict_set(c, &(jinja_value){mkdict(&c->vars, V_DICT)}, name, v);
}

char *jinja_render(const jinja_template *t, jinja_ctx *c, size_t *outlen, char *err,
                   size_t errlen)
{
    if (outlen)
        *outlen = 0;
    if (c->oom) {
        set_err(err, errlen, "template variables need more than %zu bytes of memory",
                c->lim.max_memory);
        return NULL;
    }
    c->failed = false;
    c->err[0] = 0;
    c->steps = 0;
    c->depth = c->mdepth = 0;
    scope *root = calloc_c(c, 1, sizeof(scope));
    sb b = {0};
    if (!root) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    int r = exec_body(c, root, &t->body, &b);
    if (r < 0 || c->failed) {
        set_err(err, errlen, "%s", c->err[0] ? c->err : "render failed");
        return NULL;
    }
    char *res = malloc(b.n + 1);
    if (!res) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    if (b.n)
        memcpy(res, b.p, b.n);
    res[b.n] = 0;
    if (outlen)
        *outlen = b.n;
    return res;
}
