/* json_mask.h - the token-level mask of constrained decoding: which tokens
 * of a vocabulary may come next so that the output stays a valid document
 * of a JSON Schema (the second layer over engine/json_grammar.h; see
 * docs/constrained-decoding.md).
 *
 * Precomputed once per vocabulary (jmask_vocab_new):
 *  - every normal token's bytes as a streamed generation emits them
 *    (tok_piece: SentencePiece "▁" is a space, <0xNN> byte tokens one byte,
 *    byte-level BPE mapped back to raw bytes), in a byte trie laid out in
 *    depth-first order with a skip index per node, so a refused byte drops
 *    the whole subtree at once;
 *  - for each token, whether it is "plain string content" (no '"', '\\'
 *    or control byte, valid UTF-8 from a character boundary, possibly
 *    ending inside a character) and how many code points it starts; the
 *    non-plain tokens get a second, much smaller trie.
 * Control, user-defined, unknown and unused tokens and tokens with no bytes
 * are never allowed; end-of-generation tokens (tok_is_eog) are allowed
 * exactly when the document is complete (jgram_accepting).
 *
 * jmask_compute walks the trie from the current state with one state per
 * depth: a token is allowed iff feeding all its bytes from st succeeds, so
 * the mask equals feeding every token (tokens spanning several grammar
 * symbols and partial UTF-8 included). Inside a string body (most of a
 * document's tokens) the plain tokens come from the table and only the
 * small trie is walked. With several anyOf alternatives alive each is
 * masked alone and the masks united (exact unless forks pass
 * JGRAM_MAX_THREADS), so a string alternative keeps the table.
 *
 * A jmask_vocab is read-only after jmask_vocab_new: any number of threads
 * may compute masks with it at once.
 */
#ifndef HEARTH_JSON_MASK_H
#define HEARTH_JSON_MASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_grammar.h"
#include "tok.h"

typedef struct jmask_vocab jmask_vocab;

/* Precompute for v (which must outlive nothing: the bytes are copied).
 * 0, or -1 when out of memory. */
int jmask_vocab_new(const tok_vocab *v, jmask_vocab **out);
void jmask_vocab_free(jmask_vocab *mv);

int32_t jmask_n_vocab(const jmask_vocab *mv);
/* The bytes token id adds to the output (*len of them; not NUL-terminated),
 * or NULL for a token that is never allowed inside JSON (control, EOG,
 * empty, bad id). */
const uint8_t *jmask_token_bytes(const jmask_vocab *mv, int32_t id, size_t *len);

/* allowed[0..n_vocab): 1 where the token may come next from st, 0 where
 * not. Returns the number allowed, or -1 when out of memory (the walk's
 * state stack is allocated per call). */
long jmask_compute(const jmask_vocab *mv, const jgram *g, const jgram_state *st,
                   uint8_t *allowed);

/* logits[i] = -INFINITY where !allowed[i]. (Alternatively pass the banned
 * ids as sampler_bias entries of -INFINITY; this is cheaper per step.) */
void jmask_apply(float *logits, int32_t n_vocab, const uint8_t *allowed);

/* Feed an accepted token's bytes (jmask_token_bytes) into *st: true, or
 * false with *st unchanged when some byte is refused. */
bool jmask_advance(const jgram *g, jgram_state *st, const uint8_t *bytes, size_t len);

#endif
