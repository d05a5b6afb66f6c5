/* test_privacy.c - the privacy guard: each detector on texts that hold its
 * kind and on look-alikes that must not match, the order and boundaries of
 * hits, redaction and restoring (whole and streamed), custom patterns, and
 * random bytes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "router/privacy.h"
#include "router/privacy_json.h"
#include "tests/testrand.h"

#define NONE ((privacy_kind)-1)

static privacy_set *set;

static void setup(void)
{
    char err[256];
    ck_assert_int_eq(privacy_set_new(NULL, 0, &set, err, sizeof err),
                     PRIVACY_OK);
}

static void teardown(void)
{
    privacy_set_free(set);
    set = NULL;
}

static size_t scan(const privacy_set *s, const char *text, privacy_hit *hits,
                   size_t max)
{
    size_t n;
    ck_assert_int_eq(privacy_scan(s, text, strlen(text), hits, max, &n),
                     PRIVACY_OK);
    return n;
}

/* One text, the kind it must yield (NONE: no hit at all) and the bytes the
 * single hit must cover. */
typedef struct one_case {
    const char *text;
    privacy_kind kind;
    const char *match;
} one_case;

static void check_case(const one_case *c)
{
    privacy_hit h[8];
    size_t n = scan(set, c->text, h, 8);
    if (c->kind == NONE) {
        ck_assert_msg(n == 0, "\"%s\": %zu hit(s), the first %s at %zu+%zu",
                      c->text, n, n ? privacy_kind_name(h[0].kind) : "",
                      n ? h[0].offset : 0, n ? h[0].len : 0);
        return;
    }
    ck_assert_msg(n == 1, "\"%s\": %zu hits, want one %s", c->text, n,
                  privacy_kind_name(c->kind));
    ck_assert_msg(h[0].kind == c->kind, "\"%s\": %s, want %s", c->text,
                  privacy_kind_name(h[0].kind), privacy_kind_name(c->kind));
    ck_assert_msg(h[0].len == strlen(c->match) &&
                      memcmp(c->text + h[0].offset, c->match, h[0].len) == 0,
                  "\"%s\": hit \"%.*s\", want \"%s\"", c->text, (int)h[0].len,
                  c->text + h[0].offset, c->match);
}

/* ============================================================ e-mail */

static const one_case email_cases[] = {
    {"write to john.doe@example.com today", PRIVACY_EMAIL, "john.doe@example.com"},
    {"a+tag_1%x@mail.sub.example.co.uk", PRIVACY_EMAIL, "a+tag_1%x@mail.sub.example.co.uk"},
    {"<x@y.io>", PRIVACY_EMAIL, "x@y.io"},
    {"mail: ops@hearth.dev.", PRIVACY_EMAIL, "ops@hearth.dev"},
    {"...lead.dots@example.org", PRIVACY_EMAIL, "lead.dots@example.org"},
    {"écrivez à marie@exemple.fr s'il vous plaît", PRIVACY_EMAIL, "marie@exemple.fr"},
    {"a@b", NONE, ""},
    {"user@localhost", NONE, ""},
    {"ping @handle and @other.handle", NONE, ""},
    {"x@-bad.com", NONE, ""},
    {"x@bad-.com", NONE, ""},
    {"x@example.c0m", NONE, ""},
    {"x@example.c", NONE, ""},
    {"x@example..com", NONE, ""},
    {"npm i @scope/pkg@1.2.3", NONE, ""},
};

START_TEST(email_table)
{
    check_case(&email_cases[_i]);
}
END_TEST

/* ============================================================ phones */

static const one_case phone_cases[] = {
    {"call +14155552671 now", PRIVACY_PHONE, "+14155552671"},
    {"UK office: +44 20 7946 0958.", PRIVACY_PHONE, "+44 20 7946 0958"},
    {"Berlin +49 (0)30 1234567", PRIVACY_PHONE, "+49 (0)30 1234567"},
    {"tel:+33-1-23-45-67-89", PRIVACY_PHONE, "+33-1-23-45-67-89"},
    {"Ruf an: 030 1234567", PRIVACY_PHONE, "030 1234567"},
    {"mobile 07700 900123", PRIVACY_PHONE, "07700 900123"},
    {"01 23 45 67 89", PRIVACY_PHONE, "01 23 45 67 89"},
    {"06-12345678", PRIVACY_PHONE, "06-12345678"},
    {"(555) 123-4567", PRIVACY_PHONE, "(555) 123-4567"},
    {"555-123-4567", PRIVACY_PHONE, "555-123-4567"},
    {"555.123.4567", PRIVACY_PHONE, "555.123.4567"},
    {"1-800-555-0199", PRIVACY_PHONE, "1-800-555-0199"},
    {"+1 (555) 123-4567 ext", PRIVACY_PHONE, "+1 (555) 123-4567"},
    {"Tel. 555 123 4567, fax", PRIVACY_PHONE, "555 123 4567"},
    /* look-alikes */
    {"order 123456789012", NONE, ""},
    {"id 5551234567", NONE, ""},
    {"due 2024-11-30", NONE, ""},
    {"due 30.11.2024 at 12:30:45", NONE, ""},
    {"on 01-12-2024", NONE, ""},
    {"version 1.2.3 and 10.0.19041", NONE, ""},
    {"host 192.168.100.200", NONE, ""},
    {"host 010.001.002.003", NONE, ""},
    {"0.12.345678", NONE, ""},
    {"+0 123 4567", NONE, ""},
    {"+123456", NONE, ""},
    {"555-123-45678", NONE, ""},
    {"123-456-7890", NONE, ""},
    {"x555-123-4567", NONE, ""},
    {"1234-5678-9012", NONE, ""},
    {"+1234567890123456", NONE, ""},
};

START_TEST(phone_table)
{
    check_case(&phone_cases[_i]);
}
END_TEST

/* ============================================================ cards */

static const one_case card_cases[] = {
    {"visa 4111111111111111 exp", PRIVACY_CARD, "4111111111111111"},
    {"4111 1111 1111 1111", PRIVACY_CARD, "4111 1111 1111 1111"},
    {"4111-1111-1111-1111.", PRIVACY_CARD, "4111-1111-1111-1111"},
    {"4222222222222", PRIVACY_CARD, "4222222222222"},
    {"mc 5555555555554444", PRIVACY_CARD, "5555555555554444"},
    {"mc2 2223003122003222", PRIVACY_CARD, "2223003122003222"},
    {"amex 3782 822463 10005", PRIVACY_CARD, "3782 822463 10005"},
    {"amex 371449635398431", PRIVACY_CARD, "371449635398431"},
    {"discover 6011111111111117", PRIVACY_CARD, "6011111111111117"},
    {"jcb 3530111333300000", PRIVACY_CARD, "3530111333300000"},
    {"diners 30569309025904", PRIVACY_CARD, "30569309025904"},
    {"paid with 4111 1111 1111 1111 2024", PRIVACY_CARD, "4111 1111 1111 1111"},
    {"Karte: 4111111111111111€", PRIVACY_CARD, "4111111111111111"},
    /* Luhn-invalid, unknown issuer, wrong length, glued to more */
    {"4111111111111112", NONE, ""},
    {"4111 1111 1111 1112", NONE, ""},
    {"5555555555554445", NONE, ""},
    {"1234567812345670", NONE, ""},
    {"37828224631000", NONE, ""},
    {"41111111111111111", NONE, ""},
    {"4111111111111111x", NONE, ""},
    {"A4111111111111111", NONE, ""},
    {"4111  1111 1111 1111", NONE, ""},
};

START_TEST(card_table)
{
    check_case(&card_cases[_i]);
}
END_TEST

/* ============================================================ IBANs */

static const one_case iban_cases[] = {
    {"IBAN DE89370400440532013000 bitte", PRIVACY_IBAN, "DE89370400440532013000"},
    {"DE89 3704 0044 0532 0130 00", PRIVACY_IBAN, "DE89 3704 0044 0532 0130 00"},
    {"GB82 WEST 1234 5698 7654 32.", PRIVACY_IBAN, "GB82 WEST 1234 5698 7654 32"},
    {"NL91ABNA0417164300", PRIVACY_IBAN, "NL91ABNA0417164300"},
    {"FR14 2004 1010 0505 0001 3M02 606", PRIVACY_IBAN, "FR14 2004 1010 0505 0001 3M02 606"},
    {"CH93 0076 2011 6238 5295 7", PRIVACY_IBAN, "CH93 0076 2011 6238 5295 7"},
    {"NO9386011117947", PRIVACY_IBAN, "NO9386011117947"},
    {"BE68 5390 0754 7034", PRIVACY_IBAN, "BE68 5390 0754 7034"},
    {"DE89 37040044 0532013000", PRIVACY_IBAN, "DE89 37040044 0532013000"},
    {"Überweisung an DE89370400440532013000.", PRIVACY_IBAN, "DE89370400440532013000"},
    /* wrong checksum, wrong length, unknown country, odd spacing */
    {"DE89370400440532013001", NONE, ""},
    {"DE88 3704 0044 0532 0130 00", NONE, ""},
    {"GB82WEST123456987654", NONE, ""},
    {"DE8937040044053201300012", NONE, ""},
    {"ZZ89370400440532013000", NONE, ""},
    {"DE893 7040044 0532013000", NONE, ""},
    {"de89370400440532013000", NONE, ""},
    {"XDE89370400440532013000", NONE, ""},
};

START_TEST(iban_table)
{
    check_case(&iban_cases[_i]);
}
END_TEST

/* ============================================================ secrets */

#define JWT "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
#define HEX64 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static const one_case secret_cases[] = {
    {"key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t here", PRIVACY_SECRET, "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"},
    {"sk-ant-api03-abcdefghijklmnopqrstuv", PRIVACY_SECRET, "sk-ant-api03-abcdefghijklmnopqrstuv"},
    {"ghp_0123456789abcdefghijABCDEFGHIJ012345", PRIVACY_SECRET, "ghp_0123456789abcdefghijABCDEFGHIJ012345"},
    {"github_pat_11ABCDEFG0123456789_abcdef", PRIVACY_SECRET, "github_pat_11ABCDEFG0123456789_abcdef"},
    {"aws AKIAIOSFODNN7EXAMPLE.", PRIVACY_SECRET, "AKIAIOSFODNN7EXAMPLE"},
    {"xoxb-1234567890-abcdefghij", PRIVACY_SECRET, "xoxb-1234567890-abcdefghij"},
    {"AIzaSyA1234567890abcdefghijklmnopqrstu", PRIVACY_SECRET, "AIzaSyA1234567890abcdefghijklmnopqrstu"},
    {"glpat-abcdefghij0123456789", PRIVACY_SECRET, "glpat-abcdefghij0123456789"},
    {"hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", PRIVACY_SECRET, "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"},
    {"Bearer " JWT, PRIVACY_SECRET, JWT},
    {"token=Zx9Qm2Lr7Tb4Wn8Kp3Vd6Hs1Yc5Fg0Ja;", PRIVACY_SECRET, "Zx9Qm2Lr7Tb4Wn8Kp3Vd6Hs1Yc5Fg0Ja"},
    {"k: q8Rz/T3+vW9yXb2Lm5Nc7Pd1Fh4Gj6Ks0A== end", PRIVACY_SECRET, "q8Rz/T3+vW9yXb2Lm5Nc7Pd1Fh4Gj6Ks0A=="},
    {"api key " HEX64, PRIVACY_SECRET, HEX64},
    /* look-alikes */
    {"sk-this-is-not-a-real-key-at-all", NONE, ""},
    {"sk-short1", NONE, ""},
    {"AKIAIOSFODNN7EXAMPLEX", NONE, ""},
    {"ghp_tooShort123", NONE, ""},
    {"commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it", NONE, ""},
    {"3f786850e387550fdab836ed7e6dc881de23001b", NONE, ""},
    {"md5 d41d8cd98f00b204e9800998ecf8427e", NONE, ""},
    {"uuid 123e4567-e89b-12d3-a456-426614174000", NONE, ""},
    {"sha256:" HEX64, NONE, ""},
    {"SHA-256 checksum: " HEX64, NONE, ""},
    {"averyveryverylongwordwithoutanydigitsinitatall", NONE, ""},
    {"src/components/header/navigation/item2", NONE, ""},
    {"ThisIsAVeryLongCamelCaseIdentifier2Name", NONE, ""},
    {"img data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", NONE, ""},
    {"eyJhbGciOiJIUzI1NiJ9.x", NONE, ""},
};

START_TEST(secret_table)
{
    check_case(&secret_cases[_i]);
}
END_TEST

/* ============================================================ private keys */

#define PK "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nq8Rz/T3+vW9y==\n-----END RSA PRIVATE KEY-----"
#define PK2 "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"
#define PGP "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----"

static const one_case pk_cases[] = {
    {"here:\n" PK "\nthanks", PRIVACY_PRIVATE_KEY, PK},
    {PK2, PRIVACY_PRIVATE_KEY, PK2},
    {PGP "\n", PRIVACY_PRIVATE_KEY, PGP},
    {"cut: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA",
     PRIVACY_PRIVATE_KEY,
     "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"},
    {"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----", NONE, ""},
    {"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", NONE, ""},
    {"-----BEGIN NOTPRIVATE KEY-----", NONE, ""},
};

START_TEST(pk_table)
{
    check_case(&pk_cases[_i]);
}
END_TEST

/* ============================================================ order */

START_TEST(hits_in_order_adjacent_and_at_edges)
{
    const char *t = "a@b.co,4111111111111111 +14155552671\xc3\xa9x@y.de";
    privacy_hit h[8];
    size_t n = scan(set, t, h, 8);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(h[0].kind, PRIVACY_EMAIL);
    ck_assert_uint_eq(h[0].offset, 0);
    ck_assert_uint_eq(h[0].len, 6);
    ck_assert_int_eq(h[1].kind, PRIVACY_CARD);
    ck_assert_uint_eq(h[1].offset, 7);
    ck_assert_int_eq(h[2].kind, PRIVACY_PHONE);
    ck_assert_int_eq(h[3].kind, PRIVACY_EMAIL);
    ck_assert_uint_eq(h[3].offset + h[3].len, strlen(t));
    for (size_t i = 1; i < n; i++)
        ck_assert_uint_ge(h[i].offset, h[i - 1].offset + h[i - 1].len);
}
END_TEST

START_TEST(hits_beyond_max_are_counted)
{
    const char *t = "a@b.co c@d.co e@f.co";
    privacy_hit h[1];
    ck_assert_uint_eq(scan(set, t, h, 1), 3);
    ck_assert_uint_eq(h[0].offset, 0);
    ck_assert_uint_eq(scan(set, t, NULL, 0), 3);
    ck_assert_uint_eq(scan(set, "", NULL, 0), 0);
}
END_TEST

START_TEST(private_key_swallows_what_it_holds)
{
    /* The key block starts first and is longer: nothing inside it is
     * reported separately. */
    const char *t = "-----BEGIN EC PRIVATE KEY-----\nops@hearth.dev "
                    "4111111111111111\n-----END EC PRIVATE KEY----- and a@b.co";
    privacy_hit h[4];
    ck_assert_uint_eq(scan(set, t, h, 4), 2);
    ck_assert_int_eq(h[0].kind, PRIVACY_PRIVATE_KEY);
    ck_assert_int_eq(h[1].kind, PRIVACY_EMAIL);
}
END_TEST

START_TEST(kind_names)
{
    static const char *const want[] = {"email", "phone", "card", "iban",
                                       "secret", "private_key", "custom"};
    for (int k = 0; k < PRIVACY_KIND_COUNT; k++)
        ck_assert_str_eq(privacy_kind_name((privacy_kind)k), want[k]);
    ck_assert_str_eq(privacy_kind_name(PRIVACY_KIND_COUNT), "?");
    ck_assert_str_eq(privacy_strerror(PRIVACY_EPATTERN),
                     "a privacy pattern does not compile");
}
END_TEST

/* ============================================================ custom */

START_TEST(custom_patterns)
{
    const char *pats[] = {"EMP-\\d{6}", "Projekt\\s+Übermut", "x*"};
    privacy_set *s;
    char err[256] = "";
    ck_assert_int_eq(privacy_set_new(pats, 3, &s, err, sizeof err), PRIVACY_OK);
    const char *t = "badge EMP-123456, Projekt  Übermut, mail a@b.co";
    privacy_hit h[8];
    size_t n = scan(s, t, h, 8);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(h[0].kind, PRIVACY_CUSTOM);
    ck_assert_uint_eq(h[0].pattern, 0);
    ck_assert_uint_eq(h[0].len, 10);
    ck_assert_int_eq(h[1].kind, PRIVACY_CUSTOM);
    ck_assert_uint_eq(h[1].pattern, 1);
    ck_assert_int_eq(memcmp(t + h[1].offset, "Projekt  \xc3\x9c" "bermut", h[1].len), 0);
    ck_assert_int_eq(h[2].kind, PRIVACY_EMAIL);
    /* invalid UTF-8 is searched, not refused */
    const char bad[] = "\xff\xfe EMP-000001 \xc3";
    size_t nb;
    ck_assert_int_eq(privacy_scan(s, bad, sizeof bad - 1, h, 8, &nb), PRIVACY_OK);
    ck_assert_uint_eq(nb, 1);
    ck_assert_uint_eq(h[0].offset, 3);
    privacy_set_free(s);
}
END_TEST

START_TEST(custom_pattern_error_names_it)
{
    const char *pats[] = {"ok\\d+", "(unclosed"};
    privacy_set *s = (privacy_set *)1;
    char err[256] = "";
    ck_assert_int_eq(privacy_set_new(pats, 2, &s, err, sizeof err),
                     PRIVACY_EPATTERN);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "pattern 1") && strstr(err, "(unclosed") &&
                      strstr(err, "missing closing parenthesis") &&
                      strstr(err, "offset 9"),
                  "%s", err);
}
END_TEST

START_TEST(custom_pattern_match_limit)
{
    const char *pats[] = {"(a+)+$"};
    privacy_set *s;
    char err[256];
    ck_assert_int_eq(privacy_set_new(pats, 1, &s, err, sizeof err), PRIVACY_OK);
    char t[64];
    memset(t, 'a', sizeof t - 2);
    t[sizeof t - 2] = '!';
    t[sizeof t - 1] = 0;
    size_t n;
    privacy_status st = privacy_scan(s, t, strlen(t), NULL, 0, &n);
    /* With the JIT the limit counts differently; either way it ends. */
    ck_assert(st == PRIVACY_EMATCH || st == PRIVACY_OK);
    privacy_set_free(s);
}
END_TEST

/* ============================================================ redaction */

static char *redact(privacy_map *m, const char *t)
{
    privacy_hit h[32];
    size_t n = scan(set, t, h, 32);
    ck_assert_uint_le(n, 32);
    char *out;
    size_t ol;
    ck_assert_int_eq(privacy_redact(m, t, strlen(t), h, n, &out, &ol),
                     PRIVACY_OK);
    ck_assert_uint_eq(strlen(out), ol);
    return out;
}

static char *restore(const privacy_map *m, const char *t)
{
    char *out;
    size_t ol;
    ck_assert_int_eq(privacy_restore(m, t, strlen(t), &out, &ol), PRIVACY_OK);
    ck_assert_uint_eq(strlen(out), ol);
    return out;
}

#define MSG1 "Mail ana@example.com or bob@example.com, card 4111 1111 1111 1111; " \
             "again ana@example.com. Phone +44 20 7946 0958."
#define MSG2 "IBAN DE89370400440532013000, and bob@example.com [EMAIL_9] [x"

START_TEST(redact_round_trip)
{
    privacy_map *m = privacy_map_new();
    char *r1 = redact(m, MSG1);
    ck_assert_str_eq(r1, "Mail [EMAIL_1] or [EMAIL_2], card [CARD_1]; again "
                         "[EMAIL_1]. Phone [PHONE_1].");
    char *r2 = redact(m, MSG2);
    ck_assert_str_eq(r2, "IBAN [IBAN_1], and [EMAIL_2] [EMAIL_9] [x");
    ck_assert_uint_eq(privacy_map_count(m), 5);
    char *b1 = restore(m, r1), *b2 = restore(m, r2);
    ck_assert_str_eq(b1, MSG1);
    ck_assert_str_eq(b2, MSG2);
    char *a = restore(m, "Sure, I wrote to [EMAIL_2][EMAIL_1] and [CARD_1]");
    ck_assert_str_eq(a, "Sure, I wrote to bob@example.comana@example.com and "
                        "4111 1111 1111 1111");
    free(r1);
    free(r2);
    free(b1);
    free(b2);
    free(a);
    privacy_map_free(m);
}
END_TEST

START_TEST(redact_rejects_bad_hits)
{
    privacy_map *m = privacy_map_new();
    char *out = (char *)1;
    size_t ol;
    privacy_hit over[2] = {{PRIVACY_EMAIL, 0, 0, 4}, {PRIVACY_EMAIL, 0, 2, 2}};
    ck_assert_int_eq(privacy_redact(m, "abcdef", 6, over, 2, &out, &ol),
                     PRIVACY_EINVAL);
    ck_assert_ptr_null(out);
    privacy_hit past = {PRIVACY_CARD, 0, 4, 3};
    ck_assert_int_eq(privacy_redact(m, "abcdef", 6, &past, 1, &out, &ol),
                     PRIVACY_EINVAL);
    privacy_hit empty = {PRIVACY_CARD, 0, 1, 0};
    ck_assert_int_eq(privacy_redact(m, "abcdef", 6, &empty, 1, &out, &ol),
                     PRIVACY_EINVAL);
    ck_assert_int_eq(privacy_redact(m, "abcdef", 6, NULL, 0, &out, &ol),
                     PRIVACY_OK);
    ck_assert_str_eq(out, "abcdef");
    free(out);
    ck_assert_uint_eq(privacy_map_count(m), 0);
    privacy_map_free(m);
}
END_TEST

/* Feed `t` cut at the given points and return what came out. */
static char *stream(const privacy_map *m, const char *t, const size_t *cuts,
                    size_t ncuts)
{
    privacy_restorer *r;
    ck_assert_int_eq(privacy_restorer_new(m, &r), PRIVACY_OK);
    size_t len = strlen(t), cap = len * 8 + 256, ol = 0, prev = 0;
    char *acc = malloc(cap);
    const char *o;
    size_t on;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        ck_assert_int_eq(privacy_restorer_feed(r, t + prev, end - prev, &o, &on),
                         PRIVACY_OK);
        ck_assert_uint_le(ol + on, cap);
        memcpy(acc + ol, o, on);
        ol += on;
        prev = end;
    }
    privacy_restorer_flush(r, &o, &on);
    memcpy(acc + ol, o, on);
    ol += on;
    acc[ol] = 0;
    privacy_restorer_free(r);
    return acc;
}

START_TEST(stream_restore_every_split)
{
    privacy_map *m = privacy_map_new();
    char *r1 = redact(m, MSG1 " " MSG2);
    const char *answer = "[[EMAIL_1]] x [EMAIL_1[EMAIL_2][CARD_1] [CARD_] "
                         "[IBAN_1][PHONE_1]. [EMAIL_9] [EMAIL_1";
    const char *texts[] = {r1, answer};
    for (size_t k = 0; k < 2; k++) {
        char *want = restore(m, texts[k]);
        size_t len = strlen(texts[k]);
        /* one cut at every byte, two cuts at every pair of bytes */
        for (size_t a = 0; a <= len; a++) {
            char *got = stream(m, texts[k], &a, 1);
            ck_assert_str_eq(got, want);
            free(got);
            for (size_t b = a; b <= len && b < a + 12; b++) {
                size_t cuts[2] = {a, b};
                got = stream(m, texts[k], cuts, 2);
                ck_assert_str_eq(got, want);
                free(got);
            }
        }
        /* byte by byte */
        size_t *cuts = malloc(len * sizeof *cuts);
        for (size_t i = 0; i < len; i++)
            cuts[i] = i;
        char *got = stream(m, texts[k], cuts, len);
        ck_assert_str_eq(got, want);
        free(got);
        free(cuts);
        free(want);
    }
    char *w = restore(m, answer);
    ck_assert_str_eq(w, "[ana@example.com] x [EMAIL_1bob@example.com"
                        "4111 1111 1111 1111 [CARD_] DE89370400440532013000"
                        "+44 20 7946 0958. [EMAIL_9] [EMAIL_1");
    free(w);
    free(r1);
    privacy_map_free(m);
}
END_TEST

START_TEST(stream_holds_back_only_placeholder_starts)
{
    privacy_map *m = privacy_map_new();
    free(redact(m, "a@b.co"));
    privacy_restorer *r;
    ck_assert_int_eq(privacy_restorer_new(m, &r), PRIVACY_OK);
    const char *o;
    size_t on;
    ck_assert_int_eq(privacy_restorer_feed(r, "see [EM", 7, &o, &on), PRIVACY_OK);
    ck_assert_uint_eq(on, 4);
    ck_assert_int_eq(memcmp(o, "see ", 4), 0);
    ck_assert_int_eq(privacy_restorer_feed(r, "AIL_1] [x]", 10, &o, &on),
                     PRIVACY_OK);
    ck_assert_uint_eq(on, 10);
    ck_assert_int_eq(memcmp(o, "a@b.co [x]", 10), 0);
    privacy_restorer_flush(r, &o, &on);
    ck_assert_uint_eq(on, 0);
    privacy_restorer_free(r);
    privacy_map_free(m);
}
END_TEST

/* ============================================================ random */

START_TEST(random_bytes_do_not_crash)
{
    const char *pats[] = {"[\\p{L}]{3}\\d", "(?i)secret"};
    privacy_set *s;
    char err[128];
    ck_assert_int_eq(privacy_set_new(pats, 2, &s, err, sizeof err), PRIVACY_OK);
    /* Alphabets that make near-misses likely: digits and separators,
     * address and key characters, and any byte at all. */
    static const char *const alpha[] = {
        "0123456789 -.()+", "aZ09@.-_+/=", "-BEGIN PRIVATEKY\nEND",
        "DE89 0123456789GBWEST", "[EMAIL_1]CARD2"};
    rng_state = 0x9e3779b97f4a7c15ull;
    char buf[512];
    privacy_hit h[64];
    for (int iter = 0; iter < 4000; iter++) {
        size_t len = rng_u32() % sizeof buf;
        int mode = (int)(rng_u32() % 6);
        for (size_t i = 0; i < len; i++) {
            if (mode == 5) {
                buf[i] = (char)(rng_u32() & 0xff);
            } else {
                const char *a = alpha[mode];
                buf[i] = a[rng_u32() % strlen(a)];
            }
        }
        size_t n;
        privacy_status st = privacy_scan(s, buf, len, h, 64, &n);
        ck_assert_int_eq(st, PRIVACY_OK);
        size_t stored = n < 64 ? n : 64;
        for (size_t i = 0; i < stored; i++) {
            ck_assert_uint_ge(h[i].len, 1);
            ck_assert_uint_le(h[i].offset + h[i].len, len);
            if (i)
                ck_assert_uint_ge(h[i].offset, h[i - 1].offset + h[i - 1].len);
        }
        if (n > 64)
            continue;
        privacy_map *m = privacy_map_new();
        char *red, *back;
        size_t rl, bl;
        ck_assert_int_eq(privacy_redact(m, buf, len, h, n, &red, &rl), PRIVACY_OK);
        ck_assert_int_eq(privacy_restore(m, red, rl, &back, &bl), PRIVACY_OK);
        /* Round trip unless the text held placeholders of its own. */
        if (!memchr(buf, '[', len)) {
            ck_assert_uint_eq(bl, len);
            ck_assert_int_eq(memcmp(back, buf, len), 0);
        }
        free(red);
        free(back);
        privacy_map_free(m);
    }
    privacy_set_free(s);
}
END_TEST

/* ============================================================ JSON bodies */

/* The kind privacy_json_check finds in a body (parsed as hearthd parses
 * it), and the kind a raw scan of the same bytes finds alone. */
static int json_kind(const char *body, int *raw_kind)
{
    json_error_t je;
    json_t *root = json_loads(body, JSON_ALLOW_NUL, &je);
    ck_assert_msg(root != NULL, "%s: %s", body, je.text);
    privacy_hit h;
    size_t n;
    ck_assert_int_eq(privacy_scan(set, body, strlen(body), &h, 1, &n), PRIVACY_OK);
    *raw_kind = n ? (int)h.kind : -1;
    int kind;
    ck_assert_int_eq(privacy_json_check(set, body, strlen(body), root, &kind), PRIVACY_OK);
    json_decref(root);
    return kind;
}

/* Escapes the raw scan cannot see through: each body hides its kind from
 * the bytes and shows it once decoded. */
static const struct {
    const char *body;
    privacy_kind kind;
} escaped_cases[] = {
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"mail jane\\u0040example.org\"}]}",
     PRIVACY_EMAIL},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"mail jane\\u0040example\\u002eorg\"}]}",
     PRIVACY_EMAIL},
    {"{\"prompt\":\"pay 4111\\u00201111\\u00201111\\u00201111 now\"}", PRIVACY_CARD},
    {"{\"prompt\":\"IBAN DE89\\u00203704\\u00200044\\u00200532\\u00200130\\u002000\"}",
     PRIVACY_IBAN},
    {"{\"prompt\":\"call +1\\u0034155552671\"}", PRIVACY_PHONE},
    {"{\"prompt\":\"key \\u0073k-proj-aaaaaaaaaa1111111111\"}", PRIVACY_SECRET},
    /* the key block's label written with escaped spaces, its lines with \n */
    {"{\"prompt\":\"-----BEGIN\\u0020RSA\\u0020PRIVATE\\u0020KEY-----\\nMIIEow\\nIBAAK\\n"
     "-----END RSA PRIVATE KEY-----\"}", PRIVACY_PRIVATE_KEY},
    /* object keys are text that is forwarded too */
    {"{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":"
     "{\"type\":\"object\",\"properties\":{\"jane\\u0040example.org\":{}}}}}]}",
     PRIVACY_EMAIL},
    {"{\"metadata\":{\"to\\u0040\":\"x\"},\"user\":\"jane\\u0040example.org\"}", PRIVACY_EMAIL},
    /* a NUL before it does not end the scan */
    {"{\"prompt\":\"a\\u0000 jane\\u0040example.org\"}", PRIVACY_EMAIL},
};

START_TEST(json_escaped_text_is_found)
{
    int raw;
    int kind = json_kind(escaped_cases[_i].body, &raw);
    ck_assert_msg(raw == -1, "%s: the raw bytes already hold a %s", escaped_cases[_i].body,
                  privacy_kind_name((privacy_kind)raw));
    ck_assert_msg(kind == (int)escaped_cases[_i].kind, "%s: %s, want %s",
                  escaped_cases[_i].body, kind < 0 ? "none" : privacy_kind_name((privacy_kind)kind),
                  privacy_kind_name(escaped_cases[_i].kind));
}
END_TEST

START_TEST(json_key_block_with_newline_escapes)
{
    /* a key block as JSON carries it: \n between its lines, found raw and
     * decoded alike */
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"-----BEGIN OPENSSH "
                       "PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA\\n-----END OPENSSH "
                       "PRIVATE KEY-----\"}]}";
    int raw;
    ck_assert_int_eq(json_kind(body, &raw), PRIVACY_PRIVATE_KEY);
    ck_assert_int_eq(raw, PRIVACY_PRIVATE_KEY);
    json_t *root = json_loads(body, 0, NULL);
    int kind;
    ck_assert_int_eq(privacy_json_scan(set, root, &kind), PRIVACY_OK);
    ck_assert_int_eq(kind, PRIVACY_PRIVATE_KEY);
    json_decref(root);
}
END_TEST

START_TEST(json_first_hit_wins)
{
    int raw;
    /* a raw hit comes before any decoded one, wherever it stands */
    ck_assert_int_eq(json_kind("{\"a\":\"jane\\u0040example.org\",\"b\":\"+14155552671\"}", &raw),
                     PRIVACY_PHONE);
    /* decoded: in document order, a key before its value */
    json_t *root = json_loads("{\"x\":[\"+1\\u0034155552671\",\"jane\\u0040example.org\"]}", 0,
                              NULL);
    int kind;
    ck_assert_int_eq(privacy_json_scan(set, root, &kind), PRIVACY_OK);
    ck_assert_int_eq(kind, PRIVACY_PHONE);
    json_decref(root);
    root = json_loads("{\"4111\\u00201111\\u00201111\\u00201111\":\"jane\\u0040example.org\"}", 0,
                      NULL);
    ck_assert_int_eq(privacy_json_scan(set, root, &kind), PRIVACY_OK);
    ck_assert_int_eq(kind, PRIVACY_CARD);
    json_decref(root);
}
END_TEST

START_TEST(json_clean_bodies_pass)
{
    int raw;
    /* escapes that decode to look-alikes: no hit either way */
    ck_assert_int_eq(json_kind("{\"prompt\":\"a\\u0040b and @handle\",\"n\":[1,2.5,null,true]}",
                               &raw), -1);
    ck_assert_int_eq(json_kind("{\"prompt\":\"4111\\u00201111\\u00201111\\u00201112\"}", &raw),
                     -1); /* Luhn fails */
    ck_assert_int_eq(json_kind("{}", &raw), -1);
    int kind = 7;
    ck_assert_int_eq(privacy_json_scan(set, NULL, &kind), PRIVACY_OK);
    ck_assert_int_eq(kind, -1);
    ck_assert_int_eq(privacy_json_check(set, NULL, 0, NULL, &kind), PRIVACY_OK);
    ck_assert_int_eq(kind, -1);
}
END_TEST

START_TEST(json_too_deep_is_not_scanned)
{
    /* deeper than the walk goes: reported unscanned, never clean */
    json_t *root = json_array(), *at = root;
    for (int i = 0; i < PRIVACY_JSON_MAX_DEPTH + 1; i++) {
        json_t *in = json_array();
        json_array_append_new(at, in);
        at = in;
    }
    json_array_append_new(at, json_string("nothing here"));
    int kind;
    ck_assert_int_eq(privacy_json_scan(set, root, &kind), PRIVACY_EMATCH);
    ck_assert_int_eq(kind, -1);
    json_decref(root);
}
END_TEST

START_TEST(json_unscanned_pattern_is_reported)
{
    /* a custom pattern that may fail while matching a decoded string (the
     * match limit; with PCRE2's JIT it may also finish): the JSON scan
     * reports what the plain scan of that string reports, and a failure
     * never as clean */
    const char *pat[] = {"(a+)+$"};
    privacy_set *s;
    char err[256];
    ck_assert_int_eq(privacy_set_new(pat, 1, &s, err, sizeof err), PRIVACY_OK);
    char text[64];
    memset(text, 'a', sizeof text - 2);
    text[sizeof text - 2] = '!';
    text[sizeof text - 1] = '\0';
    json_t *root = json_pack("{s:s}", "prompt", text);
    size_t n;
    privacy_status plain = privacy_scan(s, text, strlen(text), NULL, 0, &n);
    int kind;
    ck_assert_int_eq(privacy_json_check(s, "{}", 2, root, &kind), plain);
    if (plain != PRIVACY_OK)
        ck_assert_int_eq(kind, -1);
    json_decref(root);
    privacy_set_free(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("privacy");
    TCase *tc = tcase_create("detectors");
    tcase_add_checked_fixture(tc, setup, teardown);
#define TABLE(t, c) tcase_add_loop_test(tc, t, 0, (int)(sizeof c / sizeof *c))
    TABLE(email_table, email_cases);
    TABLE(phone_table, phone_cases);
    TABLE(card_table, card_cases);
    TABLE(iban_table, iban_cases);
    TABLE(secret_table, secret_cases);
    TABLE(pk_table, pk_cases);
    tcase_add_test(tc, hits_in_order_adjacent_and_at_edges);
    tcase_add_test(tc, hits_beyond_max_are_counted);
    tcase_add_test(tc, private_key_swallows_what_it_holds);
    tcase_add_test(tc, kind_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("custom");
    tcase_add_test(tc, custom_patterns);
    tcase_add_test(tc, custom_pattern_error_names_it);
    tcase_add_test(tc, custom_pattern_match_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("redaction");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, redact_round_trip);
    tcase_add_test(tc, redact_rejects_bad_hits);
    tcase_add_test(tc, stream_restore_every_split);
    tcase_add_test(tc, stream_holds_back_only_placeholder_starts);
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_add_checked_fixture(tc, setup, teardown);
    TABLE(json_escaped_text_is_found, escaped_cases);
    tcase_add_test(tc, json_key_block_with_newline_escapes);
    tcase_add_test(tc, json_first_hit_wins);
    tcase_add_test(tc, json_clean_bodies_pass);
    tcase_add_test(tc, json_too_deep_is_not_scanned);
    tcase_add_test(tc, json_unscanned_pattern_is_reported);
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_add_test(tc, random_bytes_do_not_crash);
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
