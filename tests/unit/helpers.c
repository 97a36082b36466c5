/* SPDX-License-Identifier: ISC */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <valgrind/valgrind.h>

#include "helpers.h"
#include "objects/compact.h"

size_t tsv_load(const char *name, tsv_row **rows)
{
    char path[512], line[1024];
    size_t n = 0;
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", SM_SPEC_DIR, name);
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        abort();
    }
    *rows = NULL;
    while (fgets(line, sizeof line, f) != NULL) {
        tsv_row r = { 0 };
        char *save = NULL, *tok;

        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == '#' || line[0] == 0)
            continue;
        for (tok = strtok_r(line, "\t", &save); tok != NULL && r.nf < 8;
             tok = strtok_r(NULL, "\t", &save))
            r.f[r.nf++] = strdup(tok);
        *rows = realloc(*rows, (n + 1) * sizeof **rows);
        (*rows)[n++] = r;
    }
    fclose(f);
    return n;
}

void tsv_free(tsv_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < rows[i].nf; k++)
            free(rows[i].f[k]);
    free(rows);
}

#define E(x) { #x, x }
static const struct { const char *name; int value; } errnos[] = {
    E(ENOMEM), E(EAGAIN), E(EINVAL), E(EPERM), E(EACCES), E(ENOSYS), E(EMFILE),
    E(ENFILE), E(EFBIG), E(EIO), E(EINTR), E(EFAULT), E(EBADF), E(EEXIST), E(ESPIPE),
    E(ENOSPC), E(ENOENT), E(ENOTTY),
};

int errno_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
        if (strcmp(errnos[i].name, name) == 0)
            return errnos[i].value;
    return -1;
}

#define S(x) { #x, x }
static const struct { const char *name; sm_status value; } statuses[] = {
    S(SM_OK), S(SM_E_INVAL), S(SM_E_STATE), S(SM_E_NOMEM), S(SM_E_LOCK), S(SM_E_PROT),
    S(SM_E_AUTH), S(SM_E_RANDOM), S(SM_E_BUSY), S(SM_E_IO), S(SM_E_EOF),
    S(SM_E_UNSUPPORTED), S(SM_E_SYS), S(SM_E_READONLY), S(SM_E_CALLBACK), S(SM_E_USER),
    S(SM_E_USER_MAX),
};

sm_status status_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (strcmp(statuses[i].name, name) == 0)
            return statuses[i].value;
    return (sm_status)-1;
}

int os_fn_from_name(const char *name)
{
    for (int i = 0; i < SM_OS_FN_COUNT; i++)
        if (strcmp(sm_os_fn_name((sm_os_fn)i), name) == 0)
            return i;
    return -1;
}

/* A static buffer: reading maps must not itself create mappings through malloc. */
static char maps_buf[1 << 20];

char *proc_text(const char *path)
{
    int fd = open(path, O_RDONLY);
    size_t len = 0;
    ssize_t r;

    if (fd < 0)
        abort();
    while ((r = read(fd, maps_buf + len, sizeof maps_buf - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    maps_buf[len] = 0;
    return maps_buf;
}

static bool ends_with(const char *line, size_t len, const char *tail)
{
    size_t n = strlen(tail);

    return len >= n && memcmp(line + len - n, tail, n) == 0;
}

bool machine_has_pkeys(void)
{
#if defined(SM_OS_GENERIC) || !defined(__x86_64__)
    return false;
#else
    char line[4096];
    bool has = false;
    FILE *f;

    if (RUNNING_ON_VALGRIND)
        return false;
    f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return false;
    while (!has && fgets(line, sizeof line, f) != NULL)
        has = strncmp(line, "flags", 5) == 0 && strstr(line, " ospke") != NULL;
    fclose(f);
    return has;
#endif
}

void compact_without_keys(void)
{
    sm_os_fault_arm(SM_OS_PKEY_ALLOC, 1, ENOSPC, true);
    if (smi_compact_keyed())
        abort(); /* decided before this test asked: it would test the wrong mode */
    sm_os_fault_reset();
}

bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;

    return uname(&u) == 0 && sscanf(u.release, "%d.%d", &ma, &mi) == 2 &&
           (ma > major || (ma == major && mi >= minor));
}

size_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    size_t n = 0;

    if (d == NULL)
        abort();
    while (readdir(d) != NULL)
        n++;
    (void)closedir(d);
    return n;
}

bool kernel_has_secretmem(void)
{
#if defined(SYS_memfd_secret)
    int fd = (int)syscall(SYS_memfd_secret, 0);

    if (fd >= 0) {
        (void)close(fd);
        return true;
    }
#endif
    return false;
}

/*
 * What the process maps, but for the spare ciphertext mappings (src/memory/spare.c): they
 * belong to no object, so a test that frees everything it made finds the count it began
 * with, whether its mappings were unmapped or kept spare. The heap and the stack are left
 * out too: the library never maps memory there, and how far malloc grows the heap for a
 * test's own buffers, and gives back, depends on what ran before it in the process (on
 * Debian 12's kernel a test's 80 KiB source stayed as 108 KiB more heap).
 */
size_t mapped_bytes(void)
{
    size_t total = 0;
    char *p = proc_text("/proc/self/maps");

    while (*p) {
        unsigned long lo, hi;
        char *end = strchr(p, '\n');
        size_t line = end != NULL ? (size_t)(end - p) : strlen(p);

        if (sscanf(p, "%lx-%lx", &lo, &hi) == 2 && !ends_with(p, line, "[heap]") &&
            !ends_with(p, line, "[stack]"))
            total += hi - lo;
        p = end;
        if (p == NULL)
            break;
        p++;
    }
    return total - smi_spare_test_bytes();
}

int smaps_of(const void *addr, char perms[5], char *vmflags, size_t cap, size_t *locked_kb)
{
    uintptr_t a = (uintptr_t)addr;
    char *p = proc_text("/proc/self/smaps");
    bool in = false;

    while (*p) {
        char *eol = strchr(p, '\n');
        unsigned long lo, hi;
        char pr[5];

        if (eol != NULL)
            *eol = 0;
        if (sscanf(p, "%lx-%lx %4s", &lo, &hi, pr) == 3 && strchr(p, '-') < strchr(p, ' ')) {
            in = a >= lo && a < hi;
            if (in)
                memcpy(perms, pr, 5);
        } else if (in && strncmp(p, "Locked:", 7) == 0) {
            *locked_kb = strtoul(p + 7, NULL, 10);
        } else if (in && strncmp(p, "VmFlags:", 8) == 0) {
            snprintf(vmflags, cap, "%s", p + 8);
            return 0;
        }
        if (eol == NULL)
            break;
        p = eol + 1;
    }
    return -1;
}

/*
 * Linux names VM_LOCKONFAULT "lf" in smaps only since 6.x; before that (Debian 12's 6.1)
 * it prints the flag as "??". So ask the kernel: lock one fresh page on fault and one
 * plainly, and take the flag that the first shows and the second does not.
 */
const char *lock_on_fault_flag(void)
{
    static const char *const names[] = { " lf", " ??" };
    size_t pg = sm_page_size(), kb;
    char perms[5], on_fault[512], plain[512];
    const char *found = NULL;
    uint8_t *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return NULL;
    if (syscall(SYS_mlock2, p, pg, 1 /* MLOCK_ONFAULT */) == 0 && mlock(p + pg, pg) == 0 &&
        smaps_of(p, perms, on_fault, sizeof on_fault, &kb) == 0 &&
        smaps_of(p + pg, perms, plain, sizeof plain, &kb) == 0) {
        for (size_t i = 0; i < sizeof names / sizeof names[0] && found == NULL; i++)
            if (strstr(on_fault, names[i]) != NULL && strstr(plain, names[i]) == NULL)
                found = names[i];
    }
    (void)munmap(p, 2 * pg);
    return found;
}

size_t locked_bytes_total(void)
{
    const char *text = proc_text("/proc/self/smaps");
    size_t total = 0;

    for (const char *p = strstr(text, "\nLocked:"); p != NULL; p = strstr(p + 1, "\nLocked:"))
        total += strtoul(p + 8, NULL, 10) * 1024;
    return total;
}

unsigned long os_calls(void)
{
    unsigned long t = 0;

    for (int f = 0; f < SM_OS_FN_COUNT; f++)
        t += sm_os_fault_calls((sm_os_fn)f);
    return t;
}

size_t pooled_regions(void)
{
    uint8_t *bases[SMI_POOL_SLOTS];

    return smi_pool_test_list(bases, NULL, SMI_POOL_SLOTS);
}

bool unmapped_or_pooled(const void *at)
{
    uint8_t *pages[SMI_POOL_SLOTS];
    size_t inner[SMI_POOL_SLOTS];
    size_t n = smi_pool_test_list(pages, inner, SMI_POOL_SLOTS);
    const uint8_t *p = at;
    char perms[5], flags[256];
    size_t locked;

    if (smaps_of(at, perms, flags, sizeof flags, &locked) != 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        if (p < pages[i] || p >= pages[i] + inner[i])
            continue;
        /* Pooled: read-only and nothing but zeros, the canary too (spec/layout.md). */
        if (strncmp(perms, "r--", 3) != 0)
            return false;
        for (size_t k = 0; k < inner[i]; k++)
            if (pages[i][k] != 0)
                return false;
        return true;
    }
    return false;
}

void pool_fill(void)
{
    pool_fill_of(sm_factory_guarded());
}

void pool_fill_of(const sm_factory *f)
{
    sm_secret s[SMI_POOL_SLOTS];
    uint8_t src[32];

    for (size_t i = 0; i < SMI_POOL_SLOTS; i++) {
        memset(src, 0x5a, sizeof src);
        if (sm_secret_new(f, src, sizeof src, &s[i]) != SM_OK)
            abort();
    }
    for (size_t i = 0; i < SMI_POOL_SLOTS; i++)
        if (sm_secret_close(s[i]) != SM_OK)
            abort();
}

void counters_get(counters *c)
{
    c->allocations = atomic_load(&smi_stat_allocations);
    c->locked = atomic_load(&smi_stat_locked) - smi_pool_test_bytes();
    c->unlocked = atomic_load(&smi_stat_unlocked);
    for (int k = 0; k < SMI_KIND_COUNT; k++)
        c->live[k] = k == 0 ? 0 : smi_registry_live((smi_kind)k);
    c->mapped = mapped_bytes() - smi_pool_test_mapped();
}

bool counters_equal(const counters *a, const counters *b, unsigned what)
{
    /*
     * Under Valgrind (make test-memcheck) the tool maps and unmaps memory of its own in
     * this address space as it translates code, so the total of /proc/self/maps moves
     * by itself; the counters are still compared. `make test` checks the mappings.
     */
    if ((what & CMP_MAPPED) && a->mapped != b->mapped && !RUNNING_ON_VALGRIND)
        return false;
    if ((what & CMP_ALLOCATIONS) && a->allocations != b->allocations)
        return false;
    return a->locked == b->locked &&
           a->unlocked == b->unlocked && memcmp(a->live, b->live, sizeof a->live) == 0;
}

void interrupts_default(void)
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        (void)signal(sigs[i], SIG_DFL);
}

int in_child(void (*fn)(void *), void *arg)
{
    int status;
    pid_t pid = fork();

    if (pid < 0)
        abort();
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    if (waitpid(pid, &status, 0) != pid)
        abort();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
