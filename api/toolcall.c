/* toolcall.c - see toolcall.h.
 *
 * The parser keeps everything it has not emitted in p->hold and works on
 * it from the front: in text it emits all but a tail that could still
 * become an opener; in a call it scans the JSON value byte by byte
 * (strings and escapes tracked) until its depth returns to zero, then
 * parses it with jansson. Held text stays small; a call's body is held
 * whole, as its validity is known only at its end.
 */
#define _GNU_SOURCE 1 /* memmem */
#include "toolcall.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tools.h"

enum {
    ST_START, /* LLAMA3: nothing but whitespace yet */
    ST_TEXT,  /* looking for an opener */
    ST_PLAIN, /* LLAMA3: the answer is text; no more calls */
    ST_NAME,  /* MISTRAL_ARGS: the name, up to [ARGS] */
    ST_BODY,  /* a call's JSON */
    ST_CLOSE, /* HERMES: the closing tag after a call */
    ST_SEP    /* LLAMA3: ';' or whitespace, maybe another call */
};

#define HERMES_OPEN "<tool_call>"
#define HERMES_CLOSE "</tool_call>"
#define MISTRAL_OPEN "[TOOL_CALLS]"
#define MISTRAL_ARGS "[ARGS]"
#define MISTRAL_ID "[CALL_ID]"
#define PYTHON_TAG "<|python_tag|>"

/* ------------------------------------------------------------ formats */

api_tool_format api_tool_format_of(const char *src)
{
    if (!src || !strstr(src, "tools"))
        return API_TOOLS_NONE;
    if (strstr(src, MISTRAL_OPEN))
        return strstr(src, MISTRAL_ARGS) ? API_TOOLS_MISTRAL_ARGS : API_TOOLS_MISTRAL;
    if (strstr(src, HERMES_OPEN))
        return API_TOOLS_HERMES;
    if (strstr(src, "<|start_header_id|>") && strstr(src, "\"parameters\": "))
        return API_TOOLS_LLAMA3;
    return API_TOOLS_NONE;
}

const char *api_tool_format_name(api_tool_format f)
{
    switch (f) {
    case API_TOOLS_HERMES: return "hermes";
    case API_TOOLS_LLAMA3: return "llama3";
    case API_TOOLS_MISTRAL: return "mistral";
    case API_TOOLS_MISTRAL_ARGS: return "mistral-args";
    case API_TOOLS_NONE: break;
    }
    return "none";
}

/* {"type":"object","properties":{"name":{"const":N},ARGKEY:PARAMS},
 *  "required":["name",ARGKEY],"additionalProperties":false} */
static json_t *call_schema(const char *argkey, const api_tool *t)
{
    json_t *params = json_loads(t->parameters, 0, NULL);
    if (!params)
        return NULL;
    return json_pack("{s:s, s:{s:{s:s}, s:o}, s:[s,s], s:b}", "type", "object", "properties",
                     "name", "const", t->name, argkey, params, "required", "name", argkey,
                     "additionalProperties", 0);
}

int api_tool_forced(api_tool_format f, const api_request *r, const char *only, char **prefix,
                    char **schema, api_err *err)
{
    *prefix = *schema = NULL;
    if (f == API_TOOLS_NONE)
        return api_fail(err, 400, "tools", API_CODE_UNSUPPORTED_PARAM,
                        "this model's chat template does not support tools");
    int one = only ? api_tools_find(r, only) : r->n_tools == 1 ? 0 : -1;
    json_t *s = NULL;
    const char *pre = "";
    char name_pre[sizeof MISTRAL_OPEN + API_TOOL_NAME_MAX + sizeof MISTRAL_ARGS];
    if (f == API_TOOLS_MISTRAL_ARGS) {
        /* the name is outside the JSON: only a known one can be forced */
        if (one < 0)
            return api_fail(err, 400, "tool_choice", API_CODE_UNSUPPORTED_VALUE,
                            "this model's tool format cannot force a call among several "
                            "tools; name the function in tool_choice");
        snprintf(name_pre, sizeof name_pre, "%s%s%s", MISTRAL_OPEN, r->tools[one].name,
                 MISTRAL_ARGS);
        pre = name_pre;
        s = json_loads(r->tools[one].parameters, 0, NULL);
    } else {
        const char *argkey = f == API_TOOLS_LLAMA3 ? "parameters" : "arguments";
        if (one >= 0) {
            s = call_schema(argkey, &r->tools[one]);
        } else {
            json_t *alts = json_array();
            for (size_t i = 0; alts && i < r->n_tools; i++)
                if (json_array_append_new(alts, call_schema(argkey, &r->tools[i])) < 0) {
                    json_decref(alts);
                    alts = NULL;
                }
            s = alts ? json_pack("{s:o}", "anyOf", alts) : NULL;
        }
        if (s && f == API_TOOLS_MISTRAL)
            s = json_pack("{s:s, s:o, s:i, s:i}", "type", "array", "items", s, "minItems", 1,
                          "maxItems", 1);
        pre = f == API_TOOLS_HERMES ? HERMES_OPEN "\n" : f == API_TOOLS_MISTRAL ? MISTRAL_OPEN : "";
    }
    *schema = s ? json_dumps(s, JSON_COMPACT) : NULL;
    json_decref(s);
    *prefix = strdup(pre);
    if (!*schema || !*prefix) {
        free(*schema);
        free(*prefix);
        *prefix = *schema = NULL;
        return api_fail(err, 500, NULL, NULL, "out of memory");
    }
    return 0;
}

/* ------------------------------------------------------------ parser */

void api_toolparse_init(api_toolparse *p, api_tool_format f, bool forced,
                        const char *forced_name, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->f = f;
    p->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    p->forced = forced;
    if (forced && forced_name)
        snprintf(p->forced_name, sizeof p->forced_name, "%s", forced_name);
    p->state = forced ? ST_BODY : f == API_TOOLS_LLAMA3 ? ST_START : ST_TEXT;
}

void api_toolparse_free(api_toolparse *p)
{
    for (size_t i = 0; i < p->n_calls; i++) {
        free(p->calls[i].id);
        free(p->calls[i].name);
        free(p->calls[i].arguments);
    }
    free(p->calls);
    free(p->hold);
    memset(p, 0, sizeof *p);
}

static uint64_t next_rand(api_toolparse *p)
{
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return p->rng;
}

static char *new_id(api_toolparse *p)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    bool mistral = p->f == API_TOOLS_MISTRAL || p->f == API_TOOLS_MISTRAL_ARGS;
    size_t n = mistral ? 9 : 24, o = mistral ? 0 : 5;
    char *id = malloc(o + n + 1);
    if (!id)
        return NULL;
    memcpy(id, "call_", o);
    for (size_t i = 0; i < n; i++)
        id[o + i] = abc[next_rand(p) % (sizeof abc - 1)];
    id[o + n] = '\0';
    return id;
}

/* Drop the first n held bytes. */
static void consume(api_toolparse *p, size_t n)
{
    memmove(p->hold, p->hold + n, p->hold_len - n);
    p->hold_len -= n;
    p->scan = 0;
}

static int emit_text(api_toolparse *p, size_t n, api_tp_emit emit, void *arg)
{
    int rc = 0;
    if (n) {
        rc = emit(arg, API_TP_TEXT, p->hold, n, 0);
        p->any_text = true;
    }
    consume(p, n);
    return rc;
}

/* Arguments as compact JSON text: an object, or a string that holds one. */
static char *args_text(json_t *a)
{
    if (!a || json_is_null(a))
        return strdup("{}");
    json_t *own = NULL;
    if (json_is_string(a))
        a = own = json_loads(json_string_value(a), 0, NULL);
    char *s = a && json_is_object(a) ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(own);
    return s;
}

/* Record one call from a {"name", "arguments"|"parameters"} object, or
 * from a name and an arguments value. 1 recorded, 0 not a call, -1 OOM. */
static int add_call(api_toolparse *p, const char *name, json_t *args)
{
    api_err e;
    if (!name || api_tool_name_check(name, "name", &e) < 0)
        return 0;
    if (p->req && api_tools_find(p->req, name) < 0)
        return 0; /* a function nobody offered: not a call */
    char *a = args_text(args);
    if (!a)
        return 0; /* arguments that are not an object: not a call */
    api_tool_call *grown = realloc(p->calls, (p->n_calls + 1) * sizeof *grown);
    if (!grown) {
        free(a);
        return -1;
    }
    p->calls = grown;
    api_tool_call *c = &p->calls[p->n_calls];
    c->name = strdup(name);
    c->id = new_id(p);
    c->arguments = a;
    if (!c->name || !c->id) {
        free(c->name);
        free(c->id);
        free(a);
        return -1;
    }
    p->n_calls++;
    return 1;
}

static bool valid_call_object(json_t *o)
{
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "name")))
        return false;
    json_t *a = json_object_get(o, "arguments");
    if (!a)
        a = json_object_get(o, "parameters");
    char *t = args_text(a);
    bool ok = t != NULL;
    free(t);
    return ok;
}

static int add_call_object(api_toolparse *p, json_t *o)
{
    json_t *a = json_object_get(o, "arguments");
    if (!a)
        a = json_object_get(o, "parameters");
    return add_call(p, json_string_value(json_object_get(o, "name")), a);
}

/* The call whose JSON is hold[from, to): record it (and emit it) or
 * report it is none. 1 call(s) made, 0 not a call, -1 failure. */
static int finish_body(api_toolparse *p, size_t from, size_t to, const char *name,
                       api_tp_emit emit, void *arg)
{
    json_t *v = json_loadb(p->hold + from, to - from, 0, NULL);
    size_t first = p->n_calls;
    int rc = 0;
    if (name) {
        rc = json_is_object(v) ? add_call(p, name, v) : 0;
    } else if (p->f == API_TOOLS_MISTRAL) {
        bool all = json_is_array(v) && json_array_size(v) > 0;
        for (size_t i = 0; all && i < json_array_size(v); i++)
            all = valid_call_object(json_array_get(v, i));
        for (size_t i = 0; all && rc >= 0 && i < json_array_size(v); i++)
            rc = add_call_object(p, json_array_get(v, i));
        rc = rc < 0 ? -1 : all ? 1 : 0;
    } else {
        rc = valid_call_object(v) ? add_call_object(p, v) : 0;
    }
    json_decref(v);
    for (size_t i = first; rc > 0 && i < p->n_calls; i++)
        if (emit(arg, API_TP_CALL, NULL, 0, (unsigned)i) < 0)
            return -1;
    return rc;
}

/* The length of the longest tail of hold[0, n) that begins `word`. */
static size_t partial_tail(const char *h, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t k = w - 1 < n ? w - 1 : n; k > 0; k--)
        if (memcmp(h + n - k, word, k) == 0)
            return k;
    return 0;
}

/* The held whitespace, as text. */
static int flush_ws(api_toolparse *p, api_tp_emit emit, void *arg)
{
    int rc = p->ws_len ? emit(arg, API_TP_TEXT, p->ws, p->ws_len, 0) : 0;
    p->ws_len = 0;
    return rc;
}

static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

static const char *opener(const api_toolparse *p)
{
    return p->f == API_TOOLS_HERMES ? HERMES_OPEN : MISTRAL_OPEN;
}

/* Scan the JSON value in hold from p->scan on; *end set past it when it
 * is complete. 1 complete, 0 more needed, -1 not a value of the kind. */
static int scan_value(api_toolparse *p, size_t start, size_t *end)
{
    size_t i = p->scan > start ? p->scan : start;
    for (; i < p->hold_len; i++) {
        char c = p->hold[i];
        if (p->depth == 0) {
            if (is_ws(c))
                continue;
            if (c != '{' && c != '[')
                return -1;
            p->depth = 1;
            continue;
        }
        if (p->in_str) {
            if (p->esc)
                p->esc = false;
            else if (c == '\\')
                p->esc = true;
            else if (c == '"')
                p->in_str = false;
            continue;
        }
        if (c == '"')
            p->in_str = true;
        else if (c == '{' || c == '[')
            p->depth++;
        else if ((c == '}' || c == ']') && --p->depth == 0) {
            *end = i + 1;
            p->scan = 0;
            return 1;
        }
    }
    p->scan = i;
    return 0;
}

/* An XML-style value: JSON when it reads as JSON (numbers, booleans,
 * objects...), else the text as a string. Taken by the caller. */
static json_t *xml_value(const char *s, size_t n)
{
    while (n && (*s == '\n' || *s == '\r'))
        s++, n--;
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    json_t *v = n ? json_loadb(s, n, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_stringn(s, n);
}

/* The text between open and close after *at (advanced past close), or
 * NULL. */
static const char *between(const char **at, const char *end, const char *open, const char *close,
                           size_t *len)
{
    const char *a = memmem(*at, (size_t)(end - *at), open, strlen(open));
    if (!a)
        return NULL;
    a += strlen(open);
    const char *b = memmem(a, (size_t)(end - a), close, strlen(close));
    if (!b)
        return NULL;
    *len = (size_t)(b - a);
    *at = b + strlen(close);
    return a;
}

/* A <tool_call> whose body is not JSON, as some templates of the Hermes
 * family have their models write it (docs/tools.md):
 *   <function=F><parameter=K>V</parameter>...</function>  (Qwen3-Coder, Qwen3.5)
 *   F<arg_key>K</arg_key><arg_value>V</arg_value>...       (GLM-4.x)
 * The body runs to </tool_call>. 1: a call (emitted, consumed), 0: more
 * text needed, 2: not a call, 3: the body is JSON (the caller scans it),
 * -1: failure. */
static int xml_body(api_toolparse *p, bool final, api_tp_emit emit, void *arg)
{
    size_t i = 0;
    while (i < p->hold_len && is_ws(p->hold[i]))
        i++;
    if (i == p->hold_len)
        return final ? 2 : 0;
    if (p->hold[i] == '{' || p->hold[i] == '[')
        return 3;
    const char *body = p->hold + i;
    const char *close = memmem(body, p->hold_len - i, HERMES_CLOSE, strlen(HERMES_CLOSE));
    if (!close)
        return final || p->hold_len > (64u << 10) ? 2 : 0;
    char name[API_TOOL_NAME_MAX + 1];
    const char *at = body, *v;
    size_t n = 0;
    json_t *args = json_object();
    bool coder = strncmp(body, "<function=", 10) == 0;
    if (coder) {
        const char *gt = memchr(body, '>', (size_t)(close - body));
        n = gt ? (size_t)(gt - body - 10) : 0;
        at = gt ? gt + 1 : close;
        size_t pn;
        while (args && (v = between(&at, close, "<parameter=", "</parameter>", &pn))) {
            const char *gt2 = memchr(v, '>', pn);
            if (!gt2)
                break;
            char *key = strndup(v, (size_t)(gt2 - v));
            json_t *val = xml_value(gt2 + 1, pn - (size_t)(gt2 + 1 - v));
            if (!key || !val || json_object_set_new(args, key, val) < 0) {
                json_decref(args);
                args = NULL;
            }
            free(key);
        }
    } else {
        const char *lt = memchr(body, '<', (size_t)(close - body));
        n = (size_t)((lt ? lt : close) - body);
        while (n && is_ws(body[n - 1]))
            n--;
        at = lt ? lt : close;
        size_t kn, vn;
        const char *k;
        while (args && (k = between(&at, close, "<arg_key>", "</arg_key>", &kn)) &&
               (v = between(&at, close, "<arg_value>", "</arg_value>", &vn))) {
            char *key = strndup(k, kn);
            json_t *val = xml_value(v, vn);
            if (!key || !val || json_object_set_new(args, key, val) < 0) {
                json_decref(args);
                args = NULL;
            }
            free(key);
        }
    }
    if (!args)
        return -1;
    int rc = 0;
    if (n > 0 && n <= API_TOOL_NAME_MAX) {
        memcpy(name, coder ? body + 10 : body, n);
        name[n] = '\0';
        size_t first = p->n_calls;
        rc = add_call(p, name, args);
        if (rc > 0 && emit(arg, API_TP_CALL, NULL, 0, (unsigned)first) < 0)
            rc = -1;
    }
    json_decref(args);
    if (rc <= 0)
        return rc < 0 ? -1 : 2;
    consume(p, (size_t)(close - p->hold) + strlen(HERMES_CLOSE));
    p->ws_len = 0;
    p->state = ST_TEXT;
    return 1;
}

/* Work on what is held; `final`: the generation ended. */
static int step(api_toolparse *p, bool final, api_tp_emit emit, void *arg)
{
    for (;;) {
        switch (p->state) {
        case ST_START: {
            size_t i = 0;
            while (i < p->hold_len && is_ws(p->hold[i]))
                i++;
            if (i == p->hold_len && !final)
                return 0;
            size_t tl = strlen(PYTHON_TAG);
            bool tag = p->hold_len - i >= tl && memcmp(p->hold + i, PYTHON_TAG, tl) == 0;
            if (!tag && !final && p->hold_len - i < tl &&
                memcmp(p->hold + i, PYTHON_TAG, p->hold_len - i) == 0)
                return 0; /* maybe the tag */
            if (tag) {
                consume(p, i + tl);
                p->state = ST_BODY;
            } else if (i < p->hold_len && p->hold[i] == '{') {
                consume(p, i);
                p->state = ST_BODY;
            } else {
                p->state = ST_PLAIN;
            }
            p->depth = 0;
            p->in_str = p->esc = false;
            continue;
        }
        case ST_PLAIN:
            return emit_text(p, p->hold_len, emit, arg);
        case ST_TEXT: {
            const char *w = opener(p);
            char *at = p->hold_len ? memmem(p->hold, p->hold_len, w, strlen(w)) : NULL;
            size_t upto = at ? (size_t)(at - p->hold)
                             : final ? p->hold_len
                                     : p->hold_len - partial_tail(p->hold, p->hold_len, w);
            /* whitespace before a call or at the end after calls is not
             * text: a run of it waits in p->ws for what follows */
            size_t nw = upto;
            while (nw > 0 && is_ws(p->hold[nw - 1]))
                nw--;
            if (upto - nw > sizeof p->ws)
                nw = upto; /* a long run of whitespace is text */
            if (nw > 0 || p->ws_len + (upto - nw) > sizeof p->ws) {
                if (flush_ws(p, emit, arg) < 0 || emit_text(p, nw, emit, arg) < 0)
                    return -1;
                upto -= nw;
            }
            memcpy(p->ws + p->ws_len, p->hold, upto);
            p->ws_len += upto;
            consume(p, upto);
            if (!at) {
                if (final && !p->n_calls && flush_ws(p, emit, arg) < 0)
                    return -1;
                if (final)
                    p->ws_len = 0;
                return 0;
            }
            consume(p, strlen(w));
            p->state = p->f == API_TOOLS_MISTRAL_ARGS ? ST_NAME : ST_BODY;
            p->depth = 0;
            p->in_str = p->esc = false;
            continue;
        }
        case ST_NAME: {
            char *a = memmem(p->hold, p->hold_len, MISTRAL_ARGS, strlen(MISTRAL_ARGS));
            if (!a) {
                if (final || p->hold_len > API_TOOL_NAME_MAX + 64)
                    goto not_a_call;
                return 0;
            }
            p->state = ST_BODY;
            p->depth = 0;
            p->in_str = p->esc = false;
            p->scan = (size_t)(a - p->hold) + strlen(MISTRAL_ARGS);
            continue;
        }
        case ST_BODY: {
            size_t start = 0;
            char name[API_TOOL_NAME_MAX + 1] = "";
            bool named = p->f == API_TOOLS_MISTRAL_ARGS;
            if (named) {
                char *a = memmem(p->hold, p->hold_len, MISTRAL_ARGS, strlen(MISTRAL_ARGS));
                if (a) {
                    start = (size_t)(a - p->hold) + strlen(MISTRAL_ARGS);
                    char *idm = memmem(p->hold, (size_t)(a - p->hold), MISTRAL_ID,
                                       strlen(MISTRAL_ID));
                    size_t nl = (size_t)((idm ? idm : a) - p->hold);
                    if (nl <= API_TOOL_NAME_MAX) {
                        memcpy(name, p->hold, nl);
                        name[nl] = '\0';
                    }
                } else if (p->forced_name[0]) {
                    snprintf(name, sizeof name, "%s", p->forced_name);
                }
            }
            if (p->f == API_TOOLS_HERMES && !p->forced) {
                int xr = xml_body(p, final, emit, arg);
                if (xr < 0)
                    return -1;
                if (xr == 0)
                    return 0;
                if (xr == 1)
                    continue;
                if (xr == 2)
                    goto not_a_call;
            }
            size_t end = 0;
            int sv = scan_value(p, start, &end);
            if (sv == 0 && !final)
                return 0;
            int rc = sv == 1 ? finish_body(p, start, end, named ? name : NULL, emit, arg) : 0;
            if (rc < 0)
                return -1;
            if (rc == 0)
                goto not_a_call;
            consume(p, end);
            p->ws_len = 0; /* the whitespace before the call was not text */
            p->state = p->f == API_TOOLS_HERMES   ? ST_CLOSE
                       : p->f == API_TOOLS_LLAMA3 ? ST_SEP
                                                  : ST_TEXT;
            continue;
        }
        case ST_CLOSE: {
            size_t i = 0;
            while (i < p->hold_len && is_ws(p->hold[i]))
                i++;
            size_t cl = strlen(HERMES_CLOSE), have = p->hold_len - i;
            if (have >= cl && memcmp(p->hold + i, HERMES_CLOSE, cl) == 0) {
                consume(p, i + cl);
                p->state = ST_TEXT;
                continue;
            }
            if (!final && have < cl && memcmp(p->hold + i, HERMES_CLOSE, have) == 0)
                return 0; /* all of it may be the closing tag */
            p->state = ST_TEXT; /* no closing tag: the rest is text */
            continue;
        }
        case ST_SEP: {
            size_t i = 0;
            while (i < p->hold_len && (is_ws(p->hold[i]) || p->hold[i] == ';'))
                i++;
            if (i == p->hold_len) {
                if (final)
                    consume(p, i);
                return 0;
            }
            consume(p, i);
            p->state = p->hold[0] == '{' ? ST_BODY : ST_PLAIN;
            p->depth = 0;
            p->in_str = p->esc = false;
            continue;
        }
        }
        return 0;
    not_a_call:
        /* give back what looked like a call: the whitespace and the opener
         * before it, then its body, all as text */
        if (p->state == ST_BODY || p->state == ST_NAME) {
            const char *w = p->f == API_TOOLS_LLAMA3 || p->forced ? "" : opener(p);
            size_t wl = strlen(w), pre = p->ws_len + wl;
            char *grown = realloc(p->hold, p->hold_len + pre + 1);
            if (!grown)
                return -1;
            p->hold = grown;
            p->hold_cap = p->hold_len + pre + 1;
            memmove(p->hold + pre, p->hold, p->hold_len);
            memcpy(p->hold, p->ws, p->ws_len);
            memcpy(p->hold + p->ws_len, w, wl);
            p->hold_len += pre;
            p->ws_len = 0;
            p->forced = false;
            /* the opener cannot start a call again: out it goes */
            if (emit_text(p, pre, emit, arg) < 0)
                return -1;
        }
        p->state = p->f == API_TOOLS_LLAMA3 ? ST_PLAIN : ST_TEXT;
    }
}

int api_toolparse_feed(api_toolparse *p, const char *s, size_t len, api_tp_emit emit, void *arg)
{
    if (buf_append(&p->hold, &p->hold_len, &p->hold_cap, s, len, 256) < 0)
        return -1;
    return step(p, false, emit, arg);
}

int api_toolparse_end(api_toolparse *p, api_tp_emit emit, void *arg)
{
    return step(p, true, emit, arg);
}
