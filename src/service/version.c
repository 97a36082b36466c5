/* SPDX-License-Identifier: ISC */
/* See <securemem/version.h>. Compiled from the library's own header, so the values are the
 * build's, whatever header a program that loads the library was compiled against. */
#include "inner.h"

const char *sm_version_string(void)
{
    return SM_VERSION_STRING;
}

int sm_version_major(void)
{
    return SM_VERSION_MAJOR;
}

int sm_version_minor(void)
{
    return SM_VERSION_MINOR;
}

int sm_version_patch(void)
{
    return SM_VERSION_PATCH;
}
