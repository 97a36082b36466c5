/* SPDX-License-Identifier: ISC */
/*
 * Secrets over every factory, following spec/secret-states.tsv, nested accesses
 * included (their callbacks run more operations through step).
 */
#include <sys/mman.h>

#include "model.h"

/* ---- secrets (securemem/secret.h) ---- */

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

/* The status of a make of size bytes of fac that the arguments decide (spec/api.md). */
static sm_status secret_size_status(unsigned fac, size_t size)
{
    if (size == 0 || size > SECRET_MAX || (fac == FACT_COMPACT && size > COMPACT_MAX))
        return SM_E_INVAL;
    return size > maxb ? SM_E_NOMEM : SM_OK;
}

/* A new secret in s, holding size bytes: bytes[], or unknown until read (random). */
static void secret_made(msec *s, sm_secret out, unsigned fac, size_t size, const uint8_t *bytes,
                        bool known, unsigned slot)
{
    s->h = out;
    s->open = true;
    s->fac = fac;
    s->size = size;
    s->slot = slot;
    s->depth = 0;
    s->readable = s->opened = s->audited = false;
    s->addr = NULL;
    memcpy(s->want, bytes, known ? size : 0);
    memset(s->have, known, size);
    if (fac != FACT_CUSTOM)
        M.made++; /* its storage: a region, or a compact slot (allocations_total) */
}

/*
 * What a compact make of size bytes gives, from compact.c's emulation (begun before the
 * call by cm_begin); fill is the status of its fill. A refused getrandom is either the
 * canary generator's keying, which goes on without it, or a random fill's, which fails:
 * both are tried, the first that gives st is kept.
 */
static sm_status compact_make(size_t size, sm_status fill, int commit, sm_status st, unsigned *slot)
{
    sm_status want;

    if (F.fired_by[SM_OS_GETRANDOM] > 0 && fill == SM_OK) {
        cm_save();
        want = cm_make(size, fz_err_status(SM_OS_GETRANDOM, F.last_err), commit, slot);
        if (want == st)
            return want;
        cm_restore();
    }
    return cm_make(size, fill, commit, slot);
}

/*
 * A compact operation's result against the emulation's, exactly, with its OS calls: an
 * injected fault gives its own row's status and sets sm_last_os_error; two in one call
 * end the input (a rollback that failed, as outcome() says). own is the status of the
 * caller's step (a fill, fn): when that is the result, the OS error is the step's
 * business (a short read sets 0), whatever fault fired before or after it.
 */
static bool compact_outcome(sm_status st, sm_status want, sm_status own, const char *what)
{
    FZ_CHECK(st == want, "%s (compact): %s, model %s", what, fz_st(st), fz_st(want));
    if (F.fired > 1) {
        M.tainted = true;
        return false;
    }
    if (st != SM_OK && st != own && F.fired == 1)
        FZ_CHECK(sm_last_os_error() == F.last_err, "%s (compact): sm_last_os_error %d, injected %d",
                 what, sm_last_os_error(), F.last_err);
    cm_check_calls(what);
    return st == SM_OK;
}

void op_secret_new(fz_in *in, bool random)
{
    const char *what = random ? "secret_random" : "secret_new";
    msec *s = free_sec(in);
    unsigned fac = pick_factory(in), slot = 0;
    size_t size = pick_secret_size(in), k = size <= maxb ? size : 0;
    sm_secret out = { 0x0badull };
    bool coffer = fz_coffer_exists(), ok;
    fz_calls c0, c1, own = { 0 };
    sm_status want, st;

    if (s == NULL)
        return;
    want = secret_size_status(fac, size);
    if (want == SM_OK && fac == FACT_ENCRYPTED && M.exhausted)
        want = SM_E_STATE; /* the seal needs a nonce */
    if (!random)
        fz_fill(in, src, k > 0 ? k : 1);
    memcpy(src2, src, k);
    fz_calls_now(c0);
    cm_begin();
    fz_faults_before(&F);
    st = random ? sm_secret_random(factory(fac), size, &out)
                : sm_secret_new(factory(fac), src, size, &out);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_trace("%s %s %zu into %u: %s", what, factory_name(fac), size, SEC_ID(s), fz_st(st));
    if (fac == FACT_COMPACT && want == SM_OK)
        ok = compact_outcome(st, compact_make(size, SM_OK, 0, st, &slot), SM_OK, what);
    else
        ok = outcome(st, want, SM_OK, what);
    if (!ok) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", what);
        FZ_CHECK(memcmp(src, src2, k) == 0, "failed %s changed src", what);
        return;
    }
    /* The first seal of the encrypted factory makes the enclave key, and one after the
       key was aged re-splits it: calls of their own. */
    if (F.fired == 0 && fac != FACT_COMPACT && (fac != FACT_ENCRYPTED || (coffer && !M.aged))) {
        fz_calls_add(own, c0, c1);
        check_calls(what, own, fz_sec_calls_row(random ? "random" : "new", fac));
    }
    if (!random)
        for (size_t i = 0; i < size; i++)
            FZ_CHECK(src[i] == 0, "%s did not wipe src", what);
    secret_made(s, out, fac, size, src2, !random, slot);
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
void op_secret_from_callback(fz_in *in)
{
    const char *what = "secret_from_callback";
    msec *s = free_sec(in);
    unsigned fac = pick_factory(in), slot = 0;
    size_t size = pick_secret_size(in), k = size <= maxb ? size : 0;
    uint8_t how = fz_u8(in);
    sm_secret out = { 0x0badull };
    bool coffer = fz_coffer_exists(), ok;
    fill_ctx c = { src, size, (how & 3) == 3 ? (sm_status)(SM_E_USER + (how >> 2)) : SM_OK, 0 };
    fz_calls c0, c1, own = { 0 };
    sm_status want, st;

    if (s == NULL)
        return;
    want = secret_size_status(fac, size);
    if (want == SM_OK)
        want = fac == FACT_ENCRYPTED && M.exhausted && c.ret == SM_OK
                   ? SM_E_STATE /* the seal, after the fill, needs a nonce */
                   : c.ret;
    fz_fill(in, src, k > 0 ? k : 1);
    memcpy(src2, src, k);
    fz_calls_now(c0);
    cm_begin();
    fz_faults_before(&F);
    st = sm_secret_from_callback(factory(fac), size, fill_fn, &c, &out);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_trace("%s %s %zu into %u (fill %s): %s", what, factory_name(fac), size, SEC_ID(s),
             fz_st(c.ret), fz_st(st));
    FZ_CHECK(c.calls <= 1, "%s: fill called %u times", what, c.calls);
    /* Refused before the storage is made: no fill; an injected fault may stop it too. */
    if (secret_size_status(fac, size) != SM_OK)
        FZ_CHECK(c.calls == 0, "%s: fill called for a refused size", what);
    else if (F.fired == 0)
        FZ_CHECK(c.calls == 1, "%s: fill not called", what);
    if (fac == FACT_COMPACT && secret_size_status(fac, size) == SM_OK) {
        ok = compact_outcome(st, compact_make(size, c.ret, 0, st, &slot), c.ret, what);
    } else {
        if (c.calls == 0 && want == c.ret && c.ret != SM_OK)
            want = SM_OK; /* not reached: only an injected fault can fail it now */
        ok = outcome(st, want, SM_OK, what);
    }
    if (!ok) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", what);
        return;
    }
    FZ_CHECK(c.calls == 1 && c.ret == SM_OK, "%s: SM_OK, fill called %u times", what, c.calls);
    if (F.fired == 0 && fac != FACT_COMPACT && (fac != FACT_ENCRYPTED || (coffer && !M.aged))) {
        fz_calls_add(own, c0, c1);
        check_calls(what, own, fz_sec_calls_row("from_callback", fac));
    }
    FZ_CHECK(memcmp(src, src2, size) == 0, "%s changed the fill's source", what);
    secret_made(s, out, fac, size, src2, true, slot);
}

/* A descriptor holding have bytes of src and nothing more: a pipe, or a memfd at its start. */
static int fd_with(bool memfd, size_t have)
{
    int fds[2], fd;

    if (memfd) {
        fd = memfd_create("fz-secret", MFD_CLOEXEC);
        FZ_CHECK(fd >= 0, "memfd_create: %d", errno);
        FZ_CHECK(write(fd, src, have) == (ssize_t)have && lseek(fd, 0, SEEK_SET) == 0,
                 "writing the memfd");
        return fd;
    }
    FZ_CHECK(pipe2(fds, O_CLOEXEC) == 0, "pipe2: %d", errno);
    /* Far below a pipe's 64 KiB: the write never blocks, every read is answered at once. */
    FZ_CHECK(write(fds[1], src, have) == (ssize_t)have, "writing the pipe");
    close(fds[1]);
    return fds[0];
}

/* What a descriptor holds for a secret of k bytes: exactly k, more, fewer, or none. */
static size_t fd_holds(uint8_t how, size_t k)
{
    switch (how & 3) {
    case 0:
        return k;
    case 1:
        return k + 1 + (how >> 3);
    case 2:
        return k > 0 ? k - 1 - (how >> 3) % k : 0;
    default:
        return 0;
    }
}

/* What is left to read in fd. */
static size_t fd_left(int fd)
{
    size_t n = 0;
    ssize_t r;

    while ((r = read(fd, src2, maxb)) > 0)
        n += (size_t)r;
    return n;
}

/*
 * sm_secret_from_fd: size bytes from a pipe or a memfd that holds have bytes (exactly
 * size, more, fewer or none) and no writer, so that every read is answered at once: the
 * first size bytes and have - size left unread, or SM_E_IO with sm_last_os_error 0 when
 * the input ends first, everything it had read; the factories, sizes and faults as for
 * sm_secret_new, and its syscalls.tsv rows (one read).
 */
void op_secret_from_fd(fz_in *in)
{
    const char *what = "secret_from_fd";
    msec *s = free_sec(in);
    unsigned fac = pick_factory(in), slot = 0;
    size_t size = pick_secret_size(in), k = size <= maxb ? size : 0;
    uint8_t how = fz_u8(in);
    size_t have = fd_holds(how, k);
    sm_secret out = { 0x0badull };
    bool coffer = fz_coffer_exists(), ok;
    sm_status fill = have >= size ? SM_OK : SM_E_IO, want = secret_size_status(fac, size), st;
    fz_calls c0, c1, own = { 0 };
    int fd;

    if (s == NULL)
        return;
    if (want == SM_OK)
        want = fac == FACT_ENCRYPTED && M.exhausted && fill == SM_OK ? SM_E_STATE : fill;
    fz_fill(in, src, have > 0 ? have : 1);
    fd = fd_with(how & 4, have);
    fz_calls_now(c0);
    cm_begin();
    fz_faults_before(&F);
    st = sm_secret_from_fd(factory(fac), fd, size, &out);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_trace("%s %s %zu into %u (%s, %zu bytes): %s", what, factory_name(fac), size, SEC_ID(s),
             how & 4 ? "memfd" : "pipe", have, fz_st(st));
    if (fac == FACT_COMPACT && secret_size_status(fac, size) == SM_OK)
        ok = compact_outcome(st, compact_make(size, fill, 0, st, &slot), fill, what);
    else
        ok = outcome(st, want, SM_OK, what);
    if (st == SM_E_IO && F.fired == 0)
        FZ_CHECK(sm_last_os_error() == 0, "%s: short input, sm_last_os_error %d", what,
                 sm_last_os_error());
    if (!ok) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", what);
        if (st == SM_E_IO && F.fired == 0)
            FZ_CHECK(fd_left(fd) == 0, "%s: short input not read to its end", what);
        close(fd);
        return;
    }
    FZ_CHECK(fd_left(fd) == have - size, "%s: read more than %zu bytes", what, size);
    close(fd);
    if (F.fired == 0 && fac != FACT_COMPACT && (fac != FACT_ENCRYPTED || (coffer && !M.aged))) {
        fz_calls_add(own, c0, c1);
        check_calls(what, own, fz_sec_calls_row("from_fd", fac));
    }
    secret_made(s, out, fac, size, src, true, slot);
}

/*
 * sm_secret_from_buffer: the buffer's bytes into a new secret, the buffer destroyed, as
 * sm_buffer_destroy's row says (a stale buffer: SM_E_STATE), and all or nothing, except
 * that a failed last munmap of the buffer's pages leaves it wiped and read-write, as
 * after a failed sm_buffer_destroy (secret.h). That munmap is the call's first, but for
 * the encrypted factory, whose seal frees the fill region first (its second).
 */
void op_secret_from_buffer(fz_in *in)
{
    const char *what = "secret_from_buffer";
    msec *s = free_sec(in);
    mbuf *b = &M.b[fz_u8(in) % NB];
    unsigned fac = pick_factory(in), slot = 0;
    sm_secret out = { 0x0badull };
    bool coffer = fz_coffer_exists(), frozen = b->state == FZ_FROZEN && !b->opened, ok;
    sm_status want = rows[R_DESTROY]->st[b->state], st;
    const fz_plan *p = &F.plan[SM_OS_MUNMAP];
    fz_calls c0, c1, own = { 0 };

    /* The model's secrets hold maxb bytes; a stream's flush gives larger buffers. */
    if (s == NULL || (b->state != FZ_DESTROYED && b->size > maxb))
        return;
    if (want == SM_OK)
        want = secret_size_status(fac, b->size); /* the buffer is looked up first */
    if (want == SM_OK && fac == FACT_ENCRYPTED && M.exhausted)
        want = SM_E_STATE; /* the seal needs a nonce */
    fz_calls_now(c0);
    cm_begin();
    fz_faults_before(&F);
    st = sm_secret_from_buffer(factory(fac), b->h, &out);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_trace("%s %s buffer %u into %u: %s", what, factory_name(fac), BUF_ID(b), SEC_ID(s),
             fz_st(st));
    M.touched |= 1u << BUF_ID(b);
    /* Then the buffer is consumed: its pages opened if FROZEN, and unmapped. */
    if (fac == FACT_COMPACT && want == SM_OK)
        ok = compact_outcome(st, compact_make(b->size, SM_OK, frozen ? 2 : 1, st, &slot), SM_OK,
                             what);
    else
        ok = outcome(st, want, SM_OK, what);
    if (!ok) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", what);
        if (want == SM_OK && failed_last_munmap() &&
            p->nth - F.before[SM_OS_MUNMAP] == (fac == FACT_ENCRYPTED ? 2u : 1u)) {
            memset(b->want, 0, b->size);
            b->opened = true;
        }
        return;
    }
    if (F.fired == 0 && frozen && fac != FACT_COMPACT &&
        (fac != FACT_ENCRYPTED || (coffer && !M.aged))) {
        fz_calls_add(own, c0, c1);
        check_calls(what, own, fz_sec_calls_row("from_buffer", fac));
    }
    secret_made(s, out, fac, b->size, b->want, true, slot);
    b->state = rows[R_DESTROY]->next[b->state];
}

/* What an access sees: the model's bytes (a random secret's are learnt here), read-only
   (read-write only in a window that a failed close opened), in the factory's layout. */
static void check_window(msec *s, const uint8_t *bytes)
{
    char what[32];
    fz_prot want = s->opened ? FZ_PROT_RW : FZ_PROT_READ, a, b;

    snprintf(what, sizeof what, "secret %u", SEC_ID(s));
    if (s->fac == FACT_COMPACT) {
        cm_seen(s, bytes);
        cm_check_pages(s); /* open to read, as its neighbours' accesses left its pages */
    } else if (s->fac == FACT_GUARDED || s->fac == FACT_ENCRYPTED) {
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
    sm_status shut;      /* a compact secret's: what the emulation says its shut gives */
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
    if (s->fac == FACT_COMPACT) {
        cm_begin();
        fr->shut = cm_shut(s);
    }
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

/*
 * The end of a compact secret's access: the emulation's open (before the call) and shut
 * (as fn returned) say what it gives; fn's own error comes first (compact.c).
 */
static void compact_access_done(msec *s, const frame *fr, sm_status st, sm_status open,
                                const char *what)
{
    sm_status fn_st = fn_status(fr->how);

    if (open != SM_OK) {
        FZ_CHECK(!fr->called, "%s (compact): fn called, the model's open was refused", what);
        (void)compact_outcome(st, open, SM_OK, what);
        return;
    }
    FZ_CHECK(fr->called, "%s (compact): fn not called", what);
    (void)compact_outcome(st, fn_st != SM_OK ? fn_st : fr->shut, fn_st, what);
    if (s->depth == 0)
        s->readable = false;
}

/* with_bytes and try_with_bytes (single-threaded, a try never finds anything to wait for). */
void op_access(fz_in *in, bool try)
{
    const char *what = try ? "try_with_bytes" : "with_bytes";
    msec *s = &M.sec[fz_u8(in) % NSEC];
    frame fr = { .s = s, .in = in, .how = fz_u8(in), .share_was = M.share_open };
    int state = fz_sec_state(s->open, s->depth);
    const fz_sec_cell *cell = &sec_rows[try ? FZ_SOP_TRY : FZ_SOP_WITH]->cell[state];
    /* A failed shut kept the window open, or a failed audit may have left it readable. */
    bool stuck = (s->readable || s->audited) && s->depth == 0;
    sm_status fn_st = fn_status(fr.how), open = SM_OK, st;
    bool compact = s->fac == FACT_COMPACT && cell->st == SM_OK;
    fz_calls end, own = { 0 };

    if (M.depth >= MAX_DEPTH)
        return;
    FZ_CHECK(!cell->waits, "%s: a cell that waits, with no other thread", what);
    fz_calls_now(fr.start);
    if (compact) {
        cm_begin();
        open = cm_open(s);
    }
    fz_faults_before(&F);
    st = try ? sm_secret_try_with_bytes(s->h, access_fn, &fr)
             : sm_secret_with_bytes(s->h, access_fn, &fr);
    fz_faults_after(&F);
    fz_calls_now(end);
    fz_trace("%s secret %u: %s", what, SEC_ID(s), fz_st(st));
    if (M.tainted)
        return;
    if (compact) {
        compact_access_done(s, &fr, st, open, what);
        return;
    }
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

void op_read_at(fz_in *in)
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

    bool compact;

    if (want == SM_OK && off > s->size)
        want = SM_E_INVAL;
    if (want == SM_OK)
        k = n < s->size - off ? n : s->size - off;
    memset(src, 0xa5, maxb + 1);
    fz_calls_now(c0);
    /* A compact secret's copy is an access of its own (nothing to copy: none). */
    compact = s->fac == FACT_COMPACT && want == SM_OK && k > 0;
    if (compact) {
        cm_begin();
        want = cm_open(s);
        if (want == SM_OK)
            want = cm_shut(s);
    }
    fz_faults_before(&F);
    st = sm_secret_read_at(s->h, off, src, n, &got);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    fz_trace("read_at secret %u off %zu n %zu: %s got %zu", SEC_ID(s), off, n, fz_st(st), got);
    if (compact ? !compact_outcome(st, want, SM_OK, "read_at")
                : !outcome(st, want, SM_OK, "read_at")) {
        FZ_CHECK(got == 0x0bad, "failed read_at wrote *got");
        for (size_t i = 0; i <= maxb; i++)
            FZ_CHECK(src[i] == 0xa5 || src[i] == 0, "failed read_at left byte %zu in dst", i);
        if (compact) {
            return;
        } else if (want != SM_OK) {
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
    if (compact)
        return;
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

void op_secret_close(fz_in *in)
{
    msec *s = &M.sec[fz_u8(in) % NSEC];
    sm_status want, st;
    int next;
    fz_calls c0, c1, own = { 0 };

    bool compact;

    fz_sec_own_close(sec_rows[FZ_SOP_CLOSE], fz_sec_state(s->open, s->depth), &want, &next);
    fz_calls_now(c0);
    /* Opened to write for the wipe, then shut; a refused shut leaves the page open. */
    compact = s->fac == FACT_COMPACT && want == SM_OK;
    if (compact) {
        cm_begin();
        want = cm_close(s);
    }
    fz_faults_before(&F);
    st = sm_secret_close(s->h);
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    fz_trace("close secret %u: %s", SEC_ID(s), fz_st(st));
    if (compact) {
        if (compact_outcome(st, want, SM_OK, "close"))
            s->open = next != FZ_SEC_CLOSED;
        return;
    }
    if (outcome(st, want, SM_OK, "close")) {
        /*
         * The row is a close at rest; open pages need no mprotect to be wiped. A fault
         * that the close got over (the pool's shut refused, the region freed instead:
         * pool.c's smi_pool_give) follows neither row, as for the other operations.
         */
        if (!s->readable && !s->opened && F.fired == 0)
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
void op_secret_query(fz_in *in)
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
 * lengths 0 and 2^62 (from a buffer, a callback and a descriptor too), custom tables
 * that are incomplete or of another version (SM_E_INVAL); ids that name no open secret
 * (closed ones, those of other kinds, forged: SM_E_STATE, 0, closed); a secret's id as
 * every other kind. None makes an OS call, writes its out-parameter or wipes its source.
 */
void op_secret_bad(fz_in *in)
{
    /* Kind 5 is the compact factory's: a class past the last, a slab never made. */
    static const uint64_t forged[] = {
        0, 0x0000000100000000ull, 0xf000000100000000ull, 0x5000000100000000ull,
        0x40000001ffffffffull, 0x4000000000000000ull, 0x1000000000000000ull, UINT64_MAX,
        0x50000001e0000000ull, 0x500000011fffffffull,
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
        id = forged[fz_u8(in) % (sizeof forged / sizeof forged[0])];
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
    SEC_INVAL(sm_secret_from_callback(f, 16, NULL, NULL, &out));
    SEC_INVAL(sm_secret_from_callback(NULL, 16, fill_fn, NULL, &out));
    SEC_INVAL(sm_secret_from_buffer(NULL, M.b[0].h, &out));
    SEC_INVAL(sm_secret_from_buffer(f, M.b[0].h, NULL));
    SEC_INVAL(sm_secret_from_fd(f, -1, 0, &out));
    SEC_INVAL(sm_secret_from_fd(&bad, -1, 16, &out));
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
