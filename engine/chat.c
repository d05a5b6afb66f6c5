/* chat.c - chat templates on top of the Jinja interpreter: the variables
 * transformers passes, the builtin templates and family detection. */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct chat_template {
    jinja_template *tpl;
};

int chat_template_parse(const char *src, chat_template **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!src) {
        snprintf(err, errlen, "no template text");
        return -1;
    }
    chat_template *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (jinja_parse(src, strlen(src), &t->tpl, err, errlen)) {
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void chat_template_free(chat_template *t)
{
    if (!t)
        return;
    jinja_free(t->tpl);
    free(t);
}

static jinja_value *str_or_none(jinja_ctx *c, const char *s)
{
    return s ? jinja_str(c, s, strlen(s)) : jinja_none(c);
}

char *chat_template_apply_opts(const chat_template *t, const chat_msg *msgs, size_t n,
                               bool add_generation_prompt, const char *bos_token,
                               const char *eos_token, const chat_opts *opts, char *err,
                               size_t errlen)
{
    if (!t || (n && !msgs)) {
        snprintf(err, errlen, "no template or messages");
        return NULL;
    }
    jinja_ctx *c = jinja_ctx_new(opts ? &opts->limits : NULL, opts ? opts->now : 0);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* Builders only fail when memory runs out; jinja_render reports that. */
    jinja_value *list = jinja_list(c);
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role) {
            snprintf(err, errlen, "message %zu has no role", i);
            jinja_ctx_free(c);
            return NULL;
        }
        jinja_value *m = jinja_dict(c);
        jinja_dict_set(c, m, "role", str_or_none(c, msgs[i].role));
        jinja_dict_set(c, m, "content", str_or_none(c, msgs[i].content));
        if (msgs[i].extra_json) {
            char jerr[128];
            jinja_value *x = jinja_json(c, msgs[i].extra_json, strlen(msgs[i].extra_json), jerr,
                                        sizeof(jerr));
            if (!x || jinja_dict_merge(c, m, x)) {
                snprintf(err, errlen, "message %zu: extra_json: %s", i,
                         x ? "not a JSON object" : jerr);
                jinja_ctx_free(c);
                return NULL;
            }
        }
        jinja_list_push(c, list, m);
    }
    jinja_set_var(c, "messages", list);
    jinja_set_var(c, "add_generation_prompt", jinja_bool(c, add_generation_prompt));
    jinja_set_var(c, "bos_token", str_or_none(c, bos_token ? bos_token : ""));
    jinja_set_var(c, "eos_token", str_or_none(c, eos_token ? eos_token : ""));
    for (size_t i = 0; opts && i < opts->nvars; i++) {
        const chat_var *v = &opts->vars[i];
        if (!v->name)
            continue;
        jinja_value *x;
        if (v->type == CHAT_VAR_JSON) {
            char jerr[128];
            x = jinja_json(c, v->s ? v->s : "null", strlen(v->s ? v->s : "null"), jerr,
                           sizeof(jerr));
            if (!x) {
                snprintf(err, errlen, "variable %s: %s", v->name, jerr);
                jinja_ctx_free(c);
                return NULL;
            }
        } else {
            x = v->type == CHAT_VAR_BOOL  ? jinja_bool(c, v->b)
                : v->type == CHAT_VAR_INT ? jinja_int(c, v->i)
                                          : str_or_none(c, v->s);
        }
        jinja_set_var(c, v->name, x);
    }
    char *out = jinja_render(t->tpl, c, NULL, err, errlen);
    jinja_ctx_free(c);
    return out;
}

char *chat_template_apply(const chat_template *t, const chat_msg *msgs, size_t n,
                          bool add_generation_prompt, const char *bos_token,
                          const char *eos_token, char *err, size_t errlen)
{
    return chat_template_apply_opts(t, msgs, n, add_generation_prompt, bos_token, eos_token,
                                    NULL, err, errlen);
}

/* ---------------------------------------------------------------- builtins */

/* Each builtin renders what the real templates of its family render for
 * plain conversations (system, user and assistant text); only chatml
 * handles tools (the Hermes way). */
static const struct {
    const char *name;
    const char *src;
} BUILTINS[] = {
    /* <|im_start|>role\ncontent<|im_end|>\n per message (Qwen, Hermes...) */
    {"chatml",
     /* with tools: hearth's own wording of the Hermes convention
      * (api/toolcall.h), one system turn listing them */
     "{%- set msgs = messages -%}\n"
     "{%- if tools -%}\n"
     "{{ '<|im_start|>system\\n' }}\n"
     "{%- if messages and messages[0].role == 'system' -%}\n"
     "{{ messages[0].content ~ '\\n\\n' }}{%- set msgs = messages[1:] -%}\n"
     "{%- endif -%}\n"
     "{{ 'These functions may be called; each is given as JSON:\\n<tools>\\n' }}\n"
     "{%- for t in tools -%}{{ t | tojson ~ '\\n' }}{%- endfor -%}\n"
     "{{ '</tools>\\nTo call one, write <tool_call>\\n{\"name\": the function, "
     "\"arguments\": an object}\\n</tool_call> for each call.<|im_end|>\\n' }}\n"
     "{%- endif -%}\n"
     "{%- for m in msgs -%}\n"
     "{%- if m.role == 'assistant' and m.tool_calls -%}\n"
     "{{ '<|im_start|>assistant\\n' ~ (m.content or '') }}\n"
     "{%- for c in m.tool_calls -%}\n"
     "{{ '\\n<tool_call>\\n{\"name\": \"' ~ c.function.name ~ '\", \"arguments\": ' ~ "
     "c.function.arguments | tojson ~ '}\\n</tool_call>' }}\n"
     "{%- endfor -%}{{ '<|im_end|>\\n' }}\n"
     "{%- elif m.role == 'tool' -%}\n"
     "{{ '<|im_start|>user\\n<tool_response>\\n' ~ m.content ~ '\\n</tool_response><|im_end|>\\n' }}\n"
     "{%- else -%}\n"
     "{{ '<|im_start|>' ~ m.role ~ '\\n' ~ m.content ~ '<|im_end|>\\n' }}\n"
     "{%- endif -%}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}\n"},
    /* Llama 2 chat: the system text inside the first [INST] */
    {"llama2",
     "{%- if messages and messages[0].role == 'system' -%}\n"
     "{%- set sys = messages[0].content -%}{%- set msgs = messages[1:] -%}\n"
     "{%- else -%}{%- set msgs = messages -%}{%- endif -%}\n"
     "{%- for m in msgs -%}\n"
     "{%- if (m.role == 'user') != (loop.index0 % 2 == 0) -%}\n"
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n"
     "{%- endif -%}\n"
     "{%- if m.role == 'user' -%}\n"
     "{%- set text = m.content -%}\n"
     "{%- if loop.first and sys is defined -%}\n"
     "{%- set text = '<<SYS>>\\n' ~ sys ~ '\\n<</SYS>>\\n\\n' ~ text -%}\n"
     "{%- endif -%}\n"
     "{{ bos_token ~ '[INST] ' ~ text | trim ~ ' [/INST]' }}\n"
     "{%- else -%}{{ ' ' ~ m.content | trim ~ ' ' ~ eos_token }}{%- endif -%}\n"
     "{%- endfor -%}\n"},
    /* Llama 3.1 / 3.3: a system header with the knowledge cut-off */
    {"llama3",
     "{{- bos_token -}}\n"
     "{%- if messages and messages[0].role == 'system' -%}\n"
     "{%- set sys = messages[0].content | trim -%}{%- set msgs = messages[1:] -%}\n"
     "{%- else -%}{%- set sys = '' -%}{%- set msgs = messages -%}{%- endif -%}\n"
     "{{ '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\n"
     "Today Date: 26 Jul 2024\\n\\n' ~ sys ~ '<|eot_id|>' }}\n"
     "{%- for m in msgs -%}\n"
     "{{ '<|start_header_id|>' ~ m.role ~ '<|end_header_id|>\\n\\n' ~ m.content | trim ~ '<|eot_id|>' }}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}"
     "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}\n"},
    /* Mistral v3 (Nemo): the system text joins the last user turn */
    {"mistral",
     "{%- if messages and messages[0].role == 'system' -%}\n"
     "{%- set sys = messages[0].content -%}{%- set msgs = messages[1:] -%}\n"
     "{%- else -%}{%- set msgs = messages -%}{%- endif -%}\n"
     "{{- bos_token -}}\n"
     "{%- for m in msgs -%}\n"
     "{%- if (m.role == 'user') != (loop.index0 % 2 == 0) -%}\n"
     "{{ raise_exception('After the optional system message, conversation roles must "
     "alternate user/assistant/user/assistant/...') }}\n"
     "{%- endif -%}\n"
     "{%- if m.role == 'user' -%}\n"
     "{%- if loop.last and sys is defined -%}{{ '[INST]' ~ sys ~ '\\n\\n' ~ m.content ~ '[/INST]' }}\n"
     "{%- else -%}{{ '[INST]' ~ m.content ~ '[/INST]' }}{%- endif -%}\n"
     "{%- else -%}{{ m.content ~ eos_token }}{%- endif -%}\n"
     "{%- endfor -%}\n"},
    /* Phi-3 / 3.5 */
    {"phi3",
     "{%- for m in messages -%}\n"
     "{%- if m.role == 'system' and m.content -%}{{ '<|system|>\\n' ~ m.content ~ '<|end|>\\n' }}\n"
     "{%- elif m.role == 'user' -%}{{ '<|user|>\\n' ~ m.content ~ '<|end|>\\n' }}\n"
     "{%- elif m.role == 'assistant' -%}{{ '<|assistant|>\\n' ~ m.content ~ '<|end|>\\n' }}\n"
     "{%- endif -%}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- else -%}{{ eos_token }}{%- endif -%}\n"},
    /* Gemma 2/3: no system role; its text opens the first user turn */
    {"gemma",
     "{{- bos_token -}}\n"
     "{%- if messages and messages[0].role == 'system' -%}\n"
     "{%- set prefix = messages[0].content ~ '\\n\\n' -%}{%- set msgs = messages[1:] -%}\n"
     "{%- else -%}{%- set prefix = '' -%}{%- set msgs = messages -%}{%- endif -%}\n"
     "{%- for m in msgs -%}\n"
     "{%- if (m.role == 'user') != (loop.index0 % 2 == 0) -%}\n"
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n"
     "{%- endif -%}\n"
     "{{ '<start_of_turn>' ~ ('model' if m.role == 'assistant' else m.role) ~ '\\n' ~ "
     "(prefix if loop.first else '') ~ m.content | trim ~ '<end_of_turn>\\n' }}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}\n"},
    /* Zephyr */
    {"zephyr",
     "{%- for m in messages -%}\n"
     "{%- if m.role == 'system' -%}{{ '<|system|>\\n' ~ m.content ~ eos_token ~ '\\n' }}\n"
     "{%- elif m.role == 'user' -%}{{ '<|user|>\\n' ~ m.content ~ eos_token ~ '\\n' }}\n"
     "{%- elif m.role == 'assistant' -%}{{ '<|assistant|>\\n' ~ m.content ~ eos_token ~ '\\n' }}\n"
     "{%- endif -%}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- endif -%}\n"},
    /* DeepSeek R1 (and its distills): previous reasoning is dropped */
    {"deepseek",
     "{{- bos_token -}}\n"
     "{%- set ns = namespace(sys='') -%}\n"
     "{%- for m in messages if m.role == 'system' -%}{%- set ns.sys = m.content -%}{%- endfor -%}\n"
     "{{- ns.sys -}}\n"
     "{%- for m in messages -%}\n"
     "{%- if m.role == 'user' -%}{{ '<｜User｜>' ~ m.content }}\n"
     "{%- elif m.role == 'assistant' and m.content is not none -%}\n"
     "{{ '<｜Assistant｜>' ~ m.content.split('</think>')[-1] ~ '<｜end▁of▁sentence｜>' }}\n"
     "{%- endif -%}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{ '<｜Assistant｜><think>\\n' }}{%- endif -%}\n"},
    {NULL, NULL},
};

const char *chat_template_builtin(const char *name)
{
    for (size_t i = 0; name && BUILTINS[i].name; i++)
        if (!strcmp(BUILTINS[i].name, name))
            return BUILTINS[i].src;
    return NULL;
}

const char *const *chat_template_builtin_names(void)
{
    /* the names of BUILTINS, in order (tests/test_chat.c checks both) */
    static const char *const names[] = {"chatml", "llama2", "llama3", "mistral", "phi3",
                                        "gemma",  "zephyr", "deepseek", NULL};
    return names;
}

/* ---------------------------------------------------------------- families */

const char *chat_template_family(const char *src)
{
    if (!src)
        return "unknown";
    if (strstr(src, "<|im_start|>"))
        return "chatml";
    if (strstr(src, "<|start_header_id|>"))
        return "llama3";
    if (strstr(src, "<\xef\xbd\x9cUser\xef\xbd\x9c>")) /* <｜User｜> */
        return "deepseek";
    if (strstr(src, "<start_of_turn>") || strstr(src, "<|turn>"))
        return "gemma";
    if (strstr(src, "[INST]"))
        return strstr(src, "<<SYS>>") ? "llama2" : "mistral";
    if (strstr(src, "<|user|>") && strstr(src, "<|assistant|>")) {
        if (strstr(src, "<|end|>"))
            return "phi3";
        if (strstr(src, "eos_token") && !strstr(src, "[gMASK]"))
            return "zephyr";
    }
    return "unknown";
}

const char *chat_template_stop(const char *src)
{
    static const char *const stops[] = {
        "<|im_end|>", "<|eot_id|>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
        "<end_of_turn>", "<turn|>", "<|end|>", NULL};
    for (int i = 0; src && stops[i]; i++)
        if (strstr(src, stops[i]))
            return stops[i];
    return NULL;
}
