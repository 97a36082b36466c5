#!/bin/bash
# SPDX-License-Identifier: ISC
# Compile checks of the BSD shims (spec/platforms.md): the POSIX base and each system's
# own file, with clang and every warning an error, against that system's own headers in
# SYSROOTS (/work/shared/sysroots on the project's machines, see its README.md). A user's
# clone or CI has no such folder: then each row says "skipped" and the script succeeds.
# Nothing is linked or run: those headers come with no libraries.
#
#   tests/platforms/bsd.sh OUT SYSROOTS [CLANG]
# One row per system goes to OUT/rows (tab-separated); exit 1 only if a present sysroot fails.
set -u
out=$1 sysroots=$2 clang=${3:-clang-14}
mkdir -p "$out"
: > "$out/rows"
fail=0
WARN="-std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
-Wpointer-arith -Wvla -Wformat=2 -Wundef"

for row in freebsd:x86_64-unknown-freebsd14 netbsd:x86_64-unknown-netbsd10 \
           openbsd:x86_64-unknown-openbsd7.6; do
    os=${row%%:*} target=${row#*:}
    root=$sysroots/$os
    if [ ! -d "$root/usr/include" ]; then
        printf '%s\tskipped\tno sysroot at %s\n' "$os" "$root" >> "$out/rows"
        echo "platforms-bsd: $os: skipped, no sysroot at $root"
        continue
    fi
    # The copy stores the system's header symlinks (stdint.h -> sys/stdint.h) as small
    # files holding the target's name: an overlay of real links, searched first.
    ov=$out/$os/overlay
    rm -rf "$ov"
    mkdir -p "$ov"
    while IFS= read -r f; do
        c=$(cat "$f")
        rel=${f#"$root/usr/include/"}
        if [[ $c != *[[:space:]]* && -f $(dirname "$f")/$c ]]; then
            mkdir -p "$ov/$(dirname "$rel")"
            ln -sfn "$(cd "$(dirname "$f")" && pwd)/$c" "$ov/$rel"
        fi
    done < <(find "$root/usr/include" -type f -size -64c)
    ok=1
    for f in src/os/posix.c "src/os/$os.c"; do
        if ! $clang --target="$target" --sysroot="$root" -isystem "$ov" $WARN -Iinclude -Isrc \
                -c "$f" -o "$out/$os/$(basename "$f" .c).o" 2>> "$out/$os/build.log"; then
            ok=0
        fi
    done
    if [ $ok = 1 ]; then
        printf '%s\tcompiled against the system headers, not run\tposix.c and %s.c, %s, -Werror\n' "$os" "$os" "$target" >> "$out/rows"
        echo "platforms-bsd: $os: compiled against its own headers ($target)"
    else
        printf '%s\tFAIL\t%s\n' "$os" "$out/$os/build.log" >> "$out/rows"
        echo "platforms-bsd: $os: FAIL, see $out/$os/build.log"
        fail=1
    fi
done
exit $fail
