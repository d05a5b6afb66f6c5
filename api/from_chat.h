/* from_chat.h - an OpenAI Chat Completions answer (a whole
 * chat.completion, or its stream's chunks) rendered through another
 * dialect (dialect.h): how a Messages or Responses request forwarded to an
 * OpenAI-compatible upstream gets its answer in its own wire format.
 *
 * Streaming: each chunk's JSON goes to api_from_chat_chunk, in order; the
 * first one starts the dialect's stream, text deltas pass through as they
 * come, tool-call deltas are put together per call index and rendered once
 * the choice finishes (a call in the dialect's events is whole), and the
 * usage chunk (or [DONE] without one) ends it. Only choice 0 is rendered:
 * the dialects served this way answer with one choice.
 */
#ifndef HEARTH_API_FROM_CHAT_H
#define HEARTH_API_FROM_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "dialect.h"

#define API_FROM_CHAT_MAX_CALLS 64

typedef struct api_from_chat {
    const api_dialect *d;
    api_stream *st;
    bool started, finished, ended;
    char *text;                 /* choice 0's text so far */
    size_t len, cap;
    api_tool_call calls[API_FROM_CHAT_MAX_CALLS];
    size_t args_len[API_FROM_CHAT_MAX_CALLS], args_cap[API_FROM_CHAT_MAX_CALLS];
    size_t n_calls;
    char finish[32];            /* choice 0's finish_reason, "" until known */
    api_usage usage;
} api_from_chat;

void api_from_chat_init(api_from_chat *t, const api_dialect *d, api_stream *st);
void api_from_chat_free(api_from_chat *t);

/* One chunk (JSON text): the bytes to send are appended to *out (a
 * growable buffer, see engine/buf.h). 0, or -1 when the chunk is not a
 * chat chunk object or memory ran out. */
int api_from_chat_chunk(api_from_chat *t, const char *json, size_t n, char **out, size_t *len,
                        size_t *cap);
/* The stream ended ([DONE]): whatever is still due (finish, end). */
int api_from_chat_done(api_from_chat *t, char **out, size_t *len, size_t *cap);

/* A whole chat.completion as the dialect's whole answer, malloc'd; NULL
 * when it is not one (or out of memory). */
char *api_from_chat_full(const api_dialect *d, api_stream *st, const char *json, size_t n);

#endif
