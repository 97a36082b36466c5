/* SPDX-License-Identifier: ISC */
#ifndef SM_EXAMPLE_FACTORY_H
#define SM_EXAMPLE_FACTORY_H

/*
 * An example custom factory, written against <securemem.h> alone (it would build
 * outside this tree). The tests run the same conformance suite over it as over the
 * library's factories.
 */

#include <securemem.h>

/* The page-pair factory: see example_factory.c. */
const sm_factory *example_factory(void);

/*
 * A gated variant (example_gate.c, which needs pthreads), for tests of a window change
 * in progress: its make_readable announces itself and then waits until the gate is
 * opened. One gate at a time.
 */
typedef struct example_gate example_gate;
example_gate *example_gate_new(void);
void example_gate_free(example_gate *g);
const sm_factory *example_gate_factory(example_gate *g);
/* Wait until a make_readable is waiting at the gate. */
void example_gate_wait_arrival(example_gate *g);
/* Let the waiting make_readable (and every later one) through. */
void example_gate_open(example_gate *g);

#endif
