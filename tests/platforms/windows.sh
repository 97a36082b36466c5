#!/bin/bash
# SPDX-License-Identifier: ISC
# Windows x86_64 (spec/platforms.md): the library with src/os/windows.c and the fault
# shim, BearSSL built from Debian's source, and tests/platforms/windows.c, all with
# mingw-w64 (-static: Wine with WINEDEBUG=-all hides a missing DLL), then the suite under
# Wine 8, headless, in a prefix under OUT. One row to OUT/rows.
#   tests/platforms/windows.sh OUT BEARSSL_SRC
set -u
out=$1 bsrc=$2
cc=x86_64-w64-mingw32-gcc
mkdir -p "$out/obj"
# BEARSSL_SRC is the unpacked source, or the folder apt-get source unpacked it in.
[ -d "$bsrc/inc" ] || bsrc=$(ls -d "$bsrc"/bearssl-*/ 2>/dev/null | head -n 1)
bsrc=${bsrc%/}
: > "$out/rows"
: > "$out/build.log"
row() { printf 'windows-x86_64\t%s\t%s\n' "$1" "$2" >> "$out/rows"; echo "platforms-windows: $1 ($2)"; }
if ! command -v $cc >/dev/null || ! command -v wine >/dev/null || [ ! -d "$bsrc" ]; then
    row FAIL "no mingw-w64, wine or BearSSL source: ci/install-deps platforms"
    exit 1
fi
if ! bssl=$(tests/platforms/bearssl-cross.sh "$bsrc" $cc x86_64-w64-mingw32-ar); then
    row FAIL "BearSSL: $bssl"
    exit 1
fi
WARN="-std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
-Wpointer-arith -Wvla -Wformat=2 -Wundef"
# The fault-injecting flavour, as make test's: the suite reaches the shim's refusals
# (WER's among them) through src/os/fault.c.
objs=""
for f in $(ls src/*/*.c | grep -v "^src/os/") src/os/windows.c src/os/fault.c; do
    o=$out/obj/$(echo "$f" | tr / _).o
    if ! $cc -O2 $WARN -DSM_FAULT_INJECTION -Iinclude -Isrc -isystem "$bsrc/inc" -c "$f" \
            -o "$o" 2>> "$out/build.log"; then
        row FAIL "compile $f: $out/build.log"
        exit 1
    fi
    objs="$objs $o"
done
# shellcheck disable=SC2086
if ! $cc -O1 $WARN -DSM_FAULT_INJECTION -Iinclude -Isrc -Itests/factory -static tests/platforms/windows.c \
        tests/factory/example_factory.c $objs "$bssl/build/libbearssl.a" \
        -lbcrypt -ladvapi32 -o "$out/suite.exe" 2>> "$out/build.log"; then
    row FAIL "link: $out/build.log"
    exit 1
fi
# Native locks (src/os/lock.h): no POSIX-thread layer in the program, as a DLL or linked in.
if x86_64-w64-mingw32-objdump -p "$out/suite.exe" | grep -qi 'DLL Name: .*pthread' ||
   x86_64-w64-mingw32-nm "$out/suite.exe" | grep -qi pthread; then
    row FAIL "links a POSIX-thread layer (winpthreads): objdump -p, nm $out/suite.exe"
    exit 1
fi
export WINEPREFIX=$(cd "$out" && pwd)/wine WINEDEBUG=-all
# Its summary line too: a crash in a thread can end the process with status 0 under Wine.
if timeout 300 wine "$out/suite.exe" > "$out/suite.log" 2>&1 &&
   summary=$(grep -E '^windows: [0-9]+ passed, 0 failed' "$out/suite.log"); then
    row "suite run" "Wine $(wine --version 2>/dev/null | sed 's/^wine-//'): ${summary#windows: }"
    rc=0
else
    row FAIL "$out/suite.log"
    rc=1
fi
wineserver -k 2>/dev/null || true
exit $rc
