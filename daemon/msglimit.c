/* msglimit.c - see msglimit.h. */
#include "msglimit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"

typedef struct walk {
    const char *p, *end;
} walk;

static void ws(walk *w)
{
    while (w->p < w->end && (*w->p == ' ' || *w->p == '\t' || *w->p == '\n' || *w->p == '\r'))
        w->p++;
}

static bool at(const walk *w, char c) { return w->p < w->end && *w->p == c; }

/* Past a string (w->p on its opening quote). */
static bool skip_string(walk *w)
{
    for (w->p++; w->p < w->end; w->p++) {
        if (*w->p == '\\')
            w->p++;
        else if (*w->p == '"') {
            w->p++;
            return true;
        }
    }
    return false;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A key string with its escapes undone into out (NUL-terminated); a key
 * too long for out, or with a non-ASCII escape, becomes "" (it cannot be
 * one we look for). */
static bool read_key(walk *w, char *out, size_t cap)
{
    size_t n = 0;
    bool fits = true;
    for (w->p++; w->p < w->end; w->p++) {
        char c = *w->p;
        if (c == '"') {
            w->p++;
            out[fits ? n : 0] = '\0';
            return true;
        }
        if (c == '\\') {
            if (++w->p >= w->end)
                return false;
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *e = strchr(from, *w->p);
            if (*w->p == 'u') {
                int v = 0;
                for (int i = 1; i <= 4; i++) {
                    int h = w->p + i < w->end ? hexval(w->p[i]) : -1;
                    if (h < 0)
                        return false;
                    v = v * 16 + h;
                }
                w->p += 4;
                c = (char)v;
                if (v == 0 || v > 0x7f)
                    fits = false;
            } else if (e && *e) {
                c = to[e - from];
            } else {
                return false;
            }
        }
        if (n + 1 < cap)
            out[n++] = c;
        else
            fits = false;
    }
    return false;
}

/* Past one value of any type: containers by bracket depth, strings by
 * their quotes, scalars up to the next delimiter. */
static bool skip_value(walk *w)
{
    ws(w);
    if (w->p >= w->end)
        return false;
    if (*w->p == '"')
        return skip_string(w);
    if (*w->p != '{' && *w->p != '[') {
        const char *start = w->p;
        while (w->p < w->end && !strchr(",]} \t\r\n", *w->p))
            w->p++;
        return w->p > start;
    }
    size_t depth = 0;
    while (w->p < w->end) {
        char c = *w->p;
        if (c == '"') {
            if (!skip_string(w))
                return false;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0) {
            w->p++;
            return true;
        }
        w->p++;
    }
    return false;
}

/* Elements of the array at w->p ('['). */
static long count_elements(walk *w)
{
    w->p++;
    ws(w);
    if (at(w, ']')) {
        w->p++;
        return 0;
    }
    long n = 0;
    for (;;) {
        if (!skip_value(w))
            return -1;
        n++;
        ws(w);
        if (at(w, ']')) {
            w->p++;
            return n;
        }
        if (!at(w, ','))
            return -1;
        w->p++;
    }
}

long msglimit_count(const char *body, size_t len, const char *key)
{
    walk w = {body, body + len};
    long best = -1;
    ws(&w);
    if (!at(&w, '{'))
        return -1;
    w.p++;
    for (;;) {
        ws(&w);
        if (at(&w, '}'))
            return best;
        char name[32];
        if (!at(&w, '"') || !read_key(&w, name, sizeof name))
            return -1;
        ws(&w);
        if (!at(&w, ':'))
            return -1;
        w.p++;
        ws(&w);
        if (strcmp(name, key) == 0 && at(&w, '[')) {
            long n = count_elements(&w);
            if (n < 0)
                return -1;
            if (n > best)
                best = n;
        } else if (!skip_value(&w)) {
            return -1;
        }
        ws(&w);
        if (at(&w, ','))
            w.p++;
        else if (!at(&w, '}'))
            return -1;
    }
}

long msglimit_over(const char *body, size_t len, api_kind kind, int max, const char **key)
{
    *key = kind == API_RESPONSES ? "input" : "messages";
    if (max <= 0 || kind == API_COMPLETION)
        return 0;
    long n = msglimit_count(body, len, *key);
    return n > max ? n : 0;
}
