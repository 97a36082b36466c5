/* SPDX-License-Identifier: ISC */
/*
 * Streams (securemem/stream.h, spec/enclaves-streams.md). A stream is
 *  - chunks of 4 pages each that hold ciphertext and nothing else, carved from runs:
 *    mappings of 1, 2, 4, ... chunk slots, up to 2 MiB (below, "Runs");
 *  - an index: one record per chunk (where it is, its run, its position, length, nonce
 *    and tag), a FIFO ring in a mapping of its own between two PROT_NONE guard pages,
 *    so that an overflow from a neighbouring mapping, which may reach the chunks,
 *    faults on a guard before it reaches anything the stream acts on (SM-REQ-086);
 *  - one guarded scratch region of one chunk's capacity for the plaintext in transit;
 *  - the descriptor in its registry slot: the stream's random id, the ring's bounds,
 *    byte counters, the next position, the end record, and the run being carved.
 * Every chunk is sealed under additional data binding it to the stream's id and to its
 * position, a sequence number that never repeats within the stream; the end record, an
 * AEAD tag over an empty message, binds the stream's last position and the bytes ever
 * written, and is checked by every call that reaches the end (SM-REQ-085). So chunks
 * moved, replayed, swapped, transplanted or cut off give SM_E_AUTH.
 *
 * Every call first builds what it changes on the side (new chunks, a new ring, records
 * in the ring's free slots) and then commits by storing a few words, which cannot fail:
 * so a failure in the middle leaves the stream exactly as it was.
 */
#include <errno.h>
#include <string.h>

#include "inner.h"

#define CHUNK_PAGES 4u
/*
 * A chunk holds 4 pages less 64 bytes of ciphertext: the plaintext of one chunk then
 * fits the scratch region's 4 locked inner pages together with its 64-byte canary.
 */
#define SLACK 64u
#define ID_LEN 16u
#define AAD_LEN (16u + ID_LEN + 8u)
_Static_assert(ID_LEN == SMI_STREAM_ID_LEN && AAD_LEN == SMI_STREAM_AAD_LEN,
               "the binding's layout is the core's (smi_stream_aad_head)");

/* One chunk, as the index knows it: everything the stream acts on, out of the chunk. */
typedef struct rec {
    uint8_t *map;   /* the chunk's slot in its run: ciphertext only */
    uint8_t *run;   /* the run's mapping, as mapped (run_unmap) */
    uint64_t seq;   /* its position: never repeats within the stream */
    size_t   len;   /* ciphertext bytes */
    uint32_t slots; /* the run's chunk slots, which give its length */
    uint8_t  nonce[SMI_AEAD_NONCE];
    uint8_t  tag[SMI_AEAD_TAG];
} rec;

#if defined(SM_FAULT_INJECTION)
_Static_assert(sizeof(rec) == SMI_STREAM_REC_SIZE, "the tests size indexes by this");
#endif

typedef struct smi_stream {
    smi_region scratch;
    rec       *ring;        /* the index's records; its mapping has a guard page each side */
    size_t     ring_pages;  /* the records' pages */
    size_t     first;       /* the ring slot of the front chunk */
    size_t     count;       /* chunks held */
    size_t     skip;        /* bytes of the front chunk already read */
    uint64_t   written;     /* bytes ever written: size is written - taken */
    uint64_t   taken;
    uint64_t   next_seq;    /* the position of the next chunk sealed */
    uint8_t    id[ID_LEN];
    uint8_t    end_nonce[SMI_AEAD_NONCE];
    uint8_t    end_tag[SMI_AEAD_TAG];
    uint8_t   *carve;       /* the run new chunks are carved from; NULL: none */
    uint32_t   carve_slots; /* its chunk slots */
    uint32_t   carve_used;  /* its slots carved so far, from the front */
} smi_stream;

_Static_assert(sizeof(smi_stream) <= SMI_SLOT_BODY, "a stream descriptor fits in its slot");

/*
 * This kind's part in the registry's walks, registered before each publication
 * (smi_registry_kind): the registry sits below this module and never names it.
 */
static const smi_kind_ops kind_ops = { smi_stream_purge, smi_stream_wipe, smi_stream_audit,
                                       smi_stream_forget, NULL };

static size_t map_len(void)
{
    return CHUNK_PAGES * sm_os_page_size();
}

static size_t capacity(void)
{
    return map_len() - SLACK;
}

/* ---- the index ---- */

static size_t ring_cap(size_t pages)
{
    return pages * sm_os_page_size() / sizeof(rec);
}

static rec *at(rec *ring, size_t cap, size_t first, size_t i)
{
    return &ring[(first + i) % cap];
}

static rec *rec_at(const smi_stream *s, size_t i)
{
    return at(s->ring, ring_cap(s->ring_pages), s->first, i);
}

/*
 * The records' pages between two guard pages: one PROT_NONE reservation, the middle
 * opened (2 calls, spec/syscalls.md). Not locked: nothing in it is secret (addresses,
 * lengths, positions, nonces, tags), and locking it would spend RLIMIT_MEMLOCK in
 * proportion to the data, which the chunks do not. Not WIPEONFORK either: a forked
 * child inherits the chunks, and needs the index to give them back (smi_stream_forget).
 */
static sm_status ring_map(size_t pages, rec **out)
{
    size_t page = sm_os_page_size();
    void *base;
    sm_status st = sm_os_mmap((pages + 2) * page, SM_PROT_NONE, &base);

    if (st != SM_OK)
        return st;
    st = sm_os_mprotect((uint8_t *)base + page, pages * page, SM_PROT_READWRITE);
    /* As for a region: on a fresh reservation ENOMEM is a refused split (map count). */
    if (st == SM_E_PROT && sm_os_last_error() == ENOMEM)
        st = SM_E_NOMEM;
    if (st != SM_OK) {
        (void)sm_os_munmap(base, (pages + 2) * page);
        return st;
    }
    *out = (rec *)(void *)((uint8_t *)base + page);
    return SM_OK;
}

static sm_status ring_unmap(rec *ring, size_t pages)
{
    size_t page = sm_os_page_size();

    return sm_os_munmap((uint8_t *)ring - page, (pages + 2) * page);
}

/*
 * ---- Runs ----
 * A chunk is a slot of a run, one mapping of several chunks, carved in order (a bump);
 * each chunk's record names its run. Mapping and unmapping a chunk at a time cost a
 * page fault per page and a munmap per chunk (about 18 us each on the project machine),
 * more than the cipher; a run of 2 MiB, aligned and advised for a transparent huge page,
 * takes one fault and one munmap for 128 chunks.
 *
 * A run's size is the power of two at least the chunks the stream will hold when it is
 * mapped, from 1 up to 2 MiB of chunks, so that a small stream pays for small runs and a
 * large one for few. The records are in ring order and chunks are carved in that order,
 * so a run's chunks are consecutive records: a chunk given back finds whether its run
 * still holds another from its neighbours in the ring, in O(1), and nothing about runs
 * is ever read from a chunk's pages, which an attacker may edit. A run is given back when
 * its last chunk leaves and it is not the run being carved, and the run being carved
 * when the stream is emptied.
 */

/* Runs top out at this: 128 chunks of 4 KiB pages, the x86-64 huge page. */
#define RUN_MAX_BYTES ((size_t)2 << 20)

static uint32_t run_max(void)
{
    size_t n = RUN_MAX_BYTES / map_len();

    return n > 0 ? (uint32_t)n : 1u;
}

/* Chunk slots for a run when the stream will hold want chunks (a power of two). */
static uint32_t run_size_for(size_t want)
{
    uint32_t n = 1, max = run_max();

    while (n < max && n < want)
        n *= 2;
    return n;
}

/*
 * A run the size of a page table's reach (a page of 8-byte entries: 2 MiB with 4 KiB
 * pages, the only size of which runs reach it) can be one huge page: it is placed on
 * that boundary, and advised so.
 */
static size_t huge_len(void)
{
    size_t page = sm_os_page_size();

    return page * (page / 8);
}

static bool run_huge(uint32_t slots)
{
    return (size_t)slots * map_len() == huge_len();
}

/*
 * The run's mapping: its slots, and for a huge run a page table's reach less a page
 * more, so that an aligned start lies within. Those extra pages are address space only:
 * never touched, they take no memory, and trimming them would cost two munmap calls more.
 */
static size_t run_span(uint32_t slots)
{
    size_t len = (size_t)slots * map_len();

    return run_huge(slots) ? len + huge_len() - sm_os_page_size() : len;
}

/* Where the run's first slot is in its mapping. */
static uint8_t *run_data(uint8_t *run, uint32_t slots)
{
    size_t h = huge_len();

    if (!run_huge(slots))
        return run;
    return run + (h - (uintptr_t)run % h) % h;
}

/*
 * Map a run: a spare one of its length (spare.c: no system call, no page fault), or a
 * fresh one. A small run is mapped with its pages present (one call instead of a fault
 * per page). A huge one is mapped empty and advised (2 calls): its first write then takes
 * one fault for all of it; the advice refused (or the kernel without transparent huge
 * pages) costs only a fault per page, so the refusal is got over.
 */
static sm_status run_map(uint32_t slots, uint8_t **out)
{
    size_t span = run_span(slots);
    void *base = smi_spare_take(span);
    sm_status st = SM_OK;

    if (base == NULL && !run_huge(slots)) {
        st = sm_os_mmap_filled(span, &base);
    } else if (base == NULL) {
        st = sm_os_mmap(span, SM_PROT_READWRITE, &base);
        if (st == SM_OK) {
            int err = sm_os_last_error();

            if (sm_os_madvise(base, span, SM_OS_HUGEPAGE) != SM_OK)
                sm_os_set_last_error(err);
        }
    }
    if (st == SM_OK)
        *out = base;
    return st;
}

/* Give a run back whole: kept spare, or unmapped (a failure leaves ciphertext). */
static void run_unmap(uint8_t *run, uint32_t slots)
{
    if (!smi_spare_give(run, run_span(slots)))
        (void)sm_os_munmap(run, run_span(slots));
}

/*
 * Whether run is still the stream's after a change of its records around position near
 * (a run's chunks are consecutive records, so its others are next to the change).
 */
static bool run_held(const smi_stream *s, const uint8_t *run, size_t near)
{
    if (run == s->carve)
        return true;
    for (size_t i = near > 1 ? near - 2 : 0; i <= near && i < s->count; i++)
        if (rec_at(s, i)->run == run)
            return true;
    return false;
}

/* The run being carved, given back: the stream holds no chunk of it. */
static void carve_drop(smi_stream *s)
{
    if (s->carve != NULL)
        run_unmap(s->carve, s->carve_slots);
    s->carve = NULL;
    s->carve_slots = 0;
    s->carve_used = 0;
}

/*
 * Give back the run of the i-th chunk if that chunk is the run's last (the next record
 * is in another run, or there is none) and the run is not the one being carved.
 */
static void run_leave(const smi_stream *s, size_t i)
{
    const rec *r = rec_at(s, i);

    if (r->run != s->carve && (i + 1 == s->count || rec_at(s, i + 1)->run != r->run))
        run_unmap(r->run, r->slots);
}

/*
 * Give back every run and unmap the index; a failure leaves ciphertext or metadata. Only
 * what the index and the descriptor say the stream mapped, never an address from a chunk.
 */
static void unmap_all(smi_stream *s)
{
    for (size_t i = 0; i < s->count; i++)
        run_leave(s, i);
    carve_drop(s);
    (void)ring_unmap(s->ring, s->ring_pages);
}

/* ---- sealing ---- */

/*
 * The additional data (spec/enclaves-streams.md): an 8-byte label, the stream's id, a
 * position and a length: "stream\0c" || id || seq || len for a chunk, "stream\0e" || id
 * || last seq || bytes ever written for the end record. Written by the core's proven
 * functions (spec/decisions.md), so that other fields give other bytes.
 */
static void make_aad(const smi_stream *s, char kind, uint64_t seq, uint64_t n,
                     uint8_t aad[AAD_LEN])
{
    smi_stream_aad_head(aad, (uint8_t)kind, s->id);
    smi_le64_put(aad + 8 + ID_LEN, seq);
    smi_le64_put(aad + 16 + ID_LEN, n);
}

/*
 * Seal the len plaintext bytes at p (in place) into the chunk slot map, described by r;
 * the slot is zeroed past them, as it may hold an older chunk's ciphertext (a run reused
 * from spare.c, or a slot given back by commit_append).
 */
static sm_status chunk_seal(smi_coffer_session *cs, const smi_stream *s, uint64_t seq,
                            uint8_t *map, uint8_t *p, size_t len, rec *r)
{
    uint8_t aad[AAD_LEN];
    sm_status st;

    make_aad(s, 'c', seq, len, aad);
    st = smi_coffer_session_seal(cs, aad, sizeof aad, p, len, r->nonce, r->tag);
    if (st != SM_OK)
        return st;
    memcpy(map, p, len);
    memset(map + len, 0, map_len() - len);
    r->map = map;
    r->seq = seq;
    r->len = len;
    return SM_OK;
}

/* Decrypt the chunk of r into p, which holds r->len bytes (SM_E_AUTH wipes them). */
static sm_status chunk_open(smi_coffer_session *cs, const smi_stream *s, const rec *r,
                            uint8_t *p)
{
    uint8_t aad[AAD_LEN];

    make_aad(s, 'c', r->seq, r->len, aad);
    memcpy(p, r->map, r->len);
    return smi_coffer_session_open(cs, r->nonce, aad, sizeof aad, p, r->len, r->tag);
}

/*
 * The end record: a tag over no plaintext, bound to the last chunk's position and to
 * the bytes ever written. Checked with what the index and the counters say when a call
 * reaches the last chunk: taken + the bytes from the front to the end.
 */
static sm_status end_seal(smi_coffer_session *cs, const smi_stream *s, uint64_t last_seq,
                          uint64_t written, uint8_t nonce[SMI_AEAD_NONCE],
                          uint8_t tag[SMI_AEAD_TAG])
{
    uint8_t aad[AAD_LEN];

    make_aad(s, 'e', last_seq, written, aad);
    return smi_coffer_session_seal(cs, aad, sizeof aad, NULL, 0, nonce, tag);
}

static sm_status end_check(smi_coffer_session *cs, const smi_stream *s, uint64_t total)
{
    uint8_t aad[AAD_LEN];

    make_aad(s, 'e', rec_at(s, s->count - 1)->seq, total, aad);
    return smi_coffer_session_open(cs, s->end_nonce, aad, sizeof aad, NULL, 0, s->end_tag);
}

/* ---- calls ---- */

sm_status sm_stream_new(sm_stream *out)
{
    smi_stream s = { .ring = NULL };
    uint64_t id;
    sm_status st;

    if (out == NULL)
        return SM_E_INVAL;
    st = smi_runtime_ready();
    if (st == SM_OK)
        st = smi_rng_fill(s.id, sizeof s.id);
    if (st == SM_OK)
        st = smi_region_alloc(capacity(), NULL, &s.scratch);
    if (st != SM_OK)
        return st;
    s.ring_pages = 1;
    st = ring_map(s.ring_pages, &s.ring);
    if (st == SM_OK) {
        smi_registry_kind(SMI_KIND_STREAM, &kind_ops);
        st = smi_registry_insert(SMI_KIND_STREAM, &s, sizeof s, &id);
        if (st != SM_OK)
            (void)ring_unmap(s.ring, s.ring_pages);
    }
    if (st != SM_OK) {
        smi_region_unmake(&s.scratch);
        return st;
    }
    out->id = id;
    return SM_OK;
}

static sm_status acquire(sm_stream h, smi_slot **slot, smi_stream **s)
{
    sm_status st = smi_registry_acquire(h.id, SMI_KIND_STREAM, slot);

    if (st == SM_OK)
        *s = (smi_stream *)(void *)(*slot)->body;
    return st;
}

/* acquire, for the calls that take data out: SM_E_EOF, with nothing held, when empty. */
static sm_status acquire_nonempty(sm_stream h, smi_slot **slot, smi_stream **s)
{
    sm_status st = acquire(h, slot, s);

    if (st == SM_OK && (*s)->written == (*s)->taken) {
        smi_registry_release(*slot);
        st = SM_E_EOF;
    }
    return st;
}

/* What a write builds on the side, and commit_append installs. */
typedef struct plan {
    rec     *ring;        /* s->ring, or a larger copy of it */
    size_t   pages;
    size_t   made;        /* records built in the ring's free slots, after s->count */
    bool     replaces_tail;
    uint8_t *carve;       /* the run being carved, and its slots, as the plan leaves them */
    uint32_t carve_slots, carve_used;
    uint64_t next_seq;
    uint8_t  end_nonce[SMI_AEAD_NONCE], end_tag[SMI_AEAD_TAG];
} plan;

/*
 * Room in the ring for k more records: the ring itself, or a copy at least twice as
 * large (amortised O(1) per record). The copy is the plan's until commit.
 */
static sm_status make_room(const smi_stream *s, size_t k, plan *p)
{
    size_t pages = s->ring_pages;
    sm_status st;

    p->ring = s->ring;
    p->pages = pages;
    if (ring_cap(pages) - s->count >= k)
        return SM_OK;
    /*
     * No overflow: every record stands for a mapped chunk of 4 pages, so the records'
     * pages stay far below the address space, let alone SIZE_MAX.
     */
    while (ring_cap(pages) - s->count < k)
        pages *= 2;
    st = ring_map(pages, &p->ring);
    if (st != SM_OK)
        return st;
    for (size_t i = 0; i < s->count; i++)
        p->ring[i] = *rec_at(s, i);
    p->pages = pages;
    return SM_OK;
}

/* The i-th record of the stream as the plan lays it out (a new ring starts at 0). */
static rec *plan_at(const smi_stream *s, const plan *p, size_t i)
{
    return p->ring == s->ring ? rec_at(s, i) : &p->ring[i];
}

/*
 * A slot for the next chunk of a plan that will leave the stream holding want chunks:
 * the run being carved, or a new run when it is full (the plan's until commit).
 */
static sm_status carve(plan *p, size_t want, uint8_t **map)
{
    if (p->carve == NULL || p->carve_used == p->carve_slots) {
        uint32_t slots = run_size_for(want);
        sm_status st = run_map(slots, &p->carve);

        if (st != SM_OK)
            return st;
        p->carve_slots = slots;
        p->carve_used = 0;
    }
    *map = run_data(p->carve, p->carve_slots) + (size_t)p->carve_used++ * map_len();
    return SM_OK;
}

/* Give back the runs the plan mapped: the stream's run being carved is not one. */
static void plan_drop(const smi_stream *s, plan *p)
{
    const rec *last = NULL;

    for (size_t j = 0; j < p->made; j++) {
        const rec *r = plan_at(s, p, s->count + j);

        if (r->run != s->carve && (j + 1 == p->made ||
                                   plan_at(s, p, s->count + j + 1)->run != r->run))
            run_unmap(r->run, r->slots);
        last = r;
    }
    /* A new run whose first chunk failed has no record. */
    if (p->carve != s->carve && (last == NULL || last->run != p->carve))
        run_unmap(p->carve, p->carve_slots);
    if (p->ring != s->ring)
        (void)ring_unmap(p->ring, p->pages);
}

/*
 * Build the records that replace the tail: the tail's live bytes if it has room, then
 * src, in full chunks, each at a new position; then the new end record.
 */
static sm_status build_append(smi_stream *s, const uint8_t *src, size_t n, plan *p)
{
    uint8_t *pt = smi_region_data(&s->scratch);
    size_t cap = capacity(), done = 0, fill0 = 0, k, want;
    rec *tail = s->count > 0 ? rec_at(s, s->count - 1) : NULL;
    size_t tail_skip = s->count == 1 ? s->skip : 0;
    smi_coffer_session cs;
    sm_status st;

    p->made = 0;
    p->carve = s->carve;
    p->carve_slots = s->carve_slots;
    p->carve_used = s->carve_used;
    p->replaces_tail = tail != NULL && tail->len < cap;
    if (p->replaces_tail)
        fill0 = tail->len - tail_skip;
    k = (fill0 + n - 1) / cap + 1;
    /* The chunks the stream holds after the write: the one the write replaces, gone. */
    want = s->count - (p->replaces_tail ? 1 : 0) + k;
    p->next_seq = s->next_seq;
    st = make_room(s, k, p);
    if (st != SM_OK)
        return st;
    /* One view of the key for every chunk this write seals, and the end record. */
    st = smi_coffer_begin(&cs, k + 1);
    while (st == SM_OK && done < n) {
        size_t fill = 0, take;
        uint8_t *map;
        rec *r = plan_at(s, p, s->count + p->made);

        if (p->made == 0 && p->replaces_tail) {
            /* The bytes already read from a front tail are dropped here. */
            st = chunk_open(&cs, s, tail, pt);
            fill = tail->len - tail_skip;
            if (st == SM_OK && tail_skip > 0)
                memmove(pt, pt + tail_skip, fill);
        }
        if (st == SM_OK)
            st = carve(p, want, &map);
        if (st != SM_OK)
            break;
        take = n - done < cap - fill ? n - done : cap - fill;
        memcpy(pt + fill, src + done, take);
        /* A failed seal leaves its slot carved in the plan only, which plan_drop forgets. */
        st = chunk_seal(&cs, s, p->next_seq, map, pt, fill + take, r);
        if (st != SM_OK)
            break;
        r->run = p->carve;
        r->slots = p->carve_slots;
        p->next_seq++;
        p->made++;
        done += take;
    }
    if (st == SM_OK)
        st = end_seal(&cs, s, p->next_seq - 1, s->written + n, p->end_nonce, p->end_tag);
    smi_coffer_end(&cs);
    smi_wipe(pt, cap);
    if (st != SM_OK)
        plan_drop(s, p);
    return st;
}

/*
 * A write that replaces the tail with one chunk carved just after it, in the same run:
 * its ciphertext moves down into the tail's slot and the run's last slot is carved
 * again, so that a run of small writes keeps reusing two slots rather than leaving one
 * behind each (the bound of spec/enclaves-streams.md). Copying ciphertext cannot fail.
 */
static bool move_into_tail(plan *p, const rec *tail, rec *r)
{
    if (!p->replaces_tail || p->made != 1 || r->run != tail->run ||
        r->map != tail->map + map_len())
        return false;
    memcpy(tail->map, r->map, map_len());
    r->map = tail->map;
    p->carve_used--;
    return true;
}

/*
 * Commit a plan: stores only, and unmaps that the stream no longer needs (a failure
 * there leaves ciphertext or metadata mapped, never a secret: SM_OK_LEAKS rows).
 */
static void commit_append(smi_stream *s, plan *p, size_t n)
{
    rec *old_ring = s->ring;
    size_t old_pages = s->ring_pages, near = s->count;
    rec old_tail = { .run = NULL };

    if (p->ring != s->ring) {
        s->ring = p->ring;
        s->ring_pages = p->pages;
        s->first = 0;
    }
    if (p->replaces_tail) {
        old_tail = *rec_at(s, s->count - 1);
        if (move_into_tail(p, &old_tail, rec_at(s, s->count)))
            old_tail.run = NULL; /* its slot is the new chunk's */
        for (size_t j = 0; j < p->made; j++)
            *rec_at(s, s->count - 1 + j) = *rec_at(s, s->count + j);
        s->count += p->made - 1;
        if (s->count == p->made)
            s->skip = 0; /* the front was the tail: its read bytes were dropped */
    } else {
        s->count += p->made;
    }
    s->written += n;
    s->next_seq = p->next_seq;
    memcpy(s->end_nonce, p->end_nonce, sizeof s->end_nonce);
    memcpy(s->end_tag, p->end_tag, sizeof s->end_tag);
    s->carve = p->carve;
    s->carve_slots = p->carve_slots;
    s->carve_used = p->carve_used;
    /*
     * The replaced tail's run, once nothing holds it. The run carved before needs no
     * test of its own: a stream that holds a chunk holds one of the run being carved, its
     * tail (chunks are carved in ring order, and one emptied drops the run: drop_front),
     * so that run is the stream's still, or it was the tail's.
     */
    if (old_tail.run != NULL && !run_held(s, old_tail.run, near))
        run_unmap(old_tail.run, old_tail.slots);
    if (old_ring != s->ring)
        (void)ring_unmap(old_ring, old_pages);
}

sm_status sm_stream_write(sm_stream h, void *src, size_t n)
{
    smi_slot *slot;
    smi_stream *s;
    plan p;
    sm_status st;

    if (src == NULL && n > 0)
        return SM_E_INVAL;
    st = acquire(h, &slot, &s);
    if (st != SM_OK)
        return st;
    if (n > SIZE_MAX - (s->written - s->taken) || n > UINT64_MAX - s->written)
        st = SM_E_INVAL;
    else if (n > 0 && (st = sm_os_writable(src, n)) == SM_OK) /* the wipe (SM-REQ-132) */
        st = build_append(s, src, n, &p);
    if (st == SM_OK && n > 0) {
        commit_append(s, &p, n);
        smi_wipe(src, n);
    }
    smi_registry_release(slot);
    return st;
}

/*
 * After a call that took chunks out: a ring four times larger than the chunks it holds
 * gives way to one that holds them twice over (at least one page), so that the index
 * follows the data as the chunks do (spec/api.md: the memory is bounded by the data held
 * plus a constant). Amortised O(1): between two shrinks at least a quarter of the
 * records were taken out, and a shrink copies fewer than that. Best effort, after the
 * commit: if the smaller ring cannot be mapped the stream keeps the larger one and the
 * next call that takes data out tries again; an old ring that cannot be unmapped stays
 * mapped (metadata, no secret: SM_OK_LEAKS).
 */
static void shrink(smi_stream *s)
{
    size_t pages = s->ring_pages, old_pages = s->ring_pages;
    rec *ring, *old = s->ring;

    if (pages == 1 || s->count * 4 > ring_cap(pages))
        return;
    while (pages > 1 && s->count * 2 <= ring_cap(pages / 2))
        pages /= 2;
    if (ring_map(pages, &ring) != SM_OK)
        return;
    for (size_t i = 0; i < s->count; i++)
        ring[i] = *rec_at(s, i);
    s->ring = ring;
    s->ring_pages = pages;
    s->first = 0;
    (void)ring_unmap(old, old_pages);
}

/*
 * Give back the chunks before the i-th, which the call consumed: each run whose last
 * chunk that was, and the run being carved once the stream is empty (so that an empty
 * stream maps no chunk, and its next write sizes its run afresh).
 */
static void drop_front(smi_stream *s, size_t i)
{
    for (size_t j = 0; j < i; j++)
        run_leave(s, j);
    s->first = (s->first + i) % ring_cap(s->ring_pages);
    s->count -= i;
    if (s->count == 0)
        carve_drop(s);
}

sm_status sm_stream_read(sm_stream h, void *dst, size_t cap, size_t *got)
{
    smi_slot *slot;
    smi_stream *s;
    uint8_t *pt, *out = dst;
    smi_coffer_session cs;
    size_t done = 0, i = 0, skip, seen = 0;
    sm_status st;

    if (got == NULL || (dst == NULL && cap > 0))
        return SM_E_INVAL;
    st = acquire_nonempty(h, &slot, &s);
    if (st != SM_OK)
        return st;
    pt = smi_region_data(&s->scratch);
    skip = s->skip;
    /* One view of the key; a read seals nothing (a chunk read in part keeps a skip). */
    st = smi_coffer_begin(&cs, 0);
    for (; st == SM_OK && i < s->count && done < cap; i++) {
        const rec *r = rec_at(s, i);
        size_t from = i == 0 ? skip : 0, k;

        st = chunk_open(&cs, s, r, pt);
        seen += r->len - from;
        if (st == SM_OK && i == s->count - 1)
            st = end_check(&cs, s, s->taken + seen);
        if (st != SM_OK)
            break;
        k = r->len - from < cap - done ? r->len - from : cap - done;
        memcpy(out + done, pt + from, k);
        done += k;
        if (from + k < r->len) {
            skip = from + k;
            break;
        }
        skip = 0;
    }
    smi_coffer_end(&cs);
    smi_wipe(pt, capacity());
    if (st != SM_OK) {
        smi_wipe(dst, done);
        smi_registry_release(slot);
        return st;
    }
    /* Commit: drop what was consumed; a chunk read in part stays, with its skip. */
    drop_front(s, i);
    s->skip = skip;
    s->taken += done;
    shrink(s);
    *got = done;
    smi_registry_release(slot);
    return SM_OK;
}

/* Decrypt the front chunk (all false) or every chunk into a new region, then publish it. */
static sm_status take_into_buffer(sm_stream h, bool all, sm_buffer *out)
{
    smi_slot *slot;
    smi_stream *s;
    smi_region r = { .base = NULL };
    smi_coffer_session cs;
    size_t len, off = 0, n, seen = 0;
    sm_status st;

    if (out == NULL)
        return SM_E_INVAL;
    st = acquire_nonempty(h, &slot, &s);
    if (st != SM_OK)
        return st;
    n = all ? s->count : 1;
    len = all ? (size_t)(s->written - s->taken) : rec_at(s, 0)->len - s->skip;
    st = smi_region_alloc(len, NULL, &r);
    if (st == SM_OK) {
        uint8_t *d = smi_region_data(&r), *pt = smi_region_data(&s->scratch);

        st = smi_coffer_begin(&cs, 0);
        for (size_t i = 0; st == SM_OK && i < n; i++) {
            const rec *c = rec_at(s, i);
            size_t from = i == 0 ? s->skip : 0;

            seen += c->len - from;
            /* The index disagrees with the byte count: the end check would fail too. */
            if (off + (c->len - from) > len) {
                st = SM_E_AUTH;
            } else if (from == 0) {
                /* Straight into the buffer's guarded region. */
                st = chunk_open(&cs, s, c, d + off);
            } else {
                st = chunk_open(&cs, s, c, pt);
                if (st == SM_OK)
                    memcpy(d + off, pt + from, c->len - from);
                smi_wipe(pt, capacity());
            }
            off += c->len - from;
            if (st == SM_OK && i == s->count - 1)
                st = end_check(&cs, s, s->taken + seen);
        }
        smi_coffer_end(&cs);
    }
    if (st == SM_OK) {
        st = smi_buffer_adopt(&r, out);
    } else if (r.base != NULL) {
        smi_region_unmake(&r);
    }
    if (st == SM_OK) {
        drop_front(s, n);
        s->skip = 0;
        s->taken += len;
        shrink(s);
    }
    smi_registry_release(slot);
    return st;
}

sm_status sm_stream_next(sm_stream h, sm_buffer *out)
{
    return take_into_buffer(h, false, out);
}

sm_status sm_stream_flush(sm_stream h, sm_buffer *out)
{
    return take_into_buffer(h, true, out);
}

size_t sm_stream_size(sm_stream h)
{
    smi_slot *slot;
    smi_stream *s;
    size_t n;

    if (acquire(h, &slot, &s) != SM_OK)
        return 0;
    n = (size_t)(s->written - s->taken);
    smi_registry_release(slot);
    return n;
}

sm_status sm_stream_destroy(sm_stream h)
{
    smi_slot *slot;
    smi_stream *s;
    sm_status st = acquire(h, &slot, &s);

    if (st != SM_OK)
        return st;
    st = smi_region_free(&s->scratch);
    if (st != SM_OK) {
        smi_registry_release(slot);
        return st;
    }
    /* Only what the index says the stream mapped: never an address read from a chunk. */
    unmap_all(s);
    smi_registry_remove(slot);
    return SM_OK;
}

/* ---- the registry's walks (smi_kind_ops) ---- */

bool smi_stream_purge(void *body)
{
    smi_stream *s = body;

    unmap_all(s);
    return smi_region_purge(&s->scratch);
}

void smi_stream_wipe(void *body)
{
    smi_region_wipe_in_place(&((smi_stream *)body)->scratch);
}

sm_status smi_stream_audit(void *body)
{
    return smi_region_audit(&((smi_stream *)body)->scratch);
}

void smi_stream_forget(void *body)
{
    smi_stream *s = body;

    unmap_all(s);
    smi_region_forget(&s->scratch);
}

#if defined(SM_FAULT_INJECTION)
/* The k-th record of stream h, its slot held (release it); NULL with *st on error. */
static rec *test_rec(sm_stream h, size_t k, smi_slot **slot, sm_status *st)
{
    smi_stream *s;

    *st = acquire(h, slot, &s);
    if (*st != SM_OK)
        return NULL;
    if (k < s->count)
        return rec_at(s, k);
    smi_registry_release(*slot);
    *st = SM_E_INVAL;
    return NULL;
}

sm_status smi_stream_test_chunk(sm_stream h, size_t k, uint8_t **map, size_t *len)
{
    smi_slot *slot;
    sm_status st;
    const rec *r = test_rec(h, k, &slot, &st);

    if (r == NULL)
        return st;
    *map = r->map;
    *len = map_len();
    smi_registry_release(slot);
    return SM_OK;
}

sm_status smi_stream_test_save(sm_stream h, size_t k, smi_stream_saved *out)
{
    smi_slot *slot;
    sm_status st;
    const rec *r = test_rec(h, k, &slot, &st);

    if (r == NULL)
        return st;
    memcpy(out->bytes, r->map, map_len());
    out->len = r->len;
    memcpy(out->nonce, r->nonce, sizeof out->nonce);
    memcpy(out->tag, r->tag, sizeof out->tag);
    smi_registry_release(slot);
    return SM_OK;
}

/* The sealed contents of record k from in; the position stays the place's. */
sm_status smi_stream_test_restore(sm_stream h, size_t k, const smi_stream_saved *in)
{
    smi_slot *slot;
    sm_status st;
    rec *r = test_rec(h, k, &slot, &st);

    if (r == NULL)
        return st;
    memcpy(r->map, in->bytes, map_len());
    r->len = in->len;
    memcpy(r->nonce, in->nonce, sizeof r->nonce);
    memcpy(r->tag, in->tag, sizeof r->tag);
    smi_registry_release(slot);
    return SM_OK;
}

sm_status smi_stream_test_slots(sm_stream h, smi_stream_slots *out)
{
    smi_slot *slot;
    smi_stream *s;
    sm_status st = acquire(h, &slot, &s);

    if (st != SM_OK)
        return st;
    *out = (smi_stream_slots){ .chunks = s->count };
    /* A run's chunks are consecutive records: a run is counted at its first. */
    for (size_t i = 0; i < s->count; i++) {
        const rec *r = rec_at(s, i);

        if (i == 0 || rec_at(s, i - 1)->run != r->run)
            out->mapped += r->slots;
    }
    if (s->count == 0) {
        st = s->carve == NULL ? SM_OK : SM_E_STATE;
    } else {
        const rec *r = rec_at(s, 0);

        out->read = (size_t)(r->map - run_data(r->run, r->slots)) / map_len();
        out->uncarved = s->carve_slots - s->carve_used;
        st = rec_at(s, s->count - 1)->run == s->carve ? SM_OK : SM_E_STATE;
    }
    smi_registry_release(slot);
    return st;
}

sm_status smi_stream_test_cut(sm_stream h, size_t keep)
{
    smi_slot *slot;
    smi_stream *s;
    sm_status st = acquire(h, &slot, &s);

    if (st != SM_OK)
        return st;
    if (keep == 0 || keep > s->count) {
        st = SM_E_INVAL;
    } else {
        const uint8_t *last = rec_at(s, keep - 1)->run;

        /* The runs that only the cut chunks held, the run being carved among them. */
        for (size_t i = keep; i < s->count; i++)
            if (rec_at(s, i)->run != last)
                run_leave(s, i);
        s->count = keep;
        /* As a write would have left it: the tail's run is the one being carved. */
        if (last != s->carve) {
            const rec *r = rec_at(s, keep - 1);

            carve_drop(s);
            s->carve = r->run;
            s->carve_slots = r->slots;
            s->carve_used = (uint32_t)((size_t)(r->map - run_data(r->run, r->slots)) /
                                       map_len() + 1);
        }
    }
    smi_registry_release(slot);
    return st;
}
#endif
