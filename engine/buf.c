/* buf.c - see buf.h. */
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int buf_append(char **data, size_t *len, size_t *cap, const void *s, size_t n,
               size_t first_cap)
{
    if (n > SIZE_MAX / 2 - *len)
        return -1;
    if (*len + n + 1 > *cap || !*data) {
        size_t c = *cap ? *cap : (first_cap ? first_cap : 64);
        while (c < *len + n + 1)
            c *= 2;
        char *grown = realloc(*data, c);
        if (!grown)
            return -1;
        *data = grown;
        *cap = c;
    }
    if (n)
        memcpy(*data + *len, s, n);
    *len += n;
    (*data)[*len] = '\0';
    return 0;
}
