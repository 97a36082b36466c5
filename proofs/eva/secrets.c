/* SPDX-License-Identifier: ISC */
/*
 * Eva's driver for the secret layer (proofs/README.md, "Eva", "The secrets analysis"):
 * src/objects/secret.c on the protected factory, custom factories and the compact
 * dispatch, through the public calls of securemem/secret.h and the registry's walks over
 * secrets (purge, audit, fork), with the OS shim of proofs/eva/os.c, in which a page the
 * library cannot read is uninitialised: a reader that Eva lets read the whole window
 * proves the window open. The guarded and encrypted factories, and the constructors from
 * a buffer, a file and a callback, are not driven here (the README says why).
 *
 * A protected secret's life, and its fork, run under os.c's fail plan once with no
 * failure and once for each fallible call they make, that call failing (each_failure):
 * the OS refusals on every path, each a path of its own, so that Eva never joins a
 * refused state with a committed one; the purges and the custom factories run with no
 * failure (main says why for the purges). The security decisions checked are ACSL assertions, which Eva must
 * find valid on every path (eva.sh fails on one it leaves unknown): the first reader
 * opens the window and only the last one shuts it (the outer reader reads the whole
 * window again after a nested access left), a close from inside an access is refused,
 * closed is final, stale, forged and other-kind handles are refused, sizes past the end
 * are refused.
 */
#include <__fc_builtin.h>

#include "objects/compact.h"

/* The shim's plan (os.c): from now on only the nth fallible OS call fails (0: none);
   whether that failure is still to come. */
void eva_os_fail(unsigned nth);
bool eva_os_fail_pending(void);
/* The shim's pthreads (pthread.c): no trylock of a free lock finds another holder. */
void eva_pthread_foreign(unsigned plan);
/* The shim's fork (os.c): the handlers that the runtime registered, as fork runs them. */
void eva_os_fork(bool child);

/* The bytes a secret is made from (sm_secret_new): the driver's secrets are 16 bytes. */
static uint8_t src[16];

/*
 * Run scenario once with no failure, then once per fallible OS call it makes, that
 * call failing, until a run makes fewer calls than the plan's number; then plan 0 (no
 * failure) again. Each run has a call site of its own, not a loop: the mappings it
 * makes are then heap blocks of their own for Eva (-eva-alloc-builtin by_stack gives a
 * block per call stack), each with its exact length, and none is a summary of the
 * mappings of earlier runs (a read of a shut page of one of those would then pass).
 * 48 runs at most: a scenario with more calls fails the run (the assertion below).
 */
#define RUN(k)                                     \
    eva_os_fail(k);                                \
    scenario();                                    \
    if ((k) > 0 && eva_os_fail_pending())          \
        goto done;
#define RUN8(k) RUN(k) RUN(k + 1) RUN(k + 2) RUN(k + 3) RUN(k + 4) RUN(k + 5) RUN(k + 6) RUN(k + 7)

static void each_failure(void (*scenario)(void))
{
    RUN8(0) RUN8(8) RUN8(16) RUN8(24) RUN8(32) RUN8(40)
    //@ assert every_failure_run: \false;
done:
    eva_os_fail(0);
}

/* ---- the callbacks of an access ---- */

/* Every byte of the window: an alarm unless the window is open and whole. */
static void read_all(const uint8_t *bytes, size_t len)
{
    volatile uint8_t seen = 0;

    for (size_t i = 0; i < len; i++)
        seen ^= bytes[i];
}

static sm_status reader(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)ctx;
    read_all(bytes, len);
    return SM_OK;
}

/* A callback that fails: its status is the access's. */
static sm_status refusing(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)bytes, (void)len, (void)ctx;
    return SM_E_USER;
}

/*
 * The outer reader of a nested pair: the inner accesses join the open window, and when
 * they leave, the window stays open for this one, which reads it whole again. A close
 * from inside an access is refused, not waited for (it would wait for itself).
 */
static sm_status nested(const uint8_t *bytes, size_t len, void *ctx)
{
    sm_secret s = *(const sm_secret *)ctx;
    smi_sec_state state;
    sm_status st;

    read_all(bytes, len);
    st = sm_secret_with_bytes(s, reader, NULL);
    //@ assert joins_open_window: st == SM_OK;
    st = sm_secret_try_with_bytes(s, refusing, NULL);
    //@ assert callback_status: st == SM_E_USER;
    read_all(bytes, len);
    st = sm_secret_close(s);
    //@ assert close_refused_inside: st == SM_E_STATE;
    state = smi_secret_state(s.id);
    //@ assert accessed: state == SMI_SEC_OPEN_ACCESSED;
    return SM_OK;
}

/* ---- one secret through its life ---- */

static const sm_factory *fac;
static size_t size;

static void life(void)
{
    sm_secret s, other_gen, other_kind, far;
    uint8_t dst[8];
    size_t got, n;
    smi_sec_state state;
    bool closed;
    sm_status st;

    if (sm_secret_new(fac, src, size, &s) != SM_OK)
        return;
    n = sm_secret_size(s);
    //@ assert sized: n == size;
    closed = sm_secret_is_closed(s);
    //@ assert open: !closed;
    state = smi_secret_state(s.id);
    //@ assert idle: state == SMI_SEC_OPEN_IDLE;
    (void)sm_secret_with_bytes(s, nested, &s);
    (void)sm_secret_try_with_bytes(s, reader, NULL);
    (void)sm_secret_read_at(s, 0, dst, sizeof dst, &got);
    (void)sm_secret_read_at(s, size - 1, dst, sizeof dst, &got);
    st = sm_secret_read_at(s, size, dst, sizeof dst, &got);
    //@ assert at_the_end: st == SM_OK && got == 0;
    st = sm_secret_read_at(s, size + 1, dst, sizeof dst, &got);
    //@ assert past_the_end: st == SM_E_INVAL;
    st = sm_secret_read_at(s, 0, NULL, 1, &got);
    //@ assert no_dst: st == SM_E_INVAL;
    st = sm_secret_read_at(s, 0, dst, 1, NULL);
    //@ assert no_got: st == SM_E_INVAL;
    st = sm_secret_with_bytes(s, NULL, NULL);
    //@ assert no_fn: st == SM_E_INVAL;
    (void)smi_registry_audit();
    /* forged: another generation of the slot, another kind, an index never handed out */
    other_gen.id = smi_handle_make(SMI_KIND_SECRET, smi_handle_gen(s.id) + 1,
                                   smi_handle_index(s.id));
    other_kind.id = smi_handle_make(SMI_KIND_BUFFER, smi_handle_gen(s.id),
                                    smi_handle_index(s.id));
    far.id = smi_handle_make(SMI_KIND_SECRET, smi_handle_gen(s.id),
                             smi_handle_index(s.id) + 4096);
    st = sm_secret_with_bytes(other_gen, reader, NULL);
    //@ assert forged_gen: st != SM_OK;
    st = sm_secret_close(other_kind);
    //@ assert forged_kind: st != SM_OK;
    st = sm_secret_read_at(far, 0, dst, 1, &got);
    //@ assert forged_index: st != SM_OK;
    if (sm_secret_close(s) != SM_OK) {
        /* refused (the OS): still open, and a close can be retried */
        closed = sm_secret_is_closed(s);
        //@ assert still_open: !closed;
        eva_os_fail(0);
        st = sm_secret_close(s);
        //@ assert retried: st == SM_OK;
    }
    /* closed is final: every operation on the stale handle is refused */
    st = sm_secret_with_bytes(s, reader, NULL);
    //@ assert stale_access: st == SM_E_STATE;
    st = sm_secret_try_with_bytes(s, reader, NULL);
    //@ assert stale_try: st == SM_E_STATE;
    st = sm_secret_close(s);
    //@ assert closed_once: st == SM_E_STATE;
    st = sm_secret_read_at(s, 0, dst, sizeof dst, &got);
    //@ assert stale_read: st == SM_E_STATE;
    n = sm_secret_size(s);
    //@ assert stale_size: n == 0;
    closed = sm_secret_is_closed(s);
    //@ assert stale_closed: closed;
    state = smi_secret_state(s.id);
    //@ assert stale_state: state == SMI_SEC_CLOSED;
}

/* ---- purges ---- */

/*
 * A purge while this access reads: the window is wiped in place and stays mapped for
 * this reader, which reads it whole again; the last reader out frees it.
 */
static sm_status purged_under(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)ctx;
    (void)smi_registry_purge(false);
    read_all(bytes, len);
    return SM_OK;
}

/*
 * A secret purged while it is read, one purged while another thread holds its lock
 * (the driver plays that thread: wiped in place, finished by the holder's release),
 * and one purged at rest; each handle is refused afterwards.
 */
static void purges(void)
{
    sm_secret a, b, c;
    smi_slot *s;
    sm_status st;

    if (sm_secret_random(fac, size, &a) != SM_OK)
        return;
    (void)sm_secret_with_bytes(a, purged_under, NULL);
    st = sm_secret_with_bytes(a, reader, NULL);
    //@ assert purged_read: st == SM_E_STATE;
    if (sm_secret_random(fac, size, &b) != SM_OK)
        return;
    if (smi_registry_acquire(b.id, SMI_KIND_SECRET, &s) == SM_OK) {
        (void)smi_registry_purge(true);
        smi_registry_release(s);
    }
    st = sm_secret_close(b);
    //@ assert purged_held: st == SM_E_STATE;
    if (sm_secret_random(fac, size, &c) != SM_OK)
        return;
    (void)smi_registry_purge(false);
    st = sm_secret_try_with_bytes(c, reader, NULL);
    //@ assert purged_rest: st == SM_E_STATE;
}

/* A secret left live across a fork: the parent keeps it, the child finds it stale. */
static void forked(void)
{
    sm_secret s;
    sm_status st;

    if (sm_secret_random(fac, size, &s) != SM_OK)
        return;
    eva_os_fork(false);
    (void)sm_secret_with_bytes(s, reader, NULL);
    eva_os_fork(true);
    st = sm_secret_with_bytes(s, reader, NULL);
    //@ assert stale_in_child: st == SM_E_STATE;
}

/* ---- custom factories ---- */

static uint8_t custom_pages[64];
static sm_secret custom_self;

static sm_status c_create(void *ctx, size_t len, void **state, uint8_t **fill)
{
    (void)ctx, (void)len;
    *state = custom_pages;
    *fill = custom_pages;
    return SM_OK;
}

/* A create that says SM_OK and gives no pointer has not done its job: refused. */
static sm_status c_create_null(void *ctx, size_t len, void **state, uint8_t **fill)
{
    (void)ctx, (void)len;
    *state = custom_pages;
    *fill = NULL;
    return SM_OK;
}

/* A seal that the factory refuses: the make rolls back through destroy. */
static sm_status c_refuse(void *ctx, void *state)
{
    (void)ctx, (void)state;
    return SM_E_PROT;
}

static sm_status c_step(void *ctx, void *state)
{
    (void)ctx, (void)state;
    return SM_OK;
}

/*
 * make_readable calls back into its own secret, as a hook may: refused (SM_E_STATE
 * for a wait, SM_E_BUSY for a try), never a wait for the change it is itself making.
 */
static sm_status c_readable(void *ctx, void *state, const uint8_t **bytes)
{
    size_t got;
    sm_status st = sm_secret_read_at(custom_self, 0, custom_pages, 1, &got);

    (void)ctx;
    //@ assert no_reentry: st == SM_E_STATE;
    st = sm_secret_try_with_bytes(custom_self, reader, NULL);
    //@ assert busy: st == SM_E_BUSY;
    *bytes = state;
    return SM_OK;
}

/* A make_readable that says SM_OK and gives no bytes: refused. */
static sm_status c_readable_null(void *ctx, void *state, const uint8_t **bytes)
{
    (void)ctx, (void)state;
    *bytes = NULL;
    return SM_OK;
}

/* A purge from inside a window change: the changing thread frees the pages itself. */
static sm_status c_readable_purged(void *ctx, void *state, const uint8_t **bytes)
{
    (void)ctx;
    (void)smi_registry_purge(false);
    *bytes = state;
    return SM_OK;
}

static void c_purge(void *ctx, void *state, bool in_use)
{
    (void)ctx, (void)in_use;
    Frama_C_make_unknown(state, sizeof custom_pages);
}

static void custom(void)
{
    sm_factory f = { .version = SM_FACTORY_VERSION, .create = c_create, .seal = c_step,
                     .make_readable = c_readable, .make_unreadable = c_step,
                     .destroy = c_step, .purge = NULL };
    sm_status st;

    if (sm_secret_new(&f, src, 16, &custom_self) == SM_OK) {
        (void)sm_secret_with_bytes(custom_self, reader, NULL);
        (void)sm_secret_with_bytes(custom_self, nested, &custom_self);
        (void)smi_registry_audit();
        if (sm_secret_close(custom_self) != SM_OK)
            (void)smi_registry_purge(false);
    }
    f.purge = c_purge;
    if (sm_secret_random(&f, 16, &custom_self) == SM_OK) {
        (void)sm_secret_with_bytes(custom_self, purged_under, NULL);
        st = sm_secret_close(custom_self);
        //@ assert custom_purged: st == SM_E_STATE;
    }
    /* a fork: the child forgets the secret (nothing of the library's to free) */
    if (sm_secret_random(&f, 16, &custom_self) == SM_OK) {
        eva_os_fork(true);
        st = sm_secret_close(custom_self);
        //@ assert custom_stale_in_child: st == SM_E_STATE;
    }
}

/* The hooks that break their contract, and a purge during a window change. */
static void custom_broken(void)
{
    sm_factory f = { .version = SM_FACTORY_VERSION, .create = c_create_null, .seal = c_step,
                     .make_readable = c_readable_null, .make_unreadable = c_step,
                     .destroy = c_step, .purge = NULL };
    sm_status st = sm_secret_random(&f, 16, &custom_self);

    //@ assert no_fill: st == SM_E_INVAL;
    f.create = c_create;
    if (sm_secret_random(&f, 16, &custom_self) != SM_OK)
        return;
    st = sm_secret_with_bytes(custom_self, reader, NULL);
    //@ assert no_bytes: st == SM_E_INVAL;
    f.make_readable = c_readable_purged;
    st = sm_secret_with_bytes(custom_self, reader, NULL);
    //@ assert purged_in_change: st == SM_E_STATE;
    /* a refused seal: the secret is not made, and the factory's pages are destroyed */
    f.create = c_create;
    f.seal = c_refuse;
    st = sm_secret_random(&f, 16, &custom_self);
    //@ assert seal_refused: st == SM_E_PROT;
}

/* ---- the compact factory's dispatch, and the refusals ---- */

/* A fill callback for the compact dispatch (the size refused first, so never called). */
static sm_status fill_any(uint8_t *bytes, size_t len, void *ctx)
{
    (void)ctx;
    Frama_C_make_unknown((char *)bytes, len);
    return SM_OK;
}

/*
 * The compact factory's secrets are compact.c's, which no analysis follows yet (its slot
 * metadata: proofs/README.md, "Eva"): here, only that secret.c hands them over: a size
 * past the compact bound, and a compact handle that names no slot, each refused there.
 */
static void compact_dispatch(void)
{
    sm_secret s = { smi_handle_make(SMI_COMPACT_KIND, 1, 0) }, t;
    uint8_t dst[1];
    size_t got;
    sm_status st;

    st = sm_secret_random(sm_factory_compact(), SMI_COMPACT_MAX + 1, &t);
    //@ assert compact_too_big: st == SM_E_INVAL;
    st = sm_secret_from_callback(sm_factory_compact(), SMI_COMPACT_MAX + 1, fill_any, NULL, &t);
    //@ assert compact_fill_too_big: st == SM_E_INVAL;
    st = sm_secret_with_bytes(s, reader, NULL);
    //@ assert compact_stale: st != SM_OK;
    (void)sm_secret_try_with_bytes(s, reader, NULL);
    (void)sm_secret_read_at(s, 0, dst, 1, &got);
    (void)sm_secret_size(s);
    (void)sm_secret_is_closed(s);
    (void)smi_secret_state(s.id);
    (void)sm_secret_close(s);
}

static void refusals(void)
{
    static const sm_factory old = { .version = SM_FACTORY_VERSION + 1 };
    sm_secret s = { 0 };
    sm_status st;

    st = sm_secret_new(sm_factory_protected(), NULL, 1, &s);
    //@ assert no_src: st == SM_E_INVAL;
    st = sm_secret_random(NULL, 1, &s);
    //@ assert no_factory: st == SM_E_INVAL;
    st = sm_secret_random(&old, 1, &s);
    //@ assert bad_factory: st == SM_E_INVAL;
    st = sm_secret_random(sm_factory_guarded(), 1, NULL);
    //@ assert no_out: st == SM_E_INVAL;
    st = sm_secret_random(sm_factory_encrypted(), 0, &s);
    //@ assert empty: st == SM_E_INVAL;
    st = sm_secret_random(sm_factory_protected(), (SIZE_MAX >> 2) + 1, &s);
    //@ assert too_big: st == SM_E_INVAL;
    st = sm_secret_from_buffer(NULL, (sm_buffer){ 0 }, &s);
    //@ assert from_no_factory: st == SM_E_INVAL;
    st = sm_secret_from_buffer(sm_factory_guarded(), (sm_buffer){ 0 }, &s);
    //@ assert from_no_buffer: st != SM_OK;
    st = sm_secret_with_bytes(s, reader, NULL);
    //@ assert null_handle: st != SM_OK;
    st = sm_secret_close(s);
    //@ assert null_close: st != SM_OK;
}

/* Run scenario on factory f at size n, once per planned failure. */
static void each(void (*scenario)(void), const sm_factory *f, size_t n)
{
    fac = f;
    size = n;
    each_failure(scenario);
}

int main(void)
{
    static const sm_config cfg = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                   .backing = SM_BACKING_ANON };

    eva_os_fail(0);
    eva_pthread_foreign(0);
    if (sm_init(&cfg) != SM_OK)
        return 1;
    Frama_C_make_unknown((char *)src, sizeof src);
    refusals();
    compact_dispatch();
    each(life, sm_factory_protected(), 16);
    /*
     * The purges with no failure only: under a plan that refuses the window's opening,
     * no purge happens and purged_read does not hold; a flag that skipped it then made
     * Eva join the registry of a purged secret with one of a live secret (alarms in
     * plain.c and secret.c's dispatch, a state no execution has).
     */
    fac = sm_factory_protected();
    size = 16;
    purges();
    each(forked, sm_factory_protected(), 16);
    custom();
    custom_broken();
    return 0;
}
