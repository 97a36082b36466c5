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

struct keypage {
    uint8_t          key[32];
    _Atomic uint64_t seeded; /* SEED_*: whether key holds OS randomness */
};

static smi_region key_region;
static struct keypage *kp;
static _Atomic uint64_t counter;
static pthread_mutex_t reseed_lock = PTHREAD_MUTEX_INITIALIZER;

/* Fill key from the OS. A failure keeps the old key, which is unpredictable too. */
static sm_status seed_key(struct keypage *k)
{
    uint8_t fresh[sizeof k->key];
    sm_status st = sm_os_random(fresh, sizeof fresh);

    if (st == SM_OK) {
        memcpy(k->key, fresh, sizeof fresh);
        atomic_store_explicit(&k->seeded, SEED_KEYED, memory_order_release);
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
    st = seed_key((struct keypage *)(void *)smi_region_data(&r));
    if (st != SM_OK) {
        smi_region_unmake(&r);
        return st;
    }
    key_region = r;
    kp = (struct keypage *)(void *)smi_region_data(&key_region);
    return SM_OK;
}

void smi_rng_fini(void)
{
    kp = NULL;
    smi_region_unmake(&key_region);
}

void smi_rng_forget_key(void)
{
    if (kp == NULL)
        return;
    atomic_store_explicit(&kp->seeded, SEED_FORGOTTEN, memory_order_release);
    smi_wipe(kp->key, sizeof kp->key);
}

/*
 * mlock does not survive fork either: lock the page again before a key goes into it.
 * This path cannot fail (smi_rng_canary has no error), so a refusal is taken as best
 * effort, and the page moves to the unlocked count so that sm_stats tells the truth.
 */
static void relock_after_fork(void)
{
    if (key_region.locked &&
        sm_os_mlock(key_region.base + sm_os_page_size(), key_region.lay.inner_len) != SM_OK) {
        key_region.locked = false;
        atomic_fetch_sub(&smi_stat_locked, key_region.lay.inner_len);
        atomic_fetch_add(&smi_stat_unlocked, key_region.lay.inner_len);
    }
}

/*
 * A key is missing: wiped by a fork (SEED_NONE: the whole page reads as zeroes, canary
 * included, and is no longer locked) or by a purge (SEED_FORGOTTEN: only the key).
 * Redraw what is gone. If the OS source fails here, the keystream of the zero key is
 * used rather than stopping, and the next call tries again: canaries are then
 * predictable, but still unique; smi_rng_fill refuses to make key material meanwhile.
 */
static void reseed(void)
{
    uint64_t was;

    pthread_mutex_lock(&reseed_lock);
    was = atomic_load_explicit(&kp->seeded, memory_order_acquire);
    if (was == SEED_NONE)
        relock_after_fork();
    if (was != SEED_KEYED && seed_key(kp) == SM_OK && was == SEED_NONE)
        smi_canary_fill(key_region.base + sm_os_page_size(), key_region.lay.canary_len,
                        key_region.seed);
    pthread_mutex_unlock(&reseed_lock);
}

/* The keystream for a fresh nonce over out; false if the key is not seeded. */
static bool keystream(uint8_t *out, size_t n)
{
    uint8_t nonce[12] = { 0 };
    uint64_t c = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);

    if (atomic_load_explicit(&kp->seeded, memory_order_acquire) != SEED_KEYED)
        reseed();
    for (unsigned i = 0; i < 8; i++)
        nonce[i] = (uint8_t)(c >> (8 * i));
    memset(out, 0, n);
    br_chacha20_ct_run(kp->key, nonce, 0, out, n);
    return atomic_load_explicit(&kp->seeded, memory_order_acquire) == SEED_KEYED;
}

void smi_rng_canary(uint8_t out[SMI_CANARY_SEED])
{
    (void)keystream(out, SMI_CANARY_SEED);
}

sm_status smi_rng_fill(void *out, size_t n)
{
    /* ChaCha20's 32-bit block counter bounds one nonce to 256 GiB; split beyond that. */
    const size_t max = (size_t)1 << 37;
    uint8_t *p = out;

    while (n > 0) {
        size_t k = n < max ? n : max;

        if (!keystream(p, k)) {
            smi_wipe(out, (size_t)(p - (uint8_t *)out) + k);
            return SM_E_RANDOM;
        }
        p += k;
        n -= k;
    }
    return SM_OK;
}
