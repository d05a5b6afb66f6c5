/* relay.h - an upstream's answer turned into what the client receives.
 *
 * Streaming (relay_new/relay_feed/relay_finish): the upstream's body, a
 * server-sent event stream ("data: {chunk}" events, "data: [DONE]" at the
 * end, maybe ": comment" keep-alives, "event:" lines, LF or CRLF line
 * ends), is fed in pieces cut anywhere. The relay splits it into events
 * and queues, for each complete one, what the client should get:
 *
 *   - an event that needs no change goes out byte for byte as received:
 *     keep-alive comments, and every chunk when no map was given;
 *   - with a privacy map, choices[i].delta.content, choices[i].text and
 *     choices[i].delta.tool_calls[k].function.arguments each pass through
 *     a privacy_restorer of their own (per choice index, field and tool
 *     call index), so a placeholder split across chunks is restored whole;
 *     text that could still be the start of a placeholder is held back
 *     and goes out with the choice's chunk whose finish_reason is not
 *     null, or, without one, as an extra chunk (the last chunk's id,
 *     object, created and model) before [DONE]. A chunk whose text
 *     changed is re-serialized compactly (its other lines, such as
 *     "event:", kept); one whose text did not goes out as received;
 *   - "usage" objects are captured (relay_get_usage); with drop_usage (the
 *     client did not ask for usage, hearth did for its budgets) a chunk
 *     with usage and no choices is not forwarded, and one with both loses
 *     its "usage" member; "usage": null is left alone;
 *   - "data: [DONE]" is forwarded and ends the stream cleanly; whatever
 *     follows is ignored. A chunk that carries an "error" object (the
 *     upstream's own error event) is forwarded as is, followed by
 *     "data: [DONE]", and ends the stream too (RELAY_EUPSTREAM).
 *
 * Failures end the stream with one error event in the shape the OpenAI
 * SDKs raise as an APIError (openai-node and openai-python throw on a
 * chunk whose "error" member is set, when the event has no "event:" name),
 * then "data: [DONE]":
 *
 *   data: {"error":{"message":"...","type":"server_error","param":null,"code":"upstream_error"}}
 *
 * The message is relay_strerror's and never holds upstream bytes. The
 * failures: data that is not a JSON object (RELAY_EMALFORMED), an event of
 * more than RELAY_MAX_EVENT bytes (RELAY_ETOOBIG; no more than that is
 * ever buffered), a body that ends without [DONE] (RELAY_EEARLY) or a
 * transfer that failed (RELAY_ETRANSFER), and out of memory
 * (RELAY_ENOMEM; the error event may then be missing too). Afterwards all
 * input is ignored.
 *
 * Output is queued inside the relay, whole events only: relay_pending
 * shows it, relay_consume drops what was sent. relay_produced tells
 * whether anything from the upstream reached the queue (an event with
 * data: a chunk or [DONE]; comments and the relay's own error event do
 * not count), so that the daemon can still answer locally when the
 * upstream fails before that.
 *
 * Limits: a lone CR does not end a line (LF and CRLF do); an "id:" or
 * "retry:" field is forwarded but not interpreted; reasoning fields
 * (delta.reasoning_content and the like) and error messages are not
 * restored. Nothing here logs.
 */
#ifndef HEARTH_ROUTER_RELAY_H
#define HEARTH_ROUTER_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "router/privacy.h"

/* The most bytes one event may have, its line ends included. */
#define RELAY_MAX_EVENT (1024 * 1024)

typedef enum relay_status {
    RELAY_OK = 0,     /* streaming (relay_feed), or relayed (relay_json) */
    RELAY_DONE,       /* [DONE] arrived: a clean end */
    RELAY_EUPSTREAM,  /* the upstream sent an error event (forwarded) */
    RELAY_EMALFORMED, /* an event's data was not a JSON object */
    RELAY_ETOOBIG,    /* an event larger than RELAY_MAX_EVENT */
    RELAY_EEARLY,     /* the body ended without [DONE] */
    RELAY_ETRANSFER,  /* the transfer failed before [DONE] */
    RELAY_ENOMEM
} relay_status;

/* The message of the error event (and a log line's reason). */
const char *relay_strerror(relay_status st);

/* What the upstream said it used, and what was relayed. */
typedef struct relay_usage {
    bool seen;                 /* a "usage" object arrived */
    long long prompt_tokens;   /* its members (0 when absent) */
    long long completion_tokens;
    long long total_tokens;
    size_t content_bytes;      /* bytes of content, text and tool call
                                  arguments sent to the client, restored */
} relay_usage;

typedef struct relay_opts {
    const privacy_map *map; /* the request's placeholders, or NULL */
    bool drop_usage;        /* the client did not ask for usage */
} relay_opts;

typedef struct relay relay;

/* NULL when out of memory. The map must outlive the relay. */
relay *relay_new(const relay_opts *opts);
void relay_free(relay *r);

/* The next len bytes of the upstream's body. Returns the state: RELAY_OK
 * while the stream goes on, else how it ended (the end's events are
 * queued). */
relay_status relay_feed(relay *r, const char *data, size_t len);
/* The body ended: transfer_ok false when the transfer failed. Returns
 * RELAY_DONE after a clean end, else the failure (RELAY_EEARLY or
 * RELAY_ETRANSFER when the stream had not ended before). */
relay_status relay_finish(relay *r, bool transfer_ok);
relay_status relay_state(const relay *r);

/* The queued bytes for the client (valid until the next call on r). */
const char *relay_pending(const relay *r, size_t *len);
/* Drop the first n queued bytes (n <= the pending length). */
void relay_consume(relay *r, size_t n);
bool relay_produced(const relay *r);
const relay_usage *relay_get_usage(const relay *r);

/* Non-streaming: a whole response body. choices[*].message.content,
 * choices[*].text and choices[*].message.tool_calls[*].function.arguments
 * are restored with the map (NULL: none); usage is captured into *u. A body
 * that is not a JSON object (an error page), or in which nothing changed,
 * is copied unchanged. *out is malloc'd and NUL-terminated. Returns
 * RELAY_OK or RELAY_ENOMEM. */
relay_status relay_json(const char *body, size_t len, const privacy_map *map,
                        char **out, size_t *out_len, relay_usage *u);

#endif
