/* SPDX-License-Identifier: ISC */
/*
 * Kept out of the core on purpose: WP cannot read inline assembly, and a separate
 * translation unit already hides p's fate from the compiler when the core is
 * optimised. The empty asm with a memory clobber keeps that true under LTO.
 */
#include "core/core.h"

void smi_barrier(const void *p)
{
    __asm__ __volatile__("" : : "r"(p) : "memory");
}
