/* SPDX-License-Identifier: ISC */
/*
 * The model's state and the checks after every operation: the spec tables' rows,
 * outcomes against spec/os-errors.tsv, picking objects, the library's state against the
 * model (fuzz/ops.c says what the model is).
 */
#include "model.h"

ops_model M;
fz_faults F;
size_t page, maxb, chunk_cap;
uint8_t *src, *src2;

/* ---- the spec table ---- */

const char *const row_names[R_COUNT] = {
    "freeze", "melt", "copy", "copy_at", "move", "move_at", "scramble", "wipe", "equal",
    "data", "size", "is_alive", "is_mutable", "seal", "destroy",
};
const fz_buf_row *rows[R_COUNT];
const fz_sec_row *sec_rows[FZ_SOP_COUNT];

void find_rows(void)
{
    for (unsigned r = 0; r < R_COUNT; r++) {
        for (size_t i = 0; i < sizeof fz_buf_table / sizeof fz_buf_table[0]; i++)
            if (strcmp(fz_buf_table[i].op, row_names[r]) == 0)
                rows[r] = &fz_buf_table[i];
        FZ_CHECK(rows[r] != NULL, "spec/buffer-states.tsv has no row %s", row_names[r]);
    }
}

/* ---- outcomes ---- */

/*
 * After a call whose expected status is want (or alt, when two rules of spec/api.md apply
 * and it does not say which wins; SM_OK for none): true when it succeeded as the model
 * wants, so its effect is to be applied; false when it failed as wanted, or because of
 * an injected fault, and then nothing changed.
 */
bool outcome(sm_status st, sm_status want, sm_status alt, const char *what)
{
    if (st == want || (alt != SM_OK && st == alt)) {
        /* Refused as the model says, but a fault fired: in its rollback (best effort). */
        if (st != SM_OK && F.fired > 0)
            M.tainted = true;
        return st == SM_OK;
    }
    FZ_CHECK(F.fired > 0 && fz_faults_allow(&F, st), "%s: %s, want %s%s%s", what, fz_st(st),
             fz_st(want), alt != SM_OK ? " or " : "", alt != SM_OK ? fz_st(alt) : "");
    if (F.fired == 1)
        FZ_CHECK(sm_last_os_error() == F.last_err, "%s: sm_last_os_error %d, injected %d", what,
                 sm_last_os_error(), F.last_err);
    else
        M.tainted = true;
    return false;
}

/* A failure caused by one injected failing munmap, in a free's last step. */
bool failed_last_munmap(void)
{
    return F.fired == 1 && F.last_fn == SM_OS_MUNMAP;
}

/* ---- picking objects and sizes ---- */

size_t overflowing(uint16_t v)
{
    return SIZE_MAX - v % (2 * page);
}

/* A buffer or enclave size: small, around a page boundary, up to three pages, 0 or
   overflowing, or the size of an enclave or buffer (so that open_into can match). */
size_t pick_size(fz_in *in)
{
    uint16_t v = fz_u16(in);

    switch (v >> 13) {
    case 0: case 1:
        return 1 + v % 64;
    case 2:
        return page - 48 + v % 97;
    case 3: case 4:
        return 1 + v % (maxb - 1);
    case 5:
        return M.e[v % NE].alive ? M.e[v % NE].size : 1 + v % 32;
    case 6:
        return M.b[v % NB].state != FZ_DESTROYED ? M.b[v % NB].size : 1 + v % 32;
    default:
        return (v & 1) ? 0 : overflowing(v >> 1);
    }
}

bool live_buf(const mbuf *b)
{
    return b->state != FZ_DESTROYED;
}

/* A slot for a new object: the first without a live one from the input's choice. */
mbuf *free_buf(fz_in *in)
{
    unsigned k = fz_u8(in);

    for (unsigned i = 0; i < NB; i++)
        if (!live_buf(&M.b[(k + i) % NB]))
            return &M.b[(k + i) % NB];
    return NULL;
}

menc *free_enc(fz_in *in)
{
    unsigned k = fz_u8(in);

    for (unsigned i = 0; i < NE; i++)
        if (!M.e[(k + i) % NE].alive)
            return &M.e[(k + i) % NE];
    return NULL;
}

mstr *free_str(fz_in *in)
{
    unsigned k = fz_u8(in);

    for (unsigned i = 0; i < NS; i++)
        if (!M.s[(k + i) % NS].alive)
            return &M.s[(k + i) % NS];
    return NULL;
}

/* ---- secrets: factories (factories.h), states (secrets.h), OS calls (calls.h) ---- */

unsigned pick_factory(fz_in *in)
{
    uint8_t v = fz_u8(in);

    return v % 8 == 7 ? FACT_COMPACT : v % FZ_NFACT;
}

/* The calls of op's rows (calls.h), unless an interrupted call is planned. */
void check_calls(const char *what, const fz_calls own, const char *op)
{
    fz_calls seen, want = { 0 };

    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        if (F.plan[fn].armed && F.plan[fn].err == EINTR)
            return; /* an interrupted call is retried: one call more, never a failure */
    memcpy(seen, own, sizeof seen);
    /*
     * A view of the enclave key that could not shut a share again leaves it open until
     * the next view shuts it (src/objects/coffer.c, close_shares): that view skips opening it,
     * one mprotect fewer per share left open. Once a view ran with no fault, both shares
     * are shut again.
     */
    if (M.share_open && op != NULL && strstr(op, "encrypted") != NULL &&
        fz_calls_of(op, want) && seen[SM_OS_MPROTECT] < want[SM_OS_MPROTECT] &&
        want[SM_OS_MPROTECT] - seen[SM_OS_MPROTECT] <= 2)
        seen[SM_OS_MPROTECT] = want[SM_OS_MPROTECT];
    fz_calls_check(what, seen, op, &M.rng_keyed);
    if (op != NULL && strstr(op, "encrypted") != NULL && F.fired == 0)
        M.share_open = false;
}

/* The protection of a secret's pages: shut, a window, or opened by a failed close. */
static fz_prot secret_prot(const msec *s)
{
    return s->opened ? FZ_PROT_RW : s->readable ? FZ_PROT_READ : FZ_PROT_NONE;
}

/* Queries, the library's state and the pages at rest; the bytes s counts in sm_stats. */
static uint64_t check_secret(const msec *s)
{
    unsigned i = SEC_ID(s);
    int state = fz_sec_state(s->open, s->depth);
    bool answers = sec_rows[FZ_SOP_SIZE]->cell[state].st == SM_OK;
    bool closed = sec_rows[FZ_SOP_IS_CLOSED]->cell[state].st != SM_OK;
    /* smi_sec_state lists the table's first four columns in its order. */
    int lib = (int)smi_secret_state(s->h.id);

    FZ_CHECK(sm_secret_size(s->h) == (answers ? s->size : 0), "secret %u: size %zu, model %zu", i,
             sm_secret_size(s->h), s->size);
    FZ_CHECK(sm_secret_is_closed(s->h) == closed, "secret %u: is_closed %d", i, !closed);
    FZ_CHECK(lib == state, "secret %u: in state %d, model %d", i, lib, state);
    /* A compact secret's pages are its slab's, shared with its neighbours (compact.c). */
    if (s->open && s->fac == FACT_COMPACT)
        cm_check_pages(s);
    /* An encrypted secret's window is a new mapping each time: nothing to probe at rest. */
    else if (s->open && s->addr != NULL && s->fac != FACT_ENCRYPTED) {
        fz_prot a = fz_probe(s->addr), b = fz_probe(s->addr + s->size - 1), want = secret_prot(s);

        if (s->audited && want == FZ_PROT_NONE)
            want = FZ_PROT_READ; /* its audit could not shut it again (op_audit) */
        FZ_CHECK(a == want && b == want, "secret %u: pages are %s and %s, want %s", i,
                 fz_prot_name(a), fz_prot_name(b), fz_prot_name(want));
    }
    return fz_sec_bytes(s->fac, s->open, s->size, s->readable);
}

/* ---- the checks after every operation ---- */

static void check_layout(mbuf *b)
{
    char what[32];

    snprintf(what, sizeof what, "buffer %u", BUF_ID(b));
    fz_check_layout(sm_buffer_data(b->h), b->size, b->state == FZ_MUTABLE || b->opened, what);
}

void check_all(void)
{
    uint64_t live[SMI_KIND_COUNT] = { 0 }, bytes = M.base_bytes, made = M.made;
    uint64_t alloc_before = M.alloc_base;
    bool coffer = fz_coffer_exists(), coffer_before = M.coffer_base;
    fz_counts c;

    for (unsigned i = 0; i < NB; i++) {
        mbuf *b = &M.b[i];
        bool alive = rows[R_IS_ALIVE]->st[b->state] == SM_OK;
        const uint8_t *d = sm_buffer_data(b->h);

        FZ_CHECK(sm_buffer_is_alive(b->h) == alive, "buffer %u: is_alive %d", i, !alive);
        FZ_CHECK((d != NULL) == (rows[R_DATA]->st[b->state] == SM_OK), "buffer %u: data %p", i,
                 (const void *)d);
        FZ_CHECK(sm_buffer_size(b->h) == (rows[R_SIZE]->st[b->state] == SM_OK ? b->size : 0),
                 "buffer %u: size %zu, model %zu", i, sm_buffer_size(b->h), b->size);
        FZ_CHECK(sm_buffer_is_mutable(b->h) == (b->state == FZ_MUTABLE),
                 "buffer %u: is_mutable in state %d", i, b->state);
        if (!alive)
            continue;
        FZ_CHECK(memcmp(d, b->want, b->size) == 0, "buffer %u: contents differ from the model", i);
        if ((M.touched & (1u << i)) || F.fired > 0)
            check_layout(b);
        live[SMI_KIND_BUFFER]++;
        bytes += fz_region_bytes(b->size);
    }
    for (unsigned i = 0; i < NE; i++) {
        FZ_CHECK(sm_enclave_size(M.e[i].h) == (M.e[i].alive ? M.e[i].size : 0),
                 "enclave %u: size %zu, model %zu", i, sm_enclave_size(M.e[i].h), M.e[i].size);
        live[SMI_KIND_ENCLAVE] += M.e[i].alive;
    }
    for (unsigned i = 0; i < NS; i++) {
        FZ_CHECK(sm_stream_size(M.s[i].h) == (M.s[i].alive ? M.s[i].len : 0),
                 "stream %u: size %zu, model %zu", i, sm_stream_size(M.s[i].h), M.s[i].len);
        live[SMI_KIND_STREAM] += M.s[i].alive;
        if (M.s[i].alive)
            bytes += fz_region_bytes(chunk_cap); /* its plaintext region: one chunk */
    }
    for (unsigned i = 0; i < NM; i++) {
        mmem *m = &M.m[i];

        if (m->p == NULL)
            continue;
        FZ_CHECK(fz_probe(m->p) == (fz_prot)m->prot, "memory %u: pages are %s", i,
                 fz_prot_name(fz_probe(m->p)));
        if (m->prot != SM_PROT_NONE)
            FZ_CHECK(memcmp(m->p, m->want, m->len) == 0, "memory %u: contents differ", i);
    }
    for (unsigned i = 0; i < NSEC; i++) {
        live[SMI_KIND_SECRET] += M.sec[i].open;
        bytes += check_secret(&M.sec[i]);
    }
    fz_counts_get(&c);
    for (int k = SMI_KIND_BUFFER; k <= SMI_KIND_SECRET; k++)
        FZ_CHECK(c.live[k] == live[k], "kind %d: %llu live, model %llu", k,
                 (unsigned long long)c.live[k], (unsigned long long)live[k]);
    bytes += cm_bytes();
    if (coffer)
        bytes += fz_coffer_bytes;
    if (coffer && !coffer_before)
        made += 3; /* the enclave key's regions, made by this operation's first seal */
    /*
     * A failed munmap of a region that a call was done with (a temporary region, or a
     * rollback) is ignored: the region stays mapped, wiped, locked and counted
     * (spec/fault-injection.md). Only that excuses more bytes than the model's.
     */
    if (F.fired_by[SM_OS_MUNMAP] > 0 && c.bytes > bytes && c.allocations - alloc_before > made) {
        fz_trace("  a failed munmap left %llu bytes mapped",
                 (unsigned long long)(c.bytes - bytes));
        M.base_bytes += c.bytes - bytes;
        bytes = c.bytes;
        made = c.allocations - alloc_before;
    }
    FZ_CHECK(c.bytes == bytes, "locked+unlocked bytes %llu, model %llu",
             (unsigned long long)c.bytes, (unsigned long long)bytes);
    FZ_CHECK(c.allocations - alloc_before == made, "allocations_total moved by %llu, model %llu",
             (unsigned long long)(c.allocations - alloc_before), (unsigned long long)made);
}

/* Everything left alive, destroyed fault-free through the API; nothing may remain. */
void cleanup(void)
{
    fz_counts c;

    fz_faults_clear(&F);
    for (unsigned i = 0; i < NB; i++)
        if (live_buf(&M.b[i])) {
            sm_status st = sm_buffer_destroy(M.b[i].h);

            FZ_CHECK(st == SM_OK, "cleanup: buffer %u: %s", i, fz_st(st));
        }
    for (unsigned i = 0; i < NE; i++)
        if (M.e[i].alive)
            FZ_CHECK(sm_enclave_destroy(M.e[i].h) == SM_OK, "cleanup: enclave %u", i);
    for (unsigned i = 0; i < NS; i++)
        if (M.s[i].alive)
            FZ_CHECK(sm_stream_destroy(M.s[i].h) == SM_OK, "cleanup: stream %u", i);
    for (unsigned i = 0; i < NM; i++)
        if (M.m[i].p != NULL)
            FZ_CHECK(sm_mem_free(M.m[i].p, M.m[i].n) == SM_OK, "cleanup: memory %u", i);
    for (unsigned i = 0; i < NSEC; i++)
        if (M.sec[i].open) {
            sm_status st;

            cm_begin();
            if (M.sec[i].fac == FACT_COMPACT)
                (void)cm_close(&M.sec[i]);
            st = sm_secret_close(M.sec[i].h);
            FZ_CHECK(st == SM_OK, "cleanup: secret %u: %s", i, fz_st(st));
        }
    fz_counts_get(&c);
    FZ_CHECK(c.live[SMI_KIND_BUFFER] == 0 && c.live[SMI_KIND_ENCLAVE] == 0 &&
                 c.live[SMI_KIND_STREAM] == 0 && c.live[SMI_KIND_SECRET] == 0,
             "cleanup: objects remain alive");
    if (!M.tainted)
        /* A class's last slab stays when it empties (spec/compact.md): its pages too. */
        FZ_CHECK(c.bytes == M.base_bytes + (fz_coffer_exists() ? fz_coffer_bytes : 0) + cm_bytes(),
                 "cleanup: %llu bytes still counted, want %llu",
                 (unsigned long long)c.bytes, (unsigned long long)M.base_bytes);
}

void reset_model(void)
{
    fz_counts c;

    for (unsigned i = 0; i < NB; i++) {
        M.b[i].h.id = 0;
        M.b[i].state = FZ_DESTROYED;
        M.b[i].size = 0;
        M.b[i].opened = false;
    }
    for (unsigned i = 0; i < NE; i++) {
        M.e[i].h.id = 0;
        M.e[i].alive = false;
        M.e[i].size = 0;
    }
    for (unsigned i = 0; i < NS; i++) {
        M.s[i].h.id = 0;
        M.s[i].alive = false;
        M.s[i].len = 0;
    }
    for (unsigned i = 0; i < NM; i++)
        M.m[i].p = NULL;
    for (unsigned i = 0; i < NSEC; i++) {
        M.sec[i].h.id = 0;
        M.sec[i].open = false;
        M.sec[i].size = 0;
        M.sec[i].depth = 0;
        M.sec[i].readable = M.sec[i].opened = M.sec[i].audited = false;
        M.sec[i].addr = NULL;
    }
    cm_reset(); /* fz_begin's purge unmapped every slab */
    M.exhausted = M.tainted = M.aged = M.rng_keyed = M.share_open = false;
    M.forks = 0;
    M.ops = M.depth = 0;
    fz_counts_get(&c);
    M.base_bytes = c.bytes;
}

/* Start counting the effects of an operation (or of what is left of one) from here. */
void rebase(void)
{
    fz_counts c;

    fz_counts_get(&c);
    M.alloc_base = c.allocations;
    M.coffer_base = fz_coffer_exists();
    fz_faults_before(&F);
    M.touched = M.made = 0;
}
