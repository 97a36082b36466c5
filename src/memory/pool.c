/* SPDX-License-Identifier: ISC */
/*
 * The pool (spec/layout.md, "The pool"): up to SMI_POOL_SLOTS freed mappings of two
 * kinds, guarded regions and the protected factory's plain mappings, and SMI_POOL_BYTES
 * of their pages (a region's inner pages), wiped, still locked and read-only, each
 * waiting for the next mapping of its kind and page count; a region gets a canary
 * pattern of its own. The regions' users: the guarded factory's secrets, and the regions
 * an enclave open decrypts into (issue 14 §4). A fresh region costs mmap, mprotect,
 * mlock, two madvise, the first touch of every page and an munmap at its free, a fresh
 * plain mapping the same but the mprotect; a pooled one costs none of them, only the
 * mprotect calls that the fill, the wipe and the shut need anyway.
 *
 * Each slot is a state word of shelf.c over a descriptor of pooled[]: where the mapping
 * starts (a region's leading guard page), its pages' length, whether it is secretmem and
 * whether it is a plain mapping; a full slot's key is the length, the backing and the
 * kind, which a take matches, so that a region is never handed out as a plain mapping
 * nor the other way round (their layouts differ: a region has two guard pages more to
 * unmap). Slots are claimed by compare-and-swap, so there is no lock: a purge or a panic
 * can empty the pool from a signal handler, and a fork needs no prepare handler.
 */
#include "inner.h"

typedef struct pooled_map {
    uint8_t *base;
    size_t   inner;
    bool     secretmem;
    bool     plain;
} pooled_map;

static smi_shelf_slot slots[SMI_POOL_SLOTS];
/* Each slot's mapping; only the thread that holds the slot reads or writes it (shelf.c). */
static pooled_map pooled[SMI_POOL_SLOTS];
/* Bytes of pages in the slots, or reserved for a give under way. */
static atomic_size_t held;

SMI_VG_AT_START(vg_pool)
{
    SMI_VG_ATOMIC(slots, sizeof slots);
    SMI_VG_ATOMIC(&held, sizeof held);
}

/* What a take matches: the pages' length, the backing and the kind. */
static uint64_t key_of(const pooled_map *p)
{
    return (uint64_t)p->inner << 2 | (p->plain ? 2u : 0u) | (p->secretmem ? 1u : 0u);
}

/* What the mapping spans: a region's guard pages too. */
static size_t mapped_len(const pooled_map *p)
{
    return p->inner + (p->plain ? 0 : 2 * sm_os_page_size());
}

/* A pooled mapping leaves for good: unmapped, and its locked pages no longer counted. */
static void drop(const pooled_map *p)
{
    (void)sm_os_munmap(p->base, mapped_len(p));
    atomic_fetch_sub(&smi_stat_locked, p->inner);
    atomic_fetch_sub(&held, p->inner);
}

/*
 * Empty the pool so that a refused lock can be tried again (smi_lock_pages): the pooled
 * pages are charged to RLIMIT_MEMLOCK, and must never be why a lock is refused. true
 * if anything was unmapped. A mapping that a give is scrubbing in goes when the give
 * finds its reservation overtaken; one that a take holds is the take's.
 */
static bool relieve(void)
{
    bool any = false;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        if (smi_shelf_purge(&slots[i])) {
            pooled_map p = pooled[i];

            smi_shelf_release(&slots[i]);
            drop(&p);
            any = true;
        }
    }
    return any;
}

/* A full slot of want's kind, length and backing (the one in force) claimed, or SMI_POOL_SLOTS. */
static unsigned claim(pooled_map *want)
{
    want->secretmem = smi_config_secretmem();
    return smi_shelf_take(slots, SMI_POOL_SLOTS, key_of(want));
}

/*
 * The end of a take that claimed slot i, whose adoption gave st: taken out of the pool,
 * or, refused, still wiped and shut, waiting for the next take.
 */
static sm_status taken(unsigned i, sm_status st)
{
    size_t inner = pooled[i].inner;

    if (st != SM_OK) {
        smi_shelf_put_back(&slots[i], key_of(&pooled[i]));
        return st;
    }
    smi_shelf_release(&slots[i]);
    atomic_fetch_sub(&held, inner);
    return SM_OK;
}

/*
 * A slot reserved for a give of inner bytes of pages while both bounds have room, or
 * SMI_POOL_SLOTS (then the give frees its mapping, as before the pool).
 */
static unsigned reserve(size_t inner)
{
    unsigned i;

    smi_lock_relief(relieve);
    if (atomic_fetch_add(&held, inner) + inner > SMI_POOL_BYTES) {
        atomic_fetch_sub(&held, inner);
        return SMI_POOL_SLOTS;
    }
    i = smi_shelf_reserve(slots, SMI_POOL_SLOTS);
    if (i == SMI_POOL_SLOTS)
        atomic_fetch_sub(&held, inner);
    return i;
}

/* A reservation given up: the scrub was refused. */
static void unreserve(unsigned i, size_t inner)
{
    smi_shelf_release(&slots[i]);
    atomic_fetch_sub(&held, inner);
}

/* The scrubbed mapping into its reserved slot i. */
static void park(unsigned i, const pooled_map *p)
{
    pooled[i] = *p;
    /* A purge overtook the reservation meanwhile: this mapping goes with the rest. */
    if (!smi_shelf_fill(&slots[i], key_of(p)))
        drop(p);
}

/*
 * Only what a take hands out again: made by a take, locked now, of the backing in force
 * (one that fell back to anonymous memory under SECRETMEM_PREFERRED goes, as it came, by
 * the slow path).
 */
static bool keepable(bool pool, bool locked, bool secretmem)
{
    return pool && locked && secretmem == smi_config_secretmem();
}

sm_status smi_pool_take(size_t size, smi_region *r)
{
    pooled_map want = { .plain = false };
    smi_layout lay;
    sm_status st;
    unsigned i;

    if (!smi_layout_of(size, sm_os_page_size(), &lay))
        return SM_E_INVAL;
    want.inner = lay.inner_len;
    i = claim(&want);
    if (i < SMI_POOL_SLOTS)
        st = taken(i, smi_region_adopt(pooled[i].base, want.inner, want.secretmem, size, r));
    else
        /* Opened and shut at every take and give: locked on touch (inner.h). */
        st = smi_region_alloc_locked_on_touch(size, r);
    if (st == SM_OK)
        r->pool = true;
    return st;
}

sm_status smi_pool_take_plain(size_t size, smi_plain *p)
{
    pooled_map want = { .inner = smi_round_up(size, sm_os_page_size()), .plain = true };
    sm_status st;
    unsigned i;

    if (size == 0 || want.inner == 0)
        return SM_E_INVAL;
    i = claim(&want);
    if (i < SMI_POOL_SLOTS)
        st = taken(i, smi_plain_adopt(pooled[i].base, want.inner, want.secretmem, size, p));
    else
        st = smi_plain_alloc(size, p); /* locked on touch, as a fresh region here */
    if (st == SM_OK)
        p->pool = true;
    return st;
}

sm_status smi_pool_give(smi_region *r)
{
    pooled_map p = { r->base, r->lay.inner_len, r->secretmem, false };
    sm_status st;
    unsigned i;

    /* A region counted for relocking after a fork is not locked now. */
    if (!keepable(r->pool, r->locked && !r->relock, r->secretmem) ||
        (i = reserve(p.inner)) == SMI_POOL_SLOTS)
        return smi_region_free(r);
    st = smi_region_scrub(r);
    if (st != SM_OK) {
        unreserve(i, p.inner);
        /* Opened and wiped but not shut: the canary is back, so free it as it is. */
        return r->prot == SM_PROT_READWRITE ? smi_region_free(r) : st;
    }
    park(i, &p);
    smi_wipe(r, sizeof *r);
    return SM_OK;
}

sm_status smi_pool_give_plain(smi_plain *m)
{
    pooled_map p = { m->base, m->len, m->secretmem, true };
    sm_status st;
    unsigned i;

    if (!keepable(m->pool, m->locked, m->secretmem) ||
        (i = reserve(p.inner)) == SMI_POOL_SLOTS)
        return smi_plain_free(m);
    st = smi_plain_scrub(m);
    if (st != SM_OK) {
        unreserve(i, p.inner);
        /* Opened and wiped but not shut: freed as it is. */
        return m->prot == SM_PROT_READWRITE ? smi_plain_free(m) : st;
    }
    park(i, &p);
    smi_wipe(m, sizeof *m);
    return SM_OK;
}

/*
 * A give refused in a rollback (its scrub's mprotect, or the free's) cannot be retried:
 * nobody else holds the mapping, and nobody ever will, so it is dropped as it is, shut
 * and unwiped, as smi_region_unmake does (SM-REQ-030). A close's give, which the close
 * can retry, is never dropped.
 */
void smi_pool_unmake(smi_region *r)
{
    if (smi_pool_give(r) == SM_OK || smi_region_drop(r) == SM_OK)
        atomic_fetch_sub(&smi_stat_allocations, 1);
}

void smi_pool_unmake_plain(smi_plain *p)
{
    if (smi_pool_give_plain(p) == SM_OK || smi_plain_drop(p) == SM_OK)
        atomic_fetch_sub(&smi_stat_allocations, 1);
}

void smi_pool_purge(void)
{
    (void)relieve();
}

/*
 * The child has no lock on the pooled pages (mlock is not inherited): an anonymous
 * mapping (WIPEONFORK) is unmapped, a secretmem one is not in the child at all
 * (DONTFORK) and its range may be someone else's by now, so it is left alone
 * (smi_region_forget, smi_plain_forget). The counters are set afresh after this
 * (smi_stats_after_fork).
 */
void smi_pool_after_fork(void)
{
    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        if (smi_shelf_clear(&slots[i]) && !pooled[i].secretmem)
            (void)sm_os_munmap(pooled[i].base, mapped_len(&pooled[i]));
    }
    /* A give or take under way in the parent has no thread in the child: nothing is held. */
    atomic_store(&held, 0);
}

#if defined(SM_FAULT_INJECTION)
size_t smi_pool_test_list(uint8_t **pages, size_t *inner, size_t max)
{
    size_t n = 0;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++) {
        if (smi_shelf_test_full(&slots[i]) && n < max) {
            if (inner != NULL)
                inner[n] = pooled[i].inner;
            pages[n++] = pooled[i].base + (pooled[i].plain ? 0 : sm_os_page_size());
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

size_t smi_pool_test_mapped(void)
{
    size_t n = 0;

    for (unsigned i = 0; i < SMI_POOL_SLOTS; i++)
        if (smi_shelf_test_full(&slots[i]))
            n += mapped_len(&pooled[i]);
    return n;
}
#endif
