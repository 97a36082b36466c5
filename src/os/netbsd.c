/* SPDX-License-Identifier: ISC */
/*
 * NetBSD on the POSIX base (src/os/posix.c). From NetBSD's manual (minherit(2),
 * getentropy(3)): minherit MAP_INHERIT_ZERO gives a child zeroed pages and
 * MAP_INHERIT_NONE none at all; getentropy is the random source. NetBSD has no advice
 * that keeps pages out of a core dump (no MADV_NOCORE, no MAP_NOCORE): SM_CAP_NODUMP is
 * not claimed, and RLIMIT_CORE = 0 is the only protection. Compiled against NetBSD's own
 * headers here (make platforms-bsd), never run (spec/platforms.md).
 */
#include <sys/types.h>
#include <sys/mman.h>

#include "posix.h"

/*
 * DONTDUMP has no NetBSD call: nothing to do (and SM_CAP_NODUMP is not claimed); nor has
 * HUGEPAGE, which is speed only.
 */
static int advise(void *p, size_t len, sm_os_advice advice)
{
    if (advice == SM_OS_DONTDUMP || advice == SM_OS_HUGEPAGE)
        return 0;
    return minherit(p, len, advice == SM_OS_WIPEONFORK ? MAP_INHERIT_ZERO : MAP_INHERIT_NONE);
}

const sm_os_system sm_os_system_of = {
    .caps = SM_CAP_LOCKED | SM_CAP_NOFORK | SM_CAP_GUARD,
    .advise = advise,
};
