/* SPDX-License-Identifier: ISC */
/*
 * Guarded regions: one mapping each, laid out as spec/layout.md draws it
 *
 *     | guard page | canary ... data | guard page |
 *
 * with the data ending exactly at the trailing guard page. The system calls per
 * operation are counted in spec/syscalls.md, and tests/unit/test_faults.c asserts
 * those counts through the fault shim's call counters.
 */
#include <errno.h>

#include "inner.h"

/*
 * Where regions get their canary patterns: the RNG registers smi_rng_canary here once
 * its key exists (smi_rng_init). A registered callback, not a call by name: the RNG
 * keeps its own key in a region, so it sits above this allocator (spec/layers.tsv).
 */
static void (*_Atomic canary_source)(uint8_t out[SMI_CANARY_SEED]);
/* What empties the region pool when a lock is refused (pool.c registers it). */
static bool (*_Atomic lock_relief)(void);

SMI_VG_AT_START(vg_region)
{
    SMI_VG_ATOMIC(&canary_source, sizeof canary_source);
    SMI_VG_ATOMIC(&lock_relief, sizeof lock_relief);
}

void smi_lock_relief(bool (*relief)(void))
{
    /* Once: a store on every give would bounce this line between the pool's users. */
    if (atomic_load_explicit(&lock_relief, memory_order_relaxed) == NULL)
        atomic_store(&lock_relief, relief);
}

bool smi_lock_retry(void)
{
    bool (*relief)(void) = atomic_load(&lock_relief);

    return relief != NULL && relief();
}

static sm_status lock_or_retry(sm_status (*lock)(void *, size_t), void *p, size_t n)
{
    sm_status st = lock(p, n);

    if (st != SM_OK && smi_lock_retry())
        st = lock(p, n);
    return st;
}

sm_status smi_lock_pages(void *p, size_t n)
{
    return lock_or_retry(sm_os_mlock, p, n);
}

sm_status smi_lock_touched_pages(void *p, size_t n)
{
    return lock_or_retry(sm_os_mlock_touched, p, n);
}

void smi_region_canary_source(void (*gen)(uint8_t out[SMI_CANARY_SEED]))
{
    atomic_store(&canary_source, gen);
}

static void count_live(const smi_region *r, int sign)
{
    _Atomic uint64_t *c = r->locked ? &smi_stat_locked : &smi_stat_unlocked;

    if (sign > 0)
        atomic_fetch_add(c, r->lay.inner_len);
    else
        atomic_fetch_sub(c, r->lay.inner_len);
}

/*
 * Anonymous backing: reserve everything PROT_NONE, open the inner pages, lock them and
 * keep them out of dumps and children. 5 calls: mmap, mprotect, mlock, madvise x2.
 * on_touch: the pages are locked as they are first touched (smi_lock_touched_pages)
 * rather than faulted in and locked by the mlock itself.
 */
static sm_status map_anon(smi_region *r, bool on_touch)
{
    void *base;
    sm_status st = sm_os_mmap(r->lay.map_len, SM_PROT_NONE, &base);

    if (st != SM_OK)
        return st;
    r->base = base;
    st = sm_os_mprotect(smi_region_inner(r), r->lay.inner_len, SM_PROT_READWRITE);
    /*
     * Opening the inner pages splits the reservation into three mappings. On a mapping
     * made just now, ENOMEM can only mean that the kernel refused those new mappings
     * (vm.max_map_count) or the memory to commit: the OS refused a mapping, SM_E_NOMEM
     * as spec/api.md says, not a refused protection change.
     */
    if (st == SM_E_PROT && sm_os_last_error() == ENOMEM)
        st = SM_E_NOMEM;
    if (st != SM_OK)
        goto out;
    SMI_VG_NEW_MEMORY(smi_region_inner(r), r->lay.inner_len);
    r->locked = (on_touch ? smi_lock_touched_pages : smi_lock_pages)(smi_region_inner(r),
                                                                     r->lay.inner_len) == SM_OK;
    if (!r->locked && smi_config_get()->lock_policy == SM_LOCK_REQUIRED) {
        st = SM_E_LOCK;
        goto out;
    }
    /* The advice covers the guard pages too: one call each instead of a split range. */
    st = sm_os_madvise(r->base, r->lay.map_len, SM_OS_DONTDUMP);
    if (st == SM_OK)
        st = sm_os_madvise(r->base, r->lay.map_len, SM_OS_WIPEONFORK);
out:
    if (st != SM_OK)
        (void)sm_os_munmap(r->base, r->lay.map_len);
    return st;
}

/*
 * memfd_secret backing: a PROT_NONE reservation with the secret file mapped over its
 * inner pages (guard pages cannot be part of a secretmem mapping). Those pages are
 * unevictable and charged to RLIMIT_MEMLOCK at mmap, so they count as locked and need
 * no mlock (which would fail on them). WIPEONFORK is for private anonymous memory
 * only, so DONTFORK keeps them out of children. 6 calls.
 */
static sm_status map_secret(smi_region *r)
{
    void *base;
    int fd;
    sm_status st = sm_os_secretmem_create(r->lay.inner_len, &fd);

    if (st != SM_OK)
        return st;
    st = sm_os_mmap(r->lay.map_len, SM_PROT_NONE, &base);
    if (st == SM_OK) {
        r->base = base;
        st = sm_os_mmap_fd(smi_region_inner(r), r->lay.inner_len, fd);
        if (st == SM_OK)
            SMI_VG_NEW_MEMORY(smi_region_inner(r), r->lay.inner_len);
    }
    /* The mapping keeps the file alive; close cannot lose it (the fd is gone either way). */
    (void)sm_os_close(fd);
    /* The kernel makes secretmem mappings VM_DONTDUMP itself: no DONTDUMP call. */
    if (st == SM_OK)
        st = sm_os_madvise(r->base, r->lay.map_len, SM_OS_DONTFORK);
    if (st != SM_OK) {
        if (r->base != NULL)
            (void)sm_os_munmap(r->base, r->lay.map_len);
        r->base = NULL;
        return st;
    }
    r->locked = true;
    r->secretmem = true;
    return SM_OK;
}

static sm_status region_alloc(size_t size, const uint8_t *seed, bool secret_ok, bool on_touch,
                              smi_region *out)
{
    smi_region r = { 0 };
    void (*gen)(uint8_t out[SMI_CANARY_SEED]) = atomic_load(&canary_source);
    sm_status st;

    /* No pattern to draw before the runtime is initialised: nothing is mapped then. */
    if (seed == NULL && gen == NULL)
        return SM_E_STATE;
    if (!smi_layout_of(size, sm_os_page_size(), &r.lay))
        return SM_E_INVAL;
    r.size = size;
    r.prot = SM_PROT_READWRITE;
    if (!secret_ok || !smi_config_secretmem()) {
        st = map_anon(&r, on_touch);
    } else {
        st = map_secret(&r);
        /* The pool's pages count against the same RLIMIT_MEMLOCK as the file's charge. */
        if (st == SM_E_LOCK && smi_lock_retry())
            st = map_secret(&r);
        /*
         * PREFERRED falls back to anonymous memory whenever the kernel refuses secretmem
         * for this region, for lack of support or of lockable memory (SM-REQ-026).
         * REQUIRED returns the refusal.
         */
        if ((st == SM_E_UNSUPPORTED || st == SM_E_LOCK) &&
            smi_config_get()->backing == SM_BACKING_SECRETMEM_PREFERRED)
            st = map_anon(&r, on_touch);
    }
    if (st != SM_OK)
        return st;

    if (seed != NULL)
        for (unsigned i = 0; i < SMI_CANARY_SEED; i++)
            r.seed[i] = seed[i];
    else
        gen(r.seed);
    smi_canary_fill(smi_region_inner(&r), r.lay.canary_len, r.seed);
    count_live(&r, +1);
    atomic_fetch_add(&smi_stat_allocations, 1);
    *out = r;
    return SM_OK;
}

sm_status smi_region_alloc(size_t size, const uint8_t *seed, smi_region *r)
{
    return region_alloc(size, seed, true, false, r);
}

sm_status smi_region_alloc_wiped_on_fork(size_t size, const uint8_t *seed, smi_region *r)
{
    return region_alloc(size, seed, false, false, r);
}

sm_status smi_region_alloc_locked_on_touch(size_t size, smi_region *r)
{
    return region_alloc(size, NULL, true, true, r);
}

sm_status smi_region_adopt(uint8_t *base, size_t inner_len, bool secretmem, size_t size,
                           smi_region *out)
{
    smi_region r = { 0 };
    void (*gen)(uint8_t out[SMI_CANARY_SEED]) = atomic_load(&canary_source);
    size_t page = sm_os_page_size();
    sm_status st;

    if (gen == NULL)
        return SM_E_STATE;
    if (!smi_layout_of(size, page, &r.lay) || r.lay.inner_len != inner_len)
        return SM_E_INVAL;
    st = sm_os_mprotect(base + page, inner_len, SM_PROT_READWRITE);
    if (st != SM_OK)
        return st;
    r.base = base;
    r.size = size;
    r.prot = SM_PROT_READWRITE;
    r.locked = true;
    r.secretmem = secretmem;
    /* A pattern of its own: the last secret's canary is never seen again (spec/layout.md). */
    gen(r.seed);
    smi_canary_fill(base + page, r.lay.canary_len, r.seed);
    atomic_fetch_add(&smi_stat_allocations, 1);
    *out = r;
    return SM_OK;
}

sm_status smi_region_scrub(smi_region *r)
{
    size_t page = sm_os_page_size();
    sm_status st = smi_region_protect(r, SM_PROT_READWRITE);

    if (st != SM_OK)
        return st;
    smi_region_check(r);
    smi_wipe(r->base + page, r->lay.inner_len);
    st = smi_region_protect(r, SM_PROT_READ);
    if (st != SM_OK)
        /* Still a whole region, open: the canary back, so that a free can follow. */
        smi_canary_fill(r->base + page, r->lay.canary_len, r->seed);
    return st;
}

sm_status smi_region_protect(smi_region *r, sm_prot prot)
{
    sm_status st;

    if (r->prot == prot)
        return SM_OK;
    st = sm_os_mprotect(smi_region_inner(r), r->lay.inner_len, prot);
    if (st == SM_OK)
        r->prot = prot;
    return st;
}

void smi_region_check(const smi_region *r)
{
    if (!smi_canary_ok(smi_region_inner(r), r->lay.canary_len, r->seed))
        smi_panic(smi_corrupt_msg);
}

sm_status smi_region_free(smi_region *r)
{
    sm_status st = smi_region_protect(r, SM_PROT_READWRITE);

    if (st != SM_OK)
        return st;
    smi_region_check(r);
    smi_wipe(smi_region_inner(r), r->lay.inner_len);
    /* munmap also drops the lock: no munlock call (spec/syscalls.md). */
    st = sm_os_munmap(r->base, r->lay.map_len);
    if (st != SM_OK) {
        /* Still mapped, now wiped: rearm the canary so that the free can be retried. */
        smi_canary_fill(smi_region_inner(r), r->lay.canary_len, r->seed);
        return st;
    }
    count_live(r, -1);
    smi_wipe(r, sizeof *r);
    return SM_OK;
}

sm_status smi_region_drop(smi_region *r)
{
    sm_status st = sm_os_munmap(r->base, r->lay.map_len);

    if (st != SM_OK)
        return st;
    count_live(r, -1);
    smi_wipe(r, sizeof *r);
    return SM_OK;
}

void smi_region_unmake(smi_region *r)
{
    /*
     * Rollback must not fail on top of the first failure: nobody else can reach this
     * region, and nobody ever will, so if the free is refused it is dropped unwiped
     * (smi_region_drop). Only with faults injected into both can it stay.
     */
    if (smi_region_free(r) == SM_OK || smi_region_drop(r) == SM_OK)
        atomic_fetch_sub(&smi_stat_allocations, 1);
}

bool smi_region_purge(smi_region *r)
{
    bool intact = true;

    /* If the pages cannot be opened they cannot be wiped, but unmapping still drops them. */
    if (sm_os_mprotect(smi_region_inner(r), r->lay.inner_len, SM_PROT_READWRITE) == SM_OK) {
        intact = smi_canary_ok(smi_region_inner(r), r->lay.canary_len, r->seed) == 1;
        smi_wipe(smi_region_inner(r), r->lay.inner_len);
    }
    (void)sm_os_munmap(r->base, r->lay.map_len);
    count_live(r, -1);
    return intact;
}

void smi_region_wipe_in_place(smi_region *r)
{
    /*
     * Always through mprotect, whatever r->prot says: the holder may have been stopped
     * between unmapping the region and removing its slot (a destroy), and then mprotect
     * fails (ENOMEM: not mapped) where a store would fault.
     */
    if (sm_os_mprotect(smi_region_inner(r), r->lay.inner_len, SM_PROT_READWRITE) ==
        SM_OK) {
        r->prot = SM_PROT_READWRITE;
        smi_wipe(smi_region_data(r), r->size);
    }
}

/*
 * See inner.h: counted again from the zero that smi_stats_after_fork set, as unlocked,
 * so that every later free uncounts correctly. A region that a parent child had not
 * locked again yet keeps its relock. A region that is not there (all zero: the
 * generator's key page before sm_init) counts for nothing.
 */
void smi_region_fork_unlocked(smi_region *r)
{
    r->relock = r->locked || r->relock;
    r->locked = false;
    count_live(r, +1);
}

void smi_region_relocked(smi_region *r)
{
    if (!r->relock)
        return;
    count_live(r, -1);
    r->locked = true;
    r->relock = false;
    count_live(r, +1);
}

/*
 * A secretmem region is DONTFORK, guard pages included: the child has nothing at its
 * address, and whatever is there now is someone else's (a child handler that ran
 * before this one may have mapped it): left alone (issue 18 §3, SM-REQ-106). An
 * anonymous region is WIPEONFORK, still the child's: unmapped. Neither is counted
 * down: the child's counters are set afresh (smi_stats_after_fork), and a forget made
 * after that (a fill that forked, secret.c) would take off what is no longer there.
 */
void smi_region_forget(smi_region *r)
{
    if (!r->secretmem)
        (void)sm_os_munmap(r->base, r->lay.map_len);
}

sm_status smi_region_audit(smi_region *r)
{
    sm_prot was = r->prot;
    sm_status st;

    /*
     * A region at rest in PROT_NONE is opened just for the check. If the OS refuses, its
     * canary cannot be looked at: that refusal is the audit's result, never SM_OK, which
     * would vouch for a canary nobody saw (SM-REQ-102). The walk goes on to the others.
     */
    if (was == SM_PROT_NONE && (st = smi_region_protect(r, SM_PROT_READ)) != SM_OK)
        return st;
    smi_region_check(r);
    /*
     * If the OS refuses to shut it again, the region stays readable (r->prot says so,
     * and its owner's next shut closes it): reported, not hidden behind SM_OK.
     */
    return was == SM_PROT_NONE ? smi_region_protect(r, SM_PROT_NONE) : SM_OK;
}
