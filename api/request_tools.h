/* request_tools.h - the tool-calling fields of a Chat Completions body
 * (request_tools.c), read into the api_request of request.h. */
#ifndef HEARTH_API_REQUEST_TOOLS_H
#define HEARTH_API_REQUEST_TOOLS_H

#include <jansson.h>

#include "request.h"

/* tools, tool_choice, parallel_tool_calls. 0, or -1 with err. */
int api_chat_tools_parse(json_t *root, api_request *r, api_err *err);

/* Message i's tool_calls (assistant) and tool_call_id (tool). 0, or -1. */
int api_chat_message_tools(json_t *msg, size_t i, api_message *m, api_err *err);

#endif
