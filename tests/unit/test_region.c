/* SPDX-License-Identifier: ISC */
/* Guarded regions: layout in memory, policies, backings and counters. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "helpers.h"

static void init_with(sm_lock_policy lock, sm_backing backing)
{
    sm_config cfg = { lock, backing, false };

    cr_assert_eq(sm_init(&cfg), SM_OK);
}

static void perms_at(const void *p, char perms[5])
{
    char flags[256];
    size_t locked;

    cr_assert_eq(smaps_of(p, perms, flags, sizeof flags, &locked), 0);
}

Test(region, layout_in_memory)
{
    static const size_t sizes[] = { 1, 32, 4064, 4065, 4096, 10000 };

    init_with(SM_LOCK_REQUIRED, SM_BACKING_ANON);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        smi_region r;
        size_t page = sm_page_size();
        uint8_t *d;
        char perms[5];

        cr_assert_eq(smi_region_alloc(sizes[i], NULL, &r), SM_OK);
        d = smi_region_data(&r);
        cr_assert_eq(d + sizes[i], r.base + r.lay.map_len - page, "data ends at the guard");
        perms_at(r.base, perms);
        cr_assert_str_eq(perms, "---p", "leading guard");
        perms_at(r.base + r.lay.map_len - page, perms);
        cr_assert_str_eq(perms, "---p", "trailing guard");
        perms_at(d, perms);
        cr_assert_str_eq(perms, "rw-p");
        for (size_t k = 0; k < sizes[i]; k++)
            cr_assert_eq(d[k], 0, "zeroed");
        cr_assert(smi_canary_ok(r.base + page, r.lay.canary_len, r.seed));
        memset(d, 0xee, sizes[i]);
        cr_assert_eq(smi_region_free(&r), SM_OK);
        cr_assert_null(r.base, "the descriptor is wiped");
    }
}

Test(region, canaries_differ_between_regions)
{
    smi_region a, b;

    init_with(SM_LOCK_REQUIRED, SM_BACKING_ANON);
    cr_assert_eq(smi_region_alloc(10, NULL, &a), SM_OK);
    cr_assert_eq(smi_region_alloc(10, NULL, &b), SM_OK);
    cr_assert_not(sm_equal(a.seed, b.seed, SMI_CANARY_SEED));
    cr_assert_eq(smi_region_free(&a), SM_OK);
    cr_assert_eq(smi_region_free(&b), SM_OK);
}

Test(region, rejects_zero_and_overflowing_sizes)
{
    smi_region r = { 0 };
    counters before, after;

    init_with(SM_LOCK_REQUIRED, SM_BACKING_ANON);
    counters_get(&before);
    cr_assert_eq(smi_region_alloc(0, NULL, &r), SM_E_INVAL);
    cr_assert_eq(smi_region_alloc(SIZE_MAX, NULL, &r), SM_E_INVAL);
    cr_assert_eq(smi_region_alloc(SIZE_MAX - 2 * sm_page_size(), NULL, &r), SM_E_INVAL);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    cr_assert_null(r.base);
}

/*
 * No canary source before sm_init: the RNG registers itself as the regions' source once
 * it has its key (spec/README.md, "Layers"). A region asked for without a seed is then
 * refused with nothing mapped; one given its seed is made as ever (the RNG's key page).
 */
Test(region, no_canary_source_before_init)
{
    static const uint8_t seed[SMI_CANARY_SEED] = { 1, 2, 3 };
    smi_region r = { 0 };
    counters before, after;

    counters_get(&before);
    cr_assert_eq(smi_region_alloc(10, NULL, &r), SM_E_STATE);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    cr_assert_null(r.base);
    cr_assert_eq(smi_region_alloc(10, seed, &r), SM_OK);
    cr_assert(smi_canary_ok(r.base + sm_page_size(), r.lay.canary_len, seed));
    cr_assert_eq(smi_region_free(&r), SM_OK);
}

Test(region, address_space_exhaustion_is_nomem)
{
    smi_region r;

    init_with(SM_LOCK_REQUIRED, SM_BACKING_ANON);
    /* 2^56 bytes: a valid layout, but more than any x86-64 address space. */
    cr_assert_eq(smi_region_alloc((size_t)1 << 56, NULL, &r), SM_E_NOMEM);
    cr_assert_eq(sm_last_os_error(), ENOMEM);
}

Test(region, counters_follow_alloc_protect_free)
{
    smi_region r;
    sm_stats s0, s1, s2;

    init_with(SM_LOCK_REQUIRED, SM_BACKING_ANON);
    cr_assert_eq(sm_stats_get(&s0), SM_OK);
    cr_assert_eq(smi_region_alloc(5000, NULL, &r), SM_OK);
    cr_assert(r.locked);
    cr_assert_eq(sm_stats_get(&s1), SM_OK);
    cr_assert_eq(s1.allocations_total, s0.allocations_total + 1);
    cr_assert_eq(s1.bytes_locked, s0.bytes_locked + r.lay.inner_len);
    cr_assert_eq(s1.bytes_unlocked, s0.bytes_unlocked);
    cr_assert_eq(smi_region_protect(&r, SM_PROT_READ), SM_OK);
    cr_assert_eq(smi_region_protect(&r, SM_PROT_READ), SM_OK, "no-op");
    cr_assert_eq(smi_region_protect(&r, SM_PROT_NONE), SM_OK);
    sm_os_fault_reset();
    cr_assert_eq(smi_region_free(&r), SM_OK, "a PROT_NONE region is opened to be wiped");
    cr_assert_eq(sm_os_fault_calls(SM_OS_MPROTECT), 1);
    cr_assert_eq(sm_stats_get(&s2), SM_OK);
    cr_assert_eq(s2.bytes_locked, s0.bytes_locked);
    cr_assert_eq(s2.allocations_total, s1.allocations_total, "a total of all time");
}

Test(region, protect_failure_keeps_the_old_protection)
{
    smi_region r;
    char perms[5];

    init_with(SM_LOCK_REQUIRED, SM_BACKING_ANON);
    cr_assert_eq(smi_region_alloc(10, NULL, &r), SM_OK);
    sm_os_fault_arm(SM_OS_MPROTECT, 1, ENOMEM, false);
    cr_assert_eq(smi_region_protect(&r, SM_PROT_READ), SM_E_PROT);
    cr_assert_eq(r.prot, SM_PROT_READWRITE);
    perms_at(smi_region_data(&r), perms);
    cr_assert_str_eq(perms, "rw-p");
    cr_assert_eq(smi_region_free(&r), SM_OK);
}

Test(region, required_lock_policy_refuses_unlockable_memory)
{
    smi_region r = { 0 };
    counters before, after;

    init_with(SM_LOCK_REQUIRED, SM_BACKING_ANON);
    counters_get(&before);
    sm_os_fault_arm(SM_OS_MLOCK, 1, ENOMEM, true);
    cr_assert_eq(smi_region_alloc(100, NULL, &r), SM_E_LOCK);
    cr_assert_eq(sm_last_os_error(), ENOMEM);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS), "nothing leaked");
}

Test(region, best_effort_counts_unlocked_bytes)
{
    SKIP_WITHOUT_LINUX("no MADV_DONTDUMP or MADV_WIPEONFORK, whose flags this test reads in smaps");
    smi_region r;
    sm_stats s0, s1;
    char perms[5], flags[256];
    size_t locked = 1;

    init_with(SM_LOCK_BEST_EFFORT, SM_BACKING_ANON);
    cr_assert_eq(sm_stats_get(&s0), SM_OK);
    sm_os_fault_arm(SM_OS_MLOCK, 1, EAGAIN, true);
    cr_assert_eq(smi_region_alloc(100, NULL, &r), SM_OK);
    cr_assert_not(r.locked);
    cr_assert_eq(smaps_of(smi_region_data(&r), perms, flags, sizeof flags, &locked), 0);
    cr_assert_eq(locked, 0, "really unlocked");
    cr_assert(strstr(flags, " dd") != NULL, "still DONTDUMP");
    cr_assert_eq(sm_stats_get(&s1), SM_OK);
    cr_assert_eq(s1.bytes_unlocked, s0.bytes_unlocked + r.lay.inner_len);
    cr_assert_eq(s1.bytes_locked, s0.bytes_locked);
    cr_assert_eq(smi_region_free(&r), SM_OK);
    cr_assert_eq(sm_stats_get(&s1), SM_OK);
    cr_assert_eq(s1.bytes_unlocked, s0.bytes_unlocked);
}

Test(region, secretmem_backing)
{
    SKIP_WITHOUT_SECRETMEM();
    smi_region r;
    sm_stats s;
    char perms[5], flags[256];
    size_t locked;

    init_with(SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_REQUIRED);
    cr_assert_eq(sm_stats_get(&s), SM_OK);
    cr_assert(s.secretmem);
    cr_assert_eq(smi_region_alloc(3000, NULL, &r), SM_OK);
    cr_assert(r.secretmem && r.locked);
    cr_assert_eq(smaps_of(smi_region_data(&r), perms, flags, sizeof flags, &locked), 0);
    cr_assert_str_eq(perms, "rw-s", "a shared secretmem mapping");
    cr_assert(strstr(flags, " dd") && strstr(flags, " dc"), "DONTDUMP and DONTFORK: %s", flags);
    perms_at(r.base, perms);
    cr_assert_str_eq(perms, "---p");
    perms_at(r.base + r.lay.map_len - sm_page_size(), perms);
    cr_assert_str_eq(perms, "---p");
    memset(smi_region_data(&r), 0x42, 3000);
    cr_assert_eq(smi_region_free(&r), SM_OK);
}

Test(region, secretmem_preferred_falls_back_per_region)
{
    static const struct { sm_os_fn fn; int err; } refusals[] = {
        { SM_OS_MEMFD_SECRET, ENOSYS }, { SM_OS_MMAP_FD, EAGAIN },
    };
    smi_region r;

    init_with(SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED);
    for (size_t i = 0; i < 2; i++) {
        counters before, after;

        counters_get(&before);
        sm_os_fault_arm(refusals[i].fn, 1, refusals[i].err, false);
        cr_assert_eq(smi_region_alloc(100, NULL, &r), SM_OK);
        cr_assert_not(r.secretmem, "anonymous memory instead");
        cr_assert(r.locked);
        cr_assert_eq(smi_region_free(&r), SM_OK);
        counters_get(&after);
        cr_assert(counters_equal(&before, &after, CMP_MAPPED), "the failed attempt left nothing");
    }
}

Test(region, secretmem_required_does_not_fall_back)
{
    SKIP_WITHOUT_SECRETMEM();
    smi_region r;

    init_with(SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_REQUIRED);
    sm_os_fault_arm(SM_OS_MEMFD_SECRET, 1, ENOSYS, false);
    cr_assert_eq(smi_region_alloc(100, NULL, &r), SM_E_UNSUPPORTED);
    sm_os_fault_arm(SM_OS_MMAP_FD, 1, EAGAIN, false);
    cr_assert_eq(smi_region_alloc(100, NULL, &r), SM_E_LOCK);
}

Test(region, failed_munmap_leaves_a_freeable_region)
{
    smi_region r;

    init_with(SM_LOCK_REQUIRED, SM_BACKING_ANON);
    cr_assert_eq(smi_region_alloc(100, NULL, &r), SM_OK);
    memset(smi_region_data(&r), 7, 100);
    sm_os_fault_arm(SM_OS_MUNMAP, 1, ENOMEM, false);
    cr_assert_eq(smi_region_free(&r), SM_E_SYS);
    cr_assert_eq(smi_region_data(&r)[0], 0, "already wiped");
    cr_assert_eq(smi_region_free(&r), SM_OK, "the retry passes the canary check");
}
