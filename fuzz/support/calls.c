/* SPDX-License-Identifier: ISC */
/* OS calls against spec/syscalls.tsv (calls.h). */
#include <string.h>

#include "calls.h"
#include "fuzz_tables.h"

/* The pool's size at the last two readings (fz_calls_now). */
static size_t pool_then, pool_now;

void fz_calls_now(fz_calls c)
{
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        c[fn] = sm_os_fault_calls((sm_os_fn)fn);
    pool_then = pool_now;
    pool_now = fz_pooled();
}

const char *fz_pool_case(const char *op)
{
    if (strcmp(op, "close") == 0)
        return pool_now > pool_then ? "" : ".pool_full";
    return pool_now < pool_then ? ".pooled" : "";
}

void fz_calls_add(fz_calls acc, const fz_calls from, const fz_calls to)
{
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        acc[fn] += to[fn] - from[fn];
}

bool fz_calls_of(const char *op, fz_calls want)
{
    bool any = false;

    memset(want, 0, sizeof(fz_calls));
    for (size_t i = 0; i < sizeof fz_sys_table / sizeof fz_sys_table[0]; i++) {
        if (strcmp(fz_sys_table[i].op, op) != 0)
            continue;
        for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
            if (strcmp(fz_sys_table[i].fn, sm_os_fn_name((sm_os_fn)fn)) == 0)
                want[fn] = fz_sys_table[i].calls;
        any = true;
    }
    return any;
}

void fz_calls_check(const char *what, const fz_calls own, const char *op, bool *rng_keyed)
{
    fz_calls want = { 0 };

    if (op != NULL && !fz_calls_of(op, want))
        return;
    if (!*rng_keyed && own[SM_OS_GETRANDOM] == want[SM_OS_GETRANDOM] + 1) {
        want[SM_OS_GETRANDOM]++;
        *rng_keyed = true;
    }
    for (int fn = 0; fn < SM_OS_FN_COUNT; fn++)
        FZ_CHECK(own[fn] == want[fn], "%s: %lu calls of %s, want %lu (%s)", what, own[fn],
                 sm_os_fn_name((sm_os_fn)fn), want[fn], op != NULL ? op : "no OS call");
}
