/* SPDX-License-Identifier: ISC */
/*
 * The counters behind sm_stats: a leaf service, bumped by the allocators (region.c,
 * plain.c, secret.c) and read by sm_stats_get (runtime.c) and the tests. They live
 * below both so that an allocator never calls up into the runtime (spec/layers.tsv).
 */
#include "inner.h"

_Atomic uint64_t smi_stat_allocations, smi_stat_locked, smi_stat_unlocked;

SMI_VG_AT_START(vg_stats)
{
    SMI_VG_ATOMIC(&smi_stat_allocations, sizeof smi_stat_allocations);
    SMI_VG_ATOMIC(&smi_stat_locked, sizeof smi_stat_locked);
    SMI_VG_ATOMIC(&smi_stat_unlocked, sizeof smi_stat_unlocked);
}
