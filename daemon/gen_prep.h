/* gen_prep.h - a generation request from body to tokens, off the loop.
 *
 * Parsing up to max_body_size of JSON, rendering the chat template and
 * tokenizing the result take milliseconds to seconds; on the loop thread
 * they would stall every stream and /health meanwhile. gen.c runs
 * gen_prep_parse, then gen_prep_render once the model is resident, on
 * libuv's thread pool (uv_queue_work). They read only what the acquired
 * model makes immutable (its vocabulary, template, context) and write only
 * the gen_prep, so any number run at once. The chat template renders under limits that scale with the body,
 * so one request cannot spend more than its own size warrants. */
#ifndef HEARTH_GEN_PREP_H
#define HEARTH_GEN_PREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gen.h"
#include "json_grammar.h"
#include "request.h"
#include "score.h"
#include "toolcall.h"

typedef struct gen_prep {
    /* in */
    const gen_service *g;
    const resident_model *lm; /* the local model (render); NULL: none */
    api_kind kind;
    char *body;          /* owned; freed by gen_prep_run unless keep_body */
    size_t body_len;
    bool keep_body;      /* upstreams exist: the body may be forwarded */
    bool count_only;     /* POST /v1/messages/count_tokens: only the tokens */
    /* out: on success */
    api_request req;
    int32_t *ids;        /* owned: the prompt */
    int n_ids;           /* 1 .. n_ctx - 1 */
    int max_tokens;      /* >= 0 after the context's room */
    jgram *grammar;      /* owned: response_format's schema, compiled (or a
                            forced tool call's) */
    api_tool_format tool_format; /* calls to look for in the output; NONE
                            when the request has no tools in play */
    bool tool_forced;    /* tool_choice required/named: the prompt ends
                            with the call's opening, the grammar holds the
                            call's schema (req.json_schema) */
    char *echo;          /* completions with echo: the prompt text */
    size_t echo_len;
    /* out: for the router */
    char *model_name;    /* the request's "model", even when parsing failed */
    int64_t keep_alive;  /* the request's keep_alive (ms), RESIDENT_UNSET */
    bool unsupported;    /* failed on a feature the local server lacks */
    bool context;        /* failed: the prompt does not fit the context */
    bool no_local;       /* no local model: only parsed */
    bool tools;          /* tools or a structured response format asked */
    int privacy_kind;    /* keep_body: the first detector that fired, -1 none */
    double x[SF_COUNT];  /* the score's features (without device state) */
    bool parsed;         /* req holds the whole request (the body parsed) */
    /* out: on failure */
    bool failed;
    const char *type;    /* error type, NULL: derived from err.status */
    api_err err;
} gen_prep;

/* Parse and check the body (any thread). */
void gen_prep_parse(gen_prep *p);
/* Then, unless parsing failed, render and tokenize for p->lm (any
 * thread; p->lm NULL: there is no local model, only the router's
 * features are computed). */
void gen_prep_render(gen_prep *p);
/* The request's response_format compiled: *out NULL for plain text.
 * JGRAM_OK (0), or a jgram_status with err. */
int gen_prep_grammar(const api_request *q, jgram **out, char *err, size_t errlen);

/* Free what p owns (not p). */
void gen_prep_free(gen_prep *p);

/* Jinja limits for a request body of body_len bytes (exposed for tests). */
void gen_prep_limits(size_t body_len, jinja_limits *out);

#endif
