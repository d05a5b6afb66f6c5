/* gen_internal.h - one generation request as the files of the generation
 * endpoints share it: gen.c (the local answer), gen_route.c (where it
 * goes) and gen_cloud.c (the forwarded answer). Loop thread only. */
#ifndef HEARTH_GEN_INTERNAL_H
#define HEARTH_GEN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloud.h"
#include "dialect.h"
#include "gen.h"
#include "gen_prep.h"
#include "from_chat.h"
#include "gen_tools.h"
#include "gen_translate.h"
#include "policy.h"
#include "privacy.h"
#include "relay.h"
#include "response.h"
#include "upstream.h"

typedef struct gen_req {
    gen_service *g;
    http_req *r;
    gen_prep prep;       /* the parsed request (prep.req) and its prompt */
    resident_model *lm;  /* the local model acquired, NULL: none */
    resident_wait wait;  /* while the model loads */
    char load_err[700];  /* the model failed to load */
    uv_work_t work;      /* the preparation, on libuv's thread pool */
    bool preparing;      /* work queued and not back yet */
    bool orphaned;       /* the connection ended while preparing */
    sched_job *job;
    char id[API_ID_MAX];
    int64_t created;
    /* streaming (local and cloud) */
    char *pend;          /* bytes rendered, not yet handed to MHD */
    size_t pend_len, pend_off, pend_cap;
    bool sent_head;      /* the first chunk (role / echo) */
    bool *finish_sent;   /* per choice */
    bool done_sent;
    bool ping_due;
    uv_timer_t *ping;
    uv_timer_t *deadline; /* request_timeout */
    bool timed_out;
    api_stream st;       /* the dialect's view of this response */
    gen_tools *tools;    /* per choice, when tools are in play (streamed) */
    /* routing (gen_route.c) */
    policy_out pol;
    upstream *up;        /* the cloud target */
    bool awaiting_score; /* a held job measures the prompt's NLL */
    uint64_t t_local_ns; /* when the local job was submitted */
    /* cloud (gen_cloud.c) */
    cloud_req *creq;     /* NULL when not running */
    relay *rl;
    api_from_chat *fc;   /* Messages/Responses: the chat answer translated */
    privacy_map *map;    /* redaction: placeholders and originals */
    long c_status;       /* the upstream's HTTP status, 0 until known */
    char *cbuf;          /* non-streamed or error body */
    size_t cbuf_len, cbuf_cap;
    bool c_done;         /* the transfer ended */
    bool c_failed;       /* it ended without a complete answer */
    char c_err[160];
    bool c_started;      /* the client's response is queued */
    bool c_accounted;    /* health, budget and log done */
    bool client_usage;   /* the client asked for usage in the stream */
} gen_req;

/* gen.c */
/* Cancel the request's job, if any (harmless once the server stopped). */
void gen_cancel_job(gen_req *gr);
int gen_pend_add(gen_req *gr, const char *s, size_t n);
/* Queue rendered bytes and free them (NULL: out of memory, -1). */
int gen_pend_take(gen_req *gr, char *bytes);
/* Hand up to max queued bytes to MHD's buffer; the count. */
size_t gen_pend_out(gen_req *gr, char *buf, size_t max);
/* An error response in the request's dialect (api/dialect.h). */
int gen_error(gen_req *gr, unsigned status, const char *type, const char *message,
              const char *param, const char *code);
/* The local answer: build and submit the job, then respond (stream or
 * wait). From a handler or on_resume callback. */
int gen_local_start(gen_req *gr);
/* A job already submitted (held, then released): respond. */
int gen_local_respond(gen_req *gr);
/* Build and submit a job for the prepared request (hold: stop after the
 * prefill, measuring the prompt's NLL). Returns a handler's rc when the
 * submit failed and the error is queued, 1 on success. */
int gen_local_submit(gen_req *gr, bool hold);
/* The error the preparation ended with. */
int gen_prep_error(gen_req *gr);

/* gen_route.c: the prepared request goes where the policy says. */
int gen_route(gen_req *gr);
/* A held job has prefilled: score with its NLL and go on. */
int gen_route_scored(http_req *r, void *user);

/* gen_cloud.c */
int gen_cloud_start(gen_req *gr);
void gen_cloud_free(gen_req *gr);
void gen_cloud_disconnect(gen_req *gr);

#endif
