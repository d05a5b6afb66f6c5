/* json_read.h - the small readers every dialect's parser shares (request.c,
 * request_tools.c, messages_parse.c, messages_tools.c, responses_parse.c,
 * responses_tools.c): a field that may be absent or null, the name of a
 * value's kind for "(got ...)" in messages, and the out-of-memory error. */
#ifndef HEARTH_JSON_READ_H
#define HEARTH_JSON_READ_H

#include <jansson.h>
#include <stdbool.h>

#include "request.h"

/* The value of key in obj, NULL when absent or JSON null. */
json_t *json_read_given(json_t *obj, const char *key);
/* Whether v is a value other than JSON null. */
bool json_read_present(const json_t *v);
/* "an object", "a string", "null", ... */
const char *json_read_kind(const json_t *v);
/* A 500 "out of memory while reading the request" in err; -1. */
int json_read_oom(api_err *err);

#endif
