/* privacy_redact.c - typed placeholders for what the detectors found
 * (privacy_redact), and the originals put back into an answer, whole
 * (privacy_restore) or as it streams (privacy_restorer): see privacy.h.
 * Matched bytes live only in a privacy_map, which wipes them when freed. */
#include "router/privacy.h"
#include "engine/buf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The placeholder's tag: "[EMAIL_1]". */
static const char *const kind_tags[PRIVACY_KIND_COUNT] = {
    "EMAIL", "PHONE", "CARD", "IBAN", "SECRET", "PRIVATE_KEY", "CUSTOM",
};

/* ------------------------------------------------------------ the map */

typedef struct map_entry {
    privacy_kind kind;
    char *orig;       /* a copy of the matched bytes */
    size_t orig_len;
    char tag[32];     /* "[EMAIL_12]" */
    size_t tag_len;
} map_entry;

struct privacy_map {
    map_entry *e;
    size_t n, cap;
    unsigned count[PRIVACY_KIND_COUNT]; /* placeholders per kind so far */
    size_t max_tag;                     /* the longest tag */
};

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

privacy_map *privacy_map_new(void)
{
    return calloc(1, sizeof(privacy_map));
}

void privacy_map_free(privacy_map *map)
{
    if (!map)
        return;
    for (size_t i = 0; i < map->n; i++) {
        wipe(map->e[i].orig, map->e[i].orig_len);
        free(map->e[i].orig);
    }
    free(map->e);
    free(map);
}

size_t privacy_map_count(const privacy_map *map)
{
    return map->n;
}

static const map_entry *map_add(privacy_map *map, privacy_kind kind,
                                const char *s, size_t n)
{
    for (size_t i = 0; i < map->n; i++)
        if (map->e[i].kind == kind && map->e[i].orig_len == n &&
            memcmp(map->e[i].orig, s, n) == 0)
            return &map->e[i];
    if (map->n == map->cap) {
        size_t cap = map->cap ? map->cap * 2 : 8;
        map_entry *e = realloc(map->e, cap * sizeof *e);
        if (!e)
            return NULL;
        map->e = e;
        map->cap = cap;
    }
    map_entry *e = &map->e[map->n];
    e->orig = malloc(n ? n : 1);
    if (!e->orig)
        return NULL;
    memcpy(e->orig, s, n);
    e->orig_len = n;
    e->kind = kind;
    int tl = snprintf(e->tag, sizeof e->tag, "[%s_%u]", kind_tags[kind],
                      ++map->count[kind]);
    e->tag_len = (size_t)tl;
    if (e->tag_len > map->max_tag)
        map->max_tag = e->tag_len;
    map->n++;
    return e;
}

/* A growing output buffer. */
typedef struct obuf {
    char *p;
    size_t len, cap;
} obuf;

static bool ob_put(obuf *b, const char *s, size_t n)
{
    return buf_append(&b->p, &b->len, &b->cap, s, n, 64) == 0;
}

privacy_status privacy_redact(privacy_map *map, const char *text, size_t len,
                              const privacy_hit *hits, size_t n, char **out,
                              size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)hits[i].kind >= PRIVACY_KIND_COUNT || !hits[i].len ||
            hits[i].offset < prev || hits[i].offset > len ||
            hits[i].len > len - hits[i].offset)
            return PRIVACY_EINVAL;
        prev = hits[i].offset + hits[i].len;
    }
    obuf b = {0};
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const map_entry *e =
            map_add(map, hits[i].kind, text + hits[i].offset, hits[i].len);
        if (!e || !ob_put(&b, text + pos, hits[i].offset - pos) ||
            !ob_put(&b, e->tag, e->tag_len))
            goto oom;
        pos = hits[i].offset + hits[i].len;
    }
    if (!ob_put(&b, text + pos, len - pos))
        goto oom;
    *out = b.p;
    *out_len = b.len;
    return PRIVACY_OK;
oom:
    free(b.p);
    return PRIVACY_ENOMEM;
}

/* ------------------------------------------------------------ restoring */

struct privacy_restorer {
    const privacy_map *map;
    obuf in;  /* held back, then the new piece */
    obuf out; /* what the last call emitted */
};

/* At s[0] == '[': the entry whose tag is complete there (or NULL), and
 * whether what is there is a proper start of some tag (more bytes could
 * complete it). */
static const map_entry *tag_at(const privacy_map *map, const char *s,
                               size_t n, bool *partial)
{
    *partial = false;
    for (size_t i = 0; i < map->n; i++) {
        const map_entry *e = &map->e[i];
        if (n >= e->tag_len) {
            if (memcmp(s, e->tag, e->tag_len) == 0)
                return e;
        } else if (memcmp(s, e->tag, n) == 0) {
            *partial = true;
        }
    }
    return NULL;
}

/* Restore in[0..n) into out; with `final` false stop at a '[' that could
 * still become a placeholder and return how much was consumed. */
static size_t restore_into(const privacy_map *map, const char *in, size_t n,
                           bool final, obuf *out, bool *ok)
{
    size_t pos = 0, plain = 0;
    *ok = true;
    while (pos < n) {
        const char *br = memchr(in + pos, '[', n - pos);
        if (!br)
            break;
        pos = (size_t)(br - in);
        bool partial;
        const map_entry *e = tag_at(map, in + pos, n - pos, &partial);
        if (e) {
            if (!ob_put(out, in + plain, pos - plain) ||
                !ob_put(out, e->orig, e->orig_len)) {
                *ok = false;
                return 0;
            }
            pos += e->tag_len;
            plain = pos;
        } else if (partial && !final) {
            if (!ob_put(out, in + plain, pos - plain))
                *ok = false;
            return pos;
        } else {
            pos++;
        }
    }
    if (!ob_put(out, in + plain, n - plain))
        *ok = false;
    return n;
}

privacy_status privacy_restore(const privacy_map *map, const char *text,
                               size_t len, char **out, size_t *out_len)
{
    obuf b = {0};
    bool ok;
    *out = NULL;
    *out_len = 0;
    restore_into(map, text, len, true, &b, &ok);
    if (ok && !b.p)
        ok = ob_put(&b, "", 0);
    if (!ok) {
        free(b.p);
        return PRIVACY_ENOMEM;
    }
    *out = b.p;
    *out_len = b.len;
    return PRIVACY_OK;
}

privacy_status privacy_restorer_new(const privacy_map *map,
                                    privacy_restorer **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return PRIVACY_ENOMEM;
    (*out)->map = map;
    return PRIVACY_OK;
}

void privacy_restorer_free(privacy_restorer *r)
{
    if (!r)
        return;
    if (r->in.p)
        wipe(r->in.p, r->in.cap);
    if (r->out.p)
        wipe(r->out.p, r->out.cap);
    free(r->in.p);
    free(r->out.p);
    free(r);
}

privacy_status privacy_restorer_feed(privacy_restorer *r, const char *piece,
                                     size_t len, const char **out,
                                     size_t *out_len)
{
    r->out.len = 0;
    *out = "";
    *out_len = 0;
    if (!ob_put(&r->in, piece, len) || !ob_put(&r->out, "", 0))
        return PRIVACY_ENOMEM;
    bool ok;
    size_t used = restore_into(r->map, r->in.p, r->in.len, false, &r->out, &ok);
    if (!ok)
        return PRIVACY_ENOMEM;
    memmove(r->in.p, r->in.p + used, r->in.len - used);
    r->in.len -= used;
    *out = r->out.p;
    *out_len = r->out.len;
    return PRIVACY_OK;
}

void privacy_restorer_flush(privacy_restorer *r, const char **out,
                            size_t *out_len)
{
    /* What is held back is a proper start of a placeholder and holds no
     * complete one: it goes out as it is. */
    r->out.len = 0;
    if (r->in.len) {
        *out = r->in.p;
        *out_len = r->in.len;
        r->in.len = 0;
        return;
    }
    *out = "";
    *out_len = 0;
}
