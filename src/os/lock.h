/* SPDX-License-Identifier: ISC */
#ifndef SM_OS_LOCK_H
#define SM_OS_LOCK_H

/*
 * Mutexes, condition variables and once-only calls for the layers above the shim, with
 * no more than they use: a plain mutex (never recursive: a trylock by its holder fails
 * as any other), a condition variable waited on without a timeout and only broadcast,
 * and a routine run once. Each system gets its own, chosen here rather than by an
 * emulation layer (issue 12, spec/platforms.md):
 *
 *  - POSIX: pthreads themselves, inline. ThreadSanitizer, Helgrind and DRD intercept the
 *    pthread calls, so they see every lock as they did before this header; and
 *    pthread_once restarts a routine that a fork interrupted, which the atfork
 *    registrations rely on (coffer.c).
 *  - Windows: SRW locks, condition variables and InitOnceExecuteOnce (windows.c), each
 *    one pointer, zero when unlocked or not yet run, as SRWLOCK_INIT and its kin are.
 *    Out of line, so that <windows.h> stays out of every other file. There is no fork
 *    there, so no lock is ever made again in a child.
 *
 * sm_os_mutex_trylock gives 0 when it took the lock, as pthread_mutex_trylock does, so
 * that a call site reads the same on both. The _init calls make a lock afresh: in a
 * forked child, for a lock that a thread the child lacks may have held, and for locks
 * in memory that is not zero-initialised. No lock is ever destroyed.
 */

#if defined(_WIN32)

typedef struct sm_os_mutex {
    void *srw;
} sm_os_mutex;
typedef struct sm_os_cond {
    void *cv;
} sm_os_cond;
typedef struct sm_os_once_flag {
    void *once;
} sm_os_once_flag;
#define SM_OS_MUTEX_INIT { 0 }
#define SM_OS_COND_INIT  { 0 }
#define SM_OS_ONCE_INIT  { 0 }

void sm_os_mutex_init(sm_os_mutex *m);
void sm_os_mutex_lock(sm_os_mutex *m);
int sm_os_mutex_trylock(sm_os_mutex *m);
void sm_os_mutex_unlock(sm_os_mutex *m);
void sm_os_cond_init(sm_os_cond *c);
void sm_os_cond_wait(sm_os_cond *c, sm_os_mutex *m);
void sm_os_cond_broadcast(sm_os_cond *c);
void sm_os_call_once(sm_os_once_flag *o, void (*fn)(void));

#else

#include <pthread.h>

typedef pthread_mutex_t sm_os_mutex;
typedef pthread_cond_t sm_os_cond;
typedef pthread_once_t sm_os_once_flag;
#define SM_OS_MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
#define SM_OS_COND_INIT  PTHREAD_COND_INITIALIZER
#define SM_OS_ONCE_INIT  PTHREAD_ONCE_INIT

/*
 * The pthread calls' results are ignored, as they were at every call site: on a default
 * mutex that the caller uses correctly they cannot fail.
 */
static inline void sm_os_mutex_init(sm_os_mutex *m)
{
    (void)pthread_mutex_init(m, NULL);
}

static inline void sm_os_mutex_lock(sm_os_mutex *m)
{
    (void)pthread_mutex_lock(m);
}

static inline int sm_os_mutex_trylock(sm_os_mutex *m)
{
    return pthread_mutex_trylock(m);
}

static inline void sm_os_mutex_unlock(sm_os_mutex *m)
{
    (void)pthread_mutex_unlock(m);
}

static inline void sm_os_cond_init(sm_os_cond *c)
{
    (void)pthread_cond_init(c, NULL);
}

static inline void sm_os_cond_wait(sm_os_cond *c, sm_os_mutex *m)
{
    (void)pthread_cond_wait(c, m);
}

static inline void sm_os_cond_broadcast(sm_os_cond *c)
{
    (void)pthread_cond_broadcast(c);
}

static inline void sm_os_call_once(sm_os_once_flag *o, void (*fn)(void))
{
    (void)pthread_once(o, fn);
}

#endif

#endif
