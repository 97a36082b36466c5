/* SPDX-License-Identifier: ISC */
/*
 * The trusted contracts: what WP assumes, unproved, about functions that the proven core
 * calls but that lie outside it. Each says why it is sound. This is the only file where
 * make proofs allows an unproved assumption (proofs/wp.sh checks it).
 */
#include "core/core.h"

/*
 * smi_barrier (src/base/barrier.c) is an empty inline-assembly statement with a memory
 * clobber: it emits no instruction, so on the C abstract machine it reads and writes
 * nothing and always returns. The clobber only forbids the compiler to drop or sink the
 * stores before it (SM-REQ-010); it changes no byte. WP cannot read inline assembly,
 * hence the contract instead of a proof. It requires nothing: p is never dereferenced.
 */
/*@ assigns \nothing; */
void smi_barrier(const void *p);
