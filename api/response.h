/* response.h - render completion results in the OpenAI wire format:
 * the full response objects, the streamed chunks, the usage chunk and the
 * Server-Sent Events framing around them.
 *
 * The structs only point at the caller's data (token text, log-probability
 * arrays): the daemon fills them from its generation results without
 * copying. Every text is taken as (pointer, length) and may hold any bytes:
 * invalid UTF-8 is rendered as U+FFFD, so the output is always valid JSON.
 * Non-finite log-probabilities (-inf for a banned token) are rendered as
 * -9999.0, as OpenAI does. Every function returns a malloc'd NUL-terminated
 * string, or NULL only when out of memory.
 */
#ifndef HEARTH_API_RESPONSE_H
#define HEARTH_API_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"

/* One alternative token at a position. */
typedef struct api_top_logprob {
    const char *token;   /* the token's bytes (possibly a partial UTF-8
                            character) */
    size_t len;
    float logprob;
} api_top_logprob;

/* One generated token with its log-probability and alternatives. */
typedef struct api_logprob {
    const char *token;
    size_t len;
    float logprob;
    const api_top_logprob *top; /* most likely first; may be NULL if n_top 0 */
    size_t n_top;
} api_logprob;

/* A tool call the model made (api/toolcall.h finds them). */
typedef struct api_tool_call {
    char *id;
    char *name;
    char *arguments; /* compact JSON text of an object */
} api_tool_call;

/* One choice of a response, or the delta of one choice in a chunk. */
typedef struct api_choice {
    unsigned index;
    const char *text;          /* content (chat) / text (completions); in a
                                  chunk: the new text. NULL: no text (a chat
                                  chunk then has no "content" in its delta) */
    size_t len;
    const char *finish_reason; /* "stop", "length", ...; NULL: not finished
                                  (JSON null) */
    bool logprobs;             /* render a logprobs object (else null) */
    const api_logprob *lp;     /* the tokens of `text` */
    size_t n_lp;
    size_t text_offset;        /* completions: offset of lp[0] in the whole
                                  choice text (for streamed chunks: the
                                  bytes sent before this chunk) */
    bool role;                 /* chat chunks: put "role":"assistant" in the
                                  delta (the first chunk) */
    const api_tool_call *calls; /* the calls of the whole choice (full,
                                  finish, end); finish_reason is then
                                  "tool_calls" */
    size_t n_calls;
} api_choice;

typedef struct api_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t cached_tokens;     /* prompt tokens reused from the KV cache */
} api_usage;

/* What every object of one response shares. */
typedef struct api_head {
    const char *id;                 /* see api_format_id */
    const char *model;
    int64_t created;                /* Unix seconds */
    const char *system_fingerprint; /* NULL: JSON null */
} api_head;

#define API_ID_MAX 48

/* "chatcmpl-<16 hex digits>" (API_CHAT), "cmpl-..." (API_COMPLETION),
 * "msg_..." (API_MESSAGES) or "resp_..." (API_RESPONSES) from a
 * number the caller makes unique (a random value, a counter). buf holds at
 * least API_ID_MAX bytes. */
void api_format_id(char *buf, api_kind kind, uint64_t unique);

/* The whole response: "chat.completion" or "text_completion", with usage
 * (usage NULL: omitted). */
char *api_response_json(api_kind kind, const api_head *h,
                        const api_choice *choices, size_t n_choices,
                        const api_usage *usage);

/* One streamed chunk: "chat.completion.chunk" (choices[].delta) or
 * "text_completion" (choices[].text). For chat the stream is: a first chunk
 * with role=true and text "" ({"role":"assistant","content":""}), chunks
 * with text, and a last one with text NULL and finish_reason set (delta
 * {}). */
char *api_chunk_json(api_kind kind, const api_head *h,
                     const api_choice *choices, size_t n_choices);

/* A chat chunk carrying tool call k of choice `index`: head true, its id,
 * type, name and empty arguments (the call's first chunk, as OpenAI
 * streams it); false, its arguments. */
char *api_tool_chunk_json(const api_head *h, unsigned index, unsigned k,
                          const api_tool_call *call, bool head);

/* The chunk sent last when stream_options.include_usage is set:
 * choices [] and usage. */
char *api_usage_chunk_json(api_kind kind, const api_head *h,
                           const api_usage *usage);

/* "data: <json>\n\n". */
char *api_sse_event(const char *json);

#define API_SSE_DONE "data: [DONE]\n\n"
#define API_SSE_PING ": ping\n\n" /* an SSE comment: keeps proxies awake */

#endif
