/* gen_translate.c - a forwarded Messages or Responses request: the
 * upstream answers in the OpenAI chat format (router/relay.h restores it
 * and queues whole SSE events), and api/from_chat.h renders that in the
 * client's dialect. Loop thread only. */
#include "gen_translate.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"

bool gen_translating(const gen_req *gr)
{
    return gr->prep.kind == API_MESSAGES || gr->prep.kind == API_RESPONSES;
}

/* One relayed event's data line(s): "[DONE]", an error object or a chunk. */
static int one_event(gen_req *gr, const char *ev, size_t n)
{
    api_from_chat *fc = gr->fc;
    const api_dialect *d = api_dialect_of(gr->prep.kind);
    for (const char *p = ev; p < ev + n;) {
        const char *eol = memchr(p, '\n', (size_t)(ev + n - p));
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(ev + n - p);
        if (ll && p[ll - 1] == '\r')
            ll--;
        if (ll >= 5 && strncmp(p, "data:", 5) == 0) {
            const char *data = p + 5 + (p[5] == ' ');
            size_t dl = ll - (size_t)(data - p);
            if (dl == 6 && strncmp(data, "[DONE]", 6) == 0)
                return api_from_chat_done(fc, &gr->pend, &gr->pend_len, &gr->pend_cap);
            json_t *o = json_loadb(data, dl, 0, NULL);
            json_t *err = json_object_get(o, "error");
            int rc;
            if (json_is_object(err)) {
                const char *msg = json_string_value(json_object_get(err, "message"));
                char *e = d->stream_error(&gr->st, 502, "server_error",
                                          msg ? msg : "the upstream failed");
                rc = gen_pend_take(gr, e);
                fc->ended = true;
            } else {
                rc = api_from_chat_chunk(fc, data, dl, &gr->pend, &gr->pend_len, &gr->pend_cap);
            }
            json_decref(o);
            return rc;
        }
        p = eol ? eol + 1 : ev + n;
    }
    return 0; /* a comment or an empty event */
}

int gen_translate_pull(gen_req *gr)
{
    if (!gr->fc) {
        gr->fc = calloc(1, sizeof *gr->fc);
        if (!gr->fc)
            return -1;
        gr->st.q = &gr->prep.req;
        gr->st.h = (api_head){.id = gr->id, .model = gr->up->conf->model, .created = gr->created};
        api_from_chat_init(gr->fc, api_dialect_of(gr->prep.kind), &gr->st);
    }
    size_t n = 0;
    const char *p = relay_pending(gr->rl, &n);
    size_t used = 0;
    while (used < n && !gr->fc->ended) {
        /* events end with a blank line */
        const char *end = NULL;
        for (const char *q = p + used; q + 1 < p + n && !end; q++)
            if (q[0] == '\n' && (q[1] == '\n' || (q[1] == '\r' && q + 2 < p + n && q[2] == '\n')))
                end = q + (q[1] == '\n' ? 2 : 3);
        if (!end)
            break;
        if (one_event(gr, p + used, (size_t)(end - (p + used))) < 0)
            return -1;
        used = (size_t)(end - p);
    }
    relay_consume(gr->rl, gr->fc->ended ? n : used);
    return 0;
}

int gen_translate_full(gen_req *gr, const char *json, size_t len, unsigned status)
{
    const api_dialect *d = api_dialect_of(gr->prep.kind);
    gr->st.q = &gr->prep.req;
    gr->st.h = (api_head){.id = gr->id, .model = gr->up->conf->model, .created = gr->created};
    char *out = NULL;
    if (status >= 200 && status < 300) {
        out = api_from_chat_full(d, &gr->st, json, len);
        if (!out)
            return gen_error(gr, 502, "server_error",
                             "The upstream's answer is not a chat completion", NULL,
                             "upstream_error");
    } else { /* the upstream's error, in the client's dialect */
        json_t *o = json_loadb(json, len, 0, NULL);
        json_t *e = json_object_get(o, "error");
        const char *msg = json_string_value(json_object_get(e, "message"));
        char fallback[96];
        snprintf(fallback, sizeof fallback, "The upstream answered %u", status);
        out = d->error(status, NULL, msg ? msg : fallback,
                       json_string_value(json_object_get(e, "param")),
                       json_string_value(json_object_get(e, "code")));
        json_decref(o);
    }
    int rc = out ? http_respond_json(gr->r, status, out) : -1;
    free(out);
    return rc;
}

void gen_translate_free(gen_req *gr)
{
    if (gr->fc)
        api_from_chat_free(gr->fc);
    free(gr->fc);
    gr->fc = NULL;
}
