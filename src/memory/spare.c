/* SPDX-License-Identifier: ISC */
/*
 * Spare ciphertext mappings (issue 14 §4). An enclave's ciphertext and a stream's
 * chunks each have an ordinary mapping of their own, which used to be mapped (and its
 * pages faulted in) for every seal and unmapped at every destroy or read: on this
 * kernel the fresh pages cost more than the cipher. A mapping given back is kept here
 * instead, up to a bound, and the next seal of the same length takes it, so that steady
 * state makes no system call and takes no page fault for its ciphertext.
 *
 * Only ciphertext mappings come here: unlocked, dumpable, inherited by a forked child,
 * never plaintext. What a spare mapping still holds is ciphertext under the enclave key,
 * which its next user overwrites; sm_purge unmaps them all (smi_purge_all).
 *
 * Lock-free, so that no lock is shared by operations on different objects, and
 * async-signal-safe (a purge may run in a signal handler): each entry is one atomic
 * word that holds the mapping's page number and its length in pages, taken and put back
 * by compare-and-swap.
 */
#include <stdatomic.h>

#include "inner.h"

/*
 * At most 64 mappings and 8 MiB: a few enclaves of a MiB, or 64 stream chunks (1 MiB
 * with 4 KiB pages), the calls in flight of a few busy objects rather than a cache of
 * everything ever freed. A seal that finds none maps fresh pages, as before.
 */
#define SPARE_ENTRIES 64u
#define SPARE_MAX_BYTES (8u << 20)

/* An entry: the address in 4 KiB units above LEN_BITS, the length in 4 KiB units below. */
#define UNIT_SHIFT 12u
#define LEN_BITS 20u

static _Atomic uint64_t entries[SPARE_ENTRIES];
static atomic_size_t held; /* bytes in entries, or about to be */
#if defined(SM_FAULT_INJECTION)
static atomic_bool off;
#endif

SMI_VG_AT_START(vg_spare)
{
    SMI_VG_ATOMIC(entries, sizeof entries);
    SMI_VG_ATOMIC(&held, sizeof held);
}

static uint64_t encode(void *p, size_t len)
{
    return ((uint64_t)(uintptr_t)p >> UNIT_SHIFT << LEN_BITS) | (uint64_t)(len >> UNIT_SHIFT);
}

static void *addr_of(uint64_t e)
{
    return (void *)(uintptr_t)(e >> LEN_BITS << UNIT_SHIFT);
}

static size_t len_of(uint64_t e)
{
    return (size_t)(e & (((uint64_t)1 << LEN_BITS) - 1)) << UNIT_SHIFT;
}

void *smi_spare_take(size_t len)
{
    for (unsigned i = 0; i < SPARE_ENTRIES; i++) {
        uint64_t e = atomic_load_explicit(&entries[i], memory_order_relaxed);

        if (e != 0 && len_of(e) == len &&
            atomic_compare_exchange_strong_explicit(&entries[i], &e, 0, memory_order_acquire,
                                                    memory_order_relaxed)) {
            SMI_VG_RECEIVE(&entries[i]);
            atomic_fetch_sub(&held, len);
            return addr_of(e);
        }
    }
    return NULL;
}

bool smi_spare_give(void *p, size_t len)
{
    uint64_t e = encode(p, len);

#if defined(SM_FAULT_INJECTION)
    if (atomic_load(&off))
        return false;
#endif
    /* Whole 4 KiB units that the entry can hold, and room under the bound. */
    if (len == 0 || len % ((size_t)1 << UNIT_SHIFT) != 0 || len > SPARE_MAX_BYTES ||
        addr_of(e) != p || len_of(e) != len)
        return false;
    if (atomic_fetch_add(&held, len) + len > SPARE_MAX_BYTES) {
        atomic_fetch_sub(&held, len);
        return false;
    }
    for (unsigned i = 0; i < SPARE_ENTRIES; i++) {
        uint64_t none = 0;

        SMI_VG_PUBLISH(&entries[i]);
        if (atomic_compare_exchange_strong_explicit(&entries[i], &none, e, memory_order_release,
                                                    memory_order_relaxed))
            return true;
    }
    atomic_fetch_sub(&held, len);
    return false;
}

void smi_spare_drain(void)
{
    for (unsigned i = 0; i < SPARE_ENTRIES; i++) {
        uint64_t e = atomic_exchange_explicit(&entries[i], 0, memory_order_acquire);

        if (e == 0)
            continue;
        /* A refused unmap leaves ciphertext mapped, nothing secret (SM_OK_LEAKS). */
        (void)sm_os_munmap(addr_of(e), len_of(e));
        atomic_fetch_sub(&held, len_of(e));
    }
}

#if defined(SM_FAULT_INJECTION)
size_t smi_spare_test_bytes(void)
{
    size_t n = 0;

    for (unsigned i = 0; i < SPARE_ENTRIES; i++)
        n += len_of(atomic_load(&entries[i]));
    return n;
}

void smi_spare_test_off(bool on)
{
    atomic_store(&off, on);
}
#endif
