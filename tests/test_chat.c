/* test_chat.c - chat templates: the Jinja interpreter (engine/jinja.c) and
 * the chat layer (engine/chat.c).
 *
 * - interpreter cases: small templates whose expected renders come from
 *   Jinja2 3.1 configured as transformers configures it;
 * - errors: raise_exception messages, runtime errors, syntax errors with
 *   line numbers;
 * - limits: step, output, memory and nesting caps end every render;
 * - the real templates of $HEARTH_TEST_DATA/templates against
 *   $HEARTH_TEST_DATA/reference/templates/<name>.json: templates of the
 *   common families must reproduce every case; a report line counts all;
 * - builtins and family detection.
 */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "jinja.h"

/* 2026-01-15 12:00 UTC: the date the reference renders were made with */
#define TEST_NOW ((time_t)1768478400)

struct interp_case {
    const char *name, *src, *expected;
};

/* Generated from Jinja2 3.1 renders (transformers' settings); see
 * docs/chat-templates.md. Each template is rendered with messages
 * [system ' Be brief. ', user 'Hi'], add_generation_prompt true. */
static const struct interp_case INTERP_CASES[] = {
    {"text",
     "plain text",
     "plain text"},
    {"trailing_newline",
     "a\n",
     "a"},
    {"two_trailing_newlines",
     "a\n\n",
     "a\n"},
    {"crlf",
     "a\r\nb\rc",
     "a\nb\nc"},
    {"var",
     "{{ messages[0].content }}",
     " Be brief. "},
    {"strip_both",
     "a  {{- ' x ' -}}  b",
     "a x b"},
    {"trim_blocks",
     "{% if true %}\nyes\n{% endif %}\nend",
     "yes\nend"},
    {"lstrip_blocks",
     "x\n    {% if true %}\n    y\n    {% endif %}\nz",
     "x\n    y\nz"},
    {"lstrip_not_mid_line",
     "x  {% if true %}y{% endif %}",
     "x  y"},
    {"plus_disables_lstrip",
     "x\n    {%+ if true %}y{% endif %}",
     "x\n    y"},
    {"plus_keeps_newline",
     "{% if true +%}\ny{% endif %}",
     "\ny"},
    {"comment",
     "a\n  {# note #}\nb",
     "a\nb"},
    {"comment_strip",
     "a  {#- note -#}  b",
     "ab"},
    {"var_no_trim",
     "{{ 'a' }}\nb",
     "a\nb"},
    {"raw",
     "{% raw %}{{ not parsed }}{% endraw %}",
     "{{ not parsed }}"},
    {"if_elif_else",
     "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %},{% endfor %}",
     "one,two,many,"},
    {"loop_vars",
     "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
     "1032TrueFalse3|2121FalseFalse3|3210FalseTrue3|"},
    {"loop_prev_next",
     "{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}",
     "-2;1-3;2-;"},
    {"loop_cycle",
     "{% for x in range(4) %}{{ loop.cycle('a', 'b') }}{% endfor %}",
     "abab"},
    {"loop_else",
     "{% for x in [] %}x{% else %}empty{% endfor %}",
     "empty"},
    {"loop_filter",
     "{% for x in range(10) if x is odd %}{{ x }}{{ loop.length }},{% endfor %}",
     "15,35,55,75,95,"},
    {"loop_break_continue",
     "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     "0134"},
    {"loop_unpack",
     "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}",
     "a=1;b=2;"},
    {"loop_dict_keys",
     "{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}",
     "xy"},
    {"loop_scope",
     "{% set x = 0 %}{% for i in range(3) %}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}",
     "1110"},
    {"if_scope",
     "{% if true %}{% set y = 5 %}{% endif %}{{ y }}",
     "5"},
    {"nested_loops",
     "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}",
     "1x1 1y2 1|2x1 2y2 2|"},
    {"namespace",
     "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}",
     "6 0123"},
    {"namespace_empty",
     "{% set ns = namespace() %}{% set ns.a = [1] %}{{ ns.a }}",
     "[1]"},
    {"set_block",
     "{% set x %}  in {{ 1 + 1 }} {% endset %}[{{ x }}]",
     "[  in 2 ]"},
    {"set_block_filter",
     "{% set x | upper %}abc{% endset %}{{ x }}",
     "ABC"},
    {"filter_block",
     "{% filter upper %}hello {{ 'you' }}{% endfilter %}",
     "HELLO YOU"},
    {"set_tuple",
     "{% set a, b = 1, 2 %}{{ a }}{{ b }}",
     "12"},
    {"macro",
     "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', '?') }} {{ greet(punct='.', name='c') }}",
     "Hi a! Hi b? Hi c."},
    {"macro_recursive",
     "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(4) }}",
     "4321"},
    {"macro_sees_globals",
     "{% set g = 'G' %}{% macro m() %}{{ g }}{{ bos_token }}{% endmacro %}{{ m() }}",
     "G<BOS>"},
    {"arith",
     "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 + 1 }} {{ 10 - 2.5 }}",
     "7 9 3.5 3 -4 2 1024 0.5 2.5 7.5"},
    {"float_repr",
     "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1.5e-5 }} {{ 100.0 }} {{ 1 / 3 }} {{ 2.5e15 }} {{ -0.0 }}",
     "0.30000000000000004 1e+16 1.5e-05 100.0 0.3333333333333333 2500000000000000.0 -0.0"},
    {"concat",
     "{{ 'a' ~ 1 ~ none ~ true ~ 1.0 }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 3 }}",
     "a1NoneTrue1.0 ab [1, 2] ababab"},
    {"compare",
     "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] == [1, 2] }} {{ {'a': 1} == {'a': 1} }}",
     "True False True True True True False True True"},
    {"logic",
     "{{ true and 'x' }} {{ false or 'y' }} {{ none or 0 }} {{ not none }} {{ '' or [] }} {{ 1 and 0 }}",
     "x y 0 True [] 0"},
    {"in",
     "{{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'x' in undefined_thing }}",
     "True True True True False"},
    {"ternary",
     "{{ 'yes' if 1 > 0 else 'no' }} {{ 'yes' if 0 else 'no' }} [{{ 'only' if false }}]",
     "yes no []"},
    {"tests",
     "{{ none is none }} {{ 1 is number }} {{ true is boolean }} {{ 'a' is string }} {{ [1] is iterable }} {{ {} is mapping }} {{ x is defined }} {{ x is undefined }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'A' is upper }} {{ 'a' is lower }} {{ 1 is integer }} {{ 1.0 is float }} {{ 2 is eq 2 }} {{ 1 is sameas 1 }} {{ messages is sequence }}",
     "True True True True True True False True True True True True True True True True True True"},
    {"test_not",
     "{{ x is not defined }} {{ none is not none }} {{ 'a' is not string }}",
     "True False False"},
    {"undefined",
     "[{{ missing }}] [{{ missing|default('d') }}] [{{ missing|length }}] [{{ missing is defined }}] [{{ messages[9] is defined }}] [{{ messages[0].nope }}] [{{ none|default('n') }}] [{{ ''|default('e', true) }}]",
     "[] [d] [0] [False] [False] [] [None] [e]"},
    {"subscript",
     "{{ [1, 2, 3][0] }} {{ [1, 2, 3][-1] }} {{ 'hello'[1] }} {{ {'a': 'b'}['a'] }} {{ messages[0]['role'] }} {{ messages[0].role }}",
     "1 3 e b system system"},
    {"slices",
     "{{ [1, 2, 3, 4][1:3] }} {{ 'hello'[::-1] }} {{ 'hello'[1:] }} {{ 'hello'[:-1] }} {{ [1, 2, 3, 4, 5][::2] }} {{ [1, 2, 3][5:] }} {{ 'abcdef'[-2:] }} {{ [1, 2, 3][::-1] }} {{ 'abcdef'[4:1:-1] }}",
     "[2, 3] olleh ello hell [1, 3, 5] [] ef [3, 2, 1] edc"},
    {"unicode_index",
     "{{ 'héllo😀'[1] }} {{ 'héllo😀'[-1] }} {{ 'héllo😀'|length }} {{ 'héllo😀'[1:3] }} {{ 'héllo😀'[::-1] }}",
     "é 😀 6 él 😀olléh"},
    {"string_literals",
     "{{ 'it\\'s' }} {{ \"say \\\"hi\\\"\" }} {{ 'tab\\tnl\\n' }} {{ '\\u00e9\\x41' }} {{ 'a' 'b' }} {{ 'back\\\\slash' }}",
     "it's say \"hi\" tab\tnl\n éA ab back\\slash"},
    {"print_values",
     "{{ none }} {{ true }} {{ [1, 'a', none, true, 1.5] }} {{ {'k': 'v', 'n': [1]} }} {{ ('a', 1) }} {{ ('a',) }} {{ [\"it's\"] }} {{ ['a\\nb'] }}",
     "None True [1, 'a', None, True, 1.5] {'k': 'v', 'n': [1]} ('a', 1) ('a',) [\"it's\"] ['a\\nb']"},
    {"str_methods",
     "{{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'aBc'.upper() }}|{{ 'aBc'.lower() }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'x{}y{}'.format(1, 'z') }}|{{ 'abcabc'.find('c') }}|{{ 'abcabc'.rfind('c') }}|{{ 'abcabc'.count('bc') }}|{{ ', '.join(['a', 'b']) }}|{{ 'a\\nb\\n'.splitlines() }}|{{ 'a b'.rsplit(' ', 1) }}|{{ '12'.isdigit() }}",
     "x|x  |  x|hi|['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|True|True|ABC|abc|Hello World|Hello|bba|x1yz|2|5|2|a, b|['a', 'b']|['a', 'b']|True"},
    {"dict_methods",
     "{% set d = {'a': 1, 'b': 2} %}{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 9) }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}",
     "1 None 9 ['a', 'b'] [1, 2] [('a', 1), ('b', 2)]"},
    {"list_methods",
     "{% set l = [3, 1, 2] %}{% set _ = l.append(4) %}{{ l }} {{ l.pop() }} {{ l.pop(0) }} {{ l }} {{ l.index(2) }} {{ l.count(1) }}",
     "[3, 1, 2, 4] 4 3 [1, 2] 1 1"},
    {"filters_text",
     "{{ '  a  '|trim }}|{{ 'xax'|trim('x') }}|{{ 'ab'|upper }}|{{ 'AB'|lower }}|{{ 'hello big-world'|title }}|{{ 'hELLO'|capitalize }}|{{ 'aXa'|replace('a', 'b') }}|{{ 42|string }}|{{ 'a&<b>\"'|e }}|{{ 'one two  three'|wordcount }}",
     "a|a|AB|ab|Hello Big-World|Hello|bXb|42|a&amp;&lt;b&gt;&#34;|3"},
    {"filters_list",
     "{{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'c']|sort }} {{ [1, 2, 2, 1]|unique|list }} {{ [1, 5, 3]|min }} {{ [1, 5, 3]|max }} {{ [1, 2, 3]|sum }} {{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ [1, 2, 3]|reverse|list }} {{ 'abc'|list }} {{ [1, 2, 3]|length }} {{ [1, 2]|join('-') }} {{ [1, 2]|join }}",
     "[1, 2, 3] [3, 2, 1] ['A', 'b', 'c'] [1, 2] 1 5 6 1 3 [3, 2, 1] ['a', 'b', 'c'] 3 1-2 12"},
    {"filters_attr",
     "{% set l = [{'n': 'a', 'k': 2}, {'n': 'b', 'k': 1}, {'n': 'c'}] %}{{ l|map(attribute='n')|join(',') }} {{ l|selectattr('k')|map(attribute='n')|list }} {{ l|rejectattr('k')|map(attribute='n')|list }} {{ l|selectattr('n', 'equalto', 'b')|list|length }} {{ l|selectattr('k', 'defined')|sort(attribute='k')|map(attribute='n')|join }} {{ ['a', 'b']|map('upper')|list }} {{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('odd')|list }} {{ l|map(attribute='k', default=0)|list }} {{ none|selectattr('x')|list }}",
     "a,b,c ['a', 'b'] ['c'] 1 ba ['A', 'B'] [1, 3] [2, 4] [2, 1, 0] []"},
    {"filters_dict",
     "{% set d = {'b': 1, 'a': 2} %}{{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(by='value') }} {{ d|length }} {% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}",
     "[('b', 1), ('a', 2)] [('a', 2), ('b', 1)] [('b', 1), ('a', 2)] 2 b1a2"},
    {"filters_num",
     "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.1|round(method='ceil') }} {{ 2|float }}",
     "42 4 0 7 3 2.5 3 2.57 2.0 4.0 3.0 2.0"},
    {"indent",
     "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, first=true) }}|{{ 'a\\n\\nb\\n'|indent(3, blank=true) }}|{{ 'x\\n'|indent }}",
     "a\n  b\n\n  c|  a\n  b|a\n   \n   b\n   |x\n"},
    {"tojson",
     "{{ {'a': [1, 2.5, none, true], 'b': 'é\"\\n'}|tojson }}|{{ [1, {'x': 'y'}]|tojson(indent=2) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ []|tojson(indent=2) }}|{{ {'a': 1}|tojson(separators=(',', ':')) }}",
     "{\"a\": [1, 2.5, null, true], \"b\": \"é\\\"\\n\"}|[\n  1,\n  {\n    \"x\": \"y\"\n  }\n]|{\"a\": 2, \"b\": 1}|\"\\u00e9\"|[]|{\"a\":1}"},
    {"safe_markup",
     "{{ ('<a>'|safe + '<b>') }} {{ '<b>' + '<a>'|safe }} {{ ('x'|safe ~ '<') }}",
     "<a>&lt;b&gt; &lt;b&gt;<a> x<"},
    {"range",
     "{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }} {{ range(0)|list }}",
     "[0, 1, 2] [1, 2, 3] [10, 7, 4, 1] []"},
    {"dict_literal_and_attr",
     "{% set d = {'role': 'r', 1: 'one'} %}{{ d.role }} {{ d[1] }} {{ d['role'] }}",
     "r one r"},
    {"strftime",
     "{{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%d %b %Y') }}",
     "2026-01-15 15 Jan 2026"},
    {"bos_eos_agp",
     "{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}",
     "<BOS><EOS>True"},
    {"messages_loop",
     "{% for m in messages %}<{{ m.role }}:{{ m.content|trim }}>{% endfor %}",
     "<system:Be brief.><user:Hi>"},
    {"messages_slice",
     "{% if messages[0]['role'] == 'system' %}{% set rest = messages[1:] %}{% else %}{% set rest = messages %}{% endif %}{{ rest|length }}{{ rest[0].content }}",
     "1Hi"},
    {"generation_tag",
     "a{% generation %}b{{ 1 }}{% endgeneration %}c",
     "ab1c"},
    {"whitespace_mix",
     "{%- for m in messages -%}\n  {{- m.role }}\n  {%- if not loop.last %}, {% endif %}\n{%- endfor %}\nend\n",
     "system, userend"},
    {"lstrip_comment_line",
     "a\n  {#- x #}\n  b",
     "a  b"},
    {"unary",
     "{{ -1 }} {{ -(2 + 3) }} {{ +4 }} {{ - 2 ** 2 }} {{ not true }} {{ not 1 == 2 }}",
     "-1 -5 4 4 False True"},
    {"filter_precedence",
     "{{ -3|abs }} {{ 'a' ~ 'bc'|upper }} {{ [1, 2]|length + 1 }} {{ 'x' if 'ab'|length > 1 else 'y' }}",
     "3 aBC 3 x"},
    {"attr_of_list_item",
     "{{ [{'a': {'b': 'deep'}}][0].a.b }} {{ [[1, 2]][0][1] }} {{ messages.0.role }}",
     "deep 2 system"},
    {"none_attr",
     "[{{ none.foo }}] [{{ (none.foo) is defined }}]",
     "[] [False]"},
    {"string_compare_eq",
     "{{ 'a' == 'a' }} {{ 'a' == 'b' }} {{ none == none }} {{ 1 == '1' }} {{ true == 1 }}",
     "True False True False True"},
    {"join_attr",
     "{{ [{'a': 1}, {'a': 2}]|join(',', attribute='a') }}",
     "1,2"},
    {"count_alias",
     "{{ [1, 2]|count }} {{ 'abc'|count }}",
     "2 3"},
    {"tojson_nested_indent",
     "{{ {'a': {'b': [1, {'c': none}]}, 'd': []}|tojson(indent=4) }}",
     "{\n    \"a\": {\n        \"b\": [\n            1,\n            {\n                \"c\": null\n            }\n        ]\n    },\n    \"d\": []\n}"},
    {"items_loop_index",
     "{% for k, v in {'x': 1, 'y': 2}|items %}{{ loop.index }}{{ k }}{{ v }}{% endfor %}",
     "1x12y2"},
    {"is_in_test",
     "{{ 1 is in [1, 2] }} {{ 'x' is in 'abc' }}",
     "True False"},
    {"loop_last_filter",
     "{% for m in messages if m.role != 'system' %}{{ m.role }}{{ loop.last }}{% endfor %}",
     "userTrue"},
    {"set_messages",
     "{% set messages = messages[1:] %}{{ messages|length }}",
     "1"},
    {"dict_update_pop",
     "{% set d = {'a': 1} %}{% set _ = d.update({'b': 2}) %}{{ d }} {{ d.pop('a') }} {{ d }}",
     "{'a': 1, 'b': 2} 1 {'b': 2}"},
    {"int_keys_json",
     "{{ {1: 'a', true: 'b'}|tojson }}",
     "{\"1\": \"b\"}"},
    {"capture_nested",
     "{% macro wrap(x) %}[{{ x }}]{% endmacro %}{% set s %}{{ wrap(wrap('a')) }}{% endset %}{{ s|length }}{{ s }}",
     "5[[a]]"},
    {"str_join_method_map",
     "{{ '|'.join(['a', 'b']|map('upper')) }}",
     "A|B"},
    {"split_limit",
     "{{ 'a  b  c'.split(None, 1) }} {{ 'a--b--c'.split('--', 1) }} {{ ''.split() }} {{ ''.split(',') }}",
     "['a', 'b  c'] ['a', 'b--c'] [] ['']"},
    {"chained_filters_default",
     "{{ missing|default([])|length }} {{ (missing or 'fb')|upper }}",
     "0 FB"},
    {"mod_string_format",
     "{{ '%s-%d'|format('a', 3) }}",
     "a-3"},
    {"center",
     "[{{ 'ab'|center(6) }}]",
     "[  ab  ]"},
    {"loop_index_scope_after",
     "{% for x in [1] %}{% endfor %}{{ x is defined }}",
     "False"},
    {"empty",
     "",
     ""},
    {"only_ws_tags",
     "  {% if true %}  {% endif %}  ",
     "    "},
};

static const struct interp_case ERROR_CASES[] = {
    {"raise",
     "{{ raise_exception('Bad thing: ' ~ 1) }}",
     "Bad thing: 1"},
    {"raise_in_loop",
     "{% for m in messages %}{% if m.role == 'user' %}{{ raise_exception('No users') }}{% endif %}{% endfor %}",
     "No users"},
    {"undefined_attr",
     "{{ missing.attr }}",
     "'missing' is undefined"},
    {"call_undefined",
     "{{ nofunc() }}",
     "'nofunc' is undefined"},
    {"add_str_int",
     "{{ 'a' + 1 }}",
     "can only concatenate str (not \"int\") to str"},
    {"div_zero",
     "{{ 1 / 0 }}",
     "division by zero"},
    {"not_iterable",
     "{% for x in 5 %}{% endfor %}",
     "'int' object is not iterable"},
    {"unknown_filter",
     "{{ 'a'|nosuchfilter }}",
     "No filter named 'nosuchfilter'."},
    {"unknown_test",
     "{{ 1 is nosuchtest }}",
     "No test named 'nosuchtest'."},
    {"compare_types",
     "{{ 'a' < 1 }}",
     "'<' not supported between instances of 'str' and 'int'"},
    {"ns_assign_non_ns",
     "{% set x = 1 %}{% set x.a = 2 %}",
     "cannot assign attribute on non-namespace object"},
    {"macro_too_many_args",
     "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}",
     "macro 'm' takes not more than 1 argument(s)"},
    {"tojson_undefined",
     "{{ missing|tojson }}",
     "Object of type Undefined is not JSON serializable"},
    {"unpack_count",
     "{% for a, b in [[1, 2, 3]] %}{% endfor %}",
     "too many values to unpack (expected 2)"},
    {"items_non_mapping",
     "{{ [1]|items|list }}",
     "Can only get item pairs from a mapping."},
    {"pop_empty",
     "{{ [].pop() }}",
     "pop from empty list"},
};

static const chat_msg TEST_MSGS[] = {{"system", " Be brief. ", NULL}, {"user", "Hi", NULL}};

/* Render src with TEST_MSGS; NULL and err on failure. */
static char *render(const char *src, char *err, size_t errlen)
{
    chat_template *t;
    if (chat_template_parse(src, &t, err, errlen))
        return NULL;
    chat_opts o = {.now = TEST_NOW};
    char *out = chat_template_apply_opts(t, TEST_MSGS, 2, true, "<BOS>", "<EOS>", &o, err, errlen);
    chat_template_free(t);
    return out;
}

START_TEST(test_interp_cases)
{
    size_t n = sizeof(INTERP_CASES) / sizeof(INTERP_CASES[0]);
    for (size_t i = 0; i < n; i++) {
        char err[512] = "";
        char *out = render(INTERP_CASES[i].src, err, sizeof(err));
        ck_assert_msg(out != NULL, "%s: failed: %s", INTERP_CASES[i].name, err);
        ck_assert_msg(strcmp(out, INTERP_CASES[i].expected) == 0,
                      "%s:\n got      [%s]\n expected [%s]", INTERP_CASES[i].name, out,
                      INTERP_CASES[i].expected);
        free(out);
    }
}
END_TEST

START_TEST(test_error_cases)
{
    size_t n = sizeof(ERROR_CASES) / sizeof(ERROR_CASES[0]);
    for (size_t i = 0; i < n; i++) {
        char err[512] = "";
        char *out = render(ERROR_CASES[i].src, err, sizeof(err));
        ck_assert_msg(out == NULL, "%s: rendered [%s] instead of failing", ERROR_CASES[i].name, out);
        ck_assert_msg(err[0] != 0, "%s: no error message", ERROR_CASES[i].name);
        if (strncmp(ERROR_CASES[i].name, "raise", 5) == 0)
            /* a template's own message comes back exactly */
            ck_assert_str_eq(err, ERROR_CASES[i].expected);
        else
            ck_assert_msg(strncmp(err, "line 1: ", 8) == 0, "%s: [%s] has no line number",
                          ERROR_CASES[i].name, err);
    }
}
END_TEST

START_TEST(test_error_messages)
{
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"{{ missing.attr }}", "line 1: 'missing' is undefined"},
        {"x\n\n{{ 'a' + 1 }}", "line 3: unsupported operand type(s) for +: 'str' and 'int'"},
        {"{{ 'a'|nosuch }}", "line 1: No filter named 'nosuch'."},
        {"{% for x in none %}{% endfor %}", "line 1: 'NoneType' object is not iterable"},
        {"{{ messages[0].nope.deeper }}", "line 1: 'dict object' has no attribute 'nope'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512] = "";
        char *out = render(cases[i].src, err, sizeof(err));
        ck_assert_ptr_null(out);
        ck_assert_str_eq(err, cases[i].want);
    }
}
END_TEST

START_TEST(test_syntax_errors)
{
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"{% if true %}never closed", "line 1: unexpected end of template, expected 'elif'"},
        {"a\nb\n{% for x in %}{% endfor %}", "line 3: "},
        {"{{ 1 + }}", "line 1: "},
        {"line1\n{{ 'unterminated }}", "line 2: unterminated string"},
        {"\n\n\n{% endif %}", "line 4: unexpected 'endif'"},
        {"{% nosuchtag %}", "line 1: Encountered unknown tag 'nosuchtag'"},
        {"{# never closed", "line 1: Missing end of comment tag"},
        {"{{ (1 }}", "line 1: "},
        {"{{ [1, 2) }}", "line 1: unexpected ')'"},
        {"{% break %}", "line 1: 'break' outside of a loop"},
        {"{% for x in y %}\n{% else %}\n{% endif %}", "line 3: "},
        {"{{ x | }}", "line 1: expected filter name"},
        {"{% set %}", "line 1: expected a name"},
        {"{% macro m(a, a=) %}{% endmacro %}", "line 1: "},
        {"{% include 'x' %}", "line 1: the 'include' tag is not supported"},
        {"{{ 99999999999999999999 }}", "line 1: integer literal too large"},
        {"{{ '\\x4' }}", "line 1: truncated"},
        {"{{ a }", "line 1: "},
        {"{{ @ }}", "line 1: unexpected char '@'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512] = "";
        chat_template *t = NULL;
        int r = chat_template_parse(cases[i].src, &t, err, sizeof(err));
        ck_assert_msg(r == -1 && t == NULL, "case %zu [%s] parsed", i, cases[i].src);
        ck_assert_msg(strncmp(err, cases[i].want, strlen(cases[i].want)) == 0,
                      "case %zu [%s]: error [%s], want prefix [%s]", i, cases[i].src, err,
                      cases[i].want);
    }
}
END_TEST

/* Renders that would run away end with an error, quickly. */
START_TEST(test_limits)
{
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"{% set l = range(3000)|list %}{% for i in l %}{% for j in l %}{% endfor %}{% endfor %}",
         "steps"},
        {"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
         "memory"},
        {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested deeper"},
        {"{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
         "{% endfor %}",
         "exceeds"},
        {"{{ 'x' * 100000000000 }}", "exceeds"},
        {"{% for i in range(1000000) %}{{ 'abcdefghijklmnopqrstuvwxyz' }}{% endfor %}", "exceeds"},
        {"{{ range(1000000000000)|length }}", "memory"},
        {"{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}"
         "{% endfor %}",
         ""},
    };
    chat_opts o = {.now = TEST_NOW};
    o.limits.max_output = 1 << 20;
    o.limits.max_memory = 64 << 20;
    o.limits.max_steps = 5000000;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512] = "";
        chat_template *t;
        ck_assert_int_eq(chat_template_parse(cases[i].src, &t, err, sizeof(err)), 0);
        char *out = chat_template_apply_opts(t, TEST_MSGS, 2, true, "", "", &o, err, sizeof(err));
        ck_assert_msg(out == NULL, "case %zu rendered", i);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: [%s] lacks [%s]", i, err,
                      cases[i].want);
        chat_template_free(t);
    }
}
END_TEST

/* Nesting that would exhaust the C stack is refused at parse time. */
START_TEST(test_deep_nesting)
{
    size_t n = 100000;
    char *src = malloc(4 * n + 16);
    ck_assert_ptr_nonnull(src);
    const char *kinds[] = {"(", "[", "-", "not ", "{% if 1 %}"};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        size_t len = strlen(kinds[k]), p = 0, reps = (4 * n) / len;
        if (k < 4)
            p += (size_t)sprintf(src, "{{ ");
        for (size_t i = 0; i < reps - 2; i++, p += len)
            memcpy(src + p, kinds[k], len);
        src[p] = 0;
        char err[512] = "";
        chat_template *t = NULL;
        ck_assert_int_eq(chat_template_parse(src, &t, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, "nested") || strstr(err, "unexpected"), "[%s]", err);
    }
    free(src);
}
END_TEST

START_TEST(test_strftime_and_vars)
{
    char err[256];
    chat_template *t;
    ck_assert_int_eq(chat_template_parse(
        "{{ strftime_now('%d %b %Y') }}|{{ enable_thinking }}|{{ n + 1 }}|{{ name }}|"
        "{{ tools[0].function.name }}|{{ tools|tojson }}|{% for m in messages %}{{ m.tool_call_id }}"
        "{{ m.tool_calls[0].function.arguments.city if m.tool_calls }}{{ m.content }};{% endfor %}",
        &t, err, sizeof(err)), 0);
    chat_var vars[] = {
        {.name = "enable_thinking", .type = CHAT_VAR_BOOL, .b = false},
        {.name = "n", .type = CHAT_VAR_INT, .i = 41},
        {.name = "name", .type = CHAT_VAR_STR, .s = "x"},
        {.name = "tools", .type = CHAT_VAR_JSON,
         .s = "[{\"type\": \"function\", \"function\": {\"name\": \"get_w\\u00e9ather\", \"z\": 1, "
              "\"a\": [1.5, null, true, \"\\ud83d\\ude00\"]}}]"},
    };
    chat_opts o = {.now = TEST_NOW, .vars = vars, .nvars = 4};
    chat_msg msgs[] = {
        {"assistant", NULL, "{\"tool_calls\": [{\"function\": {\"arguments\": {\"city\": \"Paris\"}}}]}"},
        {"tool", "20C", "{\"tool_call_id\": \"c1\"}"},
    };
    char *out = chat_template_apply_opts(t, msgs, 2, false, "", "", &o, err, sizeof(err));
    ck_assert_msg(out != NULL, "%s", err);
    ck_assert_str_eq(out, "15 Jan 2026|False|42|x|get_w\xc3\xa9" "ather|[{\"type\": \"function\", "
                          "\"function\": {\"name\": \"get_w\xc3\xa9" "ather\", \"z\": 1, \"a\": [1.5, "
                          "null, true, \"\xf0\x9f\x98\x80\"]}}]|ParisNone;c120C;");
    free(out);
    /* bad JSON is an error, not a crash */
    vars[3].s = "[1, 2";
    ck_assert_ptr_null(chat_template_apply_opts(t, msgs, 2, false, "", "", &o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "tools"));
    vars[3].s = "[]";
    msgs[1].extra_json = "[1]";
    ck_assert_ptr_null(chat_template_apply_opts(t, msgs, 2, false, "", "", &o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "not a JSON object"));
    chat_template_free(t);
}
END_TEST

START_TEST(test_api_edges)
{
    char err[256];
    chat_template *t;
    ck_assert_int_eq(chat_template_parse(NULL, &t, err, sizeof(err)), -1);
    ck_assert_int_eq(chat_template_parse("{{ messages|length }}", &t, err, sizeof(err)), 0);
    char *out = chat_template_apply(t, NULL, 0, false, NULL, NULL, err, sizeof(err));
    ck_assert_str_eq(out, "0");
    free(out);
    chat_msg bad = {NULL, "x", NULL};
    ck_assert_ptr_null(chat_template_apply(t, &bad, 1, false, NULL, NULL, err, sizeof(err)));
    chat_template_free(t);
    chat_template_free(NULL);
    /* a template may be rendered any number of times */
    ck_assert_int_eq(chat_template_parse("{% set ns = namespace(n=0) %}{% for m in messages %}"
                                         "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
                                         &t, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        out = chat_template_apply(t, TEST_MSGS, 2, false, NULL, NULL, err, sizeof(err));
        ck_assert_str_eq(out, "2");
        free(out);
    }
    chat_template_free(t);
}
END_TEST

/* ---------------------------------------------------------------- real templates */

static const char *data_dir(void)
{
    const char *d = getenv("HEARTH_TEST_DATA");
    return d && *d ? d : "../shared";
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096)
            break;
    }
    fclose(f);
    buf[n] = 0;
    return buf;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names (without extension) of the files in dir ending in ext. */
static size_t list_dir(const char *dir, const char *ext, char ***out)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    *out = NULL;
    if (!d)
        return 0;
    struct dirent *e;
    size_t el = strlen(ext);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= el || strcmp(e->d_name + l - el, ext) != 0)
            continue;
        *out = realloc(*out, (n + 1) * sizeof(char *));
        (*out)[n++] = strndup(e->d_name, l - el);
    }
    closedir(d);
    if (n)
        qsort(*out, n, sizeof(char *), name_cmp);
    return n;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Renders one reference case; true when it reproduces. */
static bool run_case(const chat_template *t, json_t *jcase, const char *bos, const char *eos,
                     char *why, size_t whylen)
{
    json_t *jm = json_object_get(jcase, "messages");
    size_t n = json_array_size(jm);
    chat_msg *msgs = calloc(n + 1, sizeof(chat_msg));
    for (size_t i = 0; i < n; i++) {
        msgs[i].role = json_string_value(json_object_get(json_array_get(jm, i), "role"));
        msgs[i].content = json_string_value(json_object_get(json_array_get(jm, i), "content"));
    }
    char err[512] = "";
    chat_opts o = {.now = TEST_NOW};
    char *out = chat_template_apply_opts(t, msgs, n, json_is_true(json_object_get(jcase,
                                         "add_generation_prompt")), bos, eos, &o, err,
                                         sizeof(err));
    free(msgs);
    const char *exp = json_string_value(json_object_get(jcase, "expected"));
    const char *xerr = json_string_value(json_object_get(jcase, "error"));
    bool ok;
    if (exp) {
        ok = out && strcmp(out, exp) == 0;
        snprintf(why, whylen, "%s", out ? "render differs" : err);
    } else {
        ok = !out && xerr && strstr(err, xerr);
        snprintf(why, whylen, "expected error [%s], got [%s]", xerr ? xerr : "?",
                 out ? "a render" : err);
    }
    free(out);
    return ok;
}

static bool common_family(const char *fam) { return strcmp(fam, "unknown") != 0; }

START_TEST(test_reference_templates)
{
    char tdir[1024], rdir[1024];
    snprintf(tdir, sizeof(tdir), "%s/templates", data_dir());
    snprintf(rdir, sizeof(rdir), "%s/reference/templates", data_dir());
    char **tnames, **rnames;
    size_t nt = list_dir(tdir, ".jinja", &tnames), nr = list_dir(rdir, ".json", &rnames);
    if (nt == 0 || nr == 0) {
        printf("test_chat: SKIP reference templates: no data in %s (set HEARTH_TEST_DATA)\n",
               data_dir());
        free_list(tnames, nt);
        free_list(rnames, nr);
        return;
    }
    int parsed = 0, tpl_ok = 0, cases = 0, cases_ok = 0, fam_tpl = 0, fam_ok = 0;
    char failures[4096] = "";
    for (size_t i = 0; i < nt; i++) {
        char path[2048], err[512];
        snprintf(path, sizeof(path), "%s/%s.jinja", tdir, tnames[i]);
        char *src = slurp(path);
        ck_assert_msg(src != NULL, "cannot read %s", path);
        chat_template *t = NULL;
        if (chat_template_parse(src, &t, err, sizeof(err)) == 0)
            parsed++;
        else
            printf("test_chat: %s: does not parse: %s\n", tnames[i], err);
        snprintf(path, sizeof(path), "%s/%s.json", rdir, tnames[i]);
        json_t *ref = json_load_file(path, 0, NULL);
        if (!ref) { /* no reference: transformers cannot render it either */
            chat_template_free(t);
            free(src);
            continue;
        }
        const char *fam = chat_template_family(src);
        const char *bos = json_string_value(json_object_get(ref, "bos_token"));
        const char *eos = json_string_value(json_object_get(ref, "eos_token"));
        json_t *jc = json_object_get(ref, "cases");
        bool all = t != NULL;
        for (size_t k = 0; k < json_array_size(jc); k++) {
            char why[600] = "does not parse";
            bool ok = t && run_case(t, json_array_get(jc, k), bos, eos, why, sizeof(why));
            cases++;
            cases_ok += ok;
            if (!ok) {
                all = false;
                printf("test_chat: %s (%s) case %zu: %s\n", tnames[i], fam, k, why);
            }
        }
        tpl_ok += all;
        if (common_family(fam)) {
            fam_tpl++;
            fam_ok += all;
            if (!all && strlen(failures) + strlen(tnames[i]) + 3 < sizeof(failures)) {
                strcat(failures, " ");
                strcat(failures, tnames[i]);
            }
        }
        json_decref(ref);
        chat_template_free(t);
        free(src);
    }
    printf("test_chat: chat templates: %d/%zu parse; %d/%zu with references reproduce exactly "
           "(%d/%d cases); common families: %d/%d templates\n",
           parsed, nt, tpl_ok, nr, cases_ok, cases, fam_ok, fam_tpl);
    free_list(tnames, nt);
    free_list(rnames, nr);
    ck_assert_msg(fam_ok == fam_tpl, "common-family templates that differ:%s", failures);
}
END_TEST

/* Damaged real templates must give a result or an error, never a crash
 * (this runs under the sanitizers in CI). */
START_TEST(test_mangled_templates)
{
    char tdir[1024];
    snprintf(tdir, sizeof(tdir), "%s/templates", data_dir());
    char **names;
    size_t nt = list_dir(tdir, ".jinja", &names);
    if (nt == 0) {
        printf("test_chat: SKIP mangled templates: no data in %s\n", data_dir());
        return;
    }
    unsigned seed = 12345;
    chat_opts o = {.now = TEST_NOW};
    o.limits.max_steps = 200000;
    o.limits.max_output = 1 << 20;
    o.limits.max_memory = 32 << 20;
    static const char junk[] = "{}%#-+()[]|.,'\"\n ~*/=<>!0aZ_";
    int results = 0, errors = 0;
    for (size_t i = 0; i < nt; i++) {
        char path[2048], err[512];
        snprintf(path, sizeof(path), "%s/%s.jinja", tdir, names[i]);
        char *src = slurp(path);
        size_t len = strlen(src);
        for (int k = 0; k < 12 && len; k++) {
            char *m = strdup(src);
            for (int e = 0; e < 1 + k % 4; e++) {
                seed = seed * 1103515245u + 12345u;
                size_t at = (seed >> 8) % len;
                seed = seed * 1103515245u + 12345u;
                if (k % 3 == 0)
                    m[at] = 0; /* truncate */
                else
                    m[at] = junk[(seed >> 8) % (sizeof(junk) - 1)];
            }
            chat_template *t;
            if (chat_template_parse(m, &t, err, sizeof(err)) == 0) {
                char *out = chat_template_apply_opts(t, TEST_MSGS, 2, k & 1, "<s>", "</s>", &o,
                                                     err, sizeof(err));
                results += out != NULL;
                errors += out == NULL;
                ck_assert(out != NULL || err[0]);
                free(out);
                chat_template_free(t);
            } else {
                ck_assert(err[0]);
                errors++;
            }
            free(m);
        }
        free(src);
    }
    ck_assert_int_gt(results + errors, 0);
    free_list(names, nt);
}
END_TEST

/* ---------------------------------------------------------------- builtins */

/* Render src on the conversations of a reference file; returns how many
 * cases matched those of the real template `real` (and how many were
 * compared), skipping cases the real template refuses. */
static void compare_with_real(const char *builtin, const char *real, int *same, int *total)
{
    char path[2048], err[512];
    snprintf(path, sizeof(path), "%s/reference/templates/%s.json", data_dir(), real);
    json_t *ref = json_load_file(path, 0, NULL);
    *same = *total = 0;
    if (!ref)
        return;
    chat_template *t;
    ck_assert_int_eq(chat_template_parse(chat_template_builtin(builtin), &t, err, sizeof(err)), 0);
    json_t *jc = json_object_get(ref, "cases");
    for (size_t k = 0; k < json_array_size(jc); k++) {
        json_t *c = json_array_get(jc, k);
        if (!json_object_get(c, "expected"))
            continue;
        char why[600];
        (*total)++;
        bool ok = run_case(t, c, "<BOS>", "<EOS>", why, sizeof(why));
        *same += ok;
        if (!ok)
            printf("test_chat: builtin %s vs %s case %zu: %s\n", builtin, real, k, why);
    }
    chat_template_free(t);
    json_decref(ref);
}

START_TEST(test_builtins_match_families)
{
    static const struct {
        const char *builtin, *real;
    } pairs[] = {
        {"llama3", "meta-llama-Llama-3.1-8B-Instruct"},
        {"llama3", "meta-llama-Llama-3.3-70B-Instruct"},
        {"mistral", "mistralai-Mistral-Nemo-Instruct-2407"},
        {"phi3", "microsoft-Phi-3.5-mini-instruct"},
        {"gemma", "google-gemma-2-2b-it"},
        {"deepseek", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B"},
        {"chatml", "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use"},
    };
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/reference/templates", data_dir());
    char **names;
    size_t nr = list_dir(dir, ".json", &names);
    free_list(names, nr);
    if (nr == 0) {
        printf("test_chat: SKIP builtins vs real templates: no data in %s\n", data_dir());
        return;
    }
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        int same, total;
        if (!strcmp(pairs[i].builtin, "chatml"))
            continue; /* checked below on the Qwen template */
        compare_with_real(pairs[i].builtin, pairs[i].real, &same, &total);
        ck_assert_msg(total > 0, "no cases for %s", pairs[i].real);
        ck_assert_msg(same == total, "builtin %s differs from %s in %d of %d cases",
                      pairs[i].builtin, pairs[i].real, total - same, total);
    }
    /* ChatML: Qwen2.5 adds its own system message only when there is none */
    char err[512];
    chat_template *b, *q;
    char path[2048];
    snprintf(path, sizeof(path), "%s/templates/Qwen-Qwen2.5-7B-Instruct.jinja", data_dir());
    char *qsrc = slurp(path);
    ck_assert_ptr_nonnull(qsrc);
    ck_assert_int_eq(chat_template_parse(qsrc, &q, err, sizeof(err)), 0);
    ck_assert_int_eq(chat_template_parse(chat_template_builtin("chatml"), &b, err, sizeof(err)), 0);
    chat_msg conv[] = {{"system", "S", NULL}, {"user", "U1", NULL}, {"assistant", "A1", NULL},
                       {"user", "U2 \"q\" <t>", NULL}};
    for (int agp = 0; agp < 2; agp++)
        for (size_t n = 2; n <= 4; n++) {
            char *x = chat_template_apply(b, conv, n, agp, "", "", err, sizeof(err));
            char *y = chat_template_apply(q, conv, n, agp, "", "", err, sizeof(err));
            ck_assert_ptr_nonnull(x);
            ck_assert_ptr_nonnull(y);
            ck_assert_str_eq(x, y);
            free(x);
            free(y);
        }
    chat_template_free(b);
    chat_template_free(q);
    free(qsrc);
}
END_TEST

/* Every builtin parses, renders, is detected as its own family, and the
 * two without a real template here render the published formats. */
START_TEST(test_builtins)
{
    const char *const *names = chat_template_builtin_names();
    int n = 0;
    for (; names[n]; n++) {
        const char *src = chat_template_builtin(names[n]);
        ck_assert_ptr_nonnull(src);
        ck_assert_str_eq(chat_template_family(src), names[n]);
        char err[256];
        chat_template *t;
        ck_assert_msg(chat_template_parse(src, &t, err, sizeof(err)) == 0, "%s: %s", names[n], err);
        chat_msg conv[] = {{"user", "U", NULL}, {"assistant", "A", NULL}, {"user", "V", NULL}};
        char *out = chat_template_apply(t, conv, 3, true, "<s>", "</s>", err, sizeof(err));
        ck_assert_msg(out && strstr(out, "U") && strstr(out, "A") && strstr(out, "V"), "%s: %s",
                      names[n], out ? out : err);
        free(out);
        chat_template_free(t);
    }
    ck_assert_int_eq(n, 8);
    ck_assert_ptr_null(chat_template_builtin("nope"));
    ck_assert_ptr_null(chat_template_builtin(NULL));

    static const struct {
        const char *name;
        bool agp;
        const char *want;
    } fmt[] = {
        {"llama2", true, "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] V [/INST]"},
        {"zephyr", true, "<|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\nA</s>\n<|user|>\nV</s>\n"
                         "<|assistant|>\n"},
        {"zephyr", false, "<|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\nA</s>\n<|user|>\nV</s>\n"},
        {"chatml", true, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
                         "<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nV<|im_end|>\n"
                         "<|im_start|>assistant\n"},
        {"gemma", true, "<s><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\nA"
                        "<end_of_turn>\n<start_of_turn>user\nV<end_of_turn>\n<start_of_turn>model\n"},
    };
    chat_msg conv[] = {{"system", "S", NULL}, {"user", "U", NULL}, {"assistant", "A", NULL},
                       {"user", "V", NULL}};
    for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
        char err[256];
        chat_template *t;
        ck_assert_int_eq(chat_template_parse(chat_template_builtin(fmt[i].name), &t, err, sizeof(err)), 0);
        char *out = chat_template_apply(t, conv, 4, fmt[i].agp, "<s>", "</s>", err, sizeof(err));
        ck_assert_msg(out != NULL, "%s: %s", fmt[i].name, err);
        ck_assert_str_eq(out, fmt[i].want);
        free(out);
        chat_template_free(t);
    }
    /* alternation is enforced where the family's models require it */
    chat_template *t;
    char err[256];
    ck_assert_int_eq(chat_template_parse(chat_template_builtin("llama2"), &t, err, sizeof(err)), 0);
    chat_msg twice[] = {{"user", "a", NULL}, {"user", "b", NULL}};
    ck_assert_ptr_null(chat_template_apply(t, twice, 2, true, "", "", err, sizeof(err)));
    ck_assert_str_eq(err, "Conversation roles must alternate user/assistant/user/assistant/...");
    chat_template_free(t);
}
END_TEST

START_TEST(test_family_detection)
{
    static const struct {
        const char *src, *family, *stop;
    } cases[] = {
        {"{{ '<|im_start|>' + m.role + '<|im_end|>' }}", "chatml", "<|im_end|>"},
        {"{{ '<|im_start|>' + m.role }}", "chatml", NULL},
        {"<|start_header_id|>{{ x }}<|eot_id|>", "llama3", "<|eot_id|>"},
        {"[INST] <<SYS>>", "llama2", NULL},
        {"[INST]{{ x }}[/INST]", "mistral", NULL},
        {"<|user|>\n<|end|>\n<|assistant|>", "phi3", "<|end|>"},
        {"<start_of_turn>user<end_of_turn>", "gemma", "<end_of_turn>"},
        {"<|turn>user<turn|>", "gemma", "<turn|>"},
        {"<|user|>{{ eos_token }}<|assistant|>", "zephyr", NULL},
        {"[gMASK]<sop><|user|>{{ eos_token }}<|assistant|>", "unknown", NULL},
        {"<\xef\xbd\x9cUser\xef\xbd\x9c>x<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
         "deepseek", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"},
        {"{{ messages }}", "unknown", NULL},
        {"", "unknown", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_str_eq(chat_template_family(cases[i].src), cases[i].family);
        const char *stop = chat_template_stop(cases[i].src);
        if (cases[i].stop)
            ck_assert_str_eq(stop, cases[i].stop);
        else
            ck_assert_ptr_null(stop);
    }
    ck_assert_str_eq(chat_template_family(NULL), "unknown");
}
END_TEST

/* Strings that are not valid UTF-8 split into characters the same way
 * for length, indexing, slicing and iteration (found by fuzzing). */
START_TEST(test_invalid_utf8)
{
    char err[256];
    char *out = render("{{ '\x80" "abc'|length }}|{{ '\x80'[1:3] }}|{{ '\x80\x80'|list|length }}|"
                       "{{ '\xe2\x82'[::-1]|length }}|{{ '\x80" "abc'[1:] }}|"
                       "{% for ch in '\xc3\xa9\xa9" "x' %}[{{ ch }}]{% endfor %}",
                       err, sizeof(err));
    ck_assert_msg(out != NULL, "%s", err);
    ck_assert_str_eq(out, "4||1|1|abc|[\xc3\xa9\xa9][x]");
    free(out);
}
END_TEST

/* The interpreter API directly: values built by the caller. */
START_TEST(test_jinja_api)
{
    char err[256];
    jinja_template *t;
    const char *src = "{{ d.k }}{{ l|length }}{{ l[0] }}{{ n is none }}";
    ck_assert_int_eq(jinja_parse(src, strlen(src), &t, err, sizeof(err)), 0);
    jinja_ctx *c = jinja_ctx_new(NULL, TEST_NOW);
    jinja_value *d = jinja_dict(c), *l = jinja_list(c);
    ck_assert_int_eq(jinja_dict_set(c, d, "k", jinja_str(c, "v", 1)), 0);
    ck_assert_int_eq(jinja_list_push(c, l, jinja_int(c, 7)), 0);
    ck_assert_int_eq(jinja_list_push(c, d, l), -1); /* not a list */
    jinja_set_var(c, "d", d);
    jinja_set_var(c, "l", l);
    jinja_set_var(c, "n", jinja_none(c));
    size_t len;
    char *out = jinja_render(t, c, &len, err, sizeof(err));
    ck_assert_str_eq(out, "v17True");
    ck_assert_uint_eq(len, 7);
    free(out);
    jinja_ctx_free(c);
    jinja_free(t);
    /* embedded NUL bytes are ordinary text */
    ck_assert_int_eq(jinja_parse("a\0b{{ 1 }}", 10, &t, err, sizeof(err)), 0);
    c = jinja_ctx_new(NULL, 0);
    out = jinja_render(t, c, &len, err, sizeof(err));
    ck_assert_uint_eq(len, 4);
    ck_assert_int_eq(memcmp(out, "a\0b1", 4), 0);
    free(out);
    jinja_ctx_free(c);
    jinja_free(t);
}
END_TEST

static Suite *chat_suite(void)
{
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("interpreter");
    tcase_add_test(tc, test_interp_cases);
    tcase_add_test(tc, test_error_cases);
    tcase_add_test(tc, test_error_messages);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_strftime_and_vars);
    tcase_add_test(tc, test_api_edges);
    tcase_add_test(tc, test_jinja_api);
    tcase_add_test(tc, test_invalid_utf8);
    suite_add_tcase(s, tc);
    tc = tcase_create("templates");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_reference_templates);
    tcase_add_test(tc, test_mangled_templates);
    tcase_add_test(tc, test_builtins_match_families);
    tcase_add_test(tc, test_builtins);
    tcase_add_test(tc, test_family_detection);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(chat_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    /* without the real templates part of the suite could not run: SKIP */
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/templates", data_dir());
    if (!failed && access(probe, R_OK) != 0)
        return 77;
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
