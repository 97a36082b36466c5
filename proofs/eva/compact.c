/* SPDX-License-Identifier: ISC */
/*
 * Eva's driver for the compact factory's slabs (proofs/README.md, "Eva", "The compact
 * analysis"): every function of src/objects/compact.c, over the runtime, the registry,
 * the canary generator and regions as compiled, with the OS shim of proofs/eva/os.c, in
 * which a page the library cannot read is uninitialised (a reader that Eva lets read a
 * whole secret proves its pages open), and one thread's pthreads (proofs/eva/pthread.c).
 *
 * The run is determinate, as the buffers analysis's: no OS call fails and no free lock
 * is found held by another thread but where the driver says so (eva_os_fail,
 * eva_pthread_foreign), and each refusal is reached by a run of its own that fails one
 * call, each call of the step in turn (each_failure), so that every scenario ends on one
 * state, never on a join of a slab made with a slab refused. A slab is filled by a loop
 * that Eva unrolls (the 2,048-byte class: 31 slots), each make one state too.
 *
 * Each check of the library's answer is a Frama_C_show_each_* call on the path where it
 * would be wrong, which eva.sh fails on: a stale, forged or other-kind handle refused;
 * a refused OS call commits nothing (no secret, no open page, no slab or locked byte
 * more, no allocation counted); a damaged canary panics at the close and at the audit;
 * a freed slot is wiped; a page's open count goes back to zero and the page shuts (an
 * ACSL assertion, which eva.sh requires Eva to find valid); the empty slab past the one
 * kept (hysteresis) is unmapped; a purge that found its class lock held is finished by
 * the holder; the counts (slabs, slots, locked bytes) are back to where they started
 * after a purge.
 */
#include <__fc_builtin.h>

#include "eva-driver.h"
#include "objects/compact.h"

/* ---- what a make and an access are given ---- */

/* What the fill does besides writing the bytes. */
enum { FILL_OK, FILL_FAILS, FILL_PURGED };

static sm_status fill(uint8_t *bytes, size_t len, void *ctx)
{
    const int *how = ctx;

    for (size_t i = 0; i < len; i++)
        bytes[i] = (uint8_t)i;
    if (*how == FILL_FAILS)
        return SM_E_IO;
    if (*how == FILL_PURGED)
        (void)smi_compact_purge(false);
    return SM_OK;
}

static const int fill_ok = FILL_OK, fill_fails = FILL_FAILS, fill_purged = FILL_PURGED;

static sm_status commit_refused(void *ctx)
{
    (void)ctx;
    return SM_E_STATE;
}

/* Every byte of the secret: an alarm unless its pages are open and it is whole. */
static sm_status read_all(const uint8_t *bytes, size_t len, void *ctx)
{
    volatile uint8_t seen = 0;

    (void)ctx;
    for (size_t i = 0; i < len; i++)
        seen ^= bytes[i];
    return SM_OK;
}

static uint64_t make(size_t len)
{
    uint64_t id = 0;

    if (smi_compact_make(len, fill, (void *)&fill_ok, NULL, &id) != SM_OK) {
        Frama_C_show_each_unexpected_refusal(len);
        return 0;
    }
    return id;
}

/* Every call on a handle that names no live secret: refused. */
static void stale(uint64_t id)
{
    uint8_t out[4];
    size_t got;

    if (smi_compact_access(id, read_all, NULL, false) != SM_E_STATE ||
        smi_compact_access(id, read_all, NULL, true) != SM_E_STATE ||
        smi_compact_read_at(id, 0, out, sizeof out, &got) != SM_E_STATE ||
        smi_compact_size(id) != 0 || !smi_compact_is_closed(id) ||
        smi_compact_state(id) != SMI_SEC_CLOSED || smi_compact_close(id) != SM_E_STATE)
        Frama_C_show_each_stale_id_accepted(id);
}

/* Handles beside a live one that name nothing: each field forged in turn. */
static void forged(uint64_t id)
{
    uint32_t idx = smi_handle_index(id), gen = smi_handle_gen(id);

    stale(smi_handle_make(SMI_COMPACT_KIND, gen + 1, idx));      /* another generation */
    stale(smi_handle_make(SMI_KIND_SECRET, gen, idx));           /* another kind */
    stale(smi_handle_make(SMI_COMPACT_KIND, gen, idx + 1000));   /* a slot never made */
    stale(smi_handle_make(SMI_COMPACT_KIND, gen, idx | 5u << 16)); /* a slab never made */
    stale(smi_handle_make(SMI_COMPACT_KIND, gen, idx | 9u << 26)); /* a class past the last */
    stale(0);
}

/* ---- the counts, before and after ---- */

static smi_compact_counts counts_then;
static sm_stats stats_then, at_start;

static void snapshot(void)
{
    smi_compact_counts_get(&counts_then);
    if (sm_stats_get(&stats_then) != SM_OK)
        Frama_C_show_each_unexpected_refusal(0);
}

/* Whether the counts are what snapshot saw (slabs and bytes too, when asked). */
static bool as_then(bool slabs)
{
    smi_compact_counts n;
    sm_stats s;

    smi_compact_counts_get(&n);
    if (sm_stats_get(&s) != SM_OK)
        return false;
    return n.slots_live == counts_then.slots_live && n.pages_open == counts_then.pages_open &&
           s.secrets_live == stats_then.secrets_live &&
           s.allocations_total == stats_then.allocations_total &&
           (!slabs || (n.slabs == counts_then.slabs && s.bytes_locked == stats_then.bytes_locked &&
                       s.bytes_unlocked == stats_then.bytes_unlocked));
}

/*
 * Run step once with no failure, then once per fallible OS call it makes, that call
 * failing (its argument: the plan), until a run leaves the planned failure still to come
 * (step says so: it made fewer calls). Each run has a call site of its own, not a loop,
 * so that the slabs it maps are heap blocks of their own (-eva-alloc-builtin by_stack)
 * with their exact lengths. 16 runs at most: a step with more calls fails the run.
 */
#define RUN(k) \
    if (step(k) && (k) > 0) \
        goto done;
#define RUN8(k) RUN(k) RUN(k + 1) RUN(k + 2) RUN(k + 3) RUN(k + 4) RUN(k + 5) RUN(k + 6) RUN(k + 7)

static void each_failure(bool (*step)(unsigned k))
{
    RUN8(0) RUN8(8)
    //@ assert every_failure_run: \false;
done:
    eva_os_fail(0);
}

/*
 * Arm plan k for the step under test, from no empty slab (each class's kept one
 * trimmed, so that the counts compare); after it, whether the plan was still pending.
 */
static void arm(unsigned k)
{
    eva_os_fail(0);
    smi_compact_trim();
    snapshot();
    eva_os_fail(k);
}

static bool disarm(void)
{
    bool pending = eva_os_fail_pending();

    eva_os_fail(0);
    return pending;
}

/* ---- the lives ---- */

/*
 * A secret of len bytes through its life: made, read (waited for and tried), read at
 * offsets in and past its bounds, queried, forged, closed; then stale.
 */
static void life(size_t len)
{
    uint8_t out[SMI_COMPACT_MAX + 1];
    size_t got;
    uint64_t id = make(len);

    if (id == 0)
        return;
    forged(id);
    if (smi_compact_access(id, read_all, NULL, false) != SM_OK ||
        smi_compact_access(id, read_all, NULL, true) != SM_OK ||
        smi_compact_access(id, NULL, NULL, false) != SM_E_INVAL ||
        smi_compact_read_at(id, 0, out, len, &got) != SM_OK || got != len ||
        smi_compact_read_at(id, len - 1, out, 2, &got) != SM_OK || got != 1 ||
        smi_compact_read_at(id, len, out, 1, &got) != SM_OK || got != 0 ||
        smi_compact_read_at(id, len + 1, out, 1, &got) != SM_E_INVAL ||
        smi_compact_read_at(id, 0, NULL, 1, &got) != SM_E_INVAL ||
        smi_compact_read_at(id, 0, out, 1, NULL) != SM_E_INVAL ||
        smi_compact_size(id) != len || smi_compact_state(id) != SMI_SEC_OPEN_IDLE ||
        smi_compact_is_closed(id))
        Frama_C_show_each_live_secret_refused(len);
    MUST(smi_compact_close(id));
    stale(id);
}

/* The lengths outside the classes. */
static void bad_lengths(void)
{
    uint64_t id;

    if (smi_compact_make(0, fill, (void *)&fill_ok, NULL, &id) != SM_E_INVAL ||
        smi_compact_make(SMI_COMPACT_MAX + 1, fill, (void *)&fill_ok, NULL, &id) != SM_E_INVAL)
        Frama_C_show_each_bad_length_accepted(0);
}

/* ---- the refusals, each call failed in turn ---- */

/*
 * A make in a class with no slab (64 bytes), each of its calls refused in turn: the slab
 * made for it goes again, and nothing is left. Made, it is closed and the slab trimmed.
 */
static bool faulted_make(unsigned k)
{
    uint64_t id = 0;
    sm_status st;
    bool pending;

    arm(k);
    st = smi_compact_make(64, fill, (void *)&fill_ok, NULL, &id);
    pending = disarm();
    if (st == SM_OK) {
        /* the one allocation a make counts */
        stats_then.allocations_total++;
        if (smi_compact_close(id) != SM_OK)
            Frama_C_show_each_unexpected_refusal(k);
        smi_compact_trim();
    }
    if (!as_then(true))
        Frama_C_show_each_refused_make_left_something(k);
    return pending;
}

/*
 * The makes that fail after the slot was taken: the fill's error (the slot wiped while
 * open), the commit's refusal (opened again for the wipe), each call refused in turn on
 * top. No secret is left. When the rollback's own call is refused the slot is retired,
 * its bytes shut till the purge, and a refused munmap keeps the empty slab made for the
 * make: the purge that ends each run takes them.
 */
static bool refused_late(unsigned k, const int *how, sm_status (*commit)(void *ctx))
{
    uint64_t id;
    sm_status st;

    arm(k);
    st = smi_compact_make(128, fill, (void *)how, commit, &id);
    if (disarm())
        return true;
    if (st == SM_OK || !as_then(false))
        Frama_C_show_each_late_refusal_left_something(k);
    (void)smi_compact_purge(false);
    return false;
}

static bool faulted_fill(unsigned k)
{
    return refused_late(k, &fill_fails, NULL);
}

static bool faulted_commit(unsigned k)
{
    return refused_late(k, &fill_ok, commit_refused);
}

/*
 * The calls on a live secret, each refused in turn: a refused close leaves it live and
 * unchanged (then it is closed); a refused access or read leaves it as it was, the read's
 * destination wiped; a refused audit says so.
 */
static bool faulted_close(unsigned k)
{
    uint64_t id = make(24);
    sm_status st;
    bool pending;

    arm(k);
    st = smi_compact_close(id);
    pending = disarm();
    if (st != SM_OK && (smi_compact_size(id) != 24 || !as_then(true)))
        Frama_C_show_each_refused_close_committed(k);
    if (st != SM_OK && smi_compact_close(id) != SM_OK)
        Frama_C_show_each_unexpected_refusal(k);
    stale(id);
    return pending;
}

static bool faulted_access(unsigned k)
{
    uint64_t id = make(24);
    uint8_t out[4] = { 1, 1, 1, 1 };
    size_t got = 9;
    sm_status st;
    bool pending;

    arm(k);
    st = smi_compact_access(id, read_all, NULL, false);
    pending = disarm();
    if (st != SM_OK && (smi_compact_size(id) != 24 || !as_then(true) ||
                        smi_compact_state(id) != SMI_SEC_OPEN_IDLE))
        Frama_C_show_each_refused_access_left_something(k);
    arm(k);
    st = smi_compact_read_at(id, 20, out, sizeof out, &got);
    (void)disarm();
    if (st != SM_OK && (out[0] != 0 || out[3] != 0 || got != 9))
        Frama_C_show_each_refused_read_not_wiped(k);
    arm(k);
    st = smi_compact_audit();
    (void)disarm();
    if (st != SM_OK && smi_compact_size(id) != 24)
        Frama_C_show_each_refused_audit_changed_it(k);
    if (smi_compact_close(id) != SM_OK)
        Frama_C_show_each_unexpected_refusal(k);
    return pending;
}

/* A make under memfd_secret's backing (its 7 calls), each refused in turn. */
static bool faulted_secretmem(unsigned k)
{
    return faulted_make(k);
}

/* The lock policy REQUIRED: a page the OS will not lock refuses the make. */
static bool faulted_required(unsigned k)
{
    return faulted_make(k);
}

/* ---- pages, slabs, canaries ---- */

/*
 * Two secrets on one page, one read inside the other's access: the first access opens
 * the page, the second counts itself in and reads it whole, and the page shuts only when
 * the last is out (an ACSL assertion, which Eva must find valid). A close from inside
 * an access of the same secret is refused.
 */
static uint64_t other;
static const uint8_t *outer;

static sm_status read_other(const uint8_t *bytes, size_t len, void *ctx)
{
    smi_compact_counts n;

    (void)len, (void)ctx;
    outer = bytes;
    smi_compact_counts_get(&n);
    if (n.pages_open != 1)
        Frama_C_show_each_page_not_open(n.pages_open);
    return smi_compact_access(other, read_all, NULL, false);
}

static sm_status close_inside(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)bytes, (void)len;
    if (smi_compact_close(*(const uint64_t *)ctx) != SM_E_STATE)
        Frama_C_show_each_close_inside_access_accepted(0);
    return SM_OK;
}

static void shared_page(void)
{
    uint64_t a = make(8);
    smi_compact_counts n;

    other = make(8);
    if (a == 0 || other == 0)
        return;
    MUST(smi_compact_access(a, read_other, NULL, false));
    smi_compact_counts_get(&n);
    if (n.pages_open != 0)
        Frama_C_show_each_page_left_open(n.pages_open);
#if !defined(EVA_PKEYS)
    /*
     * shut: the model's PROT_NONE page holds no initialised byte. Keyed, the page stays
     * read-write and the thread's rights, a register, shut it: not the model's to see.
     */
    //@ assert page_shut: !\initialized(outer);
#endif
    MUST(smi_compact_access(a, close_inside, &a, false));
    MUST(smi_compact_close(a));
    MUST(smi_compact_close(other));
}

/*
 * Inside the fill of a secret, on the page it opened for writing (no mprotect, so Eva
 * knows its bytes): the slot before it, closed, is wiped; a damaged canary of a live one
 * panics at its close and at the audit (the driver's path beyond them is dead).
 */
enum { NEIGHBOUR_WIPED, NEIGHBOUR_CLOSE_DAMAGED, NEIGHBOUR_AUDIT_DAMAGED };
static uint64_t neighbour;

/* A canary that is not the neighbour's (its bytes are 0x5a in this run: os.c). */
static void damage(uint8_t *canary)
{
    for (unsigned i = 0; i < 8; i++)
        canary[i] = 0;
}

static sm_status fill_beside(uint8_t *bytes, size_t len, void *ctx)
{
    uint8_t *slot = bytes - 8 - (16 + 8);   /* the neighbour's canary and bytes */

    (void)len;
    switch (*(const int *)ctx) {
    case NEIGHBOUR_WIPED:
        if (smi_compact_close(neighbour) != SM_OK)
            Frama_C_show_each_unexpected_refusal(0);
        for (unsigned i = 0; i < 16 + 8; i++)
            if (slot[i] != 0)
                Frama_C_show_each_freed_slot_not_wiped(i);
        break;
    case NEIGHBOUR_CLOSE_DAMAGED:
        damage(slot);
        (void)smi_compact_close(neighbour);
        Frama_C_show_each_damaged_canary_closed(0);
        break;
    default:
        damage(slot);
        (void)smi_compact_audit();
        Frama_C_show_each_damaged_canary_audited(0);
        break;
    }
    return SM_OK;
}

static void beside(int how)
{
    uint64_t id;

    /* the class's slab made afresh, so that the neighbour is slot 0 and this one slot 1 */
    smi_compact_trim();
    neighbour = make(16);
    if (smi_compact_make(16, fill_beside, &how, NULL, &id) != SM_OK)
        Frama_C_show_each_unexpected_refusal(how);
    MUST(smi_compact_close(id));
}

static void canaries(void)
{
    beside(NEIGHBOUR_WIPED);
    /* each damage in a run of its own: the run that panics ends there */
    if (Frama_C_nondet(0, 1))
        beside(NEIGHBOUR_CLOSE_DAMAGED);
    if (Frama_C_nondet(0, 1))
        beside(NEIGHBOUR_AUDIT_DAMAGED);
}

/*
 * A class's second slab: the first (2,048-byte class, 31 slots) is filled, the next
 * secret maps another. Emptied, the second stays (one empty slab per class), and the
 * first, emptied after it, is unmapped (two would be empty); a trim unmaps the one kept.
 * The audit and the counts meet the full slab.
 */
#define FULL 31u
static void second_slab(void)
{
    uint64_t ids[FULL], extra;
    smi_compact_counts n, was;

    smi_compact_trim();
    smi_compact_counts_get(&was);
    /*@ loop unroll FULL; */
    for (unsigned k = 0; k < FULL; k++)
        if ((ids[k] = make(2048)) == 0)
            return;
    extra = make(2000);
    smi_compact_counts_get(&n);
    if (extra == 0 || n.slabs != was.slabs + 2 || n.slots_live != was.slots_live + FULL + 1)
        Frama_C_show_each_second_slab_wrong(n.slabs);
    MUST(smi_compact_close(extra));
    /*@ loop unroll FULL; */
    for (unsigned k = 0; k < FULL - 1; k++)
        MUST(smi_compact_close(ids[k]));
    smi_compact_counts_get(&n);
    if (n.slabs != was.slabs + 2)
        Frama_C_show_each_kept_slab_unmapped(n.slabs);
    MUST(smi_compact_close(ids[FULL - 1]));
    smi_compact_counts_get(&n);
    if (n.slabs != was.slabs + 1)
        Frama_C_show_each_second_empty_slab_kept(n.slabs);
    stale(ids[0]);
    smi_compact_trim();
    smi_compact_counts_get(&n);
    if (n.slabs != 0 || n.slots_live != 0)
        Frama_C_show_each_trim_left_slabs(n.slabs);
}

/* A freed slot reused: the next make takes it, and the old handle stays refused. */
static void reused(void)
{
    uint64_t a = make(300), b;

    MUST(smi_compact_close(a));
    b = make(300);
    if (b == 0 || smi_handle_index(a) != smi_handle_index(b) || smi_compact_size(b) != 300)
        Frama_C_show_each_slot_not_reused(b);
    stale(a);
    MUST(smi_compact_close(b));
}

/* ---- purges ---- */

/* A purge during a fill: the make finds its slab purged, wipes its bytes, and fails. */
static void purged_while_filled(void)
{
    uint64_t id;

    snapshot();
    if (smi_compact_make(300, fill, (void *)&fill_purged, NULL, &id) != SM_E_STATE ||
        !as_then(false))
        Frama_C_show_each_purged_fill_published(0);
}

/* A purge during an access: the slab waits in limbo for the reader, the last one out. */
static sm_status read_purged(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)ctx;
    (void)smi_compact_purge(false);
    /* wiped in place, still open for this reader */
    return read_all(bytes, len, NULL);
}

static void purged_while_read(void)
{
    uint64_t id = make(500);
    smi_compact_counts n;

    MUST(smi_compact_access(id, read_purged, NULL, false));
    stale(id);
    smi_compact_counts_get(&n);
    if (n.slabs != 0)
        Frama_C_show_each_limbo_slab_kept(n.slabs);
}

/*
 * A purge while this thread holds the class lock (the commit runs under it): the purge
 * dooms the class, and the make's unlock finishes it, the new secret with it.
 */
static sm_status commit_purging(void *ctx)
{
    (void)ctx;
    (void)smi_compact_purge(false);
    return SM_OK;
}

static void doomed_while_held(void)
{
    uint64_t id = 0;

    MUST(smi_compact_make(40, fill, (void *)&fill_ok, commit_purging, &id));
    stale(id);
}

/*
 * Purges that meet a class lock held by a thread the run does not have: held at the first
 * try only (the purge takes the class), and at both (left to the holder; in place, its
 * slabs wiped unlocked).
 */
static void purged_past_holders(void)
{
    uint64_t a = make(20);

    /* the classes' trylocks in order: the 32-byte class's is the second */
    eva_pthread_foreign(2);
    (void)smi_compact_purge(false);
    eva_pthread_foreign(0);
    stale(a);
    a = make(20);
    eva_pthread_foreign(6);
    (void)smi_compact_purge(true);
    eva_pthread_foreign(0);
    MUST(smi_compact_close(a));
}

/*
 * The end: live secrets across the fork handlers in the parent; the compact purge, after
 * which every count is where it was before the first slab (the key's page is still
 * locked); the runtime's purge of everything; then a forked child, which forgets every
 * slab of the parent.
 */
static void endings(void)
{
    uint64_t a, b;
    smi_compact_counts n;
    sm_stats s;

    a = make(20);
    b = make(700);
    eva_os_fork(false);
    if (smi_compact_size(a) != 20 || smi_compact_size(b) != 700)
        Frama_C_show_each_parent_lost_secret(0);
    /* its verdict is open: the model forgets the bytes of a page mprotect opens */
    (void)smi_compact_purge(false);
    //@ slevel merge;
    stale(a);
    stale(b);
    smi_compact_counts_get(&n);
    if (sm_stats_get(&s) != SM_OK || n.slabs != 0 || n.slots_live != 0 || n.pages_open != 0 ||
        s.secrets_live != 0 || s.bytes_locked != at_start.bytes_locked ||
        s.bytes_unlocked != at_start.bytes_unlocked)
        Frama_C_show_each_purge_left_counts(n.slabs);
    a = make(30);
    (void)smi_purge_all(false);
    //@ slevel merge;
    stale(a);
    a = make(40);
    b = make(2048);
    eva_os_fork(true);
    stale(a);
    stale(b);
    smi_compact_counts_get(&n);
    if (n.slabs != 0 || n.slots_live != 0)
        Frama_C_show_each_child_kept_slabs(n.slabs);
    a = make(40);
    MUST(smi_compact_close(a));
}

int main(void)
{
    static const sm_config best = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                    .backing = SM_BACKING_ANON },
                           required = { .lock_policy = SM_LOCK_REQUIRED,
                                        .backing = SM_BACKING_ANON },
                           secret = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                      .backing = SM_BACKING_SECRETMEM_REQUIRED };

    eva_pthread_foreign(0);
    eva_os_fail(0);
    if (sm_init(&best) != SM_OK)
        return 1;
    /* the baseline: the runtime's own pages (the canary key's), no slab */
    if (sm_stats_get(&at_start) != SM_OK)
        return 1;
    if (sm_factory_compact() == NULL)
        return 1;
    forged(smi_handle_make(SMI_COMPACT_KIND, 1, 0));
    bad_lengths();
    life(1);
    life(16);
    life(17);
    life(2048);
    shared_page();
    reused();
    canaries();
    each_failure(faulted_make);
    each_failure(faulted_fill);
    each_failure(faulted_commit);
    each_failure(faulted_close);
    each_failure(faulted_access);
    second_slab();
    purged_while_filled();
    purged_while_read();
    doomed_while_held();
    purged_past_holders();
    smi_config_set(&required, false);
    each_failure(faulted_required);
    smi_config_set(&secret, true);
    each_failure(faulted_secretmem);
    smi_config_set(&best, false);
    endings();
    return 0;
}
