/* error.h - the OpenAI error object:
 *   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
 */
#ifndef HEARTH_API_ERROR_H
#define HEARTH_API_ERROR_H

/* The OpenAI `type` conventionally used for an HTTP status. */
const char *api_error_type_for_status(unsigned status);

/* Render the error object as a malloc'd JSON string (NULL only when out of
 * memory). type NULL: derived from status; param/code NULL: JSON null. */
char *api_error_json(unsigned status, const char *type, const char *message,
                     const char *param, const char *code);

/* What a jansson parse error says, for an "invalid JSON: ..." message:
 * jansson's own text, except where that names a flag of jansson's API
 * rather than the problem (a \u0000 escape in a string). */
struct json_error_t;
const char *api_json_error_text(const struct json_error_t *je);

#endif
