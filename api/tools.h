/* tools.h - the request side of tool calling, shared by the three chat
 * dialects (Chat Completions, Anthropic Messages, Responses): the tools a
 * request declares, its tool_choice, and the tool calls and results in a
 * conversation's history, each dialect's JSON shape read into one form.
 *
 * The chat template gets the tools as Jinja's `tools` variable in the
 * OpenAI shape ([{"type":"function","function":{name, description,
 * parameters}}]), which the real templates expect, and the history's calls
 * as the assistant message's `tool_calls` with `arguments` as an object
 * (what templates that `tojson` them want). The output side (recognising
 * calls in generated text) is toolcall.h.
 */
#ifndef HEARTH_API_TOOLS_H
#define HEARTH_API_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "request.h"

#define API_MAX_TOOLS 128       /* tools per request */
#define API_TOOL_NAME_MAX 64    /* bytes in a function name (OpenAI's limit) */

/* Check a function name: 1..64 of [A-Za-z0-9_.-] (OpenAI's and
 * Anthropic's rule). 0, or -1 with err naming param. */
int api_tool_name_check(const char *name, const char *param, api_err *err);

/* Append a tool to r: its name, description (may be NULL) and parameters
 * (a JSON Schema object; NULL or null: no parameters). 0, or -1 with err. */
int api_tools_add(api_request *r, const char *name, const char *description,
                  json_t *parameters, const char *param, api_err *err);

/* The index of the tool called name in r, or -1. */
int api_tools_find(const api_request *r, const char *name);

/* After parsing a dialect's tool_choice: a named choice must name a
 * declared tool, and required/named need tools. 0, or -1 with err. */
int api_tools_check_choice(const api_request *r, const char *param, api_err *err);

/* The template's `tools` variable (see above), compact JSON; malloc'd,
 * NULL when out of memory. */
char *api_tools_json(const api_request *r);

/* A call in the history, in the template's shape:
 * {"id":..,"type":"function","function":{"name":..,"arguments":ARGS}}
 * where ARGS is the arguments JSON text parsed (an object as the model
 * wrote it) or, when it does not parse as an object, the text as a string.
 * args_text NULL: {}. NULL when out of memory. */
json_t *api_tool_call_json(const char *id, const char *name, const char *args_text);

/* Set m->tool_calls from a JSON array of such calls (taken). 0, or -1 out
 * of memory. */
int api_message_set_calls(api_message *m, json_t *calls);

/* The template's extra members of a message ({"tool_calls": [...]} for an
 * assistant's calls, {"tool_call_id": ..} for a tool result), compact
 * JSON, malloc'd; NULL when the message has none (or out of memory: *oom
 * set). */
char *api_message_extra_json(const api_message *m, bool *oom);

#endif
