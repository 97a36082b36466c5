#!/bin/sh
# SPDX-License-Identifier: ISC
# make check-man: every page is mdoc that `mandoc -T lint` passes without a warning, every
# exported symbol (spec/abi.txt) is a .Nm of some section-3 page (so that `man sm_x` finds
# it once make install has made its link), and every .Nm names an exported symbol, so a
# removed function does not leave a page behind.
#   man/check.sh [top]
set -eu
top=${1:-.}
cd "$top"
fail=0

mandoc -T lint -W warning man/*.3 man/*.7 || { echo "check-man: mandoc -T lint reports the above"; fail=1; }

names=$(mktemp)
trap 'rm -f "$names"' EXIT
sed -n 's/^\.Nm \([A-Za-z0-9_]*\).*/\1/p' man/*.3 | sort > "$names"
missing=$(sort spec/abi.txt | comm -23 - "$names")
if [ -n "$missing" ]; then
    echo "$missing" | sed 's/^/check-man: no page names /'
    fail=1
fi
extra=$(sort spec/abi.txt | comm -13 - "$names")
if [ -n "$extra" ]; then
    echo "$extra" | sed 's/^/check-man: a page names what spec\/abi.txt does not export: /'
    fail=1
fi
dups=$(uniq -d "$names")
if [ -n "$dups" ]; then
    echo "$dups" | sed 's/^/check-man: named by two pages: /'
    fail=1
fi
[ "$fail" = 0 ] || exit 1
echo "check-man: $(ls man/*.3 man/*.7 | wc -l) pages lint clean, all $(wc -l < spec/abi.txt) exported symbols named"
