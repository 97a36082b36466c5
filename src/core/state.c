/* SPDX-License-Identifier: ISC */
#include "core.h"

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
