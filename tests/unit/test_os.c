/* SPDX-License-Identifier: ISC */
/* Driven by spec/os-errors.tsv: every row's errno, injected into its OS function. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "helpers.h"

/* The writability query over a fresh writable range of 64 pages, which it scans. */
static sm_status writable_large(void)
{
    size_t n = 64 * sm_os_page_size();
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sm_status st;

    cr_assert_neq(p, MAP_FAILED);
    st = sm_os_writable(p, n);
    cr_assert_eq(munmap(p, n), 0);
    return st;
}

/* Call fn once with harmless arguments, so that an armed fault is what fails it. */
static sm_status call(sm_os_fn fn)
{
    static uint8_t byte;
    void *p = NULL;
    int fd;

    switch (fn) {
    case SM_OS_MMAP: return sm_os_mmap(4096, SM_PROT_NONE, &p);
    case SM_OS_MMAP_FD: return sm_os_mmap_fd(NULL, 4096, -1);
    case SM_OS_MUNMAP: return sm_os_munmap(NULL, 4096);
    case SM_OS_MPROTECT: return sm_os_mprotect(NULL, 4096, SM_PROT_NONE);
    case SM_OS_MLOCK: return sm_os_mlock(&byte, 1);
    case SM_OS_MUNLOCK: return sm_os_munlock(&byte, 1);
    case SM_OS_MADVISE: return sm_os_madvise(NULL, 4096, SM_OS_DONTDUMP);
    case SM_OS_MEMFD_SECRET:
    case SM_OS_FTRUNCATE: return sm_os_secretmem_create(4096, &fd);
    case SM_OS_CLOSE: return sm_os_close(-1);
    case SM_OS_GETRANDOM: return sm_os_random(&byte, 1);
    case SM_OS_SETRLIMIT:
    case SM_OS_PRCTL: return sm_os_disable_core_dumps();
    case SM_OS_READ: { size_t got; return sm_os_read(-1, &byte, 1, &got); }
    case SM_OS_LSEEK: { uint64_t pos; return sm_os_seek_cur(-1, 0, &pos); }
    case SM_OS_SIGACTION: { sm_os_sigsave old; return sm_os_signal_catch(SIGUSR2, SIG_IGN, &old); }
    case SM_OS_ATFORK: return sm_os_atfork(NULL, NULL, NULL);
    case SM_OS_OPEN:
    case SM_OS_PROCMAP_QUERY:
    case SM_OS_PAGEMAP_SCAN: return writable_large();
    case SM_OS_PKEY_ALLOC: return sm_os_pkey_alloc(&fd);
    case SM_OS_PKEY_MPROTECT: return sm_os_pkey_mprotect(NULL, 4096, SM_PROT_NONE, 1);
    case SM_OS_FN_COUNT: break;
    }
    return SM_OK;
}

/* An errno that no row of fn names, for the "*" rows. */
static int unlisted(tsv_row *rows, size_t n, const char *fn)
{
    static const int candidates[] = { EFAULT, EBADF, EIO, EEXIST };

    for (size_t c = 0; c < sizeof candidates / sizeof candidates[0]; c++) {
        bool listed = false;

        for (size_t j = 0; j < n; j++)
            if (strcmp(rows[j].f[0], fn) == 0 && errno_from_name(rows[j].f[1]) == candidates[c])
                listed = true;
        if (!listed)
            return candidates[c];
    }
    return -1;
}

Test(os, every_row_of_os_errors)
{
    SKIP_WITHOUT_LINUX("no prctl(PR_SET_DUMPABLE); spec/os-errors.tsv and spec/syscalls.tsv are Linux's");
    tsv_row *rows;
    size_t n = tsv_load("os-errors.tsv", &rows);
    bool covered[SM_OS_FN_COUNT] = { false };

    for (size_t j = 0; j < n; j++) {
        int fn = os_fn_from_name(rows[j].f[0]);
        int err = strcmp(rows[j].f[1], "*") == 0 ? unlisted(rows, n, rows[j].f[0])
                                                 : errno_from_name(rows[j].f[1]);
        sm_status want = status_from_name(rows[j].f[2]);
        sm_status got;

        cr_assert(fn >= 0 && err > 0 && (int)want >= 0, "bad row %zu", j);
        covered[fn] = true;
        /* ftruncate comes after a memfd_secret that such a kernel refuses (helpers.h). */
        if (fn == SM_OS_FTRUNCATE && !kernel_has_secretmem())
            continue;
        /* A machine without protection keys makes no pkey_alloc to fail (os.h). */
        if (fn == SM_OS_PKEY_ALLOC && !machine_has_pkeys())
            continue;
        sm_os_fault_reset();
        sm_os_fault_arm((sm_os_fn)fn, 1, err, true);
        got = call((sm_os_fn)fn);
        cr_expect_eq(got, want, "%s with %s: got %s, want %s", rows[j].f[0], rows[j].f[1],
                     sm_status_str(got), rows[j].f[2]);
        /* An SM_OK row is a refusal that the shim falls back from, and reports nothing. */
        if (want != SM_OK)
            cr_expect_eq(sm_last_os_error(), err, "%s: sm_last_os_error", rows[j].f[0]);
    }
    sm_os_fault_reset();
    for (int f = 0; f < SM_OS_FN_COUNT; f++)
        cr_expect(covered[f], "spec/os-errors.tsv has no row for %s", sm_os_fn_name((sm_os_fn)f));
    tsv_free(rows, n);
}

Test(os, fault_plans_count_and_fire_once_or_sticky)
{
    uint8_t b[4];

    sm_os_fault_reset();
    sm_os_fault_arm(SM_OS_GETRANDOM, 2, EIO, false);
    cr_assert_eq(sm_os_random(b, 4), SM_OK);
    cr_assert_eq(sm_os_random(b, 4), SM_E_RANDOM);
    cr_assert_eq(sm_os_random(b, 4), SM_OK);
    cr_assert_eq(sm_os_fault_calls(SM_OS_GETRANDOM), 3);
    sm_os_fault_arm(SM_OS_GETRANDOM, 1, EIO, true);
    cr_assert_eq(sm_os_random(b, 4), SM_E_RANDOM);
    cr_assert_eq(sm_os_random(b, 4), SM_E_RANDOM);
    sm_os_fault_reset();
    cr_assert_eq(sm_os_random(b, 4), SM_OK);
    cr_assert_null(sm_os_fn_name(SM_OS_FN_COUNT));
}

Test(os, random_retries_after_eintr)
{
    uint8_t b[16] = { 0 };

    sm_os_fault_reset();
    sm_os_fault_arm(SM_OS_GETRANDOM, 1, EINTR, false);
    cr_assert_eq(sm_random(b, sizeof b), SM_OK);
    cr_assert_eq(sm_os_fault_calls(SM_OS_GETRANDOM), 2, "the interrupted call is retried once");
}

Test(os, random_failure_wipes_the_output)
{
    uint8_t b[16];

    memset(b, 0xa5, sizeof b);
    sm_os_fault_arm(SM_OS_GETRANDOM, 1, EIO, false);
    cr_assert_eq(sm_random(b, sizeof b), SM_E_RANDOM);
    for (size_t i = 0; i < sizeof b; i++)
        cr_assert_eq(b[i], 0);
}

/*
 * A mapping kept by an injected munmap failure is remembered once, forgotten when a later
 * munmap of it succeeds, and what is left is unmapped by sm_os_fault_reclaim (the fuzz
 * harnesses' reset between inputs).
 */
Test(os, refused_munmaps_are_remembered_and_reclaimed)
{
    void *a, *b;
    unsigned char v;

    (void)sm_os_fault_reclaim();
    cr_assert_eq(sm_os_mmap(4096, SM_PROT_READWRITE, &a), SM_OK);
    cr_assert_eq(sm_os_mmap(4096, SM_PROT_READWRITE, &b), SM_OK);
    sm_os_fault_arm(SM_OS_MUNMAP, 1, ENOMEM, true);
    cr_assert_eq(sm_os_munmap(a, 4096), SM_E_SYS);
    cr_assert_eq(sm_os_munmap(a, 4096), SM_E_SYS, "refused twice, remembered once");
    cr_assert_eq(sm_os_munmap(b, 4096), SM_E_SYS);
    sm_os_fault_reset();
    cr_assert_eq(sm_os_munmap(b, 4096), SM_OK, "b unmapped, so forgotten");
    cr_assert_eq(mincore(a, 4096, &v), 0, "a is still mapped");
    cr_assert_eq(sm_os_fault_reclaim(), 1, "only a is left");
    cr_assert_eq(mincore(a, 4096, &v), -1, "a is unmapped");
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(sm_os_fault_reclaim(), 0);
}

/*
 * sm_os_mmap_filled: every page is present when mmap returns (mincore), readable and
 * writable, and zeroed; plain sm_os_mmap leaves them to be faulted in. A failure is
 * mmap's, counted as mmap by the fault shim.
 */
Test(os, mmap_filled_pages_are_present_at_once)
{
    SKIP_WITHOUT_LINUX("no MAP_POPULATE");
    size_t len = 16 * 4096;
    unsigned char vec[16];
    uint8_t *p;
    void *q;

    cr_assert_eq(sm_os_mmap_filled(len, &q), SM_OK);
    p = q;
    cr_assert_eq(mincore(p, len, vec), 0);
    for (size_t i = 0; i < 16; i++) {
        cr_assert(vec[i] & 1, "page %zu is not present", i);
        cr_assert_eq(p[i * 4096], 0);
    }
    p[len - 1] = 1;
    cr_assert_eq(sm_os_munmap(p, len), SM_OK);
    cr_assert_eq(sm_os_mmap(len, SM_PROT_READWRITE, &q), SM_OK);
    cr_assert_eq(mincore(q, len, vec), 0);
    cr_assert_eq(vec[3] & 1, 0, "an ordinary mapping is faulted in page by page");
    cr_assert_eq(sm_os_munmap(q, len), SM_OK);
    sm_os_fault_reset();
    sm_os_fault_arm(SM_OS_MMAP, 1, ENOMEM, false);
    cr_assert_eq(sm_os_mmap_filled(len, &q), SM_E_NOMEM);
    cr_assert_eq(sm_last_os_error(), ENOMEM);
    sm_os_fault_reset();
}

/*
 * h2 review: sm_os_writable rounded [p, p + n) to pages without checking for a wrap: for
 * n near SIZE_MAX the end wrapped back to p's page, madvise was asked about 0 bytes, said
 * yes, and the range was "writable". A range that wraps the address space is not.
 */
Test(os, writable_refuses_a_range_that_wraps)
{
    size_t page = sm_os_page_size();
    uint8_t *p = aligned_alloc(page, page);

    cr_assert_not_null(p);
    cr_assert_eq(sm_os_writable(p, page), SM_OK);
    cr_assert_eq(sm_os_writable(p, SIZE_MAX), SM_E_READONLY);
    cr_assert_eq(sm_os_last_error(), EFAULT);
    cr_assert_eq(sm_os_writable(p + 1, SIZE_MAX - page + 2), SM_E_READONLY);
    free(p);
}

/* Fresh writable pages, where the mappings can be asked about them; else the test skips. */
static uint8_t *large_range_or_skip(size_t pages)
{
    uint8_t *p;

    SKIP_WITHOUT_LINUX("POSIX cannot ask whether memory is writable");
    if (!kernel_at_least(6, 11))
        cr_skip_test("no PROCMAP_QUERY before Linux 6.11: the madvise answers");
    p = mmap(NULL, pages * sm_os_page_size(), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    return p;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/*
 * A guard marker (MADV_GUARD_INSTALL, Linux 6.13) inside a writable mapping faults on
 * any access, but the mapping's flags, all that PROCMAP_QUERY sees, call it writable:
 * a large range is also scanned for markers (PAGEMAP_SCAN, 6.14), in one call whatever
 * its size, and a small one is left to the madvise, which refuses them (EFAULT).
 * Refused, as by a kernel without it (ENOTTY before 6.7, EINVAL before 6.14), the scan
 * leaves the answer to the madvise, which faults the pages in (mincore shows it).
 */
Test(os, writable_finds_a_guard_marker_whatever_the_size)
{
    size_t page = sm_os_page_size(), n = 80 * page;
    unsigned char vec[80];
    /* 120 pages: the marker at 40, then 80 and 79 pages on either side of it. */
    uint8_t *p = large_range_or_skip(120);

    if (madvise(p + 40 * page, page, MADV_GUARD_INSTALL) != 0 ||
        madvise(p + 40 * page, page, MADV_POPULATE_READ) == 0) {
        cr_assert_eq(munmap(p, 120 * page), 0);
        cr_skip_test("no guard markers here (before Linux 6.13, or an emulator)");
    }
    sm_os_fault_reset();
    cr_assert_eq(sm_os_writable(p, n), SM_E_READONLY, "80 pages, one marker");
    cr_assert_eq(sm_os_last_error(), EFAULT);
    cr_assert_eq(sm_os_fault_calls(SM_OS_PAGEMAP_SCAN), 1, "one scan for 80 pages");
    cr_assert_eq(mincore(p, n, vec), 0);
    for (size_t i = 0; i < 80; i++)
        cr_assert_eq(vec[i] & 1, 0, "page %zu faulted in: the madvise answered", i);
    cr_assert_eq(sm_os_writable(p + 41 * page, 79 * page), SM_OK, "the 79 pages after it");
    cr_assert_eq(sm_os_fault_calls(SM_OS_PAGEMAP_SCAN), 2, "and a scan that found none");
    cr_assert_eq(sm_os_writable(p, 40 * page), SM_OK, "the 40 pages before it");
    sm_os_fault_reset();
    cr_assert_eq(sm_os_writable(p + 36 * page, 8 * page), SM_E_READONLY, "8 pages, one marker");
    cr_assert_eq(sm_os_last_error(), EFAULT);
    cr_assert_eq(sm_os_fault_calls(SM_OS_PAGEMAP_SCAN), 0, "no scan below 64 pages");
    /* The scan refused: the madvise answers the large range, the same way. */
    sm_os_fault_arm(SM_OS_PAGEMAP_SCAN, 1, ENOTTY, true);
    cr_assert_eq(sm_os_writable(p, n), SM_E_READONLY, "80 pages, no scan");
    cr_assert_eq(sm_os_last_error(), EFAULT);
    cr_assert_eq(sm_os_writable(p, 40 * page), SM_OK, "the 40 pages before it, no scan");
    cr_assert_eq(mincore(p, n, vec), 0);
    cr_assert_eq(vec[0] & 1, 1, "the madvise answered");
    sm_os_fault_reset();
    cr_assert_eq(munmap(p, 120 * page), 0);
}

/*
 * Issue 14: a range of 64 pages or more is answered mapping by mapping (PROCMAP_QUERY,
 * src/os/linux.c) with the madvise's answers: writable across several mappings, refused
 * at a read-only page, at a hole and when nothing is mapped at its start. Unlike the
 * madvise it faults none of the pages in, which is how this test knows the query
 * answered: a broken query falls back to the madvise, and mincore sees the pages.
 */
Test(os, writable_asks_the_mappings_of_a_large_range)
{
    size_t page = sm_os_page_size(), n = 80 * page;
    unsigned char vec[80];
    uint8_t *p = large_range_or_skip(80);

    /* Three mappings, all writable: DONTDUMP on the middle third splits them. */
    cr_assert_eq(madvise(p + 20 * page, 20 * page, MADV_DONTDUMP), 0);
    cr_assert_eq(sm_os_writable(p + 1, n - 2), SM_OK);
    cr_assert_eq(mincore(p, n, vec), 0);
    for (size_t i = 0; i < 80; i++)
        cr_assert_eq(vec[i] & 1, 0, "page %zu faulted in: the madvise answered", i);
    cr_assert_eq(mprotect(p + 70 * page, page, PROT_READ), 0);
    cr_assert_eq(sm_os_writable(p, n), SM_E_READONLY, "a read-only page");
    cr_assert_eq(sm_os_last_error(), EFAULT);
    cr_assert_eq(sm_os_writable(p, 70 * page), SM_OK, "the mappings before it");
    cr_assert_eq(mprotect(p + 70 * page, page, PROT_READ | PROT_WRITE), 0);
    cr_assert_eq(munmap(p + 10 * page, page), 0);
    cr_assert_eq(sm_os_writable(p, n), SM_E_READONLY, "a hole");
    cr_assert_eq(sm_os_last_error(), EFAULT);
    cr_assert_eq(sm_os_writable(p + 10 * page, n - 10 * page), SM_E_READONLY,
                 "nothing mapped at the start");
    cr_assert_eq(sm_os_writable(p + 11 * page, n - 11 * page), SM_OK, "after the hole");
    cr_assert_eq(munmap(p, 10 * page), 0);
    cr_assert_eq(munmap(p + 11 * page, n - 11 * page), 0);
}

/*
 * Every refusal of the large query's calls on /proc/self (src/os/linux.c), and every
 * answer cut short (SM_OS_FAULT_SHORT, fault.h), over 80 writable pages and over the
 * same with one read-only page: each is a question left unanswered, asked another way
 * (spec/fault-injection.md, "The writability query"), so the writable range is SM_OK and
 * the other SM_E_READONLY, but where no way is left (no /proc at all, and the madvise
 * refuses as it does for both read-only and memfd_secret pages): then the query cannot
 * tell and says SM_OK, as before it asked. No descriptor is left open on any path, and a
 * refusal is no status: sm_last_os_error is left alone.
 */
Test(os, writable_query_refused_or_cut_short_falls_back_and_keeps_no_fd)
{
    static const struct {
        sm_os_fn fn;
        unsigned long nth;
        int err;
        bool sticky;
        sm_os_fn fn2; /* a second plan, or SM_OS_FN_COUNT */
        int err2;
        sm_status ro; /* the answer for the range with a read-only page */
        const char *what;
    } plans[] = {
        { SM_OS_OPEN, 1, EMFILE, false, SM_OS_FN_COUNT, 0, SM_E_READONLY, "maps: EMFILE" },
        { SM_OS_OPEN, 1, EACCES, false, SM_OS_FN_COUNT, 0, SM_E_READONLY, "maps: EACCES" },
        { SM_OS_OPEN, 1, ENOENT, true, SM_OS_FN_COUNT, 0, SM_OK, "no /proc: ENOENT" },
        { SM_OS_OPEN, 1, EMFILE, true, SM_OS_FN_COUNT, 0, SM_OK, "no descriptor left: EMFILE" },
        { SM_OS_OPEN, 2, EMFILE, false, SM_OS_FN_COUNT, 0, SM_E_READONLY, "pagemap: EMFILE" },
        { SM_OS_OPEN, 2, ENOENT, false, SM_OS_FN_COUNT, 0, SM_E_READONLY, "pagemap: ENOENT" },
        { SM_OS_PROCMAP_QUERY, 1, ENOTTY, true, SM_OS_FN_COUNT, 0, SM_E_READONLY,
          "PROCMAP_QUERY: ENOTTY" },
        { SM_OS_PROCMAP_QUERY, 1, EINVAL, true, SM_OS_FN_COUNT, 0, SM_E_READONLY,
          "PROCMAP_QUERY: EINVAL" },
        { SM_OS_PROCMAP_QUERY, 1, SM_OS_FAULT_SHORT, true, SM_OS_FN_COUNT, 0, SM_E_READONLY,
          "PROCMAP_QUERY: a mapping that does not hold the address" },
        { SM_OS_PAGEMAP_SCAN, 1, ENOTTY, true, SM_OS_FN_COUNT, 0, SM_E_READONLY,
          "PAGEMAP_SCAN: ENOTTY" },
        { SM_OS_PAGEMAP_SCAN, 1, EINVAL, true, SM_OS_FN_COUNT, 0, SM_E_READONLY,
          "PAGEMAP_SCAN: EINVAL" },
        { SM_OS_PAGEMAP_SCAN, 1, SM_OS_FAULT_SHORT, true, SM_OS_FN_COUNT, 0, SM_E_READONLY,
          "PAGEMAP_SCAN: a walk that stopped short" },
        { SM_OS_CLOSE, 1, EIO, true, SM_OS_FN_COUNT, 0, SM_E_READONLY, "close: EIO" },
        { SM_OS_PROCMAP_QUERY, 1, ENOTTY, true, SM_OS_READ, EIO, SM_OK,
          "no PROCMAP_QUERY, and the maps text unreadable: EIO" },
        { SM_OS_PROCMAP_QUERY, 1, ENOTTY, true, SM_OS_READ, SM_OS_FAULT_SHORT, SM_E_READONLY,
          "no PROCMAP_QUERY, and the maps text cut short" },
        { SM_OS_PROCMAP_QUERY, 1, ENOTTY, true, SM_OS_OPEN, EACCES, SM_OK,
          "no PROCMAP_QUERY, and no /proc: EACCES" },
    };
    size_t page = sm_os_page_size(), n = 80 * page, fds;
    uint8_t *p = large_range_or_skip(80);

    memset(p, 0x5c, n);
    fds = open_fds();
    /* The ordinary answer first: two opens, one ioctl each, two closes, and no read. */
    sm_os_fault_reset();
    cr_assert_eq(sm_os_writable(p, n), SM_OK);
    if (kernel_at_least(6, 14)) {
        cr_expect_eq(sm_os_fault_calls(SM_OS_OPEN), 2);
        cr_expect_eq(sm_os_fault_calls(SM_OS_PROCMAP_QUERY), 1);
        cr_expect_eq(sm_os_fault_calls(SM_OS_PAGEMAP_SCAN), 1);
        cr_expect_eq(sm_os_fault_calls(SM_OS_CLOSE), 2);
        cr_expect_eq(sm_os_fault_calls(SM_OS_READ), 0);
    }
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
        for (int ro = 0; ro < 2; ro++) {
            sm_status want = ro ? plans[i].ro : SM_OK, got;

            cr_assert_eq(mprotect(p + 70 * page, page, ro ? PROT_READ : PROT_READ | PROT_WRITE), 0);
            sm_os_fault_reset();
            sm_os_fault_arm(plans[i].fn, plans[i].nth, plans[i].err, plans[i].sticky);
            if (plans[i].fn2 != SM_OS_FN_COUNT)
                sm_os_fault_arm(plans[i].fn2, 1, plans[i].err2, true);
            sm_os_set_last_error(ERANGE);
            got = sm_os_writable(p, n);
            sm_os_fault_reset();
            cr_expect_eq(got, want, "%s, %s: got %s, want %s", plans[i].what,
                         ro ? "a read-only page" : "writable", sm_status_str(got),
                         sm_status_str(want));
            cr_expect_eq(sm_os_last_error(), got == SM_OK ? ERANGE : EFAULT,
                         "%s: sm_last_os_error %d", plans[i].what, sm_os_last_error());
            cr_expect_eq(open_fds(), fds, "%s: a descriptor left open", plans[i].what);
        }
    }
    cr_assert_eq(munmap(p, n), 0);
}
