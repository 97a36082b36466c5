/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_VERSION_H
#define SECUREMEM_VERSION_H

#include <securemem/common.h>

SM_BEGIN_DECLS

/*
 * The library's version, MAJOR.MINOR.PATCH. These three lines are the single source of
 * truth: the GNUmakefile reads them for the shared library's file name, its soname
 * (libsecuremem.so.MAJOR) and securemem.pc's Version, and debian/ and the CMake
 * package files are checked against them (SM-REQ-136). Keep the layout: one #define a
 * line, a decimal number.
 *
 * The macros say which header a program was compiled against; the functions below say
 * which library it runs with. A program that needs the two to agree compares them at
 * start:
 *
 *     if (sm_version_major() != SM_VERSION_MAJOR || sm_version_minor() < SM_VERSION_MINOR)
 *         ... the loaded library is older than the header, or incompatible ...
 *
 * A change of MAJOR changes the soname and may break the ABI; a change of MINOR only adds
 * (functions, enumerators at the end); PATCH changes no interface.
 */
#define SM_VERSION_MAJOR 0
#define SM_VERSION_MINOR 1
#define SM_VERSION_PATCH 0

#define SM_VERSION_STR2(x) #x
#define SM_VERSION_STR1(x) SM_VERSION_STR2(x)
/* "MAJOR.MINOR.PATCH", built from the three numbers so that it cannot disagree with them. */
#define SM_VERSION_STRING                                                          \
    SM_VERSION_STR1(SM_VERSION_MAJOR) "." SM_VERSION_STR1(SM_VERSION_MINOR) "." \
    SM_VERSION_STR1(SM_VERSION_PATCH)

/*
 * The version of the library that is loaded, as compiled into it: the value of
 * SM_VERSION_STRING and of the three numbers when the library was built. The string is
 * static, never NULL, and must not be freed. They need no sm_init, never fail, and are
 * thread-safe and async-signal-safe.
 */
SM_API const char *sm_version_string(void);
SM_API int sm_version_major(void);
SM_API int sm_version_minor(void);
SM_API int sm_version_patch(void);

SM_END_DECLS

#endif
