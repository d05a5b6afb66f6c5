/* messages_tools.c - tool use in an Anthropic Messages body (see
 * messages.h): `tools`, `tool_choice`, `output_format`, and the tool_use
 * and tool_result content blocks, read into the common form of tools.h.
 * Paths in errors follow Anthropic's dotted style ("messages.2.content.0"). */
#include "json_read.h"
#include "messages_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools.h"



int api_messages_tools(json_t *root, api_request *r, api_err *err)
{
    r->parallel_tool_calls = true;
    json_t *tools = json_read_given(root, "tools");
    if (tools && !json_is_array(tools))
        return api_fail(err, 400, "tools", API_CODE_INVALID_TYPE,
                        "tools: must be an array of tool definitions");
    for (size_t i = 0; tools && i < json_array_size(tools); i++) {
        json_t *t = json_array_get(tools, i);
        char at[48];
        snprintf(at, sizeof at, "tools.%zu", i);
        json_t *type = json_is_object(t) ? json_read_given(t, "type") : NULL;
        if (!json_is_object(t) || (type && (!json_is_string(type) ||
                                            strcmp(json_string_value(type), "custom"))))
            return api_fail(err, 400, at, API_CODE_UNSUPPORTED_VALUE,
                            "%s: only client tools ({\"name\", \"description\", "
                            "\"input_schema\"}) are supported, not server tools", at);
        json_t *name = json_read_given(t, "name"), *desc = json_read_given(t, "description");
        json_t *schema = json_read_given(t, "input_schema");
        if (desc && !json_is_string(desc))
            return api_fail(err, 400, at, API_CODE_INVALID_TYPE,
                            "%s.description: must be a string", at);
        if (!json_is_object(schema))
            return api_fail(err, 400, at, API_CODE_MISSING,
                            "%s.input_schema: is required (a JSON Schema object)", at);
        if (api_tools_add(r, json_is_string(name) ? json_string_value(name) : NULL,
                          desc ? json_string_value(desc) : NULL, schema, at, err) < 0)
            return -1;
    }
    json_t *ch = json_read_given(root, "tool_choice");
    if (ch) {
        const char *t = json_string_value(json_object_get(ch, "type"));
        if (!json_is_object(ch) || !t)
            return api_fail(err, 400, "tool_choice", API_CODE_INVALID_TYPE,
                            "tool_choice: must be an object such as {\"type\": \"auto\"}");
        if (!strcmp(t, "auto")) {
            r->tool_choice = API_TOOL_AUTO;
        } else if (!strcmp(t, "none")) {
            r->tool_choice = API_TOOL_NONE;
        } else if (!strcmp(t, "any")) {
            r->tool_choice = API_TOOL_REQUIRED;
        } else if (!strcmp(t, "tool")) {
            json_t *name = json_read_given(ch, "name");
            if (!json_is_string(name))
                return api_fail(err, 400, "tool_choice", API_CODE_MISSING,
                                "tool_choice.name: is required with type \"tool\"");
            r->tool_choice = API_TOOL_NAMED;
            if (!(r->tool_choice_name = strdup(json_string_value(name))))
                return json_read_oom(err);
        } else {
            return api_fail(err, 400, "tool_choice", API_CODE_INVALID_VALUE,
                            "tool_choice.type: must be \"auto\", \"any\", \"tool\" or "
                            "\"none\" (got \"%.40s\")", t);
        }
        json_t *dis = json_read_given(ch, "disable_parallel_tool_use");
        if (dis && !json_is_boolean(dis))
            return api_fail(err, 400, "tool_choice", API_CODE_INVALID_TYPE,
                            "tool_choice.disable_parallel_tool_use: must be a boolean");
        r->parallel_tool_calls = !json_is_true(dis);
    }
    if (api_tools_check_choice(r, "tool_choice", err) < 0)
        return -1;

    /* structured output: {"type": "json_schema", "schema": {...}} */
    json_t *of = json_read_given(root, "output_format");
    if (of) {
        const char *t = json_string_value(json_object_get(of, "type"));
        json_t *schema = json_read_given(of, "schema");
        if (!t || strcmp(t, "json_schema") || !json_is_object(schema))
            return api_fail(err, 400, "output_format", API_CODE_INVALID_VALUE,
                            "output_format: must be {\"type\": \"json_schema\", \"schema\": "
                            "{...}}");
        if (!(r->json_schema = json_dumps(schema, JSON_COMPACT)))
            return json_read_oom(err);
    }
    return 0;
}

size_t api_messages_n_results(json_t *content)
{
    size_t n = 0;
    for (size_t i = 0; json_is_array(content) && i < json_array_size(content); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(content, i), "type"));
        n += t && !strcmp(t, "tool_result");
    }
    return n;
}

/* A tool_result's content: a string or text blocks, concatenated. */
static int result_text(json_t *c, const char *at, char **out, api_err *err)
{
    if (!c) {
        *out = strdup("");
    } else if (json_is_string(c)) {
        *out = strdup(json_string_value(c));
    } else if (json_is_array(c)) {
        size_t total = 0;
        for (size_t i = 0; i < json_array_size(c); i++) {
            json_t *b = json_array_get(c, i);
            const char *t = json_string_value(json_object_get(b, "type"));
            json_t *text = json_object_get(b, "text");
            if (!t || strcmp(t, "text") || !json_is_string(text))
                return api_fail(err, 400, at, API_CODE_UNSUPPORTED_VALUE,
                                "%s.content.%zu: only text blocks are supported in a "
                                "tool_result", at, i);
            total += json_string_length(text);
        }
        *out = malloc(total + 1);
        size_t o = 0;
        for (size_t i = 0; *out && i < json_array_size(c); i++) {
            json_t *text = json_object_get(json_array_get(c, i), "text");
            memcpy(*out + o, json_string_value(text), json_string_length(text));
            o += json_string_length(text);
        }
        if (*out)
            (*out)[o] = '\0';
    } else {
        return api_fail(err, 400, at, API_CODE_INVALID_TYPE,
                        "%s.content: must be a string or an array of text blocks", at);
    }
    return *out ? 0 : json_read_oom(err);
}

int api_messages_results(json_t *content, const char *path, api_request *r, api_err *err)
{
    for (size_t i = 0; json_is_array(content) && i < json_array_size(content); i++) {
        json_t *b = json_array_get(content, i);
        const char *t = json_string_value(json_object_get(b, "type"));
        if (!t || strcmp(t, "tool_result"))
            continue;
        char at[64];
        snprintf(at, sizeof at, "%s.%zu", path, i);
        json_t *id = json_read_given(b, "tool_use_id");
        if (!json_is_string(id))
            return api_fail(err, 400, at, API_CODE_MISSING,
                            "%s.tool_use_id: is required (a string)", at);
        api_message *m = &r->messages[r->n_messages++];
        memset(m, 0, sizeof *m);
        m->role = API_ROLE_TOOL;
        if (!(m->tool_call_id = strdup(json_string_value(id))))
            return json_read_oom(err);
        if (result_text(json_read_given(b, "content"), at, &m->content, err) < 0)
            return -1;
        m->content_len = strlen(m->content);
    }
    return 0;
}

int api_messages_calls(json_t *content, const char *path, api_message *m, api_err *err)
{
    json_t *calls = json_array();
    if (!calls)
        return json_read_oom(err);
    for (size_t i = 0; json_is_array(content) && i < json_array_size(content); i++) {
        json_t *b = json_array_get(content, i);
        const char *t = json_string_value(json_object_get(b, "type"));
        if (!t || strcmp(t, "tool_use"))
            continue;
        json_t *id = json_read_given(b, "id"), *name = json_read_given(b, "name"), *input = json_read_given(b, "input");
        if (!json_is_string(id) || !json_is_string(name) || (input && !json_is_object(input))) {
            json_decref(calls);
            return api_fail(err, 400, path, API_CODE_INVALID_VALUE,
                            "%s.%zu: a tool_use block needs \"id\", \"name\" and an object "
                            "\"input\"", path, i);
        }
        char *args = input ? json_dumps(input, JSON_COMPACT) : NULL;
        json_t *call = api_tool_call_json(json_string_value(id), json_string_value(name),
                                          input ? args : NULL);
        free(args);
        if (!call || json_array_append_new(calls, call) < 0) {
            json_decref(calls);
            return json_read_oom(err);
        }
    }
    if (json_array_size(calls) == 0) {
        json_decref(calls);
        return 0;
    }
    return api_message_set_calls(m, calls) < 0 ? json_read_oom(err) : 0;
}
