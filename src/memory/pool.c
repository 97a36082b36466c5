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
 * Each slot is a state word of shelf.c over a descriptor of pooled[]: the region's
 * leading guard page, its inner pages' length and whether it is secretmem; a full
 * slot's key is the length and the backing, which a take matches. Slots are claimed by
 * compare-and-swap, so there is no lock: a purge or a panic can empty the pool from a
 * signal handler, and a fork needs no prepare handler.
 */
#include "inner.h"

typedef struct pooled_region {
    uint8_t *base;
    size_t   inner;
    bool     secretmem;
} pooled_region;

static smi_shelf_slot slots[SMI_POOL_SLOTS];
/* Each slot's region; only the thread that holds the slot reads or writes it (shelf.c). */
static pooled_region pooled[SMI_POOL_SLOTS];
/* Bytes of inner pages in the slots, or reserved for a give under way. */
static atomic_size_t held;

SMI_VG_AT_START(vg_pool)
{
    SMI_VG_ATOMIC(slots, sizeof slots);
    SMI_VG_ATOMIC(&held, sizeof held);
}

/* What a take matches: the inner pages' length and the backing. */
static uint64_t key_of(size_t inner, bool secretmem)
{
    return (uint64_t)inner << 1 | (secretmem ? 1u : 0u);
}

/* A pooled region leaves for good: unmapped, and its locked pages no longer counted. */
static void drop(const pooled_region *p)
{
    (void)sm_os_munmap(p->base, p->inner + 2 * sm_os_page_size());
    atomic_fetch_sub(&smi_stat_locked, p->inner);
    atomic_fetch_sub(&held, p->inner);
}

/*
 * Empty the pool so that a refused lock can be tried again (smi_lock_pages): the pooled
 * pages are charged to RLIMIT_MEMLOCK, and must never be why a lock is refused. true
 * if anything was unmapped. A region that a give is scrubbing in goes when the give
 * finds its reservation overtaken; one that a take holds is the take's.
 */
static bool relieve(void)
{
    bool any = false;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        if (smi_shelf_purge(&slots[i])) {
            pooled_region p = pooled[i];

            smi_shelf_release(&slots[i]);
            drop(&p);
            any = true;
        }
    }
    return any;
}

sm_status smi_pool_take(size_t size, smi_region *r)
{
    bool secretmem = smi_config_secretmem();
    smi_layout lay;
    sm_status st;
    unsigned i;

    if (!smi_layout_of(size, sm_os_page_size(), &lay))
        return SM_E_INVAL;
    i = smi_shelf_take(slots, SMI_POOL_SLOTS, key_of(lay.inner_len, secretmem));
    if (i < SMI_POOL_SLOTS) {
        st = smi_region_adopt(pooled[i].base, lay.inner_len, secretmem, size, r);
        if (st != SM_OK) {
            /* Refused: still wiped and shut, so it waits for the next take. */
            smi_shelf_put_back(&slots[i], key_of(lay.inner_len, secretmem));
            return st;
        }
        smi_shelf_release(&slots[i]);
        atomic_fetch_sub(&held, lay.inner_len);
        r->pool = true;
        return SM_OK;
    }
    /* Opened and shut at every take and give: locked on touch (inner.h). */
    st = smi_region_alloc_locked_on_touch(size, r);
    if (st == SM_OK)
        r->pool = true;
    return st;
}

sm_status smi_pool_give(smi_region *r)
{
    pooled_region p = { r->base, r->lay.inner_len, r->secretmem };
    sm_status st;
    unsigned i;

    /*
     * Only what a take hands out again: a region a take made, locked now (a region
     * counted for relocking after a fork is not), of the backing in force (a region that
     * fell back to anonymous memory under SECRETMEM_PREFERRED goes, as it came, by the
     * slow path), while the bounds have room.
     */
    if (!r->pool || !r->locked || r->relock || r->secretmem != smi_config_secretmem())
        return smi_region_free(r);
    smi_lock_relief(relieve);
    if (atomic_fetch_add(&held, p.inner) + p.inner > SMI_POOL_BYTES) {
        atomic_fetch_sub(&held, p.inner);
        return smi_region_free(r);
    }
    i = smi_shelf_reserve(slots, SMI_POOL_SLOTS);
    if (i == SMI_POOL_SLOTS) {
        atomic_fetch_sub(&held, p.inner);
        return smi_region_free(r);
    }
    st = smi_region_scrub(r);
    if (st != SM_OK) {
        smi_shelf_release(&slots[i]);
        atomic_fetch_sub(&held, p.inner);
        /* Opened and wiped but not shut: the canary is back, so free it as it is. */
        return r->prot == SM_PROT_READWRITE ? smi_region_free(r) : st;
    }
    pooled[i] = p;
    /* A purge overtook the reservation meanwhile: this region goes with the rest. */
    if (!smi_shelf_fill(&slots[i], key_of(p.inner, p.secretmem)))
        drop(&p);
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
        if (!smi_shelf_clear(&slots[i]))
            continue;
        if (!pooled[i].secretmem)
            (void)sm_os_munmap(pooled[i].base, pooled[i].inner + 2 * sm_os_page_size());
        atomic_fetch_sub(&smi_stat_locked, pooled[i].inner);
    }
    /* A give or take under way in the parent has no thread in the child: nothing is held. */
    atomic_store(&held, 0);
}

#if defined(SM_FAULT_INJECTION)
size_t smi_pool_test_list(uint8_t **bases, size_t *inner, size_t max)
{
    size_t n = 0;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        if (smi_shelf_test_full(&slots[i]) && n < max) {
            if (inner != NULL)
                inner[n] = pooled[i].inner;
            bases[n++] = pooled[i].base;
        }
    }
    return n;
}

size_t smi_pool_test_bytes(void)
{
    size_t n = 0;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++)
        if (smi_shelf_test_full(&slots[i]))
            n += pooled[i].inner;
    return n;
}
#endif
