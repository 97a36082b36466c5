/* SPDX-License-Identifier: ISC */
/*
 * Deterministic randomness and time for the fuzz flavours (fuzz/README.md), compiled
 * only into builds with SM_FUZZ_DETERMINISTIC, never into the release library or the
 * test flavours. A fuzz input must replay along the same path with the same bytes:
 * getrandom would give new canaries, keys and nonces on each run, and the monotonic
 * clock decides when the enclave key is re-split (spec/enclave-key.md). Both are
 * replaced here, below the fault shim, so that injected faults still count and fire
 * exactly as in the test flavours.
 *
 * The stream is splitmix64 from a fixed seed: it only has to be reproducible, since
 * nothing made in a fuzz build protects anything.
 */
#include <stdatomic.h>
#include <stdint.h>

#include "fault.h"

#define FUZZ_SEED 0x5ec0de5eedf00d01ull
#define FUZZ_CLOCK_START 1000000000ull /* 1 s: any fixed value will do */
#define FUZZ_CLOCK_STEP 1000ull        /* each reading advances the clock by 1 us */

static _Atomic uint64_t state = FUZZ_SEED;
static _Atomic uint64_t clock_ns = FUZZ_CLOCK_START;

static uint64_t next64(void)
{
    uint64_t z = atomic_fetch_add(&state, 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sm_os_fuzz_random(void *p, size_t n)
{
    uint8_t *q = p;

    while (n > 0) {
        uint64_t v = next64();

        for (unsigned i = 0; i < 8 && n > 0; i++, n--)
            *q++ = (uint8_t)(v >> (8 * i));
    }
}

uint64_t sm_os_fuzz_clock_ns(void)
{
    return atomic_fetch_add(&clock_ns, FUZZ_CLOCK_STEP);
}

void sm_os_fuzz_reset(void)
{
    atomic_store(&state, FUZZ_SEED);
    atomic_store(&clock_ns, FUZZ_CLOCK_START);
}
