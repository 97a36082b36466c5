/* SPDX-License-Identifier: ISC */
#include "core.h"

void smi_wipe(void *p, size_t n)
{
    unsigned char *q = p;

    for (size_t i = 0; i < n; i++)
        q[i] = 0;
    /* A call the compiler cannot see through: the zeroes must reach memory. */
    smi_barrier(p);
}

int smi_equal(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    unsigned d = 0;

    for (size_t i = 0; i < n; i++)
        d |= (unsigned)(x[i] ^ y[i]);
    /* d is in [0, 255]: d - 1 borrows into bit 8 exactly when d == 0. */
    return (int)(((d - 1u) >> 8) & 1u);
}
