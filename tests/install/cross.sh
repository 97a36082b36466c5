#!/bin/bash
# SPDX-License-Identifier: ISC
# A user's cross install (README.md "Cross install"): make install TARGET=<system> into a
# stage under OUT, then a program built against the stage with that system's compiler and
# pkg-config alone, as a user would. tests/conformance/headers.c takes the address of
# every exported function (spec/abi.txt), so the link fails if the staged library lacks
# one. It runs where this machine can: natively for linux-musl, under Wine for
# windows-x64; for macOS it is linked only (a Mach-O executable, checked with file).
# One row per target to OUT/rows. Called by the platform suites (GNUmakefile).
#   tests/install/cross.sh OUT ZIG TARGET...
set -u
out=$1 zig=$2
shift 2
mkdir -p "$out"
: > "$out/rows"
fail=0
row() { printf 'install-%s\t%s\t%s\n' "$1" "$2" "$3" >> "$out/rows"; echo "cross-install: $1: $2 ($3)"; }
sed 's/.*/    (sm_any_fn)\&&,/' spec/abi.txt > "$out/abi_refs.h"
for t in "$@"; do
    stage=$(cd "$out" && pwd)/$t
    rm -rf "$stage"
    if ! ${MAKE:-make} --no-print-directory install TARGET="$t" PREFIX="$stage" \
            > "$out/$t.log" 2>&1; then
        row "$t" FAIL "make install TARGET=$t: $out/$t.log"
        fail=1
        continue
    fi
    case $t in
    windows-x64) cc=x86_64-w64-mingw32-gcc exe=$stage/headers.exe ;;
    linux-musl) cc=musl-gcc exe=$stage/headers ;;
    macos-x86_64) cc="$zig cc -target x86_64-macos" exe=$stage/headers ;;
    macos-arm64) cc="$zig cc -target aarch64-macos" exe=$stage/headers ;;
    esac
    # shellcheck disable=SC2046,SC2086
    if ! $cc -std=c99 -Wall -Wextra -Werror -I"$out" tests/conformance/headers.c -o "$exe" \
            $(PKG_CONFIG_LIBDIR=$stage/lib/pkgconfig pkg-config --cflags --libs securemem) \
            $([ "$t" = linux-musl ] && echo -static) >> "$out/$t.log" 2>&1; then
        row "$t" FAIL "build against the stage: $out/$t.log"
        fail=1
        continue
    fi
    case $t in
    windows-x64)
        WINEPREFIX=${WINEPREFIX:-$stage/wine} WINEDEBUG=-all timeout 120 wine "$exe" \
            >> "$out/$t.log" 2>&1
        rc=$?
        wineserver -k 2>/dev/null || true
        how="installed, built from pkg-config, run under Wine" ;;
    linux-musl)
        "$exe" >> "$out/$t.log" 2>&1
        rc=$?
        how="installed, built from pkg-config (static), run natively" ;;
    *)
        file "$exe" | grep -q Mach-O
        rc=$?
        how="installed, linked from pkg-config as Mach-O, not run" ;;
    esac
    if [ $rc = 0 ]; then
        row "$t" "$how" "$stage"
    else
        row "$t" FAIL "$out/$t.log"
        fail=1
    fi
done
exit $fail
