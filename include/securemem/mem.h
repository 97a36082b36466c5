/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_MEM_H
#define SECUREMEM_MEM_H

#include <securemem/common.h>
#include <securemem/status.h>

SM_BEGIN_DECLS

/*
 * The memory layer: thin, checked wrappers over the OS's page calls (memcall's
 * equivalent). These functions manage raw pages the caller owns; they keep no record
 * of them, do not need sm_init, and do not appear in sm_stats. The guarded objects
 * (buffers, enclaves, secrets) are built on the same OS shim, not on these calls.
 */

typedef enum { SM_PROT_NONE, SM_PROT_READ, SM_PROT_READWRITE } sm_prot;

/* The OS page size in bytes, a power of two. Never fails. */
SM_API size_t sm_page_size(void);

/*
 * Map n bytes, rounded up to whole pages: page-aligned, zeroed, READWRITE, not locked,
 * already excluded from core dumps (MADV_DONTDUMP) and from forked children
 * (MADV_WIPEONFORK) because it is meant for secrets. *out is written on success only.
 * Errors: SM_E_INVAL (n == 0, out NULL, n overflows when rounded), SM_E_NOMEM
 * (the OS refused the mapping), SM_E_UNSUPPORTED (a kernel without the advice) or
 * SM_E_SYS (the advice was refused); after an error nothing stays mapped.
 */
SM_API SM_MUST_CHECK sm_status sm_mem_alloc(size_t n, void **out);

/*
 * Wipe and unmap n bytes (rounded up to whole pages) at p, which came from
 * sm_mem_alloc, whatever their protection and lock state: the pages are made
 * READWRITE first so that they can be wiped.
 * Errors: SM_E_INVAL (p NULL or not page-aligned, n == 0 or overflowing, or the range
 * running past the end of the address space), SM_E_PROT
 * (the pages could not be made writable; nothing was wiped or unmapped), SM_E_SYS.
 */
SM_API SM_MUST_CHECK sm_status sm_mem_free(void *p, size_t n);

/*
 * Lock (unlock) the pages spanning [p, p+n) into RAM.
 * Errors: SM_E_INVAL (p NULL, n == 0, or the range, rounded out to whole pages, runs
 * past the end of the address space: the kernel would wrap such a length to a small one
 * and succeed on nothing), SM_E_LOCK (the OS refused: RLIMIT_MEMLOCK, privilege, or part
 * of the range is not mapped).
 */
SM_API SM_MUST_CHECK sm_status sm_mem_lock(void *p, size_t n);
SM_API SM_MUST_CHECK sm_status sm_mem_unlock(void *p, size_t n);

/*
 * Set the protection of the pages at p (page-aligned) spanning n bytes.
 * Errors: SM_E_INVAL (p NULL or unaligned, n == 0, prot out of range, or the range,
 * rounded up to whole pages, runs past the end of the address space), SM_E_PROT (the OS
 * refused, or part of the range is not mapped).
 */
SM_API SM_MUST_CHECK sm_status sm_mem_protect(void *p, size_t n, sm_prot prot);

/* Set n bytes at p to zero; the stores are never optimised away. p may be NULL if n == 0. */
SM_API void sm_wipe(void *p, size_t n);

/*
 * 1 iff the n bytes at a and b are equal. The time taken depends only on n, never on
 * the contents: every byte is read, there is no early exit and no data-dependent branch.
 * n == 0 gives true.
 */
SM_API bool sm_equal(const void *a, const void *b, size_t n);

/*
 * Fill n bytes at p from the OS CSPRNG (getrandom), retrying on interruption and on
 * short reads. n == 0 is SM_OK. Errors: SM_E_INVAL (p NULL with n > 0), SM_E_RANDOM.
 * On error the bytes at p are wiped.
 */
SM_API SM_MUST_CHECK sm_status sm_random(void *p, size_t n);

/*
 * Make the whole process non-dumpable: RLIMIT_CORE = 0 and, on Linux,
 * PR_SET_DUMPABLE = 0. Idempotent. Errors: SM_E_SYS.
 */
SM_API SM_MUST_CHECK sm_status sm_disable_core_dumps(void);

SM_END_DECLS

#endif
