/* json_read.c - see json_read.h. */
#include "json_read.h"

json_t *json_read_given(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

bool json_read_present(const json_t *v) { return v && !json_is_null(v); }

const char *json_read_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

int json_read_oom(api_err *err)
{
    return api_fail(err, 500, NULL, NULL, "out of memory while reading the request");
}
