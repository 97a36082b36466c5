/* SPDX-License-Identifier: ISC */
#include "core.h"

/*
 * The fields are packed and unpacked by multiplying, dividing and taking remainders by
 * their weights, powers of two, rather than by shifts, masks and or. Compilers turn
 * these into shifts and masks again (gcc -O2 gives the decoders byte for byte the same
 * code), while the provers reason about the arithmetic directly, where the bitwise form
 * needs a bit-level argument per field (proofs/core.acsl, handle_round_trip).
 */
#define KIND_WEIGHT ((uint64_t)1 << 60)
#define GEN_WEIGHT ((uint64_t)1 << 32)

/*
 * No reduction of the fields: a generation past the last would wrap to an old one and
 * repeat an id (SM-REQ-040), so the registry may only pass a live one (gen_live).
 */
/*@ requires 1 <= kind <= SMI_HANDLE_KIND_MAX;
    requires gen_live(gen);
    ensures \result == handle_id(kind, gen, index);
    ensures \result != 0;
    assigns \nothing;
*/
uint64_t smi_handle_make(unsigned kind, uint32_t gen, uint32_t index)
{
    return (uint64_t)kind * KIND_WEIGHT + (uint64_t)gen * GEN_WEIGHT + index;
}

/*@ ensures \result == id_kind(id) && \result <= SMI_HANDLE_KIND_MAX;
    assigns \nothing;
*/
unsigned smi_handle_kind(uint64_t id)
{
    return (unsigned)(id / KIND_WEIGHT);
}

/*@ ensures \result == id_gen(id) && \result <= SMI_HANDLE_GEN_MAX;
    assigns \nothing;
*/
uint32_t smi_handle_gen(uint64_t id)
{
    return (uint32_t)(id / GEN_WEIGHT % (SMI_HANDLE_GEN_MAX + 1u));
}

/*@ ensures \result == id_index(id);
    assigns \nothing;
*/
uint32_t smi_handle_index(uint64_t id)
{
    return (uint32_t)(id % GEN_WEIGHT);
}

/*
 * Generations only grow while they are live, so a slot's ids differ pairwise
 * (handle_slot_ids_differ); a spent slot stays RETIRED, so not even a forked child's
 * handler, which moves every slot on, can bring it back.
 */
/*@ assigns \nothing;
    behavior next:
      assumes gen < SMI_HANDLE_GEN_MAX;
      ensures \result == gen + 1 && gen_live(\result);
    behavior spent:
      assumes gen >= SMI_HANDLE_GEN_MAX;
      ensures \result == SMI_HANDLE_GEN_RETIRED && !gen_live(\result);
    complete behaviors;
    disjoint behaviors;
*/
uint32_t smi_handle_gen_next(uint32_t gen)
{
    return gen < SMI_HANDLE_GEN_MAX ? gen + 1u : SMI_HANDLE_GEN_RETIRED;
}

/*@ ensures \result == 0 || \result == 1;
    ensures \result == 1 <==> gen_live(gen);
    assigns \nothing;
*/
int smi_handle_gen_live(uint32_t gen)
{
    return gen >= 1u && gen <= SMI_HANDLE_GEN_MAX;
}

/*
 * Given the id the slot holds now, loaded once by the caller: the whole decision of
 * whether a handle still names the object, on values, so that it is proved.
 */
/*@ ensures \result == 0 || \result == 1;
    ensures \result == 1 <==> id != 0 && id == current && id_kind(id) == kind;
    // the auditor's cases, each a consequence of the above and of handle_injective:
    // an id of an older (or any other) generation of the same slot is refused
    ensures \forall integer k, g, g2, i;
              handle_fields(k, g, i) && handle_fields(k, g2, i) && g != g2 &&
              current == handle_id(k, g, i) && id == handle_id(k, g2, i) ==> \result == 0;
    // an id of another kind is refused, even the slot's own
    ensures id_kind(id) != kind ==> \result == 0;
    // a slot that holds nothing accepts nothing
    ensures current == 0 ==> \result == 0;
    assigns \nothing;
*/
int smi_handle_accepts(uint64_t id, uint64_t current, unsigned kind)
{
    return id != 0 && id == current && id / KIND_WEIGHT == kind;
}
