/* SPDX-License-Identifier: ISC */
/*
 * Many tokens: 1,000 API tokens held as secrets, then one looked up by a constant-time
 * compare. Each protected or guarded secret locks at least a page (4 KiB), so 1,000 of
 * them lock about 4 MiB of RLIMIT_MEMLOCK (8 MiB by default for a user that is not
 * root); the encrypted factory locks nothing at rest, only while a token is read. This
 * program uses the protected factory and falls back to the encrypted one when the lock
 * limit is reached (SM_E_LOCK), which is what a program holding thousands should do.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <securemem.h>

#define TOKENS 1000
#define TOKEN_LEN 32

typedef struct lookup {
    const uint8_t *presented;
    bool           equal;
} lookup;

static sm_status compare(const uint8_t *token, size_t len, void *ctx)
{
    lookup *l = ctx;

    l->equal = len == TOKEN_LEN && sm_equal(token, l->presented, TOKEN_LEN);
    return SM_OK;
}

static sm_status fail(const char *what, sm_status st)
{
    fprintf(stderr, "tokens: %s: %s\n", what, sm_status_str(st));
    return st;
}

int main(void)
{
    static sm_secret tokens[TOKENS];
    uint8_t token[TOKEN_LEN], presented[TOKEN_LEN];
    size_t fallbacks = 0, found = TOKENS;
    sm_stats stats;
    sm_status st;

    for (size_t i = 0; i < TOKENS; i++) {
        /* Stands for a token read from a configuration file or a vault. */
        if ((st = sm_random(token, sizeof token)) != SM_OK)
            return fail("sm_random", st);
        if (i == 617)
            memcpy(presented, token, sizeof token); /* the one a client will present */
        st = sm_secret_new(sm_factory_protected(), token, sizeof token, &tokens[i]);
        if (st == SM_E_LOCK) {
            fallbacks++;
            st = sm_secret_new(sm_factory_encrypted(), token, sizeof token, &tokens[i]);
        }
        if (st != SM_OK)
            return fail("sm_secret_new", st);
    }
    if ((st = sm_stats_get(&stats)) != SM_OK)
        return fail("sm_stats_get", st);
    printf("tokens: %d held, %zu encrypted for want of locked memory, %" PRIu64 " KiB locked\n",
           TOKENS, fallbacks, stats.bytes_locked / 1024);

    /* The lookup: every token compared in constant time, inside its own access. */
    for (size_t i = 0; i < TOKENS; i++) {
        lookup l = { presented, false };

        if ((st = sm_secret_with_bytes(tokens[i], compare, &l)) != SM_OK)
            return fail("sm_secret_with_bytes", st);
        if (l.equal)
            found = i;
    }
    sm_wipe(presented, sizeof presented);
    printf("tokens: the presented token is number %zu\n", found);

    for (size_t i = 0; i < TOKENS; i++)
        if ((st = sm_secret_close(tokens[i])) != SM_OK)
            return fail("sm_secret_close", st);
    return found == 617 ? 0 : 1;
}
