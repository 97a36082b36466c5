/* SPDX-License-Identifier: ISC */
/*
 * The secrets analysis's trusted contract (proofs/README.md, "Eva", "The secrets
 * analysis"): what Eva assumes, without analysing it, of coffer.c, a file that no Eva
 * analysis reaches, for the one call of it that the driven paths of secret.c make.
 * Like proofs/trusted.c, an assumption, not a proof.
 */
#include "inner.h"

/*
 * coffer.c: a flag of the calling thread's that makes the next key reads try their
 * locks only (SM-REQ-094); only the coffer reads it, and no analysed file does.
 */
/*@ assigns \nothing; */
void smi_coffer_try_only(bool on);
