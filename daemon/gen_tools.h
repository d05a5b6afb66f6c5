/* gen_tools.h - tool calls in a local answer: each choice's generated text
 * goes through api/toolcall.h's parser, which splits it into the text the
 * client sees and the calls, rendered through the request's dialect. Loop
 * thread only. */
#ifndef HEARTH_GEN_TOOLS_H
#define HEARTH_GEN_TOOLS_H

#include <stdbool.h>
#include <stddef.h>

#include "dialect.h"
#include "toolcall.h"

typedef struct gen_req gen_req;

/* One choice's parser and the text it let through. */
typedef struct gen_tools {
    api_toolparse tp;
    bool single;  /* parallel_tool_calls false: the first call only */
    char *text;
    size_t len, cap;
} gen_tools;

/* The parsers of a request whose tools are in play (n choices): *out NULL
 * when none are (nothing to do). 0, or -1 out of memory. */
int gen_tools_new(const gen_req *gr, int n, gen_tools **out);
void gen_tools_free(gen_tools *t, int n);

/* Streaming: new text of choice `index`; what became certain is rendered
 * into *pend through d (text deltas, calls). end: the choice ended (the
 * rest comes out). 0, or -1 on failure. */
int gen_tools_stream(gen_req *gr, gen_tools *t, const api_dialect *d, api_stream *st,
                     unsigned index, const char *s, size_t len, bool end);

/* Not streamed: the whole text at once. 0, or -1. */
int gen_tools_whole(gen_tools *t, const char *s, size_t len);

/* Fill c's text, calls and finish_reason ("tool_calls" when there are
 * calls and the choice ended by itself or at the call's end) from t. */
void gen_tools_choice(const gen_tools *t, api_choice *c);

#endif
