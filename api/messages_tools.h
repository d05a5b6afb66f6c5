/* messages_tools.h - tool use in an Anthropic Messages body
 * (messages_tools.c), for messages_parse.c. */
#ifndef HEARTH_API_MESSAGES_TOOLS_H
#define HEARTH_API_MESSAGES_TOOLS_H

#include <jansson.h>
#include <stddef.h>

#include "request.h"

/* tools, tool_choice and output_format into r. 0, or -1 with err. */
int api_messages_tools(json_t *root, api_request *r, api_err *err);
/* The tool_result blocks in a content array. */
size_t api_messages_n_results(json_t *content);
/* Each tool_result block of content becomes a tool message appended to
 * r->messages (room for them is the caller's). 0, or -1 with err. */
int api_messages_results(json_t *content, const char *path, api_request *r, api_err *err);
/* The tool_use blocks of an assistant's content into m->tool_calls. */
int api_messages_calls(json_t *content, const char *path, api_message *m, api_err *err);

#endif
