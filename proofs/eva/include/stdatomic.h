/* SPDX-License-Identifier: ISC */
/*
 * Read by Frama-C instead of its own <stdatomic.h> in the Eva run (eva-prelude.h
 * includes it first; proofs/README.md, "Eva"). Frama-C 25's header passes every atomic
 * value through unsigned long long, so an atomic pointer (region.c's canary source,
 * fatal.c's purge hook) became an integer, and a call through it a call of no known
 * function. Eva analyses one thread (the driver's): there, each atomic operation is
 * the plain access it is made of, which is what these macros say, typed as the object
 * is. What atomicity adds between threads is out of Eva's scope (the race suites).
 * Only what the analysed files use is here.
 */
#ifndef SM_EVA_STDATOMIC_H
#define SM_EVA_STDATOMIC_H
/* Frama-C's own header, included later by the sources, then adds nothing. */
#define __FC_STDATOMIC

/* Frama-C 25 ignores the qualifier, as its own header does. */
#define _Atomic

typedef _Atomic _Bool atomic_bool;

#define atomic_load(p) (*(p))
/* One thread has no ordering to choose: the order argument is evaluated and dropped. */
#define memory_order_relaxed 0
#define atomic_load_explicit(p, order) ((void)(order), *(p))
#define atomic_store(p, v) ((void)(*(p) = (v)))

/* The old value, then the operation: a statement expression keeps each operand once. */
#define SM_EVA_RMW(p, op, v) \
    ({ __typeof__(p) q_ = (p); __typeof__(*q_) old_ = *q_; *q_ = old_ op (v); old_; })
#define atomic_fetch_add(p, v) SM_EVA_RMW(p, +, v)
#define atomic_fetch_sub(p, v) SM_EVA_RMW(p, -, v)

#define atomic_exchange(p, v) \
    ({ __typeof__(p) q_ = (p); __typeof__(*q_) old_ = *q_; *q_ = (v); old_; })

#endif
