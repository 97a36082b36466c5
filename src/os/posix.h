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
 * Supplied by the system's file: extra mmap flags for every private mapping of the
 * library (OpenBSD's MAP_CONCEAL keeps the pages out of core dumps from the start).
 */
int sm_os_sys_map_flags(void);

/*
 * Supplied by the system's file: fill up to n bytes (n > 0) from the system's CSPRNG;
 * the count filled (at least 1), or -1 with errno set. sm_os_random loops over it.
 */
ssize_t sm_os_sys_random(void *p, size_t n);

#endif
