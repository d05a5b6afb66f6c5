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
#include "daemon/resident.h"
#include "daemon/resident_json.h"
#include "daemon/store.h"
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
    resident *res;      /* the models, by name (daemon/resident.h) */
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
    const char *dflt = resident_default(hs->res);
    resident_model *first = resident_first(hs->res);
    json_t *mj = first ? json_pack("{s:b, s:s}", "loaded", 1, "id", dflt ? dflt : first->name)
                       : json_pack("{s:b}", "loaded", 0);
    sched_counters n;
    resident_stats(hs->res, &n);
    json_t *models = resident_json_list(hs->res);
    json_t *router = routing_health(&hs->rt);
    json_object_set_new(router, "nll_rows", json_integer((json_int_t)n.nll_rows));
    json_object_set_new(router, "nll_seconds", json_real((double)n.nll_ns / 1e9));
    return reply_json(r, 200,
                      json_pack("{s:s, s:f, s:o, s:o, s:{s:i, s:i, s:i}, s:{s:i, s:i}, s:o}",
                                "status", hs->stopping ? "stopping" : "ok",
                                "uptime_seconds", up, "model", mj, "models", models,
                                "requests", "running", n.running, "queued", n.queued,
                                "in_flight", (int)http_inflight(hs->http), "connections",
                                "open", (int)http_connections(hs->http), "max",
                                (int)http_max_connections(hs->http), "router", router));
}

static int on_models(http_req *r, void *user)
{
    hearth_server *hs = user;
    return reply_json(r, 200,
                      json_pack("{s:s, s:o}", "object", "list", "data", resident_json_models(hs->res, &hs->rt)));
}

/* GET /v1/models/{id}: one entry of the list, or 404. */
static int on_model(http_req *r, void *user)
{
    hearth_server *hs = user;
    const char *id = r->url + strlen("/v1/models/");
    size_t n = strcspn(id, "?");
    json_t *data = resident_json_models(hs->res, &hs->rt), *v;
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

static int on_chat(http_req *r, void *user)
{
    hearth_server *hs = user;
    return gen_chat(&hs->gen, r);
}

static int on_completion(http_req *r, void *user)
{
    hearth_server *hs = user;
    return gen_completion(&hs->gen, r);
}

static int on_messages(http_req *r, void *user)
{
    hearth_server *hs = user;
    return gen_messages(&hs->gen, r);
}

static int on_count_tokens(http_req *r, void *user)
{
    hearth_server *hs = user;
    return gen_count_tokens(&hs->gen, r);
}

static int on_responses(http_req *r, void *user)
{
    hearth_server *hs = user;
    return gen_responses(&hs->gen, r);
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
    resident_stats(hs->res, &n);
    int slots = 0;
    for (resident_model *lm = resident_first(hs->res); lm; lm = lm->next)
        slots += lm->state == RESIDENT_READY ? lm->n_slots : 0;
    metrics_now now = {.sched = resident_first(hs->res) ? &n : NULL, .n_slots = slots,
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

/* The registry of models, with --model's loaded. */
static int model_open(hearth_server *hs, char *err, size_t errlen)
{
    const hearth_config *c = &hs->cfg;
    resident_params p = {.path = c->model_path, .chat_template = c->chat_template,
                         .default_name = c->model_default, .context = c->context,
                         .parallel = c->parallel, .threads = c->threads,
                         .max_queue = c->max_queue, .want_nll = hs->rt.n_ups > 0,
                         .loop = &hs->loop, .metrics = hs->metrics};
    if (resident_parse_duration(c->keep_alive, &p.keep_alive_ms) < 0) {
        snprintf(err, errlen, "[model] keep_alive: '%s' is not a duration (30s, 5m, 1h, "
                 "-1 or 0)", c->keep_alive);
        return -2;
    }
    long long bytes = 0;
    if (strcmp(c->memory_budget, "auto") == 0) {
        p.budget_bytes = resident_auto_budget();
    } else if (config_parse_size(c->memory_budget, &bytes) < 0 || bytes < 0) {
        snprintf(err, errlen, "[model] memory_budget: '%s' is not a size (8G, 512M), 0 or "
                 "auto", c->memory_budget);
        return -2;
    } else {
        p.budget_bytes = (uint64_t)bytes;
    }
    char dir[1024];
    p.store_dir = c->store_dir ? c->store_dir : store_default_dir(dir, sizeof dir);
    if (p.store_dir)
        log_info("store", "models by name from %s; memory budget %.0f MiB", p.store_dir,
                 (double)p.budget_bytes / 1048576.0);
    int rc = resident_new(&hs->res, &p, err, errlen);
    if (rc == 0 && c->model_default && !c->model_path &&
        !resident_has(hs->res, c->model_default))
        log_warn("model", "[model] default '%s' is not in the store (%s): requests naming "
                 "no model get 503 until it is pulled", c->model_default,
                 p.store_dir ? p.store_dir : "none");
    return rc;
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
    resident_stop(hs->res); /* preparations still running end without a job */
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
                           .request_timeout = &hs.cfg.request_timeout,
                           .max_messages = &hs.cfg.max_messages, .loop = &hs.loop,
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
    int mrc = 0;
    if (routing_init(&hs.rt, &hs.cfg, &hs.loop, err, sizeof err) < 0 ||
        (mrc = model_open(&hs, err, sizeof err)) < 0) {
        fprintf(stderr, "hearthd: %s\n", err);
        if (mrc == -2)
            status = 2;
        resident_stop(hs.res);
        routing_fini(&hs.rt);
        uv_run(&hs.loop, UV_RUN_NOWAIT); /* let closed handles finish */
        uv_loop_close(&hs.loop);
        goto out;
    }
    hs.gen.res = hs.res;
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
        resident_stop(hs.res);
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
             PACKAGE_VERSION, where,
             resident_default(hs.res) ? resident_default(hs.res) : "by name",
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
    resident_free(hs.res);
    door_free(hs.door);
    metrics_free(hs.metrics);
    config_free(&hs.cfg);
    return status;
}
