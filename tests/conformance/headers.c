/* SPDX-License-Identifier: ISC */
/*
 * The public headers from other languages than the library's own C11: `make
 * check-headers` compiles this one file as C99 with -pedantic-errors, and as C++ with
 * g++ and clang++, against the installed headers, links it against the installed
 * library (pkg-config alone) and runs it. So it must stay valid C99 and valid C++.
 *
 * SM_ABI_REFS is a list generated from spec/abi.txt: taking the address of every
 * exported function makes the link fail for any declaration that C++ would mangle
 * (one without extern "C"), not only for the few called below.
 */
#include <stdio.h>
#include <string.h>

#include <securemem.h>

typedef void (*sm_any_fn)(void);

static const sm_any_fn every_function[] = {
#include "abi_refs.h"
};

static sm_status first_byte(const uint8_t *bytes, size_t len, void *ctx)
{
    *(uint8_t *)ctx = len > 0 ? bytes[0] : 0;
    return SM_OK;
}

int main(void)
{
    uint8_t key[32];
    uint8_t seen = 0;
    sm_secret s;
    sm_status st;
    size_t i, n = sizeof every_function / sizeof every_function[0];

    for (i = 0; i < n; i++) {
        if (every_function[i] == NULL) {
            fprintf(stderr, "headers: FAIL: function %u has no address\n", (unsigned)i);
            return 1;
        }
    }
    memset(key, 0x5a, sizeof key);
    st = sm_secret_new(sm_factory_guarded(), key, sizeof key, &s);
    if (st == SM_OK)
        st = sm_secret_with_bytes(s, first_byte, &seen);
    if (st == SM_OK)
        st = sm_secret_close(s);
    if (st != SM_OK || seen != 0x5a || key[0] != 0) {
        fprintf(stderr, "headers: FAIL: %s\n", sm_status_str(st));
        return 1;
    }
    printf("headers: ok (%u functions)\n", (unsigned)n);
    return 0;
}
