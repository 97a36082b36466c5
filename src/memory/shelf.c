/* SPDX-License-Identifier: ISC */
/*
 * The shelf: the lock-free slots of the region pool (pool.c) and of the spare mappings
 * (spare.c), atomic state words over a static array of plain descriptors that their
 * owner keeps at the same indexes. A slot's word is EMPTY, RESERVED (a give is writing
 * the descriptor), FULL with a key (the descriptor is whole: the key is what a take
 * matches, so that it need not claim a slot to look at it), TAKING (a take or a purge
 * reads the descriptor) or OVERTAKEN (a purge met a reservation). Every move out of
 * EMPTY, FULL or RESERVED is a compare-and-swap, and only its winner touches the
 * descriptor until it stores the next state, so no descriptor is read half-written,
 * none is reused under a reader (no ABA: a stale word never stands for a new
 * descriptor), and no lock is taken: a purge from a signal handler skips the slots that
 * a give or a take holds, and the interrupted thread finishes them.
 *
 * Not one word packing a page address with a length, as each slot was before: Eva
 * cannot rebuild a pointer from that arithmetic (proofs/README.md, "Eva"), and a length
 * kept beside an atomic pointer instead is not ABA-safe.
 */
#include <stdatomic.h>

#include "inner.h"

#define EMPTY 0u
#define RESERVED 1u
#define TAKING 2u
#define OVERTAKEN 3u
#define FULL 4u
/* The state is the word's low 3 bits; a FULL word holds its key above them. */
#define STATE_BITS 3u
#define STATE_OF(w) ((w) & ((1u << STATE_BITS) - 1))

static uint64_t full(uint64_t key)
{
    return key << STATE_BITS | FULL;
}

unsigned smi_shelf_reserve(smi_shelf_slot *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t empty = EMPTY;

        if (atomic_compare_exchange_strong_explicit(&s[i], &empty, RESERVED,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
            /* after the last reader of the descriptor this give overwrites */
            SMI_VG_RECEIVE(&s[i]);
            return i;
        }
    }
    return n;
}

bool smi_shelf_fill(smi_shelf_slot *s, uint64_t key)
{
    uint64_t mine = RESERVED;

    SMI_VG_PUBLISH(s);
    if (atomic_compare_exchange_strong_explicit(s, &mine, full(key), memory_order_release,
                                                memory_order_relaxed))
        return true;
    /* OVERTAKEN: only this give moves the slot on from there */
    atomic_store_explicit(s, EMPTY, memory_order_release);
    return false;
}

unsigned smi_shelf_take(smi_shelf_slot *s, unsigned n, uint64_t key)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t want = full(key);

        if (atomic_load_explicit(&s[i], memory_order_relaxed) == want &&
            atomic_compare_exchange_strong_explicit(&s[i], &want, TAKING,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
            SMI_VG_RECEIVE(&s[i]);
            return i;
        }
    }
    return n;
}

void smi_shelf_release(smi_shelf_slot *s)
{
    SMI_VG_PUBLISH(s);
    atomic_store_explicit(s, EMPTY, memory_order_release);
}

void smi_shelf_put_back(smi_shelf_slot *s, uint64_t key)
{
    SMI_VG_PUBLISH(s);
    atomic_store_explicit(s, full(key), memory_order_release);
}

bool smi_shelf_purge(smi_shelf_slot *s)
{
    uint64_t w = atomic_load_explicit(s, memory_order_relaxed);

    /* A failed compare-and-swap reloads w: another thread moved the slot meanwhile. */
    for (;;) {
        if (STATE_OF(w) == FULL) {
            if (atomic_compare_exchange_strong_explicit(s, &w, TAKING, memory_order_acquire,
                                                        memory_order_relaxed)) {
                SMI_VG_RECEIVE(s);
                return true;
            }
        } else if (w == RESERVED) {
            /* Its give finds the purge done and keeps its object (smi_shelf_fill). */
            if (atomic_compare_exchange_strong_explicit(s, &w, OVERTAKEN, memory_order_relaxed,
                                                        memory_order_relaxed))
                return false;
        } else {
            return false;
        }
    }
}

bool smi_shelf_clear(smi_shelf_slot *s)
{
    uint64_t w = atomic_exchange_explicit(s, EMPTY, memory_order_acquire);

    if (STATE_OF(w) != FULL)
        return false;
    SMI_VG_RECEIVE(s);
    return true;
}

#if defined(SM_FAULT_INJECTION)
bool smi_shelf_test_full(smi_shelf_slot *s)
{
    bool is = STATE_OF(atomic_load_explicit(s, memory_order_acquire)) == FULL;

    if (is)
        SMI_VG_RECEIVE(s);
    return is;
}
#endif
