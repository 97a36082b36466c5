/* SPDX-License-Identifier: ISC */
/*
 * Eva's driver (proofs/README.md, "Eva"): the public entry points of the memory layer
 * (src/memory/mem.c), guarded regions through their whole life (src/memory/region.c),
 * plain locked mappings, the protected factory's storage (src/memory/plain.c), and
 * every function of the core, called with the OS shim of proofs/eva/os.c, in
 * which every system call may fail and a page the library cannot read is
 * uninitialised. Eva reports any run-time error it cannot exclude on these paths:
 * out-of-bounds access, overflow, uninitialised read (a guard page or a shut page
 * included), invalid free or unmap.
 *
 * -DEVA_OVERRUN reads a mapping while it is PROT_NONE, one byte past its end, and one
 * byte past a region's data (its trailing guard page): eva.sh requires that this
 * variant raise those three alarms (the model's self-test).
 */
#include <__fc_builtin.h>

#include "inner.h"

/*
 * The sizes Eva follows one by one: the page boundaries, and one byte either side. One
 * call site each (not a loop), so that each mapping made under it is a heap block of
 * its own for Eva (-eva-alloc-builtin by_stack), with its exact length.
 */
#define EACH_SIZE(f) (f(1), f(4095), f(4096), f(4097), f(3 * 4096))

#if defined(EVA_OVERRUN)
static volatile uint8_t sink;
#endif

/* One mapping of the memory layer through its life, every OS call allowed to fail. */
static void mem_life(size_t n)
{
    void *p;

    if (sm_mem_alloc(n, &p) != SM_OK)
        return;
    if (sm_mem_lock(p, n) == SM_OK)
        (void)sm_mem_unlock(p, n);
    (void)sm_mem_protect(p, n, SM_PROT_READ);
#if defined(EVA_OVERRUN)
    if (sm_mem_protect(p, n, SM_PROT_NONE) == SM_OK)
        sink ^= *(volatile uint8_t *)p;
    if (sm_mem_protect(p, n, SM_PROT_READWRITE) == SM_OK)
        sink ^= ((volatile uint8_t *)p)[smi_round_up(n, sm_page_size())];
#else
    (void)sm_mem_protect(p, n, SM_PROT_NONE);
#endif
    (void)sm_mem_protect(p, n, SM_PROT_READWRITE);
    (void)sm_random(p, n);
    sm_wipe(p, n);
    (void)sm_mem_free(p, n);
}

static void memory_layer(void)
{
    static uint8_t a[64], b[64];
    void *p = NULL;
    size_t page = sm_page_size();

    EACH_SIZE(mem_life);
    /* the refusals: zero and overflowing sizes, NULL, a bad protection */
    (void)sm_mem_alloc(0, &p);
    (void)sm_mem_alloc(SIZE_MAX, &p);
    (void)sm_mem_alloc(page, NULL);
    (void)sm_mem_free(NULL, page);
    (void)sm_mem_lock(NULL, page);
    (void)sm_mem_unlock(NULL, 0);
    (void)sm_mem_protect(NULL, page, SM_PROT_READ);
    (void)sm_mem_protect(&p, page, (sm_prot)7);
    (void)sm_random(NULL, 0);

    Frama_C_make_unknown((char *)a, sizeof a);
    Frama_C_make_unknown((char *)b, sizeof b);
    (void)sm_equal(a, b, Frama_C_size_t_interval(0, sizeof a));
    (void)sm_random(a, sizeof a);
    sm_wipe(a, Frama_C_size_t_interval(0, sizeof a));
    sm_wipe(NULL, 0);
    (void)sm_disable_core_dumps();
}

/*
 * The data window of a region, read whole and, when it is open for writing, written
 * whole: every byte of [data, data + size) must be valid and, once open, initialised.
 */
static void touch(const smi_region *r, bool write)
{
    uint8_t *d = smi_region_data(r);
    volatile uint8_t seen = 0;

    for (size_t i = 0; i < r->size; i++)
        seen ^= d[i];
#if defined(EVA_OVERRUN)
    /* one byte past the data: the first byte of the trailing guard page */
    seen ^= d[r->size];
#endif
    if (write)
        for (size_t i = 0; i < r->size; i++)
            d[i] = (uint8_t)i;
}

static uint8_t seed[SMI_CANARY_SEED];

/* The canary source that smi_rng_canary is in the library: any pattern. */
static void any_canary(uint8_t out[SMI_CANARY_SEED])
{
    Frama_C_make_unknown((char *)out, SMI_CANARY_SEED);
}

/* Free r; if the OS refuses, the purge path, which unmaps whatever happens. */
static void release(smi_region *r)
{
    if (smi_region_free(r) != SM_OK)
        (void)smi_region_purge(r);
}

/*
 * One region through its whole life, every OS call allowed to fail. Each step that
 * fails ends the life there, so that the states Eva keeps apart stay few.
 */
static void region_life(size_t n)
{
    smi_region r;

    if (smi_region_alloc(n, seed, &r) != SM_OK)
        return;
    touch(&r, true);
    smi_region_check(&r);
    /* shut: the audit opens it to look and shuts it again; then read-only */
    if (smi_region_protect(&r, SM_PROT_NONE) == SM_OK && smi_region_audit(&r) == SM_OK &&
        smi_region_protect(&r, SM_PROT_READ) == SM_OK)
        touch(&r, false);
    release(&r);
}

/*
 * A region kept across a fork, then scrubbed (the pool's way) and purged: in the child
 * the counters are set to zero and the region counted again (runtime.c's child handler).
 */
static void region_scrubbed(void)
{
    smi_region r;

    if (smi_region_alloc_wiped_on_fork(4095, NULL, &r) != SM_OK)
        return;
    touch(&r, true);
    smi_stats_after_fork();
    smi_region_fork_unlocked(&r);
    smi_region_relocked(&r);
    if (smi_region_scrub(&r) == SM_OK)
        (void)smi_region_purge(&r);
    else
        smi_region_unmake(&r);
}

/* A region wiped in place (an ending purge's fallback), then forgotten as in a child. */
static void region_forgotten(void)
{
    smi_region r;

    if (smi_region_alloc(1, NULL, &r) != SM_OK)
        return;
    smi_region_wipe_in_place(&r);
    smi_region_forget(&r);
}

/* A fresh region of the pool's, locked as its pages are first touched (pool.c's take). */
static void region_locked_on_touch(void)
{
    smi_region r;

    if (smi_region_alloc_locked_on_touch(4097, &r) != SM_OK)
        return;
    touch(&r, true);
    release(&r);
}

/* A region made on pages that the pool kept (3 pages, PROT_NONE), as pool.c adopts one. */
static void region_adopted(void)
{
    const size_t len = 3 * 4096;
    void *base;
    smi_region r;

    if (sm_os_mmap(len, SM_PROT_NONE, &base) != SM_OK)
        return;
    /* refused: its inner pages would be two */
    if (smi_region_adopt(base, 4096, false, 4097, &r) == SM_OK ||
        smi_region_adopt(base, 4096, false, 4000, &r) != SM_OK) {
        (void)sm_os_munmap(base, len);
        return;
    }
    touch(&r, true);
    release(&r);
}

/* The pool's emptying, which a refused lock calls through region.c's hook: either answer. */
static bool relieve_any(void)
{
    return Frama_C_interval(0, 1) != 0;
}

/* A page locked as it is first touched (compact.c's slabs), through the same retry. */
static void locked_on_touch(void)
{
    void *base;

    if (sm_os_mmap(4096, SM_PROT_NONE, &base) != SM_OK)
        return;
    (void)smi_lock_touched_pages(base, 4096);
    (void)sm_os_munmap(base, 4096);
}

/* The runtime's purge, which a panic calls through fatal.c's hook: out of this scope. */
static bool purge_all(bool ending)
{
    (void)ending;
    return true;
}

/* The configurations that regions and plain mappings are made under (smi_config_set). */
static const sm_config anon = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                .backing = SM_BACKING_ANON },
                       secret = { .lock_policy = SM_LOCK_BEST_EFFORT,
                                  .backing = SM_BACKING_SECRETMEM_REQUIRED },
                       required = { .lock_policy = SM_LOCK_REQUIRED,
                                    .backing = SM_BACKING_ANON };

static void regions(void)
{
    smi_region r;

    /*
     * Anonymous memory at every size; memfd_secret at one. REQUIRED, not PREFERRED:
     * PREFERRED's fallback maps a second block into the same region on one path, and
     * region_alloc joins the two paths, after which Eva no longer knows which block the
     * region is (proofs/README.md, "Eva").
     */
    smi_config_set(&anon, false);
    EACH_SIZE(region_life);
    smi_config_set(&secret, true);
    region_life(4095);
    smi_config_set(&required, false);
    /* the refusals: no canary source yet, size 0, a size past the layout's bound */
    (void)smi_region_alloc(1, NULL, &r);
    (void)smi_region_alloc(0, seed, &r);
    (void)smi_region_alloc(SIZE_MAX, seed, &r);
    /* the canary drawn from the registered source; the other ends of a region */
    smi_region_canary_source(any_canary);
    /* a refused lock with nothing registered to empty, then with the pool's hook */
    (void)smi_lock_retry();
    smi_lock_relief(relieve_any);
    locked_on_touch();
    region_scrubbed();
    region_forgotten();
    region_locked_on_touch();
    region_adopted();
}

/*
 * The bytes of a plain locked mapping (plain.c, the protected factory's storage), read
 * whole and, when it is open for writing, written whole: every byte must be valid and,
 * once open, initialised (a shut page reads as uninitialised).
 */
static void plain_touch(const smi_plain *p, bool write)
{
    volatile uint8_t seen = 0;

    for (size_t i = 0; i < p->size; i++)
        seen ^= p->base[i];
    if (write)
        for (size_t i = 0; i < p->size; i++)
            p->base[i] = (uint8_t)i;
}

/*
 * Free p; if the OS refuses, a rollback's drop (smi_pool_unmake_plain's), and if that
 * is refused too, the purge path, which unmaps whatever happens.
 */
static void plain_release(smi_plain *p)
{
    if (smi_plain_free(p) != SM_OK && smi_plain_drop(p) != SM_OK)
        (void)smi_plain_purge(p);
}

/*
 * A plain mapping through its life, every OS call allowed to fail: written, shut,
 * opened read-only and read again, freed. As for regions, the steps live in helpers
 * so that the states Eva keeps apart here stay few (else it joins a freed mapping
 * with a live one).
 */
static void plain_life(size_t n)
{
    smi_plain p;

    if (smi_plain_alloc(n, &p) != SM_OK)
        return;
    plain_touch(&p, true);
    if (smi_plain_protect(&p, SM_PROT_NONE) == SM_OK &&
        smi_plain_protect(&p, SM_PROT_READ) == SM_OK)
        plain_touch(&p, false);
    plain_release(&p);
}

/*
 * A mapping as the pool keeps it (plain.c's scrub: wiped, shut), then made a new mapping
 * of the same pages (adopt), refused for a size of another page count; the new owner
 * writes and reads all of its bytes. A refused scrub leaves the mapping freeable, a
 * refused adoption leaves it shut for the purge.
 */
static void plain_pooled(void)
{
    smi_plain p, q;

    if (smi_plain_alloc(1, &p) != SM_OK)
        return;
    plain_touch(&p, true);
    if (smi_plain_scrub(&p) != SM_OK) {
        plain_release(&p);
        return;
    }
    if (smi_plain_adopt(p.base, p.len, p.secretmem, 4097, &q) == SM_OK ||
        smi_plain_adopt(p.base, p.len, p.secretmem, 4000, &q) != SM_OK) {
        (void)smi_plain_purge(&p);
        return;
    }
    plain_touch(&q, true);
    plain_release(&q);
}

/* A shut mapping wiped in place (a purge while readers hold it), then forgotten (a child). */
static void plain_forgotten(void)
{
    smi_plain p;

    if (smi_plain_alloc(4097, &p) != SM_OK)
        return;
    (void)smi_plain_protect(&p, SM_PROT_NONE);
    smi_plain_wipe_in_place(&p);
    smi_plain_forget(&p);
}

/*
 * Anonymous memory at every size; memfd_secret at one, under REQUIRED, as for regions,
 * and before regions() registers the pool's emptying hook: a refused lock that the
 * hook relieves maps a second block into the same mapping, and the join of the two
 * paths loses which block it is (the limit that keeps regions off PREFERRED).
 */
static void plains(void)
{
    smi_plain p;

    smi_config_set(&anon, false);
    EACH_SIZE(plain_life);
    plain_pooled();
    plain_forgotten();
    /* the refusals: size 0, a size whose rounding to pages overflows */
    (void)smi_plain_alloc(0, &p);
    (void)smi_plain_alloc(SIZE_MAX, &p);
    smi_config_set(&secret, true);
    plain_life(4095);
    plain_forgotten();
    /* a lock that must hold */
    smi_config_set(&required, false);
    plain_life(4096);
}

static void core(void)
{
    /* static, so initialised: Eva merges the iterations of the fill loop and would
       lose that the fill writes every byte (WP proves it: canary_tiled) */
    static uint8_t seed[SMI_CANARY_SEED], c[4 * SMI_CANARY_SEED + 5];
    smi_layout l;
    smi_buf_state next;
    uint64_t id;

    /* the state table: every state, every class, and values that are no class, one
       call each (unrolled), so that Eva knows which behavior of the contract applies */
    /*@ loop unroll 3; */
    for (int s = SMI_BUF_MUTABLE; s <= SMI_BUF_DESTROYED; s++)
        /*@ loop unroll 8; */
        for (int op = -1; op <= SMI_BOP_DESTROY + 1; op++)
            (void)smi_buf_step((smi_buf_state)s, (smi_buf_op)op, &next);

    /* layouts: around page boundaries and around the overflow bound, for two page
       sizes, one call each (so that Eva knows which behavior applies) */
    /*@ loop unroll 2; */
    for (unsigned k = 0; k < 2; k++) {
        size_t pg = k == 0 ? 4096 : 65536;
        size_t bound = SIZE_MAX - SMI_CANARY_MIN - 3 * pg;
        const size_t probes[] = { 0, 1, pg - SMI_CANARY_MIN, pg - SMI_CANARY_MIN + 1, pg,
                                  bound, bound + 1, SIZE_MAX };

        /*@ loop unroll 8; */
        for (unsigned i = 0; i < sizeof probes / sizeof probes[0]; i++) {
            (void)smi_round_up(probes[i], pg);
            (void)smi_layout_of(probes[i], pg, &l);
        }
    }

    /* the canary over a length that is no multiple of the seed */
    Frama_C_make_unknown((char *)seed, sizeof seed);
    smi_canary_fill(c, sizeof c, seed);
    (void)smi_canary_ok(c, sizeof c, seed);

    /* handles: any fields that make allows (a kind, a live generation), then any id */
    id = smi_handle_make(Frama_C_unsigned_int_interval(1, SMI_HANDLE_KIND_MAX),
                         Frama_C_unsigned_int_interval(1, SMI_HANDLE_GEN_MAX),
                         Frama_C_unsigned_int_interval(0, UINT32_MAX));
    (void)smi_handle_kind(id);
    (void)smi_handle_gen(id);
    (void)smi_handle_index(id);
    (void)smi_handle_gen_live(smi_handle_gen_next(Frama_C_unsigned_int_interval(0, UINT32_MAX)));
    (void)smi_handle_accepts(id, id, Frama_C_unsigned_int_interval(0, UINT32_MAX));
    (void)smi_handle_accepts(id, 0, 1);
}

int main(void)
{
    memory_layer();
    smi_fatal_purge_hook(purge_all);
    Frama_C_make_unknown((char *)seed, sizeof seed);
    plains();
    regions();
    core();
    return 0;
}
