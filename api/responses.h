/* responses.h - the OpenAI Responses API (POST /v1/responses), stateless.
 *
 * api_parse_responses turns a Responses request into the api_request the
 * chat endpoint uses (kind API_RESPONSES): `instructions` becomes a leading
 * system message, `input` (a string, or an array of message items whose
 * content is a string or input_text / output_text parts) the messages that
 * follow, with "developer" read as "system". `max_output_tokens`,
 * `temperature`, `top_p`, `stream` and `user` fill the fields of the same
 * meaning. Type and range errors are 400s shaped like the chat parser's
 * (api_err: message naming the field, param, code).
 *
 * The server keeps nothing between requests, so what needs stored state
 * (previous_response_id, conversation, item_reference items, background
 * mode, stored prompts) is refused with a 400 that says to send the whole
 * conversation; `store` is accepted and nothing is ever stored. What this
 * dialect cannot do yet (tools, function_call items, structured output,
 * reasoning, image/file/audio inputs, logprobs) is refused with a 400
 * naming the field, never silently ignored.
 *
 * api_dialect_responses (dialect.h) renders the Response object and the
 * stream's semantic events (response.created ... response.completed, each
 * with its sequence_number); responses.c documents the event order and
 * docs/api/responses.md the whole wire format.
 */
#ifndef HEARTH_API_RESPONSES_H
#define HEARTH_API_RESPONSES_H

#include <stddef.h>

#include "request.h"

/* Parse a body. Returns 0 and fills *out (kind API_RESPONSES, n 1; free it
 * with api_request_free), or -1 and fills *err (out then owns nothing).
 * body need not be NUL-terminated; len may be 0. */
int api_parse_responses(const char *body, size_t len, api_request *out,
                        api_err *err);

#endif
