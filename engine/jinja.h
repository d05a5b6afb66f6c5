/* jinja.h - a small Jinja2 interpreter for chat templates.
 *
 * Renders the subset of Jinja2 that GGUF `tokenizer.chat_template` texts
 * use, set up the way Hugging Face transformers sets up its environment:
 * trim_blocks and lstrip_blocks on, keep_trailing_newline off, the
 * loop-controls extension (break/continue), a `tojson` filter that keeps
 * non-ASCII text, the `generation` tag, and the globals raise_exception()
 * and strftime_now(). What is not supported is listed in
 * docs/chat-templates.md.
 *
 * A template is parsed once into an immutable tree (jinja_template) that
 * any number of threads may render at the same time, each with its own
 * jinja_ctx. A context owns every value made while building the variables
 * and rendering (one arena, freed with the context), so values need no
 * individual freeing.
 *
 * Every input, however broken, ends in a result or an error: the parser
 * caps nesting depth, and a render is bounded by a step budget, an output
 * cap and a memory cap (jinja_limits).
 */
#ifndef HEARTH_JINJA_H
#define HEARTH_JINJA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct jinja_template jinja_template;
typedef struct jinja_ctx jinja_ctx;
typedef struct jinja_value jinja_value; /* opaque handle into a ctx */

/* Parse `len` bytes of template text. 0 on success; -1 with "line N: ..."
 * in err on a syntax error. Unknown filters and tests are reported when a
 * render reaches them, as Jinja2 does. */
int jinja_parse(const char *src, size_t len, jinja_template **out, char *err,
                size_t errlen);
void jinja_free(jinja_template *t);

typedef struct jinja_limits {
    size_t max_output;  /* bytes of rendered text; 0 = 64 MiB */
    size_t max_memory;  /* bytes of values made by one render; 0 = 512 MiB */
    uint64_t max_steps; /* evaluation steps (loop bodies, expressions,
                         * bytes copied / 64); 0 = 100 million */
    int max_depth;      /* nesting of macro calls; 0 = 64 */
} jinja_limits;

/* A render context. limits may be NULL (defaults). `now` is the time
 * strftime_now() formats (local time); pass 0 for the current time. */
jinja_ctx *jinja_ctx_new(const jinja_limits *limits, time_t now);
void jinja_ctx_free(jinja_ctx *c);

/* Value builders. Each returns NULL when the context's memory cap is hit
 * (the render that follows then fails with that message). Strings are
 * copied. */
jinja_value *jinja_none(jinja_ctx *c);
jinja_value *jinja_bool(jinja_ctx *c, bool b);
jinja_value *jinja_int(jinja_ctx *c, int64_t i);
jinja_value *jinja_str(jinja_ctx *c, const char *s, size_t len);
/* A value from JSON text (objects keep their key order); NULL with err
 * filled on malformed JSON or when memory runs out. */
jinja_value *jinja_json(jinja_ctx *c, const char *text, size_t len, char *err,
                        size_t errlen);
jinja_value *jinja_list(jinja_ctx *c);
jinja_value *jinja_dict(jinja_ctx *c);
/* Append to a list / set a key of a dict; -1 when the container has the
 * wrong type or memory is exhausted. */
int jinja_list_push(jinja_ctx *c, jinja_value *list, const jinja_value *v);
int jinja_dict_set(jinja_ctx *c, jinja_value *dict, const char *key,
                   const jinja_value *v);
/* Copy the members of dict `from` into dict `to`; -1 if either is not a
 * dict or memory is exhausted. */
int jinja_dict_merge(jinja_ctx *c, jinja_value *to, const jinja_value *from);
/* Define a top-level template variable (messages, bos_token, ...). */
int jinja_set_var(jinja_ctx *c, const char *name, const jinja_value *v);

/* Render with the variables set on the context. Returns a malloc'd,
 * NUL-terminated string (the caller frees it; *outlen gets its length when
 * outlen is non-NULL) or NULL with err filled: the plain message for a
 * template's raise_exception(), "line N: ..." for other errors. A context
 * is meant for one render: a template may change the values it was given
 * (list.append, namespace attributes), and a second render would see that. */
char *jinja_render(const jinja_template *t, jinja_ctx *c, size_t *outlen,
                   char *err, size_t errlen);

#endif
