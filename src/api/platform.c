/* SPDX-License-Identifier: ISC */
/*
 * The capability query (spec/platforms.md): what the shim can give, narrowed by the
 * configuration and by what the kernel accepted. A process-wide entry point: it reads
 * the configuration and the counters, and asks the shim only for its constant.
 */
#include <stdatomic.h>

#include "inner.h"
#include "os/os.h"

unsigned sm_platform_caps(void)
{
    unsigned caps = sm_os_caps();

    if (smi_runtime_ready() != SM_OK)
        return 0;
    if (!smi_config_secretmem())
        caps &= ~SM_CAP_NODIRECTMAP;
    if (smi_config_get()->lock_policy != SM_LOCK_REQUIRED &&
        atomic_load(&smi_stat_unlocked) != 0)
        caps &= ~SM_CAP_LOCKED;
    return caps;
}

sm_status sm_platform_require(unsigned caps)
{
    sm_status st;

    if ((caps & ~SM_CAP_ALL) != 0)
        return SM_E_INVAL;
    st = smi_runtime_ready();
    if (st != SM_OK)
        return st;
    return (sm_platform_caps() & caps) == caps ? SM_OK : SM_E_UNSUPPORTED;
}
