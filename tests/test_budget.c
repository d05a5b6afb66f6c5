/* test_budget.c - cloud budgets (router/budget.h): each cap reached at its
 * limit, hour and day windows rolling over under a clock the test sets,
 * the counts surviving a restart, and state files that are corrupt, from
 * the future, or cannot be written. */
#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "router/budget.h"
#include "tests/testutil.h"

#define T0 ((time_t)1767225600) /* 2026-01-01 00:00:00 UTC */
#define H 3600
#define D 86400

static char dir[64];
static char path[256];

static void setup(void)
{
    ck_assert_ptr_nonnull(tu_temp_dir("budget", dir, sizeof dir));
    snprintf(path, sizeof path, "%s/state/router-budget.json", dir);
}

static void teardown(void)
{
    chmod(dir, 0700);
    tu_rm_tree(dir);
}

static budget *open_ok(const char *p, const budget_limits *lim)
{
    budget *b;
    char err[256];
    budget_status st = budget_open(p, lim, &b, err, sizeof err);
    ck_assert_msg(st == BUDGET_OK, "budget_open: %d %s", (int)st, err);
    ck_assert_ptr_nonnull(b);
    return b;
}

static budget_usage usage(budget *b, time_t now)
{
    budget_usage u;
    budget_usage_get(b, now, &u);
    return u;
}

/* The four counts at `now`. */
#define expect_counts(b, now, rh, th, rd, td)                               \
    do {                                                                    \
        budget_usage u_ = usage(b, now);                                    \
        ck_assert_int_eq(u_.requests_hour, rh);                             \
        ck_assert_int_eq(u_.tokens_hour, th);                               \
        ck_assert_int_eq(u_.requests_day, rd);                              \
        ck_assert_int_eq(u_.tokens_day, td);                                \
    } while (0)

/* ------------------------------------------------------------- caps */

/* One cap set to 3, the others off; what reaches it. */
static const struct cap_case {
    const char *name;
    budget_limits lim;
    bool tokens;
} caps[] = {
    {"requests_per_hour", {.requests_per_hour = 3}, false},
    {"requests_per_day", {.requests_per_day = 3}, false},
    {"tokens_per_hour", {.tokens_per_hour = 3}, true},
    {"tokens_per_day", {.tokens_per_day = 3}, true},
};

START_TEST(cap_reached_exactly_at_limit)
{
    const struct cap_case *c = &caps[_i];
    budget *b = open_ok(NULL, &c->lim);
    time_t now = T0 + 100;
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(budget_check(b, now) == NULL, "%s: refused after %d",
                      c->name, k);
        if (c->tokens)
            ck_assert_int_eq(budget_charge_tokens(b, now, 1), BUDGET_OK);
        else
            ck_assert_int_eq(budget_charge_request(b, now), BUDGET_OK);
    }
    const char *cap = budget_check(b, now);
    ck_assert_ptr_nonnull(cap);
    ck_assert_str_eq(cap, c->name);
    /* a charge past the cap still counts (a request that went anyway) */
    ck_assert_int_eq(budget_charge_request(b, now), BUDGET_OK);
    ck_assert_int_eq(budget_charge_tokens(b, now, 5), BUDGET_OK);
    ck_assert_str_eq(budget_check(b, now), c->name);
    budget_free(b);
}
END_TEST

START_TEST(zero_and_negative_mean_no_cap)
{
    budget_limits lim = {0, 0, -1, -5};
    budget *b = open_ok(NULL, &lim);
    for (int k = 0; k < 1000; k++)
        ck_assert_int_eq(budget_charge_request(b, T0), BUDGET_OK);
    ck_assert_int_eq(budget_charge_tokens(b, T0, 1000000000000LL), BUDGET_OK);
    ck_assert_ptr_null(budget_check(b, T0));
    budget_usage u = usage(b, T0);
    ck_assert_int_eq(u.requests_day, 1000);
    ck_assert_int_eq(u.limits.tokens_per_hour, 0);
    ck_assert_int_eq(u.limits.tokens_per_day, 0);
    budget_free(b);
}
END_TEST

START_TEST(day_cap_named_before_hour_cap)
{
    budget_limits lim = {.requests_per_hour = 1, .requests_per_day = 1};
    budget *b = open_ok(NULL, &lim);
    ck_assert_int_eq(budget_charge_request(b, T0), BUDGET_OK);
    ck_assert_str_eq(budget_check(b, T0), "requests_per_day");
    budget_free(b);
}
END_TEST

START_TEST(set_limits_keeps_counts)
{
    budget_limits lim = {.tokens_per_day = 1000};
    budget *b = open_ok(NULL, &lim);
    ck_assert_int_eq(budget_charge_tokens(b, T0, 600), BUDGET_OK);
    ck_assert_ptr_null(budget_check(b, T0));
    lim.tokens_per_day = 500;
    budget_set_limits(b, &lim);
    ck_assert_str_eq(budget_check(b, T0), "tokens_per_day");
    lim.tokens_per_day = 0;
    budget_set_limits(b, &lim);
    ck_assert_ptr_null(budget_check(b, T0));
    ck_assert_int_eq(usage(b, T0).tokens_day, 600);
    budget_free(b);
}
END_TEST

START_TEST(negative_tokens_rejected_and_sums_saturate)
{
    budget_limits lim = {0};
    budget *b = open_ok(NULL, &lim);
    ck_assert_int_eq(budget_charge_tokens(b, T0, -1), BUDGET_EINVAL);
    ck_assert_int_eq(budget_charge_tokens(b, T0, 0), BUDGET_OK);
    ck_assert_int_eq(usage(b, T0).tokens_hour, 0);
    ck_assert_int_eq(budget_charge_tokens(b, T0, LLONG_MAX), BUDGET_OK);
    ck_assert_int_eq(budget_charge_tokens(b, T0, LLONG_MAX), BUDGET_OK);
    budget_usage u = usage(b, T0);
    ck_assert_int_eq(u.tokens_hour, BUDGET_COUNT_MAX);
    ck_assert_int_eq(u.tokens_day, BUDGET_COUNT_MAX);
    budget_free(b);
}
END_TEST

static void *charge_many(void *arg)
{
    budget *b = arg;
    for (int k = 0; k < 1000; k++) {
        (void)budget_check(b, T0);
        if (budget_charge_request(b, T0) != BUDGET_OK ||
            budget_charge_tokens(b, T0, 3) != BUDGET_OK)
            return arg;
    }
    return NULL;
}

START_TEST(charges_from_several_threads_all_count)
{
    budget_limits lim = {0};
    budget *b = open_ok(NULL, &lim);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, charge_many, b), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        ck_assert_int_eq(pthread_join(th[i], &r), 0);
        ck_assert_ptr_null(r);
    }
    expect_counts(b, T0, 4000, 12000, 4000, 12000);
    budget_free(b);
}
END_TEST

/* ---------------------------------------------------------- windows */

START_TEST(hour_window_rolls_over)
{
    budget_limits lim = {.requests_per_hour = 2, .tokens_per_hour = 100};
    budget *b = open_ok(NULL, &lim);
    time_t t = T0 + 5 * H;
    ck_assert_int_eq(budget_charge_request(b, t), BUDGET_OK);
    ck_assert_int_eq(budget_charge_request(b, t + H - 1), BUDGET_OK);
    ck_assert_int_eq(budget_charge_tokens(b, t + H - 1, 100), BUDGET_OK);
    ck_assert_str_eq(budget_check(b, t + H - 1), "requests_per_hour");
    /* the next hour starts at zero; the day keeps counting */
    ck_assert_ptr_null(budget_check(b, t + H));
    expect_counts(b, t + H, 0, 0, 2, 100);
    budget_usage u = usage(b, t + H);
    ck_assert_int_eq(u.hour_start, t + H);
    ck_assert_int_eq(u.day_start, T0);
    /* a window later than the next one starts at zero as well */
    ck_assert_int_eq(budget_charge_request(b, t + H + 10), BUDGET_OK);
    ck_assert_int_eq(usage(b, t + 3 * H + 1).requests_hour, 0);
    budget_free(b);
}
END_TEST

START_TEST(day_window_rolls_over_at_utc_midnight)
{
    budget_limits lim = {.requests_per_day = 3};
    budget *b = open_ok(NULL, &lim);
    ck_assert_int_eq(budget_charge_request(b, T0), BUDGET_OK);
    ck_assert_int_eq(budget_charge_request(b, T0 + 12 * H), BUDGET_OK);
    ck_assert_int_eq(budget_charge_request(b, T0 + D - 1), BUDGET_OK);
    ck_assert_str_eq(budget_check(b, T0 + D - 1), "requests_per_day");
    ck_assert_ptr_null(budget_check(b, T0 + D));
    budget_usage u = usage(b, T0 + D);
    ck_assert_int_eq(u.requests_day, 0);
    ck_assert_int_eq(u.day_start, T0 + D);
    ck_assert_int_eq(u.hour_start, T0 + D);
    budget_free(b);
}
END_TEST

START_TEST(clock_going_back_keeps_counts)
{
    budget_limits lim = {.requests_per_hour = 2};
    budget *b = open_ok(NULL, &lim);
    ck_assert_int_eq(budget_charge_request(b, T0 + 2 * H), BUDGET_OK);
    ck_assert_int_eq(budget_charge_request(b, T0 + 2 * H), BUDGET_OK);
    /* back by an hour: still capped, and the window is now's */
    ck_assert_str_eq(budget_check(b, T0 + H + 30), "requests_per_hour");
    ck_assert_int_eq(usage(b, T0 + H + 30).hour_start, T0 + H);
    /* and it rolls over at now's next boundary, not at the old one's */
    ck_assert_ptr_null(budget_check(b, T0 + 2 * H));
    budget_free(b);
}
END_TEST

/* ------------------------------------------------------ persistence */

START_TEST(counts_survive_a_restart)
{
    budget_limits lim = {.requests_per_day = 3, .tokens_per_hour = 1000};
    budget *b = open_ok(path, &lim); /* state/ does not exist yet */
    ck_assert_int_eq(budget_charge_request(b, T0 + 10), BUDGET_OK);
    ck_assert_int_eq(budget_charge_request(b, T0 + 20), BUDGET_OK);
    ck_assert_int_eq(budget_charge_tokens(b, T0 + 30, 700), BUDGET_OK);
    budget_free(b);

    struct stat st;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/state", dir);
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    b = open_ok(path, &lim);
    expect_counts(b, T0 + 40, 2, 700, 2, 700);
    ck_assert_int_eq(budget_charge_request(b, T0 + 50), BUDGET_OK);
    ck_assert_str_eq(budget_check(b, T0 + 60), "requests_per_day");
    budget_free(b);

    /* a restart in a later hour of the same day */
    b = open_ok(path, &lim);
    expect_counts(b, T0 + H, 0, 0, 3, 700);
    ck_assert_str_eq(budget_check(b, T0 + H), "requests_per_day");
    budget_free(b);

    /* nothing but the state file is left in the directory */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", sub);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static void write_state(time_t hs, long long rh, long long th, time_t ds,
                        long long rd, long long td)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"version\":1,\"hour_start\":%lld,\"requests_hour\":%lld,"
             "\"tokens_hour\":%lld,\"day_start\":%lld,\"requests_day\":%lld,"
             "\"tokens_day\":%lld}\n",
             (long long)hs, rh, th, (long long)ds, rd, td);
    ck_assert_int_eq(tu_write_file(path, text), 0);
}

START_TEST(state_file_from_the_future)
{
    /* written when the clock said T0 + 2 days, 05:00 */
    write_state(T0 + 2 * D + 5 * H, 4, 40, T0 + 2 * D, 9, 90);
    budget_limits lim = {.requests_per_hour = 4};
    budget *b = open_ok(path, &lim);
    /* now is T0 + 01:00: the counts hold in now's windows */
    expect_counts(b, T0 + H, 4, 40, 9, 90);
    budget_usage u = usage(b, T0 + H);
    ck_assert_int_eq(u.hour_start, T0 + H);
    ck_assert_int_eq(u.day_start, T0);
    ck_assert_str_eq(budget_check(b, T0 + H), "requests_per_hour");
    /* the next hour of now's clock rolls as usual */
    ck_assert_ptr_null(budget_check(b, T0 + 2 * H));
    ck_assert_int_eq(usage(b, T0 + 2 * H).requests_day, 9);
    ck_assert_int_eq(usage(b, T0 + D).requests_day, 0);
    budget_free(b);
}
END_TEST

START_TEST(state_file_from_an_old_window)
{
    write_state(T0 - D + 3 * H, 4, 40, T0 - D, 9, 90);
    budget_limits lim = {0};
    budget *b = open_ok(path, &lim);
    expect_counts(b, T0 + 5, 0, 0, 0, 0);
    budget_free(b);
}
END_TEST

/* Files that are not budget state: each is reported, the budget starts
 * empty, and the next charge writes a good file over it. */
static const char *const corrupt[] = {
    "",
    "\n",
    "not json",
    "{\"version\":1,\"hour_start\":1767225600",
    "[]",
    "42",
    "{}",
    "{\"version\":2,\"hour_start\":1767225600,\"requests_hour\":1,"
    "\"tokens_hour\":1,\"day_start\":1767225600,\"requests_day\":1,"
    "\"tokens_day\":1}",
    /* a member missing */
    "{\"version\":1,\"hour_start\":1767225600,\"requests_hour\":1,"
    "\"tokens_hour\":1,\"day_start\":1767225600,\"requests_day\":1}",
    /* wrong types */
    "{\"version\":1,\"hour_start\":\"1767225600\",\"requests_hour\":1,"
    "\"tokens_hour\":1,\"day_start\":1767225600,\"requests_day\":1,"
    "\"tokens_day\":1}",
    "{\"version\":1,\"hour_start\":1767225600,\"requests_hour\":1.5,"
    "\"tokens_hour\":1,\"day_start\":1767225600,\"requests_day\":1,"
    "\"tokens_day\":1}",
    "{\"version\":1,\"hour_start\":1767225600,\"requests_hour\":null,"
    "\"tokens_hour\":1,\"day_start\":1767225600,\"requests_day\":1,"
    "\"tokens_day\":1}",
    /* negative, absurd, beyond 64 bits */
    "{\"version\":1,\"hour_start\":1767225600,\"requests_hour\":-3,"
    "\"tokens_hour\":1,\"day_start\":1767225600,\"requests_day\":1,"
    "\"tokens_day\":1}",
    "{\"version\":1,\"hour_start\":1767225600,\"requests_hour\":1,"
    "\"tokens_hour\":1000000000000000000,\"day_start\":1767225600,"
    "\"requests_day\":1,\"tokens_day\":1}",
    "{\"version\":1,\"hour_start\":1767225600,\"requests_hour\":1,"
    "\"tokens_hour\":1,\"day_start\":1767225600,\"requests_day\":1,"
    "\"tokens_day\":99999999999999999999999}",
    "{\"version\":1,\"hour_start\":-3600,\"requests_hour\":1,"
    "\"tokens_hour\":1,\"day_start\":1767225600,\"requests_day\":1,"
    "\"tokens_day\":1}",
    /* window starts off their boundaries */
    "{\"version\":1,\"hour_start\":1767225601,\"requests_hour\":1,"
    "\"tokens_hour\":1,\"day_start\":1767225600,\"requests_day\":1,"
    "\"tokens_day\":1}",
    "{\"version\":1,\"hour_start\":1767225600,\"requests_hour\":1,"
    "\"tokens_hour\":1,\"day_start\":1767229200,\"requests_day\":1,"
    "\"tokens_day\":1}",
    /* a duplicate member */
    "{\"version\":1,\"version\":1,\"hour_start\":1767225600,"
    "\"requests_hour\":1,\"tokens_hour\":1,\"day_start\":1767225600,"
    "\"requests_day\":1,\"tokens_day\":1}",
    "\x7f" "ELF\x01\x02",
};

START_TEST(corrupt_state_file_reported_and_replaced)
{
    ck_assert_int_eq(tu_write_file(path, corrupt[_i]), 0);
    budget_limits lim = {.requests_per_day = 5};
    budget *b = NULL;
    char err[256] = "";
    ck_assert_int_eq(budget_open(path, &lim, &b, err, sizeof err),
                     BUDGET_ECORRUPT);
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(strstr(err, "corrupt") && strstr(err, path), "err: %s", err);
    char last[256];
    budget_last_error(b, last, sizeof last);
    ck_assert_str_eq(last, err);
    expect_counts(b, T0, 0, 0, 0, 0);
    ck_assert_int_eq(budget_charge_request(b, T0), BUDGET_OK);
    budget_last_error(b, last, sizeof last);
    ck_assert_str_eq(last, "");
    budget_free(b);

    b = open_ok(path, &lim);
    ck_assert_int_eq(usage(b, T0).requests_day, 1);
    budget_free(b);
}
END_TEST

START_TEST(valid_state_file_with_extra_members_loads)
{
    ck_assert_int_eq(tu_write_file(path,
        "{\"version\":1,\"hour_start\":1767225600,\"requests_hour\":1,"
        "\"tokens_hour\":2,\"day_start\":1767225600,\"requests_day\":3,"
        "\"tokens_day\":4,\"written_by\":\"a later hearth\"}"), 0);
    budget_limits lim = {0};
    budget *b = open_ok(path, &lim);
    expect_counts(b, T0, 1, 2, 3, 4);
    budget_free(b);
}
END_TEST

/* The state path is a directory: nothing to load, and the rename over it
 * fails, as it does for root. The counts stay in memory meanwhile. */
START_TEST(write_failure_keeps_counts_and_reports)
{
    char inner[300];
    snprintf(inner, sizeof inner, "%s/x", path);
    ck_assert_int_eq(tu_write_file(inner, "x"), 0);
    budget_limits lim = {.requests_per_hour = 10};
    budget *b = NULL;
    char err[256];
    ck_assert_int_eq(budget_open(path, &lim, &b, err, sizeof err),
                     BUDGET_ECORRUPT);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(budget_charge_request(b, T0), BUDGET_EIO);
    ck_assert_int_eq(budget_charge_tokens(b, T0, 7), BUDGET_EIO);
    char last[256];
    budget_last_error(b, last, sizeof last);
    ck_assert_msg(strstr(last, "cannot") && strstr(last, path), "%s", last);
    expect_counts(b, T0, 1, 7, 1, 7);

    /* the way clears: the next charge writes every count */
    ck_assert_int_eq(tu_rm_tree(path), 0);
    ck_assert_int_eq(budget_charge_request(b, T0), BUDGET_OK);
    budget_last_error(b, last, sizeof last);
    ck_assert_str_eq(last, "");
    budget_free(b);
    b = open_ok(path, &lim);
    expect_counts(b, T0, 2, 7, 2, 7);
    budget_free(b);
}
END_TEST

/* A directory that cannot be created (a file is in the way): the budget
 * works in memory and says why it cannot persist. */
START_TEST(directory_that_cannot_be_created)
{
    char blocker[128], p[256];
    snprintf(blocker, sizeof blocker, "%s/file", dir);
    snprintf(p, sizeof p, "%s/sub/budget.json", blocker);
    ck_assert_int_eq(tu_write_file(blocker, "x"), 0);
    budget_limits lim = {.requests_per_hour = 1};
    budget *b = NULL;
    char err[256];
    ck_assert_int_eq(budget_open(p, &lim, &b, err, sizeof err), BUDGET_EIO);
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(strstr(err, "cannot create directory"), "%s", err);
    ck_assert_int_eq(budget_charge_request(b, T0), BUDGET_EIO);
    ck_assert_str_eq(budget_check(b, T0), "requests_per_hour");
    budget_free(b);
}
END_TEST

/* A read-only directory: root writes anyway, so only for other users. */
START_TEST(unwritable_directory)
{
    if (geteuid() == 0) {
        fprintf(stderr, "SKIP %s: root writes to read-only directories\n",
                __func__);
        return;
    }
    char sub[128];
    snprintf(sub, sizeof sub, "%s/state", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    budget_limits lim = {.tokens_per_day = 100};
    budget *b = open_ok(path, &lim);
    ck_assert_int_eq(budget_charge_tokens(b, T0, 60), BUDGET_OK);
    ck_assert_int_eq(chmod(sub, 0500), 0);
    ck_assert_int_eq(budget_charge_tokens(b, T0, 60), BUDGET_EIO);
    char last[256];
    budget_last_error(b, last, sizeof last);
    ck_assert_msg(strstr(last, "Permission denied"), "%s", last);
    ck_assert_str_eq(budget_check(b, T0), "tokens_per_day");
    ck_assert_int_eq(chmod(sub, 0700), 0);
    budget_free(b);
    /* the file kept the last state it could write */
    b = open_ok(path, &lim);
    ck_assert_int_eq(usage(b, T0).tokens_day, 60);
    budget_free(b);

    /* a directory that cannot be created for want of permission */
    char p[256];
    ck_assert_int_eq(chmod(dir, 0500), 0);
    snprintf(p, sizeof p, "%s/other/budget.json", dir);
    char err[256];
    ck_assert_int_eq(budget_open(p, &lim, &b, err, sizeof err), BUDGET_EIO);
    ck_assert_msg(strstr(err, "Permission denied"), "%s", err);
    budget_free(b);
    ck_assert_int_eq(chmod(dir, 0700), 0);
}
END_TEST

START_TEST(bad_arguments)
{
    budget *b = (budget *)1;
    budget_limits lim = {0};
    char err[128];
    ck_assert_int_eq(budget_open(NULL, NULL, &b, err, sizeof err),
                     BUDGET_EINVAL);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(budget_open("", &lim, &b, err, sizeof err),
                     BUDGET_EINVAL);
    ck_assert_ptr_null(b);
    budget_free(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("budget");
    TCase *tc = tcase_create("caps");
    tcase_add_loop_test(tc, cap_reached_exactly_at_limit, 0,
                        (int)(sizeof caps / sizeof *caps));
    tcase_add_test(tc, zero_and_negative_mean_no_cap);
    tcase_add_test(tc, day_cap_named_before_hour_cap);
    tcase_add_test(tc, set_limits_keeps_counts);
    tcase_add_test(tc, negative_tokens_rejected_and_sums_saturate);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, charges_from_several_threads_all_count);
    suite_add_tcase(s, tc);

    tc = tcase_create("windows");
    tcase_add_test(tc, hour_window_rolls_over);
    tcase_add_test(tc, day_window_rolls_over_at_utc_midnight);
    tcase_add_test(tc, clock_going_back_keeps_counts);
    suite_add_tcase(s, tc);

    tc = tcase_create("state file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, counts_survive_a_restart);
    tcase_add_test(tc, state_file_from_the_future);
    tcase_add_test(tc, state_file_from_an_old_window);
    tcase_add_loop_test(tc, corrupt_state_file_reported_and_replaced, 0,
                        (int)(sizeof corrupt / sizeof *corrupt));
    tcase_add_test(tc, valid_state_file_with_extra_members_loads);
    tcase_add_test(tc, write_failure_keeps_counts_and_reports);
    tcase_add_test(tc, directory_that_cannot_be_created);
    tcase_add_test(tc, unwritable_directory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
