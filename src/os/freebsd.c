/* SPDX-License-Identifier: ISC */
/*
 * FreeBSD on the POSIX base (src/os/posix.c). From FreeBSD's manual (madvise(2),
 * minherit(2), getrandom(2)): MADV_NOCORE keeps pages out of core dumps, minherit
 * INHERIT_ZERO (FreeBSD 12) gives a child zeroed pages and INHERIT_NONE none at all,
 * getrandom(2) (FreeBSD 12) is the random source. No memfd_secret equivalent. Compiled
 * against FreeBSD's own headers here (make platforms-bsd), never run (spec/platforms.md).
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "posix.h"

/*
 * Linux's kinds of advice, spelt the FreeBSD way; FreeBSD promotes to superpages on its
 * own, so HUGEPAGE has nothing to do.
 */
static int advise(void *p, size_t len, sm_os_advice advice)
{
    if (advice == SM_OS_HUGEPAGE)
        return 0;
    if (advice == SM_OS_DONTDUMP)
        return madvise(p, len, MADV_NOCORE);
    return minherit(p, len, advice == SM_OS_WIPEONFORK ? INHERIT_ZERO : INHERIT_NONE);
}

static ssize_t random_bytes(void *p, size_t n)
{
    return getrandom(p, n, 0);
}

/* MAP_PREFAULT_READ maps what is already resident only: no gain here over a fault. */
const sm_os_system sm_os_system_of = {
    .caps = SM_CAP_LOCKED | SM_CAP_NODUMP | SM_CAP_NOFORK | SM_CAP_GUARD,
    .advise = advise,
    .random = random_bytes,
};
