/* SPDX-License-Identifier: ISC */
#ifndef SMI_CORE_H
#define SMI_CORE_H

/*
 * The core: pure functions with no system call, no OS #ifdef and no BearSSL, so that
 * Frama-C WP can prove them on the very files the library compiles (proofs/).
 * Everything above the core calls these instead of redoing the arithmetic.
 */

#include <stddef.h>
#include <stdint.h>
#include <securemem/status.h>

/* ---- wipe and compare (SM-REQ-010, SM-REQ-011) ---- */

/* Zero n bytes at p; the stores survive the optimiser (see smi_barrier). */
void smi_wipe(void *p, size_t n);

/* 1 iff the n bytes at a and b are equal; no early exit, no data-dependent branch. */
int smi_equal(const void *a, const void *b, size_t n);

/* Defined outside the core (src/base/barrier.c): makes the compiler assume p is read. */
void smi_barrier(const void *p);

/* ---- region layout (SM-REQ-020..023, spec/layout.md) ---- */

/* Bytes of canary at least between the leading guard page and the data. */
#define SMI_CANARY_MIN 32u
/* Length of the random pattern that is tiled over the canary. */
#define SMI_CANARY_SEED 32u

typedef struct smi_layout {
    size_t map_len;    /* the whole mapping: guard page, inner pages, guard page */
    size_t inner_len;  /* canary plus data: whole pages, the ones that are locked */
    size_t canary_len; /* >= SMI_CANARY_MIN; the canary starts at offset page */
    size_t data_off;   /* page + canary_len: the data ends at map_len - page */
} smi_layout;

/*
 * The layout of a region holding size bytes with pages of page bytes (a power of two,
 * at least SMI_CANARY_MIN). 0 for size 0 or a layout that would overflow size_t;
 * 1 with *out filled otherwise.
 */
int smi_layout_of(size_t size, size_t page, smi_layout *out);

/* n rounded up to a multiple of page (a power of two); 0 when that overflows. */
size_t smi_round_up(size_t n, size_t page);

/*
 * Where the inner pages of a region laid out by l begin, from the mapping's base: the
 * canary's first byte, and the start of the range that mlock and every mprotect cover
 * (inner_len bytes). Taken from the layout, not from a page size asked again.
 */
size_t smi_layout_inner(const smi_layout *l);

/* ---- canary (SM-REQ-024) ---- */

/* Tile seed (SMI_CANARY_SEED bytes) over the len bytes at dst, which it does not overlap. */
void smi_canary_fill(uint8_t *restrict dst, size_t len, const uint8_t *restrict seed);

/* 1 iff the len bytes at c are the tiling of seed; reads every byte whatever it finds. */
int smi_canary_ok(const uint8_t *c, size_t len, const uint8_t *seed);

/* ---- handles (SM-REQ-040..042) ---- */

/*
 * A handle id packs, from the top bit down: kind (4 bits, never 0), generation
 * (28 bits, never 0) and slot index (32 bits). So id 0 is never valid, a handle of
 * one kind never decodes as another kind, and an id repeats only if a slot's
 * generation wraps, which smi_handle_gen_next prevents by retiring the slot.
 */
#define SMI_HANDLE_KIND_MAX 15u
#define SMI_HANDLE_GEN_MAX 0x0fffffffu
/* The generation of a slot whose last generation is spent: it issues no id again. */
#define SMI_HANDLE_GEN_RETIRED (SMI_HANDLE_GEN_MAX + 1u)

/* The id of an object in slot index; kind in 1..KIND_MAX, gen live (not retired). */
uint64_t smi_handle_make(unsigned kind, uint32_t gen, uint32_t index);
unsigned smi_handle_kind(uint64_t id);
uint32_t smi_handle_gen(uint64_t id);
uint32_t smi_handle_index(uint64_t id);

/*
 * The generation a slot moves to when its object is gone: the next one, or RETIRED
 * once the last is spent, and RETIRED for ever after. Never a wrap to an old one.
 */
uint32_t smi_handle_gen_next(uint32_t gen);
/* 1 iff a slot at generation gen may hold an object again (gen in 1..GEN_MAX). */
int smi_handle_gen_live(uint32_t gen);
/*
 * 1 iff a handle presenting id reaches the object of kind whose id the slot holds now
 * (current, 0 for none): a stale, forged, zero or other-kind id is refused.
 */
int smi_handle_accepts(uint64_t id, uint64_t current, unsigned kind);

/* ---- nonces (SM-REQ-076, spec/enclave-key.md) ---- */

/*
 * Reserve n consecutive nonce counters of one key: *first gets the first of them, the
 * key's next unused counter *next, and *next moves past them. SM_E_STATE with nothing
 * changed when they would pass UINT64_MAX: the key's counters are spent, and rather
 * than wrap to one already used, the caller gets the error (or a new key).
 */
sm_status smi_nonce_reserve(uint64_t *next, uint64_t n, uint64_t *first);

/* ---- stream binding (SM-REQ-085, spec/enclaves-streams.md) ---- */

#define SMI_STREAM_ID_LEN 16u
#define SMI_STREAM_AAD_LEN (16u + SMI_STREAM_ID_LEN + 8u)

/*
 * The additional data that seals a stream's chunk (kind 'c') or end record ('e') to its
 * place is "stream\0" || kind || the stream's id || seq || n: this writes the first 24
 * bytes, smi_le64_put the position and the length after them. Every field is then a
 * function of the bytes, so a record opens only under the kind, stream, position and
 * length it was sealed with.
 */
void smi_stream_aad_head(uint8_t *aad, uint8_t kind, const uint8_t *id);
/* The 8 base-256 digits of v at p, lowest first (little-endian). */
void smi_le64_put(uint8_t *p, uint64_t v);

/* ---- the buffer state machine (spec/buffer-states.tsv, SM-REQ-050) ---- */

typedef enum { SMI_BUF_MUTABLE, SMI_BUF_FROZEN, SMI_BUF_DESTROYED } smi_buf_state;

/* The operation classes of the table: every public buffer operation is one of them. */
typedef enum {
    SMI_BOP_FREEZE,
    SMI_BOP_MELT,
    SMI_BOP_WRITE,  /* copy, copy_at, move, move_at, scramble, wipe */
    SMI_BOP_READ,   /* equal, data, size, is_alive, is_mutable */
    SMI_BOP_SEAL,
    SMI_BOP_DESTROY
} smi_buf_op;

/*
 * One cell of the table: the status of op in state s, and the state after it (*next is
 * s itself when the status is an error). The caller does the work (protection changes,
 * unmapping) and commits *next only once that work succeeded.
 */
sm_status smi_buf_step(smi_buf_state s, smi_buf_op op, smi_buf_state *next);

/*
 * Store the state that smi_buf_step gave into *s once the caller's OS call returned
 * done: only when done is SM_OK, so that a buffer never claims a protection the OS
 * refused to give it.
 */
void smi_buf_commit(smi_buf_state *s, smi_buf_state next, sm_status done);

/* ---- the secret access and close protocol (spec/secret-states.tsv, SM-REQ-091) ---- */

/*
 * What the slot's lock protects of a secret, as the protocol sees it. A handle that
 * names no secret is CLOSED; the registry answers for that state before this is asked.
 */
typedef struct smi_sec_view {
    uint32_t readers;  /* accesses in flight */
    int      closing;  /* close has begun */
    int      changing; /* a thread is opening, shutting or destroying outside the lock */
    int      readable; /* the window is open (also after a failed shut, with no reader) */
} smi_sec_view;

typedef enum { SMI_SEC_OPEN_IDLE, SMI_SEC_OPEN_ACCESSED, SMI_SEC_CLOSING, SMI_SEC_CLOSED } smi_sec_state;

typedef enum {
    SMI_SOP_ACCESS,     /* with_bytes, read_at: entering */
    SMI_SOP_TRY_ACCESS, /* try_with_bytes: entering */
    SMI_SOP_LEAVE,      /* an access in flight ends */
    SMI_SOP_CLOSE,      /* close: entering */
    SMI_SOP_CLOSE_WAIT, /* close, having begun: may it destroy yet? */
    SMI_SOP_QUERY       /* size, is_closed */
} smi_sec_op;

typedef enum {
    SMI_SACT_JOIN,    /* one more reader of the open window */
    SMI_SACT_OPEN,    /* the first reader: open the window, outside the lock */
    SMI_SACT_WAIT,    /* wait on the slot's condition variable, then ask again */
    SMI_SACT_BUSY,    /* SM_E_BUSY: a try that would have waited */
    SMI_SACT_REFUSE,  /* SM_E_STATE */
    SMI_SACT_DEPART,  /* one reader fewer; others remain */
    SMI_SACT_SHUT,    /* the last reader: shut the window, outside the lock */
    SMI_SACT_DESTROY, /* close: nothing in flight: wipe and release, outside the lock */
    SMI_SACT_ANSWER,  /* a query answers from the descriptor */
    SMI_SACT_CORRUPT  /* a leave with no reader: the descriptor is damaged */
} smi_sec_action;

/* The table's state of an open secret (never SMI_SEC_CLOSED). */
smi_sec_state smi_sec_state_of(const smi_sec_view *v);
/* What op does in the state v describes; the caller acts and updates the view itself. */
smi_sec_action smi_sec_decide(const smi_sec_view *v, smi_sec_op op);

#endif
