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
#include <systemd/sd-daemon.h>
#endif

#include "hconfig.h"
#include "gguf.h"
#include "http.h"
#include "log.h"

typedef struct hearth_server {
    hearth_config cfg;
    int argc;
    char **argv;
    uv_loop_t loop;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t deadline;
    http_server *http;
    uint64_t t_start_ns;
    bool stopping;
    /* model */
    char *model_id;     /* file name without .gguf */
    long long model_created;
    gguf_file *gguf;
} hearth_server;

static void notify(const char *state)
{
#ifdef HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
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
    json_t *model = hs->model_id
        ? json_pack("{s:b, s:s}", "loaded", 1, "id", hs->model_id)
        : json_pack("{s:b}", "loaded", 0);
    return reply_json(r, 200,
                      json_pack("{s:s, s:f, s:o}", "status",
                                hs->stopping ? "stopping" : "ok",
                                "uptime_seconds", up, "model", model));
}

static int on_models(http_req *r, void *user)
{
    hearth_server *hs = user;
    json_t *data = json_array();
    if (hs->model_id)
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s}", "id",
                                              hs->model_id, "object", "model",
                                              "created", (json_int_t)hs->model_created,
                                              "owned_by", "hearth"));
    return reply_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static const http_route routes[] = {
    {"GET", "/health", on_health},
    {"GET", "/v1/models", on_models},
};

/* ---------------------------------------------------------- model */

static int model_open(hearth_server *hs, char *err, size_t errlen)
{
    const char *path = hs->cfg.model_path;
    if (!path)
        return 0;
    char why[512];
    if (gguf_open(path, &hs->gguf, why, sizeof why) < 0) {
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
    log_info("model", "opened %s (GGUF v%u, %zu tensors)", path,
             gguf_version(hs->gguf), gguf_n_tensors(hs->gguf));
    return 0;
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
    http_stop(hs->http);
    hs->http = NULL;
    uv_close((uv_handle_t *)&hs->sig_int, on_closed);
    uv_close((uv_handle_t *)&hs->sig_term, on_closed);
    uv_close((uv_handle_t *)&hs->sig_hup, on_closed);
    uv_close((uv_handle_t *)&hs->deadline, on_closed);
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
    if (model_open(&hs, err, sizeof err) < 0) {
        log_error("server", "%s", err);
        fprintf(stderr, "hearthd: %s\n", err);
        goto out;
    }

    uv_loop_init(&hs.loop);
    http_config hc = {
        .host = hs.cfg.host, .port = hs.cfg.port, .max_body = hs.cfg.max_body,
        .routes = routes, .n_routes = sizeof routes / sizeof routes[0], .user = &hs,
    };
    if (http_start(&hs.http, &hs.loop, &hc, err, sizeof err) < 0) {
        fprintf(stderr, "hearthd: %s\n", err);
        uv_loop_close(&hs.loop);
        goto out;
    }
    uv_signal_init(&hs.loop, &hs.sig_int);
    uv_signal_init(&hs.loop, &hs.sig_term);
    uv_signal_init(&hs.loop, &hs.sig_hup);
    uv_timer_init(&hs.loop, &hs.deadline);
    hs.sig_int.data = hs.sig_term.data = hs.sig_hup.data = &hs;
    hs.deadline.data = &hs;
    uv_signal_start(&hs.sig_int, on_signal, SIGINT);
    uv_signal_start(&hs.sig_term, on_signal, SIGTERM);
    uv_signal_start(&hs.sig_hup, on_signal, SIGHUP);

    log_info("server", "hearthd %s listening on %s:%d (model: %s)", PACKAGE_VERSION,
             hs.cfg.host, http_bound_port(hs.http),
             hs.model_id ? hs.model_id : "none");
    notify("READY=1");

    uv_run(&hs.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&hs.loop) != 0)
        log_warn("server", "loop closed with handles still open");
    log_info("server", "stopped");
    status = 0;
out:
    if (hs.gguf)
        gguf_close(hs.gguf);
    free(hs.model_id);
    config_free(&hs.cfg);
    return status;
}
