/* SPDX-License-Identifier: ISC */
/*
 * The region backings on the real kernel and under Valgrind (SM-REQ-026).
 *
 *     backing native|valgrind [preferred|required|anon]
 *
 * The mode says what the environment must give: natively the kernel has
 * CONFIG_SECRETMEM, so memfd_secret works; under Valgrind it is ENOSYS, so PREFERRED
 * must fall back to locked anonymous memory and REQUIRED must refuse.
 *
 * The configuration is set once per process, so each scenario needs its own process.
 * Natively a fork is enough. Valgrind follows a child only across exec, and only with
 * --trace-children=yes, so in valgrind mode each scenario is this program exec'd again
 * with the scenario's name; a scenario named on the command line runs in-process.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "inner.h"
#include "os/fault.h"

static bool native;
static const char *scenario = "?";

/* Report and go on: one run should list every broken expectation, not the first. */
static int failures;

static void failf(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void failf(int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "backing: %s/%s: line %d: ", scenario, native ? "native" : "valgrind",
            line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    failures++;
}

#define CHECK(cond)                                 \
    do {                                            \
        if (!(cond))                                \
            failf(__LINE__, "%s", #cond);           \
    } while (0)

#define EXPECT(call, want)                                                          \
    do {                                                                            \
        sm_status got_ = (call);                                                    \
        if (got_ != (want))                                                         \
            failf(__LINE__, "%s: got \"%s\", expected \"%s\" (errno %d)", #call,    \
                  sm_status_str(got_), sm_status_str(want), sm_last_os_error());    \
    } while (0)

/*
 * The /proc/self/maps line of the mapping that holds p, or false when none does. A
 * memfd_secret mapping shows there as "/secretmem (deleted)", whatever Valgrind says
 * about the call that made it, so this is the kernel's own word on the backing.
 */
static bool maps_line(const void *p, char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    uintptr_t a = (uintptr_t)p;
    bool found = false;

    if (f == NULL) {
        failf(__LINE__, "cannot open /proc/self/maps: %s", strerror(errno));
        return false;
    }
    while (!found && fgets(line, sizeof line, f) != NULL) {
        uintmax_t lo, hi;

        if (sscanf(line, "%jx-%jx", &lo, &hi) == 2 && a >= lo && a < hi) {
            snprintf(out, cap, "%s", line);
            found = true;
        }
    }
    fclose(f);
    return found;
}

static bool in_secretmem(const void *p)
{
    char line[512];

    return maps_line(p, line, sizeof line) && strstr(line, "secretmem") != NULL;
}

static sm_stats stats(void)
{
    sm_stats s = { 0 };

    EXPECT(sm_stats_get(&s), SM_OK);
    return s;
}

/*
 * Allocate a 100-byte region, use every data byte, and check what the backing and the
 * counters say about it, then free it. want_secretmem is what this scenario and mode
 * must produce.
 */
static void region_round_trip(bool want_secretmem)
{
    size_t page = sm_os_page_size();
    sm_stats before = stats(), during, after;
    smi_region r;
    uint8_t *d;

    EXPECT(smi_region_alloc(100, NULL, &r), SM_OK);
    if (failures > 0)
        return;
    d = smi_region_data(&r);
    for (unsigned i = 0; i < 100; i++)
        d[i] = (uint8_t)(i ^ 0x5a);
    for (unsigned i = 0; i < 100; i++)
        CHECK(d[i] == (uint8_t)(i ^ 0x5a));
    /* The data ends against the trailing guard page (SM-REQ-021). */
    CHECK(d + 100 == r.base + r.lay.map_len - page);

    CHECK(r.secretmem == want_secretmem);
    CHECK(r.locked);
    if (in_secretmem(d) != want_secretmem)
        failf(__LINE__, "data at %p is %sin a secretmem mapping of /proc/self/maps",
              (void *)d, want_secretmem ? "not " : "");

    during = stats();
    CHECK(during.bytes_locked == before.bytes_locked + r.lay.inner_len);
    CHECK(during.allocations_total == before.allocations_total + 1);
    CHECK(during.bytes_unlocked == before.bytes_unlocked);

    EXPECT(smi_region_free(&r), SM_OK);
    after = stats();
    CHECK(after.bytes_locked == before.bytes_locked);
    CHECK(after.allocations_total == during.allocations_total);
}

static void run_preferred(void)
{
    sm_config cfg = { .backing = SM_BACKING_SECRETMEM_PREFERRED };
    sm_stats s;
    smi_region r;

    EXPECT(sm_init(&cfg), SM_OK);
    if (failures > 0)
        return;
    s = stats();
    if (s.secretmem != native)
        failf(__LINE__, "stats.secretmem is %d; %s", s.secretmem,
              native ? "this kernel has CONFIG_SECRETMEM"
                     : "is this really under Valgrind (with --trace-children=yes)?");
    region_round_trip(native);

    if (!native)
        return;
    /* A kernel that refuses one region (here: pretended) still gives locked anon memory. */
    sm_os_fault_arm(SM_OS_MEMFD_SECRET, 1, ENOSYS, false);
    EXPECT(smi_region_alloc(100, NULL, &r), SM_OK);
    sm_os_fault_reset();
    if (failures > 0)
        return;
    CHECK(!r.secretmem && r.locked);
    CHECK(!in_secretmem(smi_region_data(&r)));
    EXPECT(smi_region_free(&r), SM_OK);
}

static void run_required(void)
{
    sm_config cfg = { .backing = SM_BACKING_SECRETMEM_REQUIRED };

    if (native) {
        EXPECT(sm_init(&cfg), SM_OK);
        if (failures > 0)
            return;
        CHECK(stats().secretmem);
        region_round_trip(true);
        return;
    }
    EXPECT(sm_init(&cfg), SM_E_UNSUPPORTED);
    /* A failed init leaves the library uninitialised: it can be retried... */
    EXPECT(sm_init(&cfg), SM_E_UNSUPPORTED);
    /* ...and another configuration can still be chosen. */
    EXPECT(sm_init(NULL), SM_OK);
    EXPECT(sm_init(&cfg), SM_E_STATE);
    CHECK(!stats().secretmem);
    region_round_trip(false);
}

static void run_anon(void)
{
    sm_config cfg = { .backing = SM_BACKING_ANON };

    EXPECT(sm_init(&cfg), SM_OK);
    if (failures > 0)
        return;
    CHECK(!stats().secretmem);
    region_round_trip(false);
}

static const struct {
    const char *name;
    void (*run)(void);
} scenarios[] = {
    { "preferred", run_preferred },
    { "required", run_required },
    { "anon", run_anon },
};
#define NSCENARIOS (sizeof scenarios / sizeof scenarios[0])

static int run_one(size_t i)
{
    scenario = scenarios[i].name;
    scenarios[i].run();
    return failures == 0 ? 0 : 1;
}

/*
 * A scenario in a child process: forked natively, exec'd under Valgrind so that the
 * child is traced. Returns the child's wait status, or -1 if it could not start.
 */
static int spawn(size_t i, char *self, char *mode)
{
    char name[32];
    int status;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char *argv[] = { self, mode, name, NULL };

        if (native)
            exit(run_one(i));
        snprintf(name, sizeof name, "%s", scenarios[i].name);
        execv(self, argv);
        fprintf(stderr, "backing: exec %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

static int usage(void)
{
    fprintf(stderr, "usage: backing native|valgrind [preferred|required|anon]\n");
    return 2;
}

int main(int argc, char **argv)
{
    char self[4096];
    ssize_t n;
    int bad = 0;

    if (argc < 2 || argc > 3)
        return usage();
    if (strcmp(argv[1], "native") == 0)
        native = true;
    else if (strcmp(argv[1], "valgrind") != 0)
        return usage();

    if (argc == 3) {
        for (size_t i = 0; i < NSCENARIOS; i++)
            if (strcmp(argv[2], scenarios[i].name) == 0)
                return run_one(i);
        return usage();
    }

    /* Valgrind answers this readlink with the program's path, not its own. */
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t)n >= sizeof self - 1) {
        fprintf(stderr, "backing: cannot resolve /proc/self/exe\n");
        return 1;
    }
    self[n] = '\0';

    for (size_t i = 0; i < NSCENARIOS; i++) {
        int st = spawn(i, self, argv[1]);

        if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("backing: PASS %s (%s)\n", scenarios[i].name, argv[1]);
            continue;
        }
        bad++;
        if (st == -1)
            printf("backing: FAIL %s (%s): could not run it\n", scenarios[i].name, argv[1]);
        else if (WIFSIGNALED(st))
            printf("backing: FAIL %s (%s): died of signal %d\n", scenarios[i].name, argv[1],
                   WTERMSIG(st));
        else
            printf("backing: FAIL %s (%s): exit status %d%s\n", scenarios[i].name, argv[1],
                   WEXITSTATUS(st), WEXITSTATUS(st) == 99 ? " (Valgrind found errors)" : "");
    }
    return bad == 0 ? 0 : 1;
}
