/* SPDX-License-Identifier: ISC */
/*
 * A Unix with nothing beyond POSIX.1-2024 on the POSIX base (src/os/posix.c): no dump
 * or fork advice, no off-direct-map memory, getentropy as the random source, RLIMIT_CORE
 * alone for core dumps, and no writability query. It is the base's own test build
 * (make test-posix runs the unit suite on Linux with it) and the fallback of a Unix that
 * has no file of its own. What it cannot give, sm_os_caps leaves out (spec/platforms.md).
 */
#include "posix.h"

/*
 * Locked (mlock) and guard pages (mprotect PROT_NONE) are POSIX; nothing else is. POSIX
 * has no advice that keeps pages out of a core or a child, no MAP_POPULATE, no
 * off-direct-map memory and no writability query: every entry is the base's default,
 * and sm_platform_require refuses a program that needs what is missing.
 */
const sm_os_system sm_os_system_of = {
    .caps = SM_CAP_LOCKED | SM_CAP_GUARD,
};
