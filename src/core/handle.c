/* SPDX-License-Identifier: ISC */
#include "core.h"

uint64_t smi_handle_make(unsigned kind, uint32_t gen, uint32_t index)
{
    return ((uint64_t)(kind & SMI_HANDLE_KIND_MAX) << 60) |
           ((uint64_t)(gen & SMI_HANDLE_GEN_MAX) << 32) | (uint64_t)index;
}

unsigned smi_handle_kind(uint64_t id)
{
    return (unsigned)(id >> 60);
}

uint32_t smi_handle_gen(uint64_t id)
{
    return (uint32_t)(id >> 32) & SMI_HANDLE_GEN_MAX;
}

uint32_t smi_handle_index(uint64_t id)
{
    return (uint32_t)id;
}
