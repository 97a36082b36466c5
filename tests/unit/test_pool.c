/* SPDX-License-Identifier: ISC */
/*
 * The guarded factory's region pool (src/memory/pool.c, spec/layout.md "The pool"): a
 * closed one-page guarded secret leaves its region wiped, locked and PROT_NONE for the
 * next one, which gets a canary of its own; at most SMI_POOL_SLOTS regions, counted
 * locked, emptied by sm_purge and forgotten by a forked child. Fault injection at its
 * calls is also in test_faults.c (the secret.*.guarded rows of spec/syscalls.tsv).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "helpers.h"

#define LEN 32

static sm_status where_fn(const uint8_t *b, size_t n, void *ctx)
{
    (void)n;
    *(const uint8_t **)ctx = b;
    return SM_OK;
}

/* A guarded secret of LEN bytes of value v, and the address of its bytes. */
static sm_secret make(uint8_t v, const uint8_t **at)
{
    uint8_t src[LEN];
    sm_secret s;

    memset(src, v, sizeof src);
    cr_assert_eq(sm_secret_new(sm_factory_guarded(), src, LEN, &s), SM_OK);
    cr_assert_eq(sm_secret_with_bytes(s, where_fn, (void *)at), SM_OK);
    return s;
}

/* The inner page (canary and bytes) of the region whose bytes are at, copied out. */
static void inner_page(const uint8_t *at, uint8_t *out)
{
    size_t page = sm_page_size();
    uint8_t *inner = (uint8_t *)((uintptr_t)at & ~(uintptr_t)(page - 1));

    cr_assert_eq(mprotect(inner, page, PROT_READ), 0);
    memcpy(out, inner, page);
    cr_assert_eq(mprotect(inner, page, PROT_NONE), 0);
}

static bool pooled(const uint8_t *at)
{
    uint8_t *bases[SMI_POOL_SLOTS];
    size_t n = smi_pool_test_list(bases, SMI_POOL_SLOTS), page = sm_page_size();

    for (size_t i = 0; i < n; i++)
        if (bases[i] + page == (uint8_t *)((uintptr_t)at & ~(uintptr_t)(page - 1)))
            return true;
    return false;
}

/* The registry maps its first chunk for good with the first secret: map it first. */
static void warm_up(void)
{
    uint8_t src[LEN] = { 1 };
    sm_secret s;

    cr_assert_eq(sm_secret_new(sm_factory_protected(), src, LEN, &s), SM_OK);
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

static uint64_t locked_now(void)
{
    sm_stats st;

    cr_assert_eq(sm_stats_get(&st), SM_OK);
    return st.bytes_locked;
}

Test(pool, a_closed_region_is_wiped_shut_and_reused_with_a_new_canary)
{
    size_t page = sm_page_size();
    uint8_t *before = malloc(page), *after = malloc(page), *again = malloc(page);
    const uint8_t *a, *b;
    char perms[5], flags[256];
    size_t kb;
    sm_secret s;

    cr_assert_eq(sm_init(NULL), SM_OK);
    s = make(0xa5, &a);
    inner_page(a, before);
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert(pooled(a), "the region went to the pool");
    cr_assert_eq(smaps_of(a, perms, flags, sizeof flags, &kb), 0);
    cr_assert_str_eq(perms, "---p", "PROT_NONE in the pool");
    if (SM_TEST_MLOCK_IS_REAL)
        cr_assert_gt(kb, 0, "still locked");
    inner_page(a, after);
    for (size_t i = 0; i < page; i++)
        cr_assert_eq(after[i], 0, "byte %zu of the pooled page is not wiped", i);

    s = make(0x3c, &b);
    cr_assert_eq(b, a, "the next guarded secret takes the pooled region");
    cr_assert_not(pooled(a));
    inner_page(b, again);
    /* page - LEN bytes of canary, then the bytes: a new pattern, not the last one's. */
    cr_assert_neq(memcmp(before, again, page - LEN), 0, "the canary was reused");
    for (size_t i = 0; i < LEN; i++)
        cr_assert_eq(again[page - LEN + i], 0x3c);
    cr_assert_eq(sm_secret_close(s), SM_OK);
    free(before);
    free(after);
    free(again);
}

Test(pool, bounded_and_counted_locked)
{
    enum { N = SMI_POOL_SLOTS + 3 };
    sm_secret s[N];
    const uint8_t *at[N];
    size_t page = sm_page_size(), mapped;
    uint64_t locked;

    cr_assert_eq(sm_init(NULL), SM_OK);
    warm_up();
    cr_assert_eq(pooled_regions(), 0);
    locked = locked_now();
    mapped = mapped_bytes();
    for (int i = 0; i < N; i++)
        s[i] = make((uint8_t)i, &at[i]);
    for (int i = 0; i < N; i++)
        cr_assert_eq(sm_secret_close(s[i]), SM_OK);
    cr_assert_eq(pooled_regions(), SMI_POOL_SLOTS, "the pool holds its bound, no more");
    cr_assert_eq(locked_now(), locked + SMI_POOL_SLOTS * page, "pooled pages count locked");
    /* Valgrind maps and unmaps memory of its own here (counters_equal, helpers.c). */
    if (!RUNNING_ON_VALGRIND)
        cr_assert_eq(mapped_bytes(), mapped + SMI_POOL_SLOTS * 3 * page,
                     "and nothing else stays");
    for (int i = SMI_POOL_SLOTS; i < N; i++)
        cr_assert(unmapped_or_pooled(at[i]));
}

Test(pool, emptied_by_purge)
{
    const uint8_t *at;
    uint64_t locked;
    size_t mapped;

    cr_assert_eq(sm_init(NULL), SM_OK);
    warm_up();
    locked = locked_now();
    mapped = mapped_bytes();
    cr_assert_eq(sm_secret_close(make(1, &at)), SM_OK);
    pool_fill();
    cr_assert_eq(pooled_regions(), SMI_POOL_SLOTS);
    sm_purge();
    cr_assert_eq(pooled_regions(), 0, "purged with everything else");
    cr_assert_eq(locked_now(), locked);
    if (!RUNNING_ON_VALGRIND)
        cr_assert_eq(mapped_bytes(), mapped, "every pooled region unmapped");
}

typedef struct forked {
    const uint8_t *at;
    uint64_t       counted; /* bytes_locked + bytes_unlocked before the pooled region */
} forked;

/* In the child: no pooled region, counted or mapped; a new guarded secret maps afresh. */
static void child_forgets(void *arg)
{
    const forked *f = arg;
    const uint8_t *at = f->at, *b;
    uint8_t *bases[SMI_POOL_SLOTS];
    char perms[5], flags[256];
    size_t kb;
    sm_stats st;

    if (smi_pool_test_list(bases, SMI_POOL_SLOTS) != 0)
        _exit(1);
    if (smaps_of(at, perms, flags, sizeof flags, &kb) == 0)
        _exit(2);
    if (sm_stats_get(&st) != SM_OK || st.bytes_locked + st.bytes_unlocked != f->counted)
        _exit(3);
    if (sm_secret_close(make(7, &b)) != SM_OK)
        _exit(4);
    _exit(0);
}

Test(pool, a_forked_child_inherits_nothing_pooled)
{
    forked f;
    sm_stats st;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_stats_get(&st), SM_OK);
    f.counted = st.bytes_locked + st.bytes_unlocked;
    cr_assert_eq(sm_secret_close(make(9, &f.at)), SM_OK);
    cr_assert(pooled(f.at));
    cr_assert_eq(in_child(child_forgets, &f), 0);
    cr_assert(pooled(f.at), "the parent keeps its pool");
}

Test(pool, a_refused_open_leaves_the_region_pooled)
{
    const uint8_t *at;
    uint8_t src[LEN];
    sm_secret s;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_secret_close(make(2, &at)), SM_OK);
    memset(src, 4, sizeof src);
    sm_os_fault_arm(SM_OS_MPROTECT, 1, EACCES, false);
    cr_assert_eq(sm_secret_new(sm_factory_guarded(), src, LEN, &s), SM_E_PROT);
    sm_os_fault_reset();
    cr_assert(pooled(at), "still pooled, shut");
    cr_assert_eq(sm_secret_close(make(3, &at)), SM_OK);
}

Test(pool, a_refused_shut_unmaps_instead)
{
    const uint8_t *at;
    sm_secret s;
    uint64_t locked;

    cr_assert_eq(sm_init(NULL), SM_OK);
    locked = locked_now();
    s = make(5, &at);
    sm_os_fault_arm(SM_OS_MPROTECT, 2, ENOMEM, false);
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), 1);
    sm_os_fault_reset();
    cr_assert_eq(pooled_regions(), 0);
    cr_assert(unmapped_or_pooled(at));
    cr_assert_eq(locked_now(), locked);
}

/* BEST_EFFORT with the lock refused: an unlocked region is never pooled. */
Test(pool, an_unlocked_region_is_not_pooled)
{
    sm_config cfg = { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false };
    const uint8_t *at;
    sm_secret s;

    cr_assert_eq(sm_init(&cfg), SM_OK);
    sm_os_fault_arm(SM_OS_MLOCK, 1, EAGAIN, false);
    s = make(6, &at);
    sm_os_fault_reset();
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert_eq(pooled_regions(), 0);
    cr_assert(unmapped_or_pooled(at));
}

/* A secret too large for one inner page is never pooled. */
Test(pool, only_one_page_regions)
{
    sm_secret s;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_secret_random(sm_factory_guarded(), sm_page_size(), &s), SM_OK);
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert_eq(pooled_regions(), 0);
}

Test(pool, secretmem_regions_stay_secretmem)
{
    SKIP_WITHOUT_LINUX("no memfd_secret");
    const uint8_t *a, *b;
    char perms[5], flags[256];
    size_t kb;

    INIT_SECRETMEM_OR_SKIP();
    cr_assert_eq(sm_secret_close(make(8, &a)), SM_OK);
    cr_assert(pooled(a));
    cr_assert_eq(smaps_of(a, perms, flags, sizeof flags, &kb), 0);
    cr_assert_str_eq(perms, "---s", "a secretmem page, shut");
    cr_assert_eq(sm_secret_close(make(9, &b)), SM_OK);
    cr_assert_eq(b, a, "taken again under the same backing");
}
