/* SPDX-License-Identifier: ISC */
/*
 * Eva's driver for the pool and the spare mappings (proofs/README.md, "Eva", "The pool
 * analysis"): every function of src/memory/pool.c, of the lock-free slots under it
 * (src/memory/shelf.c) and of src/memory/spare.c, over guarded regions and plain
 * mappings as compiled (src/memory/region.c, src/memory/plain.c), with the OS shim of
 * proofs/eva/os.c; then, after sm_init, the guarded factory's secrets
 * (src/objects/secret.c), whose regions come from the pool.
 * Built with SM_FAULT_INJECTION (eva.sh), so that the tests' hooks, which say what is
 * pooled, are in the run and are reached too.
 *
 * The run is determinate, as the buffers analysis's (eva_os_fail): no OS call fails but
 * the one a scenario names, so that Eva never joins a pool that holds a region with one
 * that does not. What the driver checks, each on the path where the library would break
 * it a Frama_C_show_each_* call that eva.sh fails on: a pooled region comes back to a
 * take of its page count with the exact length asked for, writable whole, and a take of
 * another page count does not get it; a refused adoption leaves the region
 * pooled and nothing new mapped or counted; a refused allocation leaves nothing mapped
 * or counted; a give the pool cannot hold (its slots full, a region unlocked, one not
 * made by a take) unmaps its region; a refused scrub pools nothing; the emptying on a
 * refused lock, a purge and a forked child's forgetting leave nothing pooled, mapped or
 * counted locked (the child's counters set afresh after it); a spare mapping comes back
 * whole to a take of its length only, a drain unmaps every one, also when the OS
 * refuses an unmap, and a child frees the entries that a give it lacks held. The same for plain
 * mappings, and a pooled one is never taken as a region nor a region as one. A guarded
 * secret's closed region is pooled and the next secret's; a refused make leaves nothing
 * mapped or counted, a refused close can be tried again; a purged or pre-fork handle is
 * refused, and a forked child keeps no pooled region.
 */
#include <__fc_builtin.h>

#include "eva-driver.h"
#include "inner.h"

/* Before sm_init, the regions' canary source (smi_rng_canary's place): one pattern. */
static void constant_canary(uint8_t out[SMI_CANARY_SEED])
{
    for (size_t i = 0; i < SMI_CANARY_SEED; i++)
        out[i] = 0x5a;
}

/* The runtime's purge, which a panic calls through fatal.c's hook: out of this scope. */
static bool purge_all(bool ending)
{
    (void)ending;
    return true;
}

static const sm_config anon = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                .backing = SM_BACKING_ANON };
static const sm_config secret = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                  .backing = SM_BACKING_SECRETMEM_REQUIRED };

/* Nothing pooled, mapped or counted locked: where every scenario starts and ends. */
static void empty(int line)
{
    uint8_t *bases[1];

    if (smi_pool_test_bytes() != 0 || smi_pool_test_list(bases, NULL, 1) != 0 ||
        eva_os_mapped() != 0 || smi_stat_locked != 0 || smi_spare_test_bytes() != 0)
        Frama_C_show_each_left_behind(line);
}

/* The data of a region the pool handed out: its exact length, written and read whole. */
static void use(const smi_region *r, size_t n, int line)
{
    uint8_t *d = smi_region_data(r);
    static volatile uint8_t sink;

    if (r->size != n || !r->pool || r->prot != SM_PROT_READWRITE)
        Frama_C_show_each_wrong_region(line);
    for (size_t i = 0; i < n; i++)
        d[i] ^= 1;
    for (size_t i = 0; i < n; i++)
        sink ^= d[i];
    smi_region_check(r);
}

/*
 * A region of n bytes through the pool twice: taken fresh, given back (pooled: one
 * region of its inner length at its base, still counted locked), taken again by a size
 * of the same page count m (the same pages, with m's length), and purged.
 */
static void round_trip(size_t n, size_t m)
{
    smi_region r;
    uint8_t *base, *bases[2];
    size_t inner[2], locked;

    MUST(smi_pool_take(n, &r));
    use(&r, n, __LINE__);
    base = r.base;
    locked = (size_t)smi_stat_locked;
    MUST(smi_pool_give(&r));
    /* the test hook lists where the pooled pages start: past the leading guard page */
    if (smi_pool_test_list(bases, inner, 2) != 1 || bases[0] != base + 4096 ||
        smi_pool_test_bytes() != inner[0] || smi_pool_test_mapped() != inner[0] + 2 * 4096 ||
        smi_stat_locked != locked || eva_os_mapped() != 1)
        Frama_C_show_each_not_pooled(n);
    MUST(smi_pool_take(m, &r));
    if (r.base != base || r.lay.inner_len != inner[0] || smi_pool_test_bytes() != 0)
        Frama_C_show_each_pooled_not_taken(n);
    use(&r, m, __LINE__);
    MUST(smi_pool_give(&r));
    smi_pool_purge();
    empty(__LINE__);
}

/* A pooled region that a take of another page count does not get: it maps a fresh one. */
static void no_match(void)
{
    smi_region r, other;
    uint8_t *base;
    size_t one, two;

    MUST(smi_pool_take(1, &r));
    base = r.base;
    one = r.lay.inner_len;
    MUST(smi_pool_give(&r));
    MUST(smi_pool_take(4097, &other));
    two = other.lay.inner_len;
    if (other.base == base || two == one || smi_pool_test_bytes() != one)
        Frama_C_show_each_other_size_taken(other.size);
    MUST(smi_pool_give(&other));
    if (smi_pool_test_bytes() != one + two)
        Frama_C_show_each_other_size_not_pooled(other.size);
    smi_pool_purge();
    empty(__LINE__);
}

/*
 * A take whose adoption the OS refuses (its mprotect): the region stays pooled, nothing
 * is mapped or counted anew, and the next take gets it.
 */
static void refused_adoption(void)
{
    smi_region r;
    uint8_t *base;
    uint64_t made;

    MUST(smi_pool_take(100, &r));
    base = r.base;
    MUST(smi_pool_give(&r));
    made = smi_stat_allocations;
    eva_os_fail(1);
    if (smi_pool_take(100, &r) != SM_E_PROT || smi_pool_test_bytes() != 4096 /* one page */ ||
        eva_os_mapped() != 1 || smi_stat_allocations != made)
        Frama_C_show_each_refused_adoption_changed(made);
    MUST(smi_pool_take(100, &r));
    if (r.base != base)
        Frama_C_show_each_refused_adoption_lost(base);
    MUST(smi_pool_give(&r));
    smi_pool_purge();
    empty(__LINE__);
}

/*
 * A fresh take with its nth OS call refused: nothing is mapped or counted but where
 * the lock policy goes on unlocked (best effort): that region is freed, not pooled.
 */
static void refused_fresh(unsigned nth)
{
    smi_region r;
    uint64_t made = smi_stat_allocations;

    eva_os_fail(nth);
    if (smi_pool_take(4096, &r) != SM_OK) {
        if (smi_stat_allocations != made)
            Frama_C_show_each_refused_take_counted(nth);
        empty(__LINE__);
        return;
    }
    eva_os_fail(0);
    if (r.locked) {
        MUST(smi_pool_give(&r));
        smi_pool_purge();
    } else {
        MUST(smi_pool_give(&r));
        if (smi_pool_test_bytes() != 0)
            Frama_C_show_each_unlocked_pooled(nth);
    }
    empty(__LINE__);
}
#define CALLS_1_TO_6(f) (f(1), f(2), f(3), f(4), f(5), f(6))

/*
 * The gives that the pool does not keep, each region unmapped instead: one that no take
 * made, one whose scrub cannot shut it (wiped, then freed), and one shut by its owner
 * whose scrub cannot open it (SM_E_PROT, whole: the owner frees it).
 */
static void not_kept(void)
{
    smi_region r;

    MUST(smi_region_alloc(10, NULL, &r));
    MUST(smi_pool_give(&r));
    empty(__LINE__);
    MUST(smi_pool_take(10, &r));
    eva_os_fail(1);
    if (smi_pool_give(&r) != SM_OK)
        Frama_C_show_each_refused_shut_not_freed(0);
    empty(__LINE__);
    MUST(smi_pool_take(10, &r));
    MUST(smi_region_protect(&r, SM_PROT_NONE));
    eva_os_fail(1);
    if (smi_pool_give(&r) != SM_E_PROT || smi_pool_test_bytes() != 0)
        Frama_C_show_each_refused_open_pooled(0);
    MUST(smi_region_free(&r));
    empty(__LINE__);
}

/* A region given back in the rollback of a failed call: pooled, and not counted made. */
static void rolled_back(void)
{
    smi_region r;
    uint64_t made = smi_stat_allocations;
    size_t inner;

    MUST(smi_pool_take(4096, &r));
    inner = r.lay.inner_len;
    smi_pool_unmake(&r);
    if (smi_stat_allocations != made || smi_pool_test_bytes() != inner)
        Frama_C_show_each_unmake_counted(made);
    smi_pool_purge();
    empty(__LINE__);
}

/*
 * Nine regions held at once, each from its own call site (a heap block of its own for
 * Eva), then given back: eight fill the slots, the ninth finds none and is unmapped.
 */
#define HOLD(k) smi_pool_take(100, &r[k]) /* one page each */
static void fill(smi_region r[SMI_POOL_SLOTS + 1])
{
    MUST(HOLD(0));
    MUST(HOLD(1));
    MUST(HOLD(2));
    MUST(HOLD(3));
    MUST(HOLD(4));
    MUST(HOLD(5));
    MUST(HOLD(6));
    MUST(HOLD(7));
    MUST(HOLD(8));
    /*@ loop unroll SMI_POOL_SLOTS + 1; */
    for (unsigned k = 0; k <= SMI_POOL_SLOTS; k++)
        MUST(smi_pool_give(&r[k]));
    if (smi_pool_test_bytes() != SMI_POOL_SLOTS * 4096 || eva_os_mapped() != SMI_POOL_SLOTS)
        Frama_C_show_each_full_pool_kept_more(eva_os_mapped());
}

/* The full pool emptied by a purge. */
static void full_purged(void)
{
    smi_region r[SMI_POOL_SLOTS + 1];

    fill(r);
    smi_pool_purge();
    empty(__LINE__);
}

/*
 * The full pool emptied by a refused lock: a fresh region's mlock is refused, the pool's
 * relief unmaps every pooled region, and the lock tried again succeeds.
 */
static void full_relieved(void)
{
    smi_region r[SMI_POOL_SLOTS + 1], fresh;

    fill(r);
    eva_os_fail(3); /* the mmap, the mprotect, then the mlock */
    MUST(smi_region_alloc(3 * 4096, NULL, &fresh));
    if (!fresh.locked || smi_pool_test_bytes() != 0 || eva_os_mapped() != 1)
        Frama_C_show_each_relief_failed(fresh.locked);
    MUST(smi_region_free(&fresh));
    empty(__LINE__);
}

/*
 * The full pool in a forked child: every region unmapped, none counted locked once the
 * child's counters are set afresh (runtime.c's child handler, after the pool's).
 */
static void full_forgotten(void)
{
    smi_region r[SMI_POOL_SLOTS + 1];

    fill(r);
    smi_pool_after_fork();
    smi_stats_after_fork();
    empty(__LINE__);
}

/*
 * Spare mappings: a mapping given back comes back whole to a take of its length only;
 * the gives refused (no length, past the bound, the test's switch);
 * a drain unmaps every spare, and forgets one whose unmap the OS refuses.
 */
static void spares(void)
{
    void *p, *q;

    MUST(sm_os_mmap(2 * 4096, SM_PROT_READWRITE, &p));
    MUST(sm_os_mmap(4096, SM_PROT_READWRITE, &q));
    if (!smi_spare_give(p, 2 * 4096) || smi_spare_test_bytes() != 2 * 4096 ||
        smi_spare_take(4096) != NULL || smi_spare_take(2 * 4096) != p ||
        smi_spare_take(2 * 4096) != NULL || smi_spare_test_bytes() != 0)
        Frama_C_show_each_spare_not_returned(p);
    ((uint8_t *)p)[2 * 4096 - 1] = 1; /* the caller's, whole */
    smi_spare_test_off(true);
    if (smi_spare_give(p, 2 * 4096))
        Frama_C_show_each_spare_kept_when_off(p);
    smi_spare_test_off(false);
    if (smi_spare_give(p, 0) || smi_spare_give(p, (8u << 20) + 4096))
        Frama_C_show_each_spare_kept_past_bounds(p);
    if (!smi_spare_give(p, 2 * 4096) || !smi_spare_give(q, 4096))
        Frama_C_show_each_spare_refused(p);
    eva_os_fail(1);
    smi_spare_drain();
    /* the refused unmap leaves one of the two mapped, and the drain forgot both */
    if (smi_spare_test_bytes() != 0 || eva_os_mapped() != 1)
        Frama_C_show_each_drain_incomplete(eva_os_mapped());
    if (sm_os_munmap(p, 2 * 4096) != SM_OK)
        Frama_C_show_each_drain_lost_a_mapping(p);
    empty(__LINE__);
}

/*
 * Spare entries across a fork. In the parent, a give stopped after its reservation (the
 * tests' hold) of the whole bound makes the next give refused until it lets go. In the
 * child, where such a give has no thread, every entry is emptied: the spare mapping is
 * unmapped, the held entry and its bytes are free, and a give is kept again.
 */
static void spares_forgotten(void)
{
    unsigned held;
    void *p, *q;

    MUST(sm_os_mmap(4096, SM_PROT_READWRITE, &p));
    MUST(sm_os_mmap(4096, SM_PROT_READWRITE, &q));
    held = smi_spare_test_hold(8u << 20);
    if (held >= 64 || smi_spare_give(q, 4096))
        Frama_C_show_each_spare_kept_past_a_held_bound(held);
    smi_spare_test_let_go(held, 8u << 20);
    if (!smi_spare_give(p, 4096))
        Frama_C_show_each_spare_refused_after_let_go(p);
    held = smi_spare_test_hold(8u << 20);
    if (held >= 64)
        Frama_C_show_each_spare_not_held(held);
    smi_spare_after_fork();
    if (smi_spare_test_bytes() != 0 || eva_os_mapped() != 1)
        Frama_C_show_each_spare_kept_in_child(eva_os_mapped());
    if (!smi_spare_give(q, 4096))
        Frama_C_show_each_spare_refused_in_child(q);
    smi_spare_drain();
    empty(__LINE__);
}

/* ---- the protected factory's plain mappings, in the same pool ---- */

/* The bytes of a plain mapping the pool handed out: its exact length, written and read. */
static void use_plain(const smi_plain *p, size_t n, int line)
{
    static volatile uint8_t sink;

    if (p->size != n || !p->pool || p->prot != SM_PROT_READWRITE)
        Frama_C_show_each_wrong_plain(line);
    for (size_t i = 0; i < n; i++)
        p->base[i] ^= 1;
    for (size_t i = 0; i < n; i++)
        sink ^= p->base[i];
}

/*
 * A plain mapping of n bytes through the pool: taken fresh, given back (pooled at its
 * base, no guard pages, still counted locked); a region of its page count does not get
 * it, and pooled beside it is not what the next plain take of size m, of the same page
 * count, gets: that take gets the same pages, with m's length.
 */
static void plain_round_trip(size_t n, size_t m)
{
    smi_plain p;
    smi_region r;
    uint8_t *base, *pages[2];
    size_t inner[2], locked, region;

    MUST(smi_pool_take_plain(n, &p));
    use_plain(&p, n, __LINE__);
    base = p.base;
    locked = (size_t)smi_stat_locked;
    MUST(smi_pool_give_plain(&p));
    if (smi_pool_test_list(pages, inner, 2) != 1 || pages[0] != base ||
        smi_pool_test_bytes() != inner[0] || smi_pool_test_mapped() != inner[0] ||
        smi_stat_locked != locked || eva_os_mapped() != 1)
        Frama_C_show_each_plain_not_pooled(n);
    MUST(smi_pool_take(n, &r));
    region = r.lay.inner_len;
    if (r.base == base || smi_pool_test_bytes() != inner[0] || region != inner[0])
        Frama_C_show_each_plain_taken_as_region(n);
    use(&r, n, __LINE__);
    MUST(smi_pool_give(&r));
    MUST(smi_pool_take_plain(m, &p));
    if (p.base != base || p.len != inner[0] || smi_pool_test_bytes() != region)
        Frama_C_show_each_region_taken_as_plain(n);
    use_plain(&p, m, __LINE__);
    MUST(smi_pool_give_plain(&p));
    smi_pool_purge();
    empty(__LINE__);
}

/* A plain take whose adoption the OS refuses: still pooled, nothing new; the next gets it. */
static void plain_refused_adoption(void)
{
    smi_plain p;
    uint8_t *base;
    uint64_t made;

    MUST(smi_pool_take_plain(100, &p));
    base = p.base;
    MUST(smi_pool_give_plain(&p));
    made = smi_stat_allocations;
    eva_os_fail(1);
    if (smi_pool_take_plain(100, &p) != SM_E_PROT || smi_pool_test_bytes() != 4096 ||
        eva_os_mapped() != 1 || smi_stat_allocations != made)
        Frama_C_show_each_plain_refused_adoption_changed(made);
    MUST(smi_pool_take_plain(100, &p));
    if (p.base != base)
        Frama_C_show_each_plain_refused_adoption_lost(base);
    MUST(smi_pool_give_plain(&p));
    smi_pool_purge();
    empty(__LINE__);
}

/* A fresh plain take with its nth OS call refused, as refused_fresh. */
static void plain_refused_fresh(unsigned nth)
{
    smi_plain p;
    uint64_t made = smi_stat_allocations;
    bool locked;

    eva_os_fail(nth);
    if (smi_pool_take_plain(4096, &p) != SM_OK) {
        if (smi_stat_allocations != made)
            Frama_C_show_each_plain_refused_take_counted(nth);
        empty(__LINE__);
        return;
    }
    eva_os_fail(0);
    locked = p.locked;
    MUST(smi_pool_give_plain(&p));
    if (!locked && smi_pool_test_bytes() != 0)
        Frama_C_show_each_unlocked_plain_pooled(nth);
    smi_pool_purge();
    empty(__LINE__);
}

/*
 * The plain gives that the pool does not keep, as not_kept: one that no take made, one
 * whose scrub cannot shut it (wiped, then unmapped), one whose scrub cannot open it;
 * and one given back in a rollback, pooled and not counted made.
 */
static void plain_not_kept(void)
{
    smi_plain p;
    uint64_t made;

    MUST(smi_plain_alloc(10, &p));
    MUST(smi_pool_give_plain(&p));
    empty(__LINE__);
    MUST(smi_pool_take_plain(10, &p));
    eva_os_fail(1);
    if (smi_pool_give_plain(&p) != SM_OK)
        Frama_C_show_each_plain_refused_shut_not_freed(0);
    empty(__LINE__);
    MUST(smi_pool_take_plain(10, &p));
    MUST(smi_plain_protect(&p, SM_PROT_NONE));
    eva_os_fail(1);
    if (smi_pool_give_plain(&p) != SM_E_PROT || smi_pool_test_bytes() != 0)
        Frama_C_show_each_plain_refused_open_pooled(0);
    MUST(smi_plain_free(&p));
    empty(__LINE__);
    made = smi_stat_allocations;
    MUST(smi_pool_take_plain(4096, &p));
    smi_pool_unmake_plain(&p);
    if (smi_stat_allocations != made || smi_pool_test_bytes() != 4096)
        Frama_C_show_each_plain_unmake_counted(made);
    smi_pool_purge();
    empty(__LINE__);
}

/*
 * A plain mapping and a region pooled side by side, emptied by a refused lock (each
 * unmapped by its own length), then again by a forked child's forgetting.
 */
static void mixed(void)
{
    smi_plain p;
    smi_region r, fresh;

    MUST(smi_pool_take_plain(1, &p));
    MUST(smi_pool_take(1, &r));
    MUST(smi_pool_give_plain(&p));
    MUST(smi_pool_give(&r));
    eva_os_fail(3); /* the mmap, the mprotect, then the mlock */
    MUST(smi_region_alloc(3 * 4096, NULL, &fresh));
    if (!fresh.locked || smi_pool_test_bytes() != 0 || eva_os_mapped() != 1)
        Frama_C_show_each_mixed_relief_failed(fresh.locked);
    MUST(smi_region_free(&fresh));
    empty(__LINE__);
    MUST(smi_pool_take_plain(1, &p));
    MUST(smi_pool_take(1, &r));
    MUST(smi_pool_give_plain(&p));
    MUST(smi_pool_give(&r));
    smi_pool_after_fork();
    smi_stats_after_fork();
    empty(__LINE__);
}

/* ---- the guarded factory's secrets, whose regions come from the pool ---- */

/* The bytes a guarded secret is made from: any. */
static uint8_t src[16];

/* Every byte of the window: an alarm unless the window is open and whole. */
static sm_status reader(const uint8_t *bytes, size_t len, void *ctx)
{
    static volatile uint8_t seen;

    (void)ctx;
    for (size_t i = 0; i < len; i++)
        seen ^= bytes[i];
    return SM_OK;
}

/*
 * A guarded secret's life: its region taken from the pool (fresh), read through its
 * window, audited, closed back into the pool, then taken from there by the next
 * secret, while the first handle is refused.
 */
static void guarded_life(void)
{
    sm_secret s, t;
    uint8_t dst[4], *bases[1];
    size_t got;

    MUST(sm_secret_new(sm_factory_guarded(), src, sizeof src, &s));
    MUST(sm_secret_with_bytes(s, reader, NULL));
    MUST(sm_secret_read_at(s, sizeof src - 1, dst, sizeof dst, &got));
    if (got != 1)
        Frama_C_show_each_guarded_read_past_end(got);
    MUST(smi_registry_audit());
    MUST(sm_secret_close(s));
    if (smi_pool_test_list(bases, NULL, 1) != 1)
        Frama_C_show_each_guarded_close_not_pooled(0);
    MUST(sm_secret_new(sm_factory_guarded(), src, sizeof src, &t));
    if (smi_pool_test_bytes() != 0)
        Frama_C_show_each_guarded_pooled_not_reused(0);
    if (sm_secret_with_bytes(s, reader, NULL) != SM_E_STATE)
        Frama_C_show_each_guarded_stale_accepted(s.id);
    MUST(sm_secret_close(t));
}

/*
 * A guarded secret made, read and closed with one OS call refused: a refused make
 * leaves nothing mapped or counted (its region back in the pool, a refused seal rolled
 * back through region_unmake), a refused read leaves the secret open, and a refused
 * close leaves it open for a close that is tried again.
 */
static void guarded_refused(void)
{
    unsigned mapped = eva_os_mapped();
    uint64_t made = smi_stat_allocations;
    sm_secret s;
    sm_status st = sm_secret_new(sm_factory_guarded(), src, sizeof src, &s);

    if (st != SM_OK) {
        if (smi_stat_allocations != made || eva_os_mapped() != mapped)
            Frama_C_show_each_guarded_refused_make_left(st);
        return;
    }
    (void)sm_secret_with_bytes(s, reader, NULL);
    if (sm_secret_close(s) != SM_OK && sm_secret_is_closed(s))
        Frama_C_show_each_guarded_refused_close_closed(s.id);
    if (!sm_secret_is_closed(s) && sm_secret_close(s) != SM_OK)
        Frama_C_show_each_guarded_close_not_retried(s.id);
}

/*
 * guarded_refused once with each of its fallible OS calls refused in turn, one call
 * site each (the mappings of each run heap blocks of their own), up to the first plan
 * that no call of it reaches; then no failure again.
 */
#define UNDER(k) (eva_os_fail(k), guarded_refused(), !eva_os_fail_pending())
static void guarded_refusals(void)
{
    if (UNDER(1) && UNDER(2) && UNDER(3) && UNDER(4) && UNDER(5) && UNDER(6) && UNDER(7) &&
        UNDER(8) && UNDER(9) && UNDER(10) && UNDER(11) && UNDER(12) && UNDER(13) &&
        UNDER(14) && UNDER(15) && UNDER(16))
        Frama_C_show_each_guarded_more_calls_than_plans(0);
    eva_os_fail(0);
}

/* A purge while the window is read: wiped in place, and freed by this last reader. */
static sm_status purged_under(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)smi_registry_purge(false);
    return reader(bytes, len, ctx);
}

/* A guarded secret purged while read, one purged at rest: each handle refused after. */
static void guarded_purged(void)
{
    sm_secret a, b;

    MUST(sm_secret_new(sm_factory_guarded(), src, sizeof src, &a));
    (void)sm_secret_with_bytes(a, purged_under, NULL);
    if (sm_secret_with_bytes(a, reader, NULL) != SM_E_STATE)
        Frama_C_show_each_guarded_purged_read_accepted(a.id);
    MUST(sm_secret_new(sm_factory_guarded(), src, sizeof src, &b));
    (void)smi_registry_purge(false);
    if (sm_secret_close(b) != SM_E_STATE)
        Frama_C_show_each_guarded_purged_close_accepted(b.id);
}

/*
 * A guarded secret live, and one closed into the pool, across a fork: the parent keeps
 * both, the child finds the live one stale (its region forgotten) and the pool empty.
 */
static void guarded_forked(void)
{
    sm_secret s, t;

    MUST(sm_secret_new(sm_factory_guarded(), src, sizeof src, &s));
    MUST(sm_secret_new(sm_factory_guarded(), src, sizeof src, &t));
    MUST(sm_secret_close(t));
    eva_os_fork(false);
    MUST(sm_secret_with_bytes(s, reader, NULL));
    if (smi_pool_test_bytes() == 0)
        Frama_C_show_each_parent_lost_its_pool(0);
    eva_os_fork(true);
    if (sm_secret_with_bytes(s, reader, NULL) != SM_E_STATE)
        Frama_C_show_each_guarded_live_in_child(s.id);
    if (smi_pool_test_bytes() != 0)
        Frama_C_show_each_child_kept_the_pool(0);
}

/*
 * A secretmem region pooled, then forgotten by a child: its pages are left alone, and
 * the counters, set afresh after the pool's handler, count it no more.
 * Last: the model's secretmem_create answers any of its three ways, and the join of
 * those states changes nothing after it.
 */
static void secretmem_forgotten(void)
{
    smi_region r;

    smi_config_set(&secret, true);
    if (smi_pool_take(4096, &r) != SM_OK)
        return; /* the model's secretmem_create refused */
    if (!r.secretmem)
        Frama_C_show_each_not_secretmem(0);
    MUST(smi_pool_give(&r));
    smi_pool_after_fork();
    smi_stats_after_fork();
    if (smi_pool_test_bytes() != 0 || smi_stat_locked != 0)
        Frama_C_show_each_child_counts_secretmem(0);
}

/* secretmem_forgotten for a plain mapping; last, for the same reason. */
static void secretmem_plain_forgotten(void)
{
    smi_plain p;

    if (smi_pool_take_plain(4096, &p) != SM_OK)
        return;
    if (!p.secretmem)
        Frama_C_show_each_plain_not_secretmem(0);
    MUST(smi_pool_give_plain(&p));
    smi_pool_after_fork();
    smi_stats_after_fork();
    if (smi_pool_test_bytes() != 0 || smi_stat_locked != 0)
        Frama_C_show_each_child_counts_secretmem_plain(0);
}

int main(void)
{
    smi_region r;

    smi_fatal_purge_hook(purge_all);
    smi_config_set(&anon, false);
    smi_region_canary_source(constant_canary);
    eva_os_fail(0);
    eva_pthread_foreign(0);
    if (smi_pool_take(0, &r) != SM_E_INVAL)
        Frama_C_show_each_size_0_taken(0);
    empty(__LINE__);
    round_trip(1, 4000);
    round_trip(4097, 8000);
    no_match();
    refused_adoption();
    CALLS_1_TO_6(refused_fresh);
    not_kept();
    rolled_back();
    full_purged();
    full_relieved();
    full_forgotten();
    spares();
    spares_forgotten();
    plain_round_trip(1, 4000);
    plain_round_trip(4097, 8000);
    plain_refused_adoption();
    CALLS_1_TO_6(plain_refused_fresh);
    plain_not_kept();
    mixed();
    if (sm_init(&anon) != SM_OK) {
        Frama_C_show_each_init_refused(0);
        return 1;
    }
    Frama_C_make_unknown((char *)src, sizeof src);
    guarded_life();
    guarded_refusals();
    guarded_purged();
    guarded_forked();
    secretmem_forgotten();
    secretmem_plain_forgotten();
    return 0;
}
