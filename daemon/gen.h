/* gen.h - the generation endpoints: POST /v1/chat/completions and
 * POST /v1/completions, streamed (SSE) or not.
 *
 * The connection is suspended while gen_prep.c parses and validates the
 * body (api/), applies the chat template, tokenizes and checks the context
 * on libuv's thread pool. Back on the loop thread, a job goes to the
 * scheduler, then the connection either waits until the job is done (one
 * JSON response) or streams its text as it is generated, suspending
 * whenever there is nothing to send. A client that goes away cancels its
 * job (or drops the preparation's result). A full scheduler is refused
 * (429) before any preparation. */
#ifndef HEARTH_GEN_H
#define HEARTH_GEN_H

#include <stdint.h>
#include <uv.h>

#include "chat.h"
#include "daemon/ids.h"
#include "http.h"
#include "model.h"
#include "routing.h"
#include "scheduler.h"
#include "tok.h"
#include "toolcall.h"

typedef struct gen_service {
    /* the local model; all NULL (s too) when none is loaded and upstreams
     * are configured */
    const char *model_id;
    const model *m;
    const tok_vocab *v;
    const chat_template *tmpl; /* never NULL when a model is loaded */
    int32_t turn_end;          /* the template's end-of-turn token, or -1 */
    api_tool_format tool_format; /* how the template's model writes tool
                                    calls; NONE: tools are refused */
    sched *s;
    int n_ctx;
    int n_slots;
    const int *ping_interval;  /* seconds; points into the live config */
    const int *request_timeout; /* seconds, 0: none; live config */
    uv_loop_t *loop;
    routing *rt;               /* never NULL */
    struct metrics *metrics;   /* GET /metrics (daemon/metrics.h); may be NULL */
    uint64_t n_requests;       /* requests handled */
    char fingerprint[IDS_FP_MAX]; /* system_fingerprint (daemon/ids.h), set
                                     with the model; "": none (JSON null) */
} gen_service;

int gen_chat(gen_service *g, http_req *r);
int gen_completion(gen_service *g, http_req *r);
/* POST /v1/messages (Anthropic) and /v1/messages/count_tokens, POST
 * /v1/responses: answered by the local model (the router forwards only the
 * OpenAI chat format). */
int gen_messages(gen_service *g, http_req *r);
int gen_count_tokens(gen_service *g, http_req *r);
int gen_responses(gen_service *g, http_req *r);

#endif
