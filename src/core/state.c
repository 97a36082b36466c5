/* SPDX-License-Identifier: ISC */
#include "core.h"

/*
 * One behavior per cell of spec/buffer-states.tsv (state x operation class): the block
 * between BEGIN and END is generated from the table by proofs/state-contract.sh, and
 * make proofs fails if the two differ, so the proof is of the table itself.
 */
/*@ requires buf_state_ok(s);
    requires \valid(next);
    assigns *next;

    // BEGIN behaviors generated from spec/buffer-states.tsv by proofs/state-contract.sh
    behavior mutable_freeze:
      assumes s == SMI_BUF_MUTABLE && op == SMI_BOP_FREEZE;
      ensures \result == SM_OK && *next == SMI_BUF_FROZEN;
    behavior mutable_melt:
      assumes s == SMI_BUF_MUTABLE && op == SMI_BOP_MELT;
      ensures \result == SM_OK && *next == SMI_BUF_MUTABLE;
    behavior mutable_write:
      assumes s == SMI_BUF_MUTABLE && op == SMI_BOP_WRITE;
      ensures \result == SM_OK && *next == SMI_BUF_MUTABLE;
    behavior mutable_read:
      assumes s == SMI_BUF_MUTABLE && op == SMI_BOP_READ;
      ensures \result == SM_OK && *next == SMI_BUF_MUTABLE;
    behavior mutable_seal:
      assumes s == SMI_BUF_MUTABLE && op == SMI_BOP_SEAL;
      ensures \result == SM_OK && *next == SMI_BUF_DESTROYED;
    behavior mutable_destroy:
      assumes s == SMI_BUF_MUTABLE && op == SMI_BOP_DESTROY;
      ensures \result == SM_OK && *next == SMI_BUF_DESTROYED;
    behavior frozen_freeze:
      assumes s == SMI_BUF_FROZEN && op == SMI_BOP_FREEZE;
      ensures \result == SM_OK && *next == SMI_BUF_FROZEN;
    behavior frozen_melt:
      assumes s == SMI_BUF_FROZEN && op == SMI_BOP_MELT;
      ensures \result == SM_OK && *next == SMI_BUF_MUTABLE;
    behavior frozen_write:
      assumes s == SMI_BUF_FROZEN && op == SMI_BOP_WRITE;
      ensures \result == SM_E_STATE && *next == SMI_BUF_FROZEN;
    behavior frozen_read:
      assumes s == SMI_BUF_FROZEN && op == SMI_BOP_READ;
      ensures \result == SM_OK && *next == SMI_BUF_FROZEN;
    behavior frozen_seal:
      assumes s == SMI_BUF_FROZEN && op == SMI_BOP_SEAL;
      ensures \result == SM_OK && *next == SMI_BUF_DESTROYED;
    behavior frozen_destroy:
      assumes s == SMI_BUF_FROZEN && op == SMI_BOP_DESTROY;
      ensures \result == SM_OK && *next == SMI_BUF_DESTROYED;
    behavior destroyed_freeze:
      assumes s == SMI_BUF_DESTROYED && op == SMI_BOP_FREEZE;
      ensures \result == SM_E_STATE && *next == SMI_BUF_DESTROYED;
    behavior destroyed_melt:
      assumes s == SMI_BUF_DESTROYED && op == SMI_BOP_MELT;
      ensures \result == SM_E_STATE && *next == SMI_BUF_DESTROYED;
    behavior destroyed_write:
      assumes s == SMI_BUF_DESTROYED && op == SMI_BOP_WRITE;
      ensures \result == SM_E_STATE && *next == SMI_BUF_DESTROYED;
    behavior destroyed_read:
      assumes s == SMI_BUF_DESTROYED && op == SMI_BOP_READ;
      ensures \result == SM_E_STATE && *next == SMI_BUF_DESTROYED;
    behavior destroyed_seal:
      assumes s == SMI_BUF_DESTROYED && op == SMI_BOP_SEAL;
      ensures \result == SM_E_STATE && *next == SMI_BUF_DESTROYED;
    behavior destroyed_destroy:
      assumes s == SMI_BUF_DESTROYED && op == SMI_BOP_DESTROY;
      ensures \result == SM_E_STATE && *next == SMI_BUF_DESTROYED;
    // END behaviors generated from spec/buffer-states.tsv

    // Outside the table: a value that is no operation class.
    behavior alive_unknown_op:
      assumes s != SMI_BUF_DESTROYED && !buf_op_ok(op);
      ensures \result == SM_E_INVAL && *next == s;
    behavior destroyed_unknown_op:
      assumes s == SMI_BUF_DESTROYED && !buf_op_ok(op);
      ensures \result == SM_E_STATE && *next == s;

    complete behaviors;
    disjoint behaviors;
*/
/* Written as the table reads (spec/buffer-states.tsv), column by column. */
sm_status smi_buf_step(smi_buf_state s, smi_buf_op op, smi_buf_state *next)
{
    *next = s;
    if (s == SMI_BUF_DESTROYED)
        return SM_E_STATE;
    switch (op) {
    case SMI_BOP_FREEZE:
        *next = SMI_BUF_FROZEN;
        return SM_OK;
    case SMI_BOP_MELT:
        *next = SMI_BUF_MUTABLE;
        return SM_OK;
    case SMI_BOP_WRITE:
        return s == SMI_BUF_MUTABLE ? SM_OK : SM_E_STATE;
    case SMI_BOP_READ:
        return SM_OK;
    case SMI_BOP_SEAL:
    case SMI_BOP_DESTROY:
        *next = SMI_BUF_DESTROYED;
        return SM_OK;
    }
    return SM_E_INVAL;
}

/*@ requires \valid(s);
    assigns *s;
    behavior done:
      assumes done == SM_OK;
      ensures *s == next;
    behavior refused:
      assumes done != SM_OK;
      ensures *s == \old(*s);
      assigns \nothing;
    complete behaviors;
    disjoint behaviors;
*/
void smi_buf_commit(smi_buf_state *s, smi_buf_state next, sm_status done)
{
    if (done == SM_OK)
        *s = next;
}
