/* test_door_rules.c - the door's rules driven directly (daemon/door.h):
 * Host names a loopback listener accepts, API key sets from the config and
 * a key file, CORS origins, the refusal to listen in the open without a
 * key; and the message counter of max_messages (daemon/msglimit.h). The
 * same rules through a running hearthd: tests/test_http.c and
 * tests/test_door.sh. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "door.h"
#include "hconfig.h"
#include "msglimit.h"
#include "testutil.h"

static char err[512];

/* A door from a configuration with the given [server] lists. */
static door *make(const char *keys, const char *key_file, const char *hosts,
                  const char *origins)
{
    hearth_config c;
    config_init(&c);
    c.api_key = keys ? strdup(keys) : NULL;
    c.api_key_file = key_file ? strdup(key_file) : NULL;
    c.allowed_hosts = hosts ? strdup(hosts) : NULL;
    c.cors_origins = origins ? strdup(origins) : NULL;
    door *d = NULL;
    err[0] = '\0';
    int rc = door_new(&d, &c, err, sizeof err);
    config_free(&c);
    return rc == 0 ? d : NULL;
}

START_TEST(door_host_loopback_names)
{
    door *d = make(NULL, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(d);
    const char *ok[] = {"localhost", "localhost:8080", "LocalHost:1", "localhost.",
                        "app.localhost", "a.b.localhost:99", "127.0.0.1", "127.0.0.1:8080",
                        "127.255.3.4", "[::1]", "[::1]:8080", "[0:0:0:0:0:0:0:1]",
                        "[::ffff:127.0.0.1]:80"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        ck_assert_msg(door_host_allowed(d, ok[i]), "refused %s", ok[i]);
    const char *bad[] = {"evil.example.com", "evil.example.com:8080", "localhost.evil.com",
                         "localhostx", "xlocalhost", "127.0.0.1.nip.io", "128.0.0.1",
                         "10.0.0.1", "0.0.0.0", "127.1", "2130706433", "[::2]",
                         "[::ffff:10.0.0.1]", "::1", "localhost:", "localhost:80:80",
                         "localhost:99999x", "", "local host", "localhost/", "[::1",
                         ".localhost"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!door_host_allowed(d, bad[i]), "let in '%s'", bad[i]);
    /* no Host at all: HTTP/1.0, not a browser */
    ck_assert(door_host_allowed(d, NULL));
    door_free(d);
}
END_TEST

START_TEST(door_host_allowed_hosts)
{
    door *d = make(NULL, NULL, "MyBox.lan, [fe80::1] printer", NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert(door_host_allowed(d, "mybox.lan"));
    ck_assert(door_host_allowed(d, "mybox.lan:8080"));
    ck_assert(door_host_allowed(d, "MYBOX.LAN."));
    ck_assert(door_host_allowed(d, "printer"));
    ck_assert(door_host_allowed(d, "[FE80::1]:80"));
    ck_assert(!door_host_allowed(d, "box.lan"));
    ck_assert(!door_host_allowed(d, "mybox.lan.evil.com"));
    door_free(d);
    /* an entry with a port is a mistake, said at start-up */
    ck_assert_ptr_null(make(NULL, NULL, "mybox.lan:8080", NULL));
    ck_assert_msg(strstr(err, "allowed_hosts") != NULL, "%s", err);
}
END_TEST

START_TEST(door_loopback_addresses)
{
    ck_assert(door_addr_is_loopback("127.0.0.1"));
    ck_assert(door_addr_is_loopback("127.8.9.10"));
    ck_assert(door_addr_is_loopback("::1"));
    ck_assert(door_addr_is_loopback("::ffff:127.0.0.1"));
    ck_assert(door_addr_is_loopback("localhost"));
    ck_assert(!door_addr_is_loopback("0.0.0.0"));
    ck_assert(!door_addr_is_loopback("::"));
    ck_assert(!door_addr_is_loopback("192.168.1.2"));
}
END_TEST

/* [server] webui and metrics: auto is on for a loopback listen address
 * only; yes and no whatever the address. */
START_TEST(door_auto_on_loopback_only)
{
    static const char *const loop[] = {"127.0.0.1", "127.200.3.4", "localhost", "::1",
                                       "::ffff:127.0.0.1"};
    static const char *const open[] = {"0.0.0.0", "192.168.1.2", "128.0.0.1", "::",
                                       "::ffff:10.0.0.1", "fe80::1"};
    for (size_t i = 0; i < sizeof loop / sizeof loop[0]; i++) {
        ck_assert_msg(door_auto_on(-1, loop[i]), "%s", loop[i]);
        ck_assert(!door_auto_on(0, loop[i]));
    }
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++) {
        ck_assert_msg(!door_auto_on(-1, open[i]), "%s", open[i]);
        ck_assert(door_auto_on(1, open[i]));
    }
}
END_TEST

START_TEST(door_keys_from_list_and_file)
{
    door *d = make(NULL, NULL, NULL, NULL);
    ck_assert(!door_needs_key(d));
    door_free(d);

    const char *kf = tu_write_temp(0, "# rotated monthly\n\n  file-key-1  \nfile-key-2\r\n");
    chmod(kf, 0600);
    d = make("alpha, beta gamma", kf, NULL, NULL);
    ck_assert_msg(d != NULL, "%s", err);
    ck_assert(door_needs_key(d));
    ck_assert_int_eq(door_n_keys(d), 5);
    const char *ok[] = {"alpha", "beta", "gamma", "file-key-1", "file-key-2"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(door_key_ok(d, ok[i]), "refused %s", ok[i]);
    const char *bad[] = {"", "alph", "alphaa", "Alpha", "alpha ", "file-key-", "file-key-12",
                         "# rotated monthly", "beta gamma"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!door_key_ok(d, bad[i]), "let in '%s'", bad[i]);
    door_free(d);
}
END_TEST

START_TEST(door_key_file_errors)
{
    ck_assert_ptr_null(make(NULL, "/nonexistent/keys", NULL, NULL));
    ck_assert_msg(strstr(err, "api_key_file") && strstr(err, "/nonexistent/keys"), "%s", err);
    const char *kf = tu_write_temp(1, "# nothing but comments\n\n");
    ck_assert_ptr_null(make("k", kf, NULL, NULL));
    ck_assert_msg(strstr(err, "holds no key") != NULL, "%s", err);
}
END_TEST

START_TEST(door_cors_origins)
{
    door *d = make(NULL, NULL, NULL, NULL);
    ck_assert(!door_cors_on(d));
    ck_assert(!door_origin_allowed(d, "http://a.example"));
    door_free(d);

    d = make(NULL, NULL, NULL, "http://a.example, https://b.example:8443/");
    ck_assert_msg(d != NULL, "%s", err);
    ck_assert(door_cors_on(d));
    ck_assert(door_origin_allowed(d, "http://a.example"));
    ck_assert(door_origin_allowed(d, "https://b.example:8443"));
    ck_assert(!door_origin_allowed(d, "https://a.example"));
    ck_assert(!door_origin_allowed(d, "http://a.example.evil.com"));
    ck_assert(!door_origin_allowed(d, "null"));
    ck_assert(!door_origin_allowed(d, NULL));
    door_free(d);

    /* "*": any origin but "null", which must be named */
    d = make(NULL, NULL, NULL, "*");
    ck_assert(door_origin_allowed(d, "http://anything.example"));
    ck_assert(!door_origin_allowed(d, "null"));
    door_free(d);
    d = make(NULL, NULL, NULL, "* null");
    ck_assert(door_origin_allowed(d, "null"));
    door_free(d);

    ck_assert_ptr_null(make(NULL, NULL, NULL, "a.example"));
    ck_assert_msg(strstr(err, "cors_origins") != NULL, "%s", err);
}
END_TEST

START_TEST(door_listen_refused_in_the_open_without_key)
{
    hearth_config c;
    config_init(&c);
    door *open_door = make(NULL, NULL, NULL, NULL), *keyed = make("k", NULL, NULL, NULL);
    ck_assert_int_eq(door_check_listen(open_door, &c, err, sizeof err), 0);
    const char *hosts[] = {"0.0.0.0", "::", "192.168.1.2"};
    for (size_t i = 0; i < 3; i++) {
        free(c.host);
        c.host = strdup(hosts[i]);
        ck_assert_int_lt(door_check_listen(open_door, &c, err, sizeof err), 0);
        ck_assert_msg(strstr(err, hosts[i]) && strstr(err, "api_key"), "%s", err);
        ck_assert_int_eq(door_check_listen(keyed, &c, err, sizeof err), 0);
    }
    /* the Unix socket alone needs no key */
    c.tcp = 0;
    c.socket_path = strdup("/tmp/x.sock");
    ck_assert_int_eq(door_check_listen(open_door, &c, err, sizeof err), 0);
    free(c.socket_path);
    c.socket_path = NULL;
    ck_assert_int_lt(door_check_listen(open_door, &c, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "nothing to listen on") != NULL, "%s", err);
    door_free(open_door);
    door_free(keyed);
    config_free(&c);
}
END_TEST

static long count(const char *body, const char *key)
{
    return msglimit_count(body, strlen(body), key);
}

START_TEST(msglimit_counts_top_level_array)
{
    ck_assert_int_eq(count("{\"messages\":[]}", "messages"), 0);
    ck_assert_int_eq(count("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "messages"),
                     1);
    ck_assert_int_eq(count(" {\n \"model\" : \"m\", \"messages\" : [ {}, {\"a\":[1,2,{\"b\":"
                           "\"],}[\\\"\"}]}, 3 , \"x\", null, true ] , \"n\": 1.5e3}",
                           "messages"),
                     6);
    /* nested "messages" keys are not the top-level one */
    ck_assert_int_eq(count("{\"x\":{\"messages\":[1,2,3]},\"messages\":[1]}", "messages"), 1);
    /* escapes in the key are undone; a duplicate key counts at its largest */
    ck_assert_int_eq(count("{\"messa\\u0067es\":[1,2],\"messages\":[1]}", "messages"), 2);
    ck_assert_int_eq(count("{\"input\":[1,2,3]}", "input"), 3);
    /* nothing to count */
    ck_assert_int_eq(count("{\"messages\":\"text\"}", "messages"), -1);
    ck_assert_int_eq(count("{\"prompt\":[1,2]}", "messages"), -1);
    ck_assert_int_eq(count("[1,2]", "messages"), -1);
    /* a body the walk cannot follow is left to the parser */
    ck_assert_int_eq(count("{\"messages\":[1,2", "messages"), -1);
    ck_assert_int_eq(count("{\"messages\" [1]}", "messages"), -1);
    ck_assert_int_eq(count("{\"messages\":[1 2]}", "messages"), -1);
    ck_assert_int_eq(count("", "messages"), -1);
}
END_TEST

START_TEST(msglimit_many_messages)
{
    size_t n = 100000, cap = n * 40 + 64, len = 0;
    char *b = malloc(cap);
    len += (size_t)sprintf(b, "{\"messages\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(b + len, "%s{\"role\":\"user\",\"content\":\"m%zu\"}", i ? "," : "",
                               i);
    len += (size_t)sprintf(b + len, "]}");
    ck_assert_int_eq(msglimit_count(b, len, "messages"), (long)n);
    free(b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("door_rules");
    TCase *t = tcase_create("door");
    tcase_add_test(t, door_host_loopback_names);
    tcase_add_test(t, door_host_allowed_hosts);
    tcase_add_test(t, door_loopback_addresses);
    tcase_add_test(t, door_auto_on_loopback_only);
    tcase_add_test(t, door_keys_from_list_and_file);
    tcase_add_test(t, door_key_file_errors);
    tcase_add_test(t, door_cors_origins);
    tcase_add_test(t, door_listen_refused_in_the_open_without_key);
    tcase_add_test(t, msglimit_counts_top_level_array);
    tcase_add_test(t, msglimit_many_messages);
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
