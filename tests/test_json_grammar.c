/* test_json_grammar.c - the JSON Schema byte matcher (engine/json_grammar.h):
 * valid documents accepted byte by byte, invalid ones refused at the first
 * wrong byte, jgram_allowed_bytes checked against jgram_feed on all 256
 * bytes at every position, random walks over the allowed bytes checked by
 * jansson and a small validator written here from the spec, and the
 * compile errors naming each unsupported keyword. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_grammar.h"
#include "testrand.h"

static jgram *make(const char *schema)
{
    char err[256];
    jgram *g = NULL;
    jgram_status st = jgram_compile(schema, strlen(schema), &g, err, sizeof err);
    ck_assert_msg(st == JGRAM_OK && g, "%s: %s", schema, err);
    return g;
}

/* Feed doc; the index of the first refused byte, or -1 if all are taken. */
static long feed_all(const jgram *g, jgram_state *st, const char *doc)
{
    jgram_init(g, st);
    for (size_t i = 0; doc[i]; i++) {
        jgram_state before;
        jgram_state_copy(&before, st);
        if (!jgram_feed(g, st, (uint8_t)doc[i])) {
            /* refused: the state did not move */
            ck_assert_uint_eq(before.n, st->n);
            return (long)i;
        }
    }
    return -1;
}

static void accepts(const jgram *g, const char *doc)
{
    jgram_state st;
    long at = feed_all(g, &st, doc);
    ck_assert_msg(at < 0, "'%s' refused at byte %ld", doc, at);
    ck_assert_msg(jgram_accepting(g, &st), "'%s' not complete", doc);
}

/* Refused at byte index `at`; at == strlen(doc) means every byte was taken
 * but the document is incomplete. */
static void refuses(const jgram *g, const char *doc, long at)
{
    jgram_state st;
    long got = feed_all(g, &st, doc);
    if (at == (long)strlen(doc)) {
        ck_assert_msg(got < 0, "'%s' refused at %ld, expected incomplete", doc, got);
        ck_assert_msg(!jgram_accepting(g, &st), "'%s' accepted", doc);
    } else {
        ck_assert_msg(got == at, "'%s' refused at %ld, expected %ld", doc, got, at);
    }
}

/* jgram_allowed_bytes agrees with jgram_feed at every position of doc. */
static void cross_check(const jgram *g, const char *doc)
{
    jgram_state st;
    jgram_init(g, &st);
    for (size_t i = 0;; i++) {
        bool allowed[256];
        jgram_allowed_bytes(g, &st, allowed);
        for (int b = 0; b < 256; b++) {
            jgram_state t;
            jgram_state_copy(&t, &st);
            ck_assert_msg(jgram_feed(g, &t, (uint8_t)b) == allowed[b],
                          "'%s' position %zu byte %d: allowed says %d", doc, i, b, allowed[b]);
        }
        if (!doc[i])
            break;
        ck_assert(allowed[(uint8_t)doc[i]]);
        ck_assert(jgram_feed(g, &st, (uint8_t)doc[i]));
    }
}

/* ------------------------------------------------------------ a validator
 * from the JSON Schema spec, for the keywords jgram supports. */

static bool validate(json_t *root, json_t *s, json_t *v);

static bool is_type(json_t *v, const char *t)
{
    if (!strcmp(t, "object"))
        return json_is_object(v);
    if (!strcmp(t, "array"))
        return json_is_array(v);
    if (!strcmp(t, "string"))
        return json_is_string(v);
    if (!strcmp(t, "integer"))
        return json_is_integer(v);
    if (!strcmp(t, "number"))
        return json_is_number(v);
    if (!strcmp(t, "boolean"))
        return json_is_boolean(v);
    return !strcmp(t, "null") && json_is_null(v);
}

static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool validate(json_t *root, json_t *s, json_t *v)
{
    if (json_is_true(s))
        return true;
    json_t *k;
    if ((k = json_object_get(s, "$ref"))) {
        const char *r = json_string_value(k);
        if (!strcmp(r, "#"))
            return validate(root, root, v);
        const char *slash = strrchr(r, '/');
        json_t *defs = json_object_get(root, strncmp(r, "#/$defs/", 8) ? "definitions" : "$defs");
        return validate(root, json_object_get(defs, slash + 1), v);
    }
    if ((k = json_object_get(s, "anyOf")) || (k = json_object_get(s, "oneOf"))) {
        size_t i;
        json_t *a;
        json_array_foreach(k, i, a) if (validate(root, a, v)) return true;
        return false;
    }
    if ((k = json_object_get(s, "const")))
        return json_equal(k, v);
    if ((k = json_object_get(s, "enum"))) {
        size_t i;
        json_t *a;
        json_array_foreach(k, i, a) if (json_equal(a, v)) return true;
        return false;
    }
    if ((k = json_object_get(s, "type"))) {
        bool ok = false;
        if (json_is_string(k))
            ok = is_type(v, json_string_value(k));
        for (size_t i = 0; json_is_array(k) && i < json_array_size(k); i++)
            ok = ok || is_type(v, json_string_value(json_array_get(k, i)));
        if (!ok)
            return false;
    }
    if (json_is_string(v)) {
        size_t n = utf8_len(json_string_value(v));
        if ((k = json_object_get(s, "minLength")) && n < (size_t)json_integer_value(k))
            return false;
        if ((k = json_object_get(s, "maxLength")) && n > (size_t)json_integer_value(k))
            return false;
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);
        if ((k = json_object_get(s, "minimum")) && x < json_number_value(k))
            return false;
        if ((k = json_object_get(s, "maximum")) && x > json_number_value(k))
            return false;
        if ((k = json_object_get(s, "exclusiveMinimum")) && x <= json_number_value(k))
            return false;
        if ((k = json_object_get(s, "exclusiveMaximum")) && x >= json_number_value(k))
            return false;
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v), i;
        json_t *a;
        if ((k = json_object_get(s, "minItems")) && n < (size_t)json_integer_value(k))
            return false;
        if ((k = json_object_get(s, "maxItems")) && n > (size_t)json_integer_value(k))
            return false;
        if ((k = json_object_get(s, "items")))
            json_array_foreach(v, i, a) if (!validate(root, k, a)) return false;
    }
    if (json_is_object(v)) {
        json_t *props = json_object_get(s, "properties"), *addl =
            json_object_get(s, "additionalProperties"), *a;
        const char *key;
        size_t i;
        json_array_foreach(json_object_get(s, "required"), i, a) if (
            !json_object_get(v, json_string_value(a))) return false;
        json_object_foreach(v, key, a)
        {
            json_t *ps = json_object_get(props, key);
            if (ps ? !validate(root, ps, a) : addl && !validate(root, addl, a))
                return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------ random walks */

/* Walk random allowed bytes, preferring closing ones half of the time, and
 * check what comes out: no dead ends, and every complete output parses and
 * validates. Returns the number of walks that completed. */
static int random_walks(const char *schema, int walks)
{
    jgram *g = make(schema);
    json_error_t jerr;
    json_t *js = json_loads(schema, 0, &jerr);
    ck_assert(js);
    int done = 0;
    for (int w = 0; w < walks; w++) {
        char out[4096];
        size_t n = 0;
        jgram_state st;
        jgram_init(g, &st);
        while (n + 1 < sizeof out) {
            bool allowed[256];
            if (jgram_accepting(g, &st) && rng_u32() % 4 == 0)
                break;
            jgram_allowed_bytes(g, &st, allowed);
            int cand[256], nc = 0, pref[256], np = 0;
            for (int b = 0; b < 256; b++) {
                if (!allowed[b])
                    continue;
                cand[nc++] = b;
                if (strchr("\"]},0123456789tfn[{:", b) && b)
                    pref[np++] = b;
            }
            if (nc == 0) {
                ck_assert_msg(jgram_accepting(g, &st), "dead end after '%.*s'", (int)n, out);
                break;
            }
            int b = (np && rng_u32() % 2) ? pref[rng_u32() % (uint32_t)np]
                                          : cand[rng_u32() % (uint32_t)nc];
            ck_assert(jgram_feed(g, &st, (uint8_t)b));
            out[n++] = (char)b;
        }
        out[n] = 0;
        if (!jgram_accepting(g, &st))
            continue; /* the step bound */
        json_t *v = json_loadb(out, n, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &jerr);
        if (!v && (strstr(jerr.text, "overflow") || strstr(jerr.text, "too big")))
            continue; /* valid JSON, beyond jansson's int64/double */
        ck_assert_msg(v, "walk output does not parse: '%s' (%s)", out, jerr.text);
        ck_assert_msg(validate(js, js, v), "walk output does not validate: '%s'", out);
        json_decref(v);
        done++;
    }
    json_decref(js);
    jgram_free(g);
    return done;
}

/* ------------------------------------------------------------ tests */

static const char *const person =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":8},"
    "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":"
    "[\"a\",\"ab\",1,12,null]},\"minItems\":1,\"maxItems\":2}},"
    "\"required\":[\"name\",\"age\"],\"additionalProperties\":false}";

START_TEST(object_properties)
{
    jgram *g = make(person);
    const char *ok[] = {
        "{\"name\":\"Bo\",\"age\":3}",
        "{\"age\":-30,\"name\":\"\"}",
        "{ \"name\": \"\\u00e9\\n\",\n\"age\":0, \"tags\":[\"ab\",12]}",
        "{\"name\":\"x\",\"tags\":[null],\"age\":1}",
        "{\"name\":\"\xc3\xa9t\xc3\xa9\",\"age\":1,\"tags\":[1]}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        accepts(g, ok[i]);
        cross_check(g, ok[i]);
    }
    refuses(g, "{\"name\":\"Bo\"}", 12);             /* missing required age */
    refuses(g, "{\"name\":\"Bo\",\"agx\":1}", 16);    /* undeclared property */
    refuses(g, "{\"name\":\"Bo\",\"name\":\"c\"}", 14); /* duplicate */
    refuses(g, "{\"name\":3}", 8);                     /* wrong type */
    refuses(g, "{\"name\":\"a\",\"age\":1.5}", 19);    /* integer with a fraction */
    refuses(g, "{\"name\":\"a\",\"age\":1e3}", 19);
    refuses(g, "{\"name\":\"a\",\"age\":01}", 19);     /* leading zero */
    refuses(g, "{\"name\":\"a\",\"age\":1,\"tags\":[]}", 28);  /* too few items */
    refuses(g, "{\"name\":\"a\",\"age\":1,\"tags\":[1,1,1]}", 31); /* too many */
    refuses(g, "{\"name\":\"a\",\"age\":1,\"tags\":[\"b\"]}", 29); /* enum miss */
    refuses(g, "{\"name\":\"a\",\"age\":1,\"tags\":[123]}", 30);
    refuses(g, "{\"name\":\"123456789\"}", 17);        /* maxLength 8 */
    refuses(g, "{\"name\":\"\\x\"}", 10);              /* bad escape */
    refuses(g, "{\"name\":\"\\u12g4\"}", 13);
    refuses(g, "{\"name\":\"\xc3\x28\"}", 10);         /* invalid UTF-8 */
    refuses(g, "{\"name\":\"\xe0\x80\x80\"}", 10);     /* overlong */
    refuses(g, "{\"name\":\"\xed\xa0\x80\"}", 10);     /* UTF-16 surrogate in UTF-8 */
    refuses(g, "{\"name\":\"\xff\"}", 9);
    refuses(g, "{\"name\":\"a\nb\"}", 10);             /* control character */
    refuses(g, "{\"name\":\"\\udc00\"}", 12);          /* lone low surrogate */
    refuses(g, "{\"name\":\"\\ud800x\"}", 15);         /* high without low */
    refuses(g, "{\"name\":\"ab", 11);                  /* unterminated */
    refuses(g, " {}", 0);                              /* no leading whitespace */
    refuses(g, "{   \"name\"", 3);                     /* whitespace run over 2 */
    refuses(g, "{\"name\":\"a\",\"age\":1} ", 20);     /* nothing after the value */
    jgram_free(g);
}
END_TEST

START_TEST(extra_properties)
{
    /* additionalProperties absent: extras with any value, declared ones typed */
    jgram *g = make("{\"properties\":{\"id\":{\"type\":\"integer\"}},\"required\":[\"id\"]}");
    accepts(g, "{\"id\":1,\"idx\":[true,{\"a\":null}],\"i\":\"s\"}");
    cross_check(g, "{\"i\":-0.5e+3,\"id\":1}");
    refuses(g, "{\"id\":\"1\"}", 6);
    refuses(g, "{\"id\":1,\"id\":2}", 11);
    refuses(g, "{\"x\\u0069d\":1}", 3); /* escapes cannot spell a declared name */
    accepts(g, "7.25"); /* no type: any value, the object keywords only for objects */
    jgram_free(g);
    g = make("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}}");
    accepts(g, "{\"a\\n\":true,\"b\":false}");
    refuses(g, "{\"a\":1}", 5);
    jgram_free(g);
}
END_TEST

START_TEST(any_and_anyof)
{
    jgram *g = jgram_any_object();
    ck_assert_ptr_nonnull(g);
    accepts(g, "{}");
    accepts(g, "{\"a\":[1,2.5,\"x\",{\"b\":null}],\"c\":false}");
    refuses(g, "[1]", 0);
    refuses(g, "{\"a\":tru}", 8);
    jgram_free(g);
    g = make("{}");
    const char *any[] = {"0", "-1.5E-7", "\"s\"", "true", "null", "[]", "[[],{}]"};
    for (size_t i = 0; i < sizeof any / sizeof *any; i++) {
        accepts(g, any[i]);
        cross_check(g, any[i]);
    }
    refuses(g, "1.", 2);
    refuses(g, "-", 1);
    jgram_free(g);
    g = make("{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
             "\"required\":[\"a\"],\"additionalProperties\":false},{\"type\":\"object\","
             "\"properties\":{\"b\":{\"type\":\"null\"}},\"additionalProperties\":false},"
             "{\"type\":[\"integer\",\"boolean\"]}]}");
    accepts(g, "{\"a\":\"x\"}");
    accepts(g, "{\"b\":null}");
    accepts(g, "{}");
    accepts(g, "false");
    accepts(g, "12");
    cross_check(g, "{\"b\":null}");
    refuses(g, "{\"a\":null}", 5);
    refuses(g, "{\"c\"", 2);
    refuses(g, "1.0", 1);
    jgram_free(g);
}
END_TEST

START_TEST(refs_const_lengths)
{
    /* a recursive tree through $defs */
    jgram *g = make("{\"$ref\":\"#/$defs/node\",\"$defs\":{\"node\":{\"type\":\"object\","
                    "\"properties\":{\"v\":{\"const\":{\"k\":[1,\"x\"]}},\"kids\":{\"type\":"
                    "\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"],"
                    "\"additionalProperties\":false}}}");
    const char *doc = "{\"v\":{\"k\":[1,\"x\"]},\"kids\":[{\"v\":{\"k\":[1,\"x\"]}}]}";
    accepts(g, doc);
    cross_check(g, doc);
    refuses(g, "{\"v\":{\"k\":[1, \"x\"]}}", 13); /* const values in compact form */
    refuses(g, "{\"kids\":[{\"v\":{\"k\":[2", 20);
    jgram_free(g);
    g = make("{\"definitions\":{\"s\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}},"
             "\"type\":\"array\",\"items\":{\"$ref\":\"#/definitions/s\"},\"title\":\"t\"}");
    accepts(g, "[\"ab\",\"\xf0\x9f\x98\x80\\ud83d\\ude00\\\"\"]");
    refuses(g, "[\"a\"]", 3);
    refuses(g, "[\"abcd\"]", 5);
    jgram_free(g);
}
END_TEST

/* minimum/maximum on integers: every integer from -1000 to 1000 is
 * accepted exactly when it is in range, and no prefix of an accepted one is
 * refused (the digit-by-digit check looks ahead). */
START_TEST(integer_bounds)
{
    static const struct {
        const char *schema;
        long lo, hi;
    } B[] = {
        {"{\"type\":\"integer\",\"minimum\":-25,\"maximum\":130}", -25, 130},
        {"{\"type\":\"integer\",\"minimum\":1}", 1, 1000000},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":-1,\"exclusiveMaximum\":10}", 0, 9},
        {"{\"type\":\"number\",\"minimum\":-7.5,\"maximum\":-3}", -7, -3},
        {"{\"type\":\"integer\",\"minimum\":500,\"maximum\":520}", 500, 520},
        {"{\"type\":\"integer\",\"maximum\":-40}", -1000000, -40},
    };
    for (size_t b = 0; b < sizeof B / sizeof *B; b++) {
        jgram *g = make(B[b].schema);
        for (long x = -1000; x <= 1000; x++) {
            char num[32];
            snprintf(num, sizeof num, "%ld", x);
            jgram_state st;
            jgram_init(g, &st);
            size_t k = 0;
            while (num[k] && jgram_feed(g, &st, (uint8_t)num[k]))
                k++;
            bool in = x >= B[b].lo && x <= B[b].hi;
            bool took = !num[k] && jgram_accepting(g, &st);
            ck_assert_msg(took == in, "%s: %ld %s", B[b].schema, x,
                          in ? "refused" : "accepted");
        }
        jgram_free(g);
    }
}
END_TEST

START_TEST(random_walk_validates)
{
    static const char *const schemas[] = {
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":4},"
        "\"n\":{\"type\":\"number\"},\"ok\":{\"type\":\"boolean\"},\"e\":{\"enum\":[\"a\",2,"
        "null,[1]]}},\"required\":[\"name\",\"n\"],\"additionalProperties\":false}",
        "{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"object\","
        "\"properties\":{\"x\":{\"const\":\"y\"}},\"required\":[\"x\"]}]},\"minItems\":1,"
        "\"maxItems\":3}",
        "{\"$ref\":\"#/$defs/t\",\"$defs\":{\"t\":{\"type\":[\"array\",\"null\"],\"items\":"
        "{\"$ref\":\"#/$defs/t\"},\"maxItems\":2}}}",
        "{}",
        /* bounds: zod's int(), a small range, exclusive bounds on a number */
        "{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":-9007199254740991,"
        "\"maximum\":9007199254740991},\"maxItems\":3}",
        "{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"integer\",\"minimum\":-25,"
        "\"maximum\":130},{\"type\":\"number\",\"exclusiveMinimum\":0.5,\"exclusiveMaximum\":3}]},"
        "\"maxItems\":4}",
    };
    rng_state = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof schemas / sizeof *schemas; i++) {
        int done = random_walks(schemas[i], 300);
        ck_assert_msg(done >= 150, "schema %zu: only %d of 300 walks completed", i, done);
    }
}
END_TEST

static void compile_error(const char *schema, jgram_status want, const char *msg)
{
    char err[256];
    jgram *g = (jgram *)1;
    jgram_status st = jgram_compile(schema, strlen(schema), &g, err, sizeof err);
    ck_assert_msg(st == want, "%s: status %d (%s)", schema, st, err);
    ck_assert_ptr_null(g);
    ck_assert_str_eq(err, msg);
}

START_TEST(unsupported_keywords)
{
    compile_error("{\"properties\":{\"id\":{\"type\":\"string\",\"pattern\":\"^a\"}}}",
                  JGRAM_EUNSUPPORTED, "unsupported schema keyword 'pattern' at /properties/id");
    compile_error("{\"type\":\"number\",\"minimum\":3,\"exclusiveMaximum\":3}", JGRAM_EINVALID,
                  "minimum > maximum is unsatisfiable at the schema root");
    compile_error("{\"type\":\"number\",\"minimum\":0.5,\"maximum\":0.9}", JGRAM_EUNSUPPORTED,
                  "unsupported bounds: no integer lies between minimum and maximum "
                  "(bounded numbers are matched as integers) at the schema root");
    compile_error("{\"type\":\"integer\",\"minimum\":0.5,\"maximum\":0.9}", JGRAM_EINVALID,
                  "no integer lies between minimum and maximum at the schema root");
    compile_error("{\"type\":\"integer\",\"minimum\":\"0\"}", JGRAM_EINVALID,
                  "'minimum' is not a number at the schema root");
    compile_error("{\"items\":{\"multipleOf\":2}}", JGRAM_EUNSUPPORTED,
                  "unsupported schema keyword 'multipleOf' at /items");
    compile_error("{\"anyOf\":[{},{\"not\":{}}]}", JGRAM_EUNSUPPORTED,
                  "unsupported schema keyword 'not' at /anyOf/1");
    compile_error("{\"$defs\":{\"a/b\":{\"uniqueItems\":true}},\"$ref\":\"#/$defs/a~1b\"}",
                  JGRAM_EUNSUPPORTED, "unsupported schema keyword 'uniqueItems' at /$defs/a~1b");
    compile_error("{\"patternProperties\":{}}", JGRAM_EUNSUPPORTED,
                  "unsupported schema keyword 'patternProperties' at the schema root");
    compile_error("{\"if\":{}}", JGRAM_EUNSUPPORTED,
                  "unsupported schema keyword 'if' at the schema root");
    compile_error("{\"allOf\":[{},{}]}", JGRAM_EUNSUPPORTED,
                  "unsupported 'allOf' with more than one schema at the schema root");
    compile_error("{\"type\":\"object\",\"required\":[\"a\"],\"additionalProperties\":false}",
                  JGRAM_EINVALID,
                  "required property 'a' is not allowed by additionalProperties at the schema root");
    compile_error("{\"minItems\":3,\"maxItems\":2}", JGRAM_EINVALID,
                  "minItems > maxItems is unsatisfiable at the schema root");
    compile_error("{\"$ref\":\"#/$defs/x\",\"$defs\":{\"x\":{\"$ref\":\"#/$defs/x\"}}}",
                  JGRAM_EINVALID, "'$ref' cycle that matches nothing at the schema root");
    compile_error("{\"type\":\"object\",\"anyOf\":[{}]}", JGRAM_EUNSUPPORTED,
                  "unsupported: 'anyOf' combined with other keywords at the schema root");
    compile_error("{\"items\":[{}]}", JGRAM_EUNSUPPORTED,
                  "unsupported 'items' as an array (tuple) at the schema root");
    compile_error("{\"properties\":{\"a\":{\"$ref\":\"other.json#/x\"}}}", JGRAM_EUNSUPPORTED,
                  "unsupported '$ref' \"other.json#/x\" (only local #/$defs/...) at /properties/a");
    compile_error("{\"$ref\":\"#/$defs/nope\"}", JGRAM_EINVALID,
                  "'$ref' \"#/$defs/nope\" does not resolve at the schema root");
    compile_error("{\"type\":\"text\"}", JGRAM_EINVALID, "unknown 'type' at the schema root");
    compile_error("{\"type\":", JGRAM_EJSON, "schema is not valid JSON (near byte 8)");
    /* annotations and formats are accepted */
    jgram *g = make("{\"title\":\"t\",\"description\":\"d\",\"type\":\"string\","
                    "\"format\":\"date-time\",\"default\":\"x\",\"examples\":[\"y\"]}");
    accepts(g, "\"anything\"");
    jgram_free(g);
}
END_TEST

START_TEST(limits)
{
    char *deep = malloc(1000);
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', 999);
    deep[999] = 0;
    char err[256];
    jgram *g = NULL;
    ck_assert_int_eq(jgram_compile(deep, 999, &g, err, sizeof err), JGRAM_ELIMIT);
    free(deep);
    /* the output's nesting stops at JGRAM_MAX_DEPTH */
    g = make("{}");
    jgram_state st;
    jgram_init(g, &st);
    int i = 0;
    while (jgram_feed(g, &st, '['))
        i++;
    ck_assert_int_eq(i, JGRAM_MAX_DEPTH);
    jgram_free(g);
}
END_TEST

START_TEST(type_arrays_and_oneof)
{
    jgram *g = make("{\"type\":\"object\",\"properties\":{\"v\":{\"type\":[\"string\","
                    "\"null\"],\"minLength\":2},\"w\":{\"oneOf\":[{\"type\":\"number\"},"
                    "{\"enum\":[\"x\",\"y\"]}]}},\"additionalProperties\":false}");
    const char *ok[] = {"{\"v\":null}", "{\"v\":\"\xc3\xa9\xc3\xa9\"}", "{\"w\":-2.5e1}",
                        "{\"w\":\"y\",\"v\":\"ab\"}", "{}"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        accepts(g, ok[i]);
        cross_check(g, ok[i]);
    }
    refuses(g, "{\"v\":\"\xc3\xa9\"}", 8); /* one code point, minLength 2 */
    refuses(g, "{\"v\":true}", 5);
    refuses(g, "{\"w\":\"z\"}", 6);
    refuses(g, "{\"v\":null,\"w\":1,", 15); /* nothing left to declare */
    /* a trial on a copy leaves the original where it was */
    jgram_state st, trial;
    ck_assert_int_eq(feed_all(g, &st, "{\"w\":1"), -1);
    jgram_state_copy(&trial, &st);
    ck_assert(jgram_feed(g, &trial, '}'));
    ck_assert(jgram_accepting(g, &trial));
    ck_assert(!jgram_accepting(g, &st));
    ck_assert(jgram_feed(g, &st, '2'));
    jgram_free(g);
}
END_TEST

static Suite *jgram_suite(void)
{
    Suite *s = suite_create("json_grammar");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, object_properties);
    tcase_add_test(tc, extra_properties);
    tcase_add_test(tc, any_and_anyof);
    tcase_add_test(tc, refs_const_lengths);
    tcase_add_test(tc, type_arrays_and_oneof);
    tcase_add_test(tc, random_walk_validates);
    tcase_add_test(tc, integer_bounds);
    tcase_add_test(tc, unsupported_keywords);
    tcase_add_test(tc, limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(jgram_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
