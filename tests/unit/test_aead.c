/* SPDX-License-Identifier: ISC */
/*
 * The AEAD layer: both algorithms against libsodium (an independent implementation),
 * round trips, and tampering with every bit of ciphertext, tag, nonce and aad. Each
 * test is its own process, so forcing an algorithm affects that test only.
 */
#include <criterion/criterion.h>
#include <bearssl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static smi_region ws_region;

static smi_aead_ws *ws(void)
{
    return (smi_aead_ws *)(void *)smi_region_data(&ws_region);
}

static void setup(void)
{
    cr_assert_eq(sm_init(NULL), SM_OK);
    cr_assert_geq(sodium_init(), 0);
    cr_assert_eq(smi_region_alloc(smi_aead_ws_size(), NULL, &ws_region), SM_OK);
    cr_assert_eq((uintptr_t)ws() % 64, 0, "the workspace is aligned");
}

static void teardown(void)
{
    cr_assert_eq(smi_region_free(&ws_region), SM_OK);
}

static bool aes_gcm_here(void)
{
    return br_aes_x86ni_ctr_get_vtable() != NULL && br_ghash_pclmul_get() != NULL;
}

static void assert_ws_wiped(void)
{
    const uint8_t *p = (const uint8_t *)ws();

    for (size_t i = 0; i < smi_aead_ws_size(); i++)
        cr_assert_eq(p[i], 0, "workspace byte %zu left at %#x", i, p[i]);
}

static void fill(uint8_t *p, size_t n)
{
    randombytes_buf(p, n);
}

/* libsodium's ciphertext || tag for the algorithm in use. */
static void reference(const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
                      size_t aad_len, const uint8_t *msg, size_t len, uint8_t *out)
{
    unsigned long long clen = 0;
    int rc;

    if (strcmp(smi_aead_name(), "AES-256-GCM") == 0)
        rc = crypto_aead_aes256gcm_encrypt(out, &clen, msg, len, aad, aad_len, NULL, nonce,
                                           key);
    else
        rc = crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, msg, len, aad, aad_len,
                                                       NULL, nonce, key);
    cr_assert_eq(rc, 0);
    cr_assert_eq(clen, len + SMI_AEAD_TAG);
}

static const size_t lengths[] = { 0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 1000, 4099, 65536 + 7 };

static void known_answers(void)
{
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        size_t len = lengths[i], aad_len = (i * 7) % 40;
        uint8_t key[32], nonce[12], aad[40], tag[16];
        uint8_t *msg = malloc(len + 1), *data = malloc(len + 1), *want = malloc(len + 16);

        fill(key, sizeof key);
        fill(nonce, sizeof nonce);
        fill(aad, sizeof aad);
        fill(msg, len);
        memcpy(data, msg, len);
        reference(key, nonce, aad, aad_len, msg, len, want);
        smi_aead_seal(ws(), key, nonce, aad_len ? aad : NULL, aad_len, len ? data : NULL, len,
                      NULL, tag);
        assert_ws_wiped();
        cr_assert(len == 0 || memcmp(data, want, len) == 0, "%s ciphertext, %zu bytes",
                  smi_aead_name(), len);
        cr_assert(memcmp(tag, want + len, 16) == 0, "%s tag, %zu bytes", smi_aead_name(), len);
        cr_assert(smi_aead_open(ws(), key, nonce, aad_len ? aad : NULL, aad_len, NULL,
                                len ? data : NULL, len, tag), "%s open, %zu bytes",
                  smi_aead_name(), len);
        assert_ws_wiped();
        cr_assert(len == 0 || memcmp(data, msg, len) == 0, "round trip, %zu bytes", len);
        free(msg);
        free(data);
        free(want);
    }
}

Test(aead, picks_aes_gcm_only_with_aesni_and_pclmul, .init = setup, .fini = teardown)
{
    cr_assert_str_eq(smi_aead_name(), aes_gcm_here() ? "AES-256-GCM" : "ChaCha20-Poly1305");
    smi_aead_test_force(SMI_AEAD_CHACHA);
    cr_assert_str_eq(smi_aead_name(), "ChaCha20-Poly1305");
}

Test(aead, aes_256_gcm_matches_libsodium, .init = setup, .fini = teardown)
{
    if (!aes_gcm_here() || !crypto_aead_aes256gcm_is_available())
        cr_skip_test("no AES-NI and PCLMULQDQ on this CPU");
    cr_assert_str_eq(smi_aead_name(), "AES-256-GCM");
    known_answers();
}

Test(aead, chacha20_poly1305_matches_libsodium, .init = setup, .fini = teardown)
{
    smi_aead_test_force(SMI_AEAD_CHACHA);
    known_answers();
}

Test(aead, portable_chacha20_poly1305_matches_libsodium, .init = setup, .fini = teardown)
{
    smi_aead_test_force(SMI_AEAD_CHACHA_PORTABLE);
    known_answers();
}

/* RFC 8439 section 2.8.2, as a fixed point that does not depend on libsodium. */
Test(aead, chacha20_poly1305_rfc8439_vector, .init = setup, .fini = teardown)
{
    static const char text[] = "Ladies and Gentlemen of the class of '99: If I could offer "
                               "you only one tip for the future, sunscreen would be it.";
    static const uint8_t aad[12] = { 0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1,
                                     0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7 };
    static const uint8_t nonce[12] = { 0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43,
                                       0x44, 0x45, 0x46, 0x47 };
    static const uint8_t want_tag[16] = { 0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a,
                                          0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91 };
    static const uint8_t want_head[8] = { 0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb };
    uint8_t key[32], data[sizeof text - 1], tag[16];

    for (unsigned i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x80 + i);
    memcpy(data, text, sizeof data);
    for (int c = SMI_AEAD_CHACHA; c <= SMI_AEAD_CHACHA_PORTABLE; c++) {
        smi_aead_test_force((smi_aead_choice)c);
        memcpy(data, text, sizeof data);
        smi_aead_seal(ws(), key, nonce, aad, sizeof aad, data, sizeof data, NULL, tag);
        cr_assert(memcmp(data, want_head, sizeof want_head) == 0);
        cr_assert(memcmp(tag, want_tag, sizeof tag) == 0);
    }
}

/* Flip each bit of one input in turn: open must fail and leave data all zero. */
typedef enum { CIPHERTEXT, TAG, NONCE, AAD, KEY } part;

static void tamper_all(part which)
{
    enum { LEN = 37, AAD_LEN = 13 };
    uint8_t key[32], nonce[12], aad[AAD_LEN], tag[16], ct[LEN], msg[LEN];
    size_t sizes[] = { LEN, 16, 12, AAD_LEN, 32 };

    fill(key, sizeof key);
    fill(nonce, sizeof nonce);
    fill(aad, sizeof aad);
    fill(msg, sizeof msg);
    memcpy(ct, msg, LEN);
    smi_aead_seal(ws(), key, nonce, aad, AAD_LEN, ct, LEN, NULL, tag);
    for (size_t bit = 0; bit < sizes[which] * 8; bit++) {
        uint8_t k[32], n[12], a[AAD_LEN], t[16], d[LEN];
        uint8_t *target[] = { d, t, n, a, k };

        memcpy(k, key, 32);
        memcpy(n, nonce, 12);
        memcpy(a, aad, AAD_LEN);
        memcpy(t, tag, 16);
        memcpy(d, ct, LEN);
        target[which][bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_assert_not(smi_aead_open(ws(), k, n, a, AAD_LEN, NULL, d, LEN, t),
                      "%s: flipping bit %zu of part %d went unnoticed", smi_aead_name(), bit,
                      (int)which);
        assert_ws_wiped();
        for (size_t i = 0; i < LEN; i++)
            cr_assert_eq(d[i], 0, "data is wiped after a failed open");
    }
    /* And the untouched inputs still open. */
    cr_assert(smi_aead_open(ws(), key, nonce, aad, AAD_LEN, NULL, ct, LEN, tag));
    cr_assert(memcmp(ct, msg, LEN) == 0);
}

static void tamper_everything(void)
{
    for (part p = CIPHERTEXT; p <= KEY; p++)
        tamper_all(p);
}

Test(aead, aes_gcm_detects_every_bit_flip, .init = setup, .fini = teardown)
{
    if (!aes_gcm_here())
        cr_skip_test("no AES-NI and PCLMULQDQ on this CPU");
    tamper_everything();
}

Test(aead, chacha20_poly1305_detects_every_bit_flip, .init = setup, .fini = teardown)
{
    smi_aead_test_force(SMI_AEAD_CHACHA);
    tamper_everything();
}

Test(aead, portable_chacha20_poly1305_detects_every_bit_flip, .init = setup, .fini = teardown)
{
    smi_aead_test_force(SMI_AEAD_CHACHA_PORTABLE);
    tamper_everything();
}

/* A tag for the empty message still authenticates the aad, and the reverse. */
Test(aead, empty_message_and_empty_aad, .init = setup, .fini = teardown)
{
    for (int c = SMI_AEAD_AUTO; c <= SMI_AEAD_CHACHA; c++) {
        uint8_t key[32], nonce[12], tag[16], aad[5] = "hello", one[1] = { 0x42 };

        smi_aead_test_force((smi_aead_choice)c);
        fill(key, sizeof key);
        fill(nonce, sizeof nonce);
        smi_aead_seal(ws(), key, nonce, aad, sizeof aad, NULL, 0, NULL, tag);
        cr_assert(smi_aead_open(ws(), key, nonce, aad, sizeof aad, NULL, NULL, 0, tag));
        aad[0] ^= 1;
        cr_assert_not(smi_aead_open(ws(), key, nonce, aad, sizeof aad, NULL, NULL, 0, tag));
        smi_aead_seal(ws(), key, nonce, NULL, 0, one, 1, NULL, tag);
        cr_assert(smi_aead_open(ws(), key, nonce, NULL, 0, NULL, one, 1, tag));
        cr_assert_eq(one[0], 0x42);
        cr_assert_not(smi_aead_open(ws(), key, nonce, aad, 1, NULL, one, 1, tag), "aad added");
        cr_assert_eq(one[0], 0, "wiped");
    }
}

/* The two algorithms must not be interchangeable: a GCM ciphertext never opens as ChaCha. */
Test(aead, algorithms_do_not_cross_open, .init = setup, .fini = teardown)
{
    uint8_t key[32], nonce[12], tag[16], data[64];

    if (!aes_gcm_here())
        cr_skip_test("no AES-NI and PCLMULQDQ on this CPU");
    fill(key, sizeof key);
    fill(nonce, sizeof nonce);
    fill(data, sizeof data);
    smi_aead_seal(ws(), key, nonce, NULL, 0, data, sizeof data, NULL, tag);
    smi_aead_test_force(SMI_AEAD_CHACHA);
    cr_assert_not(smi_aead_open(ws(), key, nonce, NULL, 0, NULL, data, sizeof data, tag));
}

/*
 * Seal with to and open with from (an enclave's copy beside the cipher, in 16 KiB pieces
 * for GCM) give what the in-place calls give, at lengths around and across the pieces'
 * edges, for every algorithm: the same ciphertext and tag at to, data wiped behind it
 * (every piece, the last one included), and open reading only from while it decrypts
 * into data.
 */
Test(aead, copying_calls_match_the_in_place_ones_across_pieces, .init = setup, .fini = teardown)
{
    static const size_t lens[] = { 1, 16383, 16384, 16385, 3 * 16384 + 7 };
    const size_t max = 3 * 16384 + 7;
    uint8_t *a = malloc(max), *b = malloc(max), *to = malloc(max), *back = malloc(max);
    uint8_t key[32], nonce[12], tag_a[16], tag_b[16];

    cr_assert(a != NULL && b != NULL && to != NULL && back != NULL);
    memset(key, 0x42, sizeof key);
    memset(nonce, 0x24, sizeof nonce);
    for (int c = SMI_AEAD_AUTO; c <= SMI_AEAD_CHACHA_PORTABLE; c++) {
        smi_aead_test_force((smi_aead_choice)c);
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            size_t n = lens[k];

            for (size_t i = 0; i < n; i++)
                a[i] = b[i] = (uint8_t)(i * 7 + c);
            memset(to, 0xee, n);
            smi_aead_seal(ws(), key, nonce, "ad", 2, a, n, NULL, tag_a);
            smi_aead_seal(ws(), key, nonce, "ad", 2, b, n, to, tag_b);
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(b[i], 0, "choice %d, byte %zu of %zu: data wiped", c, i, n);
            cr_assert_eq(memcmp(a, to, n), 0, "choice %d, %zu bytes: the copy", c, n);
            cr_assert_eq(memcmp(tag_a, tag_b, 16), 0, "choice %d, %zu bytes: tag", c, n);
            memset(back, 0xee, n);
            cr_assert(smi_aead_open(ws(), key, nonce, "ad", 2, to, back, n, tag_b));
            cr_assert_eq(memcmp(to, a, n), 0, "from is only read");
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(back[i], (uint8_t)(i * 7 + c), "choice %d, byte %zu of %zu", c, i,
                             n);
            assert_ws_wiped();
            to[n / 2] ^= 1;
            cr_assert_not(smi_aead_open(ws(), key, nonce, "ad", 2, to, back, n, tag_b));
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(back[i], 0, "a forgery leaves data wiped");
        }
    }
    free(a);
    free(b);
    free(to);
    free(back);
}
