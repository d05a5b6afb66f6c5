/* prompt.c - see prompt.h. */
#include "prompt.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The text of a special token, "" when the model has none. */
static void token_text(const tok_vocab *v, int32_t id, char *buf, size_t cap)
{
    int n = id >= 0 ? tok_piece(v, id, true, buf, cap - 1) : 0;
    buf[n > 0 && (size_t)n < cap ? n : 0] = '\0';
}

int prompt_chat_ids(const chat_template *t, const tok_vocab *v, const chat_msg *msgs, size_t n,
                    bool add_generation_prompt, const chat_opts *opts, int32_t **ids,
                    int *bad_template, char *err, size_t errlen)
{
    char bos[64], eos[64];
    token_text(v, tok_bos(v), bos, sizeof bos);
    token_text(v, tok_eos(v), eos, sizeof eos);
    if (bad_template)
        *bad_template = 0;
    *ids = NULL;
    char *text = chat_template_apply_opts(t, msgs, n, add_generation_prompt, bos, eos, opts, err,
                                          errlen);
    if (!text) {
        if (bad_template)
            *bad_template = 1;
        return -1;
    }
    bool add_bos = tok_add_bos_default(v) && !(bos[0] && strncmp(text, bos, strlen(bos)) == 0);
    int k = tok_encode_alloc(v, text, strlen(text), add_bos, true, ids);
    free(text);
    if (k < 0)
        snprintf(err, errlen, "the prompt could not be tokenized");
    return k;
}
