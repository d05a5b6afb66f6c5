/* tok.h - tokenizers built from GGUF metadata: SentencePiece ("llama"),
 * byte-level BPE ("gpt2") with the pre-tokenizer variants named by
 * tokenizer.ggml.pre, and WordPiece ("bert"), plus streaming
 * detokenization that never emits a partial UTF-8 sequence.
 *
 * The behaviour follows llama.cpp's (the reference the test vectors come
 * from): same special-token partitioning, same merge order, same byte
 * fallback. Unigram ("t5") and RWKV vocabularies are refused at load.
 * Only WordPiece normalises the text (accents stripped, lower-cased,
 * see tok_wpm.c), so only WordPiece is lossy: decoding gives the
 * normalised words separated by spaces.
 *
 * A loaded vocabulary is read-only: any number of threads may encode and
 * decode with it at once.
 */
#ifndef HEARTH_TOK_H
#define HEARTH_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct tok_vocab tok_vocab;

enum tok_kind { TOK_KIND_SPM = 1, TOK_KIND_BPE = 2, TOK_KIND_WPM = 3 };

/* Build from tokenizer.ggml.* metadata. The vocabulary copies what it
 * needs, so the gguf_file may be closed afterwards. -1 + message on error
 * (unknown model/pre-tokenizer, missing or inconsistent arrays). */
int tok_load(const gguf_file *f, tok_vocab **out, char *err, size_t errlen);
void tok_free(tok_vocab *v);

int tok_kind(const tok_vocab *v);
const char *tok_pre_name(const tok_vocab *v); /* e.g. "llama-bpe", "default" */
int32_t tok_n_vocab(const tok_vocab *v);
int32_t tok_bos(const tok_vocab *v); /* -1 when the model has none */
int32_t tok_eos(const tok_vocab *v);
bool tok_add_bos_default(const tok_vocab *v); /* tokenizer.ggml.add_bos_token */
/* tokenizer.ggml.add_eos_token: tok_encode never appends EOS itself; a
 * caller that honours this flag appends tok_eos(). */
bool tok_add_eos_default(const tok_vocab *v);
/* End of generation: eos, eot, eom and similar control tokens. */
bool tok_is_eog(const tok_vocab *v, int32_t id);
/* Control tokens: declared so, plus what marks structure whatever the
 * converter declared (the BOS/EOS/EOT/EOM ids, SentencePiece's <s> and
 * </s>, turn ends and fill-in-the-middle markers as llama.cpp lists
 * them). The unknown token is not one. */
bool tok_is_control(const tok_vocab *v, int32_t id);
/* User-defined tokens: added to the vocabulary and matched whole in any
 * text (Qwen's <tool_call>, Gemma's <start_of_turn>, MPT's runs of
 * spaces). */
bool tok_is_user_defined(const tok_vocab *v, int32_t id);
/* Markup tokens mark structure rather than spell text: control and
 * unknown tokens, and user-defined ones except those that are one
 * character or only whitespace (runs of spaces and newlines, byte
 * characters), which are text. */
bool tok_is_markup(const tok_vocab *v, int32_t id);
enum { TOK_MARKUP_CONTROL = 1, /* control and unknown tokens */
       TOK_MARKUP_USER = 2,    /* user-defined markup tokens */
       TOK_MARKUP_ALL = 3 };
/* The leftmost place in text[0..len) where the text of a markup token of
 * the kinds `which` asks for starts, and the longest such token there:
 * returns its offset and sets *id and *tlen (its text's length), or
 * returns len when the text holds none. Cost: one table look-up per byte,
 * and a comparison with each markup text that starts with that byte. */
size_t tok_markup_find(const tok_vocab *v, const char *text, size_t len, int which,
                       int32_t *id, size_t *tlen);
/* Id of an exact token text, or -1 (used to find e.g. "<|im_end|>"). */
int32_t tok_find(const tok_vocab *v, const char *text);
/* The token's text as stored in the vocabulary (not NUL-terminated; e.g.
 * "<s>" to render a chat template's bos_token), or NULL for a bad id. */
const char *tok_text(const tok_vocab *v, int32_t id, size_t *len);

/* Tokenize `len` bytes of text. add_bos prepends BOS when the model has one
 * (callers usually pass tok_add_bos_default()); parse_special matches
 * special/control token texts as whole tokens (chat templates do, user text
 * does not; user-defined tokens are matched either way, as llama.cpp
 * does). Without parse_special no control token ever comes out: text that
 * reads like one is spelled with text tokens (SentencePiece, BPE and
 * WordPiece never take a control token for a piece of text). Writes at
 * most max_out ids and returns the total count the text
 * needs (call again with a larger buffer when it exceeds max_out), or -1
 * on bad arguments or out of memory. Text that is not valid UTF-8 is
 * accepted: SentencePiece spells bad bytes with byte tokens, byte-level
 * BPE replaces each with U+FFFD, WordPiece drops them (as llama.cpp
 * does). */
int tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t *out, int max_out);
/* tok_encode into a malloc'd array of exactly the ids the text needs
 * (*out, the caller frees it). Returns the count, or -1 (nothing
 * allocated) on bad arguments or out of memory. */
int tok_encode_alloc(const tok_vocab *v, const char *text, size_t len, bool add_bos,
                     bool parse_special, int32_t **out);

/* A byte range [off, off + len) of a text. */
typedef struct tok_span {
    size_t off, len;
} tok_span;

/* tok_encode_alloc with special parsing, except that no special or
 * user-defined token is matched where its text would overlap one of the
 * n_plain `plain` spans (sorted by offset, not overlapping; a span of
 * length 0 is a cut no match may run across): the text there is
 * tokenized as text, in one piece with the text around it, as if its
 * bytes were not special. A chat prompt marks so the texts of special
 * tokens that came from a message (engine/prompt.c). Returns the count,
 * or -1 (nothing allocated) on bad arguments, including spans out of
 * order or outside the text, or out of memory. */
int tok_encode_plain(const tok_vocab *v, const char *text, size_t len, bool add_bos,
                     const tok_span *plain, size_t n_plain, int32_t **out);

/* The bytes a token stands for when detokenized (SentencePiece and
 * WordPiece "▁" turned to spaces, byte tokens <0xNN> to their byte,
 * byte-level BPE mapped back to raw bytes). Control tokens render as
 * empty unless `special` is true. Returns the byte count written
 * (<= cap), or the needed size when larger (nothing useful is written
 * then), or -1 for an id outside the vocabulary. */
int tok_piece(const tok_vocab *v, int32_t id, bool special, char *buf,
              size_t cap);

/* Whole-sequence detokenization: the pieces of ids[0..n) concatenated. For
 * SentencePiece with add_space_prefix, the space the encoder put in front
 * of the text is dropped from the first non-empty piece, so that
 * tok_decode(tok_encode(s)) == s. WordPiece likewise drops the first
 * word's space and gives the normalised words separated by spaces
 * ("Hello, World!" -> "hello , world !"). Writes at most cap bytes and
 * returns the total length (call again when larger than cap), or -1 on a
 * bad id. The output is not NUL-terminated and may hold partial UTF-8 if
 * the ids do. */
long tok_decode(const tok_vocab *v, const int32_t *ids, size_t n,
                bool special, char *buf, size_t cap);

/* Streaming detokenizer: feed ids one at a time; text comes out only once
 * the UTF-8 sequences are complete, so every chunk is valid UTF-8. Bytes
 * that can never form a valid sequence come out as U+FFFD (one per
 * maximal ill-formed subpart). Control tokens render as nothing. The
 * caller owns the struct; there is nothing to free.
 */
typedef struct tok_stream {
    const tok_vocab *v;
    char pending[8]; /* bytes of an incomplete UTF-8 sequence (<= 3) */
    int n_pending;
    bool first;       /* nothing emitted yet */
    bool strip_space; /* drop a leading space from the first text: set it
                       * after init to decode a SentencePiece sequence from
                       * its very start (as tok_decode does); leave it off
                       * for a continuation such as generated text */
} tok_stream;

void tok_stream_init(tok_stream *s, const tok_vocab *v);
/* Appends complete UTF-8 text to out (cap bytes); returns bytes written,
 * or -1 when cap is too small, in which case nothing was consumed (call
 * again with more room). cap >= 3 * (piece length + 4) always suffices;
 * 64 + piece length does for any piece that is valid UTF-8. Also -1 for an
 * id outside the vocabulary (nothing consumed). */
int tok_stream_push(tok_stream *s, int32_t id, char *out, size_t cap);
/* Whatever is still pending at the end (an incomplete sequence becomes
 * one U+FFFD): returns bytes written (0 or 3), or -1 when cap < 3. */
int tok_stream_flush(tok_stream *s, char *out, size_t cap);

#endif
