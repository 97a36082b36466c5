/* SPDX-License-Identifier: ISC */
/* The public memory layer (securemem/mem.h): argument checks over the OS shim. */
#include "inner.h"

static bool page_aligned(const void *p)
{
    return ((uintptr_t)p & (sm_os_page_size() - 1)) == 0;
}

/*
 * Whether [p, p + n), rounded out to whole pages, ends inside the address space. The
 * kernel rounds the length up to whole pages too, and a length that runs past the top
 * wraps there to a small one: mlock, munlock and mprotect then succeed on nothing
 * (issue 18 §5). So such a length is refused here, SM_E_INVAL, before any system call.
 */
static bool range_ok(const void *p, size_t n)
{
    uintptr_t top = UINTPTR_MAX - (sm_os_page_size() - 1); /* the last page's start */

    return (uintptr_t)p <= top && n <= top - (uintptr_t)p;
}

size_t sm_page_size(void)
{
    return sm_os_page_size();
}

sm_status sm_mem_alloc(size_t n, void **out)
{
    size_t len = smi_round_up(n, sm_os_page_size());
    void *p;
    sm_status st;

    if (out == NULL || len == 0)
        return SM_E_INVAL;
    st = sm_os_mmap(len, SM_PROT_READWRITE, &p);
    if (st != SM_OK)
        return st;
    st = sm_os_madvise(p, len, SM_OS_DONTDUMP);
    if (st == SM_OK)
        st = sm_os_madvise(p, len, SM_OS_WIPEONFORK);
    if (st != SM_OK) {
        (void)sm_os_munmap(p, len);
        return st;
    }
    *out = p;
    return SM_OK;
}

sm_status sm_mem_free(void *p, size_t n)
{
    size_t len = smi_round_up(n, sm_os_page_size());
    sm_status st;

    if (p == NULL || len == 0 || !page_aligned(p) || !range_ok(p, len))
        return SM_E_INVAL;
    st = sm_os_mprotect(p, len, SM_PROT_READWRITE);
    if (st != SM_OK)
        return st;
    smi_wipe(p, len);
    return sm_os_munmap(p, len);
}

sm_status sm_mem_lock(void *p, size_t n)
{
    if (p == NULL || n == 0 || !range_ok(p, n))
        return SM_E_INVAL;
    return smi_lock_pages(p, n);
}

sm_status sm_mem_unlock(void *p, size_t n)
{
    if (p == NULL || n == 0 || !range_ok(p, n))
        return SM_E_INVAL;
    return sm_os_munlock(p, n);
}

sm_status sm_mem_protect(void *p, size_t n, sm_prot prot)
{
    if (p == NULL || n == 0 || !page_aligned(p) || !range_ok(p, n) ||
        (unsigned)prot > SM_PROT_READWRITE)
        return SM_E_INVAL;
    return sm_os_mprotect(p, n, prot);
}

void sm_wipe(void *p, size_t n)
{
    if (p != NULL)
        smi_wipe(p, n);
}

bool sm_equal(const void *a, const void *b, size_t n)
{
    if (n == 0)
        return true;
    return smi_equal(a, b, n) == 1;
}

sm_status sm_random(void *p, size_t n)
{
    sm_status st;

    if (n == 0)
        return SM_OK;
    if (p == NULL)
        return SM_E_INVAL;
    st = sm_os_random(p, n);
    if (st != SM_OK)
        smi_wipe(p, n);
    return st;
}

sm_status sm_disable_core_dumps(void)
{
    return sm_os_disable_core_dumps();
}
