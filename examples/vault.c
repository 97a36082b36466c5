/* SPDX-License-Identifier: ISC */
/*
 * A small vault: seal a file under a key derived from a passphrase, and open it again.
 *
 *   vault seal IN OUT < passphrase      vault open IN OUT < passphrase
 *
 * The flows a real program needs, each with the securemem call that fits it:
 *  - the passphrase, read without echo from a terminal (or from a pipe), goes straight
 *    from read(2) into a FROZEN buffer (sm_buffer_from_fd_until), which
 *    sm_secret_from_buffer consumes: no copy of it is left in ordinary memory;
 *  - the key is Argon2id of the passphrase (libsodium's crypto_pwhash), written by
 *    sm_secret_from_callback straight into the key's own locked pages: the KDF's output
 *    never exists anywhere else;
 *  - the file, of any size, goes through one locked chunk buffer of 64 KiB, sealed
 *    chunk by chunk with ChaCha20-Poly1305 (BearSSL) inside an access to the key. A
 *    whole file in a buffer would lock as much memory as the file, twice over for
 *    sm_buffer_from_fd_all, and RLIMIT_MEMLOCK is 8 MiB for a user by default;
 *  - Ctrl-C (sm_catch_interrupt) purges everything, and sm_audit checks the canaries
 *    before the end.
 *
 * File format: "SMV1", a 16-byte salt, then chunks: a 4-byte little-endian length (the
 * top bit marks the last chunk), a 16-byte tag, the ciphertext. The nonce is the chunk's
 * number and the last-chunk mark, so that chunks cannot be reordered or cut off.
 *
 * Build: cc vault.c $(pkg-config --cflags --libs securemem libsodium) -lbearssl
 */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC, termios, write under -std=c11 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <bearssl.h>
#include <sodium.h>
#include <securemem.h>

#define CHUNK (64u * 1024u)
#define KEY_LEN 32u
#define SALT_LEN 16u
#define LAST 0x80000000u

/* Every secret and buffer is wiped and unmapped before the process ends on an error. */
static int failed(const char *what, sm_status st)
{
    sm_purge();
    fprintf(stderr, "vault: %s: %s\n", what, sm_status_str(st));
    return 1;
}

/* ---- the passphrase ---- */

/* One line from stdin, without echo if it is a terminal, as a secret. */
static sm_status read_passphrase(sm_secret *out)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    sm_buffer line;
    sm_status st;

    if (tty) {
        fputs("passphrase: ", stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    /* Byte by byte on a pipe or a terminal: what follows the newline stays unread. */
    st = sm_buffer_from_fd_until(STDIN_FILENO, '\n', &line);
    if (tty) {
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (st != SM_OK)
        return st;
    /* The buffer is consumed: wiped, unmapped, and its handle stale. */
    return sm_secret_from_buffer(sm_factory_protected(), line, out);
}

/* ---- the key: Argon2id, written in place ---- */

typedef struct kdf {
    sm_secret      passphrase;
    const uint8_t *salt;
    uint8_t       *key; /* the key secret's storage, during sm_secret_from_callback */
    size_t         key_len;
} kdf;

static sm_status argon2id(const uint8_t *pass, size_t len, void *ctx)
{
    kdf *k = ctx;

    if (crypto_pwhash(k->key, k->key_len, (const char *)pass, len, k->salt,
                      crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return SM_E_CALLBACK; /* out of memory: the callback's own failure */
    return SM_OK;
}

/* The fill callback: reads the passphrase secret, writes the key. */
static sm_status derive(uint8_t *key, size_t len, void *ctx)
{
    kdf *k = ctx;

    k->key = key;
    k->key_len = len;
    return sm_secret_with_bytes(k->passphrase, argon2id, k);
}

/* ---- the chunks ---- */

typedef struct chunk {
    uint8_t  *data;
    size_t    len;
    uint64_t  number;
    bool      last, seal;
    uint8_t   tag[16];
} chunk;

static sm_status crypt_chunk(const uint8_t *key, size_t len, void *ctx)
{
    chunk *c = ctx;
    uint8_t nonce[12], tag[16];

    (void)len;
    for (int i = 0; i < 8; i++)
        nonce[i] = (uint8_t)(c->number >> (8 * i));
    memset(nonce + 8, 0, 4);
    nonce[11] = c->last ? 1 : 0;
    br_poly1305_ctmul_run(key, nonce, c->data, c->len, NULL, 0, c->seal ? c->tag : tag,
                          br_chacha20_ct_run, c->seal);
    if (!c->seal && !sm_equal(tag, c->tag, sizeof tag)) {
        sm_wipe(c->data, c->len); /* never hand out unauthenticated plaintext */
        return SM_E_AUTH;
    }
    return SM_OK;
}

/* Up to n bytes, fewer only at the end of the input; SIZE_MAX if a read failed. */
static size_t read_full(int fd, uint8_t *p, size_t n)
{
    size_t have = 0;

    while (have < n) {
        ssize_t r = read(fd, p + have, n - have);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return SIZE_MAX;
        if (r == 0)
            break;
        have += (size_t)r;
    }
    return have;
}

static bool write_full(int fd, const void *p, size_t n)
{
    const uint8_t *q = p;

    while (n > 0) {
        ssize_t r = write(fd, q, n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        q += r;
        n -= (size_t)r;
    }
    return true;
}

/* Seal in to out, or open it, through buf (MUTABLE, CHUNK bytes), wiped at the end. */
static sm_status run(bool seal, int in, int out, sm_secret key, sm_buffer buf)
{
    uint8_t *data = sm_buffer_data(buf), head[4];
    chunk c = { .data = data, .seal = seal };
    sm_status st = SM_OK;

    for (;; c.number++) {
        if (seal) {
            /* A short chunk is the last: an empty one for a multiple of CHUNK bytes. */
            c.len = read_full(in, data, CHUNK);
            if (c.len == SIZE_MAX) {
                st = SM_E_IO;
                break;
            }
            c.last = c.len < CHUNK;
        } else {
            uint32_t h;

            if (read_full(in, head, 4) != 4) {
                st = SM_E_IO;
                break;
            }
            h = (uint32_t)head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 |
                (uint32_t)head[3] << 24;
            c.last = (h & LAST) != 0;
            c.len = h & ~LAST;
            if (c.len > CHUNK || read_full(in, c.tag, 16) != 16 ||
                read_full(in, data, c.len) != c.len) {
                st = SM_E_IO;
                break;
            }
        }
        st = sm_secret_with_bytes(key, crypt_chunk, &c);
        if (st != SM_OK)
            break;
        if (seal) {
            uint32_t h = (uint32_t)c.len | (c.last ? LAST : 0);

            for (int i = 0; i < 4; i++)
                head[i] = (uint8_t)(h >> (8 * i));
            if (!write_full(out, head, 4) || !write_full(out, c.tag, 16))
                st = SM_E_IO;
        }
        if (st == SM_OK && !write_full(out, data, c.len))
            st = SM_E_IO;
        if (st != SM_OK || c.last)
            break;
    }
    if (sm_buffer_wipe(buf) != SM_OK && st == SM_OK)
        st = SM_E_SYS;
    return st;
}

int main(int argc, char **argv)
{
    /* Locked pages are required, memfd_secret used where the kernel has it, no cores. */
    const sm_config cfg = { SM_LOCK_REQUIRED, SM_BACKING_SECRETMEM_PREFERRED, true };
    uint8_t magic[4], salt[SALT_LEN];
    kdf k = { .salt = salt };
    sm_secret key;
    sm_buffer buf;
    bool seal;
    int in, out;
    sm_status st;

    if (argc != 4 || (strcmp(argv[1], "seal") != 0 && strcmp(argv[1], "open") != 0)) {
        fprintf(stderr, "usage: vault seal|open IN OUT < passphrase\n");
        return 2;
    }
    seal = strcmp(argv[1], "seal") == 0;
    /* sm_init first: any other call would initialise the library with the defaults. */
    if ((st = sm_init(&cfg)) != SM_OK)
        return failed("sm_init", st);
    if ((st = sm_catch_interrupt()) != SM_OK)
        return failed("sm_catch_interrupt", st);
    if (sodium_init() < 0)
        return failed("sodium_init", SM_E_SYS);
    in = open(argv[2], O_RDONLY | O_CLOEXEC);
    out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in < 0 || out < 0) {
        perror("vault: open");
        return 1;
    }
    if (seal) {
        if ((st = sm_random(salt, sizeof salt)) != SM_OK)
            return failed("sm_random", st);
        if (!write_full(out, "SMV1", 4) || !write_full(out, salt, sizeof salt))
            return failed("write", SM_E_IO);
    } else if (read_full(in, magic, 4) != 4 || memcmp(magic, "SMV1", 4) != 0 ||
               read_full(in, salt, sizeof salt) != sizeof salt) {
        return failed(argv[2], SM_E_IO);
    }

    if ((st = read_passphrase(&k.passphrase)) != SM_OK)
        return failed("passphrase", st);
    st = sm_secret_from_callback(sm_factory_guarded(), KEY_LEN, derive, &k, &key);
    /* The passphrase is needed no longer. */
    if (sm_secret_close(k.passphrase) != SM_OK && st == SM_OK)
        st = SM_E_SYS;
    if (st != SM_OK)
        return failed("key", st);

    if ((st = sm_buffer_new(CHUNK, &buf)) != SM_OK)
        return failed("chunk buffer", st);
    st = run(seal, in, out, key, buf);
    if (st != SM_OK) {
        (void)unlink(argv[3]); /* no partial output, and no unauthenticated plaintext */
        return failed(seal ? "seal" : "open (wrong passphrase, or a damaged file)", st);
    }
    if ((st = sm_audit()) != SM_OK)
        return failed("sm_audit", st);
    if ((st = sm_buffer_destroy(buf)) != SM_OK || (st = sm_secret_close(key)) != SM_OK)
        return failed("cleanup", st);
    if (close(out) != 0)
        return failed("close", SM_E_IO);
    close(in);
    return 0;
}
