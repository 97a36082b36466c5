/* SPDX-License-Identifier: ISC */
/* The handle registry: ids, staleness, kinds, growth, retirement, threads. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <valgrind/valgrind.h>

#include "helpers.h"

static uint64_t insert(smi_kind k, uint32_t v)
{
    uint64_t id;

    cr_assert_eq(smi_registry_insert(k, &v, sizeof v, &id), SM_OK);
    return id;
}

static void drop(uint64_t id, smi_kind k)
{
    smi_slot *s;

    cr_assert_eq(smi_registry_acquire(id, k, &s), SM_OK);
    smi_registry_remove(s);
}

Test(registry, insert_acquire_remove)
{
    uint64_t id = insert(SMI_KIND_BUFFER, 1234);
    smi_slot *s;
    uint32_t v;

    cr_assert_neq(id, 0);
    cr_assert_eq(smi_registry_live(SMI_KIND_BUFFER), 1);
    cr_assert_eq(smi_registry_acquire(id, SMI_KIND_BUFFER, &s), SM_OK);
    memcpy(&v, s->body, sizeof v);
    cr_assert_eq(v, 1234, "the descriptor was copied in");
    smi_registry_release(s);
    cr_assert_eq(smi_registry_acquire(id, SMI_KIND_SECRET, &s), SM_E_STATE, "wrong kind");
    drop(id, SMI_KIND_BUFFER);
    cr_assert_eq(smi_registry_live(SMI_KIND_BUFFER), 0);
    cr_assert_eq(smi_registry_acquire(id, SMI_KIND_BUFFER, &s), SM_E_STATE, "stale");
}

Test(registry, garbage_ids_are_stale)
{
    smi_slot *s;
    uint64_t id = insert(SMI_KIND_ENCLAVE, 1);

    cr_assert_eq(smi_registry_acquire(0, SMI_KIND_ENCLAVE, &s), SM_E_STATE);
    cr_assert_eq(smi_registry_acquire(UINT64_MAX, SMI_KIND_ENCLAVE, &s), SM_E_STATE);
    cr_assert_eq(smi_registry_acquire(id + 1, SMI_KIND_ENCLAVE, &s), SM_E_STATE, "never issued");
    cr_assert_eq(smi_registry_acquire(id + ((uint64_t)1 << 32), SMI_KIND_ENCLAVE, &s),
                 SM_E_STATE, "a later generation");
    cr_assert_eq(smi_registry_acquire(id ^ ((uint64_t)1 << 60), SMI_KIND_ENCLAVE, &s),
                 SM_E_STATE);
}

Test(registry, ids_are_never_reused)
{
    uint64_t seen[2000];
    size_t n = 0;

    for (int round = 0; round < 100; round++) {
        uint64_t a = insert(SMI_KIND_SECRET, 0), b = insert(SMI_KIND_STREAM, 0);

        seen[n++] = a;
        seen[n++] = b;
        drop(a, SMI_KIND_SECRET);
        drop(b, SMI_KIND_STREAM);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            cr_assert_neq(seen[i], seen[j]);
    for (size_t i = 2; i < n; i++)
        cr_assert(smi_handle_index(seen[i]) == smi_handle_index(seen[0]) ||
                  smi_handle_index(seen[i]) == smi_handle_index(seen[1]),
                  "the two slots are reused, with new generations");
}

Test(registry, a_spent_slot_is_retired)
{
    uint64_t id = insert(SMI_KIND_BUFFER, 0), next;
    smi_slot *s;

    cr_assert_eq(smi_registry_acquire(id, SMI_KIND_BUFFER, &s), SM_OK);
    s->gen = SMI_HANDLE_GEN_MAX; /* as if 2^28 - 1 objects had lived here */
    smi_registry_release(s);
    drop(id, SMI_KIND_BUFFER);
    next = insert(SMI_KIND_BUFFER, 0);
    cr_assert_neq(smi_handle_index(next), smi_handle_index(id), "not handed out again");
}

/*
 * The same for a purge (h2 review): a purge that spent a slot's last generation kept
 * its bit in the in-use bitmap, so every later walk visited it, and a forked child's
 * fork handler put it on the free list with a generation past the last: its next id
 * wrapped to generation 0 and repeated one handed out long before (SM-REQ-040).
 */
static uint32_t spent_index;

static void child_never_reuses_spent(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        sm_buffer b;

        if (sm_buffer_new(16, &b) != SM_OK)
            _exit(2);
        if (smi_handle_index(b.id) == spent_index)
            _exit(3);
    }
    _exit(0);
}

Test(registry, a_spent_slot_purged_is_retired)
{
    sm_buffer b;
    smi_slot *s;

    cr_assert_eq(sm_buffer_new(16, &b), SM_OK);
    cr_assert_eq(smi_registry_acquire(b.id, SMI_KIND_BUFFER, &s), SM_OK);
    s->gen = SMI_HANDLE_GEN_MAX; /* as if 2^28 - 1 objects had lived here */
    spent_index = s->index;
    smi_registry_release(s);
    sm_purge();
    cr_assert_eq(sm_audit(), SM_OK);
    cr_assert_eq(smi_registry_test_walked(), 0, "a retired slot is still walked");
    cr_assert_eq(in_child(child_never_reuses_spent, NULL), 0, "the child reused a spent slot");
}

Test(registry, grows_across_chunks)
{
    static uint64_t ids[3000];

    for (uint32_t i = 0; i < 3000; i++)
        ids[i] = insert(SMI_KIND_BUFFER, i);
    cr_assert_eq(smi_registry_live(SMI_KIND_BUFFER), 3000);
    for (uint32_t i = 0; i < 3000; i++) {
        smi_slot *s;
        uint32_t v;

        cr_assert_eq(smi_registry_acquire(ids[i], SMI_KIND_BUFFER, &s), SM_OK);
        memcpy(&v, s->body, sizeof v);
        cr_assert_eq(v, i);
        smi_registry_remove(s);
    }
    cr_assert_eq(smi_registry_live(SMI_KIND_BUFFER), 0);
}

Test(registry, growth_failure_is_nomem_and_retryable)
{
    uint64_t id;

    sm_os_fault_arm(SM_OS_MMAP, 1, ENOMEM, false);
    cr_assert_eq(smi_registry_insert(SMI_KIND_BUFFER, "x", 1, &id), SM_E_NOMEM);
    cr_assert_eq(smi_registry_live(SMI_KIND_BUFFER), 0);
    cr_assert_eq(smi_registry_insert(SMI_KIND_BUFFER, "x", 1, &id), SM_OK);
}

/* Threads insert, look up and remove their own objects while others do the same. */
#define THREADS 4
#define ROUNDS 5000

static void *churn(void *arg)
{
    uint32_t tag = (uint32_t)(uintptr_t)arg;

    for (int i = 0; i < ROUNDS; i++) {
        uint64_t id;
        smi_slot *s;
        uint32_t v = tag * ROUNDS + (uint32_t)i, got;

        if (smi_registry_insert(SMI_KIND_SECRET, &v, sizeof v, &id) != SM_OK)
            return (void *)1;
        if (smi_registry_acquire(id, SMI_KIND_SECRET, &s) != SM_OK)
            return (void *)2;
        memcpy(&got, s->body, sizeof got);
        if (got != v)
            return (void *)3;
        smi_registry_remove(s);
        if (smi_registry_acquire(id, SMI_KIND_SECRET, &s) != SM_E_STATE)
            return (void *)4;
    }
    return NULL;
}

Test(registry, concurrent_churn)
{
    pthread_t t[THREADS];

    for (uintptr_t i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, churn, (void *)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *r;

        pthread_join(t[i], &r);
        cr_assert_null(r, "thread %d failed at step %p", i, r);
    }
    cr_assert_eq(smi_registry_live(SMI_KIND_SECRET), 0);
}

/*
 * Issue 18 §2: a purged slot was retired for good, so after as many purged objects as
 * the registry has slots, sm_buffer_new gave SM_E_NOMEM with nothing live, for the rest
 * of the process. Here the registry is capped at 2048 slots (the same code paths) and
 * ten times as many objects are purged, in batches of 1000 and one at a time; every
 * id handed out is new (SM-REQ-040 still holds across recycling).
 */
#define CAP 2048u
#define BATCH 1000u
/*
 * Under Memcheck (make test-memcheck) three times as many as the slots rather than ten:
 * every slot is still purged and handed out again, twice over, in both kinds of batch,
 * which is all the regression needs; the other seven rounds repeat the same paths, and
 * took 17 of this test's 25 s there. The native runs keep ten.
 */
#define TOTAL_MAX (10u * CAP)
#define TOTAL (RUNNING_ON_VALGRIND ? 3u * CAP : TOTAL_MAX)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

Test(registry, purge_gives_its_slots_back, .timeout = 60)
{
    static uint64_t ids[TOTAL_MAX];
    size_t n = 0;
    sm_stats st;

    smi_registry_test_limit(CAP);
    while (n < TOTAL) {
        size_t batch = n % 3 == 0 ? 1 : BATCH;

        for (size_t i = 0; i < batch && n < TOTAL; i++) {
            sm_buffer b;

            cr_assert_eq(sm_buffer_new(16, &b), SM_OK, "object %zu of %u", n, TOTAL);
            ids[n++] = b.id;
        }
        sm_purge();
        cr_assert_eq(sm_stats_get(&st), SM_OK);
        cr_assert_eq(st.buffers_live, 0);
    }
    qsort(ids, n, sizeof ids[0], cmp_u64);
    for (size_t i = 1; i < n; i++)
        cr_assert_neq(ids[i], ids[i - 1], "an id was handed out twice");
    for (size_t i = 0; i < n; i++)
        cr_assert_lt(smi_handle_index(ids[i]), CAP);
}

/*
 * The walks of purge and audit look at the slots in use, not at every slot ever used:
 * with 3 objects left of 3000, an empty-ish purge or audit must not cost 3000 slots.
 */
Test(registry, walks_touch_only_slots_in_use, .timeout = 60)
{
    static sm_buffer b[3000];

    for (size_t i = 0; i < 3000; i++)
        cr_assert_eq(sm_buffer_new(16, &b[i]), SM_OK);
    for (size_t i = 0; i < 3000; i++)
        if (i % 1000 != 500)
            cr_assert_eq(sm_buffer_destroy(b[i]), SM_OK);
    cr_assert_eq(sm_audit(), SM_OK);
    cr_assert_leq(smi_registry_test_walked(), 3, "audit looked at %lu slots",
                  (unsigned long)smi_registry_test_walked());
    sm_purge();
    cr_assert_leq(smi_registry_test_walked(), 3, "purge looked at %lu slots",
                  (unsigned long)smi_registry_test_walked());
    for (size_t i = 500; i < 3000; i += 1000)
        cr_assert_not(sm_buffer_is_alive(b[i]));
}
