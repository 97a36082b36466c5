/* SPDX-License-Identifier: ISC */
/*
 * Streams: FIFOs, as in fuzz/stream.c.
 */
#include "model.h"

/* ---- streams ---- */

void op_stream_new(fz_in *in)
{
    mstr *s = free_str(in);
    sm_stream out = { 0x0badull };
    sm_status st;

    if (s == NULL)
        return;
    fz_faults_before(&F);
    st = sm_stream_new(&out);
    fz_faults_after(&F);
    fz_trace("stream_new %u: %s", STR_ID(s), fz_st(st));
    if (!outcome(st, SM_OK, SM_OK, "stream_new")) {
        FZ_CHECK(out.id == 0x0badull, "failed stream_new wrote its out-parameter");
        return;
    }
    s->h = out;
    s->alive = true;
    s->len = 0;
    M.made++;
}

static size_t pick_stream_size(fz_in *in)
{
    uint16_t v = fz_u16(in);

    switch (v >> 14) {
    case 0: case 1:
        return v % 65;
    case 2:
        return chunk_cap - 40 + v % 81;
    default:
        return v % (2 * chunk_cap);
    }
}

void op_stream_write(fz_in *in)
{
    mstr *s = &M.s[fz_u8(in) % NS];
    size_t n = pick_stream_size(in);
    sm_status want, st;

    /* Cut to what the model's fifo holds before the outcome: a cut to 0 seals nothing. */
    if (s->len + n > MAX_FIFO)
        n = MAX_FIFO - s->len;
    want = !s->alive ? SM_E_STATE : n > 0 && M.exhausted ? SM_E_STATE : SM_OK;
    fz_fill(in, src, n);
    memcpy(src2, src, n);
    fz_faults_before(&F);
    st = sm_stream_write(s->h, src, n);
    fz_faults_after(&F);
    fz_trace("stream_write %u n %zu: %s", STR_ID(s), n, fz_st(st));
    if (!outcome(st, want, SM_OK, "stream_write")) {
        FZ_CHECK(memcmp(src, src2, n) == 0, "failed stream_write changed src");
        return;
    }
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(src[i] == 0, "stream_write did not wipe src");
    memcpy(s->fifo + s->len, src2, n);
    s->len += n;
}

static void consume(mstr *s, size_t n)
{
    memmove(s->fifo, s->fifo + n, s->len - n);
    s->len -= n;
}

void op_stream_read(fz_in *in)
{
    mstr *s = &M.s[fz_u8(in) % NS];
    size_t cap = pick_stream_size(in), got = 0;
    sm_status want = !s->alive ? SM_E_STATE : s->len == 0 ? SM_E_EOF : SM_OK, st;
    /* A read seals nothing (a chunk read in part keeps its place): no nonce needed. */
    sm_status alt = SM_OK;

    memset(src, 0xa5, cap);
    fz_faults_before(&F);
    st = sm_stream_read(s->h, src, cap, &got);
    fz_faults_after(&F);
    fz_trace("stream_read %u cap %zu: %s got %zu", STR_ID(s), cap, fz_st(st), got);
    if (!outcome(st, want, alt, "stream_read")) {
        for (size_t i = 0; i < cap; i++)
            FZ_CHECK(src[i] == 0xa5 || src[i] == 0, "failed stream_read left data in dst");
        return;
    }
    FZ_CHECK(got == (cap < s->len ? cap : s->len), "stream_read got %zu of %zu, cap %zu", got,
             s->len, cap);
    FZ_CHECK(memcmp(src, s->fifo, got) == 0, "stream_read: bytes differ from the FIFO");
    consume(s, got);
}

void op_stream_take(fz_in *in, bool all)
{
    const char *what = all ? "stream_flush" : "stream_next";
    mstr *s = &M.s[fz_u8(in) % NS];
    mbuf *b = free_buf(in);
    sm_buffer out = { 0x0badull };
    sm_status want = !s->alive ? SM_E_STATE : s->len == 0 ? SM_E_EOF : SM_OK, st;
    size_t n;

    if (b == NULL)
        return;
    fz_faults_before(&F);
    st = all ? sm_stream_flush(s->h, &out) : sm_stream_next(s->h, &out);
    fz_faults_after(&F);
    fz_trace("%s %u into buffer %u: %s", what, STR_ID(s), BUF_ID(b), fz_st(st));
    if (!outcome(st, want, SM_OK, what)) {
        FZ_CHECK(out.id == 0x0badull, "failed %s wrote its out-parameter", what);
        return;
    }
    n = sm_buffer_size(out);
    M.made++;
    FZ_CHECK(all ? n == s->len : n > 0 && n <= s->len && n <= chunk_cap, "%s gave %zu of %zu",
             what, n, s->len);
    FZ_CHECK(memcmp(sm_buffer_data(out), s->fifo, n) == 0, "%s: bytes differ from the FIFO",
             what);
    b->h = out;
    b->state = FZ_FROZEN;
    b->size = n;
    b->opened = false;
    memcpy(b->want, s->fifo, n);
    M.touched |= 1u << BUF_ID(b);
    consume(s, n);
}

void op_stream_destroy(fz_in *in)
{
    mstr *s = &M.s[fz_u8(in) % NS];
    sm_status st;

    fz_faults_before(&F);
    st = sm_stream_destroy(s->h);
    fz_faults_after(&F);
    fz_trace("stream_destroy %u: %s", STR_ID(s), fz_st(st));
    if (outcome(st, s->alive ? SM_OK : SM_E_STATE, SM_OK, "stream_destroy"))
        s->alive = false;
}
