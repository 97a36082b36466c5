/* SPDX-License-Identifier: ISC */
/*
 * The runtime: purge, audit, init, status, the coffer's test hooks, stale and forged
 * handles, NULL arguments.
 */
#include "model.h"

/* ---- the runtime ---- */

/*
 * Destroy every object, then purge: what is left to purge here is the enclave key and the
 * canary key, and every handle must be stale afterwards. Purges of live objects run in
 * forked children (op_fork). They once had to, because a purge retired its slots for
 * good; since issue 18 §2 purged slots are reused (spec/registry.md), and the children
 * stay because they also check the process after a purge.
 */
void op_purge(fz_in *in)
{
    (void)in;
    fz_faults_clear(&F);
    for (unsigned i = 0; i < NB; i++)
        if (live_buf(&M.b[i])) {
            FZ_CHECK(sm_buffer_destroy(M.b[i].h) == SM_OK, "destroy before purge");
            M.b[i].state = FZ_DESTROYED;
        }
    for (unsigned i = 0; i < NE; i++)
        if (M.e[i].alive) {
            FZ_CHECK(sm_enclave_destroy(M.e[i].h) == SM_OK, "destroy before purge");
            M.e[i].alive = false;
        }
    for (unsigned i = 0; i < NS; i++)
        if (M.s[i].alive) {
            FZ_CHECK(sm_stream_destroy(M.s[i].h) == SM_OK, "destroy before purge");
            M.s[i].alive = false;
        }
    for (unsigned i = 0; i < NSEC; i++)
        if (M.sec[i].open) {
            FZ_CHECK(sm_secret_close(M.sec[i].h) == SM_OK, "close before purge");
            M.sec[i].open = M.sec[i].readable = M.sec[i].opened = false;
        }
    sm_purge();
    cm_reset(); /* every slab unmapped, the empty ones kept for reuse too */
    fz_trace("purge");
    FZ_CHECK(!fz_coffer_exists(), "the enclave key survived a purge");
    M.exhausted = M.rng_keyed = false;
}

/*
 * sm_audit opens, for the canary check, only what is PROT_NONE at rest: a guarded
 * secret's region (one mprotect to READ, one back to NONE; protected and custom secrets
 * have no canary, buffers, stream scratch and open windows are not PROT_NONE), in the
 * registry walk's order, which is the slot index's (registry.c, walk_next), then the
 * enclave key's shares (coffer.c, smi_coffer_audit: open 2, close 2). So the model knows
 * which call a planned mprotect failure hits, and what that leaves: an open refused
 * leaves that secret shut and its canary unchecked; a shut refused leaves exactly that
 * secret readable (secrets.md, "audit"); either way the walk goes on and the first
 * refusal is returned (runtime.h).
 */
void op_audit(void)
{
    msec *rest[NSEC], *t;
    unsigned g = 0, at = 0;
    bool coffer = fz_coffer_exists(), intr;
    unsigned long want, got, cc;
    sm_status compact;
    fz_calls c0, c1, own = { 0 };
    const fz_plan *p = &F.plan[SM_OS_MPROTECT];
    sm_status st;

    for (unsigned i = 0; i < NSEC; i++) {
        t = &M.sec[i];
        if (t->open && t->fac == FACT_GUARDED && !t->readable && !t->opened && !t->audited)
            rest[g++] = t;
    }
    for (unsigned i = 1; i < g; i++)
        for (unsigned j = i; j > 0 && smi_handle_index(rest[j - 1]->h.id) >
                                          smi_handle_index(rest[j]->h.id); j--) {
            t = rest[j];
            rest[j] = rest[j - 1];
            rest[j - 1] = t;
        }
    intr = p->armed && p->err == EINTR;
    fz_calls_now(c0);
    /* The compact slots come after the registry's walk, whose 2 g calls were all made. */
    cm_begin();
    cm_skip(SM_OS_MPROTECT, 2ul * g);
    fz_faults_before(&F);
    st = sm_audit();
    fz_faults_after(&F);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    compact = cm_audit();
    cc = cm_calls(SM_OS_MPROTECT) - F.before[SM_OS_MPROTECT] - 2ul * g;
    fz_trace("audit: %s (compact %s, %lu calls)", fz_st(st), fz_st(compact), cc);
    if (F.fired_by[SM_OS_MPROTECT] > 0) {
        unsigned long first = F.before[SM_OS_MPROTECT] + 1 > p->nth ? F.before[SM_OS_MPROTECT] + 1
                                                                     : p->nth;

        at = (unsigned)(first - F.before[SM_OS_MPROTECT]); /* 1-based, in this audit */
    }
    (void)outcome(st, SM_OK, SM_OK, "audit");
    if (M.tainted)
        return;
    FZ_CHECK((st == SM_OK) == (at == 0), "audit: %s with the %u-th mprotect refused", fz_st(st), at);
    if (at > 2 * g && at <= 2 * g + cc)
        FZ_CHECK(st == compact, "audit: %s, the compact model %s", fz_st(st), fz_st(compact));
    /* The secrets' calls, the compact slots', then the shares' (up to two fewer opens if
       one was left open). */
    want = 2 * g - (at != 0 && at <= 2 * g && at % 2 == 1) + cc;
    got = own[SM_OS_MPROTECT];
    if (!intr && (at == 0 || at <= 2 * g + cc)) {
        unsigned long lo = want + (coffer ? (M.share_open ? 2 : 4) : 0);
        unsigned long hi = want + (coffer ? 4 : 0);

        FZ_CHECK(got >= lo && got <= hi, "audit: %lu calls of mprotect, want %lu..%lu (%u at rest)",
                 got, lo, hi, g);
    } else if (!intr) {
        FZ_CHECK(coffer && got > want && got <= want + 4,
                 "audit: %lu calls of mprotect, the shares' refused (%u at rest)", got, g);
    }
    if (at != 0 && at <= 2 * g && at % 2 == 0)
        rest[at / 2 - 1]->audited = true;
}

/*
 * The protections and the version (runtime.h, version.h), none with an OS call: under
 * the harness's configuration (SM_LOCK_REQUIRED, anonymous backing) Linux's shim gives
 * every protection but SM_CAP_NODIRECTMAP (spec/platforms.md); sm_platform_require
 * agrees with sm_platform_caps bit by bit and refuses bits outside SM_CAP_ALL; the
 * version functions give the header's numbers and string.
 */
void op_platform(fz_in *in)
{
    const unsigned caps = SM_CAP_LOCKED | SM_CAP_NODUMP | SM_CAP_NOFORK | SM_CAP_GUARD;
    unsigned ask = fz_u8(in);
    sm_status want = (ask & ~SM_CAP_ALL) != 0 ? SM_E_INVAL
                     : (ask & caps) == ask    ? SM_OK
                                              : SM_E_UNSUPPORTED, st;
    char v[32];
    fz_calls c0, c1, own = { 0 };

    fz_calls_now(c0);
    FZ_CHECK(sm_platform_caps() == caps, "sm_platform_caps: %#x, want %#x", sm_platform_caps(),
             caps);
    st = sm_platform_require(ask);
    FZ_CHECK(st == want, "sm_platform_require(%#x): %s, want %s", ask, fz_st(st), fz_st(want));
    snprintf(v, sizeof v, "%d.%d.%d", sm_version_major(), sm_version_minor(), sm_version_patch());
    FZ_CHECK(sm_version_major() == SM_VERSION_MAJOR && sm_version_minor() == SM_VERSION_MINOR &&
                 sm_version_patch() == SM_VERSION_PATCH && strcmp(v, SM_VERSION_STRING) == 0 &&
                 strcmp(sm_version_string(), SM_VERSION_STRING) == 0,
             "version %s (%s), header %s", sm_version_string(), v, SM_VERSION_STRING);
    fz_calls_now(c1);
    fz_calls_add(own, c0, c1);
    check_calls("platform and version", own, NULL);
    fz_trace("platform %#x: %s", ask, fz_st(st));
}

void op_init(fz_in *in)
{
    sm_config cfg = { 0 };
    uint8_t how = fz_u8(in) % 5;
    sm_status want = SM_OK, st;

    if (how == 1) {
        cfg.lock_policy = SM_LOCK_BEST_EFFORT;
        want = SM_E_STATE;
    } else if (how == 2) {
        cfg.backing = SM_BACKING_SECRETMEM_REQUIRED;
        want = SM_E_STATE;
    } else if (how == 3) {
        cfg.lock_policy = (sm_lock_policy)(2 + fz_u8(in));
        want = SM_E_INVAL;
    } else if (how == 4) {
        cfg.backing = (sm_backing)(3 + fz_u8(in));
        want = SM_E_INVAL;
    }
    st = sm_init(how == 0 && (fz_u8(in) & 1) ? NULL : &cfg);
    fz_trace("init (%u): %s", how, fz_st(st));
    FZ_CHECK(st == want, "sm_init: %s, want %s", fz_st(st), fz_st(want));
}

void op_status(fz_in *in)
{
    int s = (int)(fz_u8(in) % 16) - 1;
    const char *str = sm_status_str((sm_status)s);

    FZ_CHECK(str != NULL, "sm_status_str(%d) is NULL", s);
    if (s >= SM_OK && s <= SM_E_SYS)
        FZ_CHECK(strncmp(str, "SM_", 3) == 0, "sm_status_str(%d): %s", s, str);
    FZ_CHECK((page & (page - 1)) == 0 && sm_page_size() == page, "sm_page_size");
}

/* The key's test hooks (clean of faults: they are not under test). */
void op_coffer(fz_in *in)
{
    uint8_t how = fz_u8(in);

    fz_faults_clear(&F);
    if (how & 2) {
        uint8_t key[32], left[32], right[32];
        sm_status st = smi_coffer_test_peek(key, left, right);

        fz_trace("coffer: peek: %s", fz_st(st));
        FZ_CHECK(st == (fz_coffer_exists() ? SM_OK : SM_E_STATE), "peek: %s", fz_st(st));
    } else if (how & 1) {
        /* The next view finds the split older than SMI_COFFER_RESPLIT_NS and redoes it. */
        smi_coffer_test_age(SMI_COFFER_RESPLIT_NS + how);
        M.aged = true;
        fz_trace("coffer: aged");
    } else {
        sm_status st = smi_coffer_test_set_counter(UINT64_MAX);

        fz_trace("coffer: nonces used up: %s", fz_st(st));
        FZ_CHECK(st == SM_OK || st == SM_E_STATE, "set_counter: %s", fz_st(st));
        if (st == SM_OK)
            M.exhausted = true;
    }
}

/* A handle of each kind, live or stale, as every other kind, and forged ids. */
void op_stale(fz_in *in)
{
    uint8_t how = fz_u8(in);
    uint64_t id;
    sm_buffer out;

    switch (how % 4) {
    case 0:
        id = M.b[(how >> 2) % NB].h.id;
        break;
    case 1:
        id = M.e[(how >> 2) % NE].h.id;
        break;
    case 2:
        id = M.s[(how >> 2) % NS].h.id;
        break;
    default: {
        /* Never handed out: id 0, kind 0 or 15, generation 0, an index out of range. */
        static const uint64_t forged[] = {
            0, 0x0000000100000000ull, 0xf000000100000000ull, 0x1000000000000000ull,
            0x10000001ffffffffull, 0x20000001ffffffffull, 0x30000001ffffffffull,
            0x4000000100000000ull,
        };

        id = forged[(how >> 2) % 8];
        break;
    }
    }
    /* As every kind but its own (all kinds, for forged ids). */
    if (how % 4 != 0) {
        sm_buffer b = { id };
        bool eq;

        FZ_CHECK(sm_buffer_size(b) == 0 && sm_buffer_data(b) == NULL && !sm_buffer_is_alive(b) &&
                     !sm_buffer_is_mutable(b), "a non-buffer id works as a buffer");
        FZ_CHECK(sm_buffer_freeze(b) == SM_E_STATE && sm_buffer_melt(b) == SM_E_STATE &&
                     sm_buffer_wipe(b) == SM_E_STATE && sm_buffer_destroy(b) == SM_E_STATE &&
                     sm_buffer_equal(b, src, 1, &eq) == SM_E_STATE,
                 "a non-buffer id works as a buffer");
    }
    if (how % 4 != 1) {
        sm_enclave e = { id };

        FZ_CHECK(sm_enclave_size(e) == 0 && sm_enclave_destroy(e) == SM_E_STATE &&
                     sm_enclave_open(e, &out) == SM_E_STATE,
                 "a non-enclave id works as an enclave");
    }
    if (how % 4 != 2) {
        sm_stream s = { id };
        size_t got;

        FZ_CHECK(sm_stream_size(s) == 0 && sm_stream_destroy(s) == SM_E_STATE &&
                     sm_stream_read(s, src, 1, &got) == SM_E_STATE &&
                     sm_stream_write(s, src, 0) == SM_E_STATE &&
                     sm_stream_next(s, &out) == SM_E_STATE,
                 "a non-stream id works as a stream");
    }
    {
        sm_secret x = { id };
        size_t got;

        FZ_CHECK(sm_secret_size(x) == 0 && sm_secret_is_closed(x) &&
                     sm_secret_close(x) == SM_E_STATE &&
                     sm_secret_read_at(x, 0, src, 1, &got) == SM_E_STATE,
                 "a non-secret id works as a secret");
    }
    fz_trace("stale/forged id %016llx", (unsigned long long)id);
}

/* NULL out-pointers and NULL sources: SM_E_INVAL, before anything else. */
void op_null_args(fz_in *in)
{
    sm_buffer b = M.b[fz_u8(in) % NB].h;
    sm_enclave e = M.e[fz_u8(in) % NE].h;
    sm_stream s = M.s[fz_u8(in) % NS].h;
    sm_buffer bo;
    sm_enclave eo;
    sm_config bad = { .lock_policy = (sm_lock_policy)7 };
    void *p;
    size_t got;
    bool eq;
    sm_status st;

#define INVAL(call)                                                                       \
    do {                                                                                  \
        st = (call);                                                                      \
        FZ_CHECK(st == SM_E_INVAL, "%s: %s, want SM_E_INVAL", #call, fz_st(st));           \
    } while (0)
    /* With a handle, which may be stale: spec/api.md does not rank the two errors. */
#define INVAL_OR_STATE(call)                                                              \
    do {                                                                                  \
        st = (call);                                                                      \
        FZ_CHECK(st == SM_E_INVAL || st == SM_E_STATE, "%s: %s, want SM_E_INVAL", #call,   \
                 fz_st(st));                                                              \
    } while (0)
    INVAL(sm_buffer_new(8, NULL));
    INVAL(sm_buffer_from_bytes(NULL, 8, &bo));
    INVAL(sm_buffer_from_bytes(src, 8, NULL));
    INVAL(sm_buffer_random(8, NULL));
    INVAL_OR_STATE(sm_buffer_copy(b, NULL, 4));
    INVAL_OR_STATE(sm_buffer_move_at(b, 0, NULL, 4));
    INVAL_OR_STATE(sm_buffer_equal(b, src, 1, NULL));
    INVAL_OR_STATE(sm_buffer_equal(b, NULL, 3, &eq));
    INVAL_OR_STATE(sm_buffer_seal(b, NULL));
    INVAL(sm_buffer_from_fd(0, 8, NULL));
    INVAL(sm_buffer_from_fd(0, 0, &bo));
    INVAL(sm_buffer_from_fd_until(0, '\n', NULL));
    INVAL(sm_buffer_from_fd_all(0, NULL));
    INVAL(sm_enclave_new(NULL, 4, &eo));
    INVAL(sm_enclave_new(src, 4, NULL));
    INVAL(sm_enclave_random(4, NULL));
    INVAL_OR_STATE(sm_enclave_open(e, NULL));
    INVAL(sm_stream_new(NULL));
    INVAL_OR_STATE(sm_stream_write(s, NULL, 3));
    INVAL_OR_STATE(sm_stream_read(s, NULL, 3, &got));
    INVAL_OR_STATE(sm_stream_read(s, src, 3, NULL));
    INVAL_OR_STATE(sm_stream_next(s, NULL));
    INVAL_OR_STATE(sm_stream_flush(s, NULL));
    INVAL(sm_stats_get(NULL));
    INVAL(sm_init(&bad));
    INVAL(sm_mem_alloc(8, NULL));
    INVAL(sm_mem_alloc(0, &p));
    INVAL(sm_mem_lock(NULL, 8));
    INVAL(sm_mem_unlock(src, 0));
    INVAL(sm_mem_protect(NULL, 8, SM_PROT_READ));
    INVAL(sm_mem_free(NULL, 8));
    INVAL(sm_random(NULL, 4));
#undef INVAL
#undef INVAL_OR_STATE
    FZ_CHECK(sm_random(NULL, 0) == SM_OK && sm_equal(src, src2, 0), "zero-length calls");
    sm_wipe(NULL, 0);
    fz_trace("NULL arguments");
}
