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
