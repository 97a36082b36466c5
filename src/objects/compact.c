/* SPDX-License-Identifier: ISC */
/*
 * The compact factory (spec/compact.md): secrets of up to 2,048 bytes packed into slabs
 * of locked pages, one size class per slab, a random canary in front of each slot, the
 * pages PROT_NONE at rest and opened one page at a time, counted per page (or, with a
 * protection key, read-write and opened by each thread's own rights: below).
 *
 *     | guard page | slot 0 | slot 1 | ... (16 data pages) | guard page | meta pages |
 *     slot = | canary (8) | bytes (class size) |
 *
 * No registry slot: a handle names the class, the slab's number in its class and the
 * slot, with the slot's own generation (issue 14 §2: the 384-byte registry slot alone is
 * four times the 96-byte budget). The meta pages, ordinary memory after the trailing
 * guard, hold the slab header, the per-page counts and 24 bytes per slot (canary copy,
 * generation, readers, state); no secret byte lives there.
 *
 * Protection keys (spec/compact.md, "Protection keys"). Where the CPU and the kernel
 * have them, one key is taken before the first slab (key_decide) and every slab's data
 * pages are mapped read-write under it for their whole life: the per-page counts go on
 * as below, but a page's protection is then the thread's rights for the key (its PKRU
 * register), which each thread raises for its own accesses and lowers when the last of
 * them leaves, with no system call. Without a key everything is mprotect, as before.
 *
 * Locking. One mutex per size class guards its slabs' meta. Protection changes are made
 * under it (so a query can wait behind an mprotect, unlike the registry-backed secrets);
 * accesses read outside it. Every unlock goes through class_unlock, which finishes a
 * purge that found the lock held (the registry's `doomed` pattern, spec/registry.md).
 * Slabs are created and unmapped only under their class lock, and a class's directory
 * is touched only under it, so a handle lookup never reaches an unmapped slab.
 */
#include <string.h>

#include "compact.h"

#define NCLS 8u
#define SLAB_PAGES 16u
#define SLABS_PER_CLASS 1024u
#define HDR 8u /* the canary in front of each slot */

/* Handle index: class (3 bits) | slab number (10 bits) | slot (16 bits). */
#define IDX_CLS_SHIFT 26u
#define IDX_SLAB_SHIFT 16u

static const uint16_t class_size[NCLS] = { 16, 32, 64, 128, 256, 512, 1024, 2048 };

enum { PG_UNTOUCHED, PG_LOCKED, PG_UNLOCKED };
enum { SLOT_FREE, SLOT_FILLING, SLOT_LIVE, SLOT_RETIRED };

/* One data page: opens in flight (reads and writes), writes among them, its protection. */
typedef struct pagestate {
    uint32_t opens;
    uint16_t writers;
    uint8_t  prot;  /* sm_prot as it is now */
    uint8_t  lock;  /* PG_*: counted in bytes_locked or bytes_unlocked once touched */
} pagestate;

typedef struct slotmeta {
    uint64_t canary;  /* the copy checked against the one in front of the bytes */
    uint32_t gen;     /* of the live secret, or of the next one here */
    uint32_t readers;
    uint32_t next;    /* free list: slot + 1, 0 at the end */
    uint16_t len;
    uint8_t  state;   /* SLOT_* */
    uint8_t  closing;
} slotmeta;

typedef struct slab {
    struct slab *next;     /* in its class's list, or in limbo once purged */
    uint8_t     *base;     /* the mapping (leading guard page) */
    size_t       map_len, meta_off;
    uint8_t     *data;     /* base + page */
    uint32_t     no, nslots, nused, free_head, fresh, maxgen, spans;
    uint8_t      cls;
    bool         secretmem, purged;
    bool         keyed; /* the data pages are read-write under the_key, for good */
    pagestate    pages[SLAB_PAGES];
    slotmeta     slots[];
} slab;

typedef struct cls {
    sm_os_mutex lock;
    sm_os_cond      cond;   /* a close waiting for its secret's readers */
    slab           *head;   /* the slabs in use */
    slab           *limbo;  /* purged while accesses read them: the last one out unmaps */
    uint32_t        empty;  /* slabs of head with no slot used (hysteresis: keep one) */
    atomic_bool     doomed; /* a purge found the lock held: its holder finishes it */
    uint32_t        forks;  /* forked children this process is: smi_compact_after_fork */
    slab           *dir[SLABS_PER_CLASS];
    uint32_t        floor[SLABS_PER_CLASS]; /* the first generation of the next slab here */
} cls;

#define CLS_INIT { .lock = SM_OS_MUTEX_INIT, .cond = SM_OS_COND_INIT }
static cls classes[NCLS] = { CLS_INIT, CLS_INIT, CLS_INIT, CLS_INIT,
                             CLS_INIT, CLS_INIT, CLS_INIT, CLS_INIT };

static _Atomic uint64_t live, slabs_mapped;

/*
 * The protection key, decided once, by the first slab's make (key_decide): KEY_NONE
 * where there is none (no CPU or kernel support, Valgrind, another system, or a refused
 * pkey_alloc), and the factory stays on mprotect. key_lock is taken only under a class
 * lock or before any slab (smi_compact_keyed), and a fork holds it with every class
 * lock (smi_compact_before_fork).
 */
enum { KEY_UNDECIDED, KEY_NONE, KEY_SET };
static _Atomic int key_state;
static int the_key = -1;
static sm_os_mutex key_lock = SM_OS_MUTEX_INIT;

/*
 * This thread's accesses in flight on keyed slabs, and the writes among them: its
 * rights for the key are read-write while a write is in, read-only while any access
 * is, none otherwise. Counted per thread, as the pages are counted per slab, so that
 * nested accesses share the rights and the outermost one's exit takes them away.
 */
static _Thread_local uint32_t key_opens, key_writes;

static const sm_factory compact_factory = { .version = SM_FACTORY_VERSION, .ctx = "compact" };

const sm_factory *sm_factory_compact(void)
{
    return &compact_factory;
}

static size_t page(void)
{
    return sm_os_page_size();
}

static size_t stride(const slab *sb)
{
    return class_size[sb->cls] + HDR;
}

static uint8_t *slot_at(const slab *sb, uint32_t i)
{
    return sb->data + (size_t)i * stride(sb);
}

/* ---- the class lock ---- */

static bool purge_class(cls *C);

/*
 * Unlock, then finish a purge that came while the lock was held: the two sides of a
 * store-buffering pattern with a full fence between, as registry.c's unlock_slot.
 */
static void class_unlock(cls *C)
{
    for (;;) {
        sm_os_mutex_unlock(&C->lock);
        atomic_thread_fence(memory_order_seq_cst);
        if (!atomic_load(&C->doomed) || sm_os_mutex_trylock(&C->lock) != 0)
            return;
        if (atomic_exchange(&C->doomed, false) && !purge_class(C))
            smi_panic(smi_corrupt_msg);
    }
}

/* ---- the protection key ---- */

static void key_decide(void)
{
    if (atomic_load_explicit(&key_state, memory_order_acquire) != KEY_UNDECIDED)
        return;
    sm_os_mutex_lock(&key_lock);
    if (atomic_load_explicit(&key_state, memory_order_relaxed) == KEY_UNDECIDED) {
        int err = sm_os_last_error(), k = -1;

        /*
         * Any refusal is final: the process stays on mprotect. Refused, it is no error
         * of the make that asked, so the caller's last OS error is put back.
         */
        if (sm_os_pkey_alloc(&k) == SM_OK) {
            the_key = k;
            atomic_store_explicit(&key_state, KEY_SET, memory_order_release);
        } else {
            sm_os_set_last_error(err);
            atomic_store_explicit(&key_state, KEY_NONE, memory_order_release);
        }
    }
    sm_os_mutex_unlock(&key_lock);
}

bool smi_compact_keyed(void)
{
    key_decide();
    return atomic_load_explicit(&key_state, memory_order_acquire) == KEY_SET;
}

/* This thread's rights, from its counts (key mode). */
static void key_rights(void)
{
    (void)sm_os_pkey_rights(the_key, key_writes > 0  ? SM_PROT_READWRITE
                                     : key_opens > 0 ? SM_PROT_READ
                                                     : SM_PROT_NONE);
}

/*
 * The whole of the keyed slabs' data read-write for this thread, for a purge or the end
 * of a slab, which may run in a signal handler: the kernel gives a handler its default
 * rights (the key denied) and gives the interrupted code its own back at the handler's
 * return, so the rights this thread had are put back after, not recomputed from the
 * counts, which the handler may have interrupted halfway.
 */
static sm_prot key_all_open(void)
{
    return sm_os_pkey_rights(the_key, SM_PROT_READWRITE);
}

static void key_all_shut(sm_prot was)
{
    (void)sm_os_pkey_rights(the_key, was);
}

/*
 * Open a slab's whole data for a purge or its end: an mprotect, or keyed the thread's
 * rights (*was gets the ones to put back with key_all_shut). False if refused.
 */
static bool all_open(slab *sb, sm_prot *was)
{
    *was = SM_PROT_NONE; /* unread without a key; set, so that no path passes garbage */
    if (sb->keyed) {
        *was = key_all_open();
        return true;
    }
    return sm_os_mprotect(sb->data, SLAB_PAGES * page(), SM_PROT_READWRITE) == SM_OK;
}

static void all_shut(const slab *sb, sm_prot was)
{
    if (sb->keyed)
        key_all_shut(was);
}

/* ---- pages: opened per access, counted per page ---- */

static sm_prot wanted(const pagestate *p)
{
    return p->writers > 0 ? SM_PROT_READWRITE : p->opens > 0 ? SM_PROT_READ : SM_PROT_NONE;
}

/* Bring page p to what its counts ask for; a refusal leaves it as it was, to retry. */
static sm_status apply(slab *sb, unsigned p)
{
    sm_prot w = wanted(&sb->pages[p]);
    sm_status st;

    if ((sm_prot)sb->pages[p].prot == w)
        return SM_OK;
    /* Keyed: the page stays read-write; the thread's rights are what open it. */
    if (sb->keyed) {
        sb->pages[p].prot = (uint8_t)w;
        return SM_OK;
    }
    st = sm_os_mprotect(sb->data + (size_t)p * page(), page(), w);
    if (st == SM_OK)
        sb->pages[p].prot = (uint8_t)w;
    return st;
}

/* The pages slot i touches: one, or two when it straddles a page boundary. */
static void pages_of(const slab *sb, uint32_t i, unsigned *first, unsigned *last)
{
    size_t off = (size_t)i * stride(sb);

    *first = (unsigned)(off / page());
    *last = (unsigned)((off + stride(sb) - 1) / page());
}

static void unopen(slab *sb, unsigned from, unsigned to, bool write)
{
    for (unsigned p = from; p <= to; p++) {
        sb->pages[p].opens--;
        if (write)
            sb->pages[p].writers--;
        (void)apply(sb, p);
    }
}

/* Count an access (or a write) in on slot i's pages and open them; all or nothing. */
static sm_status span_open(slab *sb, uint32_t i, bool write)
{
    unsigned first, last;

    pages_of(sb, i, &first, &last);
    for (unsigned p = first; p <= last; p++) {
        sm_status st;

        sb->pages[p].opens++;
        if (write)
            sb->pages[p].writers++;
        st = apply(sb, p);
        if (st != SM_OK) {
            unopen(sb, first, p, write);
            return st;
        }
    }
    sb->spans++;
    if (sb->keyed) {
        key_opens++;
        key_writes += write;
        key_rights();
    }
    return SM_OK;
}

/* Count it out; a page whose last opener left shuts. The first refusal, if any. */
static sm_status span_close(slab *sb, uint32_t i, bool write)
{
    unsigned first, last;
    sm_status st = SM_OK;

    pages_of(sb, i, &first, &last);
    sb->spans--;
    if (sb->keyed) {
        key_opens--;
        key_writes -= write;
        key_rights();
    }
    for (unsigned p = first; p <= last; p++) {
        sm_status r;

        sb->pages[p].opens--;
        if (write)
            sb->pages[p].writers--;
        r = apply(sb, p);
        if (st == SM_OK)
            st = r;
    }
    return st;
}

/*
 * Lock slot i's pages the first time they are written (they are open read-write): a
 * slab charges RLIMIT_MEMLOCK for the pages its slots use, not for all 16 at once, so
 * that a small limit holds what its arithmetic says. REQUIRED: SM_E_LOCK, nothing
 * counted; BEST_EFFORT: counted in bytes_unlocked. Locked on first touch (the canary's
 * write, at once): the kernel populates a plainly mlock'd private page again at every
 * mprotect that makes it writable, twice per alloc+free here, for nothing.
 */
static sm_status lock_pages(slab *sb, uint32_t i)
{
    unsigned first, last;

    pages_of(sb, i, &first, &last);
    for (unsigned p = first; p <= last; p++) {
        pagestate *ps = &sb->pages[p];

        if (ps->lock != PG_UNTOUCHED)
            continue;
        if (smi_lock_touched_pages(sb->data + (size_t)p * page(), page()) == SM_OK) {
            ps->lock = PG_LOCKED;
            atomic_fetch_add(&smi_stat_locked, page());
        } else if (smi_config_get()->lock_policy == SM_LOCK_REQUIRED) {
            /*
             * Nothing was locked by this call before: fresh slots are taken in order,
             * so the first page of a slot across two was touched by the slot before it,
             * and only the second can be new.
             */
            return SM_E_LOCK;
        } else {
            ps->lock = PG_UNLOCKED;
            atomic_fetch_add(&smi_stat_unlocked, page());
        }
    }
    return SM_OK;
}

static bool canary_ok(const slab *sb, uint32_t i)
{
    uint64_t c;

    memcpy(&c, slot_at(sb, i), sizeof c);
    return c == sb->slots[i].canary;
}

/* ---- slabs ---- */

/*
 * Keyed: the data pages read-write under the key, for good (one pkey_mprotect). The
 * threads' rights deny them until an access raises its own.
 */
static sm_status key_data(slab *t)
{
    t->keyed = true;
    return sm_os_pkey_mprotect(t->base + page(), SLAB_PAGES * page(), SM_PROT_READWRITE,
                               the_key);
}

/* Anonymous: 4 calls (mmap, mprotect of the meta, madvise x2), and keyed 1 more. */
static sm_status map_anon(slab *t, size_t inner)
{
    void *base;
    sm_status st = sm_os_mmap(t->map_len, SM_PROT_NONE, &base);

    if (st != SM_OK)
        return st;
    t->base = base;
    st = sm_os_mprotect(t->base + t->meta_off, t->map_len - t->meta_off, SM_PROT_READWRITE);
    if (st == SM_OK)
        st = sm_os_madvise(t->base, inner, SM_OS_DONTDUMP);
    if (st == SM_OK)
        st = sm_os_madvise(t->base, inner, SM_OS_WIPEONFORK);
    if (st == SM_OK && smi_compact_keyed())
        st = key_data(t);
    if (st != SM_OK)
        (void)sm_os_munmap(t->base, t->map_len);
    return st;
}

/*
 * memfd_secret: 7 calls (create, mmap, mmap_fd, close, mprotect to NONE or, keyed,
 * pkey_mprotect to read-write under the key, madvise DONTFORK, mprotect of the meta). The data is charged to RLIMIT_MEMLOCK at the
 * mmap_fd: all 16 pages count as locked from the start.
 */
static sm_status map_secret(slab *t, size_t inner)
{
    size_t data_len = SLAB_PAGES * page();
    void *base;
    int fd;
    sm_status st = sm_os_secretmem_create(data_len, &fd);

    if (st != SM_OK)
        return st;
    st = sm_os_mmap(t->map_len, SM_PROT_NONE, &base);
    if (st == SM_OK) {
        t->base = base;
        st = sm_os_mmap_fd(t->base + page(), data_len, fd);
    }
    (void)sm_os_close(fd);
    if (st == SM_OK && smi_compact_keyed())
        st = key_data(t);
    else if (st == SM_OK)
        st = sm_os_mprotect(t->base + page(), data_len, SM_PROT_NONE);
    if (st == SM_OK)
        st = sm_os_madvise(t->base, inner, SM_OS_DONTFORK);
    if (st == SM_OK)
        st = sm_os_mprotect(t->base + t->meta_off, t->map_len - t->meta_off, SM_PROT_READWRITE);
    if (st != SM_OK && t->base != NULL)
        (void)sm_os_munmap(t->base, t->map_len);
    if (st == SM_OK)
        t->secretmem = true;
    return st;
}

/* A new empty slab of class c at the head of its list; its lock is held. */
static sm_status slab_new(unsigned c, slab **out)
{
    cls *C = &classes[c];
    size_t pg = page(), inner = (SLAB_PAGES + 2) * pg;
    slab t = { 0 }, *sb;
    uint32_t no;
    sm_status st;

    for (no = 0; no < SLABS_PER_CLASS; no++)
        if (C->dir[no] == NULL && C->floor[no] <= SMI_HANDLE_GEN_MAX)
            break;
    if (no == SLABS_PER_CLASS)
        return SM_E_NOMEM;
    t.cls = (uint8_t)c;
    t.nslots = (uint32_t)(SLAB_PAGES * pg / (class_size[c] + HDR));
    t.meta_off = inner;
    t.map_len = inner + smi_round_up(sizeof t + t.nslots * sizeof(slotmeta), pg);
    if (!smi_config_secretmem()) {
        st = map_anon(&t, inner);
    } else {
        st = map_secret(&t, inner);
        /* The region pool's pages count against RLIMIT_MEMLOCK too (smi_lock_retry). */
        if (st == SM_E_LOCK && smi_lock_retry()) {
            t.base = NULL;
            st = map_secret(&t, inner);
        }
        if ((st == SM_E_UNSUPPORTED || st == SM_E_LOCK) &&
            smi_config_get()->backing == SM_BACKING_SECRETMEM_PREFERRED) {
            t.base = NULL;
            st = map_anon(&t, inner);
        }
    }
    if (st != SM_OK)
        return st;
    sb = (slab *)(void *)(t.base + t.meta_off);
    *sb = t;
    sb->data = t.base + pg;
    sb->no = no;
    sb->maxgen = C->floor[no] > 0 ? C->floor[no] : 1;
    for (unsigned p = 0; p < SLAB_PAGES; p++) {
        sb->pages[p].prot = SM_PROT_NONE;
        if (sb->secretmem)
            sb->pages[p].lock = PG_LOCKED;
    }
    if (sb->secretmem)
        atomic_fetch_add(&smi_stat_locked, SLAB_PAGES * pg);
    sb->next = C->head;
    C->head = sb;
    C->dir[no] = sb;
    C->empty++;
    atomic_fetch_add(&slabs_mapped, 1);
    *out = sb;
    return SM_OK;
}

/*
 * Take the slab's counters back and free its number for a slab of higher generations.
 * sb is a copy taken before the unmap; listed, whether the directory still held the slab
 * then (a purge takes it out first, and a new slab may have the number since). Both are
 * read before the unmap because the slab's address, in the meta pages it unmapped, is
 * no pointer to compare after it.
 */
static void slab_count_out(cls *C, const slab *sb, bool listed)
{
    for (unsigned p = 0; p < SLAB_PAGES; p++) {
        if (sb->pages[p].lock == PG_LOCKED)
            atomic_fetch_sub(&smi_stat_locked, page());
        else if (sb->pages[p].lock == PG_UNLOCKED)
            atomic_fetch_sub(&smi_stat_unlocked, page());
    }
    if (listed) {
        C->floor[sb->no] = sb->maxgen + 1;
        C->dir[sb->no] = NULL;
    }
    atomic_fetch_sub(&slabs_mapped, 1);
}

static void unlink_from(slab **head, slab *sb)
{
    for (slab **pp = head; *pp != NULL; pp = &(*pp)->next)
        if (*pp == sb) {
            *pp = sb->next;
            return;
        }
}

/*
 * Unmap an empty slab (every slot was wiped when it was freed). A refused munmap keeps
 * it, empty and in use. Lock held.
 */
static bool slab_unmap(cls *C, slab *sb)
{
    slab copy = *sb;
    bool listed = C->dir[sb->no] == sb;

    unlink_from(&C->head, sb);
    if (sm_os_munmap(copy.base, copy.map_len) != SM_OK) {
        sb->next = C->head;
        C->head = sb;
        return false;
    }
    C->empty--;
    slab_count_out(C, &copy, listed);
    return true;
}

/* Wipe every data byte (the slab is going) and unmap; async-signal-safe. */
static bool slab_destroy(cls *C, slab *sb)
{
    size_t data_len = SLAB_PAGES * page();
    bool intact = true;
    slab copy = *sb;
    bool listed = C->dir[sb->no] == sb;
    sm_prot was;

    if (all_open(sb, &was)) {
        for (uint32_t i = 0; i < sb->fresh; i++)
            if (sb->slots[i].state == SLOT_LIVE && !canary_ok(sb, i))
                intact = false;
        smi_wipe(sb->data, data_len);
        all_shut(sb, was);
    }
    (void)sm_os_munmap(copy.base, copy.map_len);
    slab_count_out(C, &copy, listed);
    return intact;
}

/* ---- slots ---- */

/*
 * Free slot i (wiped already): a new generation, or retired at the last one. Lock held.
 * True if that emptied the slab and it was unmapped (sb is gone).
 */
static bool slot_free(cls *C, slab *sb, uint32_t i)
{
    slotmeta *m = &sb->slots[i];

    m->readers = 0;
    m->closing = 0;
    m->len = 0;
    if (m->gen >= SMI_HANDLE_GEN_MAX) {
        m->state = SLOT_RETIRED;
    } else {
        m->gen++;
        if (m->gen > sb->maxgen)
            sb->maxgen = m->gen;
        m->state = SLOT_FREE;
        m->next = sb->free_head;
        sb->free_head = i + 1;
    }
    if (--sb->nused == 0) {
        C->empty++;
        /* Hysteresis: one empty slab per class stays, so alloc+free never maps. */
        if (C->empty > 1 && sb->spans == 0)
            return slab_unmap(C, sb);
    }
    return false;
}

/* A free slot of class c, open for writing, locked, its canary written. Lock held. */
static sm_status slot_reserve(unsigned c, slab **psb, uint32_t *pi, bool *pmade)
{
    cls *C = &classes[c];
    slab *sb;
    uint32_t i;
    uint8_t seed[SMI_CANARY_SEED];
    bool made = false;
    sm_status st;

    for (sb = C->head; sb != NULL; sb = sb->next)
        if (sb->free_head != 0 || sb->fresh < sb->nslots)
            break;
    if (sb == NULL) {
        st = slab_new(c, &sb);
        if (st != SM_OK)
            return st;
        made = true;
    }
    i = sb->free_head != 0 ? sb->free_head - 1 : sb->fresh;
    /*
     * A fresh slot's metadata is made whole when its index is first handed out (again
     * if that reservation was refused: any generation from maxgen up is one that no
     * handle of this slab number has had), not read from the meta pages' zeroes.
     */
    if (sb->free_head == 0)
        sb->slots[i] = (slotmeta){ .gen = sb->maxgen };
    st = span_open(sb, i, true);
    if (st == SM_OK) {
        st = lock_pages(sb, i);
        if (st != SM_OK)
            (void)span_close(sb, i, true);
    }
    if (st != SM_OK) {
        /* A refused call changes nothing: a slab made for it goes again. */
        if (sb->nused == 0 && sb->spans == 0 && (made || C->empty > 1))
            (void)slab_unmap(C, sb);
        return st;
    }
    if (sb->free_head != 0)
        sb->free_head = sb->slots[i].next;
    else
        sb->fresh++;
    if (sb->nused++ == 0)
        C->empty--;
    smi_rng_canary(seed);
    memcpy(&sb->slots[i].canary, seed, sizeof sb->slots[i].canary);
    smi_wipe(seed, sizeof seed);
    memcpy(slot_at(sb, i), &sb->slots[i].canary, HDR);
    sb->slots[i].state = SLOT_FILLING;
    *psb = sb;
    *pi = i;
    *pmade = made;
    return SM_OK;
}

/* ---- handles ---- */

typedef struct where {
    cls     *C;
    unsigned c;
    uint32_t no, slot, gen;
} where;

static bool decode(uint64_t id, where *w)
{
    uint32_t idx = smi_handle_index(id);

    if (!smi_compact_handle(id))
        return false;
    w->c = idx >> IDX_CLS_SHIFT;
    w->no = (idx >> IDX_SLAB_SHIFT) & (SLABS_PER_CLASS - 1u);
    w->slot = idx & 0xffffu;
    w->gen = smi_handle_gen(id);
    if (w->c >= NCLS || idx >> IDX_CLS_SHIFT >= 8u)
        return false;
    w->C = &classes[w->c];
    return true;
}

/* The live slot w names, or NULL; the class lock is held. */
static slotmeta *lookup(const where *w, slab **psb)
{
    slab *sb = w->C->dir[w->no];
    slotmeta *m;

    if (sb == NULL || w->slot >= sb->fresh)
        return NULL;
    m = &sb->slots[w->slot];
    if (m->gen != w->gen || m->state != SLOT_LIVE)
        return NULL;
    *psb = sb;
    return m;
}

static uint64_t handle_of(const slab *sb, uint32_t i)
{
    uint32_t idx = ((uint32_t)sb->cls << IDX_CLS_SHIFT) | (sb->no << IDX_SLAB_SHIFT) | i;

    return smi_handle_make(SMI_COMPACT_KIND, sb->slots[i].gen, idx);
}

static smi_sec_action decide(const slotmeta *m, smi_sec_op op)
{
    smi_sec_view v = { m->readers, m->closing, 0, m->readers > 0 };

    return smi_sec_decide(&v, op);
}

/* This thread's accesses in flight, so that a close from inside one is refused. */
#define TRACKED 16u
static _Thread_local uint64_t held_ids[TRACKED];
static _Thread_local unsigned held_depth;

static bool held_here(uint64_t id)
{
    unsigned n = held_depth < TRACKED ? held_depth : TRACKED;

    for (unsigned i = 0; i < n; i++)
        if (held_ids[i] == id)
            return true;
    return false;
}

/* ---- life cycle ---- */

/*
 * A purge came during the make: it wiped the slab but for this slot, which the fill was
 * writing (purge_class), so the fill's bytes are wiped here, before the slab can go. Its
 * pages are open for writing (the fill's span, and the purge opened them all). Lock held.
 */
static sm_status make_purged(cls *C, slab *sb, uint32_t i, bool open)
{
    if (open) {
        smi_wipe(slot_at(sb, i), stride(sb));
        (void)span_close(sb, i, true);
    }
    if (sb->spans == 0) {
        unlink_from(&C->limbo, sb);
        (void)slab_destroy(C, sb);
    }
    class_unlock(C);
    return SM_E_STATE;
}

/*
 * Wipe slot i and free it; open says whether its pages are open for writing. A slab that
 * this very call made goes again once empty, so that a refused call changes nothing.
 */
static void unmake(cls *C, slab *sb, uint32_t i, bool open, bool made)
{
    if (!open && span_open(sb, i, true) != SM_OK) {
        /* The rollback cannot fail on top: the bytes stay shut, unreachable, till purge. */
        sb->slots[i].state = SLOT_RETIRED;
        return;
    }
    smi_wipe(slot_at(sb, i), stride(sb));
    (void)span_close(sb, i, true);
    if (!slot_free(C, sb, i) && made && sb->nused == 0 && sb->spans == 0)
        (void)slab_unmap(C, sb);
}

static const smi_outside_ops outside_ops = {
    .purge = smi_compact_purge,
    .before_fork = smi_compact_before_fork,
    .fork_parent = smi_compact_fork_parent,
    .after_fork = smi_compact_after_fork,
    .live = smi_compact_live,
};

sm_status smi_compact_make(size_t len, smi_compact_fill fill, void *ctx,
                           sm_status (*commit)(void *ctx), uint64_t *id)
{
    unsigned c = 0;
    cls *C;
    slab *sb = NULL;
    uint32_t i = 0;
    bool made = false;
    uint32_t forks;
    sm_status st;

    if (len == 0 || len > SMI_COMPACT_MAX)
        return SM_E_INVAL;
    st = smi_runtime_ready();
    if (st != SM_OK)
        return st;
    /* Before the first slab: the runtime's purge, fork handlers and stats reach it. */
    smi_runtime_outside(&outside_ops);
    while (class_size[c] < len)
        c++;
    C = &classes[c];
    sm_os_mutex_lock(&C->lock);
    st = slot_reserve(c, &sb, &i, &made);
    forks = C->forks;
    class_unlock(C);
    if (st != SM_OK)
        return st;
    st = fill(slot_at(sb, i) + HDR, len, ctx);
    sm_os_mutex_lock(&C->lock);
    /*
     * The fill forked and this is the child: the slab was forgotten, its meta pages
     * unmapped with it, and the fork wiped or left out its data. Nothing to touch.
     */
    if (C->forks != forks) {
        class_unlock(C);
        return SM_E_STATE;
    }
    if (sb->purged)
        return make_purged(C, sb, i, true);
    if (st == SM_OK) {
        st = span_close(sb, i, true);
        if (st != SM_OK) {
            /* Opened again for the wipe (no call where the refused page is still open). */
            unmake(C, sb, i, false, made);
            class_unlock(C);
            return st;
        }
    } else {
        unmake(C, sb, i, true, made);
        class_unlock(C);
        return st;
    }
    if (commit != NULL) {
        /*
         * Under the class lock (commit takes none of ours: it frees a buffer's region),
         * so that no purge comes between the commit, which consumes the caller's buffer,
         * and the publication: a purge then waits for class_unlock and takes the secret.
         */
        st = commit(ctx);
        if (st != SM_OK) {
            unmake(C, sb, i, false, made);
            class_unlock(C);
            return st;
        }
    }
    sb->slots[i].len = (uint16_t)len;
    sb->slots[i].state = SLOT_LIVE;
    *id = handle_of(sb, i);
    atomic_fetch_add(&live, 1);
    atomic_fetch_add(&smi_stat_allocations, 1);
    class_unlock(C);
    return SM_OK;
}

sm_status smi_compact_close(uint64_t id)
{
    where w;
    slab *sb;
    slotmeta *m;
    sm_status st;

    if (!decode(id, &w) || held_here(id))
        return SM_E_STATE;
    sm_os_mutex_lock(&w.C->lock);
    m = lookup(&w, &sb);
    if (m == NULL || decide(m, SMI_SOP_CLOSE) == SMI_SACT_REFUSE) {
        class_unlock(w.C);
        return SM_E_STATE;
    }
    m->closing = 1;
    while (decide(m, SMI_SOP_CLOSE_WAIT) == SMI_SACT_WAIT) {
        sm_os_cond_wait(&w.C->cond, &w.C->lock);
        if (lookup(&w, &sb) != m) {
            /* Purged meanwhile: the purge wiped the bytes. */
            class_unlock(w.C);
            return SM_OK;
        }
    }
    st = span_open(sb, w.slot, true);
    if (st != SM_OK) {
        /* Open again, unchanged, as after a failed sm_buffer_destroy. */
        m->closing = 0;
        class_unlock(w.C);
        return st;
    }
    if (!canary_ok(sb, w.slot))
        smi_panic(smi_corrupt_msg);
    smi_wipe(slot_at(sb, w.slot), stride(sb));
    /* A refused shut leaves the page open until its next change; the slot is wiped. */
    (void)span_close(sb, w.slot, true);
    atomic_fetch_sub(&live, 1);
    (void)slot_free(w.C, sb, w.slot);
    class_unlock(w.C);
    return SM_OK;
}

/* ---- accesses ---- */

sm_status smi_compact_access(uint64_t id, sm_bytes_fn fn, void *ctx, bool try)
{
    where w;
    slab *sb;
    slotmeta *m;
    const uint8_t *bytes;
    size_t len;
    uint32_t forks;
    sm_status st, r;

    if (fn == NULL)
        return SM_E_INVAL;
    if (!decode(id, &w))
        return SM_E_STATE;
    if (try) {
        if (sm_os_mutex_trylock(&w.C->lock) != 0)
            return SM_E_BUSY;
    } else {
        sm_os_mutex_lock(&w.C->lock);
    }
    m = lookup(&w, &sb);
    if (m == NULL || decide(m, try ? SMI_SOP_TRY_ACCESS : SMI_SOP_ACCESS) == SMI_SACT_REFUSE) {
        class_unlock(w.C);
        return SM_E_STATE;
    }
    st = span_open(sb, w.slot, false);
    if (st != SM_OK) {
        class_unlock(w.C);
        return st;
    }
    m->readers++;
    bytes = slot_at(sb, w.slot) + HDR;
    len = m->len;
    forks = w.C->forks;
    class_unlock(w.C);
    if (held_depth < TRACKED)
        held_ids[held_depth] = id;
    held_depth++;
    r = fn(bytes, len, ctx);
    held_depth--;
    sm_os_mutex_lock(&w.C->lock);
    if (w.C->forks != forks) {
        /* fn forked and this is the child: the slab is gone with every other (as make). */
        class_unlock(w.C);
        return r;
    }
    st = span_close(sb, w.slot, false);
    if (sb->purged) {
        /* The purge wiped these pages in place for us; the last one out unmaps them. */
        if (sb->spans == 0) {
            unlink_from(&w.C->limbo, sb);
            (void)slab_destroy(w.C, sb);
        }
        st = SM_OK;
    } else {
        m->readers--;
    }
    /* A close waits for its readers; every exit wakes it to count again. */
    sm_os_cond_broadcast(&w.C->cond);
    class_unlock(w.C);
    return r != SM_OK ? r : st;
}

typedef struct copy_out {
    size_t off, n;
    void  *dst;
} copy_out;

static sm_status copy_fn(const uint8_t *bytes, size_t len, void *ctx)
{
    const copy_out *c = ctx;

    (void)len;
    memcpy(c->dst, bytes + c->off, c->n);
    return SM_OK;
}

sm_status smi_compact_read_at(uint64_t id, size_t off, void *dst, size_t n, size_t *got)
{
    copy_out c = { off, n, dst };
    where w;
    slab *sb;
    slotmeta *m;
    size_t size;
    sm_status st;

    if (got == NULL || (dst == NULL && n > 0))
        return SM_E_INVAL;
    if (!decode(id, &w))
        return SM_E_STATE;
    sm_os_mutex_lock(&w.C->lock);
    m = lookup(&w, &sb);
    if (m == NULL || decide(m, SMI_SOP_QUERY) == SMI_SACT_REFUSE) {
        class_unlock(w.C);
        return SM_E_STATE;
    }
    size = m->len;
    class_unlock(w.C);
    if (off > size)
        return SM_E_INVAL;
    c.n = n < size - off ? n : size - off;
    if (c.n == 0) {
        *got = 0;
        return SM_OK;
    }
    st = smi_compact_access(id, copy_fn, &c, false);
    if (st != SM_OK) {
        smi_wipe(dst, c.n);
        return st;
    }
    *got = c.n;
    return SM_OK;
}

/* ---- queries ---- */

static bool query(uint64_t id, size_t *size, smi_sec_state *state)
{
    where w;
    slab *sb;
    slotmeta *m;
    bool open = false;

    if (!decode(id, &w))
        return false;
    sm_os_mutex_lock(&w.C->lock);
    m = lookup(&w, &sb);
    if (m != NULL) {
        smi_sec_view v = { m->readers, m->closing, 0, m->readers > 0 };

        open = decide(m, SMI_SOP_QUERY) == SMI_SACT_ANSWER;
        *size = m->len;
        *state = smi_sec_state_of(&v);
    }
    class_unlock(w.C);
    return open;
}

size_t smi_compact_size(uint64_t id)
{
    size_t n = 0;
    smi_sec_state s;

    return query(id, &n, &s) ? n : 0;
}

bool smi_compact_is_closed(uint64_t id)
{
    size_t n;
    smi_sec_state s;

    return !query(id, &n, &s);
}

smi_sec_state smi_compact_state(uint64_t id)
{
    size_t n;
    smi_sec_state s = SMI_SEC_CLOSED;

    if (!query(id, &n, &s) && s != SMI_SEC_CLOSING)
        return SMI_SEC_CLOSED;
    return s;
}

uint64_t smi_compact_live(void)
{
    return atomic_load(&live);
}

/* ---- purge, audit, fork ---- */

static uint32_t live_in(const slab *sb)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < sb->fresh; i++)
        n += sb->slots[i].state == SLOT_LIVE;
    return n;
}

/*
 * Wipe a slab's data but for the slots being filled: their fillers are writing them
 * outside the lock, and wipe them themselves when they find the slab purged
 * (make_purged). Wiping under a fill would be a write racing a write (make test-drd
 * reported it), and the fill's later bytes would outlive the wipe.
 */
static void wipe_but_fills(slab *sb)
{
    uint8_t *from = sb->data, *end = sb->data + SLAB_PAGES * page();

    for (uint32_t i = 0; i < sb->fresh; i++)
        if (sb->slots[i].state == SLOT_FILLING) {
            smi_wipe(from, (size_t)(slot_at(sb, i) - from));
            from = slot_at(sb, i) + stride(sb);
        }
    smi_wipe(from, (size_t)(end - from));
}

/*
 * Purge a class, its lock held: every slab is wiped and unmapped, except one that
 * accesses or fills are reading or writing: that one is wiped in place, its handles made
 * stale (its number leaves the directory), and left mapped in limbo for the last of
 * them to unmap (as a registry-backed secret's window, spec/registry.md).
 */
static bool purge_class(cls *C)
{
    bool intact = true;
    slab *sb = C->head, *next;
    sm_prot was;

    for (; sb != NULL; sb = next) {
        next = sb->next;
        atomic_fetch_sub(&live, live_in(sb));
        if (sb->spans == 0) {
            intact = slab_destroy(C, sb) && intact;
            continue;
        }
        if (all_open(sb, &was)) {
            for (uint32_t i = 0; i < sb->fresh; i++)
                if (sb->slots[i].state == SLOT_LIVE && !canary_ok(sb, i))
                    intact = false;
            wipe_but_fills(sb);
            all_shut(sb, was);
            /* Back to what the counts ask for (keyed: nothing to change). */
            for (unsigned p = 0; p < SLAB_PAGES; p++) {
                sb->pages[p].prot = SM_PROT_READWRITE;
                (void)apply(sb, p);
            }
        }
        for (uint32_t i = 0; i < sb->fresh; i++)
            if (sb->slots[i].state == SLOT_LIVE)
                sb->slots[i].state = SLOT_RETIRED;
        C->floor[sb->no] = sb->maxgen + 1;
        C->dir[sb->no] = NULL;
        sb->purged = true;
        sb->next = C->limbo;
        C->limbo = sb;
    }
    C->head = NULL;
    C->empty = 0;
    return intact;
}

/* Wipe in place, unlocked: an ending purge whose class lock another thread holds. */
static void wipe_class_in_place(cls *C)
{
    for (slab *sb = C->head; sb != NULL; sb = sb->next) {
        sm_prot was;

        if (all_open(sb, &was)) {
            smi_wipe(sb->data, SLAB_PAGES * page());
            all_shut(sb, was);
        }
    }
}

bool smi_compact_purge(bool in_place)
{
    bool intact = true;

    for (unsigned c = 0; c < NCLS; c++) {
        cls *C = &classes[c];

        if (sm_os_mutex_trylock(&C->lock) != 0) {
            atomic_store(&C->doomed, true);
            atomic_thread_fence(memory_order_seq_cst);
            if (sm_os_mutex_trylock(&C->lock) != 0) {
                if (in_place)
                    wipe_class_in_place(C);
                continue;
            }
            if (!atomic_exchange(&C->doomed, false)) {
                class_unlock(C);
                continue;
            }
        }
        intact = purge_class(C) && intact;
        class_unlock(C);
    }
    return intact;
}

sm_status smi_compact_audit(void)
{
    sm_status st = SM_OK;

    for (unsigned c = 0; c < NCLS; c++) {
        cls *C = &classes[c];

        sm_os_mutex_lock(&C->lock);
        for (slab *sb = C->head; sb != NULL; sb = sb->next)
            for (uint32_t i = 0; i < sb->fresh; i++) {
                sm_status r;

                if (sb->slots[i].state != SLOT_LIVE)
                    continue;
                r = span_open(sb, i, false);
                if (r == SM_OK) {
                    if (!canary_ok(sb, i))
                        smi_panic(smi_corrupt_msg);
                    r = span_close(sb, i, false);
                }
                if (st == SM_OK)
                    st = r;
            }
        class_unlock(C);
    }
    return st;
}

/*
 * Whether this thread's fork ran the prepare (thread-local: the child's one thread is the
 * forking thread). The runtime's child handler runs this module's even when its prepare
 * read no table: a first make registered it while that fork was under way.
 */
static _Thread_local bool prepared;

void smi_compact_before_fork(void)
{
    for (unsigned c = 0; c < NCLS; c++)
        sm_os_mutex_lock(&classes[c].lock);
    sm_os_mutex_lock(&key_lock);
    prepared = true;
}

void smi_compact_fork_parent(void)
{
    prepared = false;
    sm_os_mutex_unlock(&key_lock);
    for (unsigned c = NCLS; c-- > 0;)
        class_unlock(&classes[c]);
}

/*
 * The child: every slab is forgotten. Anonymous data pages were wiped by the fork
 * (WIPEONFORK) and are unmapped with the rest; secretmem ones (DONTFORK) are not in the
 * child at all, so only the meta pages are unmapped.
 */
static void forget_list(cls *C, slab *sb)
{
    for (slab *next; sb != NULL; sb = next) {
        slab copy = *sb;
        bool listed = C->dir[sb->no] == sb;

        next = sb->next;
        if (copy.secretmem)
            (void)sm_os_munmap(copy.base + copy.meta_off, copy.map_len - copy.meta_off);
        else
            (void)sm_os_munmap(copy.base, copy.map_len);
        slab_count_out(C, &copy, listed);
    }
}

/*
 * The class locks the prepare took are released by the thread that took them (the
 * child's one thread), after the forgetting, and never made afresh while held: POSIX
 * leaves that undefined, and ThreadSanitizer kept them locked and reported the child's
 * next lock as a double lock (race suite, "fork"). They are made afresh only when this
 * fork did not run the prepare (a first make registered the table meanwhile, coffer.c
 * says how): then a thread the child lacks may hold one, and only a new lock frees it.
 *
 * The condition variable is made afresh every time. Its waiters were closes of threads
 * the child does not have, and they stay counted in it: glibc's (2.36 here) keeps its
 * waiters' count in the object, and a broadcast or a destroy waits for the waiters it
 * counts, which here would never come. No thread of the child is in a call on it (the
 * one thread is here), so nothing observes it being made again; a destroy first is
 * not possible, as it would wait for those same waiters.
 */
void smi_compact_after_fork(void)
{
    if (!prepared)
        sm_os_mutex_init(&key_lock);
    /*
     * The key is the child's too (the kernel copies the process's keys with its memory),
     * and so are the forking thread's rights and counts. A fork from inside an access or
     * a fill left them raised, and that call will not lower them (it finds its slab
     * forgotten): the child's one thread starts with none, as every thread at rest.
     */
    if (atomic_load(&key_state) == KEY_SET) {
        key_opens = key_writes = 0;
        key_rights();
    }
    for (unsigned c = 0; c < NCLS; c++) {
        cls *C = &classes[c];

        if (!prepared)
            sm_os_mutex_init(&C->lock);
        sm_os_cond_init(&C->cond);
        atomic_store(&C->doomed, false);
        /* An access or a make whose callback forked finds the slab gone by this. */
        C->forks++;
        forget_list(C, C->head);
        forget_list(C, C->limbo);
        C->head = C->limbo = NULL;
        C->empty = 0;
    }
    atomic_store(&live, 0);
    /* The parent's release: with nothing doomed now, each class's is a plain unlock. */
    if (prepared)
        smi_compact_fork_parent();
}

void smi_compact_trim(void)
{
    for (unsigned c = 0; c < NCLS; c++) {
        cls *C = &classes[c];
        slab *next;

        sm_os_mutex_lock(&C->lock);
        for (slab *sb = C->head; sb != NULL; sb = next) {
            next = sb->next;
            if (sb->nused == 0 && sb->spans == 0)
                (void)slab_unmap(C, sb);
        }
        class_unlock(C);
    }
}

void smi_compact_counts_get(smi_compact_counts *out)
{
    smi_compact_counts n = { atomic_load(&slabs_mapped), atomic_load(&live), 0 };

    for (unsigned c = 0; c < NCLS; c++) {
        cls *C = &classes[c];

        sm_os_mutex_lock(&C->lock);
        for (slab *sb = C->head; sb != NULL; sb = sb->next)
            for (unsigned p = 0; p < SLAB_PAGES; p++)
                n.pages_open += sb->pages[p].opens > 0;
        class_unlock(C);
    }
    *out = n;
}
