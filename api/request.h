/* request.h - parse and validate the bodies of POST /v1/chat/completions
 * and POST /v1/completions (the OpenAI wire format).
 *
 * The parsers turn a JSON body into an api_request the daemon can act on
 * without looking at JSON again: every field is type- and range-checked,
 * unset sampling fields hold the engine's defaults (sampler_params_default)
 * and api_request.set records which ones the client gave. A bad body gives
 * an api_err: HTTP status 400, a message naming the field, the field in
 * `param` and an OpenAI-style `code`. Fields this server does not know are
 * ignored; fields it knows but cannot honour (image parts, audio,
 * suffix, ...) are refused with a 400 rather
 * than silently dropped. JSON null counts as "not given" for every optional
 * field. Limits and choices are documented in docs/api/chat-completions.md
 * and docs/api/completions.md.
 */
#ifndef HEARTH_API_REQUEST_H
#define HEARTH_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

#define API_MAX_STOP 4          /* stop strings per request (OpenAI's limit) */
#define API_MAX_STOP_LEN 1024   /* bytes in one stop string (the matcher
                                   keeps a table per byte for each) */
#define API_MAX_N 16            /* choices per request */
#define API_MAX_TOP_LOGPROBS 20 /* == SAMPLER_MAX_TOP */

/* A request error. status is an HTTP status (400 for every parser error,
 * 500 when out of memory); param and code are "" when there is none. */
typedef struct api_err {
    unsigned status;
    char message[512];
    char param[64];
    char code[64];
} api_err;

/* Fill err (message from fmt) and return -1, so that parsers can
 * `return api_fail(...)`. param and code may be NULL. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
int api_fail(api_err *err, unsigned status, const char *param, const char *code,
             const char *fmt, ...);

/* Render err as the OpenAI error object (see error.h); malloc'd, NULL only
 * when out of memory. */
char *api_err_json(const api_err *err);

/* `code` values the parsers use. */
#define API_CODE_INVALID_JSON "invalid_json"             /* body is not JSON */
#define API_CODE_INVALID_TYPE "invalid_type"             /* wrong JSON type */
#define API_CODE_INVALID_VALUE "invalid_value"           /* out of range */
#define API_CODE_MISSING "missing_required_parameter"
#define API_CODE_UNSUPPORTED_PARAM "unsupported_parameter" /* known, refused */
#define API_CODE_UNSUPPORTED_VALUE "unsupported_value"
#define API_CODE_UNSUPPORTED_FORMAT "unsupported_response_format"

typedef enum api_kind {
    API_CHAT,       /* /v1/chat/completions */
    API_COMPLETION, /* /v1/completions */
    API_MESSAGES,   /* /v1/messages (Anthropic; messages.h) */
    API_RESPONSES   /* /v1/responses (OpenAI Responses; responses.h) */
} api_kind;

typedef enum api_role {
    API_ROLE_SYSTEM,    /* also "developer" */
    API_ROLE_USER,
    API_ROLE_ASSISTANT,
    API_ROLE_TOOL
} api_role;

/* Lowercase role name as a chat template expects it ("system", ...). */
const char *api_role_name(api_role role);

typedef struct api_message {
    api_role role;
    char *content;      /* NUL-terminated UTF-8 (JSON strings cannot hold
                           NUL here); text parts concatenated; "" when the
                           content was null (assistant only) */
    size_t content_len; /* strlen(content) */
    char *name;         /* the optional "name" field, NULL when absent */
    char *tool_calls;   /* assistant: the calls it made, a JSON array in
                           the template's shape (tools.h); NULL: none */
    char *tool_call_id; /* tool: the call this result answers; NULL */
} api_message;

/* A function the model may call (tools.h). */
typedef struct api_tool {
    char *name;
    char *description; /* NULL when absent */
    char *parameters;  /* JSON Schema of the arguments, compact JSON text */
} api_tool;

typedef enum api_tool_choice {
    API_TOOL_AUTO = 0, /* the model decides (the default with tools) */
    API_TOOL_NONE,     /* no calls: the tools are not shown to the model */
    API_TOOL_REQUIRED, /* at least one call */
    API_TOOL_NAMED     /* a call of tool_choice_name */
} api_tool_choice;

/* Bits of api_request.set: the fields the client gave explicitly. */
enum {
    API_SET_MAX_TOKENS = 1u << 0,
    API_SET_TEMPERATURE = 1u << 1,
    API_SET_TOP_P = 1u << 2,
    API_SET_TOP_K = 1u << 3,
    API_SET_MIN_P = 1u << 4,
    API_SET_FREQUENCY_PENALTY = 1u << 5,
    API_SET_PRESENCE_PENALTY = 1u << 6,
    API_SET_REPEAT_PENALTY = 1u << 7,
    API_SET_SEED = 1u << 8,
    API_SET_LOGIT_BIAS = 1u << 9,
    API_SET_STOP = 1u << 10
};

typedef struct api_request {
    api_kind kind;
    char *model;              /* NULL: not given, use the loaded model */

    /* API_CHAT */
    api_message *messages;    /* n_messages >= 1 */
    size_t n_messages;

    /* API_COMPLETION: exactly one of prompt / prompt_tokens is set. */
    char *prompt;             /* NUL-terminated UTF-8, may be "" */
    size_t prompt_len;
    int32_t *prompt_tokens;   /* token ids (>= 0, not checked against the
                                 vocabulary: the daemon does that) */
    size_t n_prompt_tokens;   /* >= 1 when prompt_tokens is set */
    bool echo;                /* prepend the prompt to the choice's text */

    /* Generation. */
    int64_t max_tokens;       /* -1: until the context is full (default);
                                 else 1..INT32_MAX (chat) / 0..INT32_MAX
                                 (completions, 0 makes sense with echo) */
    sampler_params sampling;  /* defaults + the client's values;
                                 sampling.bias points at logit_bias,
                                 sampling.n_probs = top_logprobs */
    sampler_bias *logit_bias; /* owned; ids >= 0, not checked against the
                                 vocabulary; bias -100 is -INFINITY (ban) */
    size_t n_logit_bias;
    unsigned set;             /* API_SET_* bits */
    char *stop[API_MAX_STOP]; /* non-empty, NUL-terminated */
    size_t n_stop;
    unsigned n;               /* choices, 1..API_MAX_N */
    bool logprobs;            /* report log-probabilities of the tokens */
    int top_logprobs;         /* alternatives per token, 0..20 */
    char *user;               /* NULL when absent */
    bool stream;
    bool include_usage;       /* stream_options.include_usage */

    /* Structured output (chat): response_format json_object (any JSON
     * object) or json_schema (its "schema", compact JSON text, owned). */
    bool json_object;
    char *json_schema;

    /* Tools (chat dialects; tools.h). */
    api_tool *tools;
    size_t n_tools;
    api_tool_choice tool_choice;
    char *tool_choice_name;   /* API_TOOL_NAMED: a declared tool's name */
    bool parallel_tool_calls; /* several calls in one answer (default true) */
} api_request;

/* Parse a body. Returns 0 and fills *out (free it with api_request_free),
 * or -1 and fills *err (out then owns nothing: freeing it is harmless).
 * body need not be NUL-terminated; len may be 0. */
int api_parse_chat(const char *body, size_t len, api_request *out,
                   api_err *err);
int api_parse_completion(const char *body, size_t len, api_request *out,
                         api_err *err);

/* Frees what the request owns and zeroes it; NULL is fine. */
void api_request_free(api_request *req);

#endif
