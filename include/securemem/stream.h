/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_STREAM_H
#define SECUREMEM_STREAM_H

#include <securemem/common.h>
#include <securemem/handles.h>
#include <securemem/status.h>

SM_BEGIN_DECLS

/*
 * Streams (memguard's Stream): a FIFO of bytes kept as a sequence of sealed chunks, each
 * 4 pages holding up to 4 pages less 64 bytes of ciphertext and nothing else, carved from
 * runs of 1 up to 2 MiB of chunks that grow with the data; the stream's index of its
 * chunks lies between guard pages. Each chunk is bound to the stream and to its
 * position in it, and the stream's end is authenticated: chunks moved, replayed, taken
 * from another stream or cut off give SM_E_AUTH, consuming nothing. The only plaintext a stream keeps is transient, in one chunk-sized guarded
 * buffer of its own, wiped after each call; next and flush decrypt into the buffer they
 * return. The memory used is the runs of the chunks that the data fills (at most three
 * times those chunks plus two runs; an empty stream has none), that one buffer, and the
 * index (64 bytes per chunk, at the stream's largest).
 *
 * Each call is all or nothing: a write that fails writes nothing and leaves src as it
 * was; a read that fails consumes nothing (and wipes what it had put in dst).
 * Common errors: SM_E_INVAL (NULL pointers), SM_E_STATE (stale handle), SM_E_EOF (the
 * stream is empty), SM_E_AUTH (a chunk or the end fails authentication), SM_E_RANDOM
 * (new: no id can be drawn), and the OS errors of mapping chunks or using the enclave key.
 */

SM_API SM_MUST_CHECK sm_status sm_stream_new(sm_stream *out);
/* Append the n bytes at src (wiped on success; SM_E_READONLY if src cannot be written); n == 0
 * is SM_OK. */
SM_API SM_MUST_CHECK sm_status sm_stream_write(sm_stream s, void *src, size_t n);
/* Take up to cap bytes from the front into dst; *got says how many (SM_E_EOF: none held). */
SM_API SM_MUST_CHECK sm_status sm_stream_read(sm_stream s, void *dst, size_t cap, size_t *got);
/* The front chunk (what one write placed in it, at most one chunk) as a FROZEN buffer. */
SM_API SM_MUST_CHECK sm_status sm_stream_next(sm_stream s, sm_buffer *out);
/* Everything held, as one FROZEN buffer; the stream is then empty. */
SM_API SM_MUST_CHECK sm_status sm_stream_flush(sm_stream s, sm_buffer *out);
/* The bytes held, without decrypting anything; 0 if stale. */
SM_API size_t sm_stream_size(sm_stream s);
SM_API SM_MUST_CHECK sm_status sm_stream_destroy(sm_stream s);

SM_END_DECLS

#endif
