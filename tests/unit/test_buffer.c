/* SPDX-License-Identifier: ISC */
/*
 * Buffers through the public API. The state machine is checked cell by cell from
 * spec/buffer-states.tsv: each operation in each state, its status, the state after it,
 * and the page protection that the kernel shows for that state.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

#define N 100

static const char *state_names[] = { "MUTABLE", "FROZEN", "DESTROYED" };

static sm_buffer in_state(int state)
{
    sm_buffer b;

    cr_assert_eq(sm_buffer_new(N, &b), SM_OK);
    if (state == 1)
        cr_assert_eq(sm_buffer_freeze(b), SM_OK);
    if (state == 2)
        cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    return b;
}

/* Run the named operation; queries report SM_E_STATE when they give NULL/0/false. */
static sm_status run(const char *op, sm_buffer b)
{
    uint8_t src[N];
    bool eq;

    memset(src, 0x33, sizeof src);
    if (!strcmp(op, "freeze")) return sm_buffer_freeze(b);
    if (!strcmp(op, "melt")) return sm_buffer_melt(b);
    if (!strcmp(op, "copy")) return sm_buffer_copy(b, src, N);
    if (!strcmp(op, "copy_at")) return sm_buffer_copy_at(b, 10, src, N - 10);
    if (!strcmp(op, "move")) return sm_buffer_move(b, src, N);
    if (!strcmp(op, "move_at")) return sm_buffer_move_at(b, N - 1, src, 1);
    if (!strcmp(op, "scramble")) return sm_buffer_scramble(b);
    if (!strcmp(op, "wipe")) return sm_buffer_wipe(b);
    if (!strcmp(op, "equal")) return sm_buffer_equal(b, src, N, &eq);
    if (!strcmp(op, "data")) return sm_buffer_data(b) != NULL ? SM_OK : SM_E_STATE;
    if (!strcmp(op, "size")) return sm_buffer_size(b) == N ? SM_OK : SM_E_STATE;
    if (!strcmp(op, "is_alive")) return sm_buffer_is_alive(b) ? SM_OK : SM_E_STATE;
    if (!strcmp(op, "is_mutable")) {
        /* true or false are both answers for a live buffer; stale is false. */
        bool alive = sm_buffer_is_alive(b);
        return alive ? SM_OK : (sm_buffer_is_mutable(b) ? SM_E_INVAL : SM_E_STATE);
    }
    if (!strcmp(op, "seal")) return SM_E_UNSUPPORTED; /* with enclaves */
    if (!strcmp(op, "destroy")) return sm_buffer_destroy(b);
    cr_assert_fail("no test for operation %s", op);
    return SM_E_INVAL;
}

static int state_of(sm_buffer b, uint8_t *data)
{
    char perms[5], flags[256];
    size_t locked;

    if (!sm_buffer_is_alive(b)) {
        cr_assert_neq(smaps_of(data, perms, flags, sizeof flags, &locked), 0,
                      "a destroyed buffer's pages are unmapped");
        return 2;
    }
    cr_assert_eq(smaps_of(data, perms, flags, sizeof flags, &locked), 0);
    if (sm_buffer_is_mutable(b)) {
        cr_assert_str_eq(perms, "rw-p", "MUTABLE pages are read-write");
        return 0;
    }
    cr_assert_str_eq(perms, "r--p", "FROZEN pages are read-only");
    return 1;
}

Test(buffer, every_cell_of_the_state_table)
{
    tsv_row *rows;
    size_t n = tsv_load("buffer-states.tsv", &rows), cells = 0;

    cr_assert(sm_init(NULL) == SM_OK);
    for (size_t j = 0; j < n; j++) {
        cr_assert_eq(rows[j].nf, 5);
        if (!strcmp(rows[j].f[0], "seal"))
            continue; /* covered by the enclave suite */
        for (int st = 0; st < 3; st++) {
            char want_status[32], want_state[32];
            sm_buffer b = in_state(st);
            uint8_t *data = st == 2 ? NULL : sm_buffer_data(b);
            sm_status got;
            int after;

            cr_assert_eq(sscanf(rows[j].f[2 + st], "%31s %31s", want_status, want_state), 2);
            if (data == NULL) {
                sm_buffer live = in_state(0); /* for the unmapped check: any dead address */
                data = sm_buffer_data(live);
                cr_assert_eq(sm_buffer_destroy(live), SM_OK);
            }
            got = run(rows[j].f[0], b);
            cr_expect_eq(got, status_from_name(want_status), "%s in %s: got %s, want %s",
                         rows[j].f[0], state_names[st], sm_status_str(got), want_status);
            after = state_of(b, data);
            cr_expect_str_eq(state_names[after], want_state, "%s in %s", rows[j].f[0],
                             state_names[st]);
            if (after != 2)
                cr_assert_eq(sm_buffer_destroy(b), SM_OK);
            cells++;
        }
    }
    cr_assert_eq(cells, 14 * 3);
    tsv_free(rows, n);
}

Test(buffer, new_is_zeroed_and_mutable_and_counted)
{
    sm_buffer b;
    sm_stats s0, s1;
    uint8_t *d;

    cr_assert_eq(sm_stats_get(&s0), SM_OK);
    cr_assert_eq(sm_buffer_new(5000, &b), SM_OK);
    cr_assert_neq(b.id, 0);
    cr_assert_eq(sm_buffer_size(b), 5000);
    cr_assert(sm_buffer_is_mutable(b));
    d = sm_buffer_data(b);
    for (int i = 0; i < 5000; i++)
        cr_assert_eq(d[i], 0);
    cr_assert_eq(sm_stats_get(&s1), SM_OK);
    cr_assert_eq(s1.buffers_live, s0.buffers_live + 1);
    cr_assert_eq(s1.bytes_locked, s0.bytes_locked + 2 * 4096);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert_eq(sm_stats_get(&s1), SM_OK);
    cr_assert_eq(s1.buffers_live, s0.buffers_live);
    cr_assert_eq(s1.bytes_locked, s0.bytes_locked);
    cr_assert_eq(sm_buffer_destroy(b), SM_E_STATE, "double destroy");
}

Test(buffer, bad_arguments)
{
    sm_buffer b = { 0 }, live;
    uint8_t src[8] = { 1 };
    bool eq;

    cr_assert_eq(sm_buffer_new(0, &b), SM_E_INVAL);
    cr_assert_eq(sm_buffer_new(1, NULL), SM_E_INVAL);
    cr_assert_eq(sm_buffer_new(SIZE_MAX, &b), SM_E_INVAL);
    cr_assert_eq(sm_buffer_from_bytes(NULL, 1, &b), SM_E_INVAL);
    cr_assert_eq(sm_buffer_from_bytes(src, 0, &b), SM_E_INVAL);
    cr_assert_eq(sm_buffer_from_bytes(src, 8, NULL), SM_E_INVAL);
    cr_assert_eq(src[0], 1, "not wiped on failure");
    cr_assert_eq(sm_buffer_random(0, &b), SM_E_INVAL);
    cr_assert_eq(sm_buffer_from_fd(0, 0, &b), SM_E_INVAL);
    cr_assert_eq(sm_buffer_from_fd_all(0, NULL), SM_E_INVAL);
    cr_assert_eq(sm_buffer_from_fd_until(0, '\n', NULL), SM_E_INVAL);
    cr_assert_eq(b.id, 0, "out untouched");
    cr_assert_eq(sm_buffer_new(8, &live), SM_OK);
    cr_assert_eq(sm_buffer_copy(live, src, 9), SM_E_INVAL);
    cr_assert_eq(sm_buffer_copy(live, NULL, 1), SM_E_INVAL);
    cr_assert_eq(sm_buffer_copy(live, NULL, 0), SM_OK);
    cr_assert_eq(sm_buffer_copy_at(live, 8, src, 1), SM_E_INVAL);
    cr_assert_eq(sm_buffer_copy_at(live, 9, src, 0), SM_E_INVAL);
    cr_assert_eq(sm_buffer_copy_at(live, 1, src, SIZE_MAX), SM_E_INVAL, "no wrap-around");
    cr_assert_eq(sm_buffer_move_at(live, 4, src, 5), SM_E_INVAL);
    cr_assert_eq(src[0], 1, "a refused move wipes nothing");
    for (int i = 0; i < 8; i++)
        cr_assert_eq(sm_buffer_data(live)[i], 0, "a refused write writes nothing");
    cr_assert_eq(sm_buffer_equal(live, src, 8, NULL), SM_E_INVAL);
    cr_assert_eq(sm_buffer_equal(live, NULL, 8, &eq), SM_E_INVAL);
    cr_assert_eq(sm_buffer_destroy(live), SM_OK);
}

Test(buffer, stale_and_foreign_handles)
{
    sm_buffer zero = { 0 }, junk = { 0xdeadbeefcafef00dULL };
    sm_buffer b;

    cr_assert_eq(sm_buffer_freeze(zero), SM_E_STATE);
    cr_assert_eq(sm_buffer_destroy(junk), SM_E_STATE);
    cr_assert_null(sm_buffer_data(junk));
    cr_assert_eq(sm_buffer_size(zero), 0);
    cr_assert_not(sm_buffer_is_alive(junk));
    cr_assert_eq(sm_buffer_new(4, &b), SM_OK);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    for (int i = 0; i < 10; i++) {
        sm_buffer again;

        cr_assert_eq(sm_buffer_new(4, &again), SM_OK);
        cr_assert_neq(again.id, b.id, "ids are never reused");
        cr_assert_eq(sm_buffer_destroy(again), SM_OK);
    }
    cr_assert_not(sm_buffer_is_alive(b));
}

Test(buffer, from_bytes_copies_wipes_and_freezes)
{
    uint8_t src[33];
    sm_buffer b;
    bool eq;
    uint8_t want[33];

    for (int i = 0; i < 33; i++)
        src[i] = want[i] = (uint8_t)(i + 1);
    cr_assert_eq(sm_buffer_from_bytes(src, 33, &b), SM_OK);
    for (int i = 0; i < 33; i++)
        cr_assert_eq(src[i], 0, "src wiped");
    cr_assert_not(sm_buffer_is_mutable(b));
    cr_assert_eq(sm_buffer_equal(b, want, 33, &eq), SM_OK);
    cr_assert(eq);
    cr_assert_eq(sm_buffer_equal(b, want, 32, &eq), SM_OK);
    cr_assert_not(eq, "a shorter input is not equal");
    want[32] ^= 1;
    cr_assert_eq(sm_buffer_equal(b, want, 33, &eq), SM_OK);
    cr_assert_not(eq);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
}

Test(buffer, random_scramble_wipe_move)
{
    sm_buffer a, b;
    uint8_t zero[64] = { 0 }, src[64];
    bool eq;

    cr_assert_eq(sm_buffer_random(64, &a), SM_OK);
    cr_assert_eq(sm_buffer_random(64, &b), SM_OK);
    cr_assert_not(sm_equal(sm_buffer_data(a), sm_buffer_data(b), 64), "two draws differ");
    cr_assert_not(sm_equal(sm_buffer_data(a), zero, 64));
    cr_assert_eq(sm_buffer_melt(a), SM_OK);
    cr_assert_eq(sm_buffer_wipe(a), SM_OK);
    cr_assert_eq(sm_buffer_equal(a, zero, 64, &eq), SM_OK);
    cr_assert(eq);
    cr_assert_eq(sm_buffer_scramble(a), SM_OK);
    cr_assert_eq(sm_buffer_equal(a, zero, 64, &eq), SM_OK);
    cr_assert_not(eq);
    memset(src, 7, sizeof src);
    cr_assert_eq(sm_buffer_move_at(a, 60, src, 4), SM_OK);
    cr_assert_eq(sm_buffer_data(a)[63], 7);
    cr_assert_eq(src[0], 0, "move wipes its source");
    cr_assert_eq(src[4], 7, "only n bytes of it");
    cr_assert_eq(sm_buffer_destroy(a), SM_OK);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
}

Test(buffer, frozen_write_faults, .signal = SIGSEGV)
{
    sm_buffer b;
    volatile uint8_t *d;

    cr_assert_eq(sm_buffer_random(16, &b), SM_OK);
    d = sm_buffer_data(b);
    (void)d[0];
    d[0] = 1;
}

Test(buffer, one_past_the_end_faults, .signal = SIGSEGV)
{
    sm_buffer b;
    volatile uint8_t *d;

    cr_assert_eq(sm_buffer_new(4097, &b), SM_OK);
    d = sm_buffer_data(b);
    d[4096] = 1;
    d[4097] = 1;
}

Test(buffer, damaged_canary_panics_at_destroy, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    sm_buffer b;

    cr_assert_eq(sm_buffer_new(10, &b), SM_OK);
    sm_buffer_data(b)[-1] ^= 0x10;
    cr_assert_fail("destroy returned %s instead of panicking", sm_status_str(sm_buffer_destroy(b)));
}

/* ---- file descriptors ---- */

static int pipe_with(const void *data, size_t n)
{
    int fds[2];

    cr_assert_eq(pipe(fds), 0);
    if (fork() == 0) {
        const uint8_t *p = data;

        close(fds[0]);
        while (n > 0) {
            ssize_t w = write(fds[1], p, n);

            if (w <= 0)
                _exit(1);
            p += w;
            n -= (size_t)w;
        }
        _exit(0);
    }
    close(fds[1]);
    return fds[0];
}

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n);

    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131 + (i >> 8));
    return p;
}

Test(buffer_fd, exact_size_from_a_pipe_in_large_reads)
{
    size_t n = 3u << 20;
    uint8_t *want = pattern(n);
    int fd = pipe_with(want, n);
    sm_buffer b;

    sm_os_fault_reset();
    cr_assert_eq(sm_buffer_from_fd(fd, n, &b), SM_OK);
    cr_assert_lt(sm_os_fault_calls(SM_OS_READ), n / 1024, "chunks, not bytes");
    cr_assert_eq(sm_buffer_size(b), n);
    cr_assert(sm_equal(sm_buffer_data(b), want, n));
    cr_assert_not(sm_buffer_is_mutable(b));
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    close(fd);
    free(want);
}

Test(buffer_fd, short_input_is_io_and_leaves_nothing)
{
    int fd = pipe_with("abc", 3);
    sm_buffer b = { 0 };
    counters before, after;

    cr_assert_eq(sm_init(NULL), SM_OK);
    counters_get(&before);
    cr_assert_eq(sm_buffer_from_fd(fd, 4, &b), SM_E_IO);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    cr_assert_eq(b.id, 0);
    close(fd);
}

Test(buffer_fd, closed_fd_is_io)
{
    sm_buffer b;

    cr_assert_eq(sm_buffer_from_fd(1000, 4, &b), SM_E_IO);
    cr_assert_eq(sm_last_os_error(), EBADF);
    cr_assert_eq(sm_buffer_from_fd_all(1000, &b), SM_E_IO);
    cr_assert_eq(sm_buffer_from_fd_until(1000, 0, &b), SM_E_IO);
}

Test(buffer_fd, all_reads_to_eof)
{
    static const size_t sizes[] = { 1, 4063, 4064, 4065, 100000, 5u << 20 };
    sm_buffer warm;

    /* The registry maps its first chunk of slots for good on the first buffer. */
    cr_assert_eq(sm_buffer_new(1, &warm), SM_OK);
    cr_assert_eq(sm_buffer_destroy(warm), SM_OK);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *want = pattern(sizes[i]);
        int fd = pipe_with(want, sizes[i]);
        sm_buffer b;
        counters before, after;

        cr_assert_eq(sm_init(NULL), SM_OK);
        counters_get(&before);
        cr_assert_eq(sm_buffer_from_fd_all(fd, &b), SM_OK, "size %zu", sizes[i]);
        cr_assert_eq(sm_buffer_size(b), sizes[i]);
        cr_assert(sm_equal(sm_buffer_data(b), want, sizes[i]));
        cr_assert_eq(sm_buffer_destroy(b), SM_OK);
        counters_get(&after);
        cr_assert(counters_equal(&before, &after, CMP_MAPPED), "scratch regions are gone");
        close(fd);
        free(want);
    }
}

/* No input is the end of it, an empty line is not: neither is an OS error. */
Test(buffer_fd, empty_input_is_eof_and_an_empty_line_is_io)
{
    int fd = pipe_with("", 0);
    sm_buffer b;

    sm_os_fault_arm(SM_OS_MLOCK, 1, EPERM, false);
    cr_assert_eq(sm_mem_lock(&b, 1), SM_E_LOCK, "an earlier OS error, which must not show");
    cr_assert_eq(sm_buffer_from_fd_all(fd, &b), SM_E_EOF);
    cr_assert_eq(sm_last_os_error(), 0);
    cr_assert_eq(sm_buffer_from_fd_until(fd, '\n', &b), SM_E_EOF);
    cr_assert_eq(sm_buffer_from_fd(fd, 4, &b), SM_E_IO, "from_fd: ended early (spec/api.md)");
    cr_assert_eq(sm_last_os_error(), 0);
    close(fd);
    fd = pipe_with("\n", 1);
    cr_assert_eq(sm_buffer_from_fd_until(fd, '\n', &b), SM_E_IO);
    cr_assert_eq(sm_last_os_error(), 0);
    close(fd);
}

Test(buffer_fd, until_on_a_pipe_leaves_the_rest_unread)
{
    int fd = pipe_with("secret\nnext", 11);
    sm_buffer b;
    char rest[8] = { 0 };

    cr_assert_eq(sm_buffer_from_fd_until(fd, '\n', &b), SM_OK);
    cr_assert_eq(sm_buffer_size(b), 6);
    cr_assert(sm_equal(sm_buffer_data(b), "secret", 6));
    cr_assert_eq(read(fd, rest, sizeof rest), 4);
    cr_assert_str_eq(rest, "next");
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    close(fd);
}

Test(buffer_fd, until_without_delimiter_reads_to_eof)
{
    size_t n = 2u << 20;
    uint8_t *want = pattern(n);
    int fd;
    sm_buffer b;

    for (size_t i = 0; i < n; i++)
        if (want[i] == 0xff)
            want[i] = 0;
    fd = pipe_with(want, n);
    cr_assert_eq(sm_buffer_from_fd_until(fd, 0xff, &b), SM_OK);
    cr_assert_eq(sm_buffer_size(b), n);
    cr_assert(sm_equal(sm_buffer_data(b), want, n));
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    close(fd);
    free(want);
}

Test(buffer_fd, until_on_a_file_reads_chunks_and_seeks_back)
{
    size_t n = 1u << 20;
    uint8_t *data = pattern(n);
    char path[] = "/tmp/sm-until-XXXXXX";
    int fd = mkstemp(path);
    sm_buffer b;
    uint8_t next;

    unlink(path);
    for (size_t i = 0; i < n; i++)
        if (data[i] == '\n')
            data[i] = 'x';
    data[700000] = '\n';
    cr_assert_eq(write(fd, data, n), (ssize_t)n);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    sm_os_fault_reset();
    cr_assert_eq(sm_buffer_from_fd_until(fd, '\n', &b), SM_OK);
    cr_assert_lt(sm_os_fault_calls(SM_OS_READ), 100, "chunks on a seekable fd");
    cr_assert_eq(sm_buffer_size(b), 700000);
    cr_assert(sm_equal(sm_buffer_data(b), data, 700000));
    cr_assert_eq(lseek(fd, 0, SEEK_CUR), 700001, "positioned just after the delimiter");
    cr_assert_eq(read(fd, &next, 1), 1);
    cr_assert_eq(next, data[700001]);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    close(fd);
    free(data);
}

Test(buffer_fd, read_failure_midway_leaves_nothing)
{
    size_t n = 200000;
    uint8_t *want = pattern(n);
    int fd = pipe_with(want, n);
    sm_buffer b;
    counters before, after;

    cr_assert_eq(sm_init(NULL), SM_OK);
    counters_get(&before);
    sm_os_fault_arm(SM_OS_READ, 3, EIO, false);
    cr_assert_eq(sm_buffer_from_fd_all(fd, &b), SM_E_IO);
    cr_assert_eq(sm_last_os_error(), EIO);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    close(fd);
    free(want);
}
