#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Write the hand-made seed inputs of each harness into fuzz/corpus/<harness>/seed-*.

Each seed spells out, in the harness's input format (see the header comment of each
harness), one scenario that a fuzzer would take long to find by itself: every operation
kind once, each fork scenario, faults in each OS function, sizes at page and chunk
boundaries. The rest of each corpus is what the fuzzers found (make fuzz-merge), so
only seed-* files are rewritten here.

    python3 fuzz/tools/seeds.py [CORPUS_ROOT]
"""
import os
import struct
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus")
PAGE = 4096
CHUNK = 4 * PAGE - 64


def u8(x):
    return bytes([x & 0xFF])


def u16(x):
    return struct.pack("<H", x & 0xFFFF)


def pat(n, seed=1):
    return bytes((seed + i * 7) & 0xFF for i in range(n))


# ---- ops (fuzz/ops.c): one byte of AEAD choice, then opcode + arguments ----

def pick(mode, f, want, bits=13):
    """The u16 whose top bits select mode and whose value maps to want under f."""
    for v in range(mode << bits, (mode + 1) << bits):
        if f(v) == want:
            return u16(v)
    raise ValueError((mode, want))


def size_small(n):          # pick_size mode 0: 1 + v % 64
    return pick(0, lambda v: 1 + v % 64, n)


def size_page(k):           # mode 2: page - 48 + v % 97
    return pick(2, lambda v: PAGE - 48 + v % 97, PAGE - 48 + k)


def size_big(n):            # modes 3 and 4: 1 + v % (3 * page - 1)
    try:
        return pick(3, lambda v: 1 + v % (3 * PAGE - 1), n)
    except ValueError:
        return pick(4, lambda v: 1 + v % (3 * PAGE - 1), n)


def size_of_enclave(e):     # mode 5
    return u16((5 << 13) | e)


def size_zero():            # mode 7, odd: 0
    return u16((7 << 13) | 1)


def size_overflow():        # mode 7, even: overflowing
    return u16((7 << 13) | 2)


def op(code, *args):
    return u8(code) + b"".join(args)


def data(n, seed=1):
    """fz_fill's encoding: a length byte, then that many bytes (the rest is a pattern)."""
    k = min(n, 255)
    return u8(k) + pat(k, seed)


B_NEW, B_BYTES, B_RANDOM, FREEZE, MELT, COPY, COPY_AT, MOVE, MOVE_AT = range(9)
SCRAMBLE, WIPE, EQUAL, SEAL, DESTROY = 9, 10, 11, 12, 13
E_NEW, E_RANDOM, E_OPEN, E_OPEN_INTO, E_DESTROY = 0x10, 0x11, 0x12, 0x13, 0x14
S_NEW, S_WRITE, S_READ, S_NEXT, S_FLUSH, S_DESTROY = 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D
F_ARM, F_CLEAR, PURGE, AUDIT, INIT, STATUS, COFFER, STALE, NULLS, FORK = (
    0x20, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A)
M_ALLOC, M_FREE, M_PROTECT, M_LOCK, M_BYTES = 0x38, 0x39, 0x3A, 0x3B, 0x3C
X_NEW, X_RANDOM, X_WITH, X_TRY, X_READ_AT, X_QUERY, X_CLOSE, X_BAD = range(0x30, 0x38)
PROTECTED, GUARDED, ENCRYPTED, CUSTOM = range(4)
COMPACT = 7                 # pick_factory: a byte v with v % 8 == 7
X_FILL, X_FROM_BUFFER, X_FROM_FD, PLATFORM = 0x3D, 0x3E, 0x3F, 0x2B
FN = {"mmap": 0, "munmap": 1, "mprotect": 2, "mlock": 3, "madvise": 4, "getrandom": 5}


def arm(fn, nth=1, row=0, sticky=False):
    return op(F_ARM, u8(FN[fn]), u8((row << 3) | (4 if sticky else 0) | (nth - 1)))


def secret_size(n):         # pick_secret_size modes 0..2 (1 + v % 64), 4 and 5 (1 + v % 3 pages)
    if n <= 64:
        return pick(0, lambda v: 1 + v % 64, n)
    try:
        return pick(4, lambda v: 1 + v % (3 * PAGE), n)
    except ValueError:
        return pick(5, lambda v: 1 + v % (3 * PAGE), n)


def x_new(slot, fac, n, seed=1):
    return op(X_NEW, u8(slot), u8(fac), secret_size(n), data(n, seed))


def x_access(idx, inner=(), status=0, code=X_WITH):
    """An access whose callback returns fn status (0: SM_OK, 6, 7: errors) and runs inner."""
    return op(code, u8(idx), u8((len(inner) << 3) | status)) + b"".join(inner)


def secret_seeds(s):
    four = b"".join([
        x_new(0, PROTECTED, 32), op(X_RANDOM, u8(1), u8(GUARDED), secret_size(PAGE + 16)),
        x_new(2, ENCRYPTED, 100, 3), op(X_RANDOM, u8(3), u8(CUSTOM), secret_size(9000)),
    ])
    s["secrets"] = b"\x00" + four + b"".join(
        [op(X_QUERY, u8(i)) + x_access(i) + op(X_READ_AT, u8(i), u16(3), u16(10)) +
         op(X_READ_AT, u8(i), u16(2 * PAGE), u16(PAGE)) for i in range(4)] +
        [x_access(1, status=6), x_access(2, status=7, code=X_TRY),
         op(X_READ_AT, u8(0), u16(32), u16(5)), op(X_READ_AT, u8(0), u16(33), u16(5)),
         op(X_READ_AT, u8(0), u16(0x80ff), u16(1)), op(X_READ_AT, u8(0), u16(0), u16(0x8000))] +
        [op(X_BAD, u8(how), u8(kind), u8(k)) for how, kind, k in
         ((0, 0, 0), (0x21, 0, 3), (0x42, 1, 0), (0x63, 2, 0), (0x84, 3, 1), (0xa5, 0, 5))] +
        [op(X_CLOSE, u8(i)) + op(X_CLOSE, u8(i)) + x_access(i) + op(X_QUERY, u8(i)) +
         op(X_READ_AT, u8(i), u16(0), u16(1)) for i in range(4)] +
        [op(X_BAD, u8(0), u8(0), u8(0)),
         op(X_NEW, u8(0), u8(0), u16((6 << 13) | 1), data(1)),
         op(X_NEW, u8(0), u8(1), u16(6 << 13), data(1)),
         op(X_RANDOM, u8(0), u8(2), u16(7 << 13)),
         op(X_NEW, u8(0), u8(3), u16((7 << 13) | 5), data(1))])
    # Nested accesses: the same secret again, another one, a close from inside (refused
    # for a secret held, done for one that is not), other kinds inside.
    s["secret-nested"] = b"\x01" + four + x_access(0, [
        x_access(0, [op(X_CLOSE, u8(0)), op(X_QUERY, u8(0))]),
        x_access(1, [x_access(2, [op(X_READ_AT, u8(0), u16(1), u16(8)), op(X_CLOSE, u8(1)),
                                  op(X_CLOSE, u8(3))]),
                     op(X_TRY, u8(1), u8(0))]),
        op(B_NEW, u8(0), size_small(8)), op(E_NEW, u8(0), size_small(8), data(8)),
        op(PURGE), op(FORK),
        op(X_READ_AT, u8(2), u16(0), u16(100)),
    ]) + op(X_CLOSE, u8(0)) + op(X_CLOSE, u8(1)) + x_access(3)
    s["secret-deep"] = b"\x00" + x_new(0, GUARDED, 8) + \
        x_access(0, [x_access(0, [x_access(0, [x_access(0, [x_access(0, [x_access(0, [
            x_access(0), op(X_CLOSE, u8(0))])])])])])])
    body = b"".join([x_new(i, i, 24 + i) + x_access(i) + op(X_READ_AT, u8(i), u16(1), u16(9))
                     for i in range(4)] +
                    [op(X_RANDOM, u8(i), u8(i), secret_size(40)) for i in range(4)] +
                    [x_access(i, [x_access(i)]) + op(X_CLOSE, u8(i)) for i in range(4)])
    for fn in FN:
        for nth in (1, 2, 3):
            s["secret-fault-%s-%d" % (fn, nth)] = b"\x00" + arm(fn, nth=nth, row=nth - 1) + body
        s["secret-fault-%s-sticky" % fn] = b"\x00" + arm(fn, sticky=True) + body
    # A shut that fails keeps the window open; the next last exit shuts it.
    for fac in range(4):
        # The shut's call: the second mprotect, or the encrypted window's munmap.
        shut = arm("munmap") if fac == ENCRYPTED else arm("mprotect", nth=2)
        s["secret-shut-%d" % fac] = b"\x00" + x_new(0, fac, 50) + shut + \
            x_access(0) + op(F_CLEAR) + x_access(0) + shut + \
            op(X_READ_AT, u8(0), u16(0), u16(50)) + op(F_CLEAR) + \
            op(X_READ_AT, u8(0), u16(0), u16(50)) + op(X_CLOSE, u8(0))
        s["secret-close-munmap-%d" % fac] = b"\x00" + x_new(0, fac, 50) + arm("munmap") + \
            op(X_CLOSE, u8(0)) + op(F_CLEAR) + x_access(0) + op(X_CLOSE, u8(0))
    s["secret-exhausted"] = b"\x00" + op(E_NEW, u8(0), size_small(8), data(8)) + \
        x_new(0, ENCRYPTED, 8) + op(COFFER, u8(0)) + x_new(1, ENCRYPTED, 8) + \
        op(X_RANDOM, u8(1), u8(ENCRYPTED), secret_size(8)) + x_access(0) + op(COFFER, u8(1)) + \
        x_access(0) + op(PURGE) + x_new(1, ENCRYPTED, 8) + x_access(1)
    for k in (0, 6):
        s["secret-fork-%d" % k] = b"\x00" + four + op(FORK, u8(k), u8(0), u8(0), u8(0))
    compact_seeds(s)
    fd_secret_seeds(s)
    # Every protection asked for alone, none, all, and bits outside SM_CAP_ALL.
    s["platform"] = b"\x00" + b"".join(op(PLATFORM, u8(a)) for a in
                                        (0, 1, 2, 4, 8, 0x10, 0x0f, 0x1f, 0x20, 0xff))


def x_fill(slot, fac, n, how=0, seed=1):
    """sm_secret_from_callback; how & 3 == 3: the fill fails with SM_E_USER + (how >> 2)."""
    return op(X_FILL, u8(slot), u8(fac), secret_size(n), u8(how), data(n, seed))


def x_fd(slot, fac, n, how=0, seed=1):
    """sm_secret_from_fd; how & 3: exactly n bytes, more, fewer, none; how & 4: a memfd."""
    return op(X_FROM_FD, u8(slot), u8(fac), secret_size(n), u8(how), data(n + 40, seed))


def compact_seeds(s):
    # Four compact secrets: two 32-byte ones side by side on one page, one of another class,
    # one of the largest class across a page boundary; every way to make one.
    four = b"".join([
        x_new(0, COMPACT, 32), op(X_RANDOM, u8(1), u8(COMPACT), secret_size(30)),
        x_fill(2, COMPACT, 100, seed=5), op(B_NEW, u8(0), size_small(20)),
        op(X_FROM_BUFFER, u8(3), u8(0), u8(COMPACT)),
    ])
    reads = b"".join(
        [op(X_QUERY, u8(i)) + x_access(i) + op(X_READ_AT, u8(i), u16(3), u16(10)) +
         op(X_READ_AT, u8(i), u16(0), u16(0x8000)) + op(X_READ_AT, u8(i), u16(40), u16(1))
         for i in range(4)])
    # Nested: a neighbour on the same page, then the same secret, refused closes of the
    # ones held, a close and a make of a neighbour inside, an audit.
    nested = x_access(0, [
        x_access(1, [x_access(0), op(X_CLOSE, u8(1)), op(X_CLOSE, u8(0))]),
        x_access(2, [op(X_READ_AT, u8(0), u16(1), u16(8))], code=X_TRY),
        op(X_CLOSE, u8(3)), x_new(3, COMPACT, 16, 9), op(AUDIT),
    ])
    closes = b"".join([op(X_CLOSE, u8(i)) + op(X_CLOSE, u8(i)) + x_access(i) + op(X_QUERY, u8(i)) +
                       op(X_READ_AT, u8(i), u16(0), u16(1)) for i in range(4)])
    s["compact"] = b"\x00" + four + reads + nested + op(AUDIT) + closes + \
        x_new(0, COMPACT, 2048, 3) + x_access(0) + op(X_READ_AT, u8(0), u16(2000), u16(100)) + \
        x_new(1, COMPACT, 2049) + op(X_NEW, u8(1), u8(COMPACT), size_zero(), data(1)) + \
        x_fill(1, COMPACT, 64, how=3 | (5 << 2)) + op(X_CLOSE, u8(0)) + x_new(0, COMPACT, 32) + \
        op(PURGE) + x_access(0) + x_new(0, COMPACT, 24) + x_access(0, status=6) + op(X_CLOSE, u8(0))
    # Forked children with live compact secrets: stale handles, purges, exits, signals.
    for k in range(7):
        s["compact-fork-%d" % k] = b"\x00" + four + op(FORK, u8(k), u8(0), u8(0), u8(0))
    # A purge from inside an access (which & 0x7f: factory + 5 * 0) and inside a fill (+ 5),
    # in a forked child, for each factory.
    for fac in range(5):
        for fill in (0, 1):
            s["secret-purge-inside-%d-%d" % (fac, fill)] = b"\x00" + \
                op(FORK, u8(7), u8(0x80 | (fac + 5 * fill)), u8(0), u8(0))
    # Bad arguments with a compact secret's handle and a compact factory; forged compact ids.
    s["compact-bad"] = b"\x00" + four + b"".join(
        op(X_BAD, u8(how), u8(0), u8(k)) for how, k in
        ((0x10, 8), (0x31, 9), (0x52, 3), (0x73, 8), (0x90, 9))) + closes + \
        b"".join(op(X_BAD, u8(how), u8(0), u8(k)) for how, k in ((0x10, 8), (0x11, 9)))
    s["compact-frozen-buffer"] = b"\x00" + op(B_NEW, u8(0), size_small(40)) + op(FREEZE, u8(0)) + \
        arm("munmap") + op(X_FROM_BUFFER, u8(0), u8(0), u8(COMPACT)) + op(F_CLEAR) + \
        op(X_FROM_BUFFER, u8(0), u8(0), u8(COMPACT)) + x_access(0)
    # Every OS function the factory calls, failing at its first to fourth call and for good.
    body = four + nested + op(AUDIT) + reads + closes + x_new(0, COMPACT, 32) + x_access(0)
    for fn in ("mmap", "munmap", "mprotect", "mlock", "madvise", "getrandom"):
        for nth in (1, 2, 3, 4):
            s["compact-fault-%s-%d" % (fn, nth)] = b"\x00" + arm(fn, nth=nth, row=nth - 1) + body
        s["compact-fault-%s-sticky" % fn] = b"\x00" + arm(fn, sticky=True) + body
    # An access's shut refused, an audit's open and shut refused, a close's final shut.
    s["compact-shut"] = b"\x00" + x_new(0, COMPACT, 50) + x_new(1, COMPACT, 50) + arm("mprotect", nth=2) + \
        x_access(0) + op(F_CLEAR) + x_access(1) + arm("mprotect", nth=1) + op(AUDIT) + \
        arm("mprotect", nth=2) + op(AUDIT) + arm("mprotect", nth=2) + op(X_CLOSE, u8(0)) + \
        op(F_CLEAR) + x_access(1) + arm("mprotect", nth=1) + op(X_CLOSE, u8(1)) + op(F_CLEAR) + \
        op(X_CLOSE, u8(1))


def fd_secret_seeds(s):
    # Each factory, through a pipe and a memfd, with exactly, more, fewer and no bytes.
    for fac in (PROTECTED, GUARDED, ENCRYPTED, CUSTOM, COMPACT):
        s["secret-fd-%d" % fac] = b"\x00" + b"".join(
            x_fd(k, fac, 40 + 8 * k, how) + x_access(k) + op(X_CLOSE, u8(k))
            for k, how in enumerate((0, 1 | 4, 2, 3 | 4, 4, 1 | (3 << 3), 2 | 4, 3)))
    s["secret-fd-faults"] = b"\x00" + b"".join(
        arm(fn, nth=1) + x_fd(0, fac, 64) + op(F_CLEAR) + op(X_CLOSE, u8(0))
        for fn in ("mmap", "mprotect", "mlock") for fac in (PROTECTED, GUARDED, COMPACT)) + \
        op(X_FROM_FD, u8(0), u8(COMPACT), size_zero(), u8(0), data(1)) + x_fd(0, PROTECTED, 5000)


def ops_seeds():
    s = {}
    secret_seeds(s)
    s["buffers"] = b"\x00" + b"".join([
        op(B_NEW, u8(0), size_small(32)),
        op(COPY, u8(0), u16(16), data(16)),
        op(FREEZE, u8(0)),
        op(COPY, u8(0), u16(4), data(4)),
        op(MELT, u8(0)),
        op(COPY_AT, u8(0), u16(8), u16(8), data(8, 3)),
        op(MOVE, u8(0), u16(3), data(3, 5)),
        op(MOVE_AT, u8(0), u16(27), u16(5), data(5, 9)),
        op(EQUAL, u8(0), u8(0)),
        op(EQUAL, u8(0), u8(1), u16(3)),
        op(EQUAL, u8(0), u8(2)),
        op(EQUAL, u8(0), u8(3), u16(32), data(32)),
        op(SCRAMBLE, u8(0)),
        op(WIPE, u8(0)),
        op(B_BYTES, u8(1), size_page(16), data(PAGE - 32, 2)),
        op(B_RANDOM, u8(2), size_big(9000)),
        op(MELT, u8(1)), op(FREEZE, u8(1)), op(FREEZE, u8(1)), op(MELT, u8(1)), op(MELT, u8(1)),
        op(DESTROY, u8(0)), op(DESTROY, u8(0)), op(FREEZE, u8(0)), op(WIPE, u8(0)),
        op(B_NEW, u8(3), size_zero()), op(B_NEW, u8(3), size_overflow()),
        op(B_BYTES, u8(3), size_overflow(), data(0)), op(B_RANDOM, u8(3), size_zero()),
    ])
    s["enclaves"] = b"\x01" + b"".join([
        op(E_NEW, u8(0), size_small(40), data(40)),
        op(E_RANDOM, u8(1), size_page(40)),
        op(E_OPEN, u8(0), u8(0)),
        op(E_OPEN, u8(1), u8(1)),
        op(B_NEW, u8(2), size_of_enclave(0)),
        op(E_OPEN_INTO, u8(0), u8(2)),
        op(E_OPEN_INTO, u8(0), u8(0)),
        op(E_OPEN_INTO, u8(1), u8(2)),
        op(B_NEW, u8(3), size_small(20)),
        op(COPY, u8(3), u16(20), data(20, 4)),
        op(SEAL, u8(3), u8(2)),
        op(SEAL, u8(3), u8(2)),
        op(E_OPEN, u8(2), u8(3)),
        op(E_DESTROY, u8(0)), op(E_DESTROY, u8(0)), op(E_OPEN, u8(0), u8(4)),
        op(E_NEW, u8(3), size_zero(), data(0)), op(E_NEW, u8(3), size_overflow(), data(0)),
        op(E_RANDOM, u8(3), size_overflow()),
    ])
    s["streams"] = b"\x02" + b"".join([
        op(S_NEW, u8(0)), op(S_NEW, u8(1)),
        op(S_WRITE, u8(0), u16(50), data(50)),
        op(S_WRITE, u8(0), u16((2 << 14) | 40), data(0)),
        op(S_READ, u8(0), u16(10)),
        op(S_NEXT, u8(0), u8(0)),
        op(S_READ, u8(0), u16((3 << 14) | 20000)),
        op(S_READ, u8(0), u16(5)),
        op(S_WRITE, u8(1), u16((3 << 14) | 30000), data(0)),
        op(S_WRITE, u8(1), u16(0), data(0)),
        op(S_FLUSH, u8(1), u8(1)),
        op(S_FLUSH, u8(1), u8(2)),
        op(S_NEXT, u8(1), u8(2)),
        op(S_DESTROY, u8(0)), op(S_DESTROY, u8(0)), op(S_WRITE, u8(0), u16(3), data(3)),
        op(S_READ, u8(0), u16(3)),
    ])
    s["exhausted"] = b"\x00" + b"".join([
        op(S_NEW, u8(0)),
        op(S_WRITE, u8(0), u16((2 << 14) | 60), data(0)),
        op(E_NEW, u8(0), size_small(8), data(8)),
        op(COFFER, u8(0)),
        op(E_NEW, u8(1), size_small(8), data(8)),
        op(E_RANDOM, u8(1), size_small(8)),
        op(E_OPEN, u8(0), u8(0)),
        op(SEAL, u8(0), u8(1)),
        op(S_WRITE, u8(0), u16(4), data(4)),
        op(S_READ, u8(0), u16(10)),
        op(S_READ, u8(0), u16(CHUNK - 10)),
        op(S_NEXT, u8(0), u8(1)),
        op(PURGE),
        op(E_NEW, u8(1), size_small(8), data(8)),
        op(COFFER, u8(1)),
        op(E_OPEN, u8(1), u8(2)),
    ])
    s["runtime"] = b"\x00" + b"".join([
        op(B_NEW, u8(0), size_small(8)),
        op(E_NEW, u8(0), size_small(8), data(8)),
        op(S_NEW, u8(0)),
        op(AUDIT),
        op(INIT, u8(0), u8(1)), op(INIT, u8(0), u8(0)), op(INIT, u8(1)), op(INIT, u8(2)),
        op(INIT, u8(3), u8(0)), op(INIT, u8(4), u8(0)),
        op(STATUS, u8(0)), op(STATUS, u8(5)), op(STATUS, u8(15)),
        op(STALE, u8(0)), op(STALE, u8(1)), op(STALE, u8(2)),
        op(STALE, u8(3)), op(STALE, u8(7)), op(STALE, u8(11)), op(STALE, u8(31)),
        op(NULLS, u8(0), u8(0), u8(0)),
        op(PURGE),
        op(STALE, u8(0)), op(FREEZE, u8(0)), op(E_OPEN, u8(0), u8(1)),
        op(B_NEW, u8(1), size_small(8)), op(PURGE), op(PURGE),
    ])
    pre = b"\x00" + op(B_NEW, u8(0), size_small(8)) + op(E_NEW, u8(0), size_small(8), data(8)) + \
        op(S_NEW, u8(0))
    for k in range(1, 7):
        s["fork-%d" % k] = pre + op(FORK, u8(k), u8(0))
    # 0: stale, then fresh objects, with a fault (mlock, getrandom, mprotect) in the rekey.
    for fn in range(3):
        for how in (0, 1, 2):
            s["fork-0-%d-%d" % (fn, how)] = pre + op(FORK, u8(0), u8(0), u8(fn), u8(how))
    for which in range(5):
        s["fork-7-%d" % which] = pre + op(FORK, u8(7), u8(which))
    for which in range(4):
        s["fork-8-%d" % which] = pre + op(FORK, u8(8), u8(which + 4 * which))
    s["memory"] = b"\x00" + b"".join([
        op(M_ALLOC, u8(0), u16(100)),
        op(M_ALLOC, u8(1), u16(PAGE * 2)),
        op(M_BYTES, u8(0), u8(0), u16(0), u16(64)),
        op(M_BYTES, u8(0), u8(1), u16(8), u16(16)),
        op(M_BYTES, u8(0), u8(2), u16(0), u16(64)),
        op(M_BYTES, u8(0), u8(2 | 8), u16(0), u16(64), u16(3)),
        op(M_LOCK, u8(0), u8(1)), op(M_LOCK, u8(0), u8(0)), op(M_LOCK, u8(0), u8(3)),
        op(M_PROTECT, u8(1), u8(1)), op(M_PROTECT, u8(1), u8(0)), op(M_PROTECT, u8(1), u8(3)),
        op(M_FREE, u8(1), u8(1)), op(M_FREE, u8(1), u8(2)), op(M_FREE, u8(1), u8(3)),
        op(M_FREE, u8(1), u8(0)),
        op(M_ALLOC, u8(2), u16(0x8001)), op(M_ALLOC, u8(2), u16(0x8002)),
        arm("getrandom", row=0), op(M_BYTES, u8(0), u8(0), u16(0), u16(64)),
        arm("munmap"), op(M_FREE, u8(0), u8(0)), op(F_CLEAR), op(M_FREE, u8(0), u8(0)),
    ])
    # One fault in each OS function, then operations that reach it.
    body = b"".join([
        op(B_NEW, u8(0), size_small(24)), op(FREEZE, u8(0)),
        op(E_NEW, u8(0), size_small(24), data(24)), op(E_OPEN, u8(0), u8(1)),
        op(S_NEW, u8(0)), op(S_WRITE, u8(0), u16(40), data(40)), op(S_READ, u8(0), u16(7)),
        op(S_NEXT, u8(0), u8(2)), op(SEAL, u8(0), u8(1)), op(DESTROY, u8(1)),
        op(B_RANDOM, u8(3), size_small(9)), op(E_DESTROY, u8(0)), op(S_DESTROY, u8(0)),
        op(AUDIT),
    ])
    for fn in FN:
        for nth in (1, 2, 3):
            s["fault-%s-%d" % (fn, nth)] = b"\x00" + arm(fn, nth=nth, row=nth - 1) + body
        s["fault-%s-sticky" % fn] = b"\x00" + arm(fn, sticky=True) + body
    s["destroy-munmap"] = b"\x00" + b"".join([
        op(B_BYTES, u8(0), size_small(16), data(16)),
        arm("munmap"), op(DESTROY, u8(0)), op(COPY, u8(0), u16(2), data(2)),
        op(MELT, u8(0)), op(COPY, u8(0), u16(2), data(2)), op(FREEZE, u8(0)),
        op(DESTROY, u8(0)),
    ])
    s["peek"] = b"\x00" + op(COFFER, u8(2)) + op(E_NEW, u8(0), size_small(8), data(8)) + op(COFFER, u8(2))
    s["resplit"] = b"\x01" + op(E_NEW, u8(0), size_small(8), data(8)) + \
        op(COFFER, u8(1)) + arm("getrandom") + op(E_OPEN, u8(0), u8(0)) + \
        op(E_OPEN, u8(0), u8(1)) + op(COFFER, u8(3)) + op(E_OPEN, u8(0), u8(2))
    return s


# ---- stream (fuzz/stream.c) ----

def stream_seeds():
    W, R, N, FL, FA, FC, D, NEW = 0, 4, 7, 9, 10, 11, 12, 13
    s = {}
    s["basic"] = b"\x00" + bytes([W]) + u16(40) + data(40) + bytes([R]) + u16(10) + \
        bytes([N, FL, R]) + u16(1)
    s["chunks"] = b"\x01" + bytes([W]) + u16((1 << 14) | 40) + data(9) + bytes([W]) + \
        u16((2 << 14) | 40000) + data(0) + \
        bytes([R]) + u16(5) + bytes([N, N, R]) + u16((1 << 14) | 80) + bytes([FL])
    s["two"] = b"\x02" + bytes([W]) + u16(20) + data(20) + bytes([0x10 | W]) + u16(30) + data(30, 2) + \
        bytes([0x10 | R]) + u16(30) + bytes([D, W]) + u16(3) + data(3) + bytes([NEW, W]) + u16(3) + \
        data(3) + bytes([R]) + u16(9)
    for fn in range(6):
        s["fault-%d" % fn] = b"\x00" + bytes([FA, fn, 0, W]) + u16((2 << 14) | 30000) + data(0) + \
            bytes([FA, fn, 1 << 3 | 1, R]) + u16(100) + bytes([N, FL, FC, W]) + u16(5) + data(5) + \
            bytes([R]) + u16(3)
    # Tampering (op 14: how, chunk k, chunk j, then a u16 byte index or a u8 chunk of the
    # other stream): a flipped byte, a swap, a replay, a transplant, each on 3 chunks.
    TA = 14
    fill = bytes([W]) + u16(48000) + data(0) + bytes([0x10 | W]) + u16(48000) + data(0)
    for name, args in (("flip", bytes([0x20, 1, 0]) + u16(777)), ("swap", bytes([1, 0, 1])),
                       ("replay", bytes([2, 2, 0])), ("transplant", bytes([3, 1, 0, 2]))):
        s["tamper-" + name] = b"\x00" + fill + bytes([R]) + u16(5) + bytes([TA]) + args + \
            bytes([FL, 0x10 | TA]) + args
    return s


# ---- enclave_tamper (fuzz/enclave_tamper.c) ----

def tamper_seeds():
    s = {}
    for aead in range(3):
        for how in range(4):
            acts = bytes([4, 0]) + u16(5) + bytes([4, 0]) + u16(5) + bytes([4, 1]) + u16(100) + \
                bytes([6, 0x11, 1]) + u16(100) + bytes([3]) + u16(10) + bytes([4, 0x83, 4, 6, 0x22])
            s["a%d-h%d" % (aead, how)] = bytes([aead, how]) + u16(63) + u8(len(acts)) + acts + pat(64, aead + how)
    acts = bytes([2]) + u16(7) + bytes([4, 2]) + u16(7) + bytes([5, 3]) + u16(5000) + bytes([4, 0x83, 4])
    s["big"] = bytes([1, 0]) + u16(6000) + u8(len(acts)) + acts + pat(200)
    acts = bytes([7, 2, 0, 4, 0x87, 7, 5, 0, 6, 0x21, 4])
    s["faults"] = bytes([0, 0]) + u16(30) + u8(len(acts)) + acts + pat(31)
    # Swaps with the twin (0x86): a flip made while swapped lands on the twin's ciphertext.
    for aead in range(3):
        acts = bytes([0x86, 4, 0]) + u16(8) + bytes([4, 0x86, 4, 0x86, 0]) + u16(8) + \
            bytes([0x86, 4, 6, 0x33])
        s["swap-a%d" % aead] = bytes([aead, 0]) + u16(99) + u8(len(acts)) + acts + pat(100, aead)
    acts = bytes([0x86, 4, 0x86, 0]) + u16(8) + bytes([0x86, 5])
    s["swap-left"] = bytes([0, 3]) + u16(40) + u8(len(acts)) + acts + pat(41)
    return s


# ---- fd_readers (fuzz/fd_readers.c) ----

def fd_seeds():
    s = {}

    def hdr(call, via, size=0, delim=0x0A, repeat=1, plans=(), start=None, secret=False):
        # A secret: mode's top bit, with mode % 3 (call) and mode / 3 % 3 (via) unchanged.
        h = u8(call + 3 * via + (135 if secret else 0)) + u16(size & 0xFFFF) + u8(size >> 16) + u8(delim) + \
            u8(repeat - 1) + u8(len(plans))
        if start is not None:
            h += u16(start)
        for fn, how in plans:
            h += u8(fn) + u8(how)
        return h

    text = b"first line\nsecond line\n\nfourth"
    for via, name in ((0, "pipe"), (1, "memfd")):
        st = 3 if via == 1 else None
        s["%s-exact" % name] = hdr(0, via, 11, start=st) + text
        s["%s-short" % name] = hdr(0, via, 500, start=st) + text
        s["%s-zero" % name] = hdr(0, via, 0, start=st) + text
        s["%s-until" % name] = hdr(1, via, start=st) + text
        s["%s-until-first" % name] = hdr(1, via, delim=ord("f"), start=0 if via else None) + text
        s["%s-until-none" % name] = hdr(1, via, delim=0, start=st) + text
        s["%s-all" % name] = hdr(2, via, start=st) + text
        s["%s-all-empty" % name] = hdr(2, via, start=st)
        s["%s-big" % name] = hdr(2, via, repeat=32, start=st) + pat(1900)
        s["%s-big-fd" % name] = hdr(0, via, 50000, repeat=32, start=st) + pat(1900)
        s["%s-until-big" % name] = hdr(1, via, delim=0xFF, repeat=8, start=st) + pat(1000) + b"\xff" + pat(30)
    s["memfd-all-exact-scratch"] = hdr(2, 1, start=0) + pat(PAGE - 32)
    s["pipe-all-exact-scratch"] = hdr(2, 0) + pat(PAGE - 32)
    for call in range(3):
        s["badfd-%d" % call] = hdr(call, 2, 10) + text
    # read EINTR (retried), read EIO, lseek ESPIPE at the first and the give-back seek,
    # and the memfd_secret path's functions.
    s["read-eintr"] = hdr(2, 0, plans=[(0, 3 << 3)]) + text
    s["read-fail"] = hdr(2, 1, start=0, plans=[(0, (1 << 3) | 1)]) + text
    s["lseek-first"] = hdr(1, 1, start=0, plans=[(2, 0)]) + text
    s["lseek-back"] = hdr(1, 1, start=0, plans=[(2, 1)]) + text
    for fn in range(3, 12):
        for how in (0, 1, 8 | 1, 2):
            s["fault-%d-%d" % (fn, how)] = hdr(2, 1, start=0, plans=[(fn, how)]) + text * 3
    # sm_secret_from_fd over each factory (the delimiter picks it; 4 is compact) under the
    # secretmem backing: exact, short, too large for compact, a bad descriptor, and the
    # faults of the memfd_secret paths (memfd_secret, ftruncate, mmap_fd, close).
    for fac in range(5):
        s["secret-%d" % fac] = hdr(0, 0, 11, delim=fac, secret=True) + text
        s["secret-%d-short" % fac] = hdr(0, 1, 500, delim=fac, start=3, secret=True) + text
        s["secret-%d-badfd" % fac] = hdr(0, 2, 10, delim=fac, secret=True) + text
        for fn in (4, 9, 10, 11, 6):
            s["secret-%d-fault-%d" % (fac, fn)] = hdr(0, 1, 20, delim=fac, start=0, secret=True,
                                                      plans=[(fn, 0)]) + text
    s["secret-4-large"] = hdr(0, 0, 3000, delim=4, repeat=32, secret=True) + pat(200)
    s["secret-0-large"] = hdr(0, 0, 3000, delim=0, repeat=32, secret=True) + pat(200)
    return s


# ---- secret_access (fuzz/secret_access.c) ----

def access_seeds():
    NEW, ENTER, TRY, LEAVE, READ, READ_AT, CLOSE, QUERY, HOOKS = range(9)

    def new(slot, n, random=False, seed=1):
        v = pick(0, lambda v: 1 + v % 64, n, 14) if n <= 64 else \
            pick(3, lambda v: 1 + v % (3 * PAGE), n, 14)
        return bytes([NEW, slot, 1 if random else 0]) + v + (b"" if random else data(n, seed))

    def read_at(slot, off, n):
        return bytes([READ_AT, slot]) + u16(off) + u16(n)

    def after_close(slot):
        return bytes([ENTER, slot, TRY, slot, CLOSE, slot, QUERY, slot]) + read_at(slot, 0, 1)

    s = {}
    four = new(0, 32) + new(1, PAGE + 8, random=True) + new(2, 100, seed=3) + new(3, 9000)
    s["nested-all"] = four + bytes([ENTER, 0, ENTER, 1, ENTER, 2, ENTER, 3, READ]) + \
        b"".join(read_at(i, 1, 20) + bytes([CLOSE, i, QUERY, i]) for i in range(4)) + \
        bytes([LEAVE, 0, LEAVE, 0, LEAVE, 3, LEAVE, 0]) + \
        b"".join(read_at(i, 0, 9000) + bytes([CLOSE, i]) + after_close(i) for i in range(4))
    s["interleaved"] = four + bytes([ENTER, 0, ENTER, 1, ENTER, 0, TRY, 1, READ, LEAVE, 0,
                                     CLOSE, 2, LEAVE, 0, READ, ENTER, 2, READ, LEAVE, 0,
                                     LEAVE, 0, CLOSE, 0, LEAVE, 0, CLOSE, 1, CLOSE, 0]) + \
        new(0, 7, random=True) + bytes([TRY, 0, READ, CLOSE, 3, LEAVE, 0]) + after_close(3)
    s["hooks"] = bytes([HOOKS, 7]) + new(3, 48) + bytes([CLOSE, 3]) + new(3, 48) + \
        bytes([ENTER, 3, ENTER, 3, LEAVE, 0, LEAVE, 0]) + read_at(3, 4, 4) + new(0, 16) + \
        bytes([ENTER, 0, TRY, 3, READ, LEAVE, 0, CLOSE, 3, LEAVE, 0]) + after_close(3) + \
        new(3, 5000, random=True) + bytes([HOOKS, 4, ENTER, 3, LEAVE, 3, CLOSE, 3])
    s["deep"] = new(1, 10) + new(2, 10) + bytes([ENTER, 1, ENTER, 2] * 7) + bytes([READ, CLOSE, 1, CLOSE, 2])
    # The compact slot (4): a class's first make and a later one, nested accesses that
    # join the open page, a refused size, and a second class beside another factory's.
    s["compact"] = new(4, 32) + bytes([ENTER, 4, ENTER, 4, TRY, 4, READ]) + read_at(4, 1, 20) + \
        bytes([CLOSE, 4, LEAVE, 0, LEAVE, 0, LEAVE, 0]) + read_at(4, 0, 32) + bytes([CLOSE, 4]) + \
        after_close(4) + new(4, 20, random=True) + bytes([ENTER, 4, READ, LEAVE, 0, CLOSE, 4]) + \
        new(4, 3000, random=True) + new(4, 2048) + new(0, 32) + \
        bytes([ENTER, 0, ENTER, 4, READ, LEAVE, 0, LEAVE, 0, CLOSE, 4, CLOSE, 0])
    for k in range(4):
        s["factory-%d" % k] = new(k, 64 if k % 2 else PAGE) + \
            bytes([ENTER, k, ENTER, k, READ, CLOSE, k, LEAVE, 0, LEAVE, 0]) + read_at(k, 10, 10) + \
            read_at(k, 64, 1) + read_at(k, 66, 1) + bytes([CLOSE, k]) + after_close(k) + \
            new(k, 200, random=True) + bytes([TRY, k, LEAVE, 3, CLOSE, k])
    return s


def write(harness, seeds):
    d = os.path.join(ROOT, harness)
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (harness, len(seeds)))


write("ops", ops_seeds())
write("stream", stream_seeds())
write("enclave_tamper", tamper_seeds())
write("fd_readers", fd_seeds())
write("secret_access", access_seeds())
