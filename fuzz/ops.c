/* SPDX-License-Identifier: ISC */
/*
 * ops: sequences of public API calls over several buffers, enclaves, streams and raw
 * memory regions, stale and forged handles included, with OS faults injected from the
 * input, every result compared with a reference model. Any divergence aborts.
 *
 * Target functions: sm_buffer_new, sm_buffer_from_bytes, sm_buffer_random,
 * sm_buffer_freeze, sm_buffer_melt, sm_buffer_copy, sm_buffer_copy_at, sm_buffer_move,
 * sm_buffer_move_at, sm_buffer_scramble, sm_buffer_wipe, sm_buffer_equal,
 * sm_buffer_data, sm_buffer_size, sm_buffer_is_alive, sm_buffer_is_mutable,
 * sm_buffer_seal, sm_buffer_destroy; sm_enclave_new, sm_enclave_random, sm_enclave_open,
 * sm_enclave_open_into, sm_enclave_size, sm_enclave_destroy; sm_stream_new,
 * sm_stream_write, sm_stream_read, sm_stream_next, sm_stream_flush, sm_stream_size,
 * sm_stream_destroy; sm_mem_alloc, sm_mem_free, sm_mem_lock, sm_mem_unlock,
 * sm_mem_protect, sm_wipe, sm_equal, sm_random, sm_page_size; sm_init, sm_stats_get,
 * sm_purge, sm_audit, sm_status_str, sm_last_os_error, sm_platform_caps,
 * sm_platform_require, sm_version_string, sm_version_major, _minor and _patch (opcode
 * 0x2b); sm_secret_new, sm_secret_random, sm_secret_from_callback (0x3d),
 * sm_secret_from_buffer (0x3e), sm_secret_from_fd (0x3f, through a pipe or a memfd),
 * sm_secret_with_bytes, sm_secret_try_with_bytes, sm_secret_read_at, sm_secret_size,
 * sm_secret_is_closed, sm_secret_close over sm_factory_protected, sm_factory_guarded,
 * sm_factory_encrypted, sm_factory_compact and the example custom factory
 * (tests/factory); in forked children sm_safe_exit, sm_panic, sm_catch_signals,
 * sm_catch_interrupt, the fork handlers, and purges from inside a secret's access or
 * fill.
 *
 * The model:
 *  - buffers follow spec/buffer-states.tsv, read at build time (fuzz/gen-tables.sh):
 *    each operation's status and next state come from its row; the contents are
 *    tracked byte for byte; MUTABLE pages must be read-write and FROZEN ones read-only,
 *    with a guard page on each side (probed through the kernel, fuzz/support);
 *  - enclaves keep their plaintext and size; streams are FIFOs (as in fuzz/stream.c);
 *  - secrets follow spec/secret-states.tsv (gen-tables.sh): the model's state of a
 *    secret (OPEN-IDLE, OPEN-ACCESSED while this input's callbacks are inside it,
 *    CLOSED) picks the cell of each operation, which gives its status and the state
 *    after, also as smi_secret_state reports it; a cell's window count is checked
 *    against the OS calls that spec/syscalls.tsv gives one access of that factory
 *    ("2") or none at all ("0"), and new, random and close make exactly the calls of
 *    their syscalls.tsv rows. Inside a callback the bytes are the model's, read-only
 *    (probed), in a guarded layout for guarded and encrypted secrets; from there the
 *    input runs more operations, nested accesses, closes and operations on every
 *    other kind included. At rest the pages of protected, guarded and custom secrets
 *    are unreadable. A close by the thread inside the secret's own access is refused
 *    (SM_E_STATE: secret.h) instead of the table's cell, which is for another thread;
 *    CLOSING and WINDOW-CHANGING need a second thread or a hook, and are
 *    fuzz/secret_access.c's;
 *  - compact secrets share pages with their neighbours, so the model keeps the slabs
 *    page by page (fuzz/ops/compact.c): which slot each secret takes, each page's
 *    openers, writers, protection and lock, and the OS calls compact.c makes against
 *    the input's fault plans. Every status, injected failures included, comes from
 *    that emulation exactly, as do the calls, the probed protections of each secret's
 *    pages, where its bytes lie in its slab, and the pages that sm_stats counts;
 *  - a handle of a destroyed or purged object, a handle of another kind and a forged
 *    id are stale: SM_E_STATE, or NULL, 0, false;
 *  - spec/api.md's argument rules: SM_E_INVAL for NULL out-pointers, size 0, sizes that
 *    overflow, offsets and lengths out of range;
 *  - sm_stats: the live counts equal the model's, and the locked bytes are the model's
 *    regions (a protected secret's whole pages, a guarded secret's region, an encrypted
 *    secret's window while it is open, nothing for a custom factory's) plus the enclave
 *    key's while it exists;
 *  - an operation failed by an injected fault returns what spec/os-errors.tsv maps
 *    that fault to, sets sm_last_os_error to its errno, and changes nothing
 *    (SM-REQ-030), but for the documented exceptions: a failed final munmap of a free
 *    leaves the memory wiped and read-write (a secret's close too, but for an encrypted
 *    secret's, which has no plaintext at rest), sm_random and a scramble whose
 *    generator cannot be keyed wipe their output, and a
 *    failed shut at the end of an access leaves the secret's window open. When two
 *    faults hit one failing call the rollback itself may have failed, which is best
 *    effort by design (spec/fault-injection.md): the input stops there.
 *
 * Input: one byte choosing the AEAD, then operations: one byte (its low 6 bits pick an
 * entry of the op table), then that operation's arguments.
 *
 * This file is the driver: the entry points, the op table and the step after which
 * everything is checked. The model and its checks are fuzz/ops/model.c (model.h is what
 * the parts share), and the operations sit in one part per kind: buffers.c, enclaves.c,
 * streams.c, memory.c, secrets.c (with compact.c, the compact factory's slabs),
 * runtime.c and faults.c (forked children).
 */
#include "ops/model.h"

static const sm_os_fn fault_fns[] = { SM_OS_MMAP, SM_OS_MUNMAP, SM_OS_MPROTECT,
                                      SM_OS_MLOCK, SM_OS_MADVISE, SM_OS_GETRANDOM };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init(NULL);
    find_rows();
    page = sm_page_size();
    maxb = 3 * page;
    chunk_cap = 4 * page - 64;
    /* One more than the largest buffer: equal compares a length one past its size. */
    src = malloc(MAX_FIFO + 1);
    src2 = malloc(MAX_FIFO + 1);
    FZ_CHECK(src != NULL && src2 != NULL, "out of memory");
    for (unsigned i = 0; i < NB; i++) /* room for what a stream flush gives */
        FZ_CHECK((M.b[i].want = malloc(MAX_FIFO)) != NULL, "out of memory");
    for (unsigned i = 0; i < NE; i++)
        FZ_CHECK((M.e[i].pt = malloc(MAX_FIFO)) != NULL, "out of memory");
    for (unsigned i = 0; i < NS; i++)
        FZ_CHECK((M.s[i].fifo = malloc(MAX_FIFO)) != NULL, "out of memory");
    for (unsigned i = 0; i < NM; i++)
        FZ_CHECK((M.m[i].want = malloc(maxb)) != NULL, "out of memory");
    for (unsigned i = 0; i < NSEC; i++)
        FZ_CHECK((M.sec[i].want = malloc(maxb)) != NULL && (M.sec[i].have = malloc(maxb)) != NULL,
                 "out of memory");
    fz_sec_rows_find(sec_rows);
    return 0;
}

/* ---- the op table ---- */

typedef struct op_kind {
    const char *name;
    void (*run)(fz_in *in, unsigned arg);
    unsigned arg;
} op_kind;

static void run_state(fz_in *in, unsigned r) { op_state(in, (int)r); }
static void run_write(fz_in *in, unsigned r) { op_write(in, (int)r); }
static void run_fill(fz_in *in, unsigned r) { op_fill(in, (int)r); }
static void run_equal(fz_in *in, unsigned a) { (void)a; op_equal(in); }
static void run_create(fz_in *in, unsigned k) { op_create(in, k); }
static void run_destroy(fz_in *in, unsigned a) { (void)a; op_destroy_buf(in); }
static void run_seal(fz_in *in, unsigned a) { (void)a; op_seal(in); }
static void run_enew(fz_in *in, unsigned r) { op_enclave_new(in, r != 0); }
static void run_open(fz_in *in, unsigned a) { (void)a; op_open(in); }
static void run_open_into(fz_in *in, unsigned a) { (void)a; op_open_into(in); }
static void run_edestroy(fz_in *in, unsigned a) { (void)a; op_enclave_destroy(in); }
static void run_snew(fz_in *in, unsigned a) { (void)a; op_stream_new(in); }
static void run_swrite(fz_in *in, unsigned a) { (void)a; op_stream_write(in); }
static void run_sread(fz_in *in, unsigned a) { (void)a; op_stream_read(in); }
static void run_stake(fz_in *in, unsigned all) { op_stream_take(in, all != 0); }
static void run_sdestroy(fz_in *in, unsigned a) { (void)a; op_stream_destroy(in); }
static void run_arm(fz_in *in, unsigned a)
{
    (void)a;
    fz_faults_arm(&F, in, fault_fns, sizeof fault_fns / sizeof fault_fns[0]);
}
static void run_clear(fz_in *in, unsigned a) { (void)in; (void)a; fz_faults_clear(&F); }
static void run_purge(fz_in *in, unsigned a) { (void)a; op_purge(in); }
static void run_audit(fz_in *in, unsigned a) { (void)in; (void)a; op_audit(); }
static void run_init(fz_in *in, unsigned a) { (void)a; op_init(in); }
static void run_status(fz_in *in, unsigned a) { (void)a; op_status(in); }
static void run_coffer(fz_in *in, unsigned a) { (void)a; op_coffer(in); }
static void run_stale(fz_in *in, unsigned a) { (void)a; op_stale(in); }
static void run_null(fz_in *in, unsigned a) { (void)a; op_null_args(in); }
static void run_fork(fz_in *in, unsigned a) { (void)a; op_fork(in); }
static void run_malloc(fz_in *in, unsigned a) { (void)a; op_mem_alloc(in); }
static void run_mfree(fz_in *in, unsigned a) { (void)a; op_mem_free(in); }
static void run_mprotect(fz_in *in, unsigned a) { (void)a; op_mem_protect(in); }
static void run_mlock(fz_in *in, unsigned a) { (void)a; op_mem_lock(in); }
static void run_mbytes(fz_in *in, unsigned a) { (void)a; op_mem_bytes(in); }
static void run_secnew(fz_in *in, unsigned random) { op_secret_new(in, random != 0); }
static void run_secfill(fz_in *in, unsigned a) { (void)a; op_secret_from_callback(in); }
static void run_secbuf(fz_in *in, unsigned a) { (void)a; op_secret_from_buffer(in); }
static void run_secfd(fz_in *in, unsigned a) { (void)a; op_secret_from_fd(in); }
static void run_platform(fz_in *in, unsigned a) { (void)a; op_platform(in); }
static void run_access(fz_in *in, unsigned try) { op_access(in, try != 0); }
static void run_read_at(fz_in *in, unsigned a) { (void)a; op_read_at(in); }
static void run_secquery(fz_in *in, unsigned a) { (void)a; op_secret_query(in); }
static void run_secclose(fz_in *in, unsigned a) { (void)a; op_secret_close(in); }
static void run_secbad(fz_in *in, unsigned a) { (void)a; op_secret_bad(in); }

/*
 * Opcodes are fixed (the low 6 bits of the op byte), so that the committed corpus keeps
 * its meaning as the table grows. Unused codes do nothing.
 * Secrets are 0x30..0x37 and 0x3d..0x3f (nested accesses are the operations that a
 * callback runs).
 */
static const op_kind op_table[64] = {
    [0x00] = { "buffer_new", run_create, 0 },
    [0x01] = { "buffer_from_bytes", run_create, 1 },
    [0x02] = { "buffer_random", run_create, 2 },
    [0x03] = { "freeze", run_state, R_FREEZE },
    [0x04] = { "melt", run_state, R_MELT },
    [0x05] = { "copy", run_write, R_COPY },
    [0x06] = { "copy_at", run_write, R_COPY_AT },
    [0x07] = { "move", run_write, R_MOVE },
    [0x08] = { "move_at", run_write, R_MOVE_AT },
    [0x09] = { "scramble", run_fill, R_SCRAMBLE },
    [0x0a] = { "wipe", run_fill, R_WIPE },
    [0x0b] = { "equal", run_equal, 0 },
    [0x0c] = { "seal", run_seal, 0 },
    [0x0d] = { "destroy", run_destroy, 0 },
    [0x10] = { "enclave_new", run_enew, 0 },
    [0x11] = { "enclave_random", run_enew, 1 },
    [0x12] = { "enclave_open", run_open, 0 },
    [0x13] = { "enclave_open_into", run_open_into, 0 },
    [0x14] = { "enclave_destroy", run_edestroy, 0 },
    [0x18] = { "stream_new", run_snew, 0 },
    [0x19] = { "stream_write", run_swrite, 0 },
    [0x1a] = { "stream_read", run_sread, 0 },
    [0x1b] = { "stream_next", run_stake, 0 },
    [0x1c] = { "stream_flush", run_stake, 1 },
    [0x1d] = { "stream_destroy", run_sdestroy, 0 },
    [0x20] = { "fault_arm", run_arm, 0 },
    [0x21] = { "fault_arm", run_arm, 0 },
    [0x22] = { "fault_clear", run_clear, 0 },
    [0x23] = { "purge", run_purge, 0 },
    [0x24] = { "audit", run_audit, 0 },
    [0x25] = { "init", run_init, 0 },
    [0x26] = { "status", run_status, 0 },
    [0x27] = { "coffer_hooks", run_coffer, 0 },
    [0x28] = { "stale_handles", run_stale, 0 },
    [0x29] = { "null_arguments", run_null, 0 },
    [0x2a] = { "fork", run_fork, 0 },
    [0x2b] = { "platform_version", run_platform, 0 },
    [0x30] = { "secret_new", run_secnew, 0 },
    [0x31] = { "secret_random", run_secnew, 1 },
    [0x32] = { "secret_with_bytes", run_access, 0 },
    [0x33] = { "secret_try_with_bytes", run_access, 1 },
    [0x34] = { "secret_read_at", run_read_at, 0 },
    [0x35] = { "secret_size_is_closed", run_secquery, 0 },
    [0x36] = { "secret_close", run_secclose, 0 },
    [0x37] = { "secret_bad_arguments", run_secbad, 0 },
    [0x38] = { "mem_alloc", run_malloc, 0 },
    [0x39] = { "mem_free", run_mfree, 0 },
    [0x3a] = { "mem_protect", run_mprotect, 0 },
    [0x3b] = { "mem_lock", run_mlock, 0 },
    [0x3c] = { "mem_bytes", run_mbytes, 0 },
    [0x3d] = { "secret_from_callback", run_secfill, 0 },
    [0x3e] = { "secret_from_buffer", run_secbuf, 0 },
    [0x3f] = { "secret_from_fd", run_secfd, 0 },
};

/*
 * Run one operation of the input and check everything. Inside a secret's callback some
 * operations are skipped: a purge and a fork child's purge need every secret closed,
 * which the accesses in flight prevent.
 */
void step(fz_in *in)
{
    uint8_t code = fz_u8(in) & 63;
    const op_kind *k = &op_table[code];

    if (k->run == NULL || (M.depth > 0 && (code == 0x23 || code == 0x2a)))
        return;
    rebase();
    k->run(in, k->arg);
    /* Any refused mprotect may have been a key share's (check_calls); a purge ends the key. */
    if (F.fired_by[SM_OS_MPROTECT] > 0)
        M.share_open = true;
    if (!fz_coffer_exists())
        M.share_open = false;
    if (!M.tainted)
        check_all();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size, 0 };

    fz_begin();
    fz_faults_clear(&F);
    reset_model();
    smi_aead_test_force((smi_aead_choice)(fz_u8(&in) % 3));
    while (fz_more(&in) && M.ops++ < MAX_OPS && !M.tainted)
        step(&in);
    cleanup();
    return 0;
}
