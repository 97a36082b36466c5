/* SPDX-License-Identifier: ISC */
/*
 * The smaller hardening findings (issue 11 §4.1, §4.3, §4.6; issue 18 §4-§8 and its
 * "also noticed" list), one regression test or more each: refused calls that change
 * nothing, lengths past the end of the address space, audit refusals, custom factories
 * that break their contract or call back into their own secret, and the fd readers'
 * limit.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "helpers.h"

/* ---- signals (SM-REQ-101, SM-REQ-109) ---- */

static int report_fd = -1;

static void hook_a(int sig)
{
    char r[2] = { 'A', (char)sig };

    (void)!write(report_fd, r, 2);
}

static void hook_b(int sig)
{
    char r[2] = { 'B', (char)sig };

    (void)!write(report_fd, r, 2);
}

/* Run fn in a child that reports through report_fd; the report (0: none) and status. */
static int child_report(void (*fn)(void), char report[2], int *status)
{
    int fds[2];
    ssize_t r;
    pid_t pid;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        report_fd = fds[1];
        fn();
        _exit(99);
    }
    close(fds[1]);
    report[0] = report[1] = 0;
    r = read(fds[0], report, 2);
    cr_assert_eq(waitpid(pid, status, 0), pid);
    close(fds[0]);
    return (int)r;
}

/* Issue 11 §4.1: a refused call must not replace the hook. */
static void refused_call_keeps_hook(void)
{
    static const int term[] = { SIGTERM }, kill9[] = { SIGKILL };

    if (sm_catch_signals(term, 1, hook_a) != SM_OK)
        _exit(10);
    if (sm_catch_signals(kill9, 1, hook_b) != SM_E_INVAL)
        _exit(11);
    raise(SIGTERM);
    _exit(12);
}

Test(edges_signals, a_refused_call_keeps_the_hook)
{
    char r[2];
    int status;

    cr_assert_eq(child_report(refused_call_keeps_hook, r, &status), 2);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    cr_assert_eq(r[0], 'A', "SIGTERM still runs the first hook, got '%c'", r[0]);
}

/* The other side: a call that succeeds replaces the hook for every caught signal. */
static void accepted_call_replaces_hook(void)
{
    static const int term[] = { SIGTERM }, usr1[] = { SIGUSR1 };

    if (sm_catch_signals(term, 1, hook_a) != SM_OK)
        _exit(10);
    if (sm_catch_signals(usr1, 1, hook_b) != SM_OK)
        _exit(11);
    raise(SIGTERM);
    _exit(12);
}

Test(edges_signals, an_accepted_call_replaces_the_hook)
{
    char r[2];
    int status;

    cr_assert_eq(child_report(accepted_call_replaces_hook, r, &status), 2);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    cr_assert_eq(r[0], 'B');
}

/* Issue 18 §4: a signal listed twice, then a refusal: every disposition is put back. */
Test(edges_signals, a_signal_listed_twice_is_restored_to_its_first_disposition)
{
    const int sigs[] = { SIGUSR1, SIGUSR1, SIGKILL };
    const int five[] = { SIGUSR2, SIGUSR1, SIGUSR2, SIGUSR1, SIGSTOP };
    struct sigaction now;

    cr_assert_eq(sm_catch_signals(sigs, 3, NULL), SM_E_INVAL);
    cr_assert_eq(sigaction(SIGUSR1, NULL, &now), 0);
    cr_assert_eq(now.sa_handler, SIG_DFL, "SIGUSR1 was put back");
    cr_assert_eq(sm_catch_signals(five, 5, hook_a), SM_E_INVAL);
    cr_assert_eq(sigaction(SIGUSR1, NULL, &now), 0);
    cr_assert_eq(now.sa_handler, SIG_DFL);
    cr_assert_eq(sigaction(SIGUSR2, NULL, &now), 0);
    cr_assert_eq(now.sa_handler, SIG_DFL);
    /* The same with a refusal by the OS of the second one. */
    sm_os_fault_arm(SM_OS_SIGACTION, 2, ENOMEM, false);
    cr_assert_eq(sm_catch_signals(sigs, 2, NULL), SM_E_SYS);
    sm_os_fault_reset();
    cr_assert_eq(sigaction(SIGUSR1, NULL, &now), 0);
    cr_assert_eq(now.sa_handler, SIG_DFL);
}

/* Also noticed: a signal the process started with ignored stays ignored (nohup). */
static void nohup_child(void)
{
    struct sigaction ign, now;

    interrupts_default();
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    if (sigaction(SIGHUP, &ign, NULL) != 0)
        _exit(10);
    if (sm_catch_interrupt() != SM_OK)
        _exit(11);
    if (sigaction(SIGHUP, NULL, &now) != 0 || now.sa_handler != SIG_IGN)
        _exit(12);
    if (sigaction(SIGINT, NULL, &now) != 0 || now.sa_handler == SIG_DFL ||
        now.sa_handler == SIG_IGN)
        _exit(13);
    raise(SIGHUP);
    _exit(0);
}

/* sm_catch_signals catches what it is told to, ignored or not: the list is explicit. */
Test(edges_signals, catch_signals_catches_an_ignored_signal_it_is_given)
{
    static const int usr1[] = { SIGUSR1 };
    struct sigaction ign, now;

    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    cr_assert_eq(sigaction(SIGUSR1, &ign, NULL), 0);
    cr_assert_eq(sm_catch_signals(usr1, 1, NULL), SM_OK);
    cr_assert_eq(sigaction(SIGUSR1, NULL, &now), 0);
    cr_assert(now.sa_handler != SIG_IGN && now.sa_handler != SIG_DFL);
    cr_assert(now.sa_flags & SA_ONSTACK, "on the alternate stack where there is one");
}

Test(edges_signals, catch_interrupt_leaves_ignored_signals_ignored)
{
    char r[2];
    int status;

    (void)child_report(nohup_child, r, &status);
    cr_assert(WIFEXITED(status), "killed by signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0);
}

/* Reading the dispositions first is a sigaction call: its refusal changes nothing. */
Test(edges_signals, catch_interrupt_refused_query_changes_nothing)
{
    struct sigaction now;

    interrupts_default();
    sm_os_fault_arm(SM_OS_SIGACTION, 3, ENOMEM, false);
    cr_assert_eq(sm_catch_interrupt(), SM_E_SYS);
    sm_os_fault_reset();
    cr_assert_eq(sigaction(SIGINT, NULL, &now), 0);
    cr_assert_eq(now.sa_handler, SIG_DFL);
    cr_assert_eq(sigaction(SIGTERM, NULL, &now), 0);
    cr_assert_eq(now.sa_handler, SIG_DFL);
}

/* Also noticed: the handler runs on the thread's alternate stack, if it has one. */
static volatile unsigned depth_sink;

static unsigned __attribute__((noinline)) recurse(unsigned n)
{
    volatile char pad[512];

    pad[0] = (char)n;
    depth_sink = n;
    if (n == UINT32_MAX)
        return 0;
    return recurse(n + 1) + (unsigned)pad[0];
}

static void overflow_child(void)
{
    static const int segv[] = { SIGSEGV };
    stack_t ss = { .ss_size = 1u << 16 };
    sm_buffer b;
    uint8_t x[8] = { 1 };

    ss.ss_sp = mmap(NULL, ss.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL) != 0)
        _exit(10);
    if (sm_buffer_from_bytes(x, sizeof x, &b) != SM_OK)
        _exit(11);
    if (sm_catch_signals(segv, 1, hook_a) != SM_OK)
        _exit(12);
    _exit((int)recurse(0));
}

Test(edges_signals, a_stack_overflow_purges_on_the_alternate_stack)
{
    char r[2];
    int status;

    cr_assert_eq(child_report(overflow_child, r, &status), 2, "the hook ran");
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "status %#x", status);
    cr_assert_eq(r[0], 'A');
    cr_assert_eq(r[1], SIGSEGV);
}

/* Also noticed: a caught stop signal ends the process at once; it does not stop it. */
static void tstp_child(void)
{
    static const int tstp[] = { SIGTSTP };

    /*
     * A process group of its own, with the parent outside it in the same session: not
     * orphaned, so the kernel does not discard a stop signal's default action.
     */
    if (setpgid(0, 0) != 0)
        _exit(9);
    if (sm_catch_signals(tstp, 1, hook_a) != SM_OK)
        _exit(10);
    raise(SIGTSTP);
    _exit(11);
}

Test(edges_signals, a_caught_sigtstp_exits_without_stopping)
{
    int fds[2], status;
    char r[2] = { 0 };
    pid_t pid;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        report_fd = fds[1];
        tstp_child();
    }
    close(fds[1]);
    cr_assert_eq(read(fds[0], r, 2), 2);
    cr_assert_eq(waitpid(pid, &status, WUNTRACED), pid);
    if (WIFSTOPPED(status)) {
        kill(pid, SIGKILL);
        (void)waitpid(pid, &status, 0);
        cr_assert_fail("the child stopped after its purge instead of exiting");
    }
    cr_assert(WIFEXITED(status), "status %#x", status);
    cr_assert_eq(WEXITSTATUS(status), 128 + SIGTSTP);
    cr_assert_eq(r[0], 'A');
}

/* ---- the memory layer's ranges (SM-REQ-014) ---- */

Test(edges_mem, lengths_past_the_end_of_the_address_space_are_refused)
{
    size_t page = sm_page_size();
    void *p;

    cr_assert_eq(sm_mem_alloc(page, &p), SM_OK);
    sm_os_fault_reset();
    cr_assert_eq(sm_mem_lock(p, (size_t)0 - 8), SM_E_INVAL);
    cr_assert_eq(sm_mem_lock(p, SIZE_MAX), SM_E_INVAL);
    cr_assert_eq(sm_mem_unlock(p, SIZE_MAX), SM_E_INVAL);
    cr_assert_eq(sm_mem_protect(p, SIZE_MAX, SM_PROT_NONE), SM_E_INVAL);
    cr_assert_eq(sm_mem_protect(p, SIZE_MAX - page + 2, SM_PROT_NONE), SM_E_INVAL);
    /* p + n one byte past the top: the kernel's rounding would wrap too. */
    cr_assert_eq(sm_mem_lock(p, UINTPTR_MAX - (uintptr_t)p + 1), SM_E_INVAL);
    /* free rounds first: a length that rounds without wrapping but ends past the top. */
    cr_assert_eq(sm_mem_free(p, UINTPTR_MAX - (uintptr_t)p), SM_E_INVAL);
    cr_assert_eq(sm_os_fault_calls(SM_OS_MLOCK), 0, "refused before any system call");
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNLOCK), 0);
    cr_assert_eq(sm_os_fault_calls(SM_OS_MPROTECT), 0);
    /* The largest length that still ends inside the address space reaches the OS
       (which ASan's mlock interceptor never calls: it returns 0). */
    if (SM_TEST_MLOCK_IS_REAL)
        cr_assert_eq(sm_mem_lock(p, UINTPTR_MAX - (uintptr_t)p - page + 1), SM_E_LOCK);
    cr_assert_eq(sm_mem_lock(p, page), SM_OK);
    cr_assert_eq(sm_mem_unlock(p, page), SM_OK);
    cr_assert_eq(sm_mem_protect(p, page, SM_PROT_READ), SM_OK);
    cr_assert_eq(sm_mem_free(p, page), SM_OK);
}

/* ---- audit (SM-REQ-102) ---- */

Test(edges_audit, pages_that_cannot_be_opened_for_the_check_are_reported)
{
    sm_secret s;
    uint8_t src[32] = { 7 };

    cr_assert_eq(sm_secret_new(sm_factory_guarded(), src, sizeof src, &s), SM_OK);
    sm_os_fault_arm(SM_OS_MPROTECT, 1, EACCES, false);
    cr_assert_eq(sm_audit(), SM_E_PROT, "a canary it could not look at is not SM_OK");
    cr_assert_eq(sm_last_os_error(), EACCES);
    sm_os_fault_reset();
    cr_assert_eq(sm_audit(), SM_OK);
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

static sm_status damage_last_canary_byte(const uint8_t *b, size_t n, void *ctx)
{
    size_t page = sm_page_size();
    uint8_t *at = (uint8_t *)(uintptr_t)b - 1;
    void *pg = (void *)((uintptr_t)at & ~(uintptr_t)(page - 1));

    (void)n;
    (void)ctx;
    if (sm_mem_protect(pg, page, SM_PROT_READWRITE) != SM_OK)
        return SM_E_SYS;
    *at ^= 1;
    return sm_mem_protect(pg, page, SM_PROT_READ);
}

/* The refusal for one object does not stop the walk: a damaged canary after it panics. */
static void refused_then_damaged(void *arg)
{
    sm_secret a, b;
    uint8_t src[32] = { 1 };
    int devnull = open("/dev/null", O_WRONLY);

    (void)arg;
    dup2(devnull, 2);
    if (sm_secret_new(sm_factory_guarded(), src, sizeof src, &a) != SM_OK ||
        sm_secret_new(sm_factory_guarded(), src, sizeof src, &b) != SM_OK ||
        sm_secret_with_bytes(b, damage_last_canary_byte, NULL) != SM_OK)
        _exit(10);
    sm_os_fault_arm(SM_OS_MPROTECT, 1, EACCES, false);
    (void)!sm_audit();
    _exit(11);
}

Test(edges_audit, the_walk_goes_on_after_a_refusal)
{
    cr_assert_eq(in_child(refused_then_damaged, NULL), 128 + SIGABRT);
}

/* ---- custom factories (SM-REQ-093, SM-REQ-099) ---- */

typedef enum { BAD_NONE, BAD_NULL_FILL, BAD_NULL_BYTES } badness;

typedef enum {
    RE_NONE,
    RE_WITH_BYTES,
    RE_TRY,
    RE_READ_AT,
    RE_CLOSE,
} reentry;

/* A small custom factory over sm_mem_*, whose hooks misbehave on request. */
static struct {
    atomic_int live;          /* pages created and not destroyed */
    atomic_int unreadable;    /* make_unreadable calls */
    badness    bad;
    reentry    re_open, re_shut;
    sm_secret  target;        /* the secret a hook calls back into */
    sm_status  re_status;     /* what that call returned */
    atomic_int re_calls;
} tf;

static sm_status tf_noop_fn(const uint8_t *b, size_t n, void *ctx)
{
    (void)b;
    (void)n;
    (void)ctx;
    return SM_OK;
}

static void tf_reenter(reentry how)
{
    uint8_t one;
    size_t got = 0;

    if (how == RE_NONE)
        return;
    atomic_fetch_add(&tf.re_calls, 1);
    switch (how) {
    case RE_WITH_BYTES:
        tf.re_status = sm_secret_with_bytes(tf.target, tf_noop_fn, NULL);
        break;
    case RE_TRY:
        tf.re_status = sm_secret_try_with_bytes(tf.target, tf_noop_fn, NULL);
        break;
    case RE_READ_AT:
        tf.re_status = sm_secret_read_at(tf.target, 0, &one, 1, &got);
        break;
    default:
        tf.re_status = sm_secret_close(tf.target);
        break;
    }
}

static sm_status tf_create(void *ctx, size_t len, void **state, uint8_t **fill)
{
    void *p;
    sm_status st = sm_mem_alloc(len, &p);

    (void)ctx;
    if (st != SM_OK)
        return st;
    atomic_fetch_add(&tf.live, 1);
    *state = p;
    if (tf.bad != BAD_NULL_FILL)
        *fill = p;
    return SM_OK;
}

static sm_status tf_seal(void *ctx, void *state)
{
    (void)ctx;
    return sm_mem_protect(state, sm_page_size(), SM_PROT_NONE);
}

static sm_status tf_open(void *ctx, void *state, const uint8_t **bytes)
{
    sm_status st = sm_mem_protect(state, sm_page_size(), SM_PROT_READ);

    (void)ctx;
    if (st != SM_OK)
        return st;
    if (tf.bad != BAD_NULL_BYTES)
        *bytes = state;
    tf_reenter(tf.re_open);
    return SM_OK;
}

static sm_status tf_shut(void *ctx, void *state)
{
    (void)ctx;
    atomic_fetch_add(&tf.unreadable, 1);
    tf_reenter(tf.re_shut);
    return sm_mem_protect(state, sm_page_size(), SM_PROT_NONE);
}

static sm_status tf_destroy(void *ctx, void *state)
{
    sm_status st;

    (void)ctx;
    st = sm_mem_free(state, sm_page_size());
    if (st == SM_OK)
        atomic_fetch_sub(&tf.live, 1);
    return st;
}

static const sm_factory test_factory = {
    .version = SM_FACTORY_VERSION,
    .create = tf_create,
    .seal = tf_seal,
    .make_readable = tf_open,
    .make_unreadable = tf_shut,
    .destroy = tf_destroy,
};

static void tf_reset(void)
{
    memset(&tf, 0, sizeof tf);
}

Test(edges_factory, create_with_a_null_fill_is_the_factorys_failure)
{
    sm_secret s = { 0 };
    uint8_t src[16] = { 3 };
    sm_stats st;

    tf_reset();
    tf.bad = BAD_NULL_FILL;
    cr_assert_eq(sm_secret_new(&test_factory, src, sizeof src, &s), SM_E_INVAL);
    cr_assert_eq(src[0], 3, "the source is untouched on failure");
    cr_assert_eq(sm_secret_random(&test_factory, 16, &s), SM_E_INVAL);
    cr_assert_eq(s.id, 0, "no handle written");
    cr_assert_eq(atomic_load(&tf.live), 0, "what create made was destroyed");
    cr_assert_eq(sm_stats_get(&st), SM_OK);
    cr_assert_eq(st.secrets_live, 0);
}

Test(edges_factory, make_readable_with_null_bytes_is_the_factorys_failure)
{
    sm_secret s;
    uint8_t src[16] = { 3 }, dst[16] = { 0 };
    size_t got = 99;

    tf_reset();
    cr_assert_eq(sm_secret_new(&test_factory, src, sizeof src, &s), SM_OK);
    tf.bad = BAD_NULL_BYTES;
    cr_assert_eq(sm_secret_with_bytes(s, tf_noop_fn, NULL), SM_E_INVAL);
    cr_assert_eq(atomic_load(&tf.unreadable), 1, "the window it opened was shut again");
    cr_assert_eq(sm_secret_read_at(s, 0, dst, sizeof dst, &got), SM_E_INVAL);
    cr_assert_eq(got, 99, "*got is not written on error");
    cr_assert_eq(sm_secret_try_with_bytes(s, tf_noop_fn, NULL), SM_E_INVAL);
    cr_assert_eq(smi_secret_state(s.id), SMI_SEC_OPEN_IDLE, "at rest, as after any failed open");
    tf.bad = BAD_NONE;
    cr_assert_eq(sm_secret_read_at(s, 0, dst, sizeof dst, &got), SM_OK);
    cr_assert_eq(dst[0], 3);
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert_eq(atomic_load(&tf.live), 0);
}

/* Hooks that call back into their own secret get SM_E_STATE at once, never a hang. */
static void reentry_case(reentry in_open, reentry in_shut, sm_status want)
{
    sm_secret s;
    uint8_t src[16] = { 5 };

    tf_reset();
    cr_assert_eq(sm_secret_new(&test_factory, src, sizeof src, &s), SM_OK);
    tf.target = s;
    tf.re_open = in_open;
    tf.re_shut = in_shut;
    tf.re_status = SM_OK;
    cr_assert_eq(sm_secret_with_bytes(s, tf_noop_fn, NULL), SM_OK);
    cr_assert_eq(atomic_load(&tf.re_calls), 1);
    cr_assert_eq(tf.re_status, want, "case %d/%d gave %d", in_open, in_shut, tf.re_status);
    cr_assert_not(sm_secret_is_closed(s), "the refused close changed nothing");
    tf.re_open = tf.re_shut = RE_NONE;
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert_eq(atomic_load(&tf.live), 0);
}

Test(edges_factory, with_bytes_from_make_readable_is_refused, .timeout = 20)
{
    reentry_case(RE_WITH_BYTES, RE_NONE, SM_E_STATE);
}

Test(edges_factory, read_at_from_make_readable_is_refused, .timeout = 20)
{
    reentry_case(RE_READ_AT, RE_NONE, SM_E_STATE);
}

/* A try does not wait: the WINDOW-CHANGING cell's SM_E_BUSY, as from any thread. */
Test(edges_factory, try_from_make_readable_is_busy, .timeout = 20)
{
    reentry_case(RE_TRY, RE_NONE, SM_E_BUSY);
}

Test(edges_factory, close_from_make_readable_is_refused, .timeout = 20)
{
    reentry_case(RE_CLOSE, RE_NONE, SM_E_STATE);
}

Test(edges_factory, with_bytes_from_make_unreadable_is_refused, .timeout = 20)
{
    reentry_case(RE_NONE, RE_WITH_BYTES, SM_E_STATE);
}

Test(edges_factory, close_from_make_unreadable_is_refused, .timeout = 20)
{
    reentry_case(RE_NONE, RE_CLOSE, SM_E_STATE);
}

/* destroy runs with the secret CLOSING: a call back into it is refused already. */
static sm_status tf_destroy_reenter(void *ctx, void *state)
{
    tf.re_status = sm_secret_with_bytes(tf.target, tf_noop_fn, NULL);
    atomic_fetch_add(&tf.re_calls, 1);
    return tf_destroy(ctx, state);
}

Test(edges_factory, with_bytes_from_destroy_is_refused, .timeout = 20)
{
    sm_factory f = test_factory;
    sm_secret s;
    uint8_t src[16] = { 5 };

    tf_reset();
    f.destroy = tf_destroy_reenter;
    cr_assert_eq(sm_secret_new(&f, src, sizeof src, &s), SM_OK);
    tf.target = s;
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert_eq(tf.re_status, SM_E_STATE);
    cr_assert_eq(atomic_load(&tf.live), 0);
}

/* ---- try_with_bytes and the enclave key's locks (SM-REQ-094) ---- */

static sm_status first_byte_is_9(const uint8_t *b, size_t n, void *ctx)
{
    (void)ctx;
    return n == 32 && b[0] == 9 ? SM_OK : SM_E_AUTH;
}

/*
 * Issue 11 §4.6: a try that must decrypt an encrypted secret's window does not wait for
 * the enclave key's lock or a workspace slot that other operations hold: SM_E_BUSY, the
 * secret at rest, nothing left behind. The test holds the locks on its own thread, where
 * a blocking lock would wait for ever (the suite's timeout).
 */
Test(edges_try, try_does_not_wait_for_the_enclave_keys_locks, .timeout = 20)
{
    sm_secret s;
    uint8_t src[32] = { 9 };
    counters c0, c1;

    cr_assert_eq(sm_secret_new(sm_factory_encrypted(), src, sizeof src, &s), SM_OK);
    cr_assert_eq(sm_secret_with_bytes(s, first_byte_is_9, NULL), SM_OK);
    counters_get(&c0);
    for (int slots = 0; slots < 2; slots++) {
        smi_coffer_test_hold(slots, true);
        cr_assert_eq(sm_secret_try_with_bytes(s, first_byte_is_9, NULL), SM_E_BUSY,
                     "%s", slots ? "every workspace slot held" : "the coffer lock held");
        smi_coffer_test_hold(slots, false);
        cr_assert_eq(smi_secret_state(s.id), SMI_SEC_OPEN_IDLE);
    }
    counters_get(&c1);
    cr_assert(counters_equal(&c0, &c1, CMP_MAPPED | CMP_ALLOCATIONS), "the window was unmade");
    cr_assert_eq(sm_secret_try_with_bytes(s, first_byte_is_9, NULL), SM_OK);
    /* The flag is the try's alone: a plain access and an enclave work as before. */
    cr_assert_eq(sm_secret_with_bytes(s, first_byte_is_9, NULL), SM_OK);
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

/* ---- the fd readers' limit (SM-REQ-051) ---- */

/* buffer.h documents it: 16 MiB, 2^24 bytes. */
#define FD_MAX ((size_t)1 << 24)

/* A temporary regular file of n bytes of 'x', at offset 0. */
static int file_of(size_t n)
{
    char path[] = "/tmp/sm-edges-XXXXXX";
    int fd = mkstemp(path);
    uint8_t chunk[4096];

    cr_assert_geq(fd, 0);
    unlink(path);
    memset(chunk, 'x', sizeof chunk);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof chunk ? n - done : sizeof chunk;

        cr_assert_eq(write(fd, chunk, k), (ssize_t)k);
        done += k;
    }
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* FD_MAX + 4096 bytes of 'y' into the pipe, then end of file. */
static void *pipe_writer(void *arg)
{
    int fd = *(int *)arg;
    uint8_t chunk[4096];

    memset(chunk, 'y', sizeof chunk);
    for (size_t done = 0; done < FD_MAX + 4096; done += sizeof chunk)
        if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk)
            break;
    close(fd);
    return NULL;
}

static void expect_limit(int fd, bool until, unsigned what)
{
    counters c0, c1;
    sm_buffer b = { 0 };

    /* The runtime and its canary key page first, so that they are not counted here. */
    cr_assert_eq(sm_buffer_new(1, &b), SM_OK);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    b.id = 0;
    counters_get(&c0);
    cr_assert_eq(until ? sm_buffer_from_fd_until(fd, '\n', &b) : sm_buffer_from_fd_all(fd, &b),
                 SM_E_NOMEM);
    cr_assert_eq(b.id, 0);
    counters_get(&c1);
    cr_assert(counters_equal(&c0, &c1, what), "nothing leaked");
}

Test(edges_fd, from_fd_all_stops_one_byte_past_the_limit, .timeout = 60)
{
    int fd = file_of(FD_MAX + 5000);
    sm_buffer b;

    sm_os_fault_reset();
    expect_limit(fd, false, CMP_MAPPED | CMP_ALLOCATIONS);
    cr_assert_eq(lseek(fd, 0, SEEK_CUR), (off_t)FD_MAX + 1, "read: the limit and one byte");
    close(fd);
    fd = file_of(FD_MAX);
    cr_assert_eq(sm_buffer_from_fd_all(fd, &b), SM_OK, "exactly the limit fits");
    cr_assert_eq(sm_buffer_size(b), FD_MAX);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    close(fd);
}

Test(edges_fd, from_fd_until_stops_one_byte_past_the_limit, .timeout = 120)
{
    int fd = file_of(FD_MAX + 5000);
    int fds[2];

    expect_limit(fd, true, CMP_MAPPED | CMP_ALLOCATIONS);
    cr_assert_eq(lseek(fd, 0, SEEK_CUR), (off_t)FD_MAX + 1);
    close(fd);
    /* A pipe is read byte by byte: the same limit, FD_MAX + 1 bytes consumed. */
    cr_assert_eq(pipe(fds), 0);
    {
        pthread_t t;
        uint8_t chunk[4096];
        size_t done = 0;

        cr_assert_eq(pthread_create(&t, NULL, pipe_writer, &fds[1]), 0);
        /* Not CMP_MAPPED: the writer thread's own mappings may come and go meanwhile. */
        expect_limit(fds[0], true, CMP_ALLOCATIONS);
        for (ssize_t r; (r = read(fds[0], chunk, sizeof chunk)) > 0;)
            done += (size_t)r;
        cr_assert_eq(pthread_join(t, NULL), 0);
        cr_assert_eq(done, 4096 - 1, "what follows stays in the pipe");
        close(fds[0]);
    }
}

/* /dev/zero never ends: the reader gives up at the limit (RLIMIT_AS as a safety net). */
static void dev_zero_child(void *arg)
{
    struct rlimit as = { 1u << 30, 1u << 30 };
    sm_buffer b;
    int fd = open("/dev/zero", O_RDONLY);

    (void)arg;
    if (fd < 0 || setrlimit(RLIMIT_AS, &as) != 0)
        _exit(10);
    if (sm_buffer_from_fd_all(fd, &b) != SM_E_NOMEM)
        _exit(11);
    if (sm_buffer_from_fd_until(fd, 1, &b) != SM_E_NOMEM)
        _exit(12);
    _exit(0);
}

Test(edges_fd, dev_zero_is_refused_at_the_limit, .timeout = 60)
{
    cr_assert_eq(in_child(dev_zero_child, NULL), 0);
}
