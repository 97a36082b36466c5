#!/bin/bash
# SPDX-License-Identifier: ISC
# BearSSL's static library for a cross target, from Debian's source package (fetched by
# ci/install-deps platforms): a conf/Cross.mk on top of its Unix.mk, as BearSSL's own
# build documents for cross compilers (spec/platforms.md). Skipped when already built.
#   tests/platforms/bearssl-cross.sh BEARSSL_SRC OUT "CC" "AR"  ->  OUT/build/libbearssl.a
set -eu
src=$1 out=$2 cc=$3 ar=$4
[ -f "$out/build/libbearssl.a" ] && exit 0
rm -rf "$out"
mkdir -p "$out"
cp -r "$src"/. "$out"
cat > "$out/conf/Cross.mk" <<EOC
include conf/Unix.mk
CC = $cc
AR = $ar
LD = $cc
LDDLL = $cc
EOC
make -C "$out" CONF=Cross DLL=no TOOLS=no TESTS=no lib > "$out/make.log" 2>&1
