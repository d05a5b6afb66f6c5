/* messages.h - the Anthropic Messages API: POST /v1/messages and
 * POST /v1/messages/count_tokens.
 *
 * Parsing turns Anthropic's body into the api_request every dialect
 * shares (kind API_MESSAGES): `system` becomes one leading system message,
 * each message's text blocks are concatenated (no separator) into its
 * content, `stop_sequences` fill stop[] with the chat parser's limits
 * (API_MAX_STOP strings of at most API_MAX_STOP_LEN bytes), and the
 * sampling fields the client gave override sampler_params_default. Like
 * Anthropic, `model` and (for /v1/messages) `max_tokens` are required.
 * Features this server cannot honour are refused with a 400 naming the
 * field, never dropped: tools and tool blocks, images and documents,
 * extended thinking, structured output. JSON null counts as "not given"
 * for every optional field; fields this server does not know are ignored.
 * An error about a field has a message that starts with the field's path
 * in Anthropic's notation ("messages.1.content.0.type: ..."), since
 * Anthropic's error object has no `param`; api_err.param holds the same
 * path, code an API_CODE_* value (request.h).
 *
 * A last message from the assistant is Anthropic's prefill: it is kept as
 * the last message and the model continues it (api_messages_continues).
 *
 * Rendering is api_dialect_messages (dialect.h): the "message" object, the
 * named SSE events (message_start, content_block_start, ping,
 * content_block_delta, content_block_stop, message_delta, message_stop,
 * error) and the {"type":"error","error":{...}} body. Every text may hold
 * any bytes; invalid UTF-8 is rendered as U+FFFD. Usage follows
 * Anthropic's arithmetic: input_tokens counts the prompt tokens that were
 * not read from the cache, cache_read_input_tokens those that were.
 * Choices other than index 0 render nothing (this API has one). Docs:
 * docs/api/messages.md.
 */
#ifndef HEARTH_API_MESSAGES_H
#define HEARTH_API_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>

#include "dialect.h"
#include "request.h"

/* POST /v1/messages. Returns 0 and fills *out (free it with
 * api_request_free), or -1 and fills *err (out then owns nothing). body
 * need not be NUL-terminated. */
int api_parse_messages(const char *body, size_t len, api_request *out,
                       api_err *err);

/* POST /v1/messages/count_tokens: the same body with max_tokens optional
 * (checked when given; out->max_tokens is -1 when absent). */
int api_parse_count_tokens(const char *body, size_t len, api_request *out,
                           api_err *err);

/* True when the request ends with an assistant message (a prefill): the
 * prompt must then end inside that message, without the template's
 * generation prompt, and the response holds only the continuation. */
bool api_messages_continues(const api_request *q);

/* Anthropic's error type for an HTTP status: 400 invalid_request_error,
 * 401 authentication_error, 403 permission_error, 404 not_found_error,
 * 413 request_too_large, 429 rate_limit_error, 503 and 529
 * overloaded_error, other 5xx api_error, other 4xx invalid_request_error. */
const char *api_messages_error_type(unsigned status);

/* {"type":"error","error":{"type":...,"message":...}}; type NULL: from the
 * status (OpenAI's "server_error" and "service_unavailable" are turned
 * into api_error and overloaded_error). Malloc'd, NULL when out of
 * memory. */
char *api_messages_error_json(unsigned status, const char *type,
                              const char *message);

/* A parser error in that shape (status 0 counts as 400). */
char *api_messages_err_json(const api_err *err);

/* Anthropic's stop_reason for an OpenAI finish_reason: "length" ->
 * "max_tokens"; "stop" -> "stop_sequence" when stop_matched is set, else
 * "end_turn"; anything else -> "end_turn"; NULL -> NULL. */
const char *api_messages_stop_reason(const char *finish_reason,
                                     const char *stop_matched);

/* The count_tokens response: {"input_tokens":n}. */
char *api_messages_count_json(long long n);

#endif
