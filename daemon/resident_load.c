/* resident_load.c - one model from its GGUF file to something that can
 * serve: weights, tokenizer, chat template, end-of-turn token, tool-call
 * format and the router's reference NLL (any thread), then its scheduler
 * (loop thread). */
#include "daemon/resident_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "score.h"

/* A chat template from a file (at most 1 MiB), malloc'd; NULL with err. */
static char *read_template(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc((1u << 20) + 1) : NULL;
    size_t n = buf ? fread(buf, 1, (1u << 20) + 1, f) : 0;
    bool bad = !f || !buf || ferror(f) || n > (1u << 20) || memchr(buf, 0, n);
    if (f)
        fclose(f);
    if (bad) {
        snprintf(err, errlen, "chat_template %s: %s", path,
                 !f ? "cannot be opened" : !buf ? "out of memory"
                 : n > (1u << 20) ? "larger than 1 MiB" : "cannot be read as text");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* The chat template: the configured one (a built-in name or a file), else
 * the model's, else ChatML. A configured one that fails is an error; the
 * model's own falls back to ChatML with a warning. */
static int pick_template(resident_model *lm, const char *configured, char *err,
                         size_t errlen)
{
    const char *src = NULL;
    char *owned = NULL;
    char why[512];
    gguf_str gs;
    if (configured && strchr(configured, '/')) {
        owned = read_template(configured, err, errlen);
        if (!owned)
            return -1;
        src = owned;
        lm->tmpl_source = "from a file";
    } else if (configured) {
        src = chat_template_builtin(configured);
        if (!src) {
            snprintf(err, errlen, "chat_template: '%s' is not a built-in template (or a "
                     "path: it has no '/')", configured);
            return -1;
        }
        lm->tmpl_source = "configured";
    } else if (gguf_get_str(model_gguf(lm->m), "tokenizer.chat_template", &gs) == 0 &&
               gs.len > 0) {
        owned = strndup(gs.ptr, gs.len);
        src = owned;
        lm->tmpl_source = "the model's";
    } else {
        src = chat_template_builtin("chatml");
        lm->tmpl_source = "default (chatml)";
    }
    int trc = src ? chat_template_parse(src, &lm->tmpl, why, sizeof why) : -1;
    /* The token that ends an assistant turn, when the model has it and does
     * not already count it as end of generation (ChatML on a model whose
     * EOS is another token, for one). */
    lm->turn_end = -1;
    const char *stop_text = trc == 0 ? chat_template_stop(src) : NULL;
    if (stop_text) {
        int32_t id = tok_find(lm->v, stop_text);
        if (id >= 0 && !tok_is_eog(lm->v, id))
            lm->turn_end = id;
    }
    lm->tool_format = trc == 0 ? api_tool_format_of(src) : API_TOOLS_NONE;
    if (trc < 0 && owned && configured) { /* a file the config names */
        snprintf(err, errlen, "chat_template %s: %s", configured, why);
        free(owned);
        return -1;
    }
    if (trc < 0 && owned) {
        snprintf(lm->warning, sizeof lm->warning,
                 "the model's chat template cannot be used (%.400s); using chatml", why);
        const char *chatml = chat_template_builtin("chatml");
        trc = chat_template_parse(chatml, &lm->tmpl, why, sizeof why);
        lm->tmpl_source = "default (chatml), the model's failed to parse";
        lm->tool_format = api_tool_format_of(chatml);
    }
    free(owned);
    if (trc < 0) {
        snprintf(err, errlen, "chat template: %s", why);
        return -1;
    }
    return 0;
}

int resident_load_files(resident_model *lm, const char *configured, bool want_nll,
                        char *err, size_t errlen)
{
    char why[512];
    if (model_load(lm->path, &lm->m, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    ids_fingerprint(lm->fingerprint, PACKAGE_VERSION, lm->path);
    if (tok_load(model_gguf(lm->m), &lm->v, why, sizeof why) < 0) {
        snprintf(err, errlen, "tokenizer: %s", why);
        return -1;
    }
    if (pick_template(lm, configured, err, errlen) < 0)
        return -1;
    if (want_nll) {
        model_ctx *c = NULL;
        if (model_ctx_new(lm->m, 64, &c, why, sizeof why) == 0) {
            lm->nll_ref = score_reference_nll(lm->m, c, lm->tmpl, lm->v);
            model_ctx_free(c);
        }
    }
    return 0;
}

int resident_load_sched(resident_model *lm, const resident_params *p, char *err,
                        size_t errlen)
{
    const model_hparams *hp = model_hparams_of(lm->m);
    int n_ctx = p->context;
    if (n_ctx <= 0 || n_ctx > hp->n_ctx_train)
        n_ctx = hp->n_ctx_train;
    sched_params sp = {.n_slots = p->parallel, .n_ctx = n_ctx, .max_queue = p->max_queue,
                       .batch = 256, .threads = p->threads};
    if (sched_new(&lm->s, lm->m, lm->v, &sp, p->loop, err, errlen) < 0)
        return -1;
    lm->n_ctx = n_ctx;
    lm->n_slots = sp.n_slots;
    /* the KV cache in f16, keys and values, for every slot */
    uint64_t kv = 2ull * 2ull * (uint64_t)hp->n_layer * (uint64_t)hp->n_head_kv *
                  (uint64_t)hp->head_dim * (uint64_t)n_ctx * (uint64_t)sp.n_slots;
    lm->bytes = lm->file_bytes + kv;
    return 0;
}

void resident_load_free(resident_model *lm)
{
    if (!lm)
        return;
    sched_free(lm->s);
    chat_template_free(lm->tmpl);
    tok_free(lm->v);
    model_free(lm->m);
    free(lm->name);
    free(lm->path);
    free(lm);
}
