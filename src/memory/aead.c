/* SPDX-License-Identifier: ISC */
/*
 * The AEAD under enclaves and streams (spec/enclave-key.md): AES-256-GCM when the CPU
 * has both AES-NI and PCLMULQDQ, ChaCha20-Poly1305 otherwise, BearSSL's constant-time
 * code either way. Table-based AES (aes_big, aes_small) leaks its key through the
 * cache and is never linked in here. Bitsliced aes_ct64 is constant time but runs at
 * about 40 MB/s against 500 for ChaCha20 (spec/toolchain.md 7), so without AES-NI
 * the choice is ChaCha20 rather than a slow AES.
 *
 * The choice is made once per process, at first use, because a key's ciphertexts
 * must all be opened by the same algorithm.
 */
#include <bearssl.h>
#include <string.h>

#include "inner.h"

typedef struct impl {
    const char               *name;
    const br_block_ctr_class *aes;   /* NULL: ChaCha20-Poly1305 */
    br_ghash                  ghash;
    br_chacha20_run           chacha;
    br_poly1305_run           poly;
} impl;

struct smi_aead_ws {
    union {
        struct {
            br_aes_x86ni_ctr_keys aes; /* the AES-256 key schedule */
            br_gcm_context        gcm; /* holds H = AES_K(0), the GHASH key */
        } g;
        uint8_t tag[SMI_AEAD_TAG];     /* Poly1305: the tag recomputed on open */
    } u;
};

/* A multiple of 64, so that a region of this size starts 64-byte aligned. */
#define WS_SIZE ((sizeof(struct smi_aead_ws) + 63u) & ~(size_t)63u)

static sm_os_once_flag once = SM_OS_ONCE_INIT;
static impl best;

static void choose(void)
{
    const br_block_ctr_class *aes = br_aes_x86ni_ctr_get_vtable();
    br_ghash gh = br_ghash_pclmul_get();

    best.chacha = br_chacha20_sse2_get();
    if (best.chacha == NULL)
        best.chacha = br_chacha20_ct_run;
    best.poly = br_poly1305_ctmulq_get();
    if (best.poly == NULL)
        best.poly = br_poly1305_ctmul_run;
    /* GHASH without PCLMULQDQ would be ghash_ctmul64: constant time, but slow. */
    if (aes != NULL && gh != NULL && aes->context_size <= sizeof(br_aes_x86ni_ctr_keys)) {
        best.aes = aes;
        best.ghash = gh;
        best.name = "AES-256-GCM";
    } else {
        best.name = "ChaCha20-Poly1305";
    }
    /* sm_os_call_once publishes best; Helgrind and DRD do not know that. */
    SMI_VG_PUBLISH(&once);
}

#if defined(SM_FAULT_INJECTION)
static _Atomic int forced;

SMI_VG_AT_START(vg_aead)
{
    SMI_VG_ATOMIC(&forced, sizeof forced);
}

void smi_aead_test_force(smi_aead_choice c)
{
    atomic_store(&forced, (int)c);
}
#endif

static impl current(void)
{
    impl im;

    sm_os_call_once(&once, choose);
    SMI_VG_RECEIVE(&once);
    im = best;
#if defined(SM_FAULT_INJECTION)
    switch ((smi_aead_choice)atomic_load(&forced)) {
    case SMI_AEAD_CHACHA_PORTABLE:
        im.chacha = br_chacha20_ct_run;
        im.poly = br_poly1305_ctmul_run;
        /* fall through */
    case SMI_AEAD_CHACHA:
        im.aes = NULL;
        im.name = "ChaCha20-Poly1305";
        break;
    case SMI_AEAD_AUTO:
        break;
    }
#endif
    return im;
}

size_t smi_aead_ws_size(void)
{
    return WS_SIZE;
}

const char *smi_aead_name(void)
{
    return current().name;
}

/* GCM up to the data: key schedule, H, nonce and aad, all inside ws. */
static void gcm_start(smi_aead_ws *ws, const impl *im, const uint8_t *key,
                      const uint8_t *nonce, const void *aad, size_t aad_len)
{
    im->aes->init(&ws->u.g.aes.vtable, key, SMI_AEAD_KEY);
    br_gcm_init(&ws->u.g.gcm, &ws->u.g.aes.vtable, im->ghash);
    br_gcm_reset(&ws->u.g.gcm, nonce, SMI_AEAD_NONCE);
    if (aad_len > 0)
        br_gcm_aad_inject(&ws->u.g.gcm, aad, aad_len);
    br_gcm_flip(&ws->u.g.gcm);
}

/*
 * BearSSL's Poly1305 entry points accept empty inputs but are not written against
 * NULL pointers: give them a valid address when a length is 0.
 */
static uint8_t empty[1];

/*
 * GCM over len bytes at data in CHUNK-byte steps, with the copy into data (from) or out
 * of it (to) next to each step, so that the cipher finds the bytes in the L1 cache
 * where a copy of the whole would have pushed them out to L2 (issue 14 §4: the copy cost
 * as much as a quarter of the cipher). BearSSL's GCM takes its data in any pieces.
 * A piece copied out to to is wiped in data at once, while it is still in the cache:
 * a separate wipe of the whole afterwards read it all back from L2 (spec/enclaves-streams.md).
 */
#define CHUNK 16384u

static void gcm_run(br_gcm_context *gcm, int encrypt, const uint8_t *from, uint8_t *data,
                    size_t len, uint8_t *to)
{
    for (size_t off = 0; off < len; off += CHUNK) {
        size_t n = len - off < CHUNK ? len - off : CHUNK;

        if (from != NULL)
            memcpy(data + off, from + off, n);
        br_gcm_run(gcm, encrypt, data + off, n);
        if (to != NULL) {
            memcpy(to + off, data + off, n);
            smi_wipe(data + off, n);
        }
    }
}

void smi_aead_seal(smi_aead_ws *ws, const uint8_t key[SMI_AEAD_KEY],
                   const uint8_t nonce[SMI_AEAD_NONCE], const void *aad, size_t aad_len,
                   uint8_t *data, size_t len, uint8_t *to, uint8_t tag[SMI_AEAD_TAG])
{
    impl im = current();

    if (aad_len == 0)
        aad = empty;
    if (len == 0)
        data = empty;
    if (im.aes != NULL) {
        gcm_start(ws, &im, key, nonce, aad, aad_len);
        gcm_run(&ws->u.g.gcm, 1, NULL, data, len, to);
        br_gcm_get_tag(&ws->u.g.gcm, tag);
    } else {
        /* BearSSL's ChaCha20-Poly1305 is one call over the whole: the copy follows it. */
        im.poly(key, nonce, data, len, aad, aad_len, tag, im.chacha, 1);
        if (to != NULL && len > 0) {
            memcpy(to, data, len);
            smi_wipe(data, len);
        }
    }
    smi_wipe(ws, WS_SIZE);
    smi_burn_stack();
}

bool smi_aead_open(smi_aead_ws *ws, const uint8_t key[SMI_AEAD_KEY],
                   const uint8_t nonce[SMI_AEAD_NONCE], const void *aad, size_t aad_len,
                   const uint8_t *from, uint8_t *data, size_t len, const uint8_t tag[SMI_AEAD_TAG])
{
    impl im = current();
    uint8_t *out = len == 0 ? empty : data;
    int ok;

    if (aad_len == 0)
        aad = empty;
    if (im.aes != NULL) {
        gcm_start(ws, &im, key, nonce, aad, aad_len);
        gcm_run(&ws->u.g.gcm, 0, from, out, len, NULL);
        ok = (int)br_gcm_check_tag(&ws->u.g.gcm, tag);
    } else {
        if (from != NULL && len > 0)
            memcpy(out, from, len);
        /* BearSSL only computes the tag here: the comparison is ours, in constant time. */
        im.poly(key, nonce, out, len, aad, aad_len, ws->u.tag, im.chacha, 0);
        ok = smi_equal(ws->u.tag, tag, SMI_AEAD_TAG);
    }
    /*
     * Whether the tag matched is public: the caller learns it from the status anyway.
     * Only this one bit is declared public to the constant-time check, not the tag.
     */
    SMI_CT_PUBLIC(&ok, sizeof ok);
    /* Whether it matched is public; what the forged plaintext was is not. */
    if (!ok && len > 0)
        smi_wipe(data, len);
    smi_wipe(ws, WS_SIZE);
    smi_burn_stack();
    return ok == 1;
}
