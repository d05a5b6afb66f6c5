/* forward.h - the request body hearthd sends to a cloud upstream.
 *
 * forward_body takes the client's JSON body for POST /v1/chat/completions
 * or /v1/completions as it was received and writes the body to forward:
 *
 *   - "model" is the upstream's model name;
 *   - a streamed request ("stream": true) gets
 *     "stream_options": {"include_usage": true}, so that the upstream
 *     reports the tokens it used (hearth's budgets count them); whether the
 *     client had asked for that itself is reported, and when it had not,
 *     the relay drops the usage chunk again (relay.h, drop_usage);
 *   - with a privacy set and a map, every text a client supplies is
 *     scanned and its hits replaced by placeholders (privacy_redact, one
 *     map for the whole request): messages[*].content when a string, the
 *     "text" of its parts of type "text" when an array (images, audio and
 *     other parts are left alone), assistant messages'
 *     tool_calls[*].function.arguments, for every role; for completions
 *     "prompt" (a string or an array of strings; token ids are left alone)
 *     and "suffix". Tool definitions, response_format schemas and the
 *     other parameters are the application's, not the user's, and are not
 *     scanned.
 *
 * Everything else is forwarded as the client sent it. Numbers keep their
 * values but may change their spelling (jansson writes reals with 17
 * significant digits: 0.7 becomes 0.69999999999999996, the same double).
 *
 * Fail closed: when a custom pattern fails while matching
 * (PRIVACY_EMATCH), a text was not fully scanned and FORWARD_EUNSCANNED
 * is returned instead of a body, so the request is kept local rather than
 * sent out unredacted. Nothing here logs, and error messages never quote
 * the body.
 */
#ifndef HEARTH_ROUTER_FORWARD_H
#define HEARTH_ROUTER_FORWARD_H

#include <stdbool.h>
#include <stddef.h>

#include "router/privacy.h"

typedef enum forward_status {
    FORWARD_OK = 0,
    FORWARD_EBODY,      /* the body is not JSON, or not an object */
    FORWARD_EUNSCANNED, /* a text could not be fully scanned: keep it local */
    FORWARD_ENOMEM
} forward_status;

typedef struct forward_result {
    char *body;              /* malloc'd, NUL-terminated; the caller frees */
    size_t len;
    bool stream;             /* the client asked for a stream */
    bool client_wants_usage; /* ... and for stream_options.include_usage */
    unsigned kinds;          /* bit (1u << kind) per privacy_kind redacted */
} forward_result;

/* body: len bytes of the client's request. set and map: both non-NULL to
 * redact (the map then holds the placeholders the relay restores), else
 * NULL. On an error *res is zeroed and err holds one line (body bytes are
 * never quoted). */
forward_status forward_body(const char *body, size_t len,
                            const char *upstream_model,
                            const privacy_set *set, privacy_map *map,
                            forward_result *res, char *err, size_t errlen);

#endif
