/* SPDX-License-Identifier: ISC */
/*
 * Plain locked mappings: the storage of the protected factory (Asherah's
 * protectedmemory). Whole pages holding the data at their start, with no guard pages
 * and no canary, so a 32-byte key costs one page of address space instead of a guarded
 * region's three. They follow the same lock policy, backing, dump and fork rules and
 * counters as guarded regions (SM-REQ-025, SM-REQ-026, SM-REQ-092); region.c's calls
 * are not reused because its layout puts a guard page in front of everything.
 * System calls per operation: spec/syscalls.md.
 */
#include "inner.h"

static void count_live(const smi_plain *p, int sign)
{
    _Atomic uint64_t *c = p->locked ? &smi_stat_locked : &smi_stat_unlocked;

    if (sign > 0)
        atomic_fetch_add(c, p->len);
    else
        atomic_fetch_sub(c, p->len);
}

/*
 * Anonymous backing, 4 calls: mmap (READWRITE at once: no guard to keep closed), mlock,
 * madvise x2. Every plain mapping is the pool's, opened and shut at each take and give:
 * its pages are locked as they are first touched, as a pooled region's are
 * (smi_region_alloc_locked_on_touch in inner.h says why).
 */
static sm_status map_anon(smi_plain *p)
{
    void *base;
    sm_status st = sm_os_mmap(p->len, SM_PROT_READWRITE, &base);

    if (st != SM_OK)
        return st;
    p->base = base;
    p->locked = smi_lock_touched_pages(p->base, p->len) == SM_OK;
    if (!p->locked && smi_config_get()->lock_policy == SM_LOCK_REQUIRED) {
        st = SM_E_LOCK;
        goto out;
    }
    st = sm_os_madvise(p->base, p->len, SM_OS_DONTDUMP);
    if (st == SM_OK)
        st = sm_os_madvise(p->base, p->len, SM_OS_WIPEONFORK);
out:
    if (st != SM_OK) {
        (void)sm_os_munmap(p->base, p->len);
        p->base = NULL;
    }
    return st;
}

/*
 * memfd_secret backing, 6 calls, as region.c's map_secret: the shim maps a secretmem
 * file only over a reserved range, so the range is reserved first. The kernel marks the
 * mapping VM_DONTDUMP itself; DONTFORK because WIPEONFORK is refused on shared memory.
 */
static sm_status map_secret(smi_plain *p)
{
    void *base;
    int fd;
    sm_status st = sm_os_secretmem_create(p->len, &fd);

    if (st != SM_OK)
        return st;
    st = sm_os_mmap(p->len, SM_PROT_NONE, &base);
    if (st == SM_OK) {
        p->base = base;
        st = sm_os_mmap_fd(p->base, p->len, fd);
    }
    (void)sm_os_close(fd); /* the mapping keeps the file; the fd is gone either way */
    if (st == SM_OK)
        st = sm_os_madvise(p->base, p->len, SM_OS_DONTFORK);
    if (st != SM_OK) {
        if (p->base != NULL)
            (void)sm_os_munmap(p->base, p->len);
        p->base = NULL;
        return st;
    }
    p->locked = true;
    p->secretmem = true;
    return SM_OK;
}

sm_status smi_plain_alloc(size_t size, smi_plain *out)
{
    smi_plain p = { 0 };
    sm_status st;

    p.len = smi_round_up(size, sm_os_page_size());
    if (size == 0 || p.len == 0)
        return SM_E_INVAL;
    p.size = size;
    p.prot = SM_PROT_READWRITE;
    if (!smi_config_secretmem()) {
        st = map_anon(&p);
    } else {
        st = map_secret(&p);
        if (st == SM_E_LOCK && smi_lock_retry())
            st = map_secret(&p);
        /* The same per-mapping fallback as a region's (SM-REQ-026). */
        if ((st == SM_E_UNSUPPORTED || st == SM_E_LOCK) &&
            smi_config_get()->backing == SM_BACKING_SECRETMEM_PREFERRED)
            st = map_anon(&p);
    }
    if (st != SM_OK)
        return st;
    count_live(&p, +1);
    atomic_fetch_add(&smi_stat_allocations, 1);
    *out = p;
    return SM_OK;
}

sm_status smi_plain_adopt(uint8_t *base, size_t len, bool secretmem, size_t size,
                          smi_plain *out)
{
    smi_plain p = { 0 };
    sm_status st;

    if (size == 0 || smi_round_up(size, sm_os_page_size()) != len)
        return SM_E_INVAL;
    st = sm_os_mprotect(base, len, SM_PROT_READWRITE);
    if (st != SM_OK)
        return st;
    p.base = base;
    p.size = size;
    p.len = len;
    p.prot = SM_PROT_READWRITE;
    p.locked = true;
    p.secretmem = secretmem;
    /* Still counted locked from its first owner: only the allocation is new. */
    atomic_fetch_add(&smi_stat_allocations, 1);
    *out = p;
    return SM_OK;
}

/*
 * Opened read-write and all of the pages wiped, not only size bytes: a scrub's next
 * owner may have a longer size, and a free leaves nothing behind in any of them.
 */
static sm_status open_and_wipe(smi_plain *p)
{
    sm_status st = smi_plain_protect(p, SM_PROT_READWRITE);

    if (st == SM_OK)
        smi_wipe(p->base, p->len);
    return st;
}

sm_status smi_plain_scrub(smi_plain *p)
{
    sm_status st = open_and_wipe(p);

    return st != SM_OK ? st : smi_plain_protect(p, SM_PROT_READ);
}

sm_status smi_plain_protect(smi_plain *p, sm_prot prot)
{
    sm_status st;

    if (p->prot == prot)
        return SM_OK;
    st = sm_os_mprotect(p->base, p->len, prot);
    if (st == SM_OK)
        p->prot = prot;
    return st;
}

sm_status smi_plain_free(smi_plain *p)
{
    sm_status st = open_and_wipe(p);

    if (st != SM_OK)
        return st;
    /* munmap drops the lock too. On failure the pages stay mapped, wiped, freeable. */
    st = sm_os_munmap(p->base, p->len);
    if (st != SM_OK)
        return st;
    count_live(p, -1);
    smi_wipe(p, sizeof *p);
    return SM_OK;
}

sm_status smi_plain_drop(smi_plain *p)
{
    sm_status st = sm_os_munmap(p->base, p->len);

    if (st != SM_OK)
        return st;
    count_live(p, -1);
    smi_wipe(p, sizeof *p);
    return SM_OK;
}

bool smi_plain_purge(smi_plain *p)
{
    /* As smi_region_purge: pages that cannot be opened are still dropped by the unmap. */
    if (sm_os_mprotect(p->base, p->len, SM_PROT_READWRITE) == SM_OK)
        smi_wipe(p->base, p->len);
    (void)sm_os_munmap(p->base, p->len);
    count_live(p, -1);
    return true; /* no canary to find damaged */
}

void smi_plain_wipe_in_place(smi_plain *p)
{
    if (p->prot == SM_PROT_READWRITE ||
        sm_os_mprotect(p->base, p->len, SM_PROT_READWRITE) == SM_OK) {
        p->prot = SM_PROT_READWRITE;
        smi_wipe(p->base, p->size);
    }
}

/*
 * As smi_region_forget: a secretmem mapping is not in the child, so nothing to unmap,
 * and no count to take back (smi_stats_after_fork sets them).
 */
void smi_plain_forget(smi_plain *p)
{
    if (!p->secretmem)
        (void)sm_os_munmap(p->base, p->len);
}
