/* SPDX-License-Identifier: ISC */
/*
 * NetBSD on the POSIX base (src/os/posix.c). From NetBSD's manual (minherit(2),
 * getentropy(3)): minherit MAP_INHERIT_ZERO gives a child zeroed pages and
 * MAP_INHERIT_NONE none at all; getentropy is the random source. NetBSD has no advice
 * that keeps pages out of a core dump (no MADV_NOCORE, no MAP_NOCORE): SM_CAP_NODUMP is
 * not claimed, and RLIMIT_CORE = 0 is the only protection. Compiled against NetBSD's own
 * headers here (make platforms-bsd), never run (spec/platforms.md).
 */
#include <errno.h>
#include <sys/types.h>
#include <sys/mman.h>
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

/* DONTDUMP has no NetBSD call: counted as an OS function, then nothing (sm_os_caps). */
sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice)
{
    if (advice == SM_OS_DONTDUMP)
        SM_OS_CALL(SM_OS_MADVISE, != 0, 0);
    else
        SM_OS_CALL(SM_OS_MADVISE, != 0,
                   minherit(p, len,
                            advice == SM_OS_WIPEONFORK ? MAP_INHERIT_ZERO : MAP_INHERIT_NONE));
    return SM_OK;
}

sm_status sm_os_secretmem_create(size_t len, int *fd)
{
    (void)len;
    (void)fd;
    return sm_os_posix_fail(SM_OS_MEMFD_SECRET, ENOSYS);
}

/* getentropy: at most 256 bytes a call. */
ssize_t sm_os_sys_random(void *p, size_t n)
{
    size_t k = n < 256 ? n : 256;

    return getentropy(p, k) == 0 ? (ssize_t)k : -1;
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
