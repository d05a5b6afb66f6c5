/* dialect.h - the wire formats of the generation endpoints behind one
 * interface: OpenAI Chat Completions and Completions (dialect_openai.c),
 * Anthropic Messages (messages.c) and OpenAI Responses (responses.c).
 *
 * Every dialect's parser turns its body into the same api_request (kind
 * tells the dialect), and the daemon runs it the same way; what it
 * generated comes back through these functions, which render the bytes
 * the client gets. The daemon never builds a dialect's JSON itself.
 *
 * A stream is rendered in this order, each call returning the bytes to
 * send (complete SSE events, "event:" lines included where the dialect
 * uses them; "" when there is nothing), malloc'd, NULL only when out of
 * memory:
 *
 *   start(index)      once per choice, before its text
 *   delta(choice)     new text of one choice (choice->text, len, lp...)
 *   tool(index, k)    a tool call the choice made, among its deltas
 *   finish(choice)    one choice ended: finish_reason set, text = its
 *                     whole text
 *   end(choices)      every choice ended: the whole texts, the usage
 *   stream_error()    instead of what is left, when generation failed
 *
 * finish_reason is the OpenAI name ("stop", "length", "tool_calls"); a
 * dialect maps it to its own (Anthropic: end_turn / max_tokens /
 * stop_sequence / tool_use).
 * api_stream carries what one stream's events share.
 */
#ifndef HEARTH_API_DIALECT_H
#define HEARTH_API_DIALECT_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"
#include "response.h"

typedef struct api_stream {
    const api_request *q;
    api_head h;
    unsigned seq;             /* events rendered so far (Responses'
                                 sequence_number); the dialect counts */
    const char *stop_matched; /* the stop string that ended choice 0, or
                                 NULL (Anthropic's stop_sequence) */
    unsigned n_blocks;        /* content blocks opened (Anthropic) */
    bool text_closed;         /* no text block is open (Anthropic: one was
                                 closed before a call; text after the call
                                 opens another) */
    unsigned text_at;         /* the open text block's index */
} api_stream;

typedef struct api_dialect {
    /* The whole response (not streamed). */
    char *(*full)(api_stream *s, const api_choice *choices, size_t n, const api_usage *u);
    char *(*start)(api_stream *s, unsigned index, const api_usage *u);
    char *(*delta)(api_stream *s, const api_choice *delta);
    char *(*finish)(api_stream *s, const api_choice *choice);
    char *(*end)(api_stream *s, const api_choice *choices, size_t n, const api_usage *u);
    /* A complete tool call of choice `index`, the k-th of that choice,
     * between its deltas (chat dialects; NULL for completions). */
    char *(*tool)(api_stream *s, unsigned index, unsigned k, const api_tool_call *call);
    /* A failure after the stream started: the dialect's error event(s),
     * ending the stream. */
    char *(*stream_error)(api_stream *s, unsigned status, const char *type,
                          const char *message);
    /* An error response body in the dialect's shape. type NULL: derived
     * from the status. */
    char *(*error)(unsigned status, const char *type, const char *message, const char *param,
                   const char *code);
    const char *ping;         /* keep-alive bytes while a stream waits */
} api_dialect;

/* The dialect of a request kind (never NULL for a valid kind). */
const api_dialect *api_dialect_of(api_kind kind);

/* The dialects (defined in their files). */
extern const api_dialect api_dialect_openai_chat;
extern const api_dialect api_dialect_openai_completion;
extern const api_dialect api_dialect_messages;
extern const api_dialect api_dialect_responses;

#endif
