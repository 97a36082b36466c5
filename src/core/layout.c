/* SPDX-License-Identifier: ISC */
#include "core.h"

size_t smi_round_up(size_t n, size_t page)
{
    if (n > SIZE_MAX - (page - 1))
        return 0;
    return (n + (page - 1)) & ~(page - 1);
}

int smi_layout_of(size_t size, size_t page, smi_layout *out)
{
    size_t inner;

    /* Room for the canary and both guard pages, before any addition can wrap. */
    if (size == 0 || size > SIZE_MAX - SMI_CANARY_MIN - 3 * page)
        return 0;
    inner = smi_round_up(size + SMI_CANARY_MIN, page);
    out->inner_len = inner;
    out->canary_len = inner - size;
    out->data_off = page + out->canary_len;
    out->map_len = inner + 2 * page;
    return 1;
}
