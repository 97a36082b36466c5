/* SPDX-License-Identifier: ISC */
/*
 * make bench, contention (issue 14 §5): scoped reads (sm_secret_with_bytes of a 32-byte
 * secret) per second, by one thread, and by two threads at once, either reading the same
 * secret or each its own. The peer is securemem itself with one thread, in the same run.
 * The threads start together on a barrier and run for a fixed time; each figure is the
 * median of the rounds.
 *
 * What limits the figures (spec/secrets.md, "Two threads, and what one read costs"):
 *  - one secret: the second reader joins the open window without a system call (JOIN in
 *    spec/secret-states.tsv), so once the two overlap the window stays open and their
 *    reads make no system call at all; the figure is far above 1.7x;
 *  - two secrets: each read opens and shuts its own window, 2 mprotect calls, and the
 *    kernel serialises every mprotect of one process on its mmap lock, and shoots down
 *    the other CPU's TLB entries each time. That ceiling is measured here too, in the
 *    same rounds: the same 2 mprotect calls around the same read, on two single pages of
 *    their own (locked, PROT_NONE at rest, an unmapped page between them so that the
 *    kernel never merges them), by one thread and by two. Two threads barely beat one
 *    there, so the 1.7x goal is out of reach of any design that changes the protection
 *    per access; the row "of the kernel's" shows how close securemem comes to it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <securemem.h>

#include "report.h"

#define SPAN_NS 200e6 /* each timed run */

static size_t page_len; /* of the kernel's pages (bare_pages) */

/*
 * One per thread, a cache line each: the threads share nothing but the secret. page
 * non-NULL: the kernel's ceiling, the bare mprotect pair on that page instead.
 */
typedef struct worker {
    _Alignas(64) sm_secret s;
    uint8_t           *page;
    pthread_barrier_t *go;
    double             ops_per_s;
    uint8_t            sink;
} worker;

/* Reads the 32 bytes into the worker's own sink, not a global one both threads write. */
static sm_status read_fn(const uint8_t *b, size_t n, void *ctx)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++)
        acc ^= b[i];
    ((volatile worker *)ctx)->sink = acc;
    return SM_OK;
}

/* One read: the scoped read, or the kernel's part of it (open, the same read, shut). */
static bool one_read(worker *w)
{
    if (w->page == NULL)
        return sm_secret_with_bytes(w->s, read_fn, w) == SM_OK;
    if (mprotect(w->page, page_len, PROT_READ) != 0)
        return false;
    (void)read_fn(w->page, 32, w);
    return mprotect(w->page, page_len, PROT_NONE) == 0;
}

static void *work(void *arg)
{
    worker *w = arg;
    double t0, t;
    long n = 0;

    pthread_barrier_wait(w->go);
    t0 = bench_now_ns();
    do {
        for (int i = 0; i < 64; i++)
            if (!one_read(w)) {
                fprintf(stderr, "bench: a read failed\n");
                exit(1);
            }
        n += 64;
        t = bench_now_ns();
    } while (t - t0 < SPAN_NS);
    w->ops_per_s = (double)n * 1e9 / (t - t0);
    return NULL;
}

/*
 * Reads per second of n threads (1 or 2), thread i reading s[i] (or, with pages, making
 * the bare mprotect pair on pages[i]); the sum over them.
 */
static double run(int n, const sm_secret *s, uint8_t *const *pages)
{
    pthread_barrier_t go;
    pthread_t th[2];
    worker w[2];
    double total = 0;

    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        w[i] = (worker){ s != NULL ? s[i] : (sm_secret){ 0 }, pages != NULL ? pages[i] : NULL,
                         &go, 0, 0 };
        if (pthread_create(&th[i], NULL, work, &w[i]) != 0) {
            fprintf(stderr, "bench: pthread_create failed\n");
            exit(1);
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += w[i].ops_per_s;
    }
    pthread_barrier_destroy(&go);
    return total;
}

/*
 * Two pages of their own for the kernel's ceiling, as a protected secret's: locked,
 * PROT_NONE at rest, and apart (the page between them unmapped) so that they stay two
 * mappings, whatever their flags.
 */
static void bare_pages(uint8_t *pages[2])
{
    size_t pg = page_len = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *m = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (m == MAP_FAILED || munmap(m + pg, pg) != 0) {
        fprintf(stderr, "bench: the kernel's pages could not be mapped\n");
        exit(1);
    }
    pages[0] = m;
    pages[1] = m + 2 * pg;
    for (int i = 0; i < 2; i++) {
        memset(pages[i], 0x42, 32);
        if (mlock(pages[i], pg) != 0 || mprotect(pages[i], pg, PROT_NONE) != 0) {
            fprintf(stderr, "bench: the kernel's pages could not be locked and shut\n");
            exit(1);
        }
    }
}

/*
 * label_kernel non-NULL: also the kernel's ceiling, in the same rounds, and the two
 * secrets' figure against it under that label.
 */
static void one_factory(int rounds, const char *label_one, const char *label_two,
                        const char *label_kernel, const sm_factory *f)
{
    bool with_kernel = label_kernel != NULL;
    double one[32], same[32], two[32], bare_one[32], bare_two[32];
    uint8_t *pages[2] = { NULL, NULL };
    sm_secret s[2];
    uint8_t src[32];

    for (int i = 0; i < 2; i++) {
        memset(src, 0x42, sizeof src);
        if (sm_secret_new(f, src, sizeof src, &s[i]) != SM_OK) {
            fprintf(stderr, "bench: sm_secret_new failed\n");
            exit(1);
        }
    }
    if (with_kernel)
        bare_pages(pages);
    for (int k = 0; k < rounds; k++) {
        sm_secret both_same[2] = { s[0], s[0] };

        one[k] = run(1, s, NULL);
        same[k] = run(2, both_same, NULL);
        two[k] = run(2, s, NULL);
        if (with_kernel) {
            bare_one[k] = run(1, NULL, pages);
            bare_two[k] = run(2, NULL, pages);
        }
    }
    {
        double base = bench_median(one, rounds);

        report_row(label_one, bench_median(same, rounds), "ops/s", "securemem, 1 thread", base,
                   ">=", 1.7);
        report_row(label_two, bench_median(two, rounds), "ops/s", "securemem, 1 thread", base,
                   ">=", 1.7);
        if (with_kernel) {
            double kernel_two = bench_median(bare_two, rounds);

            /* For reference: how far the kernel itself lets two threads go, and how close
               securemem comes to that. */
            report_row("kernel: 2 threads, 2 pages", kernel_two, "ops/s",
                       "mprotect pairs, 1 thread", bench_median(bare_one, rounds), NULL, 0);
            report_row(label_kernel, bench_median(two, rounds), "ops/s",
                       "mprotect pairs, 2 threads", kernel_two, NULL, 0);
        }
    }
    for (int i = 0; i < 2; i++)
        (void)!sm_secret_close(s[i]);
    if (with_kernel) {
        (void)munmap(pages[0], page_len);
        (void)munmap(pages[1], page_len);
    }
}

void bench_contention(int rounds)
{
    one_factory(rounds, "2 threads read 1 secret, protected", "2 threads read 2 secrets, protected",
                "2 threads 2 secrets, of the kernel's", sm_factory_protected());
    one_factory(rounds, "2 threads read 1 secret, compact", "2 threads read 2 secrets, compact",
                NULL, sm_factory_compact());
    /* Each window it opens is a view of the enclave key, under the coffer's one lock. */
    one_factory(rounds, "2 threads read 1 secret, encrypted", "2 threads read 2 secrets, encrypted",
                NULL, sm_factory_encrypted());
}
