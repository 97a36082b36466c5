/* SPDX-License-Identifier: ISC */
/*
 * Eva's OS shim: every function of src/os/os.h, with the kernel replaced by the C heap
 * and by nondeterministic choices. Each fallible call may fail with the status its
 * failure maps to (spec/os-errors.tsv), so Eva follows every error path of the layers
 * above, as the fault-injecting shim does in the tests. Each call that takes a range
 * requires it to be valid memory: Eva thereby checks that the library only hands the
 * OS ranges inside what it mapped.
 *
 * Not modelled (out of Eva's scope, covered by the tests): page protections (a read
 * of a PROT_NONE guard page faults for real, not here), locking limits, fork.
 */
#include <__fc_builtin.h>
#include <stdlib.h>
#include <string.h>

#include "os/os.h"

#define PAGE 4096u

/* SM_OK, or the given error: the caller cannot tell which in advance. */
static sm_status may_fail(sm_status err)
{
    return Frama_C_nondet(SM_OK, err);
}

size_t sm_os_page_size(void)
{
    return PAGE;
}

/* A zeroed block: mmap's anonymous memory. (Frama-C's libc has no aligned_alloc; the
   address of a heap block is symbolic for Eva anyway.) */
sm_status sm_os_mmap(size_t len, sm_prot prot, void **out)
{
    void *p;

    (void)prot;
    if (len == 0 || may_fail(SM_E_NOMEM) != SM_OK)
        return SM_E_NOMEM;
    p = calloc(1, len);
    if (p == NULL)
        return SM_E_NOMEM;
    *out = p;
    return SM_OK;
}

/*@ requires \valid((char *)addr + (0 .. len - 1)); */
sm_status sm_os_mmap_fd(void *addr, size_t len, int fd)
{
    (void)fd;
    if (may_fail(SM_E_NOMEM) != SM_OK)
        return SM_E_NOMEM;
    /* a fresh memfd_secret file reads as zeroes */
    memset(addr, 0, len);
    return SM_OK;
}

/* The whole of one mapping: the library never unmaps part of one. */
sm_status sm_os_munmap(void *p, size_t len)
{
    (void)len;
    free(p);
    return SM_OK;
}

/*@ requires \valid((char *)p + (0 .. len - 1)); */
sm_status sm_os_mprotect(void *p, size_t len, sm_prot prot)
{
    (void)p, (void)len, (void)prot;
    return may_fail(SM_E_PROT);
}

/*@ requires \valid((char *)p + (0 .. len - 1)); */
sm_status sm_os_mlock(void *p, size_t len)
{
    (void)p, (void)len;
    return may_fail(SM_E_LOCK);
}

/*@ requires \valid((char *)p + (0 .. len - 1)); */
sm_status sm_os_munlock(void *p, size_t len)
{
    (void)p, (void)len;
    return may_fail(SM_E_SYS);
}

/*@ requires \valid((char *)p + (0 .. len - 1)); */
sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice)
{
    (void)p, (void)len, (void)advice;
    return may_fail(SM_E_SYS);
}

/*@ requires \valid(fd); */
sm_status sm_os_secretmem_create(size_t len, int *fd)
{
    (void)len;
    switch (Frama_C_interval(0, 2)) {
    case 0:
        *fd = 3;
        return SM_OK;
    case 1:
        return SM_E_UNSUPPORTED;
    default:
        return SM_E_LOCK;
    }
}

sm_status sm_os_close(int fd)
{
    (void)fd;
    return SM_OK;
}

/*@ requires \valid((char *)p + (0 .. n - 1)); */
sm_status sm_os_random(void *p, size_t n)
{
    uint8_t *q = p;

    if (may_fail(SM_E_RANDOM) != SM_OK)
        return SM_E_RANDOM;
    for (size_t i = 0; i < n; i++)
        q[i] = (uint8_t)Frama_C_interval(0, 255);
    return SM_OK;
}

sm_status sm_os_disable_core_dumps(void)
{
    return may_fail(SM_E_SYS);
}

/*@ requires \valid((char *)p + (0 .. n - 1));
    requires \valid(got); */
sm_status sm_os_read(int fd, void *p, size_t n, size_t *got)
{
    uint8_t *q = p;
    size_t k;

    (void)fd;
    if (may_fail(SM_E_IO) != SM_OK)
        return SM_E_IO;
    k = Frama_C_size_t_interval(0, n);
    for (size_t i = 0; i < k; i++)
        q[i] = (uint8_t)Frama_C_interval(0, 255);
    *got = k;
    return SM_OK;
}

/*@ requires \valid(pos); */
sm_status sm_os_seek_cur(int fd, int64_t delta, uint64_t *pos)
{
    (void)fd, (void)delta;
    if (may_fail(SM_E_UNSUPPORTED) != SM_OK)
        return SM_E_UNSUPPORTED;
    *pos = (uint64_t)Frama_C_long_long_interval(0, 1 << 20);
    return SM_OK;
}

/*@ requires \valid(old); */
sm_status sm_os_signal_catch(int sig, void (*handler)(int), sm_os_sigsave *old)
{
    (void)sig, (void)handler;
    memset(old, 0, sizeof *old);
    return may_fail(SM_E_INVAL);
}

void sm_os_signal_restore(int sig, const sm_os_sigsave *old)
{
    (void)sig, (void)old;
}

_Noreturn void sm_os_die_by_signal(int sig)
{
    (void)sig;
    abort();
}

/*@ requires \valid(n); */
const int *sm_os_interrupt_signals(size_t *n)
{
    static const int sigs[] = { 1, 2, 15 };

    *n = sizeof sigs / sizeof sigs[0];
    return sigs;
}

_Noreturn void sm_os_wait_forever(void)
{
    abort();
}

_Noreturn void sm_os_exit(int code)
{
    exit(code);
}

sm_status sm_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    (void)prepare, (void)parent, (void)child;
    return may_fail(SM_E_NOMEM);
}

int sm_os_last_error(void)
{
    return 0;
}

_Noreturn void sm_os_die(const char *msg)
{
    (void)msg;
    abort();
}
