/* json_grammar_internal.h - the compiled grammar's layout, shared by
 * json_grammar_compile.c (which builds it) and json_grammar_match.c (which
 * walks it). Not part of the engine's interface.
 *
 * Nodes live in one array and refer to each other by index. Nodes 0-2 are
 * fixed: any JSON value, the literals {false,true}, the literal {null}.
 * Literal sets and property names are sorted byte strings in one pool, so
 * that the candidates sharing a prefix are contiguous: matching keeps the
 * first such candidate and the prefix length.
 */
#ifndef HEARTH_JSON_GRAMMAR_INTERNAL_H
#define HEARTH_JSON_GRAMMAR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_grammar.h"

enum { JT_NULL = 1, JT_BOOL = 2, JT_INT = 4, JT_NUM = 8, JT_STR = 16, JT_ARR = 32, JT_OBJ = 64,
       JT_ALL = 127 };

enum { JN_TYPES, JN_ANYOF, JN_LITS, JN_REF };

enum { JG_ANY = 0, JG_BOOLS = 1, JG_NULL = 2 };

typedef struct jg_span {
    uint32_t off, len; /* bytes in jgram.pool */
} jg_span;

typedef struct jg_prop {
    jg_span name; /* the key as written in canonical JSON, without quotes */
    int32_t node;
} jg_prop;

typedef struct jg_node {
    uint8_t kind;        /* JN_* */
    uint8_t types;       /* JN_TYPES: JT_* mask */
    int32_t ref;         /* JN_REF: target node */
    uint32_t first, n;   /* JN_ANYOF: alts; JN_LITS: lits; JN_TYPES: props */
    uint64_t required;   /* bit i: props[first + i] is required */
    int32_t addl;        /* node of extra properties' values, -1 = none allowed */
    int32_t items;       /* node of array items */
    uint32_t min_items, max_items;
    uint32_t min_len, max_len; /* string length in code points */
    uint8_t bounded;     /* minimum/maximum given: integers in [lo, hi] only */
    int64_t lo, hi;      /* within +-JG_NUM_LIMIT */
} jg_node;

/* The largest magnitude a bounded number may have (18 digits). */
#define JG_NUM_LIMIT 999999999999999999LL

struct jgram {
    jg_node *nodes;
    uint32_t nnodes, cap_nodes;
    jg_prop *props;
    uint32_t nprops, cap_props;
    jg_span *lits;
    uint32_t nlits, cap_lits;
    int32_t *alts;
    uint32_t nalts, cap_alts;
    char *pool;
    uint32_t npool, cap_pool;
    int32_t root;
};

/* The schema reader's tree (json_grammar_read.c). */
typedef struct jgram_jv {
    char t;               /* 'o' 'a' 's' 'n' 't' 'f' 'z'(null) */
    char *s;              /* string (decoded UTF-8) or number (as written) */
    size_t len;
    size_t n;             /* members or elements */
    struct jgram_jv *kid; /* n values */
    char **key;           /* object: n decoded keys ... */
    size_t *klen;         /* ... and their lengths */
} jgram_jv;

/* Parse len bytes into *out (0), or -1 with *stop the byte where reading
 * stopped and *too_deep set when JGRAM_MAX_NESTING was passed. */
int jgram_jv_parse(const char *text, size_t len, jgram_jv *out, size_t *stop, bool *too_deep);
void jgram_jv_free(jgram_jv *v);
/* The member named key of object o, or NULL. */
const jgram_jv *jgram_jv_get(const jgram_jv *o, const char *key);

#endif
