/* SPDX-License-Identifier: ISC */
#include "core.h"

void smi_canary_fill(uint8_t *dst, size_t len, const uint8_t *seed)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = seed[i % SMI_CANARY_SEED];
}

int smi_canary_ok(const uint8_t *c, size_t len, const uint8_t *seed)
{
    unsigned d = 0;

    for (size_t i = 0; i < len; i++)
        d |= (unsigned)(c[i] ^ seed[i % SMI_CANARY_SEED]);
    return (int)(((d - 1u) >> 8) & 1u);
}
