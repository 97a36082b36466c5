/* SPDX-License-Identifier: ISC */
#ifndef SM_OS_POSIX_H
#define SM_OS_POSIX_H

/*
 * The POSIX base of every Unix shim (src/os/posix.c), and the few calls that each
 * system's own file supplies on top of it (src/os/<system>.c): the build links the base
 * with exactly one of them (spec/platforms.md). Nothing above src/os/ includes this.
 */

#include <errno.h>
#include <sys/types.h>

#include "fault.h"
#include "os.h"
#include <securemem/runtime.h>

/* Record err as this thread's last OS error and map it to a status (spec/os-errors.tsv). */
sm_status sm_os_posix_fail(sm_os_fn fn, int err);

/* Consult the fault plan first; in the release build this is a constant 0. */
#define SM_OS_CALL(fn, failed, call)                    \
    do {                                                \
        int err_ = sm_os_fault_hit(fn);                 \
        if (err_ == 0 && (call) failed)                 \
            err_ = errno;                               \
        if (err_ != 0)                                  \
            return sm_os_posix_fail(fn, err_);          \
    } while (0)

/* PROT_* bits of an sm_prot. */
int sm_os_posix_prot(sm_prot prot);
/* A private anonymous mapping with extra mmap flags (MAP_POPULATE, MAP_CONCEAL, ...). */
sm_status sm_os_posix_map(size_t len, int prot, int flags, void **out);

/*
 * What the system's own file supplies (linux.c, freebsd.c, ...): one table, defined
 * there as sm_os_system_of, that the base reads. Only what differs from POSIX is filled
 * in: a NULL entry is the POSIX default, said beside it. So each system's file holds
 * its own calls and nothing the base already has.
 */
typedef struct sm_os_system {
    unsigned caps;       /* SM_CAP_* that this system can give (sm_os_caps) */
    int      map_flags;  /* added to every mapping (OpenBSD's MAP_CONCEAL: no core dump) */
    int      fill_flags; /* added for sm_os_mmap_filled (Linux's MAP_POPULATE) */
    /*
     * The advice, 0 or -1 with errno; NULL: none. sm_os_madvise counts the call as an
     * OS function of the fault shim either way, so that the fault rows hold everywhere,
     * and a system that lacks a kind of advice leaves its SM_CAP_* bit out of caps.
     */
    int (*advise)(void *p, size_t len, sm_os_advice advice);
    /*
     * Fill up to n bytes (n > 0) from the system's CSPRNG: the count filled (at least
     * 1), or -1 with errno. NULL: getentropy, 256 bytes a call (POSIX.1-2024).
     */
    ssize_t (*random)(void *p, size_t n);
    /* An off-direct-map memory file (os.h). NULL: none, ENOSYS. */
    sm_status (*secretmem_create)(size_t len, int *fd);
    /* The whole of sm_os_disable_core_dumps. NULL: RLIMIT_CORE = 0 alone. */
    sm_status (*disable_core_dumps)(void);
    /* sm_os_writable (os.h) of n > 0 bytes that do not wrap. NULL: cannot tell, SM_OK. */
    sm_status (*writable)(void *p, size_t n);
    /* sm_os_mlock_touched (os.h): 0 or -1 with errno. NULL: mlock. */
    int (*lock_touched)(void *p, size_t len);
    /* Memory protection keys (os.h); NULL: none, sm_os_pkey_alloc is SM_E_UNSUPPORTED. */
    const struct sm_os_pkeys *pkeys;
} sm_os_system;

/*
 * A system's protection keys. usable: whether the CPU and the kernel have them, asked
 * without a system call, so that a machine without them makes none; then alloc and
 * mprotect are the system calls (the key, or 0, or -1 with errno), and rights writes
 * the thread's register (os.h, sm_os_pkey_rights).
 */
struct sm_os_pkeys {
    bool (*usable)(void);
    int (*alloc)(void);
    int (*mprotect)(void *p, size_t len, int prot, int key);
    sm_prot (*rights)(int key, sm_prot rights);
};

extern const sm_os_system sm_os_system_of;

#endif
