/* SPDX-License-Identifier: ISC */
/*
 * The enclave key (spec/enclave-key.md). At rest the 32-byte key is two shares in two
 * guarded regions, key = SHA-256(left) XOR right, both PROT_NONE, so that no single
 * page ever holds it and no stray read reaches either share. A view opens the shares,
 * rebuilds the key in a workspace slot (a third guarded region), closes them, and the
 * cipher then runs in that slot; the slot is wiped before the call returns.
 *
 * Locks: one coffer lock, held only for the view (four mprotect calls and two SHA-256
 * blocks, whatever the message size), and one lock per workspace slot, held for the
 * cipher. So operations on different enclaves share the coffer lock for a few
 * microseconds only, never for the length of a message.
 *
 * All three regions are anonymous WIPEONFORK memory whatever the backing: a forked
 * child finds them zeroed at the same addresses, "keyed" included, and makes a new
 * key in place before its first seal.
 */
#include <bearssl.h>
#include <stddef.h>
#include <string.h>

#include "inner.h"

/* The right share's page also holds the nonce state, so that it is NONE at rest too:
   a stray write cannot roll the counter back into a repeated nonce. */
struct right_page {
    uint8_t  share[32]; /* SHA-256(left) XOR key */
    uint8_t  prefix[4]; /* drawn with the key: which key a nonce belongs to */
    uint64_t next;      /* the next nonce counter; UINT64_MAX: used up */
};

/*
 * Bookkeeping at the start of the workspace, with nothing secret in it. It is here
 * rather than in static memory for WIPEONFORK: keyed reads 0 in a forked child.
 */
struct work_head {
    uint64_t keyed;    /* 1 once the shares hold a key of this process */
    uint64_t views;    /* since the last split */
    uint64_t split_ns; /* sm_os_monotonic_ns of the last split */
    uint64_t splits;   /* re-splits of this key (the test probe reads it) */
};

/* What one operation needs besides the AEAD workspace, which follows it. */
struct slot {
    uint8_t           key[32];    /* the whole key, only during an operation */
    uint8_t           fresh[32];  /* a new left share */
    uint8_t           prefix[4];  /* a new key's nonce prefix */
    uint8_t           digest[32]; /* SHA-256 of a left share */
    br_sha256_context sha;
};
/* A new key, its left share and its prefix come from one getrandom call. */
_Static_assert(offsetof(struct slot, key) == 0 && offsetof(struct slot, fresh) == 32 &&
               offsetof(struct slot, prefix) == 64, "key, fresh, prefix are contiguous");
#define NEW_KEY_DRAW (offsetof(struct slot, prefix) + 4u)

#define ALIGN64(n) (((n) + 63u) & ~(size_t)63u)
#define HEAD_LEN ALIGN64(sizeof(struct work_head))
#define SLOT_HEAD ALIGN64(sizeof(struct slot))

enum { LEFT, RIGHT, WORK, NREGIONS };

static smi_region regions[NREGIONS];
/* regions[] describe live mappings. Cleared first by purge, set last by make. */
static atomic_bool published;
static sm_os_mutex coffer_lock = SM_OS_MUTEX_INIT;
static sm_os_mutex slot_lock[SMI_COFFER_SLOTS] = {
    SM_OS_MUTEX_INIT, SM_OS_MUTEX_INIT, SM_OS_MUTEX_INIT,
    SM_OS_MUTEX_INIT, SM_OS_MUTEX_INIT, SM_OS_MUTEX_INIT,
    SM_OS_MUTEX_INIT, SM_OS_MUTEX_INIT,
};
_Static_assert(SMI_COFFER_SLOTS == 8, "one initialiser per slot lock");
static atomic_uint slot_hint;
/* Purges so far: an operation that overlaps one discards its output (purged_since). */
static atomic_uint_fast64_t purge_epoch;

/*
 * Operations that may touch the regions: from op_enter, under coffer_lock, to op_leave.
 * A purge that lets the process go on (sm_purge) unmaps nothing under them: it marks
 * the teardown pending, and the last operation to leave runs it. So an operation that a
 * purge overtakes never faults; it finds the epoch moved and discards its output.
 */
static atomic_uint inflight;
enum { TEARDOWN_NONE, TEARDOWN_PENDING, TEARDOWN_RUNNING };
static atomic_int teardown;

SMI_VG_AT_START(vg_coffer)
{
    SMI_VG_ATOMIC(&published, sizeof published);
    SMI_VG_ATOMIC(&purge_epoch, sizeof purge_epoch);
    SMI_VG_ATOMIC(&inflight, sizeof inflight);
    SMI_VG_ATOMIC(&teardown, sizeof teardown);
    SMI_VG_ATOMIC(&slot_hint, sizeof slot_hint);
}

static size_t slot_stride(void)
{
    return SLOT_HEAD + smi_aead_ws_size();
}

static size_t work_size(void)
{
    return HEAD_LEN + SMI_COFFER_SLOTS * slot_stride();
}

static struct work_head *head(void)
{
    return (struct work_head *)(void *)smi_region_data(&regions[WORK]);
}

static struct slot *slot_at(const smi_region *work, unsigned s)
{
    return (struct slot *)(void *)(smi_region_data(work) + HEAD_LEN + s * slot_stride());
}

static smi_aead_ws *slot_ws(struct slot *sl)
{
    return (smi_aead_ws *)(void *)((uint8_t *)sl + SLOT_HEAD);
}

static struct right_page *right_page(const smi_region *r)
{
    return (struct right_page *)(void *)smi_region_data(r);
}

/*
 * A try access to an encrypted secret (sm_secret_try_with_bytes) opens its window
 * through this file and must not wait for another thread there (issue 11 §4.6,
 * SM-REQ-094). With try_only set on the calling thread, the workspace slots and the
 * coffer lock are only tried, and the operation gives SM_E_BUSY where it would have
 * waited. Thread-local, set by secret.c around that one open only.
 */
static _Thread_local bool try_only;

void smi_coffer_try_only(bool on)
{
    try_only = on;
}

/*
 * A free slot if there is one, else wait for one (false, under try_only). The hint
 * spreads threads over the slots so that trylock usually succeeds at once.
 */
static bool slot_take(unsigned *out)
{
    unsigned start = atomic_fetch_add_explicit(&slot_hint, 1, memory_order_relaxed) %
                     SMI_COFFER_SLOTS;

    for (unsigned i = 0; i < SMI_COFFER_SLOTS; i++) {
        unsigned s = (start + i) % SMI_COFFER_SLOTS;

        if (sm_os_mutex_trylock(&slot_lock[s]) == 0) {
            *out = s;
            return true;
        }
    }
    if (try_only)
        return false;
    sm_os_mutex_lock(&slot_lock[start]);
    *out = start;
    return true;
}

/*
 * A fork while another thread holds a coffer lock would leave it locked for ever in
 * the child. So fork waits until no operation is in flight (the same order as an
 * operation: slots, then the coffer). `prepared` tells the child handler whether this
 * thread's fork ran the prepare (thread-local: the child's one thread is the forking
 * thread, and another thread's concurrent fork may hold the locks meanwhile).
 */
static _Thread_local bool prepared;

static void fork_prepare(void)
{
    for (unsigned s = 0; s < SMI_COFFER_SLOTS; s++)
        sm_os_mutex_lock(&slot_lock[s]);
    sm_os_mutex_lock(&coffer_lock);
    prepared = true;
}

static void fork_release(void)
{
    prepared = false;
    sm_os_mutex_unlock(&coffer_lock);
    for (unsigned s = SMI_COFFER_SLOTS; s-- > 0;)
        sm_os_mutex_unlock(&slot_lock[s]);
}

/*
 * The child's regions are no longer locked (mlock does not survive fork): counted
 * unlocked until rekey_child locks them again, so that sm_stats tells the truth
 * (issue 18, "also noticed").
 *
 * The locks the prepare took are released, by the thread that took them (the child's
 * one thread): made afresh while locked, they stayed locked to ThreadSanitizer, which
 * reported the child's next lock as a double lock (race suite, "fork"), and POSIX
 * leaves initialising a locked mutex undefined. They are made afresh only when this
 * fork did not run the prepare: the runtime's before_fork read no coffer handlers, as
 * the first seal set them while that fork was under way, and then the locks may have
 * been copied held by threads the child lacks, which no unlock can let go; that is the
 * one case left undefined, and without it the child waits for ever
 * (fork_under_way_at_the_first_seal_does_not_deadlock). Operations of those threads may
 * also be counted in flight, and may have been between an mprotect and its note in
 * r->prot: the shares' next opening (rekey_child) is made to call mprotect whatever
 * r->prot says.
 */
static void fork_child(void)
{
    if (prepared) {
        fork_release();
    } else {
        for (unsigned s = 0; s < SMI_COFFER_SLOTS; s++)
            sm_os_mutex_init(&slot_lock[s]);
        sm_os_mutex_init(&coffer_lock);
    }
    atomic_store(&inflight, 0);
    /*
     * A teardown under way (a purge's, which takes no lock and so is not waited for by
     * the prepare, or an unmake's) has no thread here to finish it, and ensure_key
     * would wait for it for ever. Which regions it had unmapped is unknown, so none is
     * touched again: the child forgets them all and makes new ones at its first seal.
     * Those not yet unmapped stay mapped, zeroed by WIPEONFORK, and counted nowhere
     * (the counters were set afresh before this handler: smi_stats_after_fork).
     * PENDING needs nothing: the child's next operation runs it.
     */
    if (atomic_load(&teardown) == TEARDOWN_RUNNING) {
        atomic_store(&published, false);
        atomic_store(&teardown, TEARDOWN_NONE);
    }
    if (atomic_load_explicit(&published, memory_order_acquire)) {
        for (unsigned n = 0; n < NREGIONS; n++)
            smi_region_fork_unlocked(&regions[n]);
        regions[LEFT].prot = SM_PROT_NONE;
        regions[RIGHT].prot = SM_PROT_NONE;
    }
}

/*
 * The fork handlers are in place before the first lock is ever taken, so that no fork
 * can catch a coffer lock held by a thread that the child will not have. They are the
 * runtime's (registered at load, runtime.c), which call the coffer's: a pthread_atfork
 * of the coffer's own, made at its first seal, was not run by a fork that another
 * thread had already begun (glibc 2.34 and later skip, for that fork, handlers
 * registered while it runs its prepare handlers), and that
 * fork could then copy coffer_lock held by this thread into a child that waited on it
 * for ever (coffer/fork_during_operations_does_not_deadlock, once under load;
 * coffer/fork_under_way_at_the_first_seal_does_not_deadlock makes it every time).
 * sm_os_call_once and not a hand-made flag: glibc restarts a once-routine that a fork
 * interrupted, where a "being registered" flag would stay set for ever in the child.
 * When libc cannot grow its handler list, the coffer cannot be made fork-safe: every
 * seal of the process gives SM_E_NOMEM.
 */
static sm_os_once_flag atfork_once = SM_OS_ONCE_INIT;
static const smi_fork_ops fork_ops = { fork_prepare, fork_release, fork_child };

static void purge(bool now);

static void atfork_register(void)
{
    /*
     * Before the first key can exist: the runtime's purge reaches the key through this
     * registered callback, since the coffer sits above the runtime (spec/layers.tsv).
     */
    smi_runtime_key_purge(purge);
    smi_runtime_coffer_fork(&fork_ops);
}

static sm_status atfork_ready(void)
{
    sm_status st = smi_runtime_fork_ready();

    if (st == SM_OK)
        sm_os_call_once(&atfork_once, atfork_register);
    return st;
}

static void run_teardown(void);

static void op_enter(void)
{
    atomic_fetch_add(&inflight, 1);
}

/*
 * A purge stores TEARDOWN_PENDING and then reads inflight; this side decrements inflight
 * and then reads teardown. Both are seq_cst, so at least one of them sees the other and
 * the teardown always runs, once (run_teardown claims it).
 */
static void op_leave(void)
{
    SMI_VG_PUBLISH(&inflight);
    if (atomic_fetch_sub(&inflight, 1) == 1 &&
        atomic_load(&teardown) == TEARDOWN_PENDING)
        run_teardown();
}

static void digest(struct slot *sl, const uint8_t share[32])
{
    br_sha256_init(&sl->sha);
    br_sha256_update(&sl->sha, share, 32);
    br_sha256_out(&sl->sha, sl->digest);
}

/* Everything of the slot but the key (and the AEAD workspace, which wipes itself). */
static void slot_scrub(struct slot *sl)
{
    smi_wipe(sl->fresh, sizeof sl->fresh);
    smi_wipe(sl->prefix, sizeof sl->prefix);
    smi_wipe(sl->digest, sizeof sl->digest);
    smi_wipe(&sl->sha, sizeof sl->sha);
}

/*
 * From the draw in sl (key, fresh, prefix): left = fresh, right = SHA-256(left) XOR
 * key, a new counter. The shares must be writable.
 */
static void install_key(struct slot *sl, smi_region *left, smi_region *right,
                        struct work_head *h)
{
    struct right_page *rp = right_page(right);

    digest(sl, sl->fresh);
    memcpy(smi_region_data(left), sl->fresh, 32);
    for (unsigned i = 0; i < 32; i++)
        rp->share[i] = sl->digest[i] ^ sl->key[i];
    memcpy(rp->prefix, sl->prefix, sizeof rp->prefix);
    rp->next = 0;
    h->views = 0;
    h->splits = 0;
    h->split_ns = sm_os_monotonic_ns();
    h->keyed = 1;
    smi_wipe(sl->key, sizeof sl->key);
    slot_scrub(sl);
    smi_burn_stack();
}

/*
 * The first coffer: three regions, one draw, shares left READWRITE (the view that
 * follows closes them). On error nothing stays mapped and no counter moved.
 */
static sm_status make_new(unsigned s)
{
    const size_t sizes[NREGIONS] = { 32, sizeof(struct right_page), work_size() };
    smi_region r[NREGIONS];
    struct slot *sl;
    unsigned n;
    sm_status st = SM_OK;

    for (n = 0; n < NREGIONS && st == SM_OK; n++)
        st = smi_region_alloc_wiped_on_fork(sizes[n], NULL, &r[n]);
    if (st == SM_OK) {
        sl = slot_at(&r[WORK], s);
        st = sm_os_random((uint8_t *)sl, NEW_KEY_DRAW);
        if (st == SM_OK)
            install_key(sl, &r[LEFT], &r[RIGHT], (struct work_head *)(void *)
                        smi_region_data(&r[WORK]));
        else
            smi_wipe(sl, NEW_KEY_DRAW);
    } else {
        n--; /* r[n - 1] failed and holds nothing */
    }
    if (st != SM_OK) {
        while (n-- > 0)
            smi_region_unmake(&r[n]);
        return st;
    }
    memcpy(regions, r, sizeof regions);
    SMI_VG_PUBLISH(&published);
    atomic_store_explicit(&published, true, memory_order_release);
    return SM_OK;
}

/*
 * In a forked child the regions are still mapped, but zeroed, canaries included, and
 * unlocked (mlock does not survive fork). Rearm the canaries, lock again and draw a
 * new key in place. A failure leaves keyed at 0: the next call tries again.
 */
static sm_status rekey_child(unsigned s)
{
    struct slot *sl = slot_at(&regions[WORK], s);
    size_t page = sm_os_page_size();
    sm_status st;

    st = smi_region_protect(&regions[LEFT], SM_PROT_READWRITE);
    if (st == SM_OK)
        st = smi_region_protect(&regions[RIGHT], SM_PROT_READWRITE);
    for (unsigned n = 0; n < NREGIONS && st == SM_OK; n++) {
        smi_region *r = &regions[n];

        if (!r->relock || smi_lock_pages(r->base + page, r->lay.inner_len) == SM_OK)
            continue;
        if (smi_config_get()->lock_policy == SM_LOCK_REQUIRED)
            st = SM_E_LOCK;
        else
            r->relock = false; /* best effort goes on unlocked, counted so since the fork */
    }
    if (st == SM_OK)
        st = sm_os_random((uint8_t *)sl, NEW_KEY_DRAW);
    if (st != SM_OK) {
        smi_wipe(sl, NEW_KEY_DRAW);
        return st;
    }
    for (unsigned n = 0; n < NREGIONS; n++)
        smi_canary_fill(regions[n].base + page, regions[n].lay.canary_len, regions[n].seed);
    install_key(sl, &regions[LEFT], &regions[RIGHT], head());
    /* Counted locked again only now, so that a failed call has moved no counter. */
    for (unsigned n = 0; n < NREGIONS; n++)
        smi_region_relocked(&regions[n]);
    return SM_OK;
}

static bool canary_zeroed(const smi_region *r)
{
    const uint8_t *c = r->base + sm_os_page_size();
    uint8_t acc = 0;

    for (size_t i = 0; i < r->lay.canary_len; i++)
        acc |= c[i];
    return acc == 0;
}

typedef enum { KEY_HAD, KEY_NEW, KEY_CHILD } key_origin;

/* A key to use, with coffer_lock held. */
static sm_status ensure_key(unsigned s, key_origin *origin)
{
    sm_status st;

    *origin = KEY_HAD;
    if (atomic_load_explicit(&published, memory_order_acquire) && head()->keyed == 1)
        return SM_OK;
    if (atomic_load_explicit(&published, memory_order_acquire)) {
        /*
         * keyed reads 0 after a fork, and then so does the canary. An intact canary
         * means a stray write cleared keyed; taking it for a fork would silently
         * replace the key that every live enclave needs.
         */
        if (head()->keyed != 0 || !canary_zeroed(&regions[WORK]))
            smi_panic("the enclave key's workspace is damaged: stray write");
        *origin = KEY_CHILD;
        return rekey_child(s);
    }
    /*
     * A purge may have left the old regions to the operations still in their cipher.
     * Those hold no coffer lock, so they finish; the last one out unmaps the regions,
     * or this thread does once it is the only one in. Only then may regions[] change.
     */
    while (atomic_load(&teardown) != TEARDOWN_NONE) {
        if (atomic_load(&inflight) == 1)
            run_teardown();
        else
            sm_os_yield();
    }
    SMI_VG_RECEIVE(&teardown);
    st = smi_runtime_ready();
    if (st == SM_OK)
        st = make_new(s);
    if (st == SM_OK)
        *origin = KEY_NEW;
    return st;
}

/* Undo make_new after a later step of the same call failed. */
static void unmake(void)
{
    int none = TEARDOWN_NONE;

    /* A purge that claimed the teardown first owns it (run when this call leaves). */
    if (!atomic_compare_exchange_strong(&teardown, &none, TEARDOWN_RUNNING))
        return;
    atomic_store(&published, false);
    for (unsigned n = NREGIONS; n-- > 0;)
        smi_region_unmake(&regions[n]);
    atomic_store(&teardown, TEARDOWN_NONE);
}

static sm_status open_shares(void)
{
    sm_status st = smi_region_protect(&regions[LEFT], SM_PROT_READWRITE);

    if (st != SM_OK)
        return st;
    st = smi_region_protect(&regions[RIGHT], SM_PROT_READWRITE);
    if (st != SM_OK)
        (void)smi_region_protect(&regions[LEFT], SM_PROT_NONE);
    return st;
}

/* Both are tried; a failure leaves that share open until the next view closes it. */
static sm_status close_shares(void)
{
    sm_status a = smi_region_protect(&regions[LEFT], SM_PROT_NONE);
    sm_status b = smi_region_protect(&regions[RIGHT], SM_PROT_NONE);

    return a != SM_OK ? a : b;
}

static void store_be64(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/*
 * Rebuild the key into sl->key, with coffer_lock held; reserve `seals` consecutive
 * nonces, the first of which goes to nonce; re-split when due. On error sl->key is
 * wiped, and the shares are as they were but for an unlucky close.
 */
static sm_status view(struct slot *sl, uint8_t nonce[SMI_AEAD_NONCE], uint64_t seals)
{
    struct work_head *h = head();
    struct right_page *rp = right_page(&regions[RIGHT]);
    uint8_t *left = smi_region_data(&regions[LEFT]);
    uint64_t now = sm_os_monotonic_ns(), first;
    bool due = h->views >= SMI_COFFER_RESPLIT_VIEWS || now - h->split_ns >= SMI_COFFER_RESPLIT_NS;
    sm_status st = SM_OK, cst;

    /* Drawn first: if the OS source fails, nothing has been touched. */
    if (due)
        st = sm_os_random(sl->fresh, sizeof sl->fresh);
    if (st == SM_OK)
        st = open_shares();
    if (st != SM_OK)
        goto out;
    st = smi_nonce_reserve(&rp->next, seals, &first);
    if (st == SM_OK) {
        memcpy(nonce, rp->prefix, sizeof rp->prefix);
        store_be64(nonce + sizeof rp->prefix, first);
        digest(sl, left);
        for (unsigned i = 0; i < 32; i++)
            sl->key[i] = sl->digest[i] ^ rp->share[i];
        if (due) {
            digest(sl, sl->fresh);
            for (unsigned i = 0; i < 32; i++)
                rp->share[i] = sl->digest[i] ^ sl->key[i];
            memcpy(left, sl->fresh, 32);
            h->views = 0;
            h->split_ns = now;
            h->splits++;
        }
        h->views++;
    }
    cst = close_shares();
    if (st == SM_OK)
        st = cst;
out:
    slot_scrub(sl);
    if (st != SM_OK)
        smi_wipe(sl->key, sizeof sl->key);
    smi_burn_stack();
    return st;
}

/*
 * The coffer part of an operation: on SM_OK *sl is slot s of the workspace, holding the
 * key, and *epoch the purge count that the operation must still see when it finishes.
 * Called with coffer_lock held, which it lets go of. The operation is in flight from
 * here, whatever the result: it calls op_leave once done.
 */
static sm_status begin(unsigned s, uint8_t nonce[SMI_AEAD_NONCE], uint64_t seals, bool make,
                       struct slot **sl, uint64_t *epoch)
{
    key_origin origin = KEY_HAD;
    sm_status st;

    op_enter();
    *epoch = atomic_load(&purge_epoch);
    if (make) {
        st = ensure_key(s, &origin);
    } else {
        /* Nothing can authenticate under a key that this process does not have. */
        st = atomic_load_explicit(&published, memory_order_acquire) && head()->keyed == 1
                 ? SM_OK
                 : SM_E_AUTH;
    }
    if (st == SM_OK) {
        *sl = slot_at(&regions[WORK], s);
        st = view(*sl, nonce, seals);
        if (st != SM_OK && origin == KEY_NEW)
            unmake();
    }
    sm_os_mutex_unlock(&coffer_lock);
    return st;
}

#if defined(SM_FAULT_INJECTION)
static void (*_Atomic after_cipher)(void);
static void (*_Atomic during_teardown)(void);

void smi_coffer_test_after_cipher(void (*fn)(void))
{
    atomic_store(&after_cipher, fn);
}

void smi_coffer_test_during_teardown(void (*fn)(void))
{
    atomic_store(&during_teardown, fn);
}
#endif

/*
 * Whether a purge ran since begin. Then the slot may have been wiped under the
 * cipher: what it produced is not to be trusted, and the slot is not to be touched.
 */
static bool purged_since(uint64_t epoch)
{
#if defined(SM_FAULT_INJECTION)
    void (*fn)(void) = atomic_load(&after_cipher);

    if (fn != NULL)
        fn();
#endif
    return atomic_load(&purge_epoch) != epoch;
}

static bool args_ok(const void *aad, size_t aad_len, const uint8_t *data, size_t len)
{
    return (aad != NULL || aad_len == 0) && (data != NULL || len == 0) &&
           smi_aead_len_ok(len);
}

/*
 * A session holds one view of the key for several operations (a stream's chunks), so
 * that the shares are opened and closed once per call instead of once per chunk.
 */
sm_status smi_coffer_begin(smi_coffer_session *cs, uint64_t seals)
{
    struct slot *sl = NULL;
    sm_status st;

    cs->active = false;
    if (seals > 0) {
        st = atfork_ready();
        if (st != SM_OK)
            return st;
    } else if (!atomic_load_explicit(&published, memory_order_acquire)) {
        /*
         * No coffer, no lock: a key is published only after the fork handlers are in,
         * and a ciphertext reaches open only after its seal returned.
         */
        return SM_E_AUTH;
    }
    if (!slot_take(&cs->slot))
        return SM_E_BUSY;
    if (!try_only) {
        sm_os_mutex_lock(&coffer_lock);
    } else if (sm_os_mutex_trylock(&coffer_lock) != 0) {
        /* Not in flight yet: no op_leave. */
        sm_os_mutex_unlock(&slot_lock[cs->slot]);
        return SM_E_BUSY;
    }
    st = begin(cs->slot, cs->nonce, seals, seals > 0, &sl, &cs->epoch);
    if (st != SM_OK) {
        op_leave();
        sm_os_mutex_unlock(&slot_lock[cs->slot]);
        return st;
    }
    cs->sl = sl;
    cs->seals = seals;
    cs->active = true;
    return SM_OK;
}

void smi_coffer_end(smi_coffer_session *cs)
{
    if (!cs->active)
        return;
    /* After a purge the slot may be unmapped: it is not to be touched then. */
    if (!purged_since(cs->epoch))
        smi_wipe(((struct slot *)cs->sl)->key, sizeof ((struct slot *)cs->sl)->key);
    op_leave();
    sm_os_mutex_unlock(&slot_lock[cs->slot]);
    smi_wipe(cs, sizeof *cs);
}

/* The next reserved nonce, as a 96-bit big-endian counter behind the prefix. */
static void next_nonce(uint8_t nonce[SMI_AEAD_NONCE])
{
    for (unsigned i = SMI_AEAD_NONCE; i-- > 4;)
        if (++nonce[i] != 0)
            break;
}

/* smi_coffer_session_seal, the ciphertext also copied to to unless it is NULL. */
static sm_status session_seal(smi_coffer_session *cs, const void *aad, size_t aad_len,
                              uint8_t *data, size_t len, uint8_t *to,
                              uint8_t nonce_out[SMI_AEAD_NONCE], uint8_t tag_out[SMI_AEAD_TAG])
{
    struct slot *sl = cs->sl;
    uint8_t tag[SMI_AEAD_TAG];

    if (!args_ok(aad, aad_len, data, len) || nonce_out == NULL || tag_out == NULL)
        return SM_E_INVAL;
    if (!cs->active || cs->seals == 0)
        return SM_E_STATE; /* every nonce of the session is spent */
    /* What to holds on a purge below is ciphertext under the purged key: nothing. */
    smi_aead_seal(slot_ws(sl), sl->key, cs->nonce, aad, aad_len, data, len, to, tag);
    if (purged_since(cs->epoch)) {
        /*
         * The key is gone: this ciphertext could never be opened, and is not returned.
         * The caller's bytes are given back as they were (sm_enclave_new promises src
         * untouched on error, issue 11 §4.4): a purge that lets the process go on
         * leaves the slot's key alone while this operation is in flight (the teardown
         * waits for it), so decrypting under it, checked against the tag just made,
         * restores them exactly, from to when the seal wiped data. An ending purge may
         * have wiped the key under the cipher: the check then fails and the open wipes
         * the bytes, so neither a ciphertext nor a garbled plaintext is left; the
         * process is ending anyway.
         */
        if (!smi_aead_open(slot_ws(sl), sl->key, cs->nonce, aad, aad_len, to, data, len, tag) &&
            len > 0)
            smi_wipe(data, len);
        smi_wipe(tag, sizeof tag);
        cs->active = false;
        op_leave();
        sm_os_mutex_unlock(&slot_lock[cs->slot]);
        return SM_E_STATE;
    }
    memcpy(nonce_out, cs->nonce, SMI_AEAD_NONCE);
    memcpy(tag_out, tag, sizeof tag);
    next_nonce(cs->nonce);
    cs->seals--;
    return SM_OK;
}

sm_status smi_coffer_session_seal(smi_coffer_session *cs, const void *aad, size_t aad_len,
                                  uint8_t *data, size_t len, uint8_t nonce_out[SMI_AEAD_NONCE],
                                  uint8_t tag_out[SMI_AEAD_TAG])
{
    return session_seal(cs, aad, aad_len, data, len, NULL, nonce_out, tag_out);
}

/* smi_coffer_session_open, the ciphertext copied from from into data first unless NULL. */
static sm_status session_open(smi_coffer_session *cs, const uint8_t nonce[SMI_AEAD_NONCE],
                              const void *aad, size_t aad_len, const uint8_t *from,
                              uint8_t *data, size_t len, const uint8_t tag[SMI_AEAD_TAG])
{
    struct slot *sl = cs->sl;
    bool ok;

    if (!args_ok(aad, aad_len, data, len) || nonce == NULL || tag == NULL)
        return SM_E_INVAL;
    if (!cs->active)
        return SM_E_STATE;
    ok = smi_aead_open(slot_ws(sl), sl->key, nonce, aad, aad_len, from, data, len, tag);
    if (purged_since(cs->epoch)) {
        if (len > 0)
            smi_wipe(data, len);
        cs->active = false;
        op_leave();
        sm_os_mutex_unlock(&slot_lock[cs->slot]);
        return SM_E_STATE;
    }
    return ok ? SM_OK : SM_E_AUTH;
}

sm_status smi_coffer_session_open(smi_coffer_session *cs, const uint8_t nonce[SMI_AEAD_NONCE],
                                  const void *aad, size_t aad_len, uint8_t *data, size_t len,
                                  const uint8_t tag[SMI_AEAD_TAG])
{
    return session_open(cs, nonce, aad, aad_len, NULL, data, len, tag);
}

sm_status smi_coffer_seal_to(const void *aad, size_t aad_len, uint8_t *data, size_t len,
                             uint8_t *to, uint8_t nonce_out[SMI_AEAD_NONCE],
                             uint8_t tag_out[SMI_AEAD_TAG])
{
    smi_coffer_session cs;
    sm_status st;

    if (!args_ok(aad, aad_len, data, len) || nonce_out == NULL || tag_out == NULL)
        return SM_E_INVAL;
    st = smi_coffer_begin(&cs, 1);
    if (st == SM_OK)
        st = session_seal(&cs, aad, aad_len, data, len, to, nonce_out, tag_out);
    smi_coffer_end(&cs);
    return st;
}

sm_status smi_coffer_seal(const void *aad, size_t aad_len, uint8_t *data, size_t len,
                          uint8_t nonce_out[SMI_AEAD_NONCE], uint8_t tag_out[SMI_AEAD_TAG])
{
    return smi_coffer_seal_to(aad, aad_len, data, len, NULL, nonce_out, tag_out);
}

sm_status smi_coffer_open_from(const uint8_t nonce[SMI_AEAD_NONCE], const void *aad,
                               size_t aad_len, const uint8_t *from, uint8_t *data, size_t len,
                               const uint8_t tag[SMI_AEAD_TAG])
{
    smi_coffer_session cs;
    sm_status st;

    if (!args_ok(aad, aad_len, data, len) || nonce == NULL || tag == NULL)
        return SM_E_INVAL;
    st = smi_coffer_begin(&cs, 0);
    if (st == SM_OK)
        st = session_open(&cs, nonce, aad, aad_len, from, data, len, tag);
    smi_coffer_end(&cs);
    /* smi_aead_open wipes on a bad tag; a key that is missing must wipe too. */
    if (st == SM_E_AUTH && len > 0)
        smi_wipe(data, len);
    return st;
}

sm_status smi_coffer_open(const uint8_t nonce[SMI_AEAD_NONCE], const void *aad,
                          size_t aad_len, uint8_t *data, size_t len,
                          const uint8_t tag[SMI_AEAD_TAG])
{
    return smi_coffer_open_from(nonce, aad, aad_len, NULL, data, len, tag);
}

sm_status smi_coffer_audit(void)
{
    sm_status st = SM_OK;

    /*
     * No coffer, no lock (as for an open): the fork handlers that reset coffer_lock in a
     * child are set by the first seal, which publishing needs.
     */
    if (!atomic_load_explicit(&published, memory_order_acquire))
        return SM_OK;
    sm_os_mutex_lock(&coffer_lock);
    op_enter();
    /* In a child that has not made its key yet the canaries read as zeroes, rightly. */
    if (atomic_load_explicit(&published, memory_order_acquire) && head()->keyed == 1) {
        st = open_shares();
        if (st == SM_OK) {
            for (unsigned n = 0; n < NREGIONS; n++)
                smi_region_check(&regions[n]);
            st = close_shares();
        }
    }
    op_leave();
    sm_os_mutex_unlock(&coffer_lock);
    return st;
}

/*
 * Region teardown for purge: no canary check (a panic from inside the purge path would
 * re-enter it), no lock, only the shim's mprotect and munmap and atomic counters. If
 * the region cannot be opened for the wipe it is unmapped all the same.
 */

/* Whoever moves the teardown from pending to running runs it: never two at once. */
static void run_teardown(void)
{
    int want = TEARDOWN_PENDING;

    /*
     * Not while the regions are still published: the purge that claimed the teardown
     * has not withdrawn them yet, and an operation may be entering on them. That purge
     * runs it (or the last operation to leave does), once it has (purge below).
     */
    if (atomic_load(&published))
        return;
    if (!atomic_compare_exchange_strong(&teardown, &want, TEARDOWN_RUNNING))
        return;
    SMI_VG_RECEIVE(&published);
    SMI_VG_RECEIVE(&inflight);
#if defined(SM_FAULT_INJECTION)
    {
        void (*fn)(void) = atomic_load(&during_teardown);

        if (fn != NULL)
            fn();
    }
#endif
    for (unsigned n = 0; n < NREGIONS; n++)
        (void)smi_region_purge(&regions[n]);
    SMI_VG_PUBLISH(&teardown);
    atomic_store(&teardown, TEARDOWN_NONE);
}

static void purge(bool now)
{
    int none = TEARDOWN_NONE;

    /* First, so that an operation still in its cipher sees it when it ends. */
    atomic_fetch_add(&purge_epoch, 1);
    /*
     * Claim the teardown, then withdraw the regions, in this order: a thread that finds
     * published false then always finds the teardown pending, running or done, never
     * a moment in between in which ensure_key could make new regions over the old ones
     * (which the teardown would then unmap under a live key). Two purges cannot both
     * claim it. A teardown claimed by anyone means the regions are withdrawn: any purge
     * may store that, which also covers a purge in a signal handler that interrupted
     * another between its claim and its store.
     */
    if (atomic_load(&published))
        (void)atomic_compare_exchange_strong(&teardown, &none, TEARDOWN_PENDING);
    if (atomic_load(&teardown) != TEARDOWN_NONE)
        atomic_store(&published, false);
    if (now) {
        /*
         * The process ends: give the operations in flight a moment to leave (they hold no
         * lock this could need), then tear down whatever is left, since one of them may
         * be the interrupted thread, which will never leave.
         */
        uint64_t deadline = sm_os_monotonic_ns() + SMI_ENDING_WAIT_NS;

        while (atomic_load(&inflight) != 0 && sm_os_monotonic_ns() < deadline)
            sm_os_yield();
    }
    if (now || atomic_load(&inflight) == 0)
        run_teardown();
}

void smi_coffer_purge(void)
{
    purge(false);
}

void smi_coffer_purge_now(void)
{
    purge(true);
}

#if defined(SM_FAULT_INJECTION)
void smi_coffer_test_probe(smi_coffer_probe *out)
{
    memset(out, 0, sizeof *out);
    sm_os_mutex_lock(&coffer_lock);
    op_enter();
    if (atomic_load(&published)) {
        out->left = &regions[LEFT];
        out->right = &regions[RIGHT];
        out->work = &regions[WORK];
        out->head_len = HEAD_LEN;
        out->keyed = head()->keyed == 1;
        out->views = head()->views;
        out->splits = head()->splits;
    }
    op_leave();
    sm_os_mutex_unlock(&coffer_lock);
}

sm_status smi_coffer_test_peek(uint8_t key[32], uint8_t left[32], uint8_t right[32])
{
    sm_status st = SM_E_STATE;

    sm_os_mutex_lock(&coffer_lock);
    op_enter();
    if (atomic_load(&published) && head()->keyed == 1) {
        st = open_shares();
        if (st == SM_OK) {
            const uint8_t *l = smi_region_data(&regions[LEFT]);
            const uint8_t *r = right_page(&regions[RIGHT])->share;
            br_sha256_context c;
            uint8_t d[32];

            br_sha256_init(&c);
            br_sha256_update(&c, l, 32);
            br_sha256_out(&c, d);
            for (unsigned i = 0; i < 32; i++) {
                if (key != NULL)
                    key[i] = d[i] ^ r[i];
                if (left != NULL)
                    left[i] = l[i];
                if (right != NULL)
                    right[i] = r[i];
            }
            smi_wipe(d, sizeof d);
            smi_wipe(&c, sizeof c);
            smi_burn_stack();
            st = close_shares();
        }
    }
    op_leave();
    sm_os_mutex_unlock(&coffer_lock);
    return st;
}

sm_status smi_coffer_test_set_counter(uint64_t next)
{
    sm_status st = SM_E_STATE;

    sm_os_mutex_lock(&coffer_lock);
    op_enter();
    if (atomic_load(&published) && head()->keyed == 1) {
        st = open_shares();
        if (st == SM_OK) {
            right_page(&regions[RIGHT])->next = next;
            st = close_shares();
        }
    }
    op_leave();
    sm_os_mutex_unlock(&coffer_lock);
    return st;
}

void smi_coffer_test_hold(bool slots, bool held)
{
    for (unsigned i = 0; slots && i < SMI_COFFER_SLOTS; i++) {
        if (held)
            sm_os_mutex_lock(&slot_lock[i]);
        else
            sm_os_mutex_unlock(&slot_lock[i]);
    }
    if (!slots) {
        if (held)
            sm_os_mutex_lock(&coffer_lock);
        else
            sm_os_mutex_unlock(&coffer_lock);
    }
}

void smi_coffer_test_age(uint64_t ns)
{
    sm_os_mutex_lock(&coffer_lock);
    op_enter();
    if (atomic_load(&published))
        head()->split_ns -= ns;
    op_leave();
    sm_os_mutex_unlock(&coffer_lock);
}
#endif
