/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_SECRET_H
#define SECUREMEM_SECRET_H

#include <securemem/common.h>
#include <securemem/handles.h>
#include <securemem/status.h>

SM_BEGIN_DECLS

/*
 * Secrets (Asherah's Secret and SecretFactory): len bytes that cannot be read at rest
 * and can be read, read-only, only inside a callback. A factory decides where the bytes
 * live and how they are made readable. The library's secret layer owns the handle,
 * counts the accesses and runs the close protocol, the same way for every factory,
 * custom ones included (spec/secrets.md; the table is spec/secret-states.tsv):
 *
 *  - OPEN-IDLE: no access in flight; the bytes are unreadable (PROT_NONE at rest).
 *  - OPEN-ACCESSED: one or more accesses in flight, from any threads and nested in any
 *    order, share one read-only window. The protection changes only when the first
 *    access enters and when the last one leaves.
 *  - CLOSING: sm_secret_close is waiting for the accesses in flight; they finish with
 *    the right bytes, and every new operation gets SM_E_STATE (queries: 0 or closed).
 *  - CLOSED: wiped and released; every copy of the handle is stale for good.
 *
 * While one thread opens or shuts the window (a system call, or for some factories a
 * decryption), the secret's lock is not held: sm_secret_with_bytes and sm_secret_read_at
 * wait for the change to end, sm_secret_try_with_bytes returns SM_E_BUSY, and the
 * queries answer at once.
 *
 * Common errors: SM_E_INVAL for a NULL factory, callback or out-pointer, a len of 0 or of
 * 2^62 or more (on 64-bit targets; a quarter of the address space in general), and a
 * custom factory table that is incomplete or of another version; SM_E_STATE for a stale,
 * closed or closing handle; SM_E_NOMEM, SM_E_LOCK (lock policy REQUIRED), SM_E_PROT from
 * the OS. A source that is wiped on success is left untouched on failure. Every function
 * is thread-safe; operations on different secrets do not contend.
 */

/*
 * A factory: the table of functions behind a kind of secret. The library's factories
 * are below; a program MAY fill in its own (a "custom factory") and pass its address to
 * sm_secret_new and sm_secret_random. The table MUST stay valid, and unchanged, until
 * every secret made from it is closed.
 *
 * The library calls the hooks of one secret one at a time, never two at once, and never
 * while holding a lock that another operation on that secret could need. Each hook gets
 * ctx back as its first argument. A hook that fails MUST leave its state as it was, so
 * that the library can undo or retry; its sm_status is returned to the caller as is.
 * A hook that returns SM_OK without its result (create leaving *fill NULL, make_readable
 * leaving *bytes NULL) has failed too: the library undoes it (destroy after create,
 * make_unreadable after make_readable, their own errors ignored) and the call returns
 * SM_E_INVAL; nothing of the secret is left, or it stays at rest.
 * A hook MUST NOT wait for its own secret: sm_secret_with_bytes, sm_secret_read_at and
 * sm_secret_close on the secret whose make_readable, make_unreadable or destroy is
 * running on this thread return SM_E_STATE at once, since they would wait for the window
 * change that this very call is making (tracked 16 hooks deep per thread, as accesses
 * are). sm_secret_try_with_bytes gives SM_E_BUSY there, as it does from any thread
 * during a window change, and sm_secret_size and sm_secret_is_closed answer as usual.
 * A hook that uses another secret can wait for that secret's window change like any
 * caller; two hooks on two threads that each wait for the other's secret wait for ever,
 * as two locks taken in opposite orders would.
 *
 *  - create: storage for exactly len bytes (len > 0 and below 2^62; the library has
 *    checked). *state is the factory's own handle for it; *fill points at len writable
 *    bytes, which the library fills (a copy of the source, or random bytes) before it
 *    calls seal. On error nothing stays allocated.
 *  - seal: once, after the fill: take the bytes to their state at rest (unreadable).
 *    On error the library calls destroy.
 *  - make_readable: the first access in flight is entering. *bytes points at the len
 *    bytes, readable and read-only, and stays valid until make_unreadable. On error the
 *    access fails with that status and the secret stays at rest.
 *  - make_unreadable: the last access in flight has left. On error the window stays
 *    open (the library keeps *bytes) and is shut again when the next last access
 *    leaves; the access returns the error unless its callback already failed.
 *  - destroy: wipe the bytes and release the storage, at rest or readable (after a
 *    failed make_unreadable, or when the last access in flight during a purge leaves).
 *    On error the secret stays open, and a later close calls destroy again; after a
 *    purge there is no later close, and purge (in_use false) is called instead.
 *  - purge: MAY be NULL. Called by sm_purge and the signal paths, perhaps from a signal
 *    handler, with no lock held, and never while another hook of this secret is opening,
 *    shutting or destroying (the thread doing that frees the storage with destroy
 *    instead): it MUST be async-signal-safe and MUST NOT fail. With in_use false, wipe
 *    and release everything; with in_use true, accesses are still reading the window:
 *    wipe the bytes in place and keep them mapped and readable; the last of those
 *    accesses to leave then calls destroy. When purge is NULL, a purge makes the
 *    handle stale and leaves the storage as it is (to destroy, if accesses were in
 *    flight).
 *
 * Secrets of a custom factory count in sm_stats.secrets_live, not in allocations_total,
 * bytes_locked or bytes_unlocked: their storage is the factory's. sm_audit does not
 * look into them, and in a forked child their handles are stale and their storage is
 * left to the factory.
 */
#define SM_FACTORY_VERSION 1u

typedef struct sm_factory {
    unsigned  version; /* SM_FACTORY_VERSION */
    void     *ctx;     /* passed back to every hook */
    sm_status (*create)(void *ctx, size_t len, void **state, uint8_t **fill);
    sm_status (*seal)(void *ctx, void *state);
    sm_status (*make_readable)(void *ctx, void *state, const uint8_t **bytes);
    sm_status (*make_unreadable)(void *ctx, void *state);
    sm_status (*destroy)(void *ctx, void *state);
    void      (*purge)(void *ctx, void *state, bool in_use);
} sm_factory;

/*
 * The library's factories. Each call returns the same table, owned by the library; a
 * program uses its address and never its fields.
 *
 * protected (Asherah's protectedmemory): one locked mapping of whole pages with the
 * bytes at its start, and no guard pages or canary, for the smallest footprint: one page
 * for a 32-byte key. PROT_NONE at rest, PROT_READ during accesses. It follows the lock
 * policy and the backing of sm_config, and counts in sm_stats like a guarded region. A
 * closed secret leaves its mapping wiped, shut and still locked in the same pool as the
 * guarded factory's regions (below), for the next protected secret of its page count
 * only.
 *
 * guarded (memguard-style): a guarded region (spec/layout.md): guard pages on both
 * sides, the bytes ending against the trailing one, a canary in front that is checked at
 * close, at purge and by sm_audit (a damaged one panics). PROT_NONE at rest, PROT_READ
 * during accesses. A closed secret leaves its region wiped, shut and still locked in a
 * pool of at most 8 mappings (both factories') and 2 MiB, for the next guarded secret of
 * its page count (with a new canary): until then its pages count in
 * sm_stats.bytes_locked and RLIMIT_MEMLOCK, and a lock that the limit refuses empties
 * the pool and is tried again. sm_purge unmaps them.
 *
 * encrypted: an enclave at rest (ciphertext only, in ordinary pages: nothing locked,
 * no plaintext page at all), decrypted into a guarded read-only region by the first
 * access in flight and wiped and unmapped by the last. Each window is a guarded region
 * made (sm_stats.allocations_total). It follows the lock policy and backing while a
 * window is open. A failed unmap at the last exit keeps the window open, with its bytes,
 * until the next last exit. So the first access in flight can be refused where the other
 * factories' are not: SM_E_LOCK when the window cannot be locked (REQUIRED), SM_E_NOMEM
 * when no address space or mapping is left; fn is then not called and nothing changes.
 * Its sm_secret_new draws the enclave key if there is none yet (SM_E_RANDOM). A secret
 * made while a purge runs (from a signal handler that interrupted sm_secret_new) may be
 * sealed under the key that purge took: it is published, every access gives SM_E_AUTH,
 * and close works, as for an enclave made then.
 */
SM_API const sm_factory *sm_factory_protected(void);
SM_API const sm_factory *sm_factory_guarded(void);
SM_API const sm_factory *sm_factory_encrypted(void);

/*
 * compact (spec/compact.md): secrets of 1 to 2,048 bytes (larger: SM_E_INVAL) packed
 * into slabs of locked pages shared by secrets of one size class (16, 32, 64, ...,
 * 2,048 bytes), with guard pages around each slab and a random canary in front of each
 * slot, checked at close, at purge and by sm_audit (a damaged one panics). PROT_NONE at
 * rest; an access opens only the page or two that hold its slot, PROT_READ, and the page
 * shuts when its last access in flight leaves. While a page is open, the other secrets
 * on it are readable too (spec/threat-model.md). A 32-byte secret locks 40 bytes, not a
 * page: some 100,000 fit under an 8 MiB RLIMIT_MEMLOCK. A slab's pages are locked as
 * its slots first use them, following the lock policy (SM_E_LOCK, or bytes_unlocked)
 * and the backing; an empty slab is unmapped once its class has another empty one.
 * Accesses to secrets of one size class share one lock for their bookkeeping and the
 * page changes (an mprotect), which a query may wait behind. Where the CPU and the
 * kernel have memory protection keys (x86-64 Linux), the pages are opened instead by
 * the calling thread's own rights for one key, with no system call: no other thread can
 * read them meanwhile, but the thread inside an access can read every compact secret
 * (spec/compact.md, "Protection keys"; spec/threat-model.md). A purge during
 * sm_secret_new or a fill of a compact secret gives SM_E_STATE and makes nothing.
 */
SM_API const sm_factory *sm_factory_compact(void);

/*
 * Called with the bytes of one access; its status is the access's status, returned
 * unchanged. A callback that fails returns SM_E_CALLBACK, or one of SM_E_USER to
 * SM_E_USER_MAX to tell its failures apart (securemem/status.h): sm_status_str names
 * both, and neither is ever one of the library's own errors.
 */
typedef sm_status (*sm_bytes_fn)(const uint8_t *bytes, size_t len, void *ctx);

/*
 * A secret holding a copy of the len bytes at src; src is wiped on success. src MUST be
 * writable memory: read-only memory, such as the data of a FROZEN buffer (which is
 * what sm_buffer_from_fd* and sm_enclave_open give), is refused with SM_E_READONLY
 * (nothing made, src untouched) rather than faulting at the wipe. For a buffer's bytes use
 * sm_secret_from_buffer, which consumes the buffer.
 */
SM_API SM_MUST_CHECK sm_status sm_secret_new(const sm_factory *f, void *src, size_t len, sm_secret *out);
/* A secret of len random bytes (ChaCha20 keyed from getrandom; SM_E_RANDOM). */
SM_API SM_MUST_CHECK sm_status sm_secret_random(const sm_factory *f, size_t len, sm_secret *out);

/*
 * The constructors below fill the secret's storage in place: the bytes go from their
 * source straight into the memory that the factory made for them (for the encrypted
 * factory, the guarded region that is then sealed), and exist nowhere else. Each works
 * with every factory, custom ones included. On error nothing is made, what was written
 * into the storage is wiped with it, and the source is as documented for each.
 */

/*
 * A secret holding b's bytes (MUTABLE or FROZEN), which consumes b: its pages are
 * wiped and unmapped (its canary checked, as by sm_buffer_destroy) and every copy of
 * its handle is stale. On error b is unchanged, except after an OS error in destroying
 * it, when it is as after a failed sm_buffer_destroy and no secret is made.
 * Errors: SM_E_INVAL (f, out), SM_E_STATE (b stale), and those of sm_secret_new and
 * sm_buffer_destroy. b's lock is held for the whole call, the factory's hooks included,
 * so that no other thread changes b meanwhile: a custom factory's hook MUST NOT call
 * sm_buffer_* on b, which would wait for that lock for ever.
 */
SM_API SM_MUST_CHECK sm_status sm_secret_from_buffer(const sm_factory *f, sm_buffer b, sm_secret *out);

/*
 * A secret of exactly len bytes read from fd, as sm_buffer_from_fd reads them.
 * SM_E_IO: a read failed (sm_last_os_error tells why) or the input ended before len
 * bytes (sm_last_os_error 0). The bytes consumed from fd on error are lost. For input
 * of unknown length (a passphrase line), read a buffer with sm_buffer_from_fd_until or
 * sm_buffer_from_fd_all and pass it to sm_secret_from_buffer.
 */
SM_API SM_MUST_CHECK sm_status sm_secret_from_fd(const sm_factory *f, int fd, size_t len, sm_secret *out);

/*
 * Writes the len bytes of a secret being made, in place (a KDF's output, a key
 * unwrapped from elsewhere). bytes is writable only during the call and MUST NOT be
 * kept. Return SM_OK, or an error: SM_E_CALLBACK, or one of SM_E_USER to SM_E_USER_MAX
 * (the caller's own), which is returned as is; the secret is then not made.
 */
typedef sm_status (*sm_fill_fn)(uint8_t *bytes, size_t len, void *ctx);

/*
 * A secret of len bytes written by fn(bytes, len, ctx) straight into its storage. fn
 * runs with no lock of the library held, and MAY call the library (read another
 * secret, say); it MUST return (no longjmp out of it). If fn forks, the parent's call
 * goes on as usual, and the child's makes nothing: SM_E_STATE (or fn's error), since
 * the fork wiped the storage or left it out of the child.
 * Errors: SM_E_INVAL (fn NULL, and as sm_secret_random), fn's error, and the OS errors
 * of sm_secret_random.
 */
SM_API SM_MUST_CHECK sm_status sm_secret_from_callback(const sm_factory *f, size_t len, sm_fill_fn fn,
                                                       void *ctx, sm_secret *out);

/*
 * Call fn(bytes, len, ctx) with the secret's bytes readable and read-only (a write
 * faults), and return fn's status. bytes is valid only until fn returns. Waits while
 * another thread opens or shuts the window; never waits for other accesses, which share
 * the window. fn MAY access this and other secrets, nested; it MUST return (no longjmp
 * out of it). If fn returns SM_OK but the window cannot be shut again (an OS refusal),
 * the status of that refusal is returned and the secret stays readable until the next
 * last access leaves.
 * Errors: SM_E_INVAL (fn NULL; or a custom make_readable that gave SM_OK and no bytes),
 * SM_E_STATE (stale, closed or closing; or, except for the try variant, called from a
 * hook of this secret running on this thread), the factory's error when the window
 * cannot be opened (fn is then not called).
 */
SM_API SM_MUST_CHECK sm_status sm_secret_with_bytes(sm_secret s, sm_bytes_fn fn, void *ctx);

/*
 * sm_secret_with_bytes that does not wait for another thread's window change or
 * bookkeeping to get in: SM_E_BUSY where it would have waited, that is while another
 * thread opens or shuts the window or holds the secret's lock. fn is then not called.
 * The first access in flight opens the window itself. For the encrypted factory that is
 * a decryption under the enclave key, and a try gives SM_E_BUSY there too, with the
 * secret left at rest, when the key's lock or every workspace slot is held by other
 * threads' operations. Once in, it does its own work like sm_secret_with_bytes, and
 * waits exactly here:
 *  - the encrypted factory's new window needs a canary: while another thread draws a new
 *    canary key (the first region after a purge or in a forked child: one getrandom
 *    call), it waits for that draw;
 *  - for a custom factory, make_readable and make_unreadable wait for whatever the
 *    factory waits for;
 *  - taking the secret's lock back after opening the window, and again when leaving,
 *    are blocking calls: the window is open, or the access has already run, and must be
 *    counted. Other threads hold that lock for bookkeeping, never across a window
 *    change or make_readable, make_unreadable or destroy; only sm_audit (its check of
 *    this secret: at most two mprotect calls) and a purge finishing this secret hold it
 *    longer. The last access out shuts the window itself.
 */
SM_API SM_MUST_CHECK sm_status sm_secret_try_with_bytes(sm_secret s, sm_bytes_fn fn, void *ctx);

/*
 * A reader: copy up to n bytes from offset off into dst, in one access, and set *got
 * to the number copied, min(n, size - off): short at the end. off == size, or n == 0,
 * copies nothing, gives SM_OK with *got 0 and does not open the window.
 * Errors: SM_E_INVAL (got NULL, dst NULL with n > 0, off > size), SM_E_STATE, the
 * errors of sm_secret_with_bytes. On error *got is not written and dst holds no secret
 * byte (it is wiped if the window could not be shut after the copy).
 */
SM_API SM_MUST_CHECK sm_status sm_secret_read_at(sm_secret s, size_t off, void *dst, size_t n, size_t *got);

/* The length of the secret; 0 if stale, closed or closing. Never waits on a window change. */
SM_API size_t sm_secret_size(sm_secret s);
/* True once close has begun, and for any handle that names no open secret (id 0 too). */
SM_API bool sm_secret_is_closed(sm_secret s);

/*
 * Close: new operations get SM_E_STATE from now on; wait for the accesses in flight to
 * finish; then wipe and release the bytes (checking the canary of a guarded secret) and
 * make every copy of the handle stale. Returns once the bytes are wiped.
 * Errors: SM_E_STATE (stale, already closed, or closing: a second close does not wait;
 * also a close from inside an access to this same secret on this same thread, or from
 * one of its hooks running on this thread, which would wait for itself; up to 16 nested
 * accesses and hooks per thread are tracked for this);
 * the OS's errors, after which the secret is open again, as after a failed
 * sm_buffer_destroy: unchanged when the pages could not be opened for the wipe, and
 * wiped (all zero) when only the final unmap failed; a later close retries.
 */
SM_API SM_MUST_CHECK sm_status sm_secret_close(sm_secret s);

SM_END_DECLS

#endif
