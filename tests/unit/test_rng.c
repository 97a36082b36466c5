/* SPDX-License-Identifier: ISC */
/*
 * The canary and secret generator's key page in a forked child (SM-REQ-029): mlock does
 * not survive fork, so the child counts the page as unlocked until it locks it again,
 * and under SM_LOCK_REQUIRED makes no random secret while it cannot.
 */
#include <criterion/criterion.h>

#include "helpers.h"

static void init_with(sm_lock_policy policy)
{
    sm_config cfg = { policy, SM_BACKING_ANON, false };

    cr_assert_eq(sm_init(&cfg), SM_OK);
}

/* ---- the count before the page is locked again ---- */

static void child_counts_the_page_unlocked(void *arg)
{
    size_t page = sm_page_size();
    sm_buffer b;
    sm_stats s;

    (void)arg;
    /* No call yet: the page is not locked in this process, and sm_stats says so. */
    if (sm_stats_get(&s) != SM_OK)
        _exit(2);
    if (SM_TEST_MLOCK_IS_REAL && locked_bytes_total() != 0)
        _exit(3); /* the kernel: nothing of the parent's stays locked here */
    if (s.bytes_locked != 0 || s.bytes_unlocked != page)
        _exit(4);
    /* The first use locks it again, and moves it back. */
    if (sm_buffer_random(32, &b) != SM_OK || sm_stats_get(&s) != SM_OK)
        _exit(5);
    if (s.bytes_unlocked != 0)
        _exit(6);
    if (SM_TEST_MLOCK_IS_REAL && locked_bytes_total() != s.bytes_locked)
        _exit(7);
    _exit(0);
}

Test(rng, forked_child_counts_the_key_page_unlocked_until_it_locks_it)
{
    int rc;

    init_with(SM_LOCK_REQUIRED);
    rc = in_child(child_counts_the_page_unlocked, NULL);
    cr_assert_eq(rc, 0, "the child exited with %d", rc);
}

/* ---- SM_LOCK_REQUIRED: no secret from an unlocked key page ---- */

static void child_refused_then_allowed(void *arg)
{
    size_t page = sm_page_size();
    uint8_t before[32], after[32];
    uint64_t ctr;
    sm_buffer b;
    sm_enclave e;
    sm_secret sec;
    sm_stats s;

    (void)arg;
    /*
     * sm_buffer_random: the new region's mlock (1st) goes through; the key page's, when
     * the region's canary reseeds (2nd), and smi_rng_fill's retry (3rd) are refused.
     */
    sm_os_fault_reset();
    sm_os_fault_arm(SM_OS_MLOCK, 2, ENOMEM, true);
    if (sm_buffer_random(32, &b) != SM_E_LOCK)
        _exit(10);
    if (sm_os_fault_calls(SM_OS_MLOCK) != 3)
        _exit(11);
    if (sm_stats_get(&s) != SM_OK || s.bytes_unlocked != page || s.buffers_live != 0)
        _exit(12); /* the key page, truthfully unlocked; the region unmade */
    /*
     * A protected secret has no canary: its mapping's mlock (1st) goes through, and
     * smi_rng_fill's retry for the key page (2nd) is refused.
     */
    sm_os_fault_reset();
    sm_os_fault_arm(SM_OS_MLOCK, 2, ENOMEM, true);
    if (sm_secret_random(sm_factory_protected(), 32, &sec) != SM_E_LOCK ||
        sm_os_fault_calls(SM_OS_MLOCK) != 2)
        _exit(13);
    /* Its mapping, rolled back, went to the pool (pool.c): emptied, so that the pool holds
       only what the next step gives it. */
    if (pooled_regions() != 1)
        _exit(23);
    smi_pool_purge();
    /* The same for sm_enclave_random (its plaintext region's mlock, then the key page's). */
    sm_os_fault_reset();
    sm_os_fault_arm(SM_OS_MLOCK, 2, ENOMEM, true);
    if (sm_enclave_random(32, &e) != SM_E_LOCK || sm_os_fault_calls(SM_OS_MLOCK) != 2)
        _exit(24);
    /*
     * And sm_buffer_scramble, which writes nothing then. sm_enclave_random's region went
     * to the region pool, so the key page's refused lock is tried once more after the
     * pool is emptied (smi_lock_pages): 3 calls, and the pool is empty.
     */
    sm_os_fault_reset();
    sm_os_fault_arm(SM_OS_MLOCK, 2, ENOMEM, true);
    if (pooled_regions() != 1 || sm_buffer_new(32, &b) != SM_OK ||
        sm_buffer_scramble(b) != SM_E_LOCK || sm_os_fault_calls(SM_OS_MLOCK) != 3 ||
        pooled_regions() != 0)
        _exit(25);
    for (unsigned i = 0; i < 32; i++)
        if (sm_buffer_data(b)[i] != 0)
            _exit(26);
    if (sm_buffer_destroy(b) != SM_OK)
        _exit(27);
    sm_os_fault_reset();
    if (smi_rng_test_peek(before, &ctr) != SM_OK)
        _exit(14); /* the canaries' key, drawn while the page was unlocked */
    /* Once the page locks, the key drawn while it was unlocked is replaced. */
    if (sm_buffer_random(32, &b) != SM_OK)
        _exit(15);
    if (sm_stats_get(&s) != SM_OK || s.bytes_unlocked != 0)
        _exit(16);
    if (SM_TEST_MLOCK_IS_REAL && locked_bytes_total() != s.bytes_locked)
        _exit(17);
    if (smi_rng_test_peek(after, &ctr) != SM_OK || memcmp(before, after, 32) == 0)
        _exit(18);
    /* Locked now: no more mlock for the key page. */
    sm_os_fault_reset();
    if (sm_buffer_random(32, &b) != SM_OK || sm_os_fault_calls(SM_OS_MLOCK) != 1)
        _exit(19);
    _exit(0);
}

Test(rng, forked_child_under_required_makes_no_secret_on_an_unlocked_key_page)
{
    SKIP_WITHOUT_LINUX("no MADV_WIPEONFORK: a forked child keeps its copy of the pages");
    int rc;

    init_with(SM_LOCK_REQUIRED);
    rc = in_child(child_refused_then_allowed, NULL);
    cr_assert_eq(rc, 0, "the child exited with %d", rc);
}

/* ---- SM_LOCK_BEST_EFFORT: a refusal is final, and the page is counted unlocked ---- */

static void child_goes_on_unlocked(void *arg)
{
    size_t page = sm_page_size();
    sm_buffer b;
    sm_stats s;

    (void)arg;
    sm_os_fault_reset();
    sm_os_fault_arm(SM_OS_MLOCK, 2, ENOMEM, false);
    if (sm_buffer_random(32, &b) != SM_OK)
        _exit(20);
    if (sm_os_fault_calls(SM_OS_MLOCK) != 2)
        _exit(21); /* the region's, the key page's: no retry */
    if (sm_stats_get(&s) != SM_OK || s.bytes_unlocked != page)
        _exit(22);
    sm_os_fault_reset();
    if (sm_buffer_random(32, &b) != SM_OK || sm_os_fault_calls(SM_OS_MLOCK) != 1)
        _exit(23); /* never tried again */
    _exit(0);
}

Test(rng, forked_child_under_best_effort_goes_on_unlocked)
{
    int rc;

    init_with(SM_LOCK_BEST_EFFORT);
    rc = in_child(child_goes_on_unlocked, NULL);
    cr_assert_eq(rc, 0, "the child exited with %d", rc);
}
