/* SPDX-License-Identifier: ISC */
/*
 * What Eva's drivers (proofs/eva/NAME.c) call of the shim, os.c and pthread.c, and how
 * they mark a step that must succeed. Read by Frama-C only, never by a compiler.
 */
#ifndef EVA_DRIVER_H
#define EVA_DRIVER_H

#include "inner.h"

/* The fork handlers that the runtime registered, as fork runs them: in the parent, or
   in the child. */
void eva_os_fork(bool child);
/* The plan: from now on only the nth fallible OS call fails (0: none). */
void eva_os_fail(unsigned nth);
/* Whether the plan's failure is still to come (the calls made so far were fewer). */
bool eva_os_fail_pending(void);
/* fd holds these len bytes; a pipe refuses seeks. */
void eva_os_input(int fd, const uint8_t *bytes, size_t len, bool pipe);
/* The status that sm_os_secretmem_create answers with (SM_OK until set). */
void eva_os_secretmem(sm_status answer);
/* The mappings alive now. */
unsigned eva_os_mapped(void);
/* How many times the library asked for its fork handlers. */
unsigned eva_os_atfork_calls(void);
/* Bit i of plan set: the (i+1)th trylock of a free lock from now on finds another
   thread holding it. */
void eva_pthread_foreign(unsigned plan);

/* A step that must succeed here did not: the driver says so, and that part ends there. */
#define MUST(call) \
    do { \
        if ((call) != SM_OK) { \
            Frama_C_show_each_unexpected_refusal(__LINE__); \
            return; \
        } \
    } while (0)

#endif
