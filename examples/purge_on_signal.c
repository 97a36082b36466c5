/* SPDX-License-Identifier: ISC */
/*
 * Purge on a signal: with sm_catch_signals (or sm_catch_interrupt for SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT), a signal wipes and unmaps every secret, buffer, enclave and
 * stream, then runs the hook, then ends the process as the signal would. The hook runs
 * inside the signal handler: only async-signal-safe calls (write, not printf). Here the
 * program sends itself SIGTERM with a key live; `make check-examples` checks that it
 * died of SIGTERM after the hook ran.
 */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC, termios, write under -std=c11 */

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <securemem.h>

static void after_purge(int sig)
{
    static const char msg[] = "purge_on_signal: every secret wiped, now ending\n";

    (void)sig;
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
}

int main(void)
{
    static const int sigs[] = { SIGINT, SIGTERM };
    sm_secret key;
    sm_status st;

    st = sm_catch_signals(sigs, sizeof sigs / sizeof sigs[0], after_purge);
    if (st == SM_OK)
        st = sm_secret_random(sm_factory_guarded(), 32, &key);
    /* Check every canary now, as a program might before it exits (or on a timer). */
    if (st == SM_OK)
        st = sm_audit();
    if (st != SM_OK) {
        fprintf(stderr, "purge_on_signal: %s\n", sm_status_str(st));
        return 1;
    }
    printf("purge_on_signal: a key is live; sending SIGTERM to myself\n");
    fflush(stdout);
    raise(SIGTERM);
    fprintf(stderr, "purge_on_signal: still running after SIGTERM\n");
    return 1;
}
