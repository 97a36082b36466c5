/* SPDX-License-Identifier: ISC */
#ifndef SM_TEST_HARNESS_H
#define SM_TEST_HARNESS_H

/*
 * A plain-main harness for the suites that Criterion cannot carry: the race suite runs
 * under ThreadSanitizer (where a Criterion binary does not start), Helgrind and DRD;
 * the kernel, hostile and constant-time suites fork, drop privileges, change rlimits
 * and run under gdb or Valgrind, which is simpler to reason about without Criterion's
 * own runner processes. Each test runs in a forked child with a time limit, so a
 * crash, a hang or a changed rlimit stays in that test.
 *
 * A test is a void function. It fails through HX_CHECK (message, then exit 1), by
 * dying of a signal, or by exceeding its time; hx_skip ends it as skipped (exit 77).
 * Output goes through write(2) only, never stdio, so that a test may print from a
 * forked child or a signal handler and nothing of it lingers in a stdio buffer.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hx_test {
    const char *name;
    void (*fn)(void);
} hx_test;

#define HX_SKIP_STATUS 77

/*
 * Run the tests named on the command line (all when none is named), each in a child,
 * and print one PASS, FAIL or SKIP line per test and a summary. Returns main's status:
 * 0 when nothing failed. HX_TIMEOUT in the environment overrides timeout_s.
 */
int hx_main(const char *suite, const hx_test *tests, size_t n, unsigned timeout_s,
            int argc, char **argv);

/* printf-like, to stderr in one write(2). */
void hx_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void hx_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
_Noreturn void hx_check_failed(const char *file, int line, const char *cond, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));
_Noreturn void hx_skip(const char *reason);

#define HX_CHECK(cond, ...)                                                         \
    do {                                                                            \
        if (!(cond))                                                                \
            hx_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);                \
    } while (0)

/* A status-returning call that must give want. */
#define HX_EXPECT(call, want)                                                          \
    do {                                                                               \
        sm_status got_ = (call);                                                       \
        if (got_ != (want))                                                            \
            hx_fail(__FILE__, __LINE__, "%s gave %s, expected %s (os error %d)", #call, \
                    sm_status_str(got_), sm_status_str(want), sm_last_os_error());     \
    } while (0)

/* Run fn in a forked child and return its wait status (for tests that need one more). */
int hx_fork(void (*fn)(void *), void *arg);

/* xorshift64*: a fast, per-thread, reproducible generator for test data and choices. */
static inline uint64_t hx_rand(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Whether this process runs under Valgrind (any tool). */
bool hx_on_valgrind(void);

#endif
