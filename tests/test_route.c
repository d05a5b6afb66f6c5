/* test_route.c - the router's decision pieces: the policy's rules, the
 * score's weights and features, the upstreams' keys and cool-down. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "score.h"
#include "testutil.h"
#include "upstream.h"

/* ---------------------------------------------------------- policy */

static policy_in base(void)
{
    return (policy_in){.mode = ROUTE_AUTO, .mode_source = "model", .local = LOCAL_OK,
                       .cloud_configured = true, .cloud_available = true, .fallback = true,
                       .action = PRIVACY_KEEP_LOCAL, .threshold = 0.5};
}

static policy_out decide(policy_in in)
{
    policy_out o;
    policy_decide(&in, &o);
    return o;
}

START_TEST(policy_score_decides_auto)
{
    policy_in in = base();
    policy_out o = decide(in);
    ck_assert(o.needs_score);
    in.scored = true;
    in.score = 0.81;
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_CLOUD);
    ck_assert_str_eq(o.reason, "score=0.81");
    in.score = 0.2;
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_LOCAL);
    ck_assert_str_eq(o.reason, "score=0.20");
    in.score = 0.5; /* at the threshold: cloud */
    ck_assert_int_eq(decide(in).to, ROUTE_TO_CLOUD);
}
END_TEST

START_TEST(policy_forced_routes)
{
    policy_in in = base();
    in.mode = ROUTE_LOCAL;
    in.mode_source = "header";
    in.privacy_kind = "email"; /* moot: nothing leaves */
    in.action = PRIVACY_REJECT;
    policy_out o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_LOCAL);
    ck_assert_str_eq(o.reason, "header");
    in = base();
    in.mode = ROUTE_CLOUD;
    in.mode_source = "default";
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_CLOUD);
    ck_assert_str_eq(o.reason, "default");
    ck_assert(!o.needs_score);
    in.cloud_configured = false;
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_LOCAL);
    ck_assert_str_eq(o.reason, "no-upstream");
}
END_TEST

START_TEST(policy_privacy_actions)
{
    policy_in in = base();
    in.privacy_kind = "card";
    in.mode = ROUTE_CLOUD;
    policy_out o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_LOCAL);
    ck_assert_str_eq(o.reason, "privacy:card");
    in.local = LOCAL_NONE; /* must not leave, cannot stay: refused */
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_REFUSE);
    ck_assert_uint_eq(o.status, 400);
    in = base();
    in.privacy_kind = "email";
    in.action = PRIVACY_REJECT;
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_REFUSE);
    ck_assert_str_eq(o.reason, "privacy:email");
    in.action = PRIVACY_REDACT;
    in.mode = ROUTE_CLOUD;
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_CLOUD);
    ck_assert(o.redact);
    in.mode = ROUTE_AUTO;
    in.scored = true;
    in.score = 0.1; /* stays local: nothing to redact */
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_LOCAL);
    ck_assert(!o.redact);
}
END_TEST

START_TEST(policy_budget_cooldown_and_local_limits)
{
    policy_in in = base();
    in.budget_cap = "requests_per_hour";
    in.mode = ROUTE_CLOUD;
    policy_out o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_LOCAL);
    ck_assert_str_eq(o.reason, "budget:requests_per_hour");
    in.local = LOCAL_NONE;
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_REFUSE);
    ck_assert_uint_eq(o.status, 429);

    in = base();
    in.cloud_available = false;
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_LOCAL);
    ck_assert_str_eq(o.reason, "cooldown");
    in.mode = ROUTE_CLOUD;
    in.fallback = false;
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_REFUSE);
    ck_assert_uint_eq(o.status, 503);

    static const struct {
        local_state s;
        const char *why;
    } cases[] = {{LOCAL_NONE, "no-local-model"},
                 {LOCAL_CONTEXT, "context"},
                 {LOCAL_UNSUPPORTED, "unsupported"}};
    for (size_t i = 0; i < 3; i++) {
        in = base();
        in.local = cases[i].s;
        o = decide(in);
        ck_assert_int_eq(o.to, ROUTE_TO_CLOUD);
        ck_assert_str_eq(o.reason, cases[i].why);
    }
    in = base();
    in.queue_over = true;
    o = decide(in);
    ck_assert_int_eq(o.to, ROUTE_TO_CLOUD);
    ck_assert_str_eq(o.reason, "queue");
}
END_TEST

START_TEST(policy_parsers)
{
    ck_assert_int_eq(route_mode_parse("auto"), ROUTE_AUTO);
    ck_assert_int_eq(route_mode_parse("local"), ROUTE_LOCAL);
    ck_assert_int_eq(route_mode_parse("cloud"), ROUTE_CLOUD);
    ck_assert_int_eq(route_mode_parse("Cloud"), -1);
    ck_assert_int_eq(route_mode_parse(NULL), -1);
    ck_assert_int_eq(privacy_action_parse("redact"), PRIVACY_REDACT);
    ck_assert_int_eq(privacy_action_parse("drop"), -1);
}
END_TEST

/* ---------------------------------------------------------- weights */

START_TEST(weights_builtin_parse)
{
    score_weights w;
    score_weights_builtin(&w);
    ck_assert(w.threshold > 0 && w.threshold < 1);
    /* the built-in file is parsed for real (an error would zero it) */
    int nonzero = 0;
    for (int f = 0; f < SF_COUNT; f++)
        nonzero += w.w[f] != 0;
    ck_assert_int_ge(nonzero, SF_COUNT / 2);
    char err[128];
    ck_assert_int_eq(score_weights_load(NULL, &w, err, sizeof err), 0);
}
END_TEST

static char *full_weights(const char *skip, const char *extra)
{
    static char buf[2048];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "# test\nbias -1\n");
    if (strcmp(skip, "threshold") != 0)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "threshold 0.4\n");
    for (int f = 0; f < SF_COUNT; f++)
        if (strcmp(skip, score_feature_name((score_feature)f)) != 0)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s %d.5  # c\n",
                                  score_feature_name((score_feature)f), f);
    snprintf(buf + n, sizeof buf - n, "%s", extra);
    return buf;
}

START_TEST(weights_parse_errors)
{
    score_weights w;
    char err[160];
    const char *t = full_weights("", "");
    ck_assert_int_eq(score_weights_parse(t, strlen(t), &w, err, sizeof err), 0);
    ck_assert(fabs(w.threshold - 0.4) < 1e-12);
    ck_assert(fabs(w.w[SF_MATH] - 4.5) < 1e-12);
    ck_assert(fabs(w.bias + 1) < 1e-12);
    t = full_weights("math", "");
    ck_assert_int_eq(score_weights_parse(t, strlen(t), &w, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "math"));
    t = full_weights("", "code 1\n");
    ck_assert_int_eq(score_weights_parse(t, strlen(t), &w, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "twice"));
    t = full_weights("", "nonsense 1\n");
    ck_assert_int_eq(score_weights_parse(t, strlen(t), &w, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown"));
    t = full_weights("", "bias\n");
    ck_assert_int_eq(score_weights_parse(t, strlen(t), &w, err, sizeof err), -1);
    t = full_weights("", "bias nan\n");
    ck_assert_int_eq(score_weights_parse(t, strlen(t), &w, err, sizeof err), -1);
    t = full_weights("threshold", "threshold 1.5\n");
    ck_assert_int_eq(score_weights_parse(t, strlen(t), &w, err, sizeof err), -1);
    ck_assert_int_eq(score_weights_load("/nonexistent/w.txt", &w, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/w.txt"));
}
END_TEST

/* ---------------------------------------------------------- features */

static void features_of(const char *text, double x[SF_COUNT])
{
    api_message m = {.role = API_ROLE_USER, .content = (char *)text,
                     .content_len = strlen(text)};
    api_request q = {.kind = API_CHAT, .messages = &m, .n_messages = 1, .max_tokens = -1};
    score_input in = {.req = &q, .n_prompt = 100, .n_ctx = 4096, .queue_wait_max = 10};
    score_features(&in, x);
}

START_TEST(features_tell_kinds_apart)
{
    double easy[SF_COUNT], code[SF_COUNT], math[SF_COUNT], zh[SF_COUNT], essay[SF_COUNT];
    features_of("hi! how are you today?", easy);
    features_of("Fix this bug:\n```python\ndef f(x):\n    return x[0];\n```\nit raises an "
                "exception in the unit test", code);
    features_of("Prove that the integral of f(x) = x^2 converges, using induction", math);
    features_of("请把这段话翻译成英文，并解释其中的语法。", zh);
    features_of("Write a detailed 1500 words essay on the history of Rome", essay);
    for (int f = 0; f < SF_COUNT; f++)
        ck_assert(isfinite(easy[f]) && isfinite(code[f]) && isfinite(math[f]));
    ck_assert(easy[SF_CODE] < 0.1 && code[SF_CODE] > 0.8);
    ck_assert(easy[SF_MATH] < 0.1 && math[SF_MATH] > 0.8);
    ck_assert(easy[SF_NON_LATIN] == 0 && zh[SF_NON_LATIN] > 0.9);
    ck_assert(essay[SF_OUTPUT_LEN] > 0.9 && easy[SF_OUTPUT_LEN] < 0.1);
    ck_assert(fabs(easy[SF_PROMPT_CTX] - 100.0 / 4096) < 1e-9);
}
END_TEST

START_TEST(features_state_and_bounds)
{
    double x[SF_COUNT];
    score_input in = {.n_prompt = 9000, .n_ctx = 4096, .has_nll = true, .nll_ratio = 99,
                      .battery_low = true, .thermal = 7, .queue_wait_s = 1e9,
                      .queue_wait_max = 10};
    score_features(&in, x); /* no request at all: text features 0 */
    ck_assert(x[SF_CODE] == 0 && x[SF_TURNS] == 0);
    ck_assert(x[SF_PROMPT_CTX] == 2);
    ck_assert(x[SF_NLL] == 3);
    ck_assert(x[SF_BATTERY_LOW] == 1 && x[SF_THERMAL] == 1 && x[SF_QUEUE_WAIT] == 2);
    in.nll_ratio = NAN;
    in.thermal = NAN;
    score_set_state(&in, x);
    ck_assert(x[SF_NLL] == 0 && x[SF_THERMAL] == 0);
    in.has_nll = false;
    in.nll_ratio = 0.5;
    score_set_state(&in, x);
    ck_assert(x[SF_NLL] == 0);
    score_weights w;
    score_weights_builtin(&w);
    double contrib[SF_COUNT];
    double s = score_combine(&w, x, contrib);
    ck_assert(s > 0 && s < 1);
    int top = score_top_feature(contrib);
    ck_assert(top >= 0 && contrib[top] > 0);
}
END_TEST

START_TEST(features_turns_and_invalid_utf8)
{
    api_message m[5];
    const char *texts[] = {"be brief", "hi", "hello", "what?", "\xff\xfe\xc3 \xe4\xb8"};
    api_role roles[] = {API_ROLE_SYSTEM, API_ROLE_USER, API_ROLE_ASSISTANT, API_ROLE_USER,
                        API_ROLE_USER};
    for (int i = 0; i < 5; i++)
        m[i] = (api_message){.role = roles[i], .content = (char *)texts[i],
                             .content_len = strlen(texts[i])};
    api_request q = {.kind = API_CHAT, .messages = m, .n_messages = 5, .max_tokens = 4096};
    score_input in = {.req = &q, .n_prompt = 30, .n_ctx = 4096, .queue_wait_max = 1};
    double x[SF_COUNT];
    score_features(&in, x);
    ck_assert(fabs(x[SF_TURNS] - log2(3.0) / 4) < 1e-9);
    ck_assert(x[SF_OUTPUT_LEN] >= 0.5); /* max_tokens 4096 */
    for (int f = 0; f < SF_COUNT; f++)
        ck_assert(isfinite(x[f]));
}
END_TEST

/* ---------------------------------------------------------- upstreams */

START_TEST(upstream_keys_and_headers)
{
    char *hdrs[] = {"X-Title: hearth"};
    upstream_conf c = {.name = "t", .url = "http://127.0.0.1:1/v1/", .model = "m",
                       .api_key_env = "HEARTH_TEST_KEY", .headers = hdrs, .n_headers = 1};
    upstream u;
    char err[256];
    unsetenv("HEARTH_TEST_KEY");
    ck_assert_int_eq(upstream_init(&u, &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "HEARTH_TEST_KEY"));
    setenv("HEARTH_TEST_KEY", "  sk-secret-123  ", 1);
    ck_assert_int_eq(upstream_init(&u, &c, err, sizeof err), 0);
    ck_assert(u.keyed);
    ck_assert_uint_eq(u.n_headers, 3);
    ck_assert_str_eq(u.headers[1], "Authorization: Bearer sk-secret-123");
    ck_assert_str_eq(u.headers[2], "X-Title: hearth");
    char *url = upstream_url(&u, "chat/completions");
    ck_assert_str_eq(url, "http://127.0.0.1:1/v1/chat/completions");
    free(url);
    upstream_fini(&u);

    char dir[256];
    ck_assert_ptr_nonnull(tu_temp_dir("route", dir, sizeof dir));
    char path[300];
    snprintf(path, sizeof path, "%s/key", dir);
    ck_assert_int_eq(tu_write_file(path, "sk-from-file\nsecond line\n"), 0);
    c.api_key_env = NULL;
    c.api_key_file = path;
    ck_assert_int_eq(upstream_init(&u, &c, err, sizeof err), 0);
    ck_assert_str_eq(u.headers[1], "Authorization: Bearer sk-from-file");
    upstream_fini(&u);
    ck_assert_int_eq(tu_write_file(path, "\n"), 0);
    ck_assert_int_eq(upstream_init(&u, &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "empty"));
    c.api_key_file = "/nonexistent/key";
    ck_assert_int_eq(upstream_init(&u, &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/key"));
    tu_rm_tree(dir);
}
END_TEST

START_TEST(upstream_cooldown)
{
    upstream_conf c = {.name = "t", .url = "http://x", .model = "m"};
    upstream u;
    char err[128];
    ck_assert_int_eq(upstream_init(&u, &c, err, sizeof err), 0);
    ck_assert(!u.keyed);
    uint64_t t = 1000000;
    upstream_record(&u, false, t, 30, 3);
    upstream_record(&u, false, t, 30, 3);
    ck_assert(upstream_available(&u, t));
    upstream_record(&u, false, t, 30, 3); /* third in a row */
    ck_assert(!upstream_available(&u, t + 29999));
    ck_assert(!upstream_begin(&u, t + 29999) && !u.trial);
    ck_assert(upstream_available(&u, t + 30000));
    /* one trial after the cool-down: the others skip it meanwhile */
    ck_assert(upstream_begin(&u, t + 30000));
    ck_assert(!upstream_available(&u, t + 30000));
    ck_assert(!upstream_available(&u, t + 45000));
    /* the trial fails: cools down again at once */
    upstream_record(&u, false, t + 30000, 30, 3);
    ck_assert(!u.trial);
    ck_assert(!upstream_available(&u, t + 30001));
    ck_assert(upstream_available(&u, t + 60000));
    /* a trial whose client went away: the next request tries */
    ck_assert(upstream_begin(&u, t + 60000));
    ck_assert(!upstream_available(&u, t + 60000));
    upstream_abandon(&u);
    ck_assert(upstream_available(&u, t + 60000));
    ck_assert_int_eq(u.failures, 4);
    /* this trial succeeds: available to all, not cooling down */
    ck_assert(upstream_begin(&u, t + 60000));
    upstream_record(&u, true, t + 60000, 30, 3);
    ck_assert(!u.trial && u.cool_until_ms == 0);
    ck_assert(upstream_available(&u, t + 60000));
    ck_assert(!upstream_begin(&u, t + 60000)); /* a plain request, no trial */
    ck_assert(upstream_available(&u, t + 60000));
    ck_assert_int_eq(u.failures, 0);
    upstream_record(&u, false, t + 60000, 30, 3);
    ck_assert(upstream_available(&u, t + 60000));
    ck_assert_uint_eq(u.n_failed, 5);
    ck_assert_uint_eq(u.n_ok, 1);
    upstream_fini(&u);
}
END_TEST

static Suite *route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("policy");
    tcase_add_test(tc, policy_score_decides_auto);
    tcase_add_test(tc, policy_forced_routes);
    tcase_add_test(tc, policy_privacy_actions);
    tcase_add_test(tc, policy_budget_cooldown_and_local_limits);
    tcase_add_test(tc, policy_parsers);
    suite_add_tcase(s, tc);
    tc = tcase_create("score");
    tcase_add_test(tc, weights_builtin_parse);
    tcase_add_test(tc, weights_parse_errors);
    tcase_add_test(tc, features_tell_kinds_apart);
    tcase_add_test(tc, features_state_and_bounds);
    tcase_add_test(tc, features_turns_and_invalid_utf8);
    suite_add_tcase(s, tc);
    tc = tcase_create("upstream");
    tcase_add_test(tc, upstream_keys_and_headers);
    tcase_add_test(tc, upstream_cooldown);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(route_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
