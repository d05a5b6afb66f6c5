/* test_toolcall.c - tool calls in generated text (api/toolcall.h): each
 * family's syntax parsed into calls and text, the same whether the text
 * arrives whole or a byte at a time; what only looks like a call given back
 * as text; forced calls (api_tool_forced) whose schema the grammar
 * compiles and whose valid output the parser takes; the template formats
 * of the real templates in ../shared/templates. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_grammar.h"
#include "toolcall.h"
#include "tools.h"

/* What a parse produced: the text and the calls as "name(args)" lines. */
typedef struct out {
    char text[4096];
    size_t len;
    int n_calls;
    int n_text_events;
} out;

static int on_emit(void *arg, api_tp_kind kind, const char *s, size_t len, unsigned call)
{
    out *o = arg;
    (void)call;
    if (kind == API_TP_CALL) {
        o->n_calls++;
        return 0;
    }
    ck_assert_uint_lt(o->len + len, sizeof o->text);
    memcpy(o->text + o->len, s, len);
    o->len += len;
    o->text[o->len] = '\0';
    o->n_text_events++;
    return 0;
}

/* The calls of p as "name args\n" lines. */
static void calls_str(const api_toolparse *p, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->n_calls; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s %s\n", p->calls[i].name,
                              p->calls[i].arguments);
}

/* Parse whole, then byte by byte (then in chunks of 3): the same text and
 * calls every way. Returns the whole parse's result in o and calls. */
static void parse_all_ways(api_tool_format f, bool forced, const char *forced_name,
                           const char *in, out *o, char *calls, size_t cap)
{
    api_toolparse p;
    char first[2048];
    for (int way = 0; way < 3; way++) {
        out w;
        memset(&w, 0, sizeof w);
        api_toolparse_init(&p, f, forced, forced_name, 42);
        size_t n = strlen(in), step = way == 0 ? n : way == 1 ? 1 : 3;
        for (size_t i = 0; i < n; i += step)
            ck_assert_int_eq(api_toolparse_feed(&p, in + i, i + step > n ? n - i : step,
                                                on_emit, &w), 0);
        ck_assert_int_eq(api_toolparse_end(&p, on_emit, &w), 0);
        ck_assert_int_eq(w.n_calls, (int)p.n_calls);
        char cs[2048];
        calls_str(&p, cs, sizeof cs);
        if (way == 0) {
            *o = w;
            snprintf(first, sizeof first, "%s", cs);
            snprintf(calls, cap, "%s", cs);
        } else {
            ck_assert_msg(!strcmp(w.text, o->text), "way %d text \"%s\" != \"%s\" for %s", way,
                          w.text, o->text, in);
            ck_assert_msg(!strcmp(cs, first), "way %d calls \"%s\" != \"%s\"", way, cs, first);
        }
        for (size_t i = 0; i < p.n_calls; i++) {
            size_t idl = strlen(p.calls[i].id);
            bool mistral = f == API_TOOLS_MISTRAL || f == API_TOOLS_MISTRAL_ARGS;
            ck_assert_uint_eq(idl, mistral ? 9 : 29);
        }
        api_toolparse_free(&p);
    }
}

typedef struct tcase_ {
    api_tool_format f;
    const char *in;
    const char *text; /* what the client sees as text */
    const char *calls;
} tcase_;

static const tcase_ CASES[] = {
    /* Hermes / Qwen */
    {API_TOOLS_HERMES, "<tool_call>\n{\"name\": \"get\", \"arguments\": {\"city\": \"Oslo\"}}\n"
                       "</tool_call>", "", "get {\"city\":\"Oslo\"}\n"},
    {API_TOOLS_HERMES, "Let me look.\n<tool_call>\n{\"name\":\"a\",\"arguments\":{}}\n</tool_call>\n"
                       "<tool_call>\n{\"arguments\":{\"x\":[1,\"}\"]},\"name\":\"b\"}\n</tool_call>\n",
     "Let me look.", "a {}\nb {\"x\":[1,\"}\"]}\n"},
    /* arguments as a string holding an object */
    {API_TOOLS_HERMES, "<tool_call>{\"name\":\"a\",\"arguments\":\"{\\\"k\\\": 1}\"}</tool_call>", "",
     "a {\"k\":1}\n"},
    /* not a call: no name; given back as it was */
    {API_TOOLS_HERMES, "x <tool_call>{\"nome\":\"a\"}</tool_call> y",
     "x <tool_call>{\"nome\":\"a\"}</tool_call> y", ""},
    /* unfinished at the end: text */
    {API_TOOLS_HERMES, "<tool_call>\n{\"name\": \"a\", \"argu", "<tool_call>\n{\"name\": \"a\", \"argu",
     ""},
    /* a tag-like text that is not the opener */
    {API_TOOLS_HERMES, "a <tool_cal> b <tool", "a <tool_cal> b <tool", ""},
    /* plain text, its whitespace kept */
    {API_TOOLS_HERMES, "  Hello,\n\n world. \n", "  Hello,\n\n world. \n", ""},
    /* text after a call keeps the space between; the end's is dropped */
    {API_TOOLS_HERMES, "<tool_call>{\"name\":\"a\",\"arguments\":{}}</tool_call>\n\nDone. \n",
     "\n\nDone.", "a {}\n"},
    /* the XML-style bodies of Qwen3-Coder and GLM templates */
    {API_TOOLS_HERMES, "<tool_call>\n<function=get>\n<parameter=city>\nOslo\n</parameter>\n"
                       "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>", "",
     "get {\"city\":\"Oslo\",\"days\":3}\n"},
    {API_TOOLS_HERMES, "ok <tool_call>get\n<arg_key>city</arg_key>\n<arg_value>Oslo</arg_value>\n"
                       "<arg_key>f</arg_key><arg_value>[1]</arg_value></tool_call>", "ok",
     "get {\"city\":\"Oslo\",\"f\":[1]}\n"},
    {API_TOOLS_HERMES, "<tool_call>no name here</tool_call>", "<tool_call>no name here</tool_call>", ""},
    /* Llama 3 */
    {API_TOOLS_LLAMA3, "{\"name\": \"get\", \"parameters\": {\"city\": \"Oslo\"}}", "",
     "get {\"city\":\"Oslo\"}\n"},
    {API_TOOLS_LLAMA3, "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", "
                       "\"parameters\": {\"q\": true}}", "", "a {}\nb {\"q\":true}\n"},
    {API_TOOLS_LLAMA3, "{curly} is text", "{curly} is text", ""},
    {API_TOOLS_LLAMA3, "The answer is {\"name\": \"a\"}", "The answer is {\"name\": \"a\"}", ""},
    /* Mistral v3 */
    {API_TOOLS_MISTRAL, "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"n\": 1}}, {\"name\": \"b\", "
                        "\"arguments\": {}}]", "", "a {\"n\":1}\nb {}\n"},
    {API_TOOLS_MISTRAL, "Sure.[TOOL_CALLS][{\"name\": 3}]", "Sure.[TOOL_CALLS][{\"name\": 3}]", ""},
    /* Mistral with [ARGS] */
    {API_TOOLS_MISTRAL_ARGS, "[TOOL_CALLS]get[ARGS]{\"city\": \"Oslo\"}[TOOL_CALLS]b[CALL_ID]"
                             "abcdefghi[ARGS]{}", "", "get {\"city\":\"Oslo\"}\nb {}\n"},
    {API_TOOLS_MISTRAL_ARGS, "[TOOL_CALLS]not a name[ARGS]{}",
     "[TOOL_CALLS]not a name[ARGS]{}", ""},
};

START_TEST(parse_formats)
{
    const tcase_ *c = &CASES[_i];
    out o;
    char calls[2048];
    parse_all_ways(c->f, false, NULL, c->in, &o, calls, sizeof calls);
    ck_assert_msg(!strcmp(o.text, c->text), "case %d: text \"%s\", want \"%s\"", _i, o.text,
                  c->text);
    ck_assert_msg(!strcmp(calls, c->calls), "case %d: calls \"%s\", want \"%s\"", _i, calls,
                  c->calls);
}
END_TEST

/* With the request's tools given, a call of a function nobody offered is
 * text. */
START_TEST(unknown_function_is_text)
{
    api_request r;
    memset(&r, 0, sizeof r);
    api_err e;
    ck_assert_int_eq(api_tools_add(&r, "get", NULL, NULL, "tools[0]", &e), 0);
    const char *in = "<tool_call>{\"name\":\"nope\",\"arguments\":{}}</tool_call>"
                     "<tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call>";
    api_toolparse p;
    api_toolparse_init(&p, API_TOOLS_HERMES, false, NULL, 1);
    p.req = &r;
    out o;
    memset(&o, 0, sizeof o);
    ck_assert_int_eq(api_toolparse_feed(&p, in, strlen(in), on_emit, &o), 0);
    ck_assert_int_eq(api_toolparse_end(&p, on_emit, &o), 0);
    ck_assert_uint_eq(p.n_calls, 1);
    ck_assert_str_eq(p.calls[0].name, "get");
    ck_assert_str_eq(o.text, "<tool_call>{\"name\":\"nope\",\"arguments\":{}}</tool_call>");
    api_toolparse_free(&p);
    api_request_free(&r);
}
END_TEST

/* Forced: the output starts inside the call (the prefix was prompt). */
START_TEST(parse_forced)
{
    out o;
    char calls[1024];
    parse_all_ways(API_TOOLS_HERMES, true, NULL,
                   "{\n\n\"name\"\n\n:\n\n\"get\"\n,\n \"arguments\" : {\"a\": 1}}", &o, calls,
                   sizeof calls);
    ck_assert_str_eq(calls, "get {\"a\":1}\n");
    ck_assert_str_eq(o.text, "");
    parse_all_ways(API_TOOLS_MISTRAL_ARGS, true, "get", "{\"a\": [2]}", &o, calls, sizeof calls);
    ck_assert_str_eq(calls, "get {\"a\":[2]}\n");
    parse_all_ways(API_TOOLS_MISTRAL, true, NULL, "[{\"name\":\"f\",\"arguments\":{}}]", &o,
                   calls, sizeof calls);
    ck_assert_str_eq(calls, "f {}\n");
    parse_all_ways(API_TOOLS_LLAMA3, true, NULL, "{\"name\":\"f\",\"parameters\":{}}", &o, calls,
                   sizeof calls);
    ck_assert_str_eq(calls, "f {}\n");
    /* cut off: the text is all there is */
    parse_all_ways(API_TOOLS_HERMES, true, NULL, "{\"name\": \"g", &o, calls, sizeof calls);
    ck_assert_str_eq(calls, "");
    ck_assert_str_eq(o.text, "{\"name\": \"g");
}
END_TEST

/* A request with two tools, for api_tool_forced. */
static void two_tools(api_request *r)
{
    memset(r, 0, sizeof *r);
    api_err e;
    json_t *p1 = json_loads("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
                            "\"required\":[\"city\"],\"additionalProperties\":false}", 0, NULL);
    json_t *p2 = json_loads("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},"
                            "\"required\":[\"n\"],\"additionalProperties\":false}", 0, NULL);
    ck_assert_int_eq(api_tools_add(r, "get", "d", p1, "tools[0]", &e), 0);
    ck_assert_int_eq(api_tools_add(r, "count", NULL, p2, "tools[1]", &e), 0);
    json_decref(p1);
    json_decref(p2);
}

static bool grammar_accepts(const jgram *g, const char *s)
{
    jgram_state st;
    jgram_init(g, &st);
    for (const char *c = s; *c; c++)
        if (!jgram_feed(g, &st, (uint8_t)*c))
            return false;
    return jgram_accepting(g, &st);
}

/* The forced schema of each format compiles, accepts a valid call of
 * either tool (or the named one only) and refuses a call whose arguments
 * break the tool's schema; what it accepts parses as that call. */
START_TEST(forced_schemas)
{
    api_request r;
    two_tools(&r);
    static const struct {
        api_tool_format f;
        const char *only, *prefix, *good, *bad;
    } F[] = {
        {API_TOOLS_HERMES, NULL, "<tool_call>\n", "{\"name\":\"count\",\"arguments\":{\"n\":3}}",
         "{\"name\":\"count\",\"arguments\":{\"city\":\"x\"}}"},
        {API_TOOLS_HERMES, "get", "<tool_call>\n", "{\"name\":\"get\",\"arguments\":{\"city\":\"x\"}}",
         "{\"name\":\"count\",\"arguments\":{\"n\":3}}"},
        {API_TOOLS_LLAMA3, NULL, "", "{\"name\":\"get\",\"parameters\":{\"city\":\"x\"}}",
         "{\"name\":\"get\",\"arguments\":{\"city\":\"x\"}}"},
        {API_TOOLS_MISTRAL, NULL, "[TOOL_CALLS]", "[{\"name\":\"get\",\"arguments\":{\"city\":\"x\"}}]",
         "[]"},
        {API_TOOLS_MISTRAL_ARGS, "count", "[TOOL_CALLS]count[ARGS]", "{\"n\":1}", "{\"n\":\"1\"}"},
    };
    for (size_t i = 0; i < sizeof F / sizeof *F; i++) {
        char *prefix, *schema;
        api_err e;
        if (F[i].only) {
            r.tool_choice = API_TOOL_NAMED;
        }
        ck_assert_int_eq(api_tool_forced(F[i].f, &r, F[i].only, &prefix, &schema, &e), 0);
        ck_assert_str_eq(prefix, F[i].prefix);
        jgram *g = NULL;
        char err[200];
        ck_assert_msg(jgram_compile(schema, strlen(schema), &g, err, sizeof err) == JGRAM_OK,
                      "%s: %s", schema, err);
        ck_assert_msg(grammar_accepts(g, F[i].good), "%zu: refused %s", i, F[i].good);
        ck_assert_msg(!grammar_accepts(g, F[i].bad), "%zu: accepted %s", i, F[i].bad);
        out o;
        char calls[512];
        parse_all_ways(F[i].f, true, F[i].only, F[i].good, &o, calls, sizeof calls);
        ck_assert_msg(calls[0] && !o.text[0], "%zu: %s gave no call", i, F[i].good);
        jgram_free(g);
        free(prefix);
        free(schema);
    }
    /* the [ARGS] form cannot force one of several unnamed tools */
    char *prefix, *schema;
    api_err e;
    ck_assert_int_eq(api_tool_forced(API_TOOLS_MISTRAL_ARGS, &r, NULL, &prefix, &schema, &e), -1);
    ck_assert_uint_eq(e.status, 400);
    ck_assert_int_eq(api_tool_forced(API_TOOLS_NONE, &r, NULL, &prefix, &schema, &e), -1);
    api_request_free(&r);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

/* The real templates: the families the docs name get their format. */
START_TEST(template_formats)
{
    const char *data = getenv("HEARTH_TEST_DATA");
    static const struct {
        const char *file;
        api_tool_format f;
    } T[] = {
        {"Qwen-Qwen2.5-7B-Instruct.jinja", API_TOOLS_HERMES},
        {"Qwen-Qwen3-0.6B.jinja", API_TOOLS_HERMES},
        {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", API_TOOLS_HERMES},
        {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", API_TOOLS_HERMES},
        {"meta-llama-Llama-3.1-8B-Instruct.jinja", API_TOOLS_LLAMA3},
        {"meta-llama-Llama-3.2-3B-Instruct.jinja", API_TOOLS_LLAMA3},
        {"meta-llama-Llama-3.3-70B-Instruct.jinja", API_TOOLS_LLAMA3},
        {"mistralai-Mistral-Nemo-Instruct-2407.jinja", API_TOOLS_MISTRAL},
        {"Mistral-Small-3.2-24B-Instruct-2506.jinja", API_TOOLS_MISTRAL_ARGS},
        {"unsloth-mistral-Devstral-Small-2507.jinja", API_TOOLS_MISTRAL_ARGS},
        {"google-gemma-2-2b-it.jinja", API_TOOLS_NONE},
    };
    for (size_t i = 0; i < sizeof T / sizeof *T; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/templates/%s", data, T[i].file);
        char *src = slurp(path);
        ck_assert_msg(src != NULL, "cannot read %s", path);
        ck_assert_msg(api_tool_format_of(src) == T[i].f, "%s: %s, want %s", T[i].file,
                      api_tool_format_name(api_tool_format_of(src)),
                      api_tool_format_name(T[i].f));
        free(src);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("toolcall");
    TCase *tc = tcase_create("toolcall");
    tcase_add_loop_test(tc, parse_formats, 0, (int)(sizeof CASES / sizeof *CASES));
    tcase_add_test(tc, parse_forced);
    tcase_add_test(tc, unknown_function_is_text);
    tcase_add_test(tc, forced_schemas);
    tcase_add_test(tc, template_formats);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *data = getenv("HEARTH_TEST_DATA");
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/templates/Qwen-Qwen2.5-7B-Instruct.jinja",
             data ? data : "");
    FILE *f = data ? fopen(probe, "rb") : NULL;
    if (!f) {
        fprintf(stderr, "test_toolcall: HEARTH_TEST_DATA/templates missing: SKIP\n");
        return 77;
    }
    fclose(f);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
