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

/*
 * The child's one thread is the forking one, and every region, plain mapping and slab
 * that the parent counted is either forgotten by now (the registry's objects, the
 * compact slabs, the pool) or in the hands of a thread the child lacks: one between a
 * pool take and the registry's publication of a new object, or between a close's give
 * or free and the removal of the slot (SM-REQ-108). Correcting the counters by what each
 * forget takes off cannot see the latter, which no record of the child's holds, so they
 * stayed counted (locked, in 1,545 of 2,000 forks of a probe), or were taken off twice
 * (a close's region both pooled and still in its slot). Set, not corrected, the counters
 * are right whatever the other threads were doing, with nothing on the paths that make
 * and close objects. The forking thread's own make in flight (a fill that forked) holds
 * no count either: the make forgets its storage (secret.c, make_filled) without one.
 */
void smi_stats_after_fork(void)
{
    atomic_store(&smi_stat_locked, 0);
    atomic_store(&smi_stat_unlocked, 0);
}
