/* json_grammar.h - a JSON Schema compiled to a byte-level matcher, the first
 * layer of constrained decoding (docs/constrained-decoding.md).
 *
 * jgram_compile() reads a JSON Schema (its own small JSON reader: the engine
 * does not link jansson) and builds a graph of nodes: a set of allowed JSON
 * types with their object/array/string constraints, a sorted set of literal
 * byte strings (enum/const, true/false/null), or a choice (anyOf/oneOf).
 * Every keyword that constrains and is not supported is a compile error
 * naming it and its JSON pointer; annotations are accepted and ignored.
 *
 * A jgram_state follows one output byte by byte. It is a value type of
 * bounded size (a few threads, each a bounded stack of frames), so the
 * caller may copy it with jgram_state_copy() to try bytes without committing.
 * Threads exist because anyOf is nondeterministic: each alternative that is
 * still possible is one thread; a byte keeps the threads that accept it.
 *
 * Contract:
 *  - jgram_feed() returns false and leaves the state unchanged when the byte
 *    cannot continue any valid document; otherwise it advances the state.
 *  - jgram_allowed_bytes() gives exactly the bytes jgram_feed() accepts.
 *  - jgram_accepting() is true when the bytes so far form a complete valid
 *    document (a number may still be extended: "1" is complete, "12" too).
 *  - Whitespace: none before the top-level value or after it; between the
 *    structural tokens of objects and arrays at most JGRAM_WS_MAX bytes of
 *    ' ' or '\n' in a row. Unbounded whitespace lets a weak model loop.
 *  - Feeding a byte costs O(threads * depth), never more.
 * The grammar is immutable after compile: one jgram may serve many states
 * on many threads at once.
 */
#ifndef HEARTH_JSON_GRAMMAR_H
#define HEARTH_JSON_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JGRAM_MAX_DEPTH 24       /* nesting of objects/arrays/strings in the output */
#define JGRAM_MAX_THREADS 8      /* anyOf alternatives alive at once */
#define JGRAM_WS_MAX 2           /* whitespace bytes in a row between tokens */
#define JGRAM_NUM_MAX 32         /* bytes in one number */
#define JGRAM_MAX_SCHEMA (256u * 1024u) /* schema text, bytes */
#define JGRAM_MAX_NESTING 64     /* schema JSON nesting */
#define JGRAM_MAX_NODES 4096     /* compiled nodes */
#define JGRAM_MAX_PROPS 64       /* declared properties in one object schema */
#define JGRAM_MAX_LITS 256       /* values in one enum */

typedef struct jgram jgram;

typedef enum jgram_status {
    JGRAM_OK = 0,
    JGRAM_EJSON,        /* the schema text is not JSON */
    JGRAM_EUNSUPPORTED, /* a keyword or form this compiler does not handle */
    JGRAM_EINVALID,     /* malformed or unsatisfiable schema */
    JGRAM_ELIMIT,       /* over one of the JGRAM_MAX_* limits */
    JGRAM_ENOMEM,
} jgram_status;

/* One frame of a thread's stack: private to json_grammar_match.c. */
typedef struct jgram_frame {
    uint8_t kind, sub;   /* what is being matched and where in it */
    uint8_t u8rem;       /* string: UTF-8 continuation bytes still due */
    uint8_t u8lo, u8hi;  /* string: range of the next continuation byte */
    uint8_t hexn;        /* string: hex digits of a \u escape read */
    uint8_t flags;       /* string: surrogate/key-match bits; number: int only */
    uint8_t pad;
    int32_t node;        /* the schema node matched */
    int32_t prop;        /* object: property whose value comes next (-1 extra) */
    uint32_t n;          /* array items, string chars, literal/number bytes */
    uint32_t lo;         /* literal or key: first candidate still matching */
    uint32_t kpos;       /* key: bytes matched against the candidate */
    uint32_t hex;        /* string: \u value so far */
    uint64_t seen;       /* object: declared properties present */
} jgram_frame;

typedef struct jgram_thread {
    uint8_t depth;     /* frames in use */
    uint8_t ws;        /* whitespace bytes in the current run */
    uint8_t root_done; /* the top-level value is complete */
    uint8_t pad;
    jgram_frame f[JGRAM_MAX_DEPTH];
} jgram_thread;

typedef struct jgram_state {
    uint32_t n; /* live threads; 0 only in a dead state, which feed never makes */
    jgram_thread t[JGRAM_MAX_THREADS];
} jgram_state;

/* Compile schema_json (len bytes). On success *out owns the grammar (free it
 * with jgram_free). On failure *out is NULL and err holds one line, e.g.
 * "unsupported schema keyword 'pattern' at /properties/id". */
jgram_status jgram_compile(const char *schema_json, size_t len, jgram **out, char *err,
                           size_t errlen);

/* The grammar of any JSON object ("json_object" mode); NULL when out of memory. */
jgram *jgram_any_object(void);

void jgram_free(jgram *g);

void jgram_init(const jgram *g, jgram_state *st);
/* Copy only the live part of src. */
void jgram_state_copy(jgram_state *dst, const jgram_state *src);
bool jgram_feed(const jgram *g, jgram_state *st, uint8_t byte);
bool jgram_accepting(const jgram *g, const jgram_state *st);
void jgram_allowed_bytes(const jgram *g, const jgram_state *st, bool out[256]);
/* jgram_feed from src into dst (src unchanged, dst overwritten either way):
 * saves the copy when the caller keeps one state per depth of a walk. */
bool jgram_feed_to(const jgram *g, const jgram_state *src, uint8_t byte, jgram_state *dst);
/* True when every thread of st is inside a string body (a value, or an
 * extra key that no longer matches a declared name) at a character
 * boundary, outside an escape: then bytes that are plain string content
 * (no '"', '\\' or control byte, valid UTF-8 from a boundary) are accepted
 * iff they hold at most *room more code points (the most any thread
 * allows). The token mask uses it to take such tokens from a precomputed
 * table (engine/json_mask.h). */
bool jgram_string_room(const jgram *g, const jgram_state *st, uint32_t *room);

#endif
