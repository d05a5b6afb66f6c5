/* gen_translate.h - a Messages or Responses request answered by an
 * OpenAI-compatible upstream: its chat answer rendered in the client's
 * dialect (gen_translate.c). */
#ifndef HEARTH_GEN_TRANSLATE_H
#define HEARTH_GEN_TRANSLATE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct gen_req gen_req;

/* The request's dialect is not the upstream's: its answer is translated. */
bool gen_translating(const gen_req *gr);
/* Streaming: the relay's queued events become the dialect's events in
 * gr->pend. 0, or -1 out of memory. */
int gen_translate_pull(gen_req *gr);
/* A whole answer (or the upstream's error body) with its status: respond
 * in the client's dialect. A handler's return code. */
int gen_translate_full(gen_req *gr, const char *json, size_t len, unsigned status);
void gen_translate_free(gen_req *gr);

#endif
