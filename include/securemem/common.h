/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_COMMON_H
#define SECUREMEM_COMMON_H

/*
 * Attributes shared by the public headers. Include <securemem.h> instead.
 *
 * The headers are usable from C99 (also with -pedantic-errors), C11 and later, and from
 * C++: every declaration is extern "C" (SM_BEGIN_DECLS), and no C11-only keyword is
 * spelled out, since _Noreturn is an error in C99 with -pedantic-errors and not a type
 * in C++ (SM_NORETURN instead). make check-headers builds and links such programs
 * against the installed library.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define SM_API __attribute__((visibility("default")))
#if defined(SM_NO_MUST_CHECK)
#define SM_MUST_CHECK
#else
#define SM_MUST_CHECK __attribute__((warn_unused_result))
#endif
#else
#define SM_API
#define SM_MUST_CHECK
#endif

/*
 * GNU C and clang take the attribute in every language mode; otherwise C++11's
 * [[noreturn]] or C11's _Noreturn, whichever the compiler speaks.
 */
#if defined(__GNUC__) || defined(__clang__)
#define SM_NORETURN __attribute__((noreturn))
#elif defined(__cplusplus) && __cplusplus >= 201103L
#define SM_NORETURN [[noreturn]]
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define SM_NORETURN _Noreturn
#else
#define SM_NORETURN
#endif

#if defined(__cplusplus)
#define SM_BEGIN_DECLS extern "C" {
#define SM_END_DECLS }
#else
#define SM_BEGIN_DECLS
#define SM_END_DECLS
#endif

#endif
