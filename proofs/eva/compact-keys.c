/* SPDX-License-Identifier: ISC */
/*
 * Eva's driver for the compact factory's protection-key mode (spec/compact.md,
 * "Protection keys"): the compact analysis's scenarios, every one, on a machine whose
 * pkey_alloc gives a key (eva.sh builds this analysis with EVA_PKEYS: eva/os.c). The
 * slabs' data pages are then read-write under the key for good, and the thread's rights
 * open and shut them: a register that the model has no notion of, so the checks that a
 * shut page is unreadable are the compact analysis's, and the key mode's are the unit
 * suite's compact_keys tests under qemu -cpu max (make test-debian-kernel). What this
 * run adds: the key mode's paths of compact.c (its slab making, the rights on each
 * access, purge and teardown opening the key themselves), each with no alarm and every
 * driver check holding.
 */
#include "compact.c"
