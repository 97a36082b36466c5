/* SPDX-License-Identifier: ISC */
/*
 * Stack residue (SM-REQ-066). After every public call that touches secret bytes, the
 * dead stack below the caller's frame (SPAN bytes of it) holds no window of WIN bytes of
 * the plaintext, of the enclave key or of the canary generator's key, and no 32-byte
 * window that, used as a ChaCha20 key, predicts the generator's next block. One row per
 * public call, each row in a process of its own (a parameterized test), so that a row
 * sees only what its own call left. A forked child, which inherits the stack, must not
 * find the parent's generator key either.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <bearssl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <valgrind/valgrind.h>

#include "factories.h"
#include "helpers.h"

#define SPAN (20u * 1024u) /* scanned below the caller: more than the 16 KiB asked for */
#define WIN 16u            /* the longest run of secret bytes allowed */
#define PMAX 256u          /* the longest plaintext a row uses */

/*
 * Under ASan, locals may live on a heap "fake stack" and the scanner's reads below the
 * stack pointer meet redzones; under Valgrind, Memcheck calls every read below the stack
 * pointer invalid. Neither build can run the scan, so both skip it; the gcc test build
 * (make test) runs it.
 */
static void skip_if_scan_meaningless(void)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("ASan: fake stacks and redzones, the dead stack is not the stack");
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    cr_skip_test("ASan: fake stacks and redzones, the dead stack is not the stack");
#endif
#endif
    if (RUNNING_ON_VALGRIND)
        cr_skip_test("Memcheck: every read below the stack pointer is an error");
}

/* ---- reading the dead stack ---- */

static uint8_t snap[SPAN];

/*
 * Copy the SPAN bytes below this frame's base into snap. It is called from the frame
 * that made the call under test, so its frame begins where that call's outermost frame
 * began, and everything below the saved frame pointer is what the call left. noinline
 * keeps that frame real. The reads go through a volatile pointer: those bytes are
 * outside any object the compiler knows, and volatile keeps it from assuming anything
 * about them or dropping the reads. The loop calls nothing and writes only static
 * memory, so it disturbs no byte before it reads it; its own few bytes of frame (if
 * the loop spills at all) hold only the loop's counters.
 */
__attribute__((noinline)) static void snapshot(void)
{
    const volatile uint8_t *base = (const volatile uint8_t *)__builtin_frame_address(0);

    for (size_t i = 0; i < SPAN; i++)
        snap[i] = base[(ptrdiff_t)i - (ptrdiff_t)SPAN];
}

/*
 * The test's own copies of the plaintext (the setup's memcpy) stay in vector registers,
 * and the lazy binder's register save or a signal frame would write them to the stack
 * during the call under test, where the scan would blame the call. Clear them first:
 * xmm/ymm0-15 with vzeroall (or pxor without AVX), and ymm16-31, which glibc's EVEX
 * memcpy uses on AVX-512 machines. The compiler is not told of xmm16-31: this file is
 * built without AVX-512, so it keeps nothing there.
 */
static void clear_vector_registers(void)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f"))
        __asm__ __volatile__(
            "vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
            "vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
            "vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
            "vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
            "vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
            "vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
            "vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
            "vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31" ::: "memory");
    if (__builtin_cpu_supports("avx"))
        __asm__ __volatile__("vzeroall" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
                             "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
                             "xmm13", "xmm14", "xmm15");
    else
        __asm__ __volatile__(
            "pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\t"
            "pxor %%xmm3, %%xmm3\n\tpxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
            "pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\tpxor %%xmm8, %%xmm8\n\t"
            "pxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
            "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\t"
            "pxor %%xmm15, %%xmm15"
            ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
            "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
#endif
}

/*
 * Zero more than SPAN bytes below the caller, and the vector registers, so that a row
 * sees only what its own call left.
 */
__attribute__((noinline)) static void clear_below(void)
{
    volatile uint8_t pad[SPAN + 4096];

    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = 0;
    clear_vector_registers();
}

/* ---- what a row needs, all in static memory so that none of it is on the stack ---- */

static struct {
    sm_buffer  b, b2;
    sm_enclave e;
    sm_stream  s;
    sm_secret  sec;
    const sm_factory *f;
    uint8_t    src[PMAX], out[PMAX];
    size_t     got;
    bool       eq;
    int        fd;
    uint8_t    delim;
    volatile uint8_t sink;
} c;
static uint8_t plain[PMAX];    /* the known plaintext (random bytes) */
static uint8_t secret[PMAX];   /* the secret to look for after the call */
static size_t secret_len;

static void want(const uint8_t *p, size_t n)
{
    memcpy(secret, p, n);
    secret_len = n;
}

static void with_plain(size_t n)
{
    memcpy(c.src, plain, n);
}

static void want_plain64(void) { want(plain, 64); }
static void want_none(void) { secret_len = 0; }

static void want_buffer(sm_buffer b)
{
    size_t n = sm_buffer_size(b);

    cr_assert_leq(n, PMAX);
    want(sm_buffer_data(b), n);
}

static void want_b(void) { want_buffer(c.b); }
static void want_b2(void) { want_buffer(c.b2); }

static void want_sec(void)
{
    size_t n = sm_secret_size(c.sec);

    cr_assert_eq(sm_secret_read_at(c.sec, 0, secret, n, &secret_len), SM_OK);
}

static void want_enclave(void)
{
    sm_buffer b;

    cr_assert_eq(sm_enclave_open(c.e, &b), SM_OK);
    want_buffer(b);
}

static void make_b(void)
{
    with_plain(64);
    cr_assert_eq(sm_buffer_from_bytes(c.src, 64, &c.b), SM_OK);
}

static void make_b_b2(void)
{
    make_b();
    cr_assert_eq(sm_buffer_new(64, &c.b2), SM_OK);
}

static void make_e(void)
{
    with_plain(64);
    cr_assert_eq(sm_enclave_new(c.src, 64, &c.e), SM_OK);
}

static void make_e_b2(void)
{
    make_e();
    cr_assert_eq(sm_buffer_new(64, &c.b2), SM_OK);
}

static void make_s(void)
{
    cr_assert_eq(sm_stream_new(&c.s), SM_OK);
}

static void make_s_written(void)
{
    make_s();
    with_plain(64);
    cr_assert_eq(sm_stream_write(c.s, c.src, 64), SM_OK);
}

/* A stream whose tail the next write opens, and 64 bytes more to write onto it. */
static void make_s_written_src(void)
{
    make_s_written();
    with_plain(64);
}

static void make_src(void) { with_plain(64); }

static void make_pipe(void)
{
    int p[2];

    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], plain, 64), 64);
    close(p[1]);
    c.fd = p[0];
}

/* The plaintext, then a delimiter that does not occur in it. */
static void make_pipe_delim(void)
{
    int p[2];

    c.delim = 0;
    while (memchr(plain, c.delim, 64) != NULL)
        c.delim++;
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], plain, 64), 64);
    cr_assert_eq(write(p[1], &c.delim, 1), 1);
    close(p[1]);
    c.fd = p[0];
}

static void make_sec(void)
{
    with_plain(64);
    cr_assert_eq(sm_secret_new(c.f, c.src, 64, &c.sec), SM_OK);
}

/* A reader that keeps nothing: one byte to a volatile sink, so the access is real. */
static sm_status touch(const uint8_t *b, size_t n, void *ctx)
{
    (void)ctx;
    c.sink = b[n - 1];
    return SM_OK;
}

static sm_status call_buffer_new(void) { return sm_buffer_new(64, &c.b); }
static sm_status call_buffer_from_bytes(void) { return sm_buffer_from_bytes(c.src, 64, &c.b); }
static sm_status call_buffer_random_32(void) { return sm_buffer_random(32, &c.b); }
static sm_status call_buffer_random_64(void) { return sm_buffer_random(64, &c.b); }
static sm_status call_buffer_random_200(void) { return sm_buffer_random(200, &c.b); }
static sm_status call_buffer_scramble(void) { return sm_buffer_scramble(c.b2); }
static sm_status call_buffer_from_fd(void) { return sm_buffer_from_fd(c.fd, 64, &c.b); }
static sm_status call_buffer_from_fd_until(void)
{
    return sm_buffer_from_fd_until(c.fd, c.delim, &c.b);
}
static sm_status call_buffer_from_fd_all(void) { return sm_buffer_from_fd_all(c.fd, &c.b); }
static sm_status call_buffer_copy(void) { return sm_buffer_copy(c.b2, c.src, 64); }
static sm_status call_buffer_copy_at(void) { return sm_buffer_copy_at(c.b2, 0, c.src, 64); }
static sm_status call_buffer_move_at(void) { return sm_buffer_move_at(c.b2, 0, c.src, 64); }
static sm_status call_buffer_destroy(void) { return sm_buffer_destroy(c.b); }
static sm_status call_buffer_move(void) { return sm_buffer_move(c.b2, c.src, 64); }
static sm_status call_buffer_equal(void) { return sm_buffer_equal(c.b, plain, 64, &c.eq); }
static sm_status call_buffer_seal(void) { return sm_buffer_seal(c.b, &c.e); }
static sm_status call_enclave_new(void) { return sm_enclave_new(c.src, 64, &c.e); }
static sm_status call_enclave_random(void) { return sm_enclave_random(64, &c.e); }
static sm_status call_enclave_open(void) { return sm_enclave_open(c.e, &c.b); }
static sm_status call_enclave_open_into(void) { return sm_enclave_open_into(c.e, c.b2); }
static sm_status call_stream_new(void) { return sm_stream_new(&c.s); }
static sm_status call_stream_write(void) { return sm_stream_write(c.s, c.src, 64); }
static sm_status call_stream_read(void) { return sm_stream_read(c.s, c.out, 64, &c.got); }
static sm_status call_stream_read_part(void) { return sm_stream_read(c.s, c.out, 10, &c.got); }
static sm_status call_stream_next(void) { return sm_stream_next(c.s, &c.b); }
static sm_status call_stream_flush(void) { return sm_stream_flush(c.s, &c.b); }
static sm_status call_stream_destroy(void) { return sm_stream_destroy(c.s); }
static sm_status call_enclave_destroy(void) { return sm_enclave_destroy(c.e); }
static sm_status call_mem_random(void) { return sm_random(c.out, 64); }
static sm_status call_secret_new(void) { return sm_secret_new(c.f, c.src, 64, &c.sec); }
static sm_status call_secret_from_buffer(void) { return sm_secret_from_buffer(c.f, c.b, &c.sec); }
static sm_status call_secret_from_fd(void) { return sm_secret_from_fd(c.f, c.fd, 64, &c.sec); }

/* A filler that copies the plaintext from static memory, keeping nothing itself. */
static sm_status fill_plain(uint8_t *b, size_t n, void *ctx)
{
    (void)ctx;
    memcpy(b, plain, n);
    return SM_OK;
}

static sm_status call_secret_from_callback(void)
{
    return sm_secret_from_callback(c.f, 64, fill_plain, NULL, &c.sec);
}
static sm_status call_secret_random(void) { return sm_secret_random(c.f, 64, &c.sec); }
static sm_status call_secret_with_bytes(void) { return sm_secret_with_bytes(c.sec, touch, NULL); }
static sm_status call_secret_try_with_bytes(void)
{
    return sm_secret_try_with_bytes(c.sec, touch, NULL);
}
static sm_status call_secret_read_at(void) { return sm_secret_read_at(c.sec, 0, c.out, 64, &c.got); }
static sm_status call_secret_close(void) { return sm_secret_close(c.sec); }

static void want_out(void) { want(c.out, 64); }

static sm_status call_init(void) { return sm_init(NULL); }
static sm_status call_purge(void)
{
    sm_purge();
    return SM_OK;
}

static void make_b_e(void)
{
    make_e();
    make_b();
}

static void purged(void) { sm_purge(); }

/*
 * The ChaCha20-Poly1305 implementations, which this machine (AES-NI) would not choose:
 * forced before the first seal, so that every ciphertext of the row uses them.
 */
static void portable_src(void)
{
    smi_aead_test_force(SMI_AEAD_CHACHA_PORTABLE);
    make_src();
}
static void portable_e(void)
{
    smi_aead_test_force(SMI_AEAD_CHACHA_PORTABLE);
    make_e();
}
static void sse2_e(void)
{
    smi_aead_test_force(SMI_AEAD_CHACHA);
    make_e();
}
static void portable_s_written(void)
{
    smi_aead_test_force(SMI_AEAD_CHACHA_PORTABLE);
    make_s_written();
}

typedef struct row {
    const char *name;
    int fact;                    /* the factory (FACT_*), -1 for no secret row */
    void (*setup)(void);         /* NULL: nothing */
    sm_status (*call)(void);     /* the public call under test */
    void (*collect)(void);       /* after the scan: the secret to look for */
} row;

/* The secret calls over factory f (FACT_*), named as factory_name names it. */
#define SECRET_ROWS(f, name)                                                              \
    { "secret_new." name, f, make_src, call_secret_new, want_plain64 },                  \
    { "secret_from_buffer." name, f, make_b, call_secret_from_buffer, want_plain64 },    \
    { "secret_from_fd." name, f, make_pipe, call_secret_from_fd, want_plain64 },         \
    { "secret_from_callback." name, f, NULL, call_secret_from_callback, want_plain64 },  \
    { "secret_random." name, f, NULL, call_secret_random, want_sec },                    \
    { "secret_with_bytes." name, f, make_sec, call_secret_with_bytes, want_plain64 },    \
    { "secret_try_with_bytes." name, f, make_sec, call_secret_try_with_bytes,            \
      want_plain64 },                                                                   \
    { "secret_read_at." name, f, make_sec, call_secret_read_at, want_plain64 },          \
    { "secret_close." name, f, make_sec, call_secret_close, want_plain64 }

static const row rows[] = {
    { "buffer_new", -1, NULL, call_buffer_new, want_none },
    { "buffer_from_bytes", -1, make_src, call_buffer_from_bytes, want_plain64 },
    { "buffer_random.32", -1, NULL, call_buffer_random_32, want_b },
    { "buffer_random.64", -1, NULL, call_buffer_random_64, want_b },
    { "buffer_random.200", -1, NULL, call_buffer_random_200, want_b },
    { "buffer_scramble", -1, make_b_b2, call_buffer_scramble, want_b2 },
    { "buffer_from_fd", -1, make_pipe, call_buffer_from_fd, want_plain64 },
    { "buffer_from_fd_until", -1, make_pipe_delim, call_buffer_from_fd_until, want_plain64 },
    { "buffer_from_fd_all", -1, make_pipe, call_buffer_from_fd_all, want_plain64 },
    { "buffer_copy", -1, make_b_b2, call_buffer_copy, want_plain64 },
    { "buffer_copy_at", -1, make_b_b2, call_buffer_copy_at, want_plain64 },
    { "buffer_move_at", -1, make_b_b2, call_buffer_move_at, want_plain64 },
    { "buffer_destroy", -1, make_b, call_buffer_destroy, want_plain64 },
    { "buffer_move", -1, make_b_b2, call_buffer_move, want_plain64 },
    { "buffer_equal", -1, make_b, call_buffer_equal, want_plain64 },
    { "buffer_seal", -1, make_b, call_buffer_seal, want_plain64 },
    { "enclave_new", -1, make_src, call_enclave_new, want_plain64 },
    { "enclave_random", -1, NULL, call_enclave_random, want_enclave },
    { "enclave_open", -1, make_e, call_enclave_open, want_plain64 },
    { "enclave_open_into", -1, make_e_b2, call_enclave_open_into, want_plain64 },
    { "stream_new", -1, NULL, call_stream_new, want_none },
    { "stream_write", -1, make_s, call_stream_write, want_plain64 },
    { "stream_write.onto_tail", -1, make_s_written_src, call_stream_write, want_plain64 },
    { "stream_read", -1, make_s_written, call_stream_read, want_plain64 },
    { "stream_read.in_part", -1, make_s_written, call_stream_read_part, want_plain64 },
    { "stream_next", -1, make_s_written, call_stream_next, want_plain64 },
    { "stream_flush", -1, make_s_written, call_stream_flush, want_plain64 },
    { "stream_destroy", -1, make_s_written, call_stream_destroy, want_plain64 },
    { "enclave_destroy", -1, make_e, call_enclave_destroy, want_plain64 },
    { "mem_random", -1, NULL, call_mem_random, want_out },
    { "enclave_new.chacha20_ct", -1, portable_src, call_enclave_new, want_plain64 },
    { "enclave_open.chacha20_ct", -1, portable_e, call_enclave_open, want_plain64 },
    { "enclave_open.chacha20_sse2", -1, sse2_e, call_enclave_open, want_plain64 },
    { "stream_read.chacha20_ct", -1, portable_s_written, call_stream_read, want_plain64 },
    { "init", -1, NULL, call_init, want_none },
    { "purge", -1, make_b_e, call_purge, want_plain64 },
    { "buffer_random.after_purge", -1, purged, call_buffer_random_32, want_b },
    SECRET_ROWS(FACT_PROTECTED, "protected"),
    SECRET_ROWS(FACT_GUARDED, "guarded"),
    SECRET_ROWS(FACT_ENCRYPTED, "encrypted"),
    SECRET_ROWS(FACT_CUSTOM, "custom"),
    SECRET_ROWS(FACT_COMPACT, "compact"),
};
#define NROWS (sizeof rows / sizeof rows[0])

/* The call, with the stack below this frame cleared before and copied out after. */
__attribute__((noinline)) static sm_status run_call(sm_status (*call)(void))
{
    sm_status st;

    clear_below();
    st = call();
    snapshot();
    return st;
}

/* ---- looking for secrets in snap ---- */

/* The offset in snap of a WIN-byte window of p[0 .. n), or -1. */
static long find_window(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + WIN <= n; i++) {
        const uint8_t *hit = memmem(snap, SPAN, p + i, WIN);

        if (hit != NULL)
            return (long)(hit - snap);
    }
    return -1;
}

/* The generator's block for nonce counter c under key (the nonce layout of rng.c). */
static void block_of(const uint8_t key[32], uint64_t ctr, uint8_t out[64])
{
    uint8_t nonce[12] = { 0 };

    for (unsigned i = 0; i < 8; i++)
        nonce[i] = (uint8_t)(ctr >> (8 * i));
    memset(out, 0, 64);
    br_chacha20_ct_run(key, nonce, 0, out, 64);
}

/* The offset of a 32-byte window of snap that predicts block_of(key, ctr), or -1. */
static long find_predictor(const uint8_t key[32], uint64_t ctr)
{
    uint8_t want_blk[64], blk[64];

    block_of(key, ctr, want_blk);
    for (size_t j = 0; j + 32 <= SPAN; j++) {
        block_of(snap + j, ctr, blk);
        if (memcmp(blk, want_blk, 32) == 0)
            return (long)j;
    }
    return -1;
}

/* The keys as they were before the call, which may replace them (purge, reseed). */
static struct {
    bool    rng, enclave;
    uint8_t rkey[32], ekey[32];
} pre;

static void peek_before(void)
{
    uint64_t ctr;

    pre.rng = smi_rng_test_peek(pre.rkey, &ctr) == SM_OK;
    pre.enclave = smi_coffer_test_peek(pre.ekey, NULL, NULL) == SM_OK;
}

/* One finding at offset at (if at >= 0), described in msg; counted in *n. */
static void note(char *msg, size_t cap, int *n, long at, const char *what)
{
    if (at < 0)
        return;
    (*n)++;
    snprintf(msg + strlen(msg), cap - strlen(msg), " %s at -%ld;", what, (long)SPAN - at);
}

/*
 * Everything a row checks, described in msg; the number of findings. The keys are
 * looked for as they were before the call and as they are after it; ctr is the
 * generator's next counter, which the next output uses.
 */
static int scan(char *msg, size_t cap)
{
    uint8_t rkey[32], ekey[32];
    uint64_t ctr;
    int n = 0;

    msg[0] = '\0';
    if (secret_len >= WIN)
        note(msg, cap, &n, find_window(secret, secret_len), "plaintext");
    /* After a purge there is no key until the next use draws one. */
    if (smi_rng_test_peek(rkey, &ctr) == SM_OK) {
        note(msg, cap, &n, find_window(rkey, 32), "generator key");
        note(msg, cap, &n, find_predictor(rkey, ctr), "a window predicting the next block");
        pre.rng = pre.rng && memcmp(rkey, pre.rkey, 32) != 0;
    }
    if (pre.rng)
        note(msg, cap, &n, find_window(pre.rkey, 32), "generator key of before the call");
    if (smi_coffer_test_peek(ekey, NULL, NULL) == SM_OK) {
        note(msg, cap, &n, find_window(ekey, 32), "enclave key");
        pre.enclave = pre.enclave && memcmp(ekey, pre.ekey, 32) != 0;
    }
    if (pre.enclave)
        note(msg, cap, &n, find_window(pre.ekey, 32), "enclave key of before the call");
    return n;
}

static void setup_row(const row *r)
{
    cr_assert_eq(sm_os_random(plain, sizeof plain), SM_OK);
    c.f = r->fact >= 0 ? factory((unsigned)r->fact) : NULL;
    if (r->call != call_init) /* the init row makes the first sm_init itself */
        cr_assert_eq(sm_init(NULL), SM_OK);
    if (r->setup != NULL)
        r->setup();
    peek_before();
}

/*
 * Criterion runs each row in a fresh exec of this program (with its own ASLR layout),
 * so a parameter holds the row's index, not the row's pointers.
 */
ParameterizedTestParameters(residue, every_public_call)
{
    static size_t row_index[NROWS];

    for (size_t i = 0; i < NROWS; i++)
        row_index[i] = i;
    return cr_make_param_array(size_t, row_index, NROWS);
}

ParameterizedTest(size_t *i, residue, every_public_call, .timeout = 60)
{
    const row *r = &rows[*i];
    char msg[512];

    skip_if_scan_meaningless();
    setup_row(r);
    cr_assert_eq(run_call(r->call), SM_OK, "%s", r->name);
    r->collect();
    cr_assert_eq(scan(msg, sizeof msg), 0, "%s left on the stack:%s", r->name, msg);
}

/* ---- the scanner can fail ---- */

/* A call that does leave a secret on the stack: the scan must see it. */
__attribute__((noinline)) static sm_status leave_plain(void)
{
    volatile uint8_t local[64];

    for (unsigned i = 0; i < 64; i++)
        local[i] = plain[i];
    (void)local[0];
    return SM_OK;
}

static uint8_t planted_key[32];

__attribute__((noinline)) static sm_status leave_generator_key(void)
{
    volatile uint8_t local[32];

    for (unsigned i = 0; i < 32; i++)
        local[i] = planted_key[i];
    (void)local[0];
    return SM_OK;
}

Test(residue, scanner_finds_a_planted_secret)
{
    char msg[512];
    uint64_t ctr;

    skip_if_scan_meaningless();
    setup_row(&(row){ "planted", -1, NULL, NULL, NULL });
    cr_assert_eq(run_call(leave_plain), SM_OK);
    want_plain64();
    cr_assert_eq(scan(msg, sizeof msg), 1, "found:%s", msg);
    cr_assert(strstr(msg, "plaintext") != NULL);
    cr_assert_eq(smi_rng_test_peek(planted_key, &ctr), SM_OK);
    cr_assert_eq(run_call(leave_generator_key), SM_OK);
    want_none();
    cr_assert_eq(scan(msg, sizeof msg), 2, "found:%s", msg);
    cr_assert(strstr(msg, "predicting") != NULL);
}

/* The prediction is right: the next random buffer is the block of the next counters. */
Test(residue, generator_model_predicts_the_next_buffer)
{
    uint8_t key[32], blk[64];
    uint64_t ctr;
    sm_buffer b;
    bool hit = false;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(smi_rng_test_peek(key, &ctr), SM_OK);
    cr_assert_eq(sm_buffer_random(32, &b), SM_OK);
    /* The region's canary takes one counter, the contents the next. */
    for (uint64_t k = 0; k < 2; k++) {
        block_of(key, ctr + k, blk);
        hit |= memcmp(blk, sm_buffer_data(b), 32) == 0;
    }
    cr_assert(hit);
}

/* ---- fork ---- */

static uint8_t *shared; /* the child's copy of its dead stack, for the parent to scan */

static sm_status random_then_scramble(void)
{
    sm_status st = sm_buffer_random(32, &c.b);

    if (st == SM_OK)
        st = sm_buffer_new(64, &c.b2);
    if (st == SM_OK)
        st = sm_buffer_scramble(c.b2);
    return st;
}

/* The calls, then fork from the same frame: the child copies out what it inherited. */
__attribute__((noinline)) static pid_t calls_then_fork(void)
{
    pid_t pid;

    clear_below();
    if (random_then_scramble() != SM_OK)
        return -1;
    pid = fork();
    if (pid == 0) {
        snapshot();
        memcpy(shared, snap, SPAN);
        _exit(0);
    }
    return pid;
}

Test(residue, forked_child_cannot_predict_the_parent)
{
    char msg[512];
    uint8_t key[32], blk[64];
    uint64_t ctr;
    sm_buffer b;
    pid_t pid;
    int status;

    skip_if_scan_meaningless();
    shared = mmap(NULL, SPAN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(shared, MAP_FAILED);
    setup_row(&(row){ "fork", -1, NULL, NULL, NULL });
    pid = calls_then_fork();
    cr_assert_gt(pid, 0);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    memcpy(snap, shared, SPAN);
    /* What the child found against the parent's key, counter and outputs. */
    want_b2();
    cr_assert_eq(scan(msg, sizeof msg), 0, "the child finds:%s", msg);
    want_b();
    cr_assert_eq(scan(msg, sizeof msg), 0, "the child finds:%s", msg);
    /* And the parent's next output is indeed what a found key would have predicted. */
    cr_assert_eq(smi_rng_test_peek(key, &ctr), SM_OK);
    cr_assert_eq(sm_buffer_random(32, &b), SM_OK);
    block_of(key, ctr + 1, blk);
    cr_assert_eq(memcmp(blk, sm_buffer_data(b), 32), 0);
}

/* ---- registers ---- */

#if defined(__x86_64__)
static uint8_t xmm[16][16];

/* xmm0-15 as the last call left them; noinline, and nothing before the stores. */
__attribute__((noinline)) static void save_xmm(void)
{
    __asm__ __volatile__("movdqu %%xmm0, 0(%0)\n\tmovdqu %%xmm1, 16(%0)\n\t"
                         "movdqu %%xmm2, 32(%0)\n\tmovdqu %%xmm3, 48(%0)\n\t"
                         "movdqu %%xmm4, 64(%0)\n\tmovdqu %%xmm5, 80(%0)\n\t"
                         "movdqu %%xmm6, 96(%0)\n\tmovdqu %%xmm7, 112(%0)\n\t"
                         "movdqu %%xmm8, 128(%0)\n\tmovdqu %%xmm9, 144(%0)\n\t"
                         "movdqu %%xmm10, 160(%0)\n\tmovdqu %%xmm11, 176(%0)\n\t"
                         "movdqu %%xmm12, 192(%0)\n\tmovdqu %%xmm13, 208(%0)\n\t"
                         "movdqu %%xmm14, 224(%0)\n\tmovdqu %%xmm15, 240(%0)"
                         :
                         : "r"(xmm)
                         : "memory");
}

static uint8_t akey[32], anonce[12], adata[64], atag[16];
static smi_region aws;

/* The AEAD, with nothing between its return and the register read. */
__attribute__((noinline)) static void seal_then_save(void)
{
    smi_aead_seal((smi_aead_ws *)(void *)smi_region_data(&aws), akey, anonce, NULL, 0, adata,
                  sizeof adata, NULL, atag);
    save_xmm();
}

__attribute__((noinline)) static bool open_then_save(void)
{
    bool ok = smi_aead_open((smi_aead_ws *)(void *)smi_region_data(&aws), akey, anonce, NULL,
                            0, NULL, adata, sizeof adata, atag);

    save_xmm();
    return ok;
}

/* Whether an 8-byte window of p[0 .. n) is in the saved registers. */
static bool in_xmm(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 8 <= n; i++)
        if (memmem(xmm, sizeof xmm, p + i, 8) != NULL)
            return true;
    return false;
}
#endif

/*
 * The AES-NI and SSE2 code leaves round keys (AES-256's first two are the key itself),
 * keystream and plaintext in xmm0-15; a signal frame taken after the call would write
 * them to the stack. smi_burn_stack zeroes them (src/service/burn.c).
 */
Test(residue, aead_leaves_no_key_or_plaintext_in_vector_registers)
{
#if defined(__x86_64__)
    static const smi_aead_choice choices[] = { SMI_AEAD_AUTO, SMI_AEAD_CHACHA,
                                               SMI_AEAD_CHACHA_PORTABLE };

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(smi_region_alloc(smi_aead_ws_size(), NULL, &aws), SM_OK);
    for (size_t k = 0; k < sizeof choices / sizeof choices[0]; k++) {
        smi_aead_test_force(choices[k]);
        cr_assert_eq(sm_os_random(akey, sizeof akey), SM_OK);
        cr_assert_eq(sm_os_random(plain, 64), SM_OK);
        memcpy(adata, plain, sizeof adata);
        seal_then_save();
        cr_assert_not(in_xmm(akey, sizeof akey), "%s seal: key bytes in xmm", smi_aead_name());
        cr_assert(open_then_save());
        cr_assert_eq(memcmp(adata, plain, 64), 0);
        cr_assert_not(in_xmm(akey, sizeof akey), "%s open: key bytes in xmm", smi_aead_name());
        cr_assert_not(in_xmm(plain, 64), "%s open: plaintext in xmm", smi_aead_name());
    }
    cr_assert_eq(smi_region_free(&aws), SM_OK);
#else
    cr_skip_test("the vector registers are read on x86-64 only");
#endif
}
