#!/bin/sh
# SPDX-License-Identifier: ISC
# Run fuzz/oss-fuzz/build.sh as OSS-Fuzz would, with nothing in its environment but
# CC, CFLAGS, LIB_FUZZING_ENGINE, SRC, OUT and PATH (so that a use of anything else
# fails here), then check that each harness produced a fuzzer, a seed corpus zip, a
# dictionary and an options file, and run each fuzzer over its unzipped seed corpus.
#
#   fuzz/tools/test-oss-fuzz.sh CC WORKDIR
set -eu
cc=$1 root=$2
rm -rf "$root"
mkdir -p "$root/src" "$root/out" "$root/seeds"
ln -s "$(pwd)" "$root/src/securemem"
cflags="-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address \
-fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link"

if ! env -i PATH="$PATH" CC="$cc" CFLAGS="$cflags" LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
        SRC="$root/src" OUT="$root/out" bash fuzz/oss-fuzz/build.sh >"$root/build.log" 2>&1; then
    tail -n 30 "$root/build.log"
    echo "check-oss-fuzz: build.sh failed (log: $root/build.log)"
    exit 1
fi

n=0
for src in fuzz/*.c; do
    name=$(basename "$src" .c)
    [ "$name" = replay ] && continue
    for f in "$name" "${name}_seed_corpus.zip" "$name.dict" "$name.options"; do
        [ -s "$root/out/$f" ] || { echo "check-oss-fuzz: build.sh made no $f"; exit 1; }
    done
    mkdir -p "$root/seeds/$name"
    unzip -q "$root/out/${name}_seed_corpus.zip" -d "$root/seeds/$name"
    want=$(find "fuzz/corpus/$name" -type f | wc -l)
    got=$(find "$root/seeds/$name" -type f | wc -l)
    [ "$want" = "$got" ] || { echo "check-oss-fuzz: $name: $got seeds zipped, want $want"; exit 1; }
    # -runs=0: execute the seed corpus once, no mutation.
    if ! (cd "$root/out" && "./$name" -runs=0 -dict="$name.dict" "$root/seeds/$name") \
            >"$root/$name.log" 2>&1 || ! grep -q 'INITED' "$root/$name.log"; then
        tail -n 40 "$root/$name.log"
        echo "check-oss-fuzz: $name failed on its seed corpus"
        exit 1
    fi
    n=$((n + 1))
    echo "check-oss-fuzz: $name: built; its $got seeds run clean"
done
[ "$n" -gt 0 ] || { echo "check-oss-fuzz: no harness"; exit 1; }
echo "check-oss-fuzz: $n fuzzers from build.sh in a simulated OSS-Fuzz environment"
