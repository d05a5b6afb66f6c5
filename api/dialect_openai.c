/* dialect_openai.c - OpenAI Chat Completions and Completions behind the
 * api_dialect interface (dialect.h), on top of response.c's objects. */
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "error.h"

/* "data: <json>\n\n", taking json; NULL stays NULL. */
static char *framed(char *json)
{
    if (!json)
        return NULL;
    char *ev = api_sse_event(json);
    free(json);
    return ev;
}

static char *concat(char *a, const char *b)
{
    if (!a)
        return NULL;
    size_t la = strlen(a), lb = strlen(b);
    char *r = realloc(a, la + lb + 1);
    if (!r) {
        free(a);
        return NULL;
    }
    memcpy(r + la, b, lb + 1);
    return r;
}

static char *oa_full(api_stream *s, const api_choice *choices, size_t n, const api_usage *u)
{
    return api_response_json(s->q->kind, &s->h, choices, n, u);
}

static char *oa_start(api_stream *s, unsigned index, const api_usage *u)
{
    (void)u;
    if (s->q->kind != API_CHAT)
        return strdup(""); /* completions: the echo, if any, comes as text */
    api_choice c = {.index = index, .text = "", .len = 0, .role = true};
    return framed(api_chunk_json(API_CHAT, &s->h, &c, 1));
}

static char *oa_delta(api_stream *s, const api_choice *delta)
{
    return framed(api_chunk_json(s->q->kind, &s->h, delta, 1));
}

static char *oa_finish(api_stream *s, const api_choice *choice)
{
    api_choice c = {.index = choice->index, .text = s->q->kind == API_CHAT ? NULL : "",
                    .len = 0, .finish_reason = choice->finish_reason};
    return framed(api_chunk_json(s->q->kind, &s->h, &c, 1));
}

static char *oa_tool(api_stream *s, unsigned index, unsigned k, const api_tool_call *call)
{
    char *a = framed(api_tool_chunk_json(&s->h, index, k, call, true));
    char *b = framed(api_tool_chunk_json(&s->h, index, k, call, false));
    char *ab = b ? concat(a, b) : NULL;
    if (!ab && a && !b)
        free(a);
    free(b);
    return ab;
}

static char *oa_end(api_stream *s, const api_choice *choices, size_t n, const api_usage *u)
{
    (void)choices;
    (void)n;
    if (!s->q->include_usage)
        return strdup(API_SSE_DONE);
    char *ev = framed(api_usage_chunk_json(s->q->kind, &s->h, u));
    return concat(ev, API_SSE_DONE);
}

static char *oa_stream_error(api_stream *s, unsigned status, const char *type,
                             const char *message)
{
    (void)s;
    const char *code = type && strcmp(type, "timeout_error") == 0 ? "timeout" : NULL;
    return concat(framed(api_error_json(status, type, message, NULL, code)), API_SSE_DONE);
}

static char *oa_error(unsigned status, const char *type, const char *message, const char *param,
                      const char *code)
{
    return api_error_json(status, type, message, param, code);
}

const api_dialect api_dialect_openai_chat = {
    .full = oa_full, .start = oa_start, .delta = oa_delta, .finish = oa_finish,
    .end = oa_end, .tool = oa_tool, .stream_error = oa_stream_error, .error = oa_error, .ping = API_SSE_PING,
};

/* The same functions: the kind in api_stream.q tells them apart. */
const api_dialect api_dialect_openai_completion = {
    .full = oa_full, .start = oa_start, .delta = oa_delta, .finish = oa_finish,
    .end = oa_end, .stream_error = oa_stream_error, .error = oa_error, .ping = API_SSE_PING,
};

const api_dialect *api_dialect_of(api_kind kind)
{
    switch (kind) {
    case API_CHAT:
        return &api_dialect_openai_chat;
    case API_COMPLETION:
        return &api_dialect_openai_completion;
    case API_MESSAGES:
        return &api_dialect_messages;
    case API_RESPONSES:
        return &api_dialect_responses;
    }
    return &api_dialect_openai_chat;
}
