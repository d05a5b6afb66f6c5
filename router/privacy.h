/* privacy.h - the privacy guard's detectors and the redaction that goes
 * with them.
 *
 * A privacy_set is built once from the configuration (the built-in
 * detectors plus the user's PCRE2 patterns) and is then read-only: any
 * number of threads may scan with it at once. privacy_scan reports what it
 * found as byte ranges and detector kinds, never as text; nothing in this
 * module logs, and callers must not log a hit's bytes either (the reason a
 * request gives is the detector's name, privacy_kind_name).
 *
 * The detectors work on bytes. Their rules look at ASCII only: a byte
 * >= 0x80 (any part of a UTF-8 character) counts as a boundary, so hits
 * inside UTF-8 prose are found, but an address with a non-ASCII domain or a
 * number written with non-ASCII digits is not. The rules, in the order that
 * breaks ties (below):
 *
 *   private_key  "-----BEGIN <label>PRIVATE KEY-----" (also "... PRIVATE
 *                KEY BLOCK-----", PGP's), label of [A-Z0-9 ], through the
 *                end of the next "-----END ...-----" line, or to the end of
 *                the text when there is none (a key cut off is still a key).
 *   secret       at a token start (the byte before is not [A-Za-z0-9+/_-]):
 *                - a well-known prefix followed by its body, the body ending
 *                  at a token boundary: sk-ant- (>= 20 of [A-Za-z0-9_-]),
 *                  sk- (>= 20 of [A-Za-z0-9_-], letters and digits among
 *                  them), ghp_ gho_ ghs_ ghu_ ghr_ (>= 36 of [A-Za-z0-9]),
 *                  github_pat_ (>= 22 of [A-Za-z0-9_]), AKIA ASIA (exactly
 *                  16 of [A-Z0-9]), xoxb- xoxp- xoxa- xoxr- xoxs- (>= 10 of
 *                  [A-Za-z0-9-]), AIza (exactly 35 of [A-Za-z0-9_-]),
 *                  glpat- (>= 20 of [A-Za-z0-9_-]), hf_ (>= 30 of
 *                  [A-Za-z0-9]);
 *                - a JWT: three dot-separated base64url parts, the first
 *                  starting "eyJ" (>= 10 chars), the second >= 4, the third
 *                  >= 1;
 *                - a high-entropy token: a maximal run of [A-Za-z0-9+/_-]
 *                  (plus up to two '=' of padding) of >= 32 characters with
 *                  at least two letters and two digits in it and a Shannon
 *                  entropy of at least PRIVACY_ENTROPY_MIN bits per
 *                  character (32 random base62 characters have 4.54 on
 *                  average and fall below 4.2 one time in a hundred; a long
 *                  CamelCase name with one digit reaches 4.27, hence the
 *                  two digits). Hex runs
 *                  ([0-9A-Fa-f-] only) are hashes and ids, not secrets:
 *                  shorter than 64 never (git SHAs, MD5s, UUIDs), 64 or
 *                  longer only when none of "sha", "hash", "digest",
 *                  "checksum", "commit" appears in the 24 bytes before it
 *                  (a labelled SHA-256 is a checksum; a bare 64-hex value
 *                  may be a key). A run right after "base64," (a data: URL)
 *                  is content, not a secret.
 *   email        local@domain: local part 1-64 of [A-Za-z0-9._%+-] not
 *                starting with '.', domain of >= 2 dot-separated labels of
 *                [A-Za-z0-9-] (not starting or ending with '-'), the last
 *                one (the TLD) >= 2 letters. So "a@b" and "@handle" are not
 *                addresses; a trailing '.' or '-' is not part of the hit.
 *   iban         two capital letters naming a country of the length table
 *                (privacy.c: SEPA, GB, CH, NO and the other IBAN countries),
 *                two check digits, then the BBAN of [A-Z0-9], optionally
 *                printed with single spaces after multiples of four
 *                characters (groups of four, or of eight...); the
 *                length must be the country's and the whole must be 1 mod 97
 *                (ISO 13616). A wrong checksum is not an IBAN.
 *   card         13-19 digits, single spaces or dashes allowed between
 *                them, Luhn-valid and with a known issuer prefix and length:
 *                Visa 4 (13/16/19), Mastercard 51-55 and 2221-2720 (16),
 *                Amex 34/37 (15), Discover 6011, 644-649, 65, 622126-622925
 *                (16-19), JCB 3528-3589 (16-19), Diners 300-305, 36, 38, 39
 *                (14-19), UnionPay 62 (16-19). Maestro's other ranges are
 *                not recognised. A number that continues past 19 digits
 *                without a separator is not a card.
 *   phone        groups of digits, "(ddd)" groups and single separators
 *                (space, '-', '.') between them, 7-15 digits in all (E.164),
 *                in one of three shapes:
 *                - international: '+' and a first digit other than 0
 *                  ("+14155552671", "+44 20 7946 0958", "+49 (0)30 123456");
 *                - national with a trunk 0 ("030 1234567", "07700 900123",
 *                  "01 23 45 67 89"): at least one separator or bracket (a
 *                  plain run of digits is an id), not shaped like a date
 *                  (01-12-2024) or an IPv4 address, and with '.' separators
 *                  every group >= 2 digits (not a version);
 *                - North American: [1] NXX XXX XXXX (area code N = 2-9,
 *                  the exchange not checked, so "555-123-4567" counts) with
 *                  separators or brackets ("(555) 123-4567",
 *                  "1-800-555-0199").
 *                A number without '+' does not start right after a digit
 *                and a separator (it would be the tail of a longer number, such
 *                as the digits of an IBAN with a wrong checksum).
 *                Not phones, by these rules: plain long numbers (order
 *                numbers, ids), dates (2024-11-30), times (12:30:45, ':' is
 *                no separator), versions (1.2.3, too few digits or groups
 *                too short), IPs (192.168.1.10). Numbers of other national
 *                formats written without + and without a trunk 0 are missed
 *                (an Indian mobile written "98765 43210"); a group after a
 *                space is taken in while the digits stay within 15.
 *   custom       each user pattern, compiled with PCRE2_UTF and
 *                PCRE2_MATCH_INVALID_UTF (text that is not valid UTF-8 is
 *                still searched; no match spans an invalid byte), a match
 *                limit of PRIVACY_MATCH_LIMIT; empty matches are ignored.
 *
 * Hits never overlap and come in text order: of the candidates that start
 * at or after the end of the previous hit, the one that starts first wins;
 * on the same start the longer one; then the order above (custom patterns
 * last, in the configuration's order).
 */
#ifndef HEARTH_ROUTER_PRIVACY_H
#define HEARTH_ROUTER_PRIVACY_H

#include <stddef.h>

#define PRIVACY_ENTROPY_MIN 4.2     /* bits per character, high-entropy rule */
#define PRIVACY_MATCH_LIMIT 1000000 /* PCRE2 match limit per custom search */

typedef enum privacy_kind {
    PRIVACY_EMAIL,
    PRIVACY_PHONE,
    PRIVACY_CARD,
    PRIVACY_IBAN,
    PRIVACY_SECRET,
    PRIVACY_PRIVATE_KEY,
    PRIVACY_CUSTOM,
    PRIVACY_KIND_COUNT
} privacy_kind;

typedef enum privacy_status {
    PRIVACY_OK = 0,
    PRIVACY_ENOMEM,   /* out of memory */
    PRIVACY_EPATTERN, /* a user pattern does not compile */
    PRIVACY_EMATCH,   /* a user pattern failed while matching (match limit,
                         ...): the text was not fully scanned - treat it as
                         if something had been found */
    PRIVACY_EINVAL    /* hits that are not sorted, overlap or leave the text */
} privacy_status;

typedef struct privacy_hit {
    privacy_kind kind;
    size_t pattern; /* PRIVACY_CUSTOM: index of the user pattern; else 0 */
    size_t offset;  /* bytes from the start of the text */
    size_t len;     /* bytes, >= 1 */
} privacy_hit;

typedef struct privacy_set privacy_set;

/* "email", "phone", "card", "iban", "secret", "private_key", "custom"
 * ("?" for a value out of range). */
const char *privacy_kind_name(privacy_kind kind);
const char *privacy_strerror(privacy_status st);

/* Compile the built-in detectors and n user patterns (n may be 0). On
 * PRIVACY_EPATTERN err names the pattern (its index and text), PCRE2's
 * message and the offset; *out is then NULL. */
privacy_status privacy_set_new(const char *const *user_patterns, size_t n,
                               privacy_set **out, char *err, size_t errlen);
void privacy_set_free(privacy_set *set);

/* Scan len bytes of text (not NUL-terminated; any bytes). The first
 * max_hits hits go to hits (which may be NULL when max_hits is 0); *n_hits
 * is set to the number found in all, which may exceed max_hits. On an error
 * *n_hits counts the hits found before it. */
privacy_status privacy_scan(const privacy_set *set, const char *text,
                            size_t len, privacy_hit *hits, size_t max_hits,
                            size_t *n_hits);

/* ---- redaction ----
 *
 * A map remembers, for one request, which placeholder stands for which
 * original: "[EMAIL_1]", "[CARD_2]", "[PRIVATE_KEY_1]", "[CUSTOM_1]"... The
 * same text of the same kind gets the same placeholder wherever it appears
 * in the request (redact every message with one map); numbers count per
 * kind from 1. The map holds copies of the originals and wipes them when
 * freed.
 *
 * Restoring replaces every placeholder of the map found in a text (the
 * model's answer) with its original; other bracketed text is left alone.
 * A placeholder that the client itself wrote is restored too (its original
 * was the client's own text anyway). Lookup is linear in the map's size,
 * which is the number of distinct values in one request. */
typedef struct privacy_map privacy_map;

privacy_map *privacy_map_new(void); /* NULL when out of memory */
void privacy_map_free(privacy_map *map);
size_t privacy_map_count(const privacy_map *map);

/* Copy text with each of the n hits (sorted, non-overlapping, within the
 * text: what privacy_scan returns) replaced by its placeholder, adding new
 * values to map. *out is malloc'd and NUL-terminated, *out_len its length. */
privacy_status privacy_redact(privacy_map *map, const char *text, size_t len,
                              const privacy_hit *hits, size_t n, char **out,
                              size_t *out_len);

/* Copy text with the map's placeholders replaced by their originals. *out
 * is malloc'd and NUL-terminated. */
privacy_status privacy_restore(const privacy_map *map, const char *text,
                               size_t len, char **out, size_t *out_len);

/* The same over a stream of pieces (an answer streamed token by token): the
 * end of the text is held back while it could still be the start of a
 * placeholder, so a placeholder split across pieces is restored whole. The
 * concatenated output equals privacy_restore of the concatenated input,
 * however the input is cut. The map must outlive the restorer and not
 * change while it is used. */
typedef struct privacy_restorer privacy_restorer;

privacy_status privacy_restorer_new(const privacy_map *map,
                                    privacy_restorer **out);
void privacy_restorer_free(privacy_restorer *r);

/* Feed the next piece (len may be 0); *out and *out_len: the text to send now,
 * valid until the next call on r. */
privacy_status privacy_restorer_feed(privacy_restorer *r, const char *piece,
                                     size_t len, const char **out,
                                     size_t *out_len);

/* The stream ended: what was held back, as it was. */
void privacy_restorer_flush(privacy_restorer *r, const char **out,
                            size_t *out_len);

#endif
