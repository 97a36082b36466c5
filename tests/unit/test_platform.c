/* SPDX-License-Identifier: ISC */
/*
 * The capability query (spec/platforms.md): the shim's constant, narrowed by the
 * backing in use and the lock policy's outcome; sm_platform_require refuses what is
 * missing. In the POSIX flavour (make test-posix) the constant is LOCKED | GUARD.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "helpers.h"

#if defined(SM_OS_GENERIC)
#define SHIM_CAPS (SM_CAP_LOCKED | SM_CAP_GUARD)
#else
#define SHIM_CAPS (SM_CAP_LOCKED | SM_CAP_NODUMP | SM_CAP_NOFORK | SM_CAP_GUARD)
#endif

Test(platform, default_config_gets_the_shims_caps_but_the_direct_map)
{
    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_platform_caps(), SHIM_CAPS);
    cr_assert_eq(sm_platform_require(SHIM_CAPS), SM_OK);
    cr_assert_eq(sm_platform_require(SM_CAP_NODIRECTMAP), SM_E_UNSUPPORTED);
    cr_assert_eq(sm_platform_require(SM_CAP_ALL + 1), SM_E_INVAL);
#if defined(SM_OS_GENERIC)
    cr_assert_eq(sm_platform_require(SM_CAP_NODUMP), SM_E_UNSUPPORTED);
    cr_assert_eq(sm_platform_require(SM_CAP_NOFORK), SM_E_UNSUPPORTED);
#endif
}

Test(platform, secretmem_in_use_adds_the_direct_map)
{
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false };
    sm_stats s;

    cr_assert_eq(sm_init(&cfg), SM_OK);
    cr_assert_eq(sm_stats_get(&s), SM_OK);
    cr_assert_eq(sm_platform_caps(), s.secretmem ? SHIM_CAPS | SM_CAP_NODIRECTMAP : SHIM_CAPS);
    cr_assert_eq(sm_platform_require(SM_CAP_NODIRECTMAP),
                 s.secretmem ? SM_OK : SM_E_UNSUPPORTED);
}

Test(platform, secretmem_refused_leaves_the_direct_map_out)
{
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false };

    sm_os_fault_arm(SM_OS_MEMFD_SECRET, 1, ENOSYS, true);
    cr_assert_eq(sm_init(&cfg), SM_OK);
    cr_assert_eq(sm_platform_caps(), SHIM_CAPS);
}

/* BEST_EFFORT with an unlocked live byte: LOCKED is no longer claimed. */
Test(platform, best_effort_unlocked_bytes_drop_locked)
{
    sm_config cfg = { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false };
    sm_buffer b;

    cr_assert_eq(sm_init(&cfg), SM_OK);
    cr_assert(sm_platform_caps() & SM_CAP_LOCKED);
    sm_os_fault_arm(SM_OS_MLOCK, 1, ENOMEM, true);
    cr_assert_eq(sm_buffer_new(100, &b), SM_OK);
    sm_os_fault_reset();
    cr_assert_eq(sm_platform_caps() & SM_CAP_LOCKED, 0u);
    cr_assert_eq(sm_platform_require(SM_CAP_LOCKED), SM_E_UNSUPPORTED);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert(sm_platform_caps() & SM_CAP_LOCKED, "nothing unlocked is live any more");
}
