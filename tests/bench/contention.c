/* SPDX-License-Identifier: ISC */
/*
 * make bench, contention (issue 14 §5): scoped reads (sm_secret_with_bytes of a 32-byte
 * secret) per second, by one thread, and by two threads at once, either reading the same
 * secret or each its own. The peer is securemem itself with one thread, in the same run:
 * on two cores, reads that share no lock scale to nearly twice that. The threads start
 * together on a barrier and run for a fixed time; each figure is the median of the rounds.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <securemem.h>

#include "report.h"

#define SPAN_NS 200e6 /* each timed run */

/* One per thread, a cache line each: the threads share nothing but the secret. */
typedef struct worker {
    _Alignas(64) sm_secret s;
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

static void *work(void *arg)
{
    worker *w = arg;
    double t0, t;
    long n = 0;

    pthread_barrier_wait(w->go);
    t0 = bench_now_ns();
    do {
        for (int i = 0; i < 64; i++)
            if (sm_secret_with_bytes(w->s, read_fn, w) != SM_OK) {
                fprintf(stderr, "bench: with_bytes failed\n");
                exit(1);
            }
        n += 64;
        t = bench_now_ns();
    } while (t - t0 < SPAN_NS);
    w->ops_per_s = (double)n * 1e9 / (t - t0);
    return NULL;
}

/* Reads per second of n threads (1 or 2), thread i reading s[i]; the sum over them. */
static double run(int n, const sm_secret *s)
{
    pthread_barrier_t go;
    pthread_t th[2];
    worker w[2];
    double total = 0;

    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        w[i] = (worker){ s[i], &go, 0, 0 };
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

static void one_factory(int rounds, const char *label_one, const char *label_two,
                        const sm_factory *f)
{
    double one[32], same[32], two[32];
    sm_secret s[2];
    uint8_t src[32];

    for (int i = 0; i < 2; i++) {
        memset(src, 0x42, sizeof src);
        if (sm_secret_new(f, src, sizeof src, &s[i]) != SM_OK) {
            fprintf(stderr, "bench: sm_secret_new failed\n");
            exit(1);
        }
    }
    for (int k = 0; k < rounds; k++) {
        sm_secret both_same[2] = { s[0], s[0] };

        one[k] = run(1, s);
        same[k] = run(2, both_same);
        two[k] = run(2, s);
    }
    {
        double base = bench_median(one, rounds);

        report_row(label_one, bench_median(same, rounds), "ops/s", "securemem, 1 thread", base,
                   ">=", 1.7);
        report_row(label_two, bench_median(two, rounds), "ops/s", "securemem, 1 thread", base,
                   ">=", 1.7);
    }
    for (int i = 0; i < 2; i++)
        (void)!sm_secret_close(s[i]);
}

void bench_contention(int rounds)
{
    one_factory(rounds, "2 threads read 1 secret, protected", "2 threads read 2 secrets, protected",
                sm_factory_protected());
    one_factory(rounds, "2 threads read 1 secret, compact", "2 threads read 2 secrets, compact",
                sm_factory_compact());
    /* Each window it opens is a view of the enclave key, under the coffer's one lock. */
    one_factory(rounds, "2 threads read 1 secret, encrypted", "2 threads read 2 secrets, encrypted",
                sm_factory_encrypted());
}
