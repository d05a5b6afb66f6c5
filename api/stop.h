/* stop.h - stop strings over a stream of generated text.
 *
 * The generated text arrives one token piece at a time; a stop string may
 * span several pieces. The matcher holds back the end of the text while it
 * could still be the start of a stop string, so that a stop string never
 * reaches the client, not even partly:
 *
 *   stop ["\n\nUser:"]; feed "Hello" -> emit "Hello"; feed "\n" -> emit "";
 *   feed "\n" -> ""; feed "Us" -> ""; feed "er:" -> "" and stopped.
 *   With "Sure" as the last piece instead: emit "\n\nUsSure".
 *
 * The stop string that is complete first, reading the text byte by byte,
 * wins (on the same byte the longer one), and the text is cut right before
 * it; this does not depend on how the text is cut into pieces. Emitted text also never ends inside a UTF-8
 * character: an incomplete multi-byte sequence at the end is held back until
 * it completes (bytes that cannot start or continue a character are passed
 * through as they are; the renderer shows them as U+FFFD). When generation
 * ends for another reason (length, end of sequence), api_stop_flush hands
 * out what was held back. With no stop strings the matcher only does the
 * UTF-8 holding, so the daemon can always run its text through one.
 *
 * Cost: O(1) amortised per byte and stop string (one Knuth-Morris-Pratt
 * automaton per stop string); the held-back text is shorter than the
 * longest stop string (or up to 3 bytes of an incomplete character).
 */
#ifndef HEARTH_API_STOP_H
#define HEARTH_API_STOP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct api_stop api_stop;

typedef struct api_stop_out {
    const char *text; /* bytes safe to send now; valid until the next call
                         on the matcher */
    size_t len;
    int stop;         /* index (in the array given to api_stop_new) of the
                         stop string that matched in this call, else -1 */
} api_stop_out;

/* Copies the stop strings; empty ones are skipped (they would match
 * everywhere). n may be 0. Returns 0, or -1 when out of memory. */
int api_stop_new(const char *const *stops, size_t n, api_stop **out);
void api_stop_free(api_stop *m);

/* Feed the next piece (len may be 0). Returns 0, or -1 when out of memory
 * (the matcher is then stopped and emits nothing more). After a stop
 * matched, further feeds emit nothing. */
int api_stop_feed(api_stop *m, const char *piece, size_t len,
                  api_stop_out *out);

/* Generation ended without a stop string: everything held back. Afterwards
 * the matcher is stopped. */
void api_stop_flush(api_stop *m, api_stop_out *out);

/* True once a stop string matched (or after a flush / an allocation
 * failure). */
bool api_stop_done(const api_stop *m);

/* ---- UTF-8 helpers (also used by the renderer) ---- */

/* The length of the longest prefix of s (len bytes) that does not end
 * inside an incomplete UTF-8 character that more bytes could complete. */
size_t api_utf8_complete_len(const char *s, size_t len);

/* The character at s (len >= 1): returns its length and sets *valid, or,
 * for bytes that are not valid UTF-8 (as jansson defines it: no overlong
 * forms, surrogates or code points above U+10FFFF), the length of the
 * maximal invalid subpart (>= 1) with *valid false - the bytes one U+FFFD
 * stands for. */
size_t api_utf8_next(const char *s, size_t len, bool *valid);

#endif
