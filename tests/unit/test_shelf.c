/* SPDX-License-Identifier: ISC */
/*
 * The shelf (src/memory/shelf.c), the lock-free slots under the region pool and the
 * spare mappings: each move of a slot's state, one thread standing in for the threads
 * (or the signal handler's purge) that race for it. What the race suites cannot pin
 * down is here: a purge that meets a give's reservation leaves the give its object, and
 * a purge skips a slot that a take holds.
 */
#include <criterion/criterion.h>

#include "helpers.h"

#define N 3u

Test(shelf, a_give_overtaken_by_a_purge_keeps_its_object_and_empties_the_slot)
{
    smi_shelf_slot s[N] = { 0 };
    unsigned i = smi_shelf_reserve(s, N);

    cr_assert_eq(i, 0u);
    /* the purge finds no descriptor to take: the give is still writing it */
    cr_assert_not(smi_shelf_purge(&s[i]));
    cr_assert_not(smi_shelf_fill(&s[i], 7), "a give that a purge overtook must not park");
    cr_assert_not(smi_shelf_test_full(&s[i]));
    cr_assert_eq(smi_shelf_take(s, N, 7), N);
    cr_assert_eq(smi_shelf_reserve(s, N), i, "the overtaken slot is empty again");
}

Test(shelf, a_full_slot_is_taken_once_and_only_by_its_key)
{
    smi_shelf_slot s[N] = { 0 };
    unsigned i = smi_shelf_reserve(s, N);

    cr_assert(smi_shelf_fill(&s[i], 5));
    cr_assert(smi_shelf_test_full(&s[i]));
    cr_assert_eq(smi_shelf_take(s, N, 6), N, "another key's take found it");
    cr_assert_eq(smi_shelf_take(s, N, 5), i);
    cr_assert_eq(smi_shelf_take(s, N, 5), N, "taken twice");
    cr_assert_not(smi_shelf_purge(&s[i]), "a purge took a slot that a take holds");
    cr_assert_eq(smi_shelf_reserve(s, N), 1u, "a give reserved a slot that a take holds");
    smi_shelf_put_back(&s[i], 5);
    cr_assert(smi_shelf_purge(&s[i]));
    cr_assert_eq(smi_shelf_take(s, N, 5), N, "taken while a purge holds it");
    smi_shelf_release(&s[i]);
    cr_assert_not(smi_shelf_purge(&s[i]));
    cr_assert_eq(smi_shelf_take(s, N, 5), N);
}

Test(shelf, full_when_every_slot_is_held)
{
    smi_shelf_slot s[N] = { 0 };

    for (unsigned k = 0; k < N; k++)
        cr_assert_eq(smi_shelf_reserve(s, N), k);
    cr_assert_eq(smi_shelf_reserve(s, N), N);
    smi_shelf_release(&s[1]);
    cr_assert_eq(smi_shelf_reserve(s, N), 1u);
}

Test(shelf, a_forked_child_clears_every_slot_and_names_the_full_ones)
{
    smi_shelf_slot s[N] = { 0 };

    (void)smi_shelf_reserve(s, N);
    (void)smi_shelf_reserve(s, N);
    cr_assert(smi_shelf_fill(&s[1], 9));
    cr_assert_not(smi_shelf_clear(&s[0]), "a reservation is no descriptor");
    cr_assert(smi_shelf_clear(&s[1]));
    cr_assert_not(smi_shelf_clear(&s[2]));
    for (unsigned k = 0; k < N; k++)
        cr_assert_eq(smi_shelf_reserve(s, N), k, "slot %u not emptied", k);
}
