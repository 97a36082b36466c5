/* SPDX-License-Identifier: ISC */
/*
 * Solaris 11.4 and illumos on the POSIX base (src/os/posix.c). Written from their
 * manuals (memcntl(2), madvise(3C), getrandom(2)), NOT compiled here: no Solaris or
 * illumos headers exist on the project's machines (spec/platforms.md). To check it:
 * clang --target=x86_64-pc-solaris2.11 --sysroot=<illumos proto area> -c.
 *
 * - Locked: mlock (POSIX, in the base), which needs the proc_lock_memory privilege.
 * - Hidden from children: memcntl MC_INHERIT_ZERO (illumos, 2016; Solaris 11.4 has
 *   it too) zeroes the pages in a child; there is no "absent in the child" variant, so
 *   DONTFORK gets the same zeroing.
 * - Core dumps: neither system has per-range advice (no MADV_DONTDUMP): SM_CAP_NODUMP is
 *   not claimed, and RLIMIT_CORE = 0 (sm_disable_core_dumps) is the protection.
 * - Random: getrandom(2) (Solaris 11.3, illumos 2018).
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "posix.h"

/*
 * No per-range dump advice: nothing to do (and SM_CAP_NODUMP is not claimed). HUGEPAGE,
 * speed only, is left to the system's own large-page choice.
 */
static int advise(void *p, size_t len, sm_os_advice advice)
{
    if (advice == SM_OS_DONTDUMP || advice == SM_OS_HUGEPAGE)
        return 0;
    return memcntl(p, len, MC_INHERIT_ZERO, NULL, 0, 0);
}

static ssize_t random_bytes(void *p, size_t n)
{
    return getrandom(p, n, 0);
}

const sm_os_system sm_os_system_of = {
    .caps = SM_CAP_LOCKED | SM_CAP_NOFORK | SM_CAP_GUARD,
    .advise = advise,
    .random = random_bytes,
};
