/* hearth_route.c - `hearth route`: the router's complexity score of a
 * prompt, feature by feature, as hearthd computes it for model "auto".
 *
 *   hearth route -m MODEL [--json] [--weights FILE] [--threshold X]
 *                [--context N] [--nll-max-tokens N] [--sysfs-root DIR]
 *                [--battery-min PCT] PROMPT
 *   hearth route -m MODEL --batch FILE.jsonl   (one JSON result per line)
 *
 * PROMPT becomes one user message. A batch line is an object with a
 * "request" (a /v1/chat/completions body) and optionally "id" (echoed).
 * The decision is the score's and the context's (the daemon adds the
 * upstreams' health, budgets, privacy and its queue).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "device.h"
#include "gguf.h"
#include "model.h"
#include "nll.h"
#include "prompt.h"
#include "request.h"
#include "score.h"
#include "tok.h"
#include "tools/hearth.h"

int hearth_cmd_route(int argc, char **argv);

static const char route_help[] =
    "Usage: hearth route -m MODEL [OPTIONS] PROMPT\n"
    "       hearth route -m MODEL --batch FILE.jsonl [OPTIONS]\n"
    "The router's complexity score of a prompt (0..1, higher = more in need of\n"
    "the cloud): each feature's value and contribution, and the decision.\n\n"
    "  -m, --model MODEL       the local model: a GGUF file or a store name\n"
    "      --json              one JSON object: score, decision, reason, features\n"
    "      --batch FILE        JSON lines {\"id\":..., \"request\": {chat body}}; '-' = stdin\n"
    "      --weights FILE      score weights (default: built in)\n"
    "      --threshold X       decision threshold 0..1 (default: the weights')\n"
    "      --context N         the local context in tokens (default 4096, capped\n"
    "                          at the model's)\n"
    "      --nll-max-tokens N  measure the NLL up to N prompt tokens; 0 = off\n"
    "                          (default 1024)\n"
    "      --sysfs-root DIR    battery and thermal state from DIR (default /sys)\n"
    "      --battery-min PCT   battery level below which it counts (default 20)\n";

typedef struct route_ctx {
    model *m;
    tok_vocab *v;
    chat_template *tmpl;
    model_ctx *mc;
    score_weights w;
    double threshold;
    int n_ctx, nll_max;
    double nll_ref;
    device_state dev;
    bool battery_low;
    bool json;
} route_ctx;

static int err_line(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "hearth route: ");
    fprintf(stderr, fmt, a, b ? b : "");
    fputc('\n', stderr);
    return 1;
}

/* The chat template's rendering of the request, tokenized as hearthd does. */
static int prompt_ids(route_ctx *c, const api_request *q, int32_t **ids, char *err,
                      size_t errlen)
{
    chat_msg *msgs = calloc(q->n_messages, sizeof *msgs);
    if (!msgs)
        return -1;
    for (size_t i = 0; i < q->n_messages; i++) {
        msgs[i].role = api_role_name(q->messages[i].role);
        msgs[i].content = q->messages[i].content;
    }
    int n = prompt_chat_ids(c->tmpl, c->v, msgs, q->n_messages, true, NULL, ids, NULL, err,
                            errlen);
    free(msgs);
    return n;
}

/* Score one chat body; the result as a JSON object (NULL: out of memory). */
static json_t *route_one(route_ctx *c, json_t *body)
{
    char err[512];
    json_t *tools = json_object_get(body, "tools");
    json_t *rf = json_object_get(body, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    bool want_tools = (json_is_array(tools) && json_array_size(tools) > 0) ||
                      (rft && strcmp(rft, "text") != 0);
    /* the local parser refuses what it cannot serve; the score only
     * notes that it was asked */
    json_t *b = json_deep_copy(body);
    json_object_del(b, "tools");
    json_object_del(b, "tool_choice");
    json_object_del(b, "response_format");
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    api_request q;
    api_err ae;
    if (!s || api_parse_chat(s, strlen(s), &q, &ae) != 0) {
        free(s);
        return json_pack("{s:s}", "error", ae.message);
    }
    free(s);
    int32_t *ids = NULL;
    int n = prompt_ids(c, &q, &ids, err, sizeof err);
    if (n < 0) {
        api_request_free(&q);
        return json_pack("{s:s}", "error", err);
    }
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    score_input in = {.req = &q, .tools = want_tools, .n_prompt = n, .n_ctx = c->n_ctx,
                      .battery_low = c->battery_low, .thermal = c->dev.thermal,
                      .queue_wait_max = 1};
    double x[SF_COUNT], contrib[SF_COUNT];
    score_features(&in, x);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double nll = 0;
    int ns = 0;
    if (c->nll_ref > 0 && n <= c->nll_max && n < c->n_ctx &&
        nll_prompt(c->m, c->mc, ids, n, NLL_MAX_SAMPLES, &nll, &ns, err, sizeof err) == 0 &&
        ns > 0) {
        in.has_nll = true;
        in.nll_ratio = nll / c->nll_ref;
        score_set_state(&in, x);
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    free(ids);
    api_request_free(&q);
    double score = score_combine(&c->w, x, contrib);
    const char *decision = score >= c->threshold ? "cloud" : "local";
    char reason[64];
    snprintf(reason, sizeof reason, "score=%.2f", score);
    if (n >= c->n_ctx) {
        decision = "cloud";
        snprintf(reason, sizeof reason, "context");
    }
    json_t *feat = json_object();
    for (int f = 0; f < SF_COUNT; f++)
        json_object_set_new(feat, score_feature_name((score_feature)f),
                            json_pack("{s:f, s:f, s:f}", "value", x[f], "weight", c->w.w[f],
                                      "contribution", contrib[f]));
    double feat_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    double nll_ms = (double)(t2.tv_sec - t1.tv_sec) * 1e3 + (double)(t2.tv_nsec - t1.tv_nsec) / 1e6;
    return json_pack("{s:f, s:s, s:s, s:f, s:f, s:o, s:i, s:{s:f, s:i, s:f}, s:{s:f, s:f}}",
                     "score", score, "decision", decision, "reason", reason, "threshold",
                     c->threshold, "bias", c->w.bias, "features", feat, "prompt_tokens", n,
                     "nll", "mean", nll, "samples", ns, "reference", c->nll_ref, "cost_ms",
                     "features", feat_ms, "nll", nll_ms);
}

static void print_text(const json_t *r)
{
    if (json_object_get(r, "error")) {
        printf("error: %s\n", json_string_value(json_object_get(r, "error")));
        return;
    }
    printf("score     %.3f (threshold %.2f) -> %s (%s)\n",
           json_real_value(json_object_get(r, "score")),
           json_real_value(json_object_get(r, "threshold")),
           json_string_value(json_object_get(r, "decision")),
           json_string_value(json_object_get(r, "reason")));
    printf("%-18s %9s %9s %9s\n", "feature", "value", "weight", "contrib");
    printf("%-18s %9s %9s %9.3f\n", "(bias)", "", "", json_real_value(json_object_get(r, "bias")));
    for (int f = 0; f < SF_COUNT; f++) {
        const char *k = score_feature_name((score_feature)f);
        json_t *v = json_object_get(json_object_get(r, "features"), k);
        printf("%-18s %9.3f %9.3f %9.3f\n", k, json_real_value(json_object_get(v, "value")),
               json_real_value(json_object_get(v, "weight")),
               json_real_value(json_object_get(v, "contribution")));
    }
    json_t *nll = json_object_get(r, "nll"), *cost = json_object_get(r, "cost_ms");
    printf("prompt    %lld tokens; NLL %.3f nats/token over %lld positions (reference "
           "%.3f)\n",
           (long long)json_integer_value(json_object_get(r, "prompt_tokens")),
           json_real_value(json_object_get(nll, "mean")),
           (long long)json_integer_value(json_object_get(nll, "samples")),
           json_real_value(json_object_get(nll, "reference")));
    printf("cost      features %.3f ms, NLL %.1f ms\n",
           json_real_value(json_object_get(cost, "features")),
           json_real_value(json_object_get(cost, "nll")));
}

static void emit(route_ctx *c, json_t *r)
{
    if (c->json) {
        char *s = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(6));
        if (s)
            puts(s);
        free(s);
    } else
        print_text(r);
}

static int run_batch(route_ctx *c, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f)
        return err_line("%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, bad = 0;
    c->json = true;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (!o) {
            if (strspn(line, " \t\r\n") == (size_t)len)
                continue;
            printf("{\"line\":%d,\"error\":\"not JSON\"}\n", lineno);
            bad++;
            continue;
        }
        json_t *req = json_object_get(o, "request");
        json_t *r = json_is_object(req) ? route_one(c, req)
                                        : json_pack("{s:s}", "error", "no \"request\" object");
        json_t *id = json_object_get(o, "id");
        if (r && id)
            json_object_set(r, "id", id);
        if (r && json_object_get(r, "error"))
            bad++;
        if (r)
            emit(c, r);
        json_decref(r);
        json_decref(o);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return bad ? 1 : 0;
}

static int load(route_ctx *c, const char *arg, char *err, size_t errlen)
{
    char mbuf[1100];
    const char *path = hearth_model_file(arg, mbuf, sizeof mbuf);
    if (model_load(path, &c->m, err, errlen) < 0 || tok_load(model_gguf(c->m), &c->v, err, errlen) < 0)
        return -1;
    gguf_str gs;
    char *owned = NULL;
    if (gguf_get_str(model_gguf(c->m), "tokenizer.chat_template", &gs) == 0 && gs.len > 0)
        owned = strndup(gs.ptr, gs.len);
    int rc = owned ? chat_template_parse(owned, &c->tmpl, err, errlen) : -1;
    free(owned);
    if (rc < 0 && chat_template_parse(chat_template_builtin("chatml"), &c->tmpl, err, errlen) < 0)
        return -1;
    int ctx_train = model_hparams_of(c->m)->n_ctx_train;
    if (c->n_ctx <= 0 || c->n_ctx > ctx_train)
        c->n_ctx = ctx_train;
    if (model_ctx_new(c->m, 64, &c->mc, err, errlen) != 0)
        return -1;
    /* the model's NLL on plain prose, as hearthd measures it at load */
    c->nll_ref = score_reference_nll(c->m, c->mc, c->tmpl, c->v);
    return 0;
}

static const char *value_of(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "hearth route: %s needs a value (see 'hearth route --help')\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int hearth_cmd_route(int argc, char **argv)
{
    const char *path = NULL, *prompt = NULL, *batch = NULL, *weights = NULL;
    const char *sysfs = "/sys";
    route_ctx c = {.n_ctx = 4096, .nll_max = 1024, .threshold = -1};
    int battery_min = 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char *end = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(route_help, stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            c.json = true;
        } else if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (!(path = value_of(argc, argv, &i)))
                return 2;
        } else if (strcmp(a, "--batch") == 0) {
            if (!(batch = value_of(argc, argv, &i)))
                return 2;
        } else if (strcmp(a, "--weights") == 0) {
            if (!(weights = value_of(argc, argv, &i)))
                return 2;
        } else if (strcmp(a, "--sysfs-root") == 0) {
            if (!(sysfs = value_of(argc, argv, &i)))
                return 2;
        } else if (strcmp(a, "--threshold") == 0 || strcmp(a, "--context") == 0 ||
                   strcmp(a, "--nll-max-tokens") == 0 || strcmp(a, "--battery-min") == 0) {
            if (!(v = value_of(argc, argv, &i)))
                return 2;
            errno = 0;
            double d = strtod(v, &end);
            bool thr = strcmp(a, "--threshold") == 0;
            if (end == v || *end || errno || (thr ? !(d >= 0 && d <= 1) : !(d >= 0 && d <= 1e7) || d != floor(d))) {
                fprintf(stderr, "hearth route: %s: '%s' is not %s (see 'hearth route --help')\n",
                        a, v, thr ? "a number in 0..1" : "a whole number >= 0");
                return 2;
            }
            if (thr)
                c.threshold = d;
            else if (strcmp(a, "--context") == 0)
                c.n_ctx = (int)d;
            else if (strcmp(a, "--nll-max-tokens") == 0)
                c.nll_max = (int)d;
            else
                battery_min = (int)d;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "hearth route: unknown flag '%s' (see 'hearth route --help')\n", a);
            return 2;
        } else if (prompt) {
            fprintf(stderr, "hearth route: one PROMPT argument only (quote it)\n");
            return 2;
        } else
            prompt = a;
    }
    if (!path || (!prompt && !batch) || (prompt && batch)) {
        fprintf(stderr, "hearth route: %s (see 'hearth route --help')\n",
                !path ? "no model given (-m MODEL)"
                      : prompt ? "PROMPT and --batch exclude each other" : "no PROMPT given");
        return 2;
    }
    char err[512];
    if (score_weights_load(weights, &c.w, err, sizeof err) != 0)
        return err_line("%s%s", err, NULL);
    if (c.threshold < 0)
        c.threshold = c.w.threshold;
    device_read(sysfs, battery_min, &c.dev);
    c.battery_low = c.dev.battery_low;
    int rc = 1;
    if (load(&c, path, err, sizeof err) != 0) {
        err_line("%s: %s", path, err);
        goto out;
    }
    if (batch)
        rc = run_batch(&c, batch);
    else {
        json_t *body = json_pack("{s:[{s:s, s:s}]}", "messages", "role", "user", "content", prompt);
        json_t *r = body ? route_one(&c, body) : NULL;
        json_decref(body);
        if (r) {
            emit(&c, r);
            rc = json_object_get(r, "error") ? 1 : 0;
        }
        json_decref(r);
    }
out:
    model_ctx_free(c.mc);
    chat_template_free(c.tmpl);
    tok_free(c.v);
    model_free(c.m);
    return rc;
}
