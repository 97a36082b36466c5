/* SPDX-License-Identifier: ISC */
#ifndef FZ_HARNESS_H
#define FZ_HARNESS_H

/*
 * What every harness in fuzz/ shares (fuzz/README.md): reading the input, the per-input
 * reset that makes runs deterministic, OS faults planned from input bytes and the
 * statuses they may cause (spec/os-errors.tsv), page-protection probes, and the one
 * failure path. Harnesses link the fuzz flavour of the library (SM_FAULT_INJECTION and
 * SM_FUZZ_DETERMINISTIC), so they may use its test hooks and the fault shim.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inner.h"
#include "os/fault.h"

/* The entry points of every harness; fuzz/replay.c calls them too. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- input: reads past the end give zeroes, so every input decodes ---- */

typedef struct fz_in {
    const uint8_t *p;
    size_t         n, off;
} fz_in;

static inline bool fz_more(const fz_in *in)
{
    return in->off < in->n;
}

static inline uint8_t fz_u8(fz_in *in)
{
    return in->off < in->n ? in->p[in->off++] : 0;
}

static inline uint16_t fz_u16(fz_in *in)
{
    uint16_t lo = fz_u8(in);

    return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

static inline uint32_t fz_u32(fz_in *in)
{
    uint32_t lo = fz_u16(in);

    return lo | (uint32_t)fz_u16(in) << 16;
}

/*
 * Fill n bytes at dst: a length byte k, then min(k, n) bytes of input, then a pattern
 * seeded by them, so that a large write costs few input bytes and the operations after
 * it still have input to decode.
 */
void fz_fill(fz_in *in, uint8_t *dst, size_t n);

/* ---- failure: a divergence from the model, reported with the recent trace ---- */

void fz_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define FZ_CHECK(cond, ...)       \
    do {                          \
        if (!(cond))              \
            fz_fail(__VA_ARGS__); \
    } while (0)

/* The name of a status, for messages. */
const char *fz_st(sm_status st);

/* ---- setup and the per-input reset ---- */

/*
 * Once per process: sm_init(cfg) (NULL: defaults), then one enclave made and destroyed
 * so that one-time work (the AEAD choice, the coffer's fork handlers, the registry's
 * first chunk) is done before any input runs.
 */
void fz_init(const sm_config *cfg);

/*
 * Before each input, with no object of the previous input alive: drop every fault plan,
 * rewind the deterministic random source and clock, purge (which drops the enclave key
 * and the canary key, so that they are made again from the rewound source), use the
 * CPU's AEAD, and make sure the registry has FZ_HEADROOM free slots so that no input
 * triggers its growth half-way (a growth mmap would shift injected mmap faults).
 */
#define FZ_HEADROOM 192u
void fz_begin(void);

/*
 * Locked plus unlocked bytes and live counts, and the bytes that the enclave key's
 * three regions add while they exist (measured by fz_init).
 */
typedef struct fz_counts {
    uint64_t live[SMI_KIND_COUNT];
    uint64_t bytes;       /* bytes_locked + bytes_unlocked */
    uint64_t allocations; /* allocations_total */
} fz_counts;
void fz_counts_get(fz_counts *c);
/* Regions in the guarded factory's pool (pool.c), left out of fz_counts' bytes. */
size_t fz_pooled(void);
extern uint64_t fz_coffer_bytes;

/* Whether the enclave key (three regions of fz_coffer_bytes) exists now. */
bool fz_coffer_exists(void);

/* The inner bytes of a guarded region of size bytes (spec/layout.md). */
size_t fz_region_bytes(size_t size);

/* ---- OS faults planned from the input ---- */

typedef struct fz_plan {
    bool          armed;
    unsigned long nth;
    int           err;
    bool          sticky;
} fz_plan;

typedef struct fz_faults {
    fz_plan       plan[SM_OS_FN_COUNT];
    unsigned long before[SM_OS_FN_COUNT];
    unsigned      fired;    /* faults that fired during the last operation */
    unsigned      fired_by[SM_OS_FN_COUNT]; /* the same, per OS function */
    sm_os_fn      last_fn;  /* the last one of them */
    int           last_err;
    sm_status     allowed[4 * SM_OS_FN_COUNT];
    unsigned      nallowed;
} fz_faults;

/*
 * Read one plan from the input for one of the n functions at fns: which call (1..4),
 * which errno (a row of spec/os-errors.tsv for that function, or EINTR where the shim
 * retries it), once or sticky (never a sticky EINTR, which would retry for ever).
 */
void fz_faults_arm(fz_faults *f, fz_in *in, const sm_os_fn *fns, size_t n);
/* Drop every plan. */
void fz_faults_clear(fz_faults *f);
/* Bracket one operation: note the counters, then count what fired during it. */
void fz_faults_before(fz_faults *f);
unsigned fz_faults_after(fz_faults *f);
/*
 * Whether st is what one of the faults that fired in the last operation may cause:
 * its row of spec/os-errors.tsv, or SM_E_LOCK for any refused mlock (a region under
 * SM_LOCK_REQUIRED reports SM_E_LOCK whatever the errno).
 */
bool fz_faults_allow(const fz_faults *f, sm_status st);
/* The status that spec/os-errors.tsv gives fn failing with err. */
sm_status fz_err_status(sm_os_fn fn, int err);

/* ---- page protections, probed through the kernel (no signal, no sanitizer trap) ---- */

typedef enum { FZ_PROT_NONE, FZ_PROT_READ, FZ_PROT_RW } fz_prot;
fz_prot fz_probe(const void *p);
const char *fz_prot_name(fz_prot p);

/*
 * The layout of spec/api.md for a live buffer of size bytes at data: the data ends exactly at
 * a guard page, a guard page precedes the canary, and the data pages are readable, and
 * writable iff writable.
 */
void fz_check_layout(const uint8_t *data, size_t size, bool writable, const char *what);

#endif
