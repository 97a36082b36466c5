/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_ENCLAVE_H
#define SECUREMEM_ENCLAVE_H

#include <securemem/common.h>
#include <securemem/handles.h>
#include <securemem/status.h>

SM_BEGIN_DECLS

/*
 * Enclaves (memguard's Enclave): data encrypted at rest with an AEAD from BearSSL,
 * constant time: AES-256-GCM where the CPU has AES-NI and PCLMUL, ChaCha20-Poly1305
 * otherwise (spec/enclave-key.md). The ciphertext lives in ordinary pages; the key is
 * never whole in ordinary memory, is split across two guarded regions and re-split
 * periodically. Each enclave's ciphertext is bound to its size and to a random id of
 * that enclave, so truncation, and a ciphertext moved into another enclave, are
 * detected (SM_E_AUTH).
 *
 * Decryption that fails authentication gives SM_E_AUTH and creates or changes no
 * buffer. The enclave key lives until sm_purge; enclaves made before a purge, or before
 * a fork in the child, are stale or give SM_E_AUTH.
 * Common errors: SM_E_INVAL (NULL pointers, size 0), SM_E_STATE (stale handle), and the
 * OS errors of making the key or the buffers.
 */

/*
 * Encrypt a copy of the size bytes at src; src is wiped on success, untouched on error,
 * including SM_E_STATE from an sm_purge that overtakes the call. A src that cannot be
 * written (a FROZEN buffer's data) is SM_E_READONLY, since the cipher works in place there.
 */
SM_API SM_MUST_CHECK sm_status sm_enclave_new(void *src, size_t size, sm_enclave *out);
/* An enclave of size random bytes, which never exist in plaintext outside a guarded region. */
SM_API SM_MUST_CHECK sm_status sm_enclave_random(size_t size, sm_enclave *out);
/*
 * Decrypt into a new FROZEN buffer; e stays as it is. The buffer's region may be one
 * that an earlier buffer of the same page count held, wiped (spec/layout.md, "The
 * pool"): its sm_buffer_destroy leaves the region wiped, shut and still locked for the
 * next open, counted in sm_stats.bytes_locked until then; sm_purge unmaps it.
 */
SM_API SM_MUST_CHECK sm_status sm_enclave_open(sm_enclave e, sm_buffer *out);
/*
 * Decrypt into dst, which must be MUTABLE (else SM_E_STATE) and exactly the enclave's
 * size (else SM_E_INVAL). On SM_E_AUTH dst is left as it was.
 */
SM_API SM_MUST_CHECK sm_status sm_enclave_open_into(sm_enclave e, sm_buffer dst);
/* The plaintext size; 0 if stale. */
SM_API size_t sm_enclave_size(sm_enclave e);
/* Discard the ciphertext; every copy of e becomes stale. */
SM_API SM_MUST_CHECK sm_status sm_enclave_destroy(sm_enclave e);

/*
 * Seal buffer b (MUTABLE or FROZEN) into a new enclave; b is wiped, destroyed and stale
 * on success, unchanged on error. The canary is checked as by sm_buffer_destroy.
 */
SM_API SM_MUST_CHECK sm_status sm_buffer_seal(sm_buffer b, sm_enclave *out);

SM_END_DECLS

#endif
