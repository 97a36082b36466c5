/* SPDX-License-Identifier: ISC */
/*
 * secret_access: nested and interleaved accesses and closes over one secret of each
 * factory, with the depth of the accesses driven by the input, every result compared
 * with spec/secret-states.tsv. Any divergence aborts.
 *
 * Target functions: sm_secret_new, sm_secret_random, sm_secret_with_bytes,
 * sm_secret_try_with_bytes, sm_secret_read_at, sm_secret_size, sm_secret_is_closed,
 * sm_secret_close; sm_factory_protected, sm_factory_guarded, sm_factory_encrypted, a
 * custom factory (the example of tests/factory, wrapped so that its hooks can act) and
 * sm_factory_compact.
 *
 * The model. Five slots, one per factory, each holding at most one secret at a time (a
 * closed one can be made again). An access's callback does not return until the input
 * says so: the operations between an "enter" and its "leave" run inside the window, so
 * accesses nest and interleave across the five secrets as deep as the input goes (up to
 * MAX_DEPTH, below the 16 accesses per thread that secret.h tracks). The model's state
 * of a secret is the column of spec/secret-states.tsv (gen-tables.sh) whose cell each
 * operation follows for its status and the state after, also as smi_secret_state
 * reports it:
 *  - OPEN-IDLE and CLOSED; OPEN-ACCESSED while one of this input's callbacks is inside
 *    it. A close by this thread inside its own access is refused (SM_E_STATE: secret.h)
 *    instead of the cell's "waits", which is for another thread: it must not deadlock.
 *  - WINDOW-CHANGING: the custom factory's make_readable and make_unreadable hooks run
 *    while the secret layer changes the window without its lock; when the input arms
 *    them they run every operation whose cell does not wait (try_with_bytes: SM_E_BUSY,
 *    size, is_closed) on their own secret.
 *  - CLOSING: the custom factory's destroy hook runs once close has begun; armed, it
 *    runs every operation of the table there (none waits: all are refused).
 * Inside a window, every window of the stack is read: each holds the model's bytes (a
 * random secret's are learnt at its first access), is read-only (probed through the
 * kernel: the API allows no write), and for guarded and encrypted secrets ends against a
 * guard page. At rest the pages of protected, guarded and custom secrets are
 * unreadable; a closed secret's pages and a shut encrypted window are gone. A cell's
 * window count is checked against the OS calls of one access of that factory in
 * spec/syscalls.tsv ("2") or none ("0"); new, random and close make exactly the calls of
 * their rows. After every operation sm_stats counts the model's secrets, bytes and
 * allocations; at the end of the input, with every secret closed, they are back at
 * their baseline. No OS fault is injected here (fuzz/ops.c does that).
 *
 * The compact secret (spec/compact.md) is counted by page, not by secret: an access
 * opens the data page that holds its slot, and only the first opener of a page makes
 * the calls. Its only possible neighbours are compact secrets of its class, and this
 * input has one compact secret at a time, so it is alone in its class's slab and takes
 * slot 0 every time (the slot its predecessor freed, or the first): its 8-byte canary
 * opens the slab's first data page, which it never leaves (a slot is at most 2,056
 * bytes), and the model checks that place at every access. So its first access opens
 * that page with the calls of compact.with_bytes, nested ones join it with none, and
 * the last shuts it. A class's first make maps its slab and locks that page
 * (compact.new.first), later ones find both (compact.new); the page stays counted
 * until the slab goes, at the purge that begins the next input, since a class keeps its
 * empty slab. The calls are those rows of spec/syscalls.tsv; a size over 2,048 bytes is
 * SM_E_INVAL with no call.
 *
 * Input: operations, one byte each (its low 4 bits pick one) and its arguments:
 *   0 new (slot, random?, size, bytes)   1 enter with_bytes (slot)   2 enter try (slot)
 *   3 leave (fn's status)                4 read every window          5 read_at (slot, off, n)
 *   6 close (slot)                       7 size and is_closed (slot)  8 arm hooks (mask)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls.h"
#include "factories.h"
#include "fuzz_tables.h"
#include "harness.h"
#include "objects/compact.h"
#include "secrets.h"

#define MAX_OPS 256
#define MAX_DEPTH 12
/* FZ_NFACT's four factories, and the compact one (FACT_COMPACT, the last). */
#define NSLOT (FACT_COMPACT + 1u)

typedef struct xsec {
    sm_secret      h;
    bool           open;
    size_t         size;
    uint8_t       *want;
    bool           known;    /* false for a random secret until its first access */
    unsigned       depth;    /* accesses in flight, all this thread's */
    const uint8_t *addr;     /* where its bytes were last seen */
} xsec;

typedef struct frame {
    xsec          *s;
    const uint8_t *bytes;
} frame;

static struct {
    xsec     sec[NSLOT];
    frame    stack[MAX_DEPTH];
    unsigned depth, ops;
    unsigned hooks;      /* HOOK_* of the custom factory armed by the input */
    bool     rng_keyed;  /* the canary generator has its key (calls.h) */
    uint64_t base_bytes, alloc_base, made;
    bool     coffer_base;
    unsigned compact_slabs; /* the size classes whose slab this input mapped, a bit each */
} M;

enum { HOOK_OPEN = 1, HOOK_SHUT = 2, HOOK_DESTROY = 4 };

static size_t page, maxs;
static uint8_t *buf;

/* ---- the table ---- */

static const fz_sec_row *rows[FZ_SOP_COUNT];

/* ---- OS calls (calls.h) ---- */

static void check_calls(const char *what, const fz_calls own, const char *op)
{
    fz_calls_check(what, own, op, &M.rng_keyed);
}

/* ---- the compact secret: its slab, and its rows of spec/syscalls.tsv ---- */

static const char *const compact_rows[] = { "compact.new.first", "compact.new",
                                            "compact.with_bytes", "compact.close" };

static unsigned compact_slab_bit(size_t size)
{
    unsigned c = 0;

    while ((16u << c) < size)
        c++;
    return 1u << c;
}

/*
 * The row of spec/syscalls.tsv for op of a secret of fac and size, for the calls that
 * the model above says: the compact factory's own rows (a random fill draws from the
 * canary generator, with no call, so random's calls are new's), every other factory's
 * secret.<op>.<factory>.
 */
static const char *calls_row(const char *op, unsigned fac, size_t size)
{
    if (fac != FACT_COMPACT)
        return fz_sec_calls_row(op, fac);
    if (strcmp(op, "new") == 0 || strcmp(op, "random") == 0)
        return (M.compact_slabs & compact_slab_bit(size)) != 0 ? compact_rows[1]
                                                               : compact_rows[0];
    return strcmp(op, "close") == 0 ? compact_rows[3] : compact_rows[2];
}

/* The locked pages of the compact slabs: one per class used, kept until the purge. */
static uint64_t compact_bytes(void)
{
    return (uint64_t)__builtin_popcount(M.compact_slabs) * page;
}

/* ---- the custom factory: the example's hooks, which run the input's probes ---- */

static void probe_cells(unsigned fac, int col, const char *where);

static sm_status hook_create(void *ctx, size_t len, void **state, uint8_t **fill)
{
    (void)ctx;
    return example_factory()->create(NULL, len, state, fill);
}

static sm_status hook_seal(void *ctx, void *state)
{
    (void)ctx;
    return example_factory()->seal(NULL, state);
}

/* The secret layer is opening the window, outside the secret's lock. */
static sm_status hook_open(void *ctx, void *state, const uint8_t **bytes)
{
    (void)ctx;
    if (M.hooks & HOOK_OPEN)
        probe_cells(FACT_CUSTOM, FZ_SEC_WINDOW_CHANGING, "make_readable");
    return example_factory()->make_readable(NULL, state, bytes);
}

/* The last access is leaving: the window is being shut. */
static sm_status hook_shut(void *ctx, void *state)
{
    (void)ctx;
    if (M.hooks & HOOK_SHUT)
        probe_cells(FACT_CUSTOM, FZ_SEC_WINDOW_CHANGING, "make_unreadable");
    return example_factory()->make_unreadable(NULL, state);
}

/* Close has begun and is destroying the storage. */
static sm_status hook_destroy(void *ctx, void *state)
{
    (void)ctx;
    if (M.hooks & HOOK_DESTROY)
        probe_cells(FACT_CUSTOM, FZ_SEC_CLOSING, "destroy");
    return example_factory()->destroy(NULL, state);
}

static void hook_purge(void *ctx, void *state, bool in_use)
{
    (void)ctx;
    example_factory()->purge(NULL, state, in_use);
}

static const sm_factory probing_factory = {
    .version = SM_FACTORY_VERSION,
    .create = hook_create,
    .seal = hook_seal,
    .make_readable = hook_open,
    .make_unreadable = hook_shut,
    .destroy = hook_destroy,
    .purge = hook_purge,
};

static const sm_factory *factory_of(unsigned fac)
{
    return fac == FACT_CUSTOM ? &probing_factory : factory(fac);
}

static sm_status never_called(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)bytes;
    (void)len;
    (void)ctx;
    fz_fail("an access that the table refuses called fn");
}

/*
 * From inside a hook of secret fac: every operation whose cell in column col does not
 * wait, with the cell's status (queries: SM_OK is the answer, SM_E_STATE 0 or closed).
 * An operation that waits would wait for this thread, which is inside the change.
 */
static void probe_cells(unsigned fac, int col, const char *where)
{
    xsec *s = &M.sec[fac];
    size_t got = 0x0bad;
    sm_status st;

    for (unsigned r = 0; r < FZ_SOP_COUNT; r++) {
        const fz_sec_cell *c = &rows[r]->cell[col];

        if (c->waits)
            continue;
        switch (r) {
        case FZ_SOP_WITH:
            st = sm_secret_with_bytes(s->h, never_called, NULL);
            break;
        case FZ_SOP_TRY:
            st = sm_secret_try_with_bytes(s->h, never_called, NULL);
            break;
        case FZ_SOP_READ_AT:
            st = sm_secret_read_at(s->h, 0, buf, 1, &got);
            break;
        case FZ_SOP_CLOSE:
            st = sm_secret_close(s->h);
            break;
        case FZ_SOP_SIZE:
            st = sm_secret_size(s->h) == s->size ? SM_OK
                 : sm_secret_size(s->h) == 0     ? SM_E_STATE
                                                 : SM_E_SYS;
            break;
        default:
            st = sm_secret_is_closed(s->h) ? SM_E_STATE : SM_OK;
            break;
        }
        FZ_CHECK(st == c->st, "in %s of the %s secret: %s gave %s, the table says %s", where,
                 factory_name(fac), fz_sop_names[r], fz_st(st), fz_st(c->st));
    }
    /* The table's CLOSING column is a state the library reports; WINDOW-CHANGING is not. */
    if (col == FZ_SEC_CLOSING)
        FZ_CHECK((int)smi_secret_state(s->h.id) == FZ_SEC_CLOSING, "in %s: state %d", where,
                 (int)smi_secret_state(s->h.id));
    FZ_CHECK(got == 0x0bad, "a refused read_at wrote *got");
    fz_trace("  probes in %s of the %s secret", where, factory_name(fac));
}

/* ---- checks ---- */

/* One window of the stack: the model's bytes, read-only, in its factory's layout. */
static void check_window(const frame *w)
{
    xsec *s = w->s;
    unsigned fac = (unsigned)(s - M.sec);
    fz_prot a, b;

    if (fac == FACT_GUARDED || fac == FACT_ENCRYPTED) {
        fz_check_layout(w->bytes, s->size, false, factory_name(fac));
    } else {
        /* Slot 0, behind its canary, on the first data page (the model above). */
        FZ_CHECK(fac != FACT_COMPACT || (uintptr_t)w->bytes % page == 8,
                 "compact window at page offset %zu, not slot 0's",
                 (size_t)((uintptr_t)w->bytes % page));
        a = fz_probe(w->bytes);
        b = fz_probe(w->bytes + s->size - 1);
        FZ_CHECK(a == FZ_PROT_READ && b == FZ_PROT_READ, "%s window: %s and %s", factory_name(fac),
                 fz_prot_name(a), fz_prot_name(b));
    }
    if (!s->known) {
        memcpy(s->want, w->bytes, s->size);
        s->known = true;
    }
    FZ_CHECK(memcmp(w->bytes, s->want, s->size) == 0, "%s window: bytes differ",
             factory_name(fac));
}

static void check_all(void)
{
    uint64_t bytes = M.base_bytes, made = M.made, live = 0;
    bool coffer = fz_coffer_exists();
    fz_counts c;

    for (unsigned i = 0; i < NSLOT; i++) {
        xsec *s = &M.sec[i];
        int state = fz_sec_state(s->open, s->depth);

        FZ_CHECK(sm_secret_size(s->h) == (rows[FZ_SOP_SIZE]->cell[state].st == SM_OK ? s->size : 0),
                 "%s: size %zu", factory_name(i), sm_secret_size(s->h));
        FZ_CHECK(sm_secret_is_closed(s->h) == (rows[FZ_SOP_IS_CLOSED]->cell[state].st != SM_OK),
                 "%s: is_closed", factory_name(i));
        FZ_CHECK((int)smi_secret_state(s->h.id) == state, "%s: state %d, model %d", factory_name(i),
                 (int)smi_secret_state(s->h.id), state);
        if (s->open && s->addr != NULL && i != FACT_ENCRYPTED) {
            fz_prot want = s->depth > 0 ? FZ_PROT_READ : FZ_PROT_NONE, got = fz_probe(s->addr);

            FZ_CHECK(got == want, "%s: pages are %s, want %s", factory_name(i), fz_prot_name(got),
                     fz_prot_name(want));
        }
        live += s->open;
        bytes += fz_sec_bytes(i, s->open, s->size, s->depth > 0);
    }
    bytes += compact_bytes();
    if (coffer) {
        bytes += fz_coffer_bytes;
        if (!M.coffer_base)
            made += 3; /* the enclave key's regions, made by the first seal */
    }
    fz_counts_get(&c);
    FZ_CHECK(c.live[SMI_KIND_SECRET] == live, "%llu secrets live, model %llu",
             (unsigned long long)c.live[SMI_KIND_SECRET], (unsigned long long)live);
    FZ_CHECK(c.bytes == bytes, "locked+unlocked bytes %llu, model %llu",
             (unsigned long long)c.bytes, (unsigned long long)bytes);
    FZ_CHECK(c.allocations - M.alloc_base == made, "allocations_total moved by %llu, model %llu",
             (unsigned long long)(c.allocations - M.alloc_base), (unsigned long long)made);
}

/* Count the effects of the next operation from here. */
static void rebase(void)
{
    fz_counts c;

    fz_counts_get(&c);
    M.alloc_base = c.allocations;
    M.coffer_base = fz_coffer_exists();
    M.made = 0;
}

/* ---- operations ---- */

static void run_op(fz_in *in, uint8_t code);

/* Small, around a page, or up to three pages. */
static size_t pick_size(fz_in *in)
{
    uint16_t v = fz_u16(in);

    switch (v >> 14) {
    case 0: case 1:
        return 1 + v % 64;
    case 2:
        return page - 40 + v % 81;
    default:
        return 1 + v % maxs;
    }
}

static void op_new(fz_in *in)
{
    unsigned fac = fz_u8(in) % NSLOT;
    xsec *s = &M.sec[fac];
    bool random = fz_u8(in) & 1, coffer = fz_coffer_exists();
    size_t size = pick_size(in);
    sm_secret out = { 0 };
    fz_calls c0, c1, own = { 0 };
    sm_status st;

    if (!random)
        fz_fill(in, buf, size);
    if (s->open)
        return;
    memcpy(s->want, buf, random ? 0 : size);
    fz_calls_now(c0);
    st = random ? sm_secret_random(factory_of(fac), size, &out)
                : sm_secret_new(factory_of(fac), buf, size, &out);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    fz_trace("%s %s %zu: %s", random ? "random" : "new", factory_name(fac), size, fz_st(st));
    if (fac == FACT_COMPACT && size > SMI_COMPACT_MAX) {
        FZ_CHECK(st == SM_E_INVAL, "compact secret of %zu: %s", size, fz_st(st));
        check_calls("new", own, NULL);
        return;
    }
    FZ_CHECK(st == SM_OK, "%s secret of %zu: %s", factory_name(fac), size, fz_st(st));
    for (size_t i = 0; !random && i < size; i++)
        FZ_CHECK(buf[i] == 0, "new did not wipe its source");
    if (fac != FACT_ENCRYPTED || coffer) /* a first seal also makes the enclave key */
        check_calls("new", own, calls_row(random ? "random" : "new", fac, size));
    if (fac == FACT_COMPACT) /* after calls_row, which asks whether it was mapped */
        M.compact_slabs |= compact_slab_bit(size);
    s->h = out;
    s->open = true;
    s->size = size;
    s->known = !random;
    s->depth = 0;
    s->addr = NULL;
    if (fac != FACT_CUSTOM)
        M.made++;
}

typedef struct access {
    xsec    *s;
    fz_in   *in;
    bool     called;
    fz_calls start, entered, leaving;
} access;

/*
 * The callback: the window is pushed on the stack, then the input's operations run
 * inside it until a "leave" (its argument is fn's status) or the end of the input.
 */
static sm_status access_fn(const uint8_t *bytes, size_t len, void *ctx)
{
    access *a = ctx;
    xsec *s = a->s;
    unsigned fac = (unsigned)(s - M.sec);
    sm_status ret = SM_OK;

    fz_calls_now(a->entered);
    FZ_CHECK(!a->called && len == s->size, "%s: fn called twice, or with %zu bytes",
             factory_name(fac), len);
    a->called = true;
    if (s->depth == 0 && fac == FACT_ENCRYPTED)
        M.made++; /* each window is a guarded region made */
    s->depth++;
    s->addr = bytes;
    M.stack[M.depth].s = s;
    M.stack[M.depth].bytes = bytes;
    M.depth++;
    check_window(&M.stack[M.depth - 1]);
    check_all();
    fz_trace("  inside %s (depth %u)", factory_name(fac), M.depth);
    while (fz_more(a->in) && M.ops++ < MAX_OPS) {
        uint8_t code = fz_u8(a->in) & 15;

        if (code == 3) {
            ret = (fz_u8(a->in) & 3) == 3 ? SM_E_AUTH : SM_OK;
            break;
        }
        rebase();
        run_op(a->in, code);
        check_all();
    }
    check_window(&M.stack[M.depth - 1]);
    M.depth--;
    s->depth--;
    rebase();
    fz_calls_now(a->leaving);
    fz_trace("  leaving %s: %s", factory_name(fac), fz_st(ret));
    return ret;
}

static void op_enter(fz_in *in, bool try)
{
    const char *what = try ? "try_with_bytes" : "with_bytes";
    unsigned fac = fz_u8(in) % NSLOT;
    xsec *s = &M.sec[fac];
    access a = { .s = s, .in = in };
    int state = fz_sec_state(s->open, s->depth);
    const fz_sec_cell *c = &rows[try ? FZ_SOP_TRY : FZ_SOP_WITH]->cell[state];
    fz_calls end, own = { 0 };
    sm_status st;

    if (M.depth >= MAX_DEPTH)
        return;
    FZ_CHECK(!c->waits, "%s: a cell that waits, with no other thread", what);
    fz_calls_now(a.start);
    st = try ? sm_secret_try_with_bytes(s->h, access_fn, &a)
             : sm_secret_with_bytes(s->h, access_fn, &a);
    fz_calls_now(end);
    fz_trace("%s %s: %s", what, factory_name(fac), fz_st(st));
    if (!a.called) {
        FZ_CHECK(c->st != SM_OK && st == c->st, "%s %s: %s without fn, the table says %s", what,
                 factory_name(fac), fz_st(st), fz_st(c->st));
        fz_calls_add(own, a.start, end);
        check_calls(what, own, NULL);
        return;
    }
    FZ_CHECK(c->st == SM_OK, "%s %s: fn called, the table says %s", what, factory_name(fac),
             fz_st(c->st));
    /* fn's status (a leave chooses it; the input's end is SM_OK) comes back as is. */
    FZ_CHECK(st == SM_OK || st == SM_E_AUTH, "%s %s: %s", what, factory_name(fac), fz_st(st));
    fz_calls_add(own, a.start, a.entered);
    fz_calls_add(own, a.leaving, end);
    if (c->window == 0)
        check_calls(what, own, NULL);
    else if (c->window == 2)
        check_calls(what, own, calls_row("with_bytes", fac, s->size));
    /*
     * A shut encrypted window is unmapped (nothing has mapped anything since); its
     * address may be another mapping's from the next operation on.
     */
    if (fac == FACT_ENCRYPTED && s->depth == 0) {
        FZ_CHECK(fz_probe(s->addr) == FZ_PROT_NONE, "encrypted: window still mapped");
        s->addr = NULL;
    }
}

/* Read every window of the stack, innermost first: interleaved windows stay intact. */
static void op_read_windows(void)
{
    for (unsigned i = M.depth; i-- > 0;)
        check_window(&M.stack[i]);
    fz_trace("read %u windows", M.depth);
}

static void op_read_at(fz_in *in)
{
    unsigned fac = fz_u8(in) % NSLOT;
    xsec *s = &M.sec[fac];
    size_t off = fz_u16(in) % (s->size + 2), n = fz_u16(in) % (s->size + 2), got = 0x0bad, k = 0;
    int state = fz_sec_state(s->open, s->depth);
    const fz_sec_cell *c = &rows[FZ_SOP_READ_AT]->cell[state];
    sm_status want = c->st, st;
    fz_calls c0, c1, own = { 0 };

    if (want == SM_OK && off > s->size)
        want = SM_E_INVAL;
    if (want == SM_OK)
        k = n < s->size - off ? n : s->size - off;
    FZ_CHECK(!c->waits, "read_at: a cell that waits, with no other thread");
    memset(buf, 0xa5, maxs + 1);
    fz_calls_now(c0);
    st = sm_secret_read_at(s->h, off, buf, n, &got);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    fz_trace("read_at %s off %zu n %zu: %s got %zu", factory_name(fac), off, n, fz_st(st), got);
    FZ_CHECK(st == want, "read_at %s: %s, want %s", factory_name(fac), fz_st(st), fz_st(want));
    if (st != SM_OK) {
        FZ_CHECK(got == 0x0bad, "a refused read_at wrote *got");
        check_calls("read_at", own, NULL);
        return;
    }
    FZ_CHECK(got == k, "read_at got %zu, model %zu", got, k);
    if (!s->known && k > 0 && off == 0 && k == s->size) {
        memcpy(s->want, buf, k);
        s->known = true;
    }
    FZ_CHECK(!s->known || memcmp(buf, s->want + off, k) == 0, "read_at: bytes differ");
    for (size_t i = k; i <= maxs; i++)
        FZ_CHECK(buf[i] == 0xa5, "read_at wrote past its %zu bytes", k);
    if (k == 0 || c->window == 0) {
        check_calls("read_at", own, NULL);
    } else if (c->window == 2) {
        check_calls("read_at", own, calls_row("with_bytes", fac, s->size));
        if (fac == FACT_ENCRYPTED)
            M.made++; /* the window it opened and shut */
    }
}

static void op_close(fz_in *in)
{
    unsigned fac = fz_u8(in) % NSLOT;
    xsec *s = &M.sec[fac];
    sm_status want, st;
    int next;
    fz_calls c0, c1, own = { 0 };

    fz_sec_own_close(rows[FZ_SOP_CLOSE], fz_sec_state(s->open, s->depth), &want, &next);
    fz_calls_now(c0);
    st = sm_secret_close(s->h);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    fz_trace("close %s: %s", factory_name(fac), fz_st(st));
    FZ_CHECK(st == want, "close %s: %s, want %s", factory_name(fac), fz_st(st), fz_st(want));
    check_calls("close", own, st == SM_OK ? calls_row("close", fac, s->size) : NULL);
    s->open = next != FZ_SEC_CLOSED;
    /*
     * Its pages are gone (nothing has mapped anything since), or pooled: read-only and
     * zero (spec/layout.md, "The pool"); or for the compact secret shut: its slab stays,
     * with the page PROT_NONE now that no access holds it.
     */
    if (st == SM_OK && s->addr != NULL) {
        fz_prot p = fz_probe(s->addr);

        FZ_CHECK(p == FZ_PROT_NONE || (p == FZ_PROT_READ && fac != FACT_COMPACT),
                 "%s: pages still open after close", factory_name(fac));
        for (size_t i = 0; p == FZ_PROT_READ && i < s->size; i++)
            FZ_CHECK(s->addr[i] == 0, "%s: byte %zu left in a pooled page", factory_name(fac), i);
    }
}

static void op_query(fz_in *in)
{
    unsigned fac = fz_u8(in) % NSLOT;
    xsec *s = &M.sec[fac];
    fz_calls own;

    fz_trace("size/is_closed %s", factory_name(fac));
    fz_sec_query(rows, s->h, fz_sec_state(s->open, s->depth), s->size, own);
    check_calls("size", own, NULL);
}

static void run_op(fz_in *in, uint8_t code)
{
    switch (code) {
    case 0:
        op_new(in);
        break;
    case 1:
    case 2:
        op_enter(in, code == 2);
        break;
    case 4:
        op_read_windows();
        break;
    case 5:
        op_read_at(in);
        break;
    case 6:
        op_close(in);
        break;
    case 7:
        op_query(in);
        break;
    case 8:
        M.hooks = fz_u8(in) & 7;
        fz_trace("hooks %u", M.hooks);
        break;
    default:
        break; /* a leave outside any access, or unused */
    }
}

/* ---- entry points ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init(NULL);
    page = sm_page_size();
    maxs = 3 * page;
    FZ_CHECK((buf = malloc(maxs + 1)) != NULL, "out of memory");
    for (unsigned i = 0; i < NSLOT; i++)
        FZ_CHECK((M.sec[i].want = malloc(maxs)) != NULL, "out of memory");
    fz_sec_rows_find(rows);
    /* A row that is missing is not checked (calls.h): these must all be there. */
    for (size_t k = 0; k < sizeof compact_rows / sizeof compact_rows[0]; k++) {
        fz_calls want;

        FZ_CHECK(fz_calls_of(compact_rows[k], want), "spec/syscalls.tsv has no row %s",
                 compact_rows[k]);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size, 0 };
    fz_counts c;

    fz_begin();
    for (unsigned i = 0; i < NSLOT; i++) {
        M.sec[i].h.id = 0;
        M.sec[i].open = false;
        M.sec[i].size = 0;
        M.sec[i].depth = 0;
        M.sec[i].addr = NULL;
    }
    M.depth = M.ops = M.hooks = M.compact_slabs = 0; /* fz_begin's purge unmapped the slabs */
    M.rng_keyed = false;
    fz_counts_get(&c);
    M.base_bytes = c.bytes;
    while (fz_more(&in) && M.ops++ < MAX_OPS) {
        rebase();
        run_op(&in, fz_u8(&in) & 15);
        check_all();
    }
    /* Close what is left; the counters come back to where the input started. */
    M.hooks = 0;
    for (unsigned i = 0; i < NSLOT; i++)
        if (M.sec[i].open)
            FZ_CHECK(sm_secret_close(M.sec[i].h) == SM_OK, "closing the %s secret",
                     factory_name(i));
    fz_counts_get(&c);
    FZ_CHECK(c.live[SMI_KIND_SECRET] == 0, "secrets remain alive");
    FZ_CHECK(c.bytes == M.base_bytes + compact_bytes() + (fz_coffer_exists() ? fz_coffer_bytes : 0),
             "%llu bytes still counted, want %llu", (unsigned long long)c.bytes,
             (unsigned long long)M.base_bytes);
    return 0;
}
