/* SPDX-License-Identifier: ISC */
/*
 * Canary patterns. Each region needs an unpredictable pattern (SM-REQ-024), but a
 * getrandom call per region would be one more system call on every allocation
 * (spec/syscalls.md). So the OS CSPRNG keys ChaCha20 once, and the pattern of each
 * region is the keystream block for a fresh 64-bit counter used as the nonce: unique per
 * region, unpredictable without the key, and lock-free.
 *
 * The key lives in its own guarded region (locked, DONTDUMP, WIPEONFORK), always
 * anonymous memory even with secretmem backing, so a forked child finds it zeroed at the
 * same address, "seeded" included, and draws a new key before its first use instead of
 * producing patterns under an all-zero key.
 */
#include <bearssl.h>
#include <string.h>

#include "inner.h"

/* keypage.seeded: a fork leaves SEED_NONE, since WIPEONFORK zeroes the whole page. */
enum { SEED_NONE = 0, SEED_KEYED = 1, SEED_FORGOTTEN = 2 };

/*
 * The key is four relaxed atomics rather than bytes: a purge wipes it with no lock (it
 * may run in a signal handler) while other threads may be reading it, so every access
 * is atomic, and readers validate what they copied against key_epoch (a seqlock that
 * allows several writers at once: see key_change_begin).
 */
struct keypage {
    _Atomic uint64_t key[4];
    _Atomic uint64_t seeded; /* SEED_*: whether key holds OS randomness */
};

static smi_region key_region;
static struct keypage *kp;
static _Atomic uint64_t counter;
static sm_os_mutex reseed_lock = SM_OS_MUTEX_INIT;
/* Moves on at the start and at the end of every change of the key. */
static _Atomic uint64_t key_epoch;
/* Changes of the key in progress (a purge and a reseed may overlap). */
static _Atomic uint32_t key_writers;
/*
 * In a forked child: the key page was locked in the parent and is not locked here yet
 * (mlock does not survive fork). Set by the child's handler, cleared by relock once the
 * page is locked again (or, under SM_LOCK_BEST_EFFORT, once that was refused).
 */
static atomic_bool relock_due;

SMI_VG_AT_START(vg_rng)
{
    SMI_VG_ATOMIC(&counter, sizeof counter);
    SMI_VG_ATOMIC(&key_epoch, sizeof key_epoch);
    SMI_VG_ATOMIC(&key_writers, sizeof key_writers);
    SMI_VG_ATOMIC(&relock_due, sizeof relock_due);
}

/*
 * A reader loads key_epoch, then key_writers (must be 0), copies the key, and loads
 * key_epoch again. A writer counts itself in key_writers before it moves key_epoch, so a
 * reader whose first load already saw the move also sees the writer; a reader whose
 * copy saw any store of the writer sees the move in its second load. Either way it
 * tries again, so no copy mixes two keys or a key and zeroes. No fence is needed (gcc's
 * TSan rejects them): the writer's key stores sit between two sequentially consistent
 * read-modify-writes of key_epoch, which they cannot cross, and the reader's key loads
 * are acquires, which its second epoch load cannot move above.
 */
static void key_change_begin(void)
{
    atomic_fetch_add(&key_writers, 1);
    atomic_fetch_add(&key_epoch, 1);
}

static void key_change_end(void)
{
    atomic_fetch_add(&key_epoch, 1);
    atomic_fetch_sub(&key_writers, 1);
}

static void key_store(struct keypage *k, const uint8_t v[32])
{
    for (unsigned i = 0; i < 4; i++) {
        uint64_t w;

        memcpy(&w, v + 8 * i, 8);
        atomic_store_explicit(&k->key[i], w, memory_order_relaxed);
    }
}

/* Copy the key out; true if the copy is one whole key that was seeded from the OS. */
static bool key_load(struct keypage *k, uint8_t out[32])
{
    uint64_t e = atomic_load(&key_epoch);

    if (atomic_load(&key_writers) != 0 ||
        atomic_load_explicit(&k->seeded, memory_order_acquire) != SEED_KEYED)
        return false;
    for (unsigned i = 0; i < 4; i++) {
        uint64_t w = atomic_load_explicit(&k->key[i], memory_order_acquire);

        memcpy(out + 8 * i, &w, 8);
    }
    return atomic_load(&key_epoch) == e;
}

/* Fill key from the OS. A failure keeps the old key, which is unpredictable too. */
static sm_status seed_key(struct keypage *k)
{
    uint8_t fresh[32];
    sm_status st = sm_os_random(fresh, sizeof fresh);

    if (st == SM_OK) {
        key_change_begin();
        key_store(k, fresh);
        atomic_store_explicit(&k->seeded, SEED_KEYED, memory_order_release);
        key_change_end();
    }
    smi_wipe(fresh, sizeof fresh);
    return st;
}

sm_status smi_rng_init(void)
{
    uint8_t seed[SMI_CANARY_SEED];
    smi_region r;
    sm_status st;

    /* The key page's own canary cannot come from the key: it comes from the OS. */
    st = sm_os_random(seed, sizeof seed);
    if (st == SM_OK)
        st = smi_region_alloc_wiped_on_fork(sizeof(struct keypage), seed, &r);
    smi_wipe(seed, sizeof seed);
    if (st != SM_OK)
        return st;
    SMI_VG_ATOMIC(smi_region_data(&r), sizeof(struct keypage));
    st = seed_key((struct keypage *)(void *)smi_region_data(&r));
    if (st != SM_OK) {
        smi_region_unmake(&r);
        return st;
    }
    key_region = r;
    kp = (struct keypage *)(void *)smi_region_data(&key_region);
    /* From now on every other region draws its canary from the key (region.c). */
    smi_region_canary_source(smi_rng_canary);
    return SM_OK;
}

void smi_rng_fini(void)
{
    smi_region_canary_source(NULL);
    kp = NULL;
    smi_region_unmake(&key_region);
}

void smi_rng_forget_key(void)
{
    if (kp == NULL)
        return;
    key_change_begin();
    atomic_store_explicit(&kp->seeded, SEED_FORGOTTEN, memory_order_release);
    for (unsigned i = 0; i < 4; i++)
        atomic_store_explicit(&kp->key[i], 0, memory_order_relaxed);
    key_change_end();
}

/*
 * The forked child has one thread: a key change that another thread of the parent was
 * making at the fork never ends here, and reseed_lock may have been copied locked. Left
 * so, the child's first canary would wait on key_writers (or the lock) for ever. The key
 * page itself is WIPEONFORK, so the child reseeds from SEED_NONE anyway.
 *
 * mlock does not survive fork either: from here until relock the key page is unlocked,
 * and sm_stats must say so rather than count it as locked.
 */
void smi_rng_after_fork(void)
{
    atomic_store(&key_writers, 0);
    sm_os_mutex_init(&reseed_lock);
    /*
     * Not locked here until relock: counted unlocked meanwhile (issue 18), and due to be
     * locked again (SM-REQ-029). relock_due mirrors key_region.relock for smi_rng_fill's
     * lock-free check.
     */
    smi_region_fork_unlocked(&key_region);
    atomic_store(&relock_due, key_region.relock);
}

#if defined(SM_FAULT_INJECTION)
void smi_rng_test_hold_writer(bool held)
{
    if (held)
        key_change_begin();
    else
        key_change_end();
}

sm_status smi_rng_test_peek(uint8_t key[32], uint64_t *next)
{
    if (kp == NULL || !key_load(kp, key))
        return SM_E_STATE;
    *next = atomic_load(&counter);
    return SM_OK;
}
#endif

/*
 * Lock the key page again in a forked child, with reseed_lock held; a no-op unless due.
 * A refusal under SM_LOCK_BEST_EFFORT is final: the page goes on unlocked, in the
 * unlocked count where the fork handler put it. Under SM_LOCK_REQUIRED it stays due and
 * is SM_E_LOCK: canaries are still made from the unlocked key, since region allocation
 * cannot fail on that account and a canary pattern guards integrity, not a secret; but
 * smi_rng_fill makes no random secret until a later attempt locks the page
 * (SM-REQ-029). A key drawn while the page was unlocked may have reached swap
 * meanwhile: once locked, the page gets a new one (the key is forgotten, and the next
 * use redraws it).
 */
static sm_status relock(void)
{
    if (!atomic_load(&relock_due))
        return SM_OK;
    if (smi_lock_pages(key_region.base + sm_os_page_size(), key_region.lay.inner_len) != SM_OK) {
        if (smi_config_get()->lock_policy == SM_LOCK_REQUIRED)
            return SM_E_LOCK;
        key_region.relock = false;
        atomic_store(&relock_due, false);
        return SM_OK;
    }
    smi_region_relocked(&key_region);
    if (atomic_load_explicit(&kp->seeded, memory_order_acquire) == SEED_KEYED)
        smi_rng_forget_key();
    atomic_store(&relock_due, false);
    return SM_OK;
}

/*
 * A key is missing: wiped by a fork (SEED_NONE: the whole page reads as zeroes, canary
 * included, and is no longer locked) or by a purge (SEED_FORGOTTEN: only the key).
 * Redraw what is gone; false if the OS source failed. Then the keystream of the zero key
 * is used for canaries rather than stopping, and the next call tries again: canaries are
 * then predictable, but still unique; smi_rng_fill refuses to make key material meanwhile.
 */
static bool reseed(void)
{
    uint64_t was;
    bool ok = true;

    sm_os_mutex_lock(&reseed_lock);
    /* Before a key goes into the page; a refusal still lets canaries be made (relock). */
    (void)relock();
    was = atomic_load_explicit(&kp->seeded, memory_order_acquire);
    if (was != SEED_KEYED) {
        ok = seed_key(kp) == SM_OK;
        if (ok && was == SEED_NONE)
            smi_canary_fill(key_region.base + sm_os_page_size(), key_region.lay.canary_len,
                            key_region.seed);
    }
    sm_os_mutex_unlock(&reseed_lock);
    return ok;
}

/*
 * The keystream for a fresh nonce over out, made from a private copy of the key; false
 * if there is no key and the OS source fails to give one (out then holds the keystream
 * of the zero key, for canaries only). A purge may wipe the key at any moment, since it
 * takes no lock: the copy is validated (key_load), so nothing made from a half-wiped key
 * is ever returned; a call that meets a purge simply uses the next key.
 */
static bool keystream(uint8_t *out, size_t n)
{
    uint8_t nonce[12] = { 0 }, key[32];
    uint64_t c = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    bool keyed = true;

    for (unsigned i = 0; i < 8; i++)
        nonce[i] = (uint8_t)(c >> (8 * i));
    while (!key_load(kp, key)) {
        if (atomic_load(&key_writers) != 0) {
            sm_os_yield(); /* a purge or a reseed is writing it: a few stores */
        } else if (atomic_load_explicit(&kp->seeded, memory_order_acquire) != SEED_KEYED &&
                   !reseed()) {
            memset(key, 0, sizeof key);
            keyed = false;
            break;
        }
    }
    memset(out, 0, n);
    br_chacha20_ct_run(key, nonce, 0, out, n);
    smi_wipe(key, sizeof key);
    /*
     * chacha20_ct leaves the key words and the last block, which is the whole output
     * of a call of 64 bytes or less, in its dead frame: burn it from this frame, which
     * called it (SM-REQ-066).
     */
    smi_burn_stack();
    return keyed;
}

void smi_rng_canary(uint8_t out[SMI_CANARY_SEED])
{
    (void)keystream(out, SMI_CANARY_SEED);
}

/*
 * The smaller of two: through parameters, so that gcc's -Wtype-limits does not reject
 * n < max as "always true" where size_t has 32 bits.
 */
static inline uint64_t smi_min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

sm_status smi_rng_fill(void *out, size_t n)
{
    /*
     * ChaCha20's 32-bit block counter bounds one nonce to 256 GiB; split beyond that.
     * In uint64_t: a 32-bit size_t cannot hold the bound (and never reaches it).
     */
    const uint64_t max = (uint64_t)1 << 37;
    uint8_t *p = out;

    /* A forked child under SM_LOCK_REQUIRED: no secret from an unlocked key page. */
    if (atomic_load(&relock_due)) {
        sm_status st;

        sm_os_mutex_lock(&reseed_lock);
        st = relock();
        sm_os_mutex_unlock(&reseed_lock);
        if (st != SM_OK)
            return st;
    }

    while (n > 0) {
        size_t k = (size_t)smi_min_u64(n, max);

        if (!keystream(p, k)) {
            smi_wipe(out, (size_t)(p - (uint8_t *)out) + k);
            return SM_E_RANDOM;
        }
        p += k;
        n -= k;
    }
    return SM_OK;
}
