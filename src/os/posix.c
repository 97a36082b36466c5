/* SPDX-License-Identifier: ISC */
/*
 * The POSIX base of every Unix shim: mmap, mprotect, mlock, sysconf, read, lseek,
 * sigaction, pthread_atfork. Only what POSIX.1-2008 gives is here; each system's file
 * (src/os/linux.c, src/os/generic.c, src/os/freebsd.c, ...) adds its own calls for what
 * POSIX lacks: dump and fork advice, off-direct-map memory, the random source, core
 * dumps, the writability query (os.h, posix.h). The error mapping of each function
 * follows spec/os-errors.tsv, and tests/unit/test_os.c checks every row of that table.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "posix.h"
#include "../vg.h"

/* MAP_ANON is the older BSD spelling; POSIX.1-2024 has MAP_ANONYMOUS. */
#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

static _Thread_local int last_error;

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
    case SM_OS_PKEY_ALLOC:
        /*
         * ENOSPC: no key left, or none at all (a CPU without them); ENOSYS: a kernel or
         * an emulator without the call; EINVAL: a kernel that refuses the rights asked.
         * Each one leaves the compact factory on mprotect.
         */
        return err == ENOSPC || err == ENOSYS || err == EINVAL ? SM_E_UNSUPPORTED : SM_E_SYS;
    case SM_OS_PKEY_MPROTECT:
        return err == EINVAL ? SM_E_INVAL : SM_E_PROT;
    case SM_OS_OPEN:         /* never a status: the query falls back (linux.c) */
    case SM_OS_PROCMAP_QUERY:
    case SM_OS_PAGEMAP_SCAN:
    case SM_OS_CLOSE:
    case SM_OS_SETRLIMIT:
    case SM_OS_PRCTL:
    case SM_OS_FN_COUNT:
        break;
    }
    return SM_E_SYS;
}

sm_status sm_os_posix_fail(sm_os_fn fn, int err)
{
    last_error = err;
    return classify(fn, err);
}

int sm_os_posix_prot(sm_prot prot)
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

SMI_VG_AT_START(vg_posix)
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

sm_status sm_os_posix_map(size_t len, int prot, int flags, void **out)
{
    void *p = MAP_FAILED;

    SM_OS_CALL(SM_OS_MMAP, == MAP_FAILED,
               p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0));
    *out = p;
    return SM_OK;
}

sm_status sm_os_mmap(size_t len, sm_prot prot, void **out)
{
    return sm_os_posix_map(len, sm_os_posix_prot(prot), sm_os_system_of.map_flags, out);
}

sm_status sm_os_munmap(void *p, size_t len)
{
    int err = sm_os_fault_hit(SM_OS_MUNMAP);

    /* Test builds remember what an injected failure kept mapped (fault.h). */
    sm_os_fault_track_munmap(p, len, err != 0);
    if (err == 0 && munmap(p, len) != 0)
        err = errno;
    return err != 0 ? sm_os_posix_fail(SM_OS_MUNMAP, err) : SM_OK;
}

sm_status sm_os_mprotect(void *p, size_t len, sm_prot prot)
{
    SM_OS_CALL(SM_OS_MPROTECT, != 0, mprotect(p, len, sm_os_posix_prot(prot)));
    return SM_OK;
}

sm_status sm_os_mlock(void *p, size_t len)
{
    SM_OS_CALL(SM_OS_MLOCK, != 0, mlock(p, len));
    return SM_OK;
}

sm_status sm_os_mlock_touched(void *p, size_t len)
{
    if (sm_os_system_of.lock_touched == NULL)
        return sm_os_mlock(p, len);
    SM_OS_CALL(SM_OS_MLOCK, != 0, sm_os_system_of.lock_touched(p, len));
    return SM_OK;
}

sm_status sm_os_munlock(void *p, size_t len)
{
    SM_OS_CALL(SM_OS_MUNLOCK, != 0, munlock(p, len));
    return SM_OK;
}

sm_status sm_os_close(int fd)
{
    /*
     * The descriptor is released even when close reports an error (os.h), so a refusal
     * of the fault shim releases it too: a test that fails a close sees the descriptors
     * that a program would, and can count them.
     */
    int err = sm_os_fault_hit(SM_OS_CLOSE);

    if (close(fd) != 0 && err == 0)
        err = errno;
    return err != 0 ? sm_os_posix_fail(SM_OS_CLOSE, err) : SM_OK;
}

/*
 * The fuzz flavours (SM_FUZZ_DETERMINISTIC, never the release library) draw from a
 * fixed-seed stream instead of the system's source and read a stepped clock, so that a
 * fuzz input replays exactly (src/os/fuzz_random.c).
 */
#if defined(SM_FUZZ_DETERMINISTIC)
#define OS_RANDOM(p, n) (sm_os_fuzz_random((p), (n)), (ssize_t)(n))
#else
/*
 * getentropy gives at most 256 bytes a call (POSIX.1-2024, glibc 2.25, every BSD). Its
 * POSIX declaration, here: the systems put it in different headers (<unistd.h>, macOS's
 * <sys/random.h>, which NetBSD and OpenBSD do not have), and a second declaration of
 * the same prototype is harmless where a header included above already has it.
 */
int getentropy(void *buf, size_t len);

/* The system's own source (sm_os_system.random), or getentropy. */
static ssize_t sys_random(void *p, size_t n)
{
    size_t k = n < 256 ? n : 256;

    if (sm_os_system_of.random != NULL)
        return sm_os_system_of.random(p, n);
    return getentropy(p, k) == 0 ? (ssize_t)k : -1;
}

#define OS_RANDOM(p, n) sys_random((p), (n))
#endif

sm_status sm_os_random(void *p, size_t n)
{
    unsigned char *q = p;

    while (n > 0) {
        ssize_t r = -1;
        int err = sm_os_fault_hit(SM_OS_GETRANDOM);

        if (err == 0) {
            r = OS_RANDOM(q, n);
            if (r < 0)
                err = errno;
        }
        if (err == EINTR)
            continue;
        if (err != 0)
            return sm_os_posix_fail(SM_OS_GETRANDOM, err);
        q += r;
        n -= (size_t)r;
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
            return sm_os_posix_fail(SM_OS_READ, err);
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
    return err == 0 ? SM_OK : sm_os_posix_fail(SM_OS_ATFORK, err);
}

int sm_os_last_error(void)
{
    return last_error;
}

void sm_os_set_last_error(int err)
{
    last_error = err;
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

/* ---- what each system's table decides (posix.h, sm_os_system) ---- */

unsigned sm_os_caps(void)
{
    return sm_os_system_of.caps;
}

sm_status sm_os_mmap_filled(size_t len, void **out)
{
    return sm_os_posix_map(len, PROT_READ | PROT_WRITE,
                           sm_os_system_of.map_flags | sm_os_system_of.fill_flags, out);
}

sm_status sm_os_mmap_fd(void *addr, size_t len, int fd)
{
    SM_OS_CALL(SM_OS_MMAP_FD, == MAP_FAILED,
               mmap(addr, len, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_FIXED | sm_os_system_of.map_flags, fd, 0));
    return SM_OK;
}

sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice)
{
    int (*advise)(void *, size_t, sm_os_advice) = sm_os_system_of.advise;

    SM_OS_CALL(SM_OS_MADVISE, != 0, advise != NULL ? advise(p, len, advice) : 0);
    return SM_OK;
}

sm_status sm_os_secretmem_create(size_t len, int *fd)
{
    if (sm_os_system_of.secretmem_create != NULL)
        return sm_os_system_of.secretmem_create(len, fd);
    return sm_os_posix_fail(SM_OS_MEMFD_SECRET, ENOSYS);
}

/* RLIMIT_CORE = 0 is all that POSIX has: no dumpable flag to clear first. */
sm_status sm_os_disable_core_dumps(void)
{
    static const struct rlimit zero = { 0, 0 };

    if (sm_os_system_of.disable_core_dumps != NULL)
        return sm_os_system_of.disable_core_dumps();
    SM_OS_CALL(SM_OS_SETRLIMIT, != 0, setrlimit(RLIMIT_CORE, &zero));
    return SM_OK;
}

sm_status sm_os_pkey_alloc(int *key)
{
    const struct sm_os_pkeys *k = sm_os_system_of.pkeys;
    int got = -1;

    /* No call where there is nothing to ask for: the fault shim counts none either. */
    if (k == NULL || !k->usable())
        return sm_os_posix_fail(SM_OS_PKEY_ALLOC, ENOSYS);
    SM_OS_CALL(SM_OS_PKEY_ALLOC, < 0, got = k->alloc());
    *key = got;
    return SM_OK;
}

sm_status sm_os_pkey_mprotect(void *p, size_t len, sm_prot prot, int key)
{
    const struct sm_os_pkeys *k = sm_os_system_of.pkeys;

    /* Only with a key from sm_os_pkey_alloc, which a system without keys never gives. */
    if (k == NULL)
        return sm_os_posix_fail(SM_OS_PKEY_MPROTECT, ENOSYS);
    SM_OS_CALL(SM_OS_PKEY_MPROTECT, != 0, k->mprotect(p, len, sm_os_posix_prot(prot), key));
    return SM_OK;
}

sm_prot sm_os_pkey_rights(int key, sm_prot rights)
{
    const struct sm_os_pkeys *k = sm_os_system_of.pkeys;

    return k != NULL ? k->rights(key, rights) : SM_PROT_NONE;
}

sm_status sm_os_writable(void *p, size_t n)
{
    uintptr_t pg = (uintptr_t)sm_os_page_size();

    if (n == 0)
        return SM_OK;
    /*
     * A range that wraps the address space is writable on no system. Unchecked, its end
     * rounded up to a page wrapped back to p's page, and a query of 0 bytes said yes.
     */
    if ((uintptr_t)p > UINTPTR_MAX - n || (uintptr_t)p + n > UINTPTR_MAX - (pg - 1)) {
        sm_os_set_last_error(EFAULT);
        return SM_E_READONLY;
    }
    if (sm_os_system_of.writable != NULL)
        return sm_os_system_of.writable(p, n);
    return SM_OK;
}
