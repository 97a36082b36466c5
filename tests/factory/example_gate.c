/* SPDX-License-Identifier: ISC */
/*
 * The gated variant of the page-pair factory (example_factory.h), for tests of a window
 * change in progress. Apart from that factory so that the factory itself needs no
 * threads: the portable suites link it on systems where the tests have no pthreads
 * (Windows, tests/platforms/windows.sh).
 */
#include <pthread.h>
#include <stdlib.h>

#include "example_factory.h"

struct example_gate {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    int             arrived, open;
    sm_factory      f;
};

static sm_status gate_open_hook(void *ctx, void *state, const uint8_t **bytes)
{
    example_gate *g = ctx;

    pthread_mutex_lock(&g->lock);
    g->arrived++;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    return example_factory()->make_readable(example_factory()->ctx, state, bytes);
}

example_gate *example_gate_new(void)
{
    example_gate *g = calloc(1, sizeof *g);

    if (g == NULL)
        abort();
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->f = *example_factory();
    g->f.ctx = g;
    g->f.make_readable = gate_open_hook;
    return g;
}

void example_gate_free(example_gate *g)
{
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    free(g);
}

const sm_factory *example_gate_factory(example_gate *g)
{
    return &g->f;
}

void example_gate_wait_arrival(example_gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (g->arrived == 0)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

void example_gate_open(example_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}
