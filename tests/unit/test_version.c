/* SPDX-License-Identifier: ISC */
/* The version API (SM-REQ-136): the library's numbers are the header's, and the string is
 * exactly the three numbers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

Test(version, runtime_numbers_match_the_header)
{
    cr_assert_eq(sm_version_major(), SM_VERSION_MAJOR);
    cr_assert_eq(sm_version_minor(), SM_VERSION_MINOR);
    cr_assert_eq(sm_version_patch(), SM_VERSION_PATCH);
    cr_assert_str_eq(sm_version_string(), SM_VERSION_STRING);
}

Test(version, string_is_major_minor_patch)
{
    char want[64];

    snprintf(want, sizeof want, "%d.%d.%d", sm_version_major(), sm_version_minor(),
             sm_version_patch());
    cr_assert_str_eq(sm_version_string(), want);
    cr_assert_geq(sm_version_major(), 0);
    cr_assert_geq(sm_version_minor(), 0);
    cr_assert_geq(sm_version_patch(), 0);
}

Test(version, needs_no_init_and_the_string_is_static)
{
    /* Before anything else in this process (Criterion forks per test): no sm_init. */
    const char *a = sm_version_string();

    sm_purge();
    cr_assert_eq(sm_version_string(), a, "one static string, the same after a purge");
    cr_assert_str_eq(a, SM_VERSION_STRING);
}
