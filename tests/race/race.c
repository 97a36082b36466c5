/* SPDX-License-Identifier: ISC */
/*
 * The race suite (SM-REQ-110, 111, 114), and `make stress` at full size.
 *
 *     race [--threads N] [--ops N] [--purges N] [test ...]
 *
 * Plain main, no Criterion: it runs under ThreadSanitizer (built with clang and with
 * gcc), Helgrind and DRD, which are the point of it, and natively for `make stress`.
 *
 * Threads share small pools of buffers, enclaves, streams and secrets (of every
 * factory), whose handles sit in atomics, and every thread works on every pool: checks,
 * state changes, writes, reads, accesses, seals, destroys, closes and replacements race
 * each other. Each object's contents say what
 * they must be (a record: key, length, then bytes derived from the key), so every
 * result is checked exactly: a call on an object gives its exact bytes, or SM_E_STATE
 * because another thread destroyed it first, and nothing else. At the end the threads
 * keep going while the main thread purges (the racing phase); then every handle is
 * stale, and after the pools are drained nothing is left live, locked or counted.
 *
 * The statuses allowed only while a purge races (a call that saw the key vanish
 * between taking its handle and using it) are listed in allowed().
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <securemem.h>
#include "../common/harness.h"
#include "factories.h"

static unsigned nthreads = 4;
static unsigned long nops = 2000;
static unsigned npurges = 3;

/* ---- self-describing records ---------------------------------------------------- */

#define REC_MIN 16u
#define STREAM_REC 64u

/* key (8 bytes, little endian), length (8), then a keystream of the key. */
static void record_fill(uint8_t *p, size_t len, uint64_t key)
{
    uint64_t s = key ^ 0x9E3779B97F4A7C15ull;

    if (s == 0)
        s = 1;
    for (unsigned i = 0; i < 8; i++) {
        p[i] = (uint8_t)(key >> (8 * i));
        p[8 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    for (size_t i = REC_MIN; i < len; i++)
        p[i] = (uint8_t)(hx_rand(&s) >> 56);
}

static bool record_ok(const uint8_t *p, size_t len)
{
    uint8_t want[512];
    uint64_t key = 0;

    if (len < REC_MIN || len > sizeof want)
        return false;
    for (unsigned i = 0; i < 8; i++)
        key |= (uint64_t)p[i] << (8 * i);
    record_fill(want, len, key);
    return memcmp(want, p, len) == 0;
}

/* ---- phases and allowed results --------------------------------------------------- */

/* Set before the first purge of the racing phase, cleared never. */
static atomic_bool racing;
/*
 * Threads reading a private buffer's bytes through sm_buffer_data. A purge unmaps such
 * a buffer, so reads happen only before the racing phase: a reader announces itself,
 * then checks racing; the main thread sets racing, then waits for the readers to leave
 * before its first purge. (Both sides are seq_cst, so one always sees the other.)
 */
static atomic_uint readers;

static bool begin_read(void)
{
    atomic_fetch_add(&readers, 1);
    if (!atomic_load(&racing))
        return true;
    atomic_fetch_sub(&readers, 1);
    return false;
}

static void end_read(void)
{
    atomic_fetch_sub(&readers, 1);
}
static atomic_bool stop;
static atomic_uint finished_main;
static atomic_ulong ops_done;

enum use { PLAIN, COFFER, CREATE };

/*
 * SM_OK (the caller then checks the bytes) or false for SM_E_STATE; anything else
 * fails the test. While purges race: an operation that needs the enclave key may find
 * it gone (SM_E_AUTH when the key vanished before it started, SM_E_STATE when during),
 * and a constructor that seals may give SM_E_STATE.
 */
static bool allowed(sm_status st, enum use use, const char *what)
{
    if (st == SM_OK)
        return true;
    if (st == SM_E_STATE && use != CREATE)
        return false;
    if (atomic_load(&racing) && use != PLAIN && (st == SM_E_STATE || st == SM_E_AUTH))
        return false;
    hx_fail(__FILE__, __LINE__, "%s: %s%s", what, sm_status_str(st),
            atomic_load(&racing) ? " (while purging)" : "");
}

/* ---- pools ------------------------------------------------------------------------ */

#define POOL 8u

static _Atomic uint64_t buf_pool[POOL], enc_pool[POOL], str_pool[POOL];

static size_t buf_len(unsigned slot)
{
    return REC_MIN + 37u * slot;
}

typedef struct worker {
    uint64_t rng;
    unsigned id;
} worker;

static unsigned pick(worker *w, unsigned n)
{
    return (unsigned)(hx_rand(&w->rng) % n);
}

/* Put h into pool[slot]; whatever was there is returned for the caller to destroy. */
static uint64_t pool_swap(_Atomic uint64_t *pool, unsigned slot, uint64_t h)
{
    return atomic_exchange(&pool[slot], h);
}

/* ---- buffers ---------------------------------------------------------------------- */

/* A buffer holding the record of its own id, frozen or not; id 0 if a purge took it. */
static sm_buffer make_buffer(worker *w, size_t len)
{
    uint8_t rec[512];
    sm_buffer b = { 0 };

    if (!allowed(sm_buffer_new(len, &b), CREATE, "sm_buffer_new"))
        return (sm_buffer){ 0 };
    record_fill(rec, len, b.id);
    /* Private until published: only a purge can make it stale meanwhile. */
    if (!allowed(sm_buffer_copy(b, rec, len), PLAIN, "sm_buffer_copy (private)") ||
        (pick(w, 2) && !allowed(sm_buffer_freeze(b), PLAIN, "sm_buffer_freeze (private)"))) {
        HX_CHECK(atomic_load(&racing), "a private buffer went stale with no purge");
        return (sm_buffer){ 0 };
    }
    return b;
}

static void destroy_buffer(sm_buffer b, const char *why)
{
    if (!allowed(sm_buffer_destroy(b), PLAIN, why))
        HX_CHECK(atomic_load(&racing), "%s: an owned buffer went stale with no purge", why);
}

static void enclave_check(worker *w, sm_enclave e);
static void destroy_enclave(sm_enclave e, const char *why);

static void buffer_op(worker *w)
{
    unsigned slot = pick(w, POOL);
    size_t len = buf_len(slot);
    sm_buffer b = { atomic_load(&buf_pool[slot]) };
    uint8_t rec[512];
    bool eq = false;
    size_t n;

    if (b.id == 0) {
        sm_buffer nb = make_buffer(w, len), old = { pool_swap(buf_pool, slot, nb.id) };

        if (old.id != 0)
            destroy_buffer(old, "sm_buffer_destroy (replaced)");
        return;
    }
    record_fill(rec, len, b.id);
    switch (pick(w, 9)) {
    case 0:
    case 1:
        if (allowed(sm_buffer_equal(b, rec, len, &eq), PLAIN, "sm_buffer_equal"))
            HX_CHECK(eq, "buffer %#llx does not hold its record", (unsigned long long)b.id);
        break;
    case 2:
        n = sm_buffer_size(b);
        HX_CHECK(n == len || n == 0, "size %zu, expected %zu or 0", n, len);
        (void)sm_buffer_is_mutable(b);
        (void)sm_buffer_is_alive(b);
        break;
    case 3:
        (void)allowed(sm_buffer_freeze(b), PLAIN, "sm_buffer_freeze");
        break;
    case 4:
        (void)allowed(sm_buffer_melt(b), PLAIN, "sm_buffer_melt");
        break;
    case 5: {
        /* Rewrite a part with the bytes it already holds: MUTABLE gives SM_OK. */
        size_t off = pick(w, (unsigned)len), k = pick(w, (unsigned)(len - off)) + 1;
        sm_status st = sm_buffer_copy_at(b, off, rec + off, k);

        HX_CHECK(st == SM_OK || st == SM_E_STATE, "sm_buffer_copy_at: %s", sm_status_str(st));
        break;
    }
    case 6: {
        /* Out of range writes nothing, whatever the state. */
        sm_status st = sm_buffer_copy_at(b, len, rec, 1);

        HX_CHECK(st == SM_E_INVAL || st == SM_E_STATE, "copy past the end: %s",
                 sm_status_str(st));
        break;
    }
    case 7: {
        /* Replace: take it out of the pool (it is ours now), then destroy it. */
        sm_buffer nb = make_buffer(w, len), old = { pool_swap(buf_pool, slot, nb.id) };

        if (old.id != 0)
            destroy_buffer(old, "sm_buffer_destroy (replaced)");
        break;
    }
    case 8: {
        /* Take it out and seal it; the enclave goes to the enclave pool. */
        sm_buffer nb = make_buffer(w, len), old = { pool_swap(buf_pool, slot, nb.id) };
        sm_enclave e, displaced;

        if (old.id == 0)
            break;
        if (!allowed(sm_buffer_seal(old, &e), COFFER, "sm_buffer_seal")) {
            HX_CHECK(atomic_load(&racing), "sealing an owned buffer: stale with no purge");
            destroy_buffer(old, "sm_buffer_destroy (seal refused)");
            break;
        }
        HX_CHECK(!sm_buffer_is_alive(old), "a sealed buffer stays alive");
        enclave_check(w, e);
        displaced.id = pool_swap(enc_pool, pick(w, POOL), e.id);
        if (displaced.id != 0)
            destroy_enclave(displaced, "sm_enclave_destroy (displaced)");
        break;
    }
    }
}

/* ---- enclaves --------------------------------------------------------------------- */

static void destroy_enclave(sm_enclave e, const char *why)
{
    if (!allowed(sm_enclave_destroy(e), PLAIN, why))
        HX_CHECK(atomic_load(&racing), "%s: an owned enclave went stale with no purge", why);
}

/* Open e and check the record inside, exactly. */
static void enclave_check(worker *w, sm_enclave e)
{
    size_t n = sm_enclave_size(e);
    sm_buffer b;

    if (n == 0)
        return; /* stale already */
    HX_CHECK(n >= REC_MIN && n <= 512, "enclave size %zu", n);
    if (pick(w, 2)) {
        if (!allowed(sm_enclave_open(e, &b), COFFER, "sm_enclave_open"))
            return;
        HX_CHECK(!sm_buffer_is_mutable(b) || atomic_load(&racing), "open gives FROZEN");
    } else {
        sm_status st;

        if (!allowed(sm_buffer_new(n, &b), CREATE, "sm_buffer_new (open_into)"))
            return;
        st = sm_enclave_open_into(e, b);
        if (!allowed(st, COFFER, "sm_enclave_open_into")) {
            destroy_buffer(b, "sm_buffer_destroy (open_into target)");
            return;
        }
    }
    /*
     * A private buffer: reading its bytes races nothing but a purge, which unmaps it.
     * So the bytes are read only before the racing phase; during it, only the status.
     */
    if (sm_buffer_size(b) == n && begin_read()) {
        uint8_t copy[512];
        bool eq = false;

        memcpy(copy, sm_buffer_data(b), n);
        /* Before end_read: once it is left, the first purge may take b. */
        HX_EXPECT(sm_buffer_equal(b, copy, n, &eq), SM_OK);
        end_read();
        HX_CHECK(record_ok(copy, n), "an enclave of %zu bytes opened to the wrong bytes", n);
        HX_CHECK(eq, "the opened bytes changed under a private handle");
    }
    destroy_buffer(b, "sm_buffer_destroy (opened)");
}

static void enclave_op(worker *w)
{
    unsigned slot = pick(w, POOL);
    sm_enclave e = { atomic_load(&enc_pool[slot]) };

    if (e.id != 0 && pick(w, 4) != 0) {
        enclave_check(w, e);
        return;
    }
    /* Replace with a fresh enclave made from a record on the stack (wiped by new). */
    {
        uint8_t rec[512];
        size_t len = REC_MIN + pick(w, 200);
        sm_enclave ne, old;

        record_fill(rec, len, hx_rand(&w->rng));
        if (!allowed(sm_enclave_new(rec, len, &ne), CREATE, "sm_enclave_new"))
            return;
        for (size_t i = 0; i < len; i++)
            HX_CHECK(rec[i] == 0, "sm_enclave_new leaves its source unwiped");
        old.id = pool_swap(enc_pool, slot, ne.id);
        if (old.id != 0)
            destroy_enclave(old, "sm_enclave_destroy (replaced)");
    }
}

/* ---- streams ---------------------------------------------------------------------- */

static void destroy_stream(sm_stream s, const char *why)
{
    if (!allowed(sm_stream_destroy(s), PLAIN, why))
        HX_CHECK(atomic_load(&racing), "%s: an owned stream went stale with no purge", why);
}

static void check_records(const uint8_t *p, size_t n, const char *what)
{
    HX_CHECK(n % STREAM_REC == 0, "%s: %zu bytes, not whole records", what, n);
    for (size_t off = 0; off < n; off += STREAM_REC)
        HX_CHECK(record_ok(p + off, STREAM_REC), "%s: record %zu is wrong", what,
                 off / STREAM_REC);
}

static void stream_op(worker *w)
{
    unsigned slot = pick(w, POOL);
    sm_stream s = { atomic_load(&str_pool[slot]) };
    uint8_t recs[4 * STREAM_REC];
    size_t n, got = 0;
    sm_buffer b;
    sm_status st;

    if (s.id == 0 || pick(w, 50) == 0) {
        sm_stream ns, old;

        if (!allowed(sm_stream_new(&ns), CREATE, "sm_stream_new"))
            return;
        old.id = pool_swap(str_pool, slot, ns.id);
        if (old.id != 0)
            destroy_stream(old, "sm_stream_destroy (replaced)");
        return;
    }
    switch (pick(w, 6)) {
    case 0:
    case 1:
        n = 1 + pick(w, 4);
        for (size_t i = 0; i < n; i++)
            record_fill(recs + i * STREAM_REC, STREAM_REC, hx_rand(&w->rng));
        (void)allowed(sm_stream_write(s, recs, n * STREAM_REC), COFFER, "sm_stream_write");
        break;
    case 2:
        /* Whole records only go in, so whole records come out, in any interleaving. */
        n = (1 + pick(w, 4)) * STREAM_REC;
        st = sm_stream_read(s, recs, n, &got);
        if (st == SM_E_EOF)
            break;
        if (allowed(st, COFFER, "sm_stream_read"))
            check_records(recs, got, "sm_stream_read");
        break;
    case 3:
    case 4:
        st = pick(w, 2) ? sm_stream_next(s, &b) : sm_stream_flush(s, &b);
        if (st == SM_E_EOF || !allowed(st, COFFER, "sm_stream_next/flush"))
            break;
        n = sm_buffer_size(b);
        /* As for enclaves: no direct read while a purge may unmap the buffer. */
        if (n > 0 && begin_read()) {
            uint8_t *copy = malloc(n);

            HX_CHECK(copy != NULL, "malloc");
            memcpy(copy, sm_buffer_data(b), n);
            end_read();
            check_records(copy, n, "sm_stream_next/flush");
            free(copy);
        }
        destroy_buffer(b, "sm_buffer_destroy (from a stream)");
        break;
    case 5:
        n = sm_stream_size(s);
        HX_CHECK(n % STREAM_REC == 0, "stream size %zu", n);
        break;
    }
}

/* ---- private churn: the registry's insert and remove, every constructor --------- */

static void churn_op(worker *w)
{
    uint8_t rec[512], again[512];
    size_t len = REC_MIN + pick(w, 300);
    uint64_t key = hx_rand(&w->rng);
    sm_buffer b, o;
    sm_enclave e;
    sm_stream s;
    bool eq = false;

    record_fill(rec, len, key);
    record_fill(again, len, key);
    switch (pick(w, 4)) {
    case 0:
        if (!allowed(sm_buffer_from_bytes(rec, len, &b), CREATE, "sm_buffer_from_bytes"))
            return;
        if (allowed(sm_buffer_equal(b, again, len, &eq), PLAIN, "sm_buffer_equal (churn)"))
            HX_CHECK(eq, "from_bytes holds other bytes");
        destroy_buffer(b, "sm_buffer_destroy (churn)");
        break;
    case 1:
        if (!allowed(sm_buffer_random(len, &b), CREATE, "sm_buffer_random"))
            return;
        if (allowed(sm_buffer_melt(b), PLAIN, "sm_buffer_melt (churn)")) {
            (void)allowed(sm_buffer_scramble(b), PLAIN, "sm_buffer_scramble");
            if (allowed(sm_buffer_wipe(b), PLAIN, "sm_buffer_wipe")) {
                memset(rec, 0, len);
                if (allowed(sm_buffer_equal(b, rec, len, &eq), PLAIN, "equal (wiped)"))
                    HX_CHECK(eq, "a wiped buffer is not zero");
            }
        }
        destroy_buffer(b, "sm_buffer_destroy (churn)");
        break;
    case 2:
        if (!allowed(sm_enclave_random(len, &e), CREATE, "sm_enclave_random"))
            return;
        if (allowed(sm_enclave_open(e, &o), COFFER, "sm_enclave_open (churn)"))
            destroy_buffer(o, "sm_buffer_destroy (churn)");
        destroy_enclave(e, "sm_enclave_destroy (churn)");
        break;
    case 3:
        if (!allowed(sm_stream_new(&s), CREATE, "sm_stream_new (churn)"))
            return;
        if (allowed(sm_stream_write(s, rec, len), COFFER, "sm_stream_write (churn)") &&
            allowed(sm_stream_flush(s, &o), COFFER, "sm_stream_flush (churn)")) {
            if (allowed(sm_buffer_equal(o, again, len, &eq), PLAIN, "equal (flushed)"))
                HX_CHECK(eq, "a stream gave back other bytes");
            destroy_buffer(o, "sm_buffer_destroy (churn)");
        }
        destroy_stream(s, "sm_stream_destroy (churn)");
        break;
    }
}

/* ---- secrets ---------------------------------------------------------------------- */

/*
 * A pool of secrets, each holding a record. Slot i always holds secrets of one factory:
 * protected, guarded, encrypted, and the example custom factory (tests/factory), in
 * turn. Accessors check the exact record inside the window; replacements and takes
 * close secrets while others are reading them, so the accesses in flight must finish
 * with the exact bytes and the later ones get SM_E_STATE.
 */
static _Atomic uint64_t sec_pool[POOL];

static size_t sec_len(unsigned slot)
{
    return REC_MIN + 29u * slot;
}

/* The encrypted factory decrypts with the enclave key to open a window: COFFER. */
static enum use sec_use(unsigned slot)
{
    return factory(slot) == sm_factory_encrypted() ? COFFER : PLAIN;
}

typedef struct sec_check {
    sm_secret s;
    size_t    len;
    enum use  use;
    bool      nest;
    bool      bad; /* the window held other bytes than the record */
} sec_check;

/*
 * Checks the window; nested, a second access to the same secret shares the window. The
 * bytes are read only before the racing phase (begin_read): a purge wipes a window in
 * place while its readers are still in it (secret.h), a race by design. During the
 * racing phase the accesses still enter and leave, and only their status is checked.
 */
static sm_status sec_check_fn(const uint8_t *bytes, size_t len, void *ctx)
{
    sec_check *c = ctx;
    bool reading = begin_read();

    if (len != c->len || (reading && !record_ok(bytes, len)))
        c->bad = true;
    if (c->nest) {
        sec_check in = { c->s, c->len, c->use, false, false };

        /* SM_E_STATE once a close has begun: the nested access is a new one. */
        (void)allowed(sm_secret_with_bytes(c->s, sec_check_fn, &in), c->use,
                      "sm_secret_with_bytes (nested)");
        c->bad |= in.bad || (reading && !record_ok(bytes, len));
    }
    if (reading)
        end_read();
    return SM_OK;
}

static void sec_bytes_ok(const sec_check *c, const char *what)
{
    HX_CHECK(!c->bad, "%s: secret %#llx of %zu bytes showed other bytes", what,
             (unsigned long long)c->s.id, c->len);
}

static void close_secret(sm_secret s, const char *why)
{
    if (!allowed(sm_secret_close(s), PLAIN, why))
        HX_CHECK(atomic_load(&racing), "%s: an owned secret went stale with no purge", why);
}

/* A secret holding a fresh record; id 0 if a purge refused it. */
static sm_secret make_secret(worker *w, unsigned slot)
{
    uint8_t rec[512];
    size_t len = sec_len(slot);
    sm_secret s = { 0 };

    record_fill(rec, len, hx_rand(&w->rng));
    if (!allowed(sm_secret_new(factory(slot), rec, len, &s), CREATE, "sm_secret_new")) {
        HX_CHECK(record_ok(rec, len), "a refused sm_secret_new changed its source");
        return (sm_secret){ 0 };
    }
    for (size_t i = 0; i < len; i++)
        HX_CHECK(rec[i] == 0, "sm_secret_new leaves its source unwiped");
    return s;
}

static void secret_op(worker *w)
{
    unsigned slot = pick(w, POOL);
    size_t len = sec_len(slot), off, n, got = 0;
    enum use use = sec_use(slot);
    sm_secret s = { atomic_load(&sec_pool[slot]) }, old;
    sec_check c = { s, len, use, false, false };
    uint8_t buf[512 + 8];
    sm_status st;

    if (s.id == 0) {
        old.id = pool_swap(sec_pool, slot, make_secret(w, slot).id);
        if (old.id != 0)
            close_secret(old, "sm_secret_close (replaced)");
        return;
    }
    switch (pick(w, 10)) {
    case 0:
    case 1:
    case 2:
        c.nest = pick(w, 3) == 0;
        if (allowed(sm_secret_with_bytes(s, sec_check_fn, &c), use, "sm_secret_with_bytes"))
            sec_bytes_ok(&c, "sm_secret_with_bytes");
        break;
    case 3:
        st = sm_secret_try_with_bytes(s, sec_check_fn, &c);
        if (st != SM_E_BUSY && allowed(st, use, "sm_secret_try_with_bytes"))
            sec_bytes_ok(&c, "sm_secret_try_with_bytes");
        break;
    case 4:
    case 5:
        /* Two readers: [off, len) asking for up to 7 bytes more (short at the end), then
           [0, off) (nothing to read when off is 0); the bytes never change in between. */
        off = pick(w, (unsigned)len + 1);
        n = len - off + pick(w, 8);
        if (!begin_read())
            break; /* a reader copies bytes that a purge may be wiping */
        st = sm_secret_read_at(s, off, buf + off, n, &got);
        if (allowed(st, use, "sm_secret_read_at")) {
            HX_CHECK(got == len - off, "read_at(%zu, %zu) of %zu got %zu", off, n, len, got);
            st = sm_secret_read_at(s, 0, buf, off, &got);
        }
        end_read();
        if (!allowed(st, use, "sm_secret_read_at"))
            break;
        HX_CHECK(got == off, "read_at(0, %zu) got %zu", off, got);
        c.bad = !record_ok(buf, len);
        sec_bytes_ok(&c, "sm_secret_read_at");
        break;
    case 6:
        /* Stale ids are never reused: once closed, closed for good. */
        n = sm_secret_size(s);
        HX_CHECK(n == len || n == 0, "secret size %zu, expected %zu or 0", n, len);
        if (n == 0)
            HX_CHECK(sm_secret_is_closed(s), "size 0 but not closed");
        break;
    case 7:
        /* Replace: the old secret is ours now; close it while others may be reading. */
        old.id = pool_swap(sec_pool, slot, make_secret(w, slot).id);
        if (old.id != 0)
            close_secret(old, "sm_secret_close (replaced)");
        break;
    case 8:
        /* Take it out; the slot stays empty until someone refills it. */
        old.id = pool_swap(sec_pool, slot, 0);
        if (old.id != 0)
            close_secret(old, "sm_secret_close (taken)");
        break;
    case 9:
        /* Private churn: a random secret, read whole, closed. */
        if (!allowed(sm_secret_random(factory(slot), len, &s), CREATE, "sm_secret_random"))
            break;
        if (begin_read()) {
            st = sm_secret_read_at(s, 0, buf, sizeof buf, &got);
            end_read();
            if (allowed(st, use, "sm_secret_read_at (random)"))
                HX_CHECK(got == len, "a random secret of %zu bytes read %zu", len, got);
        }
        close_secret(s, "sm_secret_close (random)");
        break;
    }
}

/* ---- the workers ---------------------------------------------------------------- */

typedef void (*op_fn)(worker *);

static const op_fn *ops_table;
static size_t ops_count;

static void one_op(worker *w)
{
    ops_table[pick(w, (unsigned)ops_count)](w);
    atomic_fetch_add_explicit(&ops_done, 1, memory_order_relaxed);
}

static void *work(void *arg)
{
    worker w = { .id = (unsigned)(uintptr_t)arg };

    w.rng = 0x1234567ull + 0x9E3779B97F4A7C15ull * (w.id + 1);
    for (unsigned long i = 0; i < nops; i++)
        one_op(&w);
    atomic_fetch_add(&finished_main, 1);
    /* The racing phase: keep going until the main thread has purged. */
    while (!atomic_load(&stop))
        one_op(&w);
    return NULL;
}

static void sleep_ms(unsigned ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* Destroy what the pools hold: each is SM_OK, or SM_E_STATE if a purge took it. */
static void drain_pools(void)
{
    for (unsigned i = 0; i < POOL; i++) {
        sm_buffer b = { pool_swap(buf_pool, i, 0) };
        sm_enclave e = { pool_swap(enc_pool, i, 0) };
        sm_stream s = { pool_swap(str_pool, i, 0) };
        sm_secret c = { pool_swap(sec_pool, i, 0) };
        sm_status st;

        st = b.id ? sm_buffer_destroy(b) : SM_OK;
        HX_CHECK(st == SM_OK || st == SM_E_STATE, "drain buffer: %s", sm_status_str(st));
        st = e.id ? sm_enclave_destroy(e) : SM_OK;
        HX_CHECK(st == SM_OK || st == SM_E_STATE, "drain enclave: %s", sm_status_str(st));
        st = s.id ? sm_stream_destroy(s) : SM_OK;
        HX_CHECK(st == SM_OK || st == SM_E_STATE, "drain stream: %s", sm_status_str(st));
        st = c.id ? sm_secret_close(c) : SM_OK;
        HX_CHECK(st == SM_OK || st == SM_E_STATE, "drain secret: %s", sm_status_str(st));
    }
}

/*
 * Run the ops table on nthreads threads, nops each, then race npurges purges against
 * them. Afterwards nothing may be live or locked but the canary key page.
 */
static void run(const op_fn *table, size_t n)
{
    pthread_t t[64];
    sm_stats s;

    ops_table = table;
    ops_count = n;
    HX_CHECK(nthreads >= 1 && nthreads <= 64, "1 to 64 threads");
    HX_EXPECT(sm_init(NULL), SM_OK);
    for (unsigned i = 0; i < nthreads; i++)
        HX_CHECK(pthread_create(&t[i], NULL, work, (void *)(uintptr_t)i) == 0, "pthread_create");
    while (atomic_load(&finished_main) < nthreads)
        sleep_ms(1);
    atomic_store(&racing, true);
    while (atomic_load(&readers) != 0)
        sleep_ms(1);
    for (unsigned k = 0; k < npurges; k++) {
        sleep_ms(5);
        sm_purge();
    }
    sleep_ms(5);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    drain_pools();
    /* Objects made after the last purge were drained; one last purge takes the key. */
    sm_purge();
    HX_EXPECT(sm_stats_get(&s), SM_OK);
    HX_CHECK(s.buffers_live == 0 && s.enclaves_live == 0 && s.streams_live == 0 &&
             s.secrets_live == 0, "live after drain and purge: %llu buffers, %llu enclaves, "
             "%llu streams, %llu secrets", (unsigned long long)s.buffers_live,
             (unsigned long long)s.enclaves_live, (unsigned long long)s.streams_live,
             (unsigned long long)s.secrets_live);
    /*
     * Only the canary key page stays locked. The windows of secrets that readers were in
     * when a purge came are freed by their last reader (spec/secrets.md, "Purge"; issue
     * 11 §4.5: they used to stay mapped and counted), and every reader has left by now.
     */
    HX_CHECK(s.bytes_locked == sm_page_size(), "%llu bytes still locked; only the canary "
             "key page should be", (unsigned long long)s.bytes_locked);
    HX_CHECK(s.bytes_unlocked == 0, "%llu bytes counted unlocked",
             (unsigned long long)s.bytes_unlocked);
    hx_say("  %lu operations on %u threads, %u racing purges", atomic_load(&ops_done),
           nthreads, npurges);
}

static void t_buffers(void)
{
    static const op_fn t[] = { buffer_op };

    run(t, 1);
}

static void t_enclaves(void)
{
    static const op_fn t[] = { enclave_op };

    run(t, 1);
}

static void t_streams(void)
{
    static const op_fn t[] = { stream_op };

    run(t, 1);
}

static void t_churn(void)
{
    static const op_fn t[] = { churn_op };

    run(t, 1);
}

static void t_secrets(void)
{
    static const op_fn t[] = { secret_op };

    run(t, 1);
}

/* Every kind at once: the stress mix. */
static void t_mixed(void)
{
    static const op_fn t[] = { buffer_op, buffer_op, enclave_op, stream_op, churn_op,
                               secret_op };

    run(t, sizeof t / sizeof t[0]);
}

/*
 * Fork after the enclave key and the compact factory have been used (their fork
 * handlers take their locks before the fork), then use both again in the child, from a
 * thread of its own. A child handler that made those locks afresh instead of letting
 * them go left them locked to ThreadSanitizer (initialising a locked mutex is undefined
 * in POSIX), which then reported the child thread's first lock as a double lock;
 * Helgrind reported that lock as granted while the forking thread held it, and DRD the
 * re-initialisation itself (each checked with the old handlers, 2026-12-05).
 */
static void *child_uses_both(void *arg)
{
    uint8_t src[64];
    sm_enclave e;
    sm_secret c;

    (void)arg;
    memset(src, 0x5a, sizeof src);
    if (sm_enclave_new(src, sizeof src, &e) != SM_OK || sm_enclave_destroy(e) != SM_OK)
        return (void *)1;
    if (sm_secret_random(sm_factory_compact(), 32, &c) != SM_OK || sm_secret_close(c) != SM_OK)
        return (void *)2;
    return NULL;
}

static void in_child(void *arg)
{
    pthread_t t;
    void *ret = (void *)3;

    (void)arg;
    if (pthread_create(&t, NULL, child_uses_both, NULL) != 0 || pthread_join(t, &ret) != 0)
        _exit(4);
    _exit(ret == NULL ? 0 : (int)(uintptr_t)ret);
}

static void t_fork(void)
{
    uint8_t src[64];
    sm_enclave e;
    sm_secret c;

    HX_EXPECT(sm_init(NULL), SM_OK);
    for (unsigned k = 0; k < 3; k++) {
        int status;

        memset(src, 0xa5, sizeof src);
        HX_EXPECT(sm_enclave_new(src, sizeof src, &e), SM_OK);
        HX_EXPECT(sm_secret_random(sm_factory_compact(), 32, &c), SM_OK);
        status = hx_fork(in_child, NULL);
        HX_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "fork %u: the child's enclave and compact secret: wait status %#x", k,
                 (unsigned)status);
        HX_EXPECT(sm_enclave_destroy(e), SM_OK);
        HX_EXPECT(sm_secret_close(c), SM_OK);
    }
}

static const hx_test tests[] = {
    { "buffers", t_buffers },
    { "enclaves", t_enclaves },
    { "streams", t_streams },
    { "churn", t_churn },
    { "secrets", t_secrets },
    { "mixed", t_mixed },
    { "fork", t_fork },
};

int main(int argc, char **argv)
{
    int k = 1;

    while (k + 1 < argc && strncmp(argv[k], "--", 2) == 0) {
        if (strcmp(argv[k], "--threads") == 0)
            nthreads = (unsigned)strtoul(argv[k + 1], NULL, 10);
        else if (strcmp(argv[k], "--ops") == 0)
            nops = strtoul(argv[k + 1], NULL, 10);
        else if (strcmp(argv[k], "--purges") == 0)
            npurges = (unsigned)strtoul(argv[k + 1], NULL, 10);
        else
            break;
        k += 2;
    }
    argv[k - 1] = argv[0];
    return hx_main("race", tests, sizeof tests / sizeof tests[0], 1800, argc - k + 1,
                   argv + k - 1);
}
