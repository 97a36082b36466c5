/* SPDX-License-Identifier: ISC */
#ifndef SMI_INNER_H
#define SMI_INNER_H

/*
 * The one private header of the layers above the core: the region allocator, the
 * handle registry, the runtime and the public entry points. Cross-file names are smi_*,
 * hidden from the shared library by -fvisibility=hidden (checked by make check-symbols).
 */

#include "os/lock.h"
#include <stdatomic.h>
#include <securemem.h>

#include "core/core.h"
#include "vg.h"
#include "os/os.h"

/*
 * ---- leaf services: fatal errors (fatal.c), counters (stats.c), configuration
 * (config.c). Every layer may call them; they call only the OS shim (spec/layers.tsv).
 */

/* Detected corruption: purge, message, abort. Never returns, never an error code. */
_Noreturn void smi_panic(const char *msg);
/* The message of a damaged canary, wherever it is found. */
extern const char smi_corrupt_msg[];
/*
 * The purge a panic runs first: smi_purge_all, registered by the runtime at its first
 * sm_init. A callback, not a link dependency: fatal.c names nothing above it. Until it
 * is registered no object exists, and a panic only ends the process.
 */
void smi_fatal_purge_hook(bool (*hook)(bool ending));

/* Counters behind sm_stats; the live-object counts come from the registry. */
extern _Atomic uint64_t smi_stat_allocations, smi_stat_locked, smi_stat_unlocked;
/*
 * In a forked child, once every pre-fork object, slab and pooled mapping is forgotten:
 * nothing is counted locked or unlocked any more (stats.c says why the counters are set
 * rather than corrected). The regions the child keeps are counted again after it
 * (smi_region_fork_unlocked).
 */
void smi_stats_after_fork(void);

/* Set by sm_init under its lock, before it publishes "ready" (a refused init too). */
void smi_config_set(const sm_config *cfg, bool secretmem_works);
/* The configuration in force; only meaningful once smi_runtime_ready succeeded. */
const sm_config *smi_config_get(void);
/* Whether regions are backed by memfd_secret (sm_stats.secretmem). */
bool smi_config_secretmem(void);

/* ---- runtime (runtime.c) ---- */

/* Initialise with the defaults unless already initialised; sm_init's errors. */
sm_status smi_runtime_ready(void);
/*
 * Purge every object, the enclave key and the canary key; false if a damaged canary was
 * found. Async-signal-safe: the body of sm_purge, of the signal handler and of a panic.
 * ending: the process ends right after (panic, signal, safe exit), so objects and key
 * pages in use by other threads are wiped in place at once rather than left to those
 * threads to purge when they finish (spec/runtime.md).
 */
bool smi_purge_all(bool ending);
/*
 * The enclave key's purge, which smi_purge_all calls between the objects and the canary
 * key: registered by the coffer (coffer.c), which sits above the runtime, before it
 * makes its first key. A callback, not a link dependency.
 */
void smi_runtime_key_purge(void (*hook)(bool ending));
/*
 * The enclave key's fork handlers (coffer.c), run by the runtime's own: the coffer's
 * prepare before the runtime takes its locks, its parent handler after it let them go,
 * its child handler last. Through the runtime's handlers, not a pthread_atfork of its
 * own, because glibc (2.34 and later) does not run, for a fork already under way,
 * handlers registered while that fork runs its prepare handlers: a coffer registering
 * its own at its first seal could take its locks just before that fork, and the child
 * would inherit them locked with no handler to release them. The runtime's are
 * registered when the library is loaded (runtime.c), before any lock can be taken,
 * and the child handler it runs is the one set now, not the one seen by the prepare.
 */
typedef struct smi_fork_ops {
    void (*before_fork)(void); /* take the module's locks */
    void (*fork_parent)(void); /* release them */
    void (*after_fork)(void);  /* in the child: release what its prepare took, if it ran */
} smi_fork_ops;
void smi_runtime_coffer_fork(const smi_fork_ops *ops);
/*
 * The runtime's fork handlers registered (without initialising): done at load, and
 * made here only by a call that comes before that. SM_E_NOMEM if they were refused.
 */
sm_status smi_runtime_fork_ready(void);
/*
 * Objects kept outside the registry (the compact factory's slabs, objects/compact.c):
 * the runtime's purge, fork handlers and sm_stats reach them through this table, which
 * their module registers before it makes its first object. A callback, not a link
 * dependency: that module sits above the runtime (spec/layers.tsv).
 */
typedef struct smi_outside_ops {
    bool (*purge)(bool ending);   /* signal-safe; false if a damaged canary was found */
    void (*before_fork)(void);    /* take their module's locks */
    void (*fork_parent)(void);    /* release them */
    void (*after_fork)(void);     /* child: locks as smi_fork_ops, every object forgotten */
    uint64_t (*live)(void);       /* secrets live, for sm_stats */
} smi_outside_ops;
void smi_runtime_outside(const smi_outside_ops *ops);

/* ---- burning the stack after a cipher (burn.c) ---- */

/*
 * Overwrite 4 KiB of the stack below the caller's frame, where BearSSL leaves round
 * keys, keystream and hash state, and clear the vector registers it used (SM-REQ-066).
 * Call it from the frame that called the primitive, right after the call.
 */
void smi_burn_stack(void);

/* ---- canary randomness (rng.c) ---- */

sm_status smi_rng_init(void);
/* Undo smi_rng_init, in the rollback of a failed sm_init. */
void smi_rng_fini(void);
/* Wipe the key (purge): the next use draws a new one. Async-signal-safe. */
void smi_rng_forget_key(void);
/* In a forked child (atfork): forget the key changes of threads the child lacks. */
void smi_rng_after_fork(void);
/*
 * A fresh canary pattern: SMI_CANARY_SEED bytes, with no system call. smi_rng_init
 * registers it as the regions' canary source (smi_region_canary_source).
 */
void smi_rng_canary(uint8_t out[SMI_CANARY_SEED]);
/*
 * n bytes of ChaCha20 keystream under the OS-seeded key, with no system call (the
 * arc4random design). SM_E_RANDOM, with out wiped, only when a forked child could not
 * draw its own key: key material is never made under the zero key. SM_E_LOCK, with out
 * untouched, only in a forked child under SM_LOCK_REQUIRED whose key page could not be
 * locked again (SM-REQ-029); each call tries the mlock again.
 */
sm_status smi_rng_fill(void *out, size_t n);

/* ---- guarded regions (region.c, spec/layout.md) ---- */

typedef struct smi_region {
    uint8_t   *base;       /* the leading guard page; NULL when not allocated */
    size_t     size;       /* the caller's bytes */
    smi_layout lay;
    uint8_t    seed[SMI_CANARY_SEED];
    sm_prot    prot;       /* of the inner pages (canary and data) */
    bool       locked;     /* the inner pages are locked (counted in bytes_locked) */
    bool       secretmem;  /* the inner pages are a memfd_secret mapping */
    bool       relock;     /* locked before a fork, not since: to lock again in the child */
    bool       pool;       /* made by smi_pool_take: smi_pool_give may keep it (pool.c) */
} smi_region;

static inline uint8_t *smi_region_data(const smi_region *r)
{
    return r->base + r->lay.data_off;
}

/* The inner pages (canary, then data): what mlock and every mprotect cover. */
static inline uint8_t *smi_region_inner(const smi_region *r)
{
    return r->base + smi_layout_inner(&r->lay);
}

/*
 * A zeroed, READWRITE region of size bytes (SM-REQ-020..027), following the runtime's
 * lock policy and backing. seed NULL draws the canary from the registered canary
 * source (SM_E_STATE while there is none). On error *r is untouched and nothing stays
 * mapped.
 */
sm_status smi_region_alloc(size_t size, const uint8_t *seed, smi_region *r);
/*
 * Register where seed NULL draws canaries (smi_rng_canary, from smi_rng_init; NULL
 * from smi_rng_fini). A callback, so that this allocator, which the RNG's key page
 * lives in, never calls the RNG by name (spec/layers.tsv).
 */
void smi_region_canary_source(void (*gen)(uint8_t out[SMI_CANARY_SEED]));
/*
 * The same, always private anonymous memory whatever the backing, for state that a
 * forked child must find zeroed at the same address (WIPEONFORK): a secretmem mapping
 * is DONTFORK instead, so the child would find a hole there that a later mapping fills.
 */
sm_status smi_region_alloc_wiped_on_fork(size_t size, const uint8_t *seed, smi_region *r);
/*
 * smi_region_alloc, seed NULL, with anonymous pages locked as they are first touched
 * (smi_lock_touched_pages) instead of faulted in by the mlock: for a region whose inner
 * pages are made writable again and again (the pool's), since the kernel walks and
 * populates every page of a plainly locked private mapping at each mprotect that makes
 * it writable, and skips that for pages locked on touch (spec/layout.md, "The pool").
 * Nothing is ever in an unlocked page: a page is locked as it is faulted in, before the
 * write that faulted it lands.
 */
sm_status smi_region_alloc_locked_on_touch(size_t size, smi_region *r);
/* Change the protection of the inner pages. */
sm_status smi_region_protect(smi_region *r, sm_prot prot);
/* Panic unless the canary is intact; the inner pages must be readable. */
void smi_region_check(const smi_region *r);
/* Check the canary (panicking if damaged), wipe, and unmap. */
sm_status smi_region_free(smi_region *r);
/*
 * The purge path's free: async-signal-safe, never panics, never fails half-way: it
 * opens the pages, checks the canary, wipes and unmaps. False if the canary was damaged.
 */
bool smi_region_purge(smi_region *r);
/*
 * Wipe the data in place and unmap nothing (an ending purge's fallback for an object in
 * use). Skipped, without a fault, if the pages are no longer mapped.
 */
void smi_region_wipe_in_place(smi_region *r);
/*
 * How long a purge that ends the process waits for other threads to let go of the
 * objects and of the enclave key they are using, before it wipes in place what they
 * still hold (most likely the thread that the signal interrupted, which will not run
 * again).
 */
#define SMI_ENDING_WAIT_NS (20u * 1000000ull)
/*
 * A forked child's pre-fork region: unmap it without touching the pages if it is
 * anonymous (WIPEONFORK); a secretmem region (DONTFORK) is not in the child, and its
 * range may hold someone else's mapping by now: left alone. The counters are not
 * touched: the child handler sets them afresh (smi_stats_after_fork).
 */
void smi_region_forget(smi_region *r);
/* smi_region_check for a region in any protection: opened to READ for the check, then
   shut again; the status of that shut (the region stays readable if it failed), or of
   the open if the OS refused it (the canary was not checked). */
sm_status smi_region_audit(smi_region *r);
/*
 * For the regions a forked child keeps (WIPEONFORK: the canary key page, the enclave
 * key's regions), after smi_stats_after_fork set the counters to zero: the region is
 * counted again, as unlocked, which is the truth (mlock does not survive fork), and
 * marked relock if it was locked; smi_region_relocked, once the owner has locked the
 * pages again, counts them locked. So sm_stats never counts as locked what the kernel
 * does not hold locked, nor counts a region that the child does not keep.
 */
void smi_region_fork_unlocked(smi_region *r);
void smi_region_relocked(smi_region *r);
/*
 * A rollback's last resort, for a region whose free was refused (its mprotect, or its
 * munmap) and that nobody else will ever reach: unmapped as it is, unwiped if it could
 * not be opened, as smi_region_purge unmaps pages it cannot open. The kernel takes the
 * pages back and zeroes every page before it hands it out again. The munmap's status;
 * refused too, the region stays mapped, shut and counted (spec/secrets.md, "Failures").
 */
sm_status smi_region_drop(smi_region *r);
/*
 * smi_region_free for a region that was never handed out, in the rollback of a failed
 * call: allocations_total is taken back too, so that the call changes no counter. A
 * refused free is followed by smi_region_drop.
 */
void smi_region_unmake(smi_region *r);

/*
 * For the region pool (pool.c). adopt: the wiped, locked, read-only region at base (its
 * leading guard page), as a new region of size bytes: opened READWRITE, with a canary
 * pattern drawn now, counted in allocations_total (it stays counted locked while
 * pooled). SM_E_INVAL unless size needs exactly inner_len bytes of inner pages; the
 * mprotect's status, with nothing changed. scrub: check the canary (panicking if
 * damaged), wipe the inner pages and make them read-only, keeping the mapping and its
 * lock; if that fails the region is whole again, READWRITE with its canary, for
 * smi_region_free. Read-only, not PROT_NONE: the pages hold nothing but zeros now, and
 * a present page is reopened without the trap that a PROT_NONE one costs on a host
 * with shadow page tables (spec/layout.md, "The pool").
 */
sm_status smi_region_adopt(uint8_t *base, size_t inner_len, bool secretmem, size_t size,
                           smi_region *out);
sm_status smi_region_scrub(smi_region *r);

/*
 * mlock, and if the OS refuses it while the region pool holds locked pages, empty the
 * pool and try once more: pooled pages are charged to RLIMIT_MEMLOCK, and must never be
 * why a lock that would have succeeded without them fails (spec/layout.md, "The pool").
 * Every mlock of the library goes through it. relief: how the pool registers the
 * emptying (a callback: the pool sits above this allocator); it returns true if it
 * unmapped anything. smi_lock_retry: whether a lock refused otherwise (a secretmem
 * mapping's charge, SM_E_LOCK) is worth trying again, having emptied the pool.
 */
sm_status smi_lock_pages(void *p, size_t n);
/* The same with the pages locked as they are first touched (sm_os_mlock_touched). */
sm_status smi_lock_touched_pages(void *p, size_t n);
void smi_lock_relief(bool (*relief)(void));
bool smi_lock_retry(void);

/*
 * ---- the shelf (shelf.c): the lock-free slots of the region pool and the spares ----
 * An array of atomic state words, one per slot, beside a static array of plain
 * descriptors that the caller keeps at the same indexes. Whoever moves a slot out of
 * EMPTY (reserve), out of FULL (take, purge) owns its descriptor until it stores the
 * next state (fill, release, put_back); nobody else touches it. Lock-free and
 * async-signal-safe; a purge skips the slots held by a give or a take. A FULL slot
 * holds a key (below 2^60) that a take matches without claiming the slot.
 */
typedef _Atomic uint64_t smi_shelf_slot;
/* An empty slot reserved for a give: its index, or n when none of the n is empty. */
unsigned smi_shelf_reserve(smi_shelf_slot *s, unsigned n);
/*
 * The reserved slot's descriptor written: FULL under key, true. false when a purge
 * overtook the reservation: the slot is empty again and what the descriptor names is
 * still the caller's (a purge that ran meanwhile must not leave it kept).
 */
bool smi_shelf_fill(smi_shelf_slot *s, uint64_t key);
/* A full slot of key claimed for a take: its index, or n when none of the n is. */
unsigned smi_shelf_take(smi_shelf_slot *s, unsigned n, uint64_t key);
/* Done with a claimed or reserved slot's descriptor: the slot is empty. */
void smi_shelf_release(smi_shelf_slot *s);
/* A claimed slot whose descriptor a take could not use: full again under key. */
void smi_shelf_put_back(smi_shelf_slot *s, uint64_t key);
/*
 * A purge's claim: true when the slot was full (its descriptor is the caller's, then
 * smi_shelf_release); a reserved one is marked overtaken (smi_shelf_fill); false.
 */
bool smi_shelf_purge(smi_shelf_slot *s);
/* In a forked child, which has no give or take under way: emptied, true if it was full. */
bool smi_shelf_clear(smi_shelf_slot *s);
#if defined(SM_FAULT_INJECTION)
/* Test hook: whether the slot is full (no take or purge may run meanwhile). */
bool smi_shelf_test_full(smi_shelf_slot *s);
#endif

/* ---- plain locked mappings (plain.c): the protected factory's storage ---- */

/*
 * Whole pages with the data at their start: no guard pages, no canary. Locked,
 * DONTDUMP and WIPEONFORK (or secretmem), counted in sm_stats like a region.
 */
typedef struct smi_plain {
    uint8_t *base;      /* the mapping and the data; NULL when not allocated */
    size_t   size;      /* the caller's bytes */
    size_t   len;       /* whole pages: what is mapped, locked and counted */
    sm_prot  prot;
    bool     locked;    /* counted in bytes_locked (else bytes_unlocked) */
    bool     secretmem;
    bool     pool;      /* made by smi_pool_take_plain: smi_pool_give_plain may keep it */
} smi_plain;

/*
 * A zeroed READWRITE mapping for size bytes; on error *p is untouched, nothing mapped.
 * Anonymous pages are locked as they are first touched (smi_lock_touched_pages), since
 * every plain mapping is the pool's (smi_pool_take_plain), opened at every take.
 */
sm_status smi_plain_alloc(size_t size, smi_plain *p);
sm_status smi_plain_protect(smi_plain *p, sm_prot prot);
/* Open, wipe, unmap. If the unmap fails the pages stay mapped, wiped and freeable. */
sm_status smi_plain_free(smi_plain *p);
/* smi_region_drop for a plain mapping. */
sm_status smi_plain_drop(smi_plain *p);
/* The purge path's free: async-signal-safe, never fails half-way. Always true. */
bool smi_plain_purge(smi_plain *p);
void smi_plain_wipe_in_place(smi_plain *p);
void smi_plain_forget(smi_plain *p);
/*
 * For the pool (pool.c), as smi_region_adopt and smi_region_scrub. adopt: the wiped,
 * locked, read-only mapping of len bytes at base as a new mapping of size bytes:
 * opened READWRITE, counted in allocations_total (it stays counted locked while
 * pooled); SM_E_INVAL unless size needs exactly len bytes; the mprotect's status, with
 * nothing changed. scrub: wipe all of its pages and make them read-only (as a region's),
 * keeping the mapping and its lock; if that fails it is left READWRITE (wiped), for
 * smi_plain_free.
 */
sm_status smi_plain_adopt(uint8_t *base, size_t len, bool secretmem, size_t size,
                          smi_plain *p);
sm_status smi_plain_scrub(smi_plain *p);

/*
 * ---- the pool (pool.c, spec/layout.md "The pool"): freed guarded regions of any page
 * count (the guarded factory's secrets, the regions that an enclave open decrypts into)
 * and freed plain mappings (the protected factory's secrets), kept wiped, locked and
 * PROT_NONE for the next one of the same kind and page count, so that alloc+free costs
 * four mprotect calls instead of a fresh mapping's five or six calls, its munmap and the
 * first touch of every page. At most SMI_POOL_SLOTS of them, both kinds together, and
 * SMI_POOL_BYTES of their pages (a region's inner pages); lock-free and
 * async-signal-safe.
 */
#define SMI_POOL_SLOTS 8u
#define SMI_POOL_BYTES ((size_t)2u << 20)
/*
 * A region for size bytes that smi_pool_give may keep: a pooled one of the backing in
 * force and of size's page count when there is one, else smi_region_alloc's. Errors as
 * smi_region_alloc; a pooled region that cannot be opened goes back to the pool
 * (SM_E_PROT).
 */
sm_status smi_pool_take(size_t size, smi_region *r);
/*
 * smi_region_free, but a locked region that smi_pool_take made goes to the pool
 * (scrubbed) while the pool has room. Errors as smi_region_free; on error r is whole and
 * can be freed again.
 */
sm_status smi_pool_give(smi_region *r);
/*
 * smi_pool_give in the rollback of a failed call: allocations_total taken back too; a
 * refused give is followed by smi_region_drop (smi_plain_drop).
 */
void smi_pool_unmake(smi_region *r);
/* The same three for plain mappings: smi_plain_alloc's, smi_plain_free's errors. */
sm_status smi_pool_take_plain(size_t size, smi_plain *p);
sm_status smi_pool_give_plain(smi_plain *p);
void smi_pool_unmake_plain(smi_plain *p);
/* Unmap everything pooled (purge: nothing in it to wipe). Async-signal-safe. */
void smi_pool_purge(void);
/* In a forked child: forget everything pooled, as smi_region_forget and smi_plain_forget do,
   and let go of the slots that threads the child lacks were taking or giving. */
void smi_pool_after_fork(void);
#if defined(SM_FAULT_INJECTION)
/*
 * Test hook: where the pooled pages start (a region's inner pages, a plain mapping) and,
 * unless inner is NULL, their lengths, at most max; the count.
 */
size_t smi_pool_test_list(uint8_t **pages, size_t *inner, size_t max);
/* Test hook: the bytes of those pages pooled. */
size_t smi_pool_test_bytes(void);
/* Test hook: the bytes the pool keeps mapped (those pages, and the regions' guard pages). */
size_t smi_pool_test_mapped(void);
#endif

/* ---- spare ciphertext mappings (spare.c) ---- */

/*
 * A bounded, lock-free pool of ordinary mappings that held ciphertext (enclaves, stream
 * chunks), so that a seal reuses mapped, faulted-in pages instead of mapping fresh ones.
 * take: a spare mapping of exactly len bytes, its contents stale ciphertext, or NULL.
 * give: keep p (len bytes) as spare; false when the pool is full or a drain ran during
 * the give, and p is still the caller's to unmap. drain: unmap every spare mapping
 * (smi_purge_all). All three are lock-free and async-signal-safe, and make no system
 * call but drain's munmaps.
 */
void *smi_spare_take(size_t len);
bool smi_spare_give(void *p, size_t len);
void smi_spare_drain(void);
/* In a forked child: every entry emptied, those that threads the child lacks held too. */
void smi_spare_after_fork(void);
#if defined(SM_FAULT_INJECTION)
/* The bytes held spare (the tests' mapped-bytes counts leave them out). */
size_t smi_spare_test_bytes(void);
/* on: give refuses everything, as if the pool were full (the syscalls.tsv runs). */
void smi_spare_test_off(bool on);
/*
 * A give of len bytes stopped between its reservation and its fill, as a thread that a
 * forked child lacks leaves it: the entry reserved (its index; SPARE_ENTRIES, 64, when
 * none was free) and the bytes counted. let_go ends it as a give overtaken would.
 */
unsigned smi_spare_test_hold(size_t len);
void smi_spare_test_let_go(unsigned i, size_t len);
#endif

/* ---- handle registry (registry.c, spec/registry.md) ---- */

typedef enum {
    SMI_KIND_BUFFER = 1,
    SMI_KIND_ENCLAVE,
    SMI_KIND_STREAM,
    SMI_KIND_SECRET,
    SMI_KIND_COUNT
} smi_kind;

/* Room for an object's descriptor inside its slot, so that no object needs malloc. */
#define SMI_SLOT_BODY 256u

/*
 * Each slot starts a cache line (64 bytes on x86-64 and on most arm64; the chunks are
 * page-aligned): two objects' locks and ids never share a line, so threads working on
 * different objects share nothing, not even a line that both write (spec/secrets.md,
 * "Two threads, and what one read costs"). 384 bytes on 64-bit Linux already; the
 * alignment pads the 32-bit layouts, which would otherwise straddle lines.
 */
typedef struct smi_slot {
    _Alignas(64) sm_os_mutex lock; /* the object's own lock: no lock is shared across objects */
    sm_os_cond       cond;   /* for operations that wait on this object */
    _Atomic uint64_t id;     /* the live object's handle id, 0 when free or purged */
    uint32_t         gen;    /* the generation that the next object here gets */
    uint32_t         next;   /* free list link: index + 1, 0 at the end */
    uint32_t         index;  /* this slot's own index, whatever id says meanwhile */
    smi_kind         kind;   /* the kind of the object last inserted here */
    /*
     * The id of the object that a purge claimed while another thread held this lock:
     * whoever next holds the lock finishes that purge (registry.md). 0: none.
     */
    _Atomic uint64_t doomed;
    /*
     * The id of a purged object whose pages accesses are still reading (a secret's):
     * the body stays theirs, and the last one out frees the pages and gives the slot
     * back (smi_registry_drop). 0: none. Guarded by the slot's lock.
     */
    uint64_t         lingering;
    _Alignas(16) unsigned char body[SMI_SLOT_BODY];
} smi_slot;

/*
 * Give body (len <= SMI_SLOT_BODY bytes, copied) a new handle id of kind.
 * Errors: SM_E_NOMEM when the registry cannot grow.
 */
sm_status smi_registry_insert(smi_kind kind, const void *body, size_t len, uint64_t *id);
/*
 * Insert in two steps, for callers that must not fail once they have changed something
 * (sealing a buffer): reserve a slot first (SM_E_NOMEM), then publish, which cannot
 * fail, or give the slot back.
 */
sm_status smi_registry_reserve(uint32_t *index);
uint64_t smi_registry_publish(uint32_t index, smi_kind kind, const void *body, size_t len);
void smi_registry_unreserve(uint32_t index);
/*
 * How many forks this process is the child of (smi_registry_after_fork counts them). A
 * reservation made before the count moved was given back by the child's handler, and
 * is neither published nor given back again: a make whose callback forked compares.
 */
uint32_t smi_registry_forks(void);
/*
 * The slot of the live object id of kind, with its lock held. SM_E_STATE for anything
 * else: 0, another kind, a removed object, an id never handed out.
 */
sm_status smi_registry_acquire(uint64_t id, smi_kind kind, smi_slot **out);
/* smi_registry_acquire that never blocks: SM_E_BUSY when the slot's lock is held. */
sm_status smi_registry_try_acquire(uint64_t id, smi_kind kind, smi_slot **out);
void smi_registry_release(smi_slot *s);
/* Make every copy of the slot's id stale, and unlock the slot. The lock must be held. */
void smi_registry_remove(smi_slot *s);
/*
 * The last access out of a purged object that was kept for its accesses (s->lingering
 * is its id, the lock is held) has freed its pages: wipe the body, unlock, and give the
 * slot back to use.
 */
void smi_registry_drop(smi_slot *s);
/*
 * With the slot's lock held, for a thread that finds id gone: true when a purge claimed
 * id and left it to the lock's holder, and has not finished it yet (it will, as this
 * thread lets go of the lock, or on its own second try). The body is still id's object
 * then, and the thread must update it as it leaves (a reader counts itself out), so that
 * the finish sees who is still inside.
 */
bool smi_registry_claimed(const smi_slot *s, uint64_t id);
/* Live objects of kind. */
uint64_t smi_registry_live(smi_kind kind);

/*
 * What the registry's walks do to one object of a kind, given its slot body
 * (spec/runtime.md). Each module registers its own (smi_registry_kind).
 *  - purge: wipe and unmap everything the object holds, with no lock and no malloc
 *    (async-signal-safe); false if a canary was found damaged on the way.
 *  - wipe: the fallback when another thread holds the object's lock: wipe the secret
 *    bytes in place and unmap nothing, since that thread may still be using them.
 *  - audit: panic if a canary is damaged; the slot's lock is held. The status of shutting
 *    again pages that were opened for the check (SM_OK when none was).
 *  - forget: in a forked child, give back the address space of a pre-fork object whose
 *    pages the fork already wiped (WIPEONFORK) or left out (DONTFORK).
 *  - in_use: asked after purge, slot lock held; true when accesses are still reading
 *    pages that purge therefore wiped in place and left mapped. The slot then stays the
 *    object's (smi_slot.lingering) until the last of them frees the pages. NULL: never.
 */
typedef struct smi_kind_ops {
    bool (*purge)(void *body);
    void (*wipe)(void *body);
    sm_status (*audit)(void *body);
    void (*forget)(void *body);
    bool (*in_use)(const void *body);
} smi_kind_ops;

/*
 * Register kind's ops; its module calls this before each publication of an object of
 * that kind (an atomic store), so a walk always finds the ops of a published slot. A
 * callback table, not a link dependency: the registry names no object module.
 */
void smi_registry_kind(smi_kind kind, const smi_kind_ops *ops);

/* ---- buffers (buffer.c), for the modules that make or consume them ---- */

typedef struct smi_buffer {
    smi_region    r;
    smi_buf_state state;
} smi_buffer;

/* Freeze r and give it a buffer handle; on failure r is unmade. */
sm_status smi_buffer_adopt(smi_region *r, sm_buffer *out);
/*
 * The buffer behind b, with its slot locked, if the state table allows op; *next is the
 * state to commit once the work is done. The caller releases or removes the slot.
 */
sm_status smi_buffer_acquire(sm_buffer b, smi_buf_op op, smi_slot **s, smi_buffer **buf,
                             smi_buf_state *next);

/* The stream module's entries in smi_kind_ops (stream.c). */
bool smi_stream_purge(void *body);
void smi_stream_wipe(void *body);
sm_status smi_stream_audit(void *body);
void smi_stream_forget(void *body);

/*
 * A sealed blob (enclave.c): the ciphertext of size bytes in an ordinary mapping of its
 * own, | nonce | tag | pad | ciphertext |, under the coffer's key, bound to size and to
 * id, 16 random bytes of its own drawn at the seal (SM-REQ-079). id lives here, in the
 * descriptor, not in the mapping: a ciphertext copied into another blob's mapping does
 * not carry it along. It is what an enclave is, and what the encrypted secret factory
 * keeps at rest.
 */
#define SMI_SEALED_ID 16u
typedef struct smi_sealed {
    uint8_t *map;
    size_t   map_len;
    size_t   size;
    uint8_t  id[SMI_SEALED_ID];
} smi_sealed;
/*
 * Seal the size bytes at data in place and copy them out, leaving data wiped; data is
 * untouched on error (a purge during the seal included: smi_coffer_seal). SM_E_RANDOM
 * if no id can be drawn (a forked child whose generator cannot be keyed).
 */
sm_status smi_sealed_seal(uint8_t *data, size_t size, smi_sealed *out);
/* Decrypt e into r's data (r->size == e->size); SM_E_AUTH wipes it. */
sm_status smi_sealed_open(const smi_sealed *e, smi_region *r);
/*
 * Unmap the ciphertext: nothing secret in it, nothing to wipe. Async-signal-safe. On
 * error the blob is still whole, and the call can be retried.
 */
sm_status smi_sealed_free(smi_sealed *e);

#if defined(SM_FAULT_INJECTION)
/* Test hook: flip bit of e's ciphertext (where 0), tag (1) or nonce (2). */
sm_status smi_enclave_test_flip(sm_enclave e, int where, size_t bit);
/*
 * Test hook: make e's recorded plaintext size size, as if its ciphertext had been
 * truncated (smaller) or extended into the zeroed slack of its mapping (larger, up to
 * the mapping's end; SM_E_INVAL beyond, or for 0). Opening it must then give SM_E_AUTH.
 */
sm_status smi_enclave_test_resize(sm_enclave e, size_t size);
/*
 * Test hooks: exchange the whole contents of two ciphertext mappings (nonce, tag and
 * ciphertext), as a stray copy between them would; the descriptors stay where they
 * are. SM_E_INVAL unless both mappings have one length (and a and b differ).
 */
sm_status smi_sealed_test_swap(smi_sealed *a, smi_sealed *b);
sm_status smi_enclave_test_swap(sm_enclave a, sm_enclave b);
/* The same for two secrets of the encrypted factory with their windows shut. */
sm_status smi_secret_test_swap_sealed(sm_secret a, sm_secret b);

#endif

/* The enclave module's entries in smi_kind_ops (enclave.c). */
bool smi_enclave_purge(void *body);
void smi_enclave_wipe(void *body);
sm_status smi_enclave_audit(void *body);
void smi_enclave_forget(void *body);

/* The buffer module's entries in smi_kind_ops (buffer.c). */
bool smi_buffer_purge(void *body);
void smi_buffer_wipe(void *body);
sm_status smi_buffer_audit(void *body);
void smi_buffer_forget(void *body);

/* The secret module's entries (secret.c). */
/* The state of secret id in spec/secret-states.tsv's terms (the tests observe it). */
smi_sec_state smi_secret_state(uint64_t id);
bool smi_secret_purge(void *body);
void smi_secret_wipe(void *body);
sm_status smi_secret_audit(void *body);
void smi_secret_forget(void *body);
bool smi_secret_in_use(const void *body);

/*
 * Make every live handle stale and destroy its object if its lock is free. An object
 * whose lock another thread holds is left to that thread, which purges it as it lets
 * go of the lock; with in_place (a purge that ends the process: panic, signal, safe
 * exit) its bytes are also wiped in place at once. Purged slots go back to use through
 * a lock-free list, so no lock is needed. Async-signal-safe. False if a damaged canary
 * was found.
 */
bool smi_registry_purge(bool in_place);
/* Audit every live object under its own lock. */
sm_status smi_registry_audit(void);
/* pthread_atfork's child handler: every pre-fork handle becomes stale. */
void smi_registry_after_fork(void);
/* pthread_atfork's prepare and parent handlers. */
void smi_registry_before_fork(void);
void smi_registry_fork_parent(void);
/* ---- crypto layer: the AEAD (aead.c) and the enclave key (coffer.c) ----
 *
 * spec/enclave-key.md describes the design; this is the internal API that the
 * enclave and stream entry points build on.
 */

#define SMI_AEAD_KEY 32u
#define SMI_AEAD_NONCE 12u
#define SMI_AEAD_TAG 16u
/* The longest message: GCM's 2^39 - 256 bits (ChaCha20's limit, 256 GiB, is higher). */
#define SMI_AEAD_MAX_LEN ((((uint64_t)1) << 36) - 32u)
/*
 * len <= SMI_AEAD_MAX_LEN, through a uint64_t parameter: a 32-bit size_t is always
 * within it, and gcc's -Wtype-limits rejects the comparison written inline there (i686).
 */
static inline bool smi_aead_len_ok(uint64_t len)
{
    return len <= SMI_AEAD_MAX_LEN;
}

/*
 * Every piece of key-derived state of one AEAD call: the AES key schedule and the GHASH
 * key, or the Poly1305 tag being checked. It is key material, so it MUST live inside a
 * guarded region, 16-byte aligned (a region of exactly smi_aead_ws_size() bytes is:
 * that size is a multiple of 64 and the data ends on a page boundary).
 */
typedef struct smi_aead_ws smi_aead_ws;
size_t smi_aead_ws_size(void);

/*
 * Encrypt the len bytes at data (len <= SMI_AEAD_MAX_LEN) and write the tag. to NULL:
 * in place, data then holds the ciphertext. Otherwise the ciphertext goes to to (len
 * bytes, not overlapping data) and data is left wiped: the plaintext moves into
 * ciphertext, in pieces that stay in the cache (aead.c). aad and data may be NULL when
 * their length is 0. The nonce MUST NOT repeat under a key. ws is wiped before
 * returning, and so is the stack the cipher used.
 */
void smi_aead_seal(smi_aead_ws *ws, const uint8_t key[SMI_AEAD_KEY],
                   const uint8_t nonce[SMI_AEAD_NONCE], const void *aad, size_t aad_len,
                   uint8_t *data, size_t len, uint8_t *to, uint8_t tag[SMI_AEAD_TAG]);
/*
 * Decrypt into data and check the tag in constant time: in place when from is NULL,
 * else the len bytes at from (only read) are copied into data as the cipher goes.
 * false: the tag does not match, and data is wiped (it never holds unauthenticated
 * plaintext after return). ws is wiped either way.
 */
bool smi_aead_open(smi_aead_ws *ws, const uint8_t key[SMI_AEAD_KEY],
                   const uint8_t nonce[SMI_AEAD_NONCE], const void *aad, size_t aad_len,
                   const uint8_t *from, uint8_t *data, size_t len,
                   const uint8_t tag[SMI_AEAD_TAG]) __attribute__((warn_unused_result));
/* "AES-256-GCM" or "ChaCha20-Poly1305": what this process uses (chosen at first use). */
const char *smi_aead_name(void);

/*
 * The split of the enclave key is redrawn on the first view after N views or T
 * nanoseconds since the last split, whichever comes first (spec/enclave-key.md).
 */
#define SMI_COFFER_RESPLIT_VIEWS 64u
#define SMI_COFFER_RESPLIT_NS (10u * 1000000000ull)
/* Operations that can run their cipher at once; more wait for a workspace slot. */
#define SMI_COFFER_SLOTS 8u

/*
 * The enclave key (coffer.c). Both calls reconstruct the key only inside a guarded
 * workspace, for the duration of the call, and are thread-safe. The coffer is made on
 * the first seal after smi_runtime_ready (nothing before that, nothing in sm_init).
 *
 * Seal: encrypt len bytes at data in place under a fresh nonce, bound to aad.
 * SM_E_INVAL: a NULL pointer with a nonzero length, NULL nonce_out or tag_out, or len
 * over SMI_AEAD_MAX_LEN. SM_E_STATE: the 2^64 - 1 nonces of the key are used up. The
 * OS errors of making the coffer or opening its shares (spec/syscalls.tsv), and
 * SM_E_NOMEM if the fork handlers cannot be registered. On any
 * error data, nonce_out and tag_out are untouched. A purge during the call gives
 * SM_E_STATE with data decrypted back as it was, or wiped if that cannot be checked
 * (only when an ending purge wiped the key under the cipher: the process ends).
 */
sm_status smi_coffer_seal(const void *aad, size_t aad_len, uint8_t *data, size_t len,
                          uint8_t nonce_out[SMI_AEAD_NONCE], uint8_t tag_out[SMI_AEAD_TAG])
    __attribute__((warn_unused_result));
/*
 * Open: decrypt in place. SM_E_AUTH, with data wiped, when the tag does not match or
 * the key that sealed it is gone (purged, or made before a fork); SM_E_STATE, data
 * wiped, when a purge ran during the call. Other errors leave data as it was, so the
 * call can be retried.
 */
sm_status smi_coffer_open(const uint8_t nonce[SMI_AEAD_NONCE], const void *aad,
                          size_t aad_len, uint8_t *data, size_t len,
                          const uint8_t tag[SMI_AEAD_TAG])
    __attribute__((warn_unused_result));
/*
 * The same with an enclave's copy beside the cipher (smi_aead_seal and smi_aead_open
 * with to and from): seal_to leaves the ciphertext at to and data wiped, with the errors
 * of smi_coffer_seal (data as it was; to untouched, but for a purge during the call,
 * which may leave ciphertext under the purged key there); open_from copies the
 * ciphertext from from into data as it decrypts it there, with the errors of
 * smi_coffer_open (data wiped or, for an error before the copy, untouched).
 */
sm_status smi_coffer_seal_to(const void *aad, size_t aad_len, uint8_t *data, size_t len,
                             uint8_t *to, uint8_t nonce_out[SMI_AEAD_NONCE],
                             uint8_t tag_out[SMI_AEAD_TAG]) __attribute__((warn_unused_result));
sm_status smi_coffer_open_from(const uint8_t nonce[SMI_AEAD_NONCE], const void *aad,
                               size_t aad_len, const uint8_t *from, uint8_t *data, size_t len,
                               const uint8_t tag[SMI_AEAD_TAG]) __attribute__((warn_unused_result));
/*
 * Check the canaries of the coffer's regions (for sm_audit); a damaged one panics.
 * The shares are opened for the check: SM_E_PROT if they cannot be.
 */
sm_status smi_coffer_audit(void) __attribute__((warn_unused_result));
/*
 * A session: one view of the key for several operations of one call (a stream's
 * chunks), so that the shares are opened and closed once per call, not per chunk.
 * begin reserves `seals` nonces (0: open only, and SM_E_AUTH if there is no key) and
 * holds a workspace slot until end, which always follows begin. The session operations
 * behave as smi_coffer_seal and smi_coffer_open; a seal beyond the reserved count is
 * SM_E_STATE. A purge during the session ends it: every later operation is SM_E_STATE.
 */
typedef struct smi_coffer_session {
    void    *sl;
    uint64_t epoch, seals;
    unsigned slot;
    bool     active;
    uint8_t  nonce[SMI_AEAD_NONCE];
} smi_coffer_session;
sm_status smi_coffer_begin(smi_coffer_session *cs, uint64_t seals)
    __attribute__((warn_unused_result));
sm_status smi_coffer_session_seal(smi_coffer_session *cs, const void *aad, size_t aad_len,
                                  uint8_t *data, size_t len, uint8_t nonce_out[SMI_AEAD_NONCE],
                                  uint8_t tag_out[SMI_AEAD_TAG])
    __attribute__((warn_unused_result));
sm_status smi_coffer_session_open(smi_coffer_session *cs, const uint8_t nonce[SMI_AEAD_NONCE],
                                  const void *aad, size_t aad_len, uint8_t *data, size_t len,
                                  const uint8_t tag[SMI_AEAD_TAG])
    __attribute__((warn_unused_result));
void smi_coffer_end(smi_coffer_session *cs);
/*
 * On the calling thread, from now until called with false: the coffer's locks are only
 * tried, and an operation that would wait for one gives SM_E_BUSY, having changed
 * nothing (sm_secret_try_with_bytes opening an encrypted secret).
 */
void smi_coffer_try_only(bool on);
/*
 * Purge the coffer: no lock, no malloc, async-signal-safe. The next seal makes a new
 * key. An operation that overlaps the purge returns SM_E_STATE with its data wiped (or
 * SM_E_AUTH if the key was gone before it began); it never returns output made with a
 * half-wiped key. smi_coffer_purge wipes and unmaps the regions at once when no
 * operation is in flight, else the last one to finish does; smi_coffer_purge_now, for a
 * purge that ends the process, does it at once, and an operation still running then may
 * fault on the unmapped pages (spec/enclave-key.md).
 */
void smi_coffer_purge(void);
void smi_coffer_purge_now(void);

#if defined(SM_FAULT_INJECTION)
/* Test hooks, in the test and fuzz builds only. */
typedef enum {
    SMI_AEAD_AUTO,             /* what the CPU allows: the release behaviour */
    SMI_AEAD_CHACHA,           /* ChaCha20-Poly1305 with the fastest ct code */
    SMI_AEAD_CHACHA_PORTABLE   /* ChaCha20-Poly1305 with chacha20_ct and poly1305_ctmul */
} smi_aead_choice;
void smi_aead_test_force(smi_aead_choice c);

typedef struct smi_coffer_probe {
    const smi_region *left, *right, *work; /* NULL when there is no coffer */
    size_t   head_len;  /* bytes of bookkeeping at the start of work's data */
    bool     keyed;
    uint64_t views;     /* since the last split */
    uint64_t splits;    /* re-splits of this key */
} smi_coffer_probe;
void smi_coffer_test_probe(smi_coffer_probe *out);
/* The key and shares, copied out (each may be NULL). SM_E_STATE without a coffer. */
sm_status smi_coffer_test_peek(uint8_t key[32], uint8_t left[32], uint8_t right[32]);
/* Set the next nonce counter. */
sm_status smi_coffer_test_set_counter(uint64_t next);
/* Take (held) or give back all the workspace slot locks (slots) or the coffer lock, as
   other threads' operations would hold them. */
void smi_coffer_test_hold(bool slots, bool held);
/* Pretend that the last split happened ns nanoseconds earlier. */
void smi_coffer_test_age(uint64_t ns);
/*
 * Cap the registry at n slots (0: its full size), as if that were its size: the same
 * code paths, with exhaustion in reach of a test. Set before the first insert.
 */
void smi_registry_test_limit(uint32_t n);
/* The slots that the last purge or audit walk looked at. */
uint64_t smi_registry_test_walked(void);
/* Begin (true) or end (false) a change of the canary key, as another thread would. */
void smi_rng_test_hold_writer(bool held);
/*
 * The canary key and the nonce counter that the next keystream will use (the tests
 * predict the generator with them: SM-REQ-066). SM_E_STATE when no key is seeded.
 */
sm_status smi_rng_test_peek(uint8_t key[32], uint64_t *next);
/*
 * Call fn in every sm_secret_close of a registry secret between its destroy (the pages
 * pooled or unmapped, the slot's lock not held) and the slot's removal (NULL: none).
 */
void smi_secret_test_in_close(void (*fn)(void));
/* Call fn between an operation's cipher and its purge check (NULL: none). */
void smi_coffer_test_after_cipher(void (*fn)(void));
/* Call fn in a purge's teardown, once it is claimed, before any region goes (NULL: none). */
void smi_coffer_test_during_teardown(void (*fn)(void));

/*
 * Test hooks on a stream's chunks, counted from the front (k = 0), for the attack tests:
 *  - chunk: the address and length of the k-th chunk's mapping, the memory that an
 *    overflow from a neighbouring mapping can reach;
 *  - save, restore: the k-th chunk's sealed contents (ciphertext, nonce, tag, length),
 *    not its place in the stream: restored elsewhere they are a swap, a transplant or
 *    a replay. bytes is the caller's, of the chunk's mapping length;
 *  - cut: keep the first keep chunks and drop the rest from the stream, as a cut link
 *    would, unmapping them (so that the test leaks nothing) but leaving the size alone.
 * SM_E_INVAL for a chunk that is not there.
 */
/* The size of one record of a stream's index (stream.c checks it), for the tests' sizes. */
#define SMI_STREAM_REC_SIZE 64u
typedef struct smi_stream_saved {
    uint8_t *bytes;
    size_t   len;
    uint8_t  nonce[SMI_AEAD_NONCE], tag[SMI_AEAD_TAG];
} smi_stream_saved;
sm_status smi_stream_test_chunk(sm_stream s, size_t k, uint8_t **map, size_t *len);
sm_status smi_stream_test_save(sm_stream s, size_t k, smi_stream_saved *out);
sm_status smi_stream_test_restore(sm_stream s, size_t k, const smi_stream_saved *in);
sm_status smi_stream_test_cut(sm_stream s, size_t keep);
/*
 * The stream's chunk slots, for the memory bound (spec/enclaves-streams.md, "Runs"):
 * mapped, every slot of every run its records name; read, the front run's slots before
 * the front chunk; uncarved, the run being carved's slots not yet carved; chunks, the
 * chunks held. SM_E_STATE (the counts filled in) when the runs' invariant is broken:
 * a stream that holds chunks has its tail in the run being carved, an empty one none.
 */
typedef struct smi_stream_slots {
    size_t mapped, read, uncarved, chunks;
} smi_stream_slots;
sm_status smi_stream_test_slots(sm_stream s, smi_stream_slots *out);
#endif

#endif
