/* SPDX-License-Identifier: ISC */
#include "core.h"

/*
 * Two functions rather than one that writes all 40 bytes: with the id's copy and the
 * digits in one function the provers time out (spec/decisions.md); each part alone
 * proves at once, and the caller (stream.c make_aad) puts them side by side.
 */
/*@ requires \valid(aad + (0 .. 8 + SMI_STREAM_ID_LEN - 1));
    requires \valid_read(id + (0 .. SMI_STREAM_ID_LEN - 1));
    requires \separated(aad + (0 .. 8 + SMI_STREAM_ID_LEN - 1), id + (0 .. SMI_STREAM_ID_LEN - 1));
    assigns aad[0 .. 8 + SMI_STREAM_ID_LEN - 1];
    ensures stream_aad_label(aad, kind);
    ensures \forall integer k; 0 <= k < SMI_STREAM_ID_LEN ==> aad[8 + k] == id[k];
*/
void smi_stream_aad_head(uint8_t *aad, uint8_t kind, const uint8_t *id)
{
    /*@ loop invariant 8 <= i <= 8 + SMI_STREAM_ID_LEN;
        loop invariant \forall integer k; 8 <= k < i ==> aad[k] == id[k - 8];
        loop assigns i, aad[8 .. 8 + SMI_STREAM_ID_LEN - 1];
        loop variant 8 + SMI_STREAM_ID_LEN - i;
    */
    for (size_t i = 8; i < 8 + SMI_STREAM_ID_LEN; i++)
        aad[i] = id[i - 8];
    aad[0] = 's';
    aad[1] = 't';
    aad[2] = 'r';
    aad[3] = 'e';
    aad[4] = 'a';
    aad[5] = 'm';
    aad[6] = 0;
    aad[7] = kind;
}

/*
 * Digits by division by constant weights, not by shifts: the contract is then plain
 * arithmetic for the provers. Compilers emit the shifts anyway.
 */
/*@ requires \valid(p + (0 .. 7));
    assigns p[0 .. 7];
    ensures le64_digits(p, v);
*/
void smi_le64_put(uint8_t *p, uint64_t v)
{
    p[0] = (uint8_t)(v % 0x100);
    p[1] = (uint8_t)(v / 0x100 % 0x100);
    p[2] = (uint8_t)(v / 0x10000 % 0x100);
    p[3] = (uint8_t)(v / 0x1000000 % 0x100);
    p[4] = (uint8_t)(v / 0x100000000 % 0x100);
    p[5] = (uint8_t)(v / 0x10000000000 % 0x100);
    p[6] = (uint8_t)(v / 0x1000000000000 % 0x100);
    p[7] = (uint8_t)(v / 0x100000000000000 % 0x100);
}
