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
