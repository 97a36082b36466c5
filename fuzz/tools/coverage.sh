#!/bin/sh
# SPDX-License-Identifier: ISC
# Replay every committed corpus through the coverage flavour of its harness and report
# the line and branch coverage of src/ (src/os/, the OS shim, excluded) with llvm-cov.
# Fails when line coverage is below MIN percent.
#
#   fuzz/tools/coverage.sh BUILD_DIR MIN HARNESS...
set -eu
dir=$1 min=$2
shift 2
prof=$dir/profiles
rm -rf "$prof"
mkdir -p "$prof"
for h in "$@"; do
    LLVM_PROFILE_FILE="$prof/$h-%p.profraw" "$dir/$h" -q "fuzz/corpus/$h"
done
llvm-profdata-14 merge -sparse "$prof"/*.profraw -o "$dir/fuzz.profdata"

first=""
objects=""
for h in "$@"; do
    if [ -z "$first" ]; then first=$dir/$h; else objects="$objects -object $dir/$h"; fi
done
files=$(ls src/*/*.c | grep -v '^src/os/')
# shellcheck disable=SC2086
llvm-cov-14 report "$first" $objects -instr-profile="$dir/fuzz.profdata" $files \
    > "$dir/coverage.txt"
# shellcheck disable=SC2086
llvm-cov-14 show "$first" $objects -instr-profile="$dir/fuzz.profdata" -format=html \
    -show-branches=count -output-dir="$dir/html" $files
cat "$dir/coverage.txt"
awk -v min="$min" -v dir="$dir" '$1 == "TOTAL" {
    lines = $10; branches = $13; sub("%", "", lines); sub("%", "", branches)
    printf "fuzz-coverage: src/ without src/os/: lines %s%% (%d of %d), branches %s%% (%d of %d)\n",
        lines, $8 - $9, $8, branches, $11 - $12, $11
    printf "fuzz-coverage: per line: %s/html/index.html\n", dir
    if (lines + 0 < min + 0) { printf "fuzz-coverage: below the %s%% gate\n", min; exit 1 }
    found = 1
} END { if (!found) exit 1 }' "$dir/coverage.txt"
