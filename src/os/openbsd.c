/* SPDX-License-Identifier: ISC */
/*
 * OpenBSD on the POSIX base (src/os/posix.c). From OpenBSD's manual (mmap(2),
 * minherit(2), getentropy(2)): MAP_CONCEAL (OpenBSD 6.6) keeps a mapping out of core
 * dumps from the start, so every mapping of the library carries it and DONTDUMP has
 * nothing left to do; minherit MAP_INHERIT_ZERO gives a child zeroed pages and
 * MAP_INHERIT_NONE none at all; getentropy is the random source. Compiled against
 * OpenBSD's own headers here (make platforms-bsd), never run (spec/platforms.md).
 */
#include <sys/types.h>
#include <sys/mman.h>

#include "posix.h"

/* DONTDUMP: MAP_CONCEAL did it at mmap. HUGEPAGE, speed only, has no OpenBSD call. */
static int advise(void *p, size_t len, sm_os_advice advice)
{
    if (advice == SM_OS_DONTDUMP || advice == SM_OS_HUGEPAGE)
        return 0;
    return minherit(p, len, advice == SM_OS_WIPEONFORK ? MAP_INHERIT_ZERO : MAP_INHERIT_NONE);
}

const sm_os_system sm_os_system_of = {
    .caps = SM_CAP_LOCKED | SM_CAP_NODUMP | SM_CAP_NOFORK | SM_CAP_GUARD,
    .map_flags = MAP_CONCEAL,
    .advise = advise,
};
