/* SPDX-License-Identifier: ISC */
/*
 * Eva's pthreads (proofs/README.md, "Eva"), for the analyses of the layers that lock
 * (the registry, the runtime, the canary generator): what src/os/lock.h calls. Apart
 * from os.c because the memory analysis takes no lock, and the contracts of Frama-C's
 * libc that these definitions carry would be never tried there.
 */
#include <__fc_builtin.h>
#include <errno.h>
#include <pthread.h>

/*
 * One thread's pthreads: a lock is a word that says whether it is held. A trylock of a
 * held lock fails, as POSIX's default mutex does; of a free one it may also fail, the
 * lock taken meanwhile by a thread this run does not have, so that the paths that meet
 * such a holder (a purge that leaves an object to it) are followed too. A once-routine
 * runs on the first call. Frama-C's libc has no contract for trylock or once, and its
 * contracts of the others say nothing of whether a lock is held.
 */
int pthread_mutex_init(pthread_mutex_t *restrict m, const pthread_mutexattr_t *restrict a)
{
    (void)a;
    m->_fc = 0;
    return 0;
}

int pthread_mutex_lock(pthread_mutex_t *m)
{
    m->_fc = 1;
    return 0;
}

/*
 * Determinate runs (os.c's eva_os_fail says why): once a driver has called
 * eva_pthread_foreign, a trylock of a free lock succeeds, except those that the plan
 * names, which find a holder the run does not have: bit 0 for the next such trylock,
 * bit 1 for the one after, and so on.
 */
static _Bool determinate;
static unsigned foreign_plan;

void eva_pthread_foreign(unsigned plan)
{
    determinate = 1;
    foreign_plan = plan;
}

static _Bool foreign_holder(void)
{
    _Bool held;

    if (!determinate)
        return Frama_C_nondet(0, 1);
    held = (foreign_plan & 1u) != 0;
    foreign_plan >>= 1;
    return held;
}

int pthread_mutex_trylock(pthread_mutex_t *m)
{
    if (m->_fc != 0 || foreign_holder())
        return EBUSY;
    m->_fc = 1;
    return 0;
}

int pthread_mutex_unlock(pthread_mutex_t *m)
{
    m->_fc = 0;
    return 0;
}

int pthread_cond_init(pthread_cond_t *restrict c, const pthread_condattr_t *restrict a)
{
    (void)a;
    c->_fc = 0;
    return 0;
}

int pthread_cond_broadcast(pthread_cond_t *c)
{
    c->_fc = 0;
    return 0;
}

int pthread_once(pthread_once_t *o, void (*fn)(void))
{
    if (o->_fc == 0) {
        o->_fc = 1;
        fn();
    }
    return 0;
}
