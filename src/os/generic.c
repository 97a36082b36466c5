/* SPDX-License-Identifier: ISC */
/*
 * A Unix with nothing beyond POSIX.1-2024 on the POSIX base (src/os/posix.c): no dump
 * or fork advice, no off-direct-map memory, getentropy as the random source, RLIMIT_CORE
 * alone for core dumps, and no writability query. It is the base's own test build
 * (make test-posix runs the unit suite on Linux with it) and the fallback of a Unix that
 * has no file of its own. What it cannot give, sm_os_caps leaves out (spec/platforms.md).
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "posix.h"

/* Locked (mlock) and guard pages (mprotect PROT_NONE) are POSIX; nothing else is. */
/* Nothing to add: the advice comes after the mapping (sm_os_madvise). */
int sm_os_sys_map_flags(void)
{
    return 0;
}

unsigned sm_os_caps(void)
{
    return SM_CAP_LOCKED | SM_CAP_GUARD;
}

/* No MAP_POPULATE in POSIX: the pages fault in on first write, as for any mapping. */
sm_status sm_os_mmap_filled(size_t len, void **out)
{
    return sm_os_posix_map(len, PROT_READ | PROT_WRITE, 0, out);
}

/* Unreachable in practice (sm_os_secretmem_create always refuses), but POSIX. */
sm_status sm_os_mmap_fd(void *addr, size_t len, int fd)
{
    SM_OS_CALL(SM_OS_MMAP_FD, == MAP_FAILED,
               mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0));
    return SM_OK;
}

/*
 * POSIX has no advice that keeps pages out of a core or a child. The call still counts
 * as an OS function of the fault shim (so that the fault-injection rows hold in this
 * build), then does nothing: sm_os_caps does not claim SM_CAP_NODUMP or SM_CAP_NOFORK,
 * and sm_platform_require refuses a program that needs them.
 */
sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice)
{
    (void)p;
    (void)len;
    (void)advice;
    SM_OS_CALL(SM_OS_MADVISE, != 0, 0);
    return SM_OK;
}

/* No memfd_secret: SECRETMEM_PREFERRED falls back to ANON, REQUIRED is refused. */
sm_status sm_os_secretmem_create(size_t len, int *fd)
{
    (void)len;
    (void)fd;
    return sm_os_posix_fail(SM_OS_MEMFD_SECRET, ENOSYS);
}

/* getentropy gives at most 256 bytes a call (POSIX.1-2024, glibc 2.25, every BSD). */
ssize_t sm_os_sys_random(void *p, size_t n)
{
    size_t k = n < 256 ? n : 256;

    return getentropy(p, k) == 0 ? (ssize_t)k : -1;
}

/* RLIMIT_CORE = 0 is all that POSIX has: no dumpable flag to clear first. */
sm_status sm_os_disable_core_dumps(void)
{
    static const struct rlimit zero = { 0, 0 };

    SM_OS_CALL(SM_OS_SETRLIMIT, != 0, setrlimit(RLIMIT_CORE, &zero));
    return SM_OK;
}

/* POSIX cannot ask whether memory is writable: "cannot tell" is SM_OK (os.h). */
sm_status sm_os_writable(void *p, size_t n)
{
    (void)p;
    (void)n;
    return SM_OK;
}
