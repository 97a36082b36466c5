/* SPDX-License-Identifier: ISC */
#ifndef SECUREMEM_COMMON_H
#define SECUREMEM_COMMON_H

/* Attributes shared by the public headers. Include <securemem.h> instead. */

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

#endif
