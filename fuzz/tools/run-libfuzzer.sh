#!/bin/sh
# SPDX-License-Identifier: ISC
# Run one libFuzzer harness for a while and print one summary line; fail on any crash.
#
#   fuzz/tools/run-libfuzzer.sh BINARY NAME SECONDS WORKROOT [fresh]
#
# New inputs go to WORKROOT/NAME/corpus (the committed fuzz/corpus/NAME is only read),
# crashes to WORKROOT/NAME/artifacts, the full log to WORKROOT/NAME/log. "fresh" starts
# from the committed corpus alone (make check). Options come from fuzz/NAME.options
# ([libfuzzer] section, key = value) and the dictionary from fuzz/NAME.dict.
set -eu
bin=$1 name=$2 secs=$3 root=$4 mode=${5:-}
work=$root/$name
[ "$mode" = fresh ] && rm -rf "$work"
rm -rf "$work/artifacts"
mkdir -p "$work/corpus" "$work/artifacts"

set -- -max_total_time="$secs" -print_final_stats=1 -timeout=20 \
       -artifact_prefix="$work/artifacts/"
[ -f "fuzz/$name.dict" ] && set -- "$@" -dict="fuzz/$name.dict"
if [ -f "fuzz/$name.options" ]; then
    for opt in $(sed -n '/^\[libfuzzer\]/,/^\[/{/=/s/[[:space:]]*=[[:space:]]*/=/p}' "fuzz/$name.options"); do
        set -- "$@" "-$opt"
    done
fi

rc=0
start=$(date +%s)
"$bin" "$@" "$work/corpus" "fuzz/corpus/$name" >"$work/log" 2>&1 || rc=$?
took=$(( $(date +%s) - start ))

stat() { sed -n "s/^stat::$1:[[:space:]]*//p" "$work/log" | tail -n 1; }
last=$(grep -E '^#[0-9]+.*cov: ' "$work/log" | tail -n 1 || true)
cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
crashes=$(find "$work/artifacts" -type f | wc -l)
printf 'fuzz: %-15s %5s s  %10s execs  %7s exec/s  cov %5s  ft %6s  corpus %5s  crashes %s\n' \
    "$name" "$took" "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes"
if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
    tail -n 60 "$work/log"
    echo "fuzz: $name FAILED (exit $rc, $crashes artifacts in $work/artifacts; log $work/log)"
    exit 1
fi
