/* SPDX-License-Identifier: ISC */
/*
 * Driven by spec/syscalls.tsv. For every operation: the OS calls it makes are exactly
 * the table's, and failing each of those calls in turn gives the table's status, sets
 * sm_last_os_error, and (for an error) changes nothing: the same mappings, the same
 * counters. Each run is a fresh child process, because the configuration is once per
 * process and some operations are sm_init itself.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "example_factory.h"
#include "helpers.h"
#include "objects/compact.h"

typedef struct ctx {
    sm_enclave e;
    sm_stream  s;
    sm_buffer  b;
    int        fd;
    void      *p;
    size_t     n;
    smi_region r;
    uint8_t    buf[64];
    uint8_t    nonce[12], tag[16];
    uint64_t   id;
    sm_secret  sec;
    uint8_t   *big;  /* a source of SOURCE_PAGES pages, mapped by the test */
    bool       done; /* run succeeded: undo must release what it made */
} ctx;

typedef struct op {
    const char *name;
    sm_config   cfg;
    bool        init;         /* sm_init(cfg) in setup; false for the init operations */
    bool        keeps_mapped; /* the operation keeps a mapping by design (registry chunk) */
    void (*setup)(ctx *);
    sm_status (*run)(ctx *);
    void (*undo)(ctx *);
    bool key;                 /* make the enclave key before measuring: it is kept for good */
    bool window_may_stay;     /* a failure may leave a secret's access window open */
} op;

static void must(sm_status st, const char *what)
{
    if (st != SM_OK) {
        fprintf(stderr, "setup/undo step %s failed: %s\n", what, sm_status_str(st));
        _exit(3);
    }
}

static void nothing(ctx *c) { (void)c; }

static void mem_setup(ctx *c) { c->n = 5000; must(sm_mem_alloc(c->n, &c->p), "alloc"); }
static void mem_setup_locked(ctx *c) { mem_setup(c); must(sm_mem_lock(c->p, c->n), "lock"); }
static void mem_release(ctx *c) { must(sm_mem_free(c->p, c->n), "free"); }
static void mem_release_if_done(ctx *c) { if (c->done) mem_release(c); }
static void mem_release_unless_done(ctx *c) { if (!c->done) mem_release(c); }

static sm_status mem_alloc(ctx *c) { c->n = 5000; return sm_mem_alloc(c->n, &c->p); }
static sm_status mem_free(ctx *c) { return sm_mem_free(c->p, c->n); }
static sm_status mem_lock(ctx *c) { return sm_mem_lock(c->p, c->n); }
static sm_status mem_unlock(ctx *c) { return sm_mem_unlock(c->p, c->n); }
static sm_status mem_protect(ctx *c) { return sm_mem_protect(c->p, c->n, SM_PROT_READ); }
static sm_status random64(ctx *c) { return sm_random(c->buf, sizeof c->buf); }
static sm_status no_dumps(ctx *c) { (void)c; return sm_disable_core_dumps(); }

static sm_status region_alloc(ctx *c) { return smi_region_alloc(100, NULL, &c->r); }
static sm_status region_free(ctx *c) { return smi_region_free(&c->r); }
static void region_setup(ctx *c) { must(smi_region_alloc(100, NULL, &c->r), "region"); }
static void region_setup_ro(ctx *c)
{
    region_setup(c);
    must(smi_region_protect(&c->r, SM_PROT_READ), "protect");
}
static void region_release_if_done(ctx *c) { if (c->done) must(region_free(c), "free"); }
static void region_release_unless_done(ctx *c) { if (!c->done) must(region_free(c), "free"); }

static sm_status init_run(ctx *c);
static sm_status registry_insert(ctx *c)
{
    return smi_registry_insert(SMI_KIND_BUFFER, c->buf, 8, &c->id);
}
static void registry_release(ctx *c)
{
    smi_slot *s;

    if (!c->done)
        return;
    must(smi_registry_acquire(c->id, SMI_KIND_BUFFER, &s), "acquire");
    smi_registry_remove(s);
}

static void buffer_setup(ctx *c) { must(sm_buffer_new(100, &c->b), "buffer"); }
static void buffer_setup_frozen(ctx *c)
{
    buffer_setup(c);
    must(sm_buffer_freeze(c->b), "freeze");
}
static void fd_setup(ctx *c)
{
    int fds[2];

    if (pipe(fds) != 0 || write(fds[1], c->buf, sizeof c->buf) != (ssize_t)sizeof c->buf)
        _exit(3);
    close(fds[1]);
    c->fd = fds[0];
}
static sm_status buffer_new(ctx *c) { return sm_buffer_new(100, &c->b); }
static sm_status buffer_from_bytes(ctx *c) { return sm_buffer_from_bytes(c->buf, 64, &c->b); }
static sm_status buffer_random(ctx *c) { return sm_buffer_random(64, &c->b); }
static sm_status buffer_from_fd(ctx *c) { return sm_buffer_from_fd(c->fd, 64, &c->b); }
static sm_status buffer_freeze(ctx *c) { return sm_buffer_freeze(c->b); }
static sm_status buffer_melt(ctx *c) { return sm_buffer_melt(c->b); }
static sm_status buffer_destroy(ctx *c) { return sm_buffer_destroy(c->b); }
static void buffer_release(ctx *c) { must(sm_buffer_destroy(c->b), "destroy"); }
static void buffer_release_if_done(ctx *c) { if (c->done) buffer_release(c); }
static void buffer_release_unless_done(ctx *c) { if (!c->done) buffer_release(c); }

/*
 * The coffer (spec/enclave-key.md). Setup seals once where the operation needs a key
 * already; undo purges, which unmaps the coffer and takes its locked bytes back.
 */
static sm_status coffer_seal(ctx *c)
{
    return smi_coffer_seal("aad", 3, c->buf, sizeof c->buf, c->nonce, c->tag);
}
static sm_status coffer_open(ctx *c)
{
    return smi_coffer_open(c->nonce, "aad", 3, c->buf, sizeof c->buf, c->tag);
}
static void coffer_setup(ctx *c) { must(coffer_seal(c), "seal"); }
static void coffer_setup_due(ctx *c)
{
    coffer_setup(c);
    smi_coffer_test_age(SMI_COFFER_RESPLIT_NS);
}
/*
 * Seal, then go on in a forked child (the middle process only passes its exit status
 * on), so that the operation runs where the coffer reads as zeroes.
 */
static void coffer_setup_forked(ctx *c)
{
    uint8_t seed[SMI_CANARY_SEED];
    pid_t pid;
    int status;

    coffer_setup(c);
    pid = fork();
    if (pid < 0)
        _exit(3);
    if (pid > 0) {
        if (waitpid(pid, &status, 0) != pid)
            _exit(3);
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    /*
     * The child counts the canary key page unlocked until its first canary locks it
     * again (spec/runtime.md, "Fork"): draw one now, so that the counters taken before
     * the fork, with the page locked, describe the child that the undo ends in.
     */
    smi_rng_canary(seed);
}
static void coffer_purge(ctx *c) { (void)c; smi_coffer_purge(); }

/* Enclaves and streams: setup makes the enclave key first, which is kept for good. */
static void key_ready(ctx *c)
{
    sm_enclave e;
    uint8_t x = 1;

    must(sm_enclave_new(&x, 1, &e), "warm-up enclave");
    must(sm_enclave_destroy(e), "warm-up destroy");
    memset(c->buf, 0x5c, sizeof c->buf);
}
static void enclave_setup(ctx *c) { must(sm_enclave_new(c->buf, 64, &c->e), "enclave"); }
static void stream_setup(ctx *c)
{
    must(sm_stream_new(&c->s), "stream");
    memset(c->buf, 0x5c, sizeof c->buf);
    must(sm_stream_write(c->s, c->buf, 64), "stream write");
}
static sm_status enclave_new(ctx *c) { return sm_enclave_new(c->buf, 64, &c->e); }
static sm_status enclave_open(ctx *c) { return sm_enclave_open(c->e, &c->b); }
static sm_status enclave_destroy(ctx *c) { return sm_enclave_destroy(c->e); }
static sm_status buffer_seal(ctx *c) { return sm_buffer_seal(c->b, &c->e); }
/*
 * A stream whose index (one page of records) is full of full chunks: the next chunk makes
 * it grow (spec/enclaves-streams.md). One chunk per write: a write needs a free record for
 * each chunk it seals before it gives back the tail it replaces.
 */
static void stream_setup_full_index(ctx *c)
{
    /* Static: a malloc'd source would stay mapped in ASan's quarantine and count as a leak. */
    static uint8_t zeros[4 * 65536];
    size_t chunk = 4 * sm_page_size() - 64, recs = sm_page_size() / SMI_STREAM_REC_SIZE;

    if (chunk > sizeof zeros)
        _exit(3);
    stream_setup(c);
    must(sm_stream_write(c->s, zeros, chunk - 64), "stream fill, first record");
    for (size_t i = 1; i < recs; i++)
        must(sm_stream_write(c->s, zeros, chunk), "stream fill");
}
/*
 * A stream of 64 full chunks in one run of 64 slots, full (spec/enclaves-streams.md,
 * "Runs"): the next chunk needs a run of 128, 2 MiB with 4 KiB pages, aligned and
 * advised for a huge page, and a larger index.
 */
static void stream_setup_full_run(ctx *c)
{
    static uint8_t zeros[64 * (4 * 4096 - 64)];
    size_t chunk = 4 * sm_page_size() - 64;

    if (64 * chunk > sizeof zeros)
        _exit(3);
    must(sm_stream_new(&c->s), "stream");
    memset(c->buf, 0x5c, sizeof c->buf);
    must(sm_stream_write(c->s, zeros, 64 * chunk), "stream fill, one run");
}
static sm_status stream_new(ctx *c) { return sm_stream_new(&c->s); }
static sm_status stream_write(ctx *c) { return sm_stream_write(c->s, c->buf, 10); }
static sm_status stream_read(ctx *c) { size_t got; return sm_stream_read(c->s, c->buf, 10, &got); }
static sm_status stream_next(ctx *c) { return sm_stream_next(c->s, &c->b); }
static sm_status stream_flush(ctx *c) { return sm_stream_flush(c->s, &c->b); }
/* 65 chunks in an index grown to two pages: a flush empties it, and it shrinks to one. */
static void stream_setup_grown_index(ctx *c)
{
    stream_setup_full_index(c);
    must(sm_stream_write(c->s, c->buf, 10), "stream write, growing the index");
}
static void enclave_release(ctx *c) { must(sm_enclave_destroy(c->e), "enclave destroy"); }
static void enclave_release_if_done(ctx *c) { if (c->done) enclave_release(c); }
static void enclave_release_unless_done(ctx *c) { if (!c->done) enclave_release(c); }
/*
 * A source of 64 pages, the least that the writability query asks the mappings and the
 * page tables about (src/os/linux.c): one writable anonymous mapping of the test's own,
 * so one PROCMAP_QUERY answers it. Mapped and unmapped outside the library, before the
 * counters are taken and after the undo compares them.
 */
#define SOURCE_PAGES 64
static void large_source(ctx *c)
{
    c->big = mmap(NULL, SOURCE_PAGES * sm_page_size(), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->big == MAP_FAILED)
        _exit(3);
    memset(c->big, 0x5c, SOURCE_PAGES * sm_page_size());
}
static sm_status enclave_new_large(ctx *c)
{
    return sm_enclave_new(c->big, SOURCE_PAGES * sm_page_size(), &c->e);
}
static void large_release(ctx *c)
{
    enclave_release_if_done(c);
    if (munmap(c->big, SOURCE_PAGES * sm_page_size()) != 0)
        _exit(3);
}
static void enclave_and_buffer_release(ctx *c) { buffer_release_if_done(c); enclave_release(c); }
/* An enclave opened: its buffer's region came from smi_pool_take, and goes back there. */
static void enclave_opened(ctx *c) { enclave_setup(c); must(enclave_open(c), "open"); }
/* The same, destroyed: the pool holds a region of the enclave's page count. */
static void enclave_pooled(ctx *c) { enclave_opened(c); buffer_release(c); }
static void opened_release(ctx *c) { buffer_release_unless_done(c); enclave_release(c); }
static void seal_release(ctx *c)
{
    if (c->done)
        enclave_release(c);
    else
        buffer_release(c);
}
static void stream_release(ctx *c) { must(sm_stream_destroy(c->s), "stream destroy"); }
static void stream_release_if_done(ctx *c) { if (c->done) stream_release(c); }
static void stream_and_buffer_release(ctx *c) { buffer_release_if_done(c); stream_release(c); }
/* Secrets: each operation over the protected, guarded and example custom factories. */
static const sm_factory *fac_protected(void) { return sm_factory_protected(); }
static const sm_factory *fac_guarded(void) { return sm_factory_guarded(); }
static const sm_factory *fac_custom(void) { return example_factory(); }
static const sm_factory *fac_encrypted(void) { return sm_factory_encrypted(); }
static const sm_factory *(*secret_factory)(void);

static sm_status secret_new(ctx *c)
{
    memset(c->buf, 0x5a, sizeof c->buf);
    return sm_secret_new(secret_factory(), c->buf, sizeof c->buf, &c->sec);
}
static sm_status secret_random(ctx *c) { return sm_secret_random(secret_factory(), 64, &c->sec); }
static void secret_setup(ctx *c) { must(secret_new(c), "secret"); }
/* The counters inside the last access window: what a window left open must match. */
static counters in_window;
static bool      window_seen;
static sm_status read_fn(const uint8_t *b, size_t n, void *arg)
{
    (void)arg;
    counters_get(&in_window);
    window_seen = true;
    return n == 64 && b[0] == 0x5a && b[63] == 0x5a ? SM_OK : SM_E_AUTH;
}
static sm_status nested_fn(const uint8_t *b, size_t n, void *arg)
{
    ctx *c = arg;
    sm_status st = read_fn(b, n, NULL);

    return st != SM_OK ? st : sm_secret_with_bytes(c->sec, read_fn, NULL);
}
static sm_status secret_with_bytes(ctx *c) { return sm_secret_with_bytes(c->sec, read_fn, NULL); }
static sm_status secret_nested(ctx *c) { return sm_secret_with_bytes(c->sec, nested_fn, c); }
static sm_status secret_try(ctx *c) { return sm_secret_try_with_bytes(c->sec, read_fn, NULL); }
static sm_status secret_read_at(ctx *c)
{
    size_t got;

    return sm_secret_read_at(c->sec, 1, c->buf, 10, &got);
}
static sm_status secret_close(ctx *c) { return sm_secret_close(c->sec); }
static void secret_release(ctx *c) { must(sm_secret_close(c->sec), "close"); }
static void secret_release_if_done(ctx *c) { if (c->done) secret_release(c); }
static void secret_release_unless_done(ctx *c) { if (!c->done) secret_release(c); }
static void use_protected(ctx *c) { secret_factory = fac_protected; (void)c; }
static void use_guarded(ctx *c) { secret_factory = fac_guarded; (void)c; }
static void use_custom(ctx *c) { secret_factory = fac_custom; (void)c; }
static void protected_secret(ctx *c) { use_protected(c); secret_setup(c); }
static void guarded_secret(ctx *c) { use_guarded(c); secret_setup(c); }
static void custom_secret(ctx *c) { use_custom(c); secret_setup(c); }
/* The pool full of a factory's mappings, for the next secret of it to take one. */
static void guarded_pooled(ctx *c) { use_guarded(c); pool_fill_of(fac_guarded()); }
static void protected_pooled(ctx *c) { use_protected(c); pool_fill_of(fac_protected()); }
/*
 * A secret, and the pool full (of guarded regions, which a protected take never gets):
 * its close unmaps, as every close did before the pool.
 */
static void guarded_secret_pool_full(ctx *c) { guarded_secret(c); pool_fill(); }
static void protected_secret_pool_full(ctx *c) { protected_secret(c); pool_fill(); }
static void guarded_pooled_frozen(ctx *c) { guarded_pooled(c); buffer_setup_frozen(c); }
static void protected_pooled_frozen(ctx *c) { protected_pooled(c); buffer_setup_frozen(c); }
static void use_encrypted(ctx *c) { secret_factory = fac_encrypted; (void)c; }
static void encrypted_secret(ctx *c) { use_encrypted(c); secret_setup(c); }

/*
 * The constructors that fill a secret in place (securemem/secret.h), over every factory.
 * from_buffer consumes a FROZEN buffer; on error the buffer is still there (after a
 * refused unmap, wiped, as after a failed sm_buffer_destroy) and the undo destroys it.
 */
static sm_status secret_from_buffer(ctx *c)
{
    return sm_secret_from_buffer(secret_factory(), c->b, &c->sec);
}
static sm_status secret_from_fd(ctx *c) { return sm_secret_from_fd(secret_factory(), c->fd, 64, &c->sec); }
static sm_status fill_5a(uint8_t *b, size_t n, void *arg)
{
    (void)arg;
    memset(b, 0x5a, n);
    return SM_OK;
}
static sm_status secret_from_callback(ctx *c)
{
    return sm_secret_from_callback(secret_factory(), 64, fill_5a, NULL, &c->sec);
}
static void secret_or_buffer_release(ctx *c)
{
    if (c->done)
        secret_release(c);
    else
        buffer_release(c);
}
#define FILL_SETUPS(k)                                                   \
    static void k##_frozen(ctx *c) { use_##k(c); buffer_setup_frozen(c); } \
    static void k##_fd(ctx *c) { use_##k(c); fd_setup(c); }
FILL_SETUPS(protected)
FILL_SETUPS(guarded)
FILL_SETUPS(encrypted)
FILL_SETUPS(custom)

/*
 * The compact factory (spec/compact.md). Its first secret maps a slab; "warm" setups
 * make and close one first, so that the run is the steady state: the slab exists (one
 * empty slab per class stays by design) and its page is locked; the undo trims it.
 */
static const sm_factory *fac_compact(void) { return sm_factory_compact(); }
static void use_compact(ctx *c) { secret_factory = fac_compact; (void)c; }
static void compact_warm(ctx *c) { use_compact(c); secret_setup(c); secret_release(c); }
static void compact_secret(ctx *c) { compact_warm(c); secret_setup(c); }
/* The undo also unmaps the empty slab that a class keeps, so that nothing is left. */
static void compact_release(ctx *c) { secret_release(c); smi_compact_trim(); }
static void compact_release_if_done(ctx *c) { if (c->done) secret_release(c); smi_compact_trim(); }
static void compact_release_unless_done(ctx *c) { if (!c->done) secret_release(c); smi_compact_trim(); }
/* The buffer holds 100 bytes: the 128-byte class, warmed with a secret of that class. */
static void compact_frozen(ctx *c)
{
    use_compact(c);
    must(sm_secret_random(fac_compact(), 100, &c->sec), "secret");
    secret_release(c);
    buffer_setup_frozen(c);
}
static void compact_or_buffer_release(ctx *c) { secret_or_buffer_release(c); smi_compact_trim(); }

#define ANON { SM_LOCK_REQUIRED, SM_BACKING_ANON, false }
static const op ops[] = {
    { "compact.new.first", ANON, true, false, use_compact, secret_new, compact_release_if_done, false, false },
    { "compact.new.best_effort", { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false }, true, false,
      use_compact, secret_new, compact_release_if_done, false, false },
    { "compact.new.secretmem", { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false }, true,
      false, use_compact, secret_new, compact_release_if_done, false, false },
    { "compact.new", ANON, true, false, compact_warm, secret_new, compact_release_if_done, false, false },
    { "compact.from_callback", ANON, true, false, compact_warm, secret_from_callback,
      compact_release_if_done, false, false },
    { "compact.from_buffer", ANON, true, false, compact_frozen, secret_from_buffer,
      compact_or_buffer_release, false, false },
    { "compact.with_bytes", ANON, true, false, compact_secret, secret_with_bytes, compact_release,
      false, true },
    /*
     * The same on protection keys (spec/compact.md, "Protection keys"), where the machine
     * has them: the first make takes the key and tags the slab's data with it, and the
     * steady state makes no call. The compact.* rows above run with the key refused
     * (run_plan), so they hold on every machine.
     */
    { "keyed.compact.new.first", ANON, true, false, use_compact, secret_new,
      compact_release_if_done, false, false },
    { "keyed.compact.new.secretmem", { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false },
      true, false, use_compact, secret_new, compact_release_if_done, false, false },
    { "keyed.compact.new", ANON, true, false, compact_warm, secret_new, compact_release_if_done,
      false, false },
    { "keyed.compact.with_bytes", ANON, true, false, compact_secret, secret_with_bytes,
      compact_release, false, false },
    { "keyed.compact.close", ANON, true, false, compact_secret, secret_close,
      compact_release_unless_done, false, false },
    { "compact.close", ANON, true, false, compact_secret, secret_close, compact_release_unless_done,
      false, false },
    { "mem.alloc", ANON, false, false, nothing, mem_alloc, mem_release_if_done, false, false },
    { "mem.free", ANON, false, false, mem_setup, mem_free, mem_release_unless_done, false, false },
    { "mem.lock", ANON, false, false, mem_setup, mem_lock, mem_release, false, false },
    { "mem.unlock", ANON, false, false, mem_setup_locked, mem_unlock, mem_release, false, false },
    { "mem.protect", ANON, false, false, mem_setup, mem_protect, mem_release, false, false },
    { "random.64", ANON, false, false, nothing, random64, nothing, false, false },
    { "disable_core_dumps", ANON, false, false, nothing, no_dumps, nothing, false, false },
    { "region.alloc.anon", ANON, true, false, nothing, region_alloc, region_release_if_done, false, false },
    { "region.alloc.best_effort", { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false }, true, false,
      nothing, region_alloc, region_release_if_done, false, false },
    { "region.alloc.secretmem", { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false },
      true, false, nothing, region_alloc, region_release_if_done, false, false },
    { "region.alloc.secretmem.required",
      { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_REQUIRED, false }, true, false, nothing,
      region_alloc, region_release_if_done, false, false },
    { "region.free", ANON, true, false, region_setup, region_free, region_release_unless_done, false, false },
    { "region.free.readonly", ANON, true, false, region_setup_ro, region_free,
      region_release_unless_done, false, false },
    { "init.anon", ANON, false, false, nothing, init_run, nothing, false, false },
    { "init.secretmem", { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false }, false,
      false, nothing, init_run, nothing, false, false },
    { "init.no_core_dumps", { SM_LOCK_REQUIRED, SM_BACKING_ANON, true }, false, false, nothing,
      init_run, nothing, false, false },
    { "registry.insert.grow", ANON, true, true, nothing, registry_insert, registry_release, false, false },
    { "buffer.new", ANON, true, false, nothing, buffer_new, buffer_release_if_done, false, false },
    { "buffer.from_bytes", ANON, true, false, nothing, buffer_from_bytes,
      buffer_release_if_done, false, false },
    { "buffer.random", ANON, true, false, nothing, buffer_random, buffer_release_if_done, false, false },
    { "buffer.from_fd", ANON, true, false, fd_setup, buffer_from_fd, buffer_release_if_done, false, false },
    { "buffer.freeze", ANON, true, false, buffer_setup, buffer_freeze, buffer_release, false, false },
    { "buffer.melt", ANON, true, false, buffer_setup_frozen, buffer_melt, buffer_release, false, false },
    { "buffer.destroy", ANON, true, false, buffer_setup, buffer_destroy,
      buffer_release_unless_done, false, false },
    { "buffer.destroy.frozen", ANON, true, false, buffer_setup_frozen, buffer_destroy,
      buffer_release_unless_done, false, false },
    { "enclave.new", ANON, true, false, nothing, enclave_new, enclave_release_if_done, true, false },
    { "enclave.new.large", ANON, true, false, large_source, enclave_new_large, large_release, true,
      false },
    { "enclave.open", ANON, true, false, enclave_setup, enclave_open,
      enclave_and_buffer_release, true, false },
    { "enclave.open.pooled", ANON, true, false, enclave_pooled, enclave_open,
      enclave_and_buffer_release, true, false },
    { "buffer.destroy.opened", ANON, true, false, enclave_opened, buffer_destroy, opened_release,
      true, false },
    { "enclave.destroy", ANON, true, false, enclave_setup, enclave_destroy,
      enclave_release_unless_done, true, false },
    { "buffer.seal", ANON, true, false, buffer_setup, buffer_seal, seal_release, true, false },
    { "stream.new", ANON, true, false, nothing, stream_new, stream_release_if_done, true, false },
    { "stream.write", ANON, true, false, stream_setup, stream_write, stream_release, true, false },
    { "stream.write.grow", ANON, true, false, stream_setup_full_index, stream_write, stream_release,
      true, false },
    { "stream.write.run", ANON, true, false, stream_setup_full_run, stream_write, stream_release,
      true, false },
    { "stream.read", ANON, true, false, stream_setup, stream_read, stream_release, true, false },
    { "stream.next", ANON, true, false, stream_setup, stream_next, stream_and_buffer_release, true, false },
    { "stream.flush.shrink", ANON, true, false, stream_setup_grown_index, stream_flush,
      stream_and_buffer_release, true, false },
    { "coffer.seal.first", ANON, true, false, nothing, coffer_seal, coffer_purge, false, false },
    { "coffer.seal.first.best_effort", { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false }, true,
      false, nothing, coffer_seal, coffer_purge, false, false },
    { "coffer.seal.first.secretmem", { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false },
      true, false, nothing, coffer_seal, coffer_purge, false, false },
    { "coffer.seal", ANON, true, false, coffer_setup, coffer_seal, coffer_purge, false, false },
    { "coffer.open", ANON, true, false, coffer_setup, coffer_open, coffer_purge, false, false },
    { "coffer.seal.resplit", ANON, true, false, coffer_setup_due, coffer_seal, coffer_purge, false, false },
    { "coffer.open.resplit", ANON, true, false, coffer_setup_due, coffer_open, coffer_purge, false, false },
    { "coffer.seal.after_fork", ANON, true, false, coffer_setup_forked, coffer_seal,
      coffer_purge, false, false },
    { "coffer.seal.after_fork.best_effort", { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false },
      true, false, coffer_setup_forked, coffer_seal, coffer_purge, false, false },
    { "secret.new.protected", ANON, true, false, use_protected, secret_new, secret_release_if_done, false, false },
    { "secret.new.guarded", ANON, true, false, use_guarded, secret_new, secret_release_if_done, false, false },
#define POOLED_OPS(k)                                                                    \
    { "secret.new." #k ".pooled", ANON, true, false, k##_pooled, secret_new,              \
      secret_release_if_done, false, false },                                             \
    { "secret.random." #k ".pooled", ANON, true, false, k##_pooled, secret_random,        \
      secret_release_if_done, false, false },                                             \
    { "secret.from_callback." #k ".pooled", ANON, true, false, k##_pooled,                \
      secret_from_callback, secret_release_if_done, false, false },                       \
    { "secret.from_buffer." #k ".pooled", ANON, true, false, k##_pooled_frozen,           \
      secret_from_buffer, secret_or_buffer_release, false, false }
    POOLED_OPS(guarded),
    POOLED_OPS(protected),
    { "secret.new.custom", ANON, true, false, use_custom, secret_new, secret_release_if_done, false, false },
    /* No registry warm-up: the insert maps the first slot chunk, and may fail doing so. */
    { "secret.new.grow", ANON, true, true, use_protected, secret_new, secret_release_if_done, false, false },
    { "secret.new.best_effort", { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false }, true, false,
      use_protected, secret_new, secret_release_if_done, false, false },
    { "secret.new.secretmem", { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false }, true,
      false, use_protected, secret_new, secret_release_if_done, false, false },
    { "secret.random.protected", ANON, true, false, use_protected, secret_random,
      secret_release_if_done, false, false },
    { "secret.random.guarded", ANON, true, false, use_guarded, secret_random,
      secret_release_if_done, false, false },
    { "secret.with_bytes.protected", ANON, true, false, protected_secret, secret_with_bytes,
      secret_release, false, false },
    { "secret.with_bytes.guarded", ANON, true, false, guarded_secret, secret_with_bytes,
      secret_release, false, false },
    { "secret.with_bytes.custom", ANON, true, false, custom_secret, secret_with_bytes,
      secret_release, false, false },
    { "secret.with_bytes.nested", ANON, true, false, guarded_secret, secret_nested, secret_release, false, false },
    { "secret.try_with_bytes", ANON, true, false, protected_secret, secret_try, secret_release, false, false },
    { "secret.read_at", ANON, true, false, guarded_secret, secret_read_at, secret_release, false, false },
    { "secret.close.protected", ANON, true, false, protected_secret, secret_close,
      secret_release_unless_done, false, false },
    { "secret.close.guarded", ANON, true, false, guarded_secret, secret_close,
      secret_release_unless_done, false, false },
    { "secret.close.guarded.pool_full", ANON, true, false, guarded_secret_pool_full, secret_close,
      secret_release_unless_done, false, false },
    { "secret.close.protected.pool_full", ANON, true, false, protected_secret_pool_full,
      secret_close, secret_release_unless_done, false, false },
    { "secret.close.custom", ANON, true, false, custom_secret, secret_close,
      secret_release_unless_done, false, false },
    { "secret.new.encrypted", ANON, true, false, use_encrypted, secret_new,
      secret_release_if_done, true, false },
#define FILL_OPS(k, key)                                                                      \
    { "secret.from_buffer." #k, ANON, true, false, k##_frozen, secret_from_buffer,             \
      secret_or_buffer_release, key, false },                                                  \
    { "secret.from_fd." #k, ANON, true, false, k##_fd, secret_from_fd, secret_release_if_done, \
      key, false },                                                                            \
    { "secret.from_callback." #k, ANON, true, false, use_##k, secret_from_callback,            \
      secret_release_if_done, key, false }
    FILL_OPS(protected, false),
    FILL_OPS(guarded, false),
    FILL_OPS(encrypted, true),
    FILL_OPS(custom, false),
    { "secret.with_bytes.encrypted", ANON, true, false, encrypted_secret, secret_with_bytes,
      secret_release, true, true },
    { "secret.close.encrypted", ANON, true, false, encrypted_secret, secret_close,
      secret_release_unless_done, true, false },
};

static const op *current;
static sm_status init_run(ctx *c) { (void)c; return sm_init(&current->cfg); }

static const op *op_named(const char *name)
{
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(ops[i].name, name) == 0)
            return &ops[i];
    return NULL;
}

#define FAIL(...) do { fprintf(stderr, "%s: ", current->name); \
                       fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); _exit(1); } while (0)

/* One planned run, in the child. fn < 0: count the calls instead of failing one. */
typedef struct plan {
    const op     *op;
    int           fn, err;
    unsigned long nth;
    sm_status     want;
    bool          leaks;  /* SM_OK_LEAKS: success, with a mapping of ciphertext left over */
    unsigned long counts[SM_OS_FN_COUNT]; /* expected, for the counting run */
} plan;

static void run_plan(void *arg)
{
    const plan *p = arg;
    ctx c = { 0 };
    counters base, before, after;
    sm_status st;
    size_t fds;

    current = p->op;
    if (p->op->init && sm_init(&p->op->cfg) != SM_OK)
        FAIL("sm_init in setup failed");
    /* The registry maps its first chunk for good: grow it before anything is measured. */
    if (p->op->init && !p->op->keeps_mapped) {
        smi_slot *s;

        if (smi_registry_insert(SMI_KIND_BUFFER, "", 0, &c.id) != SM_OK ||
            smi_registry_acquire(c.id, SMI_KIND_BUFFER, &s) != SM_OK)
            FAIL("registry warm-up failed");
        smi_registry_remove(s);
    }
    if (p->op->key)
        key_ready(&c);
    if (strncmp(p->op->name, "compact.", 8) == 0)
        compact_without_keys();
    counters_get(&base);
    p->op->setup(&c);
    /*
     * The rows count the calls of the cold path: no spare ciphertext mapping to take,
     * and none kept (a warm seal maps nothing: test_enclave.c and test_stream.c).
     */
    smi_spare_drain();
    smi_spare_test_off(true);
    sm_os_fault_reset();
    if (p->fn >= 0)
        sm_os_fault_arm((sm_os_fn)p->fn, p->nth, p->err, false);
    counters_get(&before);
    fds = open_fds();
    window_seen = false;
    st = p->op->run(&c);
    counters_get(&after);
    /* Every path of every operation closes what it opened (the query's /proc files). */
    if (open_fds() != fds)
        FAIL("%zu descriptors open before, %zu after", fds, open_fds());
    if (p->fn < 0) {
        for (int f = 0; f < SM_OS_FN_COUNT; f++)
            if (sm_os_fault_calls((sm_os_fn)f) != p->counts[f])
                FAIL("%lu calls of %s, spec/syscalls.tsv says %lu",
                     sm_os_fault_calls((sm_os_fn)f), sm_os_fn_name((sm_os_fn)f), p->counts[f]);
    } else if (sm_os_fault_calls((sm_os_fn)p->fn) < p->nth) {
        FAIL("call %lu of %s never happened", p->nth, sm_os_fn_name((sm_os_fn)p->fn));
    }
    if (st != p->want)
        FAIL("failing call %lu of %s: got %s, want %s", p->nth,
             p->fn >= 0 ? sm_os_fn_name((sm_os_fn)p->fn) : "-", sm_status_str(st),
             sm_status_str(p->want));
    sm_os_fault_reset();
    if (st != SM_OK) {
        if (sm_last_os_error() != p->err)
            FAIL("sm_last_os_error %d, want %d", sm_last_os_error(), p->err);
        /*
         * A failed shut keeps the access window open (securemem/secret.h); for the
         * encrypted factory that window is a mapping of its own. Then everything must
         * be exactly as it was inside the window, and nothing more; the undo checks
         * that closing the secret gives it all back.
         */
        bool as_before = counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS);
        bool as_inside = p->op->window_may_stay && window_seen &&
                         counters_equal(&in_window, &after, CMP_MAPPED | CMP_ALLOCATIONS);
        /*
         * In a forked child the enclave key's regions are counted unlocked until the
         * child's first key view locks them again (spec/runtime.md, "Fork"). A call that
         * fails after that step leaves them locked, and counted so: the same counters
         * but for bytes moved from unlocked to locked.
         */
        counters relocked = after;

        relocked.locked = before.locked;
        relocked.unlocked = before.unlocked;
        bool as_relocked = p->op->setup == coffer_setup_forked &&
                           after.locked > before.locked &&
                           after.locked + after.unlocked == before.locked + before.unlocked &&
                           counters_equal(&before, &relocked, CMP_MAPPED | CMP_ALLOCATIONS);
        if (!as_before && !as_inside && !as_relocked)
            FAIL("failing call %lu of %s changed the counters or mappings (%zu -> %zu bytes)",
                 p->nth, sm_os_fn_name((sm_os_fn)p->fn), before.mapped, after.mapped);
    }
    c.done = st == SM_OK;
    p->op->undo(&c);
    counters_get(&after);
    /*
     * Back where setup started, but for allocations_total, which only grows: a
     * successful sm_init keeps its key region and the registry keeps its chunk by
     * design (spec/registry.md); everything else is returned.
     */
    if (p->op->run != init_run &&
        !counters_equal(&base, &after, p->op->keeps_mapped || p->leaks ? 0 : CMP_MAPPED))
        FAIL("the operation and its undo leaked (%zu -> %zu bytes)", base.mapped, after.mapped);
    _exit(0);
}

/*
 * The POSIX flavour (make test-posix) has no memfd_secret, no prctl, no WIPEONFORK and no
 * writability query: the rows of the operations that use them, or that count on a forked child finding its
 * key pages zeroed, describe Linux's calls, and are left out there. A Linux kernel that
 * grants no memfd_secret (Debian 12's own, helpers.h) leaves out the secretmem rows,
 * whose calls after the first it never reaches. Every other operation's counts and fault
 * paths are checked in both builds and on every kernel.
 */
static bool not_here(const char *name)
{
    /* The keyed.* rows: only where the machine has protection keys (test_os.c alike). */
    if (strncmp(name, "keyed.", 6) == 0 && !machine_has_pkeys())
        return true;
    /*
     * The .large rows count the query's PROCMAP_QUERY (Linux 6.11) and PAGEMAP_SCAN of
     * guard markers (6.14); an older kernel refuses them and the madvise answers, which
     * test_os.c checks with the fault shim's refusals on every kernel.
     */
    if (strstr(name, ".large") != NULL && !kernel_at_least(6, 14))
        return true;
#if defined(SM_OS_GENERIC)
    return strstr(name, "secretmem") != NULL || strstr(name, "after_fork") != NULL ||
           strstr(name, ".large") != NULL ||
           strcmp(name, "disable_core_dumps") == 0 ||
           strcmp(name, "init.no_core_dumps") == 0;
#else
    static int has = -1;

    if (has < 0)
        has = kernel_has_secretmem();
    return !has && strstr(name, "secretmem") != NULL;
#endif
}

Test(faults, every_call_site_of_every_operation)
{
    tsv_row *rows;
    size_t n = tsv_load("syscalls.tsv", &rows);
    size_t runs = 0;

    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        plan count = { .op = &ops[i], .fn = -1 };
        bool seen = false;

        if (not_here(ops[i].name))
            continue;

        for (size_t j = 0; j < n; j++) {
            int fn;

            if (strcmp(rows[j].f[0], ops[i].name) != 0)
                continue;
            seen = true;
            fn = os_fn_from_name(rows[j].f[1]);
            cr_assert(fn >= 0, "unknown OS function %s in spec/syscalls.tsv", rows[j].f[1]);
            count.counts[fn] = strtoul(rows[j].f[2], NULL, 10);
        }
        cr_assert(seen, "operation %s has no row in spec/syscalls.tsv", ops[i].name);
        cr_expect_eq(in_child(run_plan, &count), 0, "%s: call counts differ from the spec",
                     ops[i].name);
        runs++;
    }
    for (size_t j = 0; j < n; j++) {
        const op *o = op_named(rows[j].f[0]);
        plan p = { .op = o };

        if (not_here(rows[j].f[0]))
            continue;

        cr_assert(rows[j].nf == 5, "spec/syscalls.tsv row %zu needs 5 fields", j);
        cr_assert(o != NULL, "no test operation for %s", rows[j].f[0]);
        p.fn = os_fn_from_name(rows[j].f[1]);
        p.err = errno_from_name(rows[j].f[3]);
        for (p.nth = 1; p.nth <= strtoul(rows[j].f[2], NULL, 10); p.nth++) {
            /* The status of the nth call: the nth of a comma-separated list, or its last. */
            char st[64];
            const char *f = rows[j].f[4];

            for (unsigned long k = 1; k < p.nth && strchr(f, ',') != NULL; k++)
                f = strchr(f, ',') + 1;
            snprintf(st, sizeof st, "%.*s", (int)strcspn(f, ","), f);
            p.leaks = strcmp(st, "SM_OK_LEAKS") == 0;
            p.want = p.leaks ? SM_OK : status_from_name(st);
            cr_assert(p.err > 0 && (int)p.want >= 0, "bad errno or status in row %zu", j);
            cr_expect_eq(in_child(run_plan, &p), 0, "%s: failing call %lu of %s",
                         o->name, p.nth, rows[j].f[1]);
            runs++;
        }
    }
    cr_log_info("%zu fault-injection runs", runs);
    tsv_free(rows, n);
}
