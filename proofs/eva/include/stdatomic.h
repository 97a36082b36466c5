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
typedef _Atomic __SIZE_TYPE__ atomic_size_t;

#define atomic_load(p) (*(p))
/*
 * One thread has no ordering to choose: the order arguments are evaluated and dropped,
 * and a fence orders nothing.
 */
#define memory_order_relaxed 0
#define memory_order_acquire 2
#define memory_order_release 3
#define memory_order_seq_cst 5
#define atomic_thread_fence(order) ((void)(order))
#define atomic_load_explicit(p, order) ((void)(order), *(p))
#define atomic_store(p, v) ((void)(*(p) = (v)))
#define atomic_store_explicit(p, v, order) ((void)(order), atomic_store(p, v))

/* The old value, then the operation: a statement expression keeps each operand once. */
#define SM_EVA_RMW(p, op, v) \
    ({ __typeof__(p) q_ = (p); __typeof__(*q_) old_ = *q_; *q_ = old_ op (v); old_; })
#define atomic_fetch_add(p, v) SM_EVA_RMW(p, +, v)
#define atomic_fetch_sub(p, v) SM_EVA_RMW(p, -, v)
#define atomic_fetch_or(p, v) SM_EVA_RMW(p, |, v)
#define atomic_fetch_and(p, v) SM_EVA_RMW(p, &, v)
#define atomic_fetch_add_explicit(p, v, order) ((void)(order), atomic_fetch_add(p, v))

#define atomic_exchange(p, v) \
    ({ __typeof__(p) q_ = (p); __typeof__(*q_) old_ = *q_; *q_ = (v); old_; })
#define atomic_exchange_explicit(p, v, order) ((void)(order), atomic_exchange(p, v))

/*
 * Compare and swap: with one thread the comparison cannot fail spuriously, so the weak
 * form is the strong one. True and *p set when *p held *e; else *e gets *p.
 */
#define atomic_compare_exchange_strong(p, e, v) \
    ({ __typeof__(p) q_ = (p); __typeof__(e) e_ = (e); _Bool ok_ = *q_ == *e_; \
       if (ok_) *q_ = (v); else *e_ = *q_; ok_; })
#define atomic_compare_exchange_strong_explicit(p, e, v, s, f) \
    ((void)(s), (void)(f), atomic_compare_exchange_strong(p, e, v))
#define atomic_compare_exchange_weak_explicit(p, e, v, s, f) \
    atomic_compare_exchange_strong_explicit(p, e, v, s, f)

#endif
