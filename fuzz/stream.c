/* SPDX-License-Identifier: ISC */
/*
 * stream: random write, read, next and flush sizes on two streams, checked byte for byte
 * against a FIFO model, with OS faults injected from the input, and chunks tampered
 * with where an overflow reaches them.
 *
 * Target functions: sm_stream_new, sm_stream_write, sm_stream_read, sm_stream_next,
 * sm_stream_flush, sm_stream_size, sm_stream_destroy; through them the chunk chain of
 * src/objects/stream.c, the coffer's seal and open (src/objects/coffer.c,
 * src/memory/aead.c), and the region allocator under SM_LOCK_BEST_EFFORT. Hooks:
 * smi_stream_test_chunk, _save, _restore.
 *
 * Model (spec/api.md, securemem/stream.h): a stream is a FIFO of bytes. write appends and
 * wipes src; read takes min(cap, held) bytes from the front; next takes a non-empty
 * prefix of at most one chunk (4 pages less 64 bytes); flush takes everything; each
 * returns SM_E_EOF on an empty stream. Every call is all or nothing: a call failed by an
 * injected OS fault returns a status that fault maps to and changes nothing (a failed
 * write leaves src as it was; a failed read consumes nothing). sm_stream_size is the
 * bytes held; a destroyed stream's handle is stale. A chunk whose mapping was changed
 * (a byte flipped), or that holds another chunk's sealed contents (swapped with one of
 * its stream, replayed from another place, transplanted from the other stream) makes
 * flush and a read of everything SM_E_AUTH, consuming nothing and making nothing
 * (SM-REQ-085); once put back, the stream reads as before.
 *
 * Input: one byte choosing the AEAD, then operations (one byte each, then arguments).
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define NSTREAMS 2
#define MAX_OPS 96
#define MAX_HELD (1u << 20)

typedef struct model {
    sm_stream h;
    bool      alive;
    uint8_t  *fifo;
    size_t    len;
} model;

static model m[NSTREAMS];
static fz_faults F;
static uint8_t *scratch, *scratch2;
static size_t chunk_cap;
static smi_stream_saved sv[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const sm_config cfg = { .lock_policy = SM_LOCK_BEST_EFFORT };

    (void)argc;
    (void)argv;
    fz_init(&cfg);
    chunk_cap = 4 * sm_page_size() - 64;
    for (unsigned i = 0; i < NSTREAMS; i++)
        m[i].fifo = malloc(MAX_HELD);
    scratch = malloc(MAX_HELD);
    scratch2 = malloc(MAX_HELD);
    sv[0].bytes = malloc(4 * sm_page_size());
    sv[1].bytes = malloc(4 * sm_page_size());
    FZ_CHECK(sv[0].bytes != NULL && sv[1].bytes != NULL, "out of memory");
    FZ_CHECK(scratch != NULL && scratch2 != NULL && m[0].fifo != NULL && m[1].fifo != NULL,
             "out of memory");
    return 0;
}

/* A size: small, around one chunk's capacity, or up to three chunks. */
static size_t pick_size(fz_in *in)
{
    uint16_t v = fz_u16(in);

    switch (v >> 14) {
    case 0:
        return v % 65;
    case 1:
        return chunk_cap - 40 + v % 81;
    case 2:
        return v % (3 * chunk_cap + 1);
    default:
        return (v & 0x3ff) + 1;
    }
}

static const sm_os_fn fault_fns[] = { SM_OS_MMAP, SM_OS_MUNMAP, SM_OS_MPROTECT,
                                      SM_OS_MLOCK, SM_OS_MADVISE, SM_OS_GETRANDOM };

/* The status of a call that did not do what the model wanted: an injected fault's. */
static void expect_fault(sm_status st, sm_status want, const char *what)
{
    FZ_CHECK(F.fired > 0 && fz_faults_allow(&F, st), "%s: %s, want %s (faults fired: %u)",
             what, fz_st(st), fz_st(want), F.fired);
}

static void check_sizes(void)
{
    fz_counts c;
    uint64_t live = 0;

    for (unsigned i = 0; i < NSTREAMS; i++) {
        size_t got = sm_stream_size(m[i].h);

        FZ_CHECK(got == (m[i].alive ? m[i].len : 0), "stream %u: size %zu, model %zu", i, got,
                 m[i].alive ? m[i].len : 0);
        live += m[i].alive;
    }
    fz_counts_get(&c);
    FZ_CHECK(c.live[SMI_KIND_STREAM] == live, "streams_live %llu, model %llu",
             (unsigned long long)c.live[SMI_KIND_STREAM], (unsigned long long)live);
    FZ_CHECK(c.live[SMI_KIND_BUFFER] == 0, "a buffer outlived its check");
}

static void op_new(model *s, unsigned i)
{
    sm_status st;

    fz_faults_before(&F);
    st = sm_stream_new(&s->h);
    fz_faults_after(&F);
    fz_trace("new stream %u: %s", i, fz_st(st));
    if (st == SM_OK) {
        s->alive = true;
        s->len = 0;
    } else {
        expect_fault(st, SM_OK, "sm_stream_new");
    }
}

static void op_write(model *s, unsigned i, fz_in *in)
{
    size_t n = pick_size(in);
    sm_status st;

    if (s->len + n > MAX_HELD)
        n = MAX_HELD - s->len;
    fz_fill(in, scratch, n);
    memcpy(scratch2, scratch, n);
    fz_faults_before(&F);
    st = sm_stream_write(s->h, scratch, n);
    fz_faults_after(&F);
    fz_trace("write stream %u, %zu bytes: %s", i, n, fz_st(st));
    if (!s->alive) {
        FZ_CHECK(st == SM_E_STATE, "write to a destroyed stream: %s", fz_st(st));
        FZ_CHECK(memcmp(scratch, scratch2, n) == 0, "a refused write changed src");
        return;
    }
    if (st == SM_OK) {
        for (size_t k = 0; k < n; k++)
            FZ_CHECK(scratch[k] == 0, "write did not wipe src byte %zu of %zu", k, n);
        memcpy(s->fifo + s->len, scratch2, n);
        s->len += n;
    } else {
        expect_fault(st, SM_OK, "sm_stream_write");
        FZ_CHECK(memcmp(scratch, scratch2, n) == 0, "a failed write changed src");
    }
}

static void consume(model *s, size_t n)
{
    memmove(s->fifo, s->fifo + n, s->len - n);
    s->len -= n;
}

static void op_read(model *s, unsigned i, fz_in *in)
{
    size_t cap = pick_size(in), got = 12345, want;
    sm_status st;

    memset(scratch, 0xa5, cap);
    fz_faults_before(&F);
    st = sm_stream_read(s->h, scratch, cap, &got);
    fz_faults_after(&F);
    fz_trace("read stream %u, cap %zu: %s, got %zu", i, cap, fz_st(st), got);
    if (!s->alive) {
        FZ_CHECK(st == SM_E_STATE, "read from a destroyed stream: %s", fz_st(st));
        return;
    }
    if (s->len == 0) {
        FZ_CHECK(st == SM_E_EOF, "read from an empty stream: %s", fz_st(st));
        return;
    }
    want = cap < s->len ? cap : s->len;
    if (st != SM_OK) {
        expect_fault(st, SM_OK, "sm_stream_read");
        /* Nothing consumed, and whatever reached dst was wiped. */
        for (size_t k = 0; k < cap; k++)
            FZ_CHECK(scratch[k] == 0xa5 || scratch[k] == 0, "failed read left data in dst");
        return;
    }
    FZ_CHECK(got == want, "read got %zu, want %zu", got, want);
    FZ_CHECK(memcmp(scratch, s->fifo, got) == 0, "read: bytes differ from the FIFO");
    for (size_t k = got; k < cap; k++)
        FZ_CHECK(scratch[k] == 0xa5, "read wrote past got");
    consume(s, got);
}

/* next (all false) or flush (all true) */
static void op_take(model *s, unsigned i, bool all)
{
    const char *what = all ? "sm_stream_flush" : "sm_stream_next";
    sm_buffer b = { 0 };
    sm_status st;
    size_t n;
    const uint8_t *d;

    fz_faults_before(&F);
    st = all ? sm_stream_flush(s->h, &b) : sm_stream_next(s->h, &b);
    fz_faults_after(&F);
    fz_trace("%s stream %u: %s", what, i, fz_st(st));
    if (!s->alive) {
        FZ_CHECK(st == SM_E_STATE, "%s of a destroyed stream: %s", what, fz_st(st));
        return;
    }
    if (s->len == 0) {
        FZ_CHECK(st == SM_E_EOF, "%s of an empty stream: %s", what, fz_st(st));
        return;
    }
    if (st != SM_OK) {
        expect_fault(st, SM_OK, what);
        FZ_CHECK(b.id == 0, "%s failed but wrote its out-parameter", what);
        return;
    }
    n = sm_buffer_size(b);
    d = sm_buffer_data(b);
    FZ_CHECK(d != NULL && n > 0, "%s: no buffer", what);
    FZ_CHECK(!sm_buffer_is_mutable(b), "%s: the buffer is not FROZEN", what);
    if (all)
        FZ_CHECK(n == s->len, "flush gave %zu bytes of %zu", n, s->len);
    else
        FZ_CHECK(n <= s->len && n <= chunk_cap, "next gave %zu bytes (held %zu, chunk %zu)", n,
                 s->len, chunk_cap);
    FZ_CHECK(memcmp(d, s->fifo, n) == 0, "%s: bytes differ from the FIFO", what);
    fz_check_layout(d, n, false, what);
    consume(s, n);
    fz_faults_clear(&F);
    st = sm_buffer_destroy(b);
    FZ_CHECK(st == SM_OK, "destroy of the %s buffer: %s", what, fz_st(st));
}

static size_t chunks_of(const model *s)
{
    size_t n = 0;
    uint8_t *map;
    size_t len;

    while (smi_stream_test_chunk(s->h, n, &map, &len) == SM_OK)
        n++;
    return n;
}

/* Change what an overflow can reach, check that nothing accepts it, then put it back. */
static void op_tamper(model *s, unsigned i, fz_in *in)
{
    uint8_t how = fz_u8(in);
    model *o = &m[(i + 1) % NSTREAMS];
    size_t n, k, j, len;
    uint8_t *map;
    sm_buffer b = { 0 };
    size_t got = 12345;
    sm_status st;

    if (!s->alive || s->len == 0)
        return;
    fz_faults_clear(&F);
    n = chunks_of(s);
    k = fz_u8(in) % n;
    j = fz_u8(in) % n;
    FZ_CHECK(smi_stream_test_save(s->h, k, &sv[0]) == SM_OK, "save");
    switch (how % 4) {
    case 0: /* a byte of the ciphertext, in place */
        FZ_CHECK(smi_stream_test_chunk(s->h, k, &map, &len) == SM_OK, "chunk");
        map[fz_u16(in) % sv[0].len] ^= (uint8_t)(1u << (how >> 5));
        break;
    case 1: /* swapped with another chunk of the stream, or replayed over it */
    case 2:
        if (j == k)
            return;
        FZ_CHECK(smi_stream_test_save(s->h, j, &sv[1]) == SM_OK, "save");
        FZ_CHECK(smi_stream_test_restore(s->h, k, &sv[1]) == SM_OK, "restore");
        if (how % 4 == 1)
            FZ_CHECK(smi_stream_test_restore(s->h, j, &sv[0]) == SM_OK, "restore");
        break;
    default: /* transplanted from the other stream */
        if (!o->alive || o->len == 0)
            return;
        FZ_CHECK(smi_stream_test_save(o->h, fz_u8(in) % chunks_of(o), &sv[1]) == SM_OK, "save");
        FZ_CHECK(smi_stream_test_restore(s->h, k, &sv[1]) == SM_OK, "restore");
        break;
    }
    fz_trace("tamper stream %u (%u), chunks %zu and %zu of %zu", i, how % 4, k, j, n);
    st = sm_stream_flush(s->h, &b);
    FZ_CHECK(st == SM_E_AUTH && b.id == 0, "flush of a tampered stream: %s", fz_st(st));
    memset(scratch, 0xa5, s->len);
    st = sm_stream_read(s->h, scratch, s->len, &got);
    FZ_CHECK(st == SM_E_AUTH && got == 12345, "read of a tampered stream: %s", fz_st(st));
    for (size_t q = 0; q < s->len; q++)
        FZ_CHECK(scratch[q] == 0xa5 || scratch[q] == 0, "a refused read left data in dst");
    FZ_CHECK(sm_stream_size(s->h) == s->len, "a refused call consumed data");
    /* Put back (the swap's other half first), and the stream is whole again. */
    if (how % 4 == 1 && j != k)
        FZ_CHECK(smi_stream_test_restore(s->h, j, &sv[1]) == SM_OK, "put back");
    FZ_CHECK(smi_stream_test_restore(s->h, k, &sv[0]) == SM_OK, "put back");
}

static void op_destroy(model *s, unsigned i)
{
    sm_status st;

    fz_faults_before(&F);
    st = sm_stream_destroy(s->h);
    fz_faults_after(&F);
    fz_trace("destroy stream %u: %s", i, fz_st(st));
    if (!s->alive) {
        FZ_CHECK(st == SM_E_STATE, "destroy of a destroyed stream: %s", fz_st(st));
        return;
    }
    if (st == SM_OK)
        s->alive = false;
    else
        expect_fault(st, SM_OK, "sm_stream_destroy");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size, 0 };
    unsigned ops = 0;

    fz_begin();
    fz_faults_clear(&F);
    smi_aead_test_force((smi_aead_choice)(fz_u8(&in) % 3));
    for (unsigned i = 0; i < NSTREAMS; i++) {
        m[i].alive = false;
        m[i].h.id = 0;
        op_new(&m[i], i);
    }
    while (fz_more(&in) && ops++ < MAX_OPS) {
        uint8_t op = fz_u8(&in);
        model *s = &m[(op >> 4) % NSTREAMS];
        unsigned i = (unsigned)(s - m);

        switch (op & 15) {
        case 0: case 1: case 2: case 3:
            op_write(s, i, &in);
            break;
        case 4: case 5: case 6:
            op_read(s, i, &in);
            break;
        case 7: case 8:
            op_take(s, i, false);
            break;
        case 9:
            op_take(s, i, true);
            break;
        case 10:
            fz_faults_arm(&F, &in, fault_fns, sizeof fault_fns / sizeof fault_fns[0]);
            break;
        case 11:
            fz_faults_clear(&F);
            break;
        case 12:
            op_destroy(s, i);
            break;
        case 13:
            if (!s->alive)
                op_new(s, i);
            break;
        case 14:
            op_tamper(s, i, &in);
            break;
        default:
            break;
        }
        check_sizes();
    }
    /* Drain what is left, fault-free, and check it too. */
    fz_faults_clear(&F);
    for (unsigned i = 0; i < NSTREAMS; i++) {
        if (m[i].alive && m[i].len > 0)
            op_take(&m[i], i, true);
        if (m[i].alive)
            op_destroy(&m[i], i);
        FZ_CHECK(!m[i].alive, "stream %u could not be destroyed", i);
    }
    check_sizes();
    return 0;
}
