/* SPDX-License-Identifier: ISC */
/*
 * Fatal errors: the panic path and the corruption message, a leaf service that every
 * layer may call (spec/layers.tsv) and that calls nothing above the OS shim. A panic
 * must still purge every object and key first (spec/runtime.md), and that purge belongs
 * to the runtime, a layer above: the runtime registers it here when it is first
 * initialised. It is a registered callback, a function pointer read at panic time, not
 * a link dependency, so the layers keep calling down only (make check-layers).
 */
#include "inner.h"

const char smi_corrupt_msg[] =
    "canary of a guarded region is damaged: buffer underflow or stray write";

static bool (*_Atomic purge_hook)(bool ending);

/*
 * Once only: a canary found damaged by the purge inside a panic must not start
 * another purge, and two threads panicking at once must not purge twice.
 */
static atomic_bool panicking;

SMI_VG_AT_START(vg_fatal)
{
    SMI_VG_ATOMIC(&purge_hook, sizeof purge_hook);
    SMI_VG_ATOMIC(&panicking, sizeof panicking);
}

void smi_fatal_purge_hook(bool (*hook)(bool ending))
{
    atomic_store(&purge_hook, hook);
}

_Noreturn void sm_panic(const char *msg)
{
    if (!atomic_exchange(&panicking, true)) {
        bool (*purge)(bool) = atomic_load(&purge_hook);

        /* None yet: no sm_init has run, so no object or key exists to purge. */
        if (purge != NULL)
            (void)purge(true);
    }
    sm_os_die(msg != NULL ? msg : "(no message)");
}

_Noreturn void smi_panic(const char *msg)
{
    sm_panic(msg);
}
