/* SPDX-License-Identifier: ISC */
/*
 * `make demo`: a short tour of what the library can do today, through the public API
 * only, in the order a user needs it: secrets (one per factory) first, then buffers,
 * enclaves, streams, the raw memory layer and purge. It grows with each issue. Every step is also checked, so that a demo that
 * prints a reassuring line over a broken call cannot happen: anything unexpected
 * exits 1.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* fork and waitpid: the build passes a strict -std=c11 */
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <securemem.h>

#define SECRET_LEN 32

static _Noreturn void unexpected(const char *what)
{
    fprintf(stderr, "demo: unexpected: %s\n", what);
    exit(1);
}

static void must(sm_status st, const char *call)
{
    if (st != SM_OK) {
        fprintf(stderr, "demo: %s failed: %s (OS error %d)\n", call, sm_status_str(st),
                sm_last_os_error());
        exit(1);
    }
}

static sm_stats show_stats(void)
{
    sm_stats s;

    must(sm_stats_get(&s), "sm_stats_get");
    printf("  sm_stats_get: %llu guarded regions made so far, %llu bytes locked now,\n"
           "    secretmem %s, live: %llu buffers, %llu enclaves, %llu streams, %llu secrets\n",
           (unsigned long long)s.allocations_total, (unsigned long long)s.bytes_locked,
           s.secretmem ? "on" : "off", (unsigned long long)s.buffers_live,
           (unsigned long long)s.enclaves_live, (unsigned long long)s.streams_live,
           (unsigned long long)s.secrets_live);
    return s;
}

/*
 * A write to the read-only page, in a child so that only the child dies. The child
 * turns its own core dumps off first: a crash on purpose leaves no core file.
 */
static void show_write_faults(unsigned char *page)
{
    int status;
    pid_t pid;

    fflush(stdout);
    pid = fork();
    if (pid < 0)
        unexpected("fork failed");
    if (pid == 0) {
        if (sm_disable_core_dumps() != SM_OK)
            _exit(2);
        page[0] ^= 1;
        _exit(3);
    }
    if (waitpid(pid, &status, 0) != pid)
        unexpected("waitpid failed");
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV)
        unexpected("a write to a READ page did not fault");
    printf("  a child that writes to it dies with SIGSEGV\n");
}

/* What one access saw: the callback may look at the bytes, never keep them. */
struct peek {
    unsigned calls;
    size_t len;
    unsigned char first;
};

static sm_status peek_bytes(const uint8_t *bytes, size_t len, void *ctx)
{
    struct peek *pk = ctx;

    pk->calls++;
    pk->len = len;
    pk->first = bytes[0];
    return SM_OK;
}

/*
 * Secrets first: what most programs come for. One 32-byte key through each of the
 * library's factories: made (its source wiped), read inside an access, closed, and its
 * handle stale after.
 */
static void tour_secrets(void)
{
    static const struct {
        const char *name;
        const sm_factory *(*get)(void);
        const char *where;
    } fs[] = {
        { "protected", sm_factory_protected, "locked pages, unreadable (PROT_NONE) at rest" },
        { "guarded", sm_factory_guarded, "between guard pages behind a canary, PROT_NONE at rest" },
        { "encrypted", sm_factory_encrypted,
          "ciphertext at rest; each access decrypts into a guarded window" },
    };

    printf("secrets: made by a factory, readable only inside an access\n");
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        unsigned char key[SECRET_LEN];
        struct peek pk = { 0 };
        unsigned char first;
        sm_status stale;
        sm_secret s;

        must(sm_random(key, sizeof key), "sm_random");
        first = key[0];
        must(sm_secret_new(fs[i].get(), key, sizeof key, &s), "sm_secret_new");
        for (size_t j = 0; j < sizeof key; j++)
            if (key[j] != 0)
                unexpected("sm_secret_new left its source unwiped");
        must(sm_secret_with_bytes(s, peek_bytes, &pk), "sm_secret_with_bytes");
        if (pk.calls != 1 || pk.len != SECRET_LEN || pk.first != first)
            unexpected("the access did not see the secret's bytes");
        must(sm_secret_close(s), "sm_secret_close");
        if (!sm_secret_is_closed(s) || sm_secret_size(s) != 0)
            unexpected("a closed secret still answers");
        stale = sm_secret_with_bytes(s, peek_bytes, &pk);
        if (stale != SM_E_STATE || pk.calls != 1)
            unexpected("a closed secret's handle still gives access");
        printf("  %-9s  %s\n", fs[i].name, fs[i].where);
        printf("             made from %d bytes (the source is wiped), read in one access, closed;\n"
               "             an access through the old handle gives SM_E_STATE\n", SECRET_LEN);
    }
}

/* Memory layer: raw pages the caller owns (memcall's part). */
static void tour_memory(void)
{
    unsigned char copy[SECRET_LEN];
    unsigned char *page;
    size_t ps = sm_page_size();
    void *p;

    printf("memory layer\n");
    must(sm_mem_alloc(ps, &p), "sm_mem_alloc");
    page = p;
    must(sm_random(page, SECRET_LEN), "sm_random");
    must(sm_mem_lock(page, ps), "sm_mem_lock");
    must(sm_mem_protect(page, ps, SM_PROT_READ), "sm_mem_protect");
    printf("  one page: random secret, locked, read-only, out of dumps and children\n");
    memcpy(copy, page, SECRET_LEN);
    copy[SECRET_LEN - 1] ^= 0x01;
    if (sm_equal(page, copy, SECRET_LEN))
        unexpected("sm_equal missed a one-bit difference");
    printf("  sm_equal (constant time) sees a one-bit difference\n");
    show_write_faults(page);
    must(sm_mem_free(page, ps), "sm_mem_free");
    sm_wipe(copy, sizeof copy);
    printf("  sm_mem_free: made writable, wiped, unmapped\n");
}

/* Buffers and enclaves: memguard's LockedBuffer and Enclave. */
static void tour_buffers_and_enclaves(void)
{
    unsigned char key[SECRET_LEN];
    sm_buffer b, opened;
    sm_enclave e;
    bool same;

    printf("buffers and enclaves\n");
    must(sm_random(key, sizeof key), "sm_random");
    must(sm_buffer_new(sizeof key, &b), "sm_buffer_new");
    must(sm_buffer_copy(b, key, sizeof key), "sm_buffer_copy");
    must(sm_buffer_freeze(b), "sm_buffer_freeze");
    printf("  a %zu-byte buffer between guard pages, frozen (read-only)\n", sm_buffer_size(b));
    show_write_faults(sm_buffer_data(b));
    must(sm_buffer_seal(b, &e), "sm_buffer_seal");
    if (sm_buffer_is_alive(b))
        unexpected("a sealed buffer is still alive");
    printf("  sealed into an enclave: the buffer is wiped and its handle stale\n");
    must(sm_enclave_open(e, &opened), "sm_enclave_open");
    must(sm_buffer_equal(opened, key, sizeof key, &same), "sm_buffer_equal");
    if (!same)
        unexpected("the enclave did not give the secret back");
    printf("  opened again into a new frozen buffer: the same %zu bytes\n", sizeof key);
    sm_wipe(key, sizeof key);
    must(sm_buffer_destroy(opened), "sm_buffer_destroy");
    must(sm_enclave_destroy(e), "sm_enclave_destroy");
}

/* Streams: chunked enclaves, FIFO. */
static void tour_streams(void)
{
    unsigned char chunk[5000], back[5000];
    size_t got;
    sm_stream s;

    printf("streams\n");
    must(sm_stream_new(&s), "sm_stream_new");
    for (int i = 0; i < 20; i++) {
        memset(chunk, i, sizeof chunk);
        must(sm_stream_write(s, chunk, sizeof chunk), "sm_stream_write");
    }
    printf("  20 writes of 5000 bytes, sealed chunk by chunk: %zu bytes held\n",
           sm_stream_size(s));
    must(sm_stream_read(s, back, sizeof back, &got), "sm_stream_read");
    if (got != sizeof back || back[0] != 0 || back[got - 1] != 0)
        unexpected("the stream is not first in, first out");
    printf("  read back in order: %zu bytes, %zu left\n", got, sm_stream_size(s));
    sm_wipe(back, sizeof back);
    must(sm_stream_destroy(s), "sm_stream_destroy");
}

int main(void)
{
    static const sm_status shown[] = { SM_OK, SM_E_STATE, SM_E_AUTH, (sm_status)999 };
    sm_buffer left;
    sm_secret kept;
    sm_stats st;

    printf("securemem %s demo\n", sm_version_string());
    must(sm_init(NULL), "sm_init");
    printf("  sm_init(NULL): defaults (anonymous memory, locking required); page %zu bytes\n",
           sm_page_size());
    tour_secrets();
    tour_buffers_and_enclaves();
    tour_streams();
    tour_memory();

    printf("purge\n");
    must(sm_buffer_random(64, &left), "sm_buffer_random");
    must(sm_secret_random(sm_factory_guarded(), SECRET_LEN, &kept), "sm_secret_random");
    must(sm_audit(), "sm_audit");
    printf("  sm_audit: every canary intact\n");
    sm_purge();
    if (sm_buffer_is_alive(left) || !sm_secret_is_closed(kept))
        unexpected("a buffer or a secret survived sm_purge");
    st = show_stats();
    if (st.buffers_live + st.enclaves_live + st.streams_live + st.secrets_live != 0)
        unexpected("objects survived sm_purge");
    printf("  sm_purge: every object wiped and unmapped, every handle stale\n");

    printf("every call returns an sm_status; sm_status_str names it:\n");
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
        printf("  %3d  %s\n", (int)shown[i], sm_status_str(shown[i]));
    return 0;
}
