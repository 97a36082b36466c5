/* SPDX-License-Identifier: ISC */
#ifndef SM_FACTORIES_H
#define SM_FACTORIES_H

/*
 * Every factory a suite runs secrets over: the library's four and the example custom
 * one (example_factory.h), numbered so that a loop or an index modulo NFACT visits each
 * in turn. Public API only, like the example factory, so that the fuzz harnesses and
 * the test suites can all use it.
 */

#include "example_factory.h"

enum { FACT_PROTECTED, FACT_GUARDED, FACT_ENCRYPTED, FACT_CUSTOM, FACT_COMPACT };
#define NFACT 5u

/* Factory k modulo NFACT. */
static inline const sm_factory *factory(unsigned k)
{
    switch (k % NFACT) {
    case FACT_PROTECTED:
        return sm_factory_protected();
    case FACT_GUARDED:
        return sm_factory_guarded();
    case FACT_ENCRYPTED:
        return sm_factory_encrypted();
    case FACT_COMPACT:
        return sm_factory_compact();
    default:
        return example_factory();
    }
}

/* Its name for messages, as spec/syscalls.tsv spells it in rows such as secret.new.<name>. */
static inline const char *factory_name(unsigned k)
{
    static const char *const names[NFACT] = { "protected", "guarded", "encrypted", "custom",
                                                     "compact" };

    return names[k % NFACT];
}

#endif
