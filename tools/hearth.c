/* hearth.c - the command-line companion of hearthd.
 *
 *   hearth run       generate text from a prompt
 *   hearth info      describe a GGUF model
 *   hearth tokenize  show the token ids of a text
 *   hearth quantize  convert a model's weights to a smaller type
 *   hearth bench     measure prompt and generation speed
 *   hearth route     score a prompt as the router does (hearth_route.c)
 *   hearth pull, list, rm, show   the model store (hearth_store.c)
 *
 * Exit status: 0 success, 1 failure (bad file, out of memory...), 2 usage
 * (unknown command or flag, bad value). Every error is one line on stderr.
 * New commands (bench, route) join the table at the end of this file.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tools/hearth.h"
#include "gguf.h"
#include "kernels.h"
#include "kv.h"
#include "model.h"
#include "quant.h"
#include "sampler.h"
#include "tok.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "dev"
#endif

/* ------------------------------------------------------------ helpers */

static int usage_error_count;

/* One line on stderr, and the status is 2. */
void die_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "hearth%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'hearth %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
    usage_error_count++;
}

int fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "hearth %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILURE;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_float(const char *s, double lo, double hi, float *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi))
        return false;
    *out = (float)v;
    return true;
}

/* "1.17 MiB" */
void fmt_bytes(char *buf, size_t cap, uint64_t n)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, cap, "%.2f %s", v, unit[u]);
}

/* "260.6K", "56.1M", "7.24B" */
static void fmt_count(char *buf, size_t cap, uint64_t n)
{
    if (n >= 1000000000ULL)
        snprintf(buf, cap, "%.2fB", (double)n / 1e9);
    else if (n >= 1000000ULL)
        snprintf(buf, cap, "%.1fM", (double)n / 1e6);
    else if (n >= 1000ULL)
        snprintf(buf, cap, "%.1fK", (double)n / 1e3);
    else
        snprintf(buf, cap, "%llu", (unsigned long long)n);
}

/* The value of a flag: "--flag value" or "--flag=value". *i advances past
 * what was used. NULL (and a usage error) when the value is missing. */
const char *flag_value(const char *cmd, int argc, char **argv, int *i, const char *inline_val)
{
    if (inline_val)
        return inline_val;
    if (*i + 1 >= argc) {
        die_usage(cmd, "flag %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* Splits "--name=value" into name and value; returns true when argv[i]
 * is the flag `name` (or its short form). */
bool is_flag(const char *arg, const char *lng, const char *shrt, const char **inline_val)
{
    *inline_val = NULL;
    if (shrt && strcmp(arg, shrt) == 0)
        return true;
    size_t n = strlen(lng);
    if (strncmp(arg, lng, n) != 0)
        return false;
    if (arg[n] == 0)
        return true;
    if (arg[n] == '=') {
        *inline_val = arg + n + 1;
        return true;
    }
    return false;
}

bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    }
    return false;
}

/* Writes all of buf to stdout; false on a write error (closed pipe...). */
static bool out_write(const char *buf, size_t n)
{
    return n == 0 || fwrite(buf, 1, n, stdout) == n;
}

/* ------------------------------------------------------------ run */

static const char run_help[] =
    "usage: hearth run -m MODEL -p PROMPT [options]\n"
    "\n"
    "Print PROMPT, then stream the generated continuation to stdout. A timing\n"
    "summary goes to stderr.\n"
    "\n"
    "  -m, --model MODEL       GGUF file or store name (llama or qwen2 architecture)\n"
    "  -p, --prompt TEXT       prompt text (tokenized with the model's own\n"
    "                          tokenizer, BOS added when the model asks for it)\n"
    "  -n, --n-predict N       generate at most N tokens (default 256)\n"
    "      --temp T            temperature; 0 = greedy, the default: the same\n"
    "                          prompt always gives the same text\n"
    "      --top-k K           (temp > 0) keep the K most likely tokens;\n"
    "                          0 = off (default 40)\n"
    "      --top-p P           (temp > 0) nucleus sampling; 1 = off (default 0.95)\n"
    "      --min-p P           (temp > 0) drop tokens below P x the best;\n"
    "                          0 = off (default 0.05)\n"
    "      --seed S            (temp > 0) random seed (default: from the clock;\n"
    "                          printed in the summary)\n"
    "      --repeat-penalty R  divide (multiply) the positive (negative) logits\n"
    "                          of recent tokens by R; 1 = off (default 1)\n"
    "      --repeat-last-n N   tokens the penalty looks back on (default 64)\n"
    "  -c, --ctx N             context size in tokens (default: prompt + N,\n"
    "                          at most the model's training context)\n"
    "      --kv-f32            keep the KV cache in F32 instead of F16\n"
    "  -b, --batch N           prompt tokens per forward pass (default 512)\n"
    "  -h, --help              show this help\n"
    "\n"
    "Generation stops at an end-of-generation token, after N tokens, or when\n"
    "the context is full.\n";

typedef struct run_opts {
    const char *model, *prompt;
    long n_predict, ctx, batch;
    bool kv_f32, seed_set;
    sampler_params sp;
} run_opts;

static int parse_run(int argc, char **argv, run_opts *o)
{
    const char *cmd = "run";
    memset(o, 0, sizeof *o);
    o->n_predict = 256;
    o->batch = 512;
    sampler_params_default(&o->sp);
    o->sp.temp = 0.0f; /* greedy unless asked: reproducible by default */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *iv, *v;
        long lv;
        if (is_flag(a, "--model", "-m", &iv)) {
            if (!(o->model = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
        } else if (is_flag(a, "--prompt", "-p", &iv)) {
            if (!(o->prompt = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
        } else if (is_flag(a, "--n-predict", "-n", &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_long(v, 0, INT32_MAX, &o->n_predict)) {
                die_usage(cmd, "bad value for %s: '%s' (a count >= 0)", a, v);
                return -1;
            }
        } else if (is_flag(a, "--temp", NULL, &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_float(v, 0.0, 100.0, &o->sp.temp)) {
                die_usage(cmd, "bad value for --temp: '%s' (0 to 100)", v);
                return -1;
            }
        } else if (is_flag(a, "--top-k", NULL, &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_long(v, 0, INT32_MAX, &lv)) {
                die_usage(cmd, "bad value for --top-k: '%s' (a count >= 0)", v);
                return -1;
            }
            o->sp.top_k = (int32_t)lv;
        } else if (is_flag(a, "--top-p", NULL, &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_float(v, 0.0, 1.0, &o->sp.top_p)) {
                die_usage(cmd, "bad value for --top-p: '%s' (0 to 1)", v);
                return -1;
            }
        } else if (is_flag(a, "--min-p", NULL, &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_float(v, 0.0, 1.0, &o->sp.min_p)) {
                die_usage(cmd, "bad value for --min-p: '%s' (0 to 1)", v);
                return -1;
            }
        } else if (is_flag(a, "--repeat-penalty", NULL, &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_float(v, 0.01, 100.0, &o->sp.repeat_penalty)) {
                die_usage(cmd, "bad value for --repeat-penalty: '%s' (0.01 to 100)", v);
                return -1;
            }
        } else if (is_flag(a, "--repeat-last-n", NULL, &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_long(v, 0, 8192, &lv)) {
                die_usage(cmd, "bad value for --repeat-last-n: '%s' (0 to 8192)", v);
                return -1;
            }
            o->sp.penalty_last_n = (int32_t)lv;
        } else if (is_flag(a, "--seed", NULL, &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_u64(v, &o->sp.seed)) {
                die_usage(cmd, "bad value for --seed: '%s' (an integer >= 0)", v);
                return -1;
            }
            o->seed_set = true;
        } else if (is_flag(a, "--ctx", "-c", &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_long(v, 1, 1 << 24, &o->ctx)) {
                die_usage(cmd, "bad value for --ctx: '%s' (1 to 16777216)", v);
                return -1;
            }
        } else if (is_flag(a, "--batch", "-b", &iv)) {
            if (!(v = flag_value(cmd, argc, argv, &i, iv)))
                return -1;
            if (!parse_long(v, 1, 65536, &o->batch)) {
                die_usage(cmd, "bad value for --batch: '%s' (1 to 65536)", v);
                return -1;
            }
        } else if (strcmp(a, "--kv-f32") == 0) {
            o->kv_f32 = true;
        } else {
            die_usage(cmd, "unknown argument '%s'", a);
            return -1;
        }
    }
    if (!o->model) {
        die_usage(cmd, "no model given (-m MODEL)");
        return -1;
    }
    if (!o->prompt) {
        die_usage(cmd, "no prompt given (-p PROMPT)");
        return -1;
    }
    if (!o->seed_set)
        o->sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return 0;
}

/* Streams one token's text; false on an output error. */
static bool emit_token(tok_stream *ts, const tok_vocab *v, int32_t id,
                       char **buf, size_t *cap)
{
    int need = tok_piece(v, id, false, NULL, 0);
    if (need < 0)
        return true; /* not a token of the vocabulary: nothing to show */
    size_t want = (size_t)need + 64;
    if (want > *cap) {
        char *nb = realloc(*buf, want);
        if (!nb)
            return false;
        *buf = nb;
        *cap = want;
    }
    int n = tok_stream_push(ts, id, *buf, *cap);
    if (n < 0)
        return true;
    if (!out_write(*buf, (size_t)n))
        return false;
    fflush(stdout);
    return true;
}

static int cmd_run(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(run_help, stdout);
        return 0;
    }
    run_opts o;
    if (parse_run(argc, argv, &o) != 0)
        return EXIT_USAGE;

    char err[512];
    int rc = EXIT_FAILURE;
    model *m = NULL;
    tok_vocab *v = NULL;
    kv_cache *kv = NULL;
    model_ctx *mc = NULL;
    sampler *smp = NULL;
    int32_t *ids = NULL;
    model_token *toks = NULL;
    float *logits = NULL;
    char *obuf = NULL;
    size_t ocap = 0;

    double t0 = now_s();
    char mbuf[1100];
    if (model_load(hearth_model_file(o.model, mbuf, sizeof mbuf), &m, err, sizeof err) != 0) {
        fail("run", "%s", err);
        goto done;
    }
    if (tok_load(model_gguf(m), &v, err, sizeof err) != 0) {
        fail("run", "%s: tokenizer: %s", o.model, err);
        goto done;
    }
    const model_hparams *hp = model_hparams_of(m);
    double t_load = now_s() - t0;

    /* tokenize */
    size_t plen = strlen(o.prompt);
    if (plen > INT_MAX / 2) {
        fail("run", "prompt too long");
        goto done;
    }
    int cap = (int)plen + 8;
    ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) {
        fail("run", "out of memory");
        goto done;
    }
    int n_prompt = tok_encode(v, o.prompt, plen, tok_add_bos_default(v), false,
                              ids, cap);
    if (n_prompt > cap) {
        int32_t *ni = realloc(ids, sizeof(int32_t) * (size_t)n_prompt);
        if (!ni) {
            fail("run", "out of memory");
            goto done;
        }
        ids = ni;
        cap = n_prompt;
        n_prompt = tok_encode(v, o.prompt, plen, tok_add_bos_default(v), false,
                              ids, cap);
    }
    if (n_prompt < 0) {
        fail("run", "the prompt is not valid text for this tokenizer");
        goto done;
    }
    if (n_prompt == 0) {
        fail("run", "the prompt is empty and the model has no BOS token");
        goto done;
    }
    for (int i = 0; i < n_prompt; i++)
        if (ids[i] < 0 || ids[i] >= hp->n_vocab) {
            fail("run", "token %d of the prompt is outside the model's "
                 "vocabulary (%d)", ids[i], hp->n_vocab);
            goto done;
        }

    /* context: what was asked, else just enough, within the model's */
    long n_ctx = o.ctx;
    if (n_ctx == 0) {
        long want = (long)n_prompt + o.n_predict;
        n_ctx = want < hp->n_ctx_train ? want : hp->n_ctx_train;
    }
    if (n_prompt > n_ctx) {
        fail("run", "the prompt has %d tokens, more than the context (%ld)",
             n_prompt, n_ctx);
        goto done;
    }
    if (model_kv_new(m, (int)n_ctx, 0, o.kv_f32 ? KV_F32 : KV_F16, &kv, err,
                     sizeof err) != 0 ||
        model_ctx_new(m, (int)o.batch, &mc, err, sizeof err) != 0 ||
        sampler_new(&o.sp, hp->n_vocab, &smp, err, sizeof err) != 0) {
        fail("run", "%s", err);
        goto done;
    }
    toks = malloc(sizeof *toks * (size_t)n_prompt);
    logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if (!toks || !logits) {
        fail("run", "out of memory");
        goto done;
    }

    if (!out_write(o.prompt, plen)) {
        fail("run", "cannot write to stdout");
        goto done;
    }
    fflush(stdout);

    /* prefill */
    double t1 = now_s();
    for (int i = 0; i < n_prompt; i++) {
        toks[i] = (model_token){ids[i], i, kv, i == n_prompt - 1};
        sampler_accept(smp, ids[i]);
    }
    model_batch b = {n_prompt, toks};
    if (model_decode(mc, &b, logits, err, sizeof err) != 0) {
        fail("run", "%s", err);
        goto done;
    }
    double t_prompt = now_s() - t1;

    /* decode */
    tok_stream ts;
    tok_stream_init(&ts, v);
    const char *stop = "length";
    long n_gen = 0;
    double t2 = now_s();
    int pos = n_prompt;
    while (n_gen < o.n_predict) {
        int32_t id = sampler_sample(smp, logits, NULL);
        if (id < 0) {
            stop = "no token left to sample";
            break;
        }
        if (tok_is_eog(v, id)) {
            stop = "end of generation";
            break;
        }
        n_gen++;
        sampler_accept(smp, id);
        if (!emit_token(&ts, v, id, &obuf, &ocap)) {
            fail("run", "cannot write to stdout");
            goto done;
        }
        if (n_gen == o.n_predict)
            break;
        if (pos >= kv_n_ctx(kv)) {
            stop = "context full";
            break;
        }
        model_token t = {id, pos++, kv, true};
        model_batch one = {1, &t};
        if (model_decode(mc, &one, logits, err, sizeof err) != 0) {
            fail("run", "%s", err);
            goto done;
        }
    }
    double t_gen = now_s() - t2;
    char tail[64];
    int nt = tok_stream_flush(&ts, tail, sizeof tail);
    if (nt > 0 && !out_write(tail, (size_t)nt)) {
        fail("run", "cannot write to stdout");
        goto done;
    }
    fflush(stdout);
    fputc('\n', stderr);
    fprintf(stderr,
            "hearth run: load %.0f ms; prompt %d tokens in %.1f ms (%.1f tok/s); "
            "generated %ld tokens in %.1f ms (%.1f tok/s); stop: %s; ",
            t_load * 1e3, n_prompt, t_prompt * 1e3,
            t_prompt > 0 ? n_prompt / t_prompt : 0.0, n_gen, t_gen * 1e3,
            t_gen > 0 ? (double)n_gen / t_gen : 0.0, stop);
    if (o.sp.temp > 0.0f)
        fprintf(stderr, "seed %llu\n", (unsigned long long)o.sp.seed);
    else
        fprintf(stderr, "greedy\n");
    rc = 0;
done:
    free(obuf);
    free(logits);
    free(toks);
    free(ids);
    sampler_free(smp);
    model_ctx_free(mc);
    kv_free(kv);
    tok_free(v);
    model_free(m);
    return rc;
}

/* ------------------------------------------------------------ info */

static const char info_help[] =
    "usage: hearth info MODEL\n"
    "\n"
    "Describe a GGUF file: format, architecture and hyperparameters, parameter\n"
    "count, file size, tensor types, tokenizer. A file the engine cannot run\n"
    "is still described, with the reason it would be refused (exit status 0:\n"
    "the description succeeded; 1 when the file is not readable GGUF).\n"
    "\n"
    "  -h, --help   show this help\n";

static void print_meta_str(const gguf_file *f, const char *label,
                           const char *key)
{
    gguf_str s;
    if (gguf_get_str(f, key, &s) == 0)
        printf("%-16s %.*s\n", label, (int)(s.len > 200 ? 200 : s.len), s.ptr);
}

static int cmd_info(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(info_help, stdout);
        return 0;
    }
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] != 0) {
            die_usage("info", "unknown flag '%s'", argv[i]);
            return EXIT_USAGE;
        }
        if (path) {
            die_usage("info", "one model at a time ('%s' and '%s')", path, argv[i]);
            return EXIT_USAGE;
        }
        path = argv[i];
    }
    if (!path) {
        die_usage("info", "no model given");
        return EXIT_USAGE;
    }

    char err[512], mbuf[1100];
    gguf_file *f = NULL;
    path = hearth_model_file(path, mbuf, sizeof mbuf);
    if (gguf_open(path, &f, err, sizeof err) != 0)
        return fail("info", "%s", err); /* it names the path */
    hearth_info_print(path, f);
    gguf_close(f);
    return 0;
}

void hearth_tensor_stats_of(const gguf_file *f, hearth_tensor_stats *s)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims && d < GGUF_MAX_DIMS; d++)
            n = (t->ne[d] && n > UINT64_MAX / t->ne[d]) ? UINT64_MAX : n * t->ne[d];
        s->n_params = s->n_params > UINT64_MAX - n ? UINT64_MAX : s->n_params + n;
        uint32_t ty = t->type < QT_TYPE_MAX ? t->type : QT_TYPE_MAX;
        s->count[ty]++;
        s->bytes[ty] += t->nbytes;
        s->data_bytes += t->nbytes;
    }
    s->main_type = QT_TYPE_MAX;
    uint64_t most = 0;
    for (uint32_t ty = 0; ty < QT_TYPE_MAX; ty++)
        if (s->bytes[ty] > most) {
            most = s->bytes[ty];
            s->main_type = ty;
        }
}

void hearth_info_print(const char *path, const gguf_file *f)
{
    char err[512];
    char b1[64], b2[64];
    fmt_bytes(b1, sizeof b1, gguf_file_size(f));
    printf("%-16s %s\n", "file", path);
    printf("%-16s %s (%llu bytes)\n", "size", b1,
           (unsigned long long)gguf_file_size(f));
    printf("%-16s v%u, %zu tensors, %zu metadata keys, alignment %u\n", "gguf",
           gguf_version(f), gguf_n_tensors(f), gguf_n_kv(f), gguf_alignment(f));
    print_meta_str(f, "name", "general.name");
    print_meta_str(f, "architecture", "general.architecture");

    model *m = NULL;
    if (model_load_gguf_flags(f, MODEL_LOAD_INSPECT, &m, err, sizeof err) == 0) {
        const model_hparams *hp = model_hparams_of(m);
        printf("%-16s yes\n", "runnable");
        printf("%-16s %d\n", "context length", hp->n_ctx_train);
        printf("%-16s %d\n", "embedding", hp->n_embd);
        printf("%-16s %d\n", "layers", hp->n_layer);
        printf("%-16s %d\n", "feed-forward", hp->n_ff);
        printf("%-16s %d query, %d key/value (head dim %d)\n", "heads",
               hp->n_head, hp->n_head_kv, hp->head_dim);
        const char *scal = hp->rope_scaling == MODEL_ROPE_SCALING_LINEAR ? "linear"
                         : hp->rope_scaling == MODEL_ROPE_SCALING_FREQS
                               ? "per-frequency factors"
                               : "none";
        printf("%-16s %d dims, base %g, %s pairs, scaling %s", "rope", hp->n_rot,
               (double)hp->rope_freq_base, hp->rope_neox ? "neox (half-split)"
                                                          : "adjacent",
               scal);
        if (hp->rope_scaling == MODEL_ROPE_SCALING_LINEAR)
            printf(" (x%g)", 1.0 / (double)hp->rope_freq_scale);
        printf("\n");
        printf("%-16s %g\n", "rms norm eps", (double)hp->norm_eps);
        printf("%-16s %d\n", "vocabulary", hp->n_vocab);
        printf("%-16s %s%s\n", "output", hp->tied_output ? "tied to token_embd" : "separate",
               hp->qkv_bias ? "; q/k/v biases" : "");
        model_free(m);
    } else {
        printf("%-16s no: %s\n", "runnable", err);
    }

    /* parameters and tensor types, from the file itself */
    hearth_tensor_stats ts;
    hearth_tensor_stats_of(f, &ts);
    uint64_t n_params = ts.n_params, data_bytes = ts.data_bytes;
    const uint64_t *count = ts.count, *bytes = ts.bytes;
    fmt_count(b1, sizeof b1, n_params);
    fmt_bytes(b2, sizeof b2, data_bytes);
    printf("%-16s %s (%llu), %s of tensor data", "parameters", b1,
           (unsigned long long)n_params, b2);
    if (n_params > 0)
        printf(", %.2f bits/weight", 8.0 * (double)data_bytes / (double)n_params);
    printf("\n");
    printf("%-16s", "tensor types");
    bool first = true;
    for (uint32_t ty = 0; ty <= QT_TYPE_MAX; ty++) {
        if (!count[ty])
            continue;
        fmt_bytes(b1, sizeof b1, bytes[ty]);
        printf("%s %s x%llu (%s)", first ? "" : ",",
               ty < QT_TYPE_MAX ? qt_name(ty) : "unknown",
               (unsigned long long)count[ty], b1);
        first = false;
    }
    printf("%s\n", first ? " none" : "");
    uint32_t ft;
    if (gguf_get_u32(f, "general.file_type", &ft) == 0) {
        const char *ftn = model_file_type_name(ft);
        printf("%-16s %s (%u)\n", "file type", ftn ? ftn : "unknown", ft);
    }

    tok_vocab *v = NULL;
    if (tok_load(f, &v, err, sizeof err) == 0) {
        printf("%-16s %s, pre-tokenizer %s, %d tokens, bos %d, eos %d%s\n",
               "tokenizer", tok_kind(v) == TOK_KIND_SPM   ? "sentencepiece (spm)"
               : tok_kind(v) == TOK_KIND_WPM ? "wordpiece (bert)"
                                             : "byte-level bpe",
               tok_pre_name(v), tok_n_vocab(v), tok_bos(v), tok_eos(v),
               tok_add_bos_default(v) ? ", adds bos" : "");
        tok_free(v);
    } else {
        printf("%-16s none usable: %s\n", "tokenizer", err);
    }
    gguf_str tmpl;
    if (gguf_get_str(f, "tokenizer.chat_template", &tmpl) == 0)
        printf("%-16s present (%llu bytes)\n", "chat template",
               (unsigned long long)tmpl.len);
}

/* ------------------------------------------------------------ tokenize */

static const char tokenize_help[] =
    "usage: hearth tokenize -m MODEL [options] TEXT\n"
    "\n"
    "Print the token ids of TEXT on one line, separated by spaces. Works on\n"
    "vocabulary-only GGUF files too.\n"
    "\n"
    "  -m, --model MODEL  GGUF file with a tokenizer, or a store name\n"
    "      --pieces       one token per line: id, then its vocabulary text\n"
    "      --no-bos       do not add BOS (default: as the model asks)\n"
    "      --special      match special-token texts such as <|im_end|>\n"
    "  -h, --help         show this help\n";

/* The vocabulary text of a token, quoted, with control bytes escaped. */
static void print_piece(const char *s, size_t n)
{
    putchar('\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '\'')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('\'');
}

static int cmd_tokenize(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(tokenize_help, stdout);
        return 0;
    }
    const char *path = NULL, *text = NULL;
    bool pieces = false, no_bos = false, special = false, rest = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *iv;
        if (!rest && strcmp(a, "--") == 0) {
            rest = true;
        } else if (!rest && is_flag(a, "--model", "-m", &iv)) {
            if (!(path = flag_value("tokenize", argc, argv, &i, iv)))
                return EXIT_USAGE;
        } else if (!rest && strcmp(a, "--pieces") == 0) {
            pieces = true;
        } else if (!rest && strcmp(a, "--no-bos") == 0) {
            no_bos = true;
        } else if (!rest && strcmp(a, "--special") == 0) {
            special = true;
        } else if (!rest && a[0] == '-' && a[1] != 0) {
            die_usage("tokenize", "unknown flag '%s'", a);
            return EXIT_USAGE;
        } else if (text) {
            die_usage("tokenize", "one TEXT argument only (quote it)");
            return EXIT_USAGE;
        } else {
            text = a;
        }
    }
    if (!path) {
        die_usage("tokenize", "no model given (-m MODEL)");
        return EXIT_USAGE;
    }
    if (!text) {
        die_usage("tokenize", "no TEXT given");
        return EXIT_USAGE;
    }
    char err[512], mbuf[1100];
    gguf_file *f = NULL;
    path = hearth_model_file(path, mbuf, sizeof mbuf);
    if (gguf_open(path, &f, err, sizeof err) != 0)
        return fail("tokenize", "%s", err); /* it names the path */
    tok_vocab *v = NULL;
    if (tok_load(f, &v, err, sizeof err) != 0) {
        gguf_close(f);
        return fail("tokenize", "%s: %s", path, err);
    }
    gguf_close(f); /* the vocabulary keeps its own copy */

    size_t len = strlen(text);
    bool bos = !no_bos && tok_add_bos_default(v);
    int rc = EXIT_FAILURE;
    int32_t *ids = NULL;
    int n = tok_encode_alloc(v, text, len, bos, special, &ids);
    if (n < 0) {
        fail("tokenize", "cannot tokenize the text (invalid input or out of memory)");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (pieces) {
            size_t pl = 0;
            const char *p = tok_text(v, ids[i], &pl);
            printf("%d\t", ids[i]);
            print_piece(p ? p : "", p ? pl : 0);
            putchar('\n');
        } else {
            printf("%s%d", i ? " " : "", ids[i]);
        }
    }
    if (!pieces)
        putchar('\n');
    rc = fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
done:
    free(ids);
    tok_free(v);
    return rc;
}

/* ------------------------------------------------------------ quantize */

static const char quantize_help[] =
    "usage: hearth quantize [--allow-requantize] IN OUT TYPE\n"
    "\n"
    "Write OUT, a copy of the GGUF model IN whose 2-D weight tensors are\n"
    "converted to TYPE:\n"
    "  q4_0   4.5 bits/weight (32-value blocks)\n"
    "  q8_0   8.5 bits/weight (32-value blocks)\n"
    "  q4_k   4.5 bits/weight (256-value super-blocks)\n"
    "  f16    16 bits/weight\n"
    "(also q4_1, q5_0, q5_1, q2_k, q3_k, q5_k, q6_k, bf16, f32).\n"
    "Tensors whose rows do not divide into TYPE's blocks fall back to a type\n"
    "that fits (Q5_0 or Q8_0 for the K types, else F16). Norms, biases and\n"
    "other 1-D tensors are kept in F32. All metadata is copied;\n"
    "general.file_type names the type most matrices have. OUT is written\n"
    "under a temporary name and renamed when complete. One summary line of\n"
    "sizes is printed.\n"
    "\n"
    "  --allow-requantize  convert weight matrices that are already quantized\n"
    "                      (dequantized, then quantized to TYPE: this loses\n"
    "                      quality; quantize the F16/F32 model if you have it).\n"
    "                      Without it such a model is refused.\n"
    "  -h, --help          show this help\n";

/* "Q4_K, Q6_K" from a bit set of qt types */
static void type_list(char *buf, size_t cap, uint64_t mask)
{
    size_t n = 0;
    buf[0] = 0;
    for (uint32_t t = 0; t < 64 && n < cap; t++)
        if (mask & (UINT64_C(1) << t)) {
            int k = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", qt_name(t));
            if (k < 0)
                break;
            n += (size_t)k;
        }
}

static int cmd_quantize(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(quantize_help, stdout);
        return 0;
    }
    const char *pos[3];
    int np = 0;
    unsigned flags = 0;
    bool flags_done = false;
    for (int i = 1; i < argc; i++) {
        if (!flags_done && strcmp(argv[i], "--") == 0) {
            flags_done = true;
            continue;
        }
        if (!flags_done && strcmp(argv[i], "--allow-requantize") == 0) {
            flags |= MODEL_QUANTIZE_ALLOW_REQUANTIZE;
            continue;
        }
        if (!flags_done && argv[i][0] == '-' && argv[i][1] != 0) {
            die_usage("quantize", "unknown flag '%s'", argv[i]);
            return EXIT_USAGE;
        }
        if (np == 3) {
            die_usage("quantize", "too many arguments ('%s')", argv[i]);
            return EXIT_USAGE;
        }
        pos[np++] = argv[i];
    }
    if (np != 3) {
        die_usage("quantize", "expected IN OUT TYPE");
        return EXIT_USAGE;
    }
    int type = qt_from_name(pos[2]);
    const qt_traits *tr = type >= 0 ? qt_traits_of((uint32_t)type) : NULL;
    if (!tr || !(tr->can_quantize || type == QT_F32 || type == QT_F16) ||
        type == QT_Q8_K || type == QT_Q8_1) {
        die_usage("quantize", "unknown or unsupported TYPE '%s' (q4_0, q8_0, q4_k, f16, ...)",
                  pos[2]);
        return EXIT_USAGE;
    }
    struct stat si, so;
    if (stat(pos[0], &si) == 0 && stat(pos[1], &so) == 0 &&
        si.st_dev == so.st_dev && si.st_ino == so.st_ino)
        return fail("quantize", "OUT is the same file as IN");

    char err[512];
    model_quantize_stats st;
    double t0 = now_s();
    int qrc = model_quantize(pos[0], pos[1], (uint32_t)type, flags, &st, err,
                             sizeof err);
    if (qrc == MODEL_QUANTIZE_NEEDS_REQUANT)
        return fail("quantize", "%s, which loses quality: quantize the "
                    "F16/F32 model, or pass --allow-requantize", err);
    if (qrc != MODEL_QUANTIZE_OK)
        return fail("quantize", "%s", err);
    if (st.n_requantized) {
        char from[256];
        type_list(from, sizeof from, st.requant_from);
        fprintf(stderr, "hearth quantize: warning: %d matrices requantized "
                "from %s through F32; requantizing loses quality\n",
                st.n_requantized, from);
    }
    char bi[64], bo[64], ft[96] = "";
    fmt_bytes(bi, sizeof bi, st.bytes_in);
    fmt_bytes(bo, sizeof bo, st.bytes_out);
    if (st.main_type != (uint32_t)type)
        snprintf(ft, sizeof ft, "; most matrices %s, file type %s (%u)",
                 qt_name(st.main_type), model_file_type_name(st.file_type), st.file_type);
    printf("%s -> %s (%s): %d tensors (%d %s, %d fell back, %d kept%s), "
           "%s -> %s (%.1f%%) in %.2f s\n", pos[0], pos[1], tr->name,
           st.n_tensors, st.n_quantized, tr->name, st.n_fallback, st.n_kept, ft,
           bi, bo, st.bytes_in ? 100.0 * (double)st.bytes_out / (double)st.bytes_in : 0.0,
           now_s() - t0);
    return 0;
}

/* ------------------------------------------------------------ bench */

static const char bench_help[] =
    "usage: hearth bench -m MODEL [-p N] [-n N] [-t THREADS] [-r REPS]\n"
    "                    [--kernel PATH] [--json]\n"
    "\n"
    "Measure the forward pass, as llama-bench does: prompt processing (ppN:\n"
    "one batch of N tokens into an empty cache) and generation (tgN: N tokens\n"
    "one at a time from an empty cache), in tokens per second, mean and\n"
    "standard deviation over REPS runs after one warm-up. Token ids are\n"
    "random (speed does not depend on them). Also prints the kernel path,\n"
    "the thread count and the peak resident memory of the process. Each\n"
    "row is printed as soon as it is measured; on a terminal, stderr shows\n"
    "the progress of every repetition.\n"
    "\n"
    "  -m, --model MODEL   GGUF file or store name\n"
    "  -p, --prompt N      prompt tokens for pp (default 512; 0 skips pp)\n"
    "  -n, --gen N         generated tokens for tg (default 128; 0 skips tg)\n"
    "  -t, --threads N     threads (default: one per online CPU)\n"
    "  -r, --reps N        repetitions (default 3)\n"
    "      --kernel NAME   force a kernel path: auto, avx512, avx2, scalar\n"
    "                      (also HEARTH_KERNEL in the environment)\n"
    "      --json          one JSON object on stdout instead of the table\n"
    "  -h, --help          show this help\n";

typedef struct bench_stat {
    char name[32];
    long n_tok;
    double mean, sd;
    double *samples;
    int n_samples;
} bench_stat;

static void bench_summarize(bench_stat *b)
{
    double s = 0, ss = 0;
    for (int i = 0; i < b->n_samples; i++)
        s += b->samples[i];
    b->mean = b->n_samples ? s / b->n_samples : 0;
    for (int i = 0; i < b->n_samples; i++)
        ss += (b->samples[i] - b->mean) * (b->samples[i] - b->mean);
    b->sd = b->n_samples > 1 ? sqrt(ss / (b->n_samples - 1)) : 0;
}

static uint32_t bench_rand(uint32_t *st)
{
    uint32_t x = *st;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *st = x;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* Progress of a long run, on stderr when it is a terminal: one line
 * rewritten in place ("pp512: rep 2/3, last 213.09 t/s"), erased before
 * anything else is printed, so stdout (the table or the JSON) is the same
 * whether or not the progress shows. */
typedef struct bench_progress {
    bool on;
    bool shown;
} bench_progress;

static void progress_clear(bench_progress *p)
{
    if (p->shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->shown = false;
    }
}

static void progress_show(bench_progress *p, const bench_stat *b, long reps)
{
    if (!p->on)
        return;
    if (b->n_samples == 0)
        fprintf(stderr, "\r\033[K%s: warm-up", b->name);
    else
        fprintf(stderr, "\r\033[K%s: rep %d/%ld, last %.2f t/s", b->name,
                b->n_samples, reps, b->samples[b->n_samples - 1]);
    fflush(stderr);
    p->shown = true;
}

/* One pp run (n tokens in one batch) or tg run (n tokens one at a time),
 * from an empty cache; tokens per second, or -1 with err set. */
static double bench_once(model_ctx *mc, kv_cache *kv, model_token *toks,
                         int n, bool gen, int n_vocab, float *logits,
                         uint32_t *rng, char *err, size_t errlen)
{
    kv_clear(kv);
    for (int i = 0; i < n; i++)
        toks[i] = (model_token){(int32_t)(bench_rand(rng) % (uint32_t)n_vocab),
                                i, kv, gen || i == n - 1};
    double t0 = now_s();
    if (gen) {
        for (int i = 0; i < n; i++) {
            model_batch b = {1, toks + i};
            if (model_decode(mc, &b, logits, err, errlen) != 0)
                return -1;
        }
    } else {
        model_batch b = {n, toks};
        if (model_decode(mc, &b, logits, err, errlen) != 0)
            return -1;
    }
    double dt = now_s() - t0;
    return dt > 0 ? n / dt : 0;
}

static int cmd_bench(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(bench_help, stdout);
        return 0;
    }
    const char *path = NULL, *kname = NULL;
    long n_pp = 512, n_tg = 128, threads = 0, reps = 3;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char flag[32];
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        bool inline_value = eq && (size_t)(eq - a) < sizeof flag;
        if (inline_value) { /* --flag=value */
            memcpy(flag, a, (size_t)(eq - a));
            flag[eq - a] = 0;
            a = flag;
            v = eq + 1;
        }
        if (!strcmp(a, "--json") && !inline_value) {
            json = true;
            continue;
        }
        static const char *const known[] = {
            "-m", "--model", "--kernel", "-p", "--prompt", "-n", "--gen",
            "-t", "--threads", "-r", "--reps"};
        bool is_known = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            is_known = is_known || !strcmp(a, known[k]);
        if (!is_known) {
            die_usage("bench", "unknown flag '%s'", a);
            return EXIT_USAGE;
        }
        if (!v) {
            die_usage("bench", "'%s' needs a value", a);
            return EXIT_USAGE;
        }
        bool ok = true;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            path = v;
        else if (!strcmp(a, "--kernel"))
            kname = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
            ok = parse_long(v, 0, 65536, &n_pp);
        else if (!strcmp(a, "-n") || !strcmp(a, "--gen"))
            ok = parse_long(v, 0, 65536, &n_tg);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            ok = parse_long(v, 1, 256, &threads);
        else if (!strcmp(a, "-r") || !strcmp(a, "--reps"))
            ok = parse_long(v, 1, 1000, &reps);
        else {
            die_usage("bench", "unknown flag '%s'", a);
            return EXIT_USAGE;
        }
        if (!ok) {
            die_usage("bench", "bad value '%s' for %s", v, a);
            return EXIT_USAGE;
        }
        if (!inline_value)
            i++;
    }
    if (!path) {
        die_usage("bench", "no model (-m FILE)");
        return EXIT_USAGE;
    }
    if (kname && kern_select(kname) != 0) {
        die_usage("bench", "unknown kernel path '%s', or this CPU lacks it "
                  "(auto, avx512, avx2, scalar)", kname);
        return EXIT_USAGE;
    }
    if (n_pp == 0 && n_tg == 0)
        return fail("bench", "nothing to measure (-p 0 and -n 0)");

    int rc = EXIT_FAILURE;
    char err[512];
    model *m = NULL;
    model_ctx *mc = NULL;
    kv_cache *kv = NULL;
    model_token *toks = NULL;
    float *logits = NULL;
    bench_stat st[2];
    int n_st = 0;
    memset(st, 0, sizeof st);

    char mbuf[1100];
    if (model_load(hearth_model_file(path, mbuf, sizeof mbuf), &m, err, sizeof err) != 0) {
        fail("bench", "%s", err);
        goto done;
    }
    const model_hparams *hp = model_hparams_of(m);
    long n_ctx = n_pp > n_tg ? n_pp : n_tg;
    long n_max = n_ctx;
    if (n_ctx > hp->n_ctx_train)
        fprintf(stderr, "hearth bench: note: %ld positions, more than the "
                "model's training context (%d)\n", n_ctx, hp->n_ctx_train);
    if (model_kv_new(m, (int)n_ctx, 0, KV_F16, &kv, err, sizeof err) != 0 ||
        model_ctx_new(m, n_pp > 0 ? (int)n_pp : 1, &mc, err, sizeof err) != 0 ||
        model_ctx_set_threads(mc, (int)threads, err, sizeof err) != 0) {
        fail("bench", "%s", err);
        goto done;
    }
    toks = malloc(sizeof *toks * (size_t)n_max);
    /* one row of logits: pp wants the last token's, tg each token's */
    logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    for (int k = 0; k < 2; k++)
        st[k].samples = malloc(sizeof(double) * (size_t)reps);
    if (!toks || !logits || !st[0].samples || !st[1].samples) {
        fail("bench", "out of memory");
        goto done;
    }
    struct stat fs;
    uint64_t fbytes = stat(path, &fs) == 0 ? (uint64_t)fs.st_size : 0;
    uint64_t kvb = kv_bytes(kv);
    const char *kpath = kern_get()->name;
    int nth = model_ctx_threads(mc);
    char fb[64], kb[64], rb[64];
    fmt_bytes(fb, sizeof fb, fbytes);
    fmt_bytes(kb, sizeof kb, kvb);
    if (!json) {
        /* the setup first, then each row as soon as it is measured */
        printf("model:   %s (%s, %.2fM params, %s)\n", path, hp->arch_name,
               (double)model_n_params(m) / 1e6, fb);
        printf("kernel:  %s   threads: %d%s   reps: %ld\n", kpath, nth,
               threads ? "" : " (fewer while other programs keep the cores busy)",
               reps);
        printf("%-8s %16s\n", "test", "t/s");
        fflush(stdout);
    }
    bench_progress prog = {isatty(STDERR_FILENO) == 1, false};
    uint32_t rng = 0x9e3779b9u;
    for (int k = 0; k < 2; k++) {
        long n = k == 0 ? n_pp : n_tg;
        if (n == 0)
            continue;
        bench_stat *b = &st[n_st++];
        snprintf(b->name, sizeof b->name, "%s%ld", k == 0 ? "pp" : "tg", n);
        b->n_tok = n;
        progress_show(&prog, b, reps);
        /* warm-up: page the weights in, wake the threads */
        if (bench_once(mc, kv, toks, k == 0 ? (int)n : 2, k == 1, hp->n_vocab,
                       logits, &rng, err, sizeof err) < 0) {
            progress_clear(&prog);
            fail("bench", "%s", err);
            goto done;
        }
        for (long r = 0; r < reps; r++) {
            double tps = bench_once(mc, kv, toks, (int)n, k == 1, hp->n_vocab,
                                    logits, &rng, err, sizeof err);
            if (tps < 0) {
                progress_clear(&prog);
                fail("bench", "%s", err);
                goto done;
            }
            b->samples[b->n_samples++] = tps;
            progress_show(&prog, b, reps);
        }
        bench_summarize(b);
        progress_clear(&prog);
        if (!json) {
            printf("%-8s %9.2f ± %5.2f\n", b->name, b->mean, b->sd);
            fflush(stdout);
        }
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t rss = (uint64_t)ru.ru_maxrss * 1024u;
    if (json) {
        printf("{\"model\": ");
        json_str(path);
        printf(", \"arch\": ");
        json_str(hp->arch_name);
        printf(", \"params\": %llu, \"file_bytes\": %llu, \"kv_bytes\": %llu, "
               "\"kernel\": ", (unsigned long long)model_n_params(m),
               (unsigned long long)fbytes, (unsigned long long)kvb);
        json_str(kpath);
        printf(", \"threads\": %d, \"threads_adapt\": %s, \"reps\": %ld, "
               "\"peak_rss_bytes\": %llu, \"results\": [", nth,
               threads ? "false" : "true", reps, (unsigned long long)rss);
        for (int i = 0; i < n_st; i++) {
            printf("%s{\"test\": \"%s\", \"n_tokens\": %ld, \"tps_mean\": %.3f, "
                   "\"tps_stddev\": %.3f, \"samples\": [", i ? ", " : "",
                   st[i].name, st[i].n_tok, st[i].mean, st[i].sd);
            for (int k = 0; k < st[i].n_samples; k++)
                printf("%s%.3f", k ? ", " : "", st[i].samples[k]);
            printf("]}");
        }
        printf("]}\n");
    } else {
        fmt_bytes(rb, sizeof rb, rss);
        printf("peak RSS: %s (file %s + KV cache %s)\n", rb, fb, kb);
    }
    if (fflush(stdout) != 0) {
        fail("bench", "cannot write the results: %s", strerror(errno));
        goto done;
    }
    rc = 0;
done:
    free(st[0].samples);
    free(st[1].samples);
    free(toks);
    free(logits);
    kv_free(kv);
    model_ctx_free(mc);
    model_free(m);
    return rc;
}

/* ------------------------------------------------------------ main */

int hearth_cmd_route(int argc, char **argv); /* hearth_route.c */
int hearth_cmd_pull(int argc, char **argv);  /* hearth_store.c */
int hearth_cmd_list(int argc, char **argv);
int hearth_cmd_rm(int argc, char **argv);
int hearth_cmd_show(int argc, char **argv);

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"run", cmd_run, "generate text from a prompt"},
    {"info", cmd_info, "describe a GGUF model"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"quantize", cmd_quantize, "convert a model's weights to a smaller type"},
    {"bench", cmd_bench, "measure prompt and generation speed"},
    {"route", hearth_cmd_route, "score a prompt as the router does (local or cloud)"},
    {"pull", hearth_cmd_pull, "download a model into the store (hf:OWNER/REPO or a URL)"},
    {"list", hearth_cmd_list, "list the models in the store"},
    {"rm", hearth_cmd_rm, "delete models from the store"},
    {"show", hearth_cmd_show, "describe a model of the store"},
};

static void main_help(FILE *to)
{
    fprintf(to, "usage: hearth COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(to, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(to, "\n'hearth COMMAND --help' lists the options of a command.\n"
                "  -h, --help     show this help\n"
                "      --version  print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_help(stderr);
        return EXIT_USAGE;
    }
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 ||
        strcmp(c, "help") == 0) {
        if (argc > 2 && strcmp(c, "help") == 0) {
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (strcmp(argv[2], commands[i].name) == 0) {
                    char *hargv[] = {argv[2], (char *)"--help", NULL};
                    return commands[i].run(2, hargv);
                }
        }
        main_help(stdout);
        return 0;
    }
    if (strcmp(c, "--version") == 0) {
        printf("hearth %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(c, commands[i].name) == 0) {
            int rc = commands[i].run(argc - 1, argv + 1);
            return usage_error_count ? EXIT_USAGE : rc;
        }
    die_usage(NULL, "unknown command '%s'", c);
    return EXIT_USAGE;
}
