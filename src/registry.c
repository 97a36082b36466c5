/* SPDX-License-Identifier: ISC */
/*
 * The handle registry (spec/registry.md). Slots live in chunks that are mapped on
 * demand and never unmapped, so a slot's address, and its lock, stay valid for the life
 * of the process: a lookup can read a slot with no registry lock at all, then take
 * that object's own lock and check the id again. The registry lock guards only the
 * free list and the growth of the slot table, on insert and remove.
 */
#include "inner.h"

#define CHUNK_SLOTS 1024u
#define DIR_CHUNKS 4096u
#define MAX_SLOTS (CHUNK_SLOTS * DIR_CHUNKS)

static smi_slot *_Atomic dir[DIR_CHUNKS];
static _Atomic uint32_t used; /* slots ever handed out: indexes below this are mapped */
static uint32_t free_head;    /* index + 1 of the first free slot, 0 if none */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t live[SMI_KIND_COUNT];

SMI_VG_AT_START(vg_registry)
{
    SMI_VG_ATOMIC(dir, sizeof dir);
    SMI_VG_ATOMIC(&used, sizeof used);
    SMI_VG_ATOMIC(live, sizeof live);
}

static smi_slot *slot_at(uint32_t index)
{
    smi_slot *chunk = atomic_load_explicit(&dir[index / CHUNK_SLOTS], memory_order_acquire);

    if (chunk == NULL)
        return NULL;
    SMI_VG_RECEIVE(&dir[index / CHUNK_SLOTS]);
    return &chunk[index % CHUNK_SLOTS];
}

/* A fresh slot index with the registry lock held: the free list first, then growth. */
static sm_status take_index(uint32_t *index)
{
    uint32_t n = atomic_load_explicit(&used, memory_order_relaxed);

    if (free_head != 0) {
        *index = free_head - 1;
        free_head = slot_at(*index)->next;
        return SM_OK;
    }
    if (n == MAX_SLOTS)
        return SM_E_NOMEM;
    if (n % CHUNK_SLOTS == 0) {
        void *mem;
        smi_slot *chunk;
        sm_status st = sm_os_mmap(CHUNK_SLOTS * sizeof(smi_slot), SM_PROT_READWRITE, &mem);

        if (st != SM_OK)
            return st;
        chunk = mem;
        for (uint32_t i = 0; i < CHUNK_SLOTS; i++) {
            pthread_mutex_init(&chunk[i].lock, NULL);
            pthread_cond_init(&chunk[i].cond, NULL);
            chunk[i].gen = 1;
            chunk[i].index = n + i;
            SMI_VG_ATOMIC(&chunk[i].id, sizeof chunk[i].id);
            SMI_VG_ATOMIC(&chunk[i].doomed, sizeof chunk[i].doomed);
        }
        SMI_VG_PUBLISH(&dir[n / CHUNK_SLOTS]);
        atomic_store_explicit(&dir[n / CHUNK_SLOTS], chunk, memory_order_release);
    }
    *index = n;
    atomic_store_explicit(&used, n + 1, memory_order_release);
    return SM_OK;
}

sm_status smi_registry_reserve(uint32_t *index)
{
    sm_status st;

    pthread_mutex_lock(&reg_lock);
    st = take_index(index);
    pthread_mutex_unlock(&reg_lock);
    return st;
}

void smi_registry_unreserve(uint32_t index)
{
    pthread_mutex_lock(&reg_lock);
    slot_at(index)->next = free_head;
    free_head = index + 1;
    pthread_mutex_unlock(&reg_lock);
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

    for (size_t i = 0; i < len; i++)
        s->body[i] = ((const unsigned char *)body)[i];
    s->kind = kind;
    id = smi_handle_make(kind, s->gen, index);
    atomic_fetch_add(&live[kind], 1);
    SMI_VG_PUBLISH(&s->id);
    atomic_store_explicit(&s->id, id, memory_order_release);
    return id;
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
 * the slot's lock is held. The slot is retired: it never goes back on the free list,
 * which a purge in a signal handler could not lock.
 */
static bool finish_purge(smi_slot *s)
{
    bool intact = smi_kind_ops_table[s->kind].purge(s->body);

    smi_wipe(s->body, sizeof s->body);
    atomic_fetch_sub(&live[s->kind], 1);
    return intact;
}

/*
 * With the slot's lock held: finish the purge that claimed this slot's object while
 * another thread held the lock, if one is pending and the object is still the one it
 * claimed (a holder that destroyed it meanwhile moved the generation on).
 */
static bool take_over(smi_slot *s)
{
    uint64_t d = atomic_exchange(&s->doomed, 0);

    if (d == 0 || smi_handle_gen(d) != s->gen)
        return true;
    return finish_purge(s);
}

/*
 * Every unlock of a slot that a thread took with pthread_mutex_lock goes through here.
 * A purge that found the lock taken stores the claimed id in doomed and then tries the
 * lock again; this side unlocks and then reads doomed. With a full fence on each side,
 * at least one of the two sees the other, so the purge is always finished, and the
 * exchange in take_over makes sure it is finished once (spec/registry.md, "Purge").
 */
static void unlock_slot(smi_slot *s)
{
    bool intact = true;

    pthread_mutex_unlock(&s->lock);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&s->doomed) != 0 && pthread_mutex_trylock(&s->lock) == 0) {
        intact = take_over(s);
        pthread_mutex_unlock(&s->lock);
    }
    if (!intact)
        smi_panic(smi_corrupt_msg);
}

/*
 * The slot that id names, if id is still its live object: checked without the lock, so
 * that stale ids are refused without touching it. NULL for anything else.
 */
static smi_slot *live_slot(uint64_t id, smi_kind kind)
{
    uint32_t index = smi_handle_index(id);
    smi_slot *s;

    if (smi_handle_kind(id) != (unsigned)kind ||
        index >= atomic_load_explicit(&used, memory_order_acquire))
        return NULL;
    s = slot_at(index);
    if (atomic_load_explicit(&s->id, memory_order_acquire) != id)
        return NULL;
    SMI_VG_RECEIVE(&s->id);
    return s;
}

/* With the lock now held: confirm id, or unlock (finishing a pending purge) and refuse. */
static sm_status confirm(smi_slot *s, uint64_t id, smi_slot **out)
{
    if (atomic_load_explicit(&s->id, memory_order_relaxed) != id) {
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
    pthread_mutex_lock(&s->lock);
    return confirm(s, id, out);
}

sm_status smi_registry_try_acquire(uint64_t id, smi_kind kind, smi_slot **out)
{
    smi_slot *s = live_slot(id, kind);

    if (s == NULL)
        return SM_E_STATE;
    /* Held by another thread: this caller would have had to wait. */
    if (pthread_mutex_trylock(&s->lock) != 0)
        return SM_E_BUSY;
    return confirm(s, id, out);
}

void smi_registry_release(smi_slot *s)
{
    unlock_slot(s);
}

void smi_registry_remove(smi_slot *s)
{
    /* Not from the id: a purge may have zeroed it while this thread held the lock. */
    smi_kind kind = s->kind;
    uint32_t index = s->index;
    /* A slot whose generation is spent is retired, never reused: ids never repeat. */
    bool retire = s->gen == SMI_HANDLE_GEN_MAX;

    atomic_store_explicit(&s->id, 0, memory_order_release);
    s->gen++;
    smi_wipe(s->body, sizeof s->body);
    /* Wake whoever waits on this object: they will find it gone. */
    pthread_cond_broadcast(&s->cond);
    /* A purge that claimed this object meanwhile finds the generation moved on. */
    unlock_slot(s);

    pthread_mutex_lock(&reg_lock);
    if (!retire) {
        s->next = free_head;
        free_head = index + 1;
    }
    pthread_mutex_unlock(&reg_lock);
    atomic_fetch_sub(&live[kind], 1);
}

uint64_t smi_registry_live(smi_kind kind)
{
    return atomic_load(&live[kind]);
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
static bool finish_held(uint32_t n)
{
    uint64_t deadline = sm_os_monotonic_ns() + SMI_ENDING_WAIT_NS;
    bool intact = true, pending = true;

    while (pending) {
        pending = false;
        for (uint32_t i = 0; i < n; i++) {
            smi_slot *s = slot_at(i);

            if (atomic_load(&s->doomed) == 0)
                continue;
            if (pthread_mutex_trylock(&s->lock) == 0) {
                intact &= take_over(s);
                pthread_mutex_unlock(&s->lock);
            } else {
                pending = true;
            }
        }
        if (!pending || sm_os_monotonic_ns() > deadline)
            break;
        sm_os_yield();
    }
    for (uint32_t i = 0; pending && i < n; i++) {
        smi_slot *s = slot_at(i);
        uint64_t d = atomic_load(&s->doomed);

        if (d != 0 && smi_handle_gen(d) == s->gen)
            smi_kind_ops_table[s->kind].wipe(s->body);
    }
    return intact;
}

/*
 * Claim every live slot by swapping its id to 0, so that each object is handled once
 * even by two purges at the same time. pthread_mutex_trylock never blocks: it is a
 * compare-and-swap in glibc, which is why it may run in a signal handler although
 * POSIX does not list it. The lock it tries may be held by another thread in the middle
 * of an operation on that object, or by the very thread that the signal interrupted:
 * then the object is left to the holder, which finishes the purge when it lets go of the
 * lock (unlock_slot), so that no two threads ever touch the object at once. A purge that
 * ends the process cannot leave it to a holder that may never run again: with in_place
 * it waits a little for the holders, then wipes in place (finish_held, spec/runtime.md).
 */
bool smi_registry_purge(bool in_place)
{
    uint32_t n = atomic_load_explicit(&used, memory_order_acquire);
    bool intact = true;

    for (uint32_t i = 0; i < n; i++) {
        smi_slot *s = slot_at(i);
        uint64_t id = atomic_load_explicit(&s->id, memory_order_acquire);

        if (id == 0 || !atomic_compare_exchange_strong(&s->id, &id, 0))
            continue;
        SMI_VG_RECEIVE(&s->id);
        if (pthread_mutex_trylock(&s->lock) == 0) {
            intact &= finish_purge(s);
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        atomic_store(&s->doomed, id);
        atomic_thread_fence(memory_order_seq_cst);
        /* The holder may have let go before it could see doomed: then finish it here. */
        if (pthread_mutex_trylock(&s->lock) == 0) {
            intact &= take_over(s);
            pthread_mutex_unlock(&s->lock);
        }
    }
    if (in_place)
        intact &= finish_held(n);
    return intact;
}

sm_status smi_registry_audit(void)
{
    uint32_t n = atomic_load_explicit(&used, memory_order_acquire);
    sm_status st = SM_OK, r;

    for (uint32_t i = 0; i < n; i++) {
        smi_slot *s = slot_at(i);
        uint64_t id = atomic_load_explicit(&s->id, memory_order_acquire);

        if (id == 0 || smi_registry_acquire(id, (smi_kind)smi_handle_kind(id), &s) != SM_OK)
            continue;
        r = smi_kind_ops_table[s->kind].audit(s->body);
        smi_registry_release(s);
        if (st == SM_OK)
            st = r; /* the first refusal; the walk goes on to check every canary */
    }
    return st;
}

void smi_registry_before_fork(void)
{
    pthread_mutex_lock(&reg_lock);
}

void smi_registry_fork_parent(void)
{
    pthread_mutex_unlock(&reg_lock);
}

/*
 * The child has one thread. A slot lock may have been copied locked from a thread that
 * does not exist here, so every pre-fork slot is retired rather than reused, and its
 * lock reinitialised in case something waits on it.
 */
void smi_registry_after_fork(void)
{
    uint32_t n = atomic_load_explicit(&used, memory_order_relaxed);

    pthread_mutex_init(&reg_lock, NULL);
    for (uint32_t i = 0; i < n; i++) {
        smi_slot *s = slot_at(i);
        uint64_t id = atomic_exchange(&s->id, 0), d = atomic_exchange(&s->doomed, 0);

        /* A purge in the parent may have left an object to a thread the child lacks. */
        if (id == 0 && d != 0 && smi_handle_gen(d) == s->gen)
            id = d;
        if (id == 0)
            continue;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        smi_kind_ops_table[s->kind].forget(s->body);
        smi_wipe(s->body, sizeof s->body);
        atomic_fetch_sub(&live[s->kind], 1);
    }
}
