/* SPDX-License-Identifier: ISC */
/* The harnesses' shared part (harness.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fuzz_tables.h"
#include "harness.h"

/* ---- input ---- */

void fz_fill(fz_in *in, uint8_t *dst, size_t n)
{
    size_t k = fz_u8(in);
    uint8_t seed = (uint8_t)(k * 29u + 0x5a);

    if (k > n)
        k = n;
    if (k > in->n - in->off)
        k = in->n - in->off;
    if (k > 0) {
        memcpy(dst, in->p + in->off, k);
        in->off += k;
        seed = (uint8_t)(seed ^ dst[k - 1]);
    }
    for (size_t i = k; i < n; i++)
        dst[i] = (uint8_t)(seed + i * 131u + (i >> 8));
}

/* ---- trace and failure ---- */

#define TRACE_LINES 48
#define TRACE_LEN 128
static char trace_ring[TRACE_LINES][TRACE_LEN];
static unsigned trace_next;

/* FUZZ_TRACE=1 in the environment also prints every line (to write seeds with). */
void fz_trace(const char *fmt, ...)
{
    static int echo = -1;
    va_list ap;

    if (echo < 0)
        echo = getenv("FUZZ_TRACE") != NULL;
    va_start(ap, fmt);
    vsnprintf(trace_ring[trace_next % TRACE_LINES], TRACE_LEN, fmt, ap);
    va_end(ap);
    if (echo)
        fprintf(stderr, "trace: %s\n", trace_ring[trace_next % TRACE_LINES]);
    trace_next++;
}

_Noreturn void fz_fail(const char *fmt, ...)
{
    va_list ap;
    unsigned first = trace_next > TRACE_LINES ? trace_next - TRACE_LINES : 0;

    fprintf(stderr, "\nfuzz: the library diverged from the model: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nfuzz: the last operations of this input, oldest first:\n");
    for (unsigned i = first; i < trace_next; i++)
        fprintf(stderr, "  %4u  %s\n", i, trace_ring[i % TRACE_LINES]);
    fflush(stderr);
    abort();
}

const char *fz_st(sm_status st)
{
    return sm_status_str(st);
}

/* ---- setup ---- */

uint64_t fz_coffer_bytes;
static int probe_pipe[2] = { -1, -1 };

static void index_err_table(void);

void fz_counts_get(fz_counts *c)
{
    sm_stats s;
    sm_status st = sm_stats_get(&s);

    FZ_CHECK(st == SM_OK, "sm_stats_get: %s", fz_st(st));
    memset(c, 0, sizeof *c);
    c->live[SMI_KIND_BUFFER] = s.buffers_live;
    c->live[SMI_KIND_ENCLAVE] = s.enclaves_live;
    c->live[SMI_KIND_STREAM] = s.streams_live;
    c->live[SMI_KIND_SECRET] = s.secrets_live;
    /*
     * The region pool of wiped regions is a cache, not an object (spec/layout.md,
     * "The pool"): its locked pages are left out, as the unit suite's counters do.
     */
    c->bytes = s.bytes_locked + s.bytes_unlocked - smi_pool_test_bytes();
    c->allocations = s.allocations_total;
}

size_t fz_pooled(void)
{
    uint8_t *bases[SMI_POOL_SLOTS];

    return smi_pool_test_list(bases, NULL, SMI_POOL_SLOTS);
}

bool fz_coffer_exists(void)
{
    smi_coffer_probe p;

    smi_coffer_test_probe(&p);
    return p.left != NULL;
}

size_t fz_region_bytes(size_t size)
{
    size_t page = sm_page_size();

    return (size + SMI_CANARY_MIN + page - 1) & ~(page - 1);
}

void fz_init(const sm_config *cfg)
{
    static bool done;
    uint8_t one = 1;
    sm_enclave e;
    fz_counts a, b;
    sm_status st;

    if (done)
        return;
    done = true;
    index_err_table();
    FZ_CHECK(pipe2(probe_pipe, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
    st = sm_init(cfg);
    FZ_CHECK(st == SM_OK, "sm_init: %s", fz_st(st));
    sm_purge();
    fz_counts_get(&a);
    st = sm_enclave_new(&one, 1, &e);
    FZ_CHECK(st == SM_OK, "warm-up sm_enclave_new: %s", fz_st(st));
    fz_counts_get(&b);
    fz_coffer_bytes = b.bytes - a.bytes;
    st = sm_enclave_destroy(e);
    FZ_CHECK(st == SM_OK, "warm-up sm_enclave_destroy: %s", fz_st(st));
    sm_purge();
}

void fz_begin(void)
{
    uint32_t idx[FZ_HEADROOM];
    fz_counts c;

    sm_os_fault_reset();
    fz_counts_get(&c);
    FZ_CHECK(c.live[SMI_KIND_BUFFER] == 0 && c.live[SMI_KIND_ENCLAVE] == 0 &&
                 c.live[SMI_KIND_STREAM] == 0 && c.live[SMI_KIND_SECRET] == 0,
             "objects of the previous input are still alive");
    /*
     * The purge first: a mapping whose munmap was refused may still be the library's (a
     * compact slab that could not be unmapped stays in its class, spec/compact.md), and
     * the purge unmaps it. What is left of the refused munmaps then, the library forgot.
     */
    sm_purge();
    (void)sm_os_fault_reclaim();
    for (unsigned i = 0; i < FZ_HEADROOM; i++) {
        sm_status st = smi_registry_reserve(&idx[i]);

        FZ_CHECK(st == SM_OK, "registry headroom: %s", fz_st(st));
    }
    for (unsigned i = FZ_HEADROOM; i-- > 0;)
        smi_registry_unreserve(idx[i]);
    smi_aead_test_force(SMI_AEAD_AUTO);
    /*
     * The model checks each operation's calls against spec/syscalls.tsv, whose rows are
     * the cold path: no spare ciphertext mapping kept or taken (src/memory/spare.c; the
     * warm path is test_enclave.c's and test_stream.c's, and the race suite's).
     */
    smi_spare_test_off(true);
    sm_os_fault_reset();
    sm_os_fuzz_reset();
    trace_next = 0;
}

/* ---- faults ---- */

/* The rows of fz_err_table of each OS function, found once by name. */
static size_t err_rows[SM_OS_FN_COUNT][16], err_nrows[SM_OS_FN_COUNT];

static void index_err_table(void)
{
    for (size_t i = 0; i < sizeof fz_err_table / sizeof fz_err_table[0]; i++) {
        for (int fn = 0; fn < SM_OS_FN_COUNT; fn++) {
            if (strcmp(fz_err_table[i].fn, sm_os_fn_name((sm_os_fn)fn)) != 0)
                continue;
            FZ_CHECK(err_nrows[fn] < 16, "too many os-errors.tsv rows for one function");
            err_rows[fn][err_nrows[fn]++] = i;
        }
    }
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        FZ_CHECK(err_nrows[fn] > 0, "no row of os-errors.tsv for %s", sm_os_fn_name((sm_os_fn)fn));
}

sm_status fz_err_status(sm_os_fn fn, int err)
{
    sm_status any = SM_E_SYS;

    for (size_t k = 0; k < err_nrows[fn]; k++) {
        const fz_err_row *r = &fz_err_table[err_rows[fn][k]];

        if (r->err == err)
            return r->st;
        if (r->err == -1)
            any = r->st;
    }
    return any;
}

/* The errno injected for a "*" row: one that no row of the table names. */
#define FZ_OTHER_ERRNO EOVERFLOW

static bool retries_eintr(sm_os_fn fn)
{
    return fn == SM_OS_GETRANDOM || fn == SM_OS_READ;
}

void fz_faults_arm(fz_faults *f, fz_in *in, const sm_os_fn *fns, size_t n)
{
    sm_os_fn fn = fns[fz_u8(in) % n];
    uint8_t how = fz_u8(in);
    size_t nrows = err_nrows[fn];
    int err;

    if (retries_eintr(fn) && (how >> 3) % (nrows + 1) == nrows)
        err = EINTR;
    else
        err = fz_err_table[err_rows[fn][(how >> 3) % nrows]].err;
    if (err == -1)
        err = FZ_OTHER_ERRNO;
    f->plan[fn].armed = true;
    f->plan[fn].nth = 1 + (how & 3);
    f->plan[fn].err = err;
    f->plan[fn].sticky = (how & 4) != 0 && err != EINTR;
    sm_os_fault_arm(fn, f->plan[fn].nth, err, f->plan[fn].sticky);
    fz_trace("fault %s call %lu errno %d%s", sm_os_fn_name(fn), f->plan[fn].nth, err,
             f->plan[fn].sticky ? " sticky" : "");
}

void fz_faults_clear(fz_faults *f)
{
    memset(f, 0, sizeof *f);
    sm_os_fault_reset();
}

void fz_faults_before(fz_faults *f)
{
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        f->before[fn] = sm_os_fault_calls((sm_os_fn)fn);
    f->fired = 0;
    f->nallowed = 0;
    memset(f->fired_by, 0, sizeof f->fired_by);
}

unsigned fz_faults_after(fz_faults *f)
{
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++) {
        const fz_plan *p = &f->plan[fn];
        unsigned long from = f->before[fn] + 1, to = sm_os_fault_calls((sm_os_fn)fn);
        unsigned long first = from > p->nth ? from : p->nth, n;

        if (!p->armed || to < first)
            continue;
        if (p->sticky)
            n = to - first + 1;
        else
            n = first == p->nth ? 1 : 0;
        if (n == 0 || p->err == EINTR)
            continue; /* an interrupted call is retried: nothing to see */
        f->fired += (unsigned)n;
        f->fired_by[fn] += (unsigned)n;
        f->last_fn = (sm_os_fn)fn;
        f->last_err = p->err;
        f->allowed[f->nallowed++] = fz_err_status((sm_os_fn)fn, p->err);
        if (fn == SM_OS_MLOCK)
            f->allowed[f->nallowed++] = SM_E_LOCK;
        /* A new region's opening mprotect refused with ENOMEM is the kernel refusing
           the split's mappings: SM_E_NOMEM (src/memory/region.c, spec/syscalls.tsv). */
        if (fn == SM_OS_MPROTECT && p->err == ENOMEM)
            f->allowed[f->nallowed++] = SM_E_NOMEM;
    }
    return f->fired;
}

bool fz_faults_allow(const fz_faults *f, sm_status st)
{
    for (unsigned i = 0; i < f->nallowed; i++)
        if (f->allowed[i] == st)
            return true;
    return false;
}

/* ---- protection probes ---- */

/*
 * write(2) from p fails with EFAULT when p is not readable, and read(2) into p when it
 * is not writable: the kernel checks the mapping, and no signal is raised. The byte
 * written back is the one that is there, so a writable page is left as it was.
 */
fz_prot fz_probe(const void *p)
{
    uint8_t c;
    long r = syscall(SYS_write, probe_pipe[1], p, 1);

    if (r != 1) {
        FZ_CHECK(errno == EFAULT, "probe write: %s", strerror(errno));
        return FZ_PROT_NONE;
    }
    FZ_CHECK(syscall(SYS_read, probe_pipe[0], &c, 1) == 1, "probe drain");
    FZ_CHECK(syscall(SYS_write, probe_pipe[1], &c, 1) == 1, "probe refill");
    r = syscall(SYS_read, probe_pipe[0], (void *)(uintptr_t)p, 1);
    if (r == 1)
        return FZ_PROT_RW;
    FZ_CHECK(errno == EFAULT, "probe read: %s", strerror(errno));
    FZ_CHECK(syscall(SYS_read, probe_pipe[0], &c, 1) == 1, "probe drain");
    return FZ_PROT_READ;
}

const char *fz_prot_name(fz_prot p)
{
    return p == FZ_PROT_NONE ? "none" : p == FZ_PROT_READ ? "read" : "read-write";
}

void fz_check_layout(const uint8_t *data, size_t size, bool writable, const char *what)
{
    size_t page = sm_page_size();
    const uint8_t *end = data + size;
    const uint8_t *inner = end - fz_region_bytes(size);
    fz_prot want = writable ? FZ_PROT_RW : FZ_PROT_READ, got;

    FZ_CHECK((uintptr_t)end % page == 0, "%s: data does not end at a page boundary", what);
    FZ_CHECK((got = fz_probe(end)) == FZ_PROT_NONE, "%s: no guard page after the data (%s)",
             what, fz_prot_name(got));
    FZ_CHECK((got = fz_probe(inner - page)) == FZ_PROT_NONE,
             "%s: no guard page before the canary (%s)", what, fz_prot_name(got));
    FZ_CHECK((got = fz_probe(inner)) == want, "%s: canary page is %s, want %s", what,
             fz_prot_name(got), fz_prot_name(want));
    FZ_CHECK((got = fz_probe(data)) == want, "%s: first data byte is %s, want %s", what,
             fz_prot_name(got), fz_prot_name(want));
    FZ_CHECK((got = fz_probe(end - 1)) == want, "%s: last data byte is %s, want %s", what,
             fz_prot_name(got), fz_prot_name(want));
}
