/* SPDX-License-Identifier: ISC */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "harness.h"

static const char *current = "?";

static void vsay(const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vsay(const char *prefix, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "%s", prefix);

    if (n < 0)
        n = 0;
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, (size_t)n);
}

void hx_say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsay("", fmt, ap);
    va_end(ap);
}

_Noreturn void hx_fail(const char *file, int line, const char *fmt, ...)
{
    char prefix[256];
    va_list ap;

    snprintf(prefix, sizeof prefix, "  %s: %s:%d: ", current, file, line);
    va_start(ap, fmt);
    vsay(prefix, fmt, ap);
    va_end(ap);
    /* exit, not _exit: under Valgrind the leak check still runs, and stdio is unused. */
    exit(1);
}

_Noreturn void hx_check_failed(const char *file, int line, const char *cond, const char *fmt,
                               ...)
{
    char prefix[512];
    va_list ap;

    snprintf(prefix, sizeof prefix, "  %s: %s:%d: check failed: %s -- ", current, file, line,
             cond);
    va_start(ap, fmt);
    vsay(prefix, fmt, ap);
    va_end(ap);
    exit(1);
}

_Noreturn void hx_skip(const char *reason)
{
    hx_say("  %s: skipped: %s", current, reason);
    exit(HX_SKIP_STATUS);
}

int hx_fork(void (*fn)(void *), void *arg)
{
    int status;
    pid_t pid = fork();

    if (pid < 0) {
        hx_say("fork: %s", strerror(errno));
        abort();
    }
    if (pid == 0) {
        fn(arg);
        exit(0);
    }
    while (waitpid(pid, &status, 0) != pid)
        if (errno != EINTR)
            abort();
    return status;
}

bool hx_on_valgrind(void)
{
    return RUNNING_ON_VALGRIND != 0;
}

static bool wanted(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int hx_main(const char *suite, const hx_test *tests, size_t n, unsigned timeout_s,
            int argc, char **argv)
{
    unsigned pass = 0, fail = 0, skip = 0;
    const char *env = getenv("HX_TIMEOUT");

    if (env != NULL && atoi(env) > 0)
        timeout_s = (unsigned)atoi(env);
    for (int i = 1; i < argc; i++) {
        bool known = false;

        for (size_t k = 0; k < n; k++)
            known |= strcmp(argv[i], tests[k].name) == 0;
        if (!known) {
            hx_say("%s: no test named %s", suite, argv[i]);
            return 2;
        }
    }
    for (size_t k = 0; k < n; k++) {
        double t0 = now_s();
        bool timed_out = false;
        int status;
        pid_t pid;

        if (!wanted(tests[k].name, argc, argv))
            continue;
        current = tests[k].name;
        pid = fork();
        if (pid < 0) {
            hx_say("%s: fork: %s", suite, strerror(errno));
            return 1;
        }
        if (pid == 0) {
            /* A group of its own, so that a timeout also ends what the test started. */
            (void)setpgid(0, 0);
            tests[k].fn();
            exit(0);
        }
        /* The parent keeps time, so that a test is free to use alarm() and SIGALRM. */
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);

            if (r == pid)
                break;
            if (r < 0 && errno != EINTR)
                return 1;
            if (now_s() - t0 > timeout_s) {
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                timed_out = true;
            }
            usleep(5000);
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            pass++;
            hx_say("%s: PASS %s (%.1f s)", suite, current, now_s() - t0);
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == HX_SKIP_STATUS) {
            skip++;
            hx_say("%s: SKIP %s", suite, current);
        } else {
            fail++;
            if (WIFSIGNALED(status))
                hx_say("%s: FAIL %s: killed by signal %d (%s)%s", suite, current,
                       WTERMSIG(status), strsignal(WTERMSIG(status)),
                       timed_out ? ", over its time limit" : "");
            else
                hx_say("%s: FAIL %s: exit status %d%s", suite, current, WEXITSTATUS(status),
                       WEXITSTATUS(status) == 99 ? " (the tool found errors)" : "");
        }
    }
    hx_say("%s: %u passed, %u failed, %u skipped", suite, pass, fail, skip);
    return fail == 0 ? 0 : 1;
}
