#!/bin/bash
# SPDX-License-Identifier: ISC
# Linux on other CPUs and libcs (spec/platforms.md): build the library, the portable
# suite (tests/platforms/portable.c) and the conformance program (tests/conformance/
# mem_api.c) statically for each target, then run both: musl natively, aarch64 at 4, 16
# and 64 KiB pages, s390x (big-endian) and i686 under qemu-user. One row per target goes
# to OUT/rows (tab-separated): target, result, detail. Exit 1 if any target failed.
#
#   tests/platforms/linux.sh OUT [target ...]
#   targets: musl-x86_64 aarch64-4k aarch64-16k aarch64-64k s390x i686 (default: all)
set -u
out=$1
shift
[ $# -gt 0 ] || set -- musl-x86_64 aarch64-4k aarch64-16k aarch64-64k s390x i686
mkdir -p "$out"
: > "$out/rows"

# BearSSL's headers are the same on every architecture; valgrind.h is header-only (the
# harness asks whether it runs under Valgrind). A folder of just those, never the
# host's whole /usr/include, for compilers whose own search path lacks them.
inc=$out/inc
mkdir -p "$inc"
ln -sfn /usr/include/bearssl.h "$inc/bearssl.h"
ln -sfn /usr/include/bearssl "$inc/bearssl"
ln -sfn /usr/include/valgrind "$inc/valgrind"

WARN="-std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
-Wpointer-arith -Wvla -Wformat=2 -Wundef"
LIB_SRC="$(ls src/*/*.c | grep -v "^src/os/") src/os/posix.c src/os/linux.c"
fail=0

row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$out/rows"; echo "platforms-linux: $1: $2 ($3)"; }

build_and_run() { # target cc bearssl-archive run-prefix extra-sources...
    local t=$1 cc=$2 lib=$3 run=$4
    shift 4
    local d=$out/$t objs="" f o
    mkdir -p "$d/obj"
    if ! command -v "$cc" >/dev/null || [ ! -f "$lib" ]; then
        row "$t" FAIL "no $cc or $lib: ci/install-deps platforms"
        fail=1
        return
    fi
    for f in $LIB_SRC; do
        o=$d/obj/$(echo "$f" | tr / _).o
        if ! $cc -O2 $WARN -D_GNU_SOURCE -Iinclude -Isrc -isystem "$inc" -fvisibility=hidden \
                 -fstack-protector-strong -c "$f" -o "$o" 2>> "$d/build.log"; then
            row "$t" FAIL "compile $f: $d/build.log"
            fail=1
            return
        fi
        objs="$objs $o"
    done
    if ! $cc -O1 -g $WARN -D_GNU_SOURCE -Iinclude -Itests/factory -isystem "$inc" -static \
            tests/platforms/portable.c tests/common/harness.c tests/factory/example_factory.c \
            "$@" $objs "$lib" -lpthread -o "$d/portable" 2>> "$d/build.log" ||
       ! $cc -O1 -Wall -Wextra -Werror -Iinclude -isystem "$inc" -static tests/conformance/mem_api.c \
            "$@" $objs "$lib" -lpthread -o "$d/mem_api" 2>> "$d/build.log"; then
        row "$t" FAIL "link: $d/build.log"
        fail=1
        return
    fi
    # The emulator applies no madvise advice: the tests skip what they cannot see.
    if [ -n "$run" ]; then export SM_TEST_EMULATOR=qemu-user; else unset SM_TEST_EMULATOR; fi
    # shellcheck disable=SC2086
    if $run "$d/mem_api" > "$d/mem_api.log" 2>&1 && $run "$d/portable" > "$d/portable.log" 2>&1; then
        row "$t" "suite run" "mem_api and $(tail -n 1 "$d/portable.log" | sed 's/^portable: //')"
    else
        row "$t" FAIL "$d/mem_api.log, $d/portable.log"
        fail=1
    fi
}

for t in "$@"; do
    case $t in
    musl-x86_64)
        build_and_run "$t" musl-gcc /usr/lib/x86_64-linux-gnu/libbearssl.a "" \
            tests/platforms/musl_fortify.c ;;
    aarch64-4k|aarch64-16k|aarch64-64k)
        p=${t#aarch64-}
        p=$(( ${p%k} * 1024 ))
        build_and_run "$t" aarch64-linux-gnu-gcc /usr/lib/aarch64-linux-gnu/libbearssl.a \
            "qemu-aarch64-static -p $p" ;;
    s390x)
        build_and_run "$t" s390x-linux-gnu-gcc /usr/lib/s390x-linux-gnu/libbearssl.a \
            qemu-s390x-static ;;
    i686)
        build_and_run "$t" i686-linux-gnu-gcc /usr/lib/i386-linux-gnu/libbearssl.a \
            qemu-i386-static ;;
    *) echo "platforms-linux: unknown target $t" >&2; exit 2 ;;
    esac
done
exit $fail
