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
#include <errno.h>
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "posix.h"

int sm_os_sys_map_flags(void)
{
    return 0;
}

unsigned sm_os_caps(void)
{
    return SM_CAP_LOCKED | SM_CAP_NOFORK | SM_CAP_GUARD;
}

sm_status sm_os_mmap_filled(size_t len, void **out)
{
    return sm_os_posix_map(len, PROT_READ | PROT_WRITE, 0, out);
}

sm_status sm_os_mmap_fd(void *addr, size_t len, int fd)
{
    SM_OS_CALL(SM_OS_MMAP_FD, == MAP_FAILED,
               mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0));
    return SM_OK;
}

sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice)
{
    if (advice == SM_OS_DONTDUMP)
        SM_OS_CALL(SM_OS_MADVISE, != 0, 0);
    else
        SM_OS_CALL(SM_OS_MADVISE, != 0, memcntl(p, len, MC_INHERIT_ZERO, NULL, 0, 0));
    return SM_OK;
}

sm_status sm_os_secretmem_create(size_t len, int *fd)
{
    (void)len;
    (void)fd;
    return sm_os_posix_fail(SM_OS_MEMFD_SECRET, ENOSYS);
}

ssize_t sm_os_sys_random(void *p, size_t n)
{
    return getrandom(p, n, 0);
}

sm_status sm_os_disable_core_dumps(void)
{
    static const struct rlimit zero = { 0, 0 };

    SM_OS_CALL(SM_OS_SETRLIMIT, != 0, setrlimit(RLIMIT_CORE, &zero));
    return SM_OK;
}

/* No query that answers without a fault: "cannot tell" (os.h). */
sm_status sm_os_writable(void *p, size_t n)
{
    (void)p;
    (void)n;
    return SM_OK;
}
