/* relay.c - an upstream's event stream split into events, checked,
 * restored and queued for the client (see relay.h; relay_json.c has the
 * whole-body variant). An event's way: relay_feed cuts lines and events,
 * relay_event sorts comments, [DONE] and chunks, relay_chunk captures
 * usage and restores text (restore_chunk), queue* append to the output. */
#include "router/relay.h"
#include "engine/buf.h"
#include "router/relay_walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ buffers */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static bool buf_add(buf *b, const char *s, size_t n)
{
    return buf_append(&b->p, &b->len, &b->cap, s, n, 256) == 0;
}

/* ------------------------------------------------------------ the relay */

/* One restorer per (choice, field, tool call). */
typedef struct slot {
    long long choice, tool;
    relay_field f;
    privacy_restorer *res;
} slot;

struct relay {
    relay_opts o;
    bool restoring;     /* a map with placeholders in it */
    relay_status st;
    bool produced;
    relay_usage u;
    buf ev;             /* the event being received */
    size_t line_start;  /* where its last incomplete line starts */
    buf out;            /* queued for the client, from out_head */
    size_t out_head;
    slot *slots;
    size_t n_slots, cap_slots;
    json_t *last;       /* the last chunk with choices (for the held text) */
    bool changed;       /* the chunk being relayed was modified */
};

const char *relay_strerror(relay_status st)
{
    switch (st) {
    case RELAY_OK: return "relaying";
    case RELAY_DONE: return "the upstream stream ended";
    case RELAY_EUPSTREAM: return "the upstream reported an error";
    case RELAY_EMALFORMED: return "the upstream sent malformed data";
    case RELAY_ETOOBIG: return "the upstream sent an event larger than 1 MiB";
    case RELAY_EEARLY: return "the upstream stream ended early";
    case RELAY_ETRANSFER: return "the upstream connection failed mid-stream";
    case RELAY_ENOMEM: return "out of memory relaying the upstream answer";
    }
    return "?";
}

relay *relay_new(const relay_opts *opts)
{
    relay *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->o = *opts;
    r->restoring = opts->map && privacy_map_count(opts->map) > 0;
    return r;
}

void relay_free(relay *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_slots; i++)
        privacy_restorer_free(r->slots[i].res);
    free(r->slots);
    free(r->ev.p);
    free(r->out.p);
    json_decref(r->last);
    free(r);
}

relay_status relay_state(const relay *r) { return r->st; }
bool relay_produced(const relay *r) { return r->produced; }
const relay_usage *relay_get_usage(const relay *r) { return &r->u; }

const char *relay_pending(const relay *r, size_t *len)
{
    *len = r->out.len - r->out_head;
    return r->out.p ? r->out.p + r->out_head : "";
}

void relay_consume(relay *r, size_t n)
{
    r->out_head += n;
    if (r->out_head >= r->out.len)
        r->out_head = r->out.len = 0;
}

/* ------------------------------------------------------------ output */

static bool queue(relay *r, const char *s, size_t n)
{
    if (r->out_head && r->out_head >= r->out.len / 2) {
        memmove(r->out.p, r->out.p + r->out_head, r->out.len - r->out_head);
        r->out.len -= r->out_head;
        r->out_head = 0;
    }
    return buf_add(&r->out, s, n);
}

/* "data: <json>\n\n" */
static bool queue_json(relay *r, json_t *root)
{
    char *s = json_dumps(root, JSON_COMPACT);
    bool ok = s && queue(r, "data: ", 6) && queue(r, s, strlen(s)) &&
              queue(r, "\n\n", 2);
    free(s);
    return ok;
}

/* ------------------------------------------------------------ restoring */

static slot *slot_get(relay *r, long long choice, relay_field f,
                      long long tool)
{
    for (size_t i = 0; i < r->n_slots; i++)
        if (r->slots[i].choice == choice && r->slots[i].f == f &&
            r->slots[i].tool == tool)
            return &r->slots[i];
    if (r->n_slots == r->cap_slots) {
        size_t cap = r->cap_slots ? r->cap_slots * 2 : 4;
        slot *s = realloc(r->slots, cap * sizeof *s);
        if (!s)
            return NULL;
        r->slots = s;
        r->cap_slots = cap;
    }
    slot *s = &r->slots[r->n_slots];
    if (privacy_restorer_new(r->o.map, &s->res) != PRIVACY_OK)
        return NULL;
    s->choice = choice;
    s->f = f;
    s->tool = tool;
    r->n_slots++;
    return s;
}

/* A text field of a chunk: through its restorer (relay_text_fn). */
static bool restore_piece(void *ctx, json_t *obj, const char *key,
                          long long choice, relay_field f, long long tool)
{
    relay *r = ctx;
    json_t *v = json_object_get(obj, key);
    const char *in = json_string_value(v);
    size_t in_len = json_string_length(v);
    if (!r->restoring) {
        r->u.content_bytes += in_len;
        return true;
    }
    slot *s = slot_get(r, choice, f, tool);
    const char *out;
    size_t out_len;
    if (!s || privacy_restorer_feed(s->res, in, in_len, &out, &out_len) !=
                  PRIVACY_OK)
        return false;
    r->u.content_bytes += out_len;
    if (out_len == in_len && memcmp(out, in, in_len) == 0)
        return true;
    r->changed = true;
    return relay_set_string(obj, key, json_stringn(out, out_len));
}

/* obj[key] += s (obj[key] is created, or replaces a null). */
static bool append_string(json_t *obj, const char *key, const char *s,
                          size_t n)
{
    json_t *old = json_object_get(obj, key);
    if (!json_is_string(old))
        return relay_set_string(obj, key, json_stringn(s, n));
    buf b = {0};
    bool ok = buf_add(&b, json_string_value(old), json_string_length(old)) &&
              buf_add(&b, s, n) &&
              relay_set_string(obj, key, json_stringn(b.p ? b.p : "", b.len));
    free(b.p);
    return ok;
}

/* obj[key], created as a new object when it is not one. */
static json_t *object_member(json_t *obj, const char *key)
{
    json_t *m = json_object_get(obj, key);
    if (json_is_object(m))
        return m;
    m = json_object();
    return json_object_set_new(obj, key, m) == 0 ? m : NULL;
}

/* The tool call of index `tool` in delta.tool_calls, appended when
 * missing. */
static json_t *tool_call(json_t *delta, long long tool)
{
    json_t *calls = json_object_get(delta, "tool_calls");
    if (!json_is_array(calls)) {
        calls = json_array();
        if (json_object_set_new(delta, "tool_calls", calls) != 0)
            return NULL;
    }
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call) {
        if (json_is_object(call) && relay_index_of(call, k) == tool)
            return call;
    }
    call = json_pack("{sI}", "index", (json_int_t)tool);
    return json_array_append_new(calls, call) == 0 ? call : NULL;
}

/* Held-back text of slot s appended to its field in choice c. */
static bool put_held(relay *r, const slot *s, json_t *c, const char *held,
                     size_t n)
{
    r->changed = true;
    r->u.content_bytes += n;
    if (s->f == RELAY_TEXT)
        return append_string(c, "text", held, n);
    json_t *delta = object_member(c, "delta");
    if (s->f == RELAY_CONTENT)
        return delta && append_string(delta, "content", held, n);
    json_t *call = delta ? tool_call(delta, s->tool) : NULL;
    json_t *fn = call ? object_member(call, "function") : NULL;
    return fn && append_string(fn, "arguments", held, n);
}

/* Restore the texts of a chunk's choices; a choice that finishes gets
 * what its restorers held back. */
static bool restore_chunk(relay *r, json_t *root)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(root, "choices"), i, c) {
        if (!json_is_object(c))
            continue;
        long long choice = relay_index_of(c, i);
        if (!relay_visit(c, choice, "delta", restore_piece, r))
            return false;
        json_t *fin = json_object_get(c, "finish_reason");
        if (!r->restoring || !fin || json_is_null(fin))
            continue;
        for (size_t k = 0; k < r->n_slots; k++) {
            const char *held;
            size_t n;
            if (r->slots[k].choice != choice)
                continue;
            privacy_restorer_flush(r->slots[k].res, &held, &n);
            if (n && !put_held(r, &r->slots[k], c, held, n))
                return false;
        }
    }
    return true;
}

/* The stream ends: whatever is still held back goes out in one more
 * chunk, shaped after the last one. */
static bool flush_all(relay *r)
{
    if (!r->restoring || !r->last)
        return true;
    static const char *const keep[] = {"id", "object", "created", "model",
                                       "system_fingerprint"};
    json_t *root = json_object(), *choices = json_array();
    bool ok = root && choices;
    for (size_t i = 0; ok && i < sizeof keep / sizeof *keep; i++) {
        json_t *v = json_object_get(r->last, keep[i]);
        if (v)
            ok = json_object_set(root, keep[i], v) == 0;
    }
    if (!ok)
        json_decref(choices);
    /* the array is filled below; root owns it from here */
    else if (json_object_set_new(root, "choices", choices) != 0)
        ok = false;
    if (!ok) {
        json_decref(root);
        return false;
    }
    for (size_t k = 0; ok && k < r->n_slots; k++) {
        const char *held;
        size_t n;
        privacy_restorer_flush(r->slots[k].res, &held, &n);
        if (!n)
            continue;
        size_t j;
        json_t *c = NULL, *cj;
        json_array_foreach(choices, j, cj) {
            if (relay_index_of(cj, j) == r->slots[k].choice)
                c = cj;
        }
        if (!c) {
            c = json_pack("{sIsn}", "index", (json_int_t)r->slots[k].choice,
                          "finish_reason");
            ok = json_array_append_new(choices, c) == 0;
        }
        ok = ok && put_held(r, &r->slots[k], c, held, n);
    }
    if (ok && json_array_size(choices)) {
        ok = queue_json(r, root);
        r->produced = true;
    }
    json_decref(root);
    return ok;
}

/* ------------------------------------------------------------ events */

static void fail(relay *r, relay_status st)
{
    char ev[320];
    int n = snprintf(ev, sizeof ev,
                     "data: {\"error\":{\"message\":\"%s\",\"type\":"
                     "\"server_error\",\"param\":null,\"code\":"
                     "\"upstream_error\"}}\n\ndata: [DONE]\n\n",
                     relay_strerror(st));
    if (st != RELAY_ENOMEM)
        flush_all(r);
    if (!queue(r, ev, (size_t)n))
        st = RELAY_ENOMEM;
    r->st = st;
    r->ev.len = r->line_start = 0;
}

/* The event's data lines, joined by '\n' (SSE) into *tmp when there are
 * several; false when it has none. A line without its end (relay_finish)
 * counts as a line. */
static bool event_data(const char *p, size_t n, buf *tmp, const char **data,
                       size_t *dlen, bool *ok)
{
    size_t lines = 0;
    *ok = true;
    for (size_t pos = 0; pos < n;) {
        const char *nl = memchr(p + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - p) : n, len = end - pos;
        const char *line = p + pos;
        pos = end + 1;
        if (len && line[len - 1] == '\r')
            len--;
        if (len < 5 || memcmp(line, "data", 4) != 0 || (line[4] != ':'))
            continue; /* a comment, another field, the blank line */
        size_t skip = len > 5 && line[5] == ' ' ? 6 : 5;
        if (lines == 1) {
            tmp->len = 0;
            *ok = buf_add(tmp, *data, *dlen);
        }
        if (lines >= 1)
            *ok = *ok && buf_add(tmp, "\n", 1) &&
                  buf_add(tmp, line + skip, len - skip);
        *data = line + skip;
        *dlen = len - skip;
        lines++;
    }
    if (lines > 1) {
        *data = tmp->p;
        *dlen = tmp->len;
    }
    return lines > 0;
}

/* A chunk whose text changed: its other lines as received, then the new
 * data line. */
static bool queue_rewritten(relay *r, const char *p, size_t n, json_t *root)
{
    for (size_t pos = 0; pos < n;) {
        const char *nl = memchr(p + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - p) + 1 : n;
        const char *line = p + pos;
        size_t len = end - pos;
        pos = end;
        bool blank = len == 1 || (len == 2 && line[0] == '\r');
        if (!blank && !(len >= 5 && memcmp(line, "data:", 5) == 0) &&
            !queue(r, line, len))
            return false;
    }
    return queue_json(r, root);
}

/* A chunk: usage captured (and dropped when asked), texts restored.
 * Returns the state. */
static relay_status relay_chunk(relay *r, const char *p, size_t n,
                                json_t *root)
{
    json_t *err = json_object_get(root, "error");
    if (err && !json_is_null(err)) {
        /* the upstream's own error event: as it is, then the end */
        r->produced = true;
        if (!queue(r, p, n) || !queue(r, "data: [DONE]\n\n", 14))
            return RELAY_ENOMEM;
        return RELAY_EUPSTREAM;
    }
    relay_capture_usage(root, &r->u);
    r->changed = false;
    json_t *choices = json_object_get(root, "choices");
    if (r->o.drop_usage && json_is_object(json_object_get(root, "usage"))) {
        if (json_array_size(choices) == 0)
            return RELAY_OK; /* hearth's usage chunk: not the client's */
        json_object_del(root, "usage");
        r->changed = true;
    }
    if (!restore_chunk(r, root))
        return RELAY_ENOMEM;
    if (r->restoring && json_array_size(choices)) {
        json_decref(r->last);
        r->last = json_incref(root);
    }
    r->produced = true;
    bool ok = r->changed ? queue_rewritten(r, p, n, root) : queue(r, p, n);
    return ok ? RELAY_OK : RELAY_ENOMEM;
}

/* One complete event, p[0..n) as received (its blank line included). */
static relay_status relay_event(relay *r, const char *p, size_t n)
{
    buf tmp = {0};
    const char *data = NULL;
    size_t dlen = 0;
    bool ok;
    bool has_data = event_data(p, n, &tmp, &data, &dlen, &ok);
    relay_status st = RELAY_OK;
    if (!ok) {
        st = RELAY_ENOMEM;
    } else if (!has_data) {
        /* comments (keep-alives), or fields without data */
        if (!queue(r, p, n))
            st = RELAY_ENOMEM;
    } else if (dlen >= 6 && memcmp(data, "[DONE]", 6) == 0) {
        if (!flush_all(r) || !queue(r, p, n))
            st = RELAY_ENOMEM;
        else
            st = RELAY_DONE;
        r->produced = true;
    } else {
        json_error_t je;
        json_t *root =
            json_loadb(data, dlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (json_is_object(root))
            st = relay_chunk(r, p, n, root);
        else
            st = RELAY_EMALFORMED;
        json_decref(root);
    }
    free(tmp.p);
    return st;
}

/* Handle the outcome of an event: a failure queues the error event. */
static relay_status settle(relay *r, relay_status st)
{
    if (st == RELAY_OK || st == RELAY_DONE || st == RELAY_EUPSTREAM)
        r->st = st;
    else
        fail(r, st);
    if (r->st != RELAY_OK)
        r->ev.len = r->line_start = 0;
    return r->st;
}

relay_status relay_feed(relay *r, const char *data, size_t len)
{
    while (r->st == RELAY_OK && len) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) + 1 : len;
        if (take > RELAY_MAX_EVENT - r->ev.len)
            return settle(r, RELAY_ETOOBIG);
        if (!buf_add(&r->ev, data, take))
            return settle(r, RELAY_ENOMEM);
        data += take;
        len -= take;
        if (!nl)
            break;
        size_t line = r->ev.len - r->line_start;
        if (line == 1 || (line == 2 && r->ev.p[r->line_start] == '\r')) {
            relay_status st = relay_event(r, r->ev.p, r->ev.len);
            r->ev.len = r->line_start = 0;
            settle(r, st);
        } else {
            r->line_start = r->ev.len;
        }
    }
    return r->st;
}

relay_status relay_finish(relay *r, bool transfer_ok)
{
    if (r->st != RELAY_OK)
        return r->st;
    /* Lenient about one thing: a last "data: [DONE]" whose blank line
     * (or line end) never came is still a clean end. */
    if (transfer_ok && r->ev.len) {
        buf tmp = {0};
        const char *data = NULL;
        size_t dlen = 0;
        bool ok;
        bool done = event_data(r->ev.p, r->ev.len, &tmp, &data, &dlen, &ok) &&
                    ok && dlen >= 6 && memcmp(data, "[DONE]", 6) == 0;
        free(tmp.p);
        if (done) {
            r->produced = true;
            return settle(r, flush_all(r) && queue(r, "data: [DONE]\n\n", 14)
                                 ? RELAY_DONE
                                 : RELAY_ENOMEM);
        }
    }
    return settle(r, transfer_ok ? RELAY_EEARLY : RELAY_ETRANSFER);
}
