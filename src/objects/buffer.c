/* SPDX-License-Identifier: ISC */
/*
 * Buffers (securemem/buffer.h): a guarded region plus a state, kept in the registry
 * slot's body. Every operation asks the core's table (smi_buf_step) what it may do, does
 * the OS work, and commits the next state only once that work succeeded.
 */
#include <string.h>

#include "inner.h"

_Static_assert(sizeof(smi_buffer) <= SMI_SLOT_BODY, "a buffer descriptor fits in its slot");

/*
 * This kind's part in the registry's walks, registered before each publication
 * (smi_registry_kind): the registry sits below this module and never names it.
 */
static const smi_kind_ops kind_ops = { smi_buffer_purge, smi_buffer_wipe, smi_buffer_audit,
                                       smi_buffer_forget, NULL };

/* ---- constructors ---- */

static sm_status make_region(size_t size, smi_region *r)
{
    sm_status st = smi_runtime_ready();

    return st != SM_OK ? st : smi_region_alloc(size, NULL, r);
}

static sm_status freeze_and_publish(smi_region *r, sm_buffer *out);

/* Give r a handle, in state; on failure r is unmade, so the caller has nothing to undo. */
static sm_status publish(smi_region *r, smi_buf_state state, sm_buffer *out)
{
    smi_buffer b = { *r, state };
    uint64_t id;
    sm_status st;

    smi_registry_kind(SMI_KIND_BUFFER, &kind_ops);
    st = smi_registry_insert(SMI_KIND_BUFFER, &b, sizeof b, &id);
    if (st == SM_OK)
        out->id = id;
    else
        smi_region_unmake(r);
    smi_wipe(&b, sizeof b);
    return st;
}

sm_status smi_buffer_adopt(smi_region *r, sm_buffer *out)
{
    return freeze_and_publish(r, out);
}

static sm_status freeze_and_publish(smi_region *r, sm_buffer *out)
{
    sm_status st = smi_region_protect(r, SM_PROT_READ);

    if (st != SM_OK) {
        smi_region_unmake(r);
        return st;
    }
    return publish(r, SMI_BUF_FROZEN, out);
}

sm_status sm_buffer_new(size_t size, sm_buffer *out)
{
    smi_region r;
    sm_status st;

    if (out == NULL || size == 0)
        return SM_E_INVAL;
    st = make_region(size, &r);
    return st != SM_OK ? st : publish(&r, SMI_BUF_MUTABLE, out);
}

sm_status sm_buffer_from_bytes(void *src, size_t size, sm_buffer *out)
{
    smi_region r;
    sm_status st;

    if (out == NULL || src == NULL || size == 0)
        return SM_E_INVAL;
    st = make_region(size, &r);
    if (st != SM_OK)
        return st;
    /* The wipe of a read-only src (a FROZEN buffer's data) would fault (secret.c, make). */
    st = sm_os_writable(src, size);
    if (st != SM_OK) {
        smi_region_unmake(&r);
        return st;
    }
    memcpy(smi_region_data(&r), src, size);
    st = freeze_and_publish(&r, out);
    if (st == SM_OK)
        smi_wipe(src, size);
    return st;
}

sm_status sm_buffer_random(size_t size, sm_buffer *out)
{
    smi_region r;
    sm_status st;

    if (out == NULL || size == 0)
        return SM_E_INVAL;
    st = make_region(size, &r);
    if (st != SM_OK)
        return st;
    st = smi_rng_fill(smi_region_data(&r), size);
    if (st != SM_OK) {
        smi_region_unmake(&r);
        return st;
    }
    return freeze_and_publish(&r, out);
}

/* ---- file descriptors ---- */

sm_status sm_buffer_from_fd(int fd, size_t size, sm_buffer *out)
{
    smi_region r;
    size_t len = 0;
    sm_status st;

    if (out == NULL || size == 0)
        return SM_E_INVAL;
    st = make_region(size, &r);
    if (st != SM_OK)
        return st;
    while (st == SM_OK && len < size) {
        size_t got = 0;

        st = sm_os_read(fd, smi_region_data(&r) + len, size - len, &got);
        if (st == SM_OK && got == 0) {
            st = SM_E_IO; /* ended early: spec/api.md's SM_E_IO, with no OS error behind it */
            sm_os_set_last_error(0);
        }
        len += got;
    }
    if (st != SM_OK) {
        smi_region_unmake(&r);
        return st;
    }
    return freeze_and_publish(&r, out);
}

/*
 * Input of unknown length goes into a scratch region that doubles when full (the old
 * one is wiped as it is unmade), then into a region of the exact size, so that the data
 * still ends at the guard page. First capacity: what one inner page holds.
 *
 * The input is limited to FD_MAX bytes (buffer.h, SM-REQ-051): without a limit, /dev/zero
 * or a peer that never sends the delimiter doubled locked memory until the OS refused.
 * The scratch grows to FD_MAX + 1 bytes at most, so that one byte past the limit shows a
 * longer input: SM_E_NOMEM, with those FD_MAX + 1 bytes consumed and wiped. 16 MiB holds
 * any key, password, keytab or certificate bundle with room to spare (the suites read
 * 5 MiB), and bounds what one call locks to about three times that, at the last growth
 * and at the exact-size copy.
 */
#define FD_MAX ((size_t)1 << 24)

typedef struct scratch {
    smi_region r;
    size_t     len;
    bool       eof; /* the input ended (rather than at a delimiter) */
} scratch;

static sm_status scratch_grow(scratch *sc)
{
    size_t cap = sc->r.size;
    smi_region bigger;
    sm_status st;

    st = smi_region_alloc(cap <= FD_MAX / 2 ? cap * 2 : FD_MAX + 1, NULL, &bigger);
    if (st != SM_OK)
        return st;
    memcpy(smi_region_data(&bigger), smi_region_data(&sc->r), sc->len);
    smi_region_unmake(&sc->r);
    sc->r = bigger;
    return SM_OK;
}

static sm_status scratch_finish(scratch *sc, sm_buffer *out)
{
    smi_region exact;
    sm_status st;

    if (sc->len == 0) {
        /*
         * A buffer cannot be empty: no input at all is the end of it (SM_E_EOF), an
         * empty line is SM_E_IO; neither comes from a failed OS call.
         */
        st = sc->eof ? SM_E_EOF : SM_E_IO;
        sm_os_set_last_error(0);
    } else if (sc->len == sc->r.size) {
        return freeze_and_publish(&sc->r, out);
    } else {
        st = smi_region_alloc(sc->len, NULL, &exact);
        if (st == SM_OK) {
            memcpy(smi_region_data(&exact), smi_region_data(&sc->r), sc->len);
            smi_region_unmake(&sc->r);
            return freeze_and_publish(&exact, out);
        }
    }
    smi_region_unmake(&sc->r);
    return st;
}

/* Read into sc until end of file, or until delim when until is set. */
static sm_status scratch_fill(scratch *sc, int fd, bool until, uint8_t delim)
{
    bool bytewise = false;
    sm_status st = SM_OK;

    if (until) {
        uint64_t pos;
        int was = sm_os_last_error();

        st = sm_os_seek_cur(fd, 0, &pos);
        bytewise = st == SM_E_UNSUPPORTED;
        if (bytewise) {
            /* The probe's ESPIPE is an answer, not a failure the caller should see. */
            sm_os_set_last_error(was);
            st = SM_OK;
        }
    }
    while (st == SM_OK) {
        size_t got = 0, want;
        uint8_t *at;

        if (sc->len > FD_MAX) {
            st = SM_E_NOMEM;
            break;
        }
        if (sc->len == sc->r.size && (st = scratch_grow(sc)) != SM_OK)
            break;
        at = smi_region_data(&sc->r) + sc->len;
        want = bytewise ? 1 : sc->r.size - sc->len;
        st = sm_os_read(fd, at, want, &got);
        sc->eof = st == SM_OK && got == 0;
        if (st != SM_OK || got == 0)
            break;
        if (until) {
            for (size_t i = 0; i < got; i++) {
                if (at[i] != delim)
                    continue;
                /* Give back what follows the delimiter: a seek, or nothing when bytewise. */
                if (got - i - 1 > 0) {
                    uint64_t pos;

                    st = sm_os_seek_cur(fd, -(int64_t)(got - i - 1), &pos);
                }
                smi_wipe(at + i, got - i);
                sc->len += i;
                return st;
            }
        }
        sc->len += got;
    }
    return st;
}

static sm_status from_fd_scratch(int fd, bool until, uint8_t delim, sm_buffer *out)
{
    scratch sc = { .len = 0 };
    sm_status st;

    if (out == NULL)
        return SM_E_INVAL;
    st = make_region(sm_os_page_size() - SMI_CANARY_MIN, &sc.r);
    if (st != SM_OK)
        return st;
    st = scratch_fill(&sc, fd, until, delim);
    if (st != SM_OK) {
        smi_region_unmake(&sc.r);
        return st;
    }
    return scratch_finish(&sc, out);
}

sm_status sm_buffer_from_fd_until(int fd, uint8_t delim, sm_buffer *out)
{
    return from_fd_scratch(fd, true, delim, out);
}

sm_status sm_buffer_from_fd_all(int fd, sm_buffer *out)
{
    return from_fd_scratch(fd, false, 0, out);
}

/* ---- operations on a live buffer ---- */

/*
 * The buffer behind b, locked, if the table allows op in its state; *next is the state
 * to commit once the work is done. The caller releases the slot.
 */
sm_status smi_buffer_acquire(sm_buffer b, smi_buf_op op, smi_slot **s, smi_buffer **buf,
                             smi_buf_state *next)
{
    sm_status st = smi_registry_acquire(b.id, SMI_KIND_BUFFER, s);

    if (st != SM_OK)
        return st;
    *buf = (smi_buffer *)(void *)(*s)->body;
    st = smi_buf_step((*buf)->state, op, next);
    if (st != SM_OK)
        smi_registry_release(*s);
    return st;
}

static sm_status set_protection(sm_buffer b, smi_buf_op op, sm_prot prot)
{
    smi_slot *s;
    smi_buffer *buf;
    smi_buf_state next;
    sm_status st = smi_buffer_acquire(b, op, &s, &buf, &next);

    if (st != SM_OK)
        return st;
    st = smi_region_protect(&buf->r, prot);
    smi_buf_commit(&buf->state, next, st);
    smi_registry_release(s);
    return st;
}

sm_status sm_buffer_freeze(sm_buffer b)
{
    return set_protection(b, SMI_BOP_FREEZE, SM_PROT_READ);
}

sm_status sm_buffer_melt(sm_buffer b)
{
    return set_protection(b, SMI_BOP_MELT, SM_PROT_READWRITE);
}

/* Copy n bytes of src to off; wipe src afterwards when moving. */
static sm_status write_at(sm_buffer b, size_t off, void *src, size_t n, bool move)
{
    smi_slot *s;
    smi_buffer *buf;
    smi_buf_state next;
    sm_status st;

    if (src == NULL && n > 0)
        return SM_E_INVAL;
    st = smi_buffer_acquire(b, SMI_BOP_WRITE, &s, &buf, &next);
    if (st != SM_OK)
        return st;
    if (off > buf->r.size || n > buf->r.size - off) {
        st = SM_E_INVAL;
    } else if (move && (st = sm_os_writable(src, n)) != SM_OK) {
        /* Refused before the copy: the wipe of a read-only src would fault. */
    } else {
        /* n == 0 may come with a NULL src, which memcpy must not see. */
        if (n > 0)
            memcpy(smi_region_data(&buf->r) + off, src, n);
        if (move)
            smi_wipe(src, n);
    }
    smi_registry_release(s);
    return st;
}

sm_status sm_buffer_copy(sm_buffer b, const void *src, size_t n)
{
    return write_at(b, 0, (void *)(uintptr_t)src, n, false);
}

sm_status sm_buffer_copy_at(sm_buffer b, size_t off, const void *src, size_t n)
{
    return write_at(b, off, (void *)(uintptr_t)src, n, false);
}

sm_status sm_buffer_move(sm_buffer b, void *src, size_t n)
{
    return write_at(b, 0, src, n, true);
}

sm_status sm_buffer_move_at(sm_buffer b, size_t off, void *src, size_t n)
{
    return write_at(b, off, src, n, true);
}

static sm_status fill(sm_buffer b, bool random)
{
    smi_slot *s;
    smi_buffer *buf;
    smi_buf_state next;
    sm_status st = smi_buffer_acquire(b, SMI_BOP_WRITE, &s, &buf, &next);

    if (st != SM_OK)
        return st;
    if (random)
        st = smi_rng_fill(smi_region_data(&buf->r), buf->r.size);
    else
        smi_wipe(smi_region_data(&buf->r), buf->r.size);
    smi_registry_release(s);
    return st;
}

sm_status sm_buffer_scramble(sm_buffer b)
{
    return fill(b, true);
}

sm_status sm_buffer_wipe(sm_buffer b)
{
    return fill(b, false);
}

sm_status sm_buffer_equal(sm_buffer b, const void *data, size_t n, bool *equal)
{
    smi_slot *s;
    smi_buffer *buf;
    smi_buf_state next;
    sm_status st;
    size_t common;

    if (equal == NULL || (data == NULL && n > 0))
        return SM_E_INVAL;
    st = smi_buffer_acquire(b, SMI_BOP_READ, &s, &buf, &next);
    if (st != SM_OK)
        return st;
    /* Every byte of the common length is compared, whatever the lengths say. */
    common = n < buf->r.size ? n : buf->r.size;
    *equal = (smi_equal(smi_region_data(&buf->r), data, common) & (n == buf->r.size)) != 0;
    smi_registry_release(s);
    return SM_OK;
}

uint8_t *sm_buffer_data(sm_buffer b)
{
    smi_slot *s;
    smi_buffer *buf;
    smi_buf_state next;
    uint8_t *d;

    if (smi_buffer_acquire(b, SMI_BOP_READ, &s, &buf, &next) != SM_OK)
        return NULL;
    d = smi_region_data(&buf->r);
    smi_registry_release(s);
    return d;
}

size_t sm_buffer_size(sm_buffer b)
{
    smi_slot *s;
    smi_buffer *buf;
    smi_buf_state next;
    size_t n;

    if (smi_buffer_acquire(b, SMI_BOP_READ, &s, &buf, &next) != SM_OK)
        return 0;
    n = buf->r.size;
    smi_registry_release(s);
    return n;
}

bool sm_buffer_is_alive(sm_buffer b)
{
    return sm_buffer_size(b) != 0;
}

bool sm_buffer_is_mutable(sm_buffer b)
{
    smi_slot *s;
    smi_buffer *buf;
    smi_buf_state next;
    bool m;

    if (smi_buffer_acquire(b, SMI_BOP_READ, &s, &buf, &next) != SM_OK)
        return false;
    m = buf->state == SMI_BUF_MUTABLE;
    smi_registry_release(s);
    return m;
}

sm_status sm_buffer_destroy(sm_buffer b)
{
    smi_slot *s;
    smi_buffer *buf;
    smi_buf_state next;
    sm_status st = smi_buffer_acquire(b, SMI_BOP_DESTROY, &s, &buf, &next);

    if (st != SM_OK)
        return st;
    /* An enclave open's region goes back to the pool for the next open (pool.c). */
    st = smi_pool_give(&buf->r);
    if (st != SM_OK) {
        smi_registry_release(s);
        return st;
    }
    smi_registry_remove(s);
    return SM_OK;
}

/* ---- the registry's walks (smi_kind_ops) ---- */

bool smi_buffer_purge(void *body)
{
    return smi_region_purge(&((smi_buffer *)body)->r);
}

void smi_buffer_wipe(void *body)
{
    smi_region_wipe_in_place(&((smi_buffer *)body)->r);
}

sm_status smi_buffer_audit(void *body)
{
    return smi_region_audit(&((smi_buffer *)body)->r);
}

void smi_buffer_forget(void *body)
{
    smi_region_forget(&((smi_buffer *)body)->r);
}
