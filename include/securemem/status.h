/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_STATUS_H
#define SECUREMEM_STATUS_H

#include <securemem/common.h>

SM_BEGIN_DECLS

/*
 * The one result type of the library. The values are fixed by the API contract and
 * never renumbered; spec/status.tsv lists them with the OS errors that map to each.
 */
typedef enum sm_status {
    SM_OK = 0,
    SM_E_INVAL,       /* bad argument: NULL out-pointer, zero or overflowing size, bad offset */
    SM_E_STATE,       /* not allowed in the object's state, or a stale/destroyed/closed handle */
    SM_E_NOMEM,       /* the OS refused address space or a mapping (ENOMEM, vm.max_map_count) */
    SM_E_LOCK,        /* the OS refused to lock pages (RLIMIT_MEMLOCK, quota, privilege) */
    SM_E_PROT,        /* the OS refused a protection change */
    SM_E_AUTH,        /* authenticated decryption failed */
    SM_E_RANDOM,      /* the OS random source failed */
    SM_E_BUSY,        /* a try-variant would have had to wait */
    SM_E_IO,          /* reading a file descriptor failed, or it ended early */
    SM_E_EOF,         /* a stream has no more data */
    SM_E_UNSUPPORTED, /* not available on this OS or kernel */
    SM_E_SYS,         /* any other OS failure */
    /*
     * Added after spec/api.md, from 32 on: a program written against it alone takes
     * SM_E_SYS + 1 for an unknown value, and it still is one.
     */
    SM_E_READONLY = 32, /* memory the call must wipe is read-only (a FROZEN buffer's data) */
    SM_E_CALLBACK,      /* a callback of the caller failed: its generic way to say so */
    /*
     * SM_E_USER to SM_E_USER_MAX: the caller's own statuses. The library never returns
     * one of its own accord; a callback (sm_bytes_fn, sm_fill_fn, a custom factory's
     * hook) that returns one has it passed through unchanged, as every status of a
     * callback is, and sm_status_str names the range.
     */
    SM_E_USER = 256,
    SM_E_USER_MAX = 511
} sm_status;

/*
 * A static, human-readable name for s, such as "SM_E_LOCK: the OS refused to lock
 * pages". Never NULL: an unknown value gives a fixed "unknown status" string.
 */
SM_API const char *sm_status_str(sm_status s);

/*
 * The OS error code (errno on POSIX) behind the last status from the OS that a call of
 * this library returned on the calling thread, or 0 if there was none yet. It is set
 * only where an OS call's failure becomes the call's status: SM_E_NOMEM, SM_E_LOCK,
 * SM_E_PROT, SM_E_RANDOM, SM_E_UNSUPPORTED, SM_E_SYS, SM_E_IO when the read failed,
 * and SM_E_READONLY (EFAULT). An OS call that the library expects to fail and gets over
 * (probing whether an fd can seek, for one) leaves it alone. A status that does not come
 * from the OS (SM_E_INVAL, SM_E_STATE, SM_E_AUTH, SM_E_BUSY, SM_E_EOF, SM_E_CALLBACK, a
 * callback's own), and a successful call, leave it as it was, so it may name an earlier
 * failure: read it only right after a status from the OS. The fd readers set it to 0
 * when their SM_E_IO or SM_E_EOF means that the input ended, not that a read failed.
 */
SM_API int sm_last_os_error(void);

SM_END_DECLS

#endif
