/* SPDX-License-Identifier: ISC */
/*
 * The Windows shim (no POSIX base): VirtualAlloc, VirtualProtect and VirtualLock for
 * mappings, guard pages (PAGE_NOACCESS) and locking; BCryptGenRandom; a vectored
 * exception handler that turns an access violation into the caught SIGSEGV; a console
 * control handler for sm_catch_interrupt; WER's excluded memory blocks for dump
 * exclusion; SRW locks, condition variables and InitOnce for lock.h. The raw OS error
 * (sm_last_os_error) is GetLastError's, or the CRT errno for read and lseek. Built with
 * mingw-w64 and run under Wine (make platforms-windows, spec/platforms.md).
 */
#include <errno.h>
#include <io.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <bcrypt.h>

#include "fault.h"
#include "lock.h"
#include "os.h"
#include <securemem/runtime.h>

static _Thread_local int last_error;

static sm_status fail(int err, sm_status st)
{
    last_error = err;
    return st;
}

/*
 * Crash-report exclusion: WerRegisterExcludedMemoryBlock leaves a block out of the dumps
 * of Windows Error Reporting, the system's crash reports (Windows 10 1703 and later,
 * werapi.h; WerUnregisterExcludedMemoryBlock puts it back). Looked up at run time rather
 * than imported: an import would keep the program from loading on an older Windows and
 * under Wine 8, whose kernel32 has neither (mingw-w64's werapi.h does not declare them
 * either, though its libkernel32.a has them). Without them, SM_CAP_NODUMP is not claimed.
 *
 * WER holds a bounded number of blocks per process (WER_MAX_REGISTERED_ENTRIES). A block
 * it refuses stays in its reports, and from then on, for the rest of the process,
 * sm_os_caps claims no NODUMP: the allocation itself goes on, since dump exclusion has
 * no policy (spec/platforms.md). The blocks are remembered here so that sm_os_munmap
 * can take each back, by its start address, when its range is unmapped.
 */
typedef HRESULT(WINAPI *wer_register_fn)(const void *, DWORD);
typedef HRESULT(WINAPI *wer_unregister_fn)(const void *);
static _Atomic(wer_register_fn) wer_register;
static _Atomic(wer_unregister_fn) wer_unregister;
static atomic_bool wer_looked_up, wer_refused;
#define WER_BLOCKS 512
static _Atomic(void *) wer_block[WER_BLOCKS];
static atomic_uint wer_blocks;

static bool wer_present(void)
{
    if (!atomic_load(&wer_looked_up)) {
        HMODULE k = GetModuleHandleW(L"kernel32.dll");
        FARPROC r = k != NULL ? GetProcAddress(k, "WerRegisterExcludedMemoryBlock") : NULL;
        FARPROC u = k != NULL ? GetProcAddress(k, "WerUnregisterExcludedMemoryBlock") : NULL;

        if (r != NULL && u != NULL) {
            atomic_store(&wer_register, (wer_register_fn)(void (*)(void))r);
            atomic_store(&wer_unregister, (wer_unregister_fn)(void (*)(void))u);
        }
        atomic_store(&wer_looked_up, true);
    }
    return atomic_load(&wer_register) != NULL;
}

/* Exclude the block at p; a refusal is remembered, not returned (above). */
static void wer_exclude(void *p, size_t len, bool injected)
{
    if (!wer_present())
        return;
    if (!injected && len <= MAXDWORD) {
        for (unsigned i = 0; i < WER_BLOCKS; i++) {
            void *none = NULL;

            if (atomic_compare_exchange_strong(&wer_block[i], &none, p)) {
                if (atomic_load(&wer_register)(p, (DWORD)len) == S_OK) {
                    atomic_fetch_add(&wer_blocks, 1);
                    return;
                }
                atomic_store(&wer_block[i], NULL);
                break;
            }
        }
    }
    atomic_store(&wer_refused, true);
}

/* Take back every block that starts in [p, p + len), which is being unmapped. */
static void wer_forget(void *p, size_t len)
{
    uintptr_t lo = (uintptr_t)p, hi = lo + len;

    for (unsigned i = 0; i < WER_BLOCKS && atomic_load(&wer_blocks) != 0; i++) {
        void *b = atomic_load(&wer_block[i]);

        if (b != NULL && (uintptr_t)b >= lo && (uintptr_t)b < hi &&
            atomic_compare_exchange_strong(&wer_block[i], &b, NULL)) {
            wer_unregister_fn unreg = atomic_load(&wer_unregister);

            if (unreg != NULL)
                (void)unreg(b);
            atomic_fetch_sub(&wer_blocks, 1);
        }
    }
}

#if defined(SM_FAULT_INJECTION)
void sm_os_fault_wer(long (*reg)(const void *, unsigned long), long (*unreg)(const void *))
{
    wer_forget(NULL, SIZE_MAX); /* with the functions that registered them */
    atomic_store(&wer_register, (wer_register_fn)reg);
    atomic_store(&wer_unregister, (wer_unregister_fn)unreg);
    atomic_store(&wer_looked_up, reg != NULL);
    atomic_store(&wer_refused, false);
}
#endif

/*
 * Locked and guarded. Never inherited: Windows has no fork, and a child process made by
 * CreateProcess shares no memory. Out of crash reports while WER can exclude blocks and
 * has refused none (above).
 */
unsigned sm_os_caps(void)
{
    unsigned caps = SM_CAP_LOCKED | SM_CAP_NOFORK | SM_CAP_GUARD;

    if (wer_present() && !atomic_load(&wer_refused))
        caps |= SM_CAP_NODUMP;
    return caps;
}

static _Atomic size_t page;

size_t sm_os_page_size(void)
{
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);

    if (p == 0) {
        SYSTEM_INFO si;

        GetSystemInfo(&si);
        p = si.dwPageSize;
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

uint64_t sm_os_monotonic_ns(void)
{
    LARGE_INTEGER c, f;

    QueryPerformanceCounter(&c);
    QueryPerformanceFrequency(&f);
    return (uint64_t)(c.QuadPart / f.QuadPart) * 1000000000u +
           (uint64_t)(c.QuadPart % f.QuadPart) * 1000000000u / (uint64_t)f.QuadPart;
}

static DWORD prot_bits(sm_prot prot)
{
    switch (prot) {
    case SM_PROT_READ:
        return PAGE_READONLY;
    case SM_PROT_READWRITE:
        return PAGE_READWRITE;
    case SM_PROT_NONE:
        break;
    }
    return PAGE_NOACCESS;
}

/* Reserved and committed at once: the guard pages are committed PAGE_NOACCESS pages. */
sm_status sm_os_mmap(size_t len, sm_prot prot, void **out)
{
    void *p;

    if (sm_os_fault_hit(SM_OS_MMAP) != 0)
        return fail(ERROR_NOT_ENOUGH_MEMORY, SM_E_NOMEM);
    p = VirtualAlloc(NULL, len, MEM_RESERVE | MEM_COMMIT, prot_bits(prot));
    if (p == NULL) {
        DWORD e = GetLastError();

        return fail((int)e, e == ERROR_NOT_ENOUGH_MEMORY || e == ERROR_COMMITMENT_LIMIT
                                ? SM_E_NOMEM
                                : e == ERROR_INVALID_PARAMETER ? SM_E_INVAL : SM_E_SYS);
    }
    *out = p;
    return SM_OK;
}

sm_status sm_os_mmap_filled(size_t len, void **out)
{
    return sm_os_mmap(len, SM_PROT_READWRITE, out);
}

/* No secretmem on Windows: sm_os_secretmem_create refuses first, so this is not reached. */
sm_status sm_os_mmap_fd(void *addr, size_t len, int fd)
{
    (void)addr;
    (void)len;
    (void)fd;
    return fail(ERROR_NOT_SUPPORTED, SM_E_UNSUPPORTED);
}

/* Whether every part of the allocation that holds base is decommitted. */
static bool all_decommitted(void *base)
{
    MEMORY_BASIC_INFORMATION mi;
    char *q = base;

    while (VirtualQuery(q, &mi, sizeof mi) == sizeof mi && mi.AllocationBase == base) {
        if (mi.State == MEM_COMMIT)
            return false;
        q = (char *)mi.BaseAddress + mi.RegionSize;
    }
    return true;
}

/*
 * munmap of any page range: VirtualFree releases only whole allocations, so the range is
 * decommitted (it then faults like an unmapped one), and the allocation is released once
 * none of it is committed.
 */
sm_status sm_os_munmap(void *p, size_t len)
{
    MEMORY_BASIC_INFORMATION mi;
    int err = sm_os_fault_hit(SM_OS_MUNMAP);

    sm_os_fault_track_munmap(p, len, err != 0);
    if (err != 0)
        return fail(err, SM_E_SYS);
    if (VirtualQuery(p, &mi, sizeof mi) != sizeof mi || mi.State == MEM_FREE)
        return fail(ERROR_INVALID_ADDRESS, SM_E_INVAL);
    if (!VirtualFree(p, len, MEM_DECOMMIT))
        return fail((int)GetLastError(), SM_E_INVAL);
    wer_forget(p, len);
    if (all_decommitted(mi.AllocationBase) && !VirtualFree(mi.AllocationBase, 0, MEM_RELEASE))
        return fail((int)GetLastError(), SM_E_SYS);
    return SM_OK;
}

sm_status sm_os_mprotect(void *p, size_t len, sm_prot prot)
{
    DWORD old;

    if (sm_os_fault_hit(SM_OS_MPROTECT) != 0)
        return fail(ERROR_ACCESS_DENIED, SM_E_PROT);
    if (!VirtualProtect(p, len, prot_bits(prot), &old)) {
        DWORD e = GetLastError();

        return fail((int)e, e == ERROR_INVALID_PARAMETER ? SM_E_INVAL : SM_E_PROT);
    }
    return SM_OK;
}

/*
 * VirtualLock is bounded by the working set's minimum: on ERROR_WORKING_SET_QUOTA, grow
 * the minimum and maximum by the range (and some slack for the pages the process itself
 * touches) and try once more. A second refusal is the lock policy's to judge.
 */
sm_status sm_os_mlock(void *p, size_t len)
{
    if (sm_os_fault_hit(SM_OS_MLOCK) != 0)
        return fail(ERROR_WORKING_SET_QUOTA, SM_E_LOCK);
    if (VirtualLock(p, len))
        return SM_OK;
    if (GetLastError() == ERROR_WORKING_SET_QUOTA) {
        SIZE_T lo, hi;
        HANDLE self = GetCurrentProcess();

        if (GetProcessWorkingSetSize(self, &lo, &hi) &&
            SetProcessWorkingSetSize(self, lo + len + 16 * sm_os_page_size(),
                                     hi + len + 16 * sm_os_page_size()) &&
            VirtualLock(p, len))
            return SM_OK;
    }
    return fail((int)GetLastError(), SM_E_LOCK);
}

/* VirtualLock locks what is there; Windows has no lock on first touch. */
sm_status sm_os_mlock_touched(void *p, size_t len)
{
    return sm_os_mlock(p, len);
}

/*
 * No protection keys for user code on Windows: the compact factory stays on
 * VirtualProtect. No call is made, as on a Linux machine whose CPU has none.
 */
sm_status sm_os_pkey_alloc(int *key)
{
    (void)key;
    return fail(ERROR_NOT_SUPPORTED, SM_E_UNSUPPORTED);
}

sm_status sm_os_pkey_mprotect(void *p, size_t len, sm_prot prot, int key)
{
    (void)p, (void)len, (void)prot, (void)key;
    return fail(ERROR_NOT_SUPPORTED, SM_E_UNSUPPORTED);
}

sm_prot sm_os_pkey_rights(int key, sm_prot rights)
{
    (void)key, (void)rights;
    return SM_PROT_NONE;
}

/* Unlocking pages that are not locked is no error on POSIX; Windows says 158. */
sm_status sm_os_munlock(void *p, size_t len)
{
    if (sm_os_fault_hit(SM_OS_MUNLOCK) != 0)
        return fail(ERROR_NOT_LOCKED, SM_E_LOCK);
    if (!VirtualUnlock(p, len) && GetLastError() != ERROR_NOT_LOCKED)
        return fail((int)GetLastError(), SM_E_LOCK);
    return SM_OK;
}

/*
 * DONTDUMP is WER's exclusion, whose refusal (an injected one too) is remembered, not
 * returned (above). No fork, and no huge pages for ordinary memory: the other advice is
 * counted as an OS function, then nothing.
 */
sm_status sm_os_madvise(void *p, size_t len, sm_os_advice advice)
{
    bool refused = sm_os_fault_hit(SM_OS_MADVISE) != 0;

    if (advice == SM_OS_DONTDUMP)
        wer_exclude(p, len, refused);
    else if (refused)
        return fail(ERROR_NOT_SUPPORTED, SM_E_UNSUPPORTED);
    return SM_OK;
}

sm_status sm_os_secretmem_create(size_t len, int *fd)
{
    (void)len;
    (void)fd;
    return fail(ERROR_NOT_SUPPORTED, SM_E_UNSUPPORTED);
}

sm_status sm_os_close(int fd)
{
    if (_close(fd) != 0)
        return fail(errno, SM_E_SYS);
    return SM_OK;
}

/* The system-preferred RNG, in ULONG-sized pieces. */
sm_status sm_os_random(void *p, size_t n)
{
    unsigned char *q = p;

    while (n > 0) {
        ULONG k = n > 0x40000000u ? 0x40000000u : (ULONG)n;
        NTSTATUS s;

        if (sm_os_fault_hit(SM_OS_GETRANDOM) != 0)
            return fail(ERROR_GEN_FAILURE, SM_E_RANDOM);
        s = BCryptGenRandom(NULL, q, k, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
        if (s != 0)
            return fail((int)s, SM_E_RANDOM);
        q += k;
        n -= k;
    }
    return SM_OK;
}

/*
 * Windows has no core dumps of its own; Windows Error Reporting writes crash dumps when
 * it is configured to. No error box and no WER report for this process: as close as
 * Windows comes. An administrator's LocalDumps setting can still dump it.
 */
sm_status sm_os_disable_core_dumps(void)
{
    SetErrorMode(GetErrorMode() | SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
    return SM_OK;
}

sm_status sm_os_read(int fd, void *p, size_t n, size_t *got)
{
    int r;

    if (sm_os_fault_hit(SM_OS_READ) != 0)
        return fail(EIO, SM_E_IO);
    r = _read(fd, p, n > 0x40000000u ? 0x40000000u : (unsigned)n);
    if (r < 0)
        return fail(errno, SM_E_IO);
    *got = (size_t)r;
    return SM_OK;
}

/* Only a disk file has an offset to go back to (a pipe's lseek "succeeds" on Windows). */
sm_status sm_os_seek_cur(int fd, int64_t delta, uint64_t *pos)
{
    intptr_t h = _get_osfhandle(fd);
    long long r;

    if (sm_os_fault_hit(SM_OS_LSEEK) != 0)
        return fail(EIO, SM_E_IO);
    if (h == -1)
        return fail(EBADF, SM_E_IO);
    if (GetFileType((HANDLE)h) != FILE_TYPE_DISK)
        return fail(ESPIPE, SM_E_UNSUPPORTED);
    r = _lseeki64(fd, delta, SEEK_CUR);
    if (r < 0)
        return fail(errno, SM_E_IO);
    *pos = (uint64_t)r;
    return SM_OK;
}

/*
 * Signals. The CRT's signal() for SIGSEGV, SIGABRT, SIGTERM and the like; a vectored
 * exception handler that calls the SIGSEGV handler on an access violation (a guard page,
 * from any thread); a console control handler for Ctrl-C (SIGINT), Ctrl-Break (SIGBREAK)
 * and the closing of the console, logoff and shutdown (SIGTERM).
 */
typedef void (*handler_fn)(int);
typedef struct {
    handler_fn prev;
    bool       ours;
} winsave;
_Static_assert(sizeof(winsave) <= sizeof(sm_os_sigsave), "sm_os_sigsave holds a winsave");

#define NSIG_WIN 32
static _Atomic(handler_fn) caught[NSIG_WIN];

static LONG CALLBACK on_exception(EXCEPTION_POINTERS *x)
{
    handler_fn h = atomic_load(&caught[SIGSEGV]);

    if (x->ExceptionRecord->ExceptionCode == EXCEPTION_ACCESS_VIOLATION && h != NULL)
        h(SIGSEGV); /* purges and ends the process: never returns */
    return EXCEPTION_CONTINUE_SEARCH;
}

static BOOL WINAPI on_console(DWORD ev)
{
    int sig = ev == CTRL_C_EVENT ? SIGINT : ev == CTRL_BREAK_EVENT ? SIGBREAK : SIGTERM;
    handler_fn h = atomic_load(&caught[sig]);

    if (h == NULL)
        return FALSE;
    h(sig);
    return TRUE;
}

sm_status sm_os_signal_catch(int sig, void (*handler)(int), sm_os_sigsave *old)
{
    static atomic_flag veh_once = ATOMIC_FLAG_INIT, console_once = ATOMIC_FLAG_INIT;
    winsave *w = (winsave *)(void *)old->opaque;
    handler_fn prev;

    if (sm_os_fault_hit(SM_OS_SIGACTION) != 0)
        return fail(EINVAL, SM_E_SYS);
    if (sig <= 0 || sig >= NSIG_WIN)
        return fail(EINVAL, SM_E_INVAL);
    prev = signal(sig, handler);
    if (prev == SIG_ERR)
        return fail(errno, SM_E_INVAL);
    w->prev = prev;
    w->ours = true;
    atomic_store(&caught[sig], handler);
    if (sig == SIGSEGV && !atomic_flag_test_and_set(&veh_once))
        (void)AddVectoredExceptionHandler(1, on_exception);
    if ((sig == SIGINT || sig == SIGBREAK || sig == SIGTERM) &&
        !atomic_flag_test_and_set(&console_once))
        (void)SetConsoleCtrlHandler(on_console, TRUE);
    return SM_OK;
}

/* The CRT can only tell the current handler by replacing it: swap and swap back. */
sm_status sm_os_signal_query(int sig, sm_os_sigsave *now)
{
    winsave *w = (winsave *)(void *)now->opaque;
    handler_fn cur;

    if (sig <= 0 || sig >= NSIG_WIN)
        return fail(EINVAL, SM_E_INVAL);
    cur = signal(sig, SIG_IGN);
    if (cur == SIG_ERR)
        return fail(errno, SM_E_SYS);
    (void)signal(sig, cur);
    w->prev = cur;
    w->ours = false;
    return SM_OK;
}

bool sm_os_signal_ignored(const sm_os_sigsave *s)
{
    return ((const winsave *)(const void *)s->opaque)->prev == SIG_IGN;
}

void sm_os_signal_restore(int sig, const sm_os_sigsave *old)
{
    const winsave *w = (const winsave *)(const void *)old->opaque;

    if (sig > 0 && sig < NSIG_WIN)
        atomic_store(&caught[sig], (handler_fn)NULL);
    (void)signal(sig, w->prev);
}

/* The CRT's default action for sig (exit status 3 for most), else 128 + sig. */
_Noreturn void sm_os_die_by_signal(int sig)
{
    if (sig > 0 && sig < NSIG_WIN)
        atomic_store(&caught[sig], (handler_fn)NULL);
    if (sig == SIGSEGV)
        ExitProcess((UINT)EXCEPTION_ACCESS_VIOLATION);
    (void)signal(sig, SIG_DFL);
    (void)raise(sig);
    _exit(128 + sig);
}

const int *sm_os_interrupt_signals(size_t *n)
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGBREAK };

    *n = sizeof sigs / sizeof sigs[0];
    return sigs;
}

void sm_os_yield(void)
{
    (void)SwitchToThread();
}

_Noreturn void sm_os_wait_forever(void)
{
    for (;;)
        Sleep(INFINITE);
}

_Noreturn void sm_os_exit(int code)
{
    exit(code);
}

/* No fork on Windows: nothing to prepare for. */
sm_status sm_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    (void)prepare;
    (void)parent;
    (void)child;
    return SM_OK;
}

int sm_os_last_error(void)
{
    return last_error;
}

void sm_os_set_last_error(int err)
{
    last_error = err;
}

/*
 * Locks (lock.h): SRW locks, condition variables and one-time initialisation, the
 * kernel's own, with no POSIX-thread layer between. Each of lock.h's types is one
 * pointer, as the Win32 one it stands for, and zero is that one's static initialiser.
 */
_Static_assert(sizeof(sm_os_mutex) == sizeof(SRWLOCK) &&
                   sizeof(sm_os_cond) == sizeof(CONDITION_VARIABLE) &&
                   sizeof(sm_os_once_flag) == sizeof(INIT_ONCE),
               "lock.h's types are the Win32 ones");

static SRWLOCK *srw(sm_os_mutex *m)
{
    return (SRWLOCK *)(void *)m;
}

void sm_os_mutex_init(sm_os_mutex *m)
{
    InitializeSRWLock(srw(m));
}

void sm_os_mutex_lock(sm_os_mutex *m)
{
    AcquireSRWLockExclusive(srw(m));
}

int sm_os_mutex_trylock(sm_os_mutex *m)
{
    return TryAcquireSRWLockExclusive(srw(m)) ? 0 : EBUSY;
}

void sm_os_mutex_unlock(sm_os_mutex *m)
{
    ReleaseSRWLockExclusive(srw(m));
}

void sm_os_cond_init(sm_os_cond *c)
{
    InitializeConditionVariable((CONDITION_VARIABLE *)(void *)c);
}

/* INFINITE: it returns only when woken (or spuriously, which every caller loops on). */
void sm_os_cond_wait(sm_os_cond *c, sm_os_mutex *m)
{
    (void)SleepConditionVariableSRW((CONDITION_VARIABLE *)(void *)c, srw(m), INFINITE, 0);
}

void sm_os_cond_broadcast(sm_os_cond *c)
{
    WakeAllConditionVariable((CONDITION_VARIABLE *)(void *)c);
}

/* InitOnceExecuteOnce's callback, which runs the caller's void (*)(void). */
static BOOL CALLBACK run_once(INIT_ONCE *o, void *param, void **ctx)
{
    void (**fn)(void) = param; /* the address of sm_os_call_once's fn */

    (void)o;
    (void)ctx;
    (*fn)();
    return TRUE;
}

void sm_os_call_once(sm_os_once_flag *o, void (*fn)(void))
{
    (void)InitOnceExecuteOnce((INIT_ONCE *)(void *)o, run_once, &fn, NULL);
}

/* VirtualQuery answers what POSIX cannot: committed and writable, page by region. */
sm_status sm_os_writable(void *p, size_t n)
{
    char *q = p, *end = (char *)p + n;
    MEMORY_BASIC_INFORMATION mi;

    while (q < end) {
        DWORD pr;

        if (VirtualQuery(q, &mi, sizeof mi) != sizeof mi || mi.State != MEM_COMMIT)
            return fail(ERROR_NOACCESS, SM_E_READONLY);
        pr = mi.Protect & 0xff;
        if ((mi.Protect & PAGE_GUARD) != 0 ||
            (pr != PAGE_READWRITE && pr != PAGE_WRITECOPY && pr != PAGE_EXECUTE_READWRITE &&
             pr != PAGE_EXECUTE_WRITECOPY))
            return fail(ERROR_NOACCESS, SM_E_READONLY);
        q = (char *)mi.BaseAddress + mi.RegionSize;
    }
    return SM_OK;
}

_Noreturn void sm_os_die(const char *msg)
{
    static const char prefix[] = "securemem: panic: ";
    char line[512];
    size_t len = sizeof prefix - 1;
    DWORD w;

    memcpy(line, prefix, len);
    for (; *msg != 0 && len < sizeof line - 1; msg++)
        line[len++] = *msg;
    line[len++] = '\n';
    (void)WriteFile(GetStdHandle(STD_ERROR_HANDLE), line, (DWORD)len, &w, NULL);
    abort();
}
