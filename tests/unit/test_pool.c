/* SPDX-License-Identifier: ISC */
/*
 * The guarded factory's region pool (src/memory/pool.c, spec/layout.md "The pool"): a
 * closed one-page guarded secret leaves its region wiped, locked and read-only for the
 * next one, which gets a canary of its own; at most SMI_POOL_SLOTS regions, counted
 * locked, emptied by sm_purge and forgotten by a forked child. Fault injection at its
 * calls is also in test_faults.c (the secret.*.guarded rows of spec/syscalls.tsv).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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

/* Whether the page of at starts pooled pages (a region's inner pages, a plain mapping). */
static bool pooled(const uint8_t *at)
{
    uint8_t *pages[SMI_POOL_SLOTS];
    size_t n = smi_pool_test_list(pages, NULL, SMI_POOL_SLOTS), page = sm_page_size();

    for (size_t i = 0; i < n; i++)
        if (pages[i] == (uint8_t *)((uintptr_t)at & ~(uintptr_t)(page - 1)))
            return true;
    return false;
}

/*
 * The registry maps its first chunk for good with the first secret: map it first. The
 * secret's mapping goes to the pool: emptied, so that the test starts with nothing pooled.
 */
static void warm_up(void)
{
    uint8_t src[LEN] = { 1 };
    sm_secret s;

    cr_assert_eq(sm_secret_new(sm_factory_protected(), src, LEN, &s), SM_OK);
    cr_assert_eq(sm_secret_close(s), SM_OK);
    smi_pool_purge();
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
    cr_assert_str_eq(perms, "r--p", "read-only in the pool");
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

    if (smi_pool_test_list(bases, NULL, SMI_POOL_SLOTS) != 0)
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

/* ---- regions of several pages: an enclave open's (issue 14 §4) ---- */

/* An enclave of size bytes of value v, sealed from a buffer (which is not pooled). */
static sm_enclave sealed(size_t size, uint8_t v)
{
    sm_buffer b;
    sm_enclave e;

    cr_assert_eq(sm_buffer_new(size, &b), SM_OK);
    memset(sm_buffer_data(b), v, size);
    cr_assert_eq(sm_buffer_seal(b, &e), SM_OK);
    return e;
}

/* The leading guard page and the inner pages' length of the region whose data is at. */
static uint8_t *region_of(const uint8_t *at, size_t size, size_t *inner)
{
    smi_layout lay;

    cr_assert(smi_layout_of(size, sm_page_size(), &lay));
    *inner = lay.inner_len;
    return (uint8_t *)at - lay.data_off;
}

static bool pooled_base(const uint8_t *base)
{
    uint8_t *pages[SMI_POOL_SLOTS];
    size_t n = smi_pool_test_list(pages, NULL, SMI_POOL_SLOTS);

    for (size_t i = 0; i < n; i++)
        if (pages[i] == base + sm_page_size())
            return true;
    return false;
}

/* All of the inner pages at inner, len bytes, opened to read for the copy, then shut. */
static void inner_copy(uint8_t *inner, size_t len, uint8_t *out, int back)
{
    cr_assert_eq(mprotect(inner, len, PROT_READ), 0);
    memcpy(out, inner, len);
    cr_assert_eq(mprotect(inner, len, back), 0);
}

/* Both guard pages of the region at base are there, PROT_NONE. */
static void guarded(uint8_t *base, size_t inner)
{
    char perms[5], flags[256];
    size_t kb;

    cr_assert_eq(smaps_of(base, perms, flags, sizeof flags, &kb), 0);
    cr_assert_str_eq(perms, "---p", "the leading guard page");
    cr_assert_eq(smaps_of(base + sm_page_size() + inner, perms, flags, sizeof flags, &kb), 0);
    cr_assert_str_eq(perms, "---p", "the trailing guard page");
}

Test(pool, an_enclave_open_reuses_a_wiped_region_of_its_page_count_with_a_new_canary)
{
    size_t page = sm_page_size(), size = 2 * page + 100, inner, canary;
    sm_enclave e = sealed(size, 0xa5), same = sealed(size - 60, 0x3c), small = sealed(100, 1);
    const uint8_t *d1, *d2;
    uint8_t *base, *before, *after;
    char perms[5], flags[256];
    size_t kb;
    sm_buffer b;

    cr_assert_eq(sm_enclave_open(e, &b), SM_OK);
    d1 = sm_buffer_data(b);
    base = region_of(d1, size, &inner);
    canary = inner - size;
    before = malloc(inner);
    after = malloc(inner);
    cr_assert(before != NULL && after != NULL);
    inner_copy(base + page, inner, before, PROT_READ);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert(pooled_base(base), "the buffer's region went to the pool");
    cr_assert_eq(smi_pool_test_bytes(), inner);
    cr_assert_eq(smaps_of(base + page, perms, flags, sizeof flags, &kb), 0);
    cr_assert_str_eq(perms, "r--p", "read-only in the pool");
    if (SM_TEST_MLOCK_IS_REAL)
        cr_assert_eq(kb * 1024, inner, "every inner page still locked");
    /* The whole of it, canary and data: nothing of the last owner's is left. */
    inner_copy(base + page, inner, after, PROT_READ);
    for (size_t i = 0; i < inner; i++)
        cr_assert_eq(after[i], 0, "byte %zu of the pooled region is not wiped", i);

    /* Another page count does not take it. */
    cr_assert_eq(sm_enclave_open(small, &b), SM_OK);
    cr_assert(pooled_base(base));
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);

    /* The same page count does, with a canary of its own, longer for a smaller size. */
    cr_assert_eq(sm_enclave_open(same, &b), SM_OK);
    d2 = sm_buffer_data(b);
    cr_assert_eq(d2, d1 + 60, "the next open of that page count takes the pooled region");
    cr_assert_not(pooled_base(base));
    guarded(base, inner);
    inner_copy(base + page, inner, after, PROT_READ);
    cr_assert_neq(memcmp(before, after, canary), 0, "the canary was reused");
    for (size_t i = 0; i < size - 60; i++)
        cr_assert_eq(after[canary + 60 + i], 0x3c, "byte %zu is not the new owner's", i);
    cr_assert_eq(sm_audit(), SM_OK, "its canary is whole");
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
    cr_assert_eq(sm_enclave_destroy(same), SM_OK);
    cr_assert_eq(sm_enclave_destroy(small), SM_OK);
    free(before);
    free(after);
}

/* In the child: nothing pooled, and the region of the parent's pool is not mapped. */
static void child_has_no_region(void *arg)
{
    char perms[5], flags[256];
    size_t kb;

    if (pooled_regions() != 0 || smi_pool_test_bytes() != 0)
        _exit(1);
    if (smaps_of((uint8_t *)arg + sm_page_size(), perms, flags, sizeof flags, &kb) == 0)
        _exit(2);
    _exit(0);
}

Test(pool, multi_page_regions_are_purged_and_forgotten_by_a_child)
{
    size_t size = 3 * sm_page_size(), inner, kb;
    char perms[5], flags[256];
    sm_enclave e;
    sm_buffer b;
    uint64_t locked;
    size_t mapped;
    uint8_t *base;

    cr_assert_eq(sm_init(NULL), SM_OK);
    e = sealed(size, 7);
    locked = locked_now();
    mapped = mapped_bytes();
    cr_assert_eq(sm_enclave_open(e, &b), SM_OK);
    base = region_of(sm_buffer_data(b), size, &inner);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert(pooled_base(base));
    cr_assert_eq(locked_now(), locked + inner, "pooled pages count locked, all of them");
    if (!RUNNING_ON_VALGRIND)
        cr_assert_eq(mapped_bytes(), mapped + inner + 2 * sm_page_size());
    cr_assert_eq(in_child(child_has_no_region, base), 0);
    cr_assert(pooled_base(base), "the parent keeps its pool");
    sm_purge();
    cr_assert_eq(pooled_regions(), 0, "purged with everything else");
    cr_assert_eq(smi_pool_test_bytes(), 0);
    cr_assert_neq(smaps_of(base + sm_page_size(), perms, flags, sizeof flags, &kb), 0,
                  "and unmapped");
}

Test(pool, bounded_by_its_bytes)
{
    enum { N = 3 };
    size_t size = (size_t)1 << 20, inner, fit;
    sm_enclave e = sealed(size, 2);
    sm_buffer b[N];
    uint64_t locked;
    smi_layout lay;

    cr_assert(smi_layout_of(size, sm_page_size(), &lay));
    inner = lay.inner_len;
    fit = SMI_POOL_BYTES / inner < N ? SMI_POOL_BYTES / inner : N;
    cr_assert_lt(fit, N, "the test needs more regions than the bound holds");
    locked = locked_now();
    for (int i = 0; i < N; i++)
        cr_assert_eq(sm_enclave_open(e, &b[i]), SM_OK);
    for (int i = 0; i < N; i++)
        cr_assert_eq(sm_buffer_destroy(b[i]), SM_OK);
    cr_assert_eq(pooled_regions(), fit, "the pool holds its bound in bytes, no more");
    cr_assert_leq(smi_pool_test_bytes(), SMI_POOL_BYTES);
    cr_assert_eq(locked_now(), locked + fit * inner, "the rest unmapped and uncounted");
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
}

/*
 * A lock refused while the pool holds locked pages empties the pool and is tried again
 * (smi_lock_pages): the pooled pages are charged to RLIMIT_MEMLOCK (test_hostile's
 * memlock_64k_pool_gives_way shows the kernel's own refusal). With nothing pooled the
 * refusal stands.
 */
/* One region of e's page count pooled, then the next call of fn refused with EAGAIN. */
static void pool_one_region(sm_enclave e, sm_os_fn fn)
{
    sm_buffer b;

    cr_assert_eq(sm_enclave_open(e, &b), SM_OK);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    cr_assert_eq(pooled_regions(), 1);
    sm_os_fault_reset(); /* the calls are counted from here */
    sm_os_fault_arm(fn, 1, EAGAIN, false);
}

Test(pool, a_refused_lock_empties_the_pool_and_is_tried_again)
{
    sm_enclave e = sealed(3 * sm_page_size(), 3);
    sm_buffer b;

    pool_one_region(e, SM_OS_MLOCK);
    cr_assert_eq(sm_buffer_new(100, &b), SM_OK, "locked once the pool made room");
    cr_assert_eq(sm_os_fault_calls(SM_OS_MLOCK), 2);
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), 1, "the pooled region unmapped");
    sm_os_fault_reset();
    cr_assert_eq(pooled_regions(), 0);
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    sm_os_fault_arm(SM_OS_MLOCK, 1, EAGAIN, false);
    cr_assert_eq(sm_buffer_new(100, &b), SM_E_LOCK, "nothing pooled: the refusal stands");
    cr_assert_eq(sm_os_fault_calls(SM_OS_MLOCK), 1);
    sm_os_fault_reset();
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
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
    cr_assert_str_eq(perms, "r--s", "a secretmem page, read-only in the pool");
    cr_assert_eq(sm_secret_close(make(9, &b)), SM_OK);
    cr_assert_eq(b, a, "taken again under the same backing");
}

/*
 * The same for a secretmem mapping, which the kernel charges to RLIMIT_MEMLOCK when the
 * file is mapped (EAGAIN, SM_E_LOCK): the pool is emptied and the mapping made again,
 * still secretmem, rather than falling back to anonymous memory under PREFERRED. For
 * each maker of secretmem mappings: a region, a plain mapping, a compact slab.
 * charged_again: the charge was tried again once the pool made room, and the bytes at
 * are secretmem.
 */
static void charged_again(const void *at, const char *what)
{
    char perms[5], flags[256];
    size_t kb;

    cr_assert_eq(sm_os_fault_calls(SM_OS_MMAP_FD), 2, "%s: made again", what);
    sm_os_fault_reset();
    cr_assert_eq(pooled_regions(), 0, "%s", what);
    cr_assert_eq(smaps_of(at, perms, flags, sizeof flags, &kb), 0);
    cr_assert_eq(perms[3], 's', "%s: still secretmem, not the anonymous fallback", what);
}

Test(pool, a_refused_secretmem_charge_empties_the_pool_and_is_tried_again)
{
    SKIP_WITHOUT_LINUX("no memfd_secret");
    uint8_t src[LEN] = { 1 };
    const uint8_t *at;
    sm_enclave e;
    sm_buffer b;
    sm_secret s;

    INIT_SECRETMEM_OR_SKIP();
    e = sealed(3 * sm_page_size(), 4);
    pool_one_region(e, SM_OS_MMAP_FD);
    cr_assert_eq(sm_buffer_new(100, &b), SM_OK);
    charged_again(sm_buffer_data(b), "region");
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    pool_one_region(e, SM_OS_MMAP_FD);
    cr_assert_eq(sm_secret_new(sm_factory_protected(), src, LEN, &s), SM_OK);
    cr_assert_eq(sm_secret_with_bytes(s, where_fn, (void *)&at), SM_OK);
    charged_again(at, "plain mapping");
    cr_assert_eq(sm_secret_close(s), SM_OK);
    smi_pool_purge(); /* the plain mapping went to the pool */
    pool_one_region(e, SM_OS_MMAP_FD);
    memset(src, 1, LEN);
    cr_assert_eq(sm_secret_new(sm_factory_compact(), src, LEN, &s), SM_OK);
    cr_assert_eq(sm_secret_with_bytes(s, where_fn, (void *)&at), SM_OK);
    charged_again(at, "compact slab");
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
}

/* ---- the protected factory's plain mappings (issue 14 §3) ---- */

/* A protected secret of len bytes of value v, and the address of its bytes (its mapping). */
static sm_secret make_protected(size_t len, uint8_t v, const uint8_t **at)
{
    uint8_t src[2 * 4096 + 1];
    sm_secret s;

    cr_assert_leq(len, sizeof src);
    memset(src, v, len);
    cr_assert_eq(sm_secret_new(sm_factory_protected(), src, len, &s), SM_OK);
    cr_assert_eq(sm_secret_with_bytes(s, where_fn, (void *)at), SM_OK);
    return s;
}

/* The len bytes of pages at, opened to read for the copy, every one of them zero. */
static void wiped(const uint8_t *at, size_t len)
{
    uint8_t *copy = malloc(len);

    cr_assert(copy != NULL);
    inner_copy((uint8_t *)at, len, copy, PROT_READ);
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(copy[i], 0, "byte %zu of the pooled mapping is not wiped", i);
    free(copy);
}

Test(pool, a_closed_protected_mapping_is_wiped_shut_locked_and_reused)
{
    size_t page = sm_page_size();
    const uint8_t *a, *b, *two;
    char perms[5], flags[256];
    sm_secret s, t;
    size_t kb;

    cr_assert_eq(sm_init(NULL), SM_OK);
    s = make_protected(LEN, 0xa5, &a);
    cr_assert_eq((uintptr_t)a % page, 0, "the data at the start of its mapping");
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert(pooled(a), "the mapping went to the pool");
    cr_assert_eq(smi_pool_test_bytes(), page);
    cr_assert_eq(smi_pool_test_mapped(), page, "no guard pages: one page mapped");
    cr_assert_eq(smaps_of(a, perms, flags, sizeof flags, &kb), 0);
    cr_assert_str_eq(perms, "r--p", "read-only in the pool");
#if !defined(SM_OS_GENERIC) /* the POSIX flavour has no DONTDUMP, WIPEONFORK or mlock2 */
    cr_assert(strstr(flags, "dd") != NULL, "still out of core dumps: %s", flags);
    cr_assert(strstr(flags, "wf") != NULL, "still wiped in children: %s", flags);
    if (!RUNNING_ON_VALGRIND) {
        const char *lf = lock_on_fault_flag();

        cr_assert(lf != NULL && strstr(flags, lf) != NULL,
                  "locked on touch, as the pool's are: %s", flags);
    }
#endif
    if (SM_TEST_MLOCK_IS_REAL)
        cr_assert_eq(kb * 1024, page, "still locked");
    wiped(a, page);

    /* Another page count does not take it, nor leave its own mapping unpooled. */
    t = make_protected(page + 1, 0x11, &two);
    cr_assert_neq(two, a);
    cr_assert(pooled(a));
    cr_assert_eq(sm_secret_close(t), SM_OK);
    cr_assert(pooled(two));
    wiped(two, 2 * page);

    /* The same page count does, with the new owner's bytes, then a NONE page at rest. */
    s = make_protected(LEN - 7, 0x3c, &b);
    cr_assert_eq(b, a, "the next protected secret of that page count takes the mapping");
    cr_assert_not(pooled(a));
    cr_assert_eq(smaps_of(b, perms, flags, sizeof flags, &kb), 0);
    cr_assert_str_eq(perms, "---p", "shut at rest");
    cr_assert_eq(sm_secret_read_at(s, 0, (uint8_t[LEN]){ 0 }, LEN, &kb), SM_OK);
    cr_assert_eq(kb, LEN - 7, "its own length");
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

#if !defined(SM_OS_GENERIC)
/*
 * mlock2 refused with EPERM is either a seccomp profile that does not know the call, or
 * a real refusal (RLIMIT_MEMLOCK of 0 without CAP_IPC_LOCK), which plain mlock refuses
 * too. Only the first may turn lock-on-touch off for the process: after a refusal of
 * the second kind, with the limit raised again, a fresh mapping is still locked on
 * touch. In a child that lowers its limit and, when root, becomes nobody.
 */
static void child_refused_then_on_touch(void *arg)
{
    const char *lf = arg;
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_ANON, false };
    uint8_t src[LEN] = { 0 };
    const uint8_t *at;
    struct rlimit lim;
    char perms[5], flags[256];
    sm_secret s;
    size_t kb;

    if (sm_init(&cfg) != SM_OK || getrlimit(RLIMIT_MEMLOCK, &lim) != 0)
        _exit(10);
    /* Whatever the first secret locks besides its own mapping is locked now. */
    if (sm_secret_new(sm_factory_protected(), src, sizeof src, &s) != SM_OK ||
        sm_secret_close(s) != SM_OK)
        _exit(11);
    smi_pool_purge(); /* so that the next make maps and locks a fresh mapping */
    lim.rlim_cur = 0;
    if (setrlimit(RLIMIT_MEMLOCK, &lim) != 0 || (getuid() == 0 && setuid(65534) != 0))
        _exit(12);
    if (sm_secret_new(sm_factory_protected(), src, sizeof src, &s) != SM_E_LOCK)
        _exit(13);
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_MEMLOCK, &lim) != 0)
        _exit(14);
    if (sm_secret_new(sm_factory_protected(), src, sizeof src, &s) != SM_OK ||
        sm_secret_with_bytes(s, where_fn, (void *)&at) != SM_OK ||
        smaps_of(at, perms, flags, sizeof flags, &kb) != 0)
        _exit(15);
    if (strstr(flags, lf) == NULL)
        _exit(16); /* locked at once: the refusal was taken for a missing mlock2 */
    _exit(sm_secret_close(s) == SM_OK ? 0 : 17);
}

Test(pool, a_refused_lock_keeps_lock_on_touch)
{
    const char *lf = lock_on_fault_flag();

    if (RUNNING_ON_VALGRIND || !SM_TEST_MLOCK_IS_REAL)
        cr_skip_test("Valgrind knows no mlock2, and ASan fakes mlock");
    cr_assert(lf != NULL, "the kernel shows lock-on-fault in smaps");
    int code = in_child(child_refused_then_on_touch, (void *)lf);

    cr_assert_eq(code, 0, "the child's exit code %d: see child_refused_then_on_touch", code);
}

#if defined(__x86_64__)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>

/*
 * The other kind: a seccomp profile that refuses mlock2 with EPERM, and plain mlock
 * works. Every mapping is then locked at once, the first one included, and a make
 * succeeds each time (the shim stops asking for mlock2).
 */
static void child_without_mlock2(void *arg)
{
    const char *lf = arg;
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mlock2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof code / sizeof code[0], code };
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_ANON, false };
    uint8_t src[2 * 4096 + 1] = { 0 };
    char perms[5], flags[256];
    const uint8_t *at;
    sm_secret s;
    size_t kb;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(10);
    if (syscall(SYS_mlock2, src, 1, 0) == 0 || errno != EPERM)
        _exit(11); /* the profile is not in force */
    if (sm_init(&cfg) != SM_OK)
        _exit(12);
    /* Two page counts: two fresh mappings, the first and one after the shim's switch. */
    for (size_t len = LEN; len <= sizeof src; len += sizeof src - LEN) {
        if (sm_secret_new(sm_factory_protected(), src, len, &s) != SM_OK ||
            sm_secret_with_bytes(s, where_fn, (void *)&at) != SM_OK ||
            smaps_of(at, perms, flags, sizeof flags, &kb) != 0)
            _exit(13);
        if (strstr(flags, " lo") == NULL || strstr(flags, lf) != NULL)
            _exit(14); /* locked, and at once */
        if (sm_secret_close(s) != SM_OK)
            _exit(15);
    }
    _exit(0);
}

Test(pool, a_profile_without_mlock2_locks_at_once)
{
    const char *lf = lock_on_fault_flag();
    int code;

    if (RUNNING_ON_VALGRIND || !SM_TEST_MLOCK_IS_REAL)
        cr_skip_test("Valgrind knows no mlock2, and ASan fakes mlock");
    cr_assert(lf != NULL, "the kernel shows lock-on-fault in smaps");
    code = in_child(child_without_mlock2, (void *)lf);
    cr_assert_eq(code, 0, "the child's exit code %d: see child_without_mlock2", code);
}
#endif
#endif

/*
 * A pooled plain mapping is never a guarded secret's region nor an enclave open's, and a
 * pooled region never a protected secret's mapping: the take's key holds the kind.
 */
Test(pool, kinds_never_mix)
{
    const uint8_t *plain, *g, *p2;
    uint8_t x[100] = { 0 };
    sm_enclave e;
    sm_buffer o;
    sm_secret s;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_secret_close(make_protected(LEN, 1, &plain)), SM_OK);
    cr_assert(pooled(plain));
    s = make(2, &g);
    cr_assert_neq((uintptr_t)g & ~(uintptr_t)(sm_page_size() - 1), (uintptr_t)plain,
                  "a guarded secret got the plain mapping");
    cr_assert(pooled(plain));
    cr_assert_eq(sm_enclave_new(x, sizeof x, &e), SM_OK);
    cr_assert_eq(sm_enclave_open(e, &o), SM_OK);
    cr_assert_neq((uintptr_t)sm_buffer_data(o) & ~(uintptr_t)(sm_page_size() - 1),
                  (uintptr_t)plain, "an enclave open got the plain mapping");
    cr_assert(pooled(plain));
    cr_assert_eq(sm_buffer_destroy(o), SM_OK);
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
    /* The other way: with a one-page region pooled beside it, a protected secret takes
       the plain mapping, and the next one a fresh mapping, never the region. */
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert(pooled(g));
    s = make_protected(LEN, 3, &p2);
    cr_assert_eq(p2, plain);
    cr_assert_eq(sm_secret_close(make_protected(LEN, 4, &p2)), SM_OK);
    cr_assert_neq((uintptr_t)p2, (uintptr_t)g & ~(uintptr_t)(sm_page_size() - 1));
    cr_assert(pooled(g), "the region is still pooled");
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

Test(pool, protected_mappings_are_counted_bounded_and_emptied_by_purge)
{
    enum { N = SMI_POOL_SLOTS + 2 };
    size_t page = sm_page_size(), mapped;
    const uint8_t *at[N];
    sm_secret s[N];
    uint64_t locked;

    cr_assert_eq(sm_init(NULL), SM_OK);
    warm_up();
    locked = locked_now();
    mapped = mapped_bytes();
    for (int i = 0; i < N; i++)
        s[i] = make_protected(LEN, (uint8_t)i, &at[i]);
    for (int i = 0; i < N; i++)
        cr_assert_eq(sm_secret_close(s[i]), SM_OK);
    cr_assert_eq(pooled_regions(), SMI_POOL_SLOTS, "the pool holds its bound, no more");
    cr_assert_eq(locked_now(), locked + SMI_POOL_SLOTS * page, "pooled pages count locked");
    if (!RUNNING_ON_VALGRIND)
        cr_assert_eq(mapped_bytes(), mapped + SMI_POOL_SLOTS * page, "one page each, no more");
    for (int i = 0; i < N; i++)
        cr_assert(unmapped_or_pooled(at[i]));
    sm_purge();
    cr_assert_eq(pooled_regions(), 0, "purged with everything else");
    cr_assert_eq(locked_now(), locked);
    if (!RUNNING_ON_VALGRIND)
        cr_assert_eq(mapped_bytes(), mapped, "every pooled mapping unmapped");
}

/* In the child: nothing pooled, the parent's pooled mapping not mapped, nothing counted. */
static void child_forgets_plain(void *arg)
{
    const forked *f = arg;
    char perms[5], flags[256];
    size_t kb;
    sm_stats st;

    if (pooled_regions() != 0 || smi_pool_test_bytes() != 0)
        _exit(1);
    if (smaps_of(f->at, perms, flags, sizeof flags, &kb) == 0)
        _exit(2);
    if (sm_stats_get(&st) != SM_OK || st.bytes_locked + st.bytes_unlocked != f->counted)
        _exit(3);
    _exit(0);
}

Test(pool, a_forked_child_forgets_pooled_protected_mappings)
{
    forked f;
    sm_stats st;

    cr_assert_eq(sm_init(NULL), SM_OK);
    warm_up();
    cr_assert_eq(sm_stats_get(&st), SM_OK);
    f.counted = st.bytes_locked + st.bytes_unlocked;
    cr_assert_eq(sm_secret_close(make_protected(LEN, 9, &f.at)), SM_OK);
    cr_assert(pooled(f.at));
    cr_assert_eq(in_child(child_forgets_plain, &f), 0);
    cr_assert(pooled(f.at), "the parent keeps its pool");
}

/*
 * The refusals, as for regions: a refused open at the take leaves the mapping pooled and
 * shut; a refused shut at the give unmaps the wiped mapping, and the close succeeds; an
 * unlocked mapping (BEST_EFFORT) is never pooled.
 */
Test(pool, protected_refusals)
{
    uint8_t src[LEN] = { 4 };
    const uint8_t *at, *b;
    sm_secret s;
    uint64_t locked;

    cr_assert_eq(sm_init(NULL), SM_OK);
    warm_up();
    locked = locked_now();
    cr_assert_eq(sm_secret_close(make_protected(LEN, 2, &at)), SM_OK);
    sm_os_fault_arm(SM_OS_MPROTECT, 1, EACCES, false);
    cr_assert_eq(sm_secret_new(sm_factory_protected(), src, LEN, &s), SM_E_PROT);
    sm_os_fault_reset();
    cr_assert(pooled(at), "still pooled, shut");
    s = make_protected(LEN, 5, &b);
    cr_assert_eq(b, at);
    sm_os_fault_arm(SM_OS_MPROTECT, 2, ENOMEM, false);
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert_eq(sm_os_fault_calls(SM_OS_MUNMAP), 1, "unmapped instead");
    sm_os_fault_reset();
    cr_assert_eq(pooled_regions(), 0);
    cr_assert(unmapped_or_pooled(at));
    cr_assert_eq(locked_now(), locked);
}

Test(pool, an_unlocked_protected_mapping_is_not_pooled)
{
    sm_config cfg = { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false };
    const uint8_t *at;
    sm_secret s;

    cr_assert_eq(sm_init(&cfg), SM_OK);
    warm_up();
    sm_os_fault_arm(SM_OS_MLOCK, 1, EAGAIN, false);
    s = make_protected(LEN, 6, &at);
    sm_os_fault_reset();
    cr_assert_eq(sm_secret_close(s), SM_OK);
    cr_assert_eq(pooled_regions(), 0);
    cr_assert(unmapped_or_pooled(at));
}

Test(pool, secretmem_protected_mappings_stay_secretmem)
{
    SKIP_WITHOUT_LINUX("no memfd_secret");
    const uint8_t *a, *b;
    char perms[5], flags[256];
    size_t kb;

    INIT_SECRETMEM_OR_SKIP();
    cr_assert_eq(sm_secret_close(make_protected(LEN, 8, &a)), SM_OK);
    cr_assert(pooled(a));
    cr_assert_eq(smaps_of(a, perms, flags, sizeof flags, &kb), 0);
    cr_assert_str_eq(perms, "r--s", "a secretmem page, read-only in the pool");
    cr_assert_eq(sm_secret_close(make_protected(LEN, 9, &b)), SM_OK);
    cr_assert_eq(b, a, "taken again under the same backing");
}

/*
 * Two faults in one make (SM-REQ-030): sm_secret_from_buffer fails after its secret's
 * window was shut (the seal's mprotect went through; the buffer it consumes is then
 * refused its unmap, or its opening), and the rollback's scrub is refused too, its
 * mprotect(READWRITE). The pages cannot be opened for the wipe and nobody can reach them
 * any more: the rollback unmaps them as they are, as a purge does, and everything is
 * as before the call. Each factory, its mapping taken from the pool or made fresh (with
 * room in the pool to give it back to, or none).
 */
enum { TF_POOLED, TF_FRESH, TF_FRESH_POOL_FULL };

typedef struct twofault {
    const sm_factory *f;
    int  how;
    bool frozen;       /* the buffer frozen: its opening refused, not its unmap */
    bool every_unmap;  /* munmap refused for good as well: the documented leftover */
} twofault;

/* In the forked child a failed cr_assert would wait for ever: say it, and exit. */
#define TF_CHECK(cond, ...)                                                             \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "tf_run, line %d: ", __LINE__);                            \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
            _exit(1);                                                                   \
        }                                                                               \
    } while (0)

/* A buffer to consume: frozen (read-only: its free opens it first), or mutable. */
static sm_buffer tf_buffer(bool frozen)
{
    uint8_t src[LEN];
    sm_buffer b;

    memset(src, 0x3c, sizeof src);
    if (frozen)
        TF_CHECK(sm_buffer_from_bytes(src, LEN, &b) == SM_OK, "frozen buffer");
    else
        TF_CHECK(sm_buffer_new(LEN, &b) == SM_OK, "mutable buffer");
    return b;
}

/* The pool a case starts from: one mapping of f's kind in it, none, or full. */
static void tf_pool(const twofault *t)
{
    const uint8_t *at;

    smi_pool_purge();
    if (t->how == TF_POOLED)
        TF_CHECK(sm_secret_close(t->f == sm_factory_guarded() ? make(1, &at)
                                                               : make_protected(LEN, 1, &at)) ==
                     SM_OK,
                 "pooled");
    else if (t->how == TF_FRESH_POOL_FULL)
        pool_fill();
}

static void tf_run(void *arg)
{
    const twofault *t = arg;
    counters before, after;
    unsigned long prots, unmaps;
    sm_buffer b;
    sm_secret s;
    sm_status st;

    TF_CHECK(sm_init(NULL) == SM_OK, "init");
    warm_up();
    /*
     * The calls of a make that succeeds: the last mprotect is the seal's, or with a frozen
     * buffer the buffer's opening; the last munmap is the buffer's.
     */
    for (int warm = 0; warm < 2; warm++) {
        /* Twice: the first encrypted make also makes the enclave key. */
        tf_pool(t);
        b = tf_buffer(t->frozen);
        sm_os_fault_reset();
        TF_CHECK(sm_secret_from_buffer(t->f, b, &s) == SM_OK, "a make without faults");
        prots = sm_os_fault_calls(SM_OS_MPROTECT);
        unmaps = sm_os_fault_calls(SM_OS_MUNMAP);
        TF_CHECK(sm_secret_close(s) == SM_OK, "close");
    }

    tf_pool(t);
    b = tf_buffer(t->frozen);
    counters_get(&before);
    sm_os_fault_reset();
    if (t->frozen) {
        /* The buffer's opening, then the rollback's: two chosen calls of one kind. */
        sm_os_fault_arm(SM_OS_MPROTECT, prots, ENOMEM, false);
        sm_os_fault_arm_also(SM_OS_MPROTECT, prots + 1, ENOMEM);
    } else {
        sm_os_fault_arm(SM_OS_MUNMAP, unmaps, ENOMEM, t->every_unmap);
        /* Every mprotect after the seal's: the OS refuses them all. */
        sm_os_fault_arm(SM_OS_MPROTECT, prots + 1, EACCES, true);
    }
    st = sm_secret_from_buffer(t->f, b, &s);
    if (t->f != sm_factory_encrypted())
        TF_CHECK(sm_os_fault_calls(SM_OS_MPROTECT) >= prots + 1,
                 "the rollback's scrub was not made: %lu mprotect calls, %lu before", sm_os_fault_calls(SM_OS_MPROTECT), prots);
    sm_os_fault_reset();
    TF_CHECK(st == (t->frozen ? SM_E_PROT : SM_E_SYS), "status %s", sm_status_str(st));
    counters_get(&after);
    if (t->every_unmap) {
        /*
         * The OS refuses every call that could undo it: the pages stay mapped, shut and
         * counted, so that the counters still say what is mapped and locked
         * (spec/secrets.md, "Failures"). Only with faults injected into both calls.
         */
        TF_CHECK(after.allocations == before.allocations + 1, "allocations");
        TF_CHECK(after.locked == before.locked + sm_page_size(), "%" PRIu64 " -> %" PRIu64
                 " locked: not counted as it is", before.locked, after.locked);
        TF_CHECK(after.live[SMI_KIND_SECRET] == before.live[SMI_KIND_SECRET], "live");
        _exit(0);
    }
    TF_CHECK(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS),
             "the secret's pages left behind: %zu -> %zu bytes mapped, %" PRIu64 " -> %" PRIu64
             " locked, %" PRIu64 " -> %" PRIu64 " allocations",
             before.mapped, after.mapped, before.locked, after.locked, before.allocations,
             after.allocations);
    /* The buffer is left to its owner (wiped, when only its unmap was refused). */
    TF_CHECK(sm_buffer_destroy(b) == SM_OK, "the buffer's destroy");
    _exit(0);
}

static void tf_each(bool frozen, bool every_unmap)
{
    const sm_factory *fs[] = { sm_factory_guarded(), sm_factory_protected(),
                               sm_factory_encrypted() };

    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        for (int how = TF_POOLED; how <= TF_FRESH_POOL_FULL; how++) {
            twofault t = { fs[i], how, frozen, every_unmap };

            /* The encrypted factory's fill region is never pooled, and goes at the seal. */
            if (fs[i] == sm_factory_encrypted() && (how != TF_FRESH || every_unmap))
                continue;
            cr_expect_eq(in_child(tf_run, &t), 0, "factory %zu, case %d", i, how);
        }
    }
}

Test(pool, a_refused_rollback_after_the_seal_still_unmaps)
{
    tf_each(false, false);
}

Test(pool, two_refused_opens_of_one_kind_still_unmap)
{
    tf_each(true, false);
}

Test(pool, a_rollback_the_os_refuses_entirely_stays_counted)
{
    tf_each(false, true);
}
