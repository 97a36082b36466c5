/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_HANDLES_H
#define SECUREMEM_HANDLES_H

#include <securemem/common.h>

SM_BEGIN_DECLS

/*
 * Handles are plain values: copy them freely. The id 0 is never valid, so a zeroed
 * handle is a safe "no object" value. Once an object is destroyed, closed or purged,
 * every copy of its handle is stale for the life of the process, because ids are never
 * reused (SM-REQ-040). A stale handle gives SM_E_STATE (queries: false, 0 or NULL) and
 * never undefined behaviour. A handle of one kind is stale when passed as another kind.
 */
typedef struct sm_buffer  { uint64_t id; } sm_buffer;
typedef struct sm_enclave { uint64_t id; } sm_enclave;
typedef struct sm_stream  { uint64_t id; } sm_stream;
typedef struct sm_secret  { uint64_t id; } sm_secret;

SM_END_DECLS

#endif
