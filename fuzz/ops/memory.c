/* SPDX-License-Identifier: ISC */
/*
 * Raw memory regions (securemem/mem.h).
 */
#include "model.h"

/* ---- raw memory (securemem/mem.h) ---- */

void op_mem_alloc(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    uint16_t v = fz_u16(in);
    /* 0, or a size that overflows when rounded to pages (spec/api.md: SM_E_INVAL). */
    size_t n = v >> 15 ? (v & 1 ? 0 : SIZE_MAX - (v >> 1) % (page - 1)) : 1 + v % maxb;
    void *p = (void *)0x0bad;
    sm_status st;

    if (m->p != NULL)
        return;
    fz_faults_before(&F);
    st = sm_mem_alloc(n, &p);
    fz_faults_after(&F);
    fz_trace("mem_alloc %u n %zu: %s", (unsigned)(m - M.m), n, fz_st(st));
    if (!outcome(st, n == 0 || n > maxb ? SM_E_INVAL : SM_OK, SM_OK, "mem_alloc")) {
        FZ_CHECK(p == (void *)0x0bad, "failed mem_alloc wrote its out-parameter");
        return;
    }
    FZ_CHECK(((uintptr_t)p & (page - 1)) == 0, "mem_alloc: not page-aligned");
    m->p = p;
    m->n = n;
    m->len = (n + page - 1) & ~(page - 1);
    m->prot = SM_PROT_READWRITE;
    memset(m->want, 0, m->len);
}

void op_mem_free(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    uint8_t how = fz_u8(in);
    sm_status want = SM_OK, st;
    uint8_t *p = m->p;
    size_t n = m->n;

    if (p == NULL)
        return;
    if (how % 8 == 1) {
        p += 1 + how % 7;
        want = SM_E_INVAL;
    } else if (how % 8 == 2) {
        n = 0;
        want = SM_E_INVAL;
    } else if (how % 8 == 3) {
        p = NULL;
        want = SM_E_INVAL;
    }
    fz_faults_before(&F);
    st = sm_mem_free(p, n);
    fz_faults_after(&F);
    fz_trace("mem_free %u (%u): %s", (unsigned)(m - M.m), how % 8, fz_st(st));
    if (outcome(st, want, SM_OK, "mem_free")) {
        m->p = NULL;
    } else if (want == SM_OK && failed_last_munmap()) {
        memset(m->want, 0, m->len);
        m->prot = SM_PROT_READWRITE;
    }
}

void op_mem_protect(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    unsigned prot = fz_u8(in) % 4;
    sm_status st;

    if (m->p == NULL)
        return;
    fz_faults_before(&F);
    st = sm_mem_protect(m->p, m->len, (sm_prot)prot);
    fz_faults_after(&F);
    fz_trace("mem_protect %u %u: %s", (unsigned)(m - M.m), prot, fz_st(st));
    if (outcome(st, prot > SM_PROT_READWRITE ? SM_E_INVAL : SM_OK, SM_OK, "mem_protect"))
        m->prot = (sm_prot)prot;
}

void op_mem_lock(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    uint8_t how = fz_u8(in);
    bool lock = how & 1, zero = (how & 6) == 2;
    sm_status st;

    /* Not on PROT_NONE pages, where mlock's outcome depends on the kernel (and ASan
       makes mlock a no-op): the flavours would disagree. */
    if (m->p == NULL || m->prot == SM_PROT_NONE)
        return;
    fz_faults_before(&F);
    st = lock ? sm_mem_lock(m->p, zero ? 0 : m->len) : sm_mem_unlock(m->p, zero ? 0 : m->len);
    fz_faults_after(&F);
    fz_trace("mem_%slock %u: %s", lock ? "" : "un", (unsigned)(m - M.m), fz_st(st));
    (void)outcome(st, zero ? SM_E_INVAL : SM_OK, SM_OK, "mem_lock");
}

/* sm_random, sm_wipe and sm_equal on a writable region (they are the caller's bytes). */
void op_mem_bytes(fz_in *in)
{
    mmem *m = &M.m[fz_u8(in) % NM];
    uint8_t how = fz_u8(in);
    size_t off, n;
    sm_status st;

    if (m->p == NULL || m->prot != SM_PROT_READWRITE)
        return;
    off = fz_u16(in) % m->len;
    n = fz_u16(in) % (m->len - off + 1);
    switch (how % 3) {
    case 0:
        fz_faults_before(&F);
        st = sm_random(m->p + off, n);
        fz_faults_after(&F);
        fz_trace("random %u off %zu n %zu: %s", (unsigned)(m - M.m), off, n, fz_st(st));
        if (outcome(st, SM_OK, SM_OK, "random")) {
            if (n >= 16)
                FZ_CHECK(memcmp(m->p + off, m->want + off, n) != 0, "sm_random changed nothing");
            memcpy(m->want + off, m->p + off, n);
        } else {
            memset(m->want + off, 0, n); /* its documented exception: wiped on error */
        }
        break;
    case 1:
        sm_wipe(m->p + off, n);
        memset(m->want + off, 0, n);
        fz_trace("wipe %u off %zu n %zu", (unsigned)(m - M.m), off, n);
        break;
    default:
        memcpy(src, m->want + off, n);
        if (n > 0 && (how & 8))
            src[fz_u16(in) % n] ^= 0x10;
        FZ_CHECK(sm_equal(m->p + off, src, n) == (memcmp(m->p + off, src, n) == 0),
                 "sm_equal differs from memcmp");
        fz_trace("equal %u off %zu n %zu", (unsigned)(m - M.m), off, n);
        break;
    }
}
