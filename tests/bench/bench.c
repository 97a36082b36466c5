/* SPDX-License-Identifier: ISC */
/*
 * make bench (issue 14 §6): one table of securemem against its peers, each measured in
 * the same run on the same machine: libsodium's guarded allocator, OpenSSL's secure heap
 * (CRYPTO_secure_malloc in one arena of locked pages), the raw BearSSL AEAD pass
 * (enclave_stream.c) and securemem itself with one thread (contention.c). It prints the
 * table and writes the same rows to a JSON file (report.h); it asserts nothing, because
 * timing depends on the machine (no timing assertions in tests).
 *
 *     bench [rounds [results.json [crypto]]]   (default 7 rounds, figures are medians)
 *
 * crypto (make bench BENCH_ONLY=crypto) runs only the enclave and stream rows, the same
 * rows as in the whole table, so that a change to the crypto path is measured in seconds.
 *
 * What is compared here, and why these pairs:
 *  - alloc+free of a 32-byte secret: sm_secret_new + sm_secret_close against
 *    sodium_malloc + sodium_free (both end up locked, guarded or not, at rest), and the
 *    compact factory against CRYPTO_secure_malloc + CRYPTO_secure_free too (both dense);
 *  - one scoped read: sm_secret_with_bytes reading the 32 bytes, against
 *    sodium_mprotect_readonly + the same read + sodium_mprotect_noaccess;
 *  - a nested read: sm_secret_with_bytes inside another access to the same secret,
 *    which shares the open window (no system call);
 *  - alloc+free with 10,000 other secrets live, against the same with none: the
 *    registry and the kernel's mapping tree must keep it flat; and a compact one with
 *    100,000 other compact secrets live (issue 14 §3: within 1.1x of the figure without);
 *  - sm_purge and sm_audit with nothing live, fresh and after 110,000 secrets came and
 *    went (issue 18 §2: the walks used to visit every slot ever used).
 * What limits the scoped read and the contention rows, and why the 1.0x and 1.7x goals
 * stay out of reach: spec/secrets.md, "Two threads, and what one read costs".
 * Goals: issue 4 (protected alloc+free <= 0.6x libsodium, scoped read <= 1.0x, nested
 * <= 50 ns) and issue 14 §3 (guarded <= 0.5x, compact <= 0.02x libsodium and <= 1.0x
 * OpenSSL, within 1.1x of its own figure with others live).
 */
#include <openssl/crypto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <securemem.h>

#include "report.h"

#define LEN 32
#define LIVE 10000
#define NA "libsodium"
#define OS "OpenSSL secure heap"
#define COMPACT_LIVE 100000

static int rounds = 7;
static volatile uint8_t sink;

static void die(const char *what, sm_status st)
{
    fprintf(stderr, "bench: %s: %s\n", what, sm_status_str(st));
    exit(1);
}

typedef struct job {
    void (*fn)(void *, long);
    void  *arg;
    double result; /* ns per iteration: the median over the rounds */
} job;

/*
 * Run the jobs round-robin, one round of each in turn, so that whatever else the machine
 * is doing at that moment weighs on all of them alike; each result is the median of its
 * rounds of the mean ns per iteration.
 */
static void measure(job *jobs, int n, long iters)
{
    double t[8][32];

    for (int j = 0; j < n; j++)
        jobs[j].fn(jobs[j].arg, iters / 10 + 1); /* warm up: first touch, registry chunk */
    for (int r = 0; r < rounds; r++) {
        for (int j = 0; j < n; j++) {
            double t0 = bench_now_ns();

            jobs[j].fn(jobs[j].arg, iters);
            t[j][r] = (bench_now_ns() - t0) / (double)iters;
        }
    }
    for (int j = 0; j < n; j++) {
        jobs[j].result = bench_median(t[j], rounds);
    }
}

/* ---- securemem ---- */

static sm_status read_fn(const uint8_t *b, size_t n, void *ctx)
{
    uint8_t acc = 0;

    (void)ctx;
    for (size_t i = 0; i < n; i++)
        acc ^= b[i];
    sink = acc;
    return SM_OK;
}

static void sm_alloc_free(void *arg, long iters)
{
    const sm_factory *f = arg;
    uint8_t src[LEN];

    for (long i = 0; i < iters; i++) {
        sm_secret s;
        sm_status st;

        memset(src, (int)i, sizeof src); /* new wipes its source */
        if ((st = sm_secret_new(f, src, LEN, &s)) != SM_OK)
            die("sm_secret_new", st);
        if ((st = sm_secret_close(s)) != SM_OK)
            die("sm_secret_close", st);
    }
}

static void sm_scoped_read(void *arg, long iters)
{
    sm_secret s = *(sm_secret *)arg;

    for (long i = 0; i < iters; i++)
        if (sm_secret_with_bytes(s, read_fn, NULL) != SM_OK)
            die("with_bytes", SM_E_SYS);
}

typedef struct nested {
    sm_secret s;
    long      iters;
} nested;

static sm_status nested_outer(const uint8_t *b, size_t n, void *ctx)
{
    nested *x = ctx;

    (void)b;
    (void)n;
    for (long i = 0; i < x->iters; i++)
        if (sm_secret_with_bytes(x->s, read_fn, NULL) != SM_OK)
            return SM_E_SYS;
    return SM_OK;
}

static void sm_nested_read(void *arg, long iters)
{
    nested *x = arg;

    x->iters = iters;
    if (sm_secret_with_bytes(x->s, nested_outer, x) != SM_OK)
        die("nested with_bytes", SM_E_SYS);
}

/* With nothing live: the cost of the walks alone (and of the key purges). */
static void sm_purge_empty(void *arg, long iters)
{
    (void)arg;
    for (long i = 0; i < iters; i++)
        sm_purge();
}

static void sm_audit_empty(void *arg, long iters)
{
    (void)arg;
    for (long i = 0; i < iters; i++)
        if (sm_audit() != SM_OK)
            die("audit", SM_E_SYS);
}

/* n secrets made and purged, a thousand at a time (so a thousand live at most). */
static void churn_purged(long n)
{
    static sm_secret batch[1000];
    uint8_t src[LEN];

    for (long done = 0; done < n; done += 1000) {
        for (int i = 0; i < 1000; i++) {
            sm_status st;

            memset(src, 9, sizeof src);
            if ((st = sm_secret_new(sm_factory_protected(), src, LEN, &batch[i])) != SM_OK)
                die("a purged secret", st);
        }
        sm_purge();
    }
}

/* ---- libsodium ---- */

/* arg non-NULL: also take the bytes to PROT_NONE, where a secret rests between uses. */
static void na_alloc_free(void *arg, long iters)
{
    for (long i = 0; i < iters; i++) {
        uint8_t *p = sodium_malloc(LEN);

        if (p == NULL) {
            fprintf(stderr, "bench: sodium_malloc failed\n");
            exit(1);
        }
        memset(p, (int)i, LEN);
        if (arg != NULL)
            sodium_mprotect_noaccess(p);
        sodium_free(p);
    }
}

static void na_scoped_read(void *arg, long iters)
{
    uint8_t *p = arg;

    for (long i = 0; i < iters; i++) {
        uint8_t acc = 0;

        sodium_mprotect_readonly(p);
        for (size_t k = 0; k < LEN; k++)
            acc ^= p[k];
        sink = acc;
        sodium_mprotect_noaccess(p);
    }
}

/* ---- OpenSSL's secure heap: one locked arena, initialised once (main) ---- */

static void os_alloc_free(void *arg, long iters)
{
    (void)arg;
    for (long i = 0; i < iters; i++) {
        uint8_t *p = CRYPTO_secure_malloc(LEN, __FILE__, __LINE__);

        if (p == NULL) {
            fprintf(stderr, "bench: CRYPTO_secure_malloc failed\n");
            exit(1);
        }
        memset(p, (int)i, LEN);
        CRYPTO_secure_free(p, __FILE__, __LINE__);
    }
}

int main(int argc, char **argv)
{
    static sm_secret live[LIVE];
    static void *sl[LIVE];
    const struct { const char *name; const sm_factory *f; } fs[] = {
        { "protected", sm_factory_protected() },
        { "guarded", sm_factory_guarded() },
    };
    uint8_t *sp, src[LEN];
    long n_alloc = 20000, n_read = 200000, n_nested = 2000000, n_walk = 200;
    sm_secret rs[2];
    nested nx[2];
    job walks[3][2];
    const char *json = argc > 2 ? argv[2] : "results.json";
    bool crypto_only = argc > 3 && strcmp(argv[3], "crypto") == 0;
    char title[256];

    if (argc > 1)
        rounds = atoi(argv[1]);
    if (rounds < 1 || rounds > 32 || (argc > 3 && !crypto_only) || sodium_init() < 0 ||
        sm_init(NULL) != SM_OK) {
        fprintf(stderr, "usage: bench [rounds 1..32 [results.json [crypto]]]\n");
        return 2;
    }
    if (crypto_only) {
        bench_crypto(rounds);
        snprintf(title, sizeof title, "make bench BENCH_ONLY=crypto: enclaves and streams "
                 "against the raw BearSSL pass, median of %d interleaved rounds", rounds);
        (void)report_end(title, json);
        return 0;
    }
    /* An arena of 1 MiB in 16-byte units, locked (mlock) and between guard pages. */
    if (CRYPTO_secure_malloc_init(1u << 20, 16) != 1) {
        fprintf(stderr, "bench: CRYPTO_secure_malloc_init failed\n");
        return 1;
    }
    walks[0][0] = (job){ sm_purge_empty, NULL, 0 };
    walks[0][1] = (job){ sm_audit_empty, NULL, 0 };
    memcpy(walks[1], walks[0], sizeof walks[0]);
    memcpy(walks[2], walks[0], sizeof walks[0]);
    measure(walks[0], 2, n_walk);
    sp = sodium_malloc(LEN);
    if (sp == NULL)
        return 1;
    memset(sp, 7, LEN);
    sodium_mprotect_noaccess(sp);
    for (int k = 0; k < 2; k++) {
        memset(src, 3, sizeof src);
        if (sm_secret_new(fs[k].f, src, LEN, &rs[k]) != SM_OK)
            die("new", SM_E_SYS);
        memset(src, 3, sizeof src);
        if (sm_secret_new(fs[k].f, src, LEN, &nx[k].s) != SM_OK)
            die("new", SM_E_SYS);
    }

    {
        job af[6] = {
            { na_alloc_free, NULL, 0 },
            { na_alloc_free, sp, 0 },
            { sm_alloc_free, (void *)(uintptr_t)fs[0].f, 0 },
            { sm_alloc_free, (void *)(uintptr_t)fs[1].f, 0 },
            { sm_alloc_free, (void *)(uintptr_t)sm_factory_compact(), 0 },
            { os_alloc_free, NULL, 0 },
        };
        job rd[3] = {
            { na_scoped_read, sp, 0 },
            { sm_scoped_read, &rs[0], 0 },
            { sm_scoped_read, &rs[1], 0 },
        };
        job ns[2] = { { sm_nested_read, &nx[0], 0 }, { sm_nested_read, &nx[1], 0 } };
        job lv[3] = {
            { na_alloc_free, NULL, 0 },
            { sm_alloc_free, (void *)(uintptr_t)fs[0].f, 0 },
            { sm_alloc_free, (void *)(uintptr_t)fs[1].f, 0 },
        };
        job after[3];

        measure(af, 6, n_alloc);
        report_row("alloc+free, protected", af[2].result, "ns", NA, af[0].result, "<=", 0.6);
        report_row("alloc+free, guarded", af[3].result, "ns", NA, af[0].result, "<=", 0.5);
        /* spec/compact.md: 4 mprotect and new's query per alloc+free; 0.02x needs none. */
        report_row("alloc+free, compact", af[4].result, "ns", NA, af[0].result, "<=", 0.02);
        report_row("alloc+free, compact, dense peer", af[4].result, "ns", OS, af[5].result, "<=", 1.0);
        /* For reference: libsodium with its bytes PROT_NONE at rest, like a secret's. */
        report_row("alloc+free, guarded, PROT_NONE peer", af[3].result, "ns", NA " +noaccess", af[1].result,
                   NULL, 0);
        measure(rd, 3, n_read);
        report_row("scoped read, protected", rd[1].result, "ns", NA, rd[0].result, "<=", 1.0);
        report_row("scoped read, guarded", rd[2].result, "ns", NA, rd[0].result, "<=", 1.0);
        measure(ns, 2, n_nested);
        report_row("nested read, protected", ns[0].result, "ns", NULL, 0, "<=", 50);
        report_row("nested read, guarded", ns[1].result, "ns", NULL, 0, "<=", 50);

        /* 10,000 other secrets live, half of each factory; as many sodium allocations. */
        for (int i = 0; i < LIVE; i++) {
            sm_status st;

            memset(src, 5, sizeof src);
            if ((st = sm_secret_new(fs[i % 2].f, src, LEN, &live[i])) != SM_OK)
                die("a live secret", st);
            if ((sl[i] = sodium_malloc(LEN)) == NULL)
                return 1;
        }
        measure(lv, 3, n_alloc);
        for (int i = 0; i < LIVE; i++) {
            (void)!sm_secret_close(live[i]);
            sodium_free(sl[i]);
        }
        /* The baseline again, now: the flat ratio compares against both baselines. */
        memcpy(after, lv, sizeof after);
        measure(after, 3, n_alloc);
        report_row("alloc+free, protected, 10000 live", lv[1].result, "ns", NA " 10000 live",
                   lv[0].result, "<=", 0.6);
        report_row("alloc+free, guarded, 10000 live", lv[2].result, "ns", NA " 10000 live",
                   lv[0].result, "<=", 0.5);
        /* Flat: against the same with none live, before and after (the mean of both). */
        report_row("flat: protected, 10000 live / 0 live", lv[1].result, "ns",
                   "securemem, 0 live", (af[2].result + after[1].result) / 2, "<=", 1.1);
        report_row("flat: guarded, 10000 live / 0 live", lv[2].result, "ns",
                   "securemem, 0 live", (af[3].result + after[2].result) / 2, "<=", 1.1);

        /*
         * Issue 14 §3: 100,000 compact secrets live (4 MB locked). Not the region factories:
         * each region is at least one mapping, and vm.max_map_count (65,530) refuses
         * 100,000 of them (the hostile suite's map_count_exhausted).
         */
        {
            static sm_secret many[COMPACT_LIVE];
            job cl[2] = {
                { na_alloc_free, NULL, 0 },
                { sm_alloc_free, (void *)(uintptr_t)sm_factory_compact(), 0 },
            };

            for (int i = 0; i < COMPACT_LIVE; i++) {
                sm_status st;

                memset(src, 6, sizeof src);
                if ((st = sm_secret_new(sm_factory_compact(), src, LEN, &many[i])) != SM_OK)
                    die("a live compact secret", st);
            }
            job none = cl[1];

            measure(cl, 2, n_alloc);
            for (int i = 0; i < COMPACT_LIVE; i++)
                (void)!sm_secret_close(many[i]);
            measure(&none, 1, n_alloc); /* the baseline again, now, as for the 10,000 */
            report_row("alloc+free, compact, 100000 live", cl[1].result, "ns",
                       NA, cl[0].result, "<=", 0.02);
            report_row("flat: compact, 100000 live / 0 live", cl[1].result, "ns",
                       "securemem, 0 live", (af[4].result + none.result) / 2, "<=", 1.1);
        }
    }
    for (int k = 0; k < 2; k++) {
        (void)!sm_secret_close(rs[k]);
        (void)!sm_secret_close(nx[k].s);
    }
    sodium_free(sp);

    measure(walks[1], 2, n_walk);
    churn_purged(100000);
    measure(walks[2], 2, n_walk);
    /* For reference: the walks with nothing live, once 100,000 more came and went. */
    report_row("sm_purge, 0 live, 110000 gone", walks[2][0].result, "ns", "securemem, fresh",
               walks[0][0].result, NULL, 0);
    report_row("sm_audit, 0 live, 110000 gone", walks[2][1].result, "ns", "securemem, fresh",
               walks[0][1].result, NULL, 0);

    bench_crypto(rounds);
    bench_contention(rounds);
    snprintf(title, sizeof title, "make bench: securemem and its peers in the same run (libsodium "
             "%s, %s, BearSSL), median of %d interleaved rounds", sodium_version_string(),
             OpenSSL_version(OPENSSL_VERSION), rounds);
    /* The figures are reported, never judged here: exit 0 whatever they are. */
    (void)report_end(title, json);
    return 0;
}
