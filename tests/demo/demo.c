/* SPDX-License-Identifier: ISC */
/*
 * `make demo`: a short tour of what the library can do today, through the public API
 * only. It grows with each issue. Every step is also checked, so that a demo that
 * prints a reassuring line over a broken call cannot happen: anything unexpected
 * exits 1.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* fork and waitpid: the build passes a strict -std=c11 */
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <securemem.h>

#define SECRET_LEN 32

static _Noreturn void unexpected(const char *what)
{
    fprintf(stderr, "demo: unexpected: %s\n", what);
    exit(1);
}

static void must(sm_status st, const char *call)
{
    if (st != SM_OK) {
        fprintf(stderr, "demo: %s failed: %s (OS error %d)\n", call, sm_status_str(st),
                sm_last_os_error());
        exit(1);
    }
}

static sm_stats show_stats(void)
{
    sm_stats s;

    must(sm_stats_get(&s), "sm_stats_get");
    printf("  sm_stats_get: %llu guarded region(s) made (the internal key page), %llu bytes "
           "locked,\n    secretmem %s, live: %llu buffers, %llu enclaves, %llu streams, "
           "%llu secrets\n",
           (unsigned long long)s.allocations_total, (unsigned long long)s.bytes_locked,
           s.secretmem ? "on" : "off", (unsigned long long)s.buffers_live,
           (unsigned long long)s.enclaves_live, (unsigned long long)s.streams_live,
           (unsigned long long)s.secrets_live);
    return s;
}

/*
 * A write to the read-only page, in a child so that only the child dies. The child
 * turns its own core dumps off first: a crash on purpose leaves no core file.
 */
static void show_write_faults(unsigned char *page)
{
    int status;
    pid_t pid;

    fflush(stdout);
    pid = fork();
    if (pid < 0)
        unexpected("fork failed");
    if (pid == 0) {
        if (sm_disable_core_dumps() != SM_OK)
            _exit(2);
        page[0] ^= 1;
        _exit(3);
    }
    if (waitpid(pid, &status, 0) != pid)
        unexpected("waitpid failed");
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV)
        unexpected("a write to a READ page did not fault");
    printf("  a child wrote to the READ page: it died with SIGSEGV\n");
}

int main(void)
{
    static const sm_status shown[] = { SM_OK, SM_E_LOCK, SM_E_UNSUPPORTED, (sm_status)999 };
    unsigned char copy[SECRET_LEN];
    unsigned char *page;
    sm_stats before, after;
    void *p;
    size_t ps = sm_page_size();

    printf("securemem demo\n");
    printf("  page size: %zu bytes\n", ps);
    must(sm_init(NULL), "sm_init");
    printf("  sm_init(NULL): the default configuration (anonymous memory, locked)\n");
    before = show_stats();

    must(sm_mem_alloc(ps, &p), "sm_mem_alloc");
    page = p;
    for (size_t i = 0; i < ps; i++)
        if (page[i] != 0)
            unexpected("sm_mem_alloc gave a page that is not zeroed");
    printf("  sm_mem_alloc: one zeroed page at %p, kept out of core dumps and children\n", p);
    must(sm_random(page, SECRET_LEN), "sm_random");
    printf("  sm_random: a %d-byte secret drawn into the page (never printed)\n", SECRET_LEN);
    must(sm_mem_lock(page, ps), "sm_mem_lock");
    must(sm_mem_protect(page, ps, SM_PROT_READ), "sm_mem_protect");
    printf("  sm_mem_lock + sm_mem_protect(READ): locked in RAM and read-only\n");

    memcpy(copy, page, SECRET_LEN);
    if (!sm_equal(page, copy, SECRET_LEN))
        unexpected("sm_equal says a copy differs");
    copy[SECRET_LEN - 1] ^= 0x01;
    if (sm_equal(page, copy, SECRET_LEN))
        unexpected("sm_equal missed a one-bit difference");
    printf("  sm_equal: the copy matches; with its last bit flipped it does not\n");
    show_write_faults(page);
    must(sm_stats_get(&after), "sm_stats_get");
    if (after.allocations_total != before.allocations_total ||
        after.bytes_locked != before.bytes_locked)
        unexpected("sm_mem_* pages showed up in sm_stats");
    printf("  sm_stats_get: unchanged, because sm_mem_* pages belong to the caller\n");

    must(sm_mem_free(page, ps), "sm_mem_free");
    printf("  sm_mem_free: the page was made writable, wiped and unmapped\n");
    sm_wipe(copy, sizeof copy);
    for (size_t i = 0; i < sizeof copy; i++)
        if (copy[i] != 0)
            unexpected("sm_wipe left a byte");
    printf("  sm_wipe: the stack copy is all zeroes\n");

    printf("  every call returns an sm_status; sm_status_str names it:\n");
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
        printf("    %3d  %s\n", (int)shown[i], sm_status_str(shown[i]));
    printf("next: buffers, enclaves, streams and secrets arrive with the next issues.\n");
    return 0;
}
