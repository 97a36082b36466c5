#!/bin/bash
# SPDX-License-Identifier: ISC
# The platform table of make platforms: every OUT/*/rows line that this run wrote
# (target, result, detail), then the systems that nothing here can build.
#   tests/platforms/table.sh OUT
set -u
out=$1
printf '\n%-14s | %-50s | %s\n' "platform" "result here" "detail"
printf '%s\n' "---------------+----------------------------------------------------+-------"
printf '%-14s | %-50s | %s\n' linux-x86_64 "suite run (make test, test-posix)" "glibc, native"
for t in "$out"/*/rows; do
    [ -f "$t" ] || continue
    while IFS=$'\t' read -r name result detail; do
        printf '%-14s | %-50s | %s\n' "$name" "$result" "$detail"
    done < "$t"
done
printf '%-14s | %-50s | %s\n' solaris "written from the manual, not compiled here" \
    "src/os/solaris.c: no illumos headers on this machine"
