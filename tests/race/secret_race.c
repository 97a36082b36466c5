/* SPDX-License-Identifier: ISC */
/*
 * The secret race suite (SM-REQ-097): a plain main, because a Criterion binary does not
 * start under ThreadSanitizer, and because Helgrind should see only the library and this
 * harness. Written against <securemem.h> and the example custom factory only.
 *
 *     secret_race [ops_per_thread [threads]]        (defaults: 100000, 8)
 *
 * Every thread runs a random mix of new, random, with_bytes (a quarter of them with a
 * nested access inside), read_at, try_with_bytes, size, is_closed and close on secrets
 * of every factory (the compact one too), published in a small shared table. Thread 0
 * is mostly a closer: it keeps replacing and closing secrets that the others are
 * reading. The rules:
 *  - with_bytes and read_at give the exact bytes or SM_E_STATE, nothing else;
 *  - try_with_bytes gives the exact bytes, SM_E_STATE or SM_E_BUSY;
 *  - the thread that takes a secret out of the table closes it with SM_OK;
 *  - no thread stops making progress for SECRET_RACE_STALL seconds (default 120): a
 *    watchdog reports a deadlock;
 *  - at the end, after every secret is closed, secrets_live is 0 and bytes_locked and
 *    bytes_unlocked are back where they started: no leak.
 * Exit status 0 when all hold.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "factories.h"

/*
 * The table publishes records through C11 atomics, whose ordering Helgrind does not
 * model: tell it about the hand-over explicitly. Outside Valgrind these are no-ops.
 */
#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#endif
#endif
#ifndef ANNOTATE_HAPPENS_BEFORE
#define ANNOTATE_HAPPENS_BEFORE(obj) ((void)(obj))
#define ANNOTATE_HAPPENS_AFTER(obj) ((void)(obj))
#endif


/* Few slots and callbacks that sometimes yield: accesses to one secret overlap often. */
#define SLOTS 8
#define MAXLEN 200

typedef struct record {
    sm_secret s;
    size_t    len;
    uint8_t   bytes[MAXLEN];
} record;

/*
 * A compact size class keeps one empty slab, its used pages still locked (spec/compact.md,
 * hysteresis). Fill one slab of each class that the suite's lengths (1..MAXLEN) reach and
 * close it all before measuring: the race's few live secrets then fit in that slab, which
 * is what each class keeps at the end, with the same pages locked.
 */
static bool compact_warm(void)
{
    static sm_secret s[16 * 4096 / 24];

    for (size_t size = 16; size / 2 < MAXLEN; size *= 2) {
        size_t n = 16 * 4096 / (size + 8);

        for (size_t i = 0; i < n; i++)
            if (sm_secret_random(sm_factory_compact(), size, &s[i]) != SM_OK)
                return false;
        for (size_t i = 0; i < n; i++)
            if (sm_secret_close(s[i]) != SM_OK)
                return false;
    }
    return true;
}

/*
 * The guarded factory keeps up to 8 closed one-page regions locked in its pool
 * (spec/layout.md, "The pool"). Fill it before measuring: every region the race takes
 * from it goes back at its close, so it ends full, with the same pages locked.
 */
static bool pool_warm(void)
{
    sm_secret s[8];

    for (size_t i = 0; i < 8; i++)
        if (sm_secret_random(sm_factory_guarded(), MAXLEN, &s[i]) != SM_OK)
            return false;
    for (size_t i = 0; i < 8; i++)
        if (sm_secret_close(s[i]) != SM_OK)
            return false;
    return true;
}

static record *records;
static size_t record_cap;
static atomic_size_t record_used;
static _Atomic size_t table[SLOTS]; /* record index + 1, or 0 */

static atomic_ulong progress, failures, n_ok, n_state, n_busy, n_created, n_closed, n_full;

static void fail(const char *what, sm_status st)
{
    if (atomic_fetch_add(&failures, 1) < 20)
        fprintf(stderr, "secret_race: %s: %s\n", what, sm_status_str(st));
}

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* ---- callbacks ---- */

static sm_status exact_fn(const uint8_t *b, size_t n, void *ctx)
{
    const record *r = ctx;

    if ((b[0] & 3) == 0)
        sched_yield();
    return n == r->len && memcmp(b, r->bytes, n) == 0 ? SM_OK : SM_E_AUTH;
}

/* A nested access on the same secret: the same bytes, or refused once close began. */
static sm_status nested_fn(const uint8_t *b, size_t n, void *ctx)
{
    const record *r = ctx;
    sm_status st;

    if (exact_fn(b, n, ctx) != SM_OK)
        return SM_E_AUTH;
    st = sm_secret_with_bytes(r->s, exact_fn, ctx);
    if (st != SM_OK && st != SM_E_STATE)
        return st;
    return exact_fn(b, n, ctx); /* and the outer window is still right */
}

static sm_status copy_fn(const uint8_t *b, size_t n, void *ctx)
{
    record *r = ctx;

    memcpy(r->bytes, b, n);
    return SM_OK;
}

/* ---- the operations ---- */

static void count(sm_status st)
{
    if (st == SM_OK)
        atomic_fetch_add(&n_ok, 1);
    else if (st == SM_E_STATE)
        atomic_fetch_add(&n_state, 1);
    else if (st == SM_E_BUSY)
        atomic_fetch_add(&n_busy, 1);
}

/* A record taken from, or found in, the table: everything its publisher wrote is visible. */
static record *received(size_t v)
{
    if (v == 0)
        return NULL;
    ANNOTATE_HAPPENS_AFTER(&records[v - 1]);
    return &records[v - 1];
}

static record *pick(uint64_t *rng)
{
    return received(atomic_load(&table[next_rand(rng) % SLOTS]));
}

static void close_record(record *r, const char *why)
{
    sm_status st = sm_secret_close(r->s);

    if (st != SM_OK)
        fail(why, st);
    atomic_fetch_add(&n_closed, 1);
}

/* Make a secret, record its bytes, publish it, and close whatever it displaced. */
static void create(uint64_t *rng, bool random)
{
    size_t i = atomic_fetch_add(&record_used, 1);
    record *r;
    sm_status st;
    size_t old;

    if (i >= record_cap) {
        atomic_fetch_add(&n_full, 1);
        return;
    }
    r = &records[i];
    r->len = 1 + next_rand(rng) % MAXLEN;
    if (random) {
        st = sm_secret_random(factory((unsigned)next_rand(rng)), r->len, &r->s);
        if (st == SM_OK && (st = sm_secret_with_bytes(r->s, copy_fn, r)) != SM_OK)
            fail("reading a new random secret", st);
    } else {
        uint8_t src[MAXLEN];

        for (size_t k = 0; k < r->len; k++)
            r->bytes[k] = src[k] = (uint8_t)next_rand(rng);
        st = sm_secret_new(factory((unsigned)next_rand(rng)), src, r->len, &r->s);
    }
    if (st != SM_OK) {
        fail("new/random", st);
        return;
    }
    atomic_fetch_add(&n_created, 1);
    ANNOTATE_HAPPENS_BEFORE(r);
    old = atomic_exchange(&table[next_rand(rng) % SLOTS], i + 1);
    if (old != 0)
        close_record(received(old), "closing a displaced secret");
}

static void one_op(uint64_t *rng, bool closer)
{
    unsigned r = (unsigned)(next_rand(rng) % 100);
    record *rec;
    sm_status st;

    if (closer && r < 70) {
        /* The closer: replace and close secrets while the others read them. */
        create(rng, r < 10);
        return;
    }
    if (r < 12) {
        create(rng, false);
        return;
    }
    if (r < 20) {
        create(rng, true);
        return;
    }
    if (r < 25) {
        size_t v = atomic_exchange(&table[next_rand(rng) % SLOTS], 0);

        if (v != 0)
            close_record(received(v), "closing a secret taken from the table");
        return;
    }
    rec = pick(rng);
    if (rec == NULL)
        return;
    if (r < 55) {
        st = sm_secret_with_bytes(rec->s, r < 33 ? nested_fn : exact_fn, rec);
        count(st);
        if (st != SM_OK && st != SM_E_STATE)
            fail("with_bytes", st);
    } else if (r < 80) {
        uint8_t buf[MAXLEN + 8];
        size_t off = next_rand(rng) % (rec->len + 1), n = next_rand(rng) % (MAXLEN + 8), got = 0;

        st = sm_secret_read_at(rec->s, off, buf, n, &got);
        count(st);
        if (st == SM_OK) {
            size_t want = n < rec->len - off ? n : rec->len - off;

            if (got != want || memcmp(buf, rec->bytes + off, got) != 0)
                fail("read_at gave wrong bytes", SM_E_AUTH);
        } else if (st != SM_E_STATE) {
            fail("read_at", st);
        }
    } else if (r < 90) {
        st = sm_secret_try_with_bytes(rec->s, exact_fn, rec);
        count(st);
        if (st != SM_OK && st != SM_E_STATE && st != SM_E_BUSY)
            fail("try_with_bytes", st);
    } else {
        size_t n = sm_secret_size(rec->s);

        if (n != 0 && n != rec->len)
            fail("size", SM_E_INVAL);
        if (n != 0 && sm_secret_is_closed(rec->s) && sm_secret_size(rec->s) != 0)
            fail("is_closed while size says open", SM_E_INVAL);
    }
}

typedef struct worker {
    pthread_t     t;
    unsigned      index;
    unsigned long ops;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (w->index + 1);

    for (unsigned long i = 0; i < w->ops; i++) {
        one_op(&rng, w->index == 0);
        atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    }
    return NULL;
}

/* ---- the watchdog ---- */

static atomic_bool finished;

static void *watchdog(void *arg)
{
    long stall = *(long *)arg, still = 0;
    unsigned long last = 0;

    while (!atomic_load(&finished)) {
        unsigned long now;

        sleep(1);
        now = atomic_load(&progress);
        still = now == last ? still + 1 : 0;
        last = now;
        if (still >= stall) {
            fprintf(stderr, "secret_race: no progress for %ld s after %lu operations: "
                            "deadlock\n", stall, now);
            _exit(3);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long ops = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    unsigned threads = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 8;
    long stall = getenv("SECRET_RACE_STALL") ? atol(getenv("SECRET_RACE_STALL")) : 120;
    worker *w;
    pthread_t dog;
    sm_stats before, after;
    sm_enclave warm;
    struct timespec t0, t1;
    int bad = 0;

    if (threads == 0 || ops == 0 || stall <= 0) {
        fprintf(stderr, "usage: secret_race [ops_per_thread [threads]]\n");
        return 2;
    }
    /* The enclave key is made at the first seal and kept: make it before measuring. */
    if (sm_init(NULL) != SM_OK || !compact_warm() || !pool_warm() ||
        sm_enclave_random(1, &warm) != SM_OK ||
        sm_enclave_destroy(warm) != SM_OK || sm_stats_get(&before) != SM_OK) {
        fprintf(stderr, "secret_race: cannot initialise\n");
        return 2;
    }
    /* Creations are about a quarter of the operations, the closer's 70%: room for all. */
    record_cap = (size_t)ops * threads / 2 + (size_t)ops + SLOTS;
    records = calloc(record_cap, sizeof *records);
    w = calloc(threads, sizeof *w);
    if (records == NULL || w == NULL) {
        fprintf(stderr, "secret_race: out of memory\n");
        return 2;
    }
    pthread_create(&dog, NULL, watchdog, &stall);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < threads; i++) {
        w[i].index = i;
        w[i].ops = ops;
        pthread_create(&w[i].t, NULL, work, &w[i]);
    }
    for (unsigned i = 0; i < threads; i++)
        pthread_join(w[i].t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_store(&finished, true);
    pthread_join(dog, NULL);
    for (size_t i = 0; i < SLOTS; i++) {
        size_t v = atomic_exchange(&table[i], 0);

        if (v != 0)
            close_record(received(v), "closing at the end");
    }
    if (sm_stats_get(&after) != SM_OK) {
        fprintf(stderr, "secret_race: stats\n");
        return 1;
    }
    if (after.secrets_live != before.secrets_live || after.bytes_locked != before.bytes_locked ||
        after.bytes_unlocked != before.bytes_unlocked) {
        fprintf(stderr, "secret_race: leak: secrets_live %llu -> %llu, bytes_locked %llu -> %llu\n",
                (unsigned long long)before.secrets_live, (unsigned long long)after.secrets_live,
                (unsigned long long)before.bytes_locked, (unsigned long long)after.bytes_locked);
        bad = 1;
    }
    if (atomic_load(&n_created) != atomic_load(&n_closed)) {
        fprintf(stderr, "secret_race: %lu created, %lu closed\n", atomic_load(&n_created),
                atomic_load(&n_closed));
        bad = 1;
    }
    printf("secret_race: %u threads x %lu ops in %.2f s: %lu created and closed, accesses "
           "%lu ok, %lu SM_E_STATE, %lu SM_E_BUSY; %lu failures%s\n",
           threads, ops, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           atomic_load(&n_created), atomic_load(&n_ok), atomic_load(&n_state), atomic_load(&n_busy),
           atomic_load(&failures), atomic_load(&n_full) ? " (record table full: fewer creations)" : "");
    free(records);
    free(w);
    return bad || atomic_load(&failures) != 0;
}
