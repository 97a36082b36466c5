/* SPDX-License-Identifier: ISC */
/*
 * FreeBSD on the POSIX base (src/os/posix.c). From FreeBSD's manual (madvise(2),
 * minherit(2), getrandom(2)): MADV_NOCORE keeps pages out of core dumps, minherit
 * INHERIT_ZERO (FreeBSD 12) gives a child zeroed pages and INHERIT_NONE none at all,
 * getrandom(2) (FreeBSD 12) is the random source. No memfd_secret equivalent. Compiled
 * against FreeBSD's own headers here (make platforms-bsd), never run (spec/platforms.md).
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
    return SM_CAP_LOCKED | SM_CAP_NODUMP | SM_CAP_NOFORK | SM_CAP_GUARD;
}

/* MAP_PREFAULT_READ maps what is already resident only: no gain here over a fault. */
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

/* Linux's three kinds of advice, spelt the FreeBSD way; minherit counts as madvise. */
sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice)
{
    if (advice == SM_OS_DONTDUMP)
        SM_OS_CALL(SM_OS_MADVISE, != 0, madvise(p, len, MADV_NOCORE));
    else
        SM_OS_CALL(SM_OS_MADVISE, != 0,
                   minherit(p, len, advice == SM_OS_WIPEONFORK ? INHERIT_ZERO : INHERIT_NONE));
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
