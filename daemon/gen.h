/* gen.h - the generation endpoints: POST /v1/chat/completions and
 * POST /v1/completions, streamed (SSE) or not.
 *
 * On the loop thread: parse and validate (api/), apply the chat template,
 * tokenize, check the context, submit a job to the scheduler, then either
 * suspend the connection until the job is done (one JSON response) or
 * stream its text as it is generated, suspending whenever there is nothing
 * to send. A client that goes away cancels its job. */
#ifndef HEARTH_GEN_H
#define HEARTH_GEN_H

#include <stdint.h>
#include <uv.h>

#include "chat.h"
#include "http.h"
#include "model.h"
#include "scheduler.h"
#include "tok.h"

typedef struct gen_service {
    const char *model_id;
    const model *m;
    const tok_vocab *v;
    const chat_template *tmpl; /* never NULL when a model is loaded */
    int32_t turn_end;          /* the template's end-of-turn token, or -1 */
    sched *s;
    int n_ctx;
    const int *ping_interval;  /* seconds; points into the live config */
    const int *request_timeout; /* seconds, 0: none; live config */
    uv_loop_t *loop;
    uint64_t n_requests;       /* for response ids */
} gen_service;

int gen_chat(gen_service *g, http_req *r);
int gen_completion(gen_service *g, http_req *r);

#endif
