/* SPDX-License-Identifier: ISC */
/* A key in a secret, read inside an access, then closed. README.md shows this file. */
#include <stdio.h>
#include <securemem.h>

/* Runs with the key readable (read-only); its status is the access's status. */
static sm_status use_key(const uint8_t *key, size_t len, void *ctx)
{
    (void)ctx;
    printf("using a %zu-byte key whose first byte is %s\n", len, key[0] ? "set" : "zero");
    return SM_OK;
}

int main(void)
{
    uint8_t key[32] = { 0x2a }; /* say, a key just read from a key file */
    sm_secret s;
    sm_status st;

    /* Copies the key into its own locked pages, unreadable at rest, and wipes key[]. */
    st = sm_secret_new(sm_factory_guarded(), key, sizeof key, &s);
    if (st != SM_OK) {
        fprintf(stderr, "sm_secret_new: %s\n", sm_status_str(st));
        return 1;
    }
    st = sm_secret_with_bytes(s, use_key, NULL);
    if (st == SM_OK)
        st = sm_secret_close(s); /* wipes and unmaps; s is stale from now on */
    if (st != SM_OK) {
        fprintf(stderr, "securemem: %s\n", sm_status_str(st));
        return 1;
    }
    return 0;
}
