/* SPDX-License-Identifier: ISC */
/*
 * Read by Frama-C before each file of the Eva run (-include), never by a compiler.
 * Frama-C 25 rejects _Alignas ("currently unsupported"): the two uses (os.h's signal
 * save area, inner.h's slot body) only raise the alignment of a byte array, which
 * changes no access that Eva checks, so they are dropped here.
 */
#define _Alignas(x)

/* One thread's atomics, in place of Frama-C's (stdatomic.h here says why). */
#include "stdatomic.h"

/*
 * Frama-C 25 knows no __builtin_ctzll (registry.c's walks): the count of trailing zero
 * bits, spelled out. Like the builtin, it is only defined for a nonzero word, which is
 * all the walks give it; for zero the loop would never end, and Eva would see no path.
 */
#define __builtin_ctzll(x) \
    ({ unsigned long long v_ = (x); int n_ = 0; \
       while ((v_ & 1u) == 0) { v_ >>= 1; n_++; } n_; })
