/* prompt.c - see prompt.h.
 *
 * Message content is text. The rendered template is tokenized with
 * special parsing, because its markup is made of special tokens; content
 * that holds the text of one ("<|im_end|>", "</s>", "<start_of_turn>")
 * would become that token and could end the turn, open a system turn, or
 * stop the sequence. So every string that reaches the template from the
 * request (message contents, the strings inside extra_json and JSON
 * variables such as tools, string variables) goes through a guard:
 *
 *   1. Scan them for the texts of markup tokens (tok_markup_find) and for
 *      the sentinel byte. Nothing found, the common case: render and
 *      tokenize as ever; the scan (one table look-up per byte) is all it
 *      costs.
 *   2. Otherwise render twice: the messages as they are, and the messages
 *      with each such text replaced by a sentinel, DEL + its index in
 *      decimal + DEL. In the second render the sentinels are put back
 *      and their places kept: those spans are tokenized as text
 *      (tok_encode_plain), everything else with special parsing.
 *
 * DEL (0x7F) because it survives what templates do to content: it is
 * ASCII (tojson with ensure_ascii keeps it), not whitespace (trim, strip
 * and split() keep it), not a letter (upper, lower, title keep it), and
 * JSON does not escape it. No template writes it; a DEL in the request is
 * itself replaced by a sentinel, so every DEL in the render is ours.
 *
 * Templates also look into content: Qwen3 and DeepSeek-R1 split an
 * assistant turn at '</think>', others test startswith('<tool_response>')
 * or replace a marker. A sentinel hides the text from them. So the guarded
 * render, texts put back, must equal the plain render byte for byte. If
 * not, a second guarded render replaces only control tokens' texts: the
 * user-defined ones (<think>, <tool_response>) stay for the template to
 * find, and are matched as the tokens they are, as transformers does. If
 * that differs too (a template that changes the case of content, slices
 * it, or looks for a control token's text in it), the guarded render is
 * used as it is: its markup is the template's and no content becomes a
 * control token, but the prompt is not quite what the template would
 * have made of the raw content (docs/chat-templates.md).
 */
#include "prompt.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "utf8.h"

#define SENT '\x7f' /* opens and closes a sentinel */

/* ------------------------------------------------------------ buffers */

/* A growing text (engine/buf.h) that remembers running out of memory, so
 * that a chain of appends is checked once at the end. */
typedef struct pbuf {
    char *p;
    size_t n, cap;
    bool oom;
} pbuf;

static void pbuf_put(pbuf *b, const char *s, size_t n)
{
    if (!b->oom && buf_append(&b->p, &b->n, &b->cap, s, n, 64))
        b->oom = true;
}

/* The buffer's text, handed over (NULL when memory ran out; then the
 * buffer is freed). */
static char *pbuf_take(pbuf *b)
{
    char *s = b->oom ? NULL : b->p ? b->p : calloc(1, 1);
    if (!s)
        free(b->p);
    *b = (pbuf){0};
    return s;
}

/* ------------------------------------------------------------ the guard */

/* A replaced text: the sentinel's index is its place in guard.tab. */
typedef struct orig {
    const char *p; /* the vocabulary's copy of the text, or "\x7f" */
    size_t len;
} orig;

typedef struct guard {
    const tok_vocab *v;
    int which;      /* TOK_MARKUP_* whose texts are replaced */
    orig *tab;      /* sentinel index -> text */
    size_t n, cap;
    size_t n_user;  /* how many of them are user-defined tokens' texts */
    pbuf tmp;       /* a JSON string, decoded */
    bool oom;
} guard;

static const char sent_text[1] = {SENT};

static void guard_free(guard *g)
{
    free(g->tab);
    free(g->tmp.p);
}

/* The next text to replace in s[0..len): its offset (len when none),
 * the text and its token (-1 for the sentinel byte). */
static size_t next_text(const guard *g, const char *s, size_t len, orig *o, int32_t *id)
{
    size_t tl = 0;
    *id = -1;
    size_t at = tok_markup_find(g->v, s, len, g->which, id, &tl);
    const char *del = memchr(s, SENT, at);
    if (del) {
        *o = (orig){sent_text, 1};
        *id = -1;
        return (size_t)(del - s);
    }
    if (at < len)
        *o = (orig){tok_text(g->v, *id, &tl), tl};
    return at;
}

/* Copy s[0..len) to out with each text to replace turned into a
 * sentinel; with out NULL only tell whether there is one. Returns how
 * many were replaced. */
static size_t guard_text(guard *g, const char *s, size_t len, pbuf *out)
{
    size_t count = 0, i = 0;
    while (i < len) {
        orig o;
        int32_t id;
        size_t at = i + next_text(g, s + i, len - i, &o, &id);
        if (at == len)
            break;
        if (!out)
            return 1;
        if (g->n == g->cap) {
            size_t nc = g->cap ? 2 * g->cap : 16;
            orig *nt = realloc(g->tab, nc * sizeof *nt);
            if (!nt) {
                g->oom = true;
                return count;
            }
            g->tab = nt;
            g->cap = nc;
        }
        g->n_user += id >= 0 && !tok_is_control(g->v, id) && tok_is_user_defined(g->v, id);
        char sent[32];
        int sl = snprintf(sent, sizeof sent, "%c%zu%c", SENT, g->n, SENT);
        g->tab[g->n++] = o;
        pbuf_put(out, s + i, at - i);
        pbuf_put(out, sent, (size_t)sl);
        i = at + o.len;
        count++;
    }
    if (out)
        pbuf_put(out, s + i, len - i);
    return count;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static unsigned hex4(const char *p, const char *end)
{
    unsigned u = 0;
    for (int k = 0; k < 4; k++) {
        int h = p + k < end ? hexval(p[k]) : -1;
        if (h < 0)
            return 0x110000; /* not four hex digits */
        u = u * 16 + (unsigned)h;
    }
    return u;
}

/* The text of the JSON string body s[0..len) (between the quotes), into
 * b. A bad escape is kept as it is written (the render reports the JSON
 * error); a lone surrogate becomes U+FFFD. */
static void json_decode(const char *s, size_t len, pbuf *b)
{
    const char *p = s, *end = s + len;
    b->n = 0;
    pbuf_put(b, "", 0);
    while (p < end) {
        const char *q = memchr(p, '\\', (size_t)(end - p));
        if (!q) {
            pbuf_put(b, p, (size_t)(end - p));
            break;
        }
        pbuf_put(b, p, (size_t)(q - p));
        if (q + 1 >= end) {
            pbuf_put(b, q, 1);
            break;
        }
        const char *simple = strchr("\"\\/bfnrt", q[1]);
        if (simple && q[1]) {
            static const char to[] = "\"\\/\b\f\n\r\t";
            pbuf_put(b, &to[simple - "\"\\/bfnrt"], 1);
            p = q + 2;
            continue;
        }
        unsigned cp = q[1] == 'u' ? hex4(q + 2, end) : 0x110000;
        if (cp > 0xFFFF) {
            pbuf_put(b, q, 2);
            p = q + 2;
            continue;
        }
        p = q + 6;
        if (cp >= 0xD800 && cp < 0xDC00 && p + 1 < end && p[0] == '\\' && p[1] == 'u') {
            unsigned lo = hex4(p + 2, end);
            if (lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
        }
        char u[4];
        pbuf_put(b, u, utf8_put(cp >= 0xD800 && cp < 0xE000 ? 0xFFFD : cp, u));
    }
}

/* s[0..len) as the body of a JSON string. */
static void json_encode(const char *s, size_t len, pbuf *out)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        pbuf_put(out, s + run, i - run);
        char esc[8];
        int n = c == '"'    ? snprintf(esc, sizeof esc, "\\\"")
                : c == '\\' ? snprintf(esc, sizeof esc, "\\\\")
                : c == '\n' ? snprintf(esc, sizeof esc, "\\n")
                : c == '\t' ? snprintf(esc, sizeof esc, "\\t")
                : c == '\r' ? snprintf(esc, sizeof esc, "\\r")
                            : snprintf(esc, sizeof esc, "\\u%04x", c);
        pbuf_put(out, esc, (size_t)n);
        run = i + 1;
    }
    pbuf_put(out, s + run, len - run);
}

/* guard_text on every string of the JSON text (keys too): a string with a
 * text to replace is decoded, guarded and written back escaped; the rest
 * is copied as it is. */
static size_t guard_json(guard *g, const char *json, size_t len, pbuf *out)
{
    size_t count = 0, i = 0;
    while (i < len) {
        const char *q = memchr(json + i, '"', len - i);
        size_t qs = q ? (size_t)(q - json) : len;
        if (out)
            pbuf_put(out, json + i, qs - i);
        if (qs == len)
            break;
        size_t k = qs + 1;
        bool esc = false;
        while (k < len && json[k] != '"')
            k += json[k] == '\\' ? (esc = true, 2) : 1;
        if (k >= len) { /* unterminated: the render reports it */
            if (out)
                pbuf_put(out, json + qs, len - qs);
            break;
        }
        const char *body = json + qs + 1;
        size_t blen = k - qs - 1;
        if (esc) {
            json_decode(body, blen, &g->tmp);
            g->oom |= g->tmp.oom;
            body = g->tmp.p ? g->tmp.p : "";
            blen = g->tmp.p ? g->tmp.n : 0;
        }
        if (guard_text(g, body, blen, NULL) == 0) {
            if (out)
                pbuf_put(out, json + qs, k + 1 - qs);
        } else if (!out) {
            return 1;
        } else {
            pbuf s = {0};
            count += guard_text(g, body, blen, &s);
            pbuf_put(out, "\"", 1);
            json_encode(s.p ? s.p : "", s.n, out);
            pbuf_put(out, "\"", 1);
            g->oom |= s.oom;
            free(s.p);
        }
        i = k + 1;
    }
    return count;
}

/* ------------------------------------------------------------ renders */

typedef struct render_in {
    const chat_template *t;
    const tok_vocab *tok;
    const chat_msg *msgs;
    size_t n;
    bool add_generation_prompt;
    const char *bos, *eos;
    const chat_opts *opts;
} render_in;

static char *render(const render_in *in, const chat_msg *msgs, const chat_opts *opts, char *err,
                    size_t errlen)
{
    return chat_template_apply_opts(in->t, msgs, in->n, in->add_generation_prompt, in->bos,
                                    in->eos, opts, err, errlen);
}

/* Whether any string the template will see holds a text to replace. */
static bool needs_guard(guard *g, const render_in *in)
{
    for (size_t i = 0; i < in->n; i++) {
        const chat_msg *m = &in->msgs[i];
        if ((m->content && guard_text(g, m->content, strlen(m->content), NULL)) ||
            (m->extra_json && guard_json(g, m->extra_json, strlen(m->extra_json), NULL)))
            return true;
    }
    for (size_t i = 0; in->opts && i < in->opts->nvars; i++) {
        const chat_var *x = &in->opts->vars[i];
        if (x->s && ((x->type == CHAT_VAR_STR && guard_text(g, x->s, strlen(x->s), NULL)) ||
                     (x->type == CHAT_VAR_JSON && guard_json(g, x->s, strlen(x->s), NULL))))
            return true;
    }
    return false;
}

/* A guarded copy of s (NULL stays NULL): *owned gets what to free. */
static const char *guarded(guard *g, const char *s, bool json, char **owned)
{
    *owned = NULL;
    if (!s)
        return NULL;
    size_t len = strlen(s);
    if (!(json ? guard_json(g, s, len, NULL) : guard_text(g, s, len, NULL)))
        return s;
    pbuf b = {0};
    if (json)
        guard_json(g, s, len, &b);
    else
        guard_text(g, s, len, &b);
    g->oom |= b.oom;
    *owned = pbuf_take(&b);
    return *owned ? *owned : s;
}

/* The render with its sentinels put back; *plain gets the spans they
 * took (malloc'd). NULL when memory runs out. */
static char *restore(const guard *g, const char *r, tok_span **plain, size_t *n_plain)
{
    pbuf out = {0};
    tok_span *sp = NULL;
    size_t ns = 0, cap = 0;
    const char *p = r;
    for (;;) {
        const char *d = strchr(p, SENT);
        pbuf_put(&out, p, d ? (size_t)(d - p) : strlen(p));
        if (!d)
            break;
        size_t idx = 0, k = 1;
        while (d[k] >= '0' && d[k] <= '9' && k < 20)
            idx = idx * 10 + (size_t)(d[k++] - '0');
        if (k == 1 || d[k] != SENT || idx >= g->n) {
            /* a cut sentinel (a template that slices content): its bytes
             * stay, as text that no special token contains */
            pbuf_put(&out, d, 1);
            p = d + 1;
            continue;
        }
        if (ns == cap) {
            cap = cap ? 2 * cap : 16;
            tok_span *nsp = realloc(sp, cap * sizeof *nsp);
            if (!nsp) {
                out.oom = true;
                break;
            }
            sp = nsp;
        }
        sp[ns++] = (tok_span){out.n, g->tab[idx].len};
        pbuf_put(&out, g->tab[idx].p, g->tab[idx].len);
        p = d + k + 1;
    }
    char *text = pbuf_take(&out);
    if (!text) {
        free(sp);
        return NULL;
    }
    *plain = sp;
    *n_plain = ns;
    return text;
}

/* One guarded render (texts of the `which` kinds replaced), restored.
 * *n_user gets how many user-defined tokens' texts were replaced. NULL
 * with err on failure: *bad is set when the template failed (rather than
 * memory). */
static char *render_guarded(const render_in *in, int which, tok_span **plain, size_t *n_plain,
                            size_t *n_user, bool *bad, char *err, size_t errlen)
{
    guard g = {.v = in->tok, .which = which};
    size_t nv = in->opts ? in->opts->nvars : 0;
    chat_msg *msgs = calloc(in->n + 1, sizeof *msgs);
    chat_var *vars = calloc(nv + 1, sizeof *vars);
    char **owned = calloc(2 * in->n + nv + 1, sizeof *owned);
    char *text = NULL, *r = NULL;
    if (!msgs || !vars || !owned)
        goto oom;
    for (size_t i = 0; i < in->n; i++) {
        msgs[i] = in->msgs[i];
        msgs[i].content = guarded(&g, in->msgs[i].content, false, &owned[2 * i]);
        msgs[i].extra_json = guarded(&g, in->msgs[i].extra_json, true, &owned[2 * i + 1]);
    }
    chat_opts opts = in->opts ? *in->opts : (chat_opts){0};
    for (size_t i = 0; i < nv; i++) {
        vars[i] = in->opts->vars[i];
        if (vars[i].type == CHAT_VAR_STR || vars[i].type == CHAT_VAR_JSON)
            vars[i].s = guarded(&g, vars[i].s, vars[i].type == CHAT_VAR_JSON,
                                &owned[2 * in->n + i]);
    }
    opts.vars = nv ? vars : NULL;
    if (g.oom)
        goto oom;
    r = render(in, msgs, in->opts ? &opts : NULL, err, errlen);
    *bad = !r;
    if (!r)
        goto done;
    text = restore(&g, r, plain, n_plain);
    if (!text)
        goto oom;
    *n_user = g.n_user;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    for (size_t i = 0; owned && i < 2 * in->n + nv; i++)
        free(owned[i]);
    free(owned);
    free(msgs);
    free(vars);
    free(r);
    guard_free(&g);
    return text;
}

/* ------------------------------------------------------------ prompt */

/* The text of a special token, "" when the model has none. */
static void token_text(const tok_vocab *v, int32_t id, char *out, size_t cap)
{
    int n = id >= 0 ? tok_piece(v, id, true, out, cap - 1) : 0;
    out[n > 0 && (size_t)n < cap ? n : 0] = '\0';
}

/* The guarded text of a conversation whose strings hold texts of markup
 * tokens (see the top of the file); `plain` is the unguarded render. */
static char *guarded_prompt(const render_in *in, const char *plain_text, tok_span **plain,
                            size_t *n_plain, bool *bad, char *err, size_t errlen)
{
    size_t n_user = 0;
    char *text = render_guarded(in, TOK_MARKUP_ALL, plain, n_plain, &n_user, bad, err, errlen);
    if (!text || strcmp(text, plain_text) == 0 || n_user == 0)
        return text;
    /* the template looks for a user-defined token's text in content:
     * leave those to it, guard the control tokens' texts only */
    tok_span *p2;
    size_t n2;
    bool bad2 = false;
    char *t2 = render_guarded(in, TOK_MARKUP_CONTROL, &p2, &n2, &n_user, &bad2, err, errlen);
    if (!t2)
        return text;
    free(text);
    free(*plain);
    *plain = p2;
    *n_plain = n2;
    return t2;
}

int prompt_chat_ids(const chat_template *t, const tok_vocab *v, const chat_msg *msgs, size_t n,
                    bool add_generation_prompt, const chat_opts *opts, int32_t **ids,
                    int *bad_template, char *err, size_t errlen)
{
    char bos[64], eos[64];
    token_text(v, tok_bos(v), bos, sizeof bos);
    token_text(v, tok_eos(v), eos, sizeof eos);
    if (bad_template)
        *bad_template = 0;
    *ids = NULL;
    render_in in = {t, v, msgs, n, add_generation_prompt, bos, eos, opts};
    char *text = render(&in, msgs, opts, err, errlen);
    if (!text) {
        if (bad_template)
            *bad_template = 1;
        return -1;
    }
    guard g = {.v = v, .which = TOK_MARKUP_ALL};
    bool need = needs_guard(&g, &in);
    guard_free(&g);
    tok_span *plain = NULL;
    size_t n_plain = 0;
    if (need) {
        bool bad = false;
        char *gt = guarded_prompt(&in, text, &plain, &n_plain, &bad, err, errlen);
        free(text);
        if (!gt) {
            if (bad_template)
                *bad_template = bad;
            return -1;
        }
        text = gt;
    }
    /* BOS when the model wants one and the template did not write it (a
     * message that starts with BOS's text does not count) */
    size_t bl = strlen(bos);
    bool wrote_bos = bl && strncmp(text, bos, bl) == 0 && !(n_plain && plain[0].off == 0);
    bool add_bos = tok_add_bos_default(v) && !wrote_bos;
    int k = tok_encode_plain(v, text, strlen(text), add_bos, plain, n_plain, ids);
    free(text);
    free(plain);
    if (k < 0)
        snprintf(err, errlen, "the prompt could not be tokenized");
    return k;
}
