/* SPDX-License-Identifier: ISC */
/*
 * make bench, enclaves and streams (issue 14 §4): the public calls against the raw
 * BearSSL AEAD pass over the same bytes in the same run, with the cipher and the
 * implementation that src/memory/aead.c picks on this CPU, so that the ratio is what
 * securemem adds to the cipher's own speed. The raw pass encrypts (or decrypts) in place
 * and makes its tag; nothing else.
 *
 *  - seal 1 MiB: sm_enclave_new against one raw encrypt of the 1 MiB;
 *  - open 1 MiB: sm_enclave_open against one raw decrypt and tag check;
 *  - stream write+read of 64 MiB in 1 MiB calls against a raw encrypt plus a raw decrypt
 *    of the 64 MiB.
 * Each figure is the median of its samples (PER a round for the 1 MiB figures, one for
 * the stream), securemem and raw interleaved in each round.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <bearssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <securemem.h>

#include "report.h"

#define MIB (1u << 20)
#define BIG (64u << 20)
/* 1 MiB samples per round: each takes a millisecond, so that a burst of the shared
   machine's load spoils one sample of many rather than a round's only one. */
#define PER 8

static void must(sm_status st, const char *what)
{
    if (st != SM_OK) {
        fprintf(stderr, "bench: %s: %s\n", what, sm_status_str(st));
        exit(1);
    }
}

/* The raw pass: the choice aead.c makes (AES-256-GCM with AES-NI and PCLMUL, else
   ChaCha20-Poly1305 with the fastest constant-time ChaCha20 and Poly1305). */
typedef struct raw {
    const br_block_ctr_class *aes;
    br_ghash                  ghash;
    br_chacha20_run           chacha;
    br_poly1305_run           poly;
    br_aes_x86ni_ctr_keys     keys;
    br_gcm_context            gcm;
    uint8_t                   key[32], iv[12], tag[16];
} raw;

/*
 * The implementations are looked up once, as aead.c does: each of BearSSL's probes
 * executes CPUID, which the project machine's hypervisor traps (20 to 30 us each,
 * spec/enclave-key.md): looked up at every pass, they made it 30 to 50 us slower.
 */
static void raw_init(raw *r)
{
    memset(r, 0, sizeof *r);
    memset(r->key, 0x5a, sizeof r->key);
    r->aes = br_aes_x86ni_ctr_get_vtable();
    r->ghash = br_ghash_pclmul_get();
    if (r->aes == NULL || r->ghash == NULL)
        r->aes = NULL;
    r->chacha = br_chacha20_sse2_get();
    if (r->chacha == NULL)
        r->chacha = br_chacha20_ct_run;
    r->poly = br_poly1305_ctmulq_get();
    if (r->poly == NULL)
        r->poly = br_poly1305_ctmul_run;
}

/* encrypt: 1, or 0 to decrypt and check the tag (the result is ignored: the timing only). */
static void raw_pass(raw *r, uint8_t *data, size_t len, int encrypt)
{
    static const uint8_t aad[40];
    uint8_t tag[16];

    if (r->aes != NULL) {
        r->aes->init(&r->keys.vtable, r->key, sizeof r->key);
        br_gcm_init(&r->gcm, &r->keys.vtable, r->ghash);
        br_gcm_reset(&r->gcm, r->iv, sizeof r->iv);
        br_gcm_aad_inject(&r->gcm, aad, sizeof aad);
        br_gcm_flip(&r->gcm);
        br_gcm_run(&r->gcm, encrypt, data, len);
        if (encrypt)
            br_gcm_get_tag(&r->gcm, r->tag);
        else
            (void)br_gcm_check_tag(&r->gcm, r->tag);
    } else {
        r->poly(r->key, r->iv, data, len, aad, sizeof aad, encrypt ? r->tag : tag, r->chacha,
                encrypt);
    }
}

/*
 * Read n bytes, a cache line at a time: the 1 MiB that securemem and the raw pass each
 * start from is then in the cache alike, whatever the 64 MiB stream evicted before.
 */
static volatile uint8_t sink;

static void warm(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i += 64)
        acc ^= p[i];
    sink = acc;
}

void bench_crypto(int rounds)
{
    uint8_t *data = malloc(BIG), *copy = malloc(BIG), *raw_buf = malloc(BIG);
    double seal[32 * PER], open[32 * PER], r_seal[32 * PER], r_open[32 * PER];
    double stream[32], r_stream[32];
    raw r;

    if (data == NULL || copy == NULL || raw_buf == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    raw_init(&r);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    memcpy(raw_buf, data, BIG);
    /* A round more than counted: the first one warms the caches and any pool up. */
    for (int k = -1; k < rounds; k++) {
        sm_stream s;
        double t0, t1, t2;

        /* PER samples of each 1 MiB figure per round, securemem and raw in turn. */
        for (int j = 0; j < PER; j++) {
            int at = k * PER + j;
            sm_enclave e;
            sm_buffer b;

            warm(data, MIB);
            t0 = bench_now_ns();
            must(sm_enclave_new(data, MIB, &e), "sm_enclave_new");
            t1 = bench_now_ns();
            must(sm_enclave_open(e, &b), "sm_enclave_open");
            t2 = bench_now_ns();
            memcpy(data, sm_buffer_data(b), MIB); /* src was wiped: put the bytes back */
            must(sm_buffer_destroy(b), "sm_buffer_destroy");
            must(sm_enclave_destroy(e), "sm_enclave_destroy");
            if (k >= 0) {
                seal[at] = t1 - t0;
                open[at] = t2 - t1;
            }

            warm(raw_buf, MIB);
            t0 = bench_now_ns();
            raw_pass(&r, raw_buf, MIB, 1);
            t1 = bench_now_ns();
            raw_pass(&r, raw_buf, MIB, 0);
            t2 = bench_now_ns();
            if (k >= 0) {
                r_seal[at] = t1 - t0;
                r_open[at] = t2 - t1;
            }
        }

        /* The stream: 64 MiB in by 1 MiB writes, out by 1 MiB reads. */
        memcpy(copy, data, BIG);
        must(sm_stream_new(&s), "sm_stream_new");
        t0 = bench_now_ns();
        for (size_t off = 0; off < BIG; off += MIB)
            must(sm_stream_write(s, copy + off, MIB), "sm_stream_write");
        for (size_t off = 0; off < BIG; off += MIB) {
            size_t got;

            must(sm_stream_read(s, copy + off, MIB, &got), "sm_stream_read");
        }
        t1 = bench_now_ns();
        must(sm_stream_destroy(s), "sm_stream_destroy");
        if (memcmp(copy, data, BIG) != 0) {
            fprintf(stderr, "bench: the stream changed the data\n");
            exit(1);
        }

        t0 = t1 - t0;
        t1 = bench_now_ns();
        raw_pass(&r, raw_buf, BIG, 1);
        raw_pass(&r, raw_buf, BIG, 0);
        t2 = bench_now_ns();
        if (k >= 0) {
            stream[k] = t0;
            r_stream[k] = t2 - t1;
        }
    }
    {
        const char *peer = r.aes != NULL ? "raw BearSSL AES-256-GCM" : "raw BearSSL ChaCha20-Poly1305";

        /* MB/s: bytes per ns times 1000. */
        report_row("enclave seal 1 MiB", MIB * 1e3 / bench_median(seal, rounds * PER), "MB/s", peer,
                   MIB * 1e3 / bench_median(r_seal, rounds * PER), ">=", 0.8);
        report_row("enclave open 1 MiB", MIB * 1e3 / bench_median(open, rounds * PER), "MB/s", peer,
                   MIB * 1e3 / bench_median(r_open, rounds * PER), ">=", 0.8);
        report_row("stream write+read 64 MiB", BIG * 1e3 / bench_median(stream, rounds), "MB/s",
                   peer, BIG * 1e3 / bench_median(r_stream, rounds), ">=", 0.6);
    }
    free(data);
    free(copy);
    free(raw_buf);
}
