/* request_tools.c - tool calling in a Chat Completions body: `tools`,
 * `tool_choice`, `parallel_tool_calls`, and the calls and results in the
 * messages (see tools.h for the common form, request.h for the parser). */
#include "json_read.h"
#include "request_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools.h"


int api_chat_tools_parse(json_t *root, api_request *r, api_err *err)
{
    r->parallel_tool_calls = true;
    json_t *fns = json_object_get(root, "functions");
    if (json_read_present(fns) && !(json_is_array(fns) && json_array_size(fns) == 0))
        return api_fail(err, 400, "functions", API_CODE_UNSUPPORTED_PARAM,
                        "'functions' is deprecated and not supported; use 'tools'");
    json_t *fc = json_object_get(root, "function_call");
    if (json_read_present(fc))
        return api_fail(err, 400, "function_call", API_CODE_UNSUPPORTED_PARAM,
                        "'function_call' is deprecated and not supported; use 'tool_choice'");
    json_t *tools = json_object_get(root, "tools");
    if (json_read_present(tools) && !json_is_array(tools))
        return api_fail(err, 400, "tools", API_CODE_INVALID_TYPE,
                        "'tools' must be an array of tool objects");
    for (size_t i = 0; json_read_present(tools) && i < json_array_size(tools); i++) {
        json_t *t = json_array_get(tools, i);
        char param[64];
        snprintf(param, sizeof param, "tools[%zu]", i);
        json_t *type = json_is_object(t) ? json_object_get(t, "type") : NULL;
        if (!json_is_string(type) || strcmp(json_string_value(type), "function"))
            return api_fail(err, 400, param, API_CODE_UNSUPPORTED_VALUE,
                            "'%s' must be {\"type\": \"function\", \"function\": {...}}: only "
                            "function tools are supported", param);
        json_t *fn = json_object_get(t, "function");
        snprintf(param, sizeof param, "tools[%zu].function", i);
        if (!json_is_object(fn))
            return api_fail(err, 400, param, API_CODE_MISSING, "'%s' must be an object",
                            param);
        json_t *name = json_object_get(fn, "name");
        json_t *desc = json_object_get(fn, "description");
        if (json_read_present(desc) && !json_is_string(desc))
            return api_fail(err, 400, param, API_CODE_INVALID_TYPE,
                            "'%s.description' must be a string", param);
        if (api_tools_add(r, json_is_string(name) ? json_string_value(name) : NULL,
                          json_is_string(desc) ? json_string_value(desc) : NULL,
                          json_object_get(fn, "parameters"), param, err) < 0)
            return -1;
    }

    json_t *ch = json_object_get(root, "tool_choice");
    if (json_is_string(ch)) {
        const char *s = json_string_value(ch);
        if (!strcmp(s, "auto"))
            r->tool_choice = API_TOOL_AUTO;
        else if (!strcmp(s, "none"))
            r->tool_choice = API_TOOL_NONE;
        else if (!strcmp(s, "required"))
            r->tool_choice = API_TOOL_REQUIRED;
        else
            return api_fail(err, 400, "tool_choice", API_CODE_INVALID_VALUE,
                            "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                            "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    } else if (json_is_object(ch)) {
        json_t *fn = json_object_get(ch, "function");
        json_t *name = json_is_object(fn) ? json_object_get(fn, "name") : NULL;
        if (!json_is_string(name))
            return api_fail(err, 400, "tool_choice", API_CODE_INVALID_VALUE,
                            "'tool_choice' must name a function: {\"type\": \"function\", "
                            "\"function\": {\"name\": ...}}");
        r->tool_choice = API_TOOL_NAMED;
        r->tool_choice_name = strdup(json_string_value(name));
        if (!r->tool_choice_name)
            return api_fail(err, 500, NULL, NULL, "out of memory while reading the request");
    } else if (json_read_present(ch)) {
        return api_fail(err, 400, "tool_choice", API_CODE_INVALID_TYPE,
                        "'tool_choice' must be a string or an object");
    }
    if (api_tools_check_choice(r, "tool_choice", err) < 0)
        return -1;

    json_t *par = json_object_get(root, "parallel_tool_calls");
    if (json_read_present(par) && !json_is_boolean(par))
        return api_fail(err, 400, "parallel_tool_calls", API_CODE_INVALID_TYPE,
                        "'parallel_tool_calls' must be a boolean");
    if (json_read_present(par))
        r->parallel_tool_calls = json_is_true(par);
    return 0;
}

int api_chat_message_tools(json_t *msg, size_t i, api_message *m, api_err *err)
{
    char param[96];
    if (json_read_present(json_object_get(msg, "function_call"))) {
        snprintf(param, sizeof param, "messages[%zu].function_call", i);
        return api_fail(err, 400, param, API_CODE_UNSUPPORTED_PARAM,
                        "'%s' is deprecated and not supported; use 'tool_calls'", param);
    }
    json_t *calls = json_object_get(msg, "tool_calls");
    if (json_read_present(calls) && m->role != API_ROLE_ASSISTANT) {
        snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
        return api_fail(err, 400, param, API_CODE_INVALID_VALUE,
                        "'%s' is allowed on assistant messages only", param);
    }
    if (json_read_present(calls) && !json_is_array(calls)) {
        snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
        return api_fail(err, 400, param, API_CODE_INVALID_TYPE, "'%s' must be an array",
                        param);
    }
    if (json_read_present(calls) && json_array_size(calls) > 0) {
        json_t *out = json_array();
        if (!out)
            return api_fail(err, 500, NULL, NULL, "out of memory while reading the request");
        for (size_t k = 0; k < json_array_size(calls); k++) {
            json_t *c = json_array_get(calls, k);
            snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu]", i, k);
            json_t *fn = json_is_object(c) ? json_object_get(c, "function") : NULL;
            json_t *id = json_is_object(c) ? json_object_get(c, "id") : NULL;
            json_t *name = json_is_object(fn) ? json_object_get(fn, "name") : NULL;
            json_t *args = json_is_object(fn) ? json_object_get(fn, "arguments") : NULL;
            if (!json_is_string(id) || !json_is_string(name) ||
                (json_read_present(args) && !json_is_string(args))) {
                json_decref(out);
                return api_fail(err, 400, param, API_CODE_INVALID_VALUE,
                                "'%s' must be {\"id\": string, \"type\": \"function\", "
                                "\"function\": {\"name\": string, \"arguments\": string}}",
                                param);
            }
            json_t *call = api_tool_call_json(json_string_value(id), json_string_value(name),
                                              json_read_present(args) ? json_string_value(args) : NULL);
            if (!call || json_array_append_new(out, call) < 0) {
                json_decref(out);
                return api_fail(err, 500, NULL, NULL, "out of memory while reading the request");
            }
        }
        if (api_message_set_calls(m, out) < 0)
            return api_fail(err, 500, NULL, NULL, "out of memory while reading the request");
    }
    if (m->role == API_ROLE_TOOL) {
        json_t *id = json_object_get(msg, "tool_call_id");
        snprintf(param, sizeof param, "messages[%zu].tool_call_id", i);
        if (!json_is_string(id))
            return api_fail(err, 400, param, API_CODE_MISSING,
                            "'%s' is required on tool messages (a string)", param);
        m->tool_call_id = strdup(json_string_value(id));
        if (!m->tool_call_id)
            return api_fail(err, 500, NULL, NULL, "out of memory while reading the request");
    }
    return 0;
}
