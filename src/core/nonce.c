/* SPDX-License-Identifier: ISC */
#include "core.h"

/*
 * Every counter handed out under a key is below *next, and *next only grows: so a
 * range reserved now never meets one reserved before, and no (key, nonce) pair is used
 * twice. The bound keeps first + n - 1, the last counter of the range, below
 * UINT64_MAX: the counter never wraps.
 */
/*@ requires \valid(next) && \valid(first);
    requires \separated(next, first);
    assigns *next, *first;

    behavior spent:
      assumes n > UINT64_MAX - *next;
      ensures \result == SM_E_STATE;
      assigns \nothing;

    behavior reserved:
      assumes n <= UINT64_MAX - *next;
      ensures \result == SM_OK;
      ensures *first == \old(*next) && *next == \old(*next) + n;
      // the range [*first, *next) starts where every earlier range ended
      ensures \old(*next) <= *first && *first + n == *next <= UINT64_MAX;

    complete behaviors;
    disjoint behaviors;
*/
sm_status smi_nonce_reserve(uint64_t *next, uint64_t n, uint64_t *first)
{
    if (n > UINT64_MAX - *next)
        return SM_E_STATE;
    *first = *next;
    *next += n;
    return SM_OK;
}
