/* SPDX-License-Identifier: ISC */
/* Purge, audit, panic, safe exit, signals and fork: the runtime's exits. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "helpers.h"

static sm_buffer some_buffer(size_t n, uint8_t fill, bool frozen)
{
    sm_buffer b;

    cr_assert_eq(sm_buffer_new(n, &b), SM_OK);
    memset(sm_buffer_data(b), fill, n);
    if (frozen)
        cr_assert_eq(sm_buffer_freeze(b), SM_OK);
    return b;
}

static bool mapped(const void *p)
{
    char perms[5], flags[256];
    size_t locked;

    return smaps_of(p, perms, flags, sizeof flags, &locked) == 0;
}

Test(purge, every_handle_stale_every_page_unmapped)
{
    sm_buffer b[3] = { some_buffer(10, 1, false), some_buffer(5000, 2, true),
                       some_buffer(1, 3, false) };
    uint8_t *data[3];
    sm_stats s0, s1;

    for (int i = 0; i < 3; i++)
        data[i] = sm_buffer_data(b[i]);
    cr_assert_eq(sm_stats_get(&s0), SM_OK);
    cr_assert_eq(s0.buffers_live, 3);
    sm_purge();
    cr_assert_eq(sm_stats_get(&s1), SM_OK);
    cr_assert_eq(s1.buffers_live, 0);
    cr_assert_eq(s1.bytes_locked, sm_page_size(), "only the canary key page is left");
    for (int i = 0; i < 3; i++) {
        cr_assert_not(sm_buffer_is_alive(b[i]));
        cr_assert_eq(sm_buffer_destroy(b[i]), SM_E_STATE);
        cr_assert_not(mapped(data[i]), "buffer %d's pages are unmapped", i);
    }
    /* The library goes on: new objects, with new ids. */
    b[0] = some_buffer(10, 9, false);
    cr_assert_eq(sm_buffer_data(b[0])[9], 9);
    cr_assert_eq(sm_buffer_destroy(b[0]), SM_OK);
    sm_purge();
    sm_purge(); /* nothing left: a no-op */
}

/*
 * An object whose lock another thread holds is left to that thread: stale at once, but
 * untouched until the holder lets go of the lock, which then wipes and unmaps it.
 */
Test(purge, object_in_use_is_finished_by_its_holder)
{
    sm_buffer b = some_buffer(64, 0x77, true);
    uint8_t *d = sm_buffer_data(b);
    smi_slot *s;
    sm_stats st;

    cr_assert_eq(smi_registry_acquire(b.id, SMI_KIND_BUFFER, &s), SM_OK);
    sm_purge();
    cr_assert_not(sm_buffer_is_alive(b), "stale at once");
    cr_assert(mapped(d), "the holder may still be using it");
    for (int i = 0; i < 64; i++)
        cr_assert_eq(d[i], 0x77, "and nobody else touches it meanwhile");
    cr_assert_eq(sm_stats_get(&st), SM_OK);
    cr_assert_eq(st.buffers_live, 1, "not yet destroyed");
    smi_registry_release(s);
    cr_assert_not(mapped(d), "the holder finished the purge as it let go");
    cr_assert_eq(sm_stats_get(&st), SM_OK);
    cr_assert_eq(st.buffers_live, 0);
    cr_assert_eq(st.bytes_locked, sm_page_size(), "only the canary key page is left");
}

/* A holder that destroys the object itself leaves the purge nothing to finish. */
Test(purge, holder_that_destroys_the_object_finishes_it)
{
    sm_buffer b = some_buffer(64, 0x77, false);
    smi_slot *s;
    sm_stats st;

    cr_assert_eq(smi_registry_acquire(b.id, SMI_KIND_BUFFER, &s), SM_OK);
    sm_purge();
    cr_assert_eq(smi_region_free(&((smi_buffer *)(void *)s->body)->r), SM_OK);
    smi_registry_remove(s);
    cr_assert_eq(sm_stats_get(&st), SM_OK);
    cr_assert_eq(st.buffers_live, 0, "counted once");
    cr_assert_eq(st.bytes_locked, sm_page_size());
}

/* A purge that ends the process (panic, signal, safe exit) wipes it in place at once. */
Test(purge, ending_purge_wipes_an_object_in_use_in_place)
{
    sm_buffer b = some_buffer(64, 0x77, true);
    uint8_t *d = sm_buffer_data(b);
    smi_slot *s;

    cr_assert_eq(smi_registry_acquire(b.id, SMI_KIND_BUFFER, &s), SM_OK);
    cr_assert(smi_purge_all(true));
    cr_assert_not(sm_buffer_is_alive(b), "stale at once");
    cr_assert(mapped(d), "the holder may still be using it");
    for (int i = 0; i < 64; i++)
        cr_assert_eq(d[i], 0, "but it is wiped");
    smi_registry_release(s);
    cr_assert_not(mapped(d), "and unmapped once the holder lets go");
}

Test(purge, damaged_canary_panics_after_purging, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    sm_buffer ok = some_buffer(8, 1, false), bad = some_buffer(8, 2, false);

    (void)ok;
    sm_buffer_data(bad)[-1] ^= 4;
    sm_purge();
}

Test(audit, intact_canaries_pass)
{
    sm_buffer a = some_buffer(100, 1, false), b = some_buffer(100, 2, true);

    cr_assert_eq(sm_audit(), SM_OK);
    cr_assert_eq(sm_buffer_destroy(a), SM_OK);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
}

/* The test hook: damage the canary byte just before the data of a frozen buffer. */
static void damage_frozen(sm_buffer b)
{
    smi_slot *s;

    cr_assert_eq(smi_registry_acquire(b.id, SMI_KIND_BUFFER, &s), SM_OK);
    smi_registry_release(s);
    cr_assert_eq(sm_buffer_melt(b), SM_OK);
    sm_buffer_data(b)[-1] ^= 0x40;
    cr_assert_eq(sm_buffer_freeze(b), SM_OK);
}

/* The message as a child prints it before dying of SIGABRT; the child runs fn. */
static void expect_panic_message(void (*fn)(void), const char *want)
{
    int fds[2], status;
    char msg[200] = { 0 };
    size_t len = 0;
    ssize_t r;
    pid_t pid;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        fn();
        _exit(3);
    }
    close(fds[1]);
    while ((r = read(fds[0], msg + len, sizeof msg - 1 - len)) > 0)
        len += (size_t)r;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x", status);
    cr_assert_str_eq(msg, want);
}

static void audit_damaged(void)
{
    sm_buffer a = some_buffer(10, 1, false), b = some_buffer(10, 2, true);

    (void)a;
    damage_frozen(b);
    _exit(sm_audit() == SM_OK ? 3 : 4);
}

Test(audit, damaged_canary_panics_with_the_message)
{
    expect_panic_message(audit_damaged, "securemem: panic: canary of a guarded region is "
                                        "damaged: buffer underflow or stray write\n");
}

static void destroy_damaged(void)
{
    sm_buffer b = some_buffer(10, 1, false);

    sm_buffer_data(b)[-3] ^= 1;
    (void)!sm_buffer_destroy(b);
}

Test(panic, destroy_of_a_damaged_buffer_panics_with_the_message)
{
    expect_panic_message(destroy_damaged, "securemem: panic: canary of a guarded region is "
                                          "damaged: buffer underflow or stray write\n");
}

static void panic_with_a_buffer(void)
{
    (void)some_buffer(10, 1, false);
    sm_panic("the caller gave up");
}

Test(panic, purges_then_aborts_with_the_message)
{
    expect_panic_message(panic_with_a_buffer, "securemem: panic: the caller gave up\n");
}

static sm_buffer held;
static int report_fd;

/* Runs after the purge: reports whether the buffer was already gone. */
static void report_hook(int sig)
{
    char r[2] = { sm_buffer_is_alive(held) ? 'A' : 'P', (char)sig };

    (void)!write(report_fd, r, 2);
}

static void at_exit_report(void)
{
    report_hook(0);
}

static int child_with_buffers(int how, int *report)
{
    int fds[2], status;
    pid_t pid;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        static const int sigs[] = { SIGINT, SIGTERM };

        report_fd = fds[1];
        held = some_buffer(32, 0x5a, true);
        (void)some_buffer(4096, 1, false);
        if (how == 0) {
            if (sm_catch_signals(sigs, 2, report_hook) != SM_OK)
                _exit(10);
            raise(SIGINT);
        } else if (how == 1) {
            if (sm_catch_signals(sigs, 2, report_hook) != SM_OK)
                _exit(10);
            kill(getpid(), SIGTERM);
        } else if (how == 2) {
            interrupts_default();
            if (sm_catch_interrupt() != SM_OK)
                _exit(10);
            raise(SIGHUP);
        } else {
            atexit(at_exit_report);
            sm_safe_exit(42);
        }
        _exit(11);
    }
    close(fds[1]);
    *report = 0;
    if (read(fds[0], report, 2) != 2)
        *report = -1;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    close(fds[0]);
    return status;
}

Test(signals, sigint_purges_runs_the_hook_and_dies_by_the_signal)
{
    int report, status = child_with_buffers(0, &report);
    char *r = (char *)&report;

    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "status %#x", status);
    cr_assert_eq(r[0], 'P', "the hook ran after the purge");
    cr_assert_eq(r[1], SIGINT);
}

Test(signals, sigterm_from_kill)
{
    int report, status = child_with_buffers(1, &report);
    char *r = (char *)&report;

    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    cr_assert_eq(r[0], 'P');
    cr_assert_eq(r[1], SIGTERM);
}

Test(signals, catch_interrupt_covers_sighup_without_a_hook)
{
    int report, status = child_with_buffers(2, &report);

    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGHUP, "status %#x", status);
    cr_assert_eq(report, -1, "no hook, so no report");
}

Test(signals, safe_exit_purges_then_exits_with_the_code)
{
    int report, status = child_with_buffers(3, &report);
    char *r = (char *)&report;

    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 42, "status %#x", status);
    cr_assert_eq(r[0], 'P', "atexit handlers run after the purge");
}

Test(signals, bad_arguments_change_no_disposition)
{
    const int sigs[] = { SIGUSR1, SIGKILL };
    struct sigaction now;

    cr_assert_eq(sm_catch_signals(NULL, 1, NULL), SM_E_INVAL);
    cr_assert_eq(sm_catch_signals(sigs, 2, NULL), SM_E_INVAL);
    cr_assert_eq(sigaction(SIGUSR1, NULL, &now), 0);
    cr_assert_eq(now.sa_handler, SIG_DFL, "SIGUSR1 was put back");
    sm_os_fault_arm(SM_OS_SIGACTION, 1, ENOMEM, false);
    cr_assert_eq(sm_catch_signals(sigs, 1, NULL), SM_E_SYS);
    cr_assert_eq(sm_catch_signals(NULL, 0, NULL), SM_OK, "nothing to do");
}

Test(fork, pre_fork_handles_are_stale_in_the_child)
{
    sm_buffer b = some_buffer(16, 0x11, false);
    pid_t pid;
    int status;

    pid = fork();
    if (pid == 0) {
        sm_stats s;
        sm_buffer fresh;

        if (sm_buffer_is_alive(b) || sm_buffer_data(b) != NULL)
            _exit(1);
        if (sm_stats_get(&s) != SM_OK || s.buffers_live != 0)
            _exit(2);
        if (sm_buffer_new(16, &fresh) != SM_OK || sm_buffer_destroy(fresh) != SM_OK)
            _exit(3);
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0);
    cr_assert_eq(sm_buffer_data(b)[15], 0x11, "the parent's buffer is untouched");
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
}

/*
 * Issue 18 §3: secretmem regions are DONTFORK, so the child has nothing at their
 * addresses, yet its fork handler unmapped those ranges. A child handler of the
 * application that runs before the library's (registered first) and maps a page there
 * lost it: its next read faulted. The child must forget such regions by their counters
 * only. Both kinds of secretmem mapping: a buffer's guarded region and a protected
 * secret's plain pages.
 */
#define HOLES 8
static uintptr_t holes[HOLES];
static size_t nholes, hole_len;

static void map_into_holes(void)
{
    for (size_t i = 0; i < nholes; i++) {
        void *p = mmap((void *)holes[i], hole_len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

        if (p != (void *)holes[i])
            _exit(10); /* the range was not free in the child: not DONTFORK after all */
        memset(p, 0x5a, hole_len);
    }
}

static bool holes_intact(void)
{
    for (size_t i = 0; i < nholes; i++)
        for (size_t k = 0; k < hole_len; k++)
            if (((volatile uint8_t *)holes[i])[k] != 0x5a)
                return false;
    return true;
}

Test(fork, child_keeps_what_it_mapped_where_a_secretmem_region_was)
{
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false };
    uint8_t key[32] = { 1 };
    sm_secret sec;
    sm_buffer b;
    sm_stats s;
    char *line;
    pid_t pid;
    int status;

    /* Before sm_init registers the library's: child handlers run in that order. */
    cr_assert_eq(pthread_atfork(NULL, NULL, map_into_holes), 0);
    cr_assert_eq(sm_init(&cfg), SM_OK);
    cr_assert_eq(sm_stats_get(&s), SM_OK);
    if (!s.secretmem)
        cr_skip_test("no memfd_secret here");
    b = some_buffer(100, 0x22, false);
    cr_assert_eq(sm_secret_new(sm_factory_protected(), key, sizeof key, &sec), SM_OK);
    for (line = proc_text("/proc/self/maps"); line != NULL && *line != '\0';) {
        char *end = strchr(line, '\n');

        if (end != NULL)
            *end = '\0';
        if (strstr(line, "secretmem") != NULL && nholes < HOLES)
            holes[nholes++] = (uintptr_t)strtoull(line, NULL, 16);
        line = end != NULL ? end + 1 : NULL;
    }
    cr_assert_eq(nholes, 2, "a buffer and a protected secret in secretmem");
    hole_len = sm_page_size();
    pid = fork();
    if (pid == 0) {
        sm_buffer fresh;

        if (!holes_intact())
            _exit(1);
        if (sm_buffer_new(16, &fresh) != SM_OK || !holes_intact())
            _exit(2);
        if (sm_stats_get(&s) != SM_OK || s.bytes_locked != sm_page_size() * 2)
            _exit(3); /* the key page and the fresh buffer: the pre-fork ones uncounted */
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died of signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert_eq(sm_secret_close(sec), SM_OK);
}
