/* tools.c - see tools.h. */
#include "tools.h"

#include <stdlib.h>
#include <string.h>

int api_tool_name_check(const char *name, const char *param, api_err *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > API_TOOL_NAME_MAX)
        return api_fail(err, 400, param, API_CODE_INVALID_VALUE,
                        "'%s' must be a function name of 1 to %d characters", param,
                        API_TOOL_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok)
            return api_fail(err, 400, param, API_CODE_INVALID_VALUE,
                            "'%s' may contain only letters, digits, '_', '-' and '.'", param);
    }
    return 0;
}

int api_tools_find(const api_request *r, const char *name)
{
    for (size_t i = 0; name && i < r->n_tools; i++)
        if (!strcmp(r->tools[i].name, name))
            return (int)i;
    return -1;
}

int api_tools_add(api_request *r, const char *name, const char *description,
                  json_t *parameters, const char *param, api_err *err)
{
    char where[96];
    snprintf(where, sizeof where, "%s.name", param);
    if (api_tool_name_check(name, where, err) < 0)
        return -1;
    if (r->n_tools >= API_MAX_TOOLS)
        return api_fail(err, 400, "tools", API_CODE_INVALID_VALUE,
                        "at most %d tools may be given", API_MAX_TOOLS);
    if (api_tools_find(r, name) >= 0)
        return api_fail(err, 400, where, API_CODE_INVALID_VALUE,
                        "'%s': two tools are named '%s'; names must be unique", where, name);
    if (parameters && !json_is_null(parameters) && !json_is_object(parameters)) {
        snprintf(where, sizeof where, "%s.parameters", param);
        return api_fail(err, 400, where, API_CODE_INVALID_TYPE,
                        "'%s' must be a JSON Schema object", where);
    }
    api_tool *grown = realloc(r->tools, (r->n_tools + 1) * sizeof *grown);
    if (!grown)
        return api_fail(err, 500, NULL, NULL, "out of memory while reading the request");
    r->tools = grown;
    api_tool *t = &r->tools[r->n_tools];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->description = description ? strdup(description) : NULL;
    t->parameters = parameters && json_is_object(parameters)
                        ? json_dumps(parameters, JSON_COMPACT | JSON_ENCODE_ANY)
                        : strdup("{\"type\":\"object\",\"properties\":{}}");
    r->n_tools++; /* counted now so that api_request_free frees the parts */
    if (!t->name || (description && !t->description) || !t->parameters)
        return api_fail(err, 500, NULL, NULL, "out of memory while reading the request");
    return 0;
}

int api_tools_check_choice(const api_request *r, const char *param, api_err *err)
{
    if ((r->tool_choice == API_TOOL_REQUIRED || r->tool_choice == API_TOOL_NAMED) &&
        r->n_tools == 0)
        return api_fail(err, 400, param, API_CODE_INVALID_VALUE,
                        "'%s' asks for a tool call, but no tools are given", param);
    if (r->tool_choice == API_TOOL_NAMED && api_tools_find(r, r->tool_choice_name) < 0)
        return api_fail(err, 400, param, API_CODE_INVALID_VALUE,
                        "'%s' names the function '%s', which is not among the tools", param,
                        r->tool_choice_name ? r->tool_choice_name : "");
    return 0;
}

char *api_tools_json(const api_request *r)
{
    json_t *a = json_array();
    bool ok = a != NULL;
    for (size_t i = 0; ok && i < r->n_tools; i++) {
        const api_tool *t = &r->tools[i];
        json_t *params = json_loads(t->parameters, 0, NULL);
        /* "o" takes params, on failure too; "s*" leaves out a NULL */
        json_t *tool = params ? json_pack("{s:s, s:{s:s, s:s*, s:o}}", "type", "function",
                                          "function", "name", t->name, "description",
                                          t->description, "parameters", params)
                              : NULL;
        ok = tool && json_array_append_new(a, tool) == 0;
    }
    char *s = ok ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

json_t *api_tool_call_json(const char *id, const char *name, const char *args_text)
{
    json_t *args = args_text ? json_loads(args_text, JSON_DECODE_ANY, NULL) : json_object();
    if (args && !json_is_object(args)) {
        json_decref(args);
        args = NULL;
    }
    if (!args)
        args = json_string(args_text ? args_text : "");
    if (!args)
        return NULL;
    return json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", id ? id : "", "type", "function",
                     "function", "name", name ? name : "", "arguments", args);
}

int api_message_set_calls(api_message *m, json_t *calls)
{
    char *s = calls ? json_dumps(calls, JSON_COMPACT) : NULL;
    json_decref(calls);
    if (!s)
        return -1;
    free(m->tool_calls);
    m->tool_calls = s;
    return 0;
}

char *api_message_extra_json(const api_message *m, bool *oom)
{
    *oom = false;
    if (!m->tool_calls && !m->tool_call_id)
        return NULL;
    json_t *calls = m->tool_calls ? json_loads(m->tool_calls, 0, NULL) : NULL;
    json_t *o = (m->tool_calls && !calls) ? NULL
                : json_pack("{s:o*, s:s*}", "tool_calls", calls, "tool_call_id",
                            m->tool_call_id);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    *oom = s == NULL;
    return s;
}
