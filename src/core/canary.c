/* SPDX-License-Identifier: ISC */
#include "core.h"

/*@ requires \valid(dst + (0 .. len - 1));
    requires \valid_read(seed + (0 .. SMI_CANARY_SEED - 1));
    requires \separated(dst + (0 .. len - 1), seed + (0 .. SMI_CANARY_SEED - 1));
    ensures canary_tiled(dst, len, seed);
    assigns dst[0 .. len - 1];
*/
void smi_canary_fill(uint8_t *dst, size_t len, const uint8_t *seed)
{
    /*@ loop invariant 0 <= i <= len;
        loop invariant canary_tiled(dst, i, seed);
        loop assigns i, dst[0 .. len - 1];
        loop variant len - i;
    */
    for (size_t i = 0; i < len; i++)
        dst[i] = seed[i % SMI_CANARY_SEED];
}

/*@ requires \valid_read(c + (0 .. len - 1));
    requires \valid_read(seed + (0 .. SMI_CANARY_SEED - 1));
    ensures \result == 0 || \result == 1;
    ensures \result == 1 <==> canary_tiled(c, len, seed);
    assigns \nothing;
*/
int smi_canary_ok(const uint8_t *c, size_t len, const uint8_t *seed)
{
    unsigned d = 0;

    /*@ loop invariant 0 <= i <= len;
        loop invariant d < 256;
        loop invariant d == 0 <==> canary_tiled(c, i, seed);
        loop assigns i, d;
        loop variant len - i;
    */
    for (size_t i = 0; i < len; i++)
        d |= (unsigned)(c[i] ^ seed[i % SMI_CANARY_SEED]);
    return (int)(((d - 1u) >> 8) & 1u);
}
