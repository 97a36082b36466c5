/* SPDX-License-Identifier: ISC */
/*
 * macOS on the POSIX base (src/os/posix.c). From Apple's manual (minherit(2),
 * getentropy(2)) and headers (mach/vm_inherit.h): minherit VM_INHERIT_NONE leaves the
 * pages out of a child (there is no zeroing variant, so WIPEONFORK gets the same);
 * getentropy is the random source. macOS has no advice that keeps a range out of a core
 * dump (MADV_ZERO_WIRED_PAGES only zeroes wired pages at unmap): SM_CAP_NODUMP is not
 * claimed, and RLIMIT_CORE = 0 is the protection. The writability query asks the task's
 * VM map (vm_region_64, mach/vm_map.h). Built and linked as Mach-O here with
 * Zig (make platforms-macos), never run (spec/platforms.md).
 */
#include <mach/mach.h>
#include <mach/vm_inherit.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/mman.h>

#include "posix.h"

/*
 * DONTDUMP has no macOS call: nothing to do (and SM_CAP_NODUMP is not claimed); nor has
 * HUGEPAGE, which is speed only.
 */
static int advise(void *p, size_t len, sm_os_advice advice)
{
    if (advice == SM_OS_DONTDUMP || advice == SM_OS_HUGEPAGE)
        return 0;
    return minherit(p, len, VM_INHERIT_NONE);
}

/*
 * The writability query from the kernel's own map of this task: vm_region_64
 * (mach/vm_map.h) gives the region at or above an address and its current protection.
 * A region that starts above the address being asked about is a hole; a refusal of the
 * call itself leaves the question unanswered (SM_OK, os.h).
 */
static sm_status writable(void *p, size_t n)
{
    vm_address_t at = (vm_address_t)(uintptr_t)p, end = at + n;

    while (at < end) {
        vm_address_t base = at;
        vm_size_t size = 0;
        vm_region_basic_info_data_64_t info;
        mach_msg_type_number_t count = VM_REGION_BASIC_INFO_COUNT_64;
        mach_port_t object = MACH_PORT_NULL;
        kern_return_t kr = vm_region_64(mach_task_self(), &base, &size, VM_REGION_BASIC_INFO_64,
                                        (vm_region_info_t)&info, &count, &object);

        if (kr != KERN_SUCCESS && kr != KERN_INVALID_ADDRESS)
            return SM_OK;
        if (kr == KERN_INVALID_ADDRESS || base > at || (info.protection & VM_PROT_WRITE) == 0) {
            sm_os_set_last_error(EFAULT);
            return SM_E_READONLY;
        }
        at = base + size;
    }
    return SM_OK;
}

const sm_os_system sm_os_system_of = {
    .caps = SM_CAP_LOCKED | SM_CAP_NOFORK | SM_CAP_GUARD,
    .advise = advise,
    .writable = writable,
};
