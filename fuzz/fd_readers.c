/* SPDX-License-Identifier: ISC */
/*
 * fd_readers: input bytes fed through a pipe, a seekable memfd (at an input-chosen
 * offset) or a bad descriptor to the from_fd constructors, with OS faults injected from
 * the input, under the SECRETMEM_PREFERRED backing.
 *
 * Target functions: sm_buffer_from_fd, sm_buffer_from_fd_until, sm_buffer_from_fd_all,
 * sm_secret_from_fd over every factory (tests/factory/factories.h and the compact one);
 * through them the scratch regions of src/objects/buffer.c (growth, the exact-size copy, the
 * seek back after a delimiter, the byte-at-a-time path of a pipe), and the memfd_secret
 * paths of src/memory/region.c, of the protected factory (src/memory/plain.c) and of
 * the compact factory's slabs, each with its fallback to anonymous memory.
 *
 * Model (securemem/buffer.h): from_fd(size) gives the next size bytes, SM_E_IO if the
 * data ends first, SM_E_INVAL for size 0; sm_secret_from_fd the same in a secret (read
 * back with sm_secret_read_at), also SM_E_INVAL for a compact secret over 2,048 bytes;
 * from_fd_until(delim) gives the bytes before the first delim (all of them if there is
 * none), consuming the delimiter and nothing after it; from_fd_all gives everything to
 * end of file; an empty result is SM_E_EOF when the input ends first and SM_E_IO for an
 * empty line. A result is a FROZEN buffer with the layout of spec/api.md; what is left
 * in the descriptor is exactly what follows. A bad descriptor is SM_E_IO with
 * sm_last_os_error EBADF. An injected fault gives its status (spec/os-errors.tsv) or,
 * where the library recovers (EINTR, a refused memfd_secret, a seek refused before
 * reading), the model's result.
 *
 * Input: a mode byte (its top bit turns from_fd into sm_secret_from_fd), a size, a
 * delimiter, a repeat count, up to two fault plans; the rest is the data, repeated to
 * reach sizes that a small input could not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "factories.h"
#include "harness.h"

#define MAX_DATA (256u * 1024u)
#define MAX_PIPE (60u * 1024u)  /* below the default pipe capacity: no writer thread */
#define MAX_BYTEWISE (8u * 1024u) /* until on a pipe reads one byte per call */

static fz_faults F;
static uint8_t *buf, *rest;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const sm_config cfg = { .backing = SM_BACKING_SECRETMEM_PREFERRED };

    (void)argc;
    (void)argv;
    fz_init(&cfg);
    buf = malloc(MAX_DATA);
    rest = malloc(MAX_DATA);
    FZ_CHECK(buf != NULL && rest != NULL, "out of memory");
    return 0;
}

static const sm_os_fn fault_fns[] = {
    SM_OS_READ, SM_OS_READ, SM_OS_LSEEK, SM_OS_MMAP, SM_OS_MMAP_FD, SM_OS_MUNMAP,
    SM_OS_MPROTECT, SM_OS_MLOCK, SM_OS_MADVISE, SM_OS_MEMFD_SECRET, SM_OS_FTRUNCATE,
    SM_OS_CLOSE,
};

enum { VIA_PIPE, VIA_MEMFD, VIA_BADFD };

/* Read what is left in fd (not through the library); -1 on error. */
static ssize_t drain(int fd, uint8_t *to, size_t cap)
{
    size_t n = 0;

    for (;;) {
        ssize_t r = read(fd, to + n, cap - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0 || (size_t)(n += (size_t)r) == cap)
            return (ssize_t)n;
    }
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        FZ_CHECK(w > 0 || errno == EINTR, "writing the input: %s", strerror(errno));
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fz_in in = { data, len, 0 };
    uint8_t mode = fz_u8(&in);
    unsigned call = mode % 3, via = (mode / 3) % 3;
    /* A secret instead of a buffer, of the factory the (unused) delimiter picks. */
    bool secret = call == 0 && (mode & 0x80) != 0;
    size_t size = fz_u16(&in) | (size_t)(fz_u8(&in) & 3) << 16;
    uint8_t delim = fz_u8(&in);
    unsigned repeat = 1 + fz_u8(&in) % 32, plans = fz_u8(&in) % 3;
    size_t n = 0, start = 0, cap = via == VIA_PIPE ? (call == 1 ? MAX_BYTEWISE : MAX_PIPE) : MAX_DATA;
    size_t want_len = 0, left_len = 0;
    const uint8_t *want = NULL, *left = NULL;
    sm_status want_st = SM_OK, st;
    sm_buffer b = { 0x0badull };
    sm_secret sec = { 0x0badull };
    const sm_factory *f;
    fz_counts before, after;
    unsigned munmaps;
    int fd = -1, wfd = -1;

    fz_begin();
    fz_faults_clear(&F);
    /* The others modulo their own count, as before compact was in factories.h. */
    f = factory(delim % NFACT == FACT_COMPACT ? FACT_COMPACT : delim % FACT_COMPACT);
    if (via == VIA_MEMFD)
        start = fz_u16(&in);
    for (unsigned i = 0; i < plans; i++)
        fz_faults_arm(&F, &in, fault_fns, sizeof fault_fns / sizeof fault_fns[0]);
    /* The data: the rest of the input, repeated. */
    for (unsigned r = 0; r < repeat && n < cap; r++)
        for (size_t i = in.off; i < len && n < cap; i++)
            buf[n++] = data[i];
    if (start > n)
        start = n;

    /* What the model expects of the bytes from start on. */
    if (secret && (size == 0 || (f == sm_factory_compact() && size > 2048))) {
        want_st = SM_E_INVAL;
    } else if (via == VIA_BADFD) {
        want_st = call == 0 && size == 0 ? SM_E_INVAL : SM_E_IO;
    } else if (call == 0) {
        want_st = size == 0 ? SM_E_INVAL : n - start >= size ? SM_OK : SM_E_IO;
        want = buf + start;
        want_len = size;
        left = buf + start + size;
        left_len = want_st == SM_OK ? n - start - size : 0;
    } else {
        const uint8_t *at = call == 1 ? memchr(buf + start, delim, n - start) : NULL;

        want = buf + start;
        want_len = at != NULL ? (size_t)(at - want) : n - start;
        left = at != NULL ? at + 1 : buf + n;
        left_len = (size_t)(buf + n - left);
        /* Nothing before the end: SM_E_EOF; an empty line: SM_E_IO. */
        want_st = want_len > 0 ? SM_OK : at != NULL ? SM_E_IO : SM_E_EOF;
    }

    if (via == VIA_PIPE) {
        int p[2];

        FZ_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
        write_all(p[1], buf, n);
        close(p[1]);
        fd = p[0];
    } else if (via == VIA_MEMFD) {
        fd = memfd_create("fuzz-input", MFD_CLOEXEC);
        FZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
        write_all(fd, buf, n);
        FZ_CHECK(lseek(fd, (off_t)start, SEEK_SET) == (off_t)start, "lseek");
    } else {
        /* A descriptor number that is certainly closed. */
        FZ_CHECK((wfd = dup(0)) >= 0 || (wfd = open("/dev/null", O_RDONLY)) >= 0, "dup");
        close(wfd);
        fd = wfd;
    }

    fz_counts_get(&before);
    fz_faults_before(&F);
    if (secret)
        st = sm_secret_from_fd(f, fd, size, &sec);
    else if (call == 0)
        st = sm_buffer_from_fd(fd, size, &b);
    else if (call == 1)
        st = sm_buffer_from_fd_until(fd, delim, &b);
    else
        st = sm_buffer_from_fd_all(fd, &b);
    fz_faults_after(&F);
    fz_trace("call %u%s via %u, %zu bytes from %zu, size %zu, delim %u: %s", call,
             secret ? " (a secret)" : "", via, n, start, size, delim, fz_st(st));

    if (st == want_st) {
        if (via == VIA_BADFD && want_st == SM_E_IO && F.fired == 0)
            FZ_CHECK(sm_last_os_error() == EBADF, "bad fd: sm_last_os_error %d",
                     sm_last_os_error());
    } else {
        FZ_CHECK(F.fired > 0 && fz_faults_allow(&F, st), "from_fd: %s, want %s", fz_st(st),
                 fz_st(want_st));
        if (F.fired == 1)
            FZ_CHECK(sm_last_os_error() == F.last_err, "sm_last_os_error %d, injected %d",
                     sm_last_os_error(), F.last_err);
    }
    munmaps = F.fired_by[SM_OS_MUNMAP];
    fz_faults_clear(&F);
    if (st == SM_OK && secret) {
        size_t copied = 0;
        ssize_t got;

        FZ_CHECK(size <= MAX_DATA && sm_secret_read_at(sec, 0, rest, size, &copied) == SM_OK &&
                     copied == want_len && memcmp(rest, want, want_len) == 0,
                 "the secret's %zu bytes differ", copied);
        got = drain(fd, rest, MAX_DATA);
        FZ_CHECK(got >= 0 && (size_t)got == left_len && memcmp(rest, left, left_len) == 0,
                 "the descriptor holds %zd bytes after the call, want %zu", got, left_len);
        FZ_CHECK(sm_secret_close(sec) == SM_OK, "close");
    } else if (st == SM_OK) {
        ssize_t got;

        FZ_CHECK(sm_buffer_size(b) == want_len, "got %zu bytes, want %zu", sm_buffer_size(b),
                 want_len);
        FZ_CHECK(memcmp(sm_buffer_data(b), want, want_len) == 0, "the bytes differ");
        FZ_CHECK(!sm_buffer_is_mutable(b), "not FROZEN");
        fz_check_layout(sm_buffer_data(b), want_len, false, "buffer from fd");
        got = drain(fd, rest, MAX_DATA);
        FZ_CHECK(got >= 0 && (size_t)got == left_len && memcmp(rest, left, left_len) == 0,
                 "the descriptor holds %zd bytes after the call, want %zu", got, left_len);
        FZ_CHECK(sm_buffer_destroy(b) == SM_OK, "destroy");
    } else {
        FZ_CHECK(b.id == 0x0badull && sec.id == 0x0badull, "a failed call wrote its out-parameter");
    }
    /* The enclave key of an encrypted secret, a compact slab kept empty: gone with a purge. */
    if (secret)
        sm_purge();
    if (via != VIA_BADFD)
        close(fd);
    fz_counts_get(&after);
    FZ_CHECK(after.live[SMI_KIND_BUFFER] == 0, "a buffer is left alive");
    /* A failed munmap of a scratch region is ignored and leaves it counted. */
    FZ_CHECK(after.bytes == before.bytes || munmaps > 0,
             "%lld bytes left counted", (long long)(after.bytes - before.bytes));
    return 0;
}
