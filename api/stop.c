/* stop.c - see stop.h.
 *
 * Each stop string runs its own Knuth-Morris-Pratt automaton over the
 * stream, one byte at a time. Its state is the length of the longest end of
 * the text so far that is a start of the stop string, so
 *   - a state equal to the string's length is a match, and
 *   - the largest state over all stop strings is exactly how much of the
 *     end of the text must be held back.
 * Emitted bytes are never looked at again: the automata remember what
 * matters. The cost is O(1) amortised per byte and stop string, whatever
 * the lengths, and the buffer never holds more than the longest stop string
 * plus one piece.
 *
 * Which stop wins: the first one to be complete as the text is read byte
 * by byte (on the same byte, the longer one). This does not depend on how
 * the text was cut into pieces: stops "abcd" and "bc" over "abcd" cut
 * before "bc" however the text arrives.
 */
#include "stop.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct stop_str {
    char *s;
    size_t len;
    size_t *fail;  /* KMP failure function: fail[i] = longest proper border
                      of s[0..i] */
    size_t state;  /* bytes of s matched at the end of the text */
    int index;     /* position in the caller's array */
} stop_str;

struct api_stop {
    stop_str *stops;
    size_t n;
    char *buf;       /* held-back text, then the latest piece */
    size_t len, cap;
    size_t emitted;  /* bytes at the start of buf handed out by the last
                        call, dropped at the next one */
    bool done;
};

/* ------------------------------------------------------------ UTF-8 */

/* Number of bytes of the character a lead byte starts, 0 if it is not a
 * lead byte (a continuation byte, or one that never appears in UTF-8). */
static size_t utf8_seq_len(unsigned char b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        return 2;
    if (b >= 0xe0 && b <= 0xef)
        return 3;
    if (b >= 0xf0 && b <= 0xf4)
        return 4;
    return 0;
}

/* May b follow lead byte `lead` as its first continuation? (The ranges
 * that rule out overlong forms, surrogates and code points > U+10FFFF.) */
static bool utf8_second_ok(unsigned char lead, unsigned char b)
{
    switch (lead) {
    case 0xe0: return b >= 0xa0 && b <= 0xbf;
    case 0xed: return b >= 0x80 && b <= 0x9f;
    case 0xf0: return b >= 0x90 && b <= 0xbf;
    case 0xf4: return b >= 0x80 && b <= 0x8f;
    default: return b >= 0x80 && b <= 0xbf;
    }
}

size_t api_utf8_complete_len(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    /* The last lead byte can be at most 3 bytes from the end for its
     * character to be still incomplete. */
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        size_t p = len - back;
        unsigned char b = u[p];
        if (b >= 0x80 && b <= 0xbf)
            continue; /* a continuation byte: look further back */
        size_t need = utf8_seq_len(b);
        if (need <= back)
            return len; /* ASCII, invalid, or complete */
        for (size_t k = 1; k < back; k++) {
            unsigned char c = u[p + k];
            if (k == 1 ? !utf8_second_ok(b, c) : (c < 0x80 || c > 0xbf))
                return len; /* already invalid: nothing to wait for */
        }
        return p;
    }
    return len;
}

size_t api_utf8_next(const char *s, size_t len, bool *valid)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t need = utf8_seq_len(u[0]);
    *valid = false;
    if (need == 0)
        return 1;
    size_t k = 1;
    while (k < need && k < len &&
           (k == 1 ? utf8_second_ok(u[0], u[1]) : (u[k] >= 0x80 && u[k] <= 0xbf)))
        k++;
    *valid = k == need;
    return k;
}

/* ------------------------------------------------------------ setup */

int api_stop_new(const char *const *stops, size_t n, api_stop **out)
{
    *out = NULL;
    api_stop *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    if (n) {
        m->stops = calloc(n, sizeof *m->stops);
        if (!m->stops)
            goto err;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = stops[i] ? strlen(stops[i]) : 0;
        if (len == 0)
            continue;
        stop_str *st = &m->stops[m->n];
        st->s = malloc(len);
        st->fail = calloc(len, sizeof *st->fail);
        if (!st->s || !st->fail) {
            free(st->s);
            free(st->fail);
            goto err;
        }
        memcpy(st->s, stops[i], len);
        st->len = len;
        st->index = (int)i;
        /* Standard prefix function. */
        size_t k = 0;
        for (size_t j = 1; j < len; j++) {
            while (k > 0 && st->s[j] != st->s[k])
                k = st->fail[k - 1];
            if (st->s[j] == st->s[k])
                k++;
            st->fail[j] = k;
        }
        m->n++;
    }
    *out = m;
    return 0;
err:
    api_stop_free(m);
    return -1;
}

void api_stop_free(api_stop *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->stops[i].s);
        free(m->stops[i].fail);
    }
    free(m->stops);
    free(m->buf);
    free(m);
}

bool api_stop_done(const api_stop *m)
{
    return m->done;
}

/* ------------------------------------------------------------ matching */

/* Forget what the previous call handed out. */
static void drop_emitted(api_stop *m)
{
    if (m->emitted) {
        memmove(m->buf, m->buf + m->emitted, m->len - m->emitted);
        m->len -= m->emitted;
        m->emitted = 0;
    }
}

static void empty_out(api_stop_out *out)
{
    out->text = "";
    out->len = 0;
    out->stop = -1;
}

int api_stop_feed(api_stop *m, const char *piece, size_t len,
                  api_stop_out *out)
{
    empty_out(out);
    if (m->done)
        return 0;
    drop_emitted(m);

    if (len > SIZE_MAX - m->len) {
        m->done = true;
        return -1;
    }
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < m->len + len)
            cap = cap > SIZE_MAX / 2 ? m->len + len : cap * 2;
        char *nb = realloc(m->buf, cap);
        if (!nb) {
            m->done = true;
            return -1;
        }
        m->buf = nb;
        m->cap = cap;
    }
    size_t start = m->len;
    if (len)
        memcpy(m->buf + start, piece, len);
    m->len += len;

    for (size_t j = start; j < m->len; j++) {
        char c = m->buf[j];
        const stop_str *hit = NULL;
        for (size_t i = 0; i < m->n; i++) {
            stop_str *st = &m->stops[i];
            while (st->state > 0 && st->s[st->state] != c)
                st->state = st->fail[st->state - 1];
            if (st->s[st->state] == c)
                st->state++;
            if (st->state == st->len && (!hit || st->len > hit->len))
                hit = st;
        }
        if (hit) {
            /* The whole match is in buf: every byte of it was held back
             * (or is new) because the automaton's state covered it. */
            out->text = m->buf; /* not NULL: it holds the match */
            out->len = j + 1 - hit->len;
            out->stop = hit->index;
            m->done = true;
            return 0;
        }
    }

    size_t hold = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->stops[i].state > hold)
            hold = m->stops[i].state;
    size_t emit = m->len - hold;
    size_t whole = api_utf8_complete_len(m->buf, m->len);
    if (whole < emit)
        emit = whole;
    if (emit) /* else keep "": buf may still be NULL */
        out->text = m->buf;
    out->len = emit;
    m->emitted = emit;
    return 0;
}

void api_stop_flush(api_stop *m, api_stop_out *out)
{
    empty_out(out);
    if (m->done)
        return;
    drop_emitted(m);
    if (m->len) {
        out->text = m->buf;
        out->len = m->len;
    }
    m->emitted = m->len;
    m->done = true;
}
