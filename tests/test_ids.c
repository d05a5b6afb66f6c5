/* test_ids.c - response ids and system_fingerprint (daemon/ids.h): ids
 * never repeat within a process and differ in every hex digit; the
 * fingerprint names the build and the model file. The same across two
 * hearthd runs: tests/test_new_user.sh. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "daemon/ids.h"
#include "testutil.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(ids_never_repeat)
{
    enum { N = 100000 };
    uint64_t *v = malloc(N * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < N; i++)
        v[i] = ids_next();
    qsort(v, N, sizeof *v, cmp_u64);
    for (int i = 1; i < N; i++)
        ck_assert_msg(v[i] != v[i - 1], "id %016llx drawn twice", (unsigned long long)v[i]);
    free(v);
}
END_TEST

/* Every one of the 16 hex digits takes many values over consecutive ids
 * (the old ids kept 12 of 16 digits for a whole run). */
START_TEST(ids_every_digit_varies)
{
    unsigned seen[16] = {0};
    for (int i = 0; i < 256; i++) {
        uint64_t x = ids_next();
        for (int d = 0; d < 16; d++)
            seen[d] |= 1u << ((x >> (4 * d)) & 15);
    }
    for (int d = 0; d < 16; d++)
        ck_assert_msg(__builtin_popcount(seen[d]) >= 12, "hex digit %d took only %d values",
                      d, __builtin_popcount(seen[d]));
}
END_TEST

/* Two keys (two processes) give ids that differ in most digits, counter
 * for counter; one key never gives the same id for two counters. */
START_TEST(ids_mix_keys_apart)
{
    int close_pairs = 0;
    for (uint64_t n = 0; n < 1000; n++) {
        uint64_t a = ids_mix(0x1234, n), b = ids_mix(0x1235, n);
        ck_assert(a != ids_mix(0x1234, n + 1));
        int same = 0;
        for (int d = 0; d < 16; d++)
            same += ((a >> (4 * d)) & 15) == ((b >> (4 * d)) & 15);
        close_pairs += same > 6;
    }
    /* 7 or more equal digits of 16 by chance: about 4 in 100000 */
    ck_assert_int_le(close_pairs, 2);
}
END_TEST

START_TEST(ids_fingerprint_build_and_model)
{
    const char *p = tu_write_temp(0, "not really a model");
    char a[IDS_FP_MAX], b[IDS_FP_MAX], c[IDS_FP_MAX], d[IDS_FP_MAX];
    ids_fingerprint(a, "0.1.0", p);
    ids_fingerprint(b, "0.1.0", p);
    ck_assert_str_eq(a, b);
    ck_assert_int_eq(strlen(a), 19);
    ck_assert(strncmp(a, "fp_", 3) == 0);
    ck_assert_uint_eq(strspn(a + 3, "0123456789abcdef"), 16);
    /* another build */
    ids_fingerprint(c, "0.1.1", p);
    ck_assert_str_ne(a, c);
    /* the same file replaced (another modification time) */
    struct timeval tv[2] = {{1000000000, 0}, {1000000000, 0}};
    ck_assert_int_eq(utimes(p, tv), 0);
    ids_fingerprint(d, "0.1.0", p);
    ck_assert_str_ne(a, d);
    /* another size */
    FILE *f = fopen(p, "a");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    fclose(f);
    ck_assert_int_eq(utimes(p, tv), 0);
    ids_fingerprint(c, "0.1.0", p);
    ck_assert_str_ne(c, d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ids");
    TCase *tc = tcase_create("ids");
    tcase_add_test(tc, ids_never_repeat);
    tcase_add_test(tc, ids_every_digit_varies);
    tcase_add_test(tc, ids_mix_keys_apart);
    tcase_add_test(tc, ids_fingerprint_build_and_model);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
