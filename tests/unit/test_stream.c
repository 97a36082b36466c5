/* SPDX-License-Identifier: ISC */
/* Streams: FIFO order byte for byte, chunk boundaries, next and flush, atomicity. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

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
