/* buf.h - appending to a growable byte buffer, the one way the code base
 * does it: the buffer is a (data, len, cap) triple held by the caller (in
 * whatever struct it lives), grown by doubling, and always keeps a NUL
 * after its len bytes, so that text in it is a C string too. */
#ifndef HEARTH_BUF_H
#define HEARTH_BUF_H

#include <stddef.h>

/* Append n bytes of s (s may be NULL when n is 0). 0, or -1 when out of
 * memory (the buffer is unchanged). first_cap: the capacity of a buffer's
 * first allocation. */
int buf_append(char **data, size_t *len, size_t *cap, const void *s, size_t n,
               size_t first_cap);

#endif
