/* SPDX-License-Identifier: ISC */
/*
 * Conformance of the status, runtime and memory-layer calls, written only against
 * spec/api.md and the installed <securemem.h>. `make check-install` builds it from the
 * pkg-config lines alone, shared and -static, so it must not need anything from the
 * source tree. Every deviation prints one FAIL line and exits 1.
 *
 * Anything that changes the whole process (core dumps off) or that is meant to crash
 * (faults on protected pages) runs in a forked child, so that this process stays an
 * ordinary one and can go on checking.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* fork, prctl and sysconf also under a strict -std=c11 */
#endif

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <securemem.h>

#if defined(__linux__)
#include <sys/prctl.h>
#define DUMPABLE() prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
#else
/* Only Linux has a dumpable flag; elsewhere RLIMIT_CORE is what the checks see. */
#define DUMPABLE() 0
#endif

static const char *group = "start";

static _Noreturn void fail(int line, const char *what)
{
    fprintf(stderr, "mem_api: FAIL [%s] line %d: %s\n", group, line, what);
    exit(1);
}

#define CHECK(cond)                 \
    do {                            \
        if (!(cond))                \
            fail(__LINE__, #cond);  \
    } while (0)

/* Name both statuses on a mismatch: "got X" alone would not say what was expected. */
static void expect_status(int line, const char *call, sm_status got, sm_status want)
{
    char msg[512];

    if (got == want)
        return;
    snprintf(msg, sizeof msg, "%s returned \"%s\", expected \"%s\"", call, sm_status_str(got),
             sm_status_str(want));
    fail(line, msg);
}

#define EXPECT(call, want) expect_status(__LINE__, #call, (call), (want))

static void passed(void)
{
    printf("mem_api: ok   %s\n", group);
    fflush(stdout);
}

static bool all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static bool page_aligned(const void *p)
{
    return ((uintptr_t)p & (sm_page_size() - 1)) == 0;
}

/*
 * The VmFlags of the mapping that holds p, from /proc/self/smaps: the only way to see
 * the madvise and mlock state of a range without internal headers. Returns false when
 * smaps cannot be read (the caller skips that check) and fails if p is not mapped.
 */
static bool vm_flags(const void *p, char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool inside = false;
    uintptr_t a = (uintptr_t)p;

    /*
     * Under qemu-user (tests/platforms/linux.sh sets SM_TEST_EMULATOR) smaps is the
     * host's view, and the emulator applies no madvise advice: nothing to see there.
     */
    if (getenv("SM_TEST_EMULATOR") != NULL) {
        if (f != NULL)
            fclose(f);
        return false;
    }
    if (f == NULL)
        return false;
    while (fgets(line, sizeof line, f) != NULL) {
        uintmax_t lo, hi;

        if (sscanf(line, "%" SCNxMAX "-%" SCNxMAX " ", &lo, &hi) == 2) {
            inside = a >= lo && a < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, cap, "%s", line + 8);
            fclose(f);
            return true;
        }
    }
    fclose(f);
    fail(__LINE__, "no mapping in /proc/self/smaps holds the pointer");
}

/* Whether the two-letter flag is one of the space-separated words of flags. */
static bool has_flag(const char *flags, const char *flag)
{
    const char *s = flags;

    while ((s = strstr(s, flag)) != NULL) {
        bool starts = s == flags || s[-1] == ' ';
        bool ends = s[2] == ' ' || s[2] == '\n' || s[2] == '\0';

        if (starts && ends)
            return true;
        s += 2;
    }
    return false;
}

/*
 * Run fn in a forked child and return its raw wait status. The child drops its core
 * limit first: a child that is meant to die of SIGSEGV must not leave core files
 * behind, and the limit of this process must not change.
 */
static int in_child(void (*fn)(void *), void *arg)
{
    struct rlimit rl;
    int status;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (getrlimit(RLIMIT_CORE, &rl) == 0) {
            rl.rlim_cur = 0;
            if (setrlimit(RLIMIT_CORE, &rl) != 0)
                _exit(98);
        }
        fn(arg);
        _exit(0);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

static void died_of(int status, int sig, const char *what)
{
    char msg[256];

    if (WIFSIGNALED(status) && WTERMSIG(status) == sig)
        return;
    if (WIFSIGNALED(status))
        snprintf(msg, sizeof msg, "%s: child died of signal %d, expected %d", what,
                 WTERMSIG(status), sig);
    else
        snprintf(msg, sizeof msg, "%s: child exited with %d instead of dying of signal %d",
                 what, WEXITSTATUS(status), sig);
    fail(__LINE__, msg);
}

static void exited_ok(int status, const char *what)
{
    char msg[256];

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return;
    if (WIFEXITED(status))
        snprintf(msg, sizeof msg, "%s: child failed check %d", what, WEXITSTATUS(status));
    else
        snprintf(msg, sizeof msg, "%s: child died of signal %d", what, WTERMSIG(status));
    fail(__LINE__, msg);
}

/* ---- status ------------------------------------------------------------------------ */

static void check_status(void)
{
    static const sm_status odd[] = { (sm_status)(SM_E_SYS + 1), (sm_status)999,
                                     (sm_status)-1, (sm_status)0x7fffffff };
    const char *unknown;

    group = "sm_status_str and sm_last_os_error";
    for (int s = SM_OK; s <= SM_E_SYS; s++) {
        const char *str = sm_status_str((sm_status)s);

        CHECK(str != NULL && str[0] != '\0');
        /* Distinct texts, or a log line could not tell two errors apart. */
        for (int t = SM_OK; t < s; t++)
            CHECK(strcmp(str, sm_status_str((sm_status)t)) != 0);
    }
    unknown = sm_status_str(odd[0]);
    CHECK(unknown != NULL && unknown[0] != '\0');
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *str = sm_status_str(odd[i]);

        CHECK(str != NULL && strcmp(str, unknown) == 0);
    }
    for (int s = SM_OK; s <= SM_E_SYS; s++)
        CHECK(strcmp(sm_status_str((sm_status)s), unknown) != 0);
    /* Nothing has called into the OS through the library yet on this thread. */
    CHECK(sm_last_os_error() == 0);
    passed();
}

/* ---- version ----------------------------------------------------------------------- */

/* The library this program runs with is the one whose header it was compiled against
 * (SM-REQ-136): what a program does at start to catch a mismatched install. */
static void check_version(void)
{
    char want[64];

    group = "sm_version_*";
    CHECK(sm_version_major() == SM_VERSION_MAJOR);
    CHECK(sm_version_minor() == SM_VERSION_MINOR);
    CHECK(sm_version_patch() == SM_VERSION_PATCH);
    CHECK(sm_version_string() != NULL && strcmp(sm_version_string(), SM_VERSION_STRING) == 0);
    snprintf(want, sizeof want, "%d.%d.%d", SM_VERSION_MAJOR, SM_VERSION_MINOR, SM_VERSION_PATCH);
    CHECK(strcmp(SM_VERSION_STRING, want) == 0);
    /* A version call is no OS call: sm_last_os_error is still 0 after it. */
    CHECK(sm_last_os_error() == 0);
    passed();
}

/* ---- page size and allocation ------------------------------------------------------ */

static void check_page_size(void)
{
    size_t page = sm_page_size();
    long os = sysconf(_SC_PAGESIZE);

    group = "sm_page_size";
    CHECK(page != 0);
    CHECK((page & (page - 1)) == 0);
    CHECK(os > 0 && page == (size_t)os);
    CHECK(sm_page_size() == page);
    passed();
}

static void check_alloc(void)
{
    size_t page = sm_page_size();
    size_t n = 3 * page + 1, len = 4 * page;
    void *sentinel = &group, *p = sentinel;
    unsigned char *b;
    char flags[256];

    group = "sm_mem_alloc";
    EXPECT(sm_mem_alloc(0, &p), SM_E_INVAL);
    EXPECT(sm_mem_alloc(page, NULL), SM_E_INVAL);
    EXPECT(sm_mem_alloc(SIZE_MAX, &p), SM_E_INVAL);
    /* The smallest size whose rounding up to a page overflows. */
    EXPECT(sm_mem_alloc(SIZE_MAX - page + 2, &p), SM_E_INVAL);
    CHECK(p == sentinel);

    EXPECT(sm_mem_alloc(n, &p), SM_OK);
    CHECK(p != NULL && p != sentinel);
    CHECK(page_aligned(p));
    b = p;
    /* Whole pages: the rounded-up tail is the caller's too. */
    CHECK(all_bytes(b, len, 0));
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(i * 7u + 1u);
    for (size_t i = 0; i < len; i++)
        CHECK(b[i] == (unsigned char)(i * 7u + 1u));
    if (vm_flags(b, flags, sizeof flags)) {
        CHECK(has_flag(flags, "rd") && has_flag(flags, "wr"));
        CHECK(has_flag(flags, "dd")); /* MADV_DONTDUMP */
        CHECK(has_flag(flags, "wf")); /* MADV_WIPEONFORK */
        CHECK(!has_flag(flags, "lo")); /* not locked until asked */
    }
    EXPECT(sm_mem_free(p, n), SM_OK);

    /* A one-byte request still gives a whole, zeroed page. */
    p = sentinel;
    EXPECT(sm_mem_alloc(1, &p), SM_OK);
    CHECK(p != sentinel && page_aligned(p));
    CHECK(all_bytes(p, page, 0));
    memset(p, 0xff, page);
    CHECK(all_bytes(p, page, 0xff));
    EXPECT(sm_mem_free(p, 1), SM_OK);
    passed();
}

/* ---- lock and protect -------------------------------------------------------------- */

static void check_lock(void)
{
    size_t page = sm_page_size();
    void *p;
    char flags[256];

    group = "sm_mem_lock and sm_mem_unlock";
    EXPECT(sm_mem_alloc(2 * page, &p), SM_OK);
    EXPECT(sm_mem_lock(p, 2 * page), SM_OK);
    if (vm_flags(p, flags, sizeof flags))
        CHECK(has_flag(flags, "lo"));
    EXPECT(sm_mem_unlock(p, 2 * page), SM_OK);
    if (vm_flags(p, flags, sizeof flags))
        CHECK(!has_flag(flags, "lo"));
    EXPECT(sm_mem_lock(NULL, page), SM_E_INVAL);
    EXPECT(sm_mem_lock(p, 0), SM_E_INVAL);
    EXPECT(sm_mem_unlock(NULL, page), SM_E_INVAL);
    EXPECT(sm_mem_unlock(p, 0), SM_E_INVAL);
    /* A length past the end of the address space, which the kernel would wrap to 0. */
    EXPECT(sm_mem_lock(p, SIZE_MAX - 7), SM_E_INVAL);
    EXPECT(sm_mem_unlock(p, SIZE_MAX), SM_E_INVAL);
    /* Locked memory is freed like any other. */
    EXPECT(sm_mem_lock(p, 2 * page), SM_OK);
    EXPECT(sm_mem_free(p, 2 * page), SM_OK);
    passed();
}

static void write_first_byte(void *p)
{
    *(volatile unsigned char *)p = 0x5a;
}

static void read_first_byte(void *p)
{
    unsigned char c = *(volatile unsigned char *)p;

    /* Reached only if the read did not fault: a distinct code names the failure. */
    _exit(c == 0 ? 3 : 4);
}

static void protect_errors(unsigned char *b, size_t page)
{
    EXPECT(sm_mem_protect(b, page, (sm_prot)7), SM_E_INVAL);
    EXPECT(sm_mem_protect(b, page, (sm_prot)-1), SM_E_INVAL);
    EXPECT(sm_mem_protect(b, SIZE_MAX, SM_PROT_READ), SM_E_INVAL);
    EXPECT(sm_mem_protect(b + 1, page, SM_PROT_READ), SM_E_INVAL);
    EXPECT(sm_mem_protect(b + page / 2, page, SM_PROT_READ), SM_E_INVAL);
    EXPECT(sm_mem_protect(NULL, page, SM_PROT_READ), SM_E_INVAL);
    EXPECT(sm_mem_protect(b, 0, SM_PROT_READ), SM_E_INVAL);
}

static void check_protect(void)
{
    size_t page = sm_page_size();
    unsigned char *b;
    void *p;
    char flags[256];

    group = "sm_mem_protect";
    EXPECT(sm_mem_alloc(2 * page, &p), SM_OK);
    b = p;
    memset(b, 0x42, 2 * page);

    EXPECT(sm_mem_protect(b, 2 * page, SM_PROT_READ), SM_OK);
    CHECK(all_bytes(b, 2 * page, 0x42));
    if (vm_flags(b, flags, sizeof flags))
        CHECK(has_flag(flags, "rd") && !has_flag(flags, "wr"));
    died_of(in_child(write_first_byte, b), SIGSEGV, "write to a READ page");
    died_of(in_child(write_first_byte, b + 2 * page - 1), SIGSEGV,
            "write to the last byte of a READ range");
    /* The bad arguments must leave the protection alone: the page is still READ. */
    protect_errors(b, page);
    died_of(in_child(write_first_byte, b), SIGSEGV, "write after rejected protect calls");

    EXPECT(sm_mem_protect(b, 2 * page, SM_PROT_READWRITE), SM_OK);
    memset(b, 0x24, 2 * page);
    CHECK(all_bytes(b, 2 * page, 0x24));

    EXPECT(sm_mem_protect(b, page, SM_PROT_NONE), SM_OK);
    died_of(in_child(read_first_byte, b), SIGSEGV, "read of a NONE page");
    /* Only the pages asked for change. */
    b[page] = 0x11;
    CHECK(b[page] == 0x11);
    EXPECT(sm_mem_protect(b, page, SM_PROT_READWRITE), SM_OK);
    CHECK(all_bytes(b, page, 0x24));
    EXPECT(sm_mem_free(p, 2 * page), SM_OK);
    passed();
}

/* ---- free, and what a child sees ---------------------------------------------------- */

static void check_free(void)
{
    size_t page = sm_page_size();
    unsigned char *b;
    void *p;

    group = "sm_mem_free";
    EXPECT(sm_mem_alloc(page, &p), SM_OK);
    b = p;
    EXPECT(sm_mem_free(NULL, page), SM_E_INVAL);
    EXPECT(sm_mem_free(b + 1, page), SM_E_INVAL);
    EXPECT(sm_mem_free(b + page / 2, page), SM_E_INVAL);
    EXPECT(sm_mem_free(p, 0), SM_E_INVAL);
    EXPECT(sm_mem_free(p, SIZE_MAX), SM_E_INVAL);
    /* The rejected calls must not have unmapped it. */
    b[0] = 1;
    CHECK(b[0] == 1);
    memset(b, 0x77, page);
    /* The library makes the pages writable to wipe them; the caller need not. */
    EXPECT(sm_mem_protect(p, page, SM_PROT_NONE), SM_OK);
    EXPECT(sm_mem_free(p, page), SM_OK);

    EXPECT(sm_mem_alloc(3 * page, &p), SM_OK);
    EXPECT(sm_mem_lock(p, 3 * page), SM_OK);
    EXPECT(sm_mem_protect(p, 3 * page, SM_PROT_READ), SM_OK);
    EXPECT(sm_mem_free(p, 3 * page), SM_OK);
    passed();
}

static void expect_zero_page(void *p)
{
    if (!all_bytes(p, sm_page_size(), 0))
        _exit(2);
}

static void check_fork_exclusion(void)
{
    size_t page = sm_page_size();
    void *p;

    group = "sm_mem_alloc memory is wiped in a forked child";
    /* qemu-user (SM_TEST_EMULATOR) takes MADV_WIPEONFORK and does not apply it. */
    if (getenv("SM_TEST_EMULATOR") != NULL) {
        printf("mem_api: skip %s: the emulator applies no madvise advice\n", group);
        return;
    }
    EXPECT(sm_mem_alloc(page, &p), SM_OK);
    memset(p, 0xc3, page);
    exited_ok(in_child(expect_zero_page, p), "child read the parent's secret");
    CHECK(all_bytes(p, page, 0xc3));
    EXPECT(sm_mem_free(p, page), SM_OK);
    passed();
}

/* ---- OS errors ---------------------------------------------------------------------- */

static void check_os_errors(void)
{
    size_t page = sm_page_size();
    unsigned char *b;
    void *p;

    group = "OS refusals and sm_last_os_error";
    /* A hole between two live pages: no one else maps there in this one-thread program. */
    EXPECT(sm_mem_alloc(3 * page, &p), SM_OK);
    b = p;
    EXPECT(sm_mem_free(b + page, page), SM_OK);
    EXPECT(sm_mem_lock(b + page, page), SM_E_LOCK);
    CHECK(sm_last_os_error() == ENOMEM);
    /*
     * qemu-user for a 32-bit guest (SM_TEST_EMULATOR) keeps the guest's whole address
     * space reserved, and its mprotect of an unmapped guest page succeeds.
     */
    if (getenv("SM_TEST_EMULATOR") == NULL) {
        EXPECT(sm_mem_protect(b + page, page, SM_PROT_READ), SM_E_PROT);
        CHECK(sm_last_os_error() == ENOMEM);
    }
    /* Successes do not reset it. */
    EXPECT(sm_mem_lock(b, page), SM_OK);
    CHECK(sm_last_os_error() == ENOMEM);
    EXPECT(sm_mem_free(b, page), SM_OK);
    EXPECT(sm_mem_free(b + 2 * page, page), SM_OK);
    passed();
}

/* ---- wipe, equal, random ------------------------------------------------------------ */

static void check_wipe(void)
{
    unsigned char buf[96];

    group = "sm_wipe";
    memset(buf, 0xa5, sizeof buf);
    sm_wipe(buf, sizeof buf);
    CHECK(all_bytes(buf, sizeof buf, 0));

    /* Exactly n bytes: the neighbours survive. */
    memset(buf, 0xa5, sizeof buf);
    sm_wipe(buf + 1, sizeof buf - 2);
    CHECK(buf[0] == 0xa5 && buf[sizeof buf - 1] == 0xa5);
    CHECK(all_bytes(buf + 1, sizeof buf - 2, 0));

    memset(buf, 0xa5, sizeof buf);
    sm_wipe(buf, 0);
    CHECK(all_bytes(buf, sizeof buf, 0xa5));
    sm_wipe(NULL, 0);
    passed();
}

static void check_equal(void)
{
    unsigned char a[64], b[64];

    group = "sm_equal";
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = (unsigned char)(i * 13u + 5u);
    memcpy(b, a, sizeof b);
    CHECK(sm_equal(a, b, sizeof a));
    CHECK(sm_equal(a, a, sizeof a));
    CHECK(sm_equal(a, b, 1));

    b[0] ^= 1;
    CHECK(!sm_equal(a, b, sizeof a));
    CHECK(!sm_equal(a, b, 1));
    CHECK(sm_equal(a + 1, b + 1, sizeof a - 1));
    b[0] = a[0];

    b[sizeof b - 1] ^= 0x80;
    CHECK(!sm_equal(a, b, sizeof a));
    CHECK(sm_equal(a, b, sizeof a - 1));
    b[sizeof b - 1] = a[sizeof a - 1];

    /* Every single-bit difference, in every position, is seen. */
    for (size_t i = 0; i < sizeof b; i++)
        for (unsigned bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            CHECK(!sm_equal(a, b, sizeof a));
            b[i] ^= (unsigned char)(1u << bit);
        }
    CHECK(sm_equal(a, b, sizeof a));

    memset(b, 0xff, sizeof b);
    CHECK(sm_equal(a, b, 0));
    passed();
}

static void check_random(void)
{
    size_t big = (size_t)1 << 20;
    unsigned char x[64], y[64], keep[64];
    unsigned char *z;
    void *p;

    group = "sm_random";
    memset(x, 0, sizeof x);
    memset(y, 0, sizeof y);
    EXPECT(sm_random(x, sizeof x), SM_OK);
    EXPECT(sm_random(y, sizeof y), SM_OK);
    CHECK(!all_bytes(x, sizeof x, 0));
    CHECK(!all_bytes(y, sizeof y, 0));
    CHECK(memcmp(x, y, sizeof x) != 0);

    memset(keep, 0x3c, sizeof keep);
    EXPECT(sm_random(keep, 0), SM_OK);
    CHECK(all_bytes(keep, sizeof keep, 0x3c));
    EXPECT(sm_random(NULL, 0), SM_OK);
    EXPECT(sm_random(NULL, 1), SM_E_INVAL);
    EXPECT(sm_random(NULL, sizeof x), SM_E_INVAL);

    /* Large enough that the OS may answer in pieces: the tail must be filled too. */
    EXPECT(sm_mem_alloc(big, &p), SM_OK);
    EXPECT(sm_random(p, big), SM_OK);
    z = p;
    CHECK(!all_bytes(z, 64, 0));
    CHECK(!all_bytes(z + big - 64, 64, 0));
    EXPECT(sm_mem_free(p, big), SM_OK);
    passed();
}

/* ---- runtime ------------------------------------------------------------------------ */

static void check_init(void)
{
    sm_config bad = { 0 }, dflt = { 0 }, other = { 0 };
    sm_status st;

    group = "sm_init";
    /* Rejected before anything is initialised, so that the default init below is clean. */
    bad.lock_policy = (sm_lock_policy)5;
    EXPECT(sm_init(&bad), SM_E_INVAL);
    bad.lock_policy = SM_LOCK_REQUIRED;
    bad.backing = (sm_backing)9;
    EXPECT(sm_init(&bad), SM_E_INVAL);

    EXPECT(sm_init(NULL), SM_OK);
    EXPECT(sm_init(NULL), SM_OK);
    EXPECT(sm_init(&dflt), SM_OK);

    other.lock_policy = SM_LOCK_BEST_EFFORT;
    EXPECT(sm_init(&other), SM_E_STATE);
    other.lock_policy = SM_LOCK_REQUIRED;
    other.backing = SM_BACKING_SECRETMEM_PREFERRED;
    EXPECT(sm_init(&other), SM_E_STATE);
    other.backing = SM_BACKING_ANON;
    other.disable_core_dumps = true;
    EXPECT(sm_init(&other), SM_E_STATE);

    /* An invalid config is an error whichever of the two reasons is reported first. */
    bad.backing = SM_BACKING_ANON;
    bad.lock_policy = (sm_lock_policy)5;
    st = sm_init(&bad);
    CHECK(st == SM_E_INVAL || st == SM_E_STATE);
    /* The rejected calls left the first configuration in force. */
    EXPECT(sm_init(NULL), SM_OK);
    passed();
}

static void check_stats(void)
{
    size_t page = sm_page_size();
    sm_stats s, t;
    void *p;

    group = "sm_stats_get";
    EXPECT(sm_stats_get(NULL), SM_E_INVAL);
    memset(&s, 0xff, sizeof s);
    EXPECT(sm_stats_get(&s), SM_OK);
    CHECK(s.buffers_live == 0 && s.enclaves_live == 0);
    CHECK(s.streams_live == 0 && s.secrets_live == 0);
    CHECK(s.bytes_unlocked == 0);
    CHECK(!s.secretmem); /* the default backing is anonymous memory */

    /* The memory layer's pages are the caller's, never counted. */
    EXPECT(sm_mem_alloc(page, &p), SM_OK);
    EXPECT(sm_mem_lock(p, page), SM_OK);
    EXPECT(sm_stats_get(&t), SM_OK);
    CHECK(t.allocations_total == s.allocations_total);
    CHECK(t.bytes_locked == s.bytes_locked);
    CHECK(t.bytes_unlocked == 0);
    EXPECT(sm_mem_free(p, page), SM_OK);
    EXPECT(sm_stats_get(&t), SM_OK);
    CHECK(t.bytes_locked == s.bytes_locked);
    passed();
}

/* ---- core dumps, in a child only ---------------------------------------------------- */

static void disable_dumps(void *unused)
{
    struct rlimit rl;

    (void)unused;
    /* in_child lowered only the soft limit; make sure the call itself does the job. */
    if (getrlimit(RLIMIT_CORE, &rl) != 0)
        _exit(2);
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        _exit(3);
    if (sm_disable_core_dumps() != SM_OK)
        _exit(5);
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0)
        _exit(6);
    if (DUMPABLE() != 0)
        _exit(7);
    /* Idempotent. */
    if (sm_disable_core_dumps() != SM_OK)
        _exit(8);
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0)
        _exit(9);
    if (DUMPABLE() != 0)
        _exit(10);
}

static void check_core_dumps(void)
{
    int dumpable = DUMPABLE();
    struct rlimit before, after;

    group = "sm_disable_core_dumps (in a child)";
    CHECK(getrlimit(RLIMIT_CORE, &before) == 0);
    exited_ok(in_child(disable_dumps, NULL), "sm_disable_core_dumps");
    /* The child's settings must not have leaked into this process. */
    CHECK(DUMPABLE() == dumpable);
    CHECK(getrlimit(RLIMIT_CORE, &after) == 0);
    CHECK(after.rlim_cur == before.rlim_cur && after.rlim_max == before.rlim_max);
    passed();
}

int main(void)
{
    /* Before any other call: sm_last_os_error must still read 0. */
    check_status();
    check_version();
    check_page_size();
    check_alloc();
    check_lock();
    check_protect();
    check_free();
    check_fork_exclusion();
    check_os_errors();
    check_wipe();
    check_equal();
    check_random();
    check_init();
    check_stats();
    check_core_dumps();
    printf("mem_api: all checks passed\n");
    return 0;
}
