/* SPDX-License-Identifier: ISC */
#include "inner.h"

/* The same wording as spec/status.tsv, which tests/unit/test_status.c compares. */
static const char *const names[] = {
    [SM_OK] = "SM_OK: success",
    [SM_E_INVAL] = "SM_E_INVAL: bad argument",
    [SM_E_STATE] = "SM_E_STATE: not allowed in this state (a stale or closed handle, or "
                   "sm_init after the library was initialised otherwise)",
    [SM_E_NOMEM] = "SM_E_NOMEM: the OS refused address space or a mapping",
    [SM_E_LOCK] = "SM_E_LOCK: the OS refused to lock pages",
    [SM_E_PROT] = "SM_E_PROT: the OS refused a protection change",
    [SM_E_AUTH] = "SM_E_AUTH: authenticated decryption failed",
    [SM_E_RANDOM] = "SM_E_RANDOM: the OS random source failed",
    [SM_E_BUSY] = "SM_E_BUSY: the call would have had to wait",
    [SM_E_IO] = "SM_E_IO: reading a file descriptor failed or ended early",
    [SM_E_EOF] = "SM_E_EOF: the stream has no more data",
    [SM_E_UNSUPPORTED] = "SM_E_UNSUPPORTED: not available on this OS or kernel",
    [SM_E_SYS] = "SM_E_SYS: the OS failed",
    [SM_E_READONLY] = "SM_E_READONLY: the memory to wipe is read-only",
    [SM_E_CALLBACK] = "SM_E_CALLBACK: a callback failed",
};

const char *sm_status_str(sm_status s)
{
    /* The gap between SM_E_SYS and SM_E_READONLY stays unknown (status.h). */
    if ((unsigned)s < sizeof names / sizeof names[0] && names[s] != NULL)
        return names[s];
    if (s >= SM_E_USER && s <= SM_E_USER_MAX)
        return "SM_E_USER: a callback's own status";
    return "unknown sm_status";
}

int sm_last_os_error(void)
{
    return sm_os_last_error();
}
