/* server.c - see server.h. */
#include "server.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>
#ifdef HAVE_SYSTEMD
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#endif

#include "chat.h"
#include "door.h"
#include "daemon/paths.h"
#include "gen.h"
#include "hconfig.h"
#include "kernels.h"
#include "http.h"
#include "log.h"
#include "daemon/metrics.h"
#include "model.h"
#include "msglimit.h"
#include "routing.h"
#include "scheduler.h"
#include "tok.h"
#include "webui.h"

typedef struct hearth_server {
    hearth_config cfg;
    int argc;
    char **argv;
    uv_loop_t loop;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t deadline;
    uv_timer_t watchdog;      /* WATCHDOG=1 at half of systemd's WatchdogSec */
    http_server *http;
    door *door;         /* host check, API keys, CORS (daemon/door.h) */
    metrics *metrics;   /* GET /metrics (daemon/metrics.h) */
    uint64_t t_start_ns;
    bool stopping;
    /* model */
    char *model_id;     /* file name without .gguf */
    long long model_created;
    model *model;
    tok_vocab *vocab;
    chat_template *tmpl;
    const char *tmpl_source; /* "model", "builtin NAME", "default chatml" */
    sched *sched;
    gen_service gen;
    routing rt;
} hearth_server;

static void notify(const char *state)
{
#ifdef HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    notify("WATCHDOG=1");
}

/* The ping interval in ms when systemd watches this process (WatchdogSec=
 * sets $WATCHDOG_USEC), else 0. Half the timeout, as sd_watchdog_enabled(3)
 * advises: the pings run on the loop, so a loop that stalls gets the
 * service restarted. */
static uint64_t watchdog_interval_ms(void)
{
#ifdef HAVE_SYSTEMD
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000)
        return usec / 2000;
#endif
    return 0;
}

/* The listening socket systemd passed (socket activation: hearthd.socket,
 * or systemd-socket-activate), 0 when none was passed, -1 (err filled)
 * when what was passed cannot be served: hearthd takes exactly one
 * listening stream socket. */
static int listen_fd_from_systemd(char *err, size_t errlen)
{
#ifdef HAVE_SYSTEMD
    int n = sd_listen_fds(1);
    if (n < 0) {
        snprintf(err, errlen, "socket activation: %s", strerror(-n));
        return -1;
    }
    if (n == 0)
        return 0;
    if (n > 1) {
        snprintf(err, errlen, "socket activation: systemd passed %d sockets, hearthd "
                 "serves one (one ListenStream= in hearthd.socket)", n);
        return -1;
    }
    if (sd_is_socket(SD_LISTEN_FDS_START, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
        snprintf(err, errlen, "socket activation: the socket systemd passed is not a "
                 "listening stream socket (Accept=no and ListenStream= in hearthd.socket)");
        return -1;
    }
    return SD_LISTEN_FDS_START;
#else
    (void)err;
    (void)errlen;
    return 0;
#endif
}

/* ---------------------------------------------------------- routes */

static int reply_json(http_req *r, unsigned status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s)
        return http_respond_error(r, 500, NULL, "out of memory", NULL, NULL);
    int rc = http_respond_json(r, status, s);
    free(s);
    return rc;
}

static int on_health(http_req *r, void *user)
{
    hearth_server *hs = user;
    double up = (double)(http_now_ns() - hs->t_start_ns) / 1e9;
    json_t *mj = hs->model_id
        ? json_pack("{s:b, s:s}", "loaded", 1, "id", hs->model_id)
        : json_pack("{s:b}", "loaded", 0);
    sched_counters n = {0};
    if (hs->sched)
        sched_stats(hs->sched, &n);
    json_t *router = routing_health(&hs->rt);
    json_object_set_new(router, "nll_rows", json_integer((json_int_t)n.nll_rows));
    json_object_set_new(router, "nll_seconds", json_real((double)n.nll_ns / 1e9));
    return reply_json(r, 200,
                      json_pack("{s:s, s:f, s:o, s:{s:i, s:i, s:i}, s:{s:i, s:i}, s:o}",
                                "status", hs->stopping ? "stopping" : "ok",
                                "uptime_seconds", up, "model", mj,
                                "requests", "running", n.running, "queued", n.queued,
                                "in_flight", (int)http_inflight(hs->http), "connections",
                                "open", (int)http_connections(hs->http), "max",
                                (int)http_max_connections(hs->http), "router", router));
}

/* The models this daemon serves: the local one, then auto and the
 * upstreams when the router has any. */
static json_t *model_list(hearth_server *hs)
{
    json_t *data = json_array();
    if (hs->model_id) {
        const model_hparams *hp = model_hparams_of(hs->model);
        json_array_append_new(
            data, json_pack("{s:s, s:s, s:I, s:s, s:i, s:{s:s, s:i, s:i, s:I, s:i}}",
                            "id", hs->model_id, "object", "model", "created",
                            (json_int_t)hs->model_created, "owned_by", "hearth",
                            "context_length", hs->gen.n_ctx, "meta", "architecture",
                            hp->arch_name, "n_ctx_train", hp->n_ctx_train, "n_vocab",
                            hp->n_vocab, "n_params", (json_int_t)model_n_params(hs->model),
                            "n_embd", hp->n_embd));
    }
    if (hs->rt.n_ups) {
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s}", "id", "auto", "object",
                                              "model", "created", (json_int_t)0,
                                              "owned_by", "hearth-router"));
        for (size_t i = 0; i < hs->rt.n_ups; i++) {
            char owner[96];
            snprintf(owner, sizeof owner, "cloud:%s", hs->rt.ups[i].conf->name);
            json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s, s:s}", "id",
                                                  hs->rt.ups[i].conf->name, "object", "model",
                                                  "created", (json_int_t)0, "owned_by", owner,
                                                  "upstream_model", hs->rt.ups[i].conf->model));
        }
    }
    return data;
}

static int on_models(http_req *r, void *user)
{
    hearth_server *hs = user;
    return reply_json(r, 200,
                      json_pack("{s:s, s:o}", "object", "list", "data", model_list(hs)));
}

/* GET /v1/models/{id}: one entry of the list, or 404. */
static int on_model(http_req *r, void *user)
{
    hearth_server *hs = user;
    const char *id = r->url + strlen("/v1/models/");
    size_t n = strcspn(id, "?");
    json_t *data = model_list(hs), *v;
    size_t i;
    json_array_foreach(data, i, v)
    {
        const char *mid = json_string_value(json_object_get(v, "id"));
        if (mid && strlen(mid) == n && strncmp(mid, id, n) == 0) {
            json_incref(v);
            json_decref(data);
            return reply_json(r, 200, v);
        }
    }
    json_decref(data);
    char msg[300];
    snprintf(msg, sizeof msg, "The model '%.*s' does not exist", (int)(n > 200 ? 200 : n), id);
    return http_respond_error(r, 404, "invalid_request_error", msg, "model", "model_not_found");
}

static int no_model(http_req *r)
{
    return http_respond_error(r, 503, "service_unavailable",
                              "No model is loaded: start hearthd with --model or "
                              "set [model] path in the configuration",
                              NULL, "model_not_loaded");
}

/* [server] max_messages, before the body is parsed: 0 to go on. */
#define MESSAGE_LIMIT(hs, r, kind)                                          \
    do {                                                                    \
        int lim_ = msglimit_check((r), (kind), (hs)->cfg.max_messages);     \
        if (lim_)                                                           \
            return lim_ > 0 ? 0 : -1;                                       \
    } while (0)

static int on_chat(http_req *r, void *user)
{
    hearth_server *hs = user;
    MESSAGE_LIMIT(hs, r, API_CHAT);
    return hs->sched || hs->rt.n_ups ? gen_chat(&hs->gen, r) : no_model(r);
}

static int on_completion(http_req *r, void *user)
{
    hearth_server *hs = user;
    return hs->sched || hs->rt.n_ups ? gen_completion(&hs->gen, r) : no_model(r);
}

static int on_messages(http_req *r, void *user)
{
    hearth_server *hs = user;
    MESSAGE_LIMIT(hs, r, API_MESSAGES);
    return hs->sched || hs->rt.n_ups ? gen_messages(&hs->gen, r) : no_model(r);
}

static int on_count_tokens(http_req *r, void *user)
{
    hearth_server *hs = user;
    MESSAGE_LIMIT(hs, r, API_MESSAGES);
    return hs->sched ? gen_count_tokens(&hs->gen, r) : no_model(r);
}

static int on_responses(http_req *r, void *user)
{
    hearth_server *hs = user;
    MESSAGE_LIMIT(hs, r, API_RESPONSES);
    return hs->sched || hs->rt.n_ups ? gen_responses(&hs->gen, r) : no_model(r);
}

/* The chat page and its files (daemon/webui.h); a 404 when [server] webui
 * turns it off. Open: the page carries no secret, and it is where the API
 * key is typed in. */
static int on_webui(http_req *r, void *user)
{
    hearth_server *hs = user;
    return webui_serve(r, door_auto_on(hs->cfg.webui, hs->cfg.host));
}

/* Prometheus metrics (docs/api/metrics.md); a 404 when [server] metrics
 * turns them off. Not open: with an API key set, a scraper sends it
 * (Prometheus's scrape config has `authorization`), as the figures tell
 * how the server is used and which models it holds. */
static int on_metrics(http_req *r, void *user)
{
    hearth_server *hs = user;
    if (!door_auto_on(hs->cfg.metrics, hs->cfg.host))
        return http_respond_not_found(r);
    sched_counters n;
    if (hs->sched)
        sched_stats(hs->sched, &n);
    metrics_now now = {.sched = hs->sched ? &n : NULL, .n_slots = hs->gen.n_slots,
                       .in_flight = http_inflight(hs->http), .rt = &hs->rt};
    size_t len = 0;
    char *text = metrics_render(hs->metrics, &now, &len);
    if (!text)
        return http_respond_error(r, 500, "server_error", "out of memory", NULL, NULL);
    int rc = http_respond(r, 200, METRICS_CONTENT_TYPE, text, len);
    free(text);
    return rc;
}

/* Every request, as it ends: counted by method, endpoint and status. */
static void on_request_done(const http_req *r, void *user)
{
    hearth_server *hs = user;
    metrics_request(hs->metrics, r->method, r->endpoint, r->status);
}

static const http_route routes[] = {
    {"GET", "/health", on_health, true},
    {"GET", "/metrics", on_metrics, false},
    {"GET", "/", on_webui, true},
    {"GET", "/chat.js", on_webui, true},
    {"GET", "/chat.css", on_webui, true},
    {"GET", "/favicon.svg", on_webui, true},
    {"GET", "/v1/models", on_models, false},
    {"GET", "/v1/models/*", on_model, false},
    {"POST", "/v1/chat/completions", on_chat, false},
    {"POST", "/v1/completions", on_completion, false},
    {"POST", "/v1/messages", on_messages, false},
    {"POST", "/v1/messages/count_tokens", on_count_tokens, false},
    {"POST", "/v1/responses", on_responses, false},
};

/* ---------------------------------------------------------- model */

static void reference_nll(hearth_server *hs);

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

/* Load the model, its tokenizer and chat template, and start the
 * scheduler (after the loop exists: it wakes the loop). */
static int model_open(hearth_server *hs, char *err, size_t errlen)
{
    const char *path = hs->cfg.model_path;
    if (!path)
        return 0;
    char why[512];
    uint64_t t0 = http_now_ns();
    if (model_load(path, &hs->model, why, sizeof why) < 0) {
        snprintf(err, errlen, "cannot load the model: %s", why); /* it names the path */
        return -1;
    }
    if (tok_load(model_gguf(hs->model), &hs->vocab, why, sizeof why) < 0) {
        snprintf(err, errlen, "model %s: tokenizer: %s", path, why);
        return -1;
    }
    /* chat template: the config's override, else the model's, else ChatML */
    const char *src = NULL;
    gguf_str gs;
    char *owned = NULL;
    if (hs->cfg.chat_template && strchr(hs->cfg.chat_template, '/')) {
        owned = read_template(hs->cfg.chat_template, err, errlen);
        if (!owned)
            return -1;
        src = owned;
        hs->tmpl_source = "from a file";
    } else if (hs->cfg.chat_template) {
        src = chat_template_builtin(hs->cfg.chat_template);
        if (!src) {
            snprintf(err, errlen, "chat_template: '%s' is not a built-in template (or a "
                     "path: it has no '/')", hs->cfg.chat_template);
            return -1;
        }
        hs->tmpl_source = "configured";
    } else if (gguf_get_str(model_gguf(hs->model), "tokenizer.chat_template", &gs) == 0 &&
               gs.len > 0) {
        owned = strndup(gs.ptr, gs.len);
        src = owned;
        hs->tmpl_source = "the model's";
    } else {
        src = chat_template_builtin("chatml");
        hs->tmpl_source = "default (chatml)";
    }
    int trc = src ? chat_template_parse(src, &hs->tmpl, why, sizeof why) : -1;
    /* The token that ends an assistant turn, when the model has it and does
     * not already count it as end of generation (ChatML on a model whose
     * EOS is another token, for one). */
    int32_t turn_end = -1;
    const char *stop_text = trc == 0 ? chat_template_stop(src) : NULL;
    if (stop_text) {
        int32_t id = tok_find(hs->vocab, stop_text);
        if (id >= 0 && !tok_is_eog(hs->vocab, id))
            turn_end = id;
    }
    hs->gen.tool_format = trc == 0 ? api_tool_format_of(src) : API_TOOLS_NONE;
    if (trc < 0 && owned && hs->cfg.chat_template) { /* a file the config names */
        snprintf(err, errlen, "chat_template %s: %s", hs->cfg.chat_template, why);
        free(owned);
        return -1;
    }
    if (trc < 0 && owned) {
        log_warn("model", "the model's chat template cannot be used (%s); using chatml", why);
        trc = chat_template_parse(chat_template_builtin("chatml"), &hs->tmpl, why, sizeof why);
        hs->tmpl_source = "default (chatml), the model's failed to parse";
        hs->gen.tool_format = api_tool_format_of(chat_template_builtin("chatml"));
    }
    free(owned);
    if (trc < 0) {
        snprintf(err, errlen, "chat template: %s", why);
        return -1;
    }

    const model_hparams *hp = model_hparams_of(hs->model);
    int n_ctx = hs->cfg.context;
    if (n_ctx <= 0 || n_ctx > hp->n_ctx_train)
        n_ctx = hp->n_ctx_train;
    sched_params sp = {.n_slots = hs->cfg.parallel, .n_ctx = n_ctx,
                       .max_queue = hs->cfg.max_queue, .batch = 256,
                       .threads = hs->cfg.threads};
    if (sched_new(&hs->sched, hs->model, hs->vocab, &sp, &hs->loop, why, sizeof why) < 0) {
        snprintf(err, errlen, "model %s: %s", path, why);
        return -1;
    }

    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".gguf") == 0)
        n -= 5;
    hs->model_id = strndup(base, n);
    struct stat st;
    hs->model_created = stat(path, &st) == 0 ? (long long)st.st_mtime : 0;
    hs->gen.model_id = hs->model_id;
    ids_fingerprint(hs->gen.fingerprint, PACKAGE_VERSION, path);
    hs->gen.m = hs->model;
    hs->gen.v = hs->vocab;
    hs->gen.tmpl = hs->tmpl;
    hs->gen.turn_end = turn_end;
    hs->gen.s = hs->sched;
    hs->gen.n_ctx = n_ctx;
    hs->gen.n_slots = sp.n_slots;
    if (hs->rt.n_ups)
        reference_nll(hs);
    metrics_model_loaded(hs->metrics, hs->model_id, (double)(http_now_ns() - t0) / 1e9);
    log_info("model", "loaded %s: %s, %d layers, %.1fM parameters, context %d x %d "
             "slots, chat template %s, %s kernels, in %.0f ms",
             path, hp->arch_name, hp->n_layer, (double)model_n_params(hs->model) / 1e6,
             n_ctx, sp.n_slots, hs->tmpl_source, kern_get()->name,
             (double)(http_now_ns() - t0) / 1e6);
    return 0;
}

/* The model's NLL on plain prose, which the router's nll feature is
 * measured against (router/score.h). Without it the feature is off. */
static void reference_nll(hearth_server *hs)
{
    model_ctx *c = NULL;
    char why[256];
    if (model_ctx_new(hs->model, 64, &c, why, sizeof why) != 0) {
        log_warn("router", "no reference NLL: %s", why);
        return;
    }
    hs->rt.nll_ref = score_reference_nll(hs->model, c, hs->tmpl, hs->vocab);
    model_ctx_free(c);
    log_info("router", "reference NLL of the local model: %.3f nats/token", hs->rt.nll_ref);
}

static void model_close(hearth_server *hs)
{
    sched_free(hs->sched); /* before the loop closes: it owns a uv_async */
    hs->sched = NULL;
    chat_template_free(hs->tmpl);
    tok_free(hs->vocab);
    model_free(hs->model);
    hs->tmpl = NULL;
    hs->vocab = NULL;
    hs->model = NULL;
}

/* ---------------------------------------------------------- lifecycle */

static void on_closed(uv_handle_t *h) { (void)h; }

/* Everything is drained (or the deadline passed): close the handles so
 * uv_run returns. */
static void finish(void *arg)
{
    hearth_server *hs = arg;
    if (!hs->http)
        return;
    unsigned left = http_inflight(hs->http);
    if (left)
        log_warn("server", "shutdown deadline reached with %u request(s) in flight", left);
    uv_timer_stop(&hs->deadline);
    uv_timer_stop(&hs->watchdog);
    http_stop(hs->http); /* cancels the jobs of what is still open */
    hs->http = NULL;
    sched_free(hs->sched);
    hs->sched = NULL;
    hs->gen.s = NULL; /* preparations still running end without a job */
    routing_fini(&hs->rt); /* closes the cloud client's handles */
    uv_close((uv_handle_t *)&hs->sig_int, on_closed);
    uv_close((uv_handle_t *)&hs->sig_term, on_closed);
    uv_close((uv_handle_t *)&hs->sig_hup, on_closed);
    uv_close((uv_handle_t *)&hs->deadline, on_closed);
    uv_close((uv_handle_t *)&hs->watchdog, on_closed);
}

static void on_deadline(uv_timer_t *t) { finish(t->data); }

static void begin_stop(hearth_server *hs, int signum)
{
    if (hs->stopping) {
        log_warn("server", "second %s: stopping now", strsignal(signum));
        finish(hs);
        return;
    }
    hs->stopping = true;
    notify("STOPPING=1");
    unsigned n = http_inflight(hs->http);
    log_info("server", "%s: no longer accepting; %u request(s) in flight, "
             "deadline %ds", strsignal(signum), n, hs->cfg.shutdown_timeout);
    uv_timer_start(&hs->deadline, on_deadline,
                   (uint64_t)hs->cfg.shutdown_timeout * 1000u, 0);
    http_quiesce(hs->http, finish, hs);
}

static void reload(hearth_server *hs)
{
    notify("RELOADING=1");
    char restart[512], err[640];
    if (config_reload(&hs->cfg, hs->argc, hs->argv, restart, sizeof restart,
                      err, sizeof err) < 0) {
        log_error("config", "reload failed, keeping the running configuration: %s", err);
    } else {
        log_set_level((enum log_level)hs->cfg.log_level);
        http_set_max_body(hs->http, hs->cfg.max_body);
        door *d = NULL;
        if (door_new(&d, &hs->cfg, err, sizeof err) < 0 ||
            door_check_listen(d, &hs->cfg, err, sizeof err) < 0) {
            log_error("config", "keeping the running keys, hosts and origins: %s", err);
            door_free(d);
        } else {
            http_reconfigure(hs->http, d);
            door_free(hs->door);
            hs->door = d;
        }
        if (restart[0])
            log_warn("config", "changed keys that need a restart to apply: %s", restart);
        log_info("config", "reloaded %s", hs->cfg.config_path);
    }
    notify("READY=1");
}

static void on_signal(uv_signal_t *h, int signum)
{
    hearth_server *hs = h->data;
    if (signum == SIGHUP)
        reload(hs);
    else
        begin_stop(hs, signum);
}

int server_main(int argc, char **argv)
{
    hearth_server hs;
    memset(&hs, 0, sizeof hs);
    hs.argc = argc;
    hs.argv = argv;
    hs.t_start_ns = http_now_ns();
    char err[1024];

    config_init(&hs.cfg);
    int rc = config_load(&hs.cfg, argc, argv, HEARTH_SYSCONFDIR "/hearth/hearth.conf",
                         err, sizeof err);
    if (rc != CONFIG_OK) {
        if (rc == CONFIG_ERROR)
            fprintf(stderr, "hearthd: %s\n", err);
        config_free(&hs.cfg);
        return rc == CONFIG_EXIT ? 0 : 2;
    }
    log_set_level((enum log_level)hs.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    uv_loop_init(&hs.loop);
    hs.metrics = metrics_new();
    hs.gen = (gen_service){.ping_interval = &hs.cfg.ping_interval,
                           .request_timeout = &hs.cfg.request_timeout, .loop = &hs.loop,
                           .rt = &hs.rt, .metrics = hs.metrics};
    if (!hs.metrics) {
        fprintf(stderr, "hearthd: out of memory\n");
        uv_loop_close(&hs.loop);
        goto out;
    }
    if (door_new(&hs.door, &hs.cfg, err, sizeof err) < 0 ||
        door_check_listen(hs.door, &hs.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "hearthd: %s\n", err);
        uv_loop_close(&hs.loop);
        status = 2;
        goto out;
    }
    if (routing_init(&hs.rt, &hs.cfg, &hs.loop, err, sizeof err) < 0 ||
        model_open(&hs, err, sizeof err) < 0) {
        fprintf(stderr, "hearthd: %s\n", err);
        model_close(&hs);
        routing_fini(&hs.rt);
        uv_run(&hs.loop, UV_RUN_NOWAIT); /* let closed handles finish */
        uv_loop_close(&hs.loop);
        goto out;
    }
    int listen_fd = listen_fd_from_systemd(err, sizeof err);
    http_config hc = {
        .host = hs.cfg.tcp ? hs.cfg.host : NULL, .port = hs.cfg.port,
        .listen_fd = listen_fd,
        .unix_path = hs.cfg.socket_path, .unix_mode = (unsigned)hs.cfg.socket_mode,
        .max_body = hs.cfg.max_body, .max_connections = hs.cfg.max_connections,
        .header_timeout = &hs.cfg.header_timeout, .idle_timeout = hs.cfg.idle_timeout,
        .max_header = hs.cfg.max_header, .door = hs.door,
        .routes = routes, .n_routes = sizeof routes / sizeof routes[0], .user = &hs,
        .on_done = on_request_done,
    };
    if (listen_fd < 0 || http_start(&hs.http, &hs.loop, &hc, err, sizeof err) < 0) {
        fprintf(stderr, "hearthd: %s\n", err);
        model_close(&hs);
        routing_fini(&hs.rt);
        uv_run(&hs.loop, UV_RUN_NOWAIT);
        uv_loop_close(&hs.loop);
        goto out;
    }
    uv_signal_init(&hs.loop, &hs.sig_int);
    uv_signal_init(&hs.loop, &hs.sig_term);
    uv_signal_init(&hs.loop, &hs.sig_hup);
    uv_timer_init(&hs.loop, &hs.deadline);
    uv_timer_init(&hs.loop, &hs.watchdog);
    hs.sig_int.data = hs.sig_term.data = hs.sig_hup.data = &hs;
    hs.deadline.data = &hs;
    uv_signal_start(&hs.sig_int, on_signal, SIGINT);
    uv_signal_start(&hs.sig_term, on_signal, SIGTERM);
    uv_signal_start(&hs.sig_hup, on_signal, SIGHUP);

    char where[600];
    int wn = listen_fd > 0 ? snprintf(where, sizeof where, "the socket systemd passed, port %d",
                                      http_bound_port(hs.http))
             : hs.cfg.tcp ? snprintf(where, sizeof where, "%s:%d", hs.cfg.host,
                                     http_bound_port(hs.http))
                          : 0;
    if (hs.cfg.socket_path)
        snprintf(where + wn, sizeof where - (size_t)wn, "%sunix:%s", wn ? " and " : "",
                 hs.cfg.socket_path);
    log_info("server", "hearthd %s listening on %s (model: %s, chat page: %s, metrics: %s)",
             PACKAGE_VERSION, where, hs.model_id ? hs.model_id : "none",
             door_auto_on(hs.cfg.webui, hs.cfg.host) ? "on" : "off",
             door_auto_on(hs.cfg.metrics, hs.cfg.host) ? "on" : "off");
    uint64_t wd_ms = watchdog_interval_ms();
    if (wd_ms)
        uv_timer_start(&hs.watchdog, on_watchdog, wd_ms, wd_ms);
    notify("READY=1");

    uv_run(&hs.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&hs.loop) != 0)
        log_warn("server", "loop closed with handles still open");
    log_info("server", "stopped");
    status = 0;
out:
    model_close(&hs);
    door_free(hs.door);
    metrics_free(hs.metrics);
    free(hs.model_id);
    config_free(&hs.cfg);
    return status;
}
