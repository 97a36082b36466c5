#!/bin/bash
# SPDX-License-Identifier: ISC
# BearSSL's static library for a cross target, from Debian's source package (fetched by
# ci/install-deps platforms): a conf/Cross.mk on top of its Unix.mk, as BearSSL's own
# build documents for cross compilers (spec/platforms.md). Built once per compiler: the
# output folder is named by a hash of what decides the bytes (the source's folder, the
# compiler's and archiver's commands and the compiler's version, the make arguments), under
# BEARSSL_CACHE (default build/bearssl), so that the platform suites and ci/cross-install,
# which build for the same compilers, share one build, and neither needs the other to
# have run. A build goes to a folder of its own and is renamed into place when done, so
# that two runs at once never see half of one.
#   tests/platforms/bearssl-cross.sh BEARSSL_SRC "CC" "AR"
# prints DIR, where DIR/build/libbearssl.a is; on failure, the build's log instead.
set -eu
src=$1 cc=$2 ar=$3
root=${BEARSSL_CACHE:-build/bearssl}
conf="include conf/Unix.mk
CC = $cc
AR = $ar
LD = $cc
LDDLL = $cc"
args="CONF=Cross DLL=no TOOLS=no TESTS=no lib"
# shellcheck disable=SC2086
key=$(printf '%s\n%s\n%s\n%s\n' "$(cd "$src" && pwd -P)" "$conf" "$args" \
      "$($cc --version 2>/dev/null | head -n 1)" | sha256sum | cut -c1-16)
dir=$root/$key
if [ -f "$dir/build/libbearssl.a" ]; then
    echo "$dir"
    exit 0
fi
tmp=$dir.tmp.$$
rm -rf "$tmp"
mkdir -p "$tmp"
cp -r "$src"/. "$tmp"
printf '%s\n' "$conf" > "$tmp/conf/Cross.mk"
# shellcheck disable=SC2086
if ! make -C "$tmp" $args > "$tmp/make.log" 2>&1; then
    rm -rf "$dir.failed"
    mv "$tmp" "$dir.failed"
    echo "$dir.failed/make.log"
    exit 1
fi
# Another run may have finished the same build first: its bytes are these.
mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
echo "$dir"
