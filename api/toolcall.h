/* toolcall.h - the output side of tool calling: how a model family writes
 * a call, and a parser that takes generated text as it streams and splits
 * it into plain text and calls.
 *
 * Formats (the chat template tells which, api_tool_format_of):
 *   HERMES        <tool_call>\n{"name": F, "arguments": {...}}\n</tool_call>,
 *                 one block per call (Qwen2.5, Qwen3, Hermes 2 Pro / 3,
 *                 and hearth's built-in chatml template); inside the
 *                 block, the XML-style bodies of Qwen3-Coder/Qwen3.5
 *                 (<function=F><parameter=K>V</parameter>) and GLM-4.x
 *                 (F<arg_key>K</arg_key><arg_value>V</arg_value>) too
 *   LLAMA3        {"name": F, "parameters": {...}} as the whole answer,
 *                 optionally after <|python_tag|>, several separated by
 *                 ';' (Llama 3.1, 3.2, 3.3)
 *   MISTRAL       [TOOL_CALLS][{"name": F, "arguments": {...}}, ...]
 *                 (Mistral Nemo and the v3 tokenizer's models)
 *   MISTRAL_ARGS  [TOOL_CALLS]F[ARGS]{...} per call, an optional
 *                 [CALL_ID]id before [ARGS] (Mistral Small 3.2, Devstral)
 * `[TOOL_CALLS]` and `<|python_tag|>` are control tokens: the generation
 * must keep control tokens' text for these formats (sched_job.special_text).
 *
 * A call is recognised once its JSON is complete and parses: a name that is
 * a string and arguments that are an object (or a string holding one, as
 * some models write). Anything else that looked like a call is given back
 * as text, so nothing the model wrote is lost. Arguments reach the client
 * as compact JSON text.
 */
#ifndef HEARTH_API_TOOLCALL_H
#define HEARTH_API_TOOLCALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"
#include "response.h"
#include "tools.h"

typedef enum api_tool_format {
    API_TOOLS_NONE = 0, /* the template shows no tools to the model */
    API_TOOLS_HERMES,
    API_TOOLS_LLAMA3,
    API_TOOLS_MISTRAL,
    API_TOOLS_MISTRAL_ARGS
} api_tool_format;

/* The format a template's source writes calls in; NONE when it never
 * reads the `tools` variable. */
api_tool_format api_tool_format_of(const char *template_src);
/* "hermes", "llama3", "mistral", "mistral-args", "none". */
const char *api_tool_format_name(api_tool_format f);

/* A forced call (tool_choice required, or a named function): the text
 * appended to the prompt after the generation prompt so that the answer
 * starts inside the call, and the JSON Schema of what follows, which the
 * grammar then enforces, so even a weak model writes a valid call.
 * only: the named tool, or NULL for any of r's tools. Returns 0 with
 * *prefix and *schema malloc'd, or -1 with err (400: the format cannot
 * force a call this way; 500: out of memory). */
int api_tool_forced(api_tool_format f, const api_request *r, const char *only, char **prefix,
                    char **schema, api_err *err);

/* What the parser found, in order. */
typedef enum api_tp_kind {
    API_TP_TEXT, /* s, len: plain text */
    API_TP_CALL  /* call: the index of a complete call in p->calls */
} api_tp_kind;

typedef int (*api_tp_emit)(void *arg, api_tp_kind kind, const char *s, size_t len,
                           unsigned call);

typedef struct api_toolparse {
    api_tool_format f;
    int state;          /* private */
    char *hold;         /* bytes held: a possible opener, a call's body */
    size_t hold_len, hold_cap;
    size_t scan;        /* private: bytes of hold already scanned */
    int depth;          /* private: JSON scanner */
    bool in_str, esc, any_text;
    bool forced;        /* the output began inside a call */
    char ws[64];        /* private: whitespace that may precede a call */
    size_t ws_len;
    char forced_name[API_TOOL_NAME_MAX + 1]; /* MISTRAL_ARGS forced: the name */
    uint64_t rng;       /* ids */
    const api_request *req; /* optional (set after init): a call must name one
                             of req's tools, else it is given back as text */
    api_tool_call *calls; /* ids: "call_" + 24 characters; 9 characters for
                             the Mistral formats, whose templates insist */
    size_t n_calls;
} api_toolparse;

/* forced: the prompt ended with api_tool_forced's prefix, so the output
 * starts inside the call's syntax; forced_name: the function it named
 * (needed for MISTRAL_ARGS, whose prefix holds the name). seed makes the
 * call ids. */
void api_toolparse_init(api_toolparse *p, api_tool_format f, bool forced,
                        const char *forced_name, uint64_t seed);
/* Feed generated text; emit is called for what became certain. 0, or -1
 * when out of memory or emit failed. */
int api_toolparse_feed(api_toolparse *p, const char *s, size_t len, api_tp_emit emit, void *arg);
/* The generation ended: what is still held comes out (an unfinished call
 * as text). */
int api_toolparse_end(api_toolparse *p, api_tp_emit emit, void *arg);
void api_toolparse_free(api_toolparse *p);

#endif
