/* SPDX-License-Identifier: ISC */
#ifndef SM_OS_H
#define SM_OS_H

/*
 * The OS shim: the only code that makes system calls. One implementation per platform
 * (src/os/<platform>.c, on the POSIX base src/os/posix.c for Unix systems), chosen by
 * the build (spec/platforms.md). Every function either succeeds with
 * SM_OK or returns the sm_status that its failure maps to (spec/os-errors.tsv), after
 * recording the raw OS error for sm_last_os_error.
 *
 * Each fallible function is one "OS function" of the fault-injecting build (fault.h):
 * sm_os_fn names them, in the order of spec/os-errors.tsv.
 */

#include <stddef.h>
#include <stdint.h>
#include <securemem/mem.h>

typedef enum sm_os_fn {
    SM_OS_MMAP,          /* anonymous private mapping */
    SM_OS_MMAP_FD,       /* shared mapping of a secretmem fd over a reserved range */
    SM_OS_MUNMAP,
    SM_OS_MPROTECT,
    SM_OS_MLOCK,
    SM_OS_MUNLOCK,
    SM_OS_MADVISE,
    SM_OS_MEMFD_SECRET,
    SM_OS_FTRUNCATE,
    SM_OS_CLOSE,
    SM_OS_GETRANDOM,
    SM_OS_SETRLIMIT,
    SM_OS_PRCTL,
    SM_OS_READ,
    SM_OS_LSEEK,
    SM_OS_SIGACTION,
    SM_OS_ATFORK,
    SM_OS_OPEN,          /* the writability query's open of a /proc/self file: refused, it falls back */
    SM_OS_PROCMAP_QUERY, /* its ioctl(PROCMAP_QUERY) of a mapping: refused, it falls back */
    SM_OS_PAGEMAP_SCAN,  /* its ioctl(PAGEMAP_SCAN) for guard markers: refused, it falls back */
    SM_OS_PKEY_ALLOC,    /* a memory protection key: refused, the compact factory falls back */
    SM_OS_PKEY_MPROTECT, /* a protection change that tags the pages with that key */
    SM_OS_FN_COUNT
} sm_os_fn;

/*
 * HUGEPAGE asks for transparent huge pages (Linux's MADV_HUGEPAGE), for a stream's runs
 * of chunks (src/objects/stream.c): speed only, never a protection, so a system without
 * it does nothing and says SM_OK, and a refusal costs its caller page faults, not a
 * failure.
 */
typedef enum { SM_OS_DONTDUMP, SM_OS_WIPEONFORK, SM_OS_DONTFORK, SM_OS_HUGEPAGE } sm_os_advice;

/*
 * The protections this shim can give (SM_CAP_* of securemem/runtime.h): a constant of
 * the platform, which sm_platform_caps narrows to what this process's configuration
 * and kernel actually deliver. An advice the platform lacks is not refused by
 * sm_os_madvise (the layers above would then fail every allocation): it is left out
 * here, and sm_platform_require turns its absence into SM_E_UNSUPPORTED.
 */
unsigned sm_os_caps(void);

/* The page size; it comes from the auxiliary vector, so it cannot fail. */
size_t sm_os_page_size(void);

/*
 * Nanoseconds on a clock that never goes back (CLOCK_MONOTONIC). It cannot fail: the
 * clock id is a constant and the only other error is a bad pointer, so it is not an
 * OS function of the fault shim. It is a vDSO read, not a system call.
 */
uint64_t sm_os_monotonic_ns(void);

/* Map len bytes of private anonymous memory with protection prot. */
sm_status sm_os_mmap(size_t len, sm_prot prot, void **out);
/*
 * The same, READWRITE, with every page already present: for a mapping that the caller
 * writes whole at once (enclave ciphertext, stream chunks). One system call instead of
 * a page fault per page. The fault shim counts it as SM_OS_MMAP: it is mmap.
 */
sm_status sm_os_mmap_filled(size_t len, void **out);
/* Map len bytes of fd READWRITE and shared, replacing the reserved range at addr. */
sm_status sm_os_mmap_fd(void *addr, size_t len, int fd);
sm_status sm_os_munmap(void *p, size_t len);
sm_status sm_os_mprotect(void *p, size_t len, sm_prot prot);
sm_status sm_os_mlock(void *p, size_t len);
/*
 * Lock as sm_os_mlock does, charged to RLIMIT_MEMLOCK alike, but fault nothing in: a page
 * already present is locked at once, one not yet present when it is first touched
 * (Linux's MLOCK_ONFAULT). A page locked so that later becomes writable again is not
 * populated anew by the kernel at each such mprotect, which a plain mlock'd page is: for
 * pages whose protection changes at every use (compact.c). Counted as SM_OS_MLOCK. Where
 * the system has no such lock, or refuses it as unknown, it is sm_os_mlock.
 */
sm_status sm_os_mlock_touched(void *p, size_t len);
sm_status sm_os_munlock(void *p, size_t len);
sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice);

/*
 * A memfd_secret file of len bytes (memfd_secret, then ftruncate). A kernel without
 * it gives SM_E_UNSUPPORTED.
 */
sm_status sm_os_secretmem_create(size_t len, int *fd);
/* Close fd. Linux releases the descriptor even when close reports an error. */
sm_status sm_os_close(int fd);

/* Fill n bytes from the OS CSPRNG, across interruptions and short reads. */
sm_status sm_os_random(void *p, size_t n);

/* Not dumpable, then RLIMIT_CORE = 0; dumpability is restored if the second step fails. */
sm_status sm_os_disable_core_dumps(void);

/*
 * Read up to n bytes from fd into p; *got is 0 at end of file. Interrupted reads are
 * retried. Errors: SM_E_IO.
 */
sm_status sm_os_read(int fd, void *p, size_t n, size_t *got);
/*
 * Move fd's offset by delta from the current position; *pos is the new offset.
 * SM_E_UNSUPPORTED when fd cannot seek (a pipe, a socket, a terminal).
 */
sm_status sm_os_seek_cur(int fd, int64_t delta, uint64_t *pos);

/* A signal disposition saved by sm_os_signal_catch, for sm_os_signal_restore. */
typedef struct sm_os_sigsave {
    _Alignas(16) unsigned char opaque[256];
} sm_os_sigsave;

/*
 * Send signal sig to handler, with every signal blocked while it runs, after saving
 * the previous disposition in *old. SM_E_INVAL for a signal that cannot be caught.
 */
sm_status sm_os_signal_catch(int sig, void (*handler)(int), sm_os_sigsave *old);
/* Save sig's disposition in *now without changing it (a sigaction call of the shim). */
sm_status sm_os_signal_query(int sig, sm_os_sigsave *now);
/* Whether a saved disposition is "ignore" (SIG_IGN). */
bool sm_os_signal_ignored(const sm_os_sigsave *s);
/* Put back what sm_os_signal_catch saved. */
void sm_os_signal_restore(int sig, const sm_os_sigsave *old);
/*
 * End the process as sig would have, from its handler: default disposition, unblock,
 * raise; if that signal's default is not to terminate, exit with 128 + sig. A stop
 * signal (SIGTSTP, SIGTTIN, SIGTTOU) exits with 128 + sig at once, without stopping.
 * Async-signal-safe.
 */
_Noreturn void sm_os_die_by_signal(int sig);
/* The signals of sm_catch_interrupt on this OS; *n gets their count. */
const int *sm_os_interrupt_signals(size_t *n);
/* Give the processor to another thread (a short wait for a purge to finish). */
void sm_os_yield(void);
/* Wait for ever (a second signal handler while the first one ends the process). */
_Noreturn void sm_os_wait_forever(void);
/* exit(code): atexit handlers and stdio flushing included. */
_Noreturn void sm_os_exit(int code);
/* Register fork handlers: before fork, in the parent after it, in the child after it. */
sm_status sm_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* The raw OS error of this thread's last failed OS call, 0 if none. */
int sm_os_last_error(void);
/*
 * Set it: back to a saved value after an OS call that was expected to fail and was got
 * over, or 0 for a status that does not come from the OS (securemem/status.h).
 */
void sm_os_set_last_error(int err);

/*
 * Whether the n bytes at p can be written, asked of the kernel rather than found out by
 * a fault: SM_OK, or SM_E_READONLY (sm_last_os_error EFAULT) when some of them are
 * read-only or not mapped (a guard marker included), or the range wraps the address
 * space. A query: its refusal is its answer. On Linux its calls on /proc/self go through
 * the fault shim (SM_OS_OPEN, SM_OS_PROCMAP_QUERY, SM_OS_PAGEMAP_SCAN, SM_OS_READ,
 * SM_OS_CLOSE), and a refusal of any of them, or an answer cut short, is a question left
 * unanswered that it asks another way (spec/fault-injection.md), never a status of its
 * own, and sm_last_os_error is left alone. When the kernel cannot tell (an old kernel
 * and no /proc, or a system with no query) it says SM_OK, which leaves the caller as it
 * was before it asked. Its madvise(MADV_POPULATE_WRITE) is not one of the shim's calls.
 */
sm_status sm_os_writable(void *p, size_t n);

/*
 * Memory protection keys (x86-64 Linux: pkey_alloc, pkey_mprotect, and the thread's
 * PKRU register written by WRPKRU), for the compact factory (spec/compact.md,
 * "Protection keys"). Elsewhere, and where the CPU or the kernel has none (no OSPKE in
 * CPUID), or under Valgrind, which knows neither the calls nor the register,
 * sm_os_pkey_alloc is SM_E_UNSUPPORTED without a system call, so that the fault shim
 * counts it only where it is made.
 *
 * A new key: every right denied to the calling thread. Other threads deny it already
 * while their PKRU is the kernel's default (every key but 0 denied) or inherited from
 * a thread that denied it: the caller makes sure that no thread has opened the key.
 */
sm_status sm_os_pkey_alloc(int *key);
/* mprotect of [p, p + len) that also tags the pages with key: their access is then prot
 * and the thread's rights for key, whichever is the less. */
sm_status sm_os_pkey_mprotect(void *p, size_t len, sm_prot prot, int key);
/*
 * Set the calling thread's rights for key (SM_PROT_NONE, READ or READWRITE) and return
 * the ones it had: one unprivileged instruction, no system call, async-signal-safe.
 * Only for a key that sm_os_pkey_alloc gave.
 */
sm_prot sm_os_pkey_rights(int key, sm_prot rights);

/* Write msg to stderr and abort: the end of the panic path. Async-signal-safe. */
_Noreturn void sm_os_die(const char *msg);

#endif
