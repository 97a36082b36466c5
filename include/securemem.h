/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_H
#define SECUREMEM_H

/*
 * securemem: memory for secrets (keys, passwords, tokens).
 *
 * Conventions (they hold for every header under <securemem/>):
 *
 *  - Every function is thread-safe unless its comment says otherwise.
 *  - Functions that can fail return an sm_status. SM_OK is 0. A call that returns an
 *    error MUST leave everything the caller can observe as it was: nothing is leaked,
 *    nothing is half-built, and no out-parameter is written.
 *  - Out-pointers MUST NOT be NULL; a NULL out-pointer is SM_E_INVAL. Input pointers
 *    MAY be NULL only where the length is 0 and the comment allows it.
 *  - The library never prints, except the final message of a panic, and never exits
 *    the process, except in sm_safe_exit, sm_panic and a detected integrity failure
 *    (a damaged canary), which panics on purpose and is never returned as an error.
 *  - The library never calls malloc: its own bookkeeping lives in pages it maps itself.
 *  - Define SM_NO_MUST_CHECK before including to drop the warn_unused_result attribute
 *    from the status-returning functions.
 *
 * The normative contract is the project's spec/api.md; spec/ holds the requirements
 * (SM-REQ-nnn) that each declaration below cites.
 */

#include <securemem/status.h>
#include <securemem/handles.h>
#include <securemem/runtime.h>
#include <securemem/mem.h>
#include <securemem/buffer.h>
#include <securemem/enclave.h>
#include <securemem/stream.h>
#include <securemem/secret.h>
#include <securemem/version.h>

#endif
