#!/bin/sh
# SPDX-License-Identifier: ISC
# make check-examples: build every example against the library installed in PREFIX,
# with pkg-config alone, as a user would, then run the flows and check their results.
# README.md's C example must be examples/quickstart.c, so that it cannot rot either.
#
#   examples/check.sh PREFIX CC
set -eu

prefix=$1
cc=$2
here=$(cd "$(dirname "$0")" && pwd)
bin=$prefix/examples
mkdir -p "$bin"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
export LD_LIBRARY_PATH="$prefix/lib"
flags="-std=c11 -Wall -Wextra -Werror -O2"

# README.md's first C block, against the file it shows.
awk '/^```c$/ { on = 1; next } /^```$/ { if (on) exit } on' "$here/../README.md" > "$bin/readme.c"
if ! tail -n +2 "$here/quickstart.c" | diff -u - "$bin/readme.c"; then
    echo "check-examples: README.md's C example differs from examples/quickstart.c (above)"
    exit 1
fi

for x in quickstart tokens purge_on_signal; do
    # shellcheck disable=SC2046,SC2086
    $cc $flags "$here/$x.c" -o "$bin/$x" $(pkg-config --cflags --libs securemem)
done
# shellcheck disable=SC2046,SC2086
$cc $flags "$here/vault.c" -o "$bin/vault" $(pkg-config --cflags --libs securemem libsodium) -lbearssl

"$bin/quickstart"
"$bin/tokens"

status=0
"$bin/purge_on_signal" 2> "$bin/purge.err" || status=$?
if [ "$status" != 143 ] || ! grep -q "every secret wiped" "$bin/purge.err"; then
    cat "$bin/purge.err"
    echo "check-examples: purge_on_signal exited $status, not by SIGTERM (143) after its hook"
    exit 1
fi
echo "purge_on_signal: died of SIGTERM after the purge, as it should"

# A 3 MiB file (and a 64 KiB one, exactly one chunk): sealed, opened, compared;
# a wrong passphrase and a damaged file must be refused, leaving no output.
head -c 3145733 /dev/urandom > "$bin/plain"
head -c 65536 /dev/urandom > "$bin/plain64k"
for f in plain plain64k; do
    echo "correct horse battery staple" | "$bin/vault" seal "$bin/$f" "$bin/$f.smv"
    echo "correct horse battery staple" | "$bin/vault" open "$bin/$f.smv" "$bin/$f.back"
    cmp "$bin/$f" "$bin/$f.back"
done
if echo "wrong horse" | "$bin/vault" open "$bin/plain.smv" "$bin/wrong" 2> "$bin/wrong.err"; then
    echo "check-examples: vault opened a file with the wrong passphrase"; exit 1
fi
[ ! -e "$bin/wrong" ] || { echo "check-examples: vault left output behind"; exit 1; }
byte=$(od -An -tu1 -j100000 -N1 "$bin/plain.smv" | tr -d ' ')
# shellcheck disable=SC2059
printf "\\$(printf %03o $((255 - byte)))" | dd of="$bin/plain.smv" bs=1 seek=100000 conv=notrunc 2> /dev/null
if echo "correct horse battery staple" | "$bin/vault" open "$bin/plain.smv" "$bin/damaged" 2> /dev/null; then
    echo "check-examples: vault opened a damaged file"; exit 1
fi
echo "vault: 3 MiB sealed and opened; wrong passphrase and damaged file refused"
echo "check-examples: every example built from the installed library and ran"
