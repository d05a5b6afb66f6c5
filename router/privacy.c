/* privacy.c - see privacy.h for the rules each detector follows.
 *
 * The built-in detectors are hand-written scanners rather than regexes:
 * each rule has a check a regex cannot make (Luhn, mod-97, a length table,
 * entropy, date shapes), and a scanner states its limits plainly. Every
 * detector answers one question: the first candidate that starts at or
 * after `from`. privacy_scan keeps one pending candidate per detector and
 * takes the earliest (then longest) of them; a detector is asked again
 * only when the hit just taken passed its candidate's start, and then from
 * the hit's end. Each built-in looks at a bounded window per start position
 * (a card at most 19 digits and their separators, an address 64 + 253
 * bytes...), so a scan is linear in the text, times the number of
 * detectors; the custom patterns cost what PCRE2 makes them cost, bounded
 * by PRIVACY_MATCH_LIMIT per search.
 *
 * Nothing here logs. Matched bytes are copied only into a privacy_map,
 * which wipes them when freed.
 */
#include "router/privacy.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ names */

static const char *const kind_names[PRIVACY_KIND_COUNT] = {
    "email", "phone", "card", "iban", "secret", "private_key", "custom",
};

const char *privacy_kind_name(privacy_kind kind)
{
    return (unsigned)kind < PRIVACY_KIND_COUNT ? kind_names[kind] : "?";
}

const char *privacy_strerror(privacy_status st)
{
    switch (st) {
    case PRIVACY_OK: return "ok";
    case PRIVACY_ENOMEM: return "out of memory";
    case PRIVACY_EPATTERN: return "a privacy pattern does not compile";
    case PRIVACY_EMATCH: return "a privacy pattern failed while matching";
    case PRIVACY_EINVAL: return "invalid privacy hits";
    }
    return "unknown privacy status";
}

/* ------------------------------------------------------------ bytes */

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static bool is_alpha(unsigned char c)
{
    return is_upper(c) || (c >= 'a' && c <= 'z');
}
static bool is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
/* Characters of a token for the secret rules (base64 and base64url). */
static bool is_tok(unsigned char c)
{
    return is_alnum(c) || c == '+' || c == '/' || c == '_' || c == '-';
}

#define U(p) ((unsigned char)(p))

/* The byte before position i, or 0 at the start. */
static unsigned char before(const char *t, size_t i)
{
    return i ? U(t[i - 1]) : 0;
}

/* The byte at position i, or 0 past the end. */
static unsigned char at(const char *t, size_t len, size_t i)
{
    return i < len ? U(t[i]) : 0;
}

static const char *find_bytes(const char *t, size_t len, size_t from,
                              const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = from; i + nl <= len; i++) {
        const char *p = memchr(t + i, needle[0], len - i - nl + 1);
        if (!p)
            return NULL;
        i = (size_t)(p - t);
        if (memcmp(p, needle, nl) == 0)
            return p;
    }
    return NULL;
}

/* A candidate: start and length (len 0 = none). */
typedef struct span {
    size_t start, len;
} span;

/* The first position at or after from where at() finds a match (at checks
 * its own start conditions and returns the match's length or 0). */
static span find_first(const char *t, size_t len, size_t from,
                       size_t (*at_fn)(const char *, size_t, size_t))
{
    span s = {0, 0};
    for (size_t p = from; p < len; p++) {
        size_t n = at_fn(t, len, p);
        if (n) {
            s.start = p;
            s.len = n;
            break;
        }
    }
    return s;
}

/* ------------------------------------------------------------ private key */

/* "-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----" at p: its length, or 0. */
static size_t pk_begin_len(const char *t, size_t len, size_t p)
{
    static const char head[] = "-----BEGIN ";
    size_t hl = sizeof head - 1;
    if (len - p < hl || memcmp(t + p, head, hl) != 0)
        return 0;
    size_t q = p + hl;
    while (q < len && (is_upper(U(t[q])) || is_digit(U(t[q])) || t[q] == ' '))
        q++;
    if (q + 5 > len || memcmp(t + q, "-----", 5) != 0)
        return 0;
    static const char *const tails[] = {"PRIVATE KEY", "PRIVATE KEY BLOCK"};
    for (size_t k = 0; k < 2; k++) {
        size_t tl = strlen(tails[k]);
        if (q - (p + hl) >= tl && memcmp(t + q - tl, tails[k], tl) == 0 &&
            (q - tl == p + hl || t[q - tl - 1] == ' '))
            return q + 5 - p;
    }
    return 0;
}

static span find_private_key(const char *t, size_t len, size_t from)
{
    span s = {0, 0};
    for (size_t p = from;;) {
        const char *b = find_bytes(t, len, p, "-----BEGIN ");
        if (!b)
            return s;
        size_t start = (size_t)(b - t);
        size_t bl = pk_begin_len(t, len, start);
        if (!bl) {
            p = start + 1;
            continue;
        }
        size_t end = len; /* unterminated: to the end of the text */
        const char *e = find_bytes(t, len, start + bl, "-----END ");
        if (e) {
            const char *close =
                find_bytes(t, len, (size_t)(e - t) + 9, "-----");
            const char *nl = memchr(e, '\n', len - (size_t)(e - t));
            if (close && (!nl || close < nl))
                end = (size_t)(close - t) + 5;
            else
                end = nl ? (size_t)(nl - t) : len;
        }
        s.start = start;
        s.len = end - start;
        return s;
    }
}

/* ------------------------------------------------------------ secrets */

typedef enum body_class { B_ALNUM, B_ALNUM_UD, B_ALNUM_U, B_UPPER_DIGIT,
                          B_ALNUM_D } body_class;

static bool body_ok(body_class c, unsigned char ch)
{
    switch (c) {
    case B_ALNUM: return is_alnum(ch);
    case B_ALNUM_UD: return is_alnum(ch) || ch == '_' || ch == '-';
    case B_ALNUM_U: return is_alnum(ch) || ch == '_';
    case B_UPPER_DIGIT: return is_upper(ch) || is_digit(ch);
    case B_ALNUM_D: return is_alnum(ch) || ch == '-';
    }
    return false;
}

typedef struct secret_prefix {
    const char *prefix;
    body_class body;
    size_t min, max;  /* body length; max 0 = no limit */
    bool mixed;       /* the body must hold letters and digits */
} secret_prefix;

/* Longer prefixes first where one starts another (sk-ant- before sk-). */
static const secret_prefix secret_prefixes[] = {
    {"sk-ant-", B_ALNUM_UD, 20, 0, false},
    {"sk-", B_ALNUM_UD, 20, 0, true},
    {"ghp_", B_ALNUM, 36, 0, false},
    {"gho_", B_ALNUM, 36, 0, false},
    {"ghs_", B_ALNUM, 36, 0, false},
    {"ghu_", B_ALNUM, 36, 0, false},
    {"ghr_", B_ALNUM, 36, 0, false},
    {"github_pat_", B_ALNUM_U, 22, 0, false},
    {"AKIA", B_UPPER_DIGIT, 16, 16, false},
    {"ASIA", B_UPPER_DIGIT, 16, 16, false},
    {"xoxb-", B_ALNUM_D, 10, 0, false},
    {"xoxp-", B_ALNUM_D, 10, 0, false},
    {"xoxa-", B_ALNUM_D, 10, 0, false},
    {"xoxr-", B_ALNUM_D, 10, 0, false},
    {"xoxs-", B_ALNUM_D, 10, 0, false},
    {"AIza", B_ALNUM_UD, 35, 35, false},
    {"glpat-", B_ALNUM_UD, 20, 0, false},
    {"hf_", B_ALNUM, 30, 0, false},
};

/* A byte that may not follow a prefixed secret: it would continue it. */
static bool secret_continues(unsigned char c)
{
    return is_alnum(c) || c == '_' || c == '-';
}

static size_t secret_prefixed(const char *t, size_t len, size_t p)
{
    for (size_t k = 0; k < sizeof secret_prefixes / sizeof *secret_prefixes;
         k++) {
        const secret_prefix *sp = &secret_prefixes[k];
        size_t pl = strlen(sp->prefix);
        if (len - p < pl || memcmp(t + p, sp->prefix, pl) != 0)
            continue;
        size_t q = p + pl;
        bool letter = false, digit = false;
        while (q < len && body_ok(sp->body, U(t[q]))) {
            letter |= is_alpha(U(t[q]));
            digit |= is_digit(U(t[q]));
            q++;
        }
        size_t body = q - p - pl;
        if (body < sp->min || (sp->max && body > sp->max) ||
            secret_continues(at(t, len, q)) || (sp->mixed && !(letter && digit)))
            continue;
        return q - p;
    }
    return 0;
}

static bool is_b64url(unsigned char c)
{
    return is_alnum(c) || c == '_' || c == '-';
}

static size_t jwt_len(const char *t, size_t len, size_t p)
{
    if (len - p < 3 || memcmp(t + p, "eyJ", 3) != 0)
        return 0;
    static const size_t min_part[3] = {10, 4, 1};
    size_t q = p;
    for (int part = 0; part < 3; part++) {
        size_t s = q;
        while (q < len && is_b64url(U(t[q])))
            q++;
        if (q - s < min_part[part])
            return 0;
        if (part < 2) {
            if (at(t, len, q) != '.')
                return 0;
            q++;
        }
    }
    return is_tok(at(t, len, q)) ? 0 : q - p;
}

static double entropy(const char *s, size_t n)
{
    size_t count[256] = {0};
    for (size_t i = 0; i < n; i++)
        count[U(s[i])]++;
    double h = 0;
    for (size_t c = 0; c < 256; c++) {
        if (!count[c])
            continue;
        double f = (double)count[c] / (double)n;
        h -= f * log2(f);
    }
    return h;
}

/* Does one of the labels that mark a hash appear in the 24 bytes before p? */
static bool hash_label_before(const char *t, size_t p)
{
    static const char *const labels[] = {"sha", "hash", "digest", "checksum",
                                         "commit"};
    size_t from = p > 24 ? p - 24 : 0;
    for (size_t i = from; i < p; i++)
        for (size_t k = 0; k < sizeof labels / sizeof *labels; k++) {
            size_t ll = strlen(labels[k]);
            if (p - i < ll)
                continue;
            size_t j = 0;
            while (j < ll && (U(t[i + j]) | 0x20) == U(labels[k][j]))
                j++;
            if (j == ll)
                return true;
        }
    return false;
}

/* The high-entropy rule on the token run at p; returns its length or 0. */
static size_t secret_entropy(const char *t, size_t len, size_t p)
{
    size_t q = p, letters = 0, digits = 0;
    bool hex = true;
    while (q < len && is_tok(U(t[q]))) {
        unsigned char c = U(t[q]);
        letters += is_alpha(c);
        digits += is_digit(c);
        hex &= is_hex(c) || c == '-';
        q++;
    }
    size_t n = q - p;
    for (int pad = 0; pad < 2 && at(t, len, q) == '='; pad++)
        q++;
    if (n < 32 || letters < 2 || digits < 2)
        return 0;
    if (p >= 7 && memcmp(t + p - 7, "base64,", 7) == 0)
        return 0;
    if (hex)
        return n >= 64 && !hash_label_before(t, p) ? q - p : 0;
    return entropy(t + p, n) >= PRIVACY_ENTROPY_MIN ? q - p : 0;
}

static span find_secret(const char *t, size_t len, size_t from)
{
    span s = {0, 0};
    for (size_t p = from; p < len; p++) {
        if (!is_tok(U(t[p])) || is_tok(before(t, p)))
            continue;
        size_t n = secret_prefixed(t, len, p);
        if (!n)
            n = jwt_len(t, len, p);
        if (!n)
            n = secret_entropy(t, len, p);
        if (n) {
            s.start = p;
            s.len = n;
            return s;
        }
        /* Skip the rest of this run: no token starts inside it. */
        while (p + 1 < len && is_tok(U(t[p + 1])))
            p++;
    }
    return s;
}

/* ------------------------------------------------------------ e-mail */

static bool email_local(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' ||
           c == '-';
}

/* The address around the '@' at `at_pos`, starting no earlier than from. */
static span email_at(const char *t, size_t len, size_t from, size_t at_pos)
{
    span none = {0, 0};
    size_t l = at_pos;
    while (l > from && at_pos - l < 65 && email_local(U(t[l - 1])))
        l--;
    if (at_pos - l > 64)
        return none; /* a local part longer than 64 */
    while (l < at_pos && t[l] == '.')
        l++;
    if (l == at_pos)
        return none;
    size_t r = at_pos + 1;
    while (r < len && r - at_pos <= 254 &&
           (is_alnum(U(t[r])) || t[r] == '.' || t[r] == '-'))
        r++;
    while (r > at_pos + 1 && (t[r - 1] == '.' || t[r - 1] == '-'))
        r--;
    /* labels */
    size_t labels = 0, ls = at_pos + 1, last = ls;
    for (size_t i = at_pos + 1; i <= r; i++) {
        if (i < r && t[i] != '.')
            continue;
        if (i == ls || t[ls] == '-' || t[i - 1] == '-' || i - ls > 63)
            return none;
        labels++;
        last = ls;
        ls = i + 1;
    }
    if (labels < 2 || r - last < 2)
        return none;
    for (size_t i = last; i < r; i++)
        if (!is_alpha(U(t[i])))
            return none;
    span s = {l, r - l};
    return s;
}

static span find_email(const char *t, size_t len, size_t from)
{
    span s = {0, 0};
    for (size_t p = from; p < len; p++) {
        const char *a = memchr(t + p, '@', len - p);
        if (!a)
            return s;
        p = (size_t)(a - t);
        s = email_at(t, len, from, p);
        if (s.len)
            return s;
    }
    return s;
}

/* ------------------------------------------------------------ IBAN */

typedef struct iban_country {
    char cc[3];
    unsigned char len;
} iban_country;

/* ISO 13616 registry lengths (SEPA and the other IBAN countries). */
static const iban_country iban_countries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20},
    {"BE", 16}, {"BG", 22}, {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21},
    {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"DO", 28},
    {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
    {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28},
    {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26},
    {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32},
    {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
    {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18},
    {"NO", 15}, {"PK", 24}, {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29},
    {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31}, {"SE", 24}, {"SI", 19},
    {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

static size_t iban_length(const char *cc)
{
    for (size_t k = 0; k < sizeof iban_countries / sizeof *iban_countries; k++)
        if (iban_countries[k].cc[0] == cc[0] && iban_countries[k].cc[1] == cc[1])
            return iban_countries[k].len;
    return 0;
}

/* ISO 7064 mod 97-10 over the IBAN moved: BBAN, country, check digits. */
static bool iban_mod97(const char *c, size_t n)
{
    unsigned r = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = U(c[(i + 4) % n]);
        if (is_digit(ch))
            r = (r * 10 + (ch - '0')) % 97;
        else
            r = (r * 100 + (ch - 'A' + 10)) % 97;
    }
    return r == 1;
}

static size_t iban_at(const char *t, size_t len, size_t p)
{
    if (len - p < 4 || is_alnum(before(t, p)) || !is_upper(U(t[p])) || !is_upper(U(t[p + 1])) ||
        !is_digit(U(t[p + 2])) || !is_digit(U(t[p + 3])))
        return 0;
    size_t want = iban_length(t + p);
    if (!want)
        return 0;
    char c[34];
    size_t n = 0, q = p;
    while (n < want && q < len) {
        unsigned char ch = U(t[q]);
        if (ch == ' ' && n % 4 == 0 && n > 0 && q + 1 < len &&
            t[q - 1] != ' ' && (is_upper(U(t[q + 1])) || is_digit(U(t[q + 1])))) {
            q++;
            continue;
        }
        if (!is_upper(ch) && !is_digit(ch))
            break;
        c[n++] = (char)ch;
        q++;
    }
    if (n != want || is_alnum(at(t, len, q)))
        return 0;
    return iban_mod97(c, n) ? q - p : 0;
}

/* ------------------------------------------------------------ cards */

static bool luhn(const unsigned char *d, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v = d[n - 1 - i];
        if (i & 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

static unsigned lead(const unsigned char *d, size_t k)
{
    unsigned v = 0;
    for (size_t i = 0; i < k; i++)
        v = v * 10 + d[i];
    return v;
}

/* Is an issuer known for these leading digits and this length? */
static bool card_iin_ok(const unsigned char *d, size_t n)
{
    unsigned p2 = lead(d, 2), p3 = lead(d, 3), p4 = lead(d, 4),
             p6 = lead(d, 6);
    if (d[0] == 4)
        return n == 13 || n == 16 || n == 19;
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
        return n == 16;
    if (p2 == 34 || p2 == 37)
        return n == 15;
    if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649) ||
        (p6 >= 622126 && p6 <= 622925) || (p4 >= 3528 && p4 <= 3589) ||
        p2 == 62)
        return n >= 16;
    if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39)
        return n >= 14;
    return false;
}

static size_t card_at(const char *t, size_t len, size_t p)
{
    if (!is_digit(U(t[p])) || is_alnum(before(t, p)))
        return 0;
    unsigned char d[19];
    size_t end[19]; /* the byte after each digit */
    size_t n = 0, q = p;
    while (q < len && n < 19) {
        if (!is_digit(U(t[q])))
            break;
        d[n] = (unsigned char)(t[q] - '0');
        end[n++] = ++q;
        if (q + 1 < len && (t[q] == ' ' || t[q] == '-') && is_digit(U(t[q + 1])))
            q++;
    }
    /* The longest valid cut that does not end in the middle of a number. */
    for (size_t k = n; k >= 13; k--) {
        unsigned char next = at(t, len, end[k - 1]);
        if (is_alnum(next) || next == '_')
            continue;
        if (card_iin_ok(d, k) && luhn(d, k))
            return end[k - 1] - p;
    }
    return 0;
}

/* ------------------------------------------------------------ phones */

#define PH_MAX_GROUPS 16

typedef struct ph_group {
    size_t start, end;   /* bytes of the group, brackets included */
    unsigned digits;
    unsigned value;      /* the digits' value when there are at most 4 */
    bool paren;
    char sep;            /* separator before the next group, 0 for none */
} ph_group;

static bool ph_date(const ph_group *g, size_t k)
{
    if (k < 3 || g[0].paren || g[1].paren || g[2].paren)
        return false;
    unsigned a = g[0].value, b = g[1].value, c = g[2].value;
    if (g[0].digits <= 2 && g[1].digits <= 2 && g[2].digits == 4)
        return a >= 1 && b >= 1 && ((a <= 31 && b <= 12) || (a <= 12 && b <= 31));
    if (g[0].digits == 4 && g[1].digits <= 2 && g[2].digits <= 2)
        return a >= 1900 && a <= 2099 && b >= 1 && b <= 12 && c >= 1 && c <= 31;
    return false;
}

static bool ph_ip(const ph_group *g, size_t k)
{
    if (k != 4)
        return false;
    for (size_t i = 0; i < 4; i++)
        if (g[i].paren || g[i].digits > 3 || g[i].value > 255 ||
            (i < 3 && g[i].sep != '.'))
            return false;
    return true;
}

/* Do the first k groups make a phone number by the rules in privacy.h? */
static bool ph_valid(const char *t, bool plus, const ph_group *g, size_t k)
{
    unsigned digits = 0;
    bool dot = false, short_group = false;
    for (size_t i = 0; i < k; i++) {
        digits += g[i].digits;
        if (i + 1 < k && g[i].sep == '.')
            dot = true;
        if (g[i].digits < 2)
            short_group = true;
    }
    if (digits < 7 || digits > 15)
        return false;
    unsigned char first = U(t[g[0].start + g[0].paren]);
    if (plus)
        return first != '0' && !g[0].paren;
    if (first == '0')
        return (k > 1 || g[0].paren) && !ph_date(g, k) && !ph_ip(g, k) &&
               !(dot && short_group);
    /* North American: [1] NXX NXX XXXX */
    size_t o = 0;
    if (k == 4 && g[0].digits == 1 && g[0].value == 1 && !g[0].paren)
        o = 1;
    if (k - o != 3 || g[o].digits != 3 || g[o + 1].digits != 3 ||
        g[o + 2].digits != 4 || g[o + 1].paren || g[o + 2].paren)
        return false;
    return U(t[g[o].start + g[o].paren]) >= '2';
}

static bool ph_sep(unsigned char c) { return c == ' ' || c == '-' || c == '.'; }

static size_t phone_at(const char *t, size_t len, size_t p)
{
    unsigned char c0 = U(t[p]), b = before(t, p);
    if (!(is_digit(c0) || c0 == '+' || c0 == '('))
        return 0;
    bool mid_number = c0 != '+' && p >= 2 && is_digit(U(t[p - 2])) &&
                      (b == '.' || b == '-' || b == '/' || b == ',' ||
                       b == ')' || b == ' ');
    if (is_alnum(b) || b == '_' || b == '+' || b == '(' || mid_number)
        return 0;
    bool plus = t[p] == '+';
    size_t q = p + plus;
    ph_group g[PH_MAX_GROUPS];
    size_t k = 0;
    unsigned total = 0;
    while (k < PH_MAX_GROUPS && q < len && total <= 15) {
        ph_group *cur = &g[k];
        memset(cur, 0, sizeof *cur);
        cur->start = q;
        cur->paren = t[q] == '(';
        size_t d = q + cur->paren;
        while (d < len && is_digit(U(t[d]))) {
            if (cur->digits < 5)
                cur->value = cur->value * 10 + (unsigned)(t[d] - '0');
            cur->digits++;
            d++;
        }
        if (!cur->digits || (cur->paren && at(t, len, d) != ')'))
            break;
        cur->end = d + cur->paren;
        total += cur->digits;
        k++;
        q = cur->end;
        /* What joins this group to the next, if one follows. */
        unsigned char c = at(t, len, q), c1 = at(t, len, q + 1);
        if (ph_sep(c) && (is_digit(c1) || c1 == '(')) {
            cur->sep = (char)c;
            q++;
        } else if (c == '(' || (cur->paren && is_digit(c)))
            cur->sep = 0;
        else
            break;
    }
    for (size_t n = k; n >= 1; n--) {
        size_t end = g[n - 1].end;
        if (n == k) {
            /* At the end of what was read: the number must end here. */
            unsigned char c = at(t, len, end), c1 = at(t, len, end + 1);
            if (is_alnum(c) || c == '_' ||
                ((c == '.' || c == '-' || c == '/' || c == ':' || c == ',') &&
                 is_digit(c1)))
                continue;
        } else if (g[n - 1].sep != ' ') {
            continue; /* cut only where a space separates */
        }
        if (ph_valid(t, plus, g, n))
            return end - p;
    }
    return 0;
}

static span find_iban(const char *t, size_t len, size_t from)
{
    return find_first(t, len, from, iban_at);
}

static span find_card(const char *t, size_t len, size_t from)
{
    return find_first(t, len, from, card_at);
}

static span find_phone(const char *t, size_t len, size_t from)
{
    return find_first(t, len, from, phone_at);
}

/* ------------------------------------------------------------ the set */

typedef span (*finder)(const char *t, size_t len, size_t from);

typedef struct builtin {
    privacy_kind kind;
    finder find;
} builtin;

/* In tie-breaking order (privacy.h). */
static const builtin builtins[] = {
    {PRIVACY_PRIVATE_KEY, find_private_key},
    {PRIVACY_SECRET, find_secret},
    {PRIVACY_EMAIL, find_email},
    {PRIVACY_IBAN, find_iban},
    {PRIVACY_CARD, find_card},
    {PRIVACY_PHONE, find_phone},
};
#define N_BUILTIN (sizeof builtins / sizeof *builtins)

struct privacy_set {
    pcre2_code **re;
    size_t n_re;
    pcre2_match_context *mctx;
};

privacy_status privacy_set_new(const char *const *user_patterns, size_t n,
                               privacy_set **out, char *err, size_t errlen)
{
    *out = NULL;
    privacy_set *set = calloc(1, sizeof *set);
    if (!set)
        goto oom;
    set->mctx = pcre2_match_context_create(NULL);
    if (!set->mctx)
        goto oom;
    pcre2_set_match_limit(set->mctx, PRIVACY_MATCH_LIMIT);
    if (n) {
        set->re = calloc(n, sizeof *set->re);
        if (!set->re)
            goto oom;
    }
    for (size_t i = 0; i < n; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)user_patterns[i],
                                       PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
                                       &ec, &eo, NULL);
        if (!re) {
            if (ec == PCRE2_ERROR_NOMEMORY)
                goto oom;
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            if (errlen)
                snprintf(err, errlen,
                         "privacy pattern %zu \"%s\": %s at offset %zu", i,
                         user_patterns[i], (char *)msg, (size_t)eo);
            privacy_set_free(set);
            return PRIVACY_EPATTERN;
        }
        /* JIT is an optimisation; the interpreter runs the same pattern. */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        set->re[set->n_re++] = re;
    }
    *out = set;
    return PRIVACY_OK;
oom:
    if (errlen)
        snprintf(err, errlen, "privacy guard: out of memory");
    privacy_set_free(set);
    return PRIVACY_ENOMEM;
}

void privacy_set_free(privacy_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n_re; i++)
        pcre2_code_free(set->re[i]);
    free(set->re);
    pcre2_match_context_free(set->mctx);
    free(set);
}

/* The first non-empty match of custom pattern re at or after from. */
static privacy_status find_custom(const privacy_set *set, size_t i,
                                  pcre2_match_data *md, const char *t,
                                  size_t len, size_t from, span *out)
{
    out->start = out->len = 0;
    for (size_t p = from; p <= len;) {
        int rc = pcre2_match(set->re[i], (PCRE2_SPTR)t, len, p, 0, md,
                             set->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return PRIVACY_OK;
        if (rc < 0)
            return rc == PCRE2_ERROR_NOMEMORY ? PRIVACY_ENOMEM : PRIVACY_EMATCH;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0] && ov[0] >= from) {
            out->start = ov[0];
            out->len = ov[1] - ov[0];
            return PRIVACY_OK;
        }
        /* An empty match: look again from the next character. */
        p = (ov[1] > p ? ov[1] : p) + 1;
        while (p < len && (U(t[p]) & 0xc0) == 0x80)
            p++;
    }
    return PRIVACY_OK;
}

privacy_status privacy_scan(const privacy_set *set, const char *text,
                            size_t len, privacy_hit *hits, size_t max_hits,
                            size_t *n_hits)
{
    *n_hits = 0;
    size_t nd = N_BUILTIN + set->n_re;
    span stack_cand[N_BUILTIN + 8];
    span *cand = nd <= N_BUILTIN + 8 ? stack_cand : malloc(nd * sizeof *cand);
    if (!cand)
        return PRIVACY_ENOMEM;
    pcre2_match_data *md = NULL;
    privacy_status st = PRIVACY_OK;
    if (set->n_re) {
        md = pcre2_match_data_create(1, NULL);
        if (!md) {
            st = PRIVACY_ENOMEM;
            goto out;
        }
    }
    size_t cursor = 0;
    for (size_t d = 0; d < nd; d++) {
        cand[d].start = SIZE_MAX; /* not yet searched */
        cand[d].len = 0;
    }
    for (;;) {
        size_t best = nd;
        for (size_t d = 0; d < nd; d++) {
            if (cand[d].start == SIZE_MAX ||
                (cand[d].len && cand[d].start < cursor)) {
                if (d < N_BUILTIN) {
                    cand[d] = builtins[d].find(text, len, cursor);
                } else {
                    st = find_custom(set, d - N_BUILTIN, md, text, len, cursor,
                                     &cand[d]);
                    if (st != PRIVACY_OK)
                        goto out;
                }
            }
            if (!cand[d].len)
                continue;
            if (best == nd || cand[d].start < cand[best].start ||
                (cand[d].start == cand[best].start &&
                 cand[d].len > cand[best].len))
                best = d;
        }
        if (best == nd)
            break;
        if (*n_hits < max_hits) {
            privacy_hit *h = &hits[*n_hits];
            h->kind = best < N_BUILTIN ? builtins[best].kind : PRIVACY_CUSTOM;
            h->pattern = best < N_BUILTIN ? 0 : best - N_BUILTIN;
            h->offset = cand[best].start;
            h->len = cand[best].len;
        }
        ++*n_hits;
        cursor = cand[best].start + cand[best].len;
    }
out:
    pcre2_match_data_free(md);
    if (cand != stack_cand)
        free(cand);
    return st;
}
