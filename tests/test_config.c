/* test_config.c - configuration: file, flags, bad values, reload. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hconfig.h"
#include "log.h"

static char path[256];
static char err[1024];

static const char *write_conf(const char *text)
{
    snprintf(path, sizeof path, "/tmp/hearth-test-config-%d.conf", (int)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Load with argv (NULL-terminated list after the program name). */
static int load(hearth_config *c, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"hearthd";
    for (int i = 0; args && args[i]; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    config_init(c);
    err[0] = '\0';
    return config_load(c, argc, argv, NULL, err, sizeof err);
}

START_TEST(config_defaults)
{
    hearth_config c;
    ck_assert_int_eq(load(&c, NULL), CONFIG_OK);
    ck_assert_str_eq(c.host, "127.0.0.1");
    ck_assert_int_eq(c.port, 8080);
    ck_assert_ptr_null(c.model_path);
    ck_assert_int_eq(c.threads, 0);
    ck_assert_int_eq(c.log_level, LOG_INFO);
    ck_assert_int_eq(c.max_body, 8LL << 20);
    config_free(&c);
}
END_TEST

START_TEST(config_good_file)
{
    const char *p = write_conf("# comment\n"
                               "[server]\nhost = ::1\nport = 9090\n"
                               "max_body_size = 64k\nshutdown_timeout = 3\n"
                               "[model]\npath = /models/x.gguf\nthreads = 4\n"
                               "[log]\nlevel = debug\n");
    const char *args[] = {"--config", p, NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_OK);
    ck_assert_str_eq(c.host, "::1");
    ck_assert_int_eq(c.port, 9090);
    ck_assert_int_eq(c.max_body, 64 * 1024);
    ck_assert_int_eq(c.shutdown_timeout, 3);
    ck_assert_str_eq(c.model_path, "/models/x.gguf");
    ck_assert_int_eq(c.threads, 4);
    ck_assert_int_eq(c.log_level, LOG_DEBUG);
    ck_assert_str_eq(c.config_path, p);
    config_free(&c);
}
END_TEST

START_TEST(config_flags_override_file)
{
    const char *p = write_conf("[server]\nport = 9090\nhost = 127.0.0.1\n"
                               "[model]\nthreads = 4\n");
    /* flags may come before or after --config: they win either way */
    const char *args[] = {"--port", "7000", "--config", p, "-t", "2",
                          "--max-body-size", "2M", "-m", "m.gguf", NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_OK);
    ck_assert_int_eq(c.port, 7000);
    ck_assert_int_eq(c.threads, 2);
    ck_assert_int_eq(c.max_body, 2 << 20);
    ck_assert_str_eq(c.model_path, "m.gguf");
    ck_assert_str_eq(c.host, "127.0.0.1"); /* from the file */
    config_free(&c);
}
END_TEST

/* Each bad value: the message names file, line and key. */
static void expect_bad(const char *text, const char *line_tag, const char *what)
{
    const char *p = write_conf(text);
    const char *args[] = {"--config", p, NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_ERROR);
    char want[300];
    snprintf(want, sizeof want, "%s:%s: ", p, line_tag);
    ck_assert_msg(strstr(err, want) != NULL, "'%s' lacks '%s'", err, want);
    ck_assert_msg(strstr(err, what) != NULL, "'%s' lacks '%s'", err, what);
    config_free(&c);
}

START_TEST(config_bad_port_range)
{ expect_bad("[server]\nport = 70000\n", "2", "port: '70000' is not an integer in 0..65535"); }
END_TEST
START_TEST(config_bad_port_text)
{ expect_bad("[server]\n\nport = eighty\n", "3", "port: 'eighty'"); }
END_TEST
START_TEST(config_bad_host)
{ expect_bad("[server]\nhost = my.example.com\n", "2", "host: 'my.example.com' is not an IPv4/IPv6"); }
END_TEST
START_TEST(config_bad_size)
{ expect_bad("[server]\nmax_body_size = 12Q\n", "2", "max_body_size: '12Q' is not a size"); }
END_TEST
START_TEST(config_bad_size_zero)
{ expect_bad("[server]\nmax_body_size = 0\n", "2", "max_body_size: '0'"); }
END_TEST
START_TEST(config_bad_threads)
{ expect_bad("[model]\nthreads = -1\n", "2", "threads: '-1'"); }
END_TEST
START_TEST(config_bad_webui)
{ expect_bad("[server]\nwebui = maybe\n", "2", "webui: 'maybe' is not auto or yes/no"); }
END_TEST
/* A chat template that is neither built in nor a path: a usage error
 * (hearthd exits 2) that lists the built-in names, from the file and the
 * flag alike; a name or a path is taken. */
START_TEST(config_bad_chat_template)
{
    expect_bad("[model]\nchat_template = foo\n", "2",
               "chat_template: 'foo' is not a built-in template (chatml, llama2, llama3, "
               "mistral, phi3, gemma, zephyr, deepseek) nor a file (a path has a '/')");
    const char *args[] = {"--chat-template", "foo", NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_ERROR);
    ck_assert_msg(strstr(err, "--chat-template") && strstr(err, "(chatml, llama2,"), "%s", err);
    config_free(&c);
    const char *ok[] = {"--chat-template", "llama3", NULL};
    ck_assert_int_eq(load(&c, ok), CONFIG_OK);
    ck_assert_str_eq(c.chat_template, "llama3");
    config_free(&c);
    const char *file[] = {"--chat-template", "./my.jinja", NULL};
    ck_assert_int_eq(load(&c, file), CONFIG_OK);
    ck_assert_str_eq(c.chat_template, "./my.jinja");
    config_free(&c);
}
END_TEST
START_TEST(config_bad_log_level)
{ expect_bad("[log]\nlevel = loud\n", "2", "level: 'loud' is not one of error, warn, info, debug"); }
END_TEST
START_TEST(config_unknown_key)
{ expect_bad("[server]\nport = 1\nbogus = 2\n", "3", "unknown key 'bogus' in section [server]"); }
END_TEST
START_TEST(config_unknown_section)
{ expect_bad("[srv]\nport = 1\n", "2", "unknown key 'port' in section [srv]"); }
END_TEST
START_TEST(config_key_outside_section)
{ expect_bad("port = 1\n", "1", "outside of any section"); }
END_TEST
START_TEST(config_syntax_error)
{ expect_bad("[server]\nport 8080\n", "2", "syntax error"); }
END_TEST
START_TEST(config_first_error_wins)
{ expect_bad("[server]\nport = x\nhost = y\n", "2", "port: 'x'"); }
END_TEST

/* [server] webui: auto (-1) by default, yes/no and their synonyms, auto
 * again from a flag over the file. */
START_TEST(config_webui_auto_yes_no)
{
    hearth_config c;
    ck_assert_int_eq(load(&c, NULL), CONFIG_OK);
    ck_assert_int_eq(c.webui, -1);
    config_free(&c);
    const char *p = write_conf("[server]\nwebui = off\n");
    const char *file[] = {"--config", p, NULL};
    ck_assert_int_eq(load(&c, file), CONFIG_OK);
    ck_assert_int_eq(c.webui, 0);
    config_free(&c);
    const char *over[] = {"--config", p, "--webui", "AUTO", NULL};
    ck_assert_int_eq(load(&c, over), CONFIG_OK);
    ck_assert_int_eq(c.webui, -1);
    config_free(&c);
    const char *yes[] = {"--webui", "yes", NULL};
    ck_assert_int_eq(load(&c, yes), CONFIG_OK);
    ck_assert_int_eq(c.webui, 1);
    config_free(&c);
    unlink(p);
}
END_TEST

/* [server] metrics: the same auto/yes/no as webui (what auto means is
 * door_auto_on's, in test_door_rules). */
START_TEST(config_metrics_auto_yes_no)
{
    hearth_config c;
    ck_assert_int_eq(load(&c, NULL), CONFIG_OK);
    ck_assert_int_eq(c.metrics, -1);
    config_free(&c);
    const char *p = write_conf("[server]\nmetrics = no\n");
    const char *file[] = {"--config", p, NULL};
    ck_assert_int_eq(load(&c, file), CONFIG_OK);
    ck_assert_int_eq(c.metrics, 0);
    config_free(&c);
    const char *over[] = {"--config", p, "--metrics", "yes", NULL};
    ck_assert_int_eq(load(&c, over), CONFIG_OK);
    ck_assert_int_eq(c.metrics, 1);
    config_free(&c);
    unlink(p);
}
END_TEST

START_TEST(config_bad_metrics)
{ expect_bad("[server]\nmetrics = sometimes\n", "2", "metrics: 'sometimes' is not auto or yes/no"); }
END_TEST

START_TEST(config_missing_file)
{
    const char *args[] = {"--config", "/nonexistent/hearth.conf", NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_ERROR);
    ck_assert_msg(strstr(err, "/nonexistent/hearth.conf: cannot open") != NULL, "%s", err);
    config_free(&c);
}
END_TEST

START_TEST(config_bad_flag_value)
{
    const char *args[] = {"--port", "-5", NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_ERROR);
    ck_assert_msg(strstr(err, "--port: port: '-5'") != NULL, "%s", err);
    config_free(&c);
}
END_TEST

START_TEST(config_unknown_flag)
{
    const char *args[] = {"--frobnicate", NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_ERROR);
    ck_assert_msg(strstr(err, "unknown option '--frobnicate'") != NULL, "%s", err);
    config_free(&c);
}
END_TEST

START_TEST(config_flag_missing_value)
{
    const char *args[] = {"--port", NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_ERROR);
    ck_assert_msg(strstr(err, "'--port' needs a value") != NULL, "%s", err);
    config_free(&c);
}
END_TEST

START_TEST(config_stray_argument)
{
    const char *args[] = {"model.gguf", NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_ERROR);
    ck_assert_msg(strstr(err, "unexpected argument 'model.gguf'") != NULL, "%s", err);
    config_free(&c);
}
END_TEST

START_TEST(config_reload_live_and_restart_keys)
{
    const char *p = write_conf("[server]\nport = 9000\nmax_body_size = 1k\n[log]\nlevel = info\n");
    char *argv[] = {(char *)"hearthd", (char *)"--config", (char *)p, (char *)"--threads",
                    (char *)"3", NULL};
    hearth_config c;
    config_init(&c);
    ck_assert_int_eq(config_load(&c, 5, argv, NULL, err, sizeof err), CONFIG_OK);
    write_conf("[server]\nport = 9001\nmax_body_size = 2k\n[model]\nthreads = 1\n"
               "[log]\nlevel = debug\n");
    char restart[256];
    ck_assert_int_eq(config_reload(&c, 5, argv, restart, sizeof restart, err, sizeof err), 0);
    ck_assert_int_eq(c.max_body, 2048);        /* live */
    ck_assert_int_eq(c.log_level, LOG_DEBUG);  /* live */
    ck_assert_int_eq(c.port, 9000);            /* needs restart: unchanged */
    ck_assert_int_eq(c.threads, 3);            /* the flag still wins */
    ck_assert_msg(strstr(restart, "server.port") != NULL, "%s", restart);
    ck_assert_msg(strstr(restart, "model.threads") == NULL, "%s", restart);

    /* A broken file on reload leaves everything as it was. */
    write_conf("[server]\nport = nope\n");
    ck_assert_int_eq(config_reload(&c, 5, argv, restart, sizeof restart, err, sizeof err), -1);
    ck_assert_int_eq(c.max_body, 2048);
    ck_assert_msg(strstr(err, ":2: port: 'nope'") != NULL, "%s", err);
    config_free(&c);
}
END_TEST

START_TEST(config_router_sections)
{
    const char *p = write_conf("[router]\ndefault = auto\nthreshold = 0.7\nfallback = no\n"
                               "max_queue_wait = 5\n"
                               "[privacy]\naction = redact\npattern = \\bP-[0-9]+\\b\n"
                               "pattern = secret-[a-z]+\n"
                               "[budget]\nrequests_per_day = 100\ntokens_per_hour = 50000\n"
                               "[upstream.openai]\nurl = https://api.openai.com/v1\n"
                               "model = gpt-4o-mini\napi_key_env = OPENAI_API_KEY\n"
                               "timeout = 60\nconnect_timeout = 3\n"
                               "header = X-Title: hearth\nheader = X-Other: 1\n"
                               "[upstream.local2]\nurl = http://127.0.0.1:9000/v1\nmodel = m\n");
    const char *args[] = {"--config", p, "--route-threshold", "0.25", NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_OK);
    ck_assert_str_eq(c.route_default, "auto");
    ck_assert(c.router_threshold == 0.25); /* the flag wins */
    ck_assert_int_eq(c.cloud_fallback, 0);
    ck_assert_int_eq(c.max_queue_wait, 5);
    ck_assert_str_eq(c.privacy_action, "redact");
    ck_assert_uint_eq(c.n_privacy_patterns, 2);
    ck_assert_str_eq(c.privacy_patterns[0], "\\bP-[0-9]+\\b");
    ck_assert_int_eq(c.budget_requests_day, 100);
    ck_assert_int_eq(c.budget_tokens_hour, 50000);
    ck_assert_int_eq(c.budget_requests_hour, 0);
    ck_assert_uint_eq(c.n_upstreams, 2);
    const upstream_conf *u = &c.upstreams[0];
    ck_assert_str_eq(u->name, "openai");
    ck_assert_str_eq(u->url, "https://api.openai.com/v1");
    ck_assert_str_eq(u->model, "gpt-4o-mini");
    ck_assert_str_eq(u->api_key_env, "OPENAI_API_KEY");
    ck_assert_int_eq(u->timeout, 60);
    ck_assert_int_eq(u->connect_timeout, 3);
    ck_assert_uint_eq(u->n_headers, 2);
    ck_assert_str_eq(u->headers[1], "X-Other: 1");
    ck_assert_str_eq(c.upstreams[1].name, "local2");
    ck_assert_int_eq(c.upstreams[1].timeout, 300); /* default */
    ck_assert_int_eq(c.upstreams[1].connect_timeout, 10);
    config_free(&c);
    ck_assert_int_eq(load(&c, NULL), CONFIG_OK); /* defaults */
    ck_assert_str_eq(c.route_default, "local");
    ck_assert_str_eq(c.privacy_action, "local");
    ck_assert(c.router_threshold < 0);
    ck_assert_int_eq(c.cloud_fallback, 1);
    ck_assert_uint_eq(c.n_upstreams, 0);
    config_free(&c);
}
END_TEST

START_TEST(config_router_bad_values)
{
    expect_bad("[router]\ndefault = sometimes\n", "2", "default: 'sometimes' is not one of local|auto|cloud");
    expect_bad("[router]\nthreshold = 1.5\n", "2", "threshold: '1.5'");
    expect_bad("[router]\nfallback = maybe\n", "2", "fallback: 'maybe' is not yes/no");
    expect_bad("[privacy]\naction = drop\n", "2", "action: 'drop'");
    expect_bad("[budget]\ntokens_per_day = -3\n", "2", "tokens_per_day: '-3'");
    expect_bad("[upstream.x]\nurl = ftp://h/v1\n", "2", "url: must start with https:// or http://");
    expect_bad("[upstream.x]\nurl = http://h/v1\napi_key = sk-1234\n", "3",
               "keys are not written in this file");
    expect_bad("[upstream.x]\ntimeout = soon\n", "2", "timeout: 'soon'");
    expect_bad("[upstream.x]\nheader = no colon\n", "2", "header: expected 'Name: value'");
    expect_bad("[upstream.x]\nflavour = 1\n", "2", "unknown key 'flavour' in section [upstream.x]");
    expect_bad("[upstream.b@d]\nurl = http://h\n", "2", "must be 1-64 of");
    expect_bad("[upstream]\nurl = http://h\n", "2", "name the upstream");
    /* a section without its model: named after the whole file is read */
    const char *p = write_conf("[upstream.half]\nurl = http://h/v1\n");
    const char *args[] = {"--config", p, NULL};
    hearth_config c;
    ck_assert_int_eq(load(&c, args), CONFIG_ERROR);
    ck_assert_msg(strstr(err, "[upstream.half] needs model") != NULL, "%s", err);
    config_free(&c);
}
END_TEST

START_TEST(config_router_reload)
{
    const char *p = write_conf("[router]\ndefault = local\n[privacy]\naction = local\n"
                               "[upstream.a]\nurl = http://h/v1\nmodel = m\n");
    char *argv[] = {(char *)"hearthd", (char *)"--config", (char *)p, NULL};
    hearth_config c;
    config_init(&c);
    ck_assert_int_eq(config_load(&c, 3, argv, NULL, err, sizeof err), CONFIG_OK);
    write_conf("[router]\ndefault = auto\n[privacy]\naction = reject\n"
               "[upstream.a]\nurl = http://h/v1\nmodel = other\n");
    char restart[256];
    ck_assert_int_eq(config_reload(&c, 3, argv, restart, sizeof restart, err, sizeof err), 0);
    ck_assert_str_eq(c.route_default, "auto");   /* live */
    ck_assert_str_eq(c.privacy_action, "reject"); /* live */
    ck_assert_str_eq(c.upstreams[0].model, "m"); /* needs a restart */
    ck_assert_msg(strstr(restart, "[upstream.*]") != NULL, "%s", restart);
    config_free(&c);
}
END_TEST

/* [store]: defaults, the file, the flags, bad values */
START_TEST(config_store_section)
{
    hearth_config c;
    ck_assert_int_eq(load(&c, NULL), CONFIG_OK);
    ck_assert_ptr_null(c.store_dir);
    ck_assert_str_eq(c.hub_url, "https://huggingface.co");
    ck_assert_int_eq(c.stall_timeout, 30);
    config_free(&c);
    const char *p = write_conf("[store]\ndir = /srv/models\nhub_url = http://127.0.0.1:9\n"
                               "stall_timeout = 5\n");
    const char *args[] = {"--config", p, "--stall-timeout", "7", NULL};
    ck_assert_int_eq(load(&c, args), CONFIG_OK);
    ck_assert_str_eq(c.store_dir, "/srv/models");
    ck_assert_str_eq(c.hub_url, "http://127.0.0.1:9");
    ck_assert_int_eq(c.stall_timeout, 7);
    config_free(&c);
    const char *flags[] = {"--store", "/tmp/s", "--hub-url", "https://mirror.example", NULL};
    ck_assert_int_eq(load(&c, flags), CONFIG_OK);
    ck_assert_str_eq(c.store_dir, "/tmp/s");
    ck_assert_str_eq(c.hub_url, "https://mirror.example");
    config_free(&c);
}
END_TEST
START_TEST(config_store_bad_stall_timeout)
{ expect_bad("[store]\nstall_timeout = 0\n", "2", "stall_timeout: '0' is not an integer in 1..86400"); }
END_TEST

START_TEST(config_help_exits)
{
    const char *args[] = {"--help", NULL};
    hearth_config c;
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int rc = load(&c, args);
    fclose(stdout);
    stdout = saved;
    ck_assert_int_eq(rc, CONFIG_EXIT);
    config_free(&c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("config");
    tcase_add_test(t, config_defaults);
    tcase_add_test(t, config_good_file);
    tcase_add_test(t, config_flags_override_file);
    tcase_add_test(t, config_bad_port_range);
    tcase_add_test(t, config_bad_port_text);
    tcase_add_test(t, config_bad_host);
    tcase_add_test(t, config_bad_size);
    tcase_add_test(t, config_bad_size_zero);
    tcase_add_test(t, config_bad_threads);
    tcase_add_test(t, config_bad_webui);
    tcase_add_test(t, config_bad_chat_template);
    tcase_add_test(t, config_webui_auto_yes_no);
    tcase_add_test(t, config_metrics_auto_yes_no);
    tcase_add_test(t, config_bad_metrics);
    tcase_add_test(t, config_bad_log_level);
    tcase_add_test(t, config_unknown_key);
    tcase_add_test(t, config_unknown_section);
    tcase_add_test(t, config_key_outside_section);
    tcase_add_test(t, config_syntax_error);
    tcase_add_test(t, config_first_error_wins);
    tcase_add_test(t, config_missing_file);
    tcase_add_test(t, config_bad_flag_value);
    tcase_add_test(t, config_unknown_flag);
    tcase_add_test(t, config_flag_missing_value);
    tcase_add_test(t, config_stray_argument);
    tcase_add_test(t, config_reload_live_and_restart_keys);
    tcase_add_test(t, config_help_exits);
    tcase_add_test(t, config_store_section);
    tcase_add_test(t, config_store_bad_stall_timeout);
    tcase_add_test(t, config_router_sections);
    tcase_add_test(t, config_router_bad_values);
    tcase_add_test(t, config_router_reload);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
