/* gen_prep.c - see gen_prep.h. */
#include "gen_prep.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "messages.h"
#include "msglimit.h"
#include "privacy_json.h"
#include "prompt.h"
#include "responses.h"
#include "tools.h"

static void fail(gen_prep *p, unsigned status, const char *type, const char *param,
                 const char *code, const char *fmt, ...)
{
    p->failed = true;
    p->type = type;
    p->err.status = status;
    snprintf(p->err.param, sizeof p->err.param, "%s", param ? param : "");
    snprintf(p->err.code, sizeof p->err.code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err.message, sizeof p->err.message, fmt, ap);
    va_end(ap);
}

void gen_prep_limits(size_t body_len, jinja_limits *out)
{
    /* Output: the messages three times over plus the template's own
     * text. Memory: the values one render makes. Steps: four per byte of
     * body on top of a fixed million (a step is a loop body, an expression
     * or 64 bytes copied). A 1 KiB chat gets 1 MiB / 16 MiB / 1 M steps,
     * the 8 MiB default maximum 25 MiB / 144 MiB / 35 M steps (well under a
     * second), instead of the library's 64 MiB / 512 MiB / 100 M. */
    size_t b = body_len < ((size_t)1 << 30) ? body_len : ((size_t)1 << 30);
    *out = (jinja_limits){.max_output = 3 * b + ((size_t)1 << 20),
                          .max_memory = 16 * b + ((size_t)16 << 20),
                          .max_steps = 1000000ull + 4ull * b,
                          .max_depth = 32};
}

static void context_fail(gen_prep *p, size_t n_prompt)
{
    p->context = true;
    static const char *const param[] = {"messages", "prompt", "messages", "input"};
    fail(p, 400, NULL, param[p->kind], "context_length_exceeded",
         "This model's context is %d tokens, but the prompt has %zu tokens "
         "(at least one more is needed to generate). Shorten the prompt.",
         p->lm->n_ctx, n_prompt);
}

/* Tools in play: the template must know them; a forced call (tool_choice
 * required or named) gets the call's opening for the prompt and its schema
 * as the grammar (req.json_schema). */
static int tools_setup(gen_prep *p, char **prefix)
{
    api_request *q = &p->req;
    if (q->n_tools == 0 || q->tool_choice == API_TOOL_NONE)
        return 0;
    if (p->lm->tool_format == API_TOOLS_NONE) {
        p->unsupported = true;
        fail(p, 400, NULL, "tools", API_CODE_UNSUPPORTED_PARAM,
             "this model's chat template does not support tools; configure one that "
             "does ([model] chat_template, docs/tools.md)");
        return -1;
    }
    p->tool_format = p->lm->tool_format;
    if (q->tool_choice != API_TOOL_REQUIRED && q->tool_choice != API_TOOL_NAMED)
        return 0;
    if (q->json_object || q->json_schema) {
        fail(p, 400, NULL, "tool_choice", API_CODE_UNSUPPORTED_VALUE,
             "a forced tool call (tool_choice %s) cannot be combined with a response "
             "format", q->tool_choice == API_TOOL_NAMED ? "naming a function" : "required");
        return -1;
    }
    char *schema = NULL;
    if (api_tool_forced(p->tool_format, q,
                        q->tool_choice == API_TOOL_NAMED ? q->tool_choice_name : NULL, prefix,
                        &schema, &p->err) < 0) {
        p->failed = true;
        p->type = NULL;
        p->unsupported = p->err.status == 400;
        return -1;
    }
    q->json_schema = schema;
    p->tool_forced = true;
    return 0;
}

/* Append text (the template's markup: special tokens parsed) to the
 * prompt. */
static int append_markup(gen_prep *p, const char *text)
{
    int32_t *more = NULL;
    int n = *text ? tok_encode_alloc(p->lm->v, text, strlen(text), false, true, &more) : 0;
    if (n < 0) {
        fail(p, 500, NULL, NULL, NULL, "the tool call's opening could not be tokenized");
        return -1;
    }
    int32_t *grown = n ? realloc(p->ids, (size_t)(p->n_ids + n) * sizeof *grown) : p->ids;
    if (!grown) {
        free(more);
        fail(p, 500, NULL, NULL, NULL, "out of memory");
        return -1;
    }
    if (n)
        memcpy(grown + p->n_ids, more, (size_t)n * sizeof *grown);
    p->ids = grown;
    p->n_ids += n;
    free(more);
    return 0;
}

/* Render the chat template and tokenize the result. */
static int chat_prompt(gen_prep *p)
{
    const resident_model *lm = p->lm;
    const api_request *q = &p->req;
    char err[512];
    char *prefix = NULL;
    if (tools_setup(p, &prefix) < 0)
        return -1;
    chat_msg *msgs = calloc(q->n_messages + 1, sizeof *msgs);
    char **extra = calloc(q->n_messages + 1, sizeof *extra);
    char *tools = p->tool_format != API_TOOLS_NONE ? api_tools_json(q) : NULL;
    bool oom = !msgs || !extra || (p->tool_format != API_TOOLS_NONE && !tools);
    for (size_t i = 0; !oom && i < q->n_messages; i++) {
        const api_message *m = &q->messages[i];
        msgs[i].role = api_role_name(m->role);
        /* an assistant turn that only calls tools has null content */
        msgs[i].content = m->tool_calls && m->content_len == 0 ? NULL : m->content;
        msgs[i].extra_json = extra[i] = api_message_extra_json(m, &oom);
    }
    int rc = -1;
    if (oom) {
        fail(p, 500, NULL, NULL, NULL, "out of memory");
        goto out;
    }
    chat_var var = {.name = "tools", .type = CHAT_VAR_JSON, .s = tools};
    chat_opts opts = {.vars = tools ? &var : NULL, .nvars = tools ? 1 : 0};
    gen_prep_limits(p->body_len, &opts.limits);
    int bad_template = 0;
    /* Anthropic's prefill: a conversation that ends with the assistant's
     * words is continued, not answered */
    bool prefill = p->kind == API_MESSAGES && q->n_messages > 0 &&
                   q->messages[q->n_messages - 1].role == API_ROLE_ASSISTANT;
    p->n_ids = prompt_chat_ids(lm->tmpl, lm->v, msgs, q->n_messages, !prefill, &opts, &p->ids,
                               &bad_template, err, sizeof err);
    if (p->n_ids >= 0) {
        rc = prefix ? append_markup(p, prefix) : 0;
    } else if (bad_template) {
        fail(p, 400, NULL, p->kind == API_RESPONSES ? "input" : "messages", "invalid_prompt",
             "%s", err);
    } else {
        fail(p, 400, NULL, p->kind == API_RESPONSES ? "input" : "messages", "invalid_prompt",
             "the prompt could not be tokenized");
    }
out:
    for (size_t i = 0; extra && i < q->n_messages; i++)
        free(extra[i]);
    free(extra);
    free(msgs);
    free(tools);
    free(prefix);
    return rc;
}

/* A completion's prompt: text or token ids. */
static int completion_prompt(gen_prep *p)
{
    const resident_model *lm = p->lm;
    const api_request *q = &p->req;
    if (!q->prompt_tokens) {
        p->n_ids = tok_encode_alloc(lm->v, q->prompt, q->prompt_len,
                                    tok_add_bos_default(lm->v), false, &p->ids);
        if (p->n_ids >= 0)
            return 0;
        fail(p, 400, NULL, "prompt", "invalid_prompt", "the prompt could not be tokenized");
        return -1;
    }
    int32_t nv = tok_n_vocab(lm->v);
    for (size_t i = 0; i < q->n_prompt_tokens; i++)
        if (q->prompt_tokens[i] >= nv) {
            fail(p, 400, NULL, "prompt", "invalid_value",
                 "prompt token %d is outside the vocabulary (0..%d)", q->prompt_tokens[i],
                 nv - 1);
            return -1;
        }
    if (q->n_prompt_tokens >= (size_t)lm->n_ctx) {
        context_fail(p, q->n_prompt_tokens);
        return -1;
    }
    p->ids = malloc(q->n_prompt_tokens * sizeof *p->ids);
    if (!p->ids) {
        fail(p, 500, NULL, NULL, NULL, "out of memory");
        return -1;
    }
    memcpy(p->ids, q->prompt_tokens, q->n_prompt_tokens * sizeof *p->ids);
    p->n_ids = (int)q->n_prompt_tokens;
    return 0;
}

/* Completions with echo: the prompt text, as given or as the tokenizer
 * decodes the given ids. */
static void echo_text(gen_prep *p)
{
    const api_request *q = &p->req;
    if (q->prompt) {
        p->echo = strndup(q->prompt, q->prompt_len);
        p->echo_len = p->echo ? q->prompt_len : 0;
        return;
    }
    long need = tok_decode(p->lm->v, p->ids, (size_t)p->n_ids, false, NULL, 0);
    p->echo = need >= 0 ? malloc((size_t)need + 1) : NULL;
    if (p->echo) {
        tok_decode(p->lm->v, p->ids, (size_t)p->n_ids, false, p->echo, (size_t)need + 1);
        p->echo[need] = '\0';
        p->echo_len = (size_t)need;
    }
}

/* The body as a tree, parsed once for what reads it beside the dialect's
 * parser (the router's facts, the privacy guard, keep_alive); NULL when it
 * is no JSON object or nothing needs it. NUL characters are allowed, as
 * router/forward.c allows them in what it forwards. */
static json_t *body_tree(const gen_prep *p)
{
    if (!p->body || !(p->keep_body || memmem(p->body, p->body_len, "\"keep_alive\"", 12)))
        return NULL;
    json_t *root = json_loadb(p->body, p->body_len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* What the router needs from the raw body, whatever the parser said: the
 * model name, whether tools or a structured format are asked for. */
static void raw_facts(gen_prep *p, json_t *root)
{
    if (!root)
        return;
    const char *m = json_string_value(json_object_get(root, "model"));
    if (m && !p->model_name)
        p->model_name = strdup(m);
    json_t *tools = json_object_get(root, "tools");
    json_t *rf = json_object_get(root, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    p->tools = (json_is_array(tools) && json_array_size(tools) > 0) ||
               json_object_get(root, "functions") || (rft && strcmp(rft, "text") != 0);
}

/* The privacy guard reads the whole body: every message, every field, as
 * sent and decoded (a "\u0040" is an '@' to whoever reads the value). A
 * scan that could not finish counts as a hit (custom). */
static void privacy_check(gen_prep *p, json_t *root)
{
    p->privacy_kind = -1;
    const privacy_set *set = p->g->rt->privacy;
    if (!set)
        return;
    int kind;
    if (privacy_json_check(set, p->body, p->body_len, root, &kind) != PRIVACY_OK)
        p->privacy_kind = PRIVACY_CUSTOM;
    else
        p->privacy_kind = kind;
}

static bool is_unsupported(const api_err *e)
{
    return strcmp(e->code, API_CODE_UNSUPPORTED_PARAM) == 0 ||
           strcmp(e->code, API_CODE_UNSUPPORTED_VALUE) == 0 ||
           strcmp(e->code, API_CODE_UNSUPPORTED_FORMAT) == 0;
}

static void features(gen_prep *p)
{
    score_input in = {.req = p->failed && !p->context ? NULL : &p->req, .tools = p->tools,
                      .n_prompt = p->n_ids, .n_ctx = p->lm ? p->lm->n_ctx : 0};
    score_features(&in, p->x);
}

int gen_prep_grammar(const api_request *q, jgram **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!q->json_object && !q->json_schema)
        return 0;
    if (!q->json_schema) {
        *out = jgram_any_object();
        if (!*out)
            snprintf(err, errlen, "out of memory");
        return *out ? 0 : JGRAM_ENOMEM;
    }
    return jgram_compile(q->json_schema, strlen(q->json_schema), out, err, errlen);
}

/* response_format: a schema this server cannot enforce is refused (or,
 * with upstreams, may be forwarded: it counts as unsupported). */
static int compile_format(gen_prep *p)
{
    char err[300];
    int st = gen_prep_grammar(&p->req, &p->grammar, err, sizeof err);
    if (st == JGRAM_OK)
        return 0;
    p->unsupported = st == JGRAM_EUNSUPPORTED;
    static const char *const format[] = {"response_format", "response_format",
                                         "output_format", "text.format"};
    const char *what = p->tool_forced ? "tools" : format[p->kind];
    fail(p, st == JGRAM_ENOMEM ? 500 : 400, NULL, what,
         st == JGRAM_EUNSUPPORTED ? "unsupported_schema" : "invalid_schema",
         "%s: %s", p->tool_forced ? "the tool's parameters" : what, err);
    features(p);
    return -1;
}

/* keep_alive (Ollama's): seconds as a number, a duration string ("5m"),
 * negative: forever. Read from the raw body, as every dialect takes it. */
static int keep_alive_of(gen_prep *p, json_t *root)
{
    p->keep_alive = RESIDENT_UNSET;
    json_t *v = json_object_get(root, "keep_alive");
    int rc = 0;
    if (json_is_number(v)) {
        double secs = json_number_value(v);
        p->keep_alive = secs < 0 ? RESIDENT_FOREVER
                        : secs > 9e12 ? (int64_t)9e15 : (int64_t)(secs * 1000.0);
    } else if (json_is_string(v)) {
        rc = resident_parse_duration(json_string_value(v), &p->keep_alive);
    } else if (v && !json_is_null(v)) {
        rc = -1;
    }
    if (rc < 0) {
        p->keep_alive = RESIDENT_UNSET;
        fail(p, 400, NULL, "keep_alive", "invalid_value",
             "keep_alive: a number of seconds, a duration such as \"5m\" or \"1h30m\", "
             "or -1 (keep loaded)");
    }
    return rc;
}

void gen_prep_parse(gen_prep *p)
{
    api_request *q = &p->req;
    p->privacy_kind = -1;
    int prc;
    const char *key;
    long n_msgs = msglimit_over(p->body, p->body_len, p->kind,
                                p->g->max_messages ? *p->g->max_messages : 0, &key);
    if (n_msgs) {
        fail(p, 400, NULL, key, "too_many_messages",
             "'%s' has %ld entries; this server accepts at most %d (max_messages)", key,
             n_msgs, *p->g->max_messages);
        free(p->body);
        p->body = NULL;
        return;
    }
    switch (p->kind) {
    case API_COMPLETION:
        prc = api_parse_completion(p->body, p->body_len, q, &p->err);
        break;
    case API_MESSAGES:
        prc = p->count_only ? api_parse_count_tokens(p->body, p->body_len, q, &p->err)
                            : api_parse_messages(p->body, p->body_len, q, &p->err);
        break;
    case API_RESPONSES:
        prc = api_parse_responses(p->body, p->body_len, q, &p->err);
        break;
    case API_CHAT:
    default:
        prc = api_parse_chat(p->body, p->body_len, q, &p->err);
        break;
    }
    json_t *root = body_tree(p);
    if (prc == 0 && keep_alive_of(p, root) < 0)
        prc = -1;
    if (p->keep_body) {
        raw_facts(p, root);
        privacy_check(p, root);
    } else {
        free(p->body);
        p->body = NULL;
    }
    json_decref(root);
    if (prc < 0) {
        p->failed = true;
        p->unsupported = is_unsupported(&p->err);
        if (p->unsupported)
            features(p);
        return;
    }
    p->parsed = true;
    if (q->model && !p->model_name)
        p->model_name = strdup(q->model);
}

void gen_prep_render(gen_prep *p)
{
    const resident_model *lm = p->lm;
    api_request *q = &p->req;
    if (p->failed)
        return;
    if (!lm) { /* no local model: the router forwards or refuses */
        p->no_local = true;
        features(p);
        return;
    }
    if ((p->kind == API_COMPLETION ? completion_prompt(p) : chat_prompt(p)) < 0) {
        if (p->context || p->unsupported)
            features(p);
        return;
    }
    if (p->n_ids == 0) {
        fail(p, 400, NULL, "prompt", "invalid_value", "the prompt is empty (no tokens)");
        return;
    }
    if (p->n_ids >= lm->n_ctx) {
        context_fail(p, (size_t)p->n_ids);
        features(p);
        return;
    }
    for (size_t i = 0; i < q->n_logit_bias; i++)
        if (q->logit_bias[i].id >= tok_n_vocab(lm->v)) {
            fail(p, 400, NULL, "logit_bias", "invalid_value",
                 "logit_bias: token %d is outside the vocabulary (0..%d)",
                 q->logit_bias[i].id, tok_n_vocab(lm->v) - 1);
            return;
        }
    if ((q->json_object || q->json_schema) && compile_format(p) < 0)
        return;
    if (p->kind == API_COMPLETION && q->echo)
        echo_text(p);
    int room = lm->n_ctx - p->n_ids;
    p->max_tokens = q->max_tokens < 0 || q->max_tokens > room ? room : (int)q->max_tokens;
    features(p);
}

void gen_prep_free(gen_prep *p)
{
    free(p->body);
    free(p->ids);
    free(p->echo);
    jgram_free(p->grammar);
    p->grammar = NULL;
    free(p->model_name);
    api_request_free(&p->req);
    p->model_name = NULL;
    p->body = NULL;
    p->ids = NULL;
    p->echo = NULL;
}
