/* SPDX-License-Identifier: ISC */
#ifndef FZ_SECRETS_H
#define FZ_SECRETS_H

/*
 * What the models of secrets in fuzz/ops.c and fuzz/secret_access.c share: the rows of
 * spec/secret-states.tsv they follow (fuzz/gen-tables.sh), the column a secret is in,
 * the rows of spec/syscalls.tsv for a factory, and the bytes sm_stats counts for it.
 * Factories are numbered as in tests/factory/factories.h.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "calls.h"
#include "factories.h"

/*
 * The factories but the compact one, listed last in factories.h. Its locked bytes are
 * per page, not per secret, and an access costs 0 or 2 calls by what its neighbours hold
 * open, so these per-secret helpers leave it out: the ops model keeps its slabs page by
 * page (fuzz/ops/compact.c), and secret_access models its one compact secret, alone in
 * its slab, apart (spec/compact.md, "Open").
 */
#define FZ_NFACT ((unsigned)FACT_COMPACT)
#include "fuzz_tables.h"
#include "harness.h"

/* The operations of spec/secret-states.tsv that the models follow, and their rows. */
enum { FZ_SOP_WITH, FZ_SOP_TRY, FZ_SOP_READ_AT, FZ_SOP_CLOSE, FZ_SOP_SIZE, FZ_SOP_IS_CLOSED,
       FZ_SOP_COUNT };
extern const char *const fz_sop_names[FZ_SOP_COUNT];
/* Fill rows with the table's row of each operation; fails if one is missing. */
void fz_sec_rows_find(const fz_sec_row *rows[FZ_SOP_COUNT]);

/*
 * The column of spec/secret-states.tsv of a secret that is open or not, with depth
 * accesses of this thread in flight (callbacks of the input). CLOSING and
 * WINDOW-CHANGING need another thread or a factory hook, so the model never infers them.
 */
static inline int fz_sec_state(bool open, unsigned depth)
{
    if (!open)
        return FZ_SEC_CLOSED;
    return depth > 0 ? FZ_SEC_OPEN_ACCESSED : FZ_SEC_OPEN_IDLE;
}

/*
 * What this thread's close of a secret in column state gets (*want) and leaves it in
 * (*next): the cell of the close row, but for OPEN-ACCESSED. That cell is a close from
 * another thread, which waits for the accesses; here the accesses in flight are this
 * thread's, so its close would wait for itself and is refused instead (SM_E_STATE:
 * secret.h), changing nothing. Fails on any other cell that waits: no thread to wait for.
 */
void fz_sec_own_close(const fz_sec_row *close, int state, sm_status *want, int *next);

/*
 * sm_secret_size and sm_secret_is_closed on h, a secret of size bytes in column state:
 * their answers and the state after must be the cells' of rows; own gets the OS calls
 * the two made, for the caller to check against the cells' window counts.
 */
void fz_sec_query(const fz_sec_row *const rows[FZ_SOP_COUNT], sm_secret h, int state,
                  size_t size, fz_calls own);

/*
 * The row of spec/syscalls.tsv for op ("new", "with_bytes", "close", ...) of factory
 * fac: secret.<op>.<factory>, in a static buffer that the next call reuses.
 */
const char *fz_sec_calls_row(const char *op, unsigned fac);

/*
 * The bytes sm_stats counts for a secret of fac holding size bytes (secret.h,
 * spec/secrets.md: factories): none once closed; a protected secret's whole pages, a
 * guarded secret's region, an encrypted secret's only while its window is open, and
 * nothing for the custom factory, whose storage is its own.
 */
uint64_t fz_sec_bytes(unsigned fac, bool open, size_t size, bool window);

#endif
