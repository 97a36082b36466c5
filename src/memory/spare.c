/* SPDX-License-Identifier: ISC */
/*
 * Spare ciphertext mappings (issue 14 §4). An enclave's ciphertext and a stream's
 * runs of chunks (stream.c) each have an ordinary mapping of their own, which used to
 * be mapped (and its pages faulted in) for every seal and unmapped at every destroy or
 * read: on this kernel the fresh pages cost more than the cipher. A mapping given back is kept here
 * instead, up to a bound, and the next seal of the same length takes it, so that steady
 * state makes no system call and takes no page fault for its ciphertext.
 *
 * Only ciphertext mappings come here: unlocked, dumpable, inherited by a forked child
 * (whose handler unmaps the spare ones: smi_spare_after_fork), never plaintext. What a
 * spare mapping still holds is ciphertext under the enclave key, which its next user
 * overwrites; sm_purge unmaps them all (smi_purge_all).
 *
 * Lock-free, so that no lock is shared by operations on different objects, and
 * async-signal-safe (a purge may run in a signal handler): each entry is a state word
 * of shelf.c, whose key is the mapping's length, over a descriptor of spares[] (the
 * mapping and its length), taken and put back by compare-and-swap.
 */
#include <stdatomic.h>

#include "inner.h"

/*
 * At most 64 mappings and 8 MiB: a few enclaves of a MiB, or a few streams' runs (two
 * of 2 MiB, each mapped with 2 MiB of address space more to place it: stream.c), the
 * calls in flight of a few busy objects rather than a cache of everything ever freed. A
 * seal that finds none maps fresh pages, as before.
 */
#define SPARE_ENTRIES 64u
#define SPARE_MAX_BYTES (8u << 20)

typedef struct spare_mapping {
    void  *p;
    size_t len;
} spare_mapping;

static smi_shelf_slot entries[SPARE_ENTRIES];
/* Each entry's mapping; only the thread that holds the entry touches it (shelf.c). */
static spare_mapping spares[SPARE_ENTRIES];
static atomic_size_t held; /* bytes in entries, or about to be */
#if defined(SM_FAULT_INJECTION)
static atomic_bool off;
#endif

SMI_VG_AT_START(vg_spare)
{
    SMI_VG_ATOMIC(entries, sizeof entries);
    SMI_VG_ATOMIC(&held, sizeof held);
}

void *smi_spare_take(size_t len)
{
    unsigned i = smi_shelf_take(entries, SPARE_ENTRIES, len);
    void *p;

    if (i == SPARE_ENTRIES)
        return NULL;
    p = spares[i].p;
    smi_shelf_release(&entries[i]);
    atomic_fetch_sub(&held, len);
    return p;
}

bool smi_spare_give(void *p, size_t len)
{
    unsigned i;

#if defined(SM_FAULT_INJECTION)
    if (atomic_load(&off))
        return false;
#endif
    /* Room under the bound, which also keeps the length a slot's key (below 2^60). */
    if (len == 0 || len > SPARE_MAX_BYTES)
        return false;
    if (atomic_fetch_add(&held, len) + len > SPARE_MAX_BYTES) {
        atomic_fetch_sub(&held, len);
        return false;
    }
    i = smi_shelf_reserve(entries, SPARE_ENTRIES);
    if (i < SPARE_ENTRIES) {
        spares[i].p = p;
        spares[i].len = len;
        /* Unless a drain overtook the reservation: then p is the caller's to unmap. */
        if (smi_shelf_fill(&entries[i], len))
            return true;
    }
    atomic_fetch_sub(&held, len);
    return false;
}

void smi_spare_drain(void)
{
    for (unsigned i = 0; i < SPARE_ENTRIES; i++) {
        spare_mapping m;

        if (!smi_shelf_purge(&entries[i]))
            continue;
        m = spares[i];
        smi_shelf_release(&entries[i]);
        /* A refused unmap leaves ciphertext mapped, nothing secret (SM_OK_LEAKS). */
        (void)sm_os_munmap(m.p, m.len);
        atomic_fetch_sub(&held, m.len);
    }
}

/*
 * The child has one thread. An entry that another thread of the parent was taking
 * (TAKING), giving (RESERVED) or had met a drain in (OVERTAKEN) would stay so for good,
 * with the bytes of a give counted in held: no take or give of the child could use it
 * again, and 64 of them, or 8 MiB of gives, refused every later give. So every entry is
 * emptied and held starts again from zero. The full ones are unmapped as a purge's drain
 * does: ciphertext under the parent's key, which the child does not have (its enclave
 * key is made anew, spec/enclave-key.md); the child's first seals map their own.
 * The mapping of a give or take under way stays in the child, unlisted: ciphertext too,
 * and its address is that thread's alone.
 */
void smi_spare_after_fork(void)
{
    for (unsigned i = 0; i < SPARE_ENTRIES; i++)
        if (smi_shelf_clear(&entries[i]))
            (void)sm_os_munmap(spares[i].p, spares[i].len);
    atomic_store(&held, 0);
}

#if defined(SM_FAULT_INJECTION)
size_t smi_spare_test_bytes(void)
{
    size_t n = 0;

    for (unsigned i = 0; i < SPARE_ENTRIES; i++)
        if (smi_shelf_test_full(&entries[i]))
            n += spares[i].len;
    return n;
}

void smi_spare_test_off(bool on)
{
    atomic_store(&off, on);
}

unsigned smi_spare_test_hold(size_t len)
{
    unsigned i;

    atomic_fetch_add(&held, len);
    i = smi_shelf_reserve(entries, SPARE_ENTRIES);
    if (i == SPARE_ENTRIES)
        atomic_fetch_sub(&held, len);
    return i;
}

void smi_spare_test_let_go(unsigned i, size_t len)
{
    smi_shelf_release(&entries[i]);
    atomic_fetch_sub(&held, len);
}
#endif
