/* SPDX-License-Identifier: ISC */
#include "core.h"

/*@ requires \valid_read(v);
    assigns \nothing;
    behavior closing:
      assumes v->closing != 0;
      ensures \result == SMI_SEC_CLOSING;
    behavior accessed:
      assumes v->closing == 0 && v->readers > 0;
      ensures \result == SMI_SEC_OPEN_ACCESSED;
    behavior idle:
      assumes v->closing == 0 && v->readers == 0;
      ensures \result == SMI_SEC_OPEN_IDLE;
    complete behaviors;
    disjoint behaviors;
*/
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
/*@ requires \valid_read(v);
    assigns \nothing;

    // Entering: refused once closing; waits (or is busy) while the window changes;
    // joins an open window; the first reader opens it.
    behavior enter_closing:
      assumes (op == SMI_SOP_ACCESS || op == SMI_SOP_TRY_ACCESS) && v->closing != 0;
      ensures \result == SMI_SACT_REFUSE;
    behavior enter_changing_wait:
      assumes op == SMI_SOP_ACCESS && v->closing == 0 && v->changing != 0;
      ensures \result == SMI_SACT_WAIT;
    behavior enter_changing_busy:
      assumes op == SMI_SOP_TRY_ACCESS && v->closing == 0 && v->changing != 0;
      ensures \result == SMI_SACT_BUSY;
    behavior enter_join:
      assumes (op == SMI_SOP_ACCESS || op == SMI_SOP_TRY_ACCESS) && v->closing == 0 &&
              v->changing == 0 && (v->readers > 0 || v->readable != 0);
      ensures \result == SMI_SACT_JOIN;
    behavior enter_open:
      assumes (op == SMI_SOP_ACCESS || op == SMI_SOP_TRY_ACCESS) && v->closing == 0 &&
              v->changing == 0 && v->readers == 0 && v->readable == 0;
      ensures \result == SMI_SACT_OPEN;

    // Leaving: the counter never underflows (a leave at 0 is corruption), and only the
    // last reader shuts the window.
    behavior leave_none:
      assumes op == SMI_SOP_LEAVE && v->readers == 0;
      ensures \result == SMI_SACT_CORRUPT;
    behavior leave_last:
      assumes op == SMI_SOP_LEAVE && v->readers == 1;
      ensures \result == SMI_SACT_SHUT;
    behavior leave_other:
      assumes op == SMI_SOP_LEAVE && v->readers > 1;
      ensures \result == SMI_SACT_DEPART;

    // Close: a second close is refused; the first destroys only at count 0 with no
    // window change in flight, and waits otherwise.
    behavior close_again:
      assumes op == SMI_SOP_CLOSE && v->closing != 0;
      ensures \result == SMI_SACT_REFUSE;
    behavior close_wait:
      assumes (op == SMI_SOP_CLOSE_WAIT || (op == SMI_SOP_CLOSE && v->closing == 0)) &&
              (v->readers > 0 || v->changing != 0);
      ensures \result == SMI_SACT_WAIT;
    behavior close_destroy:
      assumes (op == SMI_SOP_CLOSE_WAIT || (op == SMI_SOP_CLOSE && v->closing == 0)) &&
              v->readers == 0 && v->changing == 0;
      ensures \result == SMI_SACT_DESTROY;

    behavior query_closing:
      assumes op == SMI_SOP_QUERY && v->closing != 0;
      ensures \result == SMI_SACT_REFUSE;
    behavior query_open:
      assumes op == SMI_SOP_QUERY && v->closing == 0;
      ensures \result == SMI_SACT_ANSWER;

    behavior unknown_op:
      assumes !sec_op_ok(op);
      ensures \result == SMI_SACT_REFUSE;

    complete behaviors;
    disjoint behaviors;
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
