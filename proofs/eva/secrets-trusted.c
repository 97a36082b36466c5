/* SPDX-License-Identifier: ISC */
/*
 * The secrets analysis's trusted part (proofs/README.md, "Eva", "The secrets analysis"):
 * what Eva assumes, without analysing them, of coffer.c and enclave.c, files that no Eva
 * analysis reaches, for the calls of them that the driven paths of secret.c make. Like
 * proofs/trusted.c, assumptions, not proofs: a contract, and models in C over the OS
 * shim, whose bodies Eva runs in place of the real ones.
 */
#include <__fc_builtin.h>

#include "inner.h"

/* os.c: a fallible call that fails where the driver's plan says. */
sm_status eva_os_call(sm_status err);

/*
 * coffer.c: a flag of the calling thread's that makes the next key reads try their
 * locks only (SM-REQ-094); only the coffer reads it, and no analysed file does.
 */
/*@ assigns \nothing; */
void smi_coffer_try_only(bool on);

/*
 * enclave.c's sealed blobs, the encrypted factory's ciphertext at rest. Analysing them
 * would take in the coffer (the enclave key, its shares, its sessions), the AEAD and
 * BearSSL: a run of their own. What secret.c relies on is inner.h's contract of the
 * three calls, which the models below keep, and which the tests check of the real ones:
 *  - smi_sealed_seal: on SM_OK the ciphertext is in a mapping of its own (whole pages
 *    past a 32-byte head) and data is wiped; on error nothing is mapped, data and out
 *    are untouched (test_enclave.c `seal_failure_leaves_the_buffer_as_it_was`, the
 *    `secret.new.encrypted` rows of spec/syscalls.tsv that test_faults.c fails call by
 *    call);
 *  - smi_sealed_open: on SM_OK r's size bytes hold the plaintext; on error they are
 *    wiped or untouched, never a partial plaintext (test_enclave.c
 *    `tampering_is_detected`, test_secret.c `failed_unmap_of_the_encrypted_window_keeps_it`);
 *  - smi_sealed_free: the mapping is gone on SM_OK, whole on error (test_enclave.c
 *    `a_refused_unmap_of_a_spare_leaves_ciphertext_and_the_drain_goes_on`).
 * Each model makes the fallible calls that the real function's outcome turns on (the
 * mapping, the key's opening, the unmap), so that the driver's plan fails each in turn,
 * as it fails the library's own. The models do not keep spare mappings (spare.c): a
 * spare makes a seal that cannot fail on its mapping and a free that cannot fail at all,
 * outcomes among those of the model. They count the blobs they hold mapped
 * (eva_sealed_live), so that the driver can check that secret.c frees each one once.
 */
#define HEAD 32u

unsigned eva_sealed_live;

/*@ requires \valid(out);
    requires 0 < size <= 4096;
    requires \valid(data + (0 .. size - 1)); */
sm_status smi_sealed_seal(uint8_t *data, size_t size, smi_sealed *out)
{
    smi_sealed e;
    void *map;
    /* the id first, from the library's own generator, as enclave.c draws it */
    sm_status st = smi_rng_fill(e.id, sizeof e.id);

    if (st == SM_OK)
        st = sm_os_mmap(smi_round_up(HEAD + size, sm_os_page_size()), SM_PROT_READWRITE, &map);
    if (st != SM_OK)
        return st;
    e.map = map;
    e.map_len = smi_round_up(HEAD + size, sm_os_page_size());
    e.size = size;
    /* the enclave key opened for the cipher (smi_coffer_begin) */
    st = eva_os_call(SM_E_PROT);
    if (st != SM_OK) {
        (void)sm_os_munmap(e.map, e.map_len);
        return st;
    }
    /* the nonce, tag and ciphertext: any bytes; the plaintext read whole, then wiped */
    Frama_C_make_unknown((char *)e.map, HEAD + size);
    for (size_t i = 0; i < size; i++)
        e.map[HEAD + i] ^= data[i];
    smi_wipe(data, size);
    eva_sealed_live++;
    *out = e;
    return SM_OK;
}

/*@ requires \valid_read(e) && \valid(r);
    requires r->size == e->size;
    requires \valid_read(e->map + (0 .. HEAD + e->size - 1)); */
sm_status smi_sealed_open(const smi_sealed *e, smi_region *r)
{
    uint8_t *data = smi_region_data(r);
    sm_status st = eva_os_call(SM_E_PROT);

    if (st != SM_OK)
        return st;
    /* the ciphertext copied into the region's data, decrypted there: any bytes */
    for (size_t i = 0; i < e->size; i++)
        data[i] = e->map[HEAD + i];
    Frama_C_make_unknown((char *)data, e->size);
    return SM_OK;
}

/*@ requires \valid(e) && e->map != \null; */
sm_status smi_sealed_free(smi_sealed *e)
{
    sm_status st = sm_os_munmap(e->map, e->map_len);

    if (st == SM_OK)
        eva_sealed_live--;
    return st;
}
