/* test_store.c - the model store (daemon/store.h) on scratch directories,
 * and the parts of pull that need no network (daemon/pull.h): references
 * and the choice of a repo's file. The downloads themselves are in
 * tests/test_pull.sh against a fake hub. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/pull.h"
#include "daemon/store.h"

static char dir[256];
static char err[1024];

static void scratch(void)
{
    snprintf(dir, sizeof dir, "/tmp/hearth-test-store-%d-XXXXXX", (int)getpid());
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
}

static void put(const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* ------------------------------------------------------------ names */

START_TEST(store_names)
{
    const char *good[] = {"a", "qwen2.5-0.5b-instruct-q4_k_m", "llama:3b", "x+y", "A_B",
                          "model.v2"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(store_name_valid(good[i]), "'%s' should be valid", good[i]);
    const char *bad[] = {"", ".hidden", "..", "../x", "a/b", "a b", "a\\b", "caf\xc3\xa9",
                         "x\n", "a*", NULL};
    for (size_t i = 0; bad[i]; i++)
        ck_assert_msg(!store_name_valid(bad[i]), "'%s' should be invalid", bad[i]);
    ck_assert(!store_name_valid(NULL));
    char longname[200];
    memset(longname, 'a', sizeof longname);
    longname[128] = '\0';
    ck_assert(store_name_valid(longname));
    longname[128] = 'a';
    longname[129] = '\0';
    ck_assert(!store_name_valid(longname));
}
END_TEST

START_TEST(store_default_dir_order)
{
    char buf[512];
    setenv("STATE_DIRECTORY", "/var/lib/hearth:/var/lib/other", 1);
    setenv("XDG_DATA_HOME", "/home/u/.data", 1);
    setenv("HOME", "/home/u", 1);
    ck_assert_str_eq(store_default_dir(buf, sizeof buf), "/var/lib/hearth/models");
    unsetenv("STATE_DIRECTORY");
    ck_assert_str_eq(store_default_dir(buf, sizeof buf), "/home/u/.data/hearth/models");
    setenv("XDG_DATA_HOME", "relative/ignored", 1);
    ck_assert_str_eq(store_default_dir(buf, sizeof buf), "/home/u/.local/share/hearth/models");
    unsetenv("XDG_DATA_HOME");
    unsetenv("HOME");
    ck_assert_ptr_null(store_default_dir(buf, sizeof buf));
    setenv("HOME", "/home/u", 1);
    ck_assert_ptr_null(store_default_dir(buf, 8)); /* does not fit */
}
END_TEST

/* ------------------------------------------------------------ listing */

START_TEST(store_list_missing_dir_is_empty)
{
    store_entry *e = (store_entry *)1;
    size_t n = 99;
    ck_assert_int_eq(store_list("/nonexistent/hearth/store", &e, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 0);
    store_entries_free(e, n);
}
END_TEST

START_TEST(store_list_manifests_bare_and_partial)
{
    scratch();
    put("zeta.gguf", "GGUF-by-hand");
    put("alpha.gguf", "0123456789");
    put("alpha.json", "{\"source\": \"hf:o/r:alpha.gguf\", \"url\": \"http://x/alpha.gguf\", "
                      "\"sha256\": \"" "0123456789abcdef0123456789abcdef"
                      "0123456789abcdef0123456789abcdef" "\", \"size\": 10, \"pulled\": 1}");
    /* a manifest whose size is not the file's: the file was replaced */
    put("beta.gguf", "abc");
    put("beta.json", "{\"source\": \"hf:o/r:beta.gguf\", \"sha256\": \"\", \"size\": 99}");
    /* a manifest that does not parse, a malformed hash */
    put("gamma.gguf", "x");
    put("gamma.json", "{not json");
    put("delta.gguf", "xy");
    put("delta.json", "{\"source\": \"https://h/delta.gguf\", \"sha256\": \"XYZ\", \"size\": 2}");
    /* never listed: other extensions, hidden files, directories, .partial */
    put("notes.txt", "hi");
    put("orphan.json", "{\"source\": \"x\", \"size\": 1}");
    put(".hidden.gguf", "x");
    char p[512];
    snprintf(p, sizeof p, "%s/.partial", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    put(".partial/inprogress.gguf", "half");
    snprintf(p, sizeof p, "%s/adir.gguf", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);

    store_entry *e;
    size_t n;
    ck_assert_int_eq(store_list(dir, &e, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 5);
    const char *want[] = {"alpha", "beta", "delta", "gamma", "zeta"};
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(e[i].name, want[i]);
    ck_assert_str_eq(e[0].source, "hf:o/r:alpha.gguf");
    ck_assert_str_eq(e[0].sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    ck_assert_uint_eq(e[0].size, 10);
    snprintf(p, sizeof p, "%s/alpha.gguf", dir);
    ck_assert_str_eq(e[0].path, p);
    ck_assert_int_gt(e[0].mtime, 0);
    ck_assert_ptr_null(e[1].source); /* size disagrees */
    ck_assert_str_eq(e[1].sha256, "");
    ck_assert_str_eq(e[2].source, "https://h/delta.gguf");
    ck_assert_str_eq(e[2].sha256, ""); /* malformed hash dropped */
    ck_assert_ptr_null(e[3].source);   /* unparsable manifest */
    ck_assert_ptr_null(e[4].source);   /* bare file */
    ck_assert_uint_eq(e[4].size, strlen("GGUF-by-hand"));
    store_entries_free(e, n);
    rm_rf(dir);
}
END_TEST

START_TEST(store_find_and_remove)
{
    scratch();
    put("m.gguf", "data");
    store_entry e;
    ck_assert_int_eq(store_find(dir, "m", &e, err, sizeof err), 0);
    ck_assert_str_eq(e.name, "m");
    ck_assert_uint_eq(e.size, 4);
    store_entry_clear(&e);
    ck_assert_ptr_null(e.name);
    ck_assert_int_eq(store_find(dir, "nope", &e, err, sizeof err), 1);
    ck_assert_ptr_nonnull(strstr(err, "no model named 'nope'"));
    ck_assert_int_eq(store_find(dir, "../m", &e, err, sizeof err), 1);
    ck_assert_ptr_nonnull(strstr(err, "not a valid model name"));

    store_manifest m = {.source = "hf:o/r:m.gguf", .url = "http://h/m.gguf",
                        .sha256 = "ab", .size = 4, .pulled = 5};
    ck_assert_int_eq(store_manifest_write(dir, "m", &m, err, sizeof err), 0);
    ck_assert_int_eq(store_find(dir, "m", &e, err, sizeof err), 0);
    ck_assert_str_eq(e.source, "hf:o/r:m.gguf");
    store_entry_clear(&e);

    ck_assert_int_eq(store_remove(dir, "m", err, sizeof err), 0);
    char p[512];
    snprintf(p, sizeof p, "%s/m.json", dir);
    ck_assert_int_ne(access(p, F_OK), 0); /* the manifest went too */
    ck_assert_int_eq(store_remove(dir, "m", err, sizeof err), 1);
    ck_assert_int_eq(store_remove(dir, "../etc", err, sizeof err), 1);
    rm_rf(dir);
}
END_TEST

START_TEST(store_mkdirs_nested)
{
    scratch();
    char p[512];
    snprintf(p, sizeof p, "%s/a/b/c", dir);
    ck_assert_int_eq(store_mkdirs(p, err, sizeof err), 0);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(store_mkdirs(p, err, sizeof err), 0); /* again: fine */
    put("file", "x");
    snprintf(p, sizeof p, "%s/file/sub", dir);
    ck_assert_int_eq(store_mkdirs(p, err, sizeof err), -1);
    rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------ references */

START_TEST(pull_ref_forms)
{
    pull_ref r;
    ck_assert_int_eq(pull_ref_parse("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF", &r, err, sizeof err), 0);
    ck_assert_str_eq(r.owner, "Qwen");
    ck_assert_str_eq(r.repo, "Qwen2.5-0.5B-Instruct-GGUF");
    ck_assert_ptr_null(r.sel);
    ck_assert_ptr_null(r.url);
    pull_ref_free(&r);
    ck_assert_int_eq(pull_ref_parse("hf:o/r:q4_k_m", &r, err, sizeof err), 0);
    ck_assert_str_eq(r.sel, "q4_k_m");
    pull_ref_free(&r);
    ck_assert_int_eq(pull_ref_parse("hf:o/r:sub/f.gguf", &r, err, sizeof err), 0);
    ck_assert_str_eq(r.sel, "sub/f.gguf");
    pull_ref_free(&r);
    ck_assert_int_eq(pull_ref_parse("https://h.example/a/b.gguf?x=1", &r, err, sizeof err), 0);
    ck_assert_str_eq(r.url, "https://h.example/a/b.gguf?x=1");
    ck_assert_ptr_null(r.owner);
    pull_ref_free(&r);
    ck_assert_int_eq(pull_ref_parse("HTTP://h/b.gguf", &r, err, sizeof err), 0);
    pull_ref_free(&r);
}
END_TEST

START_TEST(pull_ref_bad)
{
    const char *bad[] = {"", "foo", "hf:", "hf:owner", "hf:/repo", "hf:owner/", "hf:o/r:",
                         "hf:o/r:/abs.gguf", "hf:o/r:../x.gguf", "hf:o w/r", "hf:.o/r",
                         "ftp://h/x.gguf", "https://", "https:///x", "https://h/a b.gguf",
                         "hf:o/r:q4\n", NULL};
    for (size_t i = 0; bad[i]; i++) {
        pull_ref r;
        err[0] = '\0';
        ck_assert_msg(pull_ref_parse(bad[i], &r, err, sizeof err) == -1, "'%s' accepted", bad[i]);
        ck_assert_msg(strstr(err, "is not a model reference"), "'%s': %s", bad[i], err);
        ck_assert_ptr_null(r.owner);
        ck_assert_ptr_null(r.url);
    }
}
END_TEST

START_TEST(pull_split_names)
{
    ck_assert(pull_is_split("m-Q4_K_M-00001-of-00003.gguf"));
    ck_assert(pull_is_split("sub/M-00002-OF-00002.GGUF"));
    ck_assert(!pull_is_split("m-Q4_K_M.gguf"));
    ck_assert(!pull_is_split("m-0001-of-0003.gguf"));
    ck_assert(!pull_is_split("-00001-of-00003.bin"));
}
END_TEST

/* ------------------------------------------------------------ choosing a file */

static const char *const repo[] = {
    "README.md", "m-Q8_0.gguf", "m-Q4_K_S.gguf", "m-Q4_K_M.gguf", "m-Q4_0.gguf",
    "mmproj-m-f16.gguf", "m-Q5_K_M-00001-of-00002.gguf", "m-Q5_K_M-00002-of-00002.gguf",
    "m.IQ4_XS.gguf", "sub/m-Q6_K.gguf",
};
#define N_REPO (sizeof repo / sizeof repo[0])

static long pick(const char *const *files, size_t n, const char *sel, const char **how)
{
    err[0] = '\0';
    return pull_pick(files, n, sel, how, err, sizeof err);
}

START_TEST(pull_pick_default_order)
{
    const char *how;
    ck_assert_int_eq(pick(repo, N_REPO, NULL, &how), 3);
    ck_assert_str_eq(how, "Q4_K_M");
    /* without Q4_K_M: Q4_0; without both: Q8_0 */
    const char *b[] = {"m-Q8_0.gguf", "m-Q4_0.gguf", "m-F16.gguf"};
    ck_assert_int_eq(pick(b, 3, NULL, &how), 1);
    ck_assert_str_eq(how, "Q4_0");
    ck_assert_int_eq(pick(b, 1, NULL, &how), 0);
    /* the only .gguf (an mmproj does not count) */
    const char *c[] = {"README.md", "mmproj-x.gguf", "tiny.gguf"};
    ck_assert_int_eq(pick(c, 3, NULL, &how), 2);
    ck_assert_str_eq(how, "the only .gguf");
    /* two files and none preferred: an error listing them */
    const char *d[] = {"a-F16.gguf", "b-F32.gguf"};
    ck_assert_int_eq(pick(d, 2, NULL, &how), -1);
    ck_assert_ptr_nonnull(strstr(err, "a-F16.gguf, b-F32.gguf"));
    /* nothing at all */
    ck_assert_int_eq(pick(c, 1, NULL, &how), -1);
    ck_assert_ptr_nonnull(strstr(err, "no .gguf"));
    /* only a split file */
    const char *e[] = {"x-00001-of-00002.gguf", "x-00002-of-00002.gguf"};
    ck_assert_int_eq(pick(e, 2, NULL, &how), -1);
    ck_assert_ptr_nonnull(strstr(err, "multi-part GGUF"));
}
END_TEST

START_TEST(pull_pick_quant_tag)
{
    const char *how = "unset";
    ck_assert_int_eq(pick(repo, N_REPO, "q8_0", &how), 1);
    ck_assert_ptr_null(how);
    ck_assert_int_eq(pick(repo, N_REPO, "Q4_K_S", NULL), 2);
    ck_assert_int_eq(pick(repo, N_REPO, "iq4_xs", NULL), 8); /* '.' before the tag */
    /* a prefix of a tag is not the tag */
    ck_assert_int_eq(pick(repo, N_REPO, "Q4_K", NULL), -1);
    ck_assert_ptr_nonnull(strstr(err, "no file matches Q4_K"));
    ck_assert_ptr_nonnull(strstr(err, "m-Q4_K_M.gguf"));
    ck_assert_int_eq(pick(repo, N_REPO, "Q5_K_M", NULL), -1);
    ck_assert_ptr_nonnull(strstr(err, "multi-part GGUF"));
    ck_assert_int_eq(pick(repo, N_REPO, "Q6_K", NULL), 9); /* in a folder */
    const char *two[] = {"a-Q4_0.gguf", "b-Q4_0.gguf"};
    ck_assert_int_eq(pick(two, 2, "q4_0", NULL), -1);
    ck_assert_ptr_nonnull(strstr(err, "several files match"));
    ck_assert_int_eq(pick(two, 2, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(err, "several Q4_0 files"));
}
END_TEST

START_TEST(pull_pick_file_name)
{
    ck_assert_int_eq(pick(repo, N_REPO, "m-Q4_0.gguf", NULL), 4);
    ck_assert_int_eq(pick(repo, N_REPO, "sub/m-Q6_K.gguf", NULL), 9);
    ck_assert_int_eq(pick(repo, N_REPO, "m-Q6_K.gguf", NULL), 9); /* without its folder */
    ck_assert_int_eq(pick(repo, N_REPO, "mmproj-m-f16.gguf", NULL), 5); /* named: allowed */
    ck_assert_int_eq(pick(repo, N_REPO, "nope.gguf", NULL), -1);
    ck_assert_ptr_nonnull(strstr(err, "no file nope.gguf"));
    ck_assert_int_eq(pick(repo, N_REPO, "m-Q5_K_M-00001-of-00002.gguf", NULL), -1);
    ck_assert_ptr_nonnull(strstr(err, "multi-part"));
    /* the list in the message is cut to fit, never overflowing */
    char small[40];
    ck_assert_int_eq(pull_pick(repo, N_REPO, "nope.gguf", NULL, small, sizeof small), -1);
    ck_assert_uint_lt(strlen(small), sizeof small);
}
END_TEST

/* A pull that cannot start: bad name, bad ref, no network needed. */
START_TEST(pull_model_usage_errors)
{
    scratch();
    pull_opts o = {.store_dir = dir, .name = "../evil"};
    ck_assert_int_eq(pull_model(&o, "hf:o/r", NULL, err, sizeof err), PULL_BAD_REF);
    ck_assert_ptr_nonnull(strstr(err, "not a valid model name"));
    o.name = NULL;
    ck_assert_int_eq(pull_model(&o, "nonsense", NULL, err, sizeof err), PULL_BAD_REF);
    ck_assert_int_eq(pull_model(&o, "https://h/%2e%2e.bin?x", NULL, err, sizeof err),
                     PULL_BAD_REF); /* no usable name from the URL */
    ck_assert_ptr_nonnull(strstr(err, "--name"));
    o.hub_url = "not a url";
    ck_assert_int_eq(pull_model(&o, "hf:o/r", NULL, err, sizeof err), PULL_FAILED);
    rm_rf(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("store");
    TCase *t = tcase_create("store");
    tcase_add_test(t, store_names);
    tcase_add_test(t, store_default_dir_order);
    tcase_add_test(t, store_list_missing_dir_is_empty);
    tcase_add_test(t, store_list_manifests_bare_and_partial);
    tcase_add_test(t, store_find_and_remove);
    tcase_add_test(t, store_mkdirs_nested);
    tcase_add_test(t, pull_ref_forms);
    tcase_add_test(t, pull_ref_bad);
    tcase_add_test(t, pull_split_names);
    tcase_add_test(t, pull_pick_default_order);
    tcase_add_test(t, pull_pick_quant_tag);
    tcase_add_test(t, pull_pick_file_name);
    tcase_add_test(t, pull_model_usage_errors);
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
