/* SPDX-License-Identifier: ISC */
/* sm_init and sm_stats_get: one configuration per process (each test is a new process). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "helpers.h"

Test(runtime, first_use_initialises_with_defaults)
{
    sm_stats s;
    sm_config other = { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false };

    cr_assert_eq(sm_stats_get(&s), SM_OK);
    cr_assert_eq(s.allocations_total, 1, "the key region");
    cr_assert_eq(s.bytes_locked, sm_page_size());
    cr_assert_eq(s.bytes_unlocked, 0);
    cr_assert_not(s.secretmem);
    cr_assert_eq(s.buffers_live + s.enclaves_live + s.streams_live + s.secrets_live, 0);
    cr_assert_eq(sm_init(NULL), SM_OK, "the defaults again");
    cr_assert_eq(sm_init(&other), SM_E_STATE, "a different configuration");
}

Test(runtime, init_validates_and_is_idempotent)
{
    sm_config bad1 = { (sm_lock_policy)2, SM_BACKING_ANON, false };
    sm_config bad2 = { SM_LOCK_REQUIRED, (sm_backing)3, false };
    sm_config cfg = { SM_LOCK_BEST_EFFORT, SM_BACKING_SECRETMEM_PREFERRED, false };
    sm_config same = cfg;
    sm_config differs = cfg;

    differs.disable_core_dumps = true;
    cr_assert_eq(sm_init(&bad1), SM_E_INVAL);
    cr_assert_eq(sm_init(&bad2), SM_E_INVAL);
    cr_assert_eq(sm_init(&cfg), SM_OK);
    cr_assert_eq(sm_init(&same), SM_OK);
    cr_assert_eq(sm_init(&differs), SM_E_STATE);
    cr_assert_eq(sm_init(NULL), SM_E_STATE, "the defaults differ too");
    cr_assert_eq(sm_init(&bad1), SM_E_INVAL, "validation comes first");
}

Test(runtime, stats_rejects_null)
{
    cr_assert_eq(sm_stats_get(NULL), SM_E_INVAL);
}

Test(runtime, failed_init_is_retryable_and_changes_nothing)
{
    SKIP_WITHOUT_LINUX("no prctl(PR_SET_DUMPABLE); spec/os-errors.tsv and spec/syscalls.tsv are Linux's");
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_ANON, true };
    counters before, after;
    sm_stats s;

    counters_get(&before);
    sm_os_fault_arm(SM_OS_SETRLIMIT, 1, EPERM, false);
    cr_assert_eq(sm_init(&cfg), SM_E_SYS);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
    cr_assert_eq(sm_init(&cfg), SM_OK);
    cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
    cr_assert_eq(sm_stats_get(&s), SM_OK);
    cr_assert_eq(s.allocations_total, 1);
}

Test(runtime, stats_propagates_init_failure)
{
    sm_stats s = { .allocations_total = 77 };

    sm_os_fault_arm(SM_OS_GETRANDOM, 1, EIO, true);
    cr_assert_eq(sm_stats_get(&s), SM_E_RANDOM);
    cr_assert_eq(s.allocations_total, 77, "out untouched");
    sm_os_fault_reset();
    cr_assert_eq(sm_stats_get(&s), SM_OK);
}

Test(runtime, secretmem_preferred_reports_it)
{
    SKIP_WITHOUT_SECRETMEM();
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false };
    sm_stats s;

    cr_assert_eq(sm_init(&cfg), SM_OK);
    cr_assert_eq(sm_stats_get(&s), SM_OK);
    cr_assert(s.secretmem, "this kernel has CONFIG_SECRETMEM");
}

Test(runtime, secretmem_preferred_without_kernel_support_falls_back)
{
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false };
    sm_stats s;

    sm_os_fault_arm(SM_OS_MEMFD_SECRET, 1, ENOSYS, true);
    cr_assert_eq(sm_init(&cfg), SM_OK);
    cr_assert_eq(sm_stats_get(&s), SM_OK);
    cr_assert_not(s.secretmem);
    cr_assert_eq(s.bytes_locked, sm_page_size(), "the key region is anonymous and locked");
}

Test(runtime, secretmem_required_without_kernel_support_is_unsupported)
{
    SKIP_WITHOUT_SECRETMEM();
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_REQUIRED, false };
    counters before, after;

    counters_get(&before);
    sm_os_fault_arm(SM_OS_MEMFD_SECRET, 1, ENOSYS, true);
    cr_assert_eq(sm_init(&cfg), SM_E_UNSUPPORTED);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    sm_os_fault_reset();
    cr_assert_eq(sm_init(&cfg), SM_OK, "the failed init left the library uninitialised");
}

Test(runtime, forked_child_gets_a_fresh_canary_key)
{
    SKIP_WITHOUT_LINUX("no MADV_WIPEONFORK: a forked child keeps its copy of the pages");
    smi_region a, b;
    int fds[2];
    pid_t pid;
    uint8_t child_seed[SMI_CANARY_SEED];

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(smi_region_alloc(10, NULL, &a), SM_OK);
    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        /* The key page was wiped by the fork: a new key must be drawn, not zeroes used. */
        if (smi_region_alloc(10, NULL, &b) != SM_OK || write(fds[1], b.seed, sizeof b.seed) != 32)
            _exit(1);
        _exit(0);
    }
    cr_assert_eq(read(fds[0], child_seed, sizeof child_seed), (ssize_t)sizeof child_seed);
    cr_assert_eq(smi_region_alloc(10, NULL, &b), SM_OK);
    /* Same counter value in both processes: equal patterns would mean the same key. */
    cr_assert_not(sm_equal(child_seed, b.seed, SMI_CANARY_SEED));
    cr_assert_eq(smi_region_free(&a), SM_OK);
    cr_assert_eq(smi_region_free(&b), SM_OK);
}

/*
 * A fork while another thread is changing the canary key (its first seeding, or a
 * purge): the child has no such thread, so the change must not stay pending there, or
 * the child's first canary waits for it for ever. Found by a 10 s hang of
 * coffer/fork_during_operations_does_not_deadlock at its first fork.
 */
Test(runtime, forked_child_is_not_held_by_a_parent_key_change)
{
    smi_region a, b;
    int status;
    pid_t pid;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(smi_region_alloc(10, NULL, &a), SM_OK);
    smi_rng_test_hold_writer(true);
    pid = fork();
    if (pid == 0) {
        alarm(5); /* a wait for ever ends as SIGALRM */
        _exit(smi_region_alloc(10, NULL, &b) == SM_OK ? 0 : 1);
    }
    smi_rng_test_hold_writer(false);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child did not get a canary (status %#x)", status);
    cr_assert_eq(smi_region_free(&a), SM_OK);
}

/*
 * With secretmem backing the key page must still be anonymous WIPEONFORK memory: a
 * DONTFORK key page would leave a hole in the child that the child's next region fills,
 * and the reseed would then write the key into that region's data.
 */
Test(runtime, forked_child_with_secretmem_gets_clean_regions)
{
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false };
    pid_t pid;
    int status;

    cr_assert_eq(sm_init(&cfg), SM_OK);
    pid = fork();
    if (pid == 0) {
        for (int round = 0; round < 8; round++) {
            smi_region r;
            uint8_t *d;

            if (smi_region_alloc(100, NULL, &r) != SM_OK)
                _exit(1);
            d = smi_region_data(&r);
            for (int i = 0; i < 100; i++)
                if (d[i] != 0)
                    _exit(2);
            if (smi_region_free(&r) != SM_OK)
                _exit(3);
        }
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "child died of signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0);
}

/*
 * Issue 18 §1: init_lock was outside the fork handlers, so a fork while another thread
 * was inside sm_init (which takes it on every call, initialised or not) left the child
 * with it locked and the child's first sm_init waited for ever: 7 to 12 children out of
 * 20 hung. Each child here has 2 s to get through sm_init.
 */
static atomic_bool init_loop_stop;

static void *init_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&init_loop_stop))
        if (sm_init(NULL) != SM_OK)
            abort();
    return NULL;
}

Test(runtime, fork_during_sm_init_does_not_hang_the_child)
{
    enum { CHILDREN = 20 };
    pthread_t t;
    pid_t pids[CHILDREN];
    int hung = 0;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(pthread_create(&t, NULL, init_loop, NULL), 0);
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            alarm(2); /* a wait for ever ends as SIGALRM */
            _exit(sm_init(NULL) == SM_OK ? 0 : 1);
        }
    }
    atomic_store(&init_loop_stop, true);
    cr_assert_eq(pthread_join(t, NULL), 0);
    for (int i = 0; i < CHILDREN; i++) {
        int status;

        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            hung++;
    }
    cr_assert_eq(hung, 0, "%d children of %d did not get through sm_init", hung, CHILDREN);
}

/*
 * A program's first call made while a fork is already running its prepare handlers
 * (deterministically: from inside one, registered by the test before any library call,
 * as another library's handler would be; another thread's first call races the same
 * way). When the runtime registered its fork handlers at that first call, glibc (2.34
 * and later) ran none of them for this fork, not even the child's: the child kept the
 * pre-fork buffer live (buffers_live 1: status 2 here), and a lock that another
 * thread's first call held at such a fork (init_lock, the registry's) would have stayed
 * locked there for ever. Registered at load, they run after the test's prepare, as for
 * any later fork.
 */
static sm_buffer made_in_prepare;
static atomic_int made_in_prepare_status = -1;

static void first_call_in_prepare(void)
{
    static atomic_bool done;

    if (!atomic_exchange(&done, true))
        atomic_store(&made_in_prepare_status, sm_buffer_new(32, &made_in_prepare));
}

static void child_finds_the_buffer_stale(void *arg)
{
    sm_stats s;

    (void)arg;
    alarm(10); /* a lock copied held ends as SIGALRM, not as a hung suite */
    if (sm_stats_get(&s) != SM_OK)
        _exit(1);
    if (s.buffers_live != 0)
        _exit(2); /* the runtime's child handler did not run */
    if (sm_buffer_destroy(made_in_prepare) != SM_E_STATE)
        _exit(3);
    _exit(0);
}

Test(runtime, first_call_during_a_fork_runs_the_fork_handlers)
{
    SKIP_WITHOUT_LINUX("no MADV_WIPEONFORK: a forked child keeps its copy of the pages");
    int st;

    cr_assert_eq(pthread_atfork(first_call_in_prepare, NULL, NULL), 0);
    st = in_child(child_finds_the_buffer_stale, NULL);
    cr_assert_eq(atomic_load(&made_in_prepare_status), SM_OK);
    cr_assert_eq(st, 0, "the child: %d (2: the pre-fork buffer was live there)", st);
    cr_assert_eq(sm_buffer_destroy(made_in_prepare), SM_OK, "the parent's buffer is its own");
}

/*
 * The registration at load refused (libc could not grow its handler list). A
 * constructor has no caller to tell: every sm_init of the process, and every first call
 * that initialises, gives SM_E_NOMEM, makes nothing and tries no second registration
 * (which, made lazily, would race a fork as above). The refusal has to happen before
 * any test code runs, so this test runs itself again in a new process with
 * ATFORK_REFUSED set, where a constructor that runs ahead of the library's (a priority
 * runs before none) plans the fault. That run writes "ok" to the file ATFORK_REFUSED
 * names as its last step: a filter that matched no test would pass too.
 */
#define ATFORK_REFUSED "SM_TEST_ATFORK_REFUSED_AT_LOAD"

__attribute__((constructor(101))) static void refuse_atfork_at_load(void)
{
    if (getenv(ATFORK_REFUSED) != NULL)
        sm_os_fault_arm(SM_OS_ATFORK, 1, ENOMEM, false);
}

static void run_again_refused(void *mark)
{
    char self[4096], filter[] = "runtime/fork_handlers_refused_at_load_fail_every_init";
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char *argv[] = { self, "--quiet", "--filter", filter, NULL };

    if (n <= 0)
        _exit(90);
    self[n] = '\0';
    /* BXFI_MAP marks Criterion's own workers: without it, this is a new runner. */
    if (setenv(ATFORK_REFUSED, mark, 1) != 0 || unsetenv("BXFI_MAP") != 0)
        _exit(91);
    execv(self, argv);
    _exit(92);
}

Test(runtime, fork_handlers_refused_at_load_fail_every_init)
{
    const char *mark = getenv(ATFORK_REFUSED);
    counters before, after;
    sm_buffer b;
    sm_enclave e;
    sm_stats s;
    uint8_t x = 1;
    FILE *f;

    if (mark == NULL) {
        char path[] = "/tmp/securemem-atfork-XXXXXX", got[3] = { 0 };
        int fd = mkstemp(path), st;
        ssize_t n;

        cr_assert_geq(fd, 0);
        st = in_child(run_again_refused, path);
        n = pread(fd, got, 2, 0);
        (void)close(fd);
        (void)unlink(path);
        cr_assert_eq(st, 0, "the run with the registration refused: %d", st);
        cr_assert(n == 2 && strcmp(got, "ok") == 0, "that run did not reach its end");
        return;
    }
    cr_assert_eq(sm_os_fault_calls(SM_OS_ATFORK), 1, "the constructor tried, once");
    counters_get(&before);
    cr_assert_eq(sm_init(NULL), SM_E_NOMEM);
    cr_assert_eq(sm_init(NULL), SM_E_NOMEM, "and again");
    cr_assert_eq(sm_stats_get(&s), SM_E_NOMEM);
    cr_assert_eq(sm_buffer_new(16, &b), SM_E_NOMEM);
    cr_assert_eq(sm_enclave_new(&x, 1, &e), SM_E_NOMEM);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    cr_assert_eq(sm_os_fault_calls(SM_OS_ATFORK), 1, "no registration after load");
    f = fopen(mark, "w");
    cr_assert_not_null(f);
    cr_assert(fputs("ok", f) >= 0 && fclose(f) == 0);
}

/*
 * Issue 18, "also noticed": mlock does not survive fork, yet a forked child's sm_stats
 * counted the canary key page (and the enclave key's regions) as locked until the
 * child locked them again, at its first canary (or seal). bytes_locked must agree with
 * the kernel's Locked: total in the child from the start, and again once relocked.
 */
static bool stats_match_kernel(void)
{
    sm_stats s;

    return sm_stats_get(&s) == SM_OK && s.bytes_locked == locked_bytes_total();
}

Test(runtime, forked_child_counts_only_what_is_locked)
{
    sm_enclave e;
    uint8_t x = 1;
    pid_t pid;
    int status;

    if (!SM_TEST_MLOCK_IS_REAL)
        cr_skip_test("mlock is not real under ASan");
    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_enclave_new(&x, 1, &e), SM_OK); /* the enclave key's regions too */
    cr_assert(stats_match_kernel(), "the parent agrees with the kernel");
    pid = fork();
    if (pid == 0) {
        smi_region r;

        if (!stats_match_kernel())
            _exit(1);
        if (smi_region_alloc(10, NULL, &r) != SM_OK || !stats_match_kernel())
            _exit(2); /* the canary key page is locked again */
        if (sm_enclave_new(&x, 1, &e) != SM_OK || !stats_match_kernel())
            _exit(3); /* the enclave key's regions are locked again */
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died of signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0, "the child's counters and the kernel disagree at step %d",
                 WEXITSTATUS(status));
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
}
