/* SPDX-License-Identifier: ISC */
/*
 * Enclaves: their plaintext and size.
 */
#include "model.h"

/* ---- enclaves ---- */

void op_enclave_new(fz_in *in, bool random)
{
    menc *e = free_enc(in);
    size_t size = pick_size(in), k = size <= MAX_FIFO ? size : 0;
    sm_enclave out = { 0x0badull };
    sm_status want = size == 0 || size > MAX_FIFO ? SM_E_INVAL
                   : M.exhausted                  ? SM_E_STATE
                                                  : SM_OK;
    sm_status st;

    if (e == NULL)
        return;
    if (!random)
        fz_fill(in, src, k > 0 ? k : 1);
    memcpy(src2, src, k);
    fz_faults_before(&F);
    st = random ? sm_enclave_random(size, &out) : sm_enclave_new(src, size, &out);
    fz_faults_after(&F);
    fz_trace("enclave_%s %zu into %u: %s", random ? "random" : "new", size, ENC_ID(e), fz_st(st));
    if (!outcome(st, want, SM_OK, random ? "enclave_random" : "enclave_new")) {
        FZ_CHECK(out.id == 0x0badull, "failed enclave_new wrote its out-parameter");
        FZ_CHECK(memcmp(src, src2, k) == 0, "failed enclave_new changed src");
        return;
    }
    if (!random)
        for (size_t i = 0; i < size; i++)
            FZ_CHECK(src[i] == 0, "enclave_new did not wipe src");
    e->h = out;
    e->alive = true;
    e->size = size;
    e->known = !random;
    memcpy(e->pt, src2, random ? 0 : size);
}

/* The plaintext that an open gave: the model's, or learnt at the first open. */
static void check_plaintext(menc *e, const uint8_t *d)
{
    if (!e->known) {
        memcpy(e->pt, d, e->size);
        e->known = true;
    }
    FZ_CHECK(memcmp(d, e->pt, e->size) == 0, "enclave %u: plaintext differs", ENC_ID(e));
}

void op_open(fz_in *in)
{
    menc *e = &M.e[fz_u8(in) % NE];
    mbuf *b = free_buf(in);
    sm_buffer out = { 0x0badull };
    sm_status want = e->alive ? SM_OK : SM_E_STATE, st;

    if (b == NULL)
        return;
    fz_faults_before(&F);
    st = sm_enclave_open(e->h, &out);
    fz_faults_after(&F);
    fz_trace("open enclave %u into buffer %u: %s", ENC_ID(e), BUF_ID(b), fz_st(st));
    if (!outcome(st, want, SM_OK, "enclave_open")) {
        FZ_CHECK(out.id == 0x0badull, "failed open wrote its out-parameter");
        return;
    }
    b->h = out;
    b->state = FZ_FROZEN;
    b->size = e->size;
    b->opened = false;
    M.made++;
    check_plaintext(e, sm_buffer_data(out));
    memcpy(b->want, e->pt, e->size);
    M.touched |= 1u << BUF_ID(b);
}

void op_open_into(fz_in *in)
{
    menc *e = &M.e[fz_u8(in) % NE];
    mbuf *b = &M.b[fz_u8(in) % NB];
    sm_status want = SM_OK, alt = SM_OK, st;
    bool bad_state = b->state != FZ_MUTABLE, bad_size = live_buf(b) && b->size != e->size;

    /* The enclave first (it is named first), then dst's state and size. */
    if (!e->alive) {
        want = SM_E_STATE;
    } else if (bad_state) {
        want = SM_E_STATE;
        alt = bad_size ? SM_E_INVAL : SM_OK;
    } else if (bad_size) {
        want = SM_E_INVAL;
    }
    fz_faults_before(&F);
    st = sm_enclave_open_into(e->h, b->h);
    fz_faults_after(&F);
    fz_trace("open enclave %u into buffer %u: %s", ENC_ID(e), BUF_ID(b), fz_st(st));
    M.touched |= 1u << BUF_ID(b);
    if (outcome(st, want, alt, "enclave_open_into")) {
        check_plaintext(e, sm_buffer_data(b->h));
        memcpy(b->want, e->pt, e->size);
    }
}

void op_enclave_destroy(fz_in *in)
{
    menc *e = &M.e[fz_u8(in) % NE];
    sm_status st;

    fz_faults_before(&F);
    st = sm_enclave_destroy(e->h);
    fz_faults_after(&F);
    fz_trace("destroy enclave %u: %s", ENC_ID(e), fz_st(st));
    if (outcome(st, e->alive ? SM_OK : SM_E_STATE, SM_OK, "enclave_destroy"))
        e->alive = false;
}
