#!/bin/sh
# SPDX-License-Identifier: ISC
# Run one harness under AFL++ (afl-clang-fast -fsanitize=fuzzer build) for a while,
# print one summary line from fuzzer_stats, and fail if it saved any crash or hang:
# afl-fuzz itself exits 0 even then.
#
#   fuzz/tools/run-afl.sh BINARY NAME SECONDS WORKROOT
set -eu
bin=$1 name=$2 secs=$3 root=$4
work=$root/$name
rm -rf "$work"
mkdir -p "$work"

set -- -i "fuzz/corpus/$name" -o "$work/out" -V "$secs" -t 10000
[ -f "fuzz/$name.dict" ] && set -- "$@" -x "fuzz/$name.dict"
rc=0
start=$(date +%s)
AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 \
AFL_SKIP_CRASHES=0 AFL_IGNORE_SEED_PROBLEMS=0 \
    afl-fuzz "$@" -- "$bin" >"$work/log" 2>&1 || rc=$?
took=$(( $(date +%s) - start ))

stats=$work/out/default/fuzzer_stats
if [ ! -f "$stats" ]; then
    tail -n 40 "$work/log"
    echo "fuzz-afl: $name: afl-fuzz wrote no fuzzer_stats (exit $rc; log $work/log)"
    exit 1
fi
get() { sed -n "s/^$1[[:space:]]*:[[:space:]]*//p" "$stats" | tail -n 1; }
crashes=$(get saved_crashes)
[ -n "$crashes" ] || crashes=$(get unique_crashes)
hangs=$(get saved_hangs)
[ -n "$hangs" ] || hangs=$(get unique_hangs)
printf 'fuzz-afl: %-15s %5s s  %10s execs  %7s exec/s  bitmap %7s  corpus %5s  crashes %s  hangs %s\n' \
    "$name" "$took" "$(get execs_done)" "$(get execs_per_sec)" "$(get bitmap_cvg)" \
    "$(get corpus_count)" "${crashes:-?}" "${hangs:-?}"
if [ "$rc" != 0 ] || [ "${crashes:-1}" != 0 ] || [ "${hangs:-1}" != 0 ]; then
    tail -n 20 "$work/log"
    ls "$work/out/default/crashes" "$work/out/default/hangs" 2>/dev/null || true
    echo "fuzz-afl: $name FAILED (exit $rc; crashes in $work/out/default/crashes)"
    exit 1
fi
