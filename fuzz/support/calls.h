/* SPDX-License-Identifier: ISC */
#ifndef FZ_CALLS_H
#define FZ_CALLS_H

/*
 * The OS calls an operation makes, counted by the fault shim, and checked against the
 * rows of spec/syscalls.tsv (read at build time by fuzz/gen-tables.sh).
 */

#include <stdbool.h>

#include "harness.h"

typedef unsigned long fz_calls[SM_OS_FN_COUNT];

/* The shim's count of calls of each OS function so far. */
void fz_calls_now(fz_calls c);
/*
 * The suffix of a guarded or protected secret's row for op, by what the pool did between
 * the last two fz_calls_now (spec/syscalls.tsv): ".pooled" when a constructor took a
 * region or plain mapping from it; ".pool_full" when a close did not give one to it (a
 * full pool, or a mapping it does not take); "" otherwise.
 */
const char *fz_pool_case(const char *op);

/* acc += to - from, per OS function. */
void fz_calls_add(fz_calls acc, const fz_calls from, const fz_calls to);

/* The calls of each OS function that spec/syscalls.tsv gives op; false if op has no row. */
bool fz_calls_of(const char *op, fz_calls want);

/*
 * An operation made exactly the OS calls own: those of the rows of op in syscalls.tsv
 * (which lists every function an operation calls), or none at all when op is NULL.
 * An operation with no row there is not checked. *rng_keyed says whether the canary and
 * random-byte generator has its key: the first use after a purge draws it with one
 * getrandom call of its own (src/memory/rng.c), which the rows, measured with a keyed
 * generator, do not count; that call sets *rng_keyed.
 */
void fz_calls_check(const char *what, const fz_calls own, const char *op, bool *rng_keyed);

#endif
