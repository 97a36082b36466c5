/* SPDX-License-Identifier: ISC */
/*
 * Eva's driver for buffers and the handle registry (proofs/README.md, "Eva"): every
 * public buffer call (src/objects/buffer.c) and every function of the registry
 * (src/runtime/registry.c), over the runtime, regions and the canary generator as
 * compiled, with the OS shim of proofs/eva/os.c, in which every system call may fail, a
 * trylock may find its lock held, and a page the library cannot read is uninitialised.
 *
 * What an auditor asks of these files, each asked here: a handle is refused once its
 * object is gone, and when forged (another generation, another kind, an index never
 * handed out); a slot whose generation is spent is retired; a purge finishes every
 * object (one held by its user included, in place or not); a forked child forgets the
 * parent's objects; a buffer's state changes only as the table allows, and operations
 * its state forbids are refused. Each of those refusals that the driver checks is marked
 * with a Frama_C_show_each_* call on the path where it would be broken: Eva prints it
 * if it finds such a path. This driver is not in eva.sh's table yet (proofs/README.md,
 * "Eva", "Not covered yet"): its run still raises alarms.
 */
#include <__fc_builtin.h>

#include "inner.h"

/* The shim's fork (os.c): the handlers that the runtime registered, as fork runs them. */
void eva_os_fork(bool child);
/* The shim's files (os.c): fd holds len bytes of any value. */
void eva_os_file(int fd, size_t len);

/*
 * The sizes Eva follows one by one: the page boundaries, and one byte either side. One
 * call site each (not a loop), so that each mapping made under it is a heap block of
 * its own for Eva (-eva-alloc-builtin by_stack), with its exact length.
 */
#define EACH_SIZE(f) (f(1) && f(4095) && f(4096) && f(4097) && f(3 * 4096))

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

/*
 * One buffer through its whole life at size n, every OS call allowed to fail: written,
 * compared, read, frozen (writes then refused), melted, scrambled, wiped, destroyed,
 * then every call on its stale handle refused. False when a failure left the registry
 * other than it found it (a buffer not made, or not destroyed): the run ends there, so
 * that Eva never joins the registry's states of two outcomes (main).
 */
static bool buffer_life(size_t n)
{
    static uint8_t src[3 * 4096 + 1];
    sm_buffer b;
    bool eq;

    if (sm_buffer_new(n, &b) != SM_OK)
        return false;
    forged(b.id);
    (void)sm_buffer_copy(b, src, n);
    (void)sm_buffer_copy(b, src, n + 1);       /* past the end: refused */
    (void)sm_buffer_copy_at(b, n - 1, src, 1); /* the last byte */
    (void)sm_buffer_copy_at(b, n, src, 1);     /* one past: refused */
    (void)sm_buffer_copy_at(b, SIZE_MAX, src, 1);
    (void)sm_buffer_copy(b, NULL, 0);
    (void)sm_buffer_copy(b, NULL, 1);
    (void)sm_buffer_move(b, src, n);
    (void)sm_buffer_move_at(b, n - 1, src, 1);
    (void)sm_buffer_equal(b, src, n, &eq);
    (void)sm_buffer_equal(b, src, n + 1, &eq);
    (void)sm_buffer_equal(b, NULL, 1, &eq);
    (void)sm_buffer_equal(b, src, n, NULL);
    {
        uint8_t *d = sm_buffer_data(b);
        size_t size = sm_buffer_size(b);

        /* what the caller may do with the data: read and write all of it */
        if (d != NULL && sm_buffer_is_mutable(b))
            for (size_t i = 0; i < size; i++)
                d[i] ^= 1;
    }
    if (sm_buffer_freeze(b) == SM_OK) {
        (void)sm_buffer_copy(b, src, n); /* frozen: refused */
        (void)sm_buffer_freeze(b);
        (void)sm_buffer_melt(b);
    }
    (void)sm_buffer_scramble(b);
    (void)sm_buffer_wipe(b);
    if (sm_buffer_destroy(b) != SM_OK)
        return false;
    /* stale: every call refused */
    (void)sm_buffer_destroy(b);
    (void)sm_buffer_freeze(b);
    (void)sm_buffer_copy(b, src, 1);
    if (sm_buffer_data(b) != NULL || sm_buffer_is_alive(b) || sm_buffer_is_mutable(b))
        Frama_C_show_each_stale_id_accepted(b.id);
    return true;
}

/* The constructors that take their bytes from the caller, the OS's randomness, a file. */
static bool made_from(size_t n)
{
    static uint8_t src[3 * 4096];
    sm_buffer b;

    if (sm_buffer_from_bytes(src, n, &b) != SM_OK || sm_buffer_destroy(b) != SM_OK ||
        sm_buffer_random(n, &b) != SM_OK || sm_buffer_destroy(b) != SM_OK)
        return false;
    eva_os_file(0, n);
    return sm_buffer_from_fd(0, n, &b) == SM_OK && sm_buffer_destroy(b) == SM_OK;
}

/*
 * Input of unknown length: empty, shorter than the first scratch region, as long as it
 * (no growth, no copy), and past it (one growth), each read whole and up to a delimiter.
 */
static bool from_input(size_t len)
{
    sm_buffer b;

    eva_os_file(1, len);
    if (sm_buffer_from_fd_all(1, &b) != SM_OK || sm_buffer_destroy(b) != SM_OK)
        return false;
    eva_os_file(2, len);
    return sm_buffer_from_fd_until(2, '\n', &b) == SM_OK && sm_buffer_destroy(b) == SM_OK;
}

static void refusals(void)
{
    static uint8_t src[8];
    sm_buffer b;

    (void)sm_buffer_new(0, &b);
    (void)sm_buffer_new(1, NULL);
    (void)sm_buffer_new(SIZE_MAX, &b);
    (void)sm_buffer_from_bytes(NULL, 1, &b);
    (void)sm_buffer_from_bytes(src, 0, &b);
    (void)sm_buffer_from_bytes(src, 1, NULL);
    (void)sm_buffer_random(0, &b);
    (void)sm_buffer_random(1, NULL);
    (void)sm_buffer_from_fd(0, 0, &b);
    (void)sm_buffer_from_fd(0, 1, NULL);
    (void)sm_buffer_from_fd_all(1, NULL);
}

/* A region handed over as a frozen buffer, as an enclave open does. */
static bool adopted(void)
{
    smi_region r;
    sm_buffer b;

    if (smi_region_alloc(64, NULL, &r) != SM_OK || smi_buffer_adopt(&r, &b) != SM_OK)
        return false;
    if (sm_buffer_is_mutable(b))
        Frama_C_show_each_adopted_mutable(b.id);
    return sm_buffer_destroy(b) == SM_OK;
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
    return Frama_C_nondet(0, 1) != 0;
}

static void lingerer_wipe(void *body)
{
    (void)body;
}

static sm_status lingerer_audit(void *body)
{
    (void)body;
    return Frama_C_nondet(SM_OK, SM_E_PROT);
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
 * the non-blocking acquire, a purge of an object held by its user, the last reader's
 * drop, the claimed test, a slot whose generation is spent.
 */
static void registry(void)
{
    lingerer one = { 1 };
    uint32_t index;
    uint64_t id;
    smi_slot *s;

    if (smi_registry_reserve(&index) == SM_OK)
        smi_registry_unreserve(index);
    smi_registry_kind(SMI_KIND_SECRET, &lingerer_ops);
    if (smi_registry_insert(SMI_KIND_SECRET, &one, sizeof one, &id) != SM_OK)
        return;
    if (smi_registry_try_acquire(id, SMI_KIND_SECRET, &s) == SM_OK)
        smi_registry_release(s);
    if (smi_registry_acquire(id, SMI_KIND_BUFFER, &s) == SM_OK)
        Frama_C_show_each_other_kind_accepted(id);
    if (smi_registry_acquire(id, SMI_KIND_SECRET, &s) != SM_OK)
        return;
    /* a purge while this reader holds the object */
    (void)smi_registry_purge(false);
    if (smi_registry_claimed(s, id) || s->lingering == 0) {
        smi_registry_release(s);
    } else {
        /* the last reader out */
        ((lingerer *)(void *)s->body)->readers = 0;
        smi_registry_drop(s);
    }
    if (smi_registry_acquire(id, SMI_KIND_SECRET, &s) == SM_OK)
        Frama_C_show_each_purged_id_accepted(id);
}

/* A slot at its last generation: its object's removal retires it, and its id is refused. */
static void retired(void)
{
    lingerer none = { 0 };
    uint64_t id;
    smi_slot *s;

    if (smi_registry_insert(SMI_KIND_SECRET, &none, sizeof none, &id) != SM_OK ||
        smi_registry_acquire(id, SMI_KIND_SECRET, &s) != SM_OK)
        return;
    /* the driver plays the slot's 2^28 - 1 earlier lives */
    s->gen = SMI_HANDLE_GEN_MAX;
    smi_registry_remove(s);
    if (smi_registry_acquire(id, SMI_KIND_SECRET, &s) == SM_OK)
        Frama_C_show_each_removed_id_accepted(id);
}

/* Buffers left live for the walks: the audit, both purges, and the fork. */
static void walks(void)
{
    sm_buffer a, b, c;

    if (sm_buffer_new(1, &a) != SM_OK || sm_buffer_new(4096, &b) != SM_OK ||
        sm_buffer_new(4097, &c) != SM_OK)
        return;
    (void)smi_registry_audit();
    eva_os_fork(false);
    (void)smi_registry_live(SMI_KIND_BUFFER);
    /* a purge that ends the process: held objects wiped in place */
    (void)smi_registry_purge(true);
    if (sm_buffer_is_alive(a))
        Frama_C_show_each_purged_buffer_alive(a.id);
    if (sm_buffer_new(4095, &a) != SM_OK)
        return;
    eva_os_fork(true);
    if (sm_buffer_is_alive(a))
        Frama_C_show_each_parent_buffer_alive_in_child(a.id);
}

/*
 * Each part returns whether it left the registry as it found it; the run stops at the
 * first that did not, so that every part starts from one registry, not a join of
 * several (each failure is still followed to the end of its part).
 */
int main(void)
{
    static const sm_config cfg = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                   .backing = SM_BACKING_ANON };

    if (sm_init(&cfg) != SM_OK)
        return 1;
    refusals();
    if (!EACH_SIZE(buffer_life) || !EACH_SIZE(made_from) || !from_input(0) ||
        !from_input(100) || !from_input(4096 - SMI_CANARY_MIN) || !from_input(4096) ||
        !adopted())
        return 1;
    registry();
    retired();
    walks();
    return 0;
}
