/* gen_tools.c - see gen_tools.h. */
#include "gen_tools.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "gen_internal.h"

int gen_tools_new(const gen_req *gr, int n, gen_tools **out)
{
    *out = NULL;
    const gen_prep *p = &gr->prep;
    if (p->tool_format == API_TOOLS_NONE)
        return 0;
    gen_tools *t = calloc((size_t)n, sizeof *t);
    if (!t)
        return -1;
    const api_request *q = &p->req;
    const char *name = q->tool_choice == API_TOOL_NAMED ? q->tool_choice_name
                       : q->n_tools == 1                ? q->tools[0].name
                                                        : NULL;
    uint64_t seed = 0;
    for (const char *c = gr->id; *c; c++)
        seed = seed * 131 + (unsigned char)*c;
    for (int i = 0; i < n; i++) {
        api_toolparse_init(&t[i].tp, p->tool_format, p->tool_forced, name,
                           seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)));
        t[i].tp.req = q;
        t[i].single = !q->parallel_tool_calls;
    }
    *out = t;
    return 0;
}

void gen_tools_free(gen_tools *t, int n)
{
    for (int i = 0; t && i < n; i++) {
        api_toolparse_free(&t[i].tp);
        free(t[i].text);
    }
    free(t);
}

static int keep_text(gen_tools *t, const char *s, size_t len)
{
    return buf_append(&t->text, &t->len, &t->cap, s, len, 256);
}

typedef struct emit_ctx {
    gen_req *gr;
    gen_tools *t;
    const api_dialect *d;
    api_stream *st;
    unsigned index;
} emit_ctx;

static int on_emit(void *arg, api_tp_kind kind, const char *s, size_t len, unsigned call)
{
    emit_ctx *e = arg;
    if (kind == API_TP_TEXT) {
        if (keep_text(e->t, s, len) < 0)
            return -1;
        if (!e->gr)
            return 0;
        api_choice c = {.index = e->index, .text = s, .len = len};
        return gen_pend_take(e->gr, e->d->delta(e->st, &c));
    }
    if (!e->gr || !e->d->tool || (e->t->single && call > 0))
        return 0;
    return gen_pend_take(e->gr, e->d->tool(e->st, e->index, call, &e->t->tp.calls[call]));
}

int gen_tools_stream(gen_req *gr, gen_tools *t, const api_dialect *d, api_stream *st,
                     unsigned index, const char *s, size_t len, bool end)
{
    emit_ctx e = {gr, t, d, st, index};
    if (len && api_toolparse_feed(&t->tp, s, len, on_emit, &e) < 0)
        return -1;
    return end ? api_toolparse_end(&t->tp, on_emit, &e) : 0;
}

int gen_tools_whole(gen_tools *t, const char *s, size_t len)
{
    emit_ctx e = {NULL, t, NULL, NULL, 0};
    if (api_toolparse_feed(&t->tp, s, len, on_emit, &e) < 0)
        return -1;
    return api_toolparse_end(&t->tp, on_emit, &e);
}

void gen_tools_choice(const gen_tools *t, api_choice *c)
{
    c->text = t->text ? t->text : "";
    c->len = t->len;
    c->calls = t->tp.calls;
    c->n_calls = t->single && t->tp.n_calls > 1 ? 1 : t->tp.n_calls;
    if (c->n_calls && c->finish_reason && strcmp(c->finish_reason, "stop") == 0)
        c->finish_reason = "tool_calls";
}
