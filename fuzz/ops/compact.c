/* SPDX-License-Identifier: ISC */
/*
 * The compact factory's slabs as the model sees them (spec/compact.md): which slot each
 * secret takes, which data pages are open, writable, locked, and every OS call that
 * follows, injected failures included. Its byte counts and protections are per page and
 * its calls depend on its neighbours, so the model keeps its pages, not one region per
 * secret.
 *
 * An input makes at most NSEC live secrets, far fewer than the 31 slots of the largest
 * class's slab, so each class has at most one slab: mapped at its first make, kept when
 * its last secret is closed (one empty slab per class stays), unmapped by a purge or by
 * the failure of the make that mapped it. Slots are taken from the free list (the last
 * freed first), else the next fresh one. The emulation makes the calls that compact.c
 * makes, in its order, against the input's fault plans as the fault shim counts them
 * (fz_plan: the nth call fails, and every later one if sticky), so it knows which call a
 * fault hits, the status it gives and what it leaves behind.
 */
#include "model.h"

#define CM_CLASSES 8u
#define CM_PAGES 16u
#define CM_HDR 8u /* the canary in front of each slot */
#define CM_SLOTS 64u

static const unsigned class_size[CM_CLASSES] = { 16, 32, 64, 128, 256, 512, 1024, 2048 };

typedef struct cm_page {
    unsigned opens, writers;
    fz_prot  prot;    /* what the kernel has: changed only by a call that succeeded */
    bool     touched; /* locked at the first write, counted until the slab goes */
} cm_page;

typedef struct cm_class {
    bool      mapped;
    unsigned  fresh, nused;
    unsigned  free[CM_SLOTS], nfree; /* a stack: the last freed is taken first */
    cm_page   pg[CM_PAGES];
    uintptr_t data;                  /* the first data page, once an access showed it */
} cm_class;

static cm_class cls[CM_CLASSES];
static unsigned long ncalls[SM_OS_FN_COUNT]; /* the shim's count, as the emulation goes */
/* Regions in the region pool at cm_begin: a refused lock empties it and tries again. */
static size_t pooled;

unsigned cm_class_of(size_t size)
{
    unsigned c = 0;

    while (class_size[c] < size)
        c++;
    return c;
}

static size_t stride(unsigned c)
{
    return class_size[c] + CM_HDR;
}

void cm_reset(void)
{
    memset(cls, 0, sizeof cls);
}

/* Start emulating from the calls the shim has counted so far. */
void cm_begin(void)
{
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        ncalls[fn] = sm_os_fault_calls((sm_os_fn)fn);
    pooled = fz_pooled();
}

/* n calls of fn that another part of the operation makes first. */
void cm_skip(sm_os_fn fn, unsigned long n)
{
    ncalls[fn] += n;
}

unsigned long cm_calls(sm_os_fn fn)
{
    return ncalls[fn];
}

/* One call of fn: its status, as the fault shim and spec/os-errors.tsv make it. */
static sm_status os_call(sm_os_fn fn)
{
    const fz_plan *p = &F.plan[fn];
    unsigned long n = ++ncalls[fn];

    if (!p->armed || n < p->nth || (n > p->nth && !p->sticky))
        return SM_OK;
    if (p->err == EINTR)
        return os_call(fn); /* the shim calls again */
    return fn == SM_OS_MLOCK ? SM_E_LOCK : fz_err_status(fn, p->err);
}

/* ---- pages, as compact.c's apply, span_open, span_close and lock_pages ---- */

static fz_prot wanted(const cm_page *p)
{
    return p->writers > 0 ? FZ_PROT_RW : p->opens > 0 ? FZ_PROT_READ : FZ_PROT_NONE;
}

static sm_status apply(cm_page *p)
{
    sm_status st;

    if (p->prot == wanted(p))
        return SM_OK;
    st = os_call(SM_OS_MPROTECT);
    if (st == SM_OK)
        p->prot = wanted(p);
    return st;
}

static void pages_of(unsigned c, unsigned i, unsigned *first, unsigned *last)
{
    size_t off = (size_t)i * stride(c);

    *first = (unsigned)(off / page);
    *last = (unsigned)((off + stride(c) - 1) / page);
}

static sm_status span_open(unsigned c, unsigned i, bool write)
{
    unsigned first, last;

    pages_of(c, i, &first, &last);
    for (unsigned p = first; p <= last; p++) {
        cm_page *pg = &cls[c].pg[p];
        sm_status st;

        pg->opens++;
        pg->writers += write;
        st = apply(pg);
        if (st != SM_OK) {
            for (unsigned q = first; q <= p; q++) {
                cls[c].pg[q].opens--;
                cls[c].pg[q].writers -= write;
                (void)apply(&cls[c].pg[q]);
            }
            return st;
        }
    }
    return SM_OK;
}

static sm_status span_close(unsigned c, unsigned i, bool write)
{
    unsigned first, last;
    sm_status st = SM_OK;

    pages_of(c, i, &first, &last);
    for (unsigned p = first; p <= last; p++) {
        cm_page *pg = &cls[c].pg[p];
        sm_status r;

        pg->opens--;
        pg->writers -= write;
        r = apply(pg);
        if (st == SM_OK)
            st = r;
    }
    return st;
}

/*
 * After a refused lock, region.c's smi_lock_touched_pages empties the region pool (one
 * munmap a pooled region, its status unread) and, if anything was in it, locks again:
 * whether that second lock was granted.
 */
static bool relieved(void)
{
    if (pooled == 0)
        return false;
    for (; pooled > 0; pooled--)
        (void)os_call(SM_OS_MUNMAP);
    return os_call(SM_OS_MLOCK) == SM_OK;
}

static sm_status lock_pages(unsigned c, unsigned i)
{
    unsigned first, last;

    pages_of(c, i, &first, &last);
    for (unsigned p = first; p <= last; p++) {
        if (cls[c].pg[p].touched)
            continue;
        if (os_call(SM_OS_MLOCK) != SM_OK && !relieved())
            return SM_E_LOCK; /* SM_LOCK_REQUIRED, the harness's policy */
        cls[c].pg[p].touched = true;
    }
    return SM_OK;
}

/* ---- slabs and slots ---- */

/* The anonymous backing: mmap, mprotect of the meta, madvise twice; undone on failure. */
static sm_status slab_new(unsigned c)
{
    sm_status st = os_call(SM_OS_MMAP);

    if (st != SM_OK)
        return st;
    st = os_call(SM_OS_MPROTECT);
    if (st == SM_OK)
        st = os_call(SM_OS_MADVISE);
    if (st == SM_OK)
        st = os_call(SM_OS_MADVISE);
    if (st != SM_OK) {
        (void)os_call(SM_OS_MUNMAP);
        return st;
    }
    memset(&cls[c], 0, sizeof cls[c]);
    cls[c].mapped = true;
    return SM_OK;
}

/* A refused munmap keeps the slab (F.fired then says the input is past modelling). */
static void slab_unmap(unsigned c)
{
    if (os_call(SM_OS_MUNMAP) == SM_OK)
        cls[c].mapped = false;
}

static void slot_free(unsigned c, unsigned i)
{
    FZ_CHECK(cls[c].nfree < CM_SLOTS, "compact model: free list full");
    cls[c].free[cls[c].nfree++] = i;
    cls[c].nused--;
}

static sm_status slot_reserve(unsigned c, unsigned *pi, bool *made)
{
    cm_class *C = &cls[c];
    sm_status st;
    unsigned i;

    *made = false;
    if (!C->mapped) {
        st = slab_new(c);
        if (st != SM_OK)
            return st;
        *made = true;
    }
    i = C->nfree > 0 ? C->free[C->nfree - 1] : C->fresh;
    st = span_open(c, i, true);
    if (st == SM_OK) {
        st = lock_pages(c, i);
        if (st != SM_OK)
            (void)span_close(c, i, true);
    }
    if (st != SM_OK) {
        if (*made)
            slab_unmap(c);
        return st;
    }
    if (C->nfree > 0)
        C->nfree--;
    else
        C->fresh++;
    C->nused++;
    *pi = i;
    return SM_OK;
}

/* Wipe and free slot i after a failed make; open: its pages are still open to write. */
static void unmake(unsigned c, unsigned i, bool open, bool made)
{
    if (!open && span_open(c, i, true) != SM_OK)
        return; /* a second failure: F.fired stops the input */
    (void)span_close(c, i, true);
    slot_free(c, i);
    if (made && cls[c].nused == 0)
        slab_unmap(c);
}

/*
 * A make of size bytes (smi_compact_make): the slot reserved, the fill (whose status is
 * fill, no OS call), the shut, then commit's calls (from_buffer: the buffer's pages
 * opened when frozen, then unmapped; commit_calls 0 for none), every failure undone.
 * Returns the status and, on success, the slot in *slot.
 */
sm_status cm_make(size_t size, sm_status fill, int commit_calls, unsigned *slot)
{
    unsigned c = cm_class_of(size), i;
    bool made;
    sm_status st = slot_reserve(c, &i, &made);

    if (st != SM_OK)
        return st;
    if (fill != SM_OK) {
        unmake(c, i, true, made);
        return fill;
    }
    st = span_close(c, i, true);
    if (st != SM_OK) {
        unmake(c, i, false, made);
        return st;
    }
    if (commit_calls > 0) {
        st = commit_calls > 1 ? os_call(SM_OS_MPROTECT) : SM_OK;
        if (st == SM_OK)
            st = os_call(SM_OS_MUNMAP);
        if (st != SM_OK) {
            unmake(c, i, false, made);
            return st;
        }
    }
    *slot = i;
    return SM_OK;
}

/* An access's open and shut (smi_compact_access), and a close (smi_compact_close). */
sm_status cm_open(const msec *s)
{
    return span_open(cm_class_of(s->size), s->slot, false);
}

sm_status cm_shut(const msec *s)
{
    return span_close(cm_class_of(s->size), s->slot, false);
}

sm_status cm_close(const msec *s)
{
    unsigned c = cm_class_of(s->size);
    sm_status st = span_open(c, s->slot, true);

    if (st != SM_OK)
        return st;
    (void)span_close(c, s->slot, true); /* a refused shut: the page stays open, wiped */
    slot_free(c, s->slot);
    return SM_OK;
}

/*
 * sm_audit's compact part: every live slot of every class, in class and slot order,
 * opened to read and shut again; the first refusal is the result, the walk goes on.
 */
sm_status cm_audit(void)
{
    sm_status st = SM_OK;

    for (unsigned c = 0; c < CM_CLASSES; c++) {
        const msec *live[NSEC];
        unsigned n = 0;

        for (unsigned k = 0; k < NSEC; k++)
            if (M.sec[k].open && M.sec[k].fac == FACT_COMPACT && cm_class_of(M.sec[k].size) == c)
                live[n++] = &M.sec[k];
        for (unsigned a = 1; a < n; a++)
            for (unsigned b = a; b > 0 && live[b - 1]->slot > live[b]->slot; b--) {
                const msec *t = live[b];

                live[b] = live[b - 1];
                live[b - 1] = t;
            }
        for (unsigned k = 0; k < n; k++) {
            sm_status r = span_open(c, live[k]->slot, false);

            if (r == SM_OK)
                r = span_close(c, live[k]->slot, false);
            if (st == SM_OK)
                st = r;
        }
    }
    return st;
}

/*
 * A copy of the slabs, for a make that a refused getrandom may have failed or not: the
 * canary generator's keying ignores the refusal, a random fill returns it.
 */
static cm_class saved[CM_CLASSES];
static size_t saved_pooled;
static unsigned long saved_calls[SM_OS_FN_COUNT];

void cm_save(void)
{
    memcpy(saved, cls, sizeof cls);
    memcpy(saved_calls, ncalls, sizeof ncalls);
    saved_pooled = pooled;
}

void cm_restore(void)
{
    memcpy(cls, saved, sizeof cls);
    memcpy(ncalls, saved_calls, sizeof ncalls);
    pooled = saved_pooled;
}

/* ---- checks ---- */

/* The calls the emulation made since cm_begin, against what the shim counted. */
void cm_check_calls(const char *what)
{
    static const sm_os_fn fns[] = { SM_OS_MMAP, SM_OS_MUNMAP, SM_OS_MPROTECT, SM_OS_MLOCK,
                                    SM_OS_MADVISE };

    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++)
        FZ_CHECK(sm_os_fault_calls(fns[k]) == ncalls[fns[k]],
                 "%s: %lu calls of %s, the compact model %lu", what, sm_os_fault_calls(fns[k]),
                 sm_os_fn_name(fns[k]), ncalls[fns[k]]);
}

/* Bytes counted for the slabs: their pages locked so far. */
uint64_t cm_bytes(void)
{
    uint64_t n = 0;

    for (unsigned c = 0; c < CM_CLASSES; c++)
        for (unsigned p = 0; cls[c].mapped && p < CM_PAGES; p++)
            n += cls[c].pg[p].touched ? page : 0;
    return n;
}

/*
 * Where s's bytes are: its slot in its class's data pages, which start on a page
 * boundary and are the same for every secret of the class (one slab). Learnt at the
 * first access of the class, checked at every later one.
 */
void cm_seen(const msec *s, const uint8_t *bytes)
{
    unsigned c = cm_class_of(s->size);
    uintptr_t data = (uintptr_t)bytes - CM_HDR - (uintptr_t)s->slot * stride(c);

    FZ_CHECK(data % page == 0, "compact secret %u: not at slot %u of a slab", SEC_ID(s), s->slot);
    if (cls[c].data == 0)
        cls[c].data = data;
    FZ_CHECK(cls[c].data == data, "compact secret %u: in another slab than its class's",
             SEC_ID(s));
}

/* The protection of the pages of s's first and last byte, probed against the model's. */
void cm_check_pages(const msec *s)
{
    unsigned c = cm_class_of(s->size);
    size_t off = (size_t)s->slot * stride(c) + CM_HDR;
    const cm_page *a = &cls[c].pg[off / page], *b = &cls[c].pg[(off + s->size - 1) / page];
    fz_prot pa, pb;

    if (cls[c].data == 0)
        return; /* not seen yet */
    pa = fz_probe((const void *)(cls[c].data + off));
    pb = fz_probe((const void *)(cls[c].data + off + s->size - 1));
    FZ_CHECK(pa == a->prot && pb == b->prot,
             "compact secret %u: pages are %s and %s, model %s and %s", SEC_ID(s),
             fz_prot_name(pa), fz_prot_name(pb), fz_prot_name(a->prot), fz_prot_name(b->prot));
}
