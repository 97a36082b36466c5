/* SPDX-License-Identifier: ISC */
#include "core.h"

/*
 * Both loops go a tile (SMI_CANARY_SEED bytes) at a time, with an inner loop of that
 * fixed length that the compiler turns into vector moves, then over the tail. A guarded
 * region's canary fills the rest of its inner pages (a 32-byte secret's is 4,064
 * bytes), and a byte loop that indexed seed[i % SMI_CANARY_SEED] was a third of a
 * guarded alloc+free (spec/layout.md, "What a canary costs"). restrict states the
 * \separated clause to the compiler, which otherwise would not vectorize the fill; the
 * check ORs into a byte, where an unsigned accumulator widened every byte to 32 bits and
 * took twice as long.
 */

/*@ requires \valid(dst + (0 .. len - 1));
    requires \valid_read(seed + (0 .. SMI_CANARY_SEED - 1));
    requires \separated(dst + (0 .. len - 1), seed + (0 .. SMI_CANARY_SEED - 1));
    ensures canary_tiled(dst, len, seed);
    assigns dst[0 .. len - 1];
*/
void smi_canary_fill(uint8_t *restrict dst, size_t len, const uint8_t *restrict seed)
{
    size_t i = 0;

    /*@ loop invariant 0 <= i <= len;
        loop invariant i % SMI_CANARY_SEED == 0;
        loop invariant canary_tiled(dst, i, seed);
        loop assigns i, dst[0 .. len - 1];
        loop variant len - i;
    */
    while (len - i >= SMI_CANARY_SEED) {
        /*@ loop invariant 0 <= j <= SMI_CANARY_SEED;
            loop invariant canary_tiled(dst, i + j, seed);
            loop assigns j, dst[i .. i + SMI_CANARY_SEED - 1];
            loop variant SMI_CANARY_SEED - j;
        */
        for (size_t j = 0; j < SMI_CANARY_SEED; j++) {
            /*@ assert tile_offset: (i + j) % SMI_CANARY_SEED == j; */
            dst[i + j] = seed[j];
        }
        i += SMI_CANARY_SEED;
    }
    /*@ assert tail_short: len - i < SMI_CANARY_SEED; */
    /*@ loop invariant 0 <= j <= len - i;
        loop invariant canary_tiled(dst, i + j, seed);
        loop assigns j, dst[i .. len - 1];
        loop variant len - i - j;
    */
    for (size_t j = 0; j < len - i; j++) {
        /*@ assert tail_offset: (i + j) % SMI_CANARY_SEED == j; */
        dst[i + j] = seed[j];
    }
}

/*@ requires \valid_read(c + (0 .. len - 1));
    requires \valid_read(seed + (0 .. SMI_CANARY_SEED - 1));
    ensures \result == 0 || \result == 1;
    ensures \result == 1 <==> canary_tiled(c, len, seed);
    assigns \nothing;
*/
int smi_canary_ok(const uint8_t *c, size_t len, const uint8_t *seed)
{
    uint8_t d = 0;
    size_t i = 0;

    /*@ loop invariant 0 <= i <= len;
        loop invariant i % SMI_CANARY_SEED == 0;
        loop invariant d == 0 <==> canary_tiled(c, i, seed);
        loop assigns i, d;
        loop variant len - i;
    */
    while (len - i >= SMI_CANARY_SEED) {
        /*@ loop invariant 0 <= j <= SMI_CANARY_SEED;
            loop invariant d == 0 <==> canary_tiled(c, i + j, seed);
            loop assigns j, d;
            loop variant SMI_CANARY_SEED - j;
        */
        for (size_t j = 0; j < SMI_CANARY_SEED; j++) {
            /*@ assert tile_offset: (i + j) % SMI_CANARY_SEED == j; */
            d |= (uint8_t)(c[i + j] ^ seed[j]);
        }
        i += SMI_CANARY_SEED;
    }
    /*@ assert tail_short: len - i < SMI_CANARY_SEED; */
    /*@ loop invariant 0 <= j <= len - i;
        loop invariant d == 0 <==> canary_tiled(c, i + j, seed);
        loop assigns j, d;
        loop variant len - i - j;
    */
    for (size_t j = 0; j < len - i; j++) {
        /*@ assert tail_offset: (i + j) % SMI_CANARY_SEED == j; */
        d |= (uint8_t)(c[i + j] ^ seed[j]);
    }
    /* d is a byte: d - 1 borrows into bit 8 exactly when d == 0. */
    return (int)((((unsigned)d - 1u) >> 8) & 1u);
}
