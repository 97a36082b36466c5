/* SPDX-License-Identifier: ISC */
/*
 * Eva's OS shim: the functions of src/os/os.h that the analysed files call, with the
 * kernel replaced by heap blocks and by nondeterministic choices (proofs/README.md,
 * "Eva"). Each fallible call may fail with the status its failure maps to
 * (spec/os-errors.tsv), so Eva follows every error path of the layers above, as the
 * fault-injecting shim does in the tests.
 *
 * The model of memory, which Eva checks on every access of the library:
 *  - a mapping is one heap block of exactly the length mapped, so any access outside
 *    it (before the leading guard page, past the trailing one) is invalid for Eva;
 *  - a page the library cannot read (PROT_NONE: the guard pages always, the inner pages
 *    while shut) holds uninitialised bytes, so that reading it is an alarm;
 *  - mprotect moves a range between the two: to PROT_NONE it makes the bytes
 *    uninitialised, to READ or READWRITE it gives them back as unknown bytes (the real
 *    contents are among them, so this forgets without losing soundness);
 *  - munmap requires the exact base and length of one mapping, and frees the block, so
 *    that any later use of it is an alarm too.
 * Writes to a PROT_NONE or read-only page are not alarms under this model (Eva has no
 * memory that is readable but not writable, or valid but not for writing, within one
 * block): proofs/README.md, "Eva", says what covers them.
 */
#include <__fc_builtin.h>
#include <bearssl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "os/os.h"

#define PAGE 4096u

static int last_error;

/*
 * Determinate runs (the buffers analysis): once a driver has called eva_os_fail, no call
 * of the shim fails but the one it names, the nth fallible call from then on (0: none),
 * which fails as may_fail's would. A nondeterministic failure doubles the states at each
 * call, and once Eva joins them (the registry of a buffer made with the registry of one
 * refused), every later step of that run is checked against a state that no execution
 * has. Failing each call in turn instead, one scenario each (as tests/unit/test_faults.c
 * does with src/os/fault.c), reaches every refusal with each state determinate. In such
 * a run the OS's random bytes and the keystream are a constant byte too (eva_random).
 * Each plan starts with no OS error pending (sm_os_last_error).
 */
static bool determinate;
static unsigned fail_nth;

void eva_os_fail(unsigned nth)
{
    determinate = true;
    fail_nth = nth;
    last_error = 0;
}

/*
 * Whether the planned failure is still to come: a scenario run under plan n that leaves
 * it pending made fewer than n fallible calls, so the plans past it fail nothing more
 * (the secrets driver stops there).
 */
bool eva_os_fail_pending(void)
{
    return fail_nth != 0;
}

/* Whether this fallible call is the one the plan fails. */
static bool planned_failure(void)
{
    return fail_nth != 0 && --fail_nth == 0;
}

/*
 * The bytes of randomness in a determinate run: one constant byte. Eva then knows each
 * canary and decides its checks, which an unknown canary leaves open, so that a run goes
 * down the panic path only where the canary's bytes are really unknown (pages reopened
 * by mprotect). Sound for what the run proves: it covers every path of the library for
 * this keystream, and no bound, length or branch of the library depends on a canary's
 * or a random buffer's value (only the canary check's verdict does, and its panic path
 * is still followed wherever the bytes are unknown).
 */
static void eva_random(void *p, size_t n)
{
    memset(p, 0x5a, n);
}

/*
 * SM_OK, or the given error: the caller cannot tell which. The errno behind a failure
 * is either of two (region.c tells ENOMEM apart). A call that succeeds may leave it as
 * it was (os.h: the last failed call's), so the nondeterministic run sets it at every
 * call. A determinate run sets it at the planned failure only: Eva keeps the two values
 * apart as two states (-eva-split-return full), and set at every call they doubled
 * every state of the run from sm_init on (the compact analysis saw it).
 */
static sm_status may_fail(sm_status err)
{
    if (determinate) {
        if (!planned_failure())
            return SM_OK;
        last_error = Frama_C_nondet(ENOMEM, EPERM);
        return err;
    }
    last_error = Frama_C_nondet(ENOMEM, EPERM);
    return Frama_C_nondet(SM_OK, err);
}

/*
 * A fallible call of a layer that a driver's model stands for (secrets-trusted.c: the
 * enclave key's opening in the coffer, whose own system calls no analysis makes): it
 * fails with err where the plan says, as the shim's own calls do.
 */
sm_status eva_os_call(sm_status err)
{
    return may_fail(err);
}

/*
 * The longest mapping, and protection change, of this model (a precondition of each):
 * a compact slab of the 16-byte class, the longest mapping the analysed files make
 * (guard, 16 data pages, guard, and 17 pages of slot metadata), fits.
 */
#define SHUT_MAX (48 * PAGE)

/*
 * The mappings alive: a driver checks with it that a refused or purged call leaves
 * nothing mapped (the pool analysis), and that a refused call's rollback unmapped what
 * it had mapped (the runtime analysis), where sm_stats counts only what the library
 * counts.
 */
static unsigned mapped;

unsigned eva_os_mapped(void)
{
    return mapped;
}

/*
 * The bytes of p .. p+len-1 become uninitialised: an unreadable page. They are copied
 * from one block that nothing ever writes (Eva copies its state, not a value); one
 * block for the whole run, not one per call, which would give Eva a base per call.
 */
/*@ requires len <= SHUT_MAX; */
static void unreadable(void *p, size_t len)
{
    static void *never_written;

    if (never_written == NULL)
        never_written = malloc(SHUT_MAX);
    memcpy(p, never_written, len);
}

size_t sm_os_page_size(void)
{
    return PAGE;
}

/*@ requires \valid(out);
    requires modelled: prot != SM_PROT_NONE || len <= SHUT_MAX; */
sm_status sm_os_mmap(size_t len, sm_prot prot, void **out)
{
    void *p;

    if (len == 0 || may_fail(SM_E_NOMEM) != SM_OK)
        return SM_E_NOMEM;
    /* the refusal is may_fail's: eva.sh runs with -eva-no-alloc-returns-null */
    p = malloc(len);
    /* anonymous memory reads as zeroes, unless the library cannot read it at all */
    if (prot == SM_PROT_NONE)
        unreadable(p, len);
    else
        memset(p, 0, len);
    mapped++;
    *out = p;
    return SM_OK;
}

/*@ requires whole_pages: \offset((char *)addr) % PAGE == 0 && len % PAGE == 0;
    requires inside: \valid((char *)addr + (0 .. len - 1)); */
sm_status sm_os_mmap_fd(void *addr, size_t len, int fd)
{
    (void)fd;
    if (may_fail(SM_E_NOMEM) != SM_OK)
        return SM_E_NOMEM;
    /* a fresh memfd_secret file reads as zeroes */
    memset(addr, 0, len);
    return SM_OK;
}

/* The whole of one mapping, as mapped: the library never unmaps part of one. */
/*@ requires base: \offset((char *)p) == 0;
    requires length: \block_length((char *)p) == len; */
sm_status sm_os_munmap(void *p, size_t len)
{
    (void)len;
    if (may_fail(SM_E_SYS) != SM_OK)
        return SM_E_SYS;
    free(p);
    mapped--;
    return SM_OK;
}

/* The kernel protects whole pages: the last one partly named is changed whole. */
/*@ requires aligned: \offset((char *)p) % PAGE == 0;
    requires inside: \valid((char *)p + (0 .. (len + PAGE - 1) / PAGE * PAGE - 1));
    requires modelled: len <= SHUT_MAX; */
sm_status sm_os_mprotect(void *p, size_t len, sm_prot prot)
{
    size_t whole = (len + PAGE - 1) / PAGE * PAGE;

    if (may_fail(SM_E_PROT) != SM_OK)
        return SM_E_PROT;
    if (prot == SM_PROT_NONE)
        unreadable(p, whole);
    else
        Frama_C_make_unknown(p, whole);
    return SM_OK;
}

/*@ requires \valid((char *)p + (0 .. len - 1)); */
sm_status sm_os_mlock(void *p, size_t len)
{
    (void)p, (void)len;
    return may_fail(SM_E_LOCK);
}

/*@ requires \valid((char *)p + (0 .. len - 1)); */
sm_status sm_os_mlock_touched(void *p, size_t len)
{
    (void)p, (void)len;
    return may_fail(SM_E_LOCK);
}

/*@ requires \valid((char *)p + (0 .. len - 1)); */
sm_status sm_os_munlock(void *p, size_t len)
{
    (void)p, (void)len;
    return may_fail(SM_E_SYS);
}

/*@ requires \valid((char *)p + (0 .. len - 1)); */
sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice)
{
    (void)p, (void)len, (void)advice;
    return may_fail(SM_E_SYS);
}

/*@ requires \valid((char *)p + (0 .. n - 1)); */
sm_status sm_os_random(void *p, size_t n)
{
    if (may_fail(SM_E_RANDOM) != SM_OK)
        return SM_E_RANDOM;
    if (determinate)
        eva_random(p, n);
    else
        Frama_C_make_unknown(p, n);
    return SM_OK;
}

/*
 * In a determinate run a secretmem file is a fallible call of the plan (refused as over
 * the limit), until the driver names the status it answers with here: from then on not
 * a call of the plan, so that a refused probe (which sm_init takes as "no secretmem"
 * under PREFERRED) can be met with a later call's refusal in one run (the runtime
 * analysis).
 */
static bool secretmem_named;
static sm_status secretmem_answer;

void eva_os_secretmem(sm_status answer)
{
    secretmem_named = true;
    secretmem_answer = answer;
}

/*@ requires \valid(fd); */
sm_status sm_os_secretmem_create(size_t len, int *fd)
{
    sm_status answer;

    (void)len;
    if (determinate) {
        if (secretmem_named)
            answer = secretmem_answer;
        else
            answer = planned_failure() ? SM_E_LOCK : SM_OK;
        if (answer == SM_OK)
            *fd = 3;
        return answer;
    }
    switch (Frama_C_interval(0, 2)) {
    case 0:
        *fd = 3;
        return SM_OK;
    case 1:
        return SM_E_UNSUPPORTED;
    default:
        return SM_E_LOCK;
    }
}

sm_status sm_os_close(int fd)
{
    (void)fd;
    return SM_OK;
}

int sm_os_last_error(void)
{
    return last_error;
}

sm_status sm_os_disable_core_dumps(void)
{
    return may_fail(SM_E_SYS);
}

/*
 * The calls of the layers above memory (the runtime, the registry, the objects). The
 * run has one thread, the driver's; what those calls do between threads is the race
 * suites' to check (proofs/README.md, "Eva").
 */

void sm_os_set_last_error(int err)
{
    last_error = err;
}

/* Any time: a wait with a deadline may end on either side of it. */
uint64_t sm_os_monotonic_ns(void)
{
    return Frama_C_unsigned_long_long_interval(0, UINT64_MAX);
}

void sm_os_yield(void)
{
}

/*
 * The fork handlers, kept for the driver, which plays a fork with them (eva_os_fork):
 * in the parent, or in the child, where the library's handler runs alone.
 */
static void (*fork_prepare)(void), (*fork_parent)(void), (*fork_child)(void);
static unsigned atfork_calls;

/* How many times the library asked for its fork handlers (once a process). */
unsigned eva_os_atfork_calls(void)
{
    return atfork_calls;
}

sm_status sm_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    atfork_calls++;
    if (may_fail(SM_E_NOMEM) != SM_OK)
        return SM_E_NOMEM;
    fork_prepare = prepare, fork_parent = parent, fork_child = child;
    return SM_OK;
}

void eva_os_fork(bool child)
{
    if (fork_prepare == NULL)
        return;
    fork_prepare();
    if (child)
        fork_child();
    else
        fork_parent();
}

/*
 * Files: fd n (0 <= n < FILES) holds the bytes the driver gave it (eva_os_file), any
 * values, read in order; a read may fail, or return fewer bytes than asked; a seek may
 * be refused as a pipe's is, or fail, and otherwise moves back over what was read.
 */
#define FILES 4
static size_t file_left[FILES], file_read[FILES];

void eva_os_file(int fd, size_t len)
{
    file_left[fd] = len;
    file_read[fd] = 0;
}

/*
 * In a determinate run the driver gives each input its bytes and says whether it is a
 * pipe (which refuses every seek); a read then returns the next of them, at most
 * READ_MAX at a time, so that the library's read loops go round more than once and
 * every read is determinate too.
 */
#define READ_MAX 1000u
static const uint8_t *file_bytes[FILES];
static bool file_pipe[FILES];

void eva_os_input(int fd, const uint8_t *bytes, size_t len, bool pipe)
{
    eva_os_file(fd, len);
    file_bytes[fd] = bytes;
    file_pipe[fd] = pipe;
}

sm_status sm_os_read(int fd, void *p, size_t n, size_t *got)
{
    size_t k;

    if (may_fail(SM_E_IO) != SM_OK)
        return SM_E_IO;
    k = n < file_left[fd] ? n : file_left[fd];
    if (determinate) {
        k = k < READ_MAX ? k : READ_MAX;
        /* not at the end: past it, even an empty copy's source is no valid pointer */
        if (k > 0)
            memcpy(p, file_bytes[fd] + file_read[fd], k);
    } else {
        if (k > 1)
            k = Frama_C_size_t_interval(1, k);
        Frama_C_make_unknown(p, k);
    }
    file_left[fd] -= k;
    file_read[fd] += k;
    *got = k;
    return SM_OK;
}

sm_status sm_os_seek_cur(int fd, int64_t delta, uint64_t *pos)
{
    switch (determinate ? (file_pipe[fd] ? 0 : planned_failure() ? 1 : 2)
                        : Frama_C_interval(0, 2)) {
    case 0:
        return SM_E_UNSUPPORTED;
    case 1:
        return SM_E_IO;
    default:
        /* the library only ever asks where it is (0) or gives back what it read */
        if (delta < 0) {
            file_left[fd] += (size_t)-delta;
            file_read[fd] -= (size_t)-delta;
        }
        *pos = file_read[fd];
        return SM_OK;
    }
}

/* The library asks before it wipes a caller's bytes: either answer. */
sm_status sm_os_writable(void *p, size_t n)
{
    (void)p, (void)n;
    if (determinate)
        return planned_failure() ? SM_E_READONLY : SM_OK;
    return Frama_C_nondet(SM_OK, SM_E_READONLY);
}

/* BearSSL's ChaCha20 (proofs/eva/include/bearssl.h): any keystream over the bytes. */
uint32_t br_chacha20_ct_run(const void *key, const void *iv, uint32_t cc, void *data,
                            size_t len)
{
    static volatile uint8_t seen;

    /* read whole, so that Eva checks that both are there and initialised */
    for (size_t i = 0; i < 32; i++)
        seen ^= ((const uint8_t *)key)[i];
    for (size_t i = 0; i < 12; i++)
        seen ^= ((const uint8_t *)iv)[i];
    if (determinate)
        eva_random(data, len);
    else
        Frama_C_make_unknown(data, len);
    return cc + (uint32_t)((len + 63) / 64);
}

_Noreturn void sm_os_die(const char *msg)
{
    (void)msg;
    abort();
}

/*
 * Memory protection keys: the machine of every analysis but compact-keys has none, as
 * the project's machine has none, and pkey_alloc says so without a fallible call (os.h:
 * a machine without them makes none), so they follow the compact factory's mprotect
 * mode, whose shut pages this model makes unreadable. In the key mode the pages stay
 * read-write and the rights are a register that Eva's memory has no notion of: what a
 * shut page hides there is the unit suite's to check, under qemu -cpu max
 * (proofs/README.md, "The compact analysis").
 */
#if defined(EVA_PKEYS)
/*
 * The compact-keys analysis (eva/compact-keys.c): the machine has keys, and the first
 * one is 1. Not fallible here: a refusal is the mprotect mode, which the compact
 * analysis follows.
 */
/*@ requires \valid(key); */
sm_status sm_os_pkey_alloc(int *key)
{
    *key = 1;
    return SM_OK;
}
#else
/*@ requires \valid(key); */
sm_status sm_os_pkey_alloc(int *key)
{
    (void)key;
    return SM_E_UNSUPPORTED;
}
#endif

/*
 * Reached with a key only (the compact-keys analysis): as sm_os_mprotect to read-write,
 * its pages then readable for good in the model, which has no rights register.
 */
/*@ requires aligned: \offset((char *)p) % PAGE == 0;
    requires inside: \valid((char *)p + (0 .. (len + PAGE - 1) / PAGE * PAGE - 1));
    requires modelled: len <= SHUT_MAX; */
sm_status sm_os_pkey_mprotect(void *p, size_t len, sm_prot prot, int key)
{
    (void)key;
    return sm_os_mprotect(p, len, prot);
}

/* Reached with a key only: a register, no memory of the model; the last rights none. */
sm_prot sm_os_pkey_rights(int key, sm_prot rights)
{
    (void)key, (void)rights;
    return SM_PROT_NONE;
}
