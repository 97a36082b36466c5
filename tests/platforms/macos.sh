#!/bin/bash
# SPDX-License-Identifier: ISC
# macOS x86_64 and arm64 (spec/platforms.md): with Zig 0.11 (ci/install-deps platforms
# puts it under ZIG_HOME), build BearSSL from Debian's source, the library on the POSIX
# base and src/os/macos.c, and link the conformance program and the portable suite as
# Mach-O executables. For Mach-O an undefined symbol is a link error, so the link is a
# real check; nothing runs (no macOS here). One row per target to OUT/rows.
#   tests/platforms/macos.sh OUT ZIG BEARSSL_SRC
set -u
out=$1 zig=$2 bsrc=$3
mkdir -p "$out"
# BEARSSL_SRC is the unpacked source, or the folder apt-get source unpacked it in.
[ -d "$bsrc/inc" ] || bsrc=$(ls -d "$bsrc"/bearssl-*/ 2>/dev/null | head -n 1)
bsrc=${bsrc%/}
: > "$out/rows"
export ZIG_GLOBAL_CACHE_DIR=${ZIG_GLOBAL_CACHE_DIR:-$out/zig-cache}
if [ ! -x "$zig" ] || [ ! -d "$bsrc" ]; then
    for a in x86_64 arm64; do
        printf 'macos-%s\tFAIL\tno Zig at %s or no BearSSL source at %s: ci/install-deps platforms\n' \
            "$a" "$zig" "$bsrc" >> "$out/rows"
    done
    exit 1
fi
# The harness asks whether it runs under Valgrind: valgrind.h alone, header-only.
mkdir -p "$out/inc"
ln -sfn /usr/include/valgrind "$out/inc/valgrind"
WARN="-std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
-Wpointer-arith -Wvla -Wformat=2 -Wundef"
fail=0
for row in x86_64:x86_64-macos arm64:aarch64-macos; do
    a=${row%%:*} target=${row#*:}
    d=$out/$a
    mkdir -p "$d/obj"
    if ! bssl=$(tests/platforms/bearssl-cross.sh "$bsrc" "$zig cc -target $target" "$zig ar"); then
        printf 'macos-%s\tFAIL\tBearSSL: %s\n' "$a" "$bssl" >> "$out/rows"
        fail=1
        continue
    fi
    ok=1 objs=""
    for f in $(ls src/*/*.c | grep -v "^src/os/") src/os/posix.c src/os/macos.c; do
        o=$d/obj/$(echo "$f" | tr / _).o
        $zig cc -target "$target" -O2 $WARN -Iinclude -Isrc -isystem "$bsrc/inc" \
            -fvisibility=hidden -c "$f" -o "$o" 2>> "$d/build.log" || ok=0
        objs="$objs $o"
    done
    if [ $ok = 1 ]; then
        rm -f "$d/libsecuremem.a"
        # shellcheck disable=SC2086
        $zig ar rcs "$d/libsecuremem.a" $objs &&
        $zig cc -target "$target" -O1 -Wall -Wextra -Werror -Iinclude tests/conformance/mem_api.c \
            "$d/libsecuremem.a" "$bssl/build/libbearssl.a" -o "$d/mem_api" 2>> "$d/build.log" &&
        $zig cc -target "$target" -O1 $WARN -D_DARWIN_C_SOURCE -Iinclude -Itests/factory \
            -isystem "$out/inc" tests/platforms/portable.c tests/common/harness.c \
            tests/factory/example_factory.c "$d/libsecuremem.a" "$bssl/build/libbearssl.a" \
            -o "$d/portable" 2>> "$d/build.log" || ok=0
    fi
    if [ $ok = 1 ] && file "$d/mem_api" "$d/portable" | grep -c Mach-O | grep -qx 2; then
        printf 'macos-%s\tbuilt and linked, not run\tlibrary, mem_api, portable: %s\n' "$a" \
            "$(file -b "$d/mem_api" | cut -d, -f1)" >> "$out/rows"
    else
        printf 'macos-%s\tFAIL\t%s\n' "$a" "$d/build.log" >> "$out/rows"
        fail=1
    fi
done
sed 's/^/platforms-macos: /' "$out/rows"
exit $fail
