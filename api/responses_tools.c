/* responses_tools.c - see responses_tools.h. The Responses API flattens
 * tools ({"type": "function", "name", "description", "parameters"}) and
 * names a forced function {"type": "function", "name"}. */
#include "json_read.h"
#include "responses_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools.h"



static int read_tools(json_t *root, api_request *r, api_err *err)
{
    json_t *tools = json_read_given(root, "tools");
    if (tools && !json_is_array(tools))
        return api_fail(err, 400, "tools", API_CODE_INVALID_TYPE,
                        "'tools' must be an array of tool objects");
    for (size_t i = 0; tools && i < json_array_size(tools); i++) {
        json_t *t = json_array_get(tools, i);
        char at[48];
        snprintf(at, sizeof at, "tools[%zu]", i);
        const char *type = json_string_value(json_object_get(t, "type"));
        if (!type || strcmp(type, "function"))
            return api_fail(err, 400, at, API_CODE_UNSUPPORTED_VALUE,
                            "'%s': only tools of type \"function\" are supported (got %s)",
                            at, type ? type : "no type");
        json_t *name = json_read_given(t, "name"), *desc = json_read_given(t, "description");
        if (desc && !json_is_string(desc))
            return api_fail(err, 400, at, API_CODE_INVALID_TYPE,
                            "'%s.description' must be a string", at);
        if (api_tools_add(r, json_is_string(name) ? json_string_value(name) : NULL,
                          desc ? json_string_value(desc) : NULL, json_read_given(t, "parameters"), at,
                          err) < 0)
            return -1;
    }
    return 0;
}

static int read_choice(json_t *root, api_request *r, api_err *err)
{
    json_t *ch = json_read_given(root, "tool_choice");
    const char *s = json_string_value(ch);
    if (s && !strcmp(s, "auto"))
        r->tool_choice = API_TOOL_AUTO;
    else if (s && !strcmp(s, "none"))
        r->tool_choice = API_TOOL_NONE;
    else if (s && !strcmp(s, "required"))
        r->tool_choice = API_TOOL_REQUIRED;
    else if (json_is_object(ch) && json_is_string(json_object_get(ch, "name")) &&
             json_is_string(json_object_get(ch, "type")) &&
             !strcmp(json_string_value(json_object_get(ch, "type")), "function")) {
        r->tool_choice = API_TOOL_NAMED;
        if (!(r->tool_choice_name = strdup(json_string_value(json_object_get(ch, "name")))))
            return json_read_oom(err);
    } else if (ch) {
        return api_fail(err, 400, "tool_choice", API_CODE_INVALID_VALUE,
                        "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                        "{\"type\": \"function\", \"name\": ...}");
    }
    if (api_tools_check_choice(r, "tool_choice", err) < 0)
        return -1;
    json_t *par = json_read_given(root, "parallel_tool_calls");
    if (par && !json_is_boolean(par))
        return api_fail(err, 400, "parallel_tool_calls", API_CODE_INVALID_TYPE,
                        "'parallel_tool_calls' must be a boolean");
    r->parallel_tool_calls = !json_is_false(par);
    return 0;
}

/* text.format: text, json_object, or json_schema {name, schema, strict}. */
static int read_format(json_t *root, api_request *r, api_err *err)
{
    json_t *text = json_read_given(root, "text");
    if (text && !json_is_object(text))
        return api_fail(err, 400, "text", API_CODE_INVALID_TYPE, "'text' must be an object");
    json_t *fmt = text ? json_read_given(text, "format") : NULL;
    if (!fmt)
        return 0;
    const char *t = json_string_value(json_object_get(fmt, "type"));
    if (t && !strcmp(t, "text"))
        return 0;
    if (t && !strcmp(t, "json_object")) {
        r->json_object = true;
        return 0;
    }
    json_t *schema = t && !strcmp(t, "json_schema") ? json_read_given(fmt, "schema") : NULL;
    if (!json_is_object(schema))
        return api_fail(err, 400, "text.format", API_CODE_INVALID_VALUE,
                        "'text.format' must be {\"type\": \"text\"}, {\"type\": "
                        "\"json_object\"} or {\"type\": \"json_schema\", \"name\": ..., "
                        "\"schema\": {...}}");
    return (r->json_schema = json_dumps(schema, JSON_COMPACT)) ? 0 : json_read_oom(err);
}

int api_responses_tools(json_t *root, api_request *r, api_err *err)
{
    if (read_tools(root, r, err) < 0 || read_choice(root, r, err) < 0)
        return -1;
    return read_format(root, r, err);
}

/* function_call_output's output: a string, or input_text parts. */
static char *output_text(json_t *o)
{
    if (json_is_string(o))
        return strdup(json_string_value(o));
    size_t total = 0;
    for (size_t i = 0; json_is_array(o) && i < json_array_size(o); i++)
        total += json_string_length(json_object_get(json_array_get(o, i), "text"));
    char *s = json_is_array(o) ? malloc(total + 1) : NULL;
    size_t k = 0;
    for (size_t i = 0; s && i < json_array_size(o); i++) {
        json_t *t = json_object_get(json_array_get(o, i), "text");
        if (json_is_string(t))
            memcpy(s + k, json_string_value(t), json_string_length(t));
        k += json_string_length(t);
    }
    if (s)
        s[k] = '\0';
    return s;
}

int api_responses_tool_item(json_t *item, const char *type, size_t i, api_request *r,
                            api_err *err)
{
    char at[48];
    snprintf(at, sizeof at, "input[%zu]", i);
    json_t *id = json_read_given(item, "call_id");
    if (!json_is_string(id))
        return api_fail(err, 400, at, API_CODE_MISSING, "'%s.call_id' is required (a string)",
                        at);
    if (!strcmp(type, "function_call_output")) {
        json_t *out = json_read_given(item, "output");
        if (!json_is_string(out) && !json_is_array(out))
            return api_fail(err, 400, at, API_CODE_INVALID_TYPE,
                            "'%s.output' must be a string or an array of input_text parts",
                            at);
        api_message *m = &r->messages[r->n_messages++];
        m->role = API_ROLE_TOOL;
        m->content = output_text(out);
        m->tool_call_id = strdup(json_string_value(id));
        if (!m->content || !m->tool_call_id)
            return json_read_oom(err);
        m->content_len = strlen(m->content);
        return 0;
    }
    json_t *name = json_read_given(item, "name"), *args = json_read_given(item, "arguments");
    if (!json_is_string(name) || (args && !json_is_string(args)))
        return api_fail(err, 400, at, API_CODE_INVALID_VALUE,
                        "'%s' must have a string 'name' and string 'arguments'", at);
    /* calls after an assistant message (or after calls) join it */
    api_message *m = r->n_messages ? &r->messages[r->n_messages - 1] : NULL;
    if (!m || m->role != API_ROLE_ASSISTANT) {
        m = &r->messages[r->n_messages++];
        m->role = API_ROLE_ASSISTANT;
        if (!(m->content = strdup("")))
            return json_read_oom(err);
    }
    json_t *calls = m->tool_calls ? json_loads(m->tool_calls, 0, NULL) : json_array();
    json_t *call = api_tool_call_json(json_string_value(id), json_string_value(name),
                                      args ? json_string_value(args) : NULL);
    if (!calls || !call || json_array_append_new(calls, call) < 0) {
        json_decref(calls);
        return json_read_oom(err);
    }
    return api_message_set_calls(m, calls) < 0 ? json_read_oom(err) : 0;
}
