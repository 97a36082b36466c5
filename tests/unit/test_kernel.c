/* SPDX-License-Identifier: ISC */
/* What the kernel shows of a live region, read from /proc, not from the library. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "helpers.h"

Test(kernel, smaps_shows_locked_dontdump_wipeonfork)
{
    SKIP_WITHOUT_LINUX("no MADV_DONTDUMP or MADV_WIPEONFORK, whose flags this test reads in smaps");
    smi_region r;
    char perms[5], flags[256];
    size_t locked = 0;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(smi_region_alloc(3 * sm_page_size(), NULL, &r), SM_OK);
    cr_assert_eq(smaps_of(smi_region_data(&r), perms, flags, sizeof flags, &locked), 0);
    cr_assert_str_eq(perms, "rw-p");
    if (SM_TEST_MLOCK_IS_REAL) {
        cr_assert_eq(locked * 1024, r.lay.inner_len, "Locked: covers the inner pages");
        cr_assert(strstr(flags, " lo") != NULL, "VmFlags lo (mlocked): %s", flags);
    }
    cr_assert(strstr(flags, " dd") != NULL, "VmFlags dd (DONTDUMP): %s", flags);
    cr_assert(strstr(flags, " wf") != NULL, "VmFlags wf (WIPEONFORK): %s", flags);
    cr_assert_eq(smaps_of(r.base, perms, flags, sizeof flags, &locked), 0);
    cr_assert_str_eq(perms, "---p", "the leading guard page");
    cr_assert_eq(locked, 0, "guard pages are not locked");
    cr_assert_eq(smi_region_free(&r), SM_OK);
}

Test(kernel, forked_child_reads_zeroes)
{
    SKIP_WITHOUT_LINUX("no MADV_WIPEONFORK: a forked child keeps its copy of the pages");
    smi_region r;
    uint8_t *d;
    pid_t pid;
    int status;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(smi_region_alloc(64, NULL, &r), SM_OK);
    d = smi_region_data(&r);
    memset(d, 0x5c, 64);
    pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 64; i++)
            if (d[i] != 0)
                _exit(1);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child saw the secret");
    cr_assert_eq(d[0], 0x5c, "the parent keeps it");
    cr_assert_eq(smi_region_free(&r), SM_OK);
}

Test(kernel, free_unmaps_everything)
{
    smi_region r;
    uint8_t *base;
    size_t len, before = mapped_bytes();
    char perms[5], flags[256];
    size_t locked;

    cr_assert_eq(sm_init(NULL), SM_OK);
    before = mapped_bytes();
    cr_assert_eq(smi_region_alloc(10000, NULL, &r), SM_OK);
    base = r.base;
    len = r.lay.map_len;
    cr_assert_eq(mapped_bytes(), before + len);
    cr_assert_eq(smi_region_free(&r), SM_OK);
    cr_assert_eq(mapped_bytes(), before);
    cr_assert_neq(smaps_of(base + len / 2, perms, flags, sizeof flags, &locked), 0,
                  "nothing is mapped there any more");
}

/*
 * mlock is not inherited: in a child, the canary key page must be locked again before
 * a new key goes into it, or bytes_locked would count a page that can be swapped out.
 */
static void child_locks_what_it_counts(void *arg)
{
    smi_region r;
    sm_stats s;

    (void)arg;
    if (smi_region_alloc(10, NULL, &r) != SM_OK || sm_stats_get(&s) != SM_OK)
        _exit(2);
    if (locked_bytes_total() != s.bytes_locked)
        _exit(1);
    _exit(0);
}

Test(kernel, forked_child_locks_the_canary_key_again)
{
    if (!SM_TEST_MLOCK_IS_REAL)
        cr_skip_test("ASan fakes mlock");
    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(locked_bytes_total(), sm_page_size(), "the key page, locked");
    cr_assert_eq(in_child(child_locks_what_it_counts, NULL), 0);
}
