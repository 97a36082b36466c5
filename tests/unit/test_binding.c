/* SPDX-License-Identifier: ISC */
/*
 * Issue 11 (SM-REQ-079, SM-REQ-085, SM-REQ-086, SM-REQ-070): every ciphertext is bound to
 * its place, a stream's chunk metadata is out of an overflow's reach, and sm_enclave_new
 * leaves src as it was when it fails. Each attack edits, swaps, transplants, replays or
 * cuts what it can reach (chunk mappings through the test hooks, ciphertext mappings),
 * and expects SM_E_AUTH with nothing left mapped, locked or live once the objects are
 * destroyed; undoing the change must make the object open again, so that SM_E_AUTH is
 * the attack's doing and nothing else's.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "helpers.h"

static size_t chunk_cap(void)
{
    return 4 * sm_page_size() - 64;
}

static uint8_t byte_at(size_t i, uint8_t salt)
{
    return (uint8_t)((i * 2654435761u >> 11) ^ salt);
}

/* The enclave key and the registry's first chunk are made once for good: before any measure. */
static void warm_up(void)
{
    uint8_t x = 1;
    sm_enclave e;
    sm_stream s;

    cr_assert_eq(sm_enclave_new(&x, 1, &e), SM_OK);
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
}

/* What must be back once every object of the test is destroyed. */
static void assert_nothing_left(const counters *before)
{
    counters after;

    counters_get(&after);
    cr_assert(counters_equal(before, &after, CMP_MAPPED),
              "nothing left mapped, locked or live (mapped %zu, was %zu; locked %llu, was %llu)",
              after.mapped, before->mapped, (unsigned long long)after.locked,
              (unsigned long long)before->locked);
}

static void put(sm_stream s, size_t from, size_t n, uint8_t salt)
{
    uint8_t *p = malloc(n);

    for (size_t i = 0; i < n; i++)
        p[i] = byte_at(from + i, salt);
    cr_assert_eq(sm_stream_write(s, p, n), SM_OK, "write %zu", n);
    free(p);
}

/* Read n bytes and expect them all, exact. */
static void take_exact(sm_stream s, size_t n, uint8_t salt)
{
    uint8_t *p = malloc(n);
    size_t got = 0;

    cr_assert_eq(sm_stream_read(s, p, n, &got), SM_OK);
    cr_assert_eq(got, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(p[i], byte_at(i, salt), "byte %zu", i);
    free(p);
}

/* Every way of taking data out refuses the stream, consumes nothing and makes nothing. */
static void assert_refused(sm_stream s, size_t held)
{
    uint8_t *p = malloc(held);
    size_t got = 12345;
    sm_buffer b = { 0 };
    counters before, after;

    counters_get(&before);
    memset(p, 0xa5, held);
    cr_assert_eq(sm_stream_read(s, p, held, &got), SM_E_AUTH, "read");
    cr_assert_eq(got, 12345, "a refused read writes no count");
    for (size_t i = 0; i < held; i++)
        cr_assert(p[i] == 0xa5 || p[i] == 0, "a refused read leaves no data in dst");
    cr_assert_eq(sm_stream_flush(s, &b), SM_E_AUTH, "flush");
    cr_assert_eq(b.id, 0, "no buffer");
    cr_assert_eq(sm_stream_size(s), held, "nothing consumed");
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED), "a refusal makes nothing");
    free(p);
}

static smi_stream_saved saved_new(void)
{
    smi_stream_saved v = { .bytes = malloc(4 * sm_page_size()) };

    cr_assert_not_null(v.bytes);
    return v;
}

/* §2: two full chunks swapped in place (each keeps its place, takes the other's contents). */
Test(binding, stream_chunks_swapped_in_place)
{
    size_t c = chunk_cap();
    smi_stream_saved a = saved_new(), b = saved_new();
    counters before;
    sm_stream s;

    warm_up();
    counters_get(&before);
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    put(s, 0, 3 * c, 1);
    cr_assert_eq(smi_stream_test_save(s, 0, &a), SM_OK);
    cr_assert_eq(smi_stream_test_save(s, 1, &b), SM_OK);
    cr_assert_eq(smi_stream_test_restore(s, 0, &b), SM_OK);
    cr_assert_eq(smi_stream_test_restore(s, 1, &a), SM_OK);
    assert_refused(s, 3 * c);
    {
        sm_buffer nb = { 0 };

        cr_assert_eq(sm_stream_next(s, &nb), SM_E_AUTH, "next");
    }
    /* Put back: the same stream reads whole. */
    cr_assert_eq(smi_stream_test_restore(s, 0, &a), SM_OK);
    cr_assert_eq(smi_stream_test_restore(s, 1, &b), SM_OK);
    take_exact(s, 3 * c, 1);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    assert_nothing_left(&before);
    free(a.bytes);
    free(b.bytes);
}

/* §2: a chunk of stream P pasted over a chunk of stream Q. */
Test(binding, stream_chunk_transplanted_between_streams)
{
    size_t c = chunk_cap();
    smi_stream_saved fromp = saved_new(), q0 = saved_new();
    counters before;
    sm_stream p, q;

    warm_up();
    counters_get(&before);
    cr_assert_eq(sm_stream_new(&p), SM_OK);
    cr_assert_eq(sm_stream_new(&q), SM_OK);
    put(p, 0, 2 * c, 1);
    put(q, 0, 2 * c, 2);
    cr_assert_eq(smi_stream_test_save(p, 0, &fromp), SM_OK);
    cr_assert_eq(smi_stream_test_save(q, 0, &q0), SM_OK);
    cr_assert_eq(smi_stream_test_restore(q, 0, &fromp), SM_OK);
    assert_refused(q, 2 * c);
    take_exact(p, 2 * c, 1);
    cr_assert_eq(smi_stream_test_restore(q, 0, &q0), SM_OK);
    take_exact(q, 2 * c, 2);
    /* A full chunk pasted over a short one: more bytes than the stream holds. */
    put(p, 0, c, 1);
    put(q, 0, 100, 2);
    cr_assert_eq(smi_stream_test_save(p, 0, &fromp), SM_OK);
    cr_assert_eq(smi_stream_test_save(q, 0, &q0), SM_OK);
    cr_assert_eq(smi_stream_test_restore(q, 0, &fromp), SM_OK);
    assert_refused(q, 100);
    cr_assert_eq(smi_stream_test_restore(q, 0, &q0), SM_OK);
    take_exact(q, 100, 2);
    cr_assert_eq(sm_stream_destroy(p), SM_OK);
    cr_assert_eq(sm_stream_destroy(q), SM_OK);
    assert_nothing_left(&before);
    free(fromp.bytes);
    free(q0.bytes);
}

/* §2: an older version of a chunk replayed at its place, and a chunk replayed at another. */
Test(binding, stream_chunk_replayed)
{
    size_t c = chunk_cap();
    smi_stream_saved v1 = saved_new(), v2 = saved_new(), one = saved_new();
    counters before;
    sm_stream s;

    warm_up();
    counters_get(&before);
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    put(s, 0, 100, 3);
    cr_assert_eq(smi_stream_test_save(s, 0, &v1), SM_OK);
    put(s, 100, 100, 3); /* the tail is topped up: chunk 0 is sealed again */
    cr_assert_eq(smi_stream_test_save(s, 0, &v2), SM_OK);
    cr_assert_eq(smi_stream_test_restore(s, 0, &v1), SM_OK);
    assert_refused(s, 200);
    {
        /* A write that tops up the replayed tail opens it first: refused too, src kept. */
        uint8_t more[10] = { 9, 9, 9, 9, 9, 9, 9, 9, 9, 9 };

        cr_assert_eq(sm_stream_write(s, more, sizeof more), SM_E_AUTH);
        cr_assert_eq(more[9], 9, "src untouched");
        cr_assert_eq(sm_stream_size(s), 200);
    }
    cr_assert_eq(smi_stream_test_restore(s, 0, &v2), SM_OK);
    take_exact(s, 200, 3);

    put(s, 0, 2 * c, 4);
    cr_assert_eq(smi_stream_test_save(s, 0, &v1), SM_OK);
    cr_assert_eq(smi_stream_test_save(s, 1, &one), SM_OK);
    cr_assert_eq(smi_stream_test_restore(s, 1, &v1), SM_OK);
    assert_refused(s, 2 * c);
    cr_assert_eq(smi_stream_test_restore(s, 1, &one), SM_OK);
    take_exact(s, 2 * c, 4);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    assert_nothing_left(&before);
    free(v1.bytes);
    free(v2.bytes);
    free(one.bytes);
}

/*
 * Chunk a's sealed contents put in b's place, and b's in a's when swap: refused; then
 * both put back as they were. sa and sb are the scratch copies.
 */
static void moved_refused(sm_stream s, size_t held, size_t a, size_t b, bool swap,
                          smi_stream_saved *sa, smi_stream_saved *sb)
{
    cr_assert_eq(smi_stream_test_save(s, a, sa), SM_OK);
    cr_assert_eq(smi_stream_test_save(s, b, sb), SM_OK);
    cr_assert_eq(smi_stream_test_restore(s, b, sa), SM_OK);
    if (swap)
        cr_assert_eq(smi_stream_test_restore(s, a, sb), SM_OK);
    assert_refused(s, held);
    cr_assert_eq(smi_stream_test_restore(s, b, sb), SM_OK);
    if (swap)
        cr_assert_eq(smi_stream_test_restore(s, a, sa), SM_OK);
}

/*
 * §2, with runs: chunks in runs of 1, 4 and 16 slots (the front, the middle, a run's
 * first and last, the tail), each sealed field changed alone (the ciphertext's first and
 * last byte, the nonce, the tag, the length one less and one more), then a chunk swapped
 * across runs and one replayed over its neighbour in its run: each refused, and put back
 * the stream reads whole. (Nothing-left is the other tests': here ASan's quarantine of
 * assert_refused's 44 copies of 224 KiB would move the mapped total.)
 */
Test(binding, stream_every_field_of_chunks_across_runs)
{
    size_t c = chunk_cap(), held = 0;
    const size_t ks[] = { 0, 1, 2, 4, 5, 9, 13 };
    smi_stream_saved orig = saved_new(), ed = saved_new();
    sm_stream s;

    cr_assert_eq(sm_stream_new(&s), SM_OK);
    put(s, held, c, 6); /* a run of 1 */
    held += c;
    put(s, held, 3 * c, 6); /* a run of 4 */
    held += 3 * c;
    put(s, held, 10 * c - 9, 6); /* a run of 16: its last chunk short */
    held += 10 * c - 9;
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        cr_assert_eq(smi_stream_test_save(s, ks[a], &orig), SM_OK);
        for (int field = 0; field < 6; field++) {
            memcpy(ed.bytes, orig.bytes, 4 * sm_page_size());
            ed.len = orig.len;
            memcpy(ed.nonce, orig.nonce, sizeof ed.nonce);
            memcpy(ed.tag, orig.tag, sizeof ed.tag);
            if (field == 0)
                ed.bytes[0] ^= 1;
            else if (field == 1)
                ed.bytes[orig.len - 1] ^= 0x80;
            else if (field == 2)
                ed.nonce[SMI_AEAD_NONCE - 1] ^= 4;
            else if (field == 3)
                ed.tag[0] ^= 1;
            else if (field == 4)
                ed.len = orig.len - 1;
            else if (orig.len < c)
                ed.len = orig.len + 1; /* a zero of the slot's padding read as ciphertext */
            else
                continue;
            cr_assert_eq(smi_stream_test_restore(s, ks[a], &ed), SM_OK);
            assert_refused(s, held);
            cr_assert_eq(smi_stream_test_restore(s, ks[a], &orig), SM_OK);
        }
    }
    moved_refused(s, held, 0, 9, true, &orig, &ed);
    moved_refused(s, held, 1, 2, false, &orig, &ed);
    take_exact(s, held, 6);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    free(orig.bytes);
    free(ed.bytes);
}

/* §2: the stream cut after its first chunk: its end is authenticated. */
Test(binding, stream_cut_after_the_first_chunk)
{
    size_t c = chunk_cap();
    counters before;
    sm_buffer b = { 0 };
    sm_stream s;

    warm_up();
    counters_get(&before);
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    put(s, 0, 3 * c, 5);
    cr_assert_eq(smi_stream_test_cut(s, 1), SM_OK);
    assert_refused(s, 3 * c);
    cr_assert_eq(sm_stream_next(s, &b), SM_E_AUTH, "next reaches the cut end");
    cr_assert_eq(b.id, 0);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    assert_nothing_left(&before);
}

/*
 * The cut of a stream whose chunks after the cut fill runs of their own, the run being
 * carved among them: those runs are given back at once, the tail's run is carved next
 * (smi_stream_test_slots checks that), and a write after the cut, refused at the end
 * like every other call, leaves nothing behind either.
 */
Test(binding, stream_cut_before_the_run_being_carved)
{
    size_t c = chunk_cap();
    smi_stream_slots n;
    counters before;
    sm_stream s;
    uint8_t more[10] = { 1 };

    warm_up();
    counters_get(&before);
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    put(s, 0, 2 * c, 8);        /* a run of 2, full */
    put(s, 2 * c, 3 * c, 8);    /* a run of 8: 3 carved */
    cr_assert_eq(smi_stream_test_cut(s, 2), SM_OK);
    cr_assert_eq(smi_stream_test_slots(s, &n), SM_OK, "the tail's run is carved next");
    cr_assert_eq(n.mapped, 2, "the run of 8 given back");
    cr_assert_eq(n.chunks, 2);
    cr_assert_eq(sm_stream_write(s, more, sizeof more), SM_OK, "a write does not reach the end");
    cr_assert_eq(smi_stream_test_slots(s, &n), SM_OK);
    cr_assert_eq(n.chunks, 3);
    assert_refused(s, 5 * c + sizeof more);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    assert_nothing_left(&before);
}

/*
 * §3: an overflow writes a chunk header { next, len } over the start of a chunk mapping,
 * with a forged len: SM_E_AUTH, never a fault.
 */
static void forge_len(sm_stream s)
{
    uint8_t *map;
    size_t len, huge = (size_t)1 << 20; /* past the mapping, within what a region may hold */

    cr_assert_eq(smi_stream_test_chunk(s, 0, &map, &len), SM_OK);
    cr_assert_geq(len, 4 * sm_page_size());
    memcpy(map + sizeof(void *), &huge, sizeof huge);
}

Test(binding, forged_len_read)
{
    size_t c = chunk_cap();
    counters before;
    sm_stream s;

    warm_up();
    counters_get(&before);
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    put(s, 0, 2 * c, 6);
    forge_len(s);
    assert_refused(s, 2 * c);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    assert_nothing_left(&before);
}

Test(binding, forged_len_next)
{
    size_t c = chunk_cap();
    counters before;
    sm_buffer b = { 0 };
    sm_stream s;

    warm_up();
    counters_get(&before);
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    put(s, 0, 2 * c, 6);
    forge_len(s);
    cr_assert_eq(sm_stream_next(s, &b), SM_E_AUTH);
    cr_assert_eq(b.id, 0);
    cr_assert_eq(sm_stream_size(s), 2 * c);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    assert_nothing_left(&before);
}

/*
 * §3: a forged next pointing at one of the application's own mappings (holding a
 * plausible chunk header): destroy and purge must not unmap it, nor read it.
 */
static uint8_t *victim_new(void)
{
    uint8_t *v = mmap(NULL, 4 * sm_page_size(), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t one = 1;

    cr_assert_neq(v, MAP_FAILED);
    memset(v, 0x77, 4 * sm_page_size());
    memset(v, 0, sizeof(void *)); /* next = NULL */
    memcpy(v + sizeof(void *), &one, sizeof one);
    return v;
}

static void assert_victim_mapped(const uint8_t *v)
{
    char perms[5], flags[256];
    size_t locked;

    cr_assert_eq(smaps_of(v, perms, flags, sizeof flags, &locked), 0,
                 "the application's mapping is still mapped");
    cr_assert_str_eq(perms, "rw-p");
    cr_assert_eq(v[4 * sm_page_size() - 1], 0x77, "and untouched");
}

static void forge_next(sm_stream s, uint8_t *victim)
{
    uint8_t *map;
    size_t len;

    cr_assert_eq(smi_stream_test_chunk(s, 0, &map, &len), SM_OK);
    memcpy(map, &victim, sizeof victim);
}

Test(binding, forged_next_destroy)
{
    size_t c = chunk_cap();
    uint8_t *victim;
    counters before;
    sm_stream s;

    warm_up();
    victim = victim_new();
    counters_get(&before);
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    put(s, 0, 2 * c, 7);
    forge_next(s, victim);
    assert_refused(s, 2 * c);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    assert_victim_mapped(victim);
    assert_nothing_left(&before);
    cr_assert_eq(munmap(victim, 4 * sm_page_size()), 0);
}

Test(binding, forged_next_purge)
{
    size_t c = chunk_cap();
    uint8_t *victim;
    sm_stream s;

    warm_up();
    victim = victim_new();
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    put(s, 0, 2 * c, 7);
    forge_next(s, victim);
    sm_purge();
    assert_victim_mapped(victim);
    cr_assert_eq(munmap(victim, 4 * sm_page_size()), 0);
}

/* §2: two enclaves of one size exchange ciphertexts. */
Test(binding, enclaves_swapped)
{
    uint8_t x[64], y[64], wx[64], wy[64];
    sm_enclave ex, ey;
    sm_buffer b = { 0 }, dst;
    counters before, after;

    warm_up();
    for (int i = 0; i < 64; i++) {
        wx[i] = x[i] = (uint8_t)i;
        wy[i] = y[i] = (uint8_t)(0xf0 ^ i);
    }
    cr_assert_eq(sm_enclave_new(x, 64, &ex), SM_OK);
    cr_assert_eq(sm_enclave_new(y, 64, &ey), SM_OK);
    cr_assert_eq(sm_buffer_new(64, &dst), SM_OK);
    memset(sm_buffer_data(dst), 0x3c, 64);
    cr_assert_eq(smi_enclave_test_swap(ex, ey), SM_OK);
    counters_get(&before);
    cr_assert_eq(sm_enclave_open(ex, &b), SM_E_AUTH);
    cr_assert_eq(sm_enclave_open(ey, &b), SM_E_AUTH);
    cr_assert_eq(b.id, 0, "no buffer");
    cr_assert_eq(sm_enclave_open_into(ex, dst), SM_E_AUTH);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(sm_buffer_data(dst)[i], 0x3c, "dst as it was");
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED), "nothing made");
    cr_assert_eq(smi_enclave_test_swap(ex, ey), SM_OK);
    cr_assert_eq(sm_enclave_open(ex, &b), SM_OK);
    cr_assert(memcmp(sm_buffer_data(b), wx, 64) == 0);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert_eq(sm_enclave_open(ey, &b), SM_OK);
    cr_assert(memcmp(sm_buffer_data(b), wy, 64) == 0);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert_eq(smi_enclave_test_swap(ex, ex), SM_E_INVAL);
    cr_assert_eq(sm_buffer_destroy(dst), SM_OK);
    cr_assert_eq(sm_enclave_destroy(ex), SM_OK);
    cr_assert_eq(sm_enclave_destroy(ey), SM_OK);
}

/* §2: the encrypted factory's secrets share the binding. */
static sm_status see(const uint8_t *bytes, size_t len, void *ctx)
{
    memcpy(ctx, bytes, len);
    return SM_OK;
}

Test(binding, encrypted_secrets_swapped)
{
    const sm_factory *f = sm_factory_encrypted();
    uint8_t x[32], y[32], got[32];
    sm_secret sx, sy;
    counters before, after;

    warm_up();
    memset(x, 0x11, sizeof x);
    memset(y, 0x22, sizeof y);
    cr_assert_eq(sm_secret_new(f, x, sizeof x, &sx), SM_OK);
    cr_assert_eq(sm_secret_new(f, y, sizeof y, &sy), SM_OK);
    cr_assert_eq(smi_secret_test_swap_sealed(sx, sy), SM_OK);
    counters_get(&before);
    memset(got, 0, sizeof got);
    cr_assert_eq(sm_secret_with_bytes(sx, see, got), SM_E_AUTH);
    cr_assert_eq(sm_secret_with_bytes(sy, see, got), SM_E_AUTH);
    cr_assert_eq(got[0], 0, "fn never saw the other's bytes");
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED), "no window left");
    cr_assert_eq(smi_secret_test_swap_sealed(sx, sy), SM_OK);
    cr_assert_eq(sm_secret_with_bytes(sx, see, got), SM_OK);
    cr_assert_eq(got[31], 0x11);
    cr_assert_eq(sm_secret_with_bytes(sy, see, got), SM_OK);
    cr_assert_eq(got[31], 0x22);
    cr_assert_eq(sm_secret_close(sx), SM_OK);
    cr_assert_eq(sm_secret_close(sy), SM_OK);
}

/* §4.4: sm_enclave_new overtaken by a purge leaves src as it was (enclave.h). */
static bool purged_once;

static void purge_once(void)
{
    if (!purged_once) {
        purged_once = true;
        sm_purge();
    }
}

Test(binding, enclave_new_keeps_src_when_a_purge_overtakes_it)
{
    uint8_t src[256], want[256];
    sm_enclave e = { 0 };
    sm_status st;

    warm_up();
    for (int i = 0; i < 256; i++)
        want[i] = src[i] = (uint8_t)(i * 13 + 1);
    purged_once = false;
    smi_coffer_test_after_cipher(purge_once);
    st = sm_enclave_new(src, sizeof src, &e);
    smi_coffer_test_after_cipher(NULL);
    cr_assert(purged_once, "the purge ran inside the call");
    cr_assert_eq(st, SM_E_STATE);
    cr_assert_eq(e.id, 0);
    cr_assert(memcmp(src, want, sizeof src) == 0, "src untouched on error");
    cr_assert_eq(sm_enclave_new(src, sizeof src, &e), SM_OK, "a new key after it");
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
}

/* The ids come from the library's generator: with no randomness, nothing is made. */
Test(binding, no_id_without_randomness)
{
    uint8_t x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    sm_enclave e = { 0 };
    sm_stream s = { 0 };
    sm_secret sec = { 0 };
    counters before, after;

    warm_up();
    sm_purge(); /* the generator's key is forgotten: the next use must draw one */
    counters_get(&before);
    sm_os_fault_arm(SM_OS_GETRANDOM, 1, EIO, true);
    cr_assert_eq(sm_enclave_new(x, sizeof x, &e), SM_E_RANDOM);
    cr_assert_eq(x[7], 8, "src untouched");
    cr_assert_eq(sm_stream_new(&s), SM_E_RANDOM);
    cr_assert_eq(sm_secret_new(sm_factory_encrypted(), x, sizeof x, &sec), SM_E_RANDOM);
    cr_assert_eq(x[7], 8, "src untouched");
    sm_os_fault_reset();
    cr_assert(e.id == 0 && s.id == 0 && sec.id == 0);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED), "nothing made");
}
