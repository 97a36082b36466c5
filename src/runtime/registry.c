/* SPDX-License-Identifier: ISC */
/*
 * The handle registry (spec/registry.md). Slots live in chunks that are mapped on
 * demand and never unmapped, so a slot's address, and its lock, stay valid for the life
 * of the process: a lookup can read a slot with no registry lock at all, then take
 * that object's own lock and check the id again. The registry lock guards only the
 * free list and the growth of the slot table, on insert and remove.
 *
 * Slots go back to use after a purge too (issue 18 §2): a purge, which may run in a
 * signal handler and so takes no lock, pushes the slots it finished onto a lock-free
 * list (purged_head) that insert takes whole under the registry lock. The walks (purge,
 * audit, fork) visit only the slots in use, through a bitmap: their cost follows the
 * objects there are, not every slot ever used.
 */
#include <string.h>

#include "inner.h"

#define CHUNK_SLOTS 1024u
#define DIR_CHUNKS 4096u
#define MAX_SLOTS (CHUNK_SLOTS * DIR_CHUNKS)

static smi_slot *_Atomic dir[DIR_CHUNKS];
static _Atomic uint32_t used; /* slots ever handed out: indexes below this are mapped */
static uint32_t free_head;    /* index + 1 of the first free slot, 0 if none */
/*
 * Slots that purges finished, index + 1 of the first, linked through next like the
 * free list. Pushed with a compare-and-swap by purge (any thread, signal handlers
 * included), and only ever taken whole, with an exchange, by insert under reg_lock:
 * a push never reads the node it links to, so there is no ABA problem.
 */
static _Atomic uint32_t purged_head;
/*
 * Bit i set: slot i is off both lists (reserved, live, claimed by a purge, or kept for
 * the accesses of a purged secret). Set under reg_lock when an index is taken, cleared
 * just before the slot goes onto a list, so a walk that sees a bit clear can skip a
 * slot that holds nothing to purge. 512 KiB of .bss, touched 8 bytes per 64 slots.
 */
static _Atomic uint64_t in_use[MAX_SLOTS / 64];
static sm_os_mutex reg_lock = SM_OS_MUTEX_INIT;
static _Atomic uint64_t live[SMI_KIND_COUNT];
static uint32_t max_slots = MAX_SLOTS; /* below MAX_SLOTS only in tests */
/*
 * Forks this process is the child of. Written only by the child handler, while the
 * child's one thread runs it: it never changes in a process that has other threads.
 */
static uint32_t forks;
#if defined(SM_FAULT_INJECTION)
static _Atomic uint64_t walked; /* slots the last walk looked at: a probe for the tests */
#define WALKED(op) op
#else
#define WALKED(op) ((void)0) /* no shared counter on the purge path of the release build */
#endif

/*
 * Each kind's part in the walks, registered by its module (smi_registry_kind) before
 * it publishes an object of that kind: the object modules sit above the registry, which
 * so reaches them through these pointers and never by name (spec/layers.tsv).
 */
static const smi_kind_ops *_Atomic kinds[SMI_KIND_COUNT];

SMI_VG_AT_START(vg_registry)
{
    SMI_VG_ATOMIC(kinds, sizeof kinds);
    SMI_VG_ATOMIC(dir, sizeof dir);
    SMI_VG_ATOMIC(&used, sizeof used);
    SMI_VG_ATOMIC(&purged_head, sizeof purged_head);
    SMI_VG_ATOMIC(in_use, sizeof in_use);
    SMI_VG_ATOMIC(live, sizeof live);
    WALKED(SMI_VG_ATOMIC(&walked, sizeof walked));
}

static smi_slot *slot_at(uint32_t index)
{
    smi_slot *chunk = atomic_load_explicit(&dir[index / CHUNK_SLOTS], memory_order_acquire);

    if (chunk == NULL)
        return NULL;
    SMI_VG_RECEIVE(&dir[index / CHUNK_SLOTS]);
    return &chunk[index % CHUNK_SLOTS];
}

static void mark_in_use(uint32_t index)
{
    atomic_fetch_or(&in_use[index / 64], (uint64_t)1 << (index % 64));
}

static void mark_free(uint32_t index)
{
    atomic_fetch_and(&in_use[index / 64], ~((uint64_t)1 << (index % 64)));
}

/*
 * The object in s is gone (removed or purged): move the generation on, so that no copy
 * of its id is ever valid again. False when the generation is spent: the slot is then
 * retired, never reused, since its next generation would wrap and repeat an old id.
 */
static bool next_generation(smi_slot *s)
{
    s->gen = smi_handle_gen_next(s->gen);
    return smi_handle_gen_live(s->gen);
}

/*
 * Give a finished slot back from a purge, with no lock: async-signal-safe. The bit is
 * cleared first, so that an insert that takes the slot at once sets it again after.
 */
static void push_purged(smi_slot *s)
{
    uint32_t head = atomic_load_explicit(&purged_head, memory_order_relaxed);

    mark_free(s->index);
    do {
        s->next = head;
        SMI_VG_PUBLISH(&purged_head); /* after the link: the consumer reads it */
    } while (!atomic_compare_exchange_weak_explicit(&purged_head, &head, s->index + 1,
                                                    memory_order_release,
                                                    memory_order_relaxed));
}

/* With reg_lock held: an unused slot onto the free list (a spent one onto none). */
static void push_free(smi_slot *s, bool recycle)
{
    mark_free(s->index);
    if (recycle) {
        s->next = free_head;
        free_head = s->index + 1;
    }
}

/*
 * A fresh slot index with the registry lock held: the free list first, then the slots
 * that purges gave back (all of them at once: they become the free list), then growth.
 */
static sm_status take_index(uint32_t *index)
{
    uint32_t n = atomic_load_explicit(&used, memory_order_relaxed);
    smi_slot *s;

    if (free_head == 0) {
        free_head = atomic_exchange_explicit(&purged_head, 0, memory_order_acquire);
        SMI_VG_RECEIVE(&purged_head);
    }
    if (free_head != 0) {
        *index = free_head - 1;
        free_head = slot_at(*index)->next;
        mark_in_use(*index);
        return SM_OK;
    }
    if (n == max_slots)
        return SM_E_NOMEM;
    if (n % CHUNK_SLOTS == 0) {
        void *mem;
        sm_status st = sm_os_mmap(CHUNK_SLOTS * sizeof(smi_slot), SM_PROT_READWRITE, &mem);

        if (st != SM_OK)
            return st;
        atomic_store_explicit(&dir[n / CHUNK_SLOTS], (smi_slot *)mem, memory_order_release);
    }
    /*
     * A slot is made as it is first handed out, not with its chunk: nothing reads a slot
     * at or above used, and a chunk's pages are then touched as slots are used rather than
     * all 384 KiB at its mapping (and an analysis such as Eva can follow each slot apart).
     */
    s = slot_at(n);
    sm_os_mutex_init(&s->lock);
    sm_os_cond_init(&s->cond);
    s->gen = 1;
    s->index = n;
    SMI_VG_ATOMIC(&s->id, sizeof s->id);
    SMI_VG_ATOMIC(&s->doomed, sizeof s->doomed);
    /* the slot, and its chunk, to whoever reads it below used (slot_at receives) */
    SMI_VG_PUBLISH(&dir[n / CHUNK_SLOTS]);
    *index = n;
    atomic_store_explicit(&used, n + 1, memory_order_release);
    mark_in_use(n);
    return SM_OK;
}

sm_status smi_registry_reserve(uint32_t *index)
{
    sm_status st;

    sm_os_mutex_lock(&reg_lock);
    st = take_index(index);
    sm_os_mutex_unlock(&reg_lock);
    return st;
}

void smi_registry_unreserve(uint32_t index)
{
    sm_os_mutex_lock(&reg_lock);
    push_free(slot_at(index), true);
    sm_os_mutex_unlock(&reg_lock);
}

/*
 * No slot lock: the slot is reserved, so no handle reaches it yet, and the release store
 * of the id publishes the body and kind to every lookup (which loads the id with acquire
 * before it takes the lock) and to purge (whose compare-and-swap on the id acquires).
 * Taking the lock here would also make every constructor that runs under another slot's
 * lock (seal, open, stream next and flush) hold two slot locks, against registry.md.
 */
uint64_t smi_registry_publish(uint32_t index, smi_kind kind, const void *body, size_t len)
{
    smi_slot *s = slot_at(index);
    uint64_t id;

    memcpy(s->body, body, len);
    s->kind = kind;
    id = smi_handle_make(kind, s->gen, index);
    atomic_fetch_add(&live[kind], 1);
    SMI_VG_PUBLISH(&s->id);
    atomic_store_explicit(&s->id, id, memory_order_release);
    return id;
}

void smi_registry_kind(smi_kind kind, const smi_kind_ops *ops)
{
    atomic_store(&kinds[kind], ops);
}

/* A slot is published only after its kind was registered, so this is never NULL. */
static const smi_kind_ops *kind_ops(smi_kind kind)
{
    return atomic_load(&kinds[kind]);
}

sm_status smi_registry_insert(smi_kind kind, const void *body, size_t len, uint64_t *id)
{
    uint32_t index;
    sm_status st = smi_registry_reserve(&index);

    if (st == SM_OK)
        *id = smi_registry_publish(index, kind, body, len);
    return st;
}

/*
 * Destroy the object in slot s for a purge that claimed its id (the id is already 0);
 * the slot's lock is held. *recycle: the caller gives the slot back (push_purged) once
 * it has unlocked it. Not when the generation is spent, and not when accesses are still
 * reading the object's pages (a secret's): the purge wiped them in place, the body stays
 * for those readers, and the last of them frees the pages and gives the slot back
 * (smi_registry_drop). So a slot is never reused while anyone still reads through it.
 */
static bool finish_purge(smi_slot *s, bool *recycle)
{
    const smi_kind_ops *ops = kind_ops(s->kind);
    uint64_t id = smi_handle_make(s->kind, s->gen, s->index);
    bool intact = ops->purge(s->body);

    atomic_fetch_sub(&live[s->kind], 1);
    *recycle = next_generation(s);
    if (ops->in_use != NULL && ops->in_use(s->body)) {
        s->lingering = id;
        *recycle = false;
        return intact;
    }
    smi_wipe(s->body, sizeof s->body);
    /*
     * Spent: retired on no list, so off the walks too. Left marked, every walk visited it
     * and a forked child's handler recycled it past its last generation (an atomic and,
     * safe in a signal handler).
     */
    if (!*recycle)
        mark_free(s->index);
    return intact;
}

/*
 * With the slot's lock held: finish the purge that claimed this slot's object while
 * another thread held the lock, if one is pending and the object is still the one it
 * claimed (a holder that destroyed it meanwhile moved the generation on).
 */
static bool take_over(smi_slot *s, bool *recycle)
{
    uint64_t d = atomic_exchange(&s->doomed, 0);

    *recycle = false;
    if (d == 0 || smi_handle_gen(d) != s->gen)
        return true;
    return finish_purge(s, recycle);
}

/* Unlock a slot that a purge may have finished, and give it back if so. */
static void unlock_finished(smi_slot *s, bool recycle)
{
    sm_os_mutex_unlock(&s->lock);
    if (recycle)
        push_purged(s);
}

/*
 * Every unlock of a slot that a thread took with sm_os_mutex_lock goes through here.
 * A purge that found the lock taken stores the claimed id in doomed and then tries the
 * lock again; this side unlocks and then reads doomed. With a full fence on each side,
 * at least one of the two sees the other, so the purge is always finished, and the
 * exchange in take_over makes sure it is finished once (spec/registry.md, "Purge").
 */
static void unlock_slot(smi_slot *s)
{
    bool intact = true, recycle;

    sm_os_mutex_unlock(&s->lock);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&s->doomed) != 0 && sm_os_mutex_trylock(&s->lock) == 0) {
        intact = take_over(s, &recycle);
        unlock_finished(s, recycle);
    }
    if (!intact)
        smi_panic(smi_corrupt_msg);
}

/*
 * The slot that id names, if id is still its live object: checked without the lock, so
 * that stale ids are refused without taking it (smi_handle_accepts decides). NULL for
 * anything else.
 */
static smi_slot *live_slot(uint64_t id, smi_kind kind)
{
    uint32_t index = smi_handle_index(id);
    smi_slot *s;

    if (index >= atomic_load_explicit(&used, memory_order_acquire))
        return NULL;
    s = slot_at(index);
    if (!smi_handle_accepts(id, atomic_load_explicit(&s->id, memory_order_acquire), kind))
        return NULL;
    SMI_VG_RECEIVE(&s->id);
    return s;
}

/* With the lock now held: confirm id, or unlock (finishing a pending purge) and refuse. */
static sm_status confirm(smi_slot *s, uint64_t id, smi_kind kind, smi_slot **out)
{
    if (!smi_handle_accepts(id, atomic_load_explicit(&s->id, memory_order_relaxed), kind)) {
        unlock_slot(s);
        return SM_E_STATE;
    }
    *out = s;
    return SM_OK;
}

sm_status smi_registry_acquire(uint64_t id, smi_kind kind, smi_slot **out)
{
    smi_slot *s = live_slot(id, kind);

    if (s == NULL)
        return SM_E_STATE;
    sm_os_mutex_lock(&s->lock);
    return confirm(s, id, kind, out);
}

sm_status smi_registry_try_acquire(uint64_t id, smi_kind kind, smi_slot **out)
{
    smi_slot *s = live_slot(id, kind);

    if (s == NULL)
        return SM_E_STATE;
    /* Held by another thread: this caller would have had to wait. */
    if (sm_os_mutex_trylock(&s->lock) != 0)
        return SM_E_BUSY;
    return confirm(s, id, kind, out);
}

void smi_registry_release(smi_slot *s)
{
    unlock_slot(s);
}

void smi_registry_remove(smi_slot *s)
{
    /* Not from the id: a purge may have zeroed it while this thread held the lock. */
    smi_kind kind = s->kind;
    bool recycle;

    atomic_store_explicit(&s->id, 0, memory_order_release);
    recycle = next_generation(s);
    smi_wipe(s->body, sizeof s->body);
    /* Wake whoever waits on this object: they will find it gone. */
    sm_os_cond_broadcast(&s->cond);
    /* A purge that claimed this object meanwhile finds the generation moved on. */
    unlock_slot(s);

    sm_os_mutex_lock(&reg_lock);
    push_free(s, recycle);
    sm_os_mutex_unlock(&reg_lock);
    atomic_fetch_sub(&live[kind], 1);
}

void smi_registry_drop(smi_slot *s)
{
    bool recycle = smi_handle_gen_live(s->gen);

    s->lingering = 0;
    smi_wipe(s->body, sizeof s->body);
    sm_os_cond_broadcast(&s->cond);
    unlock_slot(s);
    sm_os_mutex_lock(&reg_lock);
    push_free(s, recycle);
    sm_os_mutex_unlock(&reg_lock);
}

/* Whoever finishes the object moves the generation on, under this lock (finish_purge). */
bool smi_registry_claimed(const smi_slot *s, uint64_t id)
{
    return s->gen == smi_handle_gen(id);
}

uint64_t smi_registry_live(smi_kind kind)
{
    return atomic_load(&live[kind]);
}

/*
 * The slots in use below used, in index order, for the walks: a word of the bitmap at
 * a time, so that 64 free slots cost one load. Slots taken after the walk read their
 * word are not seen; they hold objects made after the walk began.
 */
typedef struct walk {
    uint32_t n, word;
    uint64_t bits;
} walk;

static void walk_start(walk *w)
{
    w->n = atomic_load_explicit(&used, memory_order_acquire);
    w->word = 0;
    w->bits = 0;
    WALKED(atomic_store(&walked, 0));
}

static smi_slot *walk_next(walk *w)
{
    uint32_t i;

    while (w->bits == 0) {
        if ((uint64_t)w->word * 64 >= w->n)
            return NULL;
        w->bits = atomic_load_explicit(&in_use[w->word++], memory_order_acquire);
    }
    i = (w->word - 1) * 64 + (uint32_t)__builtin_ctzll(w->bits);
    w->bits &= w->bits - 1;
    if (i >= w->n) { /* taken after used was read: not this walk's */
        w->bits = 0;
        return walk_next(w);
    }
    WALKED(atomic_fetch_add_explicit(&walked, 1, memory_order_relaxed));
    return slot_at(i);
}

/*
 * For a purge that ends the process: give the threads that hold claimed objects a
 * short while (SMI_ENDING_WAIT_NS) to let go, taking over each as its lock comes free;
 * then wipe in place whatever is still held. Nothing waits on a lock: only trylock,
 * sched_yield and the monotonic clock, all of which return at once. A holder still
 * there at the deadline is most likely the thread the signal interrupted, which will
 * not run again, so the wipe does not race it; if it is another thread, the wipe is
 * made through mprotect first and so cannot fault on pages it unmapped meanwhile.
 */
static bool finish_held(void)
{
    uint64_t deadline = sm_os_monotonic_ns() + SMI_ENDING_WAIT_NS;
    bool intact = true, pending = true, recycle;
    walk w;
    smi_slot *s;

    while (pending) {
        pending = false;
        for (walk_start(&w); (s = walk_next(&w)) != NULL;) {
            if (atomic_load(&s->doomed) == 0)
                continue;
            if (sm_os_mutex_trylock(&s->lock) == 0) {
                intact &= take_over(s, &recycle);
                unlock_finished(s, recycle);
            } else {
                pending = true;
            }
        }
        if (!pending || sm_os_monotonic_ns() > deadline)
            break;
        sm_os_yield();
    }
    for (walk_start(&w); pending && (s = walk_next(&w)) != NULL;) {
        uint64_t d = atomic_load(&s->doomed);

        if (d != 0 && smi_handle_gen(d) == s->gen)
            kind_ops(s->kind)->wipe(s->body);
    }
    return intact;
}

/*
 * Claim every live slot by swapping its id to 0, so that each object is handled once
 * even by two purges at the same time. sm_os_mutex_trylock never blocks: it is a
 * compare-and-swap in glibc, which is why it may run in a signal handler although
 * POSIX does not list it. The lock it tries may be held by another thread in the middle
 * of an operation on that object, or by the very thread that the signal interrupted:
 * then the object is left to the holder, which finishes the purge when it lets go of the
 * lock (unlock_slot), so that no two threads ever touch the object at once. A purge that
 * ends the process cannot leave it to a holder that may never run again: with in_place
 * it waits a little for the holders, then wipes in place (finish_held, spec/runtime.md).
 * Each slot finished goes back to use through the lock-free purged list.
 */
bool smi_registry_purge(bool in_place)
{
    bool intact = true, recycle;
    walk w;
    smi_slot *s;

    for (walk_start(&w); (s = walk_next(&w)) != NULL;) {
        uint64_t id = atomic_load_explicit(&s->id, memory_order_acquire);

        if (id == 0 || !atomic_compare_exchange_strong(&s->id, &id, 0))
            continue;
        SMI_VG_RECEIVE(&s->id);
        if (sm_os_mutex_trylock(&s->lock) == 0) {
            intact &= finish_purge(s, &recycle);
            unlock_finished(s, recycle);
            continue;
        }
        atomic_store(&s->doomed, id);
        atomic_thread_fence(memory_order_seq_cst);
        /* The holder may have let go before it could see doomed: then finish it here. */
        if (sm_os_mutex_trylock(&s->lock) == 0) {
            intact &= take_over(s, &recycle);
            unlock_finished(s, recycle);
        }
    }
    if (in_place)
        intact &= finish_held();
    return intact;
}

sm_status smi_registry_audit(void)
{
    sm_status st = SM_OK, r;
    walk w;
    smi_slot *s;

    for (walk_start(&w); (s = walk_next(&w)) != NULL;) {
        uint64_t id = atomic_load_explicit(&s->id, memory_order_acquire);

        if (id == 0 || smi_registry_acquire(id, (smi_kind)smi_handle_kind(id), &s) != SM_OK)
            continue;
        r = kind_ops(s->kind)->audit(s->body);
        smi_registry_release(s);
        if (st == SM_OK)
            st = r; /* the first refusal; the walk goes on to check every canary */
    }
    return st;
}

uint32_t smi_registry_forks(void)
{
    return forks;
}

void smi_registry_before_fork(void)
{
    sm_os_mutex_lock(&reg_lock);
}

void smi_registry_fork_parent(void)
{
    sm_os_mutex_unlock(&reg_lock);
}

/*
 * The child has one thread, the one that forked: reg_lock is its own, taken by
 * smi_registry_before_fork, and it lets it go as the parent does (made afresh instead,
 * a mutex ThreadSanitizer saw locked stays locked to it, and the child's next insert
 * from another thread was a "double lock"). Any slot lock may have been copied locked
 * from a thread that the child lacks (a lookup that lost a race with a remove locks a
 * free slot for a moment), so every slot's lock is initialised again. Every pre-fork
 * object, live, claimed by a purge, or kept for the accesses of a purged secret, is
 * forgotten (its pages are the fork's: wiped, or not in the child), its generation
 * moved on so that its handles stay stale, and its slot put back on the free list, as
 * are the slots that purges had given back and those that threads the child lacks had
 * reserved.
 */
void smi_registry_after_fork(void)
{
    uint32_t n = atomic_load_explicit(&used, memory_order_relaxed);
    uint32_t head = atomic_exchange(&purged_head, 0);
    walk w;
    smi_slot *s;

    sm_os_mutex_unlock(&reg_lock);
    forks++;
    for (uint32_t i = 0; i < n; i++) {
        s = slot_at(i);
        sm_os_mutex_init(&s->lock);
        sm_os_cond_init(&s->cond);
    }
    while (head != 0) { /* given back by purges: onto the free list */
        s = slot_at(head - 1);
        head = s->next;
        push_free(s, true);
    }
    for (walk_start(&w); (s = walk_next(&w)) != NULL;) {
        uint64_t id = atomic_exchange(&s->id, 0), d = atomic_exchange(&s->doomed, 0);
        bool recycle = true;

        /* A purge in the parent may have left an object to a thread the child lacks. */
        if (id == 0 && d != 0 && smi_handle_gen(d) == s->gen)
            id = d;
        if (id != 0) {
            kind_ops(s->kind)->forget(s->body);
            recycle = next_generation(s);
        } else if (s->lingering != 0) {
            /* Counted down and its generation moved on by the purge already. */
            kind_ops(s->kind)->forget(s->body);
            recycle = smi_handle_gen_live(s->gen);
            s->lingering = 0;
        }
        smi_wipe(s->body, sizeof s->body);
        push_free(s, recycle);
    }
    /*
     * Set, not counted down object by object: a publication or a removal that a thread
     * the child lacks was making may have moved its count and not yet the id, or the
     * other way round. Every pre-fork object is forgotten, so none is live.
     */
    for (unsigned k = 0; k < SMI_KIND_COUNT; k++)
        atomic_store(&live[k], 0);
}

#if defined(SM_FAULT_INJECTION)
void smi_registry_test_limit(uint32_t n)
{
    max_slots = n == 0 || n > MAX_SLOTS ? MAX_SLOTS : n;
}

uint64_t smi_registry_test_walked(void)
{
    return atomic_load(&walked);
}
#endif
