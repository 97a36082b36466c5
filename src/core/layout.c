/* SPDX-License-Identifier: ISC */
#include "core.h"

/*
 * Rounds with a division rather than the mask ~(page - 1): the same result for the
 * power-of-two pages that callers pass (and the least multiple for any other page), and
 * plain arithmetic that the provers handle, where the mask needs a bit-level argument
 * for every page size. The cost is one division per mapping, next to a system call.
 */
/*@ requires 0 < page <= SIZE_MAX / 4;
    ensures n > SIZE_MAX - (page - 1) ==> \result == 0;
    ensures n <= SIZE_MAX - (page - 1) ==>
              \result % page == 0 && n <= \result < n + page;
    assigns \nothing;
*/
size_t smi_round_up(size_t n, size_t page)
{
    if (n > SIZE_MAX - (page - 1))
        return 0;
    return (n + (page - 1)) / page * page;
}

/*@ requires 0 < page <= SIZE_MAX / 4;
    requires \valid(out);
    assigns *out;

    behavior rejected:
      assumes layout_rejects(size, page);
      ensures \result == 0;
      assigns \nothing;

    behavior accepted:
      assumes !layout_rejects(size, page);
      ensures \result == 1;
      ensures layout_ok(*out, size, page);

    complete behaviors;
    disjoint behaviors;
*/
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

/*
 * The leading guard page is data_off - canary_len bytes long: that is the page size the
 * layout was made with, so every range from here is whole pages inside the mapping,
 * whatever the caller's page size says later.
 */
/*@ requires \valid_read(l);
    requires \exists integer size, page; 0 < page && layout_ok(*l, size, page);
    assigns \nothing;
    // the protect range starts one guard page in and is whole pages ...
    ensures \forall integer size, page; layout_ok(*l, size, page) ==>
              \result == page && \result % page == 0 && l->inner_len % page == 0;
    // ... and ends where the trailing guard page begins: inside the mapping
    ensures 0 < \result && \result + l->inner_len + \result == l->map_len;
    // the canary runs from here to the first byte of the data
    ensures \result + l->canary_len == l->data_off;
*/
size_t smi_layout_inner(const smi_layout *l)
{
    return l->data_off - l->canary_len;
}
