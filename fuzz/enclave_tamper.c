/* SPDX-License-Identifier: ISC */
/*
 * enclave_tamper: seal input data, then flip input-chosen bits of the ciphertext, tag
 * and nonce, cut the ciphertext short (or read it past its end), and swap the whole
 * ciphertext mapping with a twin enclave's of the same size, through the test hooks, and
 * open it: the result must be SM_E_AUTH with nothing created or changed, or, when every
 * change has been undone, exactly the plaintext. Never anything else.
 *
 * Target functions: sm_enclave_new, sm_enclave_random, sm_buffer_seal, sm_enclave_open,
 * sm_enclave_open_into, sm_enclave_size, sm_enclave_destroy; through them
 * smi_coffer_seal and smi_coffer_open (src/objects/coffer.c) and both AEADs of src/memory/aead.c
 * (AES-256-GCM, ChaCha20-Poly1305 with the fast and the portable BearSSL code, chosen by
 * the input through smi_aead_test_force). Hooks: smi_enclave_test_flip,
 * smi_enclave_test_resize, smi_enclave_test_swap.
 *
 * Model: the enclave is untampered iff its mapping holds its own ciphertext (not the
 * twin's: every enclave is bound to an id of its own, SM-REQ-079), the XOR of all flips
 * over the ciphertext bytes it covers, the tag and the nonce is zero and its recorded
 * size is the sealed one. Flips land on whichever ciphertext the enclave's mapping holds
 * at the time, so each of the two ciphertexts keeps its own flips. Opening an
 * untampered enclave gives the plaintext; a tampered one gives SM_E_AUTH, no buffer
 * (sm_stats unchanged), and open_into leaves dst as it was. The twin, of the same
 * plaintext and size, must open at the end exactly when it holds its own ciphertext,
 * untouched. OS faults from the input may fail an open with their status instead,
 * changing nothing.
 *
 * Input: AEAD choice, how to seal, size, then actions; the plaintext comes last.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAX_SIZE 9000u
#define MAX_ACTIONS 48

static fz_faults F;
static uint8_t *plain, *copy, *mask, *twin_mask, *scratch;
static size_t page;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init(NULL);
    page = sm_page_size();
    plain = malloc(MAX_SIZE + page);
    copy = malloc(MAX_SIZE + page);
    mask = malloc(MAX_SIZE + page);
    twin_mask = malloc(MAX_SIZE + page);
    scratch = malloc(MAX_SIZE + page);
    FZ_CHECK(plain && copy && mask && twin_mask && scratch, "out of memory");
    return 0;
}

static const sm_os_fn fault_fns[] = { SM_OS_MMAP, SM_OS_MUNMAP, SM_OS_MPROTECT,
                                      SM_OS_MLOCK, SM_OS_MADVISE, SM_OS_GETRANDOM };

typedef struct target {
    sm_enclave e;
    size_t     size;     /* as sealed */
    size_t     cur;      /* as recorded now (resize) */
    size_t     room;     /* the largest size the mapping holds */
    bool       swapped;  /* the target's and the twin's mappings hold each other's */
    /* The flips of the target's own ciphertext (tag, nonce; bytes in mask) and the twin's. */
    uint8_t    tag[16], nonce[12], twin_tag[16], twin_nonce[12];
} target;

static bool flipped(const uint8_t *m, size_t n, const uint8_t *tag, const uint8_t *nonce)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++)
        acc |= m[i];
    for (size_t i = 0; i < 16; i++)
        acc |= tag[i];
    for (size_t i = 0; i < 12; i++)
        acc |= nonce[i];
    return acc != 0;
}

static bool tampered(const target *t)
{
    return t->swapped || t->cur != t->size || flipped(mask, t->cur, t->tag, t->nonce);
}

static bool twin_tampered(const target *t)
{
    return t->swapped || flipped(twin_mask, t->size, t->twin_tag, t->twin_nonce);
}

/* A failure that is not the model's: it must be an injected fault's. */
static void by_fault(sm_status st, sm_status want, const char *what)
{
    FZ_CHECK(F.fired > 0 && fz_faults_allow(&F, st), "%s: %s, want %s", what, fz_st(st),
             fz_st(want));
}

static void check_open(target *t)
{
    bool bad = tampered(t);
    sm_status want = bad ? SM_E_AUTH : SM_OK, st;
    sm_buffer b = { 0x0badull };
    fz_counts before, after;

    fz_counts_get(&before);
    fz_faults_before(&F);
    st = sm_enclave_open(t->e, &b);
    fz_faults_after(&F);
    fz_trace("open (size %zu of %zu, tampered %d): %s", t->cur, t->size, bad, fz_st(st));
    if (st != want) {
        by_fault(st, want, "sm_enclave_open");
        st = SM_E_AUTH; /* what is checked below: nothing made */
    }
    if (st == SM_OK) {
        FZ_CHECK(sm_buffer_size(b) == t->size && !sm_buffer_is_mutable(b),
                 "open: a buffer of %zu bytes", sm_buffer_size(b));
        FZ_CHECK(memcmp(sm_buffer_data(b), plain, t->size) == 0, "open: not the plaintext");
        fz_check_layout(sm_buffer_data(b), t->size, false, "opened buffer");
        fz_faults_clear(&F);
        FZ_CHECK(sm_buffer_destroy(b) == SM_OK, "destroy of the opened buffer");
        return;
    }
    FZ_CHECK(b.id == 0x0badull, "failed open wrote its out-parameter");
    fz_counts_get(&after);
    /* A failed munmap of the scratch region is ignored and leaves it counted. */
    FZ_CHECK(after.live[SMI_KIND_BUFFER] == before.live[SMI_KIND_BUFFER] &&
                 (after.bytes == before.bytes || F.fired_by[SM_OS_MUNMAP] > 0),
             "failed open left something behind");
}

static void check_open_into(target *t, fz_in *in)
{
    bool bad = tampered(t);
    sm_status want = bad ? SM_E_AUTH : SM_OK, st;
    sm_buffer dst;
    uint8_t fill = fz_u8(in);
    size_t n = t->cur;

    fz_faults_clear(&F);
    st = sm_buffer_new(n, &dst);
    FZ_CHECK(st == SM_OK, "buffer_new for open_into: %s", fz_st(st));
    memset(sm_buffer_data(dst), fill, n);
    fz_faults_before(&F);
    st = sm_enclave_open_into(t->e, dst);
    fz_faults_after(&F);
    fz_trace("open_into (size %zu of %zu, tampered %d): %s", t->cur, t->size, bad, fz_st(st));
    if (st != want) {
        by_fault(st, want, "sm_enclave_open_into");
        st = SM_E_AUTH;
    }
    if (st == SM_OK) {
        FZ_CHECK(memcmp(sm_buffer_data(dst), plain, n) == 0, "open_into: not the plaintext");
    } else {
        for (size_t i = 0; i < n; i++)
            FZ_CHECK(sm_buffer_data(dst)[i] == fill, "failed open_into changed dst");
    }
    FZ_CHECK(sm_buffer_is_mutable(dst), "open_into froze dst");
    fz_faults_clear(&F);
    FZ_CHECK(sm_buffer_destroy(dst) == SM_OK, "destroy of dst");
}

/* Seal the plaintext as the input says; the plaintext is known afterwards either way. */
static bool seal(unsigned how, size_t size, sm_enclave *e)
{
    sm_buffer b, o;
    sm_status st;

    memcpy(copy, plain, size);
    switch (how % 4) {
    case 0:
        st = sm_enclave_new(copy, size, e);
        break;
    case 1:
        st = sm_buffer_from_bytes(copy, size, &b);
        if (st == SM_OK)
            st = sm_buffer_seal(b, e);
        break;
    case 2:
        st = sm_buffer_new(size, &b);
        if (st == SM_OK)
            st = sm_buffer_copy(b, copy, size);
        if (st == SM_OK)
            st = sm_buffer_seal(b, e);
        break;
    default:
        /* Random contents: learn them from a first, clean open. */
        st = sm_enclave_random(size, e);
        if (st == SM_OK)
            st = sm_enclave_open(*e, &o);
        if (st == SM_OK) {
            memcpy(plain, sm_buffer_data(o), size);
            st = sm_buffer_destroy(o);
        }
        break;
    }
    FZ_CHECK(st == SM_OK, "sealing (way %u, %zu bytes): %s", how % 4, size, fz_st(st));
    FZ_CHECK(sm_enclave_size(*e) == size, "sealed size %zu, want %zu", sm_enclave_size(*e), size);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fz_in in = { data, len, 0 };
    unsigned how, actions;
    size_t size;
    target t;
    sm_enclave twin;
    sm_buffer b;
    fz_counts c;

    fz_begin();
    fz_faults_clear(&F);
    smi_aead_test_force((smi_aead_choice)(fz_u8(&in) % 3));
    how = fz_u8(&in);
    size = 1 + fz_u16(&in) % MAX_SIZE;
    actions = 1 + fz_u8(&in) % MAX_ACTIONS;
    /* The plaintext is the tail of the input (then a pattern); actions come from the front. */
    {
        size_t from = len > size ? len - size : 0;

        if (from < in.off)
            from = in.off;
        memcpy(plain, data + from, len - from);
        for (size_t i = len - from; i < size; i++)
            plain[i] = (uint8_t)(i * 131u + (i >> 8));
        in.n = from;
    }
    memset(&t, 0, sizeof t);
    t.size = t.cur = size;
    t.room = ((32 + size + page - 1) & ~(page - 1)) - 32;
    memset(mask, 0, t.room);
    memset(twin_mask, 0, t.room);
    (void)seal(how, size, &t.e);
    memcpy(copy, plain, size);
    FZ_CHECK(sm_enclave_new(copy, size, &twin) == SM_OK, "the twin enclave");

    for (unsigned k = 0; k < actions; k++) {
        uint8_t a = fz_u8(&in);

        switch (a % 8) {
        case 0: case 1: case 2: {
            /* 0: ciphertext bytes the enclave covers now; 1: tag; 2: nonce. */
            int where = a % 8;
            size_t bits = where == 0 ? t.cur * 8 : where == 1 ? 128 : 96;
            size_t bit = fz_u16(&in) % bits;
            sm_status st = smi_enclave_test_flip(t.e, where, bit);
            /* The flip lands on the ciphertext the target's mapping holds now. */
            uint8_t *m = where == 0 ? (t.swapped ? twin_mask : mask)
                         : where == 1 ? (t.swapped ? t.twin_tag : t.tag)
                                      : (t.swapped ? t.twin_nonce : t.nonce);

            FZ_CHECK(st == SM_OK, "flip: %s", fz_st(st));
            m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            fz_trace("flip %d bit %zu", where, bit);
            break;
        }
        case 3: {
            /* Cut short, read past the end, or back to the sealed size. */
            size_t n = (a & 0x80) ? t.size : 1 + fz_u16(&in) % t.room;
            sm_status st = smi_enclave_test_resize(t.e, n);

            FZ_CHECK(st == SM_OK, "resize to %zu: %s", n, fz_st(st));
            FZ_CHECK(sm_enclave_size(t.e) == n, "size after resize");
            t.cur = n;
            fz_trace("resize to %zu", n);
            break;
        }
        case 4: case 5:
            check_open(&t);
            break;
        case 6:
            if (a & 0x80) {
                /* Exchange the ciphertexts: each is bound to its own enclave's id. */
                sm_status st = smi_enclave_test_swap(t.e, twin);

                FZ_CHECK(st == SM_OK, "swap: %s", fz_st(st));
                t.swapped = !t.swapped;
                fz_trace("swap with the twin (now %d)", t.swapped);
            } else {
                check_open_into(&t, &in);
            }
            break;
        default:
            if (a & 0x80)
                fz_faults_clear(&F);
            else
                fz_faults_arm(&F, &in, fault_fns, sizeof fault_fns / sizeof fault_fns[0]);
            break;
        }
    }
    check_open(&t);
    fz_faults_clear(&F);
    {
        sm_status st = sm_enclave_open(twin, &b);

        fz_trace("open twin (tampered %d): %s", twin_tampered(&t), fz_st(st));
        if (twin_tampered(&t)) {
            FZ_CHECK(st == SM_E_AUTH, "the tampered twin: %s", fz_st(st));
        } else {
            FZ_CHECK(st == SM_OK, "the untouched twin does not open: %s", fz_st(st));
            FZ_CHECK(memcmp(sm_buffer_data(b), plain, size) == 0,
                     "the twin's plaintext changed");
            FZ_CHECK(sm_buffer_destroy(b) == SM_OK, "destroy of the twin's buffer");
        }
    }
    FZ_CHECK(smi_enclave_test_swap(t.e, t.e) == SM_E_INVAL, "swap with itself");
    FZ_CHECK(sm_enclave_destroy(twin) == SM_OK && sm_enclave_destroy(t.e) == SM_OK,
             "cleanup");
    FZ_CHECK(sm_enclave_destroy(t.e) == SM_E_STATE && sm_enclave_size(t.e) == 0 &&
                 sm_enclave_open(t.e, &b) == SM_E_STATE, "stale enclave");
    /* The hooks refuse a stale handle, a bit out of range and a size out of the mapping. */
    FZ_CHECK(smi_enclave_test_flip(t.e, 0, 0) == SM_E_STATE &&
                 smi_enclave_test_resize(t.e, 1) == SM_E_STATE, "hooks on a stale enclave");
    FZ_CHECK(sm_enclave_new(copy, 1, &twin) == SM_OK, "a one-byte enclave");
    FZ_CHECK(smi_enclave_test_flip(twin, 0, 8) == SM_E_INVAL &&
                 smi_enclave_test_flip(twin, 1, 128) == SM_E_INVAL &&
                 smi_enclave_test_resize(twin, 0) == SM_E_INVAL &&
                 smi_enclave_test_resize(twin, page) == SM_E_INVAL &&
                 sm_enclave_destroy(twin) == SM_OK, "hooks out of range");
    fz_counts_get(&c);
    FZ_CHECK(c.live[SMI_KIND_BUFFER] == 0 && c.live[SMI_KIND_ENCLAVE] == 0, "objects left alive");
    return 0;
}
