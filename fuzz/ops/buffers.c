/* SPDX-License-Identifier: ISC */
/*
 * Buffers: every operation follows its row of spec/buffer-states.tsv.
 */
#include "model.h"

/* ---- buffers ---- */

/* Run one table operation that only changes the state (freeze, melt). */
void op_state(fz_in *in, int r)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    sm_status want = rows[r]->st[b->state], st;

    fz_faults_before(&F);
    st = r == R_FREEZE ? sm_buffer_freeze(b->h) : sm_buffer_melt(b->h);
    fz_faults_after(&F);
    fz_trace("%s buffer %u: %s", row_names[r], BUF_ID(b), fz_st(st));
    if (outcome(st, want, SM_OK, row_names[r])) {
        b->state = rows[r]->next[b->state];
        b->opened = false;
    }
    M.touched |= 1u << BUF_ID(b);
}

/* copy, copy_at, move, move_at */
void op_write(fz_in *in, int r)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    bool at = r == R_COPY_AT || r == R_MOVE_AT, move = r == R_MOVE || r == R_MOVE_AT;
    size_t off = at ? fz_u16(in) % (b->size + 2) : 0;
    size_t n = fz_u16(in) % (maxb + 1);
    sm_status want = rows[r]->st[b->state], alt = SM_OK, st;
    bool bad = off > b->size || n > b->size - off;

    if (b->state == FZ_DESTROYED)
        bad = false; /* a stale handle has no size to be out of */
    if (want == SM_OK && bad)
        want = SM_E_INVAL;
    else if (bad)
        alt = SM_E_INVAL;
    fz_fill(in, src, n);
    memcpy(src2, src, n);
    fz_faults_before(&F);
    if (r == R_COPY)
        st = sm_buffer_copy(b->h, src, n);
    else if (r == R_COPY_AT)
        st = sm_buffer_copy_at(b->h, off, src, n);
    else if (r == R_MOVE)
        st = sm_buffer_move(b->h, src, n);
    else
        st = sm_buffer_move_at(b->h, off, src, n);
    fz_faults_after(&F);
    fz_trace("%s buffer %u off %zu n %zu: %s", row_names[r], BUF_ID(b), off, n, fz_st(st));
    if (outcome(st, want, alt, row_names[r])) {
        memcpy(b->want + off, src2, n);
        for (size_t i = 0; i < n; i++)
            FZ_CHECK(src[i] == (move ? 0 : src2[i]), "%s: src byte %zu is %u", row_names[r], i,
                     src[i]);
    } else {
        FZ_CHECK(memcmp(src, src2, n) == 0, "failed %s changed src", row_names[r]);
    }
}

/* scramble, wipe */
void op_fill(fz_in *in, int r)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    sm_status want = rows[r]->st[b->state], st;

    fz_faults_before(&F);
    st = r == R_SCRAMBLE ? sm_buffer_scramble(b->h) : sm_buffer_wipe(b->h);
    fz_faults_after(&F);
    fz_trace("%s buffer %u: %s", row_names[r], BUF_ID(b), fz_st(st));
    if (!outcome(st, want, SM_OK, row_names[r])) {
        /* A scramble whose generator could not be keyed wipes what it wrote: the whole
           buffer (spec/fault-injection.md, SM-REQ-030's exceptions). */
        if (r == R_SCRAMBLE && st == SM_E_RANDOM)
            memset(b->want, 0, b->size);
        return;
    }
    if (r == R_WIPE) {
        memset(b->want, 0, b->size);
        return;
    }
    /* New random bytes, which the model cannot know: they must differ, then are adopted. */
    if (b->size >= 16)
        FZ_CHECK(memcmp(b->want, sm_buffer_data(b->h), b->size) != 0, "scramble changed nothing");
    memcpy(b->want, sm_buffer_data(b->h), b->size);
}

void op_equal(fz_in *in)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    uint8_t how = fz_u8(in);
    size_t n = b->size;
    bool eq = false, expect;
    sm_status want = rows[R_EQUAL]->st[b->state], st;

    if (b->state == FZ_DESTROYED)
        n = fz_u8(in);
    else
        memcpy(src, b->want, n);
    switch (how % 4) {
    case 0:
        break;
    case 1:
        if (n > 0)
            src[fz_u16(in) % n] ^= (uint8_t)(1u << (how >> 5));
        break;
    case 2:
        n = how & 0x80 ? n + 1 : n - (n > 0);
        src[n > 0 ? n - 1 : 0] = 0;
        break;
    default:
        n = fz_u16(in) % (maxb + 1);
        fz_fill(in, src, n);
        break;
    }
    expect = b->state != FZ_DESTROYED && n == b->size && memcmp(src, b->want, n) == 0;
    fz_faults_before(&F);
    st = sm_buffer_equal(b->h, src, n, &eq);
    fz_faults_after(&F);
    fz_trace("equal buffer %u n %zu: %s %d", BUF_ID(b), n, fz_st(st), eq);
    if (outcome(st, want, SM_OK, "equal"))
        FZ_CHECK(eq == expect, "equal gave %d, model %d", eq, expect);
}

/* new, from_bytes, random */
void op_create(fz_in *in, unsigned kind)
{
    static const char *const names[] = { "buffer_new", "buffer_from_bytes", "buffer_random" };
    mbuf *b = free_buf(in);
    /* pick_size gives sizes up to MAX_FIFO (a flushed stream's) or overflowing ones. */
    size_t size = pick_size(in), k = size <= MAX_FIFO ? size : 0;
    sm_buffer out = { 0x0badull };
    sm_status want = size == 0 || size > MAX_FIFO ? SM_E_INVAL : SM_OK, st;

    if (b == NULL)
        return;
    if (kind == 1) /* only from_bytes has a source */
        fz_fill(in, src, k > 0 ? k : 1);
    memcpy(src2, src, k);
    fz_faults_before(&F);
    if (kind == 0)
        st = sm_buffer_new(size, &out);
    else if (kind == 1)
        st = sm_buffer_from_bytes(src, size, &out);
    else
        st = sm_buffer_random(size, &out);
    fz_faults_after(&F);
    fz_trace("%s %zu into %u: %s", names[kind], size, BUF_ID(b), fz_st(st));
    if (!outcome(st, want, SM_OK, names[kind])) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", names[kind]);
        FZ_CHECK(memcmp(src, src2, k) == 0, "failed %s changed src", names[kind]);
        return;
    }
    b->h = out;
    b->size = size;
    b->opened = false;
    b->state = kind == 0 ? FZ_MUTABLE : FZ_FROZEN;
    M.made++;
    if (kind == 0) {
        memset(b->want, 0, size);
    } else if (kind == 1) {
        memcpy(b->want, src2, size);
        for (size_t i = 0; i < size; i++)
            FZ_CHECK(src[i] == 0, "from_bytes did not wipe src");
    } else {
        memcpy(b->want, sm_buffer_data(out), size);
    }
    M.touched |= 1u << BUF_ID(b);
}

void op_destroy_buf(fz_in *in)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    sm_status want = rows[R_DESTROY]->st[b->state], st;

    fz_faults_before(&F);
    st = sm_buffer_destroy(b->h);
    fz_faults_after(&F);
    fz_trace("destroy buffer %u: %s", BUF_ID(b), fz_st(st));
    if (outcome(st, want, SM_OK, "destroy")) {
        b->state = rows[R_DESTROY]->next[b->state];
    } else if (want == SM_OK && failed_last_munmap()) {
        /* SM-REQ-030's exception: wiped and opened, still mapped, can be retried. */
        memset(b->want, 0, b->size);
        b->opened = true;
    }
    M.touched |= 1u << BUF_ID(b);
}

void op_seal(fz_in *in)
{
    mbuf *b = &M.b[fz_u8(in) % NB];
    menc *e = free_enc(in);
    sm_enclave out = { 0x0badull };
    sm_status want = rows[R_SEAL]->st[b->state], st;

    if (e == NULL)
        return;
    if (want == SM_OK && M.exhausted)
        want = SM_E_STATE;
    fz_faults_before(&F);
    st = sm_buffer_seal(b->h, &out);
    fz_faults_after(&F);
    fz_trace("seal buffer %u into enclave %u: %s", BUF_ID(b), ENC_ID(e), fz_st(st));
    M.touched |= 1u << BUF_ID(b);
    if (!outcome(st, want, SM_OK, "seal")) {
        FZ_CHECK(out.id == 0x0badull, "failed seal wrote its out-parameter");
        return;
    }
    e->h = out;
    e->alive = true;
    e->size = b->size;
    e->known = true;
    memcpy(e->pt, b->want, b->size);
    b->state = rows[R_SEAL]->next[b->state];
}
