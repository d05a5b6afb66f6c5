/* test_device.c - the device state (router/device.h) read from fake sysfs
 * trees built in a temporary directory: power supplies, thermal zones and
 * cooling devices, malformed and odd files, and the cache's time-to-live. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "router/device.h"
#include "tests/testutil.h"

static char root[64];

static void setup(void)
{
    ck_assert_ptr_nonnull(tu_temp_dir("device", root, sizeof root));
}

static void teardown(void)
{
    tu_rm_tree(root);
}

/* Write root/rel. */
static void put(const char *rel, const char *contents)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    ck_assert_msg(tu_write_file(p, contents) == 0, "cannot write %s", p);
}

static void supply(const char *name, const char *type, const char *status,
                   const char *capacity, const char *online)
{
    char rel[256];
    struct { const char *leaf, *v; } f[] = {
        {"type", type}, {"status", status}, {"capacity", capacity},
        {"online", online}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        if (!f[i].v)
            continue;
        snprintf(rel, sizeof rel, "class/power_supply/%s/%s", name, f[i].leaf);
        put(rel, f[i].v);
    }
}

static void zone(int n, const char *temp)
{
    char rel[256];
    snprintf(rel, sizeof rel, "class/thermal/thermal_zone%d/temp", n);
    put(rel, temp);
}

static void trip(int n, int k, const char *type, const char *temp)
{
    char rel[256];
    snprintf(rel, sizeof rel, "class/thermal/thermal_zone%d/trip_point_%d_type",
             n, k);
    put(rel, type);
    snprintf(rel, sizeof rel, "class/thermal/thermal_zone%d/trip_point_%d_temp",
             n, k);
    put(rel, temp);
}

static void cooling(int n, const char *type, const char *cur)
{
    char rel[256];
    snprintf(rel, sizeof rel, "class/thermal/cooling_device%d/type", n);
    put(rel, type);
    snprintf(rel, sizeof rel, "class/thermal/cooling_device%d/cur_state", n);
    put(rel, cur);
}

/* Start the tree again. */
static void fresh(void)
{
    ck_assert_int_eq(tu_rm_tree(root), 0);
    ck_assert_int_eq(mkdir(root, 0700), 0);
}

static device_state rd(int battery_min)
{
    device_state s;
    memset(&s, 0xa5, sizeof s);
    ck_assert_int_eq(device_read(root, battery_min, &s), 0);
    return s;
}

static void assert_idle(device_state s)
{
    ck_assert(!s.on_battery);
    ck_assert_int_eq(s.battery_percent, -1);
    ck_assert(!s.battery_low);
    ck_assert_double_eq(s.thermal, 0);
    ck_assert(!s.throttled);
}

/* ------------------------------------------------------------ power */

START_TEST(nothing_there)
{
    assert_idle(rd(20));           /* an empty root */
    put("class/other", "");
    assert_idle(rd(20));
    device_state s;
    ck_assert_int_eq(device_read("/nonexistent/hearth-sysfs", 20, &s), 0);
    assert_idle(s);
}
END_TEST

START_TEST(ac_online_battery_charging)
{
    supply("AC", "Mains\n", NULL, NULL, "1\n");
    supply("BAT0", "Battery\n", "Charging\n", "80\n", NULL);
    device_state s = rd(20);
    ck_assert(!s.on_battery);
    ck_assert_int_eq(s.battery_percent, 80);
    ck_assert(!s.battery_low);
}
END_TEST

START_TEST(discharging_below_and_above_min)
{
    supply("AC", "Mains\n", NULL, NULL, "0\n");
    supply("BAT0", "Battery\n", "Discharging\n", "15\n", NULL);
    device_state s = rd(20);
    ck_assert(s.on_battery);
    ck_assert_int_eq(s.battery_percent, 15);
    ck_assert(s.battery_low);
    ck_assert(!rd(15).battery_low); /* below, not at */

    supply("BAT0", NULL, NULL, "50\n", NULL);
    s = rd(20);
    ck_assert(s.on_battery);
    ck_assert_int_eq(s.battery_percent, 50);
    ck_assert(!s.battery_low);
}
END_TEST

START_TEST(discharging_with_a_supply_online_is_not_on_battery)
{
    supply("BAT0", "Battery\n", "Discharging\n", "10\n", NULL);
    ck_assert(rd(20).on_battery);
    /* a USB-C charger too weak to charge: discharging, but plugged in */
    supply("ucsi-source-psy-1", "USB\n", NULL, NULL, "1\n");
    device_state s = rd(20);
    ck_assert(!s.on_battery);
    ck_assert(!s.battery_low);
    ck_assert_int_eq(s.battery_percent, 10);
    /* a UPS is a battery of sorts, not the wall */
    supply("ucsi-source-psy-1", NULL, NULL, NULL, "0\n");
    supply("ups", "UPS\n", NULL, NULL, "1\n");
    ck_assert(rd(20).on_battery);
}
END_TEST

START_TEST(two_batteries_give_their_mean)
{
    supply("BAT0", "Battery\n", "Discharging\n", "10\n", NULL);
    supply("BAT1", "Battery\n", "Full\n", "50\n", NULL);
    device_state s = rd(20);
    ck_assert(s.on_battery);
    ck_assert_int_eq(s.battery_percent, 30);
    ck_assert(!s.battery_low);
    ck_assert(rd(40).battery_low);
}
END_TEST

START_TEST(peripheral_batteries_do_not_count)
{
    supply("hidpp_battery_0", "Battery\n", "Discharging\n", "5\n", NULL);
    put("class/power_supply/hidpp_battery_0/scope", "Device\n");
    assert_idle(rd(20));
    supply("BAT0", "Battery\n", "Charging\n", "80\n", NULL);
    device_state s = rd(20);
    ck_assert(!s.on_battery);
    ck_assert_int_eq(s.battery_percent, 80);
}
END_TEST

/* ---------------------------------------------------------- thermal */

START_TEST(hot_zone_past_passive_trip_is_throttled)
{
    zone(0, "95000\n");
    trip(0, 0, "critical\n", "105000\n");
    trip(0, 1, "passive\n", "90000\n");
    device_state s = rd(20);
    ck_assert_double_eq(s.thermal, 1.0);
    ck_assert(s.throttled);
}
END_TEST

START_TEST(warm_zone_is_a_fraction_of_its_trip)
{
    zone(0, "45000\n");
    trip(0, 0, "passive\n", "90000\n");
    device_state s = rd(20);
    ck_assert_double_eq_tol(s.thermal, 0.5, 1e-9);
    ck_assert(!s.throttled);
}
END_TEST

START_TEST(reference_trip_passive_then_hot_then_critical)
{
    /* active trips (fans) are never the reference */
    zone(0, "45000");
    trip(0, 0, "active", "50000");
    trip(0, 1, "critical", "100000");
    trip(0, 2, "hot", "95000");
    trip(0, 3, "passive", "95000");
    trip(0, 4, "passive", "90000");  /* the lowest passive one */
    ck_assert_double_eq_tol(rd(20).thermal, 0.5, 1e-9);

    fresh();
    zone(0, "45000");
    trip(0, 0, "critical", "100000");
    trip(0, 1, "hot", "60000");
    ck_assert_double_eq_tol(rd(20).thermal, 0.75, 1e-9);

    fresh();
    zone(0, "45000");
    trip(0, 0, "active", "30000");
    trip(0, 1, "critical", "100000");
    ck_assert_double_eq_tol(rd(20).thermal, 0.45, 1e-9);

    /* a placeholder trip (ACPI's 256 C) and a disabled one are ignored */
    fresh();
    zone(0, "45000");
    trip(0, 0, "critical", "256000");
    trip(0, 1, "passive", "0");
    trip(0, 2, "hot", "-274000");
    device_state s = rd(20);
    ck_assert_double_eq(s.thermal, 0);
    ck_assert(!s.throttled);
}
END_TEST

START_TEST(hottest_zone_counts_and_cold_clamps_to_zero)
{
    zone(0, "45000");
    trip(0, 0, "passive", "90000");
    zone(1, "80000");
    trip(1, 0, "passive", "100000");
    zone(2, "-20000");
    trip(2, 0, "passive", "90000");
    zone(3, "99000");                   /* no trips: unknown */
    device_state s = rd(20);
    ck_assert_double_eq_tol(s.thermal, 0.8, 1e-9);
    ck_assert(!s.throttled);
}
END_TEST

START_TEST(cpu_cooling_device_in_use_is_throttled)
{
    zone(0, "45000");
    trip(0, 0, "passive", "90000");
    cooling(0, "Fan", "1");
    cooling(1, "Processor", "0");
    cooling(2, "intel_powerclamp", "-1");
    ck_assert(!rd(20).throttled);
    cooling(1, "Processor", "2");
    ck_assert(rd(20).throttled);
    cooling(1, "Processor", "0");
    cooling(3, "thermal-cpufreq-0", "1");
    ck_assert(rd(20).throttled);
    cooling(3, "cpufreq-cpu4", "3");
    ck_assert(rd(20).throttled);
    cooling(3, "cpufreq-cpu4", "0");
    device_state s = rd(20);
    ck_assert(!s.throttled);
    ck_assert_double_eq_tol(s.thermal, 0.5, 1e-9);
}
END_TEST

/* ------------------------------------------------------ bad files */

static const char *const bad[] = {
    "abc", "", "\n", "   \n", "99999999999999999999999", "-99999999999999999999",
    "12abc", " 50", "5 0", "0x32", "1e3", "50%", "+-5", "--5",
    "9999999999999999999999999999999999999999999999999999999999999999999999"
    "9999999999999999999999999999999999999999999999999999999999999999999999",
};

/* A malformed capacity, online, temp, trip and cur_state each count as
 * missing. */
START_TEST(malformed_values_count_as_missing)
{
    const char *v = bad[_i];
    supply("AC", "Mains", NULL, NULL, v);
    supply("BAT0", "Battery", "Discharging", v, NULL);
    zone(0, v);
    trip(0, 0, "passive", "90000");
    zone(1, "45000");
    trip(1, 0, "passive", v);
    cooling(0, "Processor", v);
    device_state s = rd(20);
    ck_assert_msg(s.on_battery, "\"%s\"", v);
    ck_assert_int_eq(s.battery_percent, -1);
    ck_assert(!s.battery_low);
    ck_assert_double_eq(s.thermal, 0);
    ck_assert(!s.throttled);
}
END_TEST

START_TEST(out_of_range_values_count_as_missing)
{
    supply("BAT0", "Battery", "Discharging", "101", NULL);
    supply("BAT1", "Battery", "Discharging", "-1", NULL);
    zone(0, "250000");                  /* 250 C: a broken sensor */
    trip(0, 0, "passive", "90000");
    zone(1, "-150000");
    trip(1, 0, "passive", "90000");
    device_state s = rd(20);
    ck_assert(s.on_battery);
    ck_assert_int_eq(s.battery_percent, -1);
    ck_assert_double_eq(s.thermal, 0);
    ck_assert(!s.throttled);
}
END_TEST

/* A directory, a FIFO (which must not block) or a symlink where a file
 * should be: missing. So is an unknown type or status word. */
START_TEST(odd_files_count_as_missing)
{
    char p[512], q[512];
    supply("BAT0", "Battery", "Discharging", NULL, NULL);
    snprintf(p, sizeof p, "%s/class/power_supply/BAT0/capacity", root);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    zone(0, "45000");
    snprintf(p, sizeof p, "%s/class/thermal/thermal_zone0/trip_point_0_type",
             root);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    snprintf(p, sizeof p, "%s/class/thermal/thermal_zone0/trip_point_0_temp",
             root);
    ck_assert_int_eq(tu_write_file(p, "90000"), 0);
    put("good_temp", "95000");
    snprintf(p, sizeof p, "%s/good_temp", root);
    snprintf(q, sizeof q, "%s/class/thermal/thermal_zone1/temp", root);
    ck_assert_int_eq(tu_write_file(q, ""), 0);
    ck_assert_int_eq(unlink(q), 0);
    ck_assert_int_eq(symlink(p, q), 0);
    trip(1, 0, "passive", "90000");
    supply("weird", "Battery", "discharging", "5", NULL); /* lower case */
    device_state s = rd(20);
    ck_assert(s.on_battery);             /* BAT0 */
    ck_assert_int_eq(s.battery_percent, 5);
    ck_assert_double_eq(s.thermal, 0);
    ck_assert(!s.throttled);
}
END_TEST

START_TEST(many_entries_are_bounded)
{
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "BAT%d", i);
        supply(name, "Battery", "Discharging", "40", NULL);
    }
    device_state s = rd(20);
    ck_assert(s.on_battery);
    ck_assert_int_eq(s.battery_percent, 40);
}
END_TEST

/* ------------------------------------------------------------ cache */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(cache_honours_its_ttl)
{
    supply("BAT0", "Battery", "Discharging", "50", NULL);
    device_cache *c = device_cache_new(root, 20, 1000);
    ck_assert_ptr_nonnull(c);
    device_state s;
    device_get(c, 10000, &s);
    ck_assert_int_eq(s.battery_percent, 50);

    supply("BAT0", NULL, NULL, "10", NULL);
    device_get(c, 10999, &s);            /* within the TTL: the old state */
    ck_assert_int_eq(s.battery_percent, 50);
    ck_assert(!s.battery_low);
    device_get(c, 11000, &s);            /* at the TTL: read again */
    ck_assert_int_eq(s.battery_percent, 10);
    ck_assert(s.battery_low);

    supply("BAT0", NULL, NULL, "70", NULL);
    device_get(c, 11500, &s);
    ck_assert_int_eq(s.battery_percent, 10);
    device_get(c, 5000, &s);             /* the clock went back: read */
    ck_assert_int_eq(s.battery_percent, 70);

    /* a cached state costs next to nothing: 100,000 in well under 1 s,
     * i.e. under 10 us each, also under the sanitizers */
    double t = mono_s();
    for (int i = 0; i < 100000; i++)
        device_get(c, 5000 + i % 1000, &s);
    double dt = mono_s() - t;
    ck_assert_msg(dt < 1.0, "100000 cached reads took %.3f s", dt);
    ck_assert_int_eq(s.battery_percent, 70);
    device_cache_free(c);
}
END_TEST

START_TEST(cache_with_zero_ttl_always_reads)
{
    supply("BAT0", "Battery", "Discharging", "50", NULL);
    device_cache *c = device_cache_new(root, 20, 0);
    ck_assert_ptr_nonnull(c);
    device_state s;
    device_get(c, 1, &s);
    ck_assert_int_eq(s.battery_percent, 50);
    supply("BAT0", NULL, NULL, "60", NULL);
    device_get(c, 1, &s);
    ck_assert_int_eq(s.battery_percent, 60);
    device_cache_free(c);
    device_cache_free(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("device");
    TCase *tc = tcase_create("power");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, nothing_there);
    tcase_add_test(tc, ac_online_battery_charging);
    tcase_add_test(tc, discharging_below_and_above_min);
    tcase_add_test(tc, discharging_with_a_supply_online_is_not_on_battery);
    tcase_add_test(tc, two_batteries_give_their_mean);
    tcase_add_test(tc, peripheral_batteries_do_not_count);
    suite_add_tcase(s, tc);

    tc = tcase_create("thermal");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, hot_zone_past_passive_trip_is_throttled);
    tcase_add_test(tc, warm_zone_is_a_fraction_of_its_trip);
    tcase_add_test(tc, reference_trip_passive_then_hot_then_critical);
    tcase_add_test(tc, hottest_zone_counts_and_cold_clamps_to_zero);
    tcase_add_test(tc, cpu_cooling_device_in_use_is_throttled);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, malformed_values_count_as_missing, 0,
                        (int)(sizeof bad / sizeof *bad));
    tcase_add_test(tc, out_of_range_values_count_as_missing);
    tcase_add_test(tc, odd_files_count_as_missing);
    tcase_add_test(tc, many_entries_are_bounded);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, cache_honours_its_ttl);
    tcase_add_test(tc, cache_with_zero_ttl_always_reads);
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
