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

/*
 * Catch every signal of the list, or change nothing (SM-REQ-101): a refusal puts back,
 * in reverse order, every disposition changed so far. Reverse, because a signal listed
 * twice saved the library's own handler the second time, and its first saving is the
 * one to end with. The hook is stored only once every signal is caught, so a refused
 * call keeps the previous hook too. With keep_ignored, signals whose disposition is
 * SIG_IGN are read first and left ignored (sm_catch_interrupt under nohup).
 */
static sm_status catch_all(const int *signals, size_t n, void (*h)(int sig), bool keep_ignored)
{
    enum { MAX = 64 };
    sm_os_sigsave old[MAX];
    bool skip[MAX] = { false };
    sm_status st = SM_OK;
    size_t done;

    if ((signals == NULL && n > 0) || n > MAX)
        return SM_E_INVAL;
    for (size_t i = 0; keep_ignored && i < n; i++) {
        st = sm_os_signal_query(signals[i], &old[i]);
        if (st != SM_OK)
            return st;
        skip[i] = sm_os_signal_ignored(&old[i]);
    }
    for (done = 0; done < n; done++) {
        if (skip[done])
            continue;
        st = sm_os_signal_catch(signals[done], on_signal, &old[done]);
        if (st != SM_OK)
            break;
    }
    if (st != SM_OK) {
        while (done-- > 0)
            if (!skip[done])
                sm_os_signal_restore(signals[done], &old[done]);
        return st;
    }
    atomic_store(&hook, h);
    return SM_OK;
}

sm_status sm_catch_signals(const int *signals, size_t n, void (*h)(int sig))
{
    return catch_all(signals, n, h, false);
}

sm_status sm_catch_interrupt(void)
{
    size_t n;
    const int *sigs = sm_os_interrupt_signals(&n);

    return catch_all(sigs, n, NULL, true);
}
