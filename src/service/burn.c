/* SPDX-License-Identifier: ISC */
/*
 * Burning the stack after a cipher (SM-REQ-066). BearSSL keeps its working state in its
 * own stack frames: ChaCha20's key words and last keystream block, AES round keys and
 * counter blocks, GHASH and Poly1305 keys, SHA-256 message schedules. None of it is
 * wiped when the function returns, so it stays in the dead stack below the caller until
 * something else happens to overwrite it, where a later stack disclosure, a forked
 * child (which inherits the stack) or a core dump of the stack would find it. The
 * registers are the other place it stays: the AES-NI, PCLMUL and SSE2 code leave round
 * keys and keystream in the xmm registers, which a signal frame or the lazy binder's
 * register save later writes to the stack.
 *
 * So each call site of a primitive calls smi_burn_stack from the same frame right after
 * it. The burn's own frame then starts where the primitive's frames started, and its pad
 * covers SMI_BURN_DEPTH bytes below: every frame the primitive used, if the primitive
 * went no deeper than that.
 *
 * SMI_BURN_DEPTH: measured on the reference machine (BearSSL 0.6 from Debian 12, AMD
 * EPYC with AVX-512), by painting 32 KiB of stack, calling the primitive once warm and
 * finding the deepest byte it changed: chacha20_ct 280 bytes, chacha20_sse2 88,
 * poly1305_ctmulq with chacha20_sse2 488, poly1305_ctmul with chacha20_ct 504, the AES-NI
 * key schedule 376, br_gcm_init 464, gcm_run 480, gcm_get_tag 496, gcm_check_tag 560,
 * SHA-256 (init, update, out) 536. A first call through the lazy binder, whose register
 * save (xsavec of the AVX-512 state) sits below the caller, was 3,144 bytes deep; the
 * library makes none (it is built with -fno-plt, and the shared library is linked with
 * -z now; Debian's libbearssl is BIND_NOW too), but 4 KiB covers it as well, and the
 * deepest warm chain seven times over. tests/unit/test_residue.c checks the result.
 *
 * The cost is one 4 KiB wipe per primitive call, about 50 ns (sm_buffer_scramble of 64
 * bytes, release build, loaded machine: 341-367 ns before, 404-418 ns after), on paths
 * that already make a system call or run a cipher. The access paths of the protected
 * and guarded factories (the nested read) run no primitive and no burn.
 */
#include "inner.h"

#define SMI_BURN_DEPTH 4096u

/*
 * noinline keeps pad in a frame of its own, at the depth the primitive's frames had;
 * smi_wipe's stores cannot be optimised away (SM-REQ-010). A call of this function in
 * tail position may become a jump that reuses the caller's frame: the pad then starts
 * that much higher and still reaches 4 KiB minus the caller's frame below it.
 */
__attribute__((noinline)) void smi_burn_stack(void)
{
    unsigned char pad[SMI_BURN_DEPTH];

    smi_wipe(pad, sizeof pad);
#if defined(__x86_64__)
    /*
     * xmm0-15 are caller-saved in the SysV ABI: the caller expects nothing in them
     * after a call, so they can be zeroed here. BearSSL's SSE code writes only their
     * low 128 bits (legacy encoding), which pxor clears; it never touches xmm16-31.
     */
    __asm__ __volatile__("pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\t"
                         "pxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
                         "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
                         "pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
                         "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\t"
                         "pxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
                         "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\t"
                         "pxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15"
                         :
                         :
                         : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                           "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
                           "xmm15");
#endif
}
