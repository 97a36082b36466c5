/* SPDX-License-Identifier: ISC */
/* The public memory layer: behaviour and argument checks (the OS failures are in test_faults). */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "helpers.h"

Test(mem, page_size_is_a_power_of_two)
{
    size_t p = sm_page_size();

    cr_assert_geq(p, 4096);
    cr_assert_eq(p & (p - 1), 0);
}

Test(mem, alloc_is_aligned_zeroed_writable_and_free_returns_it)
{
    size_t before = mapped_bytes(), n = 3 * sm_page_size() + 1;
    uint8_t *p;

    cr_assert_eq(sm_mem_alloc(n, (void **)&p), SM_OK);
    cr_assert_eq((uintptr_t)p % sm_page_size(), 0);
    cr_assert_eq(mapped_bytes(), before + 4 * sm_page_size(), "rounded up to whole pages");
    for (size_t i = 0; i < 4 * sm_page_size(); i++) {
        cr_assert_eq(p[i], 0);
        p[i] = (uint8_t)i;
    }
    cr_assert_eq(sm_mem_free(p, n), SM_OK);
    cr_assert_eq(mapped_bytes(), before);
}

Test(mem, alloc_rejects_bad_arguments)
{
    void *p = (void *)1;

    cr_assert_eq(sm_mem_alloc(0, &p), SM_E_INVAL);
    cr_assert_eq(sm_mem_alloc(16, NULL), SM_E_INVAL);
    cr_assert_eq(sm_mem_alloc(SIZE_MAX, &p), SM_E_INVAL);
    cr_assert_eq(sm_mem_alloc(SIZE_MAX - sm_page_size() + 2, &p), SM_E_INVAL);
    cr_assert_eq(p, (void *)1, "out untouched on error");
}

Test(mem, free_rejects_bad_arguments_and_handles_any_protection)
{
    uint8_t *p;

    cr_assert_eq(sm_mem_free(NULL, 1), SM_E_INVAL);
    cr_assert_eq(sm_mem_alloc(100, (void **)&p), SM_OK);
    cr_assert_eq(sm_mem_free(p + 1, 100), SM_E_INVAL);
    cr_assert_eq(sm_mem_free(p, 0), SM_E_INVAL);
    cr_assert_eq(sm_mem_free(p, SIZE_MAX), SM_E_INVAL);
    cr_assert_eq(sm_mem_lock(p, 100), SM_OK);
    cr_assert_eq(sm_mem_protect(p, 100, SM_PROT_NONE), SM_OK);
    cr_assert_eq(sm_mem_free(p, 100), SM_OK, "locked and PROT_NONE pages are freed too");
}

Test(mem, lock_unlock_protect_arguments)
{
    SKIP_WITHOUT_LINUX("no MADV_DONTDUMP or MADV_WIPEONFORK, whose flags this test reads in smaps");
    uint8_t *p;
    char perms[5], flags[256];
    size_t locked = 0;

    cr_assert_eq(sm_mem_alloc(100, (void **)&p), SM_OK);
    cr_assert_eq(sm_mem_lock(NULL, 1), SM_E_INVAL);
    cr_assert_eq(sm_mem_lock(p, 0), SM_E_INVAL);
    cr_assert_eq(sm_mem_unlock(NULL, 1), SM_E_INVAL);
    cr_assert_eq(sm_mem_unlock(p, 0), SM_E_INVAL);
    cr_assert_eq(sm_mem_protect(NULL, 1, SM_PROT_READ), SM_E_INVAL);
    cr_assert_eq(sm_mem_protect(p, 0, SM_PROT_READ), SM_E_INVAL);
    cr_assert_eq(sm_mem_protect(p + 1, 1, SM_PROT_READ), SM_E_INVAL);
    cr_assert_eq(sm_mem_protect(p, 1, (sm_prot)3), SM_E_INVAL);
    cr_assert_eq(sm_mem_lock(p, 100), SM_OK);
    cr_assert_eq(smaps_of(p, perms, flags, sizeof flags, &locked), 0);
    if (SM_TEST_MLOCK_IS_REAL)
        cr_assert_eq(locked, sm_page_size() / 1024, "the kernel shows the page locked");
    cr_assert(strstr(flags, " dd") && strstr(flags, " wf"), "DONTDUMP and WIPEONFORK: %s", flags);
    cr_assert_eq(sm_mem_unlock(p, 100), SM_OK);
    cr_assert_eq(smaps_of(p, perms, flags, sizeof flags, &locked), 0);
    cr_assert_eq(locked, 0);
    cr_assert_eq(sm_mem_protect(p, 100, SM_PROT_READ), SM_OK);
    cr_assert_eq(smaps_of(p, perms, flags, sizeof flags, &locked), 0);
    cr_assert_str_eq(perms, "r--p");
    cr_assert_eq(sm_mem_protect(p, 100, SM_PROT_NONE), SM_OK);
    cr_assert_eq(smaps_of(p, perms, flags, sizeof flags, &locked), 0);
    cr_assert_str_eq(perms, "---p");
    cr_assert_eq(sm_mem_free(p, 100), SM_OK);
}

Test(mem, protect_read_makes_writes_fault, .signal = SIGSEGV)
{
    volatile uint8_t *p;

    cr_assert_eq(sm_mem_alloc(1, (void **)&p), SM_OK);
    cr_assert_eq(sm_mem_protect((void *)p, 1, SM_PROT_READ), SM_OK);
    cr_assert_eq(p[0], 0, "still readable");
    p[0] = 1;
}

Test(mem, wipe_equal_random)
{
    uint8_t a[64], b[64], z[64] = { 0 };

    sm_wipe(NULL, 0);
    memset(a, 0xff, sizeof a);
    sm_wipe(a, sizeof a);
    cr_assert(sm_equal(a, z, sizeof a));
    cr_assert(sm_equal(NULL, NULL, 0), "n == 0 is equal");
    cr_assert_eq(sm_random(a, sizeof a), SM_OK);
    cr_assert_eq(sm_random(b, sizeof b), SM_OK);
    cr_assert_not(sm_equal(a, b, sizeof a), "two 512-bit draws differ");
    cr_assert_not(sm_equal(a, z, sizeof a));
    memcpy(b, a, sizeof a);
    cr_assert(sm_equal(a, b, sizeof a));
    b[63] ^= 0x80;
    cr_assert_not(sm_equal(a, b, sizeof a), "the last byte counts");
    b[63] ^= 0x80;
    b[0] ^= 1;
    cr_assert_not(sm_equal(a, b, sizeof a), "the first byte counts");
    cr_assert_eq(sm_random(NULL, 0), SM_OK);
    cr_assert_eq(sm_random(NULL, 1), SM_E_INVAL);
}

Test(mem, random_fills_large_requests)
{
    size_t n = 40u << 20; /* above the 32 MiB that older kernels return per call */
    uint8_t *p;
    size_t zero_pages = 0;

    cr_assert_eq(sm_mem_alloc(n, (void **)&p), SM_OK);
    cr_assert_eq(sm_random(p, n), SM_OK);
    for (size_t off = 0; off < n; off += 4096) {
        uint64_t w;

        memcpy(&w, p + off + 4088, 8);
        zero_pages += w == 0;
    }
    cr_assert_eq(zero_pages, 0, "the tail of every page was written");
    cr_assert_eq(sm_mem_free(p, n), SM_OK);
}

Test(mem, disable_core_dumps)
{
    SKIP_WITHOUT_LINUX("no prctl(PR_SET_DUMPABLE); spec/os-errors.tsv and spec/syscalls.tsv are Linux's");
    struct rlimit rl;

    cr_assert_eq(sm_disable_core_dumps(), SM_OK);
    cr_assert_eq(getrlimit(RLIMIT_CORE, &rl), 0);
    cr_assert_eq(rl.rlim_cur, 0);
    cr_assert_eq(rl.rlim_max, 0);
    cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
    cr_assert_eq(sm_disable_core_dumps(), SM_OK, "idempotent");
}

Test(mem, disable_core_dumps_failure_restores_dumpable)
{
    sm_os_fault_arm(SM_OS_SETRLIMIT, 1, EPERM, false);
    cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
    cr_assert_eq(sm_disable_core_dumps(), SM_E_SYS);
    cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1, "the first step was undone");
}
