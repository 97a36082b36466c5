/* SPDX-License-Identifier: ISC */
/*
 * ops: sequences of public API calls over several buffers, enclaves, streams and raw
 * memory regions, stale and forged handles included, with OS faults injected from the
 * input, every result compared with a reference model. Any divergence aborts.
 *
 * Target functions: sm_buffer_new, sm_buffer_from_bytes, sm_buffer_random,
 * sm_buffer_freeze, sm_buffer_melt, sm_buffer_copy, sm_buffer_copy_at, sm_buffer_move,
 * sm_buffer_move_at, sm_buffer_scramble, sm_buffer_wipe, sm_buffer_equal,
 * sm_buffer_data, sm_buffer_size, sm_buffer_is_alive, sm_buffer_is_mutable,
 * sm_buffer_seal, sm_buffer_destroy; sm_enclave_new, sm_enclave_random, sm_enclave_open,
 * sm_enclave_open_into, sm_enclave_size, sm_enclave_destroy; sm_stream_new,
 * sm_stream_write, sm_stream_read, sm_stream_next, sm_stream_flush, sm_stream_size,
 * sm_stream_destroy; sm_mem_alloc, sm_mem_free, sm_mem_lock, sm_mem_unlock,
 * sm_mem_protect, sm_wipe, sm_equal, sm_random, sm_page_size; sm_init, sm_stats_get,
 * sm_purge, sm_audit, sm_status_str, sm_last_os_error; sm_secret_new, sm_secret_random,
 * sm_secret_from_callback (opcode 0x3d), sm_secret_from_buffer (0x3e),
 * sm_secret_with_bytes, sm_secret_try_with_bytes, sm_secret_read_at, sm_secret_size,
 * sm_secret_is_closed, sm_secret_close over sm_factory_protected, sm_factory_guarded,
 * sm_factory_encrypted and the example custom factory (tests/factory); in forked
 * children sm_safe_exit, sm_panic, sm_catch_signals, sm_catch_interrupt and the fork
 * handlers.
 *
 * The model:
 *  - buffers follow spec/buffer-states.tsv, read at build time (fuzz/gen-tables.sh):
 *    each operation's status and next state come from its row; the contents are
 *    tracked byte for byte; MUTABLE pages must be read-write and FROZEN ones read-only,
 *    with a guard page on each side (probed through the kernel, fuzz/support);
 *  - enclaves keep their plaintext and size; streams are FIFOs (as in fuzz/stream.c);
 *  - secrets follow spec/secret-states.tsv (gen-tables.sh): the model's state of a
 *    secret (OPEN-IDLE, OPEN-ACCESSED while this input's callbacks are inside it,
 *    CLOSED) picks the cell of each operation, which gives its status and the state
 *    after, also as smi_secret_state reports it; a cell's window count is checked
 *    against the OS calls that spec/syscalls.tsv gives one access of that factory
 *    ("2") or none at all ("0"), and new, random and close make exactly the calls of
 *    their syscalls.tsv rows. Inside a callback the bytes are the model's, read-only
 *    (probed), in a guarded layout for guarded and encrypted secrets; from there the
 *    input runs more operations, nested accesses, closes and operations on every
 *    other kind included. At rest the pages of protected, guarded and custom secrets
 *    are unreadable. A close by the thread inside the secret's own access is refused
 *    (SM_E_STATE: secret.h) instead of the table's cell, which is for another thread;
 *    CLOSING and WINDOW-CHANGING need a second thread or a hook, and are
 *    fuzz/secret_access.c's;
 *  - a handle of a destroyed or purged object, a handle of another kind and a forged
 *    id are stale: SM_E_STATE, or NULL, 0, false;
 *  - spec/api.md's argument rules: SM_E_INVAL for NULL out-pointers, size 0, sizes that
 *    overflow, offsets and lengths out of range;
 *  - sm_stats: the live counts equal the model's, and the locked bytes are the model's
 *    regions (a protected secret's whole pages, a guarded secret's region, an encrypted
 *    secret's window while it is open, nothing for a custom factory's) plus the enclave
 *    key's while it exists;
 *  - an operation failed by an injected fault returns what spec/os-errors.tsv maps
 *    that fault to, sets sm_last_os_error to its errno, and changes nothing
 *    (SM-REQ-030), but for the documented exceptions: a failed final munmap of a free
 *    leaves the memory wiped and read-write (a secret's close too, but for an encrypted
 *    secret's, which has no plaintext at rest), sm_random and a scramble whose
 *    generator cannot be keyed wipe their output, and a
 *    failed shut at the end of an access leaves the secret's window open. When two
 *    faults hit one failing call the rollback itself may have failed, which is best
 *    effort by design (spec/fault-injection.md): the input stops there.
 *
 * Input: one byte choosing the AEAD, then operations: one byte (its low 6 bits pick an
 * entry of the op table), then that operation's arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "calls.h"
#include "factories.h"
#include "fuzz_tables.h"
#include "harness.h"
#include "secrets.h"

#define NB 6        /* buffers */
#define NE 4        /* enclaves */
#define NS 3        /* streams */
#define NM 3        /* raw memory regions */
#define NSEC 4      /* secrets */
#define MAX_OPS 64  /* operations per input, nested ones included */
#define MAX_DEPTH 6 /* nested accesses; the library tracks 16 per thread (secret.h) */
#define MAX_FIFO (128u * 1024u)

typedef struct mbuf {
    sm_buffer h;      /* the live handle, or the stale one of the last object here */
    int       state;  /* FZ_MUTABLE, FZ_FROZEN, FZ_DESTROYED */
    size_t    size;
    uint8_t  *want;   /* the contents */
    bool      opened; /* a failed free left the pages read-write (SM-REQ-030) */
} mbuf;

typedef struct menc {
    sm_enclave h;
    bool       alive;
    size_t     size;
    uint8_t   *pt;
    bool       known; /* false for sm_enclave_random until the first open */
} menc;

typedef struct mstr {
    sm_stream h;
    bool      alive;
    uint8_t  *fifo;
    size_t    len;
} mstr;

typedef struct msec {
    sm_secret      h;
    bool           open;     /* not closed */
    unsigned       fac;
    size_t         size;
    uint8_t       *want;     /* the bytes, where have[] says they are known */
    uint8_t       *have;     /* a random secret's bytes are learnt as they are read */
    unsigned       depth;    /* this input's accesses in flight (nested callbacks) */
    bool           readable; /* the window is open: accessed, or a failed shut kept it */
    bool           opened;   /* a failed close left the pages wiped and read-write */
    bool           audited;  /* a failed audit left the pages readable (op_audit) */
    const uint8_t *addr;     /* where the bytes were last seen (not encrypted: fixed) */
} msec;

typedef struct mmem {
    uint8_t *p;      /* NULL when free */
    size_t   n, len; /* asked for, and mapped (whole pages) */
    sm_prot  prot;
    uint8_t *want;
} mmem;

static struct {
    mbuf     b[NB];
    menc     e[NE];
    mstr     s[NS];
    mmem     m[NM];
    msec     sec[NSEC];
    unsigned depth;     /* callbacks in flight */
    unsigned ops;       /* operations run, nested ones included */
    uint64_t alloc_base; /* allocations_total where the current operation's count starts */
    bool     coffer_base; /* and whether the enclave key existed there */
    bool     aged;      /* the key was aged (test hook): a window may re-split it */
    bool     rng_keyed; /* the canary generator has its key (calls.h) */
    bool     share_open; /* a refused mprotect may have left an enclave key share open */
    bool     exhausted; /* the key's nonces are used up (test hook) until a purge */
    bool     tainted;   /* a rollback may have failed: stop this input */
    unsigned forks;
    unsigned touched;   /* buffers whose pages the last operation may have changed */
    unsigned made;      /* guarded regions that the last operation made and kept */
    uint64_t base_bytes;
} M;

static fz_faults F;
static size_t page, maxb, chunk_cap;
static uint8_t *src, *src2;

static const sm_os_fn fault_fns[] = { SM_OS_MMAP, SM_OS_MUNMAP, SM_OS_MPROTECT,
                                      SM_OS_MLOCK, SM_OS_MADVISE, SM_OS_GETRANDOM };

/* ---- the spec table ---- */

enum { R_FREEZE, R_MELT, R_COPY, R_COPY_AT, R_MOVE, R_MOVE_AT, R_SCRAMBLE, R_WIPE, R_EQUAL,
       R_DATA, R_SIZE, R_IS_ALIVE, R_IS_MUTABLE, R_SEAL, R_DESTROY, R_COUNT };
static const char *const row_names[R_COUNT] = {
    "freeze", "melt", "copy", "copy_at", "move", "move_at", "scramble", "wipe", "equal",
    "data", "size", "is_alive", "is_mutable", "seal", "destroy",
};
static const fz_buf_row *rows[R_COUNT];
static const fz_sec_row *sec_rows[FZ_SOP_COUNT];

static void find_rows(void)
{
    for (unsigned r = 0; r < R_COUNT; r++) {
        for (size_t i = 0; i < sizeof fz_buf_table / sizeof fz_buf_table[0]; i++)
            if (strcmp(fz_buf_table[i].op, row_names[r]) == 0)
                rows[r] = &fz_buf_table[i];
        FZ_CHECK(rows[r] != NULL, "spec/buffer-states.tsv has no row %s", row_names[r]);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init(NULL);
    find_rows();
    page = sm_page_size();
    maxb = 3 * page;
    chunk_cap = 4 * page - 64;
    /* One more than the largest buffer: equal compares a length one past its size. */
    src = malloc(MAX_FIFO + 1);
    src2 = malloc(MAX_FIFO + 1);
    FZ_CHECK(src != NULL && src2 != NULL, "out of memory");
    for (unsigned i = 0; i < NB; i++) /* room for what a stream flush gives */
        FZ_CHECK((M.b[i].want = malloc(MAX_FIFO)) != NULL, "out of memory");
    for (unsigned i = 0; i < NE; i++)
        FZ_CHECK((M.e[i].pt = malloc(MAX_FIFO)) != NULL, "out of memory");
    for (unsigned i = 0; i < NS; i++)
        FZ_CHECK((M.s[i].fifo = malloc(MAX_FIFO)) != NULL, "out of memory");
    for (unsigned i = 0; i < NM; i++)
        FZ_CHECK((M.m[i].want = malloc(maxb)) != NULL, "out of memory");
    for (unsigned i = 0; i < NSEC; i++)
        FZ_CHECK((M.sec[i].want = malloc(maxb)) != NULL && (M.sec[i].have = malloc(maxb)) != NULL,
                 "out of memory");
    fz_sec_rows_find(sec_rows);
    return 0;
}

/* ---- outcomes ---- */

/*
 * After a call whose expected status is want (or alt, when two rules of spec/api.md apply
 * and it does not say which wins; SM_OK for none): true when it succeeded as the model
 * wants, so its effect is to be applied; false when it failed as wanted, or because of
 * an injected fault, and then nothing changed.
 */
static bool outcome(sm_status st, sm_status want, sm_status alt, const char *what)
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
static bool failed_last_munmap(void)
{
    return F.fired == 1 && F.last_fn == SM_OS_MUNMAP;
}

/* ---- picking objects and sizes ---- */

static size_t overflowing(uint16_t v)
{
    return SIZE_MAX - v % (2 * page);
}

/* A buffer or enclave size: small, around a page boundary, up to three pages, 0 or
   overflowing, or the size of an enclave or buffer (so that open_into can match). */
static size_t pick_size(fz_in *in)
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

static bool live_buf(const mbuf *b)
{
    return b->state != FZ_DESTROYED;
}

/* A slot for a new object: the first without a live one from the input's choice. */
static mbuf *free_buf(fz_in *in)
{
    unsigned k = fz_u8(in);

    for (unsigned i = 0; i < NB; i++)
        if (!live_buf(&M.b[(k + i) % NB]))
            return &M.b[(k + i) % NB];
    return NULL;
}

static menc *free_enc(fz_in *in)
{
    unsigned k = fz_u8(in);

    for (unsigned i = 0; i < NE; i++)
        if (!M.e[(k + i) % NE].alive)
            return &M.e[(k + i) % NE];
    return NULL;
}

static mstr *free_str(fz_in *in)
{
    unsigned k = fz_u8(in);

    for (unsigned i = 0; i < NS; i++)
        if (!M.s[(k + i) % NS].alive)
            return &M.s[(k + i) % NS];
    return NULL;
}

#define BUF_ID(b) ((unsigned)((b) - M.b))
#define ENC_ID(e) ((unsigned)((e) - M.e))
#define STR_ID(s) ((unsigned)((s) - M.s))

/* ---- secrets: factories (factories.h), states (secrets.h), OS calls (calls.h) ---- */

#define SEC_ID(s) ((unsigned)((s) - M.sec))
#define SECRET_MAX (SIZE_MAX >> 2) /* larger lengths are SM_E_INVAL (secret.h) */

/* The calls of op's rows (calls.h), unless an interrupted call is planned. */
static void check_calls(const char *what, const fz_calls own, const char *op)
{
    fz_calls seen, want = { 0 };

    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        if (F.plan[fn].armed && F.plan[fn].err == EINTR)
            return; /* an interrupted call is retried: one call more, never a failure */
    memcpy(seen, own, sizeof seen);
    /*
     * A view of the enclave key that could not shut a share again leaves it open until
     * the next view shuts it (src/coffer.c, close_shares): that view skips opening it,
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
    /* An encrypted secret's window is a new mapping each time: nothing to probe at rest. */
    if (s->open && s->addr != NULL && s->fac != FACT_ENCRYPTED) {
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

static void check_all(void)
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

/* ---- buffers ---- */

/* Run one table operation that only changes the state (freeze, melt). */
static void op_state(fz_in *in, int r)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    sm_status want = rows[r]->st[b->state], st;

    fz_faults_before(&F);
    st = r == R_FREEZE ? sm_buffer_freeze(b->h) : sm_buffer_melt(b->h);
    fz_faults_after(&F);
    fz_trace("%s buffer %u: %s", row_names[r], BUF_ID(b), fz_st(st));
    if (outcome(st, want, SM_OK, row_names[r])) {
        b->state = rows[r]->next[b->state];
        b->opened = false;
    }
    M.touched |= 1u << BUF_ID(b);
}

/* copy, copy_at, move, move_at */
static void op_write(fz_in *in, int r)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    bool at = r == R_COPY_AT || r == R_MOVE_AT, move = r == R_MOVE || r == R_MOVE_AT;
    size_t off = at ? fz_u16(in) % (b->size + 2) : 0;
    size_t n = fz_u16(in) % (maxb + 1);
    sm_status want = rows[r]->st[b->state], alt = SM_OK, st;
    bool bad = off > b->size || n > b->size - off;

    if (b->state == FZ_DESTROYED)
        bad = false; /* a stale handle has no size to be out of */
    if (want == SM_OK && bad)
        want = SM_E_INVAL;
    else if (bad)
        alt = SM_E_INVAL;
    fz_fill(in, src, n);
    memcpy(src2, src, n);
    fz_faults_before(&F);
    if (r == R_COPY)
        st = sm_buffer_copy(b->h, src, n);
    else if (r == R_COPY_AT)
        st = sm_buffer_copy_at(b->h, off, src, n);
    else if (r == R_MOVE)
        st = sm_buffer_move(b->h, src, n);
    else
        st = sm_buffer_move_at(b->h, off, src, n);
    fz_faults_after(&F);
    fz_trace("%s buffer %u off %zu n %zu: %s", row_names[r], BUF_ID(b), off, n, fz_st(st));
    if (outcome(st, want, alt, row_names[r])) {
        memcpy(b->want + off, src2, n);
        for (size_t i = 0; i < n; i++)
            FZ_CHECK(src[i] == (move ? 0 : src2[i]), "%s: src byte %zu is %u", row_names[r], i,
                     src[i]);
    } else {
        FZ_CHECK(memcmp(src, src2, n) == 0, "failed %s changed src", row_names[r]);
    }
}

/* scramble, wipe */
static void op_fill(fz_in *in, int r)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    sm_status want = rows[r]->st[b->state], st;

    fz_faults_before(&F);
    st = r == R_SCRAMBLE ? sm_buffer_scramble(b->h) : sm_buffer_wipe(b->h);
    fz_faults_after(&F);
    fz_trace("%s buffer %u: %s", row_names[r], BUF_ID(b), fz_st(st));
    if (!outcome(st, want, SM_OK, row_names[r])) {
        /* A scramble whose generator could not be keyed wipes what it wrote: the whole
           buffer (spec/fault-injection.md, SM-REQ-030's exceptions). */
        if (r == R_SCRAMBLE && st == SM_E_RANDOM)
            memset(b->want, 0, b->size);
        return;
    }
    if (r == R_WIPE) {
        memset(b->want, 0, b->size);
        return;
    }
    /* New random bytes, which the model cannot know: they must differ, then are adopted. */
    if (b->size >= 16)
        FZ_CHECK(memcmp(b->want, sm_buffer_data(b->h), b->size) != 0, "scramble changed nothing");
    memcpy(b->want, sm_buffer_data(b->h), b->size);
}

static void op_equal(fz_in *in)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    uint8_t how = fz_u8(in);
    size_t n = b->size;
    bool eq = false, expect;
    sm_status want = rows[R_EQUAL]->st[b->state], st;

    if (b->state == FZ_DESTROYED)
        n = fz_u8(in);
    else
        memcpy(src, b->want, n);
    switch (how % 4) {
    case 0:
        break;
    case 1:
        if (n > 0)
            src[fz_u16(in) % n] ^= (uint8_t)(1u << (how >> 5));
        break;
    case 2:
        n = how & 0x80 ? n + 1 : n - (n > 0);
        src[n > 0 ? n - 1 : 0] = 0;
        break;
    default:
        n = fz_u16(in) % (maxb + 1);
        fz_fill(in, src, n);
        break;
    }
    expect = b->state != FZ_DESTROYED && n == b->size && memcmp(src, b->want, n) == 0;
    fz_faults_before(&F);
    st = sm_buffer_equal(b->h, src, n, &eq);
    fz_faults_after(&F);
    fz_trace("equal buffer %u n %zu: %s %d", BUF_ID(b), n, fz_st(st), eq);
    if (outcome(st, want, SM_OK, "equal"))
        FZ_CHECK(eq == expect, "equal gave %d, model %d", eq, expect);
}

/* new, from_bytes, random */
static void op_create(fz_in *in, unsigned kind)
{
    static const char *const names[] = { "buffer_new", "buffer_from_bytes", "buffer_random" };
    mbuf *b = free_buf(in);
    /* pick_size gives sizes up to MAX_FIFO (a flushed stream's) or overflowing ones. */
    size_t size = pick_size(in), k = size <= MAX_FIFO ? size : 0;
    sm_buffer out = { 0x0badull };
    sm_status want = size == 0 || size > MAX_FIFO ? SM_E_INVAL : SM_OK, st;

    if (b == NULL)
        return;
    if (kind == 1) /* only from_bytes has a source */
        fz_fill(in, src, k > 0 ? k : 1);
    memcpy(src2, src, k);
    fz_faults_before(&F);
    if (kind == 0)
        st = sm_buffer_new(size, &out);
    else if (kind == 1)
        st = sm_buffer_from_bytes(src, size, &out);
    else
        st = sm_buffer_random(size, &out);
    fz_faults_after(&F);
    fz_trace("%s %zu into %u: %s", names[kind], size, BUF_ID(b), fz_st(st));
    if (!outcome(st, want, SM_OK, names[kind])) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", names[kind]);
        FZ_CHECK(memcmp(src, src2, k) == 0, "failed %s changed src", names[kind]);
        return;
    }
    b->h = out;
    b->size = size;
    b->opened = false;
    b->state = kind == 0 ? FZ_MUTABLE : FZ_FROZEN;
    M.made++;
    if (kind == 0) {
        memset(b->want, 0, size);
    } else if (kind == 1) {
        memcpy(b->want, src2, size);
        for (size_t i = 0; i < size; i++)
            FZ_CHECK(src[i] == 0, "from_bytes did not wipe src");
    } else {
        memcpy(b->want, sm_buffer_data(out), size);
    }
    M.touched |= 1u << BUF_ID(b);
}

static void op_destroy_buf(fz_in *in)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    sm_status want = rows[R_DESTROY]->st[b->state], st;

    fz_faults_before(&F);
    st = sm_buffer_destroy(b->h);
    fz_faults_after(&F);
    fz_trace("destroy buffer %u: %s", BUF_ID(b), fz_st(st));
    if (outcome(st, want, SM_OK, "destroy")) {
        b->state = rows[R_DESTROY]->next[b->state];
    } else if (want == SM_OK && failed_last_munmap()) {
        /* SM-REQ-030's exception: wiped and opened, still mapped, can be retried. */
        memset(b->want, 0, b->size);
        b->opened = true;
    }
    M.touched |= 1u << BUF_ID(b);
}

static void op_seal(fz_in *in)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    menc *e = free_enc(in);
    sm_enclave out = { 0x0badull };
    sm_status want = rows[R_SEAL]->st[b->state], st;

    if (e == NULL)
        return;
    if (want == SM_OK && M.exhausted)
        want = SM_E_STATE;
    fz_faults_before(&F);
    st = sm_buffer_seal(b->h, &out);
    fz_faults_after(&F);
    fz_trace("seal buffer %u into enclave %u: %s", BUF_ID(b), ENC_ID(e), fz_st(st));
    M.touched |= 1u << BUF_ID(b);
    if (!outcome(st, want, SM_OK, "seal")) {
        FZ_CHECK(out.id == 0x0badull, "failed seal wrote its out-parameter");
        return;
    }
    e->h = out;
    e->alive = true;
    e->size = b->size;
    e->known = true;
    memcpy(e->pt, b->want, b->size);
    b->state = rows[R_SEAL]->next[b->state];
}

/* ---- enclaves ---- */

static void op_enclave_new(fz_in *in, bool random)
{
    menc *e = free_enc(in);
    size_t size = pick_size(in), k = size <= MAX_FIFO ? size : 0;
    sm_enclave out = { 0x0badull };
    sm_status want = size == 0 || size > MAX_FIFO ? SM_E_INVAL
                   : M.exhausted                  ? SM_E_STATE
                                                  : SM_OK;
    sm_status st;

    if (e == NULL)
        return;
    if (!random)
        fz_fill(in, src, k > 0 ? k : 1);
    memcpy(src2, src, k);
    fz_faults_before(&F);
    st = random ? sm_enclave_random(size, &out) : sm_enclave_new(src, size, &out);
    fz_faults_after(&F);
    fz_trace("enclave_%s %zu into %u: %s", random ? "random" : "new", size, ENC_ID(e), fz_st(st));
    if (!outcome(st, want, SM_OK, random ? "enclave_random" : "enclave_new")) {
        FZ_CHECK(out.id == 0x0badull, "failed enclave_new wrote its out-parameter");
        FZ_CHECK(memcmp(src, src2, k) == 0, "failed enclave_new changed src");
        return;
    }
    if (!random)
        for (size_t i = 0; i < size; i++)
            FZ_CHECK(src[i] == 0, "enclave_new did not wipe src");
    e->h = out;
    e->alive = true;
    e->size = size;
    e->known = !random;
    memcpy(e->pt, src2, random ? 0 : size);
}

/* The plaintext that an open gave: the model's, or learnt at the first open. */
static void check_plaintext(menc *e, const uint8_t *d)
{
    if (!e->known) {
        memcpy(e->pt, d, e->size);
        e->known = true;
    }
    FZ_CHECK(memcmp(d, e->pt, e->size) == 0, "enclave %u: plaintext differs", ENC_ID(e));
}

static void op_open(fz_in *in)
{
    menc *e = &M.e[fz_u8(in) % NE];
    mbuf *b = free_buf(in);
    sm_buffer out = { 0x0badull };
    sm_status want = e->alive ? SM_OK : SM_E_STATE, st;

    if (b == NULL)
        return;
    fz_faults_before(&F);
    st = sm_enclave_open(e->h, &out);
    fz_faults_after(&F);
    fz_trace("open enclave %u into buffer %u: %s", ENC_ID(e), BUF_ID(b), fz_st(st));
    if (!outcome(st, want, SM_OK, "enclave_open")) {
        FZ_CHECK(out.id == 0x0badull, "failed open wrote its out-parameter");
        return;
    }
    b->h = out;
    b->state = FZ_FROZEN;
    b->size = e->size;
    b->opened = false;
    M.made++;
    check_plaintext(e, sm_buffer_data(out));
    memcpy(b->want, e->pt, e->size);
    M.touched |= 1u << BUF_ID(b);
}

static void op_open_into(fz_in *in)
{
    menc *e = &M.e[fz_u8(in) % NE];
    mbuf *b = &M.b[fz_u8(in) % NB];
    sm_status want = SM_OK, alt = SM_OK, st;
    bool bad_state = b->state != FZ_MUTABLE, bad_size = live_buf(b) && b->size != e->size;

    /* The enclave first (it is named first), then dst's state and size. */
    if (!e->alive) {
        want = SM_E_STATE;
    } else if (bad_state) {
        want = SM_E_STATE;
        alt = bad_size ? SM_E_INVAL : SM_OK;
    } else if (bad_size) {
        want = SM_E_INVAL;
    }
    fz_faults_before(&F);
    st = sm_enclave_open_into(e->h, b->h);
    fz_faults_after(&F);
    fz_trace("open enclave %u into buffer %u: %s", ENC_ID(e), BUF_ID(b), fz_st(st));
    M.touched |= 1u << BUF_ID(b);
    if (outcome(st, want, alt, "enclave_open_into")) {
        check_plaintext(e, sm_buffer_data(b->h));
        memcpy(b->want, e->pt, e->size);
    }
}

static void op_enclave_destroy(fz_in *in)
{
    menc *e = &M.e[fz_u8(in) % NE];
    sm_status st;

    fz_faults_before(&F);
    st = sm_enclave_destroy(e->h);
    fz_faults_after(&F);
    fz_trace("destroy enclave %u: %s", ENC_ID(e), fz_st(st));
    if (outcome(st, e->alive ? SM_OK : SM_E_STATE, SM_OK, "enclave_destroy"))
        e->alive = false;
}

/* ---- streams ---- */

static void op_stream_new(fz_in *in)
{
    mstr *s = free_str(in);
    sm_stream out = { 0x0badull };
    sm_status st;

    if (s == NULL)
        return;
    fz_faults_before(&F);
    st = sm_stream_new(&out);
    fz_faults_after(&F);
    fz_trace("stream_new %u: %s", STR_ID(s), fz_st(st));
    if (!outcome(st, SM_OK, SM_OK, "stream_new")) {
        FZ_CHECK(out.id == 0x0badull, "failed stream_new wrote its out-parameter");
        return;
    }
    s->h = out;
    s->alive = true;
    s->len = 0;
    M.made++;
}

static size_t pick_stream_size(fz_in *in)
{
    uint16_t v = fz_u16(in);

    switch (v >> 14) {
    case 0: case 1:
        return v % 65;
    case 2:
        return chunk_cap - 40 + v % 81;
    default:
        return v % (2 * chunk_cap);
    }
}

static void op_stream_write(fz_in *in)
{
    mstr *s = &M.s[fz_u8(in) % NS];
    size_t n = pick_stream_size(in);
    sm_status want = !s->alive ? SM_E_STATE : n > 0 && M.exhausted ? SM_E_STATE : SM_OK, st;

    if (s->len + n > MAX_FIFO)
        n = MAX_FIFO - s->len;
    fz_fill(in, src, n);
    memcpy(src2, src, n);
    fz_faults_before(&F);
    st = sm_stream_write(s->h, src, n);
    fz_faults_after(&F);
    fz_trace("stream_write %u n %zu: %s", STR_ID(s), n, fz_st(st));
    if (!outcome(st, want, SM_OK, "stream_write")) {
        FZ_CHECK(memcmp(src, src2, n) == 0, "failed stream_write changed src");
        return;
    }
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(src[i] == 0, "stream_write did not wipe src");
    memcpy(s->fifo + s->len, src2, n);
    s->len += n;
}

static void consume(mstr *s, size_t n)
{
    memmove(s->fifo, s->fifo + n, s->len - n);
    s->len -= n;
}

static void op_stream_read(fz_in *in)
{
    mstr *s = &M.s[fz_u8(in) % NS];
    size_t cap = pick_stream_size(in), got = 0;
    sm_status want = !s->alive ? SM_E_STATE : s->len == 0 ? SM_E_EOF : SM_OK, st;
    /* A read seals nothing (a chunk read in part keeps its place): no nonce needed. */
    sm_status alt = SM_OK;

    memset(src, 0xa5, cap);
    fz_faults_before(&F);
    st = sm_stream_read(s->h, src, cap, &got);
    fz_faults_after(&F);
    fz_trace("stream_read %u cap %zu: %s got %zu", STR_ID(s), cap, fz_st(st), got);
    if (!outcome(st, want, alt, "stream_read")) {
        for (size_t i = 0; i < cap; i++)
            FZ_CHECK(src[i] == 0xa5 || src[i] == 0, "failed stream_read left data in dst");
        return;
    }
    FZ_CHECK(got == (cap < s->len ? cap : s->len), "stream_read got %zu of %zu, cap %zu", got,
             s->len, cap);
    FZ_CHECK(memcmp(src, s->fifo, got) == 0, "stream_read: bytes differ from the FIFO");
    consume(s, got);
}

static void op_stream_take(fz_in *in, bool all)
{
    const char *what = all ? "stream_flush" : "stream_next";
    mstr *s = &M.s[fz_u8(in) % NS];
    mbuf *b = free_buf(in);
    sm_buffer out = { 0x0badull };
    sm_status want = !s->alive ? SM_E_STATE : s->len == 0 ? SM_E_EOF : SM_OK, st;
    size_t n;

    if (b == NULL)
        return;
    fz_faults_before(&F);
    st = all ? sm_stream_flush(s->h, &out) : sm_stream_next(s->h, &out);
    fz_faults_after(&F);
    fz_trace("%s %u into buffer %u: %s", what, STR_ID(s), BUF_ID(b), fz_st(st));
    if (!outcome(st, want, SM_OK, what)) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", what);
        return;
    }
    n = sm_buffer_size(out);
    M.made++;
    FZ_CHECK(all ? n == s->len : n > 0 && n <= s->len && n <= chunk_cap, "%s gave %zu of %zu",
             what, n, s->len);
    FZ_CHECK(memcmp(sm_buffer_data(out), s->fifo, n) == 0, "%s: bytes differ from the FIFO",
             what);
    b->h = out;
    b->state = FZ_FROZEN;
    b->size = n;
    b->opened = false;
    memcpy(b->want, s->fifo, n);
    M.touched |= 1u << BUF_ID(b);
    consume(s, n);
}

static void op_stream_destroy(fz_in *in)
{
    mstr *s = &M.s[fz_u8(in) % NS];
    sm_status st;

    fz_faults_before(&F);
    st = sm_stream_destroy(s->h);
    fz_faults_after(&F);
    fz_trace("stream_destroy %u: %s", STR_ID(s), fz_st(st));
    if (outcome(st, s->alive ? SM_OK : SM_E_STATE, SM_OK, "stream_destroy"))
        s->alive = false;
}

/* ---- raw memory (securemem/mem.h) ---- */

static void op_mem_alloc(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    uint16_t v = fz_u16(in);
    /* 0, or a size that overflows when rounded to pages (spec/api.md: SM_E_INVAL). */
    size_t n = v >> 15 ? (v & 1 ? 0 : SIZE_MAX - (v >> 1) % (page - 1)) : 1 + v % maxb;
    void *p = (void *)0x0bad;
    sm_status st;

    if (m->p != NULL)
        return;
    fz_faults_before(&F);
    st = sm_mem_alloc(n, &p);
    fz_faults_after(&F);
    fz_trace("mem_alloc %u n %zu: %s", (unsigned)(m - M.m), n, fz_st(st));
    if (!outcome(st, n == 0 || n > maxb ? SM_E_INVAL : SM_OK, SM_OK, "mem_alloc")) {
        FZ_CHECK(p == (void *)0x0bad, "failed mem_alloc wrote its out-parameter");
        return;
    }
    FZ_CHECK(((uintptr_t)p & (page - 1)) == 0, "mem_alloc: not page-aligned");
    m->p = p;
    m->n = n;
    m->len = (n + page - 1) & ~(page - 1);
    m->prot = SM_PROT_READWRITE;
    memset(m->want, 0, m->len);
}

static void op_mem_free(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    uint8_t how = fz_u8(in);
    sm_status want = SM_OK, st;
    uint8_t *p = m->p;
    size_t n = m->n;

    if (p == NULL)
        return;
    if (how % 8 == 1) {
        p += 1 + how % 7;
        want = SM_E_INVAL;
    } else if (how % 8 == 2) {
        n = 0;
        want = SM_E_INVAL;
    } else if (how % 8 == 3) {
        p = NULL;
        want = SM_E_INVAL;
    }
    fz_faults_before(&F);
    st = sm_mem_free(p, n);
    fz_faults_after(&F);
    fz_trace("mem_free %u (%u): %s", (unsigned)(m - M.m), how % 8, fz_st(st));
    if (outcome(st, want, SM_OK, "mem_free")) {
        m->p = NULL;
    } else if (want == SM_OK && failed_last_munmap()) {
        memset(m->want, 0, m->len);
        m->prot = SM_PROT_READWRITE;
    }
}

static void op_mem_protect(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    unsigned prot = fz_u8(in) % 4;
    sm_status st;

    if (m->p == NULL)
        return;
    fz_faults_before(&F);
    st = sm_mem_protect(m->p, m->len, (sm_prot)prot);
    fz_faults_after(&F);
    fz_trace("mem_protect %u %u: %s", (unsigned)(m - M.m), prot, fz_st(st));
    if (outcome(st, prot > SM_PROT_READWRITE ? SM_E_INVAL : SM_OK, SM_OK, "mem_protect"))
        m->prot = (sm_prot)prot;
}

static void op_mem_lock(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    uint8_t how = fz_u8(in);
    bool lock = how & 1, zero = (how & 6) == 2;
    sm_status st;

    /* Not on PROT_NONE pages, where mlock's outcome depends on the kernel (and ASan
       makes mlock a no-op): the flavours would disagree. */
    if (m->p == NULL || m->prot == SM_PROT_NONE)
        return;
    fz_faults_before(&F);
    st = lock ? sm_mem_lock(m->p, zero ? 0 : m->len) : sm_mem_unlock(m->p, zero ? 0 : m->len);
    fz_faults_after(&F);
    fz_trace("mem_%slock %u: %s", lock ? "" : "un", (unsigned)(m - M.m), fz_st(st));
    (void)outcome(st, zero ? SM_E_INVAL : SM_OK, SM_OK, "mem_lock");
}

/* sm_random, sm_wipe and sm_equal on a writable region (they are the caller's bytes). */
static void op_mem_bytes(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    uint8_t how = fz_u8(in);
    size_t off, n;
    sm_status st;

    if (m->p == NULL || m->prot != SM_PROT_READWRITE)
        return;
    off = fz_u16(in) % m->len;
    n = fz_u16(in) % (m->len - off + 1);
    switch (how % 3) {
    case 0:
        fz_faults_before(&F);
        st = sm_random(m->p + off, n);
        fz_faults_after(&F);
        fz_trace("random %u off %zu n %zu: %s", (unsigned)(m - M.m), off, n, fz_st(st));
        if (outcome(st, SM_OK, SM_OK, "random")) {
            if (n >= 16)
                FZ_CHECK(memcmp(m->p + off, m->want + off, n) != 0, "sm_random changed nothing");
            memcpy(m->want + off, m->p + off, n);
        } else {
            memset(m->want + off, 0, n); /* its documented exception: wiped on error */
        }
        break;
    case 1:
        sm_wipe(m->p + off, n);
        memset(m->want + off, 0, n);
        fz_trace("wipe %u off %zu n %zu", (unsigned)(m - M.m), off, n);
        break;
    default:
        memcpy(src, m->want + off, n);
        if (n > 0 && (how & 8))
            src[fz_u16(in) % n] ^= 0x10;
        FZ_CHECK(sm_equal(m->p + off, src, n) == (memcmp(m->p + off, src, n) == 0),
                 "sm_equal differs from memcmp");
        fz_trace("equal %u off %zu n %zu", (unsigned)(m - M.m), off, n);
        break;
    }
}

/* ---- secrets (securemem/secret.h) ---- */

static void step(fz_in *in);
static void rebase(void);

static msec *free_sec(fz_in *in)
{
    unsigned k = fz_u8(in);

    for (unsigned i = 0; i < NSEC; i++)
        if (!M.sec[(k + i) % NSEC].open)
            return &M.sec[(k + i) % NSEC];
    return NULL;
}

/* Small, around a page, up to three pages; 0 or 2^62 and more (refused); or just below
   2^62, which passes the argument check and which no OS maps (SM_E_NOMEM). */
static size_t pick_secret_size(fz_in *in)
{
    uint16_t v = fz_u16(in);

    switch (v >> 13) {
    case 0: case 1: case 2:
        return 1 + v % 64;
    case 3:
        return page - 48 + v % 97;
    case 4: case 5:
        return 1 + v % maxb;
    case 6:
        return (v & 1) ? 0 : SECRET_MAX + 1 + (v >> 1);
    default:
        return SECRET_MAX - (v & 0xfff);
    }
}

static void op_secret_new(fz_in *in, bool random)
{
    const char *what = random ? "secret_random" : "secret_new";
    msec *s = free_sec(in);
    unsigned fac = fz_u8(in) % NFACT;
    size_t size = pick_secret_size(in), k = size <= maxb ? size : 0;
    sm_secret out = { 0x0badull };
    bool coffer = fz_coffer_exists();
    fz_calls c0, c1, own = { 0 };
    sm_status want, st;

    if (s == NULL)
        return;
    if (size == 0 || size > SECRET_MAX)
        want = SM_E_INVAL;
    else if (size > maxb)
        want = SM_E_NOMEM;
    else if (fac == FACT_ENCRYPTED && M.exhausted)
        want = SM_E_STATE; /* the seal needs a nonce */
    else
        want = SM_OK;
    if (!random)
        fz_fill(in, src, k > 0 ? k : 1);
    memcpy(src2, src, k);
    fz_calls_now(c0);
    fz_faults_before(&F);
    st = random ? sm_secret_random(factory(fac), size, &out)
                : sm_secret_new(factory(fac), src, size, &out);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_trace("%s %s %zu into %u: %s", what, factory_name(fac), size, SEC_ID(s), fz_st(st));
    if (!outcome(st, want, SM_OK, what)) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", what);
        FZ_CHECK(memcmp(src, src2, k) == 0, "failed %s changed src", what);
        return;
    }
    /* The first seal of the encrypted factory makes the enclave key, and one after the
       key was aged re-splits it: calls of their own. */
    if (F.fired == 0 && (fac != FACT_ENCRYPTED || (coffer && !M.aged))) {
        fz_calls_add(own, c0, c1);
        check_calls(what, own, fz_sec_calls_row(random ? "random" : "new", fac));
    }
    if (!random)
        for (size_t i = 0; i < size; i++)
            FZ_CHECK(src[i] == 0, "%s did not wipe src", what);
    s->h = out;
    s->open = true;
    s->fac = fac;
    s->size = size;
    s->depth = 0;
    s->readable = s->opened = s->audited = false;
    s->addr = NULL;
    memcpy(s->want, src2, random ? 0 : size);
    memset(s->have, !random, size);
    if (fac != FACT_CUSTOM)
        M.made++; /* an encrypted secret's fill region is made, then freed by its seal */
}

/* What sm_secret_from_callback's fill sees and does (op_secret_from_callback). */
typedef struct fill_ctx {
    const uint8_t *from;   /* the bytes to write */
    size_t         size;   /* the length asked for */
    sm_status      ret;    /* what the fill returns */
    unsigned       calls;
} fill_ctx;

static sm_status fill_fn(uint8_t *bytes, size_t len, void *ctx)
{
    fill_ctx *c = ctx;

    c->calls++;
    FZ_CHECK(bytes != NULL && len == c->size, "from_callback: fill got %p and %zu, want %zu",
             (void *)bytes, len, c->size);
    /* Writable in full (a fault here is the finding); a failing fill writes too. */
    memcpy(bytes, c->from, len);
    return c->ret;
}

/*
 * sm_secret_from_callback: as sm_secret_new (the same factories, sizes and faults, its
 * own syscalls.tsv rows), with the bytes written in place by a fill that sometimes
 * fails with one of the caller's statuses, which is then the result, nothing made.
 */
static void op_secret_from_callback(fz_in *in)
{
    const char *what = "secret_from_callback";
    msec *s = free_sec(in);
    unsigned fac = fz_u8(in) % NFACT;
    size_t size = pick_secret_size(in), k = size <= maxb ? size : 0;
    uint8_t how = fz_u8(in);
    sm_secret out = { 0x0badull };
    bool coffer = fz_coffer_exists();
    fill_ctx c = { src, size, (how & 3) == 3 ? (sm_status)(SM_E_USER + (how >> 2)) : SM_OK, 0 };
    fz_calls c0, c1, own = { 0 };
    sm_status want, st;

    if (s == NULL)
        return;
    if (size == 0 || size > SECRET_MAX)
        want = SM_E_INVAL;
    else if (size > maxb)
        want = SM_E_NOMEM;
    else if (fac == FACT_ENCRYPTED && M.exhausted && c.ret == SM_OK)
        want = SM_E_STATE; /* the seal, after the fill, needs a nonce */
    else
        want = c.ret;
    fz_fill(in, src, k > 0 ? k : 1);
    memcpy(src2, src, k);
    fz_calls_now(c0);
    fz_faults_before(&F);
    st = sm_secret_from_callback(factory(fac), size, fill_fn, &c, &out);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_trace("%s %s %zu into %u (fill %s): %s", what, factory_name(fac), size, SEC_ID(s),
             fz_st(c.ret), fz_st(st));
    FZ_CHECK(c.calls <= 1, "%s: fill called %u times", what, c.calls);
    /* Refused before the storage is made: no fill; an injected fault may stop it too. */
    if (size == 0 || size > maxb)
        FZ_CHECK(c.calls == 0, "%s: fill called for a refused size", what);
    else if (F.fired == 0)
        FZ_CHECK(c.calls == 1, "%s: fill not called", what);
    if (c.calls == 0 && want == c.ret && c.ret != SM_OK)
        want = SM_OK; /* not reached: only an injected fault can fail it now */
    if (!outcome(st, want, SM_OK, what)) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", what);
        return;
    }
    FZ_CHECK(c.calls == 1 && c.ret == SM_OK, "%s: SM_OK, fill called %u times", what, c.calls);
    if (F.fired == 0 && (fac != FACT_ENCRYPTED || (coffer && !M.aged))) {
        fz_calls_add(own, c0, c1);
        check_calls(what, own, fz_sec_calls_row("from_callback", fac));
    }
    FZ_CHECK(memcmp(src, src2, size) == 0, "%s changed the fill's source", what);
    s->h = out;
    s->open = true;
    s->fac = fac;
    s->size = size;
    s->depth = 0;
    s->readable = s->opened = s->audited = false;
    s->addr = NULL;
    memcpy(s->want, src2, size);
    memset(s->have, 1, size);
    if (fac != FACT_CUSTOM)
        M.made++; /* its storage is a region made, as for sm_secret_new */
}

/*
 * sm_secret_from_buffer: the buffer's bytes into a new secret, the buffer destroyed, as
 * sm_buffer_destroy's row says (a stale buffer: SM_E_STATE), and all or nothing, except
 * that a failed last munmap of the buffer's pages leaves it wiped and read-write, as
 * after a failed sm_buffer_destroy (secret.h). That munmap is the call's first, but for
 * the encrypted factory, whose seal frees the fill region first (its second).
 */
static void op_secret_from_buffer(fz_in *in)
{
    const char *what = "secret_from_buffer";
    msec *s = free_sec(in);
    mbuf *b = &M.b[fz_u8(in) % NB];
    unsigned fac = fz_u8(in) % NFACT;
    sm_secret out = { 0x0badull };
    bool coffer = fz_coffer_exists(), frozen = b->state == FZ_FROZEN && !b->opened;
    sm_status want = rows[R_DESTROY]->st[b->state], st;
    const fz_plan *p = &F.plan[SM_OS_MUNMAP];
    fz_calls c0, c1, own = { 0 };

    /* The model's secrets hold maxb bytes; a stream's flush gives larger buffers. */
    if (s == NULL || (b->state != FZ_DESTROYED && b->size > maxb))
        return;
    if (want == SM_OK && fac == FACT_ENCRYPTED && M.exhausted)
        want = SM_E_STATE; /* the seal needs a nonce */
    fz_calls_now(c0);
    fz_faults_before(&F);
    st = sm_secret_from_buffer(factory(fac), b->h, &out);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_trace("%s %s buffer %u into %u: %s", what, factory_name(fac), BUF_ID(b), SEC_ID(s),
             fz_st(st));
    M.touched |= 1u << BUF_ID(b);
    if (!outcome(st, want, SM_OK, what)) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", what);
        if (want == SM_OK && failed_last_munmap() &&
            p->nth - F.before[SM_OS_MUNMAP] == (fac == FACT_ENCRYPTED ? 2u : 1u)) {
            memset(b->want, 0, b->size);
            b->opened = true;
        }
        return;
    }
    if (F.fired == 0 && frozen && (fac != FACT_ENCRYPTED || (coffer && !M.aged))) {
        fz_calls_add(own, c0, c1);
        check_calls(what, own, fz_sec_calls_row("from_buffer", fac));
    }
    s->h = out;
    s->open = true;
    s->fac = fac;
    s->size = b->size;
    s->depth = 0;
    s->readable = s->opened = s->audited = false;
    s->addr = NULL;
    memcpy(s->want, b->want, b->size);
    memset(s->have, 1, b->size);
    if (fac != FACT_CUSTOM)
        M.made++;
    b->state = rows[R_DESTROY]->next[b->state];
}

/* What an access sees: the model's bytes (a random secret's are learnt here), read-only
   (read-write only in a window that a failed close opened), in the factory's layout. */
static void check_window(msec *s, const uint8_t *bytes)
{
    char what[32];
    fz_prot want = s->opened ? FZ_PROT_RW : FZ_PROT_READ, a, b;

    snprintf(what, sizeof what, "secret %u", SEC_ID(s));
    if (s->fac == FACT_GUARDED || s->fac == FACT_ENCRYPTED) {
        fz_check_layout(bytes, s->size, s->opened, what);
    } else {
        if (s->fac == FACT_PROTECTED)
            FZ_CHECK((uintptr_t)bytes % page == 0, "%s: not at the start of a page", what);
        a = fz_probe(bytes);
        b = fz_probe(bytes + s->size - 1);
        FZ_CHECK(a == want && b == want, "%s: window is %s and %s, want %s", what,
                 fz_prot_name(a), fz_prot_name(b), fz_prot_name(want));
    }
    for (size_t i = 0; i < s->size; i++)
        if (!s->have[i]) {
            s->want[i] = bytes[i];
            s->have[i] = 1;
        }
    FZ_CHECK(memcmp(bytes, s->want, s->size) == 0, "%s: bytes differ from the model", what);
}

typedef struct frame {
    msec    *s;
    fz_in   *in;
    uint8_t  how;
    bool     called;
    unsigned open_fired; /* faults that fired while the window opened */
    bool     share_was;  /* M.share_open when the access began: what its own view found */
    fz_calls start, entered, leaving;
} frame;

/* Mostly success; sometimes an error of fn's own, which the access must return as is. */
static sm_status fn_status(uint8_t how)
{
    switch (how & 7) {
    case 6:
        return SM_E_AUTH;
    case 7:
        return SM_E_IO;
    default:
        return SM_OK;
    }
}

/*
 * The callback: check the window, then run up to seven more operations of the input
 * inside it (nested accesses to this and other secrets, closes, other kinds), then
 * check the window again. The counts of the leave start afresh at its end (rebase), so
 * that the access's own OS calls and faults are told apart from those of its nest.
 */
static sm_status access_fn(const uint8_t *bytes, size_t len, void *ctx)
{
    frame *fr = ctx;
    msec *s = fr->s;
    unsigned inner = fr->how >> 3 & 7;

    fz_calls_now(fr->entered);
    fr->open_fired = fz_faults_after(&F);
    FZ_CHECK(!fr->called, "secret %u: fn called twice", SEC_ID(s));
    fr->called = true;
    FZ_CHECK(len == s->size, "secret %u: fn got %zu bytes, model %zu", SEC_ID(s), len, s->size);
    if (!s->readable) {
        s->readable = true;
        s->opened = false;
        if (s->fac == FACT_ENCRYPTED) {
            M.made++; /* each window is a guarded region made */
            /* Its view of the enclave key shut both shares: nothing fired, it opened. */
            if (fr->open_fired == 0)
                M.share_open = false;
        }
    }
    s->depth++;
    M.depth++;
    s->addr = bytes;
    check_window(s, bytes);
    check_all();
    fz_trace("  inside secret %u (depth %u): %u operations", SEC_ID(s), M.depth, inner);
    for (unsigned i = 0; i < inner && fz_more(fr->in) && M.ops < MAX_OPS && !M.tainted; i++) {
        M.ops++;
        step(fr->in);
    }
    if (!M.tainted)
        check_window(s, bytes); /* nothing of the nest changed this access's bytes */
    s->depth--;
    M.depth--;
    rebase();
    fz_calls_now(fr->leaving);
    return fn_status(fr->how);
}

/*
 * Which step of an access failed: its shut, when the failing call is one that only the
 * shut makes: the last mprotect of the access's row in syscalls.tsv, or a munmap (an
 * encrypted window's). One fault fired (outcome() stopped the input otherwise).
 */
static bool shut_failed(const msec *s)
{
    fz_calls want;
    const char *row = fz_sec_calls_row("with_bytes", s->fac);
    const fz_plan *p = &F.plan[F.last_fn];
    unsigned long first = F.before[F.last_fn] + 1 > p->nth ? F.before[F.last_fn] + 1 : p->nth;

    if (F.last_fn == SM_OS_MUNMAP)
        return true;
    FZ_CHECK(fz_calls_of(row, want), "syscalls.tsv has no row %s", row);
    return F.last_fn == SM_OS_MPROTECT && first - F.before[F.last_fn] == want[SM_OS_MPROTECT];
}

/* with_bytes and try_with_bytes (single-threaded, a try never finds anything to wait for). */
static void op_access(fz_in *in, bool try)
{
    const char *what = try ? "try_with_bytes" : "with_bytes";
    msec *s = &M.sec[fz_u8(in) % NSEC];
    frame fr = { .s = s, .in = in, .how = fz_u8(in), .share_was = M.share_open };
    int state = fz_sec_state(s->open, s->depth);
    const fz_sec_cell *cell = &sec_rows[try ? FZ_SOP_TRY : FZ_SOP_WITH]->cell[state];
    /* A failed shut kept the window open, or a failed audit may have left it readable. */
    bool stuck = (s->readable || s->audited) && s->depth == 0;
    sm_status fn_st = fn_status(fr.how), st;
    fz_calls end, own = { 0 };

    if (M.depth >= MAX_DEPTH)
        return;
    FZ_CHECK(!cell->waits, "%s: a cell that waits, with no other thread", what);
    fz_calls_now(fr.start);
    fz_faults_before(&F);
    st = try ? sm_secret_try_with_bytes(s->h, access_fn, &fr)
             : sm_secret_with_bytes(s->h, access_fn, &fr);
    fz_faults_after(&F);
    fz_calls_now(end);
    fz_trace("%s secret %u: %s", what, SEC_ID(s), fz_st(st));
    if (M.tainted)
        return;
    if (!fr.called) {
        /* Refused as the cell says, or its window could not be opened (a fault). */
        FZ_CHECK(!outcome(st, cell->st, SM_OK, what), "%s: SM_OK without calling fn", what);
        fz_calls_add(own, fr.start, end);
        if (cell->st != SM_OK)
            check_calls(what, own, NULL);
        return;
    }
    FZ_CHECK(cell->st == SM_OK, "%s: fn called, the table says %s", what, fz_st(cell->st));
    fz_calls_add(own, fr.start, fr.entered);
    fz_calls_add(own, fr.leaving, end);
    if (s->depth > 0 || (F.fired == 0 && !stuck)) {
        /* Joined (window 0), or opened and shut it (window 2). */
        FZ_CHECK(st == fn_st, "%s: %s, fn returned %s", what, fz_st(st), fz_st(fn_st));
        if (cell->window == 0)
            check_calls(what, own, NULL);
        else if (cell->window == 2 && fr.open_fired == 0 &&
                 !(M.aged && s->fac == FACT_ENCRYPTED)) {
            /*
             * The access's only view of the enclave key ran when its window opened, before
             * the nest: it found the shares as they were then (fr.share_was), while what
             * is open now is what the nest's last view left (regress-share-open-nested).
             */
            bool now = M.share_open;

            M.share_open = fr.share_was;
            check_calls(what, own, fz_sec_calls_row("with_bytes", s->fac));
            M.share_open = now;
        }
    } else if (F.fired == 0) {
        FZ_CHECK(st == fn_st, "%s: %s, fn returned %s", what, fz_st(st), fz_st(fn_st));
    } else if (fn_st != SM_OK) {
        /* The shut failed, and fn's error is what the access returns. */
        FZ_CHECK(st == fn_st, "%s: %s, fn returned %s", what, fz_st(st), fz_st(fn_st));
        if (F.fired > 1)
            M.tainted = true;
        return;
    } else {
        (void)outcome(st, SM_OK, SM_OK, what);
        return; /* the window stays open (secret.h), the next last exit shuts it */
    }
    if (s->depth == 0)
        s->readable = s->opened = s->audited = false;
}

static void op_read_at(fz_in *in)
{
    msec *s = &M.sec[fz_u8(in) % NSEC];
    uint16_t a = fz_u16(in), b = fz_u16(in);
    size_t off = (a & 0x8000) ? SIZE_MAX - (a & 0xff) : a % (s->size + 2);
    size_t n = (b & 0x8000) ? SIZE_MAX - (b & 0xff) : b % (s->size + 2), k = 0, got = 0x0bad;
    int state = fz_sec_state(s->open, s->depth);
    const fz_sec_cell *cell = &sec_rows[FZ_SOP_READ_AT]->cell[state];
    bool stuck = (s->readable || s->audited) && s->depth == 0;
    sm_status want = cell->st, st;
    fz_calls c0, c1, own = { 0 };

    if (want == SM_OK && off > s->size)
        want = SM_E_INVAL;
    if (want == SM_OK)
        k = n < s->size - off ? n : s->size - off;
    memset(src, 0xa5, maxb + 1);
    fz_calls_now(c0);
    fz_faults_before(&F);
    st = sm_secret_read_at(s->h, off, src, n, &got);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    fz_trace("read_at secret %u off %zu n %zu: %s got %zu", SEC_ID(s), off, n, fz_st(st), got);
    if (!outcome(st, want, SM_OK, "read_at")) {
        FZ_CHECK(got == 0x0bad, "failed read_at wrote *got");
        for (size_t i = 0; i <= maxb; i++)
            FZ_CHECK(src[i] == 0xa5 || src[i] == 0, "failed read_at left byte %zu in dst", i);
        if (want != SM_OK) {
            check_calls("read_at", own, NULL); /* refused before any OS call */
        } else if (F.fired > 0 && s->depth == 0 && s->audited) {
            M.tainted = true; /* which mprotect was the shut's is not known */
        } else if (F.fired > 0 && s->depth == 0 && shut_failed(s)) {
            if (s->fac == FACT_ENCRYPTED && !stuck)
                M.made++; /* the window it made stays */
            s->readable = true;
        }
        return;
    }
    FZ_CHECK(got == k, "read_at got %zu, model %zu", got, k);
    for (size_t i = 0; i < k; i++)
        if (!s->have[off + i]) {
            s->want[off + i] = src[i];
            s->have[off + i] = 1;
        }
    FZ_CHECK(memcmp(src, s->want + off, k) == 0, "read_at: bytes differ from the model");
    for (size_t i = k; i <= maxb; i++)
        FZ_CHECK(src[i] == 0xa5, "read_at wrote past its %zu bytes", k);
    /* Nothing to copy does not open the window (secret.h); a join changes nothing. */
    if (k == 0 || cell->window == 0)
        check_calls("read_at", own, NULL);
    else if (cell->window == 2 && !stuck && !(M.aged && s->fac == FACT_ENCRYPTED))
        check_calls("read_at", own, fz_sec_calls_row("with_bytes", s->fac));
    if (k > 0 && s->depth == 0) {
        if (s->fac == FACT_ENCRYPTED && !stuck)
            M.made++; /* each window is a guarded region made */
        s->readable = s->opened = s->audited = false;
    }
}

static void op_secret_close(fz_in *in)
{
    msec *s = &M.sec[fz_u8(in) % NSEC];
    sm_status want, st;
    int next;
    fz_calls c0, c1, own = { 0 };

    fz_sec_own_close(sec_rows[FZ_SOP_CLOSE], fz_sec_state(s->open, s->depth), &want, &next);
    fz_calls_now(c0);
    fz_faults_before(&F);
    st = sm_secret_close(s->h);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    fz_trace("close secret %u: %s", SEC_ID(s), fz_st(st));
    if (outcome(st, want, SM_OK, "close")) {
        /* The row is a close at rest; open pages need no mprotect to be wiped. */
        if (!s->readable && !s->opened)
            check_calls("close", own, fz_sec_calls_row("close", s->fac));
        s->open = next != FZ_SEC_CLOSED;
        s->readable = s->opened = s->audited = false;
        return;
    }
    if (want != SM_OK) {
        check_calls("close", own, NULL);
        return;
    }
    /*
     * Open again, as after a failed sm_buffer_destroy: unchanged if the pages could not
     * be opened for the wipe, wiped and read-write if only the final munmap failed. An
     * encrypted secret has no plaintext at rest, and its window is decrypted again.
     */
    if (failed_last_munmap() && s->fac != FACT_ENCRYPTED) {
        memset(s->want, 0, s->size);
        memset(s->have, 1, s->size);
        s->opened = true;
    }
}

/* size and is_closed, answered from the model's cell without any OS call. */
static void op_secret_query(fz_in *in)
{
    msec *s = &M.sec[fz_u8(in) % NSEC];
    int state = fz_sec_state(s->open, s->depth);
    fz_calls own;

    fz_trace("size/is_closed secret %u", SEC_ID(s));
    fz_sec_query(sec_rows, s->h, state, s->size, own);
    if (sec_rows[FZ_SOP_SIZE]->cell[state].window == 0 &&
        sec_rows[FZ_SOP_IS_CLOSED]->cell[state].window == 0)
        check_calls("size/is_closed", own, NULL);
}

static sm_status never_called(const uint8_t *bytes, size_t len, void *ctx)
{
    (void)bytes;
    (void)len;
    (void)ctx;
    fz_fail("a refused access called fn");
}

/*
 * Bad arguments and stale handles: NULL factory, source, callback and out-pointers,
 * lengths 0 and 2^62, custom tables that are incomplete or of another version
 * (SM_E_INVAL); ids that name no open secret (closed ones, those of other kinds,
 * forged: SM_E_STATE, 0, closed); a secret's id as every other kind. None makes an OS
 * call, writes its out-parameter or wipes its source.
 */
static void op_secret_bad(fz_in *in)
{
    static const uint64_t forged[] = {
        0, 0x0000000100000000ull, 0xf000000100000000ull, 0x5000000100000000ull,
        0x40000001ffffffffull, 0x4000000000000000ull, 0x1000000000000000ull, UINT64_MAX,
    };
    uint8_t how = fz_u8(in);
    msec *s = &M.sec[how % NSEC];
    sm_factory bad = *example_factory();
    const sm_factory *f = factory((how >> 2) % NFACT);
    sm_secret out = { 0x0badull }, x;
    sm_buffer bo;
    fz_calls c0, c1, own = { 0 };
    size_t got = 0x0bad;
    sm_status st;
    uint64_t id;

    switch (how >> 5) {
    case 0:
        bad.version = SM_FACTORY_VERSION + 1;
        break;
    case 1:
        bad.create = NULL;
        break;
    case 2:
        bad.seal = NULL;
        break;
    case 3:
        bad.make_readable = NULL;
        break;
    case 4:
        bad.make_unreadable = NULL;
        break;
    default:
        bad.destroy = NULL;
        break;
    }
    switch (fz_u8(in) % 4) {
    case 0:
        id = forged[fz_u8(in) % 8];
        break;
    case 1:
        id = M.b[fz_u8(in) % NB].h.id;
        break;
    case 2:
        id = M.e[fz_u8(in) % NE].h.id;
        break;
    default:
        id = M.s[fz_u8(in) % NS].h.id;
        break;
    }
    x.id = s->open ? id : s->h.id; /* a closed secret's own id, or an id of no secret */
    memset(src, 0x77, 16);
    fz_calls_now(c0);
#define SEC_INVAL(call)                                                                   \
    do {                                                                                  \
        st = (call);                                                                      \
        FZ_CHECK(st == SM_E_INVAL, "%s: %s, want SM_E_INVAL", #call, fz_st(st));           \
    } while (0)
#define SEC_STATE(call)                                                                   \
    do {                                                                                  \
        st = (call);                                                                      \
        FZ_CHECK(st == SM_E_STATE, "%s: %s, want SM_E_STATE", #call, fz_st(st));           \
    } while (0)
    SEC_INVAL(sm_secret_new(NULL, src, 16, &out));
    SEC_INVAL(sm_secret_new(f, NULL, 16, &out));
    SEC_INVAL(sm_secret_new(f, src, 16, NULL));
    SEC_INVAL(sm_secret_new(f, src, 0, &out));
    SEC_INVAL(sm_secret_new(&bad, src, 16, &out));
    SEC_INVAL(sm_secret_random(f, SECRET_MAX + 1, &out));
    SEC_INVAL(sm_secret_random(f, 16, NULL));
    SEC_INVAL(sm_secret_random(&bad, 16, &out));
    /* With a handle, live or not: the arguments are checked first (secret.c). */
    SEC_INVAL(sm_secret_with_bytes(s->h, NULL, NULL));
    SEC_INVAL(sm_secret_try_with_bytes(s->h, NULL, NULL));
    SEC_INVAL(sm_secret_read_at(s->h, 0, src, 1, NULL));
    SEC_INVAL(sm_secret_read_at(s->h, 0, NULL, 1, &got));
    SEC_STATE(sm_secret_with_bytes(x, never_called, NULL));
    SEC_STATE(sm_secret_try_with_bytes(x, never_called, NULL));
    SEC_STATE(sm_secret_read_at(x, 0, src, 1, &got));
    SEC_STATE(sm_secret_close(x));
#undef SEC_INVAL
#undef SEC_STATE
    FZ_CHECK(sm_secret_size(x) == 0 && sm_secret_is_closed(x), "id %016llx works as a secret",
             (unsigned long long)x.id);
    /* A secret's id is no buffer, enclave or stream. */
    bo.id = s->h.id;
    FZ_CHECK(sm_buffer_size(bo) == 0 && sm_buffer_destroy(bo) == SM_E_STATE &&
                 sm_enclave_size((sm_enclave){ s->h.id }) == 0 &&
                 sm_stream_size((sm_stream){ s->h.id }) == 0,
             "a secret's id works as another kind");
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    check_calls("bad secret arguments", own, NULL);
    FZ_CHECK(out.id == 0x0badull && got == 0x0bad, "a refused call wrote its out-parameter");
    for (unsigned i = 0; i < 16; i++)
        FZ_CHECK(src[i] == 0x77, "a refused sm_secret_new wiped its source");
    fz_trace("bad secret arguments, id %016llx", (unsigned long long)x.id);
}

/* ---- the runtime ---- */

/*
 * Destroy every object, then purge: what is left to purge here is the enclave key and the
 * canary key, and every handle must be stale afterwards. Purges of live objects run in
 * forked children (op_fork). They once had to, because a purge retired its slots for
 * good; since issue 18 §2 purged slots are reused (spec/registry.md), and the children
 * stay because they also check the process after a purge.
 */
static void op_purge(fz_in *in)
{
    (void)in;
    fz_faults_clear(&F);
    for (unsigned i = 0; i < NB; i++)
        if (live_buf(&M.b[i])) {
            FZ_CHECK(sm_buffer_destroy(M.b[i].h) == SM_OK, "destroy before purge");
            M.b[i].state = FZ_DESTROYED;
        }
    for (unsigned i = 0; i < NE; i++)
        if (M.e[i].alive) {
            FZ_CHECK(sm_enclave_destroy(M.e[i].h) == SM_OK, "destroy before purge");
            M.e[i].alive = false;
        }
    for (unsigned i = 0; i < NS; i++)
        if (M.s[i].alive) {
            FZ_CHECK(sm_stream_destroy(M.s[i].h) == SM_OK, "destroy before purge");
            M.s[i].alive = false;
        }
    for (unsigned i = 0; i < NSEC; i++)
        if (M.sec[i].open) {
            FZ_CHECK(sm_secret_close(M.sec[i].h) == SM_OK, "close before purge");
            M.sec[i].open = M.sec[i].readable = M.sec[i].opened = false;
        }
    sm_purge();
    fz_trace("purge");
    FZ_CHECK(!fz_coffer_exists(), "the enclave key survived a purge");
    M.exhausted = M.rng_keyed = false;
}

/*
 * sm_audit opens, for the canary check, only what is PROT_NONE at rest: a guarded
 * secret's region (one mprotect to READ, one back to NONE; protected and custom secrets
 * have no canary, buffers, stream scratch and open windows are not PROT_NONE), in the
 * registry walk's order, which is the slot index's (registry.c, walk_next), then the
 * enclave key's shares (coffer.c, smi_coffer_audit: open 2, close 2). So the model knows
 * which call a planned mprotect failure hits, and what that leaves: an open refused
 * leaves that secret shut and its canary unchecked; a shut refused leaves exactly that
 * secret readable (secrets.md, "audit"); either way the walk goes on and the first
 * refusal is returned (runtime.h).
 */
static void op_audit(void)
{
    msec *rest[NSEC], *t;
    unsigned g = 0, at = 0;
    bool coffer = fz_coffer_exists(), intr;
    unsigned long want, got;
    fz_calls c0, c1, own = { 0 };
    const fz_plan *p = &F.plan[SM_OS_MPROTECT];
    sm_status st;

    for (unsigned i = 0; i < NSEC; i++) {
        t = &M.sec[i];
        if (t->open && t->fac == FACT_GUARDED && !t->readable && !t->opened && !t->audited)
            rest[g++] = t;
    }
    for (unsigned i = 1; i < g; i++)
        for (unsigned j = i; j > 0 && smi_handle_index(rest[j - 1]->h.id) >
                                          smi_handle_index(rest[j]->h.id); j--) {
            t = rest[j];
            rest[j] = rest[j - 1];
            rest[j - 1] = t;
        }
    intr = p->armed && p->err == EINTR;
    fz_calls_now(c0);
    fz_faults_before(&F);
    st = sm_audit();
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    fz_trace("audit: %s", fz_st(st));
    if (F.fired_by[SM_OS_MPROTECT] > 0) {
        unsigned long first = F.before[SM_OS_MPROTECT] + 1 > p->nth ? F.before[SM_OS_MPROTECT] + 1
                                                                     : p->nth;

        at = (unsigned)(first - F.before[SM_OS_MPROTECT]); /* 1-based, in this audit */
    }
    (void)outcome(st, SM_OK, SM_OK, "audit");
    if (M.tainted)
        return;
    FZ_CHECK((st == SM_OK) == (at == 0), "audit: %s with the %u-th mprotect refused", fz_st(st), at);
    /* The secrets' calls, then the shares' (up to two fewer opens if one was left open). */
    want = 2 * g - (at != 0 && at <= 2 * g && at % 2 == 1);
    got = own[SM_OS_MPROTECT];
    if (!intr && (at == 0 || at <= 2 * g)) {
        unsigned long lo = want + (coffer ? (M.share_open ? 2 : 4) : 0);
        unsigned long hi = want + (coffer ? 4 : 0);

        FZ_CHECK(got >= lo && got <= hi, "audit: %lu calls of mprotect, want %lu..%lu (%u at rest)",
                 got, lo, hi, g);
    } else if (!intr) {
        FZ_CHECK(coffer && got > want && got <= want + 4,
                 "audit: %lu calls of mprotect, the shares' refused (%u at rest)", got, g);
    }
    if (at != 0 && at <= 2 * g && at % 2 == 0)
        rest[at / 2 - 1]->audited = true;
}

static void op_init(fz_in *in)
{
    sm_config cfg = { 0 };
    uint8_t how = fz_u8(in) % 5;
    sm_status want = SM_OK, st;

    if (how == 1) {
        cfg.lock_policy = SM_LOCK_BEST_EFFORT;
        want = SM_E_STATE;
    } else if (how == 2) {
        cfg.backing = SM_BACKING_SECRETMEM_REQUIRED;
        want = SM_E_STATE;
    } else if (how == 3) {
        cfg.lock_policy = (sm_lock_policy)(2 + fz_u8(in));
        want = SM_E_INVAL;
    } else if (how == 4) {
        cfg.backing = (sm_backing)(3 + fz_u8(in));
        want = SM_E_INVAL;
    }
    st = sm_init(how == 0 && (fz_u8(in) & 1) ? NULL : &cfg);
    fz_trace("init (%u): %s", how, fz_st(st));
    FZ_CHECK(st == want, "sm_init: %s, want %s", fz_st(st), fz_st(want));
}

static void op_status(fz_in *in)
{
    int s = (int)(fz_u8(in) % 16) - 1;
    const char *str = sm_status_str((sm_status)s);

    FZ_CHECK(str != NULL, "sm_status_str(%d) is NULL", s);
    if (s >= SM_OK && s <= SM_E_SYS)
        FZ_CHECK(strncmp(str, "SM_", 3) == 0, "sm_status_str(%d): %s", s, str);
    FZ_CHECK((page & (page - 1)) == 0 && sm_page_size() == page, "sm_page_size");
}

/* The key's test hooks (clean of faults: they are not under test). */
static void op_coffer(fz_in *in)
{
    uint8_t how = fz_u8(in);

    fz_faults_clear(&F);
    if (how & 2) {
        uint8_t key[32], left[32], right[32];
        sm_status st = smi_coffer_test_peek(key, left, right);

        fz_trace("coffer: peek: %s", fz_st(st));
        FZ_CHECK(st == (fz_coffer_exists() ? SM_OK : SM_E_STATE), "peek: %s", fz_st(st));
    } else if (how & 1) {
        /* The next view finds the split older than SMI_COFFER_RESPLIT_NS and redoes it. */
        smi_coffer_test_age(SMI_COFFER_RESPLIT_NS + how);
        M.aged = true;
        fz_trace("coffer: aged");
    } else {
        sm_status st = smi_coffer_test_set_counter(UINT64_MAX);

        fz_trace("coffer: nonces used up: %s", fz_st(st));
        FZ_CHECK(st == SM_OK || st == SM_E_STATE, "set_counter: %s", fz_st(st));
        if (st == SM_OK)
            M.exhausted = true;
    }
}

/* A handle of each kind, live or stale, as every other kind, and forged ids. */
static void op_stale(fz_in *in)
{
    uint8_t how = fz_u8(in);
    uint64_t id;
    sm_buffer out;

    switch (how % 4) {
    case 0:
        id = M.b[(how >> 2) % NB].h.id;
        break;
    case 1:
        id = M.e[(how >> 2) % NE].h.id;
        break;
    case 2:
        id = M.s[(how >> 2) % NS].h.id;
        break;
    default: {
        /* Never handed out: id 0, kind 0 or 15, generation 0, an index out of range. */
        static const uint64_t forged[] = {
            0, 0x0000000100000000ull, 0xf000000100000000ull, 0x1000000000000000ull,
            0x10000001ffffffffull, 0x20000001ffffffffull, 0x30000001ffffffffull,
            0x4000000100000000ull,
        };

        id = forged[(how >> 2) % 8];
        break;
    }
    }
    /* As every kind but its own (all kinds, for forged ids). */
    if (how % 4 != 0) {
        sm_buffer b = { id };
        bool eq;

        FZ_CHECK(sm_buffer_size(b) == 0 && sm_buffer_data(b) == NULL && !sm_buffer_is_alive(b) &&
                     !sm_buffer_is_mutable(b), "a non-buffer id works as a buffer");
        FZ_CHECK(sm_buffer_freeze(b) == SM_E_STATE && sm_buffer_melt(b) == SM_E_STATE &&
                     sm_buffer_wipe(b) == SM_E_STATE && sm_buffer_destroy(b) == SM_E_STATE &&
                     sm_buffer_equal(b, src, 1, &eq) == SM_E_STATE,
                 "a non-buffer id works as a buffer");
    }
    if (how % 4 != 1) {
        sm_enclave e = { id };

        FZ_CHECK(sm_enclave_size(e) == 0 && sm_enclave_destroy(e) == SM_E_STATE &&
                     sm_enclave_open(e, &out) == SM_E_STATE,
                 "a non-enclave id works as an enclave");
    }
    if (how % 4 != 2) {
        sm_stream s = { id };
        size_t got;

        FZ_CHECK(sm_stream_size(s) == 0 && sm_stream_destroy(s) == SM_E_STATE &&
                     sm_stream_read(s, src, 1, &got) == SM_E_STATE &&
                     sm_stream_write(s, src, 0) == SM_E_STATE &&
                     sm_stream_next(s, &out) == SM_E_STATE,
                 "a non-stream id works as a stream");
    }
    {
        sm_secret x = { id };
        size_t got;

        FZ_CHECK(sm_secret_size(x) == 0 && sm_secret_is_closed(x) &&
                     sm_secret_close(x) == SM_E_STATE &&
                     sm_secret_read_at(x, 0, src, 1, &got) == SM_E_STATE,
                 "a non-secret id works as a secret");
    }
    fz_trace("stale/forged id %016llx", (unsigned long long)id);
}

/* NULL out-pointers and NULL sources: SM_E_INVAL, before anything else. */
static void op_null_args(fz_in *in)
{
    sm_buffer b = M.b[fz_u8(in) % NB].h;
    sm_enclave e = M.e[fz_u8(in) % NE].h;
    sm_stream s = M.s[fz_u8(in) % NS].h;
    sm_buffer bo;
    sm_enclave eo;
    sm_config bad = { .lock_policy = (sm_lock_policy)7 };
    void *p;
    size_t got;
    bool eq;
    sm_status st;

#define INVAL(call)                                                                       \
    do {                                                                                  \
        st = (call);                                                                      \
        FZ_CHECK(st == SM_E_INVAL, "%s: %s, want SM_E_INVAL", #call, fz_st(st));           \
    } while (0)
    /* With a handle, which may be stale: spec/api.md does not rank the two errors. */
#define INVAL_OR_STATE(call)                                                              \
    do {                                                                                  \
        st = (call);                                                                      \
        FZ_CHECK(st == SM_E_INVAL || st == SM_E_STATE, "%s: %s, want SM_E_INVAL", #call,   \
                 fz_st(st));                                                              \
    } while (0)
    INVAL(sm_buffer_new(8, NULL));
    INVAL(sm_buffer_from_bytes(NULL, 8, &bo));
    INVAL(sm_buffer_from_bytes(src, 8, NULL));
    INVAL(sm_buffer_random(8, NULL));
    INVAL_OR_STATE(sm_buffer_copy(b, NULL, 4));
    INVAL_OR_STATE(sm_buffer_move_at(b, 0, NULL, 4));
    INVAL_OR_STATE(sm_buffer_equal(b, src, 1, NULL));
    INVAL_OR_STATE(sm_buffer_equal(b, NULL, 3, &eq));
    INVAL_OR_STATE(sm_buffer_seal(b, NULL));
    INVAL(sm_buffer_from_fd(0, 8, NULL));
    INVAL(sm_buffer_from_fd(0, 0, &bo));
    INVAL(sm_buffer_from_fd_until(0, '\n', NULL));
    INVAL(sm_buffer_from_fd_all(0, NULL));
    INVAL(sm_enclave_new(NULL, 4, &eo));
    INVAL(sm_enclave_new(src, 4, NULL));
    INVAL(sm_enclave_random(4, NULL));
    INVAL_OR_STATE(sm_enclave_open(e, NULL));
    INVAL(sm_stream_new(NULL));
    INVAL_OR_STATE(sm_stream_write(s, NULL, 3));
    INVAL_OR_STATE(sm_stream_read(s, NULL, 3, &got));
    INVAL_OR_STATE(sm_stream_read(s, src, 3, NULL));
    INVAL_OR_STATE(sm_stream_next(s, NULL));
    INVAL_OR_STATE(sm_stream_flush(s, NULL));
    INVAL(sm_stats_get(NULL));
    INVAL(sm_init(&bad));
    INVAL(sm_mem_alloc(8, NULL));
    INVAL(sm_mem_alloc(0, &p));
    INVAL(sm_mem_lock(NULL, 8));
    INVAL(sm_mem_unlock(src, 0));
    INVAL(sm_mem_protect(NULL, 8, SM_PROT_READ));
    INVAL(sm_mem_free(NULL, 8));
    INVAL(sm_random(NULL, 4));
#undef INVAL
#undef INVAL_OR_STATE
    FZ_CHECK(sm_random(NULL, 0) == SM_OK && sm_equal(src, src2, 0), "zero-length calls");
    sm_wipe(NULL, 0);
    fz_trace("NULL arguments");
}

/* ---- forked children: fork handlers, exits, panics and signals ---- */

/* The coverage flavour's profile runtime, absent from the others. */
extern int __llvm_profile_write_file(void) __attribute__((weak));
extern void __llvm_profile_set_filename(const char *name) __attribute__((weak));

/* A child's own objects, one of each kind, which its purge must make stale (a protected
   secret: guarded regions are purged as buffers already). */
static sm_buffer child_probe;
static sm_enclave child_enclave;
static sm_stream child_stream;
static sm_secret child_secret;

static int child_objects(void)
{
    uint8_t bytes[40];

    memset(bytes, 0x5c, sizeof bytes);
    if (sm_buffer_new(8, &child_probe) != SM_OK ||
        sm_enclave_new(bytes, sizeof bytes, &child_enclave) != SM_OK ||
        sm_stream_new(&child_stream) != SM_OK ||
        sm_secret_new(sm_factory_protected(), bytes, sizeof bytes, &child_secret) != SM_OK)
        return 1;
    memset(bytes, 0x5c, sizeof bytes);
    return sm_stream_write(child_stream, bytes, sizeof bytes) == SM_OK ? 0 : 1;
}

static bool child_objects_stale(void)
{
    return !sm_buffer_is_alive(child_probe) && sm_enclave_size(child_enclave) == 0 &&
           sm_stream_size(child_stream) == 0 && sm_secret_is_closed(child_secret);
}

/*
 * _exit, after writing the child's coverage profile in the coverage flavour (it would
 * be lost otherwise): setting the file name again expands its %p to the child's pid, so
 * that the parent's profile is not overwritten.
 */
static void child_profile(void)
{
    const char *pattern = getenv("LLVM_PROFILE_FILE");

    if (__llvm_profile_write_file != NULL && __llvm_profile_set_filename != NULL &&
        pattern != NULL) {
        __llvm_profile_set_filename(pattern);
        (void)__llvm_profile_write_file();
    }
}

static _Noreturn void child_exit(int code)
{
    child_profile();
    _exit(code);
}

/* Exit code base + 0 if the child's objects were purged before this ran, + 1 if not. */
static void after_purge(int base)
{
    child_exit(child_objects_stale() ? base : base + 1);
}

static void at_exit_check(void) { after_purge(42); }
static void on_abort(int sig) { (void)sig; after_purge(44); }
static void on_caught(int sig) { (void)sig; after_purge(46); }

/*
 * In the child: every pre-fork handle is stale, and new objects work (a new key). The
 * first seal makes the key again in place (rekey_child); an input-chosen fault may fail
 * it with that fault's status, and then the next one must succeed.
 */
static int child_stale_then_fresh(fz_in *in)
{
    static const sm_os_fn rekey_fns[] = { SM_OS_MLOCK, SM_OS_GETRANDOM, SM_OS_MPROTECT };
    uint8_t data[100], copy[100], back[100];
    sm_buffer b;
    sm_enclave e;
    sm_stream s;
    sm_status st;
    size_t got;

    for (unsigned i = 0; i < NB; i++)
        if (sm_buffer_is_alive(M.b[i].h))
            return 10;
    for (unsigned i = 0; i < NE; i++)
        if (sm_enclave_size(M.e[i].h) != 0)
            return 11;
    for (unsigned i = 0; i < NS; i++)
        if (sm_stream_size(M.s[i].h) != 0)
            return 12;
    for (unsigned i = 0; i < NSEC; i++)
        if (!sm_secret_is_closed(M.sec[i].h))
            return 12;
    if (sm_disable_core_dumps() != SM_OK)
        return 18;
    for (unsigned i = 0; i < sizeof data; i++)
        data[i] = copy[i] = (uint8_t)(i * 7);
    fz_faults_clear(&F);
    fz_faults_arm(&F, in, rekey_fns, sizeof rekey_fns / sizeof rekey_fns[0]);
    fz_faults_before(&F);
    st = sm_enclave_new(data, sizeof data, &e);
    fz_faults_after(&F);
    if (st != SM_OK && !(F.fired > 0 && fz_faults_allow(&F, st)))
        return 19;
    fz_faults_clear(&F);
    if (st != SM_OK && sm_enclave_new(data, sizeof data, &e) != SM_OK)
        return 13;
    if (sm_enclave_open(e, &b) != SM_OK)
        return 13;
    if (sm_buffer_size(b) != sizeof data || memcmp(sm_buffer_data(b), copy, sizeof copy) != 0)
        return 14;
    if (sm_stream_new(&s) != SM_OK || sm_stream_write(s, data + 0, 0) != SM_OK)
        return 15;
    memcpy(data, copy, sizeof data);
    if (sm_stream_write(s, data, sizeof data) != SM_OK ||
        sm_stream_read(s, back, sizeof back, &got) != SM_OK || got != sizeof back ||
        memcmp(back, copy, sizeof back) != 0)
        return 16;
    if (sm_buffer_destroy(b) != SM_OK || sm_enclave_destroy(e) != SM_OK ||
        sm_stream_destroy(s) != SM_OK || sm_audit() != SM_OK)
        return 17;
    return 0;
}

/* In the child: a purge of live objects of every kind, then the library still works. */
static int child_purge_and_go_on(void)
{
    uint8_t data[24];
    sm_buffer b;
    sm_stats st;

    if (child_objects() != 0)
        return 30;
    sm_purge();
    if (!child_objects_stale() || sm_buffer_destroy(child_probe) != SM_E_STATE ||
        sm_stats_get(&st) != SM_OK ||
        st.buffers_live + st.enclaves_live + st.streams_live + st.secrets_live != 0)
        return 31;
    memset(data, 1, sizeof data);
    if (sm_buffer_from_bytes(data, sizeof data, &b) != SM_OK || sm_audit() != SM_OK ||
        child_objects() != 0)
        return 32;
    return 0;
}

/* The after_cipher hook of the purge-during-an-operation scenario. */
static void purge_now(void)
{
    smi_coffer_test_after_cipher(NULL);
    sm_purge();
}

/*
 * In the child: a purge that lands while an operation holds its object (as from another
 * thread or a signal handler), through the key's after_cipher hook. The operation gives
 * SM_E_STATE with no output, every handle is stale, the objects it held were finished
 * by the operation itself when it let go of them (spec/registry.md: the purge leaves an
 * object in use to its holder), so none is left live, and the library works
 * afterwards with a new key.
 */
static int child_purge_during(unsigned which)
{
    uint8_t data[64], out[64];
    sm_buffer b = { 0 }, o = { 0x0badull };
    sm_enclave e, eo = { 0x0badull };
    sm_stream s;
    sm_stats st;
    size_t got = 7;
    sm_status r;

    memset(data, 0x33, sizeof data);
    if (sm_enclave_new(data, sizeof data, &e) != SM_OK || sm_buffer_new(64, &b) != SM_OK ||
        sm_stream_new(&s) != SM_OK)
        return 40;
    memset(data, 0x44, sizeof data);
    if (sm_stream_write(s, data, sizeof data) != SM_OK)
        return 41;
    memset(data, 0x55, sizeof data);
    memset(out, 0xa5, sizeof out);
    smi_coffer_test_after_cipher(purge_now);
    switch (which % 5) {
    case 0:
        r = sm_enclave_open(e, &o);
        break;
    case 1:
        r = sm_enclave_open_into(e, b);
        break;
    case 2:
        r = sm_buffer_seal(b, &eo);
        break;
    case 3:
        r = sm_stream_write(s, data, sizeof data);
        break;
    default:
        r = sm_stream_read(s, out, 10, &got);
        break;
    }
    smi_coffer_test_after_cipher(NULL);
    if (r != SM_E_STATE || o.id != 0x0badull || eo.id != 0x0badull)
        return 42;
    for (unsigned i = 0; i < sizeof out; i++)
        if (out[i] != 0xa5 && out[i] != 0)
            return 43;
    if (which % 5 == 3)
        for (unsigned i = 0; i < sizeof data; i++)
            if (data[i] != 0x55)
                return 44; /* a failed write leaves its source as it was */
    if (sm_buffer_is_alive(b) || sm_enclave_size(e) != 0 || sm_stream_size(s) != 0)
        return 45;
    if (sm_stats_get(&st) != SM_OK || st.buffers_live != 0 || st.enclaves_live != 0 ||
        st.streams_live != 0)
        return 46;
    if (child_objects() != 0 || sm_audit() != SM_OK)
        return 47;
    return 0;
}

/*
 * In the child: one byte of a buffer's canary damaged, then one of the calls that check
 * it. Each must panic (never return): sm_panic purges, then aborts, which on_abort turns
 * into exit 44 once it saw the child's objects purged.
 */
static int child_damaged_canary(unsigned which)
{
    sm_buffer b;
    sm_enclave e;
    uint8_t *d;

    if (child_objects() != 0 || sm_buffer_new(16, &b) != SM_OK)
        return 50;
    d = sm_buffer_data(b);
    d[-1 - (int)(which / 4 % 32)] ^= 0x01;
    (void)signal(SIGABRT, on_abort);
    switch (which % 4) {
    case 0:
        (void)sm_buffer_destroy(b);
        break;
    case 1:
        (void)sm_audit();
        break;
    case 2:
        (void)sm_buffer_seal(b, &e);
        break;
    default:
        sm_purge();
        break;
    }
    return 51; /* it returned */
}

static void op_fork(fz_in *in)
{
    static const int kill_sig[] = { SIGKILL }, usr1_kill[] = { SIGUSR1, SIGKILL };
    struct sigaction sa, usr1_was;
    unsigned how = fz_u8(in) % 9, which = fz_u8(in);
    int status, sig, want_exit = -1, want_sig = 0;
    pid_t pid, r;

    if (M.forks++ >= 1)
        return;
    fz_faults_clear(&F);
    fflush(NULL);
    pid = fork();
    FZ_CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);

        /* The child's panic message and signal deaths are expected: keep them quiet. */
        if (devnull >= 0)
            (void)dup2(devnull, 2);
        sm_os_fault_reset();
        (void)sigaction(SIGUSR1, NULL, &usr1_was);
        if (how == 0)
            child_exit(child_stale_then_fresh(in));
        if (how == 6)
            child_exit(child_purge_and_go_on());
        if (how == 7)
            child_exit(child_purge_during(which));
        if (how == 8)
            child_exit(child_damaged_canary(which));
        if (child_objects() != 0)
            child_exit(20);
        switch (how) {
        case 1:
            (void)atexit(at_exit_check);
            sm_safe_exit(9);
        case 2:
            (void)signal(SIGABRT, on_abort);
            sm_panic("fuzz: a deliberate panic in a forked child");
        case 3:
            sig = SIGUSR2;
            if (sm_catch_signals(&sig, 1, on_caught) != SM_OK)
                child_exit(21);
            (void)raise(SIGUSR2);
            child_exit(22);
        case 4:
            if (sm_catch_interrupt() != SM_OK)
                child_exit(23);
            child_profile(); /* the signal ends the child before it could */
            (void)raise(SIGTERM);
            child_exit(24);
        default:
            /* A signal whose default is to be ignored ends the process with 128 + sig. */
            sig = SIGURG;
            if (sm_catch_signals(kill_sig, 1, NULL) != SM_E_INVAL ||
                sm_catch_signals(usr1_kill, 2, NULL) != SM_E_INVAL ||
                sm_catch_signals(NULL, 1, NULL) != SM_E_INVAL ||
                sm_catch_signals(&sig, 1, NULL) != SM_OK)
                child_exit(25);
            /* The refused pair put SIGUSR1 back as it was. */
            if (sigaction(SIGUSR1, NULL, &sa) != 0 || sa.sa_handler != usr1_was.sa_handler)
                child_exit(27);
            child_profile();
            (void)raise(SIGURG);
            child_exit(26);
        }
    }
    /* libFuzzer's timeout timer (SIGALRM) interrupts the wait. */
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        continue;
    FZ_CHECK(r == pid, "waitpid: %s", strerror(errno));
    switch (how) {
    case 0: want_exit = 0; break;
    case 1: want_exit = 42; break;
    case 2: want_exit = 44; break;
    case 3: want_exit = 46; break;
    case 4: want_sig = SIGTERM; break;
    case 5: want_exit = 128 + SIGURG; break;
    case 8: want_exit = 44; break;
    default: want_exit = 0; break;
    }
    fz_trace("fork scenario %u (%u): status %#x", how, which, status);
    if (want_sig != 0)
        FZ_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == want_sig,
                 "fork scenario %u: status %#x, want signal %d", how, status, want_sig);
    else
        FZ_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == want_exit,
                 "fork scenario %u (%u): status %#x, want exit %d", how, which, status,
                 want_exit);
}

/* ---- the op table ---- */

typedef struct op_kind {
    const char *name;
    void (*run)(fz_in *in, unsigned arg);
    unsigned arg;
} op_kind;

static void run_state(fz_in *in, unsigned r) { op_state(in, (int)r); }
static void run_write(fz_in *in, unsigned r) { op_write(in, (int)r); }
static void run_fill(fz_in *in, unsigned r) { op_fill(in, (int)r); }
static void run_equal(fz_in *in, unsigned a) { (void)a; op_equal(in); }
static void run_create(fz_in *in, unsigned k) { op_create(in, k); }
static void run_destroy(fz_in *in, unsigned a) { (void)a; op_destroy_buf(in); }
static void run_seal(fz_in *in, unsigned a) { (void)a; op_seal(in); }
static void run_enew(fz_in *in, unsigned r) { op_enclave_new(in, r != 0); }
static void run_open(fz_in *in, unsigned a) { (void)a; op_open(in); }
static void run_open_into(fz_in *in, unsigned a) { (void)a; op_open_into(in); }
static void run_edestroy(fz_in *in, unsigned a) { (void)a; op_enclave_destroy(in); }
static void run_snew(fz_in *in, unsigned a) { (void)a; op_stream_new(in); }
static void run_swrite(fz_in *in, unsigned a) { (void)a; op_stream_write(in); }
static void run_sread(fz_in *in, unsigned a) { (void)a; op_stream_read(in); }
static void run_stake(fz_in *in, unsigned all) { op_stream_take(in, all != 0); }
static void run_sdestroy(fz_in *in, unsigned a) { (void)a; op_stream_destroy(in); }
static void run_arm(fz_in *in, unsigned a)
{
    (void)a;
    fz_faults_arm(&F, in, fault_fns, sizeof fault_fns / sizeof fault_fns[0]);
}
static void run_clear(fz_in *in, unsigned a) { (void)in; (void)a; fz_faults_clear(&F); }
static void run_purge(fz_in *in, unsigned a) { (void)a; op_purge(in); }
static void run_audit(fz_in *in, unsigned a) { (void)in; (void)a; op_audit(); }
static void run_init(fz_in *in, unsigned a) { (void)a; op_init(in); }
static void run_status(fz_in *in, unsigned a) { (void)a; op_status(in); }
static void run_coffer(fz_in *in, unsigned a) { (void)a; op_coffer(in); }
static void run_stale(fz_in *in, unsigned a) { (void)a; op_stale(in); }
static void run_null(fz_in *in, unsigned a) { (void)a; op_null_args(in); }
static void run_fork(fz_in *in, unsigned a) { (void)a; op_fork(in); }
static void run_malloc(fz_in *in, unsigned a) { (void)a; op_mem_alloc(in); }
static void run_mfree(fz_in *in, unsigned a) { (void)a; op_mem_free(in); }
static void run_mprotect(fz_in *in, unsigned a) { (void)a; op_mem_protect(in); }
static void run_mlock(fz_in *in, unsigned a) { (void)a; op_mem_lock(in); }
static void run_mbytes(fz_in *in, unsigned a) { (void)a; op_mem_bytes(in); }
static void run_secnew(fz_in *in, unsigned random) { op_secret_new(in, random != 0); }
static void run_secfill(fz_in *in, unsigned a) { (void)a; op_secret_from_callback(in); }
static void run_secbuf(fz_in *in, unsigned a) { (void)a; op_secret_from_buffer(in); }
static void run_access(fz_in *in, unsigned try) { op_access(in, try != 0); }
static void run_read_at(fz_in *in, unsigned a) { (void)a; op_read_at(in); }
static void run_secquery(fz_in *in, unsigned a) { (void)a; op_secret_query(in); }
static void run_secclose(fz_in *in, unsigned a) { (void)a; op_secret_close(in); }
static void run_secbad(fz_in *in, unsigned a) { (void)a; op_secret_bad(in); }

/*
 * Opcodes are fixed (the low 6 bits of the op byte), so that the committed corpus keeps
 * its meaning as the table grows. Unused codes do nothing.
 * Secrets are 0x30..0x37 (nested accesses are the operations that a callback runs).
 */
static const op_kind op_table[64] = {
    [0x00] = { "buffer_new", run_create, 0 },
    [0x01] = { "buffer_from_bytes", run_create, 1 },
    [0x02] = { "buffer_random", run_create, 2 },
    [0x03] = { "freeze", run_state, R_FREEZE },
    [0x04] = { "melt", run_state, R_MELT },
    [0x05] = { "copy", run_write, R_COPY },
    [0x06] = { "copy_at", run_write, R_COPY_AT },
    [0x07] = { "move", run_write, R_MOVE },
    [0x08] = { "move_at", run_write, R_MOVE_AT },
    [0x09] = { "scramble", run_fill, R_SCRAMBLE },
    [0x0a] = { "wipe", run_fill, R_WIPE },
    [0x0b] = { "equal", run_equal, 0 },
    [0x0c] = { "seal", run_seal, 0 },
    [0x0d] = { "destroy", run_destroy, 0 },
    [0x10] = { "enclave_new", run_enew, 0 },
    [0x11] = { "enclave_random", run_enew, 1 },
    [0x12] = { "enclave_open", run_open, 0 },
    [0x13] = { "enclave_open_into", run_open_into, 0 },
    [0x14] = { "enclave_destroy", run_edestroy, 0 },
    [0x18] = { "stream_new", run_snew, 0 },
    [0x19] = { "stream_write", run_swrite, 0 },
    [0x1a] = { "stream_read", run_sread, 0 },
    [0x1b] = { "stream_next", run_stake, 0 },
    [0x1c] = { "stream_flush", run_stake, 1 },
    [0x1d] = { "stream_destroy", run_sdestroy, 0 },
    [0x20] = { "fault_arm", run_arm, 0 },
    [0x21] = { "fault_arm", run_arm, 0 },
    [0x22] = { "fault_clear", run_clear, 0 },
    [0x23] = { "purge", run_purge, 0 },
    [0x24] = { "audit", run_audit, 0 },
    [0x25] = { "init", run_init, 0 },
    [0x26] = { "status", run_status, 0 },
    [0x27] = { "coffer_hooks", run_coffer, 0 },
    [0x28] = { "stale_handles", run_stale, 0 },
    [0x29] = { "null_arguments", run_null, 0 },
    [0x2a] = { "fork", run_fork, 0 },
    [0x30] = { "secret_new", run_secnew, 0 },
    [0x31] = { "secret_random", run_secnew, 1 },
    [0x32] = { "secret_with_bytes", run_access, 0 },
    [0x33] = { "secret_try_with_bytes", run_access, 1 },
    [0x34] = { "secret_read_at", run_read_at, 0 },
    [0x35] = { "secret_size_is_closed", run_secquery, 0 },
    [0x36] = { "secret_close", run_secclose, 0 },
    [0x37] = { "secret_bad_arguments", run_secbad, 0 },
    [0x38] = { "mem_alloc", run_malloc, 0 },
    [0x39] = { "mem_free", run_mfree, 0 },
    [0x3a] = { "mem_protect", run_mprotect, 0 },
    [0x3b] = { "mem_lock", run_mlock, 0 },
    [0x3c] = { "mem_bytes", run_mbytes, 0 },
    [0x3d] = { "secret_from_callback", run_secfill, 0 },
    [0x3e] = { "secret_from_buffer", run_secbuf, 0 },
};

/* Everything left alive, destroyed fault-free through the API; nothing may remain. */
static void cleanup(void)
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
            sm_status st = sm_secret_close(M.sec[i].h);

            FZ_CHECK(st == SM_OK, "cleanup: secret %u: %s", i, fz_st(st));
        }
    fz_counts_get(&c);
    FZ_CHECK(c.live[SMI_KIND_BUFFER] == 0 && c.live[SMI_KIND_ENCLAVE] == 0 &&
                 c.live[SMI_KIND_STREAM] == 0 && c.live[SMI_KIND_SECRET] == 0,
             "cleanup: objects remain alive");
    if (!M.tainted)
        FZ_CHECK(c.bytes == M.base_bytes + (fz_coffer_exists() ? fz_coffer_bytes : 0),
                 "cleanup: %llu bytes still counted, want %llu",
                 (unsigned long long)c.bytes, (unsigned long long)M.base_bytes);
}

static void reset_model(void)
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
    M.exhausted = M.tainted = M.aged = M.rng_keyed = M.share_open = false;
    M.forks = 0;
    M.ops = M.depth = 0;
    fz_counts_get(&c);
    M.base_bytes = c.bytes;
}

/* Start counting the effects of an operation (or of what is left of one) from here. */
static void rebase(void)
{
    fz_counts c;

    fz_counts_get(&c);
    M.alloc_base = c.allocations;
    M.coffer_base = fz_coffer_exists();
    fz_faults_before(&F);
    M.touched = M.made = 0;
}

/*
 * Run one operation of the input and check everything. Inside a secret's callback some
 * operations are skipped: a purge and a fork child's purge need every secret closed,
 * which the accesses in flight prevent.
 */
static void step(fz_in *in)
{
    uint8_t code = fz_u8(in) & 63;
    const op_kind *k = &op_table[code];

    if (k->run == NULL || (M.depth > 0 && (code == 0x23 || code == 0x2a)))
        return;
    rebase();
    k->run(in, k->arg);
    /* Any refused mprotect may have been a key share's (check_calls); a purge ends the key. */
    if (F.fired_by[SM_OS_MPROTECT] > 0)
        M.share_open = true;
    if (!fz_coffer_exists())
        M.share_open = false;
    if (!M.tainted)
        check_all();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size, 0 };

    fz_begin();
    fz_faults_clear(&F);
    reset_model();
    smi_aead_test_force((smi_aead_choice)(fz_u8(&in) % 3));
    while (fz_more(&in) && M.ops++ < MAX_OPS && !M.tainted)
        step(&in);
    cleanup();
    return 0;
}
