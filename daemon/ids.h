/* ids.h - the numbers behind response ids ("chatcmpl-<16 hex digits>",
 * api_format_id): unique within a process and, with overwhelming
 * probability, across processes and restarts.
 *
 * Each number is a 64-bit bijection (splitmix64's finaliser) of a
 * per-process random key plus a counter times an odd constant: no number
 * repeats within a process before 2^64 draws, and two processes (random
 * keys) share a number only by chance, about one pair in 2^64. Every hex
 * digit of the result varies, so ids from different runs differ
 * throughout, not in a few digits. Not a secret: the key is not
 * recoverable from one id, but nothing relies on that. */
#ifndef HEARTH_IDS_H
#define HEARTH_IDS_H

#include <stdint.h>

/* The next number; any thread. The key is drawn on the first call
 * (getrandom(2), or the clock and the pid where that fails). */
uint64_t ids_next(void);

/* The mixing alone, for tests: the number for key and counter n. */
uint64_t ids_mix(uint64_t key, uint64_t n);

/* system_fingerprint: "fp_" and 16 hex digits, a hash of the hearth
 * version and the model file (its name, size and modification time): the
 * same for the same build serving the same file, another when either
 * changes (a rebuilt or replaced model, an upgrade). A file that cannot
 * be read is hashed by its name alone. */
#define IDS_FP_MAX 24
void ids_fingerprint(char out[IDS_FP_MAX], const char *version, const char *model_path);

#endif
