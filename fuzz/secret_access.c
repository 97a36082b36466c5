/* SPDX-License-Identifier: ISC */
/*
 * secret_access: nested and interleaved accesses and closes over one secret of each
 * factory, with the depth of the accesses driven by the input, every result compared
 * with spec/secret-states.tsv. Any divergence aborts.
 *
 * Target functions: sm_secret_new, sm_secret_random, sm_secret_with_bytes,
 * sm_secret_try_with_bytes, sm_secret_read_at, sm_secret_size, sm_secret_is_closed,
 * sm_secret_close; sm_factory_protected, sm_factory_guarded, sm_factory_encrypted and a
 * custom factory (the example of tests/factory, wrapped so that its hooks can act).
 *
 * The model. Four slots, one per factory, each holding at most one secret at a time (a
 * closed one can be made again). An access's callback does not return until the input
 * says so: the operations between an "enter" and its "leave" run inside the window, so
 * accesses nest and interleave across the four secrets as deep as the input goes (up to
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
 * Input: operations, one byte each (its low 4 bits pick one) and its arguments:
 *   0 new (slot, random?, size, bytes)   1 enter with_bytes (slot)   2 enter try (slot)
 *   3 leave (fn's status)                4 read every window          5 read_at (slot, off, n)
 *   6 close (slot)                       7 size and is_closed (slot)  8 arm hooks (mask)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_factory.h"
#include "fuzz_tables.h"
#include "harness.h"

enum { FAC_PROTECTED, FAC_GUARDED, FAC_ENCRYPTED, FAC_CUSTOM, NFAC };
#define MAX_OPS 256
#define MAX_DEPTH 12

typedef unsigned long fz_calls[SM_OS_FN_COUNT];

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
    xsec     sec[NFAC];
    frame    stack[MAX_DEPTH];
    unsigned depth, ops;
    unsigned hooks;      /* HOOK_* of the custom factory armed by the input */
    bool     rng_keyed;  /* the canary generator has its key (see check_calls) */
    uint64_t base_bytes, alloc_base, made;
    bool     coffer_base;
} M;

enum { HOOK_OPEN = 1, HOOK_SHUT = 2, HOOK_DESTROY = 4 };

static const char *const fac_names[NFAC] = { "protected", "guarded", "encrypted", "custom" };
static size_t page, maxs;
static uint8_t *buf;

/* ---- the table ---- */

enum { S_WITH, S_TRY, S_READ_AT, S_CLOSE, S_SIZE, S_IS_CLOSED, S_COUNT };
static const char *const row_names[S_COUNT] = {
    "with_bytes", "try_with_bytes", "read_at", "close", "size", "is_closed",
};
static const fz_sec_row *rows[S_COUNT];

static int state_of(const xsec *s)
{
    if (!s->open)
        return FZ_SEC_CLOSED;
    return s->depth > 0 ? FZ_SEC_OPEN_ACCESSED : FZ_SEC_OPEN_IDLE;
}

/* ---- OS calls (spec/syscalls.tsv) ---- */

static void calls_now(fz_calls c)
{
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        c[fn] = sm_os_fault_calls((sm_os_fn)fn);
}

static void calls_add(fz_calls acc, const fz_calls from, const fz_calls to)
{
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        acc[fn] += to[fn] - from[fn];
}

/*
 * own must be the calls of syscalls.tsv's rows for op (every function it calls is
 * listed), or none when op is NULL. The canary generator draws its key at its first use
 * after the per-input purge (src/rng.c): one getrandom call the rows do not count.
 */
static void check_calls(const char *what, const fz_calls own, const char *op)
{
    fz_calls want = { 0 };
    bool any = op == NULL;

    for (size_t i = 0; op != NULL && i < sizeof fz_sys_table / sizeof fz_sys_table[0]; i++) {
        if (strcmp(fz_sys_table[i].op, op) != 0)
            continue;
        any = true;
        for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
            if (strcmp(fz_sys_table[i].fn, sm_os_fn_name((sm_os_fn)fn)) == 0)
                want[fn] = fz_sys_table[i].calls;
    }
    if (!any)
        return;
    if (!M.rng_keyed && own[SM_OS_GETRANDOM] == want[SM_OS_GETRANDOM] + 1) {
        want[SM_OS_GETRANDOM]++;
        M.rng_keyed = true;
    }
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        FZ_CHECK(own[fn] == want[fn], "%s: %lu calls of %s, want %lu (%s)", what, own[fn],
                 sm_os_fn_name((sm_os_fn)fn), want[fn], op != NULL ? op : "no OS call");
}

static const char *row_of(const char *op, unsigned fac)
{
    static char row[48];

    snprintf(row, sizeof row, "secret.%s.%s", op, fac_names[fac]);
    return row;
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
        probe_cells(FAC_CUSTOM, FZ_SEC_WINDOW_CHANGING, "make_readable");
    return example_factory()->make_readable(NULL, state, bytes);
}

/* The last access is leaving: the window is being shut. */
static sm_status hook_shut(void *ctx, void *state)
{
    (void)ctx;
    if (M.hooks & HOOK_SHUT)
        probe_cells(FAC_CUSTOM, FZ_SEC_WINDOW_CHANGING, "make_unreadable");
    return example_factory()->make_unreadable(NULL, state);
}

/* Close has begun and is destroying the storage. */
static sm_status hook_destroy(void *ctx, void *state)
{
    (void)ctx;
    if (M.hooks & HOOK_DESTROY)
        probe_cells(FAC_CUSTOM, FZ_SEC_CLOSING, "destroy");
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
    switch (fac) {
    case FAC_PROTECTED:
        return sm_factory_protected();
    case FAC_GUARDED:
        return sm_factory_guarded();
    case FAC_ENCRYPTED:
        return sm_factory_encrypted();
    default:
        return &probing_factory;
    }
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

    for (unsigned r = 0; r < S_COUNT; r++) {
        const fz_sec_cell *c = &rows[r]->cell[col];

        if (c->waits)
            continue;
        switch (r) {
        case S_WITH:
            st = sm_secret_with_bytes(s->h, never_called, NULL);
            break;
        case S_TRY:
            st = sm_secret_try_with_bytes(s->h, never_called, NULL);
            break;
        case S_READ_AT:
            st = sm_secret_read_at(s->h, 0, buf, 1, &got);
            break;
        case S_CLOSE:
            st = sm_secret_close(s->h);
            break;
        case S_SIZE:
            st = sm_secret_size(s->h) == s->size ? SM_OK
                 : sm_secret_size(s->h) == 0     ? SM_E_STATE
                                                 : SM_E_SYS;
            break;
        default:
            st = sm_secret_is_closed(s->h) ? SM_E_STATE : SM_OK;
            break;
        }
        FZ_CHECK(st == c->st, "in %s of the %s secret: %s gave %s, the table says %s", where,
                 fac_names[fac], row_names[r], fz_st(st), fz_st(c->st));
    }
    /* The table's CLOSING column is a state the library reports; WINDOW-CHANGING is not. */
    if (col == FZ_SEC_CLOSING)
        FZ_CHECK((int)smi_secret_state(s->h.id) == FZ_SEC_CLOSING, "in %s: state %d", where,
                 (int)smi_secret_state(s->h.id));
    FZ_CHECK(got == 0x0bad, "a refused read_at wrote *got");
    fz_trace("  probes in %s of the %s secret", where, fac_names[fac]);
}

/* ---- checks ---- */

static uint64_t bytes_of(const xsec *s, unsigned fac)
{
    if (!s->open)
        return 0;
    switch (fac) {
    case FAC_PROTECTED:
        return (s->size + page - 1) & ~(uint64_t)(page - 1);
    case FAC_GUARDED:
        return fz_region_bytes(s->size);
    case FAC_ENCRYPTED:
        return s->depth > 0 ? fz_region_bytes(s->size) : 0; /* its window */
    default:
        return 0;
    }
}

/* One window of the stack: the model's bytes, read-only, in its factory's layout. */
static void check_window(const frame *w)
{
    xsec *s = w->s;
    unsigned fac = (unsigned)(s - M.sec);
    fz_prot a, b;

    if (fac == FAC_GUARDED || fac == FAC_ENCRYPTED) {
        fz_check_layout(w->bytes, s->size, false, fac_names[fac]);
    } else {
        a = fz_probe(w->bytes);
        b = fz_probe(w->bytes + s->size - 1);
        FZ_CHECK(a == FZ_PROT_READ && b == FZ_PROT_READ, "%s window: %s and %s", fac_names[fac],
                 fz_prot_name(a), fz_prot_name(b));
    }
    if (!s->known) {
        memcpy(s->want, w->bytes, s->size);
        s->known = true;
    }
    FZ_CHECK(memcmp(w->bytes, s->want, s->size) == 0, "%s window: bytes differ",
             fac_names[fac]);
}

static void check_all(void)
{
    uint64_t bytes = M.base_bytes, made = M.made, live = 0;
    bool coffer = fz_coffer_exists();
    fz_counts c;

    for (unsigned i = 0; i < NFAC; i++) {
        xsec *s = &M.sec[i];
        int state = state_of(s);

        FZ_CHECK(sm_secret_size(s->h) == (rows[S_SIZE]->cell[state].st == SM_OK ? s->size : 0),
                 "%s: size %zu", fac_names[i], sm_secret_size(s->h));
        FZ_CHECK(sm_secret_is_closed(s->h) == (rows[S_IS_CLOSED]->cell[state].st != SM_OK),
                 "%s: is_closed", fac_names[i]);
        FZ_CHECK((int)smi_secret_state(s->h.id) == state, "%s: state %d, model %d", fac_names[i],
                 (int)smi_secret_state(s->h.id), state);
        if (s->open && s->addr != NULL && i != FAC_ENCRYPTED) {
            fz_prot want = s->depth > 0 ? FZ_PROT_READ : FZ_PROT_NONE, got = fz_probe(s->addr);

            FZ_CHECK(got == want, "%s: pages are %s, want %s", fac_names[i], fz_prot_name(got),
                     fz_prot_name(want));
        }
        live += s->open;
        bytes += bytes_of(s, i);
    }
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
    unsigned fac = fz_u8(in) % NFAC;
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
    calls_now(c0);
    st = random ? sm_secret_random(factory_of(fac), size, &out)
                : sm_secret_new(factory_of(fac), buf, size, &out);
    calls_now(c1);
    fz_trace("%s %s %zu: %s", random ? "random" : "new", fac_names[fac], size, fz_st(st));
    FZ_CHECK(st == SM_OK, "%s secret of %zu: %s", fac_names[fac], size, fz_st(st));
    for (size_t i = 0; !random && i < size; i++)
        FZ_CHECK(buf[i] == 0, "new did not wipe its source");
    if (fac != FAC_ENCRYPTED || coffer) { /* a first seal also makes the enclave key */
        calls_add(own, c0, c1);
        check_calls("new", own, row_of(random ? "random" : "new", fac));
    }
    s->h = out;
    s->open = true;
    s->size = size;
    s->known = !random;
    s->depth = 0;
    s->addr = NULL;
    if (fac != FAC_CUSTOM)
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

    calls_now(a->entered);
    FZ_CHECK(!a->called && len == s->size, "%s: fn called twice, or with %zu bytes",
             fac_names[fac], len);
    a->called = true;
    if (s->depth == 0 && fac == FAC_ENCRYPTED)
        M.made++; /* each window is a guarded region made */
    s->depth++;
    s->addr = bytes;
    M.stack[M.depth].s = s;
    M.stack[M.depth].bytes = bytes;
    M.depth++;
    check_window(&M.stack[M.depth - 1]);
    check_all();
    fz_trace("  inside %s (depth %u)", fac_names[fac], M.depth);
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
    calls_now(a->leaving);
    fz_trace("  leaving %s: %s", fac_names[fac], fz_st(ret));
    return ret;
}

static void op_enter(fz_in *in, bool try)
{
    const char *what = try ? "try_with_bytes" : "with_bytes";
    unsigned fac = fz_u8(in) % NFAC;
    xsec *s = &M.sec[fac];
    access a = { .s = s, .in = in };
    int state = state_of(s);
    const fz_sec_cell *c = &rows[try ? S_TRY : S_WITH]->cell[state];
    fz_calls end, own = { 0 };
    sm_status st;

    if (M.depth >= MAX_DEPTH)
        return;
    FZ_CHECK(!c->waits, "%s: a cell that waits, with no other thread", what);
    calls_now(a.start);
    st = try ? sm_secret_try_with_bytes(s->h, access_fn, &a)
             : sm_secret_with_bytes(s->h, access_fn, &a);
    calls_now(end);
    fz_trace("%s %s: %s", what, fac_names[fac], fz_st(st));
    if (!a.called) {
        FZ_CHECK(c->st != SM_OK && st == c->st, "%s %s: %s without fn, the table says %s", what,
                 fac_names[fac], fz_st(st), fz_st(c->st));
        calls_add(own, a.start, end);
        check_calls(what, own, NULL);
        return;
    }
    FZ_CHECK(c->st == SM_OK, "%s %s: fn called, the table says %s", what, fac_names[fac],
             fz_st(c->st));
    /* fn's status (a leave chooses it; the input's end is SM_OK) comes back as is. */
    FZ_CHECK(st == SM_OK || st == SM_E_AUTH, "%s %s: %s", what, fac_names[fac], fz_st(st));
    calls_add(own, a.start, a.entered);
    calls_add(own, a.leaving, end);
    if (c->window == 0)
        check_calls(what, own, NULL);
    else if (c->window == 2)
        check_calls(what, own, row_of("with_bytes", fac));
    /*
     * A shut encrypted window is unmapped (nothing has mapped anything since); its
     * address may be another mapping's from the next operation on.
     */
    if (fac == FAC_ENCRYPTED && s->depth == 0) {
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
    unsigned fac = fz_u8(in) % NFAC;
    xsec *s = &M.sec[fac];
    size_t off = fz_u16(in) % (s->size + 2), n = fz_u16(in) % (s->size + 2), got = 0x0bad, k = 0;
    int state = state_of(s);
    const fz_sec_cell *c = &rows[S_READ_AT]->cell[state];
    sm_status want = c->st, st;
    fz_calls c0, c1, own = { 0 };

    if (want == SM_OK && off > s->size)
        want = SM_E_INVAL;
    if (want == SM_OK)
        k = n < s->size - off ? n : s->size - off;
    FZ_CHECK(!c->waits, "read_at: a cell that waits, with no other thread");
    memset(buf, 0xa5, maxs + 1);
    calls_now(c0);
    st = sm_secret_read_at(s->h, off, buf, n, &got);
    calls_now(c1);
    calls_add(own, c0, c1);
    fz_trace("read_at %s off %zu n %zu: %s got %zu", fac_names[fac], off, n, fz_st(st), got);
    FZ_CHECK(st == want, "read_at %s: %s, want %s", fac_names[fac], fz_st(st), fz_st(want));
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
        check_calls("read_at", own, row_of("with_bytes", fac));
        if (fac == FAC_ENCRYPTED)
            M.made++; /* the window it opened and shut */
    }
}

static void op_close(fz_in *in)
{
    unsigned fac = fz_u8(in) % NFAC;
    xsec *s = &M.sec[fac];
    int state = state_of(s);
    const fz_sec_cell *c = &rows[S_CLOSE]->cell[state];
    sm_status want = c->st, st;
    int next = c->next;
    fz_calls c0, c1, own = { 0 };

    /* The cell is another thread's close; this thread's own accesses are in flight. */
    if (state == FZ_SEC_OPEN_ACCESSED) {
        want = SM_E_STATE;
        next = state;
    } else {
        FZ_CHECK(!c->waits, "close: a cell that waits, with no other thread");
    }
    calls_now(c0);
    st = sm_secret_close(s->h);
    calls_now(c1);
    calls_add(own, c0, c1);
    fz_trace("close %s: %s", fac_names[fac], fz_st(st));
    FZ_CHECK(st == want, "close %s: %s, want %s", fac_names[fac], fz_st(st), fz_st(want));
    check_calls("close", own, st == SM_OK ? row_of("close", fac) : NULL);
    s->open = next != FZ_SEC_CLOSED;
    /* Its pages are gone (nothing has mapped anything since). */
    if (st == SM_OK && s->addr != NULL)
        FZ_CHECK(fz_probe(s->addr) == FZ_PROT_NONE, "%s: pages still mapped after close",
                 fac_names[fac]);
}

static void op_query(fz_in *in)
{
    unsigned fac = fz_u8(in) % NFAC;
    xsec *s = &M.sec[fac];
    int state = state_of(s);
    fz_calls c0, c1, own = { 0 };
    size_t n;
    bool closed;

    calls_now(c0);
    n = sm_secret_size(s->h);
    closed = sm_secret_is_closed(s->h);
    calls_now(c1);
    calls_add(own, c0, c1);
    fz_trace("size %s: %zu, closed %d", fac_names[fac], n, closed);
    FZ_CHECK(n == (rows[S_SIZE]->cell[state].st == SM_OK ? s->size : 0), "size %zu", n);
    FZ_CHECK(closed == (rows[S_IS_CLOSED]->cell[state].st != SM_OK), "is_closed %d", closed);
    FZ_CHECK((int)smi_secret_state(s->h.id) == rows[S_SIZE]->cell[state].next, "state after size");
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
    for (unsigned i = 0; i < NFAC; i++)
        FZ_CHECK((M.sec[i].want = malloc(maxs)) != NULL, "out of memory");
    for (unsigned r = 0; r < S_COUNT; r++) {
        for (size_t i = 0; i < sizeof fz_sec_table / sizeof fz_sec_table[0]; i++)
            if (strcmp(fz_sec_table[i].op, row_names[r]) == 0)
                rows[r] = &fz_sec_table[i];
        FZ_CHECK(rows[r] != NULL, "spec/secret-states.tsv has no row %s", row_names[r]);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size, 0 };
    fz_counts c;

    fz_begin();
    for (unsigned i = 0; i < NFAC; i++) {
        M.sec[i].h.id = 0;
        M.sec[i].open = false;
        M.sec[i].size = 0;
        M.sec[i].depth = 0;
        M.sec[i].addr = NULL;
    }
    M.depth = M.ops = M.hooks = 0;
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
    for (unsigned i = 0; i < NFAC; i++)
        if (M.sec[i].open)
            FZ_CHECK(sm_secret_close(M.sec[i].h) == SM_OK, "closing the %s secret", fac_names[i]);
    fz_counts_get(&c);
    FZ_CHECK(c.live[SMI_KIND_SECRET] == 0, "secrets remain alive");
    FZ_CHECK(c.bytes == M.base_bytes + (fz_coffer_exists() ? fz_coffer_bytes : 0),
             "%llu bytes still counted, want %llu", (unsigned long long)c.bytes,
             (unsigned long long)M.base_bytes);
    return 0;
}
