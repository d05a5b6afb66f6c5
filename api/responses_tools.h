/* responses_tools.h - function tools in a Responses body
 * (responses_tools.c), for responses_parse.c. */
#ifndef HEARTH_API_RESPONSES_TOOLS_H
#define HEARTH_API_RESPONSES_TOOLS_H

#include <jansson.h>
#include <stddef.h>

#include "request.h"

/* tools, tool_choice, parallel_tool_calls and text.format into r. 0, or
 * -1 with err. */
int api_responses_tools(json_t *root, api_request *r, api_err *err);
/* Input item i of type function_call (joins the assistant message before
 * it, or starts one) or function_call_output (a tool message): appended to
 * r->messages, which has room for one more. 0, or -1 with err. */
int api_responses_tool_item(json_t *item, const char *type, size_t i, api_request *r,
                            api_err *err);

#endif
