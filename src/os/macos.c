/* SPDX-License-Identifier: ISC */
/*
 * macOS on the POSIX base (src/os/posix.c). From Apple's manual (minherit(2),
 * getentropy(2)) and headers (mach/vm_inherit.h): minherit VM_INHERIT_NONE leaves the
 * pages out of a child (there is no zeroing variant, so WIPEONFORK gets the same);
 * getentropy is the random source. macOS has no advice that keeps a range out of a core
 * dump (MADV_ZERO_WIRED_PAGES only zeroes wired pages at unmap): SM_CAP_NODUMP is not
 * claimed, and RLIMIT_CORE = 0 is the protection. Built and linked as Mach-O here with
 * Zig (make platforms-macos), never run (spec/platforms.md).
 */
#include <mach/vm_inherit.h>
#include <sys/types.h>
#include <sys/mman.h>

#include "posix.h"

/* DONTDUMP has no macOS call: nothing to do (and SM_CAP_NODUMP is not claimed). */
static int advise(void *p, size_t len, sm_os_advice advice)
{
    if (advice == SM_OS_DONTDUMP)
        return 0;
    return minherit(p, len, VM_INHERIT_NONE);
}

const sm_os_system sm_os_system_of = {
    .caps = SM_CAP_LOCKED | SM_CAP_NOFORK | SM_CAP_GUARD,
    .advise = advise,
};
