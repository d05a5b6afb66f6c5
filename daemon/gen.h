/* gen.h - the generation endpoints: POST /v1/chat/completions and
 * POST /v1/completions, streamed (SSE) or not.
 *
 * The connection is suspended while gen_prep.c parses and validates the
 * body (api/) on libuv's thread pool. Back on the loop thread, the model
 * the request names is acquired (daemon/resident.h: loaded first when it
 * is not resident, the request waiting meanwhile); then the chat template
 * is applied, the prompt tokenized and the context checked on the pool
 * again. Back on the loop thread, a job goes to the model's scheduler, then the connection either waits until the job is done (one
 * JSON response) or streams its text as it is generated, suspending
 * whenever there is nothing to send. A client that goes away cancels its
 * job (or drops the preparation's result). A full scheduler is refused
 * (429) before any preparation. */
#ifndef HEARTH_GEN_H
#define HEARTH_GEN_H

#include <stdint.h>
#include <uv.h>

#include "chat.h"
#include "http.h"
#include "daemon/resident.h"
#include "model.h"
#include "routing.h"
#include "scheduler.h"
#include "tok.h"
#include "toolcall.h"

typedef struct gen_service {
    /* the local models, by name (daemon/resident.h); a request acquires
     * one for its lifetime */
    resident *res;
    const int *ping_interval;  /* seconds; points into the live config */
    const int *request_timeout; /* seconds, 0: none; live config */
    const int *max_messages;    /* per request, 0: no limit; live config */
    uv_loop_t *loop;
    routing *rt;               /* never NULL */
    struct metrics *metrics;   /* GET /metrics (daemon/metrics.h); may be NULL */
    uint64_t n_requests;       /* requests handled */
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
