/* SPDX-License-Identifier: ISC */
/*
 * The configuration in force: a leaf service. sm_init (runtime.c) writes it under its
 * lock, until an init succeeds and publishes "ready" with release order; the allocators
 * and the RNG below the runtime read it without a lock after that, and so never call up
 * into the runtime for it (spec/layers.tsv).
 */
#include "inner.h"

static sm_config config;
static bool secretmem;

void smi_config_set(const sm_config *cfg, bool secretmem_works)
{
    config = *cfg;
    secretmem = secretmem_works;
}

const sm_config *smi_config_get(void)
{
    return &config;
}

bool smi_config_secretmem(void)
{
    return secretmem;
}
