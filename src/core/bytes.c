/* SPDX-License-Identifier: ISC */
#include "core.h"

/*
 * The contracts in src/core/ are ACSL, proved by make proofs (proofs/README.md); their
 * predicates and lemmas live in proofs/core.acsl.
 */

/*@ requires \valid((unsigned char *)p + (0 .. n - 1));
    ensures bytes_zero((unsigned char *)p, n);
    assigns ((unsigned char *)p)[0 .. n - 1];
*/
void smi_wipe(void *p, size_t n)
{
    unsigned char *q = p;

    /*@ loop invariant 0 <= i <= n;
        loop invariant bytes_zero(q, i);
        loop assigns i, q[0 .. n - 1];
        loop variant n - i;
    */
    for (size_t i = 0; i < n; i++)
        q[i] = 0;
    /* A call the compiler cannot see through: the zeroes must reach memory. */
    smi_barrier(p);
}

/*@ requires \valid_read((unsigned char *)a + (0 .. n - 1));
    requires \valid_read((unsigned char *)b + (0 .. n - 1));
    ensures \result == 0 || \result == 1;
    ensures \result == 1 <==> bytes_equal((unsigned char *)a, (unsigned char *)b, n);
    assigns \nothing;
*/
int smi_equal(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    unsigned d = 0;

    /*@ loop invariant 0 <= i <= n;
        loop invariant d < 256;
        loop invariant d == 0 <==> bytes_equal((unsigned char *)x, (unsigned char *)y, i);
        loop assigns i, d;
        loop variant n - i;
    */
    for (size_t i = 0; i < n; i++)
        d |= (unsigned)(x[i] ^ y[i]);
    /* d is in [0, 255]: d - 1 borrows into bit 8 exactly when d == 0. */
    return (int)(((d - 1u) >> 8) & 1u);
}
