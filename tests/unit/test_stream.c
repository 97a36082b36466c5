/* SPDX-License-Identifier: ISC */
/* Streams: FIFO order byte for byte, chunk boundaries, next and flush, atomicity. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "helpers.h"

/* The chunk capacity: 4 pages less 64 bytes (the scratch region's canary). */
static size_t chunk_cap(void)
{
    return 4 * sm_page_size() - 64;
}

/* A deterministic byte at position i of the data written so far. */
static uint8_t byte_at(size_t i)
{
    return (uint8_t)(i * 2654435761u >> 13);
}

typedef struct fifo {
    sm_stream s;
    size_t    written, read;
} fifo;

static void put(fifo *f, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);

    for (size_t i = 0; i < n; i++)
        p[i] = byte_at(f->written + i);
    cr_assert_eq(sm_stream_write(f->s, p, n), SM_OK, "write %zu", n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(p[i], 0, "src wiped");
    f->written += n;
    cr_assert_eq(sm_stream_size(f->s), f->written - f->read);
    free(p);
}

static void take(fifo *f, size_t cap)
{
    uint8_t *p = malloc(cap ? cap : 1);
    size_t got = 0, want = f->written - f->read < cap ? f->written - f->read : cap;
    sm_status st = sm_stream_read(f->s, p, cap, &got);

    if (f->written == f->read) {
        cr_assert_eq(st, SM_E_EOF);
    } else {
        cr_assert_eq(st, SM_OK);
        cr_assert_eq(got, want);
        for (size_t i = 0; i < got; i++)
            cr_assert_eq(p[i], byte_at(f->read + i), "byte %zu", f->read + i);
        f->read += got;
    }
    cr_assert_eq(sm_stream_size(f->s), f->written - f->read);
    free(p);
}

static void check_buffer(fifo *f, sm_buffer b)
{
    size_t n = sm_buffer_size(b);
    const uint8_t *d = sm_buffer_data(b);

    cr_assert_not(sm_buffer_is_mutable(b), "FROZEN");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(d[i], byte_at(f->read + i));
    f->read += n;
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
}

Test(stream, write_sizes_around_the_chunk)
{
    size_t c = chunk_cap();
    const size_t sizes[] = { 1, c - 1, c, c + 1, 2 * c + 1, 0 };

    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        fifo f = { .written = 0 };

        cr_assert_eq(sm_stream_new(&f.s), SM_OK);
        put(&f, sizes[k]);
        take(&f, sizes[k] + 10);
        take(&f, 1);
        cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
    }
}

Test(stream, interleaved_reads_and_writes_keep_fifo_order)
{
    fifo f = { .written = 0 };
    size_t c = chunk_cap();

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    take(&f, 10);
    put(&f, 1);
    put(&f, 3);
    take(&f, 2);
    put(&f, c + 7);
    take(&f, c - 5);
    put(&f, 1);
    take(&f, 1);
    put(&f, 3 * c);
    take(&f, 2 * c + 3);
    put(&f, 100);
    take(&f, 1 << 20);
    take(&f, 1);
    cr_assert_eq(f.read, f.written);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

Test(stream, next_and_flush)
{
    fifo f = { .written = 0 };
    size_t c = chunk_cap();
    sm_buffer b;

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    cr_assert_eq(sm_stream_next(f.s, &b), SM_E_EOF);
    cr_assert_eq(sm_stream_flush(f.s, &b), SM_E_EOF);
    put(&f, 2 * c + 5);
    cr_assert_eq(sm_stream_next(f.s, &b), SM_OK);
    cr_assert_eq(sm_buffer_size(b), c, "one full chunk");
    check_buffer(&f, b);
    take(&f, 3);
    cr_assert_eq(sm_stream_next(f.s, &b), SM_OK);
    cr_assert_eq(sm_buffer_size(b), c - 3, "the rest of the chunk read in part");
    check_buffer(&f, b);
    put(&f, 10);
    cr_assert_eq(sm_stream_size(f.s), 15);
    cr_assert_eq(sm_stream_flush(f.s, &b), SM_OK);
    cr_assert_eq(sm_buffer_size(b), 15);
    check_buffer(&f, b);
    cr_assert_eq(sm_stream_size(f.s), 0);
    cr_assert_eq(sm_stream_next(f.s, &b), SM_E_EOF);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

Test(stream, sixty_four_mebibytes)
{
    size_t n = 64u << 20, step = 1u << 20;
    fifo f = { .written = 0 };
    sm_stats s0, s1;
    sm_buffer b;

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, 1); /* the enclave key is made, and locked, at the first seal */
    cr_assert_eq(sm_stats_get(&s0), SM_OK);
    for (size_t done = 1; done < n; done += step)
        put(&f, done + step > n ? n - done : step);
    cr_assert_eq(sm_stream_size(f.s), n);
    cr_assert_eq(sm_stats_get(&s1), SM_OK);
    cr_assert_eq(s1.bytes_locked, s0.bytes_locked, "chunks are ciphertext: nothing more locked");
    for (size_t done = 0; done < n / 2; done += step)
        take(&f, step);
    cr_assert_eq(sm_stream_flush(f.s, &b), SM_OK);
    check_buffer(&f, b);
    cr_assert_eq(f.read, n);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

Test(stream, memory_follows_the_data)
{
    sm_stream s;
    size_t before, after, n = 4000;
    uint8_t one = 1;

    cr_assert_eq(sm_stream_new(&s), SM_OK);
    cr_assert_eq(sm_stream_write(s, &one, 1), SM_OK);
    before = mapped_bytes();
    for (size_t i = 1; i < n; i++) {
        one = 1;
        cr_assert_eq(sm_stream_write(s, &one, 1), SM_OK);
    }
    after = mapped_bytes();
    cr_assert_eq(after, before, "4000 one-byte writes share the first chunk");
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
}

/* The index grows with the chunks and shrinks back with them (spec/enclaves-streams.md). */
static uint8_t big[3u << 20]; /* static: malloc's own mappings would move the totals */

Test(stream, index_follows_the_data)
{
    size_t before, got, n = sizeof big;
    sm_stream s;
    sm_buffer b;

    cr_assert_eq(sm_stream_new(&s), SM_OK);
    cr_assert_eq(sm_stream_write(s, big, 1), SM_OK); /* the enclave key: made and kept */
    cr_assert_eq(sm_stream_read(s, big, 1, &got), SM_OK);
    before = mapped_bytes();
    for (int round = 0; round < 2; round++) {
        memset(big, 0x5a, n);
        cr_assert_eq(sm_stream_write(s, big, n), SM_OK); /* 193 chunks: 4 pages of index */
        cr_assert_gt(mapped_bytes(), before + 193 * 4 * sm_page_size());
        if (round == 0) {
            cr_assert_eq(sm_stream_read(s, big, n - 5, &got), SM_OK);
            cr_assert_eq(sm_stream_read(s, big, 5, &got), SM_OK);
        } else {
            cr_assert_eq(sm_stream_flush(s, &b), SM_OK);
            cr_assert_eq(sm_buffer_size(b), n);
            cr_assert_eq(sm_buffer_data(b)[n - 1], 0x5a);
            cr_assert_eq(sm_buffer_destroy(b), SM_OK);
        }
        cr_assert_eq(mapped_bytes(), before, "every chunk gone, the index back to one page");
    }
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
}

/* A write of 3 chunks whose first new run is refused: it changes nothing. */
static void refused_write(fifo *f, size_t held)
{
    size_t c = chunk_cap();
    uint8_t *p = malloc(3 * c);
    counters before, after;

    cr_assert(p != NULL);
    memset(p, 0x42, 3 * c);
    counters_get(&before);
    sm_os_fault_arm(SM_OS_MMAP, 1, ENOMEM, false);
    cr_assert_eq(sm_stream_write(f->s, p, 3 * c), SM_E_NOMEM);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    cr_assert_eq(p[0], 0x42, "src untouched");
    cr_assert_eq(sm_stream_size(f->s), held);
    free(p);
}

Test(stream, failed_write_changes_nothing)
{
    fifo f = { .written = 0 };

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, 10);
    refused_write(&f, 10); /* the one run of its 4 chunks */
    take(&f, 100);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

Test(stream, failed_read_consumes_nothing)
{
    fifo f = { .written = 0 };
    size_t c = chunk_cap();
    uint8_t *p = malloc(c + 5);
    size_t got = 99;

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, 2 * c);
    sm_os_fault_arm(SM_OS_MPROTECT, 1, ENOMEM, false); /* the view of the key */
    cr_assert_eq(sm_stream_read(f.s, p, c + 5, &got), SM_E_PROT);
    cr_assert_eq(got, 99, "got untouched");
    cr_assert_eq(sm_stream_size(f.s), 2 * c);
    take(&f, 2 * c);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
    free(p);
}

Test(stream, bad_arguments_and_stale_handles)
{
    sm_stream s, zero = { 0 };
    sm_buffer b;
    size_t got;
    uint8_t x;

    cr_assert_eq(sm_stream_new(NULL), SM_E_INVAL);
    cr_assert_eq(sm_stream_new(&s), SM_OK);
    cr_assert_eq(sm_stream_write(s, NULL, 1), SM_E_INVAL);
    cr_assert_eq(sm_stream_write(s, NULL, 0), SM_OK);
    cr_assert_eq(sm_stream_read(s, &x, 1, NULL), SM_E_INVAL);
    cr_assert_eq(sm_stream_read(s, NULL, 1, &got), SM_E_INVAL);
    cr_assert_eq(sm_stream_next(s, NULL), SM_E_INVAL);
    cr_assert_eq(sm_stream_flush(s, NULL), SM_E_INVAL);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    cr_assert_eq(sm_stream_destroy(s), SM_E_STATE);
    cr_assert_eq(sm_stream_write(s, &x, 1), SM_E_STATE);
    cr_assert_eq(sm_stream_read(s, &x, 1, &got), SM_E_STATE);
    cr_assert_eq(sm_stream_next(s, &b), SM_E_STATE);
    cr_assert_eq(sm_stream_flush(zero, &b), SM_E_STATE);
    cr_assert_eq(sm_stream_size(s), 0);
}

Test(stream, purge_unmaps_chunks)
{
    fifo f = { .written = 0 };
    size_t before;

    /* The registry's chunk and the enclave key exist before the measure. */
    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, 1);
    before = mapped_bytes();
    put(&f, 5 * chunk_cap());
    sm_purge();
    cr_assert_eq(sm_stream_size(f.s), 0);
    cr_assert_lt(mapped_bytes(), before, "the chunks, the scratch and the key are gone");
}

/* ---- spare chunk mappings (src/memory/spare.c) ---- */

Test(stream, steady_writes_and_reads_map_and_unmap_no_chunk)
{
    fifo f = { .written = 0 };
    size_t c = chunk_cap();

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, 8 * c); /* the key, the registry's chunk and the index: made and kept */
    take(&f, 8 * c);
    cr_assert_eq(smi_spare_test_bytes(), 8 * 4 * sm_page_size(), "the chunks kept spare");
    sm_os_fault_reset();
    for (int round = 0; round < 4; round++) {
        put(&f, 8 * c);
        take(&f, 8 * c);
    }
    cr_assert_eq(sm_os_fault_calls(SM_OS_MMAP), 0, "every chunk a spare one");
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), 0, "every chunk kept spare");
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

Test(stream, a_reused_chunk_is_zeroed_past_its_ciphertext)
{
    fifo f = { .written = 0 };
    size_t c = chunk_cap(), len;
    uint8_t *map;

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, c);
    take(&f, c);
    cr_assert_eq(smi_spare_test_bytes(), 4 * sm_page_size());
    put(&f, 10);
    cr_assert_eq(smi_spare_test_bytes(), 0, "the spare chunk was taken");
    cr_assert_eq(smi_stream_test_chunk(f.s, 0, &map, &len), SM_OK);
    for (size_t i = 10; i < len; i++)
        cr_assert_eq(map[i], 0, "byte %zu of the chunk still holds old ciphertext", i);
    take(&f, 10);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

/* ---- runs: chunks carved from shared mappings (spec/enclaves-streams.md, "Runs") ---- */

/* Whether the page at p is mapped: mincore refuses an unmapped range with ENOMEM. */
static bool is_mapped(const void *p)
{
    unsigned char v;
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)(sm_page_size() - 1);

    return mincore((void *)page, 1, &v) == 0;
}

Test(stream, a_failed_write_across_two_runs_changes_nothing)
{
    fifo f = { .written = 0 };
    size_t c = chunk_cap();

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, 3 * c); /* a run of 4 slots, 3 carved */
    /* The first chunk takes the last slot; the second needs a new run, refused. */
    refused_write(&f, 3 * c);
    put(&f, 3 * c); /* the slot the failed write carved is carved again */
    take(&f, 6 * c);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

Test(stream, a_run_is_given_back_when_its_last_chunk_leaves)
{
    fifo f = { .written = 0 };
    size_t c = chunk_cap(), len;
    uint8_t *first, *tail, *moved;

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, 1); /* the key and the index: made and kept */
    take(&f, 1);
    smi_spare_test_off(true); /* every run given back is unmapped */
    put(&f, c + 10); /* one run of 2 slots: a full chunk, then a tail of 10 bytes */
    cr_assert_eq(smi_stream_test_chunk(f.s, 0, &first, &len), SM_OK);
    cr_assert_eq(smi_stream_test_chunk(f.s, 1, &tail, &len), SM_OK);
    cr_assert_eq(tail, first + len, "the tail is the run's second slot");
    sm_os_fault_reset();
    put(&f, 10); /* the tail replaced out of order, by a chunk of a new run */
    cr_assert_eq(smi_stream_test_chunk(f.s, 1, &moved, &len), SM_OK);
    cr_assert_eq(sm_os_fault_calls(SM_OS_MMAP), 1, "the new run");
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), 0, "the first run still holds chunk 0");
    cr_assert(is_mapped(tail));
    take(&f, c); /* the first run's last chunk */
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), 1, "the first run, whole");
    cr_assert(!is_mapped(first) && !is_mapped(tail));
    take(&f, 20);
    cr_assert(!is_mapped(moved), "the emptied stream keeps no run");
    smi_spare_test_off(false);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

Test(stream, small_writes_reuse_the_tails_slot)
{
    fifo f = { .written = 0 };
    size_t c = chunk_cap(), len;
    uint8_t *tail, *now;

    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, 2 * c + 10); /* a run of 4 slots, 3 carved: the tail is the third */
    cr_assert_eq(smi_stream_test_chunk(f.s, 2, &tail, &len), SM_OK);
    sm_os_fault_reset();
    for (int i = 0; i < 200; i++)
        put(&f, 10);
    cr_assert_eq(smi_stream_test_chunk(f.s, 2, &now, &len), SM_OK);
    cr_assert_eq(now, tail, "each new tail moved into the old one's slot");
    cr_assert_eq(sm_os_fault_calls(SM_OS_MMAP) + sm_os_fault_calls(SM_OS_MUNMAP), 0);
    take(&f, 3 * c);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

Test(stream, a_full_run_is_a_huge_page_when_the_kernel_has_them)
{
    fifo f = { .written = 0 };
    size_t c = chunk_cap(), len, page = sm_page_size();
    uint8_t *map;

    if (page != 4096)
        cr_skip_test("runs reach a page table's reach only with 4 KiB pages");
    cr_assert_eq(sm_stream_new(&f.s), SM_OK);
    put(&f, 100 * c); /* 100 chunks: a run of 128, 2 MiB */
    cr_assert_eq(smi_stream_test_chunk(f.s, 0, &map, &len), SM_OK);
    cr_assert_eq((uintptr_t)map % (2u << 20), 0, "the run starts on a 2 MiB boundary");
#if !defined(SM_OS_GENERIC) /* the POSIX flavour has no madvise */
    /* A kernel built without transparent huge pages refuses the advice: speed only. */
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0) {
        char perms[5], flags[256];
        size_t locked;

        cr_assert_eq(smaps_of(map, perms, flags, sizeof flags, &locked), 0);
        cr_assert(strstr(flags, " hg") != NULL, "advised MADV_HUGEPAGE: VmFlags%s", flags);
    }
#endif
    take(&f, 100 * c);
    cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
}

/* Static sources (big): malloc's own mappings, ASan's quarantine too, would move the totals. */
static void write_big(sm_stream s, size_t n)
{
    memset(big, 0x33, n);
    cr_assert_eq(sm_stream_write(s, big, n), SM_OK);
}

static void read_big(sm_stream s, size_t n)
{
    size_t got;

    cr_assert_eq(sm_stream_read(s, big, n, &got), SM_OK);
    cr_assert_eq(got, n);
    cr_assert_eq(big[n - 1], 0x33);
}

Test(stream, interleaved_writes_and_reads_keep_a_bounded_number_of_runs)
{
    size_t before, most = 0;
    sm_stream s;

    cr_assert_eq(sm_stream_new(&s), SM_OK);
    write_big(s, 1); /* the enclave key: made and kept */
    read_big(s, 1);
    before = mapped_bytes();
    write_big(s, 1u << 20);
    for (int round = 0; round < 64; round++) {
        size_t now;

        write_big(s, (1u << 20) + 999);
        read_big(s, (1u << 20) + 999);
        now = mapped_bytes() - before;
        most = now > most ? now : most;
    }
    /*
     * About 1 MiB held, 65 chunks: at most the front run, the run being carved and one
     * between, huge ones each 4 MiB of address space. A run kept per round would be 64.
     */
    cr_assert_leq(most, 4 * (4u << 20), "%zu bytes mapped for 1 MiB held", most);
    read_big(s, 1u << 20);
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
}

Test(stream, destroy_and_a_forked_child_give_back_every_run)
{
    size_t before, held;
    sm_stream s;
    pid_t pid;
    int status;

    cr_assert_eq(sm_stream_new(&s), SM_OK);
    write_big(s, 1);
    read_big(s, 1);
    before = mapped_bytes();
    for (int i = 0; i < 3; i++)
        write_big(s, (1u << 20) + 77); /* runs of 128: one partly read below */
    read_big(s, 5000);
    held = mapped_bytes();
    cr_assert_gt(held, before + (3u << 20));
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) /* smi_stream_forget: the child holds no run of the parent's */
        _exit(mapped_bytes() + (3u << 20) <= held ? 0 : 1);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child kept runs");
    cr_assert_eq(sm_stream_destroy(s), SM_OK);
    cr_assert_leq(mapped_bytes(), before, "every run given back");
}

/*
 * The memory bound of spec/enclaves-streams.md ("Runs"), checked rather than argued:
 * the slots a stream maps, less the front run's slots already read and the run being
 * carved's slots not yet carved, are at most three per chunk held. Random interleavings
 * of writes, reads, next and flush (seeded, so a failure replays), the bound checked
 * after every call.
 */
static uint64_t rnd_state;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* A length of the kinds that change the runs: a few bytes, about a chunk, many chunks. */
static size_t rnd_len(size_t c, size_t held)
{
    switch (rnd() % 8) {
    case 0: case 1: return 1 + rnd() % 16;
    case 2: return c - 2 + rnd() % 5;
    case 3: return 1 + rnd() % (3 * c);
    case 4: return rnd() % 2 ? held / 2 + 1 : held + 1;
    case 5: return 1 + rnd() % (20 * c);
    case 6: return rnd() % 16 == 0 ? 130 * c + rnd() % c : c;
    default: return 1 + rnd() % (c / 2);
    }
}

static void assert_bound(sm_stream s, uint64_t seed, int op)
{
    smi_stream_slots n;

    cr_assert_eq(smi_stream_test_slots(s, &n), SM_OK, "seed %llu op %d: the tail is out of "
                 "the run being carved, or an empty stream carves one", (unsigned long long)seed, op);
    cr_assert_leq(n.read + n.uncarved, n.mapped, "seed %llu op %d",
                  (unsigned long long)seed, op);
    cr_assert_leq(n.mapped - n.read - n.uncarved, 3 * n.chunks,
                  "seed %llu op %d: %zu slots mapped (%zu read, %zu not carved) for %zu chunks",
                  (unsigned long long)seed, op, n.mapped, n.read, n.uncarved, n.chunks);
}

/* Static (fsrc): malloc's own mappings would move mapped_bytes' totals. */
static uint8_t fsrc[40u << 16];

static void fput(fifo *f, size_t n)
{
    n = n < sizeof fsrc ? n : sizeof fsrc;
    for (size_t i = 0; i < n; i++)
        fsrc[i] = byte_at(f->written + i);
    cr_assert_eq(sm_stream_write(f->s, fsrc, n), SM_OK, "write %zu", n);
    f->written += n;
}

static void ftake(fifo *f, size_t n)
{
    size_t got = 0;
    sm_status st = sm_stream_read(f->s, fsrc, n < sizeof fsrc ? n : sizeof fsrc, &got);

    cr_assert_eq(st, f->written == f->read ? SM_E_EOF : SM_OK);
    for (size_t i = 0; i < got; i++)
        cr_assert_eq(fsrc[i], byte_at(f->read + i), "byte %zu", f->read + i);
    f->read += got;
}

/*
 * Also, with the spare mappings off (a run given back is unmapped): whenever the stream
 * is empty, nothing of it is mapped but its one page of index, so that no run is lost
 * track of (the slots above count only the runs that the records name).
 */
Test(stream, random_interleavings_keep_the_memory_bound, .timeout = 600)
{
    size_t c = chunk_cap();

    smi_spare_test_off(true);
    smi_spare_drain();
    for (uint64_t seed = 1; seed <= 6; seed++) {
        fifo f = { .written = 0 };
        size_t empty;

        rnd_state = seed * 0x9e3779b97f4a7c15u;
        cr_assert_eq(sm_stream_new(&f.s), SM_OK);
        fput(&f, 1); /* the enclave key: made and kept */
        ftake(&f, 1);
        empty = mapped_bytes();
        for (int op = 0; op < 600; op++) {
            size_t held = f.written - f.read;
            sm_buffer b;

            switch (rnd() % 10) {
            case 0: case 1: case 2: case 3: case 4:
                /* Below about 3 MiB held, so that a run of 2 MiB is made and let go. */
                if (held < (3u << 20))
                    fput(&f, rnd_len(c, held));
                break;
            case 5: case 6: case 7:
                ftake(&f, rnd_len(c, held));
                break;
            case 8:
                if (held == 0) {
                    cr_assert_eq(sm_stream_next(f.s, &b), SM_E_EOF);
                } else {
                    cr_assert_eq(sm_stream_next(f.s, &b), SM_OK);
                    check_buffer(&f, b);
                }
                break;
            default:
                if (rnd() % 4 != 0 || held == 0)
                    break;
                cr_assert_eq(sm_stream_flush(f.s, &b), SM_OK);
                check_buffer(&f, b);
            }
            cr_assert_eq(sm_stream_size(f.s), f.written - f.read);
            assert_bound(f.s, seed, op);
            /* Memcheck's own mappings move the totals (as for counters_equal). */
            if (f.written == f.read && !RUNNING_ON_VALGRIND)
                cr_assert_eq(mapped_bytes(), empty, "seed %llu op %d: empty, yet runs mapped",
                             (unsigned long long)seed, op);
        }
        cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
    }
    smi_spare_test_off(false);
}

/*
 * The same interleavings with one OS call refused at a random point of each call
 * (mmap, mprotect, munmap, madvise or mlock, its first to eighth use): a refused call
 * consumes nothing, leaves src as it was and maps nothing more (all or nothing, spec/
 * enclaves-streams.md), a refused munmap at most leaves ciphertext mapped, and the
 * FIFO order and the memory bound hold throughout. The spare mappings are off, so that
 * a run made and given back by a refused call is unmapped and shows.
 */
Test(stream, random_interleavings_with_refused_calls, .timeout = 600)
{
    const sm_os_fn fns[] = { SM_OS_MMAP, SM_OS_MPROTECT, SM_OS_MUNMAP, SM_OS_MADVISE,
                             SM_OS_MLOCK };
    size_t c = chunk_cap();

    smi_spare_test_off(true);
    smi_spare_drain();
    for (uint64_t seed = 1; seed <= 4; seed++) {
        fifo f = { .written = 0 };

        rnd_state = seed * 0x9e3779b97f4a7c15u;
        cr_assert_eq(sm_stream_new(&f.s), SM_OK);
        put(&f, 1); /* the enclave key: made and kept */
        take(&f, 1);
        for (int op = 0; op < 400; op++) {
            size_t held = f.written - f.read, n = rnd_len(c, held), got = 0, m0;
            sm_os_fn fn = fns[rnd() % (sizeof fns / sizeof fns[0])];
            unsigned kind = (unsigned)(rnd() % 4);
            sm_buffer b;
            sm_status st;

            n = n < sizeof fsrc ? n : sizeof fsrc;
            if (kind == 0 && held + n > (3u << 20))
                kind = 1;
            for (size_t i = 0; i < n && kind == 0; i++)
                fsrc[i] = byte_at(f.written + i);
            m0 = mapped_bytes();
            sm_os_fault_arm(fn, 1 + rnd() % 8, fn == SM_OS_MUNMAP ? EINVAL : ENOMEM, false);
            if (kind == 0)
                st = sm_stream_write(f.s, fsrc, n);
            else if (kind == 1)
                st = sm_stream_read(f.s, fsrc, n, &got);
            else
                st = kind == 2 ? sm_stream_next(f.s, &b) : sm_stream_flush(f.s, &b);
            sm_os_fault_reset();
            if (st == SM_E_EOF) {
                cr_assert_eq(held, 0);
            } else if (st != SM_OK) {
                cr_assert_neq(st, SM_E_AUTH, "seed %llu op %d", (unsigned long long)seed, op);
                cr_assert_eq(sm_stream_size(f.s), held, "nothing consumed");
                cr_assert(kind != 0 || fsrc[0] == byte_at(f.written), "src untouched");
                cr_assert(fn == SM_OS_MUNMAP || RUNNING_ON_VALGRIND || mapped_bytes() == m0,
                          "seed %llu op %d: a refused call left something mapped",
                          (unsigned long long)seed, op);
            } else if (kind == 0) {
                f.written += n;
                for (size_t i = 0; i < n; i++)
                    cr_assert_eq(fsrc[i], 0, "src wiped");
            } else if (kind == 1) {
                for (size_t i = 0; i < got; i++)
                    cr_assert_eq(fsrc[i], byte_at(f.read + i), "byte %zu", f.read + i);
                f.read += got;
            } else {
                check_buffer(&f, b);
            }
            cr_assert_eq(sm_stream_size(f.s), f.written - f.read);
            assert_bound(f.s, seed, op);
        }
        while (f.read < f.written)
            take(&f, 1u << 20);
        cr_assert_eq(sm_stream_destroy(f.s), SM_OK);
    }
    smi_spare_test_off(false);
}
