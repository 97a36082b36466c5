/* SPDX-License-Identifier: ISC */
/*
 * What the drivers of proofs/eva/ call in the shims below the library (os.c, pthread.c;
 * proofs/README.md, "Eva"), and the one way they say that a step the scenario needs
 * was refused.
 */
#ifndef SM_EVA_DRIVER_H
#define SM_EVA_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* os.c's plan: from now on only the nth fallible OS call fails (0: none). */
void eva_os_fail(unsigned nth);
/* Whether the planned failure is still to come: the scenario made fewer calls. */
bool eva_os_fail_pending(void);
/* os.c's count of the mappings alive. */
unsigned eva_os_mapped(void);
/* os.c's fork: the handlers that the runtime registered, as fork runs them. */
void eva_os_fork(bool child);
/* os.c's inputs: fd holds these len bytes; a pipe refuses seeks. */
void eva_os_input(int fd, const uint8_t *bytes, size_t len, bool pipe);
/* pthread.c: bit i of plan set, the (i+1)th trylock of a free lock from now on finds
   another thread holding it. */
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
