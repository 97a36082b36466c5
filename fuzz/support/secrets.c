/* SPDX-License-Identifier: ISC */
/* The models' shared view of secrets (secrets.h). */
#include <stdio.h>
#include <string.h>

#include "calls.h"
#include "secrets.h"

const char *const fz_sop_names[FZ_SOP_COUNT] = {
    "with_bytes", "try_with_bytes", "read_at", "close", "size", "is_closed",
};

void fz_sec_rows_find(const fz_sec_row *rows[FZ_SOP_COUNT])
{
    for (unsigned r = 0; r < FZ_SOP_COUNT; r++) {
        rows[r] = NULL;
        for (size_t i = 0; i < sizeof fz_sec_table / sizeof fz_sec_table[0]; i++)
            if (strcmp(fz_sec_table[i].op, fz_sop_names[r]) == 0)
                rows[r] = &fz_sec_table[i];
        FZ_CHECK(rows[r] != NULL, "spec/secret-states.tsv has no row %s", fz_sop_names[r]);
    }
}

void fz_sec_own_close(const fz_sec_row *close, int state, sm_status *want, int *next)
{
    const fz_sec_cell *c = &close->cell[state];

    if (state == FZ_SEC_OPEN_ACCESSED) {
        *want = SM_E_STATE;
        *next = state;
        return;
    }
    FZ_CHECK(!c->waits, "close: a cell that waits, with no other thread");
    *want = c->st;
    *next = c->next;
}

const char *fz_sec_calls_row(const char *op, unsigned fac)
{
    static char row[48];

    snprintf(row, sizeof row, "secret.%s.%s%s", op, factory_name(fac),
             (fac == FACT_GUARDED || fac == FACT_PROTECTED) && strcmp(op, "with_bytes") != 0
                 ? fz_pool_case(op)
                 : "");
    return row;
}

uint64_t fz_sec_bytes(unsigned fac, bool open, size_t size, bool window)
{
    uint64_t page = sm_page_size();

    if (!open)
        return 0;
    switch (fac) {
    case FACT_PROTECTED:
        return (size + page - 1) & ~(page - 1);
    case FACT_GUARDED:
        return fz_region_bytes(size);
    case FACT_ENCRYPTED:
        return window ? fz_region_bytes(size) : 0;
    default:
        return 0;
    }
}

void fz_sec_query(const fz_sec_row *const rows[FZ_SOP_COUNT], sm_secret h, int state,
                  size_t size, fz_calls own)
{
    const fz_sec_cell *size_cell = &rows[FZ_SOP_SIZE]->cell[state];
    const fz_sec_cell *closed_cell = &rows[FZ_SOP_IS_CLOSED]->cell[state];
    fz_calls c0, c1;
    size_t n;
    bool closed;

    memset(own, 0, sizeof(fz_calls));
    fz_calls_now(c0);
    n = sm_secret_size(h);
    closed = sm_secret_is_closed(h);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    fz_trace("size/is_closed: %zu %d", n, closed);
    FZ_CHECK(n == (size_cell->st == SM_OK ? size : 0), "size %zu, model %zu", n, size);
    FZ_CHECK(closed == (closed_cell->st != SM_OK), "is_closed %d in state %d", closed, state);
    FZ_CHECK((int)smi_secret_state(h.id) == size_cell->next, "state after size");
}
