/* SPDX-License-Identifier: ISC */
/*
 * The region pool (spec/layout.md, "The pool"): up to SMI_POOL_SLOTS freed one-page
 * guarded regions of the guarded factory, wiped, still locked and PROT_NONE, each waiting
 * for the next secret, which gets a canary pattern of its own. A fresh region costs
 * mmap, mprotect, mlock, two madvise and the first touch of a new page, and its free an
 * munmap; a pooled one costs none of them, only the mprotect calls that the fill, the
 * seal, the wipe and the shut need anyway.
 *
 * Each slot is one atomic word: 0 (empty), RESERVED (a give is scrubbing its region into
 * it), or the region's leading guard page, page-aligned, with bit 0 set for a secretmem
 * region. Slots are claimed by compare-and-swap, so there is no lock: a purge or a panic
 * can empty the pool from a signal handler, and a fork needs no prepare handler.
 */
#include "inner.h"

#define RESERVED ((uintptr_t)2)
#define SECRETMEM ((uintptr_t)1)
#define BASE(e) ((uint8_t *)((e) & ~(uintptr_t)3))

static _Atomic uintptr_t slots[SMI_POOL_SLOTS];

SMI_VG_AT_START(vg_pool)
{
    SMI_VG_ATOMIC(slots, sizeof slots);
}

/* A pooled region leaves for good: unmapped, and its locked page no longer counted. */
static void drop(uintptr_t e)
{
    size_t page = sm_os_page_size();

    (void)sm_os_munmap(BASE(e), 3 * page);
    atomic_fetch_sub(&smi_stat_locked, page);
}

/* Into an empty slot; false when the pool is full. */
static bool park(uintptr_t e)
{
    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        uintptr_t empty = 0;

        SMI_VG_PUBLISH(&slots[i]);
        if (atomic_compare_exchange_strong(&slots[i], &empty, e))
            return true;
    }
    return false;
}

sm_status smi_pool_take(size_t size, smi_region *r)
{
    uintptr_t want = smi_config_secretmem() ? SECRETMEM : 0;
    smi_layout lay;

    if (smi_layout_of(size, sm_os_page_size(), &lay) && lay.inner_len == sm_os_page_size())
        for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
            uintptr_t e = atomic_load(&slots[i]);
            sm_status st;

            if (BASE(e) == NULL || (e & SECRETMEM) != want ||
                !atomic_compare_exchange_strong(&slots[i], &e, 0))
                continue;
            SMI_VG_RECEIVE(&slots[i]);
            st = smi_region_adopt(BASE(e), want != 0, size, r);
            /* Refused: still wiped and shut, so it waits for the next take. */
            if (st != SM_OK && !park(e))
                drop(e);
            return st;
        }
    return smi_region_alloc(size, NULL, r);
}

sm_status smi_pool_give(smi_region *r)
{
    uintptr_t e = (uintptr_t)r->base | (r->secretmem ? SECRETMEM : 0);
    sm_status st;
    unsigned i;

    /*
     * Only what a take hands out again: one inner page, locked now (a region counted for
     * relocking after a fork is not), of the backing in force (a region that fell back
     * to anonymous memory under SECRETMEM_PREFERRED goes, as it came, by the slow path).
     */
    if (!r->locked || r->relock || r->lay.inner_len != sm_os_page_size() ||
        r->secretmem != smi_config_secretmem())
        return smi_region_free(r);
    for (i = 0; i < SMI_POOL_SLOTS; i++) {
        uintptr_t empty = 0;

        if (atomic_compare_exchange_strong(&slots[i], &empty, RESERVED))
            break;
    }
    if (i == SMI_POOL_SLOTS)
        return smi_region_free(r);
    st = smi_region_scrub(r);
    if (st != SM_OK) {
        uintptr_t mine = RESERVED;

        (void)atomic_compare_exchange_strong(&slots[i], &mine, 0);
        /* Opened and wiped but not shut: the canary is back, so free it as it is. */
        return r->prot == SM_PROT_READWRITE ? smi_region_free(r) : st;
    }
    {
        uintptr_t mine = RESERVED;

        SMI_VG_PUBLISH(&slots[i]);
        /* A purge emptied the reservation meanwhile: this region goes with the rest. */
        if (!atomic_compare_exchange_strong(&slots[i], &mine, e))
            drop(e);
    }
    smi_wipe(r, sizeof *r);
    return SM_OK;
}

void smi_pool_unmake(smi_region *r)
{
    if (smi_pool_give(r) == SM_OK)
        atomic_fetch_sub(&smi_stat_allocations, 1);
}

void smi_pool_purge(void)
{
    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        uintptr_t e = atomic_exchange(&slots[i], 0);

        if (BASE(e) != NULL)
            drop(e);
    }
}

/*
 * The child has no lock on the pooled pages (mlock is not inherited): an anonymous one
 * (WIPEONFORK) is unmapped, a secretmem one is not in the child at all (DONTFORK) and
 * its range may be someone else's by now, so only its count goes (smi_region_forget).
 */
void smi_pool_after_fork(void)
{
    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        uintptr_t e = atomic_exchange(&slots[i], 0);

        if (BASE(e) == NULL)
            continue;
        if ((e & SECRETMEM) == 0)
            (void)sm_os_munmap(BASE(e), 3 * sm_os_page_size());
        atomic_fetch_sub(&smi_stat_locked, sm_os_page_size());
    }
}

#if defined(SM_FAULT_INJECTION)
size_t smi_pool_test_list(uint8_t **bases, size_t max)
{
    size_t n = 0;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        uint8_t *b = BASE(atomic_load(&slots[i]));

        if (b != NULL && n < max)
            bases[n++] = b;
    }
    return n;
}
#endif
