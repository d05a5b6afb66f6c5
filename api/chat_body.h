/* chat_body.h - a parsed request of any chat dialect (Messages, Responses,
 * Chat Completions) written back as an OpenAI Chat Completions body, the
 * one format the router's upstreams speak (router/forward.h then renames
 * the model, asks for usage and redacts). */
#ifndef HEARTH_API_CHAT_BODY_H
#define HEARTH_API_CHAT_BODY_H

#include "request.h"

/* The body, compact JSON, malloc'd; NULL when out of memory. Carried:
 * messages (tool calls with their arguments as JSON text, tool results),
 * max_tokens, temperature, top_p, stop, stream, tools, tool_choice,
 * parallel_tool_calls (when false), response_format (json_object or
 * json_schema). Fields OpenAI does not define (top_k) are left out. */
char *api_chat_body(const api_request *q);

#endif
