/* SPDX-License-Identifier: ISC */
/*
 * The Linux extras on the POSIX base (src/os/posix.c): MAP_POPULATE, madvise
 * DONTDUMP/WIPEONFORK/DONTFORK, memfd_secret, getrandom, prctl, and the writability
 * query through MADV_POPULATE_WRITE, PROCMAP_QUERY, PAGEMAP_SCAN and /proc/self/maps.
 * The error mapping of each function follows spec/os-errors.tsv.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../vg.h"
#include "posix.h"

static int advise(void *p, size_t len, sm_os_advice advice)
{
    return madvise(p, len, advice == SM_OS_DONTDUMP     ? MADV_DONTDUMP
                           : advice == SM_OS_WIPEONFORK ? MADV_WIPEONFORK
                           : advice == SM_OS_HUGEPAGE   ? MADV_HUGEPAGE
                                                        : MADV_DONTFORK);
}

static sm_status secretmem_create(size_t len, int *fd)
{
    int f = -1;
    sm_status st;

#if defined(SYS_memfd_secret)
    SM_OS_CALL(SM_OS_MEMFD_SECRET, < 0, f = (int)syscall(SYS_memfd_secret, O_CLOEXEC));
#else
    return sm_os_posix_fail(SM_OS_MEMFD_SECRET, ENOSYS);
#endif
    st = SM_OK;
    {
        int err = sm_os_fault_hit(SM_OS_FTRUNCATE);

        if (err == 0 && ftruncate(f, (off_t)len) != 0)
            err = errno;
        if (err != 0) {
            st = sm_os_posix_fail(SM_OS_FTRUNCATE, err);
            (void)sm_os_close(f);
            return st;
        }
    }
    *fd = f;
    return st;
}

static ssize_t random_bytes(void *p, size_t n)
{
    return getrandom(p, n, 0);
}

static sm_status disable_core_dumps(void)
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
        return sm_os_posix_fail(SM_OS_SETRLIMIT, err);
    }
    return SM_OK;
}

/*
 * The writability query's calls on /proc/self, through the fault shim like every other
 * OS call, so that spec/syscalls.tsv counts them and the tests fail each one. None of
 * them is ever a status: -1 with errno is a question left unanswered, which the query
 * asks another way (writable()), so sm_last_os_error is not set.
 */
static int proc_open(const char *path)
{
    int err = sm_os_fault_hit(SM_OS_OPEN);

    /* A short answer has no meaning for an open: only a refusal is injected. */
    if (err > 0) {
        errno = err;
        return -1;
    }
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* A read of up to n bytes; an interrupted one is asked again. An answer cut short ends. */
static ssize_t proc_read(int fd, void *p, size_t n)
{
    for (;;) {
        int err = sm_os_fault_hit(SM_OS_READ);
        ssize_t got;

        if (err == SM_OS_FAULT_SHORT)
            return 0;
        if (err == 0) {
            got = read(fd, p, n);
            if (got >= 0)
                return got;
            err = errno;
        }
        if (err != EINTR) {
            errno = err;
            return -1;
        }
    }
}

/*
 * The descriptor is released even when close reports an error (os.h), and the answer is
 * in by then: the shim counts the call, and its refusal changes nothing.
 */
static void proc_close(int fd)
{
    (void)sm_os_fault_hit(SM_OS_CLOSE);
    (void)close(fd);
}

/*
 * An ioctl on a /proc/self file; *cut is set when the fault shim asks for its answer to
 * be cut short (fault.h), which the caller then does to what the kernel gave.
 */
static int proc_ioctl(sm_os_fn fn, int fd, unsigned long req, void *arg, bool *cut)
{
    int err = sm_os_fault_hit(fn);

    *cut = err == SM_OS_FAULT_SHORT;
    if (err > 0) {
        errno = err;
        return -1;
    }
    return ioctl(fd, req, arg);
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
    int fd = proc_open("/proc/self/maps"), result = -1;

    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t n = proc_read(fd, buf, sizeof buf);

        /* The end (or a text cut short there), and [cur, b) is not mapped: a no. */
        if (n <= 0) {
            result = n == 0 ? 0 : -1;
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
    proc_close(fd);
    return result;
}

/*
 * PROCMAP_QUERY (Linux 6.11): the mapping that holds an address, with its permissions,
 * from one ioctl on /proc/self/maps. The layout, number and flag are the kernel's
 * (linux/fs.h), for headers that predate it.
 */
struct vma_query {
    uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size,
        vma_offset, inode;
    uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
    uint64_t vma_name_addr, build_id_addr;
};
#define VMA_QUERY _IOWR('f', 17, struct vma_query)
#define VMA_QUERY_WRITABLE 0x02u

/*
 * Whether the page-aligned [a, b) is mapped writable throughout: 1 yes, 0 no, -1 cannot
 * tell: no /proc (the open refused: ENOENT, EACCES, EMFILE...), or a kernel or an
 * emulator that does not know the query and fails it otherwise than with ENOENT, which
 * says that nothing is mapped at a, or an answer that does not hold a. One ioctl per
 * mapping, whatever the number of pages.
 */
static int query_writable(uintptr_t a, uintptr_t b)
{
    struct vma_query q;
    int fd = proc_open("/proc/self/maps"), result = -1;
    bool cut;

    if (fd < 0)
        return -1;
    while (a < b) {
        memset(&q, 0, sizeof q);
        q.size = sizeof q;
        q.query_addr = a;
        if (proc_ioctl(SM_OS_PROCMAP_QUERY, fd, VMA_QUERY, &q, &cut) != 0) {
            result = errno == ENOENT ? 0 : -1;
            break;
        }
        if (cut)
            q.vma_end = q.vma_start;
        /*
         * An answer that does not hold a is no answer (and would never end the walk): the
         * madvise is asked instead, rather than a writable source refused.
         */
        if (q.vma_start > a || q.vma_end <= a) {
            result = -1;
            break;
        }
        if ((q.vma_flags & VMA_QUERY_WRITABLE) == 0) {
            result = 0;
            break;
        }
        a = q.vma_end;
        result = 1;
    }
    proc_close(fd);
    return result;
}

/*
 * PAGEMAP_SCAN (Linux 6.7) and its PAGE_IS_GUARD category (6.14): the pages of a range
 * that carry a guard marker (MADV_GUARD_INSTALL, 6.13), from one ioctl on
 * /proc/self/pagemap. A guard marker is a page-table entry inside a writable mapping
 * that faults on any access: PROCMAP_QUERY and /proc/self/maps, which see only the
 * mapping, call such a page writable. The layout, number and flags are the kernel's
 * (linux/fs.h), for headers that predate them.
 */
struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted,
        category_mask, category_anyof_mask, return_mask;
};
struct page_region {
    uint64_t start, end, categories;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_GUARD (1u << 8)

/*
 * Whether the page-aligned [a, b), mapped, holds no guard marker: 1 none, 0 one at
 * least, -1 cannot tell: no /proc, a kernel before 6.7 (ENOTTY) or before 6.14 (EINVAL,
 * an unknown category), an emulator that does not pass the ioctl on, or an answer that
 * is not one (a walk that stopped short, a marker outside the range). One ioctl
 * whatever the number of pages: the walk stops at the first marker (max_pages 1). A
 * kernel that fails the scan and yet has markers (6.13 alone) is left to the madvise,
 * which refuses them (writable()).
 */
static int scan_unguarded(uintptr_t a, uintptr_t b)
{
    /* Zeroed: Valgrind does not know that the kernel writes it, through q.vec. */
    struct page_region r = { 0 };
    struct pm_scan_arg q = {
        .size = sizeof q, .start = a, .end = b, .vec = (uintptr_t)&r, .vec_len = 1,
        .max_pages = 1, .category_mask = PAGE_IS_GUARD, .return_mask = PAGE_IS_GUARD,
    };
    int fd = proc_open("/proc/self/pagemap"), n;
    bool cut;

    if (fd < 0)
        return -1;
    n = proc_ioctl(SM_OS_PAGEMAP_SCAN, fd, PAGEMAP_SCAN, &q, &cut);
    proc_close(fd);
    if (cut)
        q.walk_end = a;
    if (n == 1 && r.start >= a && r.start < r.end && r.end <= b)
        return 0;
    /* Nothing found, and the walk went the whole way: anything else is no answer. */
    return n == 0 && q.walk_end == b ? 1 : -1;
}

/* Linux 5.14; the value is the kernel's, for headers that predate it. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * MADV_POPULATE_WRITE over the pages of the range: the kernel faults them in for
 * writing as a write would, and changes no byte; ENOMEM says that part of the range is
 * not mapped, and EFAULT that a page would fault all the same (a guard marker, measured
 * on Linux 6.18; a file page past its end), which are both a no. Any other refusal
 * is checked against /proc/self/maps, which is slower but says what each mapping allows:
 * the kernel answers EINVAL both for pages that are not writable and for pages that are
 * but that it does not populate for others (memfd_secret, device memory), as does a
 * kernel before 5.14, which does not know the advice.
 *
 * The madvise walks every page: 30 to 90 ns each here, 7 to 24 us for the MiB that an
 * enclave seals, against about 1.5 us for PROCMAP_QUERY's open, ioctl and close (issue 14,
 * measured on the project machine). So a range of QUERY_MIN_PAGES or more asks the
 * mappings instead, which give the same answer as /proc/self/maps above, memfd_secret
 * included, without faulting anything in, and then the page tables for guard markers
 * (scan_unguarded), which the mappings do not show; below that, and where either
 * question has no answer, the madvise stays the cheaper question.
 */
#define QUERY_MIN_PAGES 64u

static sm_status writable(void *p, size_t n)
{
    uintptr_t pg = (uintptr_t)sm_os_page_size(), a, b;
    int err, m;

    a = (uintptr_t)p & ~(pg - 1);
    b = ((uintptr_t)p + n + pg - 1) & ~(pg - 1);
    if (b - a >= QUERY_MIN_PAGES * pg && (m = query_writable(a, b)) >= 0 &&
        (m == 0 || (m = scan_unguarded(a, b)) >= 0)) {
        if (m == 1)
            return SM_OK;
        sm_os_set_last_error(EFAULT);
        return SM_E_READONLY;
    }
    do {
        err = madvise((void *)a, b - a, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
    } while (err == EINTR || err == EAGAIN);
    if (err == 0)
        return SM_OK;
    m = err == ENOMEM || err == EFAULT ? 0 : maps_writable((uintptr_t)p, (uintptr_t)p + n);
    /* Unanswered (no /proc): go on as before the question. */
    if (m != 0)
        return SM_OK;
    sm_os_set_last_error(EFAULT);
    return SM_E_READONLY;
}

/* Linux 4.4; the values are the kernel's, for headers that predate them. */
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#if !defined(SYS_mlock2) && defined(__x86_64__)
#define SYS_mlock2 325
#endif

/*
 * mlock2(MLOCK_ONFAULT), through syscall(2) since libcs before glibc 2.27 have no
 * wrapper. Valgrind and qemu-user do not know it, nor does a kernel before 4.4 (ENOSYS),
 * and a seccomp profile may refuse it as unknown (EPERM, or EINVAL for the flag): mlock
 * then, which locks the same pages at once, and from then on, so that such a process
 * does not pay a refused call per page (nor Valgrind warn of each). But EPERM is also
 * the kernel's own refusal (RLIMIT_MEMLOCK of 0 without CAP_IPC_LOCK), which mlock
 * gives too: only an mlock that succeeds where mlock2 was refused shows the call
 * missing, so a refused lock leaves lock-on-touch on for when the limit is raised.
 */
static atomic_bool no_lock2;

SMI_VG_AT_START(vg_linux)
{
    SMI_VG_ATOMIC(&no_lock2, sizeof no_lock2);
}

static int lock_touched(void *p, size_t len)
{
#if defined(SYS_mlock2)
    if (!atomic_load_explicit(&no_lock2, memory_order_relaxed)) {
        if (syscall(SYS_mlock2, p, len, MLOCK_ONFAULT) == 0)
            return 0;
        if (errno != ENOSYS && errno != EINVAL && errno != EPERM)
            return -1;
        if (mlock(p, len) != 0)
            return -1;
        atomic_store_explicit(&no_lock2, true, memory_order_relaxed);
        return 0;
    }
#endif
    return mlock(p, len);
}

/*
 * Memory protection keys, x86-64 only (posix.h, struct sm_os_pkeys). The register that
 * holds a thread's rights, PKRU, has two bits per key: access disabled (bit 2k) and
 * write disabled (bit 2k + 1).
 */
#if defined(__x86_64__)
#include <cpuid.h>

#ifndef PKEY_DISABLE_ACCESS
#define PKEY_DISABLE_ACCESS 1
#endif
/* Linux 4.9; the numbers are the kernel's, for headers that predate them. */
#ifndef SYS_pkey_mprotect
#define SYS_pkey_mprotect 329
#endif
#ifndef SYS_pkey_alloc
#define SYS_pkey_alloc 330
#endif

/*
 * CPUID leaf 7, ECX bit 4 (OSPKE): the CPU has protection keys and the kernel turned
 * them on (it sets CR4.PKE, which this bit mirrors). Trusted: RDPKRU and WRPKRU fault
 * (#UD) unless it is set, so with it clear nothing below runs, and with it set they are
 * defined for every thread of the process. Valgrind does not report it (its CPU has no
 * keys) and knows neither call (ENOSYS), so the factory stays on mprotect there.
 */
static bool pkeys_usable(void)
{
    unsigned a, b, c, d;

    if (__get_cpuid_max(0, NULL) < 7)
        return false;
    __cpuid_count(7, 0, a, b, c, d);
    return (c & (1u << 4)) != 0;
}

/* Denied by default: pkey_alloc sets the calling thread's rights for the key to none. */
static int pkey_alloc_denied(void)
{
    return (int)syscall(SYS_pkey_alloc, 0, PKEY_DISABLE_ACCESS);
}

static int pkey_mprotect_sys(void *p, size_t len, int prot, int key)
{
    return (int)syscall(SYS_pkey_mprotect, p, len, prot, key);
}

/*
 * RDPKRU and WRPKRU, as bytes so that any assembler takes them; ECX (and EDX for the
 * write) must be 0. The "memory" clobber keeps the compiler from moving an access to
 * the key's pages across the write, which would read them with the wrong rights.
 * Trusted: WRPKRU changes only this thread's rights to the pages of keys, never the
 * page tables, and the kernel saves and restores PKRU with the thread's other state, so
 * the value written holds for this thread until it writes another (a signal handler
 * runs with the kernel's default, and its return puts this one back).
 */
static uint32_t rdpkru(void)
{
    uint32_t eax, edx;

    __asm__ volatile(".byte 0x0f, 0x01, 0xee" : "=a"(eax), "=d"(edx) : "c"(0) : "memory");
    (void)edx;
    return eax;
}

static void wrpkru(uint32_t v)
{
    __asm__ volatile(".byte 0x0f, 0x01, 0xef" : : "a"(v), "c"(0), "d"(0) : "memory");
}

static sm_prot pkey_rights(int key, sm_prot rights)
{
    uint32_t was = rdpkru(), ad = 1u << (2 * key), wd = 1u << (2 * key + 1);
    uint32_t now = was & ~(ad | wd);

    if (rights == SM_PROT_NONE)
        now |= ad | wd;
    else if (rights == SM_PROT_READ)
        now |= wd;
    if (now != was)
        wrpkru(now);
    return (was & ad) != 0 ? SM_PROT_NONE : (was & wd) != 0 ? SM_PROT_READ : SM_PROT_READWRITE;
}

static const struct sm_os_pkeys pkeys = {
    .usable = pkeys_usable,
    .alloc = pkey_alloc_denied,
    .mprotect = pkey_mprotect_sys,
    .rights = pkey_rights,
};
#define PKEYS (&pkeys)
#else
#define PKEYS NULL
#endif

/*
 * MAP_POPULATE (fill_flags) faults every page in within the one mmap call. The caller
 * fills the mapping whole at once, so this does the work of a page fault per page
 * without the faults. A page the kernel cannot populate is faulted in later as usual:
 * MAP_POPULATE never makes mmap fail, so the errors are mmap's. The advice comes after
 * the mapping (sm_os_madvise), so no flag is added to every mapping.
 */
const sm_os_system sm_os_system_of = {
    .caps = SM_CAP_LOCKED | SM_CAP_NODUMP | SM_CAP_NOFORK | SM_CAP_GUARD | SM_CAP_NODIRECTMAP,
    .fill_flags = MAP_POPULATE,
    .advise = advise,
    .random = random_bytes,
    .secretmem_create = secretmem_create,
    .disable_core_dumps = disable_core_dumps,
    .writable = writable,
    .lock_touched = lock_touched,
    .pkeys = PKEYS,
};

