/* prompt.h - a chat turned into the token ids a model is prompted with:
 * the chat template rendered with the model's BOS and EOS texts, then
 * tokenized with special tokens parsed (the template's markup is made of
 * them), a BOS added only when the model wants one and the template did
 * not write it. Message content is text, always: the texts of special
 * tokens that come from the request (contents, tool calls and results,
 * the tools) are tokenized as text, so only the template's own markup
 * becomes control tokens (how: prompt.c, docs/chat-templates.md).
 * hearthd's requests, `hearth route` and the router's reference texts all
 * go through here, so they see the same tokens. */
#ifndef HEARTH_PROMPT_H
#define HEARTH_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "tok.h"

/* *ids is malloc'd; returns their count (>= 0), or -1 with err: the
 * template's own message (a raise_exception()) or "the prompt could not be
 * tokenized". *bad_template tells which (may be NULL). opts may be NULL. */
int prompt_chat_ids(const chat_template *t, const tok_vocab *v, const chat_msg *msgs, size_t n,
                    bool add_generation_prompt, const chat_opts *opts, int32_t **ids,
                    int *bad_template, char *err, size_t errlen);

#endif
