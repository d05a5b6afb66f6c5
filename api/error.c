/* error.c - see error.h. */
#include "error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* jansson refuses strings that are not valid UTF-8; error messages may echo
 * client bytes (a path, a field name), so those are replaced by '?'. */
static json_t *safe_string(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        copy[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    copy[n] = '\0';
    j = json_string(copy);
    free(copy);
    return j;
}

const char *api_error_type_for_status(unsigned status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

char *api_error_json(unsigned status, const char *type, const char *message,
                     const char *param, const char *code)
{
    json_t *err = json_pack("{s:o, s:s, s:o, s:o}",
                            "message", safe_string(message ? message : ""),
                            "type", type ? type : api_error_type_for_status(status),
                            "param", param ? safe_string(param) : json_null(),
                            "code", code ? safe_string(code) : json_null());
    if (!err)
        return NULL;
    json_t *root = json_pack("{s:o}", "error", err);
    if (!root)
        return NULL;
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

const char *api_json_error_text(const json_error_t *je)
{
    if (json_error_code(je) == json_error_null_character)
        return "\\u0000 (the NUL character) is not allowed in strings";
    return je->text;
}
