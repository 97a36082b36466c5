/* SPDX-License-Identifier: ISC */
/* sm_status values and strings, against spec/status.tsv. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "helpers.h"

Test(status, values_and_strings_match_the_spec)
{
    tsv_row *rows;
    size_t n = tsv_load("status.tsv", &rows);

    /* SM_OK to SM_E_SYS, SM_E_READONLY, SM_E_CALLBACK, and the user range's two ends. */
    cr_assert_eq(n, SM_E_SYS + 1 + 4, "one row per status");
    for (size_t j = 0; j < n; j++) {
        sm_status s = status_from_name(rows[j].f[1]);

        cr_expect_eq((int)s, atoi(rows[j].f[0]), "%s has value %s", rows[j].f[1], rows[j].f[0]);
        cr_expect_str_eq(sm_status_str(s), rows[j].f[2]);
    }
    tsv_free(rows, n);
}

Test(status, unknown_values_still_give_a_string)
{
    cr_assert_str_eq(sm_status_str((sm_status)(SM_E_SYS + 1)), "unknown sm_status");
    cr_assert_str_eq(sm_status_str((sm_status)-1), "unknown sm_status");
    cr_assert_str_eq(sm_status_str((sm_status)1000000), "unknown sm_status");
    /* The gap left after spec/api.md's values, and either side of the user range. */
    cr_assert_str_eq(sm_status_str((sm_status)31), "unknown sm_status");
    cr_assert_str_eq(sm_status_str((sm_status)(SM_E_CALLBACK + 1)), "unknown sm_status");
    cr_assert_str_eq(sm_status_str((sm_status)(SM_E_USER - 1)), "unknown sm_status");
    cr_assert_str_eq(sm_status_str((sm_status)(SM_E_USER_MAX + 1)), "unknown sm_status");
    cr_assert_str_eq(sm_status_str((sm_status)999), "unknown sm_status");
}

Test(status, the_user_range_is_named)
{
    for (int s = SM_E_USER; s <= SM_E_USER_MAX; s++)
        cr_assert_str_eq(sm_status_str((sm_status)s), "SM_E_USER: a callback's own status");
}

static void *other_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)sm_last_os_error();
}

Test(status, last_os_error_is_per_thread_and_sticky)
{
    pthread_t t;
    void *seen;

    cr_assert_eq(sm_last_os_error(), 0, "no OS call has failed yet");
    sm_os_fault_arm(SM_OS_MLOCK, 1, EPERM, false);
    cr_assert_eq(sm_mem_lock(&t, 1), SM_E_LOCK);
    cr_assert_eq(sm_last_os_error(), EPERM);
    cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
    pthread_join(t, &seen);
    cr_assert_eq((intptr_t)seen, 0, "another thread sees its own last error");
    /* A successful call does not reset it. */
    cr_assert_eq(sm_random(&t, sizeof t), SM_OK);
    cr_assert_eq(sm_last_os_error(), EPERM);
}
