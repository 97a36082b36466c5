/* SPDX-License-Identifier: ISC */
#ifndef OPS_MODEL_H
#define OPS_MODEL_H

/*
 * The ops harness's reference model and what its parts share (fuzz/ops.c is the driver,
 * fuzz/ops/ the parts, one per object kind): the model's state, the spec tables' rows,
 * the checks run after every operation, and each part's operations. One harness, so
 * these names are the harness binary's own; nothing else links them.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "calls.h"
#include "factories.h"
#include "fuzz_tables.h"
#include "harness.h"
#include "secrets.h"

#define NB 6        /* buffers */
#define NE 4        /* enclaves */
#define NS 3        /* streams */
#define NM 3        /* raw memory regions */
#define NSEC 4      /* secrets */
#define MAX_OPS 64  /* operations per input, nested ones included */
#define MAX_DEPTH 6 /* nested accesses; the library tracks 16 per thread (secret.h) */
#define MAX_FIFO (128u * 1024u)

typedef struct mbuf {
    sm_buffer h;      /* the live handle, or the stale one of the last object here */
    int       state;  /* FZ_MUTABLE, FZ_FROZEN, FZ_DESTROYED */
    size_t    size;
    uint8_t  *want;   /* the contents */
    bool      opened; /* a failed free left the pages read-write (SM-REQ-030) */
} mbuf;

typedef struct menc {
    sm_enclave h;
    bool       alive;
    size_t     size;
    uint8_t   *pt;
    bool       known; /* false for sm_enclave_random until the first open */
} menc;

typedef struct mstr {
    sm_stream h;
    bool      alive;
    uint8_t  *fifo;
    size_t    len;
} mstr;

typedef struct msec {
    sm_secret      h;
    bool           open;     /* not closed */
    unsigned       fac;
    size_t         size;
    uint8_t       *want;     /* the bytes, where have[] says they are known */
    uint8_t       *have;     /* a random secret's bytes are learnt as they are read */
    unsigned       depth;    /* this input's accesses in flight (nested callbacks) */
    bool           readable; /* the window is open: accessed, or a failed shut kept it */
    bool           opened;   /* a failed close left the pages wiped and read-write */
    bool           audited;  /* a failed audit left the pages readable (op_audit) */
    const uint8_t *addr;     /* where the bytes were last seen (not encrypted: fixed) */
    unsigned       slot;     /* a compact secret's slot in its class's slab (compact.c) */
} msec;

typedef struct mmem {
    uint8_t *p;      /* NULL when free */
    size_t   n, len; /* asked for, and mapped (whole pages) */
    sm_prot  prot;
    uint8_t *want;
} mmem;

typedef struct ops_model {
    mbuf     b[NB];
    menc     e[NE];
    mstr     s[NS];
    mmem     m[NM];
    msec     sec[NSEC];
    unsigned depth;     /* callbacks in flight */
    unsigned ops;       /* operations run, nested ones included */
    uint64_t alloc_base; /* allocations_total where the current operation's count starts */
    bool     coffer_base; /* and whether the enclave key existed there */
    bool     aged;      /* the key was aged (test hook): a window may re-split it */
    bool     rng_keyed; /* the canary generator has its key (calls.h) */
    bool     share_open; /* a refused mprotect may have left an enclave key share open */
    bool     exhausted; /* the key's nonces are used up (test hook) until a purge */
    bool     tainted;   /* a rollback may have failed: stop this input */
    unsigned forks;
    unsigned touched;   /* buffers whose pages the last operation may have changed */
    unsigned made;      /* guarded regions that the last operation made and kept */
    uint64_t base_bytes;
} ops_model;

/*
 * The factories of the model: factories.h's, the compact factory last, whose slabs the
 * model keeps page by page (compact.c). pick_factory reads one byte: compact for one
 * value in eight, the other four in factories.h's order for the rest, as before compact
 * had a number there.
 */
#define COMPACT_MAX 2048u /* larger secrets are SM_E_INVAL for the compact factory */
unsigned pick_factory(fz_in *in);

/* The model (model.c), the fault plan armed from the input, sizes and source bytes. */
extern ops_model M;
extern fz_faults F;
extern size_t page, maxb, chunk_cap;
extern uint8_t *src, *src2;

enum { R_FREEZE, R_MELT, R_COPY, R_COPY_AT, R_MOVE, R_MOVE_AT, R_SCRAMBLE, R_WIPE, R_EQUAL,
       R_DATA, R_SIZE, R_IS_ALIVE, R_IS_MUTABLE, R_SEAL, R_DESTROY, R_COUNT };
extern const char *const row_names[R_COUNT];
extern const fz_buf_row *rows[R_COUNT];
extern const fz_sec_row *sec_rows[FZ_SOP_COUNT];

#define BUF_ID(b) ((unsigned)((b) - M.b))
#define ENC_ID(e) ((unsigned)((e) - M.e))
#define STR_ID(s) ((unsigned)((s) - M.s))
#define SEC_ID(s) ((unsigned)((s) - M.sec))
#define SECRET_MAX (SIZE_MAX >> 2) /* larger lengths are SM_E_INVAL (secret.h) */

/* model.c: rows, outcomes, picking objects, the checks, resetting */
void find_rows(void);
bool outcome(sm_status st, sm_status want, sm_status alt, const char *what);
bool failed_last_munmap(void);
size_t overflowing(uint16_t v);
size_t pick_size(fz_in *in);
bool live_buf(const mbuf *b);
mbuf *free_buf(fz_in *in);
menc *free_enc(fz_in *in);
mstr *free_str(fz_in *in);
void check_calls(const char *what, const fz_calls own, const char *op);
void check_all(void);
void cleanup(void);
void reset_model(void);
void rebase(void);

/* buffers.c */
void op_state(fz_in *in, int r);
void op_write(fz_in *in, int r);
void op_fill(fz_in *in, int r);
void op_equal(fz_in *in);
void op_create(fz_in *in, unsigned kind);
void op_destroy_buf(fz_in *in);
void op_seal(fz_in *in);

/* enclaves.c */
void op_enclave_new(fz_in *in, bool random);
void op_open(fz_in *in);
void op_open_into(fz_in *in);
void op_enclave_destroy(fz_in *in);

/* streams.c */
void op_stream_new(fz_in *in);
void op_stream_write(fz_in *in);
void op_stream_read(fz_in *in);
void op_stream_take(fz_in *in, bool all);
void op_stream_destroy(fz_in *in);

/* memory.c: raw memory (securemem/mem.h) */
void op_mem_alloc(fz_in *in);
void op_mem_free(fz_in *in);
void op_mem_protect(fz_in *in);
void op_mem_lock(fz_in *in);
void op_mem_bytes(fz_in *in);

/* secrets.c */
void op_secret_new(fz_in *in, bool random);
void op_secret_from_fd(fz_in *in);
void op_secret_from_callback(fz_in *in);
void op_secret_from_buffer(fz_in *in);
void op_access(fz_in *in, bool try);
void op_read_at(fz_in *in);
void op_secret_close(fz_in *in);
void op_secret_query(fz_in *in);
void op_secret_bad(fz_in *in);

/* compact.c: the compact factory's slabs, calls emulated against the fault plans */
unsigned cm_class_of(size_t size);
void cm_reset(void);
void cm_begin(void);
void cm_skip(sm_os_fn fn, unsigned long n);
unsigned long cm_calls(sm_os_fn fn);
void cm_save(void);
void cm_restore(void);
sm_status cm_make(size_t size, sm_status fill, int commit_calls, unsigned *slot);
sm_status cm_open(const msec *s);
sm_status cm_shut(const msec *s);
sm_status cm_close(const msec *s);
sm_status cm_audit(void);
void cm_check_calls(const char *what);
uint64_t cm_bytes(void);
void cm_seen(const msec *s, const uint8_t *bytes);
void cm_check_pages(const msec *s);

/* runtime.c: purge, audit, init, status, the coffer's hooks, stale handles, NULL arguments */
void op_purge(fz_in *in);
void op_audit(void);
void op_init(fz_in *in);
void op_platform(fz_in *in);
void op_status(fz_in *in);
void op_coffer(fz_in *in);
void op_stale(fz_in *in);
void op_null_args(fz_in *in);

/* faults.c: forked children, fork handlers, exits, panics and signals */
void op_fork(fz_in *in);

/* fuzz/ops.c: run one operation of the input (nested ones run from secrets.c). */
void step(fz_in *in);

#endif
