/* SPDX-License-Identifier: ISC */
/*
 * Death tests: the guard pages fault and a damaged canary panics. Under ASan these run
 * with handle_segv=0 and handle_abort=0 (GNUmakefile), so that the signal is the
 * kernel's and not ASan's report.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>

#include "helpers.h"

static smi_region r;

static void alloc_region(void)
{
    cr_redirect_stderr();
    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(smi_region_alloc(100, NULL, &r), SM_OK);
}

Test(death, one_byte_past_the_end_faults, .init = alloc_region, .signal = SIGSEGV)
{
    volatile uint8_t *d = smi_region_data(&r);

    d[99] = 1; /* the last byte is fine */
    d[100] = 1;
}

Test(death, reading_before_the_canary_faults, .init = alloc_region, .signal = SIGSEGV)
{
    volatile uint8_t *g = r.base + sm_page_size() - 1;

    (void)*g;
}

Test(death, writing_a_frozen_region_faults, .init = alloc_region, .signal = SIGSEGV)
{
    volatile uint8_t *d = smi_region_data(&r);

    cr_assert_eq(smi_region_protect(&r, SM_PROT_READ), SM_OK);
    (void)d[0];
    d[0] = 1;
}

Test(death, damaged_canary_panics_at_free, .init = alloc_region, .signal = SIGABRT)
{
    smi_region_data(&r)[-1] ^= 1; /* an underflow by one byte */
    (void)smi_region_free(&r);
}

Test(death, damaged_canary_far_from_the_data_panics, .init = alloc_region, .signal = SIGABRT)
{
    r.base[sm_page_size()] ^= 0x80; /* the first canary byte */
    (void)smi_region_free(&r);
}

/* The panic message itself, read back from a child's stderr. */
Test(death, panic_message)
{
    int fds[2], status;
    char msg[256] = { 0 };
    pid_t pid;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        if (sm_init(NULL) != SM_OK || smi_region_alloc(100, NULL, &r) != SM_OK)
            _exit(1);
        smi_region_data(&r)[-5] ^= 1;
        (void)smi_region_free(&r);
        _exit(2);
    }
    close(fds[1]);
    /* The message may arrive in several writes: read to EOF, not once. */
    for (size_t len = 0;;) {
        ssize_t n = read(fds[0], msg + len, sizeof msg - 1 - len);

        cr_assert_geq(n, 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    cr_assert_str_eq(msg, "securemem: panic: canary of a guarded region is damaged: "
                          "buffer underflow or stray write\n");
}
