/* SPDX-License-Identifier: ISC */
#ifndef SM_OS_FAULT_H
#define SM_OS_FAULT_H

/*
 * The fault-injecting shim. In a build with SM_FAULT_INJECTION (the test and fuzz
 * flavours, never the release library) every fallible OS function of os.h first asks
 * sm_os_fault_hit whether this call should fail; if so it fails exactly as if the OS
 * had returned that errno, through the same error mapping. Calls are also counted, so
 * that tests can assert how many calls of each kind an operation makes.
 */

#include <stdbool.h>

#include "os.h"

/*
 * Armed as the errno of a plan (sm_os_fault_arm), a value no errno has: the call's answer
 * is cut short, as an odd kernel or emulator might give it: a read ends there (it is not
 * made), an ioctl is made and its answer then spoilt so that it does not cover what was
 * asked. Only the writability query's calls on /proc/self take it (src/os/linux.c:
 * SM_OS_READ, SM_OS_PROCMAP_QUERY, SM_OS_PAGEMAP_SCAN); it is defined in every build so
 * that they compile alike, and is never injected elsewhere.
 */
#define SM_OS_FAULT_SHORT (-1)

#if defined(SM_FAULT_INJECTION)

/* Count a call of fn; the errno to fail it with, or 0 to let it through. Thread-safe. */
int sm_os_fault_hit(sm_os_fn fn);

/*
 * Make the nth call of fn (counted from 1, from now on) fail with err. With sticky,
 * every call from the nth on fails. One plan per function; arming replaces it.
 * A sticky EINTR on getrandom or read never ends: those calls retry interruptions.
 */
void sm_os_fault_arm(sm_os_fn fn, unsigned long nth, int err, bool sticky);
/*
 * Also fail the nth call of fn (counted as sm_os_fault_arm counts, from its last arm or
 * reset) with err, once: two chosen calls of one kind refused in one operation, such as
 * a make's failing step and then its rollback's (test_pool.c). Arm first, then this.
 */
void sm_os_fault_arm_also(sm_os_fn fn, unsigned long nth, int err);
/* Drop every plan and zero every call counter. */
void sm_os_fault_reset(void);
/* Calls of fn since the last reset, failed ones included. */
unsigned long sm_os_fault_calls(sm_os_fn fn);
/* The name used in spec/os-errors.tsv ("mmap", "mlock", ...), or NULL out of range. */
const char *sm_os_fn_name(sm_os_fn fn);

/*
 * Mappings kept alive by an injected munmap failure. The library leaves some behind on
 * purpose (a ciphertext chunk, a temporary region: spec/fault-injection.md), which over
 * millions of fuzz inputs would exhaust vm.max_map_count. sm_os_munmap reports each
 * call here: a refused one is remembered, a later successful one of the same range
 * forgets it. sm_os_fault_reclaim unmaps what is still remembered, for a harness between
 * two inputs, when no object of the library is alive. Lock-free, async-signal-safe.
 */
void sm_os_fault_track_munmap(void *p, size_t len, bool refused);
/* Unmap every remembered mapping (not through the shim); the count unmapped. */
unsigned sm_os_fault_reclaim(void);

#if defined(_WIN32)
/*
 * Stand-ins for WerRegisterExcludedMemoryBlock and WerUnregisterExcludedMemoryBlock
 * (windows.c), for the suite under Wine, which has neither; NULL, NULL looks the real
 * ones up again. Either way a remembered refusal is forgotten.
 */
void sm_os_fault_wer(long (*reg)(const void *, unsigned long), long (*unreg)(const void *));
#endif

#else

static inline int sm_os_fault_hit(sm_os_fn fn) { (void)fn; return 0; }
static inline void sm_os_fault_track_munmap(void *p, size_t len, bool refused)
{
    (void)p;
    (void)len;
    (void)refused;
}

#endif

#if defined(SM_FUZZ_DETERMINISTIC)
/*
 * The fuzz flavours' stand-ins for the OS random source and the monotonic clock
 * (src/os/fuzz_random.c): a fixed-seed stream, and a clock that advances by a fixed
 * step per reading. The harnesses call sm_os_fuzz_reset before each input, so that an
 * input gives the same bytes and the same path whatever ran before it.
 */
void sm_os_fuzz_random(void *p, size_t n);
uint64_t sm_os_fuzz_clock_ns(void);
void sm_os_fuzz_reset(void);
#endif

#endif
