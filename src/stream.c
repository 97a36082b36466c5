/* SPDX-License-Identifier: ISC */
/*
 * Streams (securemem/stream.h). A stream is a singly linked chain of chunk mappings,
 * each  | next | len | nonce | tag | pad | ciphertext |  in 4 pages, plus one guarded
 * scratch region of one chunk's capacity for the plaintext in transit.
 *
 * Every call first builds what it changes on the side (new chunks, a resealed front
 * chunk) and then commits by relinking pointers, which cannot fail: so a failure in the
 * middle leaves the stream exactly as it was.
 */
#include <string.h>

#include "inner.h"

#define CHUNK_PAGES 4u
#define HEAD 64u

typedef struct chunk {
    struct chunk *next;
    size_t        len;
    uint8_t       nonce[SMI_AEAD_NONCE];
    uint8_t       tag[SMI_AEAD_TAG];
} chunk;

_Static_assert(sizeof(chunk) <= HEAD, "the chunk head fits before the ciphertext");

typedef struct smi_stream {
    smi_region scratch;
    chunk     *head, *tail;
    size_t     size;
} smi_stream;

_Static_assert(sizeof(smi_stream) <= SMI_SLOT_BODY, "a stream descriptor fits in its slot");

static size_t map_len(void)
{
    return CHUNK_PAGES * sm_os_page_size();
}

static size_t capacity(void)
{
    return map_len() - HEAD;
}

static uint8_t *ct(chunk *c)
{
    return (uint8_t *)c + HEAD;
}

static void make_aad(size_t len, uint8_t aad[16])
{
    static const char tag[8] = "stream";

    for (unsigned i = 0; i < 8; i++) {
        aad[i] = (uint8_t)tag[i];
        aad[8 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    }
}

static sm_status chunk_map(chunk **out)
{
    void *p;
    sm_status st = sm_os_mmap_filled(map_len(), &p);

    if (st == SM_OK)
        *out = p;
    return st;
}

/* Unmap a chain; a failure leaves a mapping of ciphertext behind, which holds no secret. */
static void chain_unmap(chunk *c)
{
    while (c != NULL) {
        chunk *next = c->next;

        (void)sm_os_munmap(c, map_len());
        c = next;
    }
}

/* Seal the len plaintext bytes at p (in place) into c. */
static sm_status chunk_seal(smi_coffer_session *cs, chunk *c, uint8_t *p, size_t len)
{
    uint8_t aad[16];
    sm_status st;

    make_aad(len, aad);
    st = smi_coffer_session_seal(cs, aad, sizeof aad, p, len, c->nonce, c->tag);
    if (st != SM_OK)
        return st;
    memcpy(ct(c), p, len);
    c->len = len;
    c->next = NULL;
    return SM_OK;
}

/* Decrypt c into the len bytes at p (which must hold c->len bytes). */
static sm_status chunk_open(smi_coffer_session *cs, chunk *c, uint8_t *p)
{
    uint8_t aad[16];

    make_aad(c->len, aad);
    memcpy(p, ct(c), c->len);
    return smi_coffer_session_open(cs, c->nonce, aad, sizeof aad, p, c->len, c->tag);
}

sm_status sm_stream_new(sm_stream *out)
{
    smi_stream s = { .head = NULL };
    uint64_t id;
    sm_status st;

    if (out == NULL)
        return SM_E_INVAL;
    st = smi_runtime_ready();
    if (st == SM_OK)
        st = smi_region_alloc(capacity(), NULL, &s.scratch);
    if (st != SM_OK)
        return st;
    st = smi_registry_insert(SMI_KIND_STREAM, &s, sizeof s, &id);
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

    if (st == SM_OK && (*s)->size == 0) {
        smi_registry_release(*slot);
        st = SM_E_EOF;
    }
    return st;
}

/*
 * Build the chain that replaces the tail: the tail's bytes if it has room, then src.
 * Chunks stay full, so the memory follows the data held.
 */
static sm_status build_append(smi_stream *s, const uint8_t *src, size_t n, chunk **first,
                              chunk **last, bool *replaces_tail)
{
    uint8_t *pt = smi_region_data(&s->scratch);
    size_t cap = capacity(), done = 0, fill0;
    smi_coffer_session cs;
    sm_status st;

    *first = *last = NULL;
    *replaces_tail = s->tail != NULL && s->tail->len < cap;
    fill0 = *replaces_tail ? s->tail->len : 0;
    /* One view of the key for every chunk this write seals. */
    st = smi_coffer_begin(&cs, (fill0 + n - 1) / cap + 1);
    while (st == SM_OK && done < n) {
        size_t fill = 0, k;
        chunk *c;

        if (*first == NULL && *replaces_tail) {
            st = chunk_open(&cs, s->tail, pt);
            fill = s->tail->len;
        }
        if (st == SM_OK)
            st = chunk_map(&c);
        if (st != SM_OK)
            break;
        k = n - done < cap - fill ? n - done : cap - fill;
        memcpy(pt + fill, src + done, k);
        st = chunk_seal(&cs, c, pt, fill + k);
        if (st != SM_OK) {
            (void)sm_os_munmap(c, map_len());
            break;
        }
        if (*last != NULL)
            (*last)->next = c;
        else
            *first = c;
        *last = c;
        done += k;
    }
    smi_coffer_end(&cs);
    smi_wipe(pt, cap);
    if (st != SM_OK) {
        chain_unmap(*first);
        *first = *last = NULL;
    }
    return st;
}

/*
 * Commit a chain built by build_append: it cannot fail. A replaced tail keeps its
 * mapping, which takes over the contents of the chain's first chunk, so that no
 * predecessor has to be found: O(1) whatever the length of the stream.
 */
static void commit_append(smi_stream *s, chunk *first, chunk *last, bool replaces_tail)
{
    if (replaces_tail) {
        chunk *t = s->tail;

        t->len = first->len;
        for (unsigned i = 0; i < SMI_AEAD_NONCE; i++)
            t->nonce[i] = first->nonce[i];
        for (unsigned i = 0; i < SMI_AEAD_TAG; i++)
            t->tag[i] = first->tag[i];
        memcpy(ct(t), ct(first), first->len);
        t->next = first->next;
        if (last == first)
            last = t;
        (void)sm_os_munmap(first, map_len());
    } else if (s->tail != NULL) {
        s->tail->next = first;
    } else {
        s->head = first;
    }
    s->tail = last;
}

sm_status sm_stream_write(sm_stream h, void *src, size_t n)
{
    smi_slot *slot;
    smi_stream *s;
    chunk *first, *last;
    bool replaces_tail;
    sm_status st;

    if (src == NULL && n > 0)
        return SM_E_INVAL;
    st = acquire(h, &slot, &s);
    if (st != SM_OK)
        return st;
    if (n > SIZE_MAX - s->size)
        st = SM_E_INVAL;
    else if (n > 0)
        st = build_append(s, src, n, &first, &last, &replaces_tail);
    if (st == SM_OK && n > 0) {
        commit_append(s, first, last, replaces_tail);
        s->size += n;
        smi_wipe(src, n);
    }
    smi_registry_release(slot);
    return st;
}

sm_status sm_stream_read(sm_stream h, void *dst, size_t cap, size_t *got)
{
    smi_slot *slot;
    smi_stream *s;
    uint8_t *pt, *out = dst;
    chunk *c, *rest = NULL;
    smi_coffer_session cs;
    size_t done = 0;
    sm_status st;

    if (got == NULL || (dst == NULL && cap > 0))
        return SM_E_INVAL;
    st = acquire_nonempty(h, &slot, &s);
    if (st != SM_OK)
        return st;
    pt = smi_region_data(&s->scratch);
    /* One view of the key; one nonce for the chunk that may be read in part. */
    st = smi_coffer_begin(&cs, 1);
    /* Decrypt whole chunks while they fit; a chunk read in part is resealed on the side. */
    for (c = s->head; st == SM_OK && c != NULL && done < cap; c = c->next) {
        size_t k;

        st = chunk_open(&cs, c, pt);
        if (st != SM_OK)
            break;
        k = c->len < cap - done ? c->len : cap - done;
        memcpy(out + done, pt, k);
        done += k;
        if (k < c->len) {
            st = chunk_map(&rest);
            if (st == SM_OK) {
                for (size_t i = k; i < c->len; i++)
                    pt[i - k] = pt[i];
                st = chunk_seal(&cs, rest, pt, c->len - k);
                if (st != SM_OK)
                    (void)sm_os_munmap(rest, map_len());
            }
            if (st == SM_OK)
                rest->next = c->next;
            break;
        }
    }
    smi_coffer_end(&cs);
    smi_wipe(pt, capacity());
    if (st != SM_OK) {
        smi_wipe(dst, done);
        smi_registry_release(slot);
        return st;
    }
    /* Commit: drop what was consumed; the chunk read in part gives way to its rest. */
    while (s->head != c) {
        chunk *next = s->head->next;

        (void)sm_os_munmap(s->head, map_len());
        s->head = next;
    }
    if (rest != NULL) {
        if (s->tail == c)
            s->tail = rest;
        s->head = rest;
        (void)sm_os_munmap(c, map_len());
    }
    if (s->head == NULL)
        s->tail = NULL;
    s->size -= done;
    *got = done;
    smi_registry_release(slot);
    return SM_OK;
}

/* Decrypt the first n chunks straight into a new region, then publish it. */
static sm_status take_into_buffer(sm_stream h, bool all, sm_buffer *out)
{
    smi_slot *slot;
    smi_stream *s;
    smi_region r = { .base = NULL };
    smi_coffer_session cs;
    size_t len, off = 0;
    chunk *c, *end;
    sm_status st;

    if (out == NULL)
        return SM_E_INVAL;
    st = acquire_nonempty(h, &slot, &s);
    if (st != SM_OK)
        return st;
    len = all ? s->size : s->head->len;
    end = all ? NULL : s->head->next;
    st = smi_region_alloc(len, NULL, &r);
    if (st == SM_OK) {
        st = smi_coffer_begin(&cs, 0);
        for (c = s->head; st == SM_OK && c != end; c = c->next) {
            st = chunk_open(&cs, c, smi_region_data(&r) + off);
            off += c->len;
        }
        smi_coffer_end(&cs);
    }
    if (st == SM_OK) {
        st = smi_buffer_adopt(&r, out);
    } else if (r.base != NULL) {
        smi_region_unmake(&r);
    }
    if (st == SM_OK) {
        while (s->head != end) {
            chunk *next = s->head->next;

            (void)sm_os_munmap(s->head, map_len());
            s->head = next;
        }
        if (s->head == NULL)
            s->tail = NULL;
        s->size -= len;
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
    n = s->size;
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
    chain_unmap(s->head);
    smi_registry_remove(slot);
    return SM_OK;
}

/* ---- the registry's walks (smi_kind_ops) ---- */

bool smi_stream_purge(void *body)
{
    smi_stream *s = body;

    chain_unmap(s->head);
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

    chain_unmap(s->head);
    smi_region_forget(&s->scratch);
}

#if defined(SM_FAULT_INJECTION)
static chunk *nth(smi_stream *s, size_t k)
{
    chunk *c = s->head;

    while (c != NULL && k-- > 0)
        c = c->next;
    return c;
}

sm_status smi_stream_test_chunk(sm_stream h, size_t k, uint8_t **map, size_t *len)
{
    smi_slot *slot;
    smi_stream *s;
    chunk *c;
    sm_status st = acquire(h, &slot, &s);

    if (st != SM_OK)
        return st;
    c = nth(s, k);
    if (c == NULL) {
        st = SM_E_INVAL;
    } else {
        *map = (uint8_t *)c;
        *len = map_len();
    }
    smi_registry_release(slot);
    return st;
}

sm_status smi_stream_test_save(sm_stream h, size_t k, smi_stream_saved *out)
{
    uint8_t *map;
    size_t len;
    sm_status st = smi_stream_test_chunk(h, k, &map, &len);

    if (st == SM_OK)
        memcpy(out->bytes, map, len);
    return st;
}

sm_status smi_stream_test_restore(sm_stream h, size_t k, const smi_stream_saved *in)
{
    uint8_t *map;
    size_t len;
    sm_status st = smi_stream_test_chunk(h, k, &map, &len);

    /* Everything but the link. */
    if (st == SM_OK)
        memcpy(map + sizeof(chunk *), in->bytes + sizeof(chunk *), len - sizeof(chunk *));
    return st;
}

sm_status smi_stream_test_cut(sm_stream h, size_t keep)
{
    smi_slot *slot;
    smi_stream *s;
    chunk *c;
    sm_status st = acquire(h, &slot, &s);

    if (st != SM_OK)
        return st;
    c = keep > 0 ? nth(s, keep - 1) : NULL;
    if (c == NULL) {
        st = SM_E_INVAL;
    } else {
        chain_unmap(c->next);
        c->next = NULL;
        s->tail = c;
    }
    smi_registry_release(slot);
    return st;
}
#endif
