/* SPDX-License-Identifier: ISC */
/*
 * The fault-injecting shim (see fault.h). Built into the test and fuzz flavours only.
 * Plans and counters are atomics, so that threaded tests can inject faults too, and so
 * that a signal handler in the middle of a call cannot corrupt them.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include "fault.h"
#include "../vg.h"

/* A kept mapping's release, outside the shim, as the platform's sm_os_munmap does it. */
#if defined(_WIN32)
#include <windows.h>
static bool unmap_raw(void *p, size_t len)
{
    return VirtualFree(p, len, MEM_DECOMMIT) != 0;
}
#else
#include <sys/mman.h>
static bool unmap_raw(void *p, size_t len)
{
    return munmap(p, len) == 0;
}
#endif

static const char *const names[SM_OS_FN_COUNT] = {
    [SM_OS_MMAP] = "mmap",
    [SM_OS_MMAP_FD] = "mmap_fd",
    [SM_OS_MUNMAP] = "munmap",
    [SM_OS_MPROTECT] = "mprotect",
    [SM_OS_MLOCK] = "mlock",
    [SM_OS_MUNLOCK] = "munlock",
    [SM_OS_MADVISE] = "madvise",
    [SM_OS_MEMFD_SECRET] = "memfd_secret",
    [SM_OS_FTRUNCATE] = "ftruncate",
    [SM_OS_CLOSE] = "close",
    [SM_OS_GETRANDOM] = "getrandom",
    [SM_OS_SETRLIMIT] = "setrlimit",
    [SM_OS_PRCTL] = "prctl",
    [SM_OS_READ] = "read",
    [SM_OS_LSEEK] = "lseek",
    [SM_OS_SIGACTION] = "sigaction",
    [SM_OS_ATFORK] = "atfork",
    [SM_OS_OPEN] = "open",
    [SM_OS_PROCMAP_QUERY] = "procmap_query",
    [SM_OS_PAGEMAP_SCAN] = "pagemap_scan",
    [SM_OS_PKEY_ALLOC] = "pkey_alloc",
    [SM_OS_PKEY_MPROTECT] = "pkey_mprotect",
};

struct plan {
    atomic_ulong calls;
    atomic_ulong nth;    /* 0: no plan */
    atomic_int err;
    atomic_bool sticky;
    atomic_ulong also;   /* a second call to fail, once (sm_os_fault_arm_also); 0: none */
    atomic_int also_err;
};

static struct plan plans[SM_OS_FN_COUNT];

SMI_VG_AT_START(vg_fault)
{
    SMI_VG_ATOMIC(plans, sizeof plans);
}

int sm_os_fault_hit(sm_os_fn fn)
{
    struct plan *p = &plans[fn];
    unsigned long n = atomic_fetch_add(&p->calls, 1) + 1;
    unsigned long nth = atomic_load(&p->nth);

    if (n == atomic_load(&p->also))
        return atomic_load(&p->also_err);
    if (nth == 0 || n < nth || (n > nth && !atomic_load(&p->sticky)))
        return 0;
    return atomic_load(&p->err);
}

void sm_os_fault_arm(sm_os_fn fn, unsigned long nth, int err, bool sticky)
{
    struct plan *p = &plans[fn];

    atomic_store(&p->nth, 0);
    atomic_store(&p->also, 0);
    atomic_store(&p->err, err);
    atomic_store(&p->sticky, sticky);
    atomic_store(&p->calls, 0);
    atomic_store(&p->nth, nth);
}

void sm_os_fault_arm_also(sm_os_fn fn, unsigned long nth, int err)
{
    struct plan *p = &plans[fn];

    atomic_store(&p->also_err, err);
    atomic_store(&p->also, nth);
}

void sm_os_fault_reset(void)
{
    for (int i = 0; i < SM_OS_FN_COUNT; i++) {
        atomic_store(&plans[i].nth, 0);
        atomic_store(&plans[i].also, 0);
        atomic_store(&plans[i].calls, 0);
    }
}

unsigned long sm_os_fault_calls(sm_os_fn fn)
{
    return atomic_load(&plans[fn].calls);
}

const char *sm_os_fn_name(sm_os_fn fn)
{
    return (unsigned)fn < SM_OS_FN_COUNT ? names[fn] : NULL;
}

/* The mappings that an injected munmap failure kept (fault.h); a full table forgets. */
#define KEPT 1024
static struct kept {
    _Atomic(void *) p;
    atomic_size_t   len;
} kept[KEPT];

void sm_os_fault_track_munmap(void *p, size_t len, bool refused)
{
    /* Refused again (a retried free): one entry, or the reclaim would unmap it twice. */
    for (unsigned i = 0; refused && i < KEPT; i++)
        if (atomic_load(&kept[i].p) == p)
            return;
    for (unsigned i = 0; i < KEPT; i++) {
        void *was = refused ? NULL : p;

        if (atomic_compare_exchange_strong(&kept[i].p, &was, refused ? p : NULL)) {
            if (refused)
                atomic_store(&kept[i].len, len);
            return;
        }
    }
}

unsigned sm_os_fault_reclaim(void)
{
    unsigned n = 0;

    for (unsigned i = 0; i < KEPT; i++) {
        void *p = atomic_exchange(&kept[i].p, NULL);

        if (p != NULL && unmap_raw(p, atomic_load(&kept[i].len)))
            n++;
    }
    return n;
}
