/* SPDX-License-Identifier: ISC */
/*
 * The portable suite: what every platform build must show, through the public API only,
 * on the plain-main harness (tests/common/harness.h), so that it runs where Criterion
 * does not (musl, other CPUs under qemu-user, spec/platforms.md). Each test checks an
 * effect, not a return code alone: a guard page that does not fault, a canary that does
 * not panic, a lock policy that does not refuse, bytes that do not round-trip all fail.
 * Where an emulator cannot show an effect (qemu-user applies no madvise advice), the
 * test skips and says why.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <securemem.h>

#include "../common/harness.h"
#include "factories.h"

static size_t page(void)
{
    return sm_page_size();
}

/* A child's wait status must be death by sig. */
static void expect_signal(void (*fn)(void *), void *arg, int sig, const char *what)
{
    int ws = hx_fork(fn, arg);

    HX_CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == sig, "%s: wait status 0x%x, expected signal %d",
             what, (unsigned)ws, sig);
}

static void t_page_size(void)
{
    size_t p = page();

    HX_CHECK(p >= 4096 && (p & (p - 1)) == 0, "page size %zu", p);
    HX_CHECK(p == (size_t)sysconf(_SC_PAGESIZE), "page size %zu, sysconf %ld", p,
             sysconf(_SC_PAGESIZE));
    hx_say("page size %zu, size_t %zu bits, %s-endian\n", p, sizeof(size_t) * 8,
           *(const unsigned char *)&(uint16_t){ 1 } ? "little" : "big");
}

/* The data ends flush against the trailing guard page, for sizes around page edges. */
static void t_layout(void)
{
    size_t p = page();
    size_t sizes[] = { 1, 31, 32, 33, p - 33, p - 1, p, p + 1, 3 * p + 7, 64 * 1024 + 3 };

    HX_EXPECT(sm_init(NULL), SM_OK);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        sm_buffer b;
        uint8_t *d;

        HX_EXPECT(sm_buffer_new(sizes[i], &b), SM_OK);
        d = sm_buffer_data(b);
        HX_CHECK(sm_buffer_size(b) == sizes[i], "size %zu", sizes[i]);
        HX_CHECK(((uintptr_t)(d + sizes[i]) & (p - 1)) == 0, "size %zu: data end %p not on a page",
                 sizes[i], (void *)(d + sizes[i]));
        memset(d, 0xa5, sizes[i]);
        HX_EXPECT(sm_buffer_destroy(b), SM_OK);
    }
    /* Sizes whose rounding would wrap size_t: refused, never a short mapping. */
    {
        sm_buffer b;
        sm_status st = sm_buffer_new(SIZE_MAX - 1, &b);

        HX_CHECK(st == SM_E_INVAL || st == SM_E_NOMEM, "SIZE_MAX - 1 gave %s", sm_status_str(st));
        st = sm_buffer_new(SIZE_MAX - page(), &b);
        HX_CHECK(st == SM_E_INVAL || st == SM_E_NOMEM, "SIZE_MAX - page gave %s", sm_status_str(st));
    }
}

static void touch_past_end(void *arg)
{
    sm_buffer b;
    size_t n = *(size_t *)arg;

    if (sm_buffer_new(n, &b) != SM_OK)
        _exit(3);
    ((volatile uint8_t *)sm_buffer_data(b))[n - 1] = 1; /* the last byte is fine */
    ((volatile uint8_t *)sm_buffer_data(b))[n] = 1;
    _exit(0);
}

static void touch_before_start(void *arg)
{
    sm_buffer b;
    size_t n = *(size_t *)arg;
    uintptr_t d;

    if (sm_buffer_new(n, &b) != SM_OK)
        _exit(3);
    /* The byte before the first inner page: the leading guard page. */
    d = (uintptr_t)sm_buffer_data(b) + n - ((n + 32 + page() - 1) / page()) * page();
    (void)*(volatile uint8_t *)(d - 1);
    _exit(0);
}

static void write_frozen(void *arg)
{
    sm_buffer b;

    (void)arg;
    if (sm_buffer_new(64, &b) != SM_OK || sm_buffer_freeze(b) != SM_OK)
        _exit(3);
    (void)*(volatile uint8_t *)sm_buffer_data(b);
    *(volatile uint8_t *)sm_buffer_data(b) = 1;
    _exit(0);
}

static void t_guard_pages_fault(void)
{
    size_t sizes[] = { 100, 3 * page() + 5 };

    for (size_t i = 0; i < 2; i++) {
        expect_signal(touch_past_end, &sizes[i], SIGSEGV, "a byte past the end");
        expect_signal(touch_before_start, &sizes[i], SIGSEGV, "a byte before the start");
    }
    expect_signal(write_frozen, NULL, SIGSEGV, "a write to a frozen buffer");
}

static void damage_canary(void *arg)
{
    sm_buffer b;

    (void)arg;
    (void)!freopen("/dev/null", "w", stderr);
    if (sm_buffer_new(40, &b) != SM_OK)
        _exit(3);
    sm_buffer_data(b)[-1] ^= 1; /* an underflow by one byte */
    (void)!sm_buffer_destroy(b);
    _exit(0);
}

static void damage_canary_audit(void *arg)
{
    sm_buffer b;

    (void)arg;
    (void)!freopen("/dev/null", "w", stderr);
    if (sm_buffer_new(4000, &b) != SM_OK)
        _exit(3);
    sm_buffer_data(b)[-32] ^= 0x80;
    (void)!sm_audit();
    _exit(0);
}

static void t_canary_panics(void)
{
    expect_signal(damage_canary, NULL, SIGABRT, "a damaged canary at destroy");
    expect_signal(damage_canary_audit, NULL, SIGABRT, "a damaged canary at sm_audit");
}

/*
 * The lock policy, where locking can be made to fail: as root (CAP_IPC_LOCK ignores
 * RLIMIT_MEMLOCK), drop to nobody after lowering the limit to one page.
 */
static void limit_locking(void)
{
    struct rlimit rl = { 4096, 4096 };

    HX_CHECK(setrlimit(RLIMIT_MEMLOCK, &rl) == 0, "setrlimit");
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        hx_skip("cannot drop root, whose CAP_IPC_LOCK locks past any limit");
}

static void t_lock_required_refuses(void)
{
    sm_buffer b;
    sm_status st;

    limit_locking();
    st = sm_init(NULL); /* REQUIRED is the default */
    if (st == SM_OK)
        st = sm_buffer_new(64 * 1024, &b);
    HX_CHECK(st == SM_E_LOCK, "64 KiB over a 4 KiB lock limit under REQUIRED gave %s",
             sm_status_str(st));
}

static void t_lock_best_effort_reports(void)
{
    sm_config cfg = { .lock_policy = SM_LOCK_BEST_EFFORT };
    sm_buffer b;
    sm_stats s;

    limit_locking();
    HX_EXPECT(sm_init(&cfg), SM_OK);
    HX_EXPECT(sm_buffer_new(64 * 1024, &b), SM_OK);
    HX_EXPECT(sm_stats_get(&s), SM_OK);
    HX_CHECK(s.bytes_unlocked > 0, "no unlocked bytes counted over a 4 KiB limit");
    HX_CHECK((sm_platform_caps() & SM_CAP_LOCKED) == 0, "caps 0x%x claim locked", sm_platform_caps());
    HX_EXPECT(sm_platform_require(SM_CAP_LOCKED), SM_E_UNSUPPORTED);
    HX_EXPECT(sm_buffer_destroy(b), SM_OK);
}

static void t_caps(void)
{
    unsigned caps;

    HX_EXPECT(sm_init(NULL), SM_OK);
    caps = sm_platform_caps();
    hx_say("sm_platform_caps 0x%x\n", caps);
    HX_CHECK((caps & (SM_CAP_LOCKED | SM_CAP_GUARD)) == (SM_CAP_LOCKED | SM_CAP_GUARD),
             "caps 0x%x: every platform locks and guards under REQUIRED", caps);
    HX_CHECK((caps & ~SM_CAP_ALL) == 0, "caps 0x%x", caps);
    HX_CHECK((caps & SM_CAP_NODIRECTMAP) == 0, "caps 0x%x: no secretmem asked for", caps);
    HX_EXPECT(sm_platform_require(SM_CAP_LOCKED | SM_CAP_GUARD), SM_OK);
    HX_EXPECT(sm_platform_require(caps), SM_OK);
    HX_EXPECT(sm_platform_require(0x100), SM_E_INVAL);
    if ((caps & SM_CAP_ALL) != SM_CAP_ALL)
        HX_EXPECT(sm_platform_require(SM_CAP_ALL), SM_E_UNSUPPORTED);
}

static void t_enclave_round_trip(void)
{
    uint8_t src[1000], want[1000];
    sm_enclave e;
    sm_buffer b;

    HX_EXPECT(sm_init(NULL), SM_OK);
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = want[i] = (uint8_t)(i * 7 + 1);
    HX_EXPECT(sm_enclave_new(src, sizeof src, &e), SM_OK);
    for (size_t i = 0; i < sizeof src; i++)
        HX_CHECK(src[i] == 0, "source byte %zu not wiped", i);
    HX_CHECK(sm_enclave_size(e) == sizeof src, "enclave size");
    for (int k = 0; k < 2; k++) {
        HX_EXPECT(sm_enclave_open(e, &b), SM_OK);
        HX_CHECK(sm_buffer_size(b) == sizeof want && memcmp(sm_buffer_data(b), want, sizeof want) == 0,
                 "opened bytes differ");
        HX_EXPECT(sm_buffer_destroy(b), SM_OK);
    }
    HX_EXPECT(sm_enclave_destroy(e), SM_OK);
}

static void t_stream_round_trip(void)
{
    size_t n = 300000, got, at = 0;
    uint8_t *src = malloc(n), *dst = malloc(n), *want = malloc(n);
    uint64_t seed = 42;
    sm_stream s;

    HX_CHECK(src != NULL && dst != NULL && want != NULL, "malloc");
    HX_EXPECT(sm_init(NULL), SM_OK);
    for (size_t i = 0; i < n; i++)
        src[i] = want[i] = (uint8_t)(hx_rand(&seed) >> 56);
    HX_EXPECT(sm_stream_new(&s), SM_OK);
    HX_EXPECT(sm_stream_write(s, src, n / 3), SM_OK);
    HX_EXPECT(sm_stream_write(s, src + n / 3, n - n / 3), SM_OK);
    HX_CHECK(sm_stream_size(s) == n, "stream size %zu", sm_stream_size(s));
    while (at < n) {
        HX_EXPECT(sm_stream_read(s, dst + at, 7777, &got), SM_OK);
        HX_CHECK(got > 0, "short stream at %zu", at);
        at += got;
    }
    HX_CHECK(memcmp(dst, want, n) == 0, "stream bytes differ");
    HX_EXPECT(sm_stream_destroy(s), SM_OK);
    free(src);
    free(dst);
    free(want);
}

static sm_status same_bytes(const uint8_t *bytes, size_t len, void *ctx)
{
    return len == 33 && memcmp(bytes, ctx, len) == 0 ? SM_OK : SM_E_AUTH;
}

static void t_secrets_every_factory(void)
{
    HX_EXPECT(sm_init(NULL), SM_OK);
    for (unsigned k = 0; k < NFACT; k++) {
        uint8_t src[33], want[33], part[10];
        sm_secret s;
        size_t got;

        for (size_t i = 0; i < sizeof src; i++)
            src[i] = want[i] = (uint8_t)(k * 31 + i);
        HX_EXPECT(sm_secret_new(factory(k), src, sizeof src, &s), SM_OK);
        HX_CHECK(sm_secret_size(s) == sizeof want, "%s: size", factory_name(k));
        HX_EXPECT(sm_secret_with_bytes(s, same_bytes, want), SM_OK);
        HX_EXPECT(sm_secret_read_at(s, 20, part, sizeof part, &got), SM_OK);
        HX_CHECK(got == sizeof part && memcmp(part, want + 20, got) == 0, "%s: read_at",
                 factory_name(k));
        HX_EXPECT(sm_secret_close(s), SM_OK);
        HX_CHECK(sm_secret_is_closed(s), "%s: not closed", factory_name(k));
    }
}

static void t_purge(void)
{
    sm_buffer b;
    sm_enclave e;
    sm_stats st;

    HX_EXPECT(sm_init(NULL), SM_OK);
    HX_EXPECT(sm_buffer_random(64, &b), SM_OK);
    HX_EXPECT(sm_enclave_random(64, &e), SM_OK);
    sm_purge();
    HX_CHECK(!sm_buffer_is_alive(b), "buffer alive after purge");
    HX_EXPECT(sm_enclave_destroy(e), SM_E_STATE);
    HX_EXPECT(sm_stats_get(&st), SM_OK);
    HX_CHECK(st.buffers_live == 0 && st.enclaves_live == 0, "live objects after purge");
    /* Usable again afterwards. */
    HX_EXPECT(sm_buffer_new(10, &b), SM_OK);
    HX_EXPECT(sm_buffer_destroy(b), SM_OK);
}

static void t_random(void)
{
    uint8_t a[1000] = { 0 }, z[1000] = { 0 };

    HX_EXPECT(sm_random(a, sizeof a), SM_OK);
    HX_CHECK(memcmp(a, z, sizeof a) != 0, "all zero");
}

/*
 * A read-only source is refused with SM_E_READONLY, not faulted on while it is wiped:
 * the writability query of the systems this suite is built for (Linux, macOS:
 * spec/platforms.md). Under qemu-user the query's MADV_POPULATE_WRITE is accepted and not
 * applied, so it cannot see the read-only page there.
 */
static void t_readonly_source(void)
{
    void *p;
    sm_buffer b;

    if (getenv("SM_TEST_EMULATOR") != NULL)
        hx_skip("under qemu-user the writability query cannot see a read-only page");
    HX_EXPECT(sm_init(NULL), SM_OK);
    HX_EXPECT(sm_mem_alloc(page(), &p), SM_OK);
    HX_EXPECT(sm_mem_protect(p, page(), SM_PROT_READ), SM_OK);
    HX_EXPECT(sm_buffer_from_bytes(p, 16, &b), SM_E_READONLY);
    HX_EXPECT(sm_mem_protect(p, page(), SM_PROT_READWRITE), SM_OK);
    HX_EXPECT(sm_mem_free(p, page()), SM_OK);
}

static const hx_test tests[] = {
    { "page_size", t_page_size },
    { "layout", t_layout },
    { "guard_pages_fault", t_guard_pages_fault },
    { "canary_panics", t_canary_panics },
    { "lock_required_refuses", t_lock_required_refuses },
    { "lock_best_effort_reports", t_lock_best_effort_reports },
    { "caps", t_caps },
    { "enclave_round_trip", t_enclave_round_trip },
    { "stream_round_trip", t_stream_round_trip },
    { "secrets_every_factory", t_secrets_every_factory },
    { "purge", t_purge },
    { "random", t_random },
    { "readonly_source", t_readonly_source },
};

int main(int argc, char **argv)
{
    return hx_main("portable", tests, sizeof tests / sizeof tests[0], 120, argc, argv);
}
