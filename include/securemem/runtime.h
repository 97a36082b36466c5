/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_RUNTIME_H
#define SECUREMEM_RUNTIME_H

#include <securemem/common.h>
#include <securemem/status.h>

SM_BEGIN_DECLS

typedef enum {
    SM_LOCK_REQUIRED = 0, /* a page that cannot be locked fails the call with SM_E_LOCK */
    SM_LOCK_BEST_EFFORT   /* go on unlocked, and count the bytes in sm_stats.bytes_unlocked */
} sm_lock_policy;

typedef enum {
    SM_BACKING_ANON = 0,            /* private anonymous memory, locked */
    SM_BACKING_SECRETMEM_PREFERRED, /* Linux memfd_secret if the kernel allows it, else ANON */
    SM_BACKING_SECRETMEM_REQUIRED   /* memfd_secret or SM_E_UNSUPPORTED */
} sm_backing;

/* A zeroed struct is the default configuration. */
typedef struct sm_config {
    sm_lock_policy lock_policy;
    sm_backing     backing;            /* SECRETMEM: pages off the kernel's direct map */
    bool           disable_core_dumps; /* process-wide RLIMIT_CORE=0 and not dumpable */
} sm_config;

/*
 * Initialise the library with cfg (NULL means the default configuration). Optional:
 * the first call that needs the runtime initialises it with the defaults.
 *
 * Initialising probes the secretmem backing when cfg asks for it, applies
 * disable_core_dumps, and creates the library's internal key page (one guarded region).
 *
 * Call it first, before any other call of the library, to run with a configuration
 * other than the default: buffers, enclaves, streams, secrets and sm_stats_get
 * initialise the library with the defaults if it is not yet, and a later sm_init with
 * another configuration then fails (the memory layer of mem.h and the status calls do
 * not initialise it).
 *
 * Errors: SM_E_INVAL for an out-of-range enum value; SM_E_STATE when the library is
 * already initialised with a different configuration (the same one again is SM_OK),
 * explicitly or implicitly by an earlier call (sm_status_str says so);
 * SM_E_UNSUPPORTED when SECRETMEM_REQUIRED and the kernel refuses memfd_secret, or a
 * kernel lacks an madvise advice; otherwise the status of the failed OS call
 * (SM_E_NOMEM, SM_E_LOCK, SM_E_PROT, SM_E_RANDOM, SM_E_SYS). A failed sm_init leaves
 * the library uninitialised, changes no counter and may be retried, but for one case:
 * when libc refused the fork handlers that the library registers as it is loaded,
 * every sm_init of the process gives SM_E_NOMEM (spec/runtime.md, "Fork").
 */
SM_API SM_MUST_CHECK sm_status sm_init(const sm_config *cfg);

/*
 * Wipe and destroy every live object (buffers, enclaves, streams, secrets) and the
 * enclave key. Every handle made before becomes stale for good; the library stays
 * usable and new objects can be made afterwards. Async-signal-safe: it takes no lock
 * that an interrupted thread could hold and calls no malloc (spec/runtime.md). An
 * object that another thread is using at that moment is stale at once, and that thread
 * wipes and unmaps it as soon as its call on it ends; a call that needed the enclave key
 * returns SM_E_STATE (or SM_E_AUTH if the key was already gone) and discards what it
 * made. Nothing faults and nothing is left behind. A damaged canary found on the way
 * panics once everything is wiped. (sm_safe_exit, sm_panic and the sm_catch_signals
 * handler also wipe the bytes of objects in use in place at once, since the process ends.)
 */
SM_API void sm_purge(void);

/* sm_purge, then exit(code), with atexit handlers and stdio flushing. */
SM_API SM_NORETURN void sm_safe_exit(int code);

/*
 * sm_purge, then write "securemem: panic: <msg>" and a newline to stderr, then abort.
 * The one path for detected corruption (a damaged canary).
 */
SM_API SM_NORETURN void sm_panic(const char *msg);

/*
 * On any of the n signals: purge, call hook(sig) if hook is not NULL, then end the
 * process as that signal would (re-raised with its default action, so that a parent
 * sees "killed by sig"; exit status 128 + sig for a signal whose default is not to
 * terminate). A stop signal (SIGTSTP, SIGTTIN, SIGTTOU) ends the process at once with
 * exit status 128 + sig: it is not stopped, with its secrets gone, to run on after a
 * SIGCONT. The hook runs inside the signal handler, after the purge: it must be
 * async-signal-safe. Every signal is blocked while the handler runs; a second signal
 * on another thread waits for the first to end the process.
 *
 * The handler runs on the thread's alternate signal stack (sigaltstack) when that thread
 * has one, so that a caught SIGSEGV from a stack overflow can still purge. The library
 * installs none: a thread that overflows its stack without one cannot run the handler,
 * and the kernel kills the process without a purge. A program that catches SIGSEGV for
 * this MUST give each of its threads an alternate stack (64 KiB is ample).
 *
 * A successful call replaces the hook and adds its signals; a signal listed twice is
 * caught once. The hook is in place when the call returns SM_OK: a signal caught while
 * the call runs still runs the previous hook. A refused call changes nothing: no
 * disposition and not the hook.
 * Errors: SM_E_INVAL (signals NULL with n > 0, n > 64, or a signal that cannot be
 * caught, such as SIGKILL or SIGSTOP), SM_E_SYS.
 */
SM_API SM_MUST_CHECK sm_status sm_catch_signals(const int *signals, size_t n, void (*hook)(int sig));

/*
 * sm_catch_signals for SIGINT, SIGTERM, SIGHUP and SIGQUIT, with no hook, except that a
 * signal whose disposition is SIG_IGN when it is called is left ignored: a daemon run
 * under nohup, or a background job that the shell told to ignore SIGINT and SIGQUIT,
 * keeps ignoring them. The dispositions are read before any is changed; a refusal to
 * read one (SM_E_SYS) changes nothing.
 */
SM_API SM_MUST_CHECK sm_status sm_catch_interrupt(void);

/*
 * Check the canary of every live object and of the enclave key's shares now; a damaged
 * one panics (never an error). Objects at rest in PROT_NONE pages are opened read-only
 * for the check. Errors: SM_E_PROT when the key's shares could not be opened to look;
 * the refusal's status (spec/os-errors.tsv, mprotect: SM_E_PROT, or SM_E_INVAL) when an
 * object's pages could not be opened for the check, whose canary then went unchecked, or
 * could not be shut again afterwards, in which case they stay readable until their owner
 * shuts them (for a secret at rest, the last exit of its next access). Either way every
 * other canary is still checked (and a damaged one panics); the first refusal is returned.
 */
SM_API SM_MUST_CHECK sm_status sm_audit(void);

typedef struct sm_stats {
    uint64_t buffers_live, enclaves_live, streams_live, secrets_live;
    uint64_t allocations_total; /* guarded regions ever made by the library */
    uint64_t bytes_locked;      /* bytes of guarded regions locked by the library right now */
    uint64_t bytes_unlocked;    /* live secret bytes it could not lock (BEST_EFFORT only) */
    bool     secretmem;         /* memfd_secret backing is in use */
} sm_stats;

/*
 * A snapshot of the counters. Each counter is read atomically, but the snapshot as a
 * whole is not, when other threads are allocating. Memory handed out by sm_mem_alloc is
 * the caller's, and is not counted. Initialises the runtime if needed.
 * Errors: SM_E_INVAL when out is NULL; the errors of sm_init.
 */
SM_API SM_MUST_CHECK sm_status sm_stats_get(sm_stats *out);

/*
 * The protections of the library's guarded memory (buffers, enclaves' and streams' key
 * pages, secrets), one bit each (spec/platforms.md says which call gives each, per OS):
 */
#define SM_CAP_LOCKED      0x01u /* locked in RAM, never written to swap */
#define SM_CAP_NODUMP      0x02u /* left out of core dumps */
#define SM_CAP_NOFORK      0x04u /* hidden from children: zeroed or absent after fork */
#define SM_CAP_GUARD       0x08u /* guard pages on both sides: an overrun faults */
#define SM_CAP_NODIRECTMAP 0x10u /* off the kernel's direct map (Linux memfd_secret) */
#define SM_CAP_ALL         0x1fu

/*
 * Which protections the library applies in this process: those the platform's shim can
 * give at all, narrowed by the configuration and by what the kernel accepted at sm_init
 * (SM_CAP_NODIRECTMAP only with the secretmem backing in use; SM_CAP_LOCKED under
 * SM_LOCK_BEST_EFFORT only while no live secret byte is unlocked). Under
 * SM_LOCK_REQUIRED a region that cannot be locked is an error, never made unlocked;
 * advice that the platform does not have at all (no dump exclusion on a bare POSIX
 * system) is not an error of each allocation but is missing from this set, and
 * sm_platform_require makes it one. Initialises the runtime if needed; 0 when that fails.
 */
SM_API unsigned sm_platform_caps(void);

/*
 * SM_OK when every protection in caps (SM_CAP_* bits) is applied (sm_platform_caps),
 * SM_E_UNSUPPORTED when one is not: a program that must not run without them calls
 * this once after sm_init. Errors: SM_E_INVAL for a bit outside SM_CAP_ALL; the errors
 * of sm_init.
 */
SM_API SM_MUST_CHECK sm_status sm_platform_require(unsigned caps);

SM_END_DECLS

#endif
