/* SPDX-License-Identifier: ISC */
/*
 * The Linux shim. POSIX calls where POSIX has them; madvise advice, memfd_secret,
 * getrandom and prctl are Linux's own. The error mapping of each function follows
 * spec/os-errors.tsv, and tests/unit/test_os.c checks every row of that table.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "os.h"
#include "../vg.h"

static _Thread_local int last_error;

/*
 * The fuzz flavours (SM_FUZZ_DETERMINISTIC, never the release library) draw from a
 * fixed-seed stream instead of getrandom and read a stepped clock, so that a fuzz input
 * replays exactly (src/os/fuzz_random.c). Everything else, the fault shim included,
 * runs as in the other builds.
 */
#if defined(SM_FUZZ_DETERMINISTIC)
#define OS_GETRANDOM(p, n) (sm_os_fuzz_random((p), (n)), (ssize_t)(n))
#else
#define OS_GETRANDOM(p, n) getrandom((p), (n), 0)
#endif

/*
 * errno -> sm_status, per OS function (spec/os-errors.tsv). EINVAL from a page call
 * means a bad range or alignment that the caller passed through, hence SM_E_INVAL; the
 * other errors mean the OS refused, and each function has its own refusal status.
 */
static sm_status classify(sm_os_fn fn, int err)
{
    switch (fn) {
    case SM_OS_MMAP:
    case SM_OS_MMAP_FD:
        /* EAGAIN: the mapping would exceed RLIMIT_MEMLOCK (secretmem is charged to it). */
        return err == ENOMEM ? SM_E_NOMEM : err == EAGAIN ? SM_E_LOCK : SM_E_SYS;
    case SM_OS_MUNMAP:
        return err == EINVAL ? SM_E_INVAL : SM_E_SYS;
    case SM_OS_MPROTECT:
        return err == EINVAL ? SM_E_INVAL : SM_E_PROT;
    case SM_OS_MLOCK:
    case SM_OS_MUNLOCK:
        return err == EINVAL ? SM_E_INVAL : SM_E_LOCK;
    case SM_OS_MADVISE:
        /* EINVAL: a kernel that predates the advice (WIPEONFORK is 4.14). */
        return err == EINVAL ? SM_E_UNSUPPORTED : SM_E_SYS;
    case SM_OS_MEMFD_SECRET:
        /* ENOSYS: no CONFIG_SECRETMEM, or Valgrind; EPERM, EINVAL: disabled at boot. */
        if (err == ENOSYS || err == EPERM || err == EINVAL)
            return SM_E_UNSUPPORTED;
        return (err == EMFILE || err == ENFILE || err == ENOMEM) ? SM_E_NOMEM : SM_E_SYS;
    case SM_OS_FTRUNCATE:
        return (err == ENOMEM || err == EFBIG) ? SM_E_NOMEM : SM_E_SYS;
    case SM_OS_GETRANDOM:
        return SM_E_RANDOM;
    case SM_OS_READ:
        return SM_E_IO;
    case SM_OS_LSEEK:
        /* ESPIPE: a pipe, socket or terminal, which has no offset to go back to. */
        return err == ESPIPE ? SM_E_UNSUPPORTED : SM_E_IO;
    case SM_OS_SIGACTION:
        return err == EINVAL ? SM_E_INVAL : SM_E_SYS;
    case SM_OS_ATFORK:
        return err == ENOMEM ? SM_E_NOMEM : SM_E_SYS;
    case SM_OS_CLOSE:
    case SM_OS_SETRLIMIT:
    case SM_OS_PRCTL:
    case SM_OS_FN_COUNT:
        break;
    }
    return SM_E_SYS;
}

static sm_status fail(sm_os_fn fn, int err)
{
    last_error = err;
    return classify(fn, err);
}

/* Consult the fault plan first; in the release build this is a constant 0. */
#define SM_OS_CALL(fn, failed, call)                    \
    do {                                                \
        int err_ = sm_os_fault_hit(fn);                 \
        if (err_ == 0 && (call) failed)                 \
            err_ = errno;                               \
        if (err_ != 0)                                  \
            return fail(fn, err_);                      \
    } while (0)

static int prot_bits(sm_prot prot)
{
    switch (prot) {
    case SM_PROT_READ:
        return PROT_READ;
    case SM_PROT_READWRITE:
        return PROT_READ | PROT_WRITE;
    case SM_PROT_NONE:
        break;
    }
    return PROT_NONE;
}

/* Every thread computes the same value: a relaxed atomic only keeps TSan informed. */
static _Atomic size_t page;

SMI_VG_AT_START(vg_linux)
{
    SMI_VG_ATOMIC(&page, sizeof page);
}

size_t sm_os_page_size(void)
{
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);

    if (p == 0) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

uint64_t sm_os_monotonic_ns(void)
{
#if defined(SM_FUZZ_DETERMINISTIC)
    return sm_os_fuzz_clock_ns();
#else
    struct timespec t;

    (void)clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
#endif
}

static sm_status map_private(size_t len, int prot, int flags, void **out)
{
    void *p = MAP_FAILED;

    SM_OS_CALL(SM_OS_MMAP, == MAP_FAILED,
               p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0));
    *out = p;
    return SM_OK;
}

sm_status sm_os_mmap(size_t len, sm_prot prot, void **out)
{
    return map_private(len, prot_bits(prot), 0, out);
}

/*
 * MAP_POPULATE faults every page in within the one mmap call. The caller fills the
 * mapping whole at once, so this does the work of a page fault per page without the
 * faults. A page the kernel cannot populate is faulted in later as usual: MAP_POPULATE
 * never makes mmap fail, so the errors are mmap's.
 */
sm_status sm_os_mmap_filled(size_t len, void **out)
{
    return map_private(len, PROT_READ | PROT_WRITE, MAP_POPULATE, out);
}

sm_status sm_os_mmap_fd(void *addr, size_t len, int fd)
{
    SM_OS_CALL(SM_OS_MMAP_FD, == MAP_FAILED,
               mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0));
    return SM_OK;
}

sm_status sm_os_munmap(void *p, size_t len)
{
    int err = sm_os_fault_hit(SM_OS_MUNMAP);

    /* Test builds remember what an injected failure kept mapped (fault.h). */
    sm_os_fault_track_munmap(p, len, err != 0);
    if (err == 0 && munmap(p, len) != 0)
        err = errno;
    return err != 0 ? fail(SM_OS_MUNMAP, err) : SM_OK;
}

sm_status sm_os_mprotect(void *p, size_t len, sm_prot prot)
{
    SM_OS_CALL(SM_OS_MPROTECT, != 0, mprotect(p, len, prot_bits(prot)));
    return SM_OK;
}

sm_status sm_os_mlock(void *p, size_t len)
{
    SM_OS_CALL(SM_OS_MLOCK, != 0, mlock(p, len));
    return SM_OK;
}

sm_status sm_os_munlock(void *p, size_t len)
{
    SM_OS_CALL(SM_OS_MUNLOCK, != 0, munlock(p, len));
    return SM_OK;
}

sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice)
{
    int adv = advice == SM_OS_DONTDUMP ? MADV_DONTDUMP
            : advice == SM_OS_WIPEONFORK ? MADV_WIPEONFORK
                                         : MADV_DONTFORK;

    SM_OS_CALL(SM_OS_MADVISE, != 0, madvise(p, len, adv));
    return SM_OK;
}

sm_status sm_os_secretmem_create(size_t len, int *fd)
{
    int f = -1;
    sm_status st;

#if defined(SYS_memfd_secret)
    SM_OS_CALL(SM_OS_MEMFD_SECRET, < 0, f = (int)syscall(SYS_memfd_secret, O_CLOEXEC));
#else
    return fail(SM_OS_MEMFD_SECRET, ENOSYS);
#endif
    st = SM_OK;
    {
        int err = sm_os_fault_hit(SM_OS_FTRUNCATE);

        if (err == 0 && ftruncate(f, (off_t)len) != 0)
            err = errno;
        if (err != 0) {
            st = fail(SM_OS_FTRUNCATE, err);
            (void)sm_os_close(f);
            return st;
        }
    }
    *fd = f;
    return st;
}

sm_status sm_os_close(int fd)
{
    SM_OS_CALL(SM_OS_CLOSE, != 0, close(fd));
    return SM_OK;
}

sm_status sm_os_random(void *p, size_t n)
{
    unsigned char *q = p;

    while (n > 0) {
        ssize_t r = -1;
        int err = sm_os_fault_hit(SM_OS_GETRANDOM);

        if (err == 0) {
            r = OS_GETRANDOM(q, n);
            if (r < 0)
                err = errno;
        }
        if (err == EINTR)
            continue;
        if (err != 0)
            return fail(SM_OS_GETRANDOM, err);
        q += r;
        n -= (size_t)r;
    }
    return SM_OK;
}

sm_status sm_os_disable_core_dumps(void)
{
    static const struct rlimit zero = { 0, 0 };
    int was = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    int err;

    /*
     * Dumpability first: it can be restored if the rlimit step fails, whereas a hard
     * RLIMIT_CORE of 0 cannot be raised again without CAP_SYS_RESOURCE.
     */
    SM_OS_CALL(SM_OS_PRCTL, != 0, prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
    err = sm_os_fault_hit(SM_OS_SETRLIMIT);
    if (err == 0 && setrlimit(RLIMIT_CORE, &zero) != 0)
        err = errno;
    if (err != 0) {
        /* Only 0 and 1 can be set; a suid_dumpable 2 comes back as 1. */
        if (was > 0)
            (void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        return fail(SM_OS_SETRLIMIT, err);
    }
    return SM_OK;
}

sm_status sm_os_read(int fd, void *p, size_t n, size_t *got)
{
    for (;;) {
        ssize_t r = -1;
        int err = sm_os_fault_hit(SM_OS_READ);

        if (err == 0) {
            r = read(fd, p, n);
            if (r < 0)
                err = errno;
        }
        if (err == EINTR)
            continue;
        if (err != 0)
            return fail(SM_OS_READ, err);
        *got = (size_t)r;
        return SM_OK;
    }
}

sm_status sm_os_seek_cur(int fd, int64_t delta, uint64_t *pos)
{
    off_t r = -1;

    SM_OS_CALL(SM_OS_LSEEK, < 0, r = lseek(fd, (off_t)delta, SEEK_CUR));
    *pos = (uint64_t)r;
    return SM_OK;
}

_Static_assert(sizeof(struct sigaction) <= sizeof(sm_os_sigsave), "sm_os_sigsave holds a sigaction");

sm_status sm_os_signal_catch(int sig, void (*handler)(int), sm_os_sigsave *old)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    /*
     * SA_ONSTACK: on the thread's alternate signal stack when it has one, so that a
     * stack overflow (SIGSEGV on a full stack) can still purge; without one the flag
     * changes nothing (spec/runtime.md, SM-REQ-109).
     */
    sa.sa_flags = SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    SM_OS_CALL(SM_OS_SIGACTION, != 0, sigaction(sig, &sa, (struct sigaction *)(void *)old->opaque));
    return SM_OK;
}

sm_status sm_os_signal_query(int sig, sm_os_sigsave *now)
{
    SM_OS_CALL(SM_OS_SIGACTION, != 0, sigaction(sig, NULL, (struct sigaction *)(void *)now->opaque));
    return SM_OK;
}

bool sm_os_signal_ignored(const sm_os_sigsave *s)
{
    const struct sigaction *sa = (const struct sigaction *)(const void *)s->opaque;

    return (sa->sa_flags & SA_SIGINFO) == 0 && sa->sa_handler == SIG_IGN;
}

void sm_os_signal_restore(int sig, const sm_os_sigsave *old)
{
    (void)sigaction(sig, (const struct sigaction *)(const void *)old->opaque, NULL);
}

_Noreturn void sm_os_die_by_signal(int sig)
{
    struct sigaction sa;
    sigset_t set;

    /*
     * A stop signal's default action would stop the process after its purge, and let
     * it run on, secrets gone, after a SIGCONT: a stop signal ends it at once instead.
     */
    if (sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
        _exit(128 + sig);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    (void)sigaction(sig, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, sig);
    (void)raise(sig);
    (void)pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    _exit(128 + sig);
}

const int *sm_os_interrupt_signals(size_t *n)
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

    *n = sizeof sigs / sizeof sigs[0];
    return sigs;
}

void sm_os_yield(void)
{
    (void)sched_yield();
}

_Noreturn void sm_os_wait_forever(void)
{
    for (;;)
        (void)pause();
}

_Noreturn void sm_os_exit(int code)
{
    exit(code);
}

sm_status sm_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    int err = sm_os_fault_hit(SM_OS_ATFORK);

    /* pthread_atfork returns its error instead of setting errno. */
    if (err == 0)
        err = pthread_atfork(prepare, parent, child);
    return err == 0 ? SM_OK : fail(SM_OS_ATFORK, err);
}

int sm_os_last_error(void)
{
    return last_error;
}

void sm_os_set_last_error(int err)
{
    last_error = err;
}

static unsigned hex_digit(char c)
{
    return c >= 'a' ? (unsigned)(c - 'a' + 10) : (unsigned)(c - '0');
}

/*
 * Whether /proc/self/maps shows [a, b) mapped writable throughout: 1 yes, 0 no, -1
 * unreadable. Its lines come sorted by address, as "start-end perms ...", and are parsed
 * a character at a time, so that no line length and no malloc is needed.
 */
static int maps_writable(uintptr_t a, uintptr_t b)
{
    char buf[4096];
    uintptr_t lo = 0, hi = 0, cur = a;
    unsigned field = 0, perm = 0;
    bool w = false;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), result = -1;

    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            result = n == 0 ? 0 : -1; /* the end, and [cur, b) is not mapped */
            break;
        }
        for (ssize_t i = 0; i < n && result < 0; i++) {
            char c = buf[i];

            if (c == '\n') {
                if (hi > cur) {
                    if (lo > cur || !w)
                        result = 0; /* a hole, or a page that is not writable */
                    else if ((cur = hi) >= b)
                        result = 1;
                }
                lo = hi = 0;
                field = perm = 0;
                w = false;
            } else if (field == 0) {
                if (c == '-')
                    field = 1;
                else
                    lo = lo * 16 + hex_digit(c);
            } else if (field == 1) {
                if (c == ' ')
                    field = 2;
                else
                    hi = hi * 16 + hex_digit(c);
            } else if (field == 2) {
                if (c == ' ')
                    field = 3;
                else if (perm++ == 1)
                    w = c == 'w';
            }
        }
        if (result >= 0)
            break;
    }
    (void)close(fd);
    return result;
}

/* Linux 5.14; the value is the kernel's, for headers that predate it. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * MADV_POPULATE_WRITE over the pages of the range: the kernel faults them in for
 * writing as a write would, and changes no byte; ENOMEM says that part of the range is
 * not mapped. One madvise, which seccomp profiles allow, and no copy. Any other refusal
 * is checked against /proc/self/maps, which is slower but says what each mapping allows:
 * the kernel answers EINVAL both for pages that are not writable and for pages that are
 * but that it does not populate for others (memfd_secret, device memory), as does a
 * kernel before 5.14, which does not know the advice.
 */
sm_status sm_os_writable(void *p, size_t n)
{
    uintptr_t pg = (uintptr_t)sm_os_page_size(), a, b;
    int err, m;

    if (n == 0)
        return SM_OK;
    /*
     * A range that wraps the address space is not writable. Unchecked, its rounded end
     * wrapped back to p's page and madvise, asked about 0 bytes, said yes.
     */
    if ((uintptr_t)p > UINTPTR_MAX - n || (uintptr_t)p + n > UINTPTR_MAX - (pg - 1)) {
        last_error = EFAULT;
        return SM_E_READONLY;
    }
    a = (uintptr_t)p & ~(pg - 1);
    b = ((uintptr_t)p + n + pg - 1) & ~(pg - 1);
    do {
        err = madvise((void *)a, b - a, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
    } while (err == EINTR || err == EAGAIN);
    if (err == 0)
        return SM_OK;
    m = err == ENOMEM ? 0 : maps_writable((uintptr_t)p, (uintptr_t)p + n);
    /* Unanswered (no /proc) and not refused outright: go on as before the question. */
    if (m == 1 || (m < 0 && err != EFAULT))
        return SM_OK;
    last_error = EFAULT;
    return SM_E_READONLY;
}

_Noreturn void sm_os_die(const char *msg)
{
    static const char prefix[] = "securemem: panic: ";
    char line[512];
    size_t len = sizeof prefix - 1;

    /* One write, so that the line cannot interleave with another thread's output. */
    memcpy(line, prefix, len);
    for (; *msg != 0 && len < sizeof line - 1; msg++)
        line[len++] = *msg;
    line[len++] = '\n';
    /* Best effort only: nothing can be done if stderr is gone, and abort must follow. */
    (void)!write(STDERR_FILENO, line, len);
    abort();
}
