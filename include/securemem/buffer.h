/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_BUFFER_H
#define SECUREMEM_BUFFER_H

#include <securemem/common.h>
#include <securemem/handles.h>
#include <securemem/status.h>

SM_BEGIN_DECLS

/*
 * Buffers (memguard's LockedBuffer): size bytes in a guarded region of their own
 * (spec/layout.md), locked, out of core dumps and children, ending exactly at a guard
 * page. States and what each operation does in each are spec/buffer-states.tsv:
 * MUTABLE (read-write), FROZEN (read-only) and DESTROYED (gone; every copy of the
 * handle is stale and gives SM_E_STATE, queries NULL, 0 or false).
 *
 * Common errors: SM_E_INVAL for a NULL out-pointer, a size of 0, a size whose layout
 * overflows, or an offset or length out of range (nothing is written); SM_E_STATE as in
 * the table; SM_E_NOMEM, SM_E_LOCK (lock policy REQUIRED), SM_E_PROT from the OS.
 * A source that is wiped on success is left untouched on failure, and one that is
 * read-only (a FROZEN buffer's data, say) is refused with SM_E_READONLY rather than
 * faulting at the wipe (sm_buffer_from_bytes, sm_buffer_move, sm_buffer_move_at).
 * Every function is thread-safe; operations on one buffer are serialised by that
 * buffer's own lock, and operations on different buffers do not contend.
 */

/* A zeroed MUTABLE buffer. */
SM_API SM_MUST_CHECK sm_status sm_buffer_new(size_t size, sm_buffer *out);
/* A FROZEN buffer holding a copy of src; src is wiped on success. */
SM_API SM_MUST_CHECK sm_status sm_buffer_from_bytes(void *src, size_t size, sm_buffer *out);
/* A FROZEN buffer of random bytes (ChaCha20 keyed from getrandom; SM_E_RANDOM). */
SM_API SM_MUST_CHECK sm_status sm_buffer_random(size_t size, sm_buffer *out);

/*
 * FROZEN buffers read from a file descriptor, straight into the guarded pages in large
 * reads (no intermediate copy, except the wiped scratch regions of from_fd_all).
 * SM_E_IO: the read failed (sm_last_os_error tells why) or, for from_fd, the input
 * ended before size bytes, none at all included (sm_last_os_error 0). from_fd_until and
 * from_fd_all give SM_E_EOF for input that ends before any byte, and from_fd_until
 * SM_E_IO for an empty line (a delim first), since a buffer cannot be empty (both with
 * sm_last_os_error 0). The bytes consumed from fd on error are wiped and lost.
 *
 * from_fd_until and from_fd_all hold at most 2^24 bytes (16 MiB). A longer input (or one
 * that never ends, such as /dev/zero, or a peer that never sends delim) gives SM_E_NOMEM
 * as soon as 2^24 + 1 bytes have been read: exactly those bytes are consumed from fd (a
 * seekable fd is not moved back), and they are wiped and lost; no handle is made and
 * nothing stays allocated. Input of exactly 2^24 bytes fits.
 *
 * from_fd_until stops at the first delim byte, which is consumed but not stored; end of
 * file before any delim ends the data too. On a seekable fd it reads in large chunks and
 * seeks back to just after the delimiter; a pipe, socket or terminal cannot give bytes
 * back, so there it reads one byte per call, like memguard, to leave what follows the
 * delimiter unread.
 */
SM_API SM_MUST_CHECK sm_status sm_buffer_from_fd(int fd, size_t size, sm_buffer *out);
SM_API SM_MUST_CHECK sm_status sm_buffer_from_fd_until(int fd, uint8_t delim, sm_buffer *out);
SM_API SM_MUST_CHECK sm_status sm_buffer_from_fd_all(int fd, sm_buffer *out);

/* MUTABLE -> FROZEN (read-only pages) and back; each is a no-op in its target state. */
SM_API SM_MUST_CHECK sm_status sm_buffer_freeze(sm_buffer b);
SM_API SM_MUST_CHECK sm_status sm_buffer_melt(sm_buffer b);

/*
 * Writes, MUTABLE only. copy: n <= size bytes at offset 0; copy_at: at off, with
 * off + n <= size. move and move_at also wipe src. n == 0 is SM_OK; src may be NULL
 * only then. scramble fills the buffer with random bytes, wipe with zeroes.
 */
SM_API SM_MUST_CHECK sm_status sm_buffer_copy(sm_buffer b, const void *src, size_t n);
SM_API SM_MUST_CHECK sm_status sm_buffer_copy_at(sm_buffer b, size_t off, const void *src, size_t n);
SM_API SM_MUST_CHECK sm_status sm_buffer_move(sm_buffer b, void *src, size_t n);
SM_API SM_MUST_CHECK sm_status sm_buffer_move_at(sm_buffer b, size_t off, void *src, size_t n);
SM_API SM_MUST_CHECK sm_status sm_buffer_scramble(sm_buffer b);
SM_API SM_MUST_CHECK sm_status sm_buffer_wipe(sm_buffer b);

/*
 * *equal = the buffer holds exactly the n bytes at data (a different length is not
 * equal). Constant time: the time depends on the sizes only, never on the contents.
 */
SM_API SM_MUST_CHECK sm_status sm_buffer_equal(sm_buffer b, const void *data, size_t n, bool *equal);

/*
 * The protected bytes themselves (read-only pages when FROZEN: a write faults), or
 * NULL if stale. The pointer is valid until the buffer is destroyed; using it after
 * that, or racing a destroy, is the caller's bug.
 *
 * Alignment: the data ends exactly at a guard page, so it starts at an address that is
 * -size modulo the page size, and is aligned only as well as size is: a 52-byte buffer
 * is 4-aligned, a 33-byte one is not aligned at all (spec/layout.md). To get data
 * aligned to A (a power of two up to the page size), ask for a size that is a multiple
 * of A (round it up and use the first bytes: the slack after them is then between the
 * data and the guard page), for instance 64 for a 52-byte structure that needs 16. Secrets' bytes (sm_secret_with_bytes) follow the same rule for
 * the guarded and encrypted factories; the protected factory's start on a page.
 */
SM_API uint8_t *sm_buffer_data(sm_buffer b);
SM_API size_t sm_buffer_size(sm_buffer b);
SM_API bool sm_buffer_is_alive(sm_buffer b);
SM_API bool sm_buffer_is_mutable(sm_buffer b);

/* Check the canary (a damaged one panics), wipe, unlock and unmap. */
SM_API SM_MUST_CHECK sm_status sm_buffer_destroy(sm_buffer b);

SM_END_DECLS

#endif
