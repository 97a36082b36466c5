/* SPDX-License-Identifier: ISC */
/*
 * The kernel-effects suite (SM-REQ-115..119), Linux. Every check reads what the kernel
 * shows (/proc/<pid>/smaps and maps, a core file written by gdb's gcore, another
 * process's view through process_vm_readv and /proc/<pid>/mem, a forked child's reads,
 * the system calls a thread enters as perf's raw_syscalls tracepoint counts them), never
 * what the library says about itself. The library only tells where its objects
 * are.
 *
 *     kernel [test ...]
 *
 * The secret is a 32-byte pattern drawn at run time straight into a guarded buffer
 * (sm_buffer_random). It is never formed in ordinary memory of the process under test:
 * it is copied from guarded pages to guarded pages by the library, and handed to the
 * process that looks for it with write(2) straight from the guarded pages. A process that
 * searches its own memory holds it only masked (pattern XOR a random mask), so that the
 * search itself cannot leave a copy behind.
 *
 * Not run under sanitizers or Valgrind: they fake mlock (ASan), return ENOSYS for
 * memfd_secret (Valgrind), map shadow memory that gcore would dump, or intercept fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/harness.h"
#include "../unit/helpers.h"
#include "factories.h"
#include "objects/compact.h"

#define PAT 32u

#ifndef SM_KERNEL_DIR
#define SM_KERNEL_DIR "build/kernel"
#endif

/* ---- what the kernel shows ------------------------------------------------------- */

static size_t page(void)
{
    return sm_page_size();
}

static size_t inner_len(size_t size)
{
    return (size + 32 + page() - 1) & ~(page() - 1);
}

/* The smaps entry of addr: permissions, VmFlags and Locked: (kB); fails the test if none. */
static void smaps_at(const void *addr, char perms[5], char *flags, size_t cap, size_t *locked)
{
    *locked = 0;
    HX_CHECK(smaps_of(addr, perms, flags, cap, locked) == 0, "no mapping holds %p", addr);
}

static bool has_flag(const char *flags, const char *f)
{
    char want[8];

    snprintf(want, sizeof want, " %s", f);
    for (const char *p = strstr(flags, want); p != NULL; p = strstr(p + 1, want))
        if (p[3] == ' ' || p[3] == 0 || p[3] == '\n')
            return true;
    return false;
}

/*
 * A guarded region whose data is [d, d + size): the data pages are locked (lo, and
 * Locked: covers them), out of dumps (dd) and out of children (wf for anonymous memory,
 * dc for secretmem), with prot as given; both guard pages are ---p and not locked.
 */
static void check_region(const uint8_t *d, size_t size, const char *prot, bool secretmem)
{
    char perms[5], flags[512];
    size_t locked, inner = inner_len(size);
    const uint8_t *end = d + size, *base = end - inner - page();

    smaps_at(d, perms, flags, sizeof flags, &locked);
    HX_CHECK(strcmp(perms, prot) == 0, "data at %p is %s, expected %s", (const void *)d,
             perms, prot);
    HX_CHECK(has_flag(flags, "dd"), "data not out of core dumps (no dd): %s", flags);
    if (secretmem) {
        HX_CHECK(has_flag(flags, "dc"), "secretmem data not out of children (no dc): %s",
                 flags);
    } else {
        HX_CHECK(has_flag(flags, "wf"), "data not wiped in children (no wf): %s", flags);
        HX_CHECK(has_flag(flags, "lo"), "data pages not mlocked (no lo): %s", flags);
        HX_CHECK(locked * 1024 >= inner, "Locked: %zu kB for %zu inner bytes", locked, inner);
    }
    smaps_at(end, perms, flags, sizeof flags, &locked);
    HX_CHECK(strcmp(perms, "---p") == 0, "trailing guard page %p is %s", (const void *)end,
             perms);
    smaps_at(base, perms, flags, sizeof flags, &locked);
    HX_CHECK(strcmp(perms, "---p") == 0, "leading guard page %p is %s", (const void *)base,
             perms);
}

/* ---- the pattern ------------------------------------------------------------------ */

/* The masked pattern (pattern XOR mask): what a searching process keeps. */
typedef struct masked {
    uint8_t m[PAT], mask[PAT];
} masked;

/* A FROZEN buffer of PAT random bytes: the pattern, only ever in guarded pages. */
static sm_buffer new_pattern(masked *mk)
{
    sm_buffer src;
    const uint8_t *d;

    HX_EXPECT(sm_buffer_random(PAT, &src), SM_OK);
    d = sm_buffer_data(src);
    HX_EXPECT(sm_random(mk->mask, PAT), SM_OK);
    for (unsigned i = 0; i < PAT; i++)
        mk->m[i] = d[i] ^ mk->mask[i];
    return src;
}

/* Whether the PAT bytes at p are the pattern; never forms the pattern in memory. */
static bool is_pattern(const uint8_t *p, const masked *mk)
{
    unsigned diff = 0;

    for (unsigned i = 0; i < PAT; i++)
        diff |= (unsigned)(p[i] ^ mk->m[i] ^ mk->mask[i]);
    return diff == 0;
}

/* Offsets in [p, p + n) where the pattern starts. */
static size_t count_pattern(const uint8_t *p, size_t n, const masked *mk)
{
    size_t hits = 0;

    for (size_t i = 0; i + PAT <= n; i++)
        if (p[i] == (uint8_t)(mk->m[0] ^ mk->mask[0]) && is_pattern(p + i, mk))
            hits++;
    return hits;
}

/* Write the PAT bytes at p to fd with write(2): no stdio, no copy on the way. */
static void write_all(int fd, const void *p, size_t n)
{
    const uint8_t *q = p;

    while (n > 0) {
        ssize_t w = write(fd, q, n);

        if (w < 0 && errno == EINTR)
            continue;
        HX_CHECK(w > 0, "write: %s", strerror(errno));
        q += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *p, size_t n)
{
    uint8_t *q = p;

    while (n > 0) {
        ssize_t r = read(fd, q, n);

        if (r < 0 && errno == EINTR)
            continue;
        HX_CHECK(r > 0, "read: %s", r == 0 ? "end of file" : strerror(errno));
        q += r;
        n -= (size_t)r;
    }
}

/* ---- objects holding the pattern ---------------------------------------------------- */

typedef struct held {
    sm_buffer  bufs[1000];
    size_t     nbufs;
    sm_enclave encs[100];
    sm_buffer  opened[100];
    size_t     nencs;
    sm_stream  streams[10];
    sm_buffer  nexts[10];
    size_t     nstreams;
    sm_secret  secs[1000];
    size_t     nsecs;
} held;

/* A MUTABLE buffer holding the pattern, copied by the library from src. */
static sm_buffer copy_of(sm_buffer src)
{
    sm_buffer b;

    HX_EXPECT(sm_buffer_new(PAT, &b), SM_OK);
    HX_EXPECT(sm_buffer_copy(b, sm_buffer_data(src), PAT), SM_OK);
    return b;
}

/* ---- secrets holding the pattern ---------------------------------------------------- */

/* A secret of factory k holding the pattern, copied from a guarded buffer it then wipes. */
static sm_secret secret_of_pattern(unsigned k, sm_buffer src)
{
    sm_buffer t = copy_of(src);
    sm_secret s;

    HX_EXPECT(sm_secret_new(factory(k), sm_buffer_data(t), PAT, &s), SM_OK);
    HX_EXPECT(sm_buffer_destroy(t), SM_OK);
    return s;
}

/*
 * Readable windows held open on several secrets at once, by nesting sm_secret_with_bytes:
 * each callback checks its window against src (in constant time, no copy), records where
 * the window is, and opens the next one; the innermost runs then(w) with all of them
 * open. at[i] keeps the address after the windows shut, for the checks at rest.
 */
typedef struct windows {
    sm_secret      s[8];
    const uint8_t *at[8];
    size_t         n, depth;
    sm_buffer      src;
    void         (*then)(struct windows *w);
    void          *arg;
} windows;

static sm_status window_fn(const uint8_t *bytes, size_t len, void *ctx)
{
    windows *w = ctx;
    bool eq = false;

    HX_EXPECT(sm_buffer_equal(w->src, bytes, len, &eq), SM_OK);
    HX_CHECK(len == PAT && eq, "window %zu does not hold the pattern", w->depth);
    w->at[w->depth++] = bytes;
    if (w->depth < w->n)
        return sm_secret_with_bytes(w->s[w->depth], window_fn, w);
    w->then(w);
    return SM_OK;
}

static void with_windows(windows *w)
{
    w->depth = 0;
    HX_EXPECT(sm_secret_with_bytes(w->s[0], window_fn, w), SM_OK);
}

/*
 * 1,000 buffers (half frozen), 100 enclaves sealed from buffers and each opened into a
 * buffer, 10 streams with 20 patterns each and one chunk taken back out of each, and
 * 1,000 secrets, 200 of each factory.
 */
static void hold_everything(sm_buffer src, held *h)
{
    for (h->nbufs = 0; h->nbufs < 1000; h->nbufs++) {
        h->bufs[h->nbufs] = copy_of(src);
        if (h->nbufs % 2)
            HX_EXPECT(sm_buffer_freeze(h->bufs[h->nbufs]), SM_OK);
    }
    for (h->nencs = 0; h->nencs < 100; h->nencs++) {
        HX_EXPECT(sm_buffer_seal(copy_of(src), &h->encs[h->nencs]), SM_OK);
        HX_EXPECT(sm_enclave_open(h->encs[h->nencs], &h->opened[h->nencs]), SM_OK);
    }
    for (h->nstreams = 0; h->nstreams < 10; h->nstreams++) {
        sm_stream s;

        HX_EXPECT(sm_stream_new(&s), SM_OK);
        for (int k = 0; k < 20; k++) {
            sm_buffer t = copy_of(src);

            /* Written from guarded pages; the stream wipes its source. */
            HX_EXPECT(sm_stream_write(s, sm_buffer_data(t), PAT), SM_OK);
            HX_EXPECT(sm_buffer_destroy(t), SM_OK);
        }
        HX_EXPECT(sm_stream_next(s, &h->nexts[h->nstreams]), SM_OK);
        h->streams[h->nstreams] = s;
    }
    for (h->nsecs = 0; h->nsecs < 1000; h->nsecs++)
        h->secs[h->nsecs] = secret_of_pattern((unsigned)h->nsecs, src);
}

/* ---- smaps ------------------------------------------------------------------------ */

/*
 * One secret of factory k and len bytes, inside an access and at rest. Inside: the bytes
 * read-only, locked, out of dumps and children; for the guarded and encrypted factories
 * a guarded region (guard pages ---p). At rest: the same pages ---p, except the
 * encrypted factory's, which are unmapped (only ciphertext remains). After close:
 * unmapped. The protected factory has no guard pages by design (secret.h).
 */
typedef struct peek {
    unsigned       k;
    size_t         len;
    bool           secretmem;
    const uint8_t *at;
} peek;

/* A plain mapping (protected, custom): no guard pages to check. */
static void check_plain(const uint8_t *d, size_t len, const char *prot, bool secretmem)
{
    char perms[5], flags[512];
    size_t locked;

    smaps_at(d, perms, flags, sizeof flags, &locked);
    HX_CHECK(strcmp(perms, prot) == 0, "secret data at %p is %s, expected %s",
             (const void *)d, perms, prot);
    HX_CHECK(has_flag(flags, "dd"), "secret data not out of core dumps (no dd): %s", flags);
    HX_CHECK(has_flag(flags, secretmem ? "dc" : "wf"), "secret data not out of children: %s",
             flags);
    if (!secretmem)
        HX_CHECK(has_flag(flags, "lo"), "secret data not mlocked (no lo): %s", flags);
    HX_CHECK(locked * 1024 >= ((len + page() - 1) & ~(page() - 1)),
             "Locked: %zu kB for %zu secret bytes", locked, len);
}

static sm_status peek_fn(const uint8_t *bytes, size_t len, void *ctx)
{
    peek *p = ctx;
    const char *ro = p->secretmem ? "r--s" : "r--p";

    HX_CHECK(len == p->len, "window of %zu bytes for %zu", len, p->len);
    p->at = bytes;
    if (p->k == FACT_GUARDED || p->k == FACT_ENCRYPTED)
        check_region(bytes, len, ro, p->secretmem);
    else
        check_plain(bytes, len, p->k == FACT_CUSTOM ? "r--p" : ro,
                    p->k != FACT_CUSTOM && p->secretmem);
    return SM_OK;
}

static void secret_pages(unsigned k, size_t len, bool secretmem)
{
    peek p = { k, len, secretmem, NULL };
    char perms[5], flags[512];
    size_t locked;
    sm_secret s;

    if (k == FACT_COMPACT && len > SMI_COMPACT_MAX)
        return; /* its largest class (SM_E_INVAL beyond: test_compact.c) */
    HX_EXPECT(sm_secret_random(factory(k), len, &s), SM_OK);
    HX_EXPECT(sm_secret_with_bytes(s, peek_fn, &p), SM_OK);
    switch (k) {
    case FACT_GUARDED:
        check_region(p.at, len, secretmem ? "---s" : "---p", secretmem);
        break;
    case FACT_ENCRYPTED:
        HX_CHECK(smaps_of(p.at, perms, flags, sizeof flags, &locked) != 0,
                 "an encrypted secret's plaintext page %p is mapped at rest (%s)",
                 (const void *)p.at, perms);
        break;
    default:
        check_plain(p.at, len, k != FACT_CUSTOM && secretmem ? "---s" : "---p",
                    k != FACT_CUSTOM && secretmem);
    }
    /* The pool's, opened at every take: locked as its pages are first touched (lf). */
    if (k == FACT_PROTECTED && !secretmem) {
        smaps_at(p.at, perms, flags, sizeof flags, &locked);
        HX_CHECK(has_flag(flags, "lf"), "a protected secret's pages not locked on touch: %s",
                 flags);
    }
    HX_EXPECT(sm_secret_close(s), SM_OK);
    if (k == FACT_COMPACT) {
        /* Its slab stays, its class's one empty slab (spec/compact.md): shut. */
        HX_CHECK(smaps_of(p.at, perms, flags, sizeof flags, &locked) == 0 &&
                     strncmp(perms, "---", 3) == 0,
                 "compact secret of %zu bytes: its page is %s after close", len, perms);
        return;
    }
    /* A guarded one-page region waits in the pool, shut (spec/layout.md, "The pool"). */
    HX_CHECK(unmapped_or_pooled(p.at),
             "%s secret of %zu bytes: %p still mapped after close", factory_name(k), len,
             (const void *)p.at);
}

static void t_smaps_flags_and_guards(void)
{
    static const size_t sizes[] = { 1, 31, 32, 100, 4000, 4064, 4065, 4096, 5000, 3 * 4096 };
    sm_buffer b[sizeof sizes / sizeof sizes[0]], o;
    sm_enclave e;
    sm_stream s;
    smi_coffer_probe pr;
    uint8_t tmp[64] = { 7 };
    char perms[5], flags[512];
    size_t locked;

    HX_EXPECT(sm_init(NULL), SM_OK);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        HX_EXPECT(sm_buffer_new(sizes[i], &b[i]), SM_OK);
        check_region(sm_buffer_data(b[i]), sizes[i], "rw-p", false);
        /* Not the pool's: its pages were faulted in and locked by the mlock (no lf). */
        smaps_at(sm_buffer_data(b[i]), perms, flags, sizeof flags, &locked);
        HX_CHECK(!has_flag(flags, "lf"), "a new buffer's pages locked on touch: %s", flags);
        HX_EXPECT(sm_buffer_freeze(b[i]), SM_OK);
        check_region(sm_buffer_data(b[i]), sizes[i], "r--p", false);
    }
    /* An enclave's plaintext, opened into a buffer; the key's three regions at rest. */
    HX_EXPECT(sm_enclave_new(tmp, sizeof tmp, &e), SM_OK);
    HX_EXPECT(sm_enclave_open(e, &o), SM_OK);
    check_region(sm_buffer_data(o), sizeof tmp, "r--p", false);
    /*
     * Its region is the pool's: locked as its pages are first touched (lf), so that the
     * pool's mprotect calls do not populate them again (spec/layout.md, "The pool"), and
     * all of them touched and locked by then (check_region's Locked:).
     */
    smaps_at(sm_buffer_data(o), perms, flags, sizeof flags, &locked);
    HX_CHECK(has_flag(flags, "lf"), "an opened buffer's region not locked on touch: %s", flags);
    smi_coffer_test_probe(&pr);
    HX_CHECK(pr.left != NULL, "no coffer after a seal");
    check_region(smi_region_data(pr.left), pr.left->size, "---p", false);
    check_region(smi_region_data(pr.right), pr.right->size, "---p", false);
    check_region(smi_region_data(pr.work), pr.work->size, "rw-p", false);
    /* A stream's chunk, taken back into a buffer. */
    HX_EXPECT(sm_stream_new(&s), SM_OK);
    memset(tmp, 9, sizeof tmp);
    HX_EXPECT(sm_stream_write(s, tmp, sizeof tmp), SM_OK);
    HX_EXPECT(sm_stream_next(s, &o), SM_OK);
    check_region(sm_buffer_data(o), sizeof tmp, "r--p", false);
    HX_EXPECT(sm_stream_destroy(s), SM_OK);
    /* Secrets of every factory, of sizes up to and across a page boundary. */
    for (unsigned k = 0; k < NFACT; k++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            secret_pages(k, sizes[i], false);
}

static void t_smaps_secretmem(void)
{
    sm_config cfg = { .backing = SM_BACKING_SECRETMEM_REQUIRED };
    sm_buffer b;
    char perms[5], flags[512];
    size_t locked;
    FILE *f;
    char line[512];
    bool seen = false;

    HX_EXPECT(sm_init(&cfg), SM_OK);
    HX_EXPECT(sm_buffer_new(100, &b), SM_OK);
    sm_buffer_data(b)[0] = 1; /* fault the page in */
    check_region(sm_buffer_data(b), 100, "rw-s", true);
    smaps_at(sm_buffer_data(b), perms, flags, sizeof flags, &locked);
    HX_CHECK(locked * 1024 >= inner_len(100), "secretmem Locked: %zu kB", locked);
    /* /proc/self/maps names the file. */
    f = fopen("/proc/self/maps", "r");
    HX_CHECK(f != NULL, "/proc/self/maps");
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;

        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)sm_buffer_data(b) >= lo &&
            (uintptr_t)sm_buffer_data(b) < hi)
            seen = strstr(line, "/secretmem") != NULL;
    }
    fclose(f);
    HX_CHECK(seen, "the data's mapping is not /secretmem in /proc/self/maps");
    /* The library's factories follow the backing; a custom one has its own pages. */
    for (unsigned k = 0; k < FACT_CUSTOM; k++) {
        secret_pages(k, 100, true);
        secret_pages(k, 5000, true);
    }
}

/* ---- core dumps ------------------------------------------------------------------- */

/* Run argv (a program on PATH) with stdout and stderr to /dev/null; its exit status. */
static int run_quiet(char *const argv[])
{
    int status;
    pid_t pid = fork();

    HX_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        dup2(null, 1);
        dup2(null, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) != pid)
        HX_CHECK(errno == EINTR, "waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Occurrences of the pattern in the file at path. */
static size_t pattern_in_file(const char *path, const masked *mk, size_t *size)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    uint8_t *p;
    size_t hits;

    HX_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    HX_CHECK(fstat(fd, &st) == 0 && st.st_size > 0, "%s is empty", path);
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    HX_CHECK(p != MAP_FAILED, "mmap %s", path);
    hits = count_pattern(p, (size_t)st.st_size, mk);
    munmap(p, (size_t)st.st_size);
    close(fd);
    *size = (size_t)st.st_size;
    return hits;
}

static int core_up = -1, core_down = -1;

/* Hand the pattern to the parent and stay, every window open, until it has the core. */
static void dumped_inside(windows *w)
{
    char go;

    write_all(core_up, sm_buffer_data(w->src), PAT);
    read_all(core_down, &go, 1);
}

/*
 * The child to be dumped. With the library: the pattern in 1,000 buffers, 100 opened
 * enclaves, 10 streams and 1,000 secrets (every factory), 8 of them (two of each
 * factory) inside an access while the dump is taken, and sent to the parent with
 * write(2) from guarded pages. Without (the control): 1,000 copies in malloc memory,
 * sent likewise.
 */
static void core_child(int to_parent, int from_parent, bool library)
{
    static held h;
    static windows w;
    char go;

    core_up = to_parent;
    core_down = from_parent;
    if (library) {
        masked mk;

        HX_EXPECT(sm_init(NULL), SM_OK);
        w.src = new_pattern(&mk);
        memset(&mk, 0, sizeof mk);
        hold_everything(w.src, &h);
        w.n = 8;
        memcpy(w.s, h.secs, sizeof w.s); /* made round-robin: factories 0..4, then 0..2 */
        w.then = dumped_inside;
        with_windows(&w);
        exit(0);
    } else {
        uint8_t *copies = malloc(1000 * PAT);

        HX_CHECK(copies != NULL, "malloc");
        HX_EXPECT(sm_random(copies, PAT), SM_OK);
        for (int i = 1; i < 1000; i++)
            memcpy(copies + i * PAT, copies, PAT);
        write_all(to_parent, copies, PAT);
    }
    /* Stay alive, every object held, until the parent has the core. */
    read_all(from_parent, &go, 1);
    exit(0);
}

/* Fork a core child, dump it with gcore, and count the pattern in the core file. */
static size_t dump_and_count(bool library, size_t *core_size)
{
    int up[2], down[2], status;
    uint8_t pat[PAT];
    masked mk;
    char core[300], prefix[256], pidarg[32];
    size_t hits;
    pid_t pid;

    HX_CHECK(pipe(up) == 0 && pipe(down) == 0, "pipe");
    pid = fork();
    HX_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        core_child(up[1], down[0], library);
    }
    close(up[1]);
    close(down[0]);
    /* The parent is never dumped; it keeps the pattern only masked all the same. */
    read_all(up[0], pat, PAT);
    HX_EXPECT(sm_random(mk.mask, PAT), SM_OK);
    for (unsigned i = 0; i < PAT; i++)
        mk.m[i] = pat[i] ^ mk.mask[i];
    sm_wipe(pat, PAT);

    mkdir(SM_KERNEL_DIR, 0755);
    snprintf(prefix, sizeof prefix, "%s/core-%s", SM_KERNEL_DIR, library ? "lib" : "control");
    snprintf(core, sizeof core, "%s.%d", prefix, (int)pid);
    snprintf(pidarg, sizeof pidarg, "%d", (int)pid);
    unlink(core);
    {
        char *argv[] = { "gcore", "-o", prefix, pidarg, NULL };
        int rc = run_quiet(argv);

        HX_CHECK(rc == 0, "gcore exited with %d (is gdb installed? ci/install-deps test)", rc);
    }
    write_all(down[1], "g", 1);
    HX_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
             "the core child failed");
    hits = pattern_in_file(core, &mk, core_size);
    unlink(core);
    close(up[0]);
    close(down[1]);
    return hits;
}

static void t_core_dump_lacks_the_pattern(void)
{
    size_t size, hits = dump_and_count(true, &size);

    hx_say("  core of the library child: %zu bytes, pattern found %zu times", size, hits);
    HX_CHECK(hits == 0, "the core holds the pattern %zu times", hits);
}

/* The control: the same search on a core of the pattern in ordinary memory finds it. */
static void t_core_dump_control_has_the_pattern(void)
{
    size_t size, hits = dump_and_count(false, &size);

    hx_say("  core of the control child: %zu bytes, pattern found %zu times", size, hits);
    HX_CHECK(hits >= 1000, "the control core holds the pattern only %zu times", hits);
}

/* ---- fork -------------------------------------------------------------------------- */

typedef struct spots {
    const uint8_t *p[1211];
    size_t         n;
} spots;

/* The data addresses of everything in h that holds the pattern in plaintext. */
static void spots_of(const held *h, spots *s)
{
    s->n = 0;
    for (size_t i = 0; i < h->nbufs; i++)
        s->p[s->n++] = sm_buffer_data(h->bufs[i]);
    for (size_t i = 0; i < h->nencs; i++)
        s->p[s->n++] = sm_buffer_data(h->opened[i]);
    for (size_t i = 0; i < h->nstreams; i++)
        s->p[s->n++] = sm_buffer_data(h->nexts[i]);
}

/*
 * Fork, and in the child read the first bytes of each object in s (one child per object,
 * so that a fault tells which). raw: the fork system call itself, which runs no
 * pthread_atfork handler, so the child sees exactly what the kernel made of the pages
 * (WIPEONFORK: zeroes; DONTFORK: not mapped). Otherwise fork(3), after which the
 * library's child handler has also unmapped every pre-fork object. The child exits 0
 * for zeroes and 1 for anything else; a fault kills it.
 */
static void fork_reads(const spots *s, const masked *mk, bool raw, bool want_fault, size_t step)
{
    for (size_t i = 0; i < s->n; i += step) {
        int status;
        pid_t pid = raw ? (pid_t)syscall(SYS_fork) : fork();

        HX_CHECK(pid >= 0, "fork");
        if (pid == 0) {
            unsigned acc = 0;

            for (unsigned k = 0; k < PAT; k++)
                acc |= s->p[i][k];
            _exit(acc == 0 ? 0 : 1);
        }
        HX_CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        HX_CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 1),
                 "object %zu: a forked child read non-zero bytes", i);
        if (want_fault)
            HX_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
                     "object %zu: the child did not fault: %#x", i, status);
        else
            HX_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                     "object %zu: the child did not read zeroes: %#x", i, status);
        HX_CHECK(is_pattern(s->p[i], mk), "the parent lost object %zu", i);
    }
}

/* What the windows' innermost callback needs to fork. */
typedef struct fork_ctx {
    const masked *mk;
    bool          secretmem;
} fork_ctx;

/*
 * Fork while the windows are open (readable in the parent). The library's factories:
 * the kernel gives the child zeroes (WIPEONFORK) or nothing (DONTFORK, secretmem), and
 * after fork(3) the pages are gone. The custom factory's pages are its own (secret.h:
 * left to the factory in a child): sm_mem_alloc's WIPEONFORK gives zeroes both ways.
 */
static void fork_inside(windows *w)
{
    const fork_ctx *c = w->arg;
    static spots lib, custom;

    lib.n = custom.n = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (i % NFACT == FACT_CUSTOM)
            custom.p[custom.n++] = w->at[i];
        else
            lib.p[lib.n++] = w->at[i];
    }
    fork_reads(&lib, c->mk, true, c->secretmem, 1);
    fork_reads(&lib, c->mk, false, true, 1);
    fork_reads(&custom, c->mk, true, false, 1);
    fork_reads(&custom, c->mk, false, false, 1);
}

static void fork_check(bool secretmem)
{
    static windows w;
    static held h;
    static spots s;
    sm_config cfg = { .backing = secretmem ? SM_BACKING_SECRETMEM_REQUIRED : SM_BACKING_ANON };
    masked mk;
    sm_buffer src;

    HX_EXPECT(sm_init(&cfg), SM_OK);
    src = new_pattern(&mk);
    hold_everything(src, &h);
    spots_of(&h, &s);
    for (size_t i = 0; i < s.n; i++)
        HX_CHECK(is_pattern(s.p[i], &mk), "object %zu does not hold the pattern", i);
    /* The kernel alone: WIPEONFORK pages read as zeroes, DONTFORK pages are not there. */
    fork_reads(&s, &mk, true, secretmem, 37);
    /* Through fork(3): the library's handler has unmapped every pre-fork object too. */
    fork_reads(&s, &mk, false, true, 37);
    /* Secrets are unreadable at rest in the parent too: fork inside their windows. */
    w.n = 8;
    memcpy(w.s, h.secs, sizeof w.s);
    w.src = src;
    w.arg = &(fork_ctx){ &mk, secretmem };
    w.then = fork_inside;
    with_windows(&w);
}

static void t_fork_child_reads_zeroes(void)
{
    fork_check(false);
}

static void t_fork_child_faults_on_secretmem(void)
{
    fork_check(true);
}

/* ---- another process reading secretmem --------------------------------------------- */

/*
 * A child with one buffer holding the pattern (secretmem or anonymous backing) sends its
 * data address, then waits. The parent tries process_vm_readv and /proc/<pid>/mem.
 */
static void peek_from_parent(bool secretmem, bool *vm_ok, bool *mem_ok, bool *vm_match)
{
    int up[2], down[2], status;
    uintptr_t addr;
    uint8_t got[PAT], pat[PAT];
    masked mk;
    char path[64], go;
    pid_t pid;

    HX_CHECK(pipe(up) == 0 && pipe(down) == 0, "pipe");
    pid = fork();
    HX_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        sm_config cfg = { .backing = secretmem ? SM_BACKING_SECRETMEM_REQUIRED
                                               : SM_BACKING_ANON };
        sm_buffer src;

        HX_EXPECT(sm_init(&cfg), SM_OK);
        src = new_pattern(&mk);
        addr = (uintptr_t)sm_buffer_data(src);
        write_all(up[1], sm_buffer_data(src), PAT);
        write_all(up[1], &addr, sizeof addr);
        read_all(down[0], &go, 1);
        exit(0);
    }
    read_all(up[0], pat, PAT);
    read_all(up[0], &addr, sizeof addr);
    HX_EXPECT(sm_random(mk.mask, PAT), SM_OK);
    for (unsigned i = 0; i < PAT; i++)
        mk.m[i] = pat[i] ^ mk.mask[i];
    sm_wipe(pat, PAT);
    {
        struct iovec local = { got, PAT }, remote = { (void *)addr, PAT };
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);

        *vm_ok = n == (ssize_t)PAT;
        *vm_match = *vm_ok && is_pattern(got, &mk);
    }
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    {
        int fd = open(path, O_RDONLY);

        HX_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
        *mem_ok = pread(fd, got, PAT, (off_t)addr) == (ssize_t)PAT;
        close(fd);
    }
    sm_wipe(got, PAT);
    write_all(down[1], "g", 1);
    HX_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
             "the child failed");
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
}

static void t_secretmem_unreadable_from_another_process(void)
{
    bool vm_ok, mem_ok, vm_match;

    /* The control: anonymous backing is readable by a privileged parent (we are root). */
    peek_from_parent(false, &vm_ok, &mem_ok, &vm_match);
    if (!vm_ok || !vm_match)
        hx_skip("process_vm_readv cannot read a child here at all: no control");
    HX_CHECK(mem_ok, "/proc/pid/mem cannot read anonymous memory: no control");
    peek_from_parent(true, &vm_ok, &mem_ok, &vm_match);
    HX_CHECK(!vm_ok, "process_vm_readv read secretmem from another process");
    HX_CHECK(!mem_ok, "/proc/pid/mem read secretmem from another process");
}

/* ---- after purge and destroy ----------------------------------------------------- */

/* A static scratch for the scan, wiped after every chunk: the scan leaves no copy. */
static uint8_t scan_buf[1 << 16];

/*
 * Occurrences of the pattern in every readable mapping of this process, read through
 * /proc/self/mem (an unreadable page is an error there, not a fault). Mappings that are
 * not readable, [vvar] and [vsyscall] are skipped.
 */
static size_t scan_self(const masked *mk, size_t *regions)
{
    char *maps = proc_text("/proc/self/maps");
    size_t hits = 0;
    int mem = open("/proc/self/mem", O_RDONLY);

    HX_CHECK(mem >= 0, "/proc/self/mem");
    *regions = 0;
    for (char *line = maps; *line != 0;) {
        char *eol = strchr(line, '\n');
        unsigned long lo, hi;
        char perms[5];

        if (eol != NULL)
            *eol = 0;
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && perms[0] == 'r' &&
            strstr(line, "[vvar]") == NULL && strstr(line, "[vsyscall]") == NULL) {
            (*regions)++;
            /* Chunks overlap by PAT - 1 bytes, so that no occurrence is split. */
            for (unsigned long at = lo; at < hi;) {
                size_t want = hi - at < sizeof scan_buf ? hi - at : sizeof scan_buf;
                ssize_t n = pread(mem, scan_buf, want, (off_t)at);

                if (n <= 0) {
                    /* An unreadable page (a guard inside a readable range): skip it. */
                    at = (at + page()) & ~(unsigned long)(page() - 1);
                    continue;
                }
                hits += count_pattern(scan_buf, (size_t)n, mk);
                sm_wipe(scan_buf, (size_t)n);
                if ((size_t)n < PAT || at + (size_t)n >= hi)
                    break;
                at += (size_t)n - (PAT - 1);
            }
        }
        if (eol == NULL)
            break;
        line = eol + 1;
    }
    close(mem);
    return hits;
}

/* Where a secret's window is: its bytes while accessed (pages ---p or gone at rest). */
static sm_status where_fn(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)len;
    *(const uint8_t **)ctx = bytes;
    return SM_OK;
}

/*
 * What the windows' innermost callback needs to scan: the copies found at rest, and where
 * every secret's bytes are (secrets[i] of factory i modulo NFACT).
 */
typedef struct scan_ctx {
    const masked         *mk;
    size_t                at_rest;
    const uint8_t *const *secrets;
    size_t                nsecs;
} scan_ctx;

static uintptr_t page_of(const uint8_t *p)
{
    return (uintptr_t)p & ~(uintptr_t)(page() - 1);
}

/*
 * Whether the PAT bytes at p lie on pages that an open compact window opened: a compact
 * access opens its slot's pages (its 8-byte canary and its bytes) for every neighbour on
 * them (spec/threat-model.md, "Compact secrets"), so the scan finds those neighbours too.
 */
static bool on_open_compact_pages(const windows *w, const scan_ctx *c, const uint8_t *p)
{
    bool first = false, last = false;

    for (size_t k = 0; k < w->n; k++)
        for (size_t i = 0; i < c->nsecs; i++) {
            if (c->secrets[i] != w->at[k] || i % NFACT != FACT_COMPACT)
                continue;
            for (uintptr_t pg = page_of(w->at[k] - 8); pg <= page_of(w->at[k] + PAT - 1);
                 pg += page()) {
                first |= pg == page_of(p);
                last |= pg == page_of(p + PAT - 1);
            }
        }
    return first && last;
}

/* The control for secrets: with the windows open, the scan finds each of them too. */
static void scan_inside(windows *w)
{
    const scan_ctx *c = w->arg;
    size_t regions, hits = scan_self(c->mk, &regions), want = c->at_rest;

    for (size_t i = 0; i < c->nsecs; i++)
        if (i % NFACT == FACT_COMPACT ? on_open_compact_pages(w, c, c->secrets[i])
                                      : i < w->n)
            want++;
    hx_say("  %zu windows open: %zu copies", w->n, hits);
    HX_CHECK(hits == want, "with %zu secrets readable the scan found %zu, expected %zu",
             w->n, hits, want);
}

static void t_after_purge_and_destroy_nothing_remains(void)
{
    static held h;
    static spots s;
    static const uint8_t *sec_at[1000];
    static windows w;
    sm_buffer src;
    masked mk;
    size_t hits, regions, unmapped = 0, copies;
    char perms[5], flags[256];
    size_t locked;
    sm_stats st;

    HX_EXPECT(sm_init(NULL), SM_OK);
    src = new_pattern(&mk);
    hold_everything(src, &h);
    spots_of(&h, &s);
    for (size_t i = 0; i < h.nsecs; i++)
        HX_EXPECT(sm_secret_with_bytes(h.secs[i], where_fn, &sec_at[i]), SM_OK);
    /*
     * The control: the scan finds every live copy (and nothing else holds one): each
     * buffer's, the source's, and none of the 1,000 secrets', which are unreadable or
     * encrypted at rest. With windows open on 8 secrets it finds those 8 as well.
     */
    copies = 1 + h.nbufs + h.nencs;
    for (size_t i = 0; i < h.nstreams; i++)
        copies += sm_buffer_size(h.nexts[i]) / PAT; /* a chunk holds several writes */
    hits = scan_self(&mk, &regions);
    hx_say("  before: %zu copies in %zu readable mappings", hits, regions);
    HX_CHECK(hits == copies, "the scan found %zu copies; the buffers hold %zu", hits, copies);
    w.n = 8;
    memcpy(w.s, h.secs, sizeof w.s);
    w.src = src;
    w.arg = &(scan_ctx){ &mk, hits, sec_at, h.nsecs };
    w.then = scan_inside;
    with_windows(&w);
    /* Destroy about half by hand, including the source; purge the rest. */
    for (size_t i = 0; i < h.nbufs; i += 2)
        HX_EXPECT(sm_buffer_destroy(h.bufs[i]), SM_OK);
    for (size_t i = 0; i < h.nencs; i += 2) {
        HX_EXPECT(sm_buffer_destroy(h.opened[i]), SM_OK);
        HX_EXPECT(sm_enclave_destroy(h.encs[i]), SM_OK);
    }
    for (size_t i = 0; i < h.nstreams; i += 2)
        HX_EXPECT(sm_stream_destroy(h.streams[i]), SM_OK);
    /* Factories were dealt round-robin: every other round is closed, the rest purged. */
    for (size_t i = 0; i < h.nsecs; i++)
        if (i / NFACT % 2 == 0)
            HX_EXPECT(sm_secret_close(h.secs[i]), SM_OK);
    HX_EXPECT(sm_buffer_destroy(src), SM_OK);
    sm_purge();
    for (size_t i = 0; i < s.n; i++)
        unmapped += smaps_of(s.p[i], perms, flags, sizeof flags, &locked) != 0;
    HX_CHECK(unmapped == s.n, "%zu of %zu objects' pages are still mapped", s.n - unmapped,
             s.n);
    for (size_t i = 0; i < h.nsecs; i++)
        HX_CHECK(smaps_of(sec_at[i], perms, flags, sizeof flags, &locked) != 0,
                 "%s secret %zu (%s): its pages are still mapped (%s)", factory_name(i % NFACT), i,
                 i / NFACT % 2 ? "purged" : "closed", perms);
    hits = scan_self(&mk, &regions);
    hx_say("  after: %zu copies in %zu readable mappings", hits, regions);
    HX_CHECK(hits == 0, "the pattern remains %zu times in readable memory", hits);
    HX_EXPECT(sm_stats_get(&st), SM_OK);
    HX_CHECK(st.buffers_live == 0 && st.enclaves_live == 0 && st.streams_live == 0 &&
             st.secrets_live == 0, "objects left live");
    HX_CHECK(st.bytes_locked == page(), "%llu bytes locked after purge",
             (unsigned long long)st.bytes_locked);
}

/* ---- system calls, as the kernel counts them ------------------------------------- */

/*
 * A counter of the calling thread's system calls as the kernel sees them enter (the
 * raw_syscalls:sys_enter tracepoint), whoever makes them: the library through its OS
 * shim, or libc behind its back (a futex of a contended lock, a clock read that left
 * the vDSO). The test is skipped where the tracepoint cannot be opened (no tracefs,
 * perf_event_paranoid, a seccomp filter); it opens on this project's machines.
 */
static int syscall_counter(void)
{
    static const char *const id_files[] = {
        "/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
        "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
    };
    struct perf_event_attr a = { 0 };
    char buf[32] = { 0 };
    int fd = -1;

    for (size_t i = 0; i < sizeof id_files / sizeof id_files[0] && fd < 0; i++)
        fd = open(id_files[i], O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0)
        hx_skip("the raw_syscalls:sys_enter tracepoint has no id here");
    close(fd);
    a.type = PERF_TYPE_TRACEPOINT;
    a.size = sizeof a;
    a.config = strtoull(buf, NULL, 10);
    a.disabled = 1;
    /* pid 0, cpu -1: this thread only, on any CPU; another thread's calls never count. */
    fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0)
        hx_skip("perf_event_open refuses the raw_syscalls:sys_enter tracepoint here");
    return fd;
}

static void counter_start(int fd)
{
    HX_CHECK(ioctl(fd, PERF_EVENT_IOC_RESET, 0) == 0, "the counter cannot be reset");
    HX_CHECK(ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) == 0, "the counter cannot be enabled");
}

/* The calls since counter_start, this one's included. */
static uint64_t counter_stop(int fd)
{
    uint64_t n = 0;

    /* Entered while the counter runs: the one call that an empty span counts. */
    HX_CHECK(ioctl(fd, PERF_EVENT_IOC_DISABLE, 0) == 0, "the counter cannot be disabled");
    HX_CHECK(read(fd, &n, sizeof n) == (ssize_t)sizeof n, "the counter cannot be read");
    return n;
}

typedef enum { READ_WITH, READ_TRY, READ_AT } read_kind;
static const char *const read_names[] = { "with_bytes", "try_with_bytes", "read_at" };

static sm_status read_fn(const uint8_t *b, size_t n, void *ctx)
{
    (void)ctx;
    return n == PAT && b[0] == 0x5a && b[PAT - 1] == 0x5a ? SM_OK : SM_E_AUTH;
}

/* The system calls that one read of s makes on this thread, less the counter's own. */
static uint64_t syscalls_of_read(int fd, sm_secret s, read_kind how)
{
    uint8_t out[PAT];
    size_t got = 0;
    sm_status st;
    uint64_t empty, n;

    counter_start(fd);
    empty = counter_stop(fd);
    counter_start(fd);
    st = how == READ_WITH  ? sm_secret_with_bytes(s, read_fn, NULL)
         : how == READ_TRY ? sm_secret_try_with_bytes(s, read_fn, NULL)
                           : sm_secret_read_at(s, 0, out, sizeof out, &got);
    n = counter_stop(fd);
    HX_EXPECT(st, SM_OK);
    HX_CHECK(how != READ_AT || (got == PAT && out[0] == 0x5a), "read_at read the bytes");
    smi_wipe(out, sizeof out);
    return n - empty;
}

static sm_secret patterned_secret(unsigned k)
{
    uint8_t src[PAT];
    sm_secret s;

    memset(src, 0x5a, sizeof src);
    HX_EXPECT(sm_secret_new(factory(k), src, sizeof src, &s), SM_OK);
    return s;
}

/*
 * A scoped read alone makes exactly the system calls that its OS shim makes, which the
 * unit suite checks against spec/syscalls.tsv: nothing behind the shim's back, no lock
 * that sleeps, no clock, no madvise (issue 14 §1). For the protected, guarded and
 * compact factories that is 2, the mprotect that opens the window and the one that
 * shuts it: what libsodium's sodium_mprotect_readonly and _noaccess make (make bench).
 */
static void t_scoped_read_system_calls(void)
{
    int fd = syscall_counter();

    HX_EXPECT(sm_init(NULL), SM_OK);
    for (unsigned k = 0; k < NFACT; k++) {
        sm_secret s = patterned_secret(k);

        /* Warm: a first access may make what later ones share (the enclave key). */
        HX_EXPECT(sm_secret_with_bytes(s, read_fn, NULL), SM_OK);
        for (read_kind how = READ_WITH; how <= READ_AT; how++) {
            uint64_t n;
            unsigned long shim;

            sm_os_fault_reset();
            n = syscalls_of_read(fd, s, how);
            shim = os_calls();
            HX_CHECK(n == shim, "%s: %llu system calls for a %s, %lu of them through the OS "
                     "shim", factory_name(k), (unsigned long long)n, read_names[how], shim);
            /* The example factory's hooks call the library's sm_mem_protect: 2 as well. */
            if (k != FACT_ENCRYPTED)
                HX_CHECK(n == 2, "%s: a %s makes %llu system calls, not the 2 mprotect",
                         factory_name(k), read_names[how], (unsigned long long)n);
        }
        HX_EXPECT(sm_secret_close(s), SM_OK);
    }
    close(fd);
}

/*
 * A protected or guarded secret's alloc+free in steady state, its mapping taken from the
 * pool and scrubbed back into it (spec/layout.md, "The pool"): 4 system calls as the
 * kernel sees them enter, the 4 mprotect of spec/syscalls.tsv (rows
 * secret.random.*.pooled, secret.close.*) and nothing behind the shim's back: no mmap,
 * mlock, madvise or munmap. sm_secret_random has no source to query (syscalls.md).
 */
static void t_pooled_alloc_free_system_calls(void)
{
    static const unsigned pooled_kinds[] = { FACT_PROTECTED, FACT_GUARDED };
    int fd = syscall_counter();

    HX_EXPECT(sm_init(NULL), SM_OK);
    for (size_t i = 0; i < sizeof pooled_kinds / sizeof pooled_kinds[0]; i++) {
        unsigned k = pooled_kinds[i];
        sm_secret s;
        uint64_t empty, n;

        /* Warm: the registry's chunk, the RNG's key, and one mapping in the pool. */
        HX_EXPECT(sm_secret_random(factory(k), PAT, &s), SM_OK);
        HX_EXPECT(sm_secret_close(s), SM_OK);
        sm_os_fault_reset();
        counter_start(fd);
        empty = counter_stop(fd);
        counter_start(fd);
        HX_EXPECT(sm_secret_random(factory(k), PAT, &s), SM_OK);
        HX_EXPECT(sm_secret_close(s), SM_OK);
        n = counter_stop(fd) - empty;
        HX_CHECK(n == os_calls() && n == 4 && sm_os_fault_calls(SM_OS_MPROTECT) == 4,
                 "%s: a pooled alloc+free makes %llu system calls, %lu through the OS shim, "
                 "%lu of them mprotect; 4 mprotect expected", factory_name(k),
                 (unsigned long long)n, os_calls(), sm_os_fault_calls(SM_OS_MPROTECT));
    }
    close(fd);
}

/* A thread that stays inside an access until told to leave. */
typedef struct holder {
    sm_secret       s;
    pthread_mutex_t m;
    pthread_cond_t  c;
    bool            inside, leave;
    sm_status       st;
} holder;

static sm_status hold_fn(const uint8_t *b, size_t n, void *ctx)
{
    holder *h = ctx;

    pthread_mutex_lock(&h->m);
    h->inside = true;
    pthread_cond_broadcast(&h->c);
    while (!h->leave)
        pthread_cond_wait(&h->c, &h->m);
    pthread_mutex_unlock(&h->m);
    return read_fn(b, n, NULL);
}

static void *hold_thread(void *arg)
{
    holder *h = arg;

    h->st = sm_secret_with_bytes(h->s, hold_fn, h);
    return NULL;
}

/*
 * The reader protocol (spec/secrets.md, JOIN): while another thread is inside an access,
 * the window is open, and a second thread's read joins it with no system call at all,
 * whichever the factory, for with_bytes, try_with_bytes and read_at alike. This is what
 * lets two threads reading one secret scale (make bench, contention).
 */
static void t_second_reader_joins_without_a_system_call(void)
{
    int fd = syscall_counter();

    HX_EXPECT(sm_init(NULL), SM_OK);
    for (unsigned k = 0; k < NFACT; k++) {
        holder h = { .s = patterned_secret(k), .m = PTHREAD_MUTEX_INITIALIZER,
                     .c = PTHREAD_COND_INITIALIZER };
        pthread_t t;

        HX_CHECK(pthread_create(&t, NULL, hold_thread, &h) == 0, "a holding thread");
        pthread_mutex_lock(&h.m);
        while (!h.inside)
            pthread_cond_wait(&h.c, &h.m);
        pthread_mutex_unlock(&h.m);
        for (read_kind how = READ_WITH; how <= READ_AT; how++) {
            uint64_t n = syscalls_of_read(fd, h.s, how);

            HX_CHECK(n == 0, "%s: a second thread's %s inside an open window made %llu "
                     "system calls", factory_name(k), read_names[how], (unsigned long long)n);
        }
        pthread_mutex_lock(&h.m);
        h.leave = true;
        pthread_cond_broadcast(&h.c);
        pthread_mutex_unlock(&h.m);
        HX_CHECK(pthread_join(t, NULL) == 0, "the holding thread");
        HX_EXPECT(h.st, SM_OK);
        HX_EXPECT(sm_secret_close(h.s), SM_OK);
    }
    close(fd);
}

static const hx_test tests[] = {
    { "smaps_flags_and_guards", t_smaps_flags_and_guards },
    { "pooled_alloc_free_system_calls", t_pooled_alloc_free_system_calls },
    { "smaps_secretmem", t_smaps_secretmem },
    { "core_dump_control_has_the_pattern", t_core_dump_control_has_the_pattern },
    { "core_dump_lacks_the_pattern", t_core_dump_lacks_the_pattern },
    { "fork_child_reads_zeroes", t_fork_child_reads_zeroes },
    { "fork_child_faults_on_secretmem", t_fork_child_faults_on_secretmem },
    { "secretmem_unreadable_from_another_process", t_secretmem_unreadable_from_another_process },
    { "after_purge_and_destroy_nothing_remains", t_after_purge_and_destroy_nothing_remains },
    { "scoped_read_system_calls", t_scoped_read_system_calls },
    { "second_reader_joins_without_a_system_call", t_second_reader_joins_without_a_system_call },
};

int main(int argc, char **argv)
{
    return hx_main("kernel", tests, sizeof tests / sizeof tests[0], 300, argc, argv);
}
