/* SPDX-License-Identifier: ISC */
/*
 * Purge, panic, exit and audit (spec/runtime.md). Everything on the purge path is
 * async-signal-safe: the registry walk claims slots with atomics and only tries locks,
 * regions are wiped with plain stores and unmapped with one system call each, and no
 * memory is allocated.
 */
#include "compact.h"

const char smi_corrupt_msg[] =
    "canary of a guarded region is damaged: buffer underflow or stray write";

bool smi_purge_all(bool ending)
{
    bool intact = smi_registry_purge(ending);

    intact = smi_compact_purge(ending) && intact;

    if (ending)
        smi_coffer_purge_now();
    else
        smi_coffer_purge();
    smi_rng_forget_key();
    return intact;
}

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

/*
 * Once only: a canary found damaged by the purge inside a panic must not start
 * another purge, and two threads panicking at once must not purge twice.
 */
static atomic_bool panicking;

SMI_VG_AT_START(vg_purge)
{
    SMI_VG_ATOMIC(&panicking, sizeof panicking);
}

_Noreturn void sm_panic(const char *msg)
{
    if (!atomic_exchange(&panicking, true))
        (void)smi_purge_all(true);
    sm_os_die(msg != NULL ? msg : "(no message)");
}

_Noreturn void smi_panic(const char *msg)
{
    sm_panic(msg);
}

sm_status sm_audit(void)
{
    sm_status st = smi_registry_audit();
    /* Compact slots have no registry slot: their slabs are checked on their own. */
    sm_status c = smi_compact_audit();

    if (st == SM_OK)
        st = c;
    /* The key's shares are canaried regions too; opening them to look can fail. */
    sm_status k = smi_coffer_audit();

    return st != SM_OK ? st : k;
}
