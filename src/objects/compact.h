/* SPDX-License-Identifier: ISC */
#ifndef SMI_COMPACT_H
#define SMI_COMPACT_H

/*
 * The compact factory's slab allocator (compact.c, spec/compact.md): small secrets
 * packed into slabs of locked pages, reached through handles that index the slab
 * directly (no registry slot: 384 bytes per object would be four times the budget of
 * issue 14 §2). The secret layer (secret.c) hands compact handles and the compact
 * factory's constructors to these functions and does nothing else with them.
 */

#include "inner.h"

/* The handle kind of a compact secret: outside smi_kind, so the registry never sees it. */
#define SMI_COMPACT_KIND 5u
/* The largest compact secret; larger ones are refused with SM_E_INVAL. */
#define SMI_COMPACT_MAX 2048u

/* Whether id is a compact secret's handle (its kind; the rest is checked on use). */
static inline bool smi_compact_handle(uint64_t id)
{
    return smi_handle_kind(id) == SMI_COMPACT_KIND;
}

/* A step that writes len bytes in place (a copy, random bytes, an fd, a callback). */
typedef sm_status (*smi_compact_fill)(uint8_t *bytes, size_t len, void *ctx);

/*
 * Make a compact secret of len bytes (1..SMI_COMPACT_MAX, checked by the caller):
 * reserve a slot, open its pages for writing, fill, shut them, run commit (NULL: none),
 * publish. On error nothing is left (the slot is wiped and free again).
 */
sm_status smi_compact_make(size_t len, smi_compact_fill fill, void *ctx,
                           sm_status (*commit)(void *ctx), uint64_t *id);
sm_status smi_compact_access(uint64_t id, sm_bytes_fn fn, void *ctx, bool try);
sm_status smi_compact_read_at(uint64_t id, size_t off, void *dst, size_t n, size_t *got);
size_t smi_compact_size(uint64_t id);
bool smi_compact_is_closed(uint64_t id);
sm_status smi_compact_close(uint64_t id);
/* The state of compact secret id in spec/secret-states.tsv's terms. */
smi_sec_state smi_compact_state(uint64_t id);

/* Live compact secrets (sm_stats.secrets_live counts them too). */
uint64_t smi_compact_live(void);
/* Purge every slab (async-signal-safe, as smi_registry_purge); false on a damaged canary. */
bool smi_compact_purge(bool in_place);
/* Check the canary of every live slot; a damaged one panics. */
sm_status smi_compact_audit(void);
/* The fork handlers: hold every class lock across fork; the child forgets every slab. */
void smi_compact_before_fork(void);
void smi_compact_fork_parent(void);
void smi_compact_after_fork(void);

/*
 * Whether compact secrets live under a memory protection key (spec/compact.md,
 * "Protection keys"), deciding it now if no slab has yet: a key is taken once per
 * process, or never.
 */
bool smi_compact_keyed(void);

/* Unmap every empty slab now, the one kept per class included (the tests' undo). */
void smi_compact_trim(void);

/* What the tests read: slabs mapped, slots live, pages open now. */
typedef struct smi_compact_counts {
    uint64_t slabs, slots_live, pages_open;
} smi_compact_counts;
void smi_compact_counts_get(smi_compact_counts *out);

#endif
