/* SPDX-License-Identifier: ISC */
/*
 * Secrets, as one conformance suite run over every factory in the table below: the
 * library's, and the example custom one (tests/factory/), which is written against the
 * public headers only. The access and close protocol is checked cell by cell from
 * spec/secret-states.tsv; the rest is Asherah's test matrix in spirit: closed and double
 * close, sizes 0 and 2^62, a lowered RLIMIT_MEMLOCK, counters before and after, purge,
 * audit and fork. Fault injection at every OS call is test_faults.c's.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <valgrind/valgrind.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "example_factory.h"
#include "helpers.h"

typedef struct fac {
    const char *name;
    const sm_factory *(*get)(void);
    bool counted;         /* its pages count in allocations_total and bytes_(un)locked */
    bool follows_policy;  /* SM_LOCK_BEST_EFFORT lets it go on unlocked */
    bool canary;          /* a guarded region: canary checked at close, purge, audit */
    int  access_mprotects; /* mprotect calls of one access alone; -1: not mprotect-based */
    bool mapped_at_rest;  /* the window's pages stay mapped (PROT_NONE) between accesses;
                             the encrypted factory unmaps them and keeps ciphertext only */
} fac;

/* Every factory the suite runs over: one conformance suite for all four. */
static const fac factories[] = {
    { "protected", sm_factory_protected, true, true, false, 2, true },
    { "guarded", sm_factory_guarded, true, true, true, 2, true },
    { "custom", example_factory, false, false, false, 2, true },
    { "encrypted", sm_factory_encrypted, true, true, true, -1, false },
};
#define NFAC (sizeof factories / sizeof factories[0])
#define LEN 100

static const char *const state_names[] = {
    "OPEN-IDLE", "OPEN-ACCESSED", "CLOSING", "CLOSED", "WINDOW-CHANGING",
};

/* ---- helpers ---- */

static void pattern(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + 7 * i + 1);
}

typedef struct expect {
    uint8_t bytes[4096];
    size_t  n;
} expect;

static void expect_of(expect *e, size_t n, uint8_t seed)
{
    e->n = n;
    pattern(e->bytes, n, seed);
}

/*
 * The enclave key is made at the first seal and kept for the life of the process: make
 * it before a test measures counters, so that the encrypted factory's first secret
 * does not count it.
 */
static void warm_key(void)
{
    sm_enclave e;
    uint8_t x = 1;

    cr_assert_eq(sm_enclave_new(&x, 1, &e), SM_OK);
    cr_assert_eq(sm_enclave_destroy(e), SM_OK);
}

static sm_secret make_secret(const sm_factory *f, size_t n, uint8_t seed)
{
    uint8_t src[4096];
    sm_secret s = { 0 };

    cr_assert_leq(n, sizeof src);
    pattern(src, n, seed);
    cr_assert_eq(sm_secret_new(f, src, n, &s), SM_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(src[i], 0, "the source is wiped");
    return s;
}

/* The access callback of the suite: SM_OK only for exactly the expected bytes. */
static sm_status check_fn(const uint8_t *b, size_t n, void *ctx)
{
    const expect *e = ctx;

    return n == e->n && memcmp(b, e->bytes, n) == 0 ? SM_OK : SM_E_AUTH;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Up to 5 s for a flag, or for a secret's state: never a reason to fail a correct build. */
static bool eventually(atomic_int *flag)
{
    for (int i = 0; i < 5000 && !atomic_load(flag); i++)
        sleep_ms(1);
    return atomic_load(flag) != 0;
}

static bool eventually_state(sm_secret s, smi_sec_state want)
{
    for (int i = 0; i < 5000 && smi_secret_state(s.id) != want; i++)
        sleep_ms(1);
    return smi_secret_state(s.id) == want;
}

/* sm_stats has padding: compare the fields. */
static bool same_stats(const sm_stats *a, const sm_stats *b)
{
    return a->buffers_live == b->buffers_live && a->enclaves_live == b->enclaves_live &&
           a->streams_live == b->streams_live && a->secrets_live == b->secrets_live &&
           a->allocations_total == b->allocations_total && a->bytes_locked == b->bytes_locked &&
           a->bytes_unlocked == b->bytes_unlocked && a->secretmem == b->secretmem;
}

/* Run an operation of the table; queries report SM_OK or SM_E_STATE as the table says. */
static sm_status run_op(const char *op, sm_secret s, const expect *e)
{
    if (!strcmp(op, "with_bytes"))
        return sm_secret_with_bytes(s, check_fn, (void *)(uintptr_t)e);
    if (!strcmp(op, "try_with_bytes"))
        return sm_secret_try_with_bytes(s, check_fn, (void *)(uintptr_t)e);
    if (!strcmp(op, "read_at")) {
        uint8_t buf[4096];
        size_t got = 12345;
        sm_status st = sm_secret_read_at(s, 1, buf, sizeof buf, &got);

        if (st != SM_OK)
            return got == 12345 ? st : SM_E_INVAL; /* *got untouched on error */
        return got == e->n - 1 && memcmp(buf, e->bytes + 1, got) == 0 ? SM_OK : SM_E_AUTH;
    }
    if (!strcmp(op, "close"))
        return sm_secret_close(s);
    if (!strcmp(op, "size")) {
        size_t n = sm_secret_size(s);

        return n == e->n ? SM_OK : n == 0 ? SM_E_STATE : SM_E_INVAL;
    }
    if (!strcmp(op, "is_closed"))
        return sm_secret_is_closed(s) ? SM_E_STATE : SM_OK;
    return SM_E_UNSUPPORTED; /* an operation the suite does not know: fails the cell */
}

/* An operation on a thread of its own. No Criterion assertion runs on these threads. */
typedef struct oprun {
    const char   *op;
    sm_secret     s;
    const expect *e;
    sm_status     st;
    atomic_int    done;
    pthread_t     t;
} oprun;

static void *op_thread(void *arg)
{
    oprun *r = arg;

    r->st = run_op(r->op, r->s, r->e);
    atomic_store(&r->done, 1);
    return NULL;
}

static void op_start(oprun *r, const char *op, sm_secret s, const expect *e)
{
    r->op = op;
    r->s = s;
    r->e = e;
    atomic_store(&r->done, 0);
    cr_assert_eq(pthread_create(&r->t, NULL, op_thread, r), 0);
}

static sm_status op_join(oprun *r)
{
    pthread_join(r->t, NULL);
    return r->st;
}

/* OS calls of one access alone, for "window 2" cells. */
static unsigned long one_access_calls(const sm_factory *f)
{
    expect e;
    sm_secret s = make_secret(f, LEN, 9);
    unsigned long n;

    expect_of(&e, LEN, 9);
    sm_os_fault_reset();
    cr_assert_eq(sm_secret_with_bytes(s, check_fn, &e), SM_OK);
    n = os_calls();
    cr_assert_eq(sm_secret_close(s), SM_OK);
    return n;
}

/* ---- the state table ---- */

typedef struct cell {
    sm_status status;
    int       state;
    int       window; /* -1: not checked */
    bool      waits;
} cell;

static cell parse_cell(const char *text)
{
    char st[32], state[32], window[8], waits[8] = "";
    cell c = { 0 };
    int n = sscanf(text, "%31s %31s %7s %7s", st, state, window, waits);

    cr_assert(n == 3 || n == 4, "bad cell '%s'", text);
    c.status = status_from_name(st);
    c.state = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(state, state_names[i]))
            c.state = i;
    cr_assert(c.state >= 0 && c.state < 4, "bad state in '%s'", text);
    c.window = !strcmp(window, "-") ? -1 : atoi(window);
    c.waits = n == 4;
    cr_assert(!c.waits || !strcmp(waits, "waits"), "bad flag in '%s'", text);
    return c;
}

/* An operation run from inside an access (OPEN-ACCESSED), or while a close waits (CLOSING). */
typedef struct nested {
    const char   *op;
    sm_secret     s;
    const expect *e;
    int           col;
    sm_status     got;
    unsigned long calls;
    smi_sec_state after;
    bool          timing_ok; /* waited when it had to, returned when it had to */
    oprun         closer, helper;
} nested;

static sm_status outer_fn(const uint8_t *b, size_t n, void *ctx)
{
    nested *x = ctx;

    if (check_fn(b, n, (void *)(uintptr_t)x->e) != SM_OK)
        return SM_E_AUTH;
    if (x->col == SMI_SEC_CLOSING) {
        op_start(&x->closer, "close", x->s, x->e);
        if (!eventually_state(x->s, SMI_SEC_CLOSING))
            return SM_E_SYS;
    }
    x->timing_ok = true;
    if (!strcmp(x->op, "close")) {
        /* From another thread: this thread's own close would be refused (held). */
        op_start(&x->helper, "close", x->s, x->e);
        if (x->col == SMI_SEC_OPEN_ACCESSED) {
            x->timing_ok = eventually_state(x->s, SMI_SEC_CLOSING);
            sleep_ms(20);
            x->timing_ok &= !atomic_load(&x->helper.done); /* waits for this access */
        } else {
            /* A second close does not wait; if it did, it is joined after this access. */
            x->timing_ok = eventually(&x->helper.done);
            x->after = smi_secret_state(x->s.id);
        }
    } else {
        sm_os_fault_reset();
        x->got = run_op(x->op, x->s, x->e);
        x->calls = os_calls();
        x->after = smi_secret_state(x->s.id);
    }
    /* Whatever happened meanwhile, this access still reads the right bytes. */
    return check_fn(b, n, (void *)(uintptr_t)x->e);
}

static void run_cell(const sm_factory *f, const char *fname, const char *op, int col, cell want,
                     unsigned long access_calls)
{
    expect e;
    sm_secret s;
    sm_status got = SM_E_SYS;
    unsigned long calls = 0;
    smi_sec_state after;
    bool timing_ok = true;
    example_gate *g = NULL;

    expect_of(&e, LEN, 0x40);
    if (col == 4) {
        g = example_gate_new();
        f = example_gate_factory(g);
    }
    s = make_secret(f, LEN, 0x40);
    if (col == SMI_SEC_OPEN_IDLE || col == SMI_SEC_CLOSED) {
        if (col == SMI_SEC_CLOSED)
            cr_assert_eq(sm_secret_close(s), SM_OK);
        sm_os_fault_reset();
        got = run_op(op, s, &e);
        calls = os_calls();
        after = smi_secret_state(s.id);
    } else if (col == SMI_SEC_OPEN_ACCESSED || col == SMI_SEC_CLOSING) {
        nested x = { .op = op, .s = s, .e = &e, .col = col };

        cr_assert_eq(sm_secret_with_bytes(s, outer_fn, &x), SM_OK,
                     "%s/%s/%s: the outer access", fname, op, state_names[col]);
        if (!strcmp(op, "close")) {
            x.got = op_join(&x.helper);
            if (col == SMI_SEC_OPEN_ACCESSED)
                x.after = smi_secret_state(s.id);
        }
        if (col == SMI_SEC_CLOSING)
            cr_assert_eq(op_join(&x.closer), SM_OK, "%s/%s: the first close", fname, op);
        got = x.got;
        calls = x.calls;
        after = x.after;
        timing_ok = x.timing_ok;
    } else {
        /* WINDOW-CHANGING: thread a is stuck opening the window at the gate. */
        oprun a, b;

        op_start(&a, "with_bytes", s, &e);
        example_gate_wait_arrival(g);
        op_start(&b, op, s, &e);
        if (want.waits) {
            sleep_ms(20);
            timing_ok = !atomic_load(&b.done);
        } else {
            timing_ok = eventually(&b.done);
        }
        example_gate_open(g);
        cr_assert_eq(op_join(&a), SM_OK, "%s: the access that opens the window", op);
        got = op_join(&b);
        after = smi_secret_state(s.id);
    }
    cr_expect_eq(got, want.status, "%s/%s/%s: got %s, want %s", fname, op, state_names[col],
                 sm_status_str(got), sm_status_str(want.status));
    cr_expect_eq((int)after, want.state, "%s/%s/%s: state after %s, want %s", fname, op,
                 state_names[col], state_names[after], state_names[want.state]);
    cr_expect(timing_ok, "%s/%s/%s: %s", fname, op, state_names[col],
              want.waits ? "returned before what blocks it ended" : "waited");
    if (want.window == 2)
        cr_expect_eq(calls, access_calls, "%s/%s/%s: %lu OS calls, one access makes %lu",
                     fname, op, state_names[col], calls, access_calls);
    else if (want.window == 0)
        cr_expect_eq(calls, 0, "%s/%s/%s: %lu OS calls, want none", fname, op,
                     state_names[col], calls);
    if (!sm_secret_is_closed(s))
        cr_assert_eq(sm_secret_close(s), SM_OK);
    if (g != NULL)
        example_gate_free(g);
}

Test(secret, every_cell_of_the_state_table_over_every_factory, .timeout = 60)
{
    tsv_row *rows;
    size_t n = tsv_load("secret-states.tsv", &rows), cells = 0;

    cr_assert_eq(sm_init(NULL), SM_OK);
    for (size_t k = 0; k < NFAC; k++) {
        const sm_factory *f = factories[k].get();
        unsigned long c1 = one_access_calls(f);

        if (factories[k].access_mprotects >= 0)
            cr_assert_eq(c1, (unsigned long)factories[k].access_mprotects);
        for (size_t j = 0; j < n; j++) {
            cr_assert_eq(rows[j].nf, 6, "secret-states.tsv row %zu", j);
            for (int col = 0; col < 4; col++, cells++)
                run_cell(f, factories[k].name, rows[j].f[0], col, parse_cell(rows[j].f[1 + col]), c1);
        }
    }
    /* The transient column needs a factory that can be held mid-change: the gated example. */
    for (size_t j = 0; j < n; j++, cells++)
        run_cell(example_factory(), "custom-gated", rows[j].f[0], 4, parse_cell(rows[j].f[5]), 0);
    cr_assert_eq(cells, NFAC * 6 * 4 + 6);
    tsv_free(rows, n);
}

/* The core's decisions say the same as the table, for the states a view can describe. */
Test(secret, core_decisions_follow_the_table, .timeout = 60)
{
    static const smi_sec_view views[] = {
        { 0, 0, 0, 0 }, /* OPEN-IDLE */
        { 1, 0, 0, 1 }, /* OPEN-ACCESSED */
        { 1, 1, 0, 1 }, /* CLOSING */
        { 0, 0, 0, 0 }, /* CLOSED: the registry answers; unused */
        { 1, 0, 1, 0 }, /* WINDOW-CHANGING: the opener is counted, the window not yet open */
    };
    tsv_row *rows;
    size_t n = tsv_load("secret-states.tsv", &rows);

    for (int col = 0; col < 3; col++)
        cr_assert_eq((int)smi_sec_state_of(&views[col]), col);
    for (size_t j = 0; j < n; j++) {
        const char *op = rows[j].f[0];
        smi_sec_op sop = !strcmp(op, "try_with_bytes") ? SMI_SOP_TRY_ACCESS
                       : !strcmp(op, "close")          ? SMI_SOP_CLOSE
                       : !strcmp(op, "size") || !strcmp(op, "is_closed") ? SMI_SOP_QUERY
                                                       : SMI_SOP_ACCESS;

        for (int col = 0; col < 5; col++) {
            cell want = parse_cell(rows[j].f[1 + col]);
            smi_sec_action a;
            sm_status st;

            if (col == SMI_SEC_CLOSED)
                continue;
            a = smi_sec_decide(&views[col], sop);
            st = a == SMI_SACT_BUSY ? SM_E_BUSY : a == SMI_SACT_REFUSE ? SM_E_STATE : SM_OK;
            cr_expect_eq(a == SMI_SACT_WAIT, want.waits, "%s in %s: waits", op, state_names[col]);
            cr_expect_eq(st, want.status, "%s in %s", op, state_names[col]);
        }
    }
    tsv_free(rows, n);
    {
        smi_sec_view none = { 0, 0, 0, 1 }, two = { 2, 0, 0, 1 }, one = { 1, 1, 0, 1 };

        cr_assert_eq(smi_sec_decide(&none, SMI_SOP_LEAVE), SMI_SACT_CORRUPT);
        cr_assert_eq(smi_sec_decide(&two, SMI_SOP_LEAVE), SMI_SACT_DEPART);
        cr_assert_eq(smi_sec_decide(&one, SMI_SOP_LEAVE), SMI_SACT_SHUT);
        cr_assert_eq(smi_sec_decide(&none, SMI_SOP_ACCESS), SMI_SACT_JOIN,
                     "a window left open by a failed shut is joined, not reopened");
        cr_assert_eq(smi_sec_decide(&one, SMI_SOP_CLOSE_WAIT), SMI_SACT_WAIT);
        one.readers = 0;
        cr_assert_eq(smi_sec_decide(&one, SMI_SOP_CLOSE_WAIT), SMI_SACT_DESTROY);
    }
}

/* ---- one window, shared ---- */

typedef struct share {
    sm_secret     s;
    const expect *e;
    int           depth;
    sm_status     inner;
} share;

static void *reader_thread(void *arg)
{
    share *x = arg;
    uint8_t buf[LEN];
    size_t got;
    sm_status a = sm_secret_with_bytes(x->s, check_fn, (void *)(uintptr_t)x->e);
    sm_status b = sm_secret_read_at(x->s, 0, buf, sizeof buf, &got);
    sm_status c = sm_secret_try_with_bytes(x->s, check_fn, (void *)(uintptr_t)x->e);

    /* try may meet the lock held for bookkeeping; BUSY is then its answer. */
    if (a != SM_OK || b != SM_OK || got != LEN || memcmp(buf, x->e->bytes, LEN) != 0 ||
        (c != SM_OK && c != SM_E_BUSY))
        return (void *)1;
    return NULL;
}

static sm_status nest_fn(const uint8_t *b, size_t n, void *ctx)
{
    share *x = ctx;

    if (check_fn(b, n, (void *)(uintptr_t)x->e) != SM_OK)
        return SM_E_AUTH;
    if (x->depth < 3) {
        x->depth++;
        return sm_secret_with_bytes(x->s, nest_fn, x);
    }
    /* Three deep: now four threads join the same window and leave again. */
    {
        pthread_t t[4];
        void *r;
        sm_status st = SM_OK;

        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, reader_thread, x);
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], &r);
            if (r != NULL)
                st = SM_E_SYS;
        }
        return st;
    }
}

Test(secret, nested_and_concurrent_accesses_share_one_window, .timeout = 60)
{
    cr_assert_eq(sm_init(NULL), SM_OK);
    for (size_t k = 0; k < NFAC; k++) {
        const sm_factory *f = factories[k].get();
        unsigned long c1 = one_access_calls(f);
        expect e;
        share x = { .e = &e };

        expect_of(&e, LEN, 3);
        x.s = make_secret(f, LEN, 3);
        sm_os_fault_reset();
        cr_assert_eq(sm_secret_with_bytes(x.s, nest_fn, &x), SM_OK, "%s", factories[k].name);
        cr_expect_eq(os_calls(), c1, "%s: %lu OS calls for 4 nested and 12 concurrent "
                     "accesses, one access makes %lu", factories[k].name, os_calls(), c1);
        if (factories[k].access_mprotects >= 0)
            cr_expect_eq(sm_os_fault_calls(SM_OS_MPROTECT),
                         (unsigned long)factories[k].access_mprotects,
                         "%s: the protection changes on the first entry and the last exit only",
                         factories[k].name);
        cr_assert_eq(sm_secret_close(x.s), SM_OK);
    }
}

/* ---- what each access sees ---- */

static sm_status fail_with_auth(const uint8_t *b, size_t n, void *ctx)
{
    (void)b;
    (void)n;
    (void)ctx;
    return SM_E_AUTH;
}

typedef struct perms_seen {
    char     perms[5];
    uint8_t *at;
} perms_seen;

static sm_status perms_fn(const uint8_t *b, size_t n, void *ctx)
{
    perms_seen *p = ctx;
    char flags[256];
    size_t locked;

    (void)n;
    p->at = (uint8_t *)(uintptr_t)b;
    if (smaps_of(b, p->perms, flags, sizeof flags, &locked) != 0)
        return SM_E_SYS;
    return SM_OK;
}

Test(secret, unreadable_at_rest_read_only_inside_and_fn_status_returned, .timeout = 60)
{
    SKIP_WITHOUT_LINUX("no MADV_DONTDUMP or MADV_WIPEONFORK, whose flags this test reads in smaps");
    cr_assert_eq(sm_init(NULL), SM_OK);
    for (size_t k = 0; k < NFAC; k++) {
        const sm_factory *f = factories[k].get();
        sm_secret s = make_secret(f, LEN, 5);
        perms_seen p;
        char perms[5], flags[256];
        size_t locked;

        cr_assert_eq(sm_secret_with_bytes(s, perms_fn, &p), SM_OK);
        cr_expect_str_eq(p.perms, "r--p", "%s: read-only during the access", factories[k].name);
        if (!factories[k].mapped_at_rest) {
            /* Stronger than PROT_NONE: no plaintext page at all between accesses. */
            cr_assert_neq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0,
                          "%s: the window is unmapped at rest", factories[k].name);
            cr_assert_eq(sm_secret_with_bytes(s, fail_with_auth, NULL), SM_E_AUTH, "fn's status");
            cr_assert_eq(sm_secret_close(s), SM_OK);
            continue;
        }
        cr_assert_eq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0);
        cr_expect_str_eq(perms, "---p", "%s: PROT_NONE at rest", factories[k].name);
        if (SM_TEST_MLOCK_IS_REAL)
            cr_expect_gt(locked, 0, "%s: locked", factories[k].name);
        cr_expect(strstr(flags, "dd") != NULL, "%s: DONTDUMP (%s)", factories[k].name, flags);
        sm_os_fault_reset();
        cr_assert_eq(sm_secret_with_bytes(s, fail_with_auth, NULL), SM_E_AUTH, "fn's status");
        cr_assert_eq(sm_os_fault_calls(SM_OS_MPROTECT), 2, "and the window is shut again");
        cr_assert_eq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0);
        cr_expect_str_eq(perms, "---p");
        cr_assert_eq(sm_secret_close(s), SM_OK);
        cr_assert(unmapped_or_pooled(p.at), "unmapped (or pooled, for guarded)");
    }
}

static sm_status write_fn(const uint8_t *b, size_t n, void *ctx)
{
    (void)n;
    (void)ctx;
    ((volatile uint8_t *)(uintptr_t)b)[0] = 1;
    return SM_OK;
}

static void write_inside_child(void *arg)
{
    const fac *fa = arg;
    uint8_t src[LEN] = { 1 };
    sm_secret s;
    int devnull = open("/dev/null", O_WRONLY);

    dup2(devnull, 2);
    if (sm_secret_new(fa->get(), src, LEN, &s) != SM_OK)
        _exit(10);
    (void)!sm_secret_with_bytes(s, write_fn, NULL);
    _exit(11); /* the write did not fault */
}

Test(secret, a_write_inside_fn_faults, .timeout = 60)
{
    for (size_t k = 0; k < NFAC; k++)
        cr_expect_eq(in_child(write_inside_child, (void *)(uintptr_t)&factories[k]), 128 + SIGSEGV,
                     "%s: writing the bytes inside fn must fault", factories[k].name);
}

/* ---- read_at ---- */

Test(secret, read_at_is_a_reader, .timeout = 60)
{
    cr_assert_eq(sm_init(NULL), SM_OK);
    for (size_t k = 0; k < NFAC; k++) {
        const char *name = factories[k].name;
        sm_secret s = make_secret(factories[k].get(), LEN, 11);
        expect e;
        uint8_t buf[LEN + 10];
        size_t got = 777;

        expect_of(&e, LEN, 11);
        memset(buf, 0xee, sizeof buf);
        cr_assert_eq(sm_secret_read_at(s, 0, buf, 10, &got), SM_OK);
        cr_assert(got == 10 && !memcmp(buf, e.bytes, 10), "%s: head", name);
        cr_assert_eq(sm_secret_read_at(s, 40, buf, 20, &got), SM_OK);
        cr_assert(got == 20 && !memcmp(buf, e.bytes + 40, 20), "%s: middle", name);
        memset(buf, 0xee, sizeof buf);
        cr_assert_eq(sm_secret_read_at(s, 90, buf, sizeof buf, &got), SM_OK);
        cr_assert(got == 10 && !memcmp(buf, e.bytes + 90, 10), "%s: short at the end", name);
        cr_assert_eq(buf[10], 0xee, "%s: nothing past the end", name);
        sm_os_fault_reset();
        got = 777;
        cr_assert_eq(sm_secret_read_at(s, LEN, buf, 5, &got), SM_OK, "%s: off == size", name);
        cr_assert_eq(got, 0);
        cr_assert_eq(sm_secret_read_at(s, 3, NULL, 0, &got), SM_OK, "%s: n == 0", name);
        cr_assert_eq(got, 0);
        cr_assert_eq(os_calls(), 0, "%s: nothing to copy opens no window", name);
        got = 777;
        cr_assert_eq(sm_secret_read_at(s, LEN + 1, buf, 1, &got), SM_E_INVAL, "off > size");
        cr_assert_eq(sm_secret_read_at(s, SIZE_MAX, buf, 1, &got), SM_E_INVAL);
        cr_assert_eq(sm_secret_read_at(s, 0, NULL, 1, &got), SM_E_INVAL);
        cr_assert_eq(sm_secret_read_at(s, 0, buf, 1, NULL), SM_E_INVAL);
        cr_assert_eq(got, 777, "*got untouched on error");
        cr_assert_eq(sm_secret_close(s), SM_OK);
        cr_assert_eq(sm_secret_read_at(s, 0, buf, 1, &got), SM_E_STATE);
    }
}

/* ---- close ---- */

typedef struct gathering {
    sm_secret       s;
    const expect   *e;
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    int             inside, release;
} gathering;

static sm_status gather_fn(const uint8_t *b, size_t n, void *ctx)
{
    gathering *g = ctx;

    pthread_mutex_lock(&g->lock);
    g->inside++;
    pthread_cond_broadcast(&g->cond);
    while (!g->release)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    /* The close began long ago: these bytes must still be the secret's. */
    return check_fn(b, n, (void *)(uintptr_t)g->e);
}

static void *gather_thread(void *arg)
{
    gathering *g = arg;

    return (void *)(uintptr_t)sm_secret_with_bytes(g->s, gather_fn, g);
}

Test(secret, close_waits_for_eight_readers_and_refuses_new_ones, .timeout = 60)
{
    cr_assert_eq(sm_init(NULL), SM_OK);
    warm_key();
    for (size_t k = 0; k < NFAC; k++) {
        const char *name = factories[k].name;
        gathering g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        expect e;
        pthread_t t[8];
        oprun closer, second;
        perms_seen p;
        size_t got, pooled;
        uint8_t buf[4];
        sm_stats st0, st1;

        expect_of(&e, LEN, 21);
        g.e = &e;
        cr_assert_eq(sm_stats_get(&st0), SM_OK);
        pooled = pooled_regions();
        g.s = make_secret(factories[k].get(), LEN, 21);
        cr_assert_eq(sm_secret_with_bytes(g.s, perms_fn, &p), SM_OK);
        for (int i = 0; i < 8; i++)
            pthread_create(&t[i], NULL, gather_thread, &g);
        pthread_mutex_lock(&g.lock);
        while (g.inside < 8)
            pthread_cond_wait(&g.cond, &g.lock);
        pthread_mutex_unlock(&g.lock);
        op_start(&closer, "close", g.s, &e);
        cr_assert(eventually_state(g.s, SMI_SEC_CLOSING), "%s", name);
        cr_assert(sm_secret_is_closed(g.s), "%s: closed from the start of close", name);
        cr_assert_eq(sm_secret_size(g.s), 0);
        cr_assert_eq(sm_secret_with_bytes(g.s, check_fn, &e), SM_E_STATE, "%s: new access", name);
        cr_assert_eq(sm_secret_try_with_bytes(g.s, check_fn, &e), SM_E_STATE);
        cr_assert_eq(sm_secret_read_at(g.s, 0, buf, 4, &got), SM_E_STATE);
        op_start(&second, "close", g.s, &e);
        cr_assert(eventually(&second.done), "%s: a second close does not wait", name);
        cr_assert_eq(op_join(&second), SM_E_STATE, "%s: a second close", name);
        sleep_ms(20);
        cr_assert_not(atomic_load(&closer.done), "%s: close waits for the readers", name);
        pthread_mutex_lock(&g.lock);
        g.release = 1;
        pthread_cond_broadcast(&g.cond);
        pthread_mutex_unlock(&g.lock);
        for (int i = 0; i < 8; i++) {
            void *r;

            pthread_join(t[i], &r);
            cr_expect_eq((sm_status)(uintptr_t)r, SM_OK, "%s: reader %d", name, i);
        }
        cr_assert_eq(op_join(&closer), SM_OK, "%s", name);
        cr_assert(unmapped_or_pooled(p.at), "%s: unmapped (or pooled) when close returns", name);
        cr_assert_eq(sm_secret_close(g.s), SM_E_STATE, "%s: double close", name);
        cr_assert_eq(sm_stats_get(&st1), SM_OK);
        cr_assert_eq(st1.secrets_live, st0.secrets_live);
        cr_assert_eq(st1.bytes_locked - pooled_regions() * sm_page_size(),
                     st0.bytes_locked - pooled * sm_page_size());
    }
}

static sm_status close_self_fn(const uint8_t *b, size_t n, void *ctx)
{
    sm_secret *s = ctx;
    sm_status st = sm_secret_close(*s);

    (void)b;
    (void)n;
    return st == SM_E_STATE ? SM_OK : SM_E_SYS;
}

Test(secret, close_from_inside_its_own_access_is_refused, .timeout = 60)
{
    for (size_t k = 0; k < NFAC; k++) {
        sm_secret s = make_secret(factories[k].get(), LEN, 1);

        cr_assert_eq(sm_secret_with_bytes(s, close_self_fn, &s), SM_OK, "%s", factories[k].name);
        cr_assert_not(sm_secret_is_closed(s));
        cr_assert_eq(sm_secret_close(s), SM_OK);
    }
}

/* A failed final unmap: close fails, but only after the wipe; the secret is open, zeroed. */
Test(secret, close_returns_after_the_wipe, .timeout = 60)
{
    cr_assert_eq(sm_init(NULL), SM_OK);
    /* The encrypted factory's close would keep its mapping spare, not unmap it. */
    smi_spare_test_off(true);
    for (size_t k = 0; k < NFAC; k++) {
        sm_secret s = make_secret(factories[k].get(), LEN, 77);
        uint8_t buf[LEN], zero[LEN] = { 0 };
        size_t got;

        pool_fill(); /* or a guarded close scrubs into the pool and unmaps nothing */
        sm_os_fault_arm(SM_OS_MUNMAP, 1, ENOMEM, false);
        cr_assert_eq(sm_secret_close(s), SM_E_SYS, "%s", factories[k].name);
        sm_os_fault_reset();
        cr_assert_not(sm_secret_is_closed(s), "open again, so that close can be retried");
        cr_assert_eq(sm_secret_read_at(s, 0, buf, LEN, &got), SM_OK);
        if (factories[k].mapped_at_rest) {
            cr_assert(got == LEN && !memcmp(buf, zero, LEN), "%s: wiped before the unmap",
                      factories[k].name);
        } else {
            /* At rest there is only ciphertext: no plaintext to wipe, nothing lost. */
            expect e;

            expect_of(&e, LEN, 77);
            cr_assert(got == LEN && !memcmp(buf, e.bytes, LEN), "%s: intact",
                      factories[k].name);
        }
        cr_assert_eq(sm_secret_close(s), SM_OK);
    }
}

/* A refused shut leaves the window open; the next last access out shuts it. */
Test(secret, failed_shut_keeps_the_window_and_retries, .timeout = 60)
{
    cr_assert_eq(sm_init(NULL), SM_OK);
    for (size_t k = 0; k < NFAC; k++) {
        const char *name = factories[k].name;
        sm_secret s = make_secret(factories[k].get(), LEN, 8);
        expect e;
        perms_seen p;
        char perms[5], flags[256];
        size_t locked, got;
        uint8_t buf[LEN];

        expect_of(&e, LEN, 8);
        if (factories[k].access_mprotects < 0) {
            /* Not mprotect-based: see failed_unmap_of_the_encrypted_window_keeps_it. */
            cr_assert_eq(sm_secret_close(s), SM_OK);
            continue;
        }
        cr_assert_eq(sm_secret_with_bytes(s, perms_fn, &p), SM_OK);
        sm_os_fault_arm(SM_OS_MPROTECT, 2, EACCES, false);
        cr_assert_eq(sm_secret_with_bytes(s, check_fn, &e), SM_E_PROT, "%s", name);
        cr_assert_eq(sm_last_os_error(), EACCES);
        cr_assert_eq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0);
        cr_assert_str_eq(perms, "r--p", "%s: still readable", name);
        sm_os_fault_reset();
        cr_assert_eq(sm_secret_with_bytes(s, check_fn, &e), SM_OK);
        cr_assert_eq(sm_os_fault_calls(SM_OS_MPROTECT), 1, "%s: joined, then shut once", name);
        cr_assert_eq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0);
        cr_assert_str_eq(perms, "---p");
        sm_os_fault_arm(SM_OS_MPROTECT, 2, EACCES, false);
        cr_assert_eq(sm_secret_with_bytes(s, fail_with_auth, NULL), SM_E_AUTH,
                     "%s: fn's failure wins over the shut's", name);
        sm_os_fault_reset();
        cr_assert_eq(sm_secret_with_bytes(s, check_fn, &e), SM_OK);
        /* read_at wipes what it copied when the shut fails. */
        memset(buf, 0xee, sizeof buf);
        got = 777;
        sm_os_fault_arm(SM_OS_MPROTECT, 2, EACCES, false);
        cr_assert_eq(sm_secret_read_at(s, 0, buf, LEN, &got), SM_E_PROT);
        cr_assert_eq(got, 777);
        for (int i = 0; i < LEN; i++)
            cr_assert_eq(buf[i], 0, "%s: dst wiped", name);
        sm_os_fault_reset();
        cr_assert_eq(sm_secret_close(s), SM_OK, "%s: closes from an open window", name);
    }
}

/* ---- arguments, sizes, handles ---- */

Test(secret, bad_arguments_and_sizes, .timeout = 60)
{
    cr_assert_eq(sm_init(NULL), SM_OK);
    for (size_t k = 0; k < NFAC; k++) {
        const sm_factory *f = factories[k].get();
        const char *name = factories[k].name;
        uint8_t src[8] = { 1, 2, 3 };
        sm_secret s = { 0 };
        counters before, after;
        static const size_t bad[] = { 0, (size_t)1 << 62, ((size_t)1 << 62) + 1, SIZE_MAX };

        counters_get(&before);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            cr_assert_eq(sm_secret_new(f, src, bad[i], &s), SM_E_INVAL, "%s: size %zu", name, bad[i]);
            cr_assert_eq(sm_secret_random(f, bad[i], &s), SM_E_INVAL, "%s: size %zu", name, bad[i]);
        }
        /* The largest size allowed passes the checks and meets the OS's refusal. */
        cr_assert_eq(sm_secret_random(f, ((size_t)1 << 62) - 1, &s), SM_E_NOMEM, "%s", name);
        cr_assert_eq(sm_secret_new(NULL, src, 8, &s), SM_E_INVAL);
        cr_assert_eq(sm_secret_new(f, NULL, 8, &s), SM_E_INVAL);
        cr_assert_eq(sm_secret_new(f, src, 8, NULL), SM_E_INVAL);
        cr_assert_eq(sm_secret_random(NULL, 8, &s), SM_E_INVAL);
        cr_assert_eq(sm_secret_random(f, 8, NULL), SM_E_INVAL);
        cr_assert_eq(src[0], 1, "%s: src not wiped by a refused call", name);
        cr_assert_eq(s.id, 0, "%s: out untouched", name);
        counters_get(&after);
        cr_assert(counters_equal(&before, &after, CMP_MAPPED | CMP_ALLOCATIONS), "%s", name);
        s = make_secret(f, 8, 1);
        cr_assert_eq(sm_secret_with_bytes(s, NULL, NULL), SM_E_INVAL);
        cr_assert_eq(sm_secret_try_with_bytes(s, NULL, NULL), SM_E_INVAL);
        cr_assert_eq(sm_secret_close(s), SM_OK);
    }
}

Test(secret, stale_and_foreign_handles, .timeout = 60)
{
    sm_secret zero = { 0 }, junk = { 0xdeadbeefcafef00dULL }, fromb;
    sm_buffer b;
    expect e;
    size_t got;
    uint8_t buf[4];

    expect_of(&e, 4, 0);
    cr_assert_eq(sm_buffer_new(4, &b), SM_OK);
    fromb.id = b.id;
    const sm_secret handles[] = { zero, junk, fromb };
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(sm_secret_with_bytes(handles[i], check_fn, &e), SM_E_STATE);
        cr_assert_eq(sm_secret_try_with_bytes(handles[i], check_fn, &e), SM_E_STATE);
        cr_assert_eq(sm_secret_read_at(handles[i], 0, buf, 4, &got), SM_E_STATE);
        cr_assert_eq(sm_secret_close(handles[i]), SM_E_STATE);
        cr_assert_eq(sm_secret_size(handles[i]), 0);
        cr_assert(sm_secret_is_closed(handles[i]));
    }
    cr_assert(sm_buffer_is_alive(b), "a buffer's handle used as a secret's is refused, not used");
    cr_assert_eq(sm_buffer_destroy(b), SM_OK);
    for (size_t k = 0; k < NFAC; k++) {
        sm_secret s = make_secret(factories[k].get(), 4, 0);

        cr_assert_eq(sm_secret_close(s), SM_OK);
        for (int i = 0; i < 5; i++) {
            sm_secret again = make_secret(factories[k].get(), 4, 0);

            cr_assert_neq(again.id, s.id, "ids are never reused");
            cr_assert_eq(sm_secret_close(again), SM_OK);
        }
        cr_assert_eq(sm_secret_with_bytes(s, check_fn, &e), SM_E_STATE);
    }
}

Test(secret, custom_tables_are_checked, .timeout = 60)
{
    sm_factory f = *example_factory();
    sm_secret s = { 0 };
    uint8_t src[4] = { 1 };

    f.version = SM_FACTORY_VERSION + 1;
    cr_assert_eq(sm_secret_random(&f, 4, &s), SM_E_INVAL, "another version");
    f = *example_factory();
    f.make_unreadable = NULL;
    cr_assert_eq(sm_secret_new(&f, src, 4, &s), SM_E_INVAL, "a missing hook");
    f = *sm_factory_protected();
    cr_assert_eq(sm_secret_random(&f, 4, &s), SM_E_INVAL, "a copy of a built-in table");
    f = *example_factory();
    f.purge = NULL;
    cr_assert_eq(sm_secret_new(&f, src, 4, &s), SM_OK, "purge is optional");
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

Test(secret, the_three_built_in_factories_are_distinct, .timeout = 60)
{
    const sm_factory *f = sm_factory_encrypted();

    cr_assert_not_null(f);
    cr_assert_eq(f, sm_factory_encrypted(), "one table");
    cr_assert(f != sm_factory_protected() && f != sm_factory_guarded());
    cr_assert(sm_factory_protected() != sm_factory_guarded());
}

/* At rest an encrypted secret is ciphertext only: no guarded region, nothing locked. */
Test(secret, encrypted_at_rest_holds_no_plaintext_region, .timeout = 60)
{
    uint8_t src[64];
    sm_stats s0, s1;
    sm_secret s;

    pattern(src, sizeof src, 9);
    cr_assert_eq(sm_init(NULL), SM_OK);
    {
        /* The enclave key is made at the first seal and kept: make it first. */
        sm_enclave warm;
        uint8_t x = 1;

        cr_assert_eq(sm_enclave_new(&x, 1, &warm), SM_OK);
        cr_assert_eq(sm_enclave_destroy(warm), SM_OK);
    }
    cr_assert_eq(sm_stats_get(&s0), SM_OK);
    cr_assert_eq(sm_secret_new(sm_factory_encrypted(), src, sizeof src, &s), SM_OK);
    cr_assert_eq(sm_stats_get(&s1), SM_OK);
    cr_assert_eq(s1.bytes_locked, s0.bytes_locked, "the fill region is gone once sealed");
    cr_assert_eq(s1.secrets_live, s0.secrets_live + 1);
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

/* ---- counters ---- */

Test(secret, stats_before_and_after_each_path, .timeout = 60)
{
    size_t page = sm_page_size();

    cr_assert_eq(sm_init(NULL), SM_OK);
    warm_key();
    for (size_t k = 0; k < NFAC; k++) {
        const fac *fa = &factories[k];
        sm_stats a, b, c;
        sm_secret s1, s2;
        size_t pa;
        expect e;

        expect_of(&e, LEN, 2);
        cr_assert_eq(sm_stats_get(&a), SM_OK);
        pa = smi_pool_test_bytes();
        s1 = make_secret(fa->get(), LEN, 2);
        cr_assert_eq(sm_secret_random(fa->get(), 5000, &s2), SM_OK);
        cr_assert_eq(sm_stats_get(&b), SM_OK);
        cr_assert_eq(b.secrets_live, a.secrets_live + 2, "%s", fa->name);
        cr_assert_eq(b.buffers_live, a.buffers_live);
        cr_assert_eq(b.allocations_total, a.allocations_total + (fa->counted ? 2 : 0), "%s", fa->name);
        cr_assert_eq(b.bytes_locked,
                     a.bytes_locked + (fa->counted && fa->mapped_at_rest ? 3 * page : 0), "%s",
                     fa->name);
        cr_assert_eq(b.bytes_unlocked, a.bytes_unlocked);
        cr_assert_eq(sm_secret_with_bytes(s1, check_fn, &e), SM_OK);
        cr_assert_eq(sm_stats_get(&c), SM_OK);
        if (fa->mapped_at_rest) {
            cr_assert(same_stats(&b, &c), "%s: an access changes no counter", fa->name);
        } else {
            /* Each access window is a guarded region made, and gone when it shuts. */
            cr_assert_eq(c.allocations_total, b.allocations_total + 1, "%s", fa->name);
            cr_assert_eq(c.bytes_locked, b.bytes_locked, "%s", fa->name);
        }
        cr_assert_eq(sm_secret_close(s1), SM_OK);
        cr_assert_eq(sm_secret_close(s2), SM_OK);
        cr_assert_eq(sm_stats_get(&c), SM_OK);
        cr_assert_eq(c.secrets_live, a.secrets_live, "%s", fa->name);
        /* A guarded region stays locked in the pool (test_pool.c), s2's two pages too. */
        cr_assert_eq(c.bytes_locked - smi_pool_test_bytes(), a.bytes_locked - pa,
                     "%s", fa->name);
        cr_assert_geq(c.allocations_total, b.allocations_total, "never goes down");
    }
}

/* A random secret holds neither zeroes nor what another one holds. */
static sm_status copy_fn(const uint8_t *b, size_t n, void *ctx)
{
    memcpy(ctx, b, n);
    return SM_OK;
}

Test(secret, random_secrets_differ, .timeout = 60)
{
    for (size_t k = 0; k < NFAC; k++) {
        uint8_t x[64], y[64], zero[64] = { 0 };
        sm_secret a, b;

        cr_assert_eq(sm_secret_random(factories[k].get(), 64, &a), SM_OK);
        cr_assert_eq(sm_secret_random(factories[k].get(), 64, &b), SM_OK);
        cr_assert_eq(sm_secret_with_bytes(a, copy_fn, x), SM_OK);
        cr_assert_eq(sm_secret_with_bytes(b, copy_fn, y), SM_OK);
        cr_assert(memcmp(x, y, 64) && memcmp(x, zero, 64), "%s", factories[k].name);
        cr_assert_eq(sm_secret_close(a), SM_OK);
        cr_assert_eq(sm_secret_close(b), SM_OK);
    }
}

/*
 * RLIMIT_MEMLOCK lowered to 0 in a child that then drops CAP_IPC_LOCK (root has it, so
 * the child becomes nobody after the setrlimit): REQUIRED refuses with SM_E_LOCK and
 * changes no counter; BEST_EFFORT goes on and counts the bytes as unlocked.
 */
static void memlock_child(void *arg)
{
    sm_lock_policy policy = (sm_lock_policy)(uintptr_t)arg;
    sm_config cfg = { policy, SM_BACKING_ANON, false };
    struct rlimit zero = { 0, 0 };

    if (sm_init(&cfg) != SM_OK)
        _exit(10);
    warm_key(); /* the enclave key's pages are locked before the limit drops */
    if (setrlimit(RLIMIT_MEMLOCK, &zero) != 0 || setuid(65534) != 0)
        _exit(11);
    for (size_t k = 0; k < NFAC; k++) {
        const fac *fa = &factories[k];
        uint8_t src[LEN];
        expect e;
        sm_secret s = { 0 };
        sm_stats a, b;
        sm_status st;

        expect_of(&e, LEN, 4);
        pattern(src, LEN, 4);
        if (sm_stats_get(&a) != SM_OK)
            _exit(12);
        st = sm_secret_new(fa->get(), src, LEN, &s);
        if (sm_stats_get(&b) != SM_OK)
            _exit(12);
        if (policy == SM_LOCK_REQUIRED || !fa->follows_policy) {
            if (st != SM_E_LOCK || s.id != 0 || src[0] == 0)
                _exit(20 + (int)k);
            if (!same_stats(&a, &b))
                _exit(30 + (int)k);
            continue;
        }
        if (st != SM_OK)
            _exit(40 + (int)k);
        /* The encrypted factory keeps ciphertext only at rest: nothing unlocked then. */
        if (b.bytes_unlocked != a.bytes_unlocked + (fa->mapped_at_rest ? sm_page_size() : 0) ||
            b.bytes_locked != a.bytes_locked || b.secrets_live != a.secrets_live + 1)
            _exit(50 + (int)k);
        if (sm_secret_with_bytes(s, check_fn, &e) != SM_OK || sm_secret_close(s) != SM_OK)
            _exit(60 + (int)k);
        if (sm_stats_get(&b) != SM_OK || b.bytes_unlocked != a.bytes_unlocked ||
            b.secrets_live != a.secrets_live)
            _exit(70 + (int)k);
    }
    _exit(0);
}

Test(secret, lowered_memlock_limit, .timeout = 60)
{
    if (!SM_TEST_MLOCK_IS_REAL)
        cr_skip_test("ASan fakes mlock");
    cr_assert_eq(in_child(memlock_child, (void *)(uintptr_t)SM_LOCK_REQUIRED), 0, "REQUIRED");
    cr_assert_eq(in_child(memlock_child, (void *)(uintptr_t)SM_LOCK_BEST_EFFORT), 0, "BEST_EFFORT");
}

/* ---- backing ---- */

Test(secret, secretmem_backing, .timeout = 60)
{
    SKIP_WITHOUT_SECRETMEM();
    sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, false };
    sm_stats a, b;
    size_t pa;

    cr_assert_eq(sm_init(&cfg), SM_OK);
    for (size_t k = 0; k < NFAC; k++) {
        sm_secret s = make_secret(factories[k].get(), LEN, 6);
        perms_seen p;
        char perms[5], flags[256];
        size_t locked;
        expect e;

        expect_of(&e, LEN, 6);
        cr_assert_eq(sm_secret_with_bytes(s, check_fn, &e), SM_OK);
        cr_assert_eq(sm_secret_with_bytes(s, perms_fn, &p), SM_OK);
        if (!factories[k].counted) {
            cr_assert_str_eq(p.perms, "r--p", "a custom factory chooses its own memory");
        } else {
            cr_assert_str_eq(p.perms, "r--s", "%s: a secretmem mapping", factories[k].name);
            if (factories[k].mapped_at_rest) {
                cr_assert_eq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0);
                cr_assert_str_eq(perms, "---s");
            }
        }
        cr_assert_eq(sm_stats_get(&a), SM_OK);
        pa = pooled_regions();
        cr_assert_eq(sm_secret_close(s), SM_OK);
        cr_assert_eq(sm_stats_get(&b), SM_OK);
        /* Into the pool (guarded) is locked still, and counted so. */
        cr_assert_eq(a.bytes_locked - b.bytes_locked + (pooled_regions() - pa) * sm_page_size(),
                     factories[k].counted && factories[k].mapped_at_rest ? sm_page_size() : 0);
    }
}

/* ---- purge, audit, fork ---- */

Test(secret, purge_makes_every_secret_stale_and_unmaps_it, .timeout = 60)
{
    sm_secret s[NFAC];
    perms_seen p[NFAC];
    sm_stats st;

    for (size_t k = 0; k < NFAC; k++) {
        s[k] = make_secret(factories[k].get(), LEN, 7);
        cr_assert_eq(sm_secret_with_bytes(s[k], perms_fn, &p[k]), SM_OK);
    }
    sm_purge();
    cr_assert_eq(sm_stats_get(&st), SM_OK);
    cr_assert_eq(st.secrets_live, 0);
    cr_assert_eq(st.bytes_locked, sm_page_size(), "only the canary key page is left");
    for (size_t k = 0; k < NFAC; k++) {
        char perms[5], flags[256];
        size_t locked;

        cr_assert(sm_secret_is_closed(s[k]));
        cr_assert_eq(sm_secret_close(s[k]), SM_E_STATE);
        cr_assert_neq(smaps_of(p[k].at, perms, flags, sizeof flags, &locked), 0, "%s",
                      factories[k].name);
    }
}

static sm_status purge_inside_fn(const uint8_t *b, size_t n, void *ctx)
{
    (void)ctx;
    if (b[0] == 0)
        return SM_E_SYS;
    sm_purge();
    /* Still mapped and readable for this access, but wiped. */
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return SM_E_AUTH;
    return SM_OK;
}

Test(secret, purge_during_an_access_wipes_in_place, .timeout = 60)
{
    for (size_t k = 0; k < NFAC; k++) {
        sm_secret s = make_secret(factories[k].get(), LEN, 7);
        sm_stats st;

        cr_assert_eq(sm_secret_with_bytes(s, purge_inside_fn, NULL), SM_OK, "%s", factories[k].name);
        cr_assert(sm_secret_is_closed(s));
        cr_assert_eq(sm_stats_get(&st), SM_OK);
        cr_assert_eq(st.secrets_live, 0);
    }
}

Test(secret, audit_passes_intact_secrets_at_rest_and_in_use, .timeout = 60)
{
    for (size_t k = 0; k < NFAC; k++) {
        sm_secret s = make_secret(factories[k].get(), LEN, 7);

        cr_assert_eq(sm_audit(), SM_OK);
        cr_assert_eq(sm_secret_close(s), SM_OK);
    }
}

/*
 * sm_audit opens a guarded secret at rest READ to check its canary, then shuts it
 * again. When the OS refuses that second mprotect, the pages stay readable at rest:
 * sm_audit must say so (it returned SM_OK before), and the next access's last exit
 * shuts them.
 */
Test(secret, audit_reports_a_region_it_could_not_shut_again, .timeout = 60)
{
    sm_secret s = make_secret(sm_factory_guarded(), LEN, 6);
    expect e;
    perms_seen p;
    char perms[5], flags[256];
    size_t locked;

    expect_of(&e, LEN, 6);
    cr_assert_eq(sm_secret_with_bytes(s, perms_fn, &p), SM_OK);
    sm_os_fault_arm(SM_OS_MPROTECT, 2, EACCES, false);
    cr_assert_eq(sm_audit(), SM_E_PROT);
    cr_assert_eq(sm_last_os_error(), EACCES);
    sm_os_fault_reset();
    cr_assert_eq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0);
    cr_assert_str_eq(perms, "r--p", "left readable, and reported");
    cr_assert_eq(sm_secret_with_bytes(s, check_fn, &e), SM_OK);
    cr_assert_eq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0);
    cr_assert_str_eq(perms, "---p", "the access's last exit shut it");
    cr_assert_eq(sm_audit(), SM_OK);
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

static sm_status damage_fn(const uint8_t *b, size_t n, void *ctx)
{
    size_t page = sm_page_size();
    uint8_t *at = (uint8_t *)(uintptr_t)b - 1; /* the last canary byte */
    void *pg = (void *)((uintptr_t)at & ~(uintptr_t)(page - 1));

    (void)n;
    (void)ctx;
    if (sm_mem_protect(pg, page, SM_PROT_READWRITE) != SM_OK)
        return SM_E_SYS;
    *at ^= 1;
    return sm_mem_protect(pg, page, SM_PROT_READ);
}

static void damaged_canary_child(void *arg)
{
    bool at_audit = arg != NULL;
    sm_secret s;
    uint8_t src[LEN] = { 1 };
    int devnull = open("/dev/null", O_WRONLY);

    dup2(devnull, 2);
    if (sm_secret_new(sm_factory_guarded(), src, LEN, &s) != SM_OK ||
        sm_secret_with_bytes(s, damage_fn, NULL) != SM_OK)
        _exit(10);
    if (at_audit)
        (void)!sm_audit();
    else
        (void)!sm_secret_close(s);
    _exit(11);
}

Test(secret, a_damaged_guarded_canary_panics_at_audit_and_at_close, .timeout = 60)
{
    cr_assert_eq(in_child(damaged_canary_child, (void *)1), 128 + SIGABRT, "sm_audit");
    cr_assert_eq(in_child(damaged_canary_child, NULL), 128 + SIGABRT, "close");
}

static void forked_child(void *arg)
{
    sm_secret *pre = arg;
    expect e;
    sm_stats st;

    expect_of(&e, LEN, 0);
    for (size_t k = 0; k < NFAC; k++) {
        sm_secret s;
        uint8_t src[LEN];

        if (!sm_secret_is_closed(pre[k]) || sm_secret_with_bytes(pre[k], check_fn, &e) != SM_E_STATE)
            _exit(10 + (int)k);
        pattern(src, LEN, 0);
        if (sm_secret_new(factories[k].get(), src, LEN, &s) != SM_OK ||
            sm_secret_with_bytes(s, check_fn, &e) != SM_OK || sm_secret_close(s) != SM_OK)
            _exit(20 + (int)k);
    }
    if (sm_stats_get(&st) != SM_OK || st.secrets_live != 0)
        _exit(30);
    _exit(0);
}

Test(secret, a_forked_child_finds_every_secret_stale, .timeout = 60)
{
    sm_secret pre[NFAC];
    expect e;

    expect_of(&e, LEN, 0);
    for (size_t k = 0; k < NFAC; k++)
        pre[k] = make_secret(factories[k].get(), LEN, 0);
    cr_assert_eq(in_child(forked_child, pre), 0);
    for (size_t k = 0; k < NFAC; k++) {
        cr_assert_eq(sm_secret_with_bytes(pre[k], check_fn, &e), SM_OK, "the parent's still work");
        cr_assert_eq(sm_secret_close(pre[k]), SM_OK);
    }
}

/*
 * A purge while another thread is opening the window (held at the gate): the purge
 * leaves those pages alone, and the opening thread, finding the secret gone when it
 * comes back, frees them itself: with destroy, or with purge if destroy refuses.
 */
static void purge_mid_change(bool destroy_fails)
{
    example_gate *g = example_gate_new();
    sm_factory nopurge;
    expect e;
    sm_secret s;
    oprun a;
    size_t mapped0;
    sm_stats st;

    expect_of(&e, LEN, 12);
    cr_assert_eq(sm_init(NULL), SM_OK);
    {
        /* Warm up what stays mapped by design: the registry chunk, a cached thread stack. */
        sm_secret warm = make_secret(example_factory(), LEN, 1);
        oprun w;

        op_start(&w, "size", warm, &e);
        (void)op_join(&w);
        cr_assert_eq(sm_secret_close(warm), SM_OK);
    }
    mapped0 = mapped_bytes();
    /* Without a purge hook, only destroy can free it: the thread must not rely on purge. */
    nopurge = *example_gate_factory(g);
    nopurge.purge = NULL;
    s = make_secret(destroy_fails ? example_gate_factory(g) : &nopurge, LEN, 12);
    cr_assert_gt(mapped_bytes(), mapped0);
    op_start(&a, "with_bytes", s, &e);
    example_gate_wait_arrival(g);
    sm_purge();
    cr_assert(sm_secret_is_closed(s), "stale at once");
    if (destroy_fails)
        sm_os_fault_arm(SM_OS_MUNMAP, 1, ENOMEM, false);
    example_gate_open(g);
    cr_assert_eq(op_join(&a), SM_E_STATE, "the access that was opening finds it gone");
    sm_os_fault_reset();
    cr_assert_eq(mapped_bytes(), mapped0, "and its pages were freed by that thread");
    cr_assert_eq(sm_stats_get(&st), SM_OK);
    cr_assert_eq(st.secrets_live, 0);
    example_gate_free(g);
}

Test(secret, purge_during_a_window_change_leaves_the_pages_to_the_changer, .timeout = 60)
{
    purge_mid_change(false);
}

Test(secret, purge_during_a_window_change_falls_back_to_purge, .timeout = 60)
{
    purge_mid_change(true);
}

/* A purge while close waits for readers: the readers go on, on wiped bytes; close returns. */
Test(secret, purge_while_close_waits, .timeout = 60)
{
    for (size_t k = 0; k < NFAC; k++) {
        gathering g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        expect e;
        pthread_t t;
        oprun closer;
        void *r;
        sm_stats st;

        expect_of(&e, LEN, 13);
        g.e = &e;
        g.s = make_secret(factories[k].get(), LEN, 13);
        pthread_create(&t, NULL, gather_thread, &g);
        pthread_mutex_lock(&g.lock);
        while (g.inside < 1)
            pthread_cond_wait(&g.cond, &g.lock);
        pthread_mutex_unlock(&g.lock);
        op_start(&closer, "close", g.s, &e);
        cr_assert(eventually_state(g.s, SMI_SEC_CLOSING));
        sm_purge();
        pthread_mutex_lock(&g.lock);
        g.release = 1;
        pthread_cond_broadcast(&g.cond);
        pthread_mutex_unlock(&g.lock);
        pthread_join(t, &r);
        cr_assert_eq((sm_status)(uintptr_t)r, SM_E_AUTH, "%s: the reader saw the wiped bytes",
                     factories[k].name);
        cr_assert_eq(op_join(&closer), SM_OK, "%s: close returns: the purge wiped it",
                     factories[k].name);
        cr_assert_eq(sm_stats_get(&st), SM_OK);
        cr_assert_eq(st.secrets_live, 0);
    }
}

/* The encrypted factory shuts its window by unmapping it: a refused unmap keeps it open. */
Test(secret, failed_unmap_of_the_encrypted_window_keeps_it, .timeout = 60)
{
    sm_secret s;
    expect e;
    perms_seen p;
    char perms[5], flags[256];
    size_t locked;

    cr_assert_eq(sm_init(NULL), SM_OK);
    s = make_secret(sm_factory_encrypted(), LEN, 12);
    expect_of(&e, LEN, 12);
    sm_os_fault_arm(SM_OS_MUNMAP, 1, ENOMEM, false);
    cr_assert_eq(sm_secret_with_bytes(s, perms_fn, &p), SM_E_SYS, "the shut's failure");
    sm_os_fault_reset();
    cr_assert_eq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0, "still mapped");
    cr_assert_str_eq(perms, "r--p", "and readable");
    cr_assert_eq(sm_secret_with_bytes(s, check_fn, &e), SM_OK, "the right bytes, not zeroes");
    cr_assert_neq(smaps_of(p.at, perms, flags, sizeof flags, &locked), 0, "shut this time");
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

/*
 * A purge that finds a secret's slot lock held leaves the object to the holder, which
 * must finish it when it lets go (registry.c, unlock_slot). Readers hammer one secret so
 * that its lock is held most of the time; a purge comes at a random moment. Afterwards
 * nothing may be live, whichever thread held the lock: a holder that unlocked without
 * finishing the purge left the secret counted live, its pages mapped and unwiped.
 */
/*
 * Three hammer threads live for the whole test: each round the main thread publishes a
 * fresh secret, the hammers access it until it is stale, and report. Keeping the threads
 * keeps a round cheap (thread creation dominated it under the sanitizers).
 */
static _Atomic uint64_t hammer_target;
static atomic_uint hammer_done;
static atomic_bool hammer_stop;
static _Atomic int hammer_bad; /* a status other than SM_E_STATE ended a round */

/* The bytes may be wiped in place by the purge meanwhile: only touch them. */
static sm_status touch_fn(const uint8_t *b, size_t n, void *ctx)
{
    volatile uint8_t sink = b[n - 1];

    (void)sink;
    (void)ctx;
    return SM_OK;
}

static void *hammer_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t last = 0;

    while (!atomic_load(&hammer_stop)) {
        sm_secret s = { atomic_load(&hammer_target) };
        uint8_t buf[LEN];
        size_t got;
        sm_status st;

        if (s.id == last) {
            sched_yield();
            continue;
        }
        do {
            st = id % 2 ? sm_secret_read_at(s, 0, buf, LEN, &got)
                        : sm_secret_try_with_bytes(s, touch_fn, NULL);
        } while (st == SM_OK || st == SM_E_BUSY);
        if (st != SM_E_STATE)
            atomic_store(&hammer_bad, (int)st);
        last = s.id;
        atomic_fetch_add(&hammer_done, 1);
    }
    return NULL;
}

Test(secret, purge_while_a_holder_has_the_lock_is_finished, .timeout = 120)
{
    uint64_t rng = 0x1234, locked;
    pthread_t t[3];
    sm_stats st;

    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_eq(sm_stats_get(&st), SM_OK);
    locked = st.bytes_locked;
    for (unsigned i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, hammer_thread, (void *)(uintptr_t)i);
    for (size_t k = 0; k < NFAC; k++) {
        for (int round = 0; round < 150; round++) {
            struct timespec d = { 0, (long)(rng % 200000) };

            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            atomic_store(&hammer_done, 0);
            atomic_store(&hammer_target, make_secret(factories[k].get(), LEN, 21).id);
            nanosleep(&d, NULL);
            sm_purge();
            while (atomic_load(&hammer_done) < 3)
                sched_yield();
            cr_assert_eq(atomic_load(&hammer_bad), 0, "%s: %s", factories[k].name,
                         sm_status_str((sm_status)atomic_load(&hammer_bad)));
            cr_assert_eq(sm_stats_get(&st), SM_OK);
            cr_assert_eq(st.secrets_live, 0, "%s, round %d: a purged secret is still live",
                         factories[k].name, round);
            /* A window that readers were in when the purge came is freed by the last of
               them, and they have all left (spec/secrets.md, "Purge"; issue 11 §4.5). */
            cr_assert_eq(st.bytes_locked - pooled_regions() * sm_page_size(), locked,
                         "%s, round %d: %llu bytes locked, %llu "
                         "before", factories[k].name, round,
                         (unsigned long long)st.bytes_locked, (unsigned long long)locked);
        }
    }
    atomic_store(&hammer_stop, true);
    for (unsigned i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
}

/*
 * Issue 11 §4.5: a purge inside an access wiped the window in place and left it mapped
 * and locked for good, 4 KiB a round (bytes_locked grew by 4096 every round), and its
 * slot was lost. The last access out now frees it, and the slot goes back to use: the
 * registry is capped at 4 slots here, for 8 rounds of each factory.
 */
Test(secret, purge_inside_an_access_leaks_nothing, .timeout = 60)
{
    counters base, now;

    smi_registry_test_limit(4);
    for (size_t k = 0; k < NFAC; k++) /* the registry chunk, the key pages, the coffer */
        cr_assert_eq(sm_secret_close(make_secret(factories[k].get(), LEN, 3)), SM_OK);
    sm_purge();
    counters_get(&base);
    for (int round = 0; round < 8; round++) {
        for (size_t k = 0; k < NFAC; k++) {
            sm_secret s = make_secret(factories[k].get(), LEN, 7);

            cr_assert_eq(sm_secret_with_bytes(s, purge_inside_fn, NULL), SM_OK, "%s",
                         factories[k].name);
            cr_assert(sm_secret_is_closed(s));
            counters_get(&now);
            cr_assert(counters_equal(&base, &now, CMP_MAPPED),
                      "%s, round %d: %zu -> %zu bytes mapped, %lu -> %lu locked",
                      factories[k].name, round, base.mapped, now.mapped,
                      (unsigned long)base.locked, (unsigned long)now.locked);
        }
    }
}

/*
 * The window of a purged secret is freed by the last access out, not the first: an
 * access nested in another purges, leaves, and the outer one still reads its (wiped)
 * window without a fault; only when it leaves is everything given back.
 */
static sm_status purge_nested_fn(const uint8_t *b, size_t n, void *ctx)
{
    sm_secret *s = ctx;
    counters *base = (counters *)(s + 1);
    counters now;
    sm_status st = sm_secret_with_bytes(*s, purge_inside_fn, NULL);

    if (st != SM_OK)
        return st;
    counters_get(&now);
    /*
     * Freed while this access still reads it? Under Valgrind the mapped total is not
     * compared (it moves by itself, helpers.c), and a custom factory's window moves no
     * counter either, so nothing tells there and this check was a false alarm under
     * make test-memcheck; make test checks it, and the bytes are checked below anyway.
     */
    if (!RUNNING_ON_VALGRIND && counters_equal(base, &now, CMP_MAPPED))
        return SM_E_SYS;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return SM_E_AUTH;
    return SM_OK;
}

Test(secret, purge_in_a_nested_access_is_freed_by_the_outer_one, .timeout = 60)
{
    struct {
        sm_secret s;
        counters  base;
    } x;

    for (size_t k = 0; k < NFAC; k++)
        cr_assert_eq(sm_secret_close(make_secret(factories[k].get(), LEN, 3)), SM_OK);
    sm_purge();
    counters_get(&x.base);
    for (size_t k = 0; k < NFAC; k++) {
        counters now;

        x.s = make_secret(factories[k].get(), LEN, 7);
        cr_assert_eq(sm_secret_with_bytes(x.s, purge_nested_fn, &x.s), SM_OK, "%s",
                     factories[k].name);
        counters_get(&now);
        cr_assert(counters_equal(&x.base, &now, CMP_MAPPED), "%s: %zu -> %zu bytes mapped",
                  factories[k].name, x.base.mapped, now.mapped);
    }
}

/*
 * A fork inside an access that a purge came into: the child forgets the window that
 * the purge kept for the access (it is the child's copy, or not there at all) and gets
 * the slot back, in a registry of one slot here.
 */
static sm_status purge_then_fork_fn(const uint8_t *b, size_t n, void *ctx)
{
    int *status = ctx;
    pid_t pid;

    (void)b;
    (void)n;
    sm_purge();
    pid = fork();
    if (pid == 0) {
        sm_stats st;
        sm_secret again;
        uint8_t key[16] = { 1 };

        if (sm_stats_get(&st) != SM_OK || st.secrets_live != 0 ||
            st.bytes_locked + st.bytes_unlocked != sm_page_size())
            _exit(1); /* only the canary key page is left to count */
        if (sm_secret_new(sm_factory_protected(), key, sizeof key, &again) != SM_OK)
            _exit(2); /* the one slot came back */
        if (sm_secret_close(again) != SM_OK)
            _exit(3);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, status, 0) != pid)
        return SM_E_SYS;
    return SM_OK;
}

Test(secret, fork_inside_a_purged_access_gives_the_slot_back, .timeout = 60)
{
    sm_secret s;
    int status = -1;

    smi_registry_test_limit(1);
    s = make_secret(sm_factory_protected(), LEN, 7);
    cr_assert_eq(sm_secret_with_bytes(s, purge_then_fork_fn, &status), SM_OK);
    cr_assert(WIFEXITED(status), "the child died of signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0, "step %d", WEXITSTATUS(status));
    s = make_secret(sm_factory_protected(), LEN, 8); /* and in the parent too */
    cr_assert_eq(sm_secret_close(s), SM_OK);
}

/*
 * Found by tightening purge_while_a_holder_has_the_lock_is_finished: a purge that finds
 * the slot lock held leaves the secret to the holder (doomed). A reader that leaves
 * before that purge is finished found its id gone and went without counting itself
 * out; the finish then saw a reader that was no longer there, kept the window for it,
 * and nobody ever freed it. Here the test holds the lock through the purge and lets
 * go of it with a bare unlock, so that the leaving reader is the one that finishes it.
 */
static atomic_int reader_in, reader_go;

static sm_status wait_inside_fn(const uint8_t *b, size_t n, void *ctx)
{
    (void)b;
    (void)n;
    (void)ctx;
    atomic_store(&reader_in, 1);
    while (!atomic_load(&reader_go))
        sleep_ms(1);
    return SM_OK;
}

static void *reader_thread_once(void *arg)
{
    sm_secret *s = arg;

    return (void *)(intptr_t)sm_secret_with_bytes(*s, wait_inside_fn, NULL);
}

Test(secret, a_reader_leaving_before_a_pending_purge_is_finished_is_counted_out, .timeout = 60)
{
    sm_secret s;
    smi_slot *slot;
    pthread_t t;
    void *r;
    counters base, now;

    cr_assert_eq(sm_secret_close(make_secret(sm_factory_protected(), LEN, 3)), SM_OK);
    sm_purge();
    /* A thread first, so that the reader's stack is glibc's cached one, mapped already. */
    s.id = 0;
    cr_assert_eq(pthread_create(&t, NULL, reader_thread_once, &s), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    counters_get(&base);
    s = make_secret(sm_factory_protected(), LEN, 7);
    cr_assert_eq(pthread_create(&t, NULL, reader_thread_once, &s), 0);
    cr_assert(eventually(&reader_in));
    cr_assert_eq(smi_registry_acquire(s.id, SMI_KIND_SECRET, &slot), SM_OK);
    sm_purge(); /* the lock is held: the secret is left to the holder, doomed */
    cr_assert_neq(atomic_load(&slot->doomed), 0);
    atomic_store(&reader_go, 1);
    sleep_ms(50); /* the reader is waiting for the lock in its leave */
    pthread_mutex_unlock(&slot->lock); /* bare: the reader, not this thread, finishes it */
    cr_assert_eq(pthread_join(t, &r), 0);
    cr_assert_eq((intptr_t)r, SM_OK);
    cr_assert(sm_secret_is_closed(s));
    counters_get(&now);
    cr_assert(counters_equal(&base, &now, CMP_MAPPED), "%zu -> %zu bytes mapped, %lu -> %lu locked",
              base.mapped, now.mapped, (unsigned long)base.locked, (unsigned long)now.locked);
}
