/* SPDX-License-Identifier: ISC */
#include "core.h"

smi_sec_state smi_sec_state_of(const smi_sec_view *v)
{
    if (v->closing)
        return SMI_SEC_CLOSING;
    return v->readers > 0 ? SMI_SEC_OPEN_ACCESSED : SMI_SEC_OPEN_IDLE;
}

/*
 * Written as spec/secret-states.tsv reads. A window change in progress (changing) is the
 * table's WINDOW-CHANGING column: entering waits for it, or is BUSY for a try, because
 * the window is neither open nor shut until the changing thread comes back.
 */
smi_sec_action smi_sec_decide(const smi_sec_view *v, smi_sec_op op)
{
    switch (op) {
    case SMI_SOP_ACCESS:
    case SMI_SOP_TRY_ACCESS:
        if (v->closing)
            return SMI_SACT_REFUSE;
        if (v->changing)
            return op == SMI_SOP_TRY_ACCESS ? SMI_SACT_BUSY : SMI_SACT_WAIT;
        return v->readers > 0 || v->readable ? SMI_SACT_JOIN : SMI_SACT_OPEN;
    case SMI_SOP_LEAVE:
        if (v->readers == 0)
            return SMI_SACT_CORRUPT;
        return v->readers > 1 ? SMI_SACT_DEPART : SMI_SACT_SHUT;
    case SMI_SOP_CLOSE:
        /* A second close does not wait: the first one will wipe. The first one waits
           exactly as a close that has begun does. */
        if (v->closing)
            return SMI_SACT_REFUSE;
        /* fall through */
    case SMI_SOP_CLOSE_WAIT:
        return v->readers > 0 || v->changing ? SMI_SACT_WAIT : SMI_SACT_DESTROY;
    case SMI_SOP_QUERY:
        return v->closing ? SMI_SACT_REFUSE : SMI_SACT_ANSWER;
    }
    return SMI_SACT_REFUSE;
}
