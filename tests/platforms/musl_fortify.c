/* SPDX-License-Identifier: ISC */
/*
 * Debian's libbearssl.a is built with _FORTIFY_SOURCE, so it calls glibc's checked
 * copies, which musl does not have. The musl build of the platform matrix links these
 * three in their place; each does what glibc's does: abort on an overflow of the
 * destination, else the plain call.
 */
#include <stdlib.h>
#include <string.h>

void *__memcpy_chk(void *d, const void *s, size_t n, size_t dlen);
void *__memmove_chk(void *d, const void *s, size_t n, size_t dlen);
void *__memset_chk(void *d, int c, size_t n, size_t dlen);

void *__memcpy_chk(void *d, const void *s, size_t n, size_t dlen)
{
    if (n > dlen)
        abort();
    return memcpy(d, s, n);
}

void *__memmove_chk(void *d, const void *s, size_t n, size_t dlen)
{
    if (n > dlen)
        abort();
    return memmove(d, s, n);
}

void *__memset_chk(void *d, int c, size_t n, size_t dlen)
{
    if (n > dlen)
        abort();
    return memset(d, c, n);
}
