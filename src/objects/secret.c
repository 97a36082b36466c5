/* SPDX-License-Identifier: ISC */
/*
 * Secrets (securemem/secret.h, spec/secrets.md): the secret layer, which owns handles,
 * access counting and the close protocol, over one storage backend per kind of factory.
 *
 * Locking. Each secret is one registry slot; its mutex guards the descriptor in the
 * slot body and is held only for bookkeeping. Window changes (opening, shutting,
 * destroying: system calls, or a decryption for some factories) run outside it, with
 * `changing` set, so that queries never wait on them and a try can see them (SM_E_BUSY).
 * Everyone who needs the window waits on the slot's condition variable until `changing`
 * is clear; each change ends with a broadcast. Every unlock is smi_registry_release,
 * never a bare sm_os_mutex_unlock: a purge that found the lock held leaves the secret
 * to the holder, who finishes it there (registry.c, unlock_slot); a bare unlock left it
 * counted live, unwiped and mapped for good. The protocol's decisions are the core's
 * smi_sec_decide (spec/secret-states.tsv); this file does what it says.
 *
 * Purge. A purge claims the slot and may wipe its body while a thread is changing the
 * window outside the lock. So a changing thread works on a private copy of what it
 * needs, and when it takes the lock back and finds the id gone, it frees the pages
 * itself (purge leaves pages that are being changed alone). Pages that accesses are
 * reading when a purge comes are wiped in place and stay mapped, since those threads
 * still hold the pointer; the registry keeps the slot for them, and the last one out
 * frees the pages (leave_purged).
 */
#include <string.h>

#include "compact.h"

static const char corrupt_msg[] =
    "canary of a guarded region is damaged: buffer underflow or stray write";

/* ---- storage backends ---- */

/*
 * encrypted: the ciphertext at rest, and the guarded region that holds the plaintext
 * while the window is open (or while it is being filled, before the seal). open says
 * whether that region exists.
 */
typedef struct smi_encstore {
    smi_sealed sealed;
    smi_region open_region;
    bool       open;
} smi_encstore;

typedef union smi_store {
    smi_region   region; /* guarded */
    smi_plain    plain;  /* protected */
    smi_encstore enc;    /* encrypted */
    void        *state;  /* a custom factory's own */
} smi_store;

/* The storage operations the secret layer needs; each factory kind has one table. */
typedef struct backend {
    sm_status (*create)(const sm_factory *f, size_t len, smi_store *st, uint8_t **fill);
    sm_status (*seal)(const sm_factory *f, smi_store *st);
    sm_status (*open)(const sm_factory *f, smi_store *st, const uint8_t **bytes);
    sm_status (*shut)(const sm_factory *f, smi_store *st);
    sm_status (*destroy)(const sm_factory *f, smi_store *st);
    /* The rollback of a store that was never published. */
    void (*unmake)(const sm_factory *f, smi_store *st);
    /* smi_kind_ops' purge and wipe: in_use keeps the pages mapped and readable. False
       when a damaged canary was found. */
    bool (*purge)(const sm_factory *f, smi_store *st, bool in_use);
    sm_status (*audit)(const sm_factory *f, smi_store *st);
    void (*forget)(const sm_factory *f, smi_store *st);
    /* destroy for a secret that a purge took: NULL when that is destroy itself. */
    sm_status (*retire)(const sm_factory *f, smi_store *st);
} backend;

/* Free the pages of a purged secret: never into a pool, which the purge has emptied. */
static sm_status retire(const backend *be, const sm_factory *f, smi_store *st)
{
    return (be->retire != NULL ? be->retire : be->destroy)(f, st);
}

/*
 * guarded: a guarded region, NONE at rest, READ while accessed. A one-page region comes
 * from the region pool and goes back to it (pool.c): the factory's speed (issue 14 §3).
 */

static sm_status region_create(const sm_factory *f, size_t len, smi_store *st, uint8_t **fill)
{
    sm_status r = smi_pool_take(len, &st->region);

    (void)f;
    if (r == SM_OK)
        *fill = smi_region_data(&st->region);
    return r;
}

static sm_status region_seal(const sm_factory *f, smi_store *st)
{
    (void)f;
    return smi_region_protect(&st->region, SM_PROT_NONE);
}

static sm_status region_open(const sm_factory *f, smi_store *st, const uint8_t **bytes)
{
    sm_status r = smi_region_protect(&st->region, SM_PROT_READ);

    (void)f;
    if (r == SM_OK)
        *bytes = smi_region_data(&st->region);
    return r;
}

static sm_status region_destroy(const sm_factory *f, smi_store *st)
{
    (void)f;
    return smi_pool_give(&st->region);
}

static sm_status region_retire(const sm_factory *f, smi_store *st)
{
    (void)f;
    return smi_region_free(&st->region);
}

static void region_unmake(const sm_factory *f, smi_store *st)
{
    (void)f;
    smi_pool_unmake(&st->region);
}

static bool region_purge(const sm_factory *f, smi_store *st, bool in_use)
{
    (void)f;
    if (!in_use)
        return smi_region_purge(&st->region);
    smi_region_wipe_in_place(&st->region);
    return true;
}

static sm_status region_audit(const sm_factory *f, smi_store *st)
{
    (void)f;
    return smi_region_audit(&st->region);
}

static void region_forget(const sm_factory *f, smi_store *st)
{
    (void)f;
    smi_region_forget(&st->region);
}

static const backend region_backend = {
    region_create, region_seal, region_open, region_seal, region_destroy,
    region_unmake, region_purge, region_audit, region_forget, region_retire,
};

/*
 * protected: a plain locked mapping (plain.c), NONE at rest, READ while accessed. It
 * comes from the pool and goes back to it, as a guarded secret's region does (pool.c).
 */

static sm_status plain_create(const sm_factory *f, size_t len, smi_store *st, uint8_t **fill)
{
    sm_status r = smi_pool_take_plain(len, &st->plain);

    (void)f;
    if (r == SM_OK)
        *fill = st->plain.base;
    return r;
}

static sm_status plain_seal(const sm_factory *f, smi_store *st)
{
    (void)f;
    return smi_plain_protect(&st->plain, SM_PROT_NONE);
}

static sm_status plain_open(const sm_factory *f, smi_store *st, const uint8_t **bytes)
{
    sm_status r = smi_plain_protect(&st->plain, SM_PROT_READ);

    (void)f;
    if (r == SM_OK)
        *bytes = st->plain.base;
    return r;
}

static sm_status plain_destroy(const sm_factory *f, smi_store *st)
{
    (void)f;
    return smi_pool_give_plain(&st->plain);
}

static sm_status plain_retire(const sm_factory *f, smi_store *st)
{
    (void)f;
    return smi_plain_free(&st->plain);
}

static void plain_unmake(const sm_factory *f, smi_store *st)
{
    (void)f;
    smi_pool_unmake_plain(&st->plain);
}

static bool plain_purge(const sm_factory *f, smi_store *st, bool in_use)
{
    (void)f;
    if (!in_use)
        return smi_plain_purge(&st->plain);
    smi_plain_wipe_in_place(&st->plain);
    return true;
}

/* No canary: nothing to audit. */
static sm_status plain_audit(const sm_factory *f, smi_store *st)
{
    (void)f;
    (void)st;
    return SM_OK;
}

static void plain_forget(const sm_factory *f, smi_store *st)
{
    (void)f;
    smi_plain_forget(&st->plain);
}

static const backend plain_backend = {
    plain_create, plain_seal, plain_open, plain_seal, plain_destroy,
    plain_unmake, plain_purge, plain_audit, plain_forget, plain_retire,
};

/*
 * encrypted: an enclave at rest (a sealed blob, enclave.c), opened by the first access
 * into a guarded region made READ, and destroyed by the last. Each such window is a
 * guarded region made, and counts in allocations_total; the ciphertext is ordinary
 * memory, not locked.
 */

static sm_status enc_create(const sm_factory *f, size_t len, smi_store *st, uint8_t **fill)
{
    sm_status r = smi_region_alloc(len, NULL, &st->enc.open_region);

    (void)f;
    if (r != SM_OK)
        return r;
    st->enc.open = true;
    st->enc.sealed.map = NULL;
    *fill = smi_region_data(&st->enc.open_region);
    return SM_OK;
}

/* The fill is sealed where it is, in its guarded region, which then goes. */
static sm_status enc_seal(const sm_factory *f, smi_store *st)
{
    smi_region *r = &st->enc.open_region;
    sm_status rc = smi_sealed_seal(smi_region_data(r), r->size, &st->enc.sealed);

    (void)f;
    if (rc != SM_OK)
        return rc;
    rc = smi_region_free(r);
    if (rc != SM_OK) {
        /* Keep one copy: the region, which destroy will free; not also the ciphertext. */
        (void)smi_sealed_free(&st->enc.sealed);
        st->enc.sealed.map = NULL;
        return rc;
    }
    st->enc.open = false;
    return SM_OK;
}

static sm_status enc_open(const sm_factory *f, smi_store *st, const uint8_t **bytes)
{
    smi_region *r = &st->enc.open_region;
    sm_status rc = smi_region_alloc(st->enc.sealed.size, NULL, r);

    (void)f;
    if (rc != SM_OK)
        return rc;
    rc = smi_sealed_open(&st->enc.sealed, r);
    if (rc == SM_OK)
        rc = smi_region_protect(r, SM_PROT_READ);
    if (rc != SM_OK) {
        smi_region_unmake(r);
        return rc;
    }
    st->enc.open = true;
    *bytes = smi_region_data(r);
    return SM_OK;
}

static sm_status enc_shut(const sm_factory *f, smi_store *st)
{
    sm_status rc;

    (void)f;
    rc = smi_region_free(&st->enc.open_region);
    if (rc == SM_OK) {
        st->enc.open = false;
        return SM_OK;
    }
    /*
     * The window stays open (secret.h). If the free got as far as the wipe (the pages
     * were opened read-write), the window must hold the bytes again for the accesses
     * that join it; if it could not open them, they are intact and still read-only.
     */
    if (st->enc.open_region.prot == SM_PROT_READWRITE &&
        smi_sealed_open(&st->enc.sealed, &st->enc.open_region) == SM_OK)
        (void)smi_region_protect(&st->enc.open_region, SM_PROT_READ);
    return rc;
}

static sm_status enc_destroy(const sm_factory *f, smi_store *st)
{
    if (st->enc.open) {
        sm_status rc = enc_shut(f, st);

        if (rc != SM_OK)
            return rc;
    }
    if (st->enc.sealed.map != NULL) {
        sm_status rc = smi_sealed_free(&st->enc.sealed);

        if (rc != SM_OK)
            return rc;
        st->enc.sealed.map = NULL;
    }
    return SM_OK;
}

/*
 * The rollback of a secret never published: its fill region is taken back too, also
 * when the seal already freed it (a failure after the seal: sm_secret_from_buffer's).
 */
static void enc_unmake(const sm_factory *f, smi_store *st)
{
    (void)f;
    if (st->enc.open)
        smi_region_unmake(&st->enc.open_region);
    else
        atomic_fetch_sub(&smi_stat_allocations, 1);
    if (st->enc.sealed.map != NULL)
        (void)smi_sealed_free(&st->enc.sealed);
}

static bool enc_purge(const sm_factory *f, smi_store *st, bool in_use)
{
    bool intact = true;

    (void)f;
    if (in_use) {
        if (st->enc.open)
            smi_region_wipe_in_place(&st->enc.open_region);
        return true;
    }
    if (st->enc.open)
        intact = smi_region_purge(&st->enc.open_region);
    if (st->enc.sealed.map != NULL)
        (void)smi_sealed_free(&st->enc.sealed);
    return intact;
}

static sm_status enc_audit(const sm_factory *f, smi_store *st)
{
    (void)f;
    return st->enc.open ? smi_region_audit(&st->enc.open_region) : SM_OK;
}

static void enc_forget(const sm_factory *f, smi_store *st)
{
    (void)f;
    if (st->enc.open)
        smi_region_forget(&st->enc.open_region);
    if (st->enc.sealed.map != NULL)
        (void)smi_sealed_free(&st->enc.sealed);
}

static const backend enc_backend = {
    enc_create, enc_seal, enc_open, enc_shut, enc_destroy,
    enc_unmake, enc_purge, enc_audit, enc_forget, NULL,
};

/* custom: the user's table (securemem/secret.h), called as documented there. */

/*
 * A hook that returns SM_OK with no pointer (create's fill, make_readable's bytes) has
 * not done its job: it is taken as the factory's failure, SM_E_INVAL, and undone here,
 * where a NULL would otherwise be written through or handed to the caller (SM-REQ-099).
 */
static sm_status custom_create(const sm_factory *f, size_t len, smi_store *st, uint8_t **fill)
{
    sm_status r = f->create(f->ctx, len, &st->state, fill);

    if (r == SM_OK && *fill == NULL) {
        (void)f->destroy(f->ctx, st->state);
        r = SM_E_INVAL;
    }
    return r;
}

static sm_status custom_seal(const sm_factory *f, smi_store *st)
{
    return f->seal(f->ctx, st->state);
}

static sm_status custom_open(const sm_factory *f, smi_store *st, const uint8_t **bytes)
{
    sm_status r = f->make_readable(f->ctx, st->state, bytes);

    if (r == SM_OK && *bytes == NULL) {
        /* At rest again, as after any failed open; a refusal here is the factory's. */
        (void)f->make_unreadable(f->ctx, st->state);
        r = SM_E_INVAL;
    }
    return r;
}

static sm_status custom_shut(const sm_factory *f, smi_store *st)
{
    return f->make_unreadable(f->ctx, st->state);
}

static sm_status custom_destroy(const sm_factory *f, smi_store *st)
{
    return f->destroy(f->ctx, st->state);
}

/* A rollback cannot fail on top of the first failure; a refusal here is the factory's leak. */
static void custom_unmake(const sm_factory *f, smi_store *st)
{
    (void)f->destroy(f->ctx, st->state);
}

static bool custom_purge(const sm_factory *f, smi_store *st, bool in_use)
{
    if (f->purge != NULL)
        f->purge(f->ctx, st->state, in_use);
    return true;
}

/* The library knows nothing of a custom factory's storage: no canary, no mapping. */
static sm_status custom_audit(const sm_factory *f, smi_store *st)
{
    (void)f;
    (void)st;
    return SM_OK;
}

static void custom_forget(const sm_factory *f, smi_store *st)
{
    (void)f;
    (void)st;
}

static const backend custom_backend = {
    custom_create, custom_seal, custom_open, custom_shut, custom_destroy,
    custom_unmake, custom_purge, custom_audit, custom_forget, NULL,
};

/* ---- the library's factories ---- */

/*
 * The built-in tables are told apart by address, and their hooks are never called: the
 * secret layer goes straight to their backend, so that their storage descriptors live in
 * the slot body instead of behind a state pointer that would need allocating. The ctx
 * values only keep the three tables distinct objects.
 */
static const sm_factory protected_factory = { .version = SM_FACTORY_VERSION, .ctx = "protected" };
static const sm_factory guarded_factory = { .version = SM_FACTORY_VERSION, .ctx = "guarded" };

static const sm_factory encrypted_factory = { .version = SM_FACTORY_VERSION, .ctx = "encrypted" };

const sm_factory *sm_factory_protected(void)
{
    return &protected_factory;
}

const sm_factory *sm_factory_guarded(void)
{
    return &guarded_factory;
}

const sm_factory *sm_factory_encrypted(void)
{
    return &encrypted_factory;
}

static const backend *backend_of(const sm_factory *f)
{
    if (f == &protected_factory)
        return &plain_backend;
    if (f == &guarded_factory)
        return &region_backend;
    if (f == &encrypted_factory)
        return &enc_backend;
    return &custom_backend;
}

static bool factory_ok(const sm_factory *f)
{
    if (f == &protected_factory || f == &guarded_factory || f == &encrypted_factory ||
        f == sm_factory_compact())
        return true;
    return f->version == SM_FACTORY_VERSION && f->create != NULL && f->seal != NULL &&
           f->make_readable != NULL && f->make_unreadable != NULL && f->destroy != NULL;
}

/* ---- the secret descriptor, in the slot body ---- */

typedef struct smi_secret {
    const sm_factory *f;
    const uint8_t    *window;   /* the readable bytes, while readable */
    size_t            size;
    uint32_t          readers;  /* bounded by the threads' stack frames, far below 2^32 */
    bool              closing;
    bool              changing;
    bool              readable;
    smi_store         store;
} smi_secret;

_Static_assert(sizeof(smi_secret) <= SMI_SLOT_BODY, "a secret descriptor fits in its slot");

/*
 * This kind's part in the registry's walks, registered before each publication
 * (smi_registry_kind): the registry sits below this module and never names it. Only a
 * secret's pages are read outside its lock (by accesses): in_use.
 */
static const smi_kind_ops kind_ops = { smi_secret_purge, smi_secret_wipe, smi_secret_audit,
                                       smi_secret_forget, smi_secret_in_use };

/* Sizes of 2^62 and more are refused (spec/api.md); SIZE_MAX >> 2 is 2^62 - 1 on 64-bit. */
#define SECRET_MAX (SIZE_MAX >> 2)

static smi_secret *secret_of(smi_slot *s)
{
    return (smi_secret *)(void *)s->body;
}

static smi_sec_action decide(const smi_secret *b, smi_sec_op op)
{
    smi_sec_view v = { b->readers, b->closing, b->changing, b->readable };

    return smi_sec_decide(&v, op);
}

/* Whether the slot no longer holds the secret id (closed, purged); its lock is held. */
static bool gone(smi_slot *s, uint64_t id)
{
    return atomic_load_explicit(&s->id, memory_order_acquire) != id;
}

/*
 * Per-thread stacks of secret ids, innermost last. Deeper nesting than TRACKED is counted
 * but not recorded, so a pop always matches its push.
 */
#define TRACKED 16u
typedef struct id_stack {
    uint64_t ids[TRACKED];
    unsigned depth;
} id_stack;

static void id_push(id_stack *st, uint64_t id)
{
    if (st->depth < TRACKED)
        st->ids[st->depth] = id;
    st->depth++;
}

static bool id_on(const id_stack *st, uint64_t id)
{
    unsigned n = st->depth < TRACKED ? st->depth : TRACKED;

    for (unsigned i = 0; i < n; i++)
        if (st->ids[i] == id)
            return true;
    return false;
}

/*
 * held: the calling thread's accesses in flight, so that a close from inside one of them
 * is refused instead of waiting for itself for ever.
 * changing: the secrets whose window this thread is changing, that is whose hook
 * (make_readable, make_unreadable, destroy) runs on this thread right now. A hook that
 * calls back into its own secret would wait for the change that this very thread is
 * making, for ever: it gets SM_E_STATE instead (SM-REQ-099).
 */
static _Thread_local id_stack held, changing;

/* ---- window changes, outside the lock ---- */

/* What a change works on: a copy, since a purge may wipe the slot body meanwhile. */
typedef struct change {
    const sm_factory *f;
    const backend    *be;
    smi_store         store;
} change;

/* Mark the secret changing, copy what the change needs, and drop the lock. */
static void change_begin(smi_slot *s, smi_secret *b, change *c)
{
    b->changing = true;
    c->f = b->f;
    c->be = backend_of(b->f);
    c->store = b->store;
    id_push(&changing, atomic_load_explicit(&s->id, memory_order_relaxed));
    smi_registry_release(s);
}

/*
 * Take the lock back and publish the change, waking every waiter. False if the secret
 * was purged meanwhile: the purge left these pages alone, so they are freed here
 * (unless pages_left is false: a destroy that succeeded), and the lock is dropped.
 * This is an ordinary thread, not a signal handler: destroy, which every factory has,
 * rather than purge, which a custom one may lack; purge only if destroy refuses.
 */
static bool change_end(smi_slot *s, uint64_t id, change *c, bool pages_left)
{
    bool live;

    changing.depth--;
    sm_os_mutex_lock(&s->lock);
    live = !gone(s, id);
    if (live) {
        smi_secret *b = secret_of(s);

        b->changing = false;
        b->store = c->store;
    } else if (pages_left && retire(c->be, c->f, &c->store) != SM_OK &&
               !c->be->purge(c->f, &c->store, false)) {
        smi_panic(corrupt_msg);
    }
    smi_wipe(c, sizeof *c);
    sm_os_cond_broadcast(&s->cond);
    if (!live)
        smi_registry_release(s);
    return live;
}

/* ---- accesses ---- */

/*
 * Enter an access, with the slot locked; the lock is dropped on return. On success
 * *bytes and *size are the open window.
 */
static sm_status enter(smi_slot *s, uint64_t id, bool try, const uint8_t **bytes, size_t *size)
{
    smi_secret *b = secret_of(s);
    const uint8_t *w = NULL;
    change c;
    sm_status st;

    for (;;) {
        switch (decide(b, try ? SMI_SOP_TRY_ACCESS : SMI_SOP_ACCESS)) {
        case SMI_SACT_JOIN:
            b->readers++;
            goto in;
        case SMI_SACT_OPEN:
            goto open;
        case SMI_SACT_WAIT:
            sm_os_cond_wait(&s->cond, &s->lock);
            /* Closed, purged, or even reused for another object meanwhile. */
            if (gone(s, id)) {
                smi_registry_release(s);
                return SM_E_STATE;
            }
            continue;
        case SMI_SACT_BUSY:
            smi_registry_release(s);
            return SM_E_BUSY;
        default:
            smi_registry_release(s);
            return SM_E_STATE;
        }
    }
open:
    /* Counted before the window is open, so that a close waits for this access too. */
    b->readers = 1;
    change_begin(s, b, &c);
    /* A try opening an encrypted window only tries the enclave key's locks (SM-REQ-094). */
    if (try && c.be == &enc_backend)
        smi_coffer_try_only(true);
    st = c.be->open(c.f, &c.store, &w);
    if (try && c.be == &enc_backend)
        smi_coffer_try_only(false);
    if (!change_end(s, id, &c, true))
        return SM_E_STATE;
    if (st != SM_OK) {
        b->readers = 0;
        smi_registry_release(s);
        return st;
    }
    b->window = w;
    b->readable = true;
in:
    *bytes = b->window;
    *size = b->size;
    smi_registry_release(s);
    id_push(&held, id);
    return SM_OK;
}

/*
 * Leave an access during which a purge came: the purge wiped the window in place and
 * left it mapped for the readers, and kept the slot for them (smi_slot.lingering). The
 * last one out frees the pages, as change_end does (destroy, then purge if destroy
 * refuses), and gives the slot back (issue 11 §4.5: the window stayed mapped and
 * locked for good). The lock is held; the work is done under it, since the secret is
 * gone and nobody but its last readers can reach the slot.
 */
static sm_status leave_purged(smi_slot *s, smi_secret *b)
{
    const backend *be = backend_of(b->f);

    if (--b->readers > 0) {
        sm_os_cond_broadcast(&s->cond);
        smi_registry_release(s);
        return SM_OK;
    }
    if (retire(be, b->f, &b->store) != SM_OK && !be->purge(b->f, &b->store, false))
        smi_panic(corrupt_msg);
    smi_registry_drop(s);
    return SM_OK;
}

/* Leave an access; the last one out shuts the window. The status of the shut. */
static sm_status leave(smi_slot *s, uint64_t id)
{
    smi_secret *b = secret_of(s);
    change c;
    sm_status st;

    held.depth--;
    sm_os_mutex_lock(&s->lock);
    if (gone(s, id)) {
        if (s->lingering == id)
            return leave_purged(s, b);
        /*
         * Claimed by a purge that this lock's holder is to finish, perhaps this thread
         * as it lets go: count this reader out first, or the finish keeps the window
         * for a reader that has left, and nobody ever frees it.
         */
        if (smi_registry_claimed(s, id))
            b->readers--;
        sm_os_cond_broadcast(&s->cond);
        smi_registry_release(s);
        return SM_OK;
    }
    switch (decide(b, SMI_SOP_LEAVE)) {
    case SMI_SACT_DEPART:
        b->readers--;
        smi_registry_release(s);
        return SM_OK;
    case SMI_SACT_SHUT:
        break;
    default:
        smi_panic("secret descriptor damaged: an access left a secret with no reader");
    }
    b->readers = 0;
    change_begin(s, b, &c);
    st = c.be->shut(c.f, &c.store);
    if (!change_end(s, id, &c, true))
        return SM_OK;
    /* A failed shut leaves the window open; the next last reader out tries again. */
    if (st == SM_OK) {
        b->readable = false;
        b->window = NULL;
    }
    smi_registry_release(s);
    return st;
}

static sm_status run_access(sm_secret sec, sm_bytes_fn fn, void *ctx, bool try)
{
    const uint8_t *bytes;
    size_t size;
    smi_slot *s;
    sm_status st, r;

    if (smi_compact_handle(sec.id))
        return smi_compact_access(sec.id, fn, ctx, try);
    if (fn == NULL)
        return SM_E_INVAL;
    /* A try gets SM_E_BUSY from the table's WINDOW-CHANGING cell: it does not wait. */
    if (!try && id_on(&changing, sec.id))
        return SM_E_STATE;
    st = try ? smi_registry_try_acquire(sec.id, SMI_KIND_SECRET, &s)
             : smi_registry_acquire(sec.id, SMI_KIND_SECRET, &s);
    if (st != SM_OK)
        return st;
    st = enter(s, sec.id, try, &bytes, &size);
    if (st != SM_OK)
        return st;
    r = fn(bytes, size, ctx);
    st = leave(s, sec.id);
    return r != SM_OK ? r : st;
}

sm_status sm_secret_with_bytes(sm_secret s, sm_bytes_fn fn, void *ctx)
{
    return run_access(s, fn, ctx, false);
}

sm_status sm_secret_try_with_bytes(sm_secret s, sm_bytes_fn fn, void *ctx)
{
    return run_access(s, fn, ctx, true);
}

sm_status sm_secret_read_at(sm_secret sec, size_t off, void *dst, size_t n, size_t *got)
{
    const uint8_t *bytes;
    smi_slot *s;
    smi_secret *b;
    size_t size, k;
    sm_status st;

    if (smi_compact_handle(sec.id))
        return smi_compact_read_at(sec.id, off, dst, n, got);
    if (got == NULL || (dst == NULL && n > 0))
        return SM_E_INVAL;
    if (id_on(&changing, sec.id))
        return SM_E_STATE;
    st = smi_registry_acquire(sec.id, SMI_KIND_SECRET, &s);
    if (st != SM_OK)
        return st;
    b = secret_of(s);
    if (decide(b, SMI_SOP_QUERY) == SMI_SACT_REFUSE) {
        smi_registry_release(s);
        return SM_E_STATE;
    }
    if (off > b->size) {
        smi_registry_release(s);
        return SM_E_INVAL;
    }
    k = n < b->size - off ? n : b->size - off;
    if (k == 0) {
        /* Nothing to copy: no reason to open the window. */
        smi_registry_release(s);
        *got = 0;
        return SM_OK;
    }
    st = enter(s, sec.id, false, &bytes, &size);
    if (st != SM_OK)
        return st;
    memcpy(dst, bytes + off, k);
    st = leave(s, sec.id);
    if (st != SM_OK) {
        smi_wipe(dst, k);
        return st;
    }
    *got = k;
    return SM_OK;
}

/* ---- queries ---- */

size_t sm_secret_size(sm_secret sec)
{
    smi_slot *s;
    size_t n = 0;

    if (smi_compact_handle(sec.id))
        return smi_compact_size(sec.id);
    if (smi_registry_acquire(sec.id, SMI_KIND_SECRET, &s) != SM_OK)
        return 0;
    if (decide(secret_of(s), SMI_SOP_QUERY) == SMI_SACT_ANSWER)
        n = secret_of(s)->size;
    smi_registry_release(s);
    return n;
}

bool sm_secret_is_closed(sm_secret sec)
{
    smi_slot *s;
    bool closed;

    if (smi_compact_handle(sec.id))
        return smi_compact_is_closed(sec.id);
    if (smi_registry_acquire(sec.id, SMI_KIND_SECRET, &s) != SM_OK)
        return true;
    closed = decide(secret_of(s), SMI_SOP_QUERY) == SMI_SACT_REFUSE;
    smi_registry_release(s);
    return closed;
}

smi_sec_state smi_secret_state(uint64_t id)
{
    smi_slot *s;
    smi_sec_state state;

    if (smi_compact_handle(id))
        return smi_compact_state(id);
    if (smi_registry_acquire(id, SMI_KIND_SECRET, &s) != SM_OK)
        return SMI_SEC_CLOSED;
    {
        const smi_secret *b = secret_of(s);
        smi_sec_view v = { b->readers, b->closing, b->changing, b->readable };

        state = smi_sec_state_of(&v);
    }
    smi_registry_release(s);
    return state;
}

/* ---- life cycle ---- */

/* make()'s fill step, for every factory: src's bytes, or random ones (ctx NULL). */
static sm_status fill_from(uint8_t *fill, size_t len, void *ctx)
{
    sm_status st;

    if (ctx == NULL)
        return smi_rng_fill(fill, len);
    /* Ask before copying: the wipe of a read-only src (a FROZEN buffer's data) would fault. */
    st = sm_os_writable(ctx, len);
    if (st == SM_OK)
        memcpy(fill, ctx, len);
    return st;
}

/* A compact secret: its handle names its slab slot, not a registry slot (compact.c). */
static sm_status compact_make(size_t len, smi_compact_fill fill, void *ctx,
                              sm_status (*commit)(void *ctx), sm_secret *out)
{
    uint64_t id = 0;
    sm_status st = smi_compact_make(len, fill, ctx, commit, &id);

    if (st == SM_OK)
        out->id = id;
    return st;
}

/* Make a secret from the bytes at src, or random bytes when src is NULL. */
static sm_status make(const sm_factory *f, const void *src, size_t len, sm_secret *out)
{
    smi_secret b = { 0 };
    uint8_t *fill = NULL;
    const backend *be;
    uint64_t id = 0;
    sm_status st;

    if (f == NULL || out == NULL || len == 0 || len > SECRET_MAX || !factory_ok(f))
        return SM_E_INVAL;
    if (f == sm_factory_compact())
        return compact_make(len, fill_from, (void *)(uintptr_t)src, NULL, out);
    st = smi_runtime_ready();
    if (st != SM_OK)
        return st;
    be = backend_of(f);
    st = be->create(f, len, &b.store, &fill);
    if (st != SM_OK)
        return st;
    st = fill_from(fill, len, (void *)(uintptr_t)src);
    if (st == SM_OK)
        st = be->seal(f, &b.store);
    if (st == SM_OK) {
        b.f = f;
        b.size = len;
        smi_registry_kind(SMI_KIND_SECRET, &kind_ops);
        st = smi_registry_insert(SMI_KIND_SECRET, &b, sizeof b, &id);
    }
    if (st != SM_OK)
        be->unmake(f, &b.store);
    smi_wipe(&b, sizeof b);
    if (st == SM_OK)
        out->id = id;
    return st;
}

sm_status sm_secret_new(const sm_factory *f, void *src, size_t len, sm_secret *out)
{
    sm_status st;

    if (src == NULL)
        return SM_E_INVAL;
    st = make(f, src, len, out);
    if (st == SM_OK)
        smi_wipe(src, len);
    return st;
}

sm_status sm_secret_random(const sm_factory *f, size_t len, sm_secret *out)
{
    return make(f, NULL, len, out);
}

#if defined(SM_FAULT_INJECTION)
static void (*_Atomic in_close)(void);

void smi_secret_test_in_close(void (*fn)(void))
{
    atomic_store(&in_close, fn);
}
#endif

sm_status sm_secret_close(sm_secret sec)
{
    smi_slot *s;
    smi_secret *b;
    change c;
    sm_status st;

    if (smi_compact_handle(sec.id))
        return smi_compact_close(sec.id);
    if (id_on(&held, sec.id) || id_on(&changing, sec.id))
        return SM_E_STATE;
    st = smi_registry_acquire(sec.id, SMI_KIND_SECRET, &s);
    if (st != SM_OK)
        return st;
    b = secret_of(s);
    if (decide(b, SMI_SOP_CLOSE) == SMI_SACT_REFUSE) {
        smi_registry_release(s);
        return SM_E_STATE;
    }
    /* From here on new operations are refused; the ones in flight finish. */
    b->closing = true;
    while (decide(b, SMI_SOP_CLOSE_WAIT) == SMI_SACT_WAIT) {
        sm_os_cond_wait(&s->cond, &s->lock);
        if (gone(s, sec.id)) {
            /* Purged meanwhile: the purge wiped the bytes. */
            smi_registry_release(s);
            return SM_OK;
        }
    }
    change_begin(s, b, &c);
    st = c.be->destroy(c.f, &c.store);
#if defined(SM_FAULT_INJECTION)
    {
        /* The pages are pooled or unmapped, the slot unlocked and not yet removed. */
        void (*fn)(void) = atomic_load(&in_close);

        if (fn != NULL)
            fn();
    }
#endif
    if (!change_end(s, sec.id, &c, st != SM_OK))
        return SM_OK;
    if (st != SM_OK) {
        /* Open again, as after a failed sm_buffer_destroy: the close can be retried. */
        b->closing = false;
        smi_registry_release(s);
        return st;
    }
    smi_registry_remove(s);
    return SM_OK;
}

/* ---- the registry's walks (smi_kind_ops) ---- */

/*
 * Pages that another thread is changing belong to that thread until it takes the lock
 * back, finds the id gone and frees them from its copy (change_end): touching them here
 * could fault against its mprotect.
 */
bool smi_secret_purge(void *body)
{
    smi_secret *b = body;

    if (b->changing)
        return true;
    return backend_of(b->f)->purge(b->f, &b->store, b->readers > 0);
}

/* Another thread holds the lock: wipe in place only, it may be about to read. */
void smi_secret_wipe(void *body)
{
    smi_secret *b = body;

    if (!b->changing)
        (void)backend_of(b->f)->purge(b->f, &b->store, true);
}

sm_status smi_secret_audit(void *body)
{
    smi_secret *b = body;

    return b->changing ? SM_OK : backend_of(b->f)->audit(b->f, &b->store);
}

/* Readers are inside and no change is running: purge wiped their window in place. */
bool smi_secret_in_use(const void *body)
{
    const smi_secret *b = body;

    return b->readers > 0 && !b->changing;
}

void smi_secret_forget(void *body)
{
    smi_secret *b = body;

    backend_of(b->f)->forget(b->f, &b->store);
}

/* ---- secrets filled in place: from a buffer, from an fd, by a callback ---- */

/*
 * make() for a fill that comes from a function, in steps that let sm_secret_from_buffer
 * consume its buffer between the seal and the publication: the slot is reserved first,
 * since publishing cannot fail, and commit (NULL: none) runs last before it. A failed
 * step unmakes the storage, which wipes what the fill wrote.
 */
typedef sm_status (*make_step)(uint8_t *fill, size_t len, void *ctx);

static sm_status make_filled(const sm_factory *f, size_t len, make_step fill_fn, void *ctx,
                             sm_status (*commit)(void *ctx), sm_secret *out)
{
    smi_secret b = { 0 };
    uint8_t *fill = NULL;
    const backend *be;
    uint32_t index, forks;
    sm_status st;

    if (f == NULL || out == NULL || len == 0 || len > SECRET_MAX || !factory_ok(f))
        return SM_E_INVAL;
    if (f == sm_factory_compact())
        return compact_make(len, fill_fn, ctx, commit, out);
    st = smi_runtime_ready();
    if (st != SM_OK)
        return st;
    forks = smi_registry_forks();
    st = smi_registry_reserve(&index);
    if (st != SM_OK)
        return st;
    be = backend_of(f);
    st = be->create(f, len, &b.store, &fill);
    if (st != SM_OK) {
        smi_registry_unreserve(index);
        return st;
    }
    st = fill_fn(fill, len, ctx);
    if (st == SM_OK && smi_registry_forks() == forks)
        st = be->seal(f, &b.store);
    if (smi_registry_forks() != forks) {
        /*
         * The fill (or a custom factory's seal) forked, and this is the child: the fork
         * wiped the storage or left it out, and the child handler gave the slot back.
         * Forgotten as the parent's secrets were; nothing is made (compact.c alike).
         */
        be->forget(f, &b.store);
        smi_wipe(&b, sizeof b);
        return st != SM_OK ? st : SM_E_STATE;
    }
    if (st == SM_OK && commit != NULL)
        st = commit(ctx);
    if (st != SM_OK) {
        be->unmake(f, &b.store);
        smi_registry_unreserve(index);
    } else {
        b.f = f;
        b.size = len;
        smi_registry_kind(SMI_KIND_SECRET, &kind_ops);
        out->id = smi_registry_publish(index, SMI_KIND_SECRET, &b, sizeof b);
    }
    smi_wipe(&b, sizeof b);
    return st;
}

/* The buffer being consumed, its slot locked for the whole call. */
typedef struct consume {
    smi_slot   *slot;
    smi_buffer *buf;
} consume;

static sm_status copy_buffer(uint8_t *fill, size_t len, void *ctx)
{
    memcpy(fill, smi_region_data(&((consume *)ctx)->buf->r), len);
    return SM_OK;
}

/* Wipe and unmap the buffer's pages, as sm_buffer_destroy does (canary checked). */
static sm_status free_buffer(void *ctx)
{
    return smi_region_free(&((consume *)ctx)->buf->r);
}

sm_status sm_secret_from_buffer(const sm_factory *f, sm_buffer b, sm_secret *out)
{
    consume c;
    smi_buf_state next;
    sm_status st;

    if (f == NULL || out == NULL || !factory_ok(f))
        return SM_E_INVAL;
    st = smi_buffer_acquire(b, SMI_BOP_DESTROY, &c.slot, &c.buf, &next);
    if (st != SM_OK)
        return st;
    st = make_filled(f, c.buf->r.size, copy_buffer, &c, free_buffer, out);
    if (st != SM_OK) {
        smi_registry_release(c.slot);
        return st;
    }
    smi_registry_remove(c.slot);
    return SM_OK;
}

/* Exactly len bytes from the fd, straight into the secret's storage. */
static sm_status read_fd(uint8_t *fill, size_t len, void *ctx)
{
    int fd = *(const int *)ctx;
    size_t have = 0;

    while (have < len) {
        size_t got = 0;
        sm_status st = sm_os_read(fd, fill + have, len - have, &got);

        if (st != SM_OK)
            return st;
        if (got == 0) {
            /* Ended early: SM_E_IO as for sm_buffer_from_fd, with no OS error behind it. */
            sm_os_set_last_error(0);
            return SM_E_IO;
        }
        have += got;
    }
    return SM_OK;
}

sm_status sm_secret_from_fd(const sm_factory *f, int fd, size_t len, sm_secret *out)
{
    return make_filled(f, len, read_fd, &fd, NULL, out);
}

/* The caller's function and context, for make_filled's step. */
typedef struct fill_call {
    sm_fill_fn fn;
    void      *ctx;
} fill_call;

static sm_status call_fill(uint8_t *fill, size_t len, void *ctx)
{
    const fill_call *c = ctx;

    return c->fn(fill, len, c->ctx);
}

sm_status sm_secret_from_callback(const sm_factory *f, size_t len, sm_fill_fn fn, void *ctx,
                                  sm_secret *out)
{
    fill_call c = { fn, ctx };

    if (fn == NULL)
        return SM_E_INVAL;
    return make_filled(f, len, call_fill, &c, NULL, out);
}

#if defined(SM_FAULT_INJECTION)
sm_status smi_secret_test_swap_sealed(sm_secret a, sm_secret b)
{
    smi_slot *sa, *sb;
    smi_secret *x, *y;
    sm_status st;

    if (a.id == b.id)
        return SM_E_INVAL;
    st = smi_registry_acquire(a.id, SMI_KIND_SECRET, &sa);
    if (st != SM_OK)
        return st;
    st = smi_registry_acquire(b.id, SMI_KIND_SECRET, &sb);
    if (st == SM_OK) {
        x = secret_of(sa);
        y = secret_of(sb);
        if (x->f != &encrypted_factory || y->f != &encrypted_factory || x->store.enc.open ||
            y->store.enc.open)
            st = SM_E_INVAL;
        else
            st = smi_sealed_test_swap(&x->store.enc.sealed, &y->store.enc.sealed);
        smi_registry_release(sb);
    }
    smi_registry_release(sa);
    return st;
}
#endif
