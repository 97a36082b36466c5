/* SPDX-License-Identifier: ISC */
/*
 * The region pool (spec/layout.md, "The pool"): up to SMI_POOL_SLOTS freed guarded
 * regions, and SMI_POOL_BYTES of their inner pages, wiped, still locked and PROT_NONE,
 * each waiting for the next region of its page count, which gets a canary pattern of
 * its own. Its users: the guarded factory's secrets, and the regions an enclave open
 * decrypts into (issue 14 §4). A fresh region costs mmap, mprotect, mlock, two madvise,
 * the first touch of every page and an munmap at its free; a pooled one costs none of
 * them, only the mprotect calls that the fill, the wipe and the shut need anyway.
 *
 * Each slot is one atomic word: 0 (empty), RESERVED (a give is scrubbing its region into
 * it), or a region: its leading guard page in 4 KiB units above LEN_BITS, the length of
 * its inner pages in 4 KiB units above bit 0, and bit 0 set for a secretmem region.
 * Slots are claimed by compare-and-swap, so there is no lock: a purge or a panic can
 * empty the pool from a signal handler, and a fork needs no prepare handler.
 */
#include "inner.h"

#define UNIT_SHIFT 12u
#define LEN_BITS 21u
#define SECRETMEM ((uint64_t)1)
/* No address, so never a region's word (inner_of reads it as empty). */
#define RESERVED ((uint64_t)2)

static _Atomic uint64_t slots[SMI_POOL_SLOTS];
/* Bytes of inner pages in the slots, or reserved for a give under way. */
static atomic_size_t held;

SMI_VG_AT_START(vg_pool)
{
    SMI_VG_ATOMIC(slots, sizeof slots);
    SMI_VG_ATOMIC(&held, sizeof held);
}

static uint64_t encode(const uint8_t *base, size_t inner, bool secretmem)
{
    return ((uint64_t)(uintptr_t)base >> UNIT_SHIFT << LEN_BITS) |
           ((uint64_t)(inner >> UNIT_SHIFT) << 1) | (secretmem ? SECRETMEM : 0);
}

static uint8_t *base_of(uint64_t e)
{
    return (uint8_t *)(uintptr_t)(e >> LEN_BITS << UNIT_SHIFT);
}

/* The inner pages' length; 0 for an empty or reserved slot. */
static size_t inner_of(uint64_t e)
{
    return base_of(e) == NULL ? 0
                              : (size_t)((e >> 1) & ((1u << (LEN_BITS - 1)) - 1)) << UNIT_SHIFT;
}

/* A pooled region leaves for good: unmapped, and its locked pages no longer counted. */
static void drop(uint64_t e)
{
    size_t page = sm_os_page_size();

    (void)sm_os_munmap(base_of(e), inner_of(e) + 2 * page);
    atomic_fetch_sub(&smi_stat_locked, inner_of(e));
    atomic_fetch_sub(&held, inner_of(e));
}

/* Into an empty slot; false when the pool is full. */
static bool park(uint64_t e)
{
    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        uint64_t empty = 0;

        SMI_VG_PUBLISH(&slots[i]);
        if (atomic_compare_exchange_strong(&slots[i], &empty, e))
            return true;
    }
    return false;
}

/*
 * Empty the pool so that a refused lock can be tried again (smi_lock_pages): the pooled
 * pages are charged to RLIMIT_MEMLOCK, and must never be why a lock is refused. true
 * if anything was unmapped.
 */
static bool relieve(void)
{
    bool any = false;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        uint64_t e = atomic_exchange(&slots[i], 0);

        if (inner_of(e) != 0) {
            drop(e);
            any = true;
        }
    }
    return any;
}

sm_status smi_pool_take(size_t size, smi_region *r)
{
    uint64_t want = smi_config_secretmem() ? SECRETMEM : 0;
    smi_layout lay;
    sm_status st;

    if (!smi_layout_of(size, sm_os_page_size(), &lay))
        return SM_E_INVAL;
    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        uint64_t e = atomic_load(&slots[i]);

        if (inner_of(e) != lay.inner_len || (e & SECRETMEM) != want ||
            !atomic_compare_exchange_strong(&slots[i], &e, 0))
            continue;
        SMI_VG_RECEIVE(&slots[i]);
        st = smi_region_adopt(base_of(e), lay.inner_len, want != 0, size, r);
        if (st == SM_OK) {
            atomic_fetch_sub(&held, lay.inner_len);
            r->pool = true;
        } else if (!park(e)) {
            /* Refused: still wiped and shut, so it waits for the next take. */
            drop(e);
        }
        return st;
    }
    /* Opened and shut at every take and give: locked on touch (inner.h). */
    st = smi_region_alloc_locked_on_touch(size, r);
    if (st == SM_OK)
        r->pool = true;
    return st;
}

sm_status smi_pool_give(smi_region *r)
{
    uint64_t e = encode(r->base, r->lay.inner_len, r->secretmem);
    size_t inner = r->lay.inner_len;
    sm_status st;
    unsigned i;

    /*
     * Only what a take hands out again: a region a take made, locked now (a region
     * counted for relocking after a fork is not), of the backing in force (a region that
     * fell back to anonymous memory under SECRETMEM_PREFERRED goes, as it came, by the
     * slow path), whose place the slot's word can hold, while the bounds have room.
     */
    if (!r->pool || !r->locked || r->relock || r->secretmem != smi_config_secretmem() ||
        base_of(e) != r->base || inner_of(e) != inner)
        return smi_region_free(r);
    smi_lock_relief(relieve);
    if (atomic_fetch_add(&held, inner) + inner > SMI_POOL_BYTES) {
        atomic_fetch_sub(&held, inner);
        return smi_region_free(r);
    }
    for (i = 0; i < SMI_POOL_SLOTS; i++) {
        uint64_t empty = 0;

        if (atomic_compare_exchange_strong(&slots[i], &empty, RESERVED))
            break;
    }
    if (i == SMI_POOL_SLOTS) {
        atomic_fetch_sub(&held, inner);
        return smi_region_free(r);
    }
    st = smi_region_scrub(r);
    if (st != SM_OK) {
        uint64_t mine = RESERVED;

        (void)atomic_compare_exchange_strong(&slots[i], &mine, 0);
        atomic_fetch_sub(&held, inner);
        /* Opened and wiped but not shut: the canary is back, so free it as it is. */
        return r->prot == SM_PROT_READWRITE ? smi_region_free(r) : st;
    }
    {
        uint64_t mine = RESERVED;

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
    (void)relieve();
}

/*
 * The child has no lock on the pooled pages (mlock is not inherited): an anonymous one
 * (WIPEONFORK) is unmapped, a secretmem one is not in the child at all (DONTFORK) and
 * its range may be someone else's by now, so only its count goes (smi_region_forget).
 */
void smi_pool_after_fork(void)
{
    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        uint64_t e = atomic_exchange(&slots[i], 0);

        if (inner_of(e) == 0)
            continue;
        if ((e & SECRETMEM) == 0)
            (void)sm_os_munmap(base_of(e), inner_of(e) + 2 * sm_os_page_size());
        atomic_fetch_sub(&smi_stat_locked, inner_of(e));
    }
    /* A give under way in the parent has no thread in the child: nothing is reserved. */
    atomic_store(&held, 0);
}

#if defined(SM_FAULT_INJECTION)
size_t smi_pool_test_list(uint8_t **bases, size_t *inner, size_t max)
{
    size_t n = 0;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        uint64_t e = atomic_load(&slots[i]);

        if (inner_of(e) != 0 && n < max) {
            if (inner != NULL)
                inner[n] = inner_of(e);
            bases[n++] = base_of(e);
        }
    }
    return n;
}

size_t smi_pool_test_bytes(void)
{
    size_t n = 0;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++)
        n += inner_of(atomic_load(&slots[i]));
    return n;
}
#endif
