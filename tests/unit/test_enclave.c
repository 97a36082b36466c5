/* SPDX-License-Identifier: ISC */
/* Enclaves: sealing, opening, tampering, and the buffer's seal transition. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>
#include <valgrind/valgrind.h>

#include "helpers.h"

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

/*
 * Under Memcheck (make test-memcheck), only the sizes near the edges that the code
 * divides by: up to 256 bytes, and within 256 bytes of each page multiple. What depends
 * on the size is the count of 16-byte cipher blocks and of 64-byte keystream blocks, and
 * where the mapping, the ciphertext head (32 bytes) and the buffer's canary (32 bytes or
 * more) cross a page: those sizes keep every remainder modulo 64 and every page crossing,
 * and 3 pages + 1 and 1 MiB (several 16 KiB cipher steps) stay. The sizes in between
 * take the same paths with more whole blocks; the native runs (make test, the sanitizers)
 * still take every size. Memcheck spent 54 s on this test, of 230 s for all 300 tests.
 */
static bool memcheck_skips(size_t n, size_t page)
{
    size_t in_page = n % page;

    return RUNNING_ON_VALGRIND && n > 256 && in_page > 256 && in_page < page - 256;
}

/* Every size from 1 byte to 3 pages + 1, then 1 MiB: byte-exact both ways. */
Test(enclave, new_open_round_trip_for_every_size_to_three_pages, .timeout = 120)
{
    size_t last = 3 * sm_page_size() + 1;

    for (size_t n = 1; n <= last + 1; n++) {
        if (n == last + 1)
            n = (size_t)1 << 20;
        if (memcheck_skips(n, sm_page_size()))
            continue;
        uint8_t *src = malloc(n), *want = malloc(n);
        sm_enclave e;
        sm_buffer b;

        fill(src, n, (uint8_t)n);
        memcpy(want, src, n);
        cr_assert_eq(sm_enclave_new(src, n, &e), SM_OK, "size %zu", n);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(src[i], 0, "src wiped");
        cr_assert_eq(sm_enclave_size(e), n);
        cr_assert_eq(sm_enclave_open(e, &b), SM_OK);
        cr_assert_eq(sm_buffer_size(b), n);
        cr_assert_not(sm_buffer_is_mutable(b), "opened FROZEN");
        cr_assert(sm_equal(sm_buffer_data(b), want, n));
        cr_assert_eq(sm_buffer_destroy(b), SM_OK);
        if (n % 1000 == 1) {
            cr_assert_eq(sm_enclave_open(e, &b), SM_OK, "the enclave stays");
            cr_assert_eq(sm_buffer_destroy(b), SM_OK);
        }
        cr_assert_eq(sm_enclave_destroy(e), SM_OK);
        cr_assert_eq(sm_enclave_size(e), 0);
        cr_assert_eq(sm_enclave_open(e, &b), SM_E_STATE);
        free(src);
        free(want);
    }
}

Test(enclave, ciphertext_is_not_the_plaintext)
{
    uint8_t src[64], want[64];
    sm_enclave e;
    smi_slot *s;
    const uint8_t *map;

    fill(src, 64, 3);
    memcpy(want, src, 64);
    cr_assert_eq(sm_enclave_new(src, 64, &e), SM_OK);
    cr_assert_eq(smi_registry_acquire(e.id, SMI_KIND_ENCLAVE, &s), SM_OK);
    memcpy(&map, s->body, sizeof map);
    smi_registry_release(s);
    cr_assert_not(sm_equal(map + 32, want, 64));
    cr_assert(memmem(map, 4096, want, 16) == NULL, "no plaintext in the enclave's pages");
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
}

Test(enclave, random_and_bad_arguments)
{
    sm_enclave e = { 0 }, r1, r2;
    sm_buffer a, b;
    uint8_t x = 1;

    cr_assert_eq(sm_enclave_new(NULL, 1, &e), SM_E_INVAL);
    cr_assert_eq(sm_enclave_new(&x, 0, &e), SM_E_INVAL);
    cr_assert_eq(sm_enclave_new(&x, 1, NULL), SM_E_INVAL);
    cr_assert_eq(x, 1, "not wiped on failure");
    cr_assert_eq(sm_enclave_random(0, &e), SM_E_INVAL);
    cr_assert_eq(sm_enclave_random(1, NULL), SM_E_INVAL);
    cr_assert_eq(sm_enclave_new(&x, SIZE_MAX, &e), SM_E_INVAL);
    cr_assert_eq(e.id, 0);
    cr_assert_eq(sm_enclave_random(32, &r1), SM_OK);
    cr_assert_eq(sm_enclave_random(32, &r2), SM_OK);
    cr_assert_eq(sm_enclave_open(r1, &a), SM_OK);
    cr_assert_eq(sm_enclave_open(r2, &b), SM_OK);
    cr_assert_not(sm_equal(sm_buffer_data(a), sm_buffer_data(b), 32));
    cr_assert_eq(sm_enclave_open(r1, NULL), SM_E_INVAL);
    cr_assert_eq(sm_buffer_destroy(a), SM_OK);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert_eq(sm_enclave_destroy(r1), SM_OK);
    cr_assert_eq(sm_enclave_destroy(r1), SM_E_STATE);
    cr_assert_eq(sm_enclave_destroy(r2), SM_OK);
}

/* Every single-bit flip of ciphertext, tag and nonce: SM_E_AUTH and no buffer. */
Test(enclave, tampering_is_detected)
{
    static const size_t lens[] = { 40, 16, 12 };
    uint8_t src[40];
    sm_enclave e;
    sm_stats s0, s1;

    fill(src, 40, 9);
    cr_assert_eq(sm_enclave_new(src, 40, &e), SM_OK);
    cr_assert_eq(sm_stats_get(&s0), SM_OK);
    for (int where = 0; where < 3; where++) {
        for (size_t bit = 0; bit < lens[where] * 8; bit += 3) {
            sm_buffer b = { 0 };

            cr_assert_eq(smi_enclave_test_flip(e, where, bit), SM_OK);
            cr_assert_eq(sm_enclave_open(e, &b), SM_E_AUTH, "where %d bit %zu", where, bit);
            cr_assert_eq(b.id, 0, "no buffer");
            cr_assert_eq(smi_enclave_test_flip(e, where, bit), SM_OK);
        }
    }
    cr_assert_eq(sm_stats_get(&s1), SM_OK);
    cr_assert_eq(s1.buffers_live, s0.buffers_live);
    /* The refused opens' region waits in the region pool, wiped (test_pool.c). */
    cr_assert_eq(pooled_regions(), 1, "one region, taken and given back by every open");
    cr_assert_eq(s1.bytes_locked - smi_pool_test_bytes(), s0.bytes_locked, "nothing left behind");
    {
        sm_buffer b;

        cr_assert_eq(sm_enclave_open(e, &b), SM_OK, "restored, it opens again");
        cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    }
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
}

/* A ciphertext cut short, or read past its end into the mapping's slack: SM_E_AUTH. */
Test(enclave, truncation_and_extension_are_detected)
{
    uint8_t src[40];
    sm_enclave e;
    sm_buffer b = { 0 };

    fill(src, 40, 3);
    cr_assert_eq(sm_enclave_new(src, 40, &e), SM_OK);
    cr_assert_eq(smi_enclave_test_resize(e, 0), SM_E_INVAL);
    cr_assert_eq(smi_enclave_test_resize(e, sm_page_size()), SM_E_INVAL, "past the mapping");
    for (size_t n = 1; n <= 64; n += 7) {
        if (n == 40)
            continue;
        cr_assert_eq(smi_enclave_test_resize(e, n), SM_OK);
        cr_assert_eq(sm_enclave_size(e), n);
        cr_assert_eq(sm_enclave_open(e, &b), SM_E_AUTH, "size %zu", n);
        cr_assert_eq(b.id, 0, "no buffer");
    }
    cr_assert_eq(smi_enclave_test_resize(e, 40), SM_OK);
    cr_assert_eq(sm_enclave_open(e, &b), SM_OK, "restored, it opens again");
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
    cr_assert_eq(smi_enclave_test_resize(e, 8), SM_E_STATE, "stale");
    cr_assert_eq(smi_enclave_test_flip(e, 0, 0), SM_E_STATE, "stale");
}

Test(enclave, open_into_a_mutable_buffer_of_the_same_size)
{
    uint8_t src[48], want[48];
    sm_enclave e;
    sm_buffer dst, small, frozen;

    fill(src, 48, 5);
    memcpy(want, src, 48);
    cr_assert_eq(sm_enclave_new(src, 48, &e), SM_OK);
    cr_assert_eq(sm_buffer_new(48, &dst), SM_OK);
    cr_assert_eq(sm_buffer_new(47, &small), SM_OK);
    cr_assert_eq(sm_buffer_random(48, &frozen), SM_OK);
    cr_assert_eq(sm_enclave_open_into(e, dst), SM_OK);
    cr_assert(sm_equal(sm_buffer_data(dst), want, 48));
    cr_assert(sm_buffer_is_mutable(dst), "still MUTABLE");
    cr_assert_eq(sm_enclave_open_into(e, small), SM_E_INVAL);
    cr_assert_eq(sm_enclave_open_into(e, frozen), SM_E_STATE);
    /* Tampered: dst keeps what it had. */
    memset(sm_buffer_data(dst), 0xab, 48);
    cr_assert_eq(smi_enclave_test_flip(e, 1, 0), SM_OK);
    cr_assert_eq(sm_enclave_open_into(e, dst), SM_E_AUTH);
    for (int i = 0; i < 48; i++)
        cr_assert_eq(sm_buffer_data(dst)[i], 0xab);
    cr_assert_eq(sm_buffer_destroy(dst), SM_OK);
    cr_assert_eq(sm_enclave_open_into(e, dst), SM_E_STATE, "stale dst");
    cr_assert_eq(sm_buffer_destroy(small), SM_OK);
    cr_assert_eq(sm_buffer_destroy(frozen), SM_OK);
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
}

Test(enclave, seal_destroys_the_buffer_mutable_or_frozen)
{
    for (int frozen = 0; frozen < 2; frozen++) {
        sm_buffer b, back;
        sm_enclave e;
        uint8_t want[100];
        uint8_t *d;

        cr_assert_eq(sm_buffer_new(100, &b), SM_OK);
        fill(sm_buffer_data(b), 100, 1);
        memcpy(want, sm_buffer_data(b), 100);
        d = sm_buffer_data(b);
        if (frozen)
            cr_assert_eq(sm_buffer_freeze(b), SM_OK);
        cr_assert_eq(sm_buffer_seal(b, &e), SM_OK);
        cr_assert_not(sm_buffer_is_alive(b));
        cr_assert_eq(sm_buffer_seal(b, &e), SM_E_STATE);
        {
            char perms[5], flags[256];
            size_t locked;

            cr_assert_neq(smaps_of(d, perms, flags, sizeof flags, &locked), 0, "unmapped");
        }
        cr_assert_eq(sm_enclave_open(e, &back), SM_OK);
        cr_assert(sm_equal(sm_buffer_data(back), want, 100));
        cr_assert_eq(sm_buffer_destroy(back), SM_OK);
        cr_assert_eq(sm_enclave_destroy(e), SM_OK);
    }
}

Test(enclave, seal_failure_leaves_the_buffer_as_it_was)
{
    sm_buffer b;
    sm_enclave e = { 0 };
    counters before, after;

    cr_assert_eq(sm_buffer_random(64, &b), SM_OK);
    {
        /* Make the key and grow the registry first: both are kept for good. */
        sm_enclave warm;
        uint8_t x = 1;

        cr_assert_eq(sm_enclave_new(&x, 1, &warm), SM_OK);
        cr_assert_eq(sm_enclave_destroy(warm), SM_OK);
    }
    smi_spare_drain(); /* or the seal takes warm's mapping, and maps nothing */
    counters_get(&before);
    sm_os_fault_arm(SM_OS_MMAP, 1, ENOMEM, false);
    cr_assert_eq(sm_buffer_seal(b, &e), SM_E_NOMEM);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    cr_assert(sm_buffer_is_alive(b));
    cr_assert_not(sm_buffer_is_mutable(b), "still FROZEN");
    cr_assert_eq(e.id, 0);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
}

Test(enclave, seal_checks_the_canary, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    sm_buffer b;
    sm_enclave e;

    cr_assert_eq(sm_buffer_new(10, &b), SM_OK);
    sm_buffer_data(b)[-1] ^= 1;
    cr_assert_fail("seal returned %s", sm_status_str(sm_buffer_seal(b, &e)));
}

/* ---- spare ciphertext mappings (src/memory/spare.c) ---- */

/* An enclave of size bytes, made from a pattern, which must open back to it. */
static sm_enclave made(size_t size, uint8_t seed)
{
    uint8_t *src = malloc(size);
    sm_enclave e;

    cr_assert_not_null(src);
    fill(src, size, seed);
    cr_assert_eq(sm_enclave_new(src, size, &e), SM_OK);
    free(src);
    return e;
}

static void opens_to(sm_enclave e, size_t size, uint8_t seed)
{
    uint8_t *want = malloc(size);
    sm_buffer b;

    cr_assert_not_null(want);
    fill(want, size, seed);
    cr_assert_eq(sm_enclave_open(e, &b), SM_OK);
    cr_assert(sm_equal(sm_buffer_data(b), want, size));
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    free(want);
}

/*
 * The spare mappings in a forked child: entries that threads of the parent held in the
 * middle of a give (or a take) have no thread in the child to finish them. Before, they
 * stayed held in the child for good, with the gives' bytes counted: here every entry,
 * and the whole 8 MiB bound, so the child's destroys could never keep a mapping spare
 * again. Now the child's handler empties every entry (and unmaps the spare ones).
 */
Test(enclave, a_forked_child_reuses_the_spare_entries_that_other_threads_held)
{
    unsigned held[64];
    size_t share = (8u << 20) / 64, page = sm_page_size();
    sm_enclave e;
    pid_t pid;
    int status;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_enclave_destroy(made(100, 1)), SM_OK); /* a full entry, for the child */
    cr_assert_eq(smi_spare_test_bytes(), page);
    e = made(100, 1);
    for (unsigned i = 0; i < 64; i++)
        held[i] = smi_spare_test_hold(share);
    cr_assert_lt(held[63], 64, "every entry is held");
    pid = fork();
    if (pid == 0) {
        int why = 0;

        if (smi_spare_test_bytes() != 0)
            why = 1;
        else if (sm_enclave_destroy(made(100, 2)) != SM_OK)
            why = 2;
        else if (smi_spare_test_bytes() != page)
            why = 3; /* the give was refused: the entries are still held */
        _exit(why);
    }
    cr_assert_gt(pid, 0);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    for (unsigned i = 0; i < 64; i++)
        smi_spare_test_let_go(held[i], share);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %#x", status);
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
    cr_assert_eq(smi_spare_test_bytes(), page, "the parent gives to its spares again");
}

Test(enclave, a_destroyed_enclaves_mapping_is_sealed_into_again_with_no_system_call)
{
    sm_enclave e;
    size_t page = sm_page_size();

    cr_assert_eq(sm_init(NULL), SM_OK);
    e = made(100, 1); /* the key and the registry's chunk first: kept for good */
    sm_os_fault_reset();
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), 0, "kept spare, not unmapped");
    cr_assert_eq(smi_spare_test_bytes(), page);
    e = made(200, 2); /* the same length in pages */
    cr_assert_eq(sm_os_fault_calls(SM_OS_MMAP), 0, "the spare mapping was taken");
    cr_assert_eq(smi_spare_test_bytes(), 0);
    opens_to(e, 200, 2);
    /* A shorter seal into it: the old ciphertext's tail is gone, the tag still holds. */
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
    e = made(10, 3);
    opens_to(e, 10, 3);
    cr_assert_eq(smi_enclave_test_resize(e, 200), SM_OK);
    {
        sm_buffer b;

        cr_assert_eq(sm_enclave_open(e, &b), SM_E_AUTH);
    }
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
    /* Another length finds no spare: a fresh mapping. */
    sm_os_fault_reset();
    e = made(page, 4);
    cr_assert_eq(sm_os_fault_calls(SM_OS_MMAP), 1);
    opens_to(e, page, 4);
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
}

Test(enclave, spare_mappings_are_bounded_and_the_rest_unmapped, .timeout = 60)
{
    enum { N = 80 };
    static sm_enclave e[N];
    size_t page = sm_page_size();

    cr_assert_eq(sm_init(NULL), SM_OK);
    for (int i = 0; i < N; i++)
        e[i] = made(64, (uint8_t)i);
    sm_os_fault_reset();
    for (int i = 0; i < N; i++)
        cr_assert_eq(sm_enclave_destroy(e[i]), SM_OK);
    /* 64 entries: the other 16 were unmapped at once. */
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), N - 64);
    cr_assert_eq(smi_spare_test_bytes(), 64 * page);
    /* And by bytes: 8 MiB at most, however few the mappings. */
    smi_spare_drain();
    {
        size_t big = 3u << 20;
        uint8_t *src = malloc(big);
        sm_enclave b[4];

        cr_assert_not_null(src);
        for (int i = 0; i < 4; i++) {
            memset(src, i, big);
            cr_assert_eq(sm_enclave_new(src, big, &b[i]), SM_OK);
        }
        for (int i = 0; i < 4; i++)
            cr_assert_eq(sm_enclave_destroy(b[i]), SM_OK);
        cr_assert_eq(smi_spare_test_bytes(), 2 * smi_round_up(32 + big, page));
        free(src);
    }
}

Test(enclave, drain_unmaps_the_spare_mappings_and_purge_drains)
{
    size_t total;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_enclave_destroy(made(64, 1)), SM_OK);
    cr_assert_eq(sm_enclave_destroy(made(sm_page_size() + 100, 2)), SM_OK);
    cr_assert_eq(smi_spare_test_bytes(), 3 * sm_page_size());
    total = mapped_bytes() + smi_spare_test_bytes(); /* what /proc/self/maps says */
    sm_os_fault_reset();
    smi_spare_drain();
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), 2);
    cr_assert_eq(smi_spare_test_bytes(), 0);
    cr_assert_eq(mapped_bytes(), total - 3 * sm_page_size(), "unmapped, not just forgotten");
    /* sm_purge gives the memory back too. */
    cr_assert_eq(sm_enclave_destroy(made(64, 3)), SM_OK);
    cr_assert_eq(smi_spare_test_bytes(), sm_page_size());
    sm_purge();
    cr_assert_eq(smi_spare_test_bytes(), 0);
}

Test(enclave, a_refused_unmap_of_a_spare_leaves_ciphertext_and_the_drain_goes_on)
{
    size_t total;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_enclave_destroy(made(64, 1)), SM_OK);
    cr_assert_eq(sm_enclave_destroy(made(sm_page_size() + 100, 2)), SM_OK);
    total = mapped_bytes() + smi_spare_test_bytes();
    sm_os_fault_reset();
    sm_os_fault_arm(SM_OS_MUNMAP, 1, ENOMEM, false);
    smi_spare_drain();
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), 2, "the second one was still tried");
    sm_os_fault_reset();
    cr_assert_eq(smi_spare_test_bytes(), 0, "forgotten by the pool");
    cr_assert_gt(mapped_bytes(), total - 3 * sm_page_size(), "one left mapped (SM_OK_LEAKS)");
    cr_assert_lt(mapped_bytes(), total, "the other one unmapped");
    cr_assert_eq(sm_os_fault_reclaim(), 1);
}
