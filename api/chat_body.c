/* chat_body.c - see chat_body.h. */
#include "chat_body.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tools.h"

/* The history's calls (the template's shape: arguments an object or a
 * string) in OpenAI's shape: arguments as JSON text. Taken by the caller. */
static json_t *openai_calls(const char *calls_json)
{
    json_t *calls = json_loads(calls_json, 0, NULL);
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        json_t *fn = json_object_get(c, "function");
        json_t *args = json_object_get(fn, "arguments");
        if (args && !json_is_string(args)) {
            char *text = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!text || json_object_set_new(fn, "arguments", json_string(text)) < 0) {
                free(text);
                json_decref(calls);
                return NULL;
            }
            free(text);
        }
    }
    return calls;
}

static json_t *message_of(const api_message *m)
{
    bool calls_only = m->tool_calls && m->content_len == 0;
    json_t *o = json_pack("{s:s, s:o}", "role", api_role_name(m->role), "content",
                          calls_only ? json_null() : json_stringn(m->content, m->content_len));
    if (!o)
        return NULL;
    bool ok = true;
    if (m->tool_calls)
        ok = json_object_set_new(o, "tool_calls", openai_calls(m->tool_calls)) == 0;
    if (ok && m->tool_call_id)
        ok = json_object_set_new(o, "tool_call_id", json_string(m->tool_call_id)) == 0;
    if (ok && m->name)
        ok = json_object_set_new(o, "name", json_string(m->name)) == 0;
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *tool_choice_of(const api_request *q)
{
    switch (q->tool_choice) {
    case API_TOOL_NONE: return json_string("none");
    case API_TOOL_REQUIRED: return json_string("required");
    case API_TOOL_NAMED:
        return json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name",
                         q->tool_choice_name ? q->tool_choice_name : "");
    case API_TOOL_AUTO: break;
    }
    return json_string("auto");
}

char *api_chat_body(const api_request *q)
{
    json_t *o = json_object(), *msgs = json_array();
    bool ok = o && msgs && json_object_set_new(o, "model", json_string(q->model ? q->model : "")) == 0;
    for (size_t i = 0; ok && i < q->n_messages; i++)
        ok = json_array_append_new(msgs, message_of(&q->messages[i])) == 0;
    ok = ok && json_object_set(o, "messages", msgs) == 0;
    if (ok && (q->set & API_SET_MAX_TOKENS) && q->max_tokens > 0)
        ok = json_object_set_new(o, "max_tokens", json_integer(q->max_tokens)) == 0;
    if (ok && (q->set & API_SET_TEMPERATURE))
        ok = json_object_set_new(o, "temperature", json_real(q->sampling.temp)) == 0;
    if (ok && (q->set & API_SET_TOP_P))
        ok = json_object_set_new(o, "top_p", json_real(q->sampling.top_p)) == 0;
    if (ok && q->n_stop) {
        json_t *stop = json_array();
        for (size_t i = 0; stop && i < q->n_stop; i++)
            if (json_array_append_new(stop, json_string(q->stop[i])) < 0) {
                json_decref(stop);
                stop = NULL;
            }
        ok = stop && json_object_set_new(o, "stop", stop) == 0;
    }
    if (ok && q->stream)
        ok = json_object_set_new(o, "stream", json_true()) == 0;
    if (ok && q->n_tools) {
        char *tools = api_tools_json(q);
        json_t *t = tools ? json_loads(tools, 0, NULL) : NULL;
        free(tools);
        ok = t && json_object_set_new(o, "tools", t) == 0 &&
             json_object_set_new(o, "tool_choice", tool_choice_of(q)) == 0 &&
             (q->parallel_tool_calls ||
              json_object_set_new(o, "parallel_tool_calls", json_false()) == 0);
    }
    if (ok && q->json_schema) {
        json_t *schema = json_loads(q->json_schema, 0, NULL);
        ok = schema && json_object_set_new(o, "response_format",
                                           json_pack("{s:s, s:{s:s, s:o}}", "type",
                                                     "json_schema", "json_schema", "name",
                                                     "output", "schema", schema)) == 0;
    } else if (ok && q->json_object) {
        ok = json_object_set_new(o, "response_format",
                                 json_pack("{s:s}", "type", "json_object")) == 0;
    }
    char *s = ok ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(msgs);
    json_decref(o);
    return s;
}
