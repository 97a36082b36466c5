/* SPDX-License-Identifier: ISC */
#ifndef SM_VG_H
#define SM_VG_H

/*
 * Race-detector annotations, for the helgrind/DRD flavour only (SM_VALGRIND_ANNOTATE,
 * the `vg` build of the GNUmakefile: `make test-helgrind`, `make test-drd`). Everywhere
 * else, the release library included, they expand to nothing.
 *
 * Helgrind and DRD follow pthread calls but not C11 atomics. To them an atomic is a
 * plain variable that threads write without a lock, and data published with a release
 * store and read after an acquire load (a registry slot's body, the enclave key's
 * regions, the AEAD choice made under sm_os_call_once) is unordered. So each atomic is
 * declared once (SMI_VG_ATOMIC: not checked) and each release/acquire pair that
 * publishes plain data is declared where it happens (SMI_VG_PUBLISH before the release,
 * SMI_VG_RECEIVE after the acquire). ThreadSanitizer models C11 atomics itself and
 * needs none of this; it checks the same code unannotated.
 *
 * Each macro issues the DRD request and the Helgrind request; a tool ignores the other
 * tool's request, and outside Valgrind a request costs a few instructions and does
 * nothing. They are statements, not system calls, and are async-signal-safe.
 */
#if defined(SM_VALGRIND_ANNOTATE)
#include <valgrind/drd.h>
#include <valgrind/helgrind.h>

#define SMI_VG_PUBLISH(p)                                                                  \
    do {                                                                                   \
        VALGRIND_DO_CLIENT_REQUEST_STMT(VG_USERREQ__DRD_ANNOTATE_HAPPENS_BEFORE, (p), 0, 0, \
                                        0, 0);                                             \
        VALGRIND_DO_CLIENT_REQUEST_STMT(_VG_USERREQ__HG_USERSO_SEND_PRE, (p), 0, 0, 0, 0);  \
    } while (0)
#define SMI_VG_RECEIVE(p)                                                                 \
    do {                                                                                  \
        VALGRIND_DO_CLIENT_REQUEST_STMT(VG_USERREQ__DRD_ANNOTATE_HAPPENS_AFTER, (p), 0, 0, \
                                        0, 0);                                            \
        VALGRIND_DO_CLIENT_REQUEST_STMT(_VG_USERREQ__HG_USERSO_RECV_POST, (p), 0, 0, 0, 0); \
    } while (0)
#define SMI_VG_ATOMIC(p, n)                                                                \
    do {                                                                                   \
        VALGRIND_DO_CLIENT_REQUEST_STMT(VG_USERREQ__DRD_START_SUPPRESSION, (p), (n), 0, 0, \
                                        0);                                                \
        VALGRIND_DO_CLIENT_REQUEST_STMT(_VG_USERREQ__HG_ARANGE_MAKE_UNTRACKED, (p), (n), 0, \
                                        0, 0);                                             \
    } while (0)
/*
 * Pages just opened with mprotect: Helgrind leaves memory that was mapped PROT_NONE
 * untracked after an mprotect to READWRITE, so without this it would check no access to
 * a guarded region's data at all. (DRD tracks them anyway; the request is harmless.)
 */
#define SMI_VG_NEW_MEMORY(p, n) \
    VALGRIND_DO_CLIENT_REQUEST_STMT(VG_USERREQ__HG_CLEAN_MEMORY, (p), (n), 0, 0, 0)
/* A function that declares a file's static atomics before main (a constructor). */
#define SMI_VG_AT_START(name) __attribute__((constructor)) static void name(void)
#else
#define SMI_VG_PUBLISH(p) ((void)(p))
#define SMI_VG_RECEIVE(p) ((void)(p))
#define SMI_VG_ATOMIC(p, n) ((void)(p), (void)(n))
#define SMI_VG_NEW_MEMORY(p, n) ((void)(p), (void)(n))
#define SMI_VG_AT_START(name) __attribute__((unused)) static void name(void)
#endif

/*
 * Constant-time checking (`make ct`, SM_CTGRIND: the ct flavour only). The test marks
 * secrets undefined for Memcheck, which then reports any branch or address that depends
 * on them. A value that is public by design although computed from secrets is declared
 * so where it is computed (SMI_CT_PUBLIC), each with its reason at the call site;
 * sanitizers/README.md lists them. Nothing everywhere else.
 */
#if defined(SM_CTGRIND)
#include <valgrind/memcheck.h>
#define SMI_CT_PUBLIC(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#else
#define SMI_CT_PUBLIC(p, n) ((void)(p), (void)(n))
#endif

#endif
