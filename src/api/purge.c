/* SPDX-License-Identifier: ISC */
/*
 * Purge, exit and audit, the public entry points (spec/runtime.md). The purge itself is
 * smi_purge_all (runtime.c), and the panic is a leaf service (fatal.c). Everything on
 * the purge path is async-signal-safe: the registry walk claims slots with atomics and
 * only tries locks, regions are wiped with plain stores and unmapped with one system
 * call each, and no memory is allocated.
 */
#include "inner.h"
#include "objects/compact.h"

void sm_purge(void)
{
    if (!smi_purge_all(false))
        sm_os_die(smi_corrupt_msg);
}

_Noreturn void sm_safe_exit(int code)
{
    if (!smi_purge_all(true))
        sm_os_die(smi_corrupt_msg);
    sm_os_exit(code);
}

sm_status sm_audit(void)
{
    sm_status st = smi_registry_audit();
    /* Compact slots have no registry slot: their slabs are checked on their own. */
    sm_status c = smi_compact_audit();
    /* The key's shares are canaried regions too; opening them to look can fail. */
    sm_status k = smi_coffer_audit();

    if (st == SM_OK)
        st = c;
    return st != SM_OK ? st : k;
}
