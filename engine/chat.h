/* chat.h - chat templates: turn a conversation into the prompt text a
 * model was trained on.
 *
 * A model's GGUF `tokenizer.chat_template` is a Jinja2 template; it is
 * rendered with engine/jinja.c the way Hugging Face transformers renders
 * it (variables `messages`, `add_generation_prompt`, `bos_token`,
 * `eos_token`). Models without a template get the documented default,
 * ChatML; a configuration may name a builtin template instead. The list of
 * supported features, families and measured results is in
 * docs/chat-templates.md.
 *
 * This module depends on libc only: callers pass plain structs, not JSON.
 */
#ifndef HEARTH_CHAT_H
#define HEARTH_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "jinja.h"

/* One message. content NULL stands for JSON null (an assistant turn that
 * only calls tools); role must not be NULL. extra_json, when not NULL, is
 * the text of a JSON object whose members are added to the message as the
 * template sees it: {"tool_calls": [...]}, {"tool_call_id": "..."},
 * {"reasoning_content": "..."}, {"name": "..."}. */
typedef struct chat_msg {
    const char *role;
    const char *content;
    const char *extra_json;
} chat_msg;

typedef struct chat_template chat_template;

/* An extra template variable, e.g. enable_thinking=false for Qwen3, or
 * tools (CHAT_VAR_JSON: s is JSON text, e.g. the request's "tools"). */
enum chat_var_type { CHAT_VAR_BOOL, CHAT_VAR_INT, CHAT_VAR_STR, CHAT_VAR_JSON };
typedef struct chat_var {
    const char *name;
    enum chat_var_type type;
    bool b;
    int64_t i;
    const char *s;
} chat_var;

typedef struct chat_opts {
    time_t now;          /* the time strftime_now() formats; 0 = now */
    const chat_var *vars; /* extra variables (may be NULL) */
    size_t nvars;
    jinja_limits limits; /* all zero = defaults (see jinja.h) */
} chat_opts;

/* Parse a template (NUL-terminated). 0, or -1 with "line N: ..." in err. */
int chat_template_parse(const char *src, chat_template **out, char *err, size_t errlen);
void chat_template_free(chat_template *t);

/* Render n messages. bos_token/eos_token are the model's token texts (NULL
 * is taken as ""). Returns a malloc'd string the caller frees, or NULL with
 * err filled: for a template's raise_exception() the err is its message
 * exactly, otherwise "line N: ...". */
char *chat_template_apply(const chat_template *t, const chat_msg *msgs, size_t n,
                          bool add_generation_prompt, const char *bos_token,
                          const char *eos_token, char *err, size_t errlen);
/* The same with options (opts may be NULL). */
char *chat_template_apply_opts(const chat_template *t, const chat_msg *msgs, size_t n,
                               bool add_generation_prompt, const char *bos_token,
                               const char *eos_token, const chat_opts *opts, char *err,
                               size_t errlen);

/* Builtin template source by name: "chatml" (the default for models
 * without a template), "llama2", "llama3", "mistral", "phi3", "gemma",
 * "zephyr", "deepseek". NULL for an unknown name. */
const char *chat_template_builtin(const char *name);
/* NULL-terminated list of the builtin names. */
const char *const *chat_template_builtin_names(void);

/* The family of a template, from the markers its text contains:
 * "chatml", "llama2", "llama3", "mistral", "phi3", "gemma", "zephyr",
 * "deepseek", or "unknown" (never NULL). For logging and defaults. */
const char *chat_template_family(const char *src);
/* The text of the token that ends an assistant turn in this template (e.g.
 * "<|im_end|>", "<|eot_id|>"), or NULL when the template ends turns with
 * eos_token or uses markers not known here. A generation should also stop
 * at the model's EOS token. */
const char *chat_template_stop(const char *src);

#endif
