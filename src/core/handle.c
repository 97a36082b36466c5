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

/*@ ensures \result == handle_id(kind % (SMI_HANDLE_KIND_MAX + 1),
                                 gen % (SMI_HANDLE_GEN_MAX + 1), index);
    assigns \nothing;
*/
uint64_t smi_handle_make(unsigned kind, uint32_t gen, uint32_t index)
{
    return (uint64_t)(kind % (SMI_HANDLE_KIND_MAX + 1u)) * KIND_WEIGHT +
           (uint64_t)(gen % (SMI_HANDLE_GEN_MAX + 1u)) * GEN_WEIGHT + index;
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
