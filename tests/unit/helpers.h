/* SPDX-License-Identifier: ISC */
#ifndef SM_TEST_HELPERS_H
#define SM_TEST_HELPERS_H

/* Shared by the unit suites: spec tables, name lookups and what the kernel shows. */

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "inner.h"
#include "os/fault.h"

#ifndef SM_SPEC_DIR
#define SM_SPEC_DIR "spec"
#endif

/*
 * ASan intercepts mlock and munlock and makes them no-ops, so under ASan the kernel
 * never shows pages as locked: the Locked: checks are made in the gcc build only.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SM_TEST_MLOCK_IS_REAL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SM_TEST_MLOCK_IS_REAL 0
#endif
#endif
#ifndef SM_TEST_MLOCK_IS_REAL
#define SM_TEST_MLOCK_IS_REAL 1
#endif

/*
 * make test-posix builds this suite against the POSIX base with no Linux extras
 * (src/os/generic.c, spec/platforms.md): a test of an effect that only Linux's extras
 * give skips there, saying which extra it needs. Every other test runs in both builds.
 */
#if defined(SM_OS_GENERIC)
#define SKIP_WITHOUT_LINUX(why) cr_skip_test("POSIX flavour: %s", why)
#else
#define SKIP_WITHOUT_LINUX(why) ((void)0)
#endif

/*
 * Whether this kernel grants memfd_secret at all: Linux 5.14 to 6.4 has it only when
 * booted with secretmem.enable=1, which Debian 12's own kernel (6.1) is not, and a
 * kernel before 5.14 or one built without CONFIG_SECRETMEM never has it. A test of the
 * secretmem backing itself skips there (make test-debian-kernel runs the suite on that
 * kernel); the fallbacks are tested everywhere, by refusals of the fault shim.
 */
bool kernel_has_secretmem(void);
#define SKIP_WITHOUT_SECRETMEM()                                                        \
    do {                                                                                \
        SKIP_WITHOUT_LINUX("no memfd_secret");                                          \
        if (!kernel_has_secretmem())                                                    \
            cr_skip_test("this kernel grants no memfd_secret");                         \
    } while (0)

/*
 * Whether the running kernel is Linux major.minor or later (uname): for the writability
 * query's ioctls, PROCMAP_QUERY (6.11) and PAGEMAP_SCAN's guard markers (6.14), which
 * make test-debian-kernel's 6.1 answer by the madvise instead.
 */
bool kernel_at_least(int major, int minor);

/*
 * The descriptors open in this process (the entries of /proc/self/fd, the directory's own
 * included, so that two counts compare): a query that opens /proc/self files must close
 * every one of them, on every path.
 */
size_t open_fds(void);

/*
 * Whether the CPU and the kernel give this process memory protection keys (OSPKE in
 * /proc/cpuinfo's flags), asked without taking a key: false under Valgrind and in the
 * POSIX flavour, which have none. The compact factory decides for itself
 * (smi_compact_keyed); this is for the tests that must not make it decide.
 */
bool machine_has_pkeys(void);

/*
 * The compact factory on mprotect, whatever the machine: the fault shim refuses
 * pkey_alloc while the factory decides (its first question, before any slab), and
 * forgets the refusal after. For the tests of the mprotect mode (spec/compact.md).
 */
void compact_without_keys(void);

/* sm_init with SECRETMEM_PREFERRED, and the test skipped unless the kernel granted it. */
#define INIT_SECRETMEM_OR_SKIP()                                                        \
    do {                                                                                \
        sm_config cfg_ = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false };   \
        sm_stats st_;                                                                   \
                                                                                        \
        cr_assert_eq(sm_init(&cfg_), SM_OK);                                            \
        cr_assert_eq(sm_stats_get(&st_), SM_OK);                                        \
        if (!st_.secretmem)                                                             \
            cr_skip_test("memfd_secret is not available here");                        \
    } while (0)

typedef struct tsv_row {
    int   nf;
    char *f[8];
} tsv_row;

/* The rows of spec/<name>, comments and blank lines skipped; aborts if unreadable. */
size_t tsv_load(const char *name, tsv_row **rows);
void tsv_free(tsv_row *rows, size_t n);

int errno_from_name(const char *name);    /* "ENOMEM" -> ENOMEM; -1 if unknown */
sm_status status_from_name(const char *name);   /* -1 cast if unknown */
int os_fn_from_name(const char *name);    /* sm_os_fn, -1 if unknown */

/*
 * The text of a /proc file (path), NUL-terminated, in a static buffer that the next call
 * (and mapped_bytes, smaps_of, locked_bytes_total) reuses: reading it maps nothing.
 * Aborts if the file cannot be opened.
 */
char *proc_text(const char *path);

/* The sum of the sizes of this process's mappings (no malloc while reading). */
size_t mapped_bytes(void);

/*
 * What /proc/self/smaps says of the mapping holding addr: its permissions ("rw-p"),
 * VmFlags line and Locked: kB. 0 if found.
 */
int smaps_of(const void *addr, char perms[5], char *vmflags, size_t cap, size_t *locked_kb);
/* How smaps names a range locked on fault (mlock2's MLOCK_ONFAULT); NULL if it cannot tell. */
const char *lock_on_fault_flag(void);

/* The sum of Locked: over every mapping of this process, in bytes: the kernel's count. */
size_t locked_bytes_total(void);

/*
 * The page of at is unmapped, or in the pages of a pooled region's inner pages or a
 * pooled plain mapping, read-only and all zeros: what a guarded or protected secret's
 * close leaves.
 */
bool unmapped_or_pooled(const void *at);

/*
 * Fill the pool with guarded one-page regions: the next close of a guarded or protected
 * secret unmaps its pages. pool_fill_of: with the one-page mappings of factory f.
 */
void pool_fill(void);
void pool_fill_of(const sm_factory *f);

/* Mappings in the pool (pool.c): guarded regions and the protected factory's. */
size_t pooled_regions(void);

/*
 * The library's counters, read without initialising the runtime. Pooled regions are
 * left out of the locked and mapped figures: the pool is a cache of wiped pages, which
 * test_pool.c checks on its own, so that a leak check sees what objects hold.
 */
typedef struct counters {
    uint64_t allocations, locked, unlocked, live[SMI_KIND_COUNT];
    size_t   mapped;
} counters;
void counters_get(counters *c);
/* What counters_equal compares besides the live and locked counts. */
enum { CMP_MAPPED = 1, CMP_ALLOCATIONS = 2 };
bool counters_equal(const counters *a, const counters *b, unsigned what);

/*
 * The fault shim's calls of every OS function since its last reset (a query such as
 * sm_os_writable is none of them: spec/syscalls.md).
 */
unsigned long os_calls(void);

/* Run fn in a forked child; its exit status (or 128 + signal). */
int in_child(void (*fn)(void *), void *arg);

/*
 * Put SIGINT, SIGTERM, SIGHUP and SIGQUIT back to SIG_DFL. A test of sm_catch_interrupt
 * calls it first: the suite may have been started with some of them ignored (a shell
 * starts background jobs with SIGINT and SIGQUIT ignored; nohup ignores SIGHUP), and
 * sm_catch_interrupt leaves ignored ones alone (SM-REQ-109).
 */
void interrupts_default(void);

#endif
