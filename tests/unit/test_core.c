/* SPDX-License-Identifier: ISC */
/* The pure core: layout arithmetic, canary, handles, nonces, wipe and compare. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

Test(core, layout_ends_data_at_the_trailing_guard)
{
    static const size_t pages[] = { 4096, 16384, 65536 };
    static const size_t sizes[] = { 1, 31, 32, 33, 4063, 4064, 4065, 4096, 8191, 1 << 20 };

    for (size_t p = 0; p < 3; p++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            smi_layout l;
            size_t pg = pages[p], sz = sizes[s];

            cr_assert(smi_layout_of(sz, pg, &l));
            cr_expect_eq(l.inner_len % pg, 0);
            cr_expect_geq(l.canary_len, SMI_CANARY_MIN);
            cr_expect_lt(l.canary_len, SMI_CANARY_MIN + pg, "no whole page of canary");
            cr_expect_eq(l.data_off, pg + l.canary_len);
            cr_expect_eq(l.data_off + sz, l.map_len - pg, "data ends at the trailing guard");
            cr_expect_eq(l.map_len, l.inner_len + 2 * pg);
            cr_expect_eq(smi_layout_inner(&l), pg, "the inner pages start one guard page in");
            cr_expect_eq(smi_layout_inner(&l) + l.canary_len, l.data_off,
                         "the canary ends where the data starts");
        }
}

Test(core, layout_rejects_zero_and_overflow)
{
    smi_layout l;

    cr_assert_not(smi_layout_of(0, 4096, &l));
    cr_assert_not(smi_layout_of(SIZE_MAX, 4096, &l));
    cr_assert_not(smi_layout_of(SIZE_MAX - SMI_CANARY_MIN - 3 * 4096 + 1, 4096, &l));
    cr_assert(smi_layout_of(SIZE_MAX - SMI_CANARY_MIN - 3 * 4096, 4096, &l),
              "the largest accepted size still has a layout");
    cr_assert_geq(l.map_len, l.inner_len);
}

Test(core, round_up)
{
    cr_assert_eq(smi_round_up(0, 4096), 0);
    cr_assert_eq(smi_round_up(1, 4096), 4096);
    cr_assert_eq(smi_round_up(4096, 4096), 4096);
    cr_assert_eq(smi_round_up(4097, 4096), 8192);
    cr_assert_eq(smi_round_up(SIZE_MAX, 4096), 0, "overflow gives 0");
}

Test(core, canary_fill_and_check)
{
    uint8_t seed[SMI_CANARY_SEED], c[4 * SMI_CANARY_SEED + 1];

    for (unsigned i = 0; i < SMI_CANARY_SEED; i++)
        seed[i] = (uint8_t)(i * 7 + 1);
    /*
     * Every length from none to four tiles: whole tiles, and each tail after them. The
     * byte after the canary must stay as it was: the fill writes len bytes, no more.
     */
    for (size_t len = 0; len < sizeof c; len++) {
        memset(c, 0xee, sizeof c);
        smi_canary_fill(c, len, seed);
        for (size_t i = 0; i < len; i++)
            cr_assert_eq(c[i], seed[i % SMI_CANARY_SEED], "len %zu, byte %zu", len, i);
        cr_assert_eq(c[len], 0xee, "the fill of %zu bytes wrote past them", len);
        cr_assert(smi_canary_ok(c, len, seed), "len %zu", len);
        for (size_t i = 0; i < len; i++) {
            for (unsigned bit = 0; bit < 8; bit++) {
                c[i] ^= (uint8_t)(1u << bit);
                cr_assert_not(smi_canary_ok(c, len, seed), "len %zu: flip at %zu.%u missed",
                              len, i, bit);
                c[i] ^= (uint8_t)(1u << bit);
            }
        }
    }
}

Test(core, handles_round_trip_and_never_zero)
{
    for (unsigned k = 1; k <= SMI_HANDLE_KIND_MAX; k++) {
        uint64_t id = smi_handle_make(k, SMI_HANDLE_GEN_MAX, UINT32_MAX);

        cr_assert_neq(id, 0);
        cr_assert_eq(smi_handle_kind(id), k);
        cr_assert_eq(smi_handle_gen(id), SMI_HANDLE_GEN_MAX);
        cr_assert_eq(smi_handle_index(id), UINT32_MAX);
        id = smi_handle_make(k, 1, 0);
        cr_assert_neq(id, 0);
        cr_assert_eq(smi_handle_gen(id), 1);
        cr_assert_eq(smi_handle_index(id), 0);
    }
    cr_assert_neq(smi_handle_make(1, 2, 3), smi_handle_make(2, 2, 3), "kind is part of the id");
    cr_assert_neq(smi_handle_make(1, 2, 3), smi_handle_make(1, 3, 3), "so is the generation");
}

Test(core, generations_grow_then_retire_for_good)
{
    cr_assert_eq(smi_handle_gen_next(1), 2);
    cr_assert(smi_handle_gen_live(smi_handle_gen_next(SMI_HANDLE_GEN_MAX - 1)));
    cr_assert_eq(smi_handle_gen_next(SMI_HANDLE_GEN_MAX), SMI_HANDLE_GEN_RETIRED,
                 "the last generation spent: retired, not wrapped to 0");
    cr_assert_eq(smi_handle_gen_next(SMI_HANDLE_GEN_RETIRED), SMI_HANDLE_GEN_RETIRED,
                 "retired stays retired");
    cr_assert_not(smi_handle_gen_live(SMI_HANDLE_GEN_RETIRED));
    cr_assert_not(smi_handle_gen_live(0));
    cr_assert(smi_handle_gen_live(1));
    cr_assert(smi_handle_gen_live(SMI_HANDLE_GEN_MAX));
}

Test(core, accepts_only_the_current_id_of_its_kind)
{
    uint64_t now = smi_handle_make(2, 7, 9);

    cr_assert(smi_handle_accepts(now, now, 2));
    cr_assert_not(smi_handle_accepts(smi_handle_make(2, 6, 9), now, 2), "stale");
    cr_assert_not(smi_handle_accepts(smi_handle_make(2, 8, 9), now, 2), "not issued yet");
    cr_assert_not(smi_handle_accepts(now, now, 3), "another kind");
    cr_assert_not(smi_handle_accepts(now ^ 1, now, 2), "forged");
    cr_assert_not(smi_handle_accepts(0, 0, 0), "a free slot holds 0, which names nothing");
    cr_assert_not(smi_handle_accepts(now, 0, 2), "removed");
}

Test(core, nonce_ranges_never_overlap_and_never_wrap)
{
    uint64_t next = 0, first = 99;

    cr_assert_eq(smi_nonce_reserve(&next, 3, &first), SM_OK);
    cr_assert_eq(first, 0);
    cr_assert_eq(next, 3);
    cr_assert_eq(smi_nonce_reserve(&next, 0, &first), SM_OK, "an open-only view reserves none");
    cr_assert_eq(first, 3);
    cr_assert_eq(next, 3);
    next = UINT64_MAX - 2;
    cr_assert_eq(smi_nonce_reserve(&next, 2, &first), SM_OK, "the last counters");
    cr_assert_eq(first, UINT64_MAX - 2);
    cr_assert_eq(next, UINT64_MAX);
    first = 7;
    cr_assert_eq(smi_nonce_reserve(&next, 1, &first), SM_E_STATE, "spent, not wrapped");
    cr_assert_eq(next, UINT64_MAX, "a refusal moves nothing");
    cr_assert_eq(first, 7);
}

Test(core, buffer_state_commits_only_when_the_os_call_succeeded)
{
    smi_buf_state s = SMI_BUF_MUTABLE;

    smi_buf_commit(&s, SMI_BUF_FROZEN, SM_E_PROT);
    cr_assert_eq(s, SMI_BUF_MUTABLE, "a refused mprotect changes no state");
    smi_buf_commit(&s, SMI_BUF_FROZEN, SM_OK);
    cr_assert_eq(s, SMI_BUF_FROZEN);
}

Test(core, stream_aad_is_label_kind_id_and_little_endian_digits)
{
    uint8_t id[SMI_STREAM_ID_LEN], aad[SMI_STREAM_AAD_LEN], want[SMI_STREAM_AAD_LEN] = "stream";

    for (unsigned i = 0; i < sizeof id; i++)
        id[i] = (uint8_t)(0xa0 + i);
    want[7] = 'c';
    memcpy(want + 8, id, sizeof id);
    for (unsigned i = 0; i < 8; i++) {
        want[24 + i] = (uint8_t)(8 - i); /* 0x0102030405060708, lowest byte first */
        want[32 + i] = 0xff;
    }
    memset(aad, 0x55, sizeof aad);
    smi_stream_aad_head(aad, 'c', id);
    smi_le64_put(aad + 24, 0x0102030405060708u);
    smi_le64_put(aad + 32, UINT64_MAX);
    cr_assert_arr_eq(aad, want, sizeof aad, "the binding's bytes");
}

Test(core, wipe_and_equal)
{
    uint8_t a[257], b[257];

    memset(a, 0x5a, sizeof a);
    smi_wipe(a, sizeof a);
    for (size_t i = 0; i < sizeof a; i++)
        cr_assert_eq(a[i], 0);
    for (size_t n = 0; n <= sizeof a; n += 37) {
        memset(a, 3, sizeof a);
        memset(b, 3, sizeof b);
        cr_assert_eq(smi_equal(a, b, n), 1);
        if (n == 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            for (unsigned bit = 0; bit < 8; bit++) {
                b[i] ^= (uint8_t)(1u << bit);
                cr_assert_eq(smi_equal(a, b, n), 0, "n=%zu i=%zu bit=%u", n, i, bit);
                b[i] ^= (uint8_t)(1u << bit);
            }
        }
    }
}

Test(core, buffer_state_machine_matches_the_table)
{
    static const char *classes[] = { "FREEZE", "MELT", "WRITE", "READ", "SEAL", "DESTROY" };
    static const char *states[] = { "MUTABLE", "FROZEN", "DESTROYED" };
    tsv_row *rows;
    size_t n = tsv_load("buffer-states.tsv", &rows);

    for (size_t j = 0; j < n; j++) {
        int op = -1;

        for (int k = 0; k < 6; k++)
            if (strcmp(rows[j].f[1], classes[k]) == 0)
                op = k;
        cr_assert_geq(op, 0, "unknown class %s", rows[j].f[1]);
        for (int st = 0; st < 3; st++) {
            char want_status[32], want_state[32];
            smi_buf_state next;
            sm_status got = smi_buf_step((smi_buf_state)st, (smi_buf_op)op, &next);

            cr_assert_eq(sscanf(rows[j].f[2 + st], "%31s %31s", want_status, want_state), 2);
            cr_expect_eq(got, status_from_name(want_status), "%s in %s", rows[j].f[0], states[st]);
            cr_expect_str_eq(states[next], want_state, "%s in %s", rows[j].f[0], states[st]);
        }
    }
    tsv_free(rows, n);
}
