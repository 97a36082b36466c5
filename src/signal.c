/* SPDX-License-Identifier: ISC */
/*
 * Signal handling (sm_catch_signals): purge, hook, then end the process as the signal
 * would have. The hook pointer is an atomic so that a later call can replace it while
 * a handler might run.
 */
#include "inner.h"

static void (*_Atomic hook)(int);
static atomic_bool ending;

SMI_VG_AT_START(vg_signal)
{
    SMI_VG_ATOMIC(&hook, sizeof hook);
    SMI_VG_ATOMIC(&ending, sizeof ending);
}

static void on_signal(int sig)
{
    void (*h)(int) = atomic_load(&hook);

    /* The first signal ends the process; one arriving on another thread just waits. */
    if (atomic_exchange(&ending, true))
        sm_os_wait_forever();
    if (!smi_purge_all(true)) {
        /* Corruption found while purging: the panic message, not the signal's exit. */
        sm_os_die(smi_corrupt_msg);
    }
    if (h != NULL)
        h(sig);
    sm_os_die_by_signal(sig);
}

sm_status sm_catch_signals(const int *signals, size_t n, void (*h)(int sig))
{
    enum { MAX = 64 };
    sm_os_sigsave old[MAX];
    sm_status st = SM_OK;
    size_t done;

    if ((signals == NULL && n > 0) || n > MAX)
        return SM_E_INVAL;
    atomic_store(&hook, h);
    for (done = 0; done < n && st == SM_OK; done++)
        st = sm_os_signal_catch(signals[done], on_signal, &old[done]);
    if (st != SM_OK) {
        /* Put back every disposition changed before the one that failed. */
        for (size_t i = 0; i + 1 < done; i++)
            sm_os_signal_restore(signals[i], &old[i]);
    }
    return st;
}

sm_status sm_catch_interrupt(void)
{
    size_t n;
    const int *sigs = sm_os_interrupt_signals(&n);

    return sm_catch_signals(sigs, n, NULL);
}
