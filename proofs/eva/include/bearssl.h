/* SPDX-License-Identifier: ISC */
/*
 * Read by Frama-C instead of BearSSL's header in the Eva run: the one BearSSL function
 * that the analysed files call (rng.c's keystream), with BearSSL's prototype. Its
 * stand-in is in proofs/eva/os.c, beside the kernel's.
 */
#ifndef SM_EVA_BEARSSL_H
#define SM_EVA_BEARSSL_H
#include <stddef.h>
#include <stdint.h>

uint32_t br_chacha20_ct_run(const void *key, const void *iv, uint32_t cc, void *data,
                            size_t len);
#endif
