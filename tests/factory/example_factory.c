/* SPDX-License-Identifier: ISC */
/*
 * The page-pair factory: an example of a custom factory built on the public memory
 * layer (sm_mem_*) only. Each secret is one mapping from sm_mem_alloc (DONTDUMP,
 * WIPEONFORK): a header page that stays read-write and holds the lengths, followed by
 * the data pages, which are locked and PROT_NONE at rest. The state pointer is the
 * header, so the factory needs no allocation of its own and can find the lengths while
 * the data is unreadable. It always requires the lock, whatever the library's policy,
 * which it cannot see.
 */
#include <pthread.h>
#include <stdlib.h>

#include "example_factory.h"

#define MAGIC 0x70616972u /* "pair" */

typedef struct header {
    unsigned magic;
    size_t   len;      /* the secret's bytes */
    size_t   data_len; /* whole pages after the header */
} header;

static uint8_t *data_of(header *h)
{
    return (uint8_t *)h + sm_page_size();
}

static sm_status pair_create(void *ctx, size_t len, void **state, uint8_t **fill)
{
    size_t page = sm_page_size();
    size_t data_len = (len + page - 1) / page * page;
    header *h;
    sm_status st;

    (void)ctx;
    st = sm_mem_alloc(page + data_len, (void **)&h);
    if (st != SM_OK)
        return st;
    st = sm_mem_lock(data_of(h), data_len);
    if (st != SM_OK) {
        (void)!sm_mem_free(h, page + data_len); /* a rollback: the first error is the one to report */
        return st;
    }
    h->magic = MAGIC;
    h->len = len;
    h->data_len = data_len;
    *state = h;
    *fill = data_of(h);
    return SM_OK;
}

static sm_status pair_seal(void *ctx, void *state)
{
    header *h = state;

    (void)ctx;
    return sm_mem_protect(data_of(h), h->data_len, SM_PROT_NONE);
}

static sm_status pair_open(void *ctx, void *state, const uint8_t **bytes)
{
    header *h = state;
    sm_status st = sm_mem_protect(data_of(h), h->data_len, SM_PROT_READ);

    (void)ctx;
    if (st == SM_OK)
        *bytes = data_of(h);
    return st;
}

static sm_status pair_destroy(void *ctx, void *state)
{
    header *h = state, saved = *h;
    sm_status st;

    (void)ctx;
    /* Opens, wipes and unmaps header and data at once; munmap drops the lock. */
    st = sm_mem_free(h, sm_page_size() + h->data_len);
    /*
     * A failed free leaves everything mapped, the header page read-write, and perhaps
     * wiped: put the lengths back, so that the library's retry finds a valid state.
     */
    if (st != SM_OK)
        *h = saved;
    return st;
}

/* Only system calls and plain stores: async-signal-safe. */
static void pair_purge(void *ctx, void *state, bool in_use)
{
    header *h = state;

    (void)ctx;
    if (!in_use) {
        (void)!sm_mem_free(h, sm_page_size() + h->data_len); /* purge cannot fail */
        return;
    }
    if (sm_mem_protect(data_of(h), h->data_len, SM_PROT_READWRITE) == SM_OK) {
        sm_wipe(data_of(h), h->len);
        (void)!sm_mem_protect(data_of(h), h->data_len, SM_PROT_READ);
    }
}

static const sm_factory pair_factory = {
    .version = SM_FACTORY_VERSION,
    .create = pair_create,
    .seal = pair_seal,
    .make_readable = pair_open,
    .make_unreadable = pair_seal,
    .destroy = pair_destroy,
    .purge = pair_purge,
};

const sm_factory *example_factory(void)
{
    return &pair_factory;
}

/* ---- the gated variant ---- */

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
    return pair_open(NULL, state, bytes);
}

example_gate *example_gate_new(void)
{
    example_gate *g = calloc(1, sizeof *g);

    if (g == NULL)
        abort();
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->f = pair_factory;
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
