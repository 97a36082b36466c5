/* SPDX-License-Identifier: ISC */
/*
 * Eva's driver for buffers and the handle registry (proofs/README.md, "Eva"): every
 * public buffer call (src/objects/buffer.c) and every function of the registry
 * (src/runtime/registry.c), over the runtime, regions and the canary generator as
 * compiled, with the OS shim of proofs/eva/os.c, in which a page the library cannot read
 * is uninitialised. The run is determinate: no OS call fails and no lock is found held by
 * another thread but where the driver says so (eva_os_fail, eva_pthread_foreign), and
 * each refusal is reached by a scenario of its own that fails one call, each call of an
 * operation in turn, so that Eva never joins the states of two outcomes (a registry with
 * a buffer and one without), which no execution has.
 *
 * What an auditor asks of these files, each asked here: a handle is refused once its
 * object is gone, and when forged (another generation, another kind, an index never
 * handed out); a slot whose generation is spent is retired; a purge finishes every
 * object (one held by its user included, in place or not); a forked child forgets the
 * parent's objects; a buffer's state changes only as the table allows, and operations
 * its state forbids are refused. Each of those refusals that the driver checks is marked
 * with a Frama_C_show_each_* call on the path where it would be broken: Eva prints it
 * if it finds such a path, and eva.sh fails on any such line of the log.
 */
#include <__fc_builtin.h>

#include <string.h>

#include "eva-driver.h"

/*
 * The sizes Eva follows one by one: the page boundaries, and one byte either side. One
 * call site each (not a loop), so that each mapping made under it is a heap block of
 * its own for Eva (-eva-alloc-builtin by_stack), with its exact length.
 */
#define EACH_SIZE(f) (f(1), f(4095), f(4096), f(4097), f(3 * 4096))

/*
 * Each fallible OS call of an operation failed in turn, one call site (and so one set of
 * heap blocks) each: the constructors below make at most 7 calls, the two reads of a
 * line 15; past its last call the plan fails none, and the operation succeeds.
 */
#define CALLS_1_TO_8(f) (f(1), f(2), f(3), f(4), f(5), f(6), f(7), f(8))
#define CALLS_9_TO_16(f) (f(9), f(10), f(11), f(12), f(13), f(14), f(15), f(16))

/* The ids that must be refused beside a live one: each field forged in turn. */
static void forged(uint64_t id)
{
    uint32_t index = smi_handle_index(id), gen = smi_handle_gen(id);
    sm_buffer other_gen = { smi_handle_make(SMI_KIND_BUFFER, gen + 1, index) },
              other_kind = { smi_handle_make(SMI_KIND_ENCLAVE, gen, index) },
              far_index = { smi_handle_make(SMI_KIND_BUFFER, gen, index + 4096) },
              none = { 0 };

    if (sm_buffer_is_alive(other_gen) || sm_buffer_is_alive(other_kind) ||
        sm_buffer_is_alive(far_index) || sm_buffer_is_alive(none))
        Frama_C_show_each_forged_id_accepted(id);
}

/* Every call on a destroyed buffer's handle is refused. */
static void stale(sm_buffer b)
{
    static uint8_t src[1];
    bool eq;

    if (sm_buffer_destroy(b) != SM_E_STATE || sm_buffer_freeze(b) != SM_E_STATE ||
        sm_buffer_melt(b) != SM_E_STATE || sm_buffer_copy(b, src, 1) != SM_E_STATE ||
        sm_buffer_equal(b, src, 1, &eq) != SM_E_STATE || sm_buffer_scramble(b) != SM_E_STATE ||
        sm_buffer_data(b) != NULL || sm_buffer_is_alive(b) || sm_buffer_is_mutable(b))
        Frama_C_show_each_stale_id_accepted(b.id);
}

/*
 * One buffer through its whole life at size n: written, compared, read, frozen (writes
 * then refused), melted, scrambled, wiped, destroyed, then every call on its stale
 * handle refused, also once its slot holds the next buffer.
 */
static void buffer_life(size_t n)
{
    static uint8_t src[3 * 4096 + 1];
    sm_buffer b, next;
    bool eq;

    MUST(sm_buffer_new(n, &b));
    forged(b.id);
    MUST(sm_buffer_copy(b, src, n));
    if (sm_buffer_copy(b, src, n + 1) != SM_E_INVAL ||       /* past the end */
        sm_buffer_copy_at(b, n - 1, src, 1) != SM_OK ||      /* the last byte */
        sm_buffer_copy_at(b, n, src, 1) != SM_E_INVAL ||     /* one past */
        sm_buffer_copy_at(b, SIZE_MAX, src, 1) != SM_E_INVAL ||
        sm_buffer_copy(b, NULL, 0) != SM_OK || sm_buffer_copy(b, NULL, 1) != SM_E_INVAL ||
        sm_buffer_move(b, src, n) != SM_OK || sm_buffer_move_at(b, n - 1, src, 1) != SM_OK ||
        sm_buffer_equal(b, src, n, &eq) != SM_OK ||
        sm_buffer_equal(b, src, n + 1, &eq) != SM_OK ||
        sm_buffer_equal(b, NULL, 1, &eq) != SM_E_INVAL ||
        sm_buffer_equal(b, src, n, NULL) != SM_E_INVAL)
        Frama_C_show_each_write_bounds_broken(n);
    {
        uint8_t *d = sm_buffer_data(b);
        size_t size = sm_buffer_size(b);

        /* what the caller may do with the data: read and write all of it */
        if (d == NULL || size != n || !sm_buffer_is_mutable(b))
            Frama_C_show_each_live_buffer_refused(n);
        else
            for (size_t i = 0; i < size; i++)
                d[i] ^= 1;
    }
    MUST(sm_buffer_freeze(b));
    if (sm_buffer_copy(b, src, n) != SM_E_STATE || sm_buffer_is_mutable(b))
        Frama_C_show_each_frozen_write_accepted(n);
    MUST(sm_buffer_freeze(b));
    MUST(sm_buffer_melt(b));
    MUST(sm_buffer_scramble(b));
    MUST(sm_buffer_wipe(b));
    MUST(sm_buffer_destroy(b));
    stale(b);
    MUST(sm_buffer_new(n, &next)); /* in b's slot, the free list's first */
    if (sm_buffer_is_alive(b) || !sm_buffer_is_alive(next))
        Frama_C_show_each_reused_slot_id_accepted(b.id);
    MUST(sm_buffer_destroy(next));
}

/* The constructors that take their bytes from the caller, the OS's randomness, a file. */
static void made_from(size_t n)
{
    static uint8_t src[3 * 4096];
    sm_buffer b;

    MUST(sm_buffer_from_bytes(src, n, &b));
    MUST(sm_buffer_destroy(b));
    MUST(sm_buffer_random(n, &b));
    MUST(sm_buffer_destroy(b));
    eva_os_input(0, src, n, false);
    MUST(sm_buffer_from_fd(0, n, &b));
    MUST(sm_buffer_destroy(b));
}

/* One read of the input in from fd, whole or up to a newline: false if not as expected. */
static bool input(int fd, const uint8_t *in, size_t len, bool pipe, bool until, sm_status want)
{
    sm_buffer b;
    sm_status st;

    eva_os_input(fd, in, len, pipe);
    st = until ? sm_buffer_from_fd_until(fd, '\n', &b) : sm_buffer_from_fd_all(fd, &b);
    if (st != want) {
        Frama_C_show_each_unexpected_refusal(len);
        return false;
    }
    return st != SM_OK || sm_buffer_destroy(b) == SM_OK;
}

/*
 * Input of unknown length, len bytes (a newline half-way): empty, shorter than the first
 * scratch region, as long as it (no growth, no copy), and past it (one growth), each
 * read whole; the short ones also up to the newline, from a file (the rest given back by
 * a seek) and from a pipe (read a byte at a time). Each loop of the library over these
 * bytes is followed iteration by iteration (eva.sh's slevel): the lines are short
 * enough for that.
 */
static void from_input(size_t len, sm_status whole)
{
    static uint8_t in[4096 + 1];

    memset(in, 'x', len);
    if (len > 0)
        in[len / 2] = '\n';
    if (input(1, in, len, false, false, whole) && len <= 100 &&
        input(2, in, len, false, true, whole))
        (void)input(3, in, len, true, true, whole);
}

static void refusals(void)
{
    static uint8_t src[8];
    sm_buffer b;

    if (sm_buffer_new(0, &b) != SM_E_INVAL || sm_buffer_new(1, NULL) != SM_E_INVAL ||
        sm_buffer_new(SIZE_MAX, &b) != SM_E_INVAL ||
        sm_buffer_from_bytes(NULL, 1, &b) != SM_E_INVAL ||
        sm_buffer_from_bytes(src, 0, &b) != SM_E_INVAL ||
        sm_buffer_from_bytes(src, 1, NULL) != SM_E_INVAL ||
        sm_buffer_random(0, &b) != SM_E_INVAL || sm_buffer_random(1, NULL) != SM_E_INVAL ||
        sm_buffer_from_fd(0, 0, &b) != SM_E_INVAL || sm_buffer_from_fd(0, 1, NULL) != SM_E_INVAL ||
        sm_buffer_from_fd_all(1, NULL) != SM_E_INVAL ||
        sm_buffer_from_fd_until(1, 0, NULL) != SM_E_INVAL)
        Frama_C_show_each_bad_input_accepted(0);
}

/* A region handed over as a frozen buffer, as an enclave open does. */
static void adopted(void)
{
    smi_region r;
    sm_buffer b;

    MUST(smi_region_alloc(64, NULL, &r));
    MUST(smi_buffer_adopt(&r, &b));
    if (sm_buffer_is_mutable(b))
        Frama_C_show_each_adopted_mutable(b.id);
    MUST(sm_buffer_destroy(b));
}

/*
 * The refusals, each fallible call of each constructor and operation failed in turn
 * (faulted_*(k): the kth call fails). A refused call must leave nothing behind: no
 * buffer, and no region mapped or counted (sm_stats, against what arm saw); the driver
 * destroys what a call past the last made.
 */
static sm_stats before;

static void arm(unsigned k)
{
    if (sm_stats_get(&before) != SM_OK)
        Frama_C_show_each_unexpected_refusal(k);
    eva_os_fail(k);
}

static void undo(sm_status st, sm_buffer b)
{
    sm_stats now;

    eva_os_fail(0);
    if (st == SM_OK && sm_buffer_destroy(b) != SM_OK)
        Frama_C_show_each_unexpected_refusal(b.id);
    if (sm_stats_get(&now) != SM_OK || now.buffers_live != 0 ||
        (st != SM_OK && (now.allocations_total != before.allocations_total ||
                         now.bytes_locked != before.bytes_locked ||
                         now.bytes_unlocked != before.bytes_unlocked)))
        Frama_C_show_each_refusal_left_something(st);
}

static void faulted_new(unsigned k)
{
    sm_buffer b = { 0 };

    arm(k);
    undo(sm_buffer_new(4097, &b), b);
}

static void faulted_from_bytes(unsigned k)
{
    static uint8_t src[1];
    sm_buffer b = { 0 };

    arm(k);
    undo(sm_buffer_from_bytes(src, sizeof src, &b), b);
}

static void faulted_random(unsigned k)
{
    sm_buffer b = { 0 };

    arm(k);
    undo(sm_buffer_random(1, &b), b);
}

static void faulted_from_fd(unsigned k)
{
    static const uint8_t in[1] = { 'x' };
    sm_buffer b = { 0 };

    eva_os_input(0, in, sizeof in, false);
    arm(k);
    undo(sm_buffer_from_fd(0, 1, &b), b);
}

/* A line of one byte and its delimiter, read whole, then up to the delimiter. */
static void faulted_from_input(unsigned k)
{
    static const uint8_t in[3] = { 'x', '\n', 'y' };
    sm_buffer b = { 0 };

    eva_os_input(1, in, sizeof in, false);
    arm(k);
    undo(sm_buffer_from_fd_all(1, &b), b);
    eva_os_input(2, in, sizeof in, false);
    arm(k);
    undo(sm_buffer_from_fd_until(2, '\n', &b), b);
}

/*
 * The operations on a live buffer that make OS calls, each refused: the move (which asks
 * whether its source may be wiped), the protection changes (the state then unchanged).
 */
static void faulted_ops(void)
{
    static uint8_t src[1];
    sm_buffer b;

    eva_os_fail(0);
    MUST(sm_buffer_new(1, &b));
    eva_os_fail(1);
    if (sm_buffer_move(b, src, 1) != SM_E_READONLY)
        Frama_C_show_each_unwipeable_move_accepted(b.id);
    eva_os_fail(1);
    if (sm_buffer_freeze(b) == SM_OK || !sm_buffer_is_mutable(b))
        Frama_C_show_each_refused_freeze_committed(b.id);
    eva_os_fail(0);
    MUST(sm_buffer_freeze(b));
    eva_os_fail(1);
    if (sm_buffer_melt(b) == SM_OK || sm_buffer_is_mutable(b))
        Frama_C_show_each_refused_melt_committed(b.id);
    undo(SM_OK, b);
}

/* The destroy of a frozen buffer: its mprotect, then its munmap refused (then done). */
static void faulted_destroy(unsigned k)
{
    sm_buffer b;

    eva_os_fail(0);
    MUST(sm_buffer_new(1, &b));
    MUST(sm_buffer_freeze(b));
    eva_os_fail(k);
    if (sm_buffer_destroy(b) == SM_OK || !sm_buffer_is_alive(b))
        Frama_C_show_each_refused_destroy_committed(b.id);
    undo(SM_OK, b);
}

/* A key that a purge forgot is drawn again at the next random fill, which the OS may refuse. */
static void faulted_reseed(unsigned k)
{
    sm_buffer b;

    eva_os_fail(0);
    MUST(sm_buffer_new(1, &b));
    smi_rng_forget_key();
    eva_os_fail(k);
    if (sm_buffer_scramble(b) != (k == 1 ? SM_E_RANDOM : SM_OK))
        Frama_C_show_each_reseed_wrong(k);
    undo(SM_OK, b);
}

/*
 * An object of the driver's own kind, whose pages accesses may still be reading when a
 * purge finishes it (as a secret's are): the kind whose slot a purge keeps, and whose
 * last reader gives it back (smi_registry_drop).
 */
typedef struct lingerer {
    uint64_t readers;
} lingerer;

static bool lingerer_purge(void *body)
{
    (void)body;
    return true;
}

static void lingerer_wipe(void *body)
{
    (void)body;
}

static sm_status lingerer_audit(void *body)
{
    (void)body;
    return SM_OK;
}

static void lingerer_forget(void *body)
{
    (void)body;
}

static bool lingerer_in_use(const void *body)
{
    return ((const lingerer *)body)->readers != 0;
}

static const smi_kind_ops lingerer_ops = { lingerer_purge, lingerer_wipe, lingerer_audit,
                                           lingerer_forget, lingerer_in_use };

/*
 * The registry's own calls that buffers do not make: the two-step insert and its undo,
 * the non-blocking acquire (free, held by this thread, held by another), a purge of an
 * object held by its user, the last reader's drop, the claimed test.
 */
static void registry(void)
{
    lingerer one = { 1 };
    uint32_t index;
    uint64_t id;
    smi_slot *s, *t;

    MUST(smi_registry_reserve(&index));
    smi_registry_unreserve(index);
    smi_registry_kind(SMI_KIND_SECRET, &lingerer_ops);
    MUST(smi_registry_insert(SMI_KIND_SECRET, &one, sizeof one, &id));
    MUST(smi_registry_try_acquire(id, SMI_KIND_SECRET, &s));
    if (smi_registry_try_acquire(id, SMI_KIND_SECRET, &t) != SM_E_BUSY)
        Frama_C_show_each_held_lock_taken(id);
    smi_registry_release(s);
    eva_pthread_foreign(1);
    if (smi_registry_try_acquire(id, SMI_KIND_SECRET, &t) != SM_E_BUSY)
        Frama_C_show_each_held_lock_taken(id);
    if (smi_registry_acquire(id, SMI_KIND_BUFFER, &s) == SM_OK)
        Frama_C_show_each_other_kind_accepted(id);
    MUST(smi_registry_acquire(id, SMI_KIND_SECRET, &s));
    /* a purge while this reader holds the object: left to it, finished at its release */
    if (!smi_registry_purge(false) || !smi_registry_claimed(s, id))
        Frama_C_show_each_held_object_lost(id);
    smi_registry_release(s);
    if (smi_registry_acquire(id, SMI_KIND_SECRET, &s) == SM_OK || s->lingering == 0)
        Frama_C_show_each_purged_id_accepted(id);
    /* the last reader out (the driver reaches the slot as an access keeps it) */
    sm_os_mutex_lock(&s->lock);
    ((lingerer *)(void *)s->body)->readers = 0;
    smi_registry_drop(s);
}

/* A slot at its last generation: its object's removal retires it, and its id is refused. */
static void retired(void)
{
    lingerer none = { 0 };
    uint64_t id;
    smi_slot *s;

    MUST(smi_registry_insert(SMI_KIND_SECRET, &none, sizeof none, &id));
    MUST(smi_registry_acquire(id, SMI_KIND_SECRET, &s));
    /* the driver plays the slot's 2^28 - 1 earlier lives */
    s->gen = SMI_HANDLE_GEN_MAX;
    smi_registry_remove(s);
    if (smi_registry_acquire(id, SMI_KIND_SECRET, &s) == SM_OK)
        Frama_C_show_each_removed_id_accepted(id);
}

/*
 * Buffers left live for the walks: the audit, the fork's prepare and parent handlers, a
 * purge that ends the process and meets a holder of another thread that lets go before
 * it looks again, one that does not (finished once it lets go: the purge's wait), and
 * this thread holding the third (wiped in place, then finished at its release); then a
 * forked child, which forgets the parent's buffer, and draws a new key on a page locked
 * again.
 */
static void walks(void)
{
    sm_buffer a, b, c;
    smi_slot *s;
    smi_buffer *buf;
    smi_buf_state next;
    uint32_t forks;

    MUST(sm_buffer_new(1, &a));
    MUST(sm_buffer_new(4096, &b));
    MUST(sm_buffer_new(4097, &c));
    MUST(sm_buffer_freeze(c));
    MUST(smi_registry_audit());
    eva_os_fork(false);
    if (smi_registry_live(SMI_KIND_BUFFER) != 3)
        Frama_C_show_each_live_count_wrong(0);
    MUST(smi_buffer_acquire(c, SMI_BOP_READ, &s, &buf, &next));
    /* the first free lock tried: held, then let go; the second: held at both tries */
    eva_pthread_foreign(0xd);
    (void)smi_registry_purge(true);
    smi_registry_release(s);
    if (sm_buffer_is_alive(a) || sm_buffer_is_alive(b) || sm_buffer_is_alive(c) ||
        smi_registry_live(SMI_KIND_BUFFER) != 0)
        Frama_C_show_each_purged_buffer_alive(0);
    MUST(sm_buffer_new(4095, &a));
    forks = smi_registry_forks();
    eva_os_fork(true);
    if (sm_buffer_is_alive(a))
        Frama_C_show_each_parent_buffer_alive_in_child(a.id);
    /* what a make whose fill forked compares (secret.c, make_filled) */
    if (smi_registry_forks() == forks)
        Frama_C_show_each_fork_not_counted(forks);
    MUST(sm_buffer_new(4095, &a));
    MUST(sm_buffer_scramble(a));
    MUST(sm_buffer_destroy(a));
}

/* sm_init's refusals (the first call of the process also registers the fork handlers),
   then the call that succeeds. */
static void init(void)
{
    static const sm_config cfg = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                   .backing = SM_BACKING_ANON };

    eva_os_fail(2); /* after the fork handlers: the canary page's seed */
    (void)sm_init(&cfg);
#define FAIL_INIT(k) (eva_os_fail(k), (void)sm_init(&cfg))
    /* the key page: its mapping, protection, the advice (its lock is best effort), the key */
    FAIL_INIT(2), FAIL_INIT(3), FAIL_INIT(5), FAIL_INIT(6), FAIL_INIT(7);
#undef FAIL_INIT
    eva_os_fail(0);
    MUST(sm_init(&cfg));
}

int main(void)
{
    eva_pthread_foreign(0);
    init();
    refusals();
    eva_os_fail(6); /* the first slot's chunk: refused, then mapped */
    (void)sm_buffer_new(1, &(sm_buffer){ 0 });
    eva_os_fail(0);
    EACH_SIZE(buffer_life);
    EACH_SIZE(made_from);
    from_input(0, SM_E_EOF);
    from_input(100, SM_OK);
    from_input(4096 - SMI_CANARY_MIN, SM_OK);
    from_input(4096, SM_OK);
    adopted();
    CALLS_1_TO_8(faulted_new);
    CALLS_1_TO_8(faulted_from_bytes);
    CALLS_1_TO_8(faulted_random);
    CALLS_1_TO_8(faulted_from_fd);
    CALLS_1_TO_8(faulted_from_input);
    CALLS_9_TO_16(faulted_from_input);
    faulted_ops();
    faulted_destroy(1);
    faulted_destroy(2);
    faulted_reseed(1);
    faulted_reseed(0);
    registry();
    retired();
    walks();
    return 0;
}
