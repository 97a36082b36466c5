#!/bin/bash -eu
# SPDX-License-Identifier: ISC
# OSS-Fuzz and ClusterFuzzLite build of securemem's fuzzers (fuzz/README.md).
#
# Uses only $CC, $CFLAGS, $LIB_FUZZING_ENGINE, $SRC and $OUT. Builds the fuzz flavour
# of the library (the fault shim and the deterministic random source, as make fuzz
# does) and one fuzzer per harness, fuzz/<name>.c -> $OUT/<name>, each shipped with
# <name>_seed_corpus.zip (fuzz/corpus/<name>), <name>.dict and <name>.options.
# make check-oss-fuzz runs this script in a simulated environment.

proj="$SRC/securemem"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

flags="-std=c11 -D_GNU_SOURCE -I$proj/include -I$proj/src -I$proj/fuzz/support"
flags="$flags -I$proj/tests/factory -I$work"
flags="$flags -DSM_FAULT_INJECTION -DSM_FUZZ_DETERMINISTIC"
sh "$proj/fuzz/gen-tables.sh" "$proj/spec" > "$work/fuzz_tables.h"

# BearSSL: compiled here with the same flags when the image has its source (the
# Dockerfiles clone it), so that it is instrumented too; else the system's static one.
if [ -d "$SRC/BearSSL/src" ]; then
    mkdir -p "$work/bearssl"
    find "$SRC/BearSSL/src" -name '*.c' | while read -r f; do
        o="$work/bearssl/$(echo "${f#"$SRC/BearSSL/src/"}" | tr / _).o"
        $CC $CFLAGS -I"$SRC/BearSSL/inc" -I"$SRC/BearSSL/src" -c "$f" -o "$o"
    done
    ar rcs "$work/libbearssl.a" "$work"/bearssl/*.o
    bearssl="$work/libbearssl.a"
    flags="$flags -I$SRC/BearSSL/inc"
else
    bearssl="-l:libbearssl.a"
fi

# The harnesses also run secrets over the example custom factory (tests/factory).
objs=""
# One folder per layer under src/ (spec/layers.tsv); of src/os/, the POSIX base, the
# Linux shim and the two shims of the fuzz flavour.
for f in "$proj"/src/*/*.c "$proj"/fuzz/support/*.c "$proj"/tests/factory/example_factory.c; do
    case "$f" in
    "$proj"/src/os/posix.c | "$proj"/src/os/linux.c | "$proj"/src/os/fault.c | "$proj"/src/os/fuzz_random.c) ;;
    "$proj"/src/os/*) continue ;;
    esac
    o="$work/$(echo "${f#"$proj/"}" | tr / _).o"
    $CC $CFLAGS $flags -c "$f" -o "$o"
    objs="$objs $o"
done

# Every fuzz/*.c but the replay driver is one harness, with its parts in fuzz/<name>/ if
# it has any (ops: a driver and one part per object kind).
for src in "$proj"/fuzz/*.c; do
    name=$(basename "$src" .c)
    [ "$name" = replay ] && continue
    $CC $CFLAGS $flags -c "$src" -o "$work/$name.o"
    parts=""
    for f in "$proj/fuzz/$name"/*.c; do
        [ -e "$f" ] || continue
        o="$work/${name}_$(basename "$f" .c).part.o"
        $CC $CFLAGS $flags -c "$f" -o "$o"
        parts="$parts $o"
    done
    $CC $CFLAGS "$work/$name.o" $parts $objs $LIB_FUZZING_ENGINE $bearssl -lpthread -o "$OUT/$name"
    rm -f "$OUT/${name}_seed_corpus.zip"
    (cd "$proj/fuzz/corpus/$name" && zip -q -X "$OUT/${name}_seed_corpus.zip" ./*)
    cp "$proj/fuzz/$name.dict" "$OUT/$name.dict"
    cp "$proj/fuzz/$name.options" "$OUT/$name.options"
done
