/* SPDX-License-Identifier: ISC */
/*
 * The constant-time check (SM-REQ-125, `make ct`): the ctgrind method. Secrets are marked
 * undefined for Memcheck (VALGRIND_MAKE_MEM_UNDEFINED), and the code under test runs on
 * them under Valgrind: Memcheck then reports every conditional branch and every memory
 * address that depends on a secret ("Conditional jump or move depends on uninitialised
 * value", "Use of uninitialised value of size 8"). A clean run means no such dependency
 * on these inputs, for this build (the ct flavour: -O2, as shipped).
 *
 *     valgrind --error-exitcode=99 ct [test ...]     the checks; no report allowed
 *     valgrind --error-exitcode=99 ct control        must be reported (exit 99)
 *
 * What is public by design although derived from secrets is declared so, once, where it
 * is computed; sanitizers/README.md ("Constant time") lists each exception and its reason:
 *  - the result of a comparison (sm_equal, sm_buffer_equal, the canary check), which the
 *    caller branches on: declared public here, after the call returns;
 *  - whether an AEAD tag matched (smi_aead_open): declared public in src/memory/aead.c;
 *  - sizes, offsets, nonces and the nonce counter, which are never marked secret.
 */
#include <stdlib.h>
#include <string.h>
#include <valgrind/memcheck.h>

#include "../common/harness.h"
#include "inner.h"

#define SECRET(p, n) ((void)VALGRIND_MAKE_MEM_UNDEFINED((p), (n)))
#define PUBLIC(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))

static void need_valgrind(void)
{
    if (!hx_on_valgrind())
        hx_skip("run it under valgrind (make ct): natively nothing is checked");
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + 7 * i);
}

/* ---- comparisons -------------------------------------------------------------------- */

static void t_sm_equal(void)
{
    static const size_t sizes[] = { 1, 15, 16, 31, 64, 1000, 4096 };
    static uint8_t a[4096], b[4096];

    need_valgrind();
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];

        for (int differ = 0; differ < 3; differ++) {
            bool eq;

            fill(a, n, 1);
            fill(b, n, 1);
            if (differ == 1)
                b[0] ^= 1; /* the first byte: an early exit would stop here */
            if (differ == 2)
                b[n - 1] ^= 0x80;
            SECRET(a, n);
            SECRET(b, n);
            eq = sm_equal(a, b, n);
            /* Exception: the verdict itself is the caller's to branch on. */
            PUBLIC(&eq, sizeof eq);
            HX_CHECK(eq == (differ == 0), "sm_equal(%zu bytes, differ %d) = %d", n, differ, eq);
        }
    }
}

static void t_sm_buffer_equal(void)
{
    static uint8_t want[5000];

    need_valgrind();
    HX_EXPECT(sm_init(NULL), SM_OK);
    for (size_t n = 1; n <= 5000; n = n * 3 + 1) {
        for (int differ = 0; differ < 3; differ++) {
            sm_buffer b;
            bool eq = false;

            HX_EXPECT(sm_buffer_new(n, &b), SM_OK);
            fill(sm_buffer_data(b), n, 9);
            HX_EXPECT(sm_buffer_freeze(b), SM_OK);
            fill(want, n, 9);
            if (differ == 1)
                want[0] ^= 1;
            if (differ == 2)
                want[n - 1] ^= 1;
            SECRET(sm_buffer_data(b), n);
            SECRET(want, n);
            HX_EXPECT(sm_buffer_equal(b, want, n, &eq), SM_OK);
            PUBLIC(&eq, sizeof eq);
            HX_CHECK(eq == (differ == 0), "sm_buffer_equal(%zu, differ %d) = %d", n, differ,
                     eq);
            /* A different length is not equal; still no branch on the bytes. */
            HX_EXPECT(sm_buffer_equal(b, want, n > 1 ? n - 1 : 0, &eq), SM_OK);
            PUBLIC(&eq, sizeof eq);
            HX_CHECK(!eq, "shorter input compared equal");
            /* The canary is checked at destroy: it must not be reported either. */
            PUBLIC(sm_buffer_data(b), n);
            HX_EXPECT(sm_buffer_destroy(b), SM_OK);
        }
    }
}

static void t_canary_check(void)
{
    uint8_t seed[SMI_CANARY_SEED], canary[4096];

    need_valgrind();
    for (size_t len = 32; len <= 4096; len *= 2) {
        for (int damaged = 0; damaged < 2; damaged++) {
            int ok;

            fill(seed, sizeof seed, 3);
            smi_canary_fill(canary, len, seed);
            if (damaged)
                canary[len / 2] ^= 4;
            SECRET(seed, sizeof seed);
            SECRET(canary, len);
            ok = smi_canary_ok(canary, len, seed);
            /* Exception: smi_region_check panics on this verdict, which is public. */
            PUBLIC(&ok, sizeof ok);
            HX_CHECK(ok == !damaged, "canary of %zu, damaged %d: %d", len, damaged, ok);
        }
    }
}

/* ---- the AEAD, with the key and the plaintext secret ------------------------------- */

static void aead_round_trip(smi_aead_choice c)
{
    static uint8_t data[3000], orig[3000];
    uint8_t key[SMI_AEAD_KEY], nonce[SMI_AEAD_NONCE] = { 1, 2, 3 }, tag[SMI_AEAD_TAG],
            aad[13] = "public header";
    smi_region ws;

    need_valgrind();
    HX_EXPECT(sm_init(NULL), SM_OK);
    smi_aead_test_force(c);
    HX_EXPECT(smi_region_alloc(smi_aead_ws_size(), NULL, &ws), SM_OK);
    for (size_t len = 0; len <= sizeof data; len = len * 2 + 17) {
        bool ok;

        fill(key, sizeof key, 0x33);
        fill(data, len, 0x44);
        memcpy(orig, data, len);
        SECRET(key, sizeof key);
        SECRET(data, len);
        smi_aead_seal((smi_aead_ws *)(void *)smi_region_data(&ws), key, nonce, aad,
                      sizeof aad, data, len, NULL, tag);
        /* The ciphertext and tag go to ordinary memory: public from here on. */
        PUBLIC(data, len);
        PUBLIC(tag, sizeof tag);
        SECRET(key, sizeof key);
        ok = smi_aead_open((smi_aead_ws *)(void *)smi_region_data(&ws), key, nonce, aad,
                           sizeof aad, NULL, data, len, tag);
        HX_CHECK(ok, "%s: %zu bytes did not open", smi_aead_name(), len);
        PUBLIC(data, len);
        HX_CHECK(memcmp(data, orig, len) == 0, "%s: %zu bytes came back wrong",
                 smi_aead_name(), len);
        /* A forged tag: rejected, and the verdict is all that may depend on it. */
        if (len > 0) {
            smi_aead_seal((smi_aead_ws *)(void *)smi_region_data(&ws), key, nonce, aad,
                          sizeof aad, data, len, NULL, tag);
            PUBLIC(data, len);
            tag[0] ^= 1;
            ok = smi_aead_open((smi_aead_ws *)(void *)smi_region_data(&ws), key, nonce, aad,
                               sizeof aad, NULL, data, len, tag);
            HX_CHECK(!ok, "%s: a forged tag opened", smi_aead_name());
        }
    }
    PUBLIC(smi_region_data(&ws), smi_aead_ws_size());
    HX_EXPECT(smi_region_free(&ws), SM_OK);
}

static void t_aead_aes_gcm(void)
{
    aead_round_trip(SMI_AEAD_AUTO);
    if (strcmp(smi_aead_name(), "AES-256-GCM") != 0)
        hx_skip("no AES-NI and PCLMUL here: AUTO is ChaCha20-Poly1305");
}

static void t_aead_chacha(void)
{
    aead_round_trip(SMI_AEAD_CHACHA);
}

static void t_aead_chacha_portable(void)
{
    aead_round_trip(SMI_AEAD_CHACHA_PORTABLE);
}

/*
 * Enclave seal and open through the public API, with the plaintext secret and the enclave
 * key's two shares secret too (so the key rebuilt from them, its schedule and the cipher
 * all run on undefined values).
 */
static void t_enclave_seal_and_open(void)
{
    static uint8_t src[2000], want[2000];

    need_valgrind();
    HX_EXPECT(sm_init(NULL), SM_OK);
    for (size_t n = 1; n <= sizeof src; n = n * 4 + 3) {
        smi_coffer_probe pr;
        sm_enclave e;
        sm_buffer o, dst;
        bool eq = false;

        fill(src, n, 0x5a);
        memcpy(want, src, n);
        SECRET(src, n);
        if (n == 1) {
            /* The first seal makes the key: mark its shares secret from then on. */
            HX_EXPECT(sm_enclave_new(src, n, &e), SM_OK);
        } else {
            smi_coffer_test_probe(&pr);
            HX_CHECK(pr.left != NULL, "no enclave key");
            SECRET(smi_region_data(pr.left), 32);
            SECRET(smi_region_data(pr.right), 32); /* the share; not the nonce counter */
            HX_EXPECT(sm_enclave_new(src, n, &e), SM_OK);
        }
        SECRET(want, n);
        HX_EXPECT(sm_enclave_open(e, &o), SM_OK);
        HX_EXPECT(sm_buffer_equal(o, want, n, &eq), SM_OK);
        PUBLIC(&eq, sizeof eq);
        HX_CHECK(eq, "enclave of %zu bytes opened to other bytes", n);
        HX_EXPECT(sm_buffer_new(n, &dst), SM_OK);
        HX_EXPECT(sm_enclave_open_into(e, dst), SM_OK);
        HX_EXPECT(sm_buffer_equal(dst, want, n, &eq), SM_OK);
        PUBLIC(&eq, sizeof eq);
        HX_CHECK(eq, "open_into of %zu bytes", n);
        HX_EXPECT(sm_buffer_destroy(o), SM_OK);
        HX_EXPECT(sm_buffer_destroy(dst), SM_OK);
        HX_EXPECT(sm_enclave_destroy(e), SM_OK);
    }
}

/*
 * Secrets of the library's factories through the public API, with the source secret:
 * the copy in, the encrypted factory's seal and its open into a window at each access
 * (with the enclave key's shares secret too), a reader's copy out, and the wipe at
 * close. The callback compares the window with sm_equal and declares only the verdict
 * public, as a caller would.
 */
typedef struct ct_want {
    const uint8_t *want;
    size_t         n;
    bool           eq;
} ct_want;

static sm_status ct_equal_fn(const uint8_t *b, size_t n, void *ctx)
{
    ct_want *w = ctx;

    w->eq = n == w->n && sm_equal(b, w->want, n);
    PUBLIC(&w->eq, sizeof w->eq);
    return SM_OK;
}

static void t_secret_factories(void)
{
    static uint8_t src[2000], want[2000], out[2000];
    const sm_factory *const fs[] = { sm_factory_protected(), sm_factory_guarded(),
                                     sm_factory_encrypted() };
    sm_enclave warm;
    uint8_t one = 1;
    smi_coffer_probe pr;

    need_valgrind();
    HX_EXPECT(sm_init(NULL), SM_OK);
    /* The enclave key exists from here on: mark its shares secret, as above. */
    HX_EXPECT(sm_enclave_new(&one, 1, &warm), SM_OK);
    smi_coffer_test_probe(&pr);
    SECRET(smi_region_data(pr.left), 32);
    SECRET(smi_region_data(pr.right), 32);
    for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) {
        for (size_t n = 1; n <= sizeof src; n = n * 4 + 3) {
            ct_want w = { want, n, false };
            sm_secret s;
            size_t got;
            bool eq;

            fill(src, n, (uint8_t)(0x21 + k));
            memcpy(want, src, n);
            SECRET(src, n);
            SECRET(want, n);
            HX_EXPECT(sm_secret_new(fs[k], src, n, &s), SM_OK);
            HX_EXPECT(sm_secret_with_bytes(s, ct_equal_fn, &w), SM_OK);
            HX_CHECK(w.eq, "factory %zu, %zu bytes: other bytes in the window", k, n);
            HX_EXPECT(sm_secret_read_at(s, 0, out, n, &got), SM_OK);
            eq = got == n && sm_equal(out, want, n);
            PUBLIC(&eq, sizeof eq);
            HX_CHECK(eq, "factory %zu, %zu bytes: the reader copied other bytes", k, n);
            HX_EXPECT(sm_secret_close(s), SM_OK);
        }
    }
    HX_EXPECT(sm_enclave_destroy(warm), SM_OK);
}

/*
 * The negative control, run on its own (make ct checks that Memcheck reports it): a
 * compare that exits early, on secret bytes. If this is not reported, the method is not
 * working here, and a clean run of the tests above would prove nothing.
 */
static int __attribute__((noinline)) leaky_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static void t_control(void)
{
    uint8_t a[32], b[32];
    int eq;

    need_valgrind();
    fill(a, 32, 1);
    fill(b, 32, 1);
    SECRET(a, 32);
    SECRET(b, 32);
    eq = leaky_equal(a, b, 32);
    PUBLIC(&eq, sizeof eq);
    HX_CHECK(eq == 1, "the control compare is wrong");
}

static const hx_test tests[] = {
    { "sm_equal", t_sm_equal },
    { "sm_buffer_equal", t_sm_buffer_equal },
    { "canary_check", t_canary_check },
    { "aead_aes_gcm", t_aead_aes_gcm },
    { "aead_chacha", t_aead_chacha },
    { "aead_chacha_portable", t_aead_chacha_portable },
    { "enclave_seal_and_open", t_enclave_seal_and_open },
    { "secret_factories", t_secret_factories },
};

static const hx_test control[] = { { "control", t_control } };

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "control") == 0)
        return hx_main("ct", control, 1, 300, argc, argv);
    return hx_main("ct", tests, sizeof tests / sizeof tests[0], 600, argc, argv);
}
