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
 * the window is neither open nor shut until the changing thread comes back. One
 * behavior per cell of the table is generated from it by proofs/state-contract.sh, and
 * make proofs fails if the two differ, so the proof is of the table itself; the
 * behaviors after the block are the operations and the view that the table has no
 * column or row for.
 */
/*@ requires \valid_read(v);
    assigns \nothing;

    // BEGIN behaviors generated from spec/secret-states.tsv by proofs/state-contract.sh
    behavior access_open_idle:
      assumes op == SMI_SOP_ACCESS && sec_open_idle(v);
      ensures \result == SMI_SACT_OPEN;
    behavior try_access_open_idle:
      assumes op == SMI_SOP_TRY_ACCESS && sec_open_idle(v);
      ensures \result == SMI_SACT_OPEN;
    behavior close_open_idle:
      assumes op == SMI_SOP_CLOSE && sec_open_idle(v);
      ensures \result == SMI_SACT_DESTROY;
    behavior query_open_idle:
      assumes op == SMI_SOP_QUERY && sec_open_idle(v);
      ensures \result == SMI_SACT_ANSWER;
    behavior access_open_accessed:
      assumes op == SMI_SOP_ACCESS && sec_open_accessed(v);
      ensures \result == SMI_SACT_JOIN;
    behavior try_access_open_accessed:
      assumes op == SMI_SOP_TRY_ACCESS && sec_open_accessed(v);
      ensures \result == SMI_SACT_JOIN;
    behavior close_open_accessed:
      assumes op == SMI_SOP_CLOSE && sec_open_accessed(v);
      ensures \result == SMI_SACT_WAIT;
    behavior query_open_accessed:
      assumes op == SMI_SOP_QUERY && sec_open_accessed(v);
      ensures \result == SMI_SACT_ANSWER;
    behavior access_closing:
      assumes op == SMI_SOP_ACCESS && sec_closing(v);
      ensures \result == SMI_SACT_REFUSE;
    behavior try_access_closing:
      assumes op == SMI_SOP_TRY_ACCESS && sec_closing(v);
      ensures \result == SMI_SACT_REFUSE;
    behavior close_closing:
      assumes op == SMI_SOP_CLOSE && sec_closing(v);
      ensures \result == SMI_SACT_REFUSE;
    behavior query_closing:
      assumes op == SMI_SOP_QUERY && sec_closing(v);
      ensures \result == SMI_SACT_REFUSE;
    behavior access_window_changing:
      assumes op == SMI_SOP_ACCESS && sec_window_changing(v);
      ensures \result == SMI_SACT_WAIT;
    behavior try_access_window_changing:
      assumes op == SMI_SOP_TRY_ACCESS && sec_window_changing(v);
      ensures \result == SMI_SACT_BUSY;
    behavior close_window_changing:
      assumes op == SMI_SOP_CLOSE && sec_window_changing(v);
      ensures \result == SMI_SACT_WAIT;
    behavior query_window_changing:
      assumes op == SMI_SOP_QUERY && sec_window_changing(v);
      ensures \result == SMI_SACT_ANSWER;
    // END behaviors generated from spec/secret-states.tsv

    // A last reader's shut failed: the window is still open, with no reader. Entering
    // joins it (no OS call), close destroys, a query answers.
    behavior enter_shut_failed:
      assumes (op == SMI_SOP_ACCESS || op == SMI_SOP_TRY_ACCESS) && sec_shut_failed(v);
      ensures \result == SMI_SACT_JOIN;
    behavior close_shut_failed:
      assumes op == SMI_SOP_CLOSE && sec_shut_failed(v);
      ensures \result == SMI_SACT_DESTROY;
    behavior query_shut_failed:
      assumes op == SMI_SOP_QUERY && sec_shut_failed(v);
      ensures \result == SMI_SACT_ANSWER;

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

    // A close that has begun destroys only at count 0 with no window change in flight.
    behavior close_wait_wait:
      assumes op == SMI_SOP_CLOSE_WAIT && (v->readers > 0 || v->changing != 0);
      ensures \result == SMI_SACT_WAIT;
    behavior close_wait_destroy:
      assumes op == SMI_SOP_CLOSE_WAIT && v->readers == 0 && v->changing == 0;
      ensures \result == SMI_SACT_DESTROY;

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
