/* SPDX-License-Identifier: ISC */
/*
 * Enclaves (securemem/enclave.h). The ciphertext has one ordinary mapping of its own,
 * laid out as  | nonce | tag | pad | ciphertext |  ; it is not secret, so it is not
 * locked, which keeps RLIMIT_MEMLOCK for plaintext. Plaintext only ever exists in the
 * caller's memory or in guarded regions: sealing encrypts in place where the plaintext
 * already is, copies the ciphertext out and wipes the plaintext behind it; opening
 * copies the ciphertext into a guarded region and decrypts it there. A destroyed
 * enclave's mapping is kept spare for the next seal of the same length (spare.c).
 */
#include <string.h>

#include "inner.h"

#define HEAD 32u /* nonce and tag, padded so that the ciphertext is 16-byte aligned */

/* An enclave is a sealed blob and nothing more. */
typedef smi_sealed smi_enclave;

_Static_assert(sizeof(smi_enclave) <= SMI_SLOT_BODY, "an enclave descriptor fits in its slot");
_Static_assert(SMI_AEAD_NONCE + SMI_AEAD_TAG <= HEAD, "the head holds nonce and tag");

/*
 * This kind's part in the registry's walks, registered before each publication
 * (smi_registry_kind): the registry sits below this module and never names it.
 */
static const smi_kind_ops kind_ops = { smi_enclave_purge, smi_enclave_wipe, smi_enclave_audit,
                                       smi_enclave_forget, NULL };

#define AAD_LEN (16u + SMI_SEALED_ID)

/*
 * The additional data binds the ciphertext to this use, to its size and to its blob's
 * own id (spec/enclaves-streams.md): "enclave\0" || size (8, little-endian) || id (16).
 * A ciphertext moved into another blob's mapping, even of the same size, then fails.
 */
static void make_aad(const smi_enclave *e, uint8_t aad[AAD_LEN])
{
    static const char tag[8] = "enclave";

    for (unsigned i = 0; i < 8; i++) {
        aad[i] = (uint8_t)tag[i];
        aad[8 + i] = (uint8_t)((uint64_t)e->size >> (8 * i));
    }
    memcpy(aad + 16, e->id, SMI_SEALED_ID);
}

static uint8_t *ct_of(const smi_enclave *e)
{
    return e->map + HEAD;
}

/*
 * A ciphertext mapping for size bytes; its pages are the caller's until published. A
 * spare one of the same length first (spare.c: no system call, no page fault), with its
 * stale tail zeroed so that it reads like a fresh one past the ciphertext.
 */
static sm_status map_for(size_t size, smi_enclave *e)
{
    size_t len;
    void *p;
    sm_status st;

    if (size == 0 || !smi_aead_len_ok(size))
        return SM_E_INVAL;
    len = smi_round_up(HEAD + size, sm_os_page_size());
    if (len == 0)
        return SM_E_INVAL;
    p = smi_spare_take(len);
    if (p != NULL) {
        memset((uint8_t *)p + HEAD + size, 0, len - HEAD - size);
    } else {
        st = sm_os_mmap_filled(len, &p);
        if (st != SM_OK)
            return st;
    }
    e->map = p;
    e->map_len = len;
    e->size = size;
    return SM_OK;
}

static void unmap(smi_enclave *e)
{
    (void)sm_os_munmap(e->map, e->map_len);
}

/* Give e's mapping back: kept spare for the next seal, or else unmapped (its status). */
static sm_status put_back(smi_enclave *e)
{
    return smi_spare_give(e->map, e->map_len) ? SM_OK : sm_os_munmap(e->map, e->map_len);
}

/*
 * Seal the plaintext at data in place, copying the ciphertext into e and wiping data as
 * the cipher goes (smi_coffer_seal_to), and nonce and tag after it.
 */
static sm_status seal_into(smi_enclave *e, uint8_t *data)
{
    uint8_t aad[AAD_LEN];

    make_aad(e, aad);
    return smi_coffer_seal_to(aad, sizeof aad, data, e->size, ct_of(e), e->map,
                              e->map + SMI_AEAD_NONCE);
}

/* Copy e's ciphertext into the region's data as the cipher goes and decrypt it there
   (SM_E_AUTH wipes it). */
static sm_status open_in(const smi_enclave *e, smi_region *r)
{
    uint8_t aad[AAD_LEN];

    make_aad(e, aad);
    return smi_coffer_open_from(e->map, aad, sizeof aad, ct_of(e), smi_region_data(r),
                                e->size, e->map + SMI_AEAD_NONCE);
}

sm_status smi_sealed_seal(uint8_t *data, size_t size, smi_sealed *out)
{
    smi_sealed e;
    /* The id first: it costs no system call, and a failure there leaves nothing to undo. */
    sm_status st = smi_rng_fill(e.id, sizeof e.id);

    if (st == SM_OK)
        st = map_for(size, &e);
    if (st != SM_OK)
        return st;
    st = seal_into(&e, data);
    if (st != SM_OK) {
        (void)put_back(&e);
        return st;
    }
    *out = e;
    return SM_OK;
}

sm_status smi_sealed_open(const smi_sealed *e, smi_region *r)
{
    return open_in(e, r);
}

sm_status smi_sealed_free(smi_sealed *e)
{
    return put_back(e);
}

/*
 * The registry slot comes first: publishing after the seal then cannot fail, so a sealed
 * source never has to be given back.
 */
static sm_status prepare(size_t size, uint32_t *slot)
{
    sm_status st = smi_runtime_ready();

    if (st == SM_OK && (size == 0 || !smi_aead_len_ok(size)))
        st = SM_E_INVAL;
    if (st == SM_OK)
        st = smi_registry_reserve(slot);
    return st;
}

static void publish(uint32_t slot, const smi_enclave *e, sm_enclave *out)
{
    smi_registry_kind(SMI_KIND_ENCLAVE, &kind_ops);
    out->id = smi_registry_publish(slot, SMI_KIND_ENCLAVE, e, sizeof *e);
}

sm_status sm_enclave_new(void *src, size_t size, sm_enclave *out)
{
    smi_enclave e;
    uint32_t slot;
    sm_status st;

    if (src == NULL || out == NULL)
        return SM_E_INVAL;
    st = prepare(size, &slot);
    if (st != SM_OK)
        return st;
    /*
     * src is wiped on success anyway: encrypting in place there saves a copy, and the
     * seal wipes each piece as it copies the ciphertext out, which saves a pass. Every
     * failure leaves it as it was, a purge during the cipher included (the coffer
     * decrypts it back). The cipher writes src, so a read-only one (a FROZEN buffer's
     * data) is refused first rather than faulting (SM-REQ-132).
     */
    st = sm_os_writable(src, size);
    if (st == SM_OK)
        st = smi_sealed_seal(src, size, &e);
    if (st != SM_OK) {
        smi_registry_unreserve(slot);
        return st;
    }
    publish(slot, &e, out);
    return SM_OK;
}

sm_status sm_enclave_random(size_t size, sm_enclave *out)
{
    smi_enclave e;
    smi_region r;
    uint32_t slot;
    sm_status st;

    if (out == NULL)
        return SM_E_INVAL;
    st = prepare(size, &slot);
    if (st != SM_OK)
        return st;
    /* The random plaintext is made, and sealed, inside a guarded region. */
    st = smi_pool_take(size, &r);
    if (st == SM_OK) {
        st = smi_rng_fill(smi_region_data(&r), size);
        if (st == SM_OK)
            st = smi_sealed_seal(smi_region_data(&r), size, &e);
        smi_pool_unmake(&r);
    }
    if (st != SM_OK) {
        smi_registry_unreserve(slot);
        return st;
    }
    publish(slot, &e, out);
    return SM_OK;
}

/* The enclave behind e with its slot locked; the caller releases it. */
static sm_status acquire(sm_enclave e, smi_slot **s, smi_enclave **enc)
{
    sm_status st = smi_registry_acquire(e.id, SMI_KIND_ENCLAVE, s);

    if (st == SM_OK)
        *enc = (smi_enclave *)(void *)(*s)->body;
    return st;
}

sm_status sm_enclave_open(sm_enclave e, sm_buffer *out)
{
    smi_slot *s;
    smi_enclave *enc;
    smi_region r;
    sm_status st;

    if (out == NULL)
        return SM_E_INVAL;
    st = acquire(e, &s, &enc);
    if (st != SM_OK)
        return st;
    /*
     * A pooled region of the right page count when there is one (pool.c): mapping and
     * locking fresh pages, which faults every one in, costs more than the cipher. The
     * buffer's destroy gives it back.
     */
    st = smi_pool_take(enc->size, &r);
    if (st == SM_OK) {
        st = open_in(enc, &r);
        if (st == SM_OK)
            st = smi_buffer_adopt(&r, out);
        else
            smi_pool_unmake(&r);
    }
    smi_registry_release(s);
    return st;
}

sm_status sm_enclave_open_into(sm_enclave e, sm_buffer dst)
{
    smi_slot *s, *bs;
    smi_enclave *enc;
    smi_buffer *buf;
    smi_buf_state next;
    smi_region r;
    sm_status st;

    /* Lock order: the enclave, then the buffer. No other path holds both. */
    st = acquire(e, &s, &enc);
    if (st != SM_OK)
        return st;
    st = smi_buffer_acquire(dst, SMI_BOP_WRITE, &bs, &buf, &next);
    if (st != SM_OK) {
        smi_registry_release(s);
        return st;
    }
    if (buf->r.size != enc->size) {
        st = SM_E_INVAL;
    } else {
        /* Decrypt beside dst, so that a failed authentication leaves dst as it was. */
        st = smi_pool_take(enc->size, &r);
        if (st == SM_OK) {
            st = open_in(enc, &r);
            if (st == SM_OK)
                memcpy(smi_region_data(&buf->r), smi_region_data(&r), enc->size);
            smi_pool_unmake(&r);
        }
    }
    smi_registry_release(bs);
    smi_registry_release(s);
    return st;
}

size_t sm_enclave_size(sm_enclave e)
{
    smi_slot *s;
    smi_enclave *enc;
    size_t n;

    if (acquire(e, &s, &enc) != SM_OK)
        return 0;
    n = enc->size;
    smi_registry_release(s);
    return n;
}

sm_status sm_enclave_destroy(sm_enclave e)
{
    smi_slot *s;
    smi_enclave *enc;
    sm_status st = acquire(e, &s, &enc);

    if (st != SM_OK)
        return st;
    st = put_back(enc);
    if (st != SM_OK) {
        smi_registry_release(s);
        return st;
    }
    smi_registry_remove(s);
    return SM_OK;
}

sm_status sm_buffer_seal(sm_buffer b, sm_enclave *out)
{
    smi_slot *bs;
    smi_buffer *buf;
    smi_buf_state next;
    smi_enclave e;
    uint32_t slot;
    sm_prot was;
    sm_status st;

    if (out == NULL)
        return SM_E_INVAL;
    st = smi_buffer_acquire(b, SMI_BOP_SEAL, &bs, &buf, &next);
    if (st != SM_OK)
        return st;
    was = buf->r.prot;
    st = prepare(buf->r.size, &slot);
    if (st != SM_OK)
        goto out;
    /* Seal in place inside the guarded region: the plaintext never leaves it. */
    st = smi_region_protect(&buf->r, SM_PROT_READWRITE);
    if (st == SM_OK) {
        smi_region_check(&buf->r);
        st = smi_sealed_seal(smi_region_data(&buf->r), buf->r.size, &e);
        if (st == SM_OK) {
            st = smi_region_free(&buf->r);
            if (st != SM_OK) {
                /* Still mapped: decrypt back, so that the buffer is as it was. */
                (void)open_in(&e, &buf->r);
                (void)put_back(&e);
            }
        }
    }
    if (st != SM_OK) {
        (void)smi_region_protect(&buf->r, was);
        smi_registry_unreserve(slot);
        goto out;
    }
    publish(slot, &e, out);
    smi_registry_remove(bs);
    return SM_OK;
out:
    smi_registry_release(bs);
    return st;
}

/* ---- the registry's walks (smi_kind_ops) ---- */

bool smi_enclave_purge(void *body)
{
    unmap((smi_enclave *)body);
    return true;
}

void smi_enclave_wipe(void *body)
{
    /* Ciphertext only: nothing secret to wipe while its holder is busy with it. */
    (void)body;
}

sm_status smi_enclave_audit(void *body)
{
    /* No canary: the tag is what protects ciphertext, and it is checked at each open. */
    (void)body;
    return SM_OK;
}

void smi_enclave_forget(void *body)
{
    unmap((smi_enclave *)body);
}

#if defined(SM_FAULT_INJECTION)
sm_status smi_enclave_test_flip(sm_enclave e, int where, size_t bit)
{
    smi_slot *s;
    smi_enclave *enc;
    size_t len;
    uint8_t *p;
    sm_status st = acquire(e, &s, &enc);

    /* enc is only set once the handle is known to be live. */
    if (st != SM_OK)
        return st;
    len = where == 0 ? enc->size : where == 1 ? SMI_AEAD_TAG : SMI_AEAD_NONCE;
    p = where == 0 ? ct_of(enc) : where == 1 ? enc->map + SMI_AEAD_NONCE : enc->map;
    if (bit / 8 < len)
        p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    else
        st = SM_E_INVAL;
    smi_registry_release(s);
    return st;
}

sm_status smi_enclave_test_resize(sm_enclave e, size_t size)
{
    smi_slot *s;
    smi_enclave *enc;
    sm_status st = acquire(e, &s, &enc);

    if (st != SM_OK)
        return st;
    /* Within the mapping: what lies past the old end is the zeroed tail of its page. */
    if (size == 0 || size > enc->map_len - HEAD)
        st = SM_E_INVAL;
    else
        enc->size = size;
    smi_registry_release(s);
    return st;
}

sm_status smi_sealed_test_swap(smi_sealed *a, smi_sealed *b)
{
    if (a->map_len != b->map_len)
        return SM_E_INVAL;
    for (size_t i = 0; i < a->map_len; i++) {
        uint8_t t = a->map[i];

        a->map[i] = b->map[i];
        b->map[i] = t;
    }
    return SM_OK;
}

sm_status smi_enclave_test_swap(sm_enclave a, sm_enclave b)
{
    smi_slot *sa, *sb;
    smi_enclave *ea, *eb;
    sm_status st;

    if (a.id == b.id)
        return SM_E_INVAL;
    st = acquire(a, &sa, &ea);
    if (st != SM_OK)
        return st;
    st = acquire(b, &sb, &eb);
    if (st == SM_OK) {
        st = smi_sealed_test_swap(ea, eb);
        smi_registry_release(sb);
    }
    smi_registry_release(sa);
    return st;
}
#endif
