/* SPDX-License-Identifier: ISC */
/*
 * The enclave key (spec/enclave-key.md): lazy creation, round trips with both
 * algorithms, the nonce scheme, tampering, the split at rest and its renewal, where the
 * key may and may not be found in memory, fork, purge, threads, and failures that
 * change nothing. Fault counts per operation are in test_faults.c (spec/syscalls.tsv).
 */
#include <bearssl.h>
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "helpers.h"

static void init(void)
{
    cr_assert_eq(sm_init(NULL), SM_OK);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 131u + (i >> 8));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static uint64_t counter_of(const uint8_t nonce[12])
{
    uint64_t v = 0;

    for (int i = 4; i < 12; i++)
        v = v << 8 | nonce[i];
    return v;
}

/* Open a copy of ct, so that ct can be opened again. */
static sm_status open_copy(const uint8_t nonce[12], const uint8_t *ct, size_t len,
                           const uint8_t tag[16])
{
    uint8_t d[64];

    cr_assert_leq(len, sizeof d);
    memcpy(d, ct, len);
    return smi_coffer_open(nonce, NULL, 0, d, len, tag);
}

static void perms_of(const void *p, char perms[5])
{
    char flags[256];
    size_t locked;

    cr_assert_eq(smaps_of(p, perms, flags, sizeof flags, &locked), 0);
}

/* Every slot of the workspace is zero: no key, no share digest, no AEAD state. */
static void assert_workspace_clean(void)
{
    smi_coffer_probe pr;
    const uint8_t *d;

    smi_coffer_test_probe(&pr);
    cr_assert_not_null(pr.work);
    d = smi_region_data(pr.work) + pr.head_len;
    cr_assert(all_zero(d, pr.work->size - pr.head_len), "a workspace slot is not wiped");
}

static void round_trip(size_t len)
{
    uint8_t *msg = malloc(len + 1), *data = malloc(len + 1);
    uint8_t nonce[12], tag[16], aad[9] = "enclave#1";

    fill(msg, len, (uint8_t)len);
    memcpy(data, msg, len);
    cr_assert_eq(smi_coffer_seal(aad, sizeof aad, data, len, nonce, tag), SM_OK);
    cr_assert(len < 16 || memcmp(data, msg, len) != 0, "encrypted in place");
    assert_workspace_clean();
    cr_assert_eq(smi_coffer_open(nonce, aad, sizeof aad, data, len, tag), SM_OK);
    assert_workspace_clean();
    cr_assert(memcmp(data, msg, len) == 0, "%zu bytes round trip", len);
    free(msg);
    free(data);
}

static void round_trips(void)
{
    static const size_t lens[] = { 0, 1, 32, 100, 4096, 1 << 20 };

    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        round_trip(lens[i]);
}

Test(coffer, made_on_first_seal_not_before, .init = init)
{
    smi_coffer_probe pr;
    counters before, after;
    uint8_t data[16] = { 0 }, nonce[12], tag[16];

    smi_coffer_test_probe(&pr);
    cr_assert_null(pr.work, "sm_init makes no coffer");
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, data, sizeof data, tag), SM_E_AUTH,
                 "nothing opens before there is a key");
    smi_coffer_test_probe(&pr);
    cr_assert_null(pr.work, "open does not make one either");
    counters_get(&before);
    cr_assert_eq(smi_coffer_seal(NULL, 0, data, sizeof data, nonce, tag), SM_OK);
    counters_get(&after);
    cr_assert_eq(after.allocations, before.allocations + 3, "left, right, workspace");
    smi_coffer_test_probe(&pr);
    cr_assert_not_null(pr.work);
    cr_assert(pr.keyed);
    cr_assert_eq(pr.views, 1);
}

Test(coffer, seal_opens_the_runtime_itself)
{
    uint8_t data[4] = { 1, 2, 3, 4 }, nonce[12], tag[16];

    cr_assert_eq(smi_coffer_seal(NULL, 0, data, sizeof data, nonce, tag), SM_OK);
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, data, sizeof data, tag), SM_OK);
    cr_assert_eq(data[3], 4);
}

Test(coffer, round_trips_with_the_default_algorithm, .init = init)
{
    round_trips();
}

Test(coffer, round_trips_with_chacha20_poly1305, .init = init)
{
    smi_aead_test_force(SMI_AEAD_CHACHA);
    round_trips();
}

Test(coffer, rejects_bad_arguments_and_makes_nothing, .init = init)
{
    uint8_t d[8] = { 7 }, nonce[12] = { 1 }, tag[16] = { 2 };
    smi_coffer_probe pr;

    cr_assert_eq(smi_coffer_seal(NULL, 1, d, sizeof d, nonce, tag), SM_E_INVAL);
    cr_assert_eq(smi_coffer_seal(NULL, 0, NULL, 1, nonce, tag), SM_E_INVAL);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, NULL, tag), SM_E_INVAL);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, NULL), SM_E_INVAL);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, (size_t)SMI_AEAD_MAX_LEN + 1, nonce, tag),
                 SM_E_INVAL);
    cr_assert_eq(smi_coffer_open(NULL, NULL, 0, d, sizeof d, tag), SM_E_INVAL);
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, NULL), SM_E_INVAL);
    cr_assert_eq(smi_coffer_open(nonce, NULL, 3, d, sizeof d, tag), SM_E_INVAL);
    cr_assert_eq(d[0], 7, "untouched");
    cr_assert_eq(nonce[0], 1);
    cr_assert_eq(tag[0], 2);
    smi_coffer_test_probe(&pr);
    cr_assert_null(pr.work);
}

Test(coffer, nonces_are_a_fixed_prefix_and_a_counter, .init = init)
{
    uint8_t first[12], nonce[12], tag[16], d[3] = { 0 };

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, first, tag), SM_OK);
    cr_assert_eq(counter_of(first), 0);
    for (uint64_t i = 1; i < 300; i++) {
        cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
        cr_assert(memcmp(nonce, first, 4) == 0, "the prefix belongs to the key");
        cr_assert_eq(counter_of(nonce), i, "one more per seal, across re-splits");
    }
    /* Opens take no nonce. */
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_OK);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    cr_assert_eq(counter_of(nonce), 300);
}

Test(coffer, the_last_nonce_is_used_then_state_error, .init = init)
{
    uint8_t d[5] = { 1, 2, 3, 4, 5 }, ct[5], nonce[12], tag[16], n2[12], t2[16];

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    cr_assert_eq(smi_coffer_test_set_counter(UINT64_MAX - 1), SM_OK);
    memcpy(d, "abcde", 5);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    cr_assert_eq(counter_of(nonce), UINT64_MAX - 1, "the last nonce is used");
    memcpy(ct, d, sizeof ct);
    memcpy(n2, nonce, sizeof n2);
    memcpy(t2, tag, sizeof t2);
    memcpy(d, "fghij", 5);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, n2, t2), SM_E_STATE);
    cr_assert(memcmp(d, "fghij", 5) == 0, "data untouched");
    cr_assert(memcmp(n2, nonce, 12) == 0 && memcmp(t2, tag, 16) == 0, "outputs untouched");
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, n2, t2), SM_E_STATE, "and stays so");
    memcpy(d, ct, sizeof d);
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_OK, "open still works");
    cr_assert(memcmp(d, "abcde", 5) == 0);
}

static void tamper(void)
{
    enum { LEN = 48 };
    uint8_t msg[LEN], ct[LEN], nonce[12], tag[16], aad[6] = "handle";

    fill(msg, LEN, 3);
    memcpy(ct, msg, LEN);
    cr_assert_eq(smi_coffer_seal(aad, sizeof aad, ct, LEN, nonce, tag), SM_OK);
    for (int part = 0; part < 4; part++) {
        size_t sizes[] = { LEN, 16, 12, sizeof aad };

        for (size_t bit = 0; bit < sizes[part] * 8; bit += 5) {
            uint8_t d[LEN], n[12], t[16], a[sizeof aad];
            uint8_t *target[] = { d, t, n, a };

            memcpy(d, ct, LEN);
            memcpy(n, nonce, 12);
            memcpy(t, tag, 16);
            memcpy(a, aad, sizeof a);
            target[part][bit / 8] ^= (uint8_t)(1u << (bit % 8));
            cr_assert_eq(smi_coffer_open(n, a, sizeof a, d, LEN, t), SM_E_AUTH,
                         "part %d bit %zu", part, bit);
            cr_assert(all_zero(d, LEN), "data wiped after SM_E_AUTH");
            assert_workspace_clean();
        }
    }
    cr_assert_eq(smi_coffer_open(nonce, aad, sizeof aad, ct, LEN, tag), SM_OK);
    cr_assert(memcmp(ct, msg, LEN) == 0);
}

Test(coffer, tampering_is_auth_and_wipes, .init = init)
{
    tamper();
}

Test(coffer, tampering_is_auth_and_wipes_chacha, .init = init)
{
    smi_aead_test_force(SMI_AEAD_CHACHA);
    tamper();
}

Test(coffer, shares_are_protected_none_at_rest, .init = init)
{
    uint8_t d[10] = { 0 }, nonce[12], tag[16], key[32], left[32], right[32], h[32];
    smi_coffer_probe pr;
    char perms[5];
    br_sha256_context c;

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    smi_coffer_test_probe(&pr);
    perms_of(smi_region_data(pr.left), perms);
    cr_assert_str_eq(perms, "---p", "left share at rest");
    perms_of(smi_region_data(pr.right), perms);
    cr_assert_str_eq(perms, "---p", "right share at rest");
    perms_of(smi_region_data(pr.work), perms);
    cr_assert_str_eq(perms, "rw-p", "the workspace holds nothing at rest, so it stays open");
    cr_assert_eq(pr.left->prot, SM_PROT_NONE);
    cr_assert_eq(pr.right->prot, SM_PROT_NONE);

    cr_assert_eq(smi_coffer_test_peek(key, left, right), SM_OK);
    br_sha256_init(&c);
    br_sha256_update(&c, left, 32);
    br_sha256_out(&c, h);
    for (int i = 0; i < 32; i++)
        cr_assert_eq(key[i], h[i] ^ right[i], "key = SHA-256(left) XOR right");
    cr_assert_not(sm_equal(key, left, 32));
    cr_assert_not(sm_equal(key, right, 32));
    perms_of(smi_region_data(pr.left), perms);
    cr_assert_str_eq(perms, "---p", "closed again after a view");
}

Test(coffer, four_mprotect_calls_per_warm_operation, .init = init)
{
    uint8_t d[10] = { 0 }, nonce[12], tag[16];

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    sm_os_fault_reset();
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_OK);
    for (int f = 0; f < SM_OS_FN_COUNT; f++)
        cr_assert_eq(sm_os_fault_calls((sm_os_fn)f), f == SM_OS_MPROTECT ? 8u : 0u,
                     "%s", sm_os_fn_name((sm_os_fn)f));
}

/* The left share changes on the first view after N views, and old ciphertexts open. */
Test(coffer, resplit_after_n_views, .init = init)
{
    uint8_t d[10] = { 0 }, nonce[12], tag[16], key0[32], left0[32], right0[32];
    uint8_t key1[32], left1[32], right1[32];
    smi_coffer_probe pr;

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK); /* view 1 */
    cr_assert_eq(smi_coffer_test_peek(key0, left0, right0), SM_OK);
    for (unsigned v = 2; v <= SMI_COFFER_RESPLIT_VIEWS; v++)
        cr_assert_eq(open_copy(nonce, d, sizeof d, tag), SM_OK);
    cr_assert_eq(smi_coffer_test_peek(NULL, left1, NULL), SM_OK);
    cr_assert(sm_equal(left0, left1, 32), "no split before N views");
    smi_coffer_test_probe(&pr);
    cr_assert_eq(pr.views, SMI_COFFER_RESPLIT_VIEWS);
    cr_assert_eq(pr.splits, 0);
    sm_os_fault_reset();
    cr_assert_eq(open_copy(nonce, d, sizeof d, tag), SM_OK, "view N+1");
    cr_assert_eq(sm_os_fault_calls(SM_OS_GETRANDOM), 1, "one draw for the new left share");
    cr_assert_eq(smi_coffer_test_peek(key1, left1, right1), SM_OK);
    cr_assert_not(sm_equal(left0, left1, 32), "new left share");
    cr_assert_not(sm_equal(right0, right1, 32), "new right share");
    cr_assert(sm_equal(key0, key1, 32), "same key");
    smi_coffer_test_probe(&pr);
    cr_assert_eq(pr.splits, 1);
    cr_assert_eq(pr.views, 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(open_copy(nonce, d, sizeof d, tag), SM_OK, "old ciphertexts open");
}

Test(coffer, resplit_after_t_seconds, .init = init)
{
    uint8_t d[10] = { 0 }, nonce[12], tag[16], left0[32], left1[32];
    smi_coffer_probe pr;

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    cr_assert_eq(smi_coffer_test_peek(NULL, left0, NULL), SM_OK);
    smi_coffer_test_age(SMI_COFFER_RESPLIT_NS - 1000000000u); /* 1 s early */
    cr_assert_eq(open_copy(nonce, d, sizeof d, tag), SM_OK);
    smi_coffer_test_probe(&pr);
    cr_assert_eq(pr.splits, 0, "not due yet");
    smi_coffer_test_age(1000000000u);
    cr_assert_eq(open_copy(nonce, d, sizeof d, tag), SM_OK);
    cr_assert_eq(smi_coffer_test_peek(NULL, left1, NULL), SM_OK);
    cr_assert_not(sm_equal(left0, left1, 32));
    smi_coffer_test_probe(&pr);
    cr_assert_eq(pr.splits, 1);
}

Test(coffer, failed_resplit_changes_nothing_and_is_retried, .init = init)
{
    uint8_t d[10] = { 9 }, ct[10], nonce[12], tag[16], n2[12], t2[16], left0[32], left1[32];
    smi_coffer_probe pr;

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    memcpy(ct, d, sizeof ct);
    cr_assert_eq(smi_coffer_test_peek(NULL, left0, NULL), SM_OK);
    smi_coffer_test_age(SMI_COFFER_RESPLIT_NS);
    sm_os_fault_arm(SM_OS_GETRANDOM, 1, EIO, true);
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_E_RANDOM);
    cr_assert(memcmp(d, ct, sizeof d) == 0, "the ciphertext is still there");
    memcpy(n2, nonce, 12);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, n2, t2), SM_E_RANDOM);
    cr_assert(memcmp(d, ct, sizeof d) == 0 && memcmp(n2, nonce, 12) == 0, "untouched");
    sm_os_fault_reset();
    cr_assert_eq(smi_coffer_test_peek(NULL, left1, NULL), SM_OK);
    cr_assert(sm_equal(left0, left1, 32));
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_OK, "retried");
    smi_coffer_test_probe(&pr);
    cr_assert_eq(pr.splits, 1);
}

Test(coffer, failed_protection_change_changes_nothing, .init = init)
{
    uint8_t d[10] = { 9 }, ct[10], nonce[12], tag[16];
    char perms[5];
    smi_coffer_probe pr;

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    memcpy(ct, d, sizeof ct);
    smi_coffer_test_probe(&pr);
    for (unsigned long nth = 1; nth <= 4; nth++) {
        /* A successful view first: it closes whatever the last failure left open. */
        cr_assert_eq(open_copy(nonce, ct, sizeof ct, tag), SM_OK);
        sm_os_fault_arm(SM_OS_MPROTECT, nth, ENOMEM, false);
        cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_E_PROT);
        cr_assert(memcmp(d, ct, sizeof d) == 0, "mprotect %lu: ciphertext kept", nth);
        assert_workspace_clean();
        sm_os_fault_reset();
    }
    /* A close that failed leaves the share open only until the next view closes it. */
    perms_of(smi_region_data(pr.right), perms);
    cr_assert_str_eq(perms, "rw-p", "the last failure was closing the right share");
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_OK);
    perms_of(smi_region_data(pr.left), perms);
    cr_assert_str_eq(perms, "---p");
    perms_of(smi_region_data(pr.right), perms);
    cr_assert_str_eq(perms, "---p");
}

/* A failed first seal is retryable and leaves nothing behind. */
Test(coffer, failed_first_seal_leaves_no_trace, .init = init)
{
    uint8_t d[10] = { 9 }, nonce[12], tag[16];
    counters before, after;
    smi_coffer_probe pr;

    counters_get(&before);
    sm_os_fault_arm(SM_OS_GETRANDOM, 1, EIO, false);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_E_RANDOM);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS));
    smi_coffer_test_probe(&pr);
    cr_assert_null(pr.work);
    cr_assert_eq(d[0], 9);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK, "retry");
}

/* ---- where the key may be found ---- */

/*
 * Search every readable, writable mapping of this process, except the guarded regions
 * listed, for the 32 bytes of needle. Big mappings (sanitizer shadow) are skipped.
 */
static bool found_outside(const uint8_t *needle, const smi_region *const *skip, size_t nskip)
{
    char *maps = proc_text("/proc/self/maps");
    bool found = false;

    for (char *line = maps; *line != 0 && !found;) {
        char *eol = strchr(line, '\n');
        unsigned long lo, hi;
        char perms[5];
        bool skipped = false;

        if (eol != NULL)
            *eol = 0;
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && perms[0] == 'r' &&
            perms[1] == 'w' && hi - lo <= (1ul << 30) && strstr(line, "[vvar]") == NULL) {
            for (size_t k = 0; k < nskip; k++) {
                uintptr_t b = (uintptr_t)skip[k]->base;

                if (lo < b + skip[k]->lay.map_len && b < hi)
                    skipped = true;
            }
            if (!skipped && memmem((void *)lo, hi - lo, needle, 32) != NULL)
                found = true;
        }
        line = eol == NULL ? line + strlen(line) : eol + 1;
    }
    return found;
}

/*
 * The operations run on a thread with a stack of our own, which the scan then reads
 * as it was left: on the test's own stack, the scan's callees would overwrite what
 * the operations left below their frames before the search got there.
 */
static void *operations(void *arg)
{
    uint8_t *d = arg, nonce[12], tag[16];

    for (int i = 0; i < 200; i++) {
        size_t len = (size_t)(i * 331) % (1 << 16);

        fill(d, len, (uint8_t)i);
        if (smi_coffer_seal(NULL, 0, d, len, nonce, tag) != SM_OK ||
            smi_coffer_open(nonce, NULL, 0, d, len, tag) != SM_OK)
            return (void *)1;
        d[0] ^= 1;
        if (smi_coffer_open(nonce, NULL, 0, d, len, tag) != (len == 0 ? SM_OK : SM_E_AUTH))
            return (void *)2;
    }
    return NULL;
}

static void key_stays_in_guarded_memory(void)
{
    enum { STACK = 1 << 18 };
    smi_region keep;
    smi_coffer_probe pr;
    uint8_t *d = malloc(1 << 16), *stack = malloc(STACK);
    pthread_attr_t attr;
    pthread_t t;
    void *ret;

    memset(stack, 0, STACK);
    cr_assert_eq(pthread_attr_init(&attr), 0);
    cr_assert_eq(pthread_attr_setstack(&attr, stack, STACK), 0);
    cr_assert_eq(pthread_create(&t, &attr, operations, d), 0);
    cr_assert_eq(pthread_join(t, &ret), 0);
    cr_assert_null(ret, "an operation failed");
    smi_coffer_test_probe(&pr);
    cr_assert_geq(pr.splits, 2, "re-splits happened in between");
    cr_assert_eq(smi_region_alloc(64, NULL, &keep), SM_OK);
    /* The key and SHA-256(left), which is the key to anyone holding the right share. */
    cr_assert_eq(smi_coffer_test_peek(smi_region_data(&keep), NULL, smi_region_data(&keep) + 32),
                 SM_OK);
    {
        const smi_region *skip[] = { pr.left, pr.right, pr.work, &keep };
        uint8_t *k = smi_region_data(&keep);

        cr_assert_not(found_outside(k, skip, 4), "the key is in ordinary memory");
        for (int i = 0; i < 32; i++)
            k[i] ^= k[32 + i];
        cr_assert_not(found_outside(k, skip, 4), "SHA-256(left) is in ordinary memory");
        /* The search itself can fail: a copy on the thread's stack is found. */
        memcpy(stack + STACK / 2, k, 32);
        cr_assert(found_outside(k, skip, 4));
    }
    cr_assert(all_zero(smi_region_data(pr.work) + pr.head_len, pr.work->size - pr.head_len));
    cr_assert_eq(smi_region_free(&keep), SM_OK);
    smi_wipe(stack, STACK);
    free(stack);
    free(d);
}

/*
 * ASan keeps stack frames on a heap "fake stack" and has its own allocator, so this
 * scan means something in the gcc build; under ASan it is skipped.
 */
Test(coffer, key_never_in_ordinary_memory, .init = init)
{
    if (!SM_TEST_MLOCK_IS_REAL)
        cr_skip_test("ASan moves stack frames off the stack");
    key_stays_in_guarded_memory();
}

Test(coffer, key_never_in_ordinary_memory_chacha, .init = init)
{
    if (!SM_TEST_MLOCK_IS_REAL)
        cr_skip_test("ASan moves stack frames off the stack");
    smi_aead_test_force(SMI_AEAD_CHACHA);
    key_stays_in_guarded_memory();
}

Test(coffer, key_never_in_ordinary_memory_portable_chacha, .init = init)
{
    if (!SM_TEST_MLOCK_IS_REAL)
        cr_skip_test("ASan moves stack frames off the stack");
    smi_aead_test_force(SMI_AEAD_CHACHA_PORTABLE);
    key_stays_in_guarded_memory();
}

/* ---- fork ---- */

static uint8_t pre_nonce[12], pre_tag[16], pre_ct[40];

static void child_after_fork(void *arg)
{
    smi_coffer_probe pr;
    uint8_t d[40], nonce[12], tag[16];
    size_t page = sm_page_size();
    char perms[5], flags[256];
    size_t locked = 0;

    (void)arg;
    smi_coffer_test_probe(&pr);
    if (pr.work == NULL || pr.keyed)
        _exit(10); /* the regions are there but zeroed */
    if (!all_zero(pr.work->base + page, pr.work->lay.inner_len))
        _exit(11); /* the workspace, canary included, reads as zeroes */
    memcpy(d, pre_ct, sizeof d);
    sm_os_fault_reset();
    if (smi_coffer_open(pre_nonce, NULL, 0, d, sizeof d, pre_tag) != SM_E_AUTH)
        _exit(12);
    if (!all_zero(d, sizeof d))
        _exit(13);
    for (int f = 0; f < SM_OS_FN_COUNT; f++)
        if (sm_os_fault_calls((sm_os_fn)f) != 0)
            _exit(14); /* no key to try: no system call */
    memset(d, 0x33, sizeof d);
    if (smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag) != SM_OK)
        _exit(15);
    if (memcmp(nonce, pre_nonce, 4) == 0 || counter_of(nonce) != 0)
        _exit(16); /* a new key: new prefix, counter from 0 */
    if (smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag) != SM_OK || d[39] != 0x33)
        _exit(17);
    memcpy(d, pre_ct, sizeof d);
    if (smi_coffer_open(pre_nonce, NULL, 0, d, sizeof d, pre_tag) != SM_E_AUTH)
        _exit(18); /* the parent's key is not the child's */
    if (SM_TEST_MLOCK_IS_REAL) {
        if (smaps_of(smi_region_data(pr.work), perms, flags, sizeof flags, &locked) != 0 ||
            locked * 1024 != pr.work->lay.inner_len)
            _exit(19); /* locked again: mlock does not survive fork */
    }
    perms_of(smi_region_data(pr.left), perms);
    if (strcmp(perms, "---p") != 0)
        _exit(20);
    _exit(0);
}

Test(coffer, forked_child_finds_no_key_and_makes_its_own, .init = init)
{
    SKIP_WITHOUT_LINUX("no MADV_WIPEONFORK: a forked child keeps its copy of the pages");
    uint8_t d[40];

    memset(pre_ct, 0x77, sizeof pre_ct);
    cr_assert_eq(smi_coffer_seal(NULL, 0, pre_ct, sizeof pre_ct, pre_nonce, pre_tag), SM_OK);
    cr_assert_eq(in_child(child_after_fork, NULL), 0);
    memcpy(d, pre_ct, sizeof d);
    cr_assert_eq(smi_coffer_open(pre_nonce, NULL, 0, d, sizeof d, pre_tag), SM_OK,
                 "the parent keeps its key");
    cr_assert_eq(d[0], 0x77);
}

/* Threads seal and open while the main thread forks: no child may hang on a lock. */
static atomic_bool stop;

static void *worker(void *arg)
{
    uint8_t d[3000], nonce[12], tag[16];
    uintptr_t id = (uintptr_t)arg;

    while (!atomic_load(&stop)) {
        fill(d, sizeof d, (uint8_t)id);
        if (smi_coffer_seal(&id, sizeof id, d, sizeof d, nonce, tag) != SM_OK ||
            smi_coffer_open(nonce, &id, sizeof id, d, sizeof d, tag) != SM_OK ||
            d[100] != (uint8_t)(id + 100 * 131u))
            return (void *)1;
    }
    return NULL;
}

static void child_seals_once(void *arg)
{
    uint8_t d[8] = { 0 }, nonce[12], tag[16];

    (void)arg;
    alarm(10); /* a deadlock ends as SIGALRM, not as a hung suite */
    if (smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag) != SM_OK ||
        smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag) != SM_OK)
        _exit(1);
    _exit(0);
}

Test(coffer, fork_during_operations_does_not_deadlock, .init = init)
{
    pthread_t t[4];
    void *ret;

    for (uintptr_t i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    for (int i = 0; i < 30; i++)
        cr_assert_eq(in_child(child_seals_once, NULL), 0, "fork %d", i);
    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pthread_join(t[i], &ret), 0);
        cr_assert_null(ret, "a worker failed");
    }
}

/*
 * The first seal made while another thread's fork is already running its prepare
 * handlers (deterministically: from inside one). glibc does not run, for that fork,
 * fork handlers registered meanwhile; when the coffer registered its own at its first
 * seal, the sealer then took coffer_lock before the fork and the child inherited it
 * held, with no handler to release it: its first seal waited for ever (the alarm,
 * status 128 + SIGALRM). fork_during_operations_does_not_deadlock met this once under
 * load, at its first fork. The prepare handler below must run after the runtime's,
 * which are registered at load: it is registered before them, by a constructor that
 * runs ahead of the library's (a priority runs before none), since glibc runs prepare
 * handlers in the reverse order of their registration. It does nothing in the other
 * tests' processes, where the test below has not armed it.
 */
static atomic_bool first_seal_armed;
static atomic_int first_seal_step; /* 0 idle, 1 seal now, 2 sealed and holding, 3 let go */

static void *first_sealer(void *arg)
{
    uint8_t d[8] = { 0 }, nonce[12], tag[16];
    void *ret = NULL;

    (void)arg;
    while (atomic_load(&first_seal_step) != 1)
        sched_yield();
    if (smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag) != SM_OK)
        ret = (void *)1;
    /* Held across the fork, as a second operation of this thread's would be. */
    smi_coffer_test_hold(false, true);
    atomic_store(&first_seal_step, 2);
    while (atomic_load(&first_seal_step) != 3)
        sched_yield();
    smi_coffer_test_hold(false, false);
    return ret;
}

static void seal_during_prepare(void)
{
    int idle = 0;

    /* The first fork of the test's process only. */
    if (!atomic_load(&first_seal_armed) ||
        !atomic_compare_exchange_strong(&first_seal_step, &idle, 1))
        return;
    while (atomic_load(&first_seal_step) != 2)
        sched_yield();
}

__attribute__((constructor(101))) static void seal_during_prepare_before_the_runtime(void)
{
    if (pthread_atfork(seal_during_prepare, NULL, NULL) != 0)
        abort();
}

Test(coffer, fork_under_way_at_the_first_seal_does_not_deadlock)
{
    pthread_t t;
    void *ret;
    int st;

    cr_assert_eq(sm_init(NULL), SM_OK);
    atomic_store(&first_seal_armed, true);
    cr_assert_eq(pthread_create(&t, NULL, first_sealer, NULL), 0);
    st = in_child(child_seals_once, NULL);
    atomic_store(&first_seal_step, 3);
    cr_assert_eq(pthread_join(t, &ret), 0);
    cr_assert_null(ret, "the first seal failed");
    cr_assert_eq(st, 0, "the child's seal and open: %d (142: it waited on a coffer lock)", st);
}

/*
 * A fork while a purge is tearing the regions down (a purge takes no lock, so a fork
 * does not wait for it): the child has no thread to finish that teardown, and its
 * first seal must not wait for it (ensure_key waited for ever, yielding, on
 * TEARDOWN_RUNNING). Forked from inside the teardown itself, deterministically.
 */
static atomic_int teardown_child_status = -1;

static void fork_in_teardown(void)
{
    atomic_store(&teardown_child_status, in_child(child_seals_once, NULL));
}

Test(coffer, fork_during_a_purge_teardown_does_not_hang_the_child, .init = init)
{
    uint8_t d[8] = { 0 }, nonce[12], tag[16];

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    smi_coffer_test_during_teardown(fork_in_teardown);
    smi_coffer_purge();
    smi_coffer_test_during_teardown(NULL);
    cr_assert_eq(atomic_load(&teardown_child_status), 0,
                 "the child's seal and open: %d (142: it waited for the teardown)",
                 atomic_load(&teardown_child_status));
    /* The parent's teardown finished: a new key follows. */
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_OK);
}

/* ---- threads ---- */

static void *hammer(void *arg)
{
    uint8_t d[700], nonce[12], tag[16], aad[8];
    uintptr_t id = (uintptr_t)arg;

    memcpy(aad, &id, sizeof aad);
    for (int i = 0; i < 400; i++) {
        fill(d, sizeof d, (uint8_t)(id * 31 + (uintptr_t)i));
        if (smi_coffer_seal(aad, sizeof aad, d, sizeof d, nonce, tag) != SM_OK)
            return (void *)1;
        if (smi_coffer_open(nonce, aad, sizeof aad, d, sizeof d, tag) != SM_OK)
            return (void *)2;
        if (d[5] != (uint8_t)(id * 31 + (uintptr_t)i + 5 * 131u))
            return (void *)3;
    }
    return NULL;
}

Test(coffer, many_threads_more_than_slots, .init = init)
{
    enum { N = 3 * SMI_COFFER_SLOTS };
    pthread_t t[N];
    smi_coffer_probe pr;
    void *ret;

    for (uintptr_t i = 0; i < N; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(pthread_join(t[i], &ret), 0);
        cr_assert_null(ret, "thread %d failed at step %p", i, ret);
    }
    smi_coffer_test_probe(&pr);
    cr_assert_geq(pr.splits, (N * 800) / (SMI_COFFER_RESPLIT_VIEWS + 1));
    assert_workspace_clean();
}

/* ---- purge ---- */

Test(coffer, purge_wipes_unmaps_and_a_new_key_follows, .init = init)
{
    uint8_t d[20] = { 5 }, nonce[12], tag[16], n2[12], t2[16];
    counters before, mid, after;
    smi_coffer_probe pr;
    uint8_t *left_base;

    counters_get(&before);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    counters_get(&mid);
    smi_coffer_test_probe(&pr);
    left_base = pr.left->base;
    smi_coffer_purge();
    smi_coffer_purge(); /* a second purge finds nothing to do */
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED), "everything is unmapped");
    cr_assert_gt(mid.locked, before.locked);
    {
        char perms[5], flags[64];
        size_t locked;

        cr_assert_neq(smaps_of(left_base + sm_page_size(), perms, flags, sizeof flags, &locked),
                      0, "the left share is gone");
    }
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_E_AUTH);
    cr_assert(all_zero(d, sizeof d));
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, n2, t2), SM_OK, "a new coffer");
    cr_assert_neq(memcmp(n2, nonce, 4), 0, "with a new key");
    cr_assert_eq(counter_of(n2), 0);
}

static void purge_on_signal(int sig)
{
    (void)sig;
    smi_coffer_purge();
}

Test(coffer, purge_from_a_signal_handler, .init = init)
{
    uint8_t d[20] = { 5 }, nonce[12], tag[16];
    counters before, after;
    struct sigaction sa = { .sa_handler = purge_on_signal };

    counters_get(&before);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    cr_assert_eq(raise(SIGUSR1), 0);
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED));
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_E_AUTH);
}

/* ---- integrity ---- */

Test(coffer, audit_passes_on_a_healthy_coffer, .init = init)
{
    uint8_t d[4] = { 0 }, nonce[12], tag[16];
    char perms[5];
    smi_coffer_probe pr;

    cr_assert_eq(smi_coffer_audit(), SM_OK, "no coffer, nothing to check");
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    cr_assert_eq(smi_coffer_audit(), SM_OK);
    smi_coffer_test_probe(&pr);
    perms_of(smi_region_data(pr.left), perms);
    cr_assert_str_eq(perms, "---p", "closed after the audit");
    sm_os_fault_arm(SM_OS_MPROTECT, 1, ENOMEM, false);
    cr_assert_eq(smi_coffer_audit(), SM_E_PROT);
}

static void seal_quietly(void)
{
    uint8_t d[4] = { 0 }, nonce[12], tag[16];

    cr_redirect_stderr();
    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
}

Test(coffer, audit_panics_on_a_damaged_canary, .init = seal_quietly, .signal = SIGABRT)
{
    smi_coffer_probe pr;

    smi_coffer_test_probe(&pr);
    smi_region_data(pr.work)[-1] ^= 0x10; /* an underflow into the workspace's canary */
    cr_assert_fail("audit returned %d", (int)smi_coffer_audit());
}

/* A stray write that clears "keyed" must not pass for a fork and replace the key. */
Test(coffer, cleared_keyed_flag_panics, .init = seal_quietly, .signal = SIGABRT)
{
    uint8_t d[4] = { 0 }, nonce[12], tag[16];
    smi_coffer_probe pr;

    smi_coffer_test_probe(&pr);
    memset(smi_region_data(pr.work), 0, 8);
    cr_assert_fail("seal returned %d", (int)smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag));
}

/* An operation that a purge overtakes in its cipher discards what it made. */
static void purge_now(void)
{
    smi_coffer_purge();
}

Test(coffer, purge_during_the_cipher_discards_the_output, .init = init)
{
    uint8_t d[20], nonce[12] = { 1 }, tag[16] = { 2 }, ct[20], n2[12], t2[16];

    memset(d, 0x5a, sizeof d);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    memcpy(ct, d, sizeof ct);
    smi_coffer_test_after_cipher(purge_now);
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_E_STATE);
    cr_assert(all_zero(d, sizeof d), "no plaintext from a purged key");
    memset(d, 0x5a, sizeof d);
    memcpy(n2, nonce, 12);
    memcpy(t2, tag, 16);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, n2, t2), SM_E_STATE);
    for (size_t i = 0; i < sizeof d; i++)
        cr_assert_eq(d[i], 0x5a, "no ciphertext: the plaintext back as it was (issue 11 §4.4)");
    cr_assert(memcmp(n2, nonce, 12) == 0 && memcmp(t2, tag, 16) == 0, "outputs untouched");
    smi_coffer_test_after_cipher(NULL);
    memset(d, 0x5a, sizeof d);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, n2, t2), SM_OK, "a new key after it");
    cr_assert_eq(smi_coffer_open(n2, NULL, 0, d, sizeof d, t2), SM_OK);
    cr_assert_eq(d[19], 0x5a);
}

/*
 * An ending purge may wipe the key under the cipher: the bytes cannot be checked back
 * then, and are wiped rather than left as a ciphertext or a garbled plaintext.
 */
static void purge_and_wipe_the_slots(void)
{
    smi_coffer_probe pr;

    smi_coffer_test_probe(&pr);
    smi_coffer_purge();
    memset(smi_region_data(pr.work) + pr.head_len, 0, pr.work->size - pr.head_len);
}

Test(coffer, seal_overtaken_by_an_ending_purge_wipes_the_data, .init = init)
{
    uint8_t d[20], nonce[12], tag[16];

    memset(d, 0x5a, sizeof d);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    memset(d, 0x5a, sizeof d);
    smi_coffer_test_after_cipher(purge_and_wipe_the_slots);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_E_STATE);
    smi_coffer_test_after_cipher(NULL);
    cr_assert(all_zero(d, sizeof d), "neither a ciphertext nor a garbled plaintext");
}

/*
 * A purge that lets the process go on unmaps nothing under an operation in flight (it
 * would fault): the regions stay until that operation leaves, and it unmaps them.
 */
static uint8_t *work_page;
static bool work_mapped_after_purge;

static void purge_and_look(void)
{
    char perms[5], flags[64];
    size_t locked;

    smi_coffer_purge();
    work_mapped_after_purge = smaps_of(work_page, perms, flags, sizeof flags, &locked) == 0;
}

Test(coffer, purge_during_an_operation_unmaps_when_it_leaves, .init = init)
{
    uint8_t d[20] = { 1 }, nonce[12], tag[16];
    char perms[5], flags[64];
    smi_coffer_probe pr;
    counters before, after;
    size_t locked;

    counters_get(&before);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    smi_coffer_test_probe(&pr);
    work_page = smi_region_data(pr.work);
    smi_coffer_test_after_cipher(purge_and_look);
    cr_assert_eq(smi_coffer_open(nonce, NULL, 0, d, sizeof d, tag), SM_E_STATE);
    smi_coffer_test_after_cipher(NULL);
    cr_assert(work_mapped_after_purge, "still mapped while the operation was in its cipher");
    cr_assert_neq(smaps_of(work_page, perms, flags, sizeof flags, &locked), 0,
                  "unmapped once it left");
    counters_get(&after);
    cr_assert(counters_equal(&before, &after, CMP_MAPPED), "nothing left over");
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK, "a new key after it");
}

/* Best effort in a child that cannot lock again: the key is made, the counters say so. */
static void child_cannot_lock(void *arg)
{
    uint8_t d[8] = { 0 }, nonce[12], tag[16];
    smi_coffer_probe pr;
    counters before, after;
    uint64_t inner;

    (void)arg;
    smi_coffer_test_probe(&pr);
    inner = pr.left->lay.inner_len + pr.right->lay.inner_len + pr.work->lay.inner_len;
    /* Not locked in the child: counted unlocked from the fork on (spec/runtime.md). */
    counters_get(&before);
    sm_os_fault_arm(SM_OS_MLOCK, 1, EAGAIN, true);
    if (smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag) != SM_OK)
        _exit(1);
    counters_get(&after);
    if (after.locked != before.locked || after.unlocked != before.unlocked)
        _exit(2); /* the relock failed: they stay where the fork put them */
    smi_coffer_purge();
    counters_get(&after);
    if (after.locked != before.locked || after.unlocked != before.unlocked - inner)
        _exit(3);
    _exit(0);
}

Test(coffer, best_effort_child_that_cannot_lock_counts_unlocked_bytes)
{
    sm_config cfg = { SM_LOCK_BEST_EFFORT, SM_BACKING_ANON, false };
    uint8_t d[8] = { 0 }, nonce[12], tag[16];

    cr_assert_eq(sm_init(&cfg), SM_OK);
    cr_assert_eq(smi_coffer_seal(NULL, 0, d, sizeof d, nonce, tag), SM_OK);
    cr_assert_eq(in_child(child_cannot_lock, NULL), 0);
}

/* A session: one view (4 mprotect calls) for many operations, consecutive nonces. */
Test(coffer, a_session_views_the_key_once_for_many_operations, .init = init)
{
    uint8_t d[3][20], want[3][20], nonce[3][12], tag[3][16], extra[1] = { 0 };
    smi_coffer_session cs;
    smi_coffer_probe pr;
    uint64_t views;

    cr_assert_eq(smi_coffer_seal(NULL, 0, d[0], 1, nonce[0], tag[0]), SM_OK); /* the key */
    smi_coffer_test_probe(&pr);
    views = pr.views;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 20; k++)
            d[i][k] = want[i][k] = (uint8_t)(i * 40 + k);
    sm_os_fault_reset();
    cr_assert_eq(smi_coffer_begin(&cs, 3), SM_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(smi_coffer_session_seal(&cs, "a", 1, d[i], 20, nonce[i], tag[i]), SM_OK);
    cr_assert_eq(smi_coffer_session_seal(&cs, NULL, 0, extra, 1, nonce[0], tag[0]), SM_E_STATE,
                 "a fourth seal has no reserved nonce");
    cr_assert_eq(smi_coffer_session_open(&cs, nonce[1], "a", 1, d[1], 20, tag[1]), SM_OK);
    cr_assert(sm_equal(d[1], want[1], 20), "opened inside the session");
    smi_coffer_end(&cs);
    cr_assert_eq(sm_os_fault_calls(SM_OS_MPROTECT), 4, "one view for the whole session");
    smi_coffer_test_probe(&pr);
    cr_assert_eq(pr.views, views + 1);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(nonce[i + 1][11], (uint8_t)(nonce[i][11] + 1), "consecutive nonces");
    cr_assert_eq(smi_coffer_open(nonce[2], "a", 1, d[2], 20, tag[2]), SM_OK);
    cr_assert(sm_equal(d[2], want[2], 20), "and outside it");
}

Test(coffer, an_open_only_session_needs_a_key, .init = init)
{
    smi_coffer_session cs;

    cr_assert_eq(smi_coffer_begin(&cs, 0), SM_E_AUTH, "no key: nothing can authenticate");
    smi_coffer_end(&cs); /* harmless after a failed begin */
}

Test(coffer, a_failed_session_begin_holds_nothing, .init = init)
{
    uint8_t d[4] = { 0 }, nonce[12], tag[16];
    smi_coffer_session cs;

    cr_assert_eq(smi_coffer_seal(NULL, 0, d, 4, nonce, tag), SM_OK);
    sm_os_fault_arm(SM_OS_MPROTECT, 1, ENOMEM, false);
    cr_assert_eq(smi_coffer_begin(&cs, 2), SM_E_PROT);
    smi_coffer_end(&cs);
    /* Every workspace slot is free again: as many sessions as slots can begin. */
    {
        smi_coffer_session all[SMI_COFFER_SLOTS];

        for (unsigned i = 0; i < SMI_COFFER_SLOTS; i++)
            cr_assert_eq(smi_coffer_begin(&all[i], 1), SM_OK);
        for (unsigned i = 0; i < SMI_COFFER_SLOTS; i++)
            smi_coffer_end(&all[i]);
    }
}
