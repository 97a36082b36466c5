#!/bin/sh
# SPDX-License-Identifier: ISC
# Show that the harnesses catch deliberate bugs in buffer and secret transitions: for
# each mutant below, copy the tree, apply one sed edit to the library, build the fuzzers
# with fuzz/oss-fuzz/build.sh (libFuzzer, ASan), and run the mutant's harness from its
# committed corpus for up to SECONDS. Every mutant must be caught (a divergence abort or
# a sanitizer report).
#
#   fuzz/tools/mutants.sh CC WORKDIR SECONDS
set -eu
cc=$1 root=$2 secs=$3
cflags="-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address -fsanitize=fuzzer-no-link"

# file|sed edit|harness|what the bug is
mutants='src/core/state.c|s/        \*next = SMI_BUF_MUTABLE;/        *next = s;/|ops|melt of a FROZEN buffer leaves it FROZEN
src/core/state.c|s/return s == SMI_BUF_MUTABLE ? SM_OK : SM_E_STATE;/return SM_OK;/|ops|writes are allowed on a FROZEN buffer
src/objects/buffer.c|s/return set_protection(b, SMI_BOP_FREEZE, SM_PROT_READ);/return set_protection(b, SMI_BOP_FREEZE, SM_PROT_READWRITE);/|ops|freeze leaves the pages writable
src/objects/buffer.c|s/    \*equal = (smi_equal(smi_region_data(\&buf->r), data, common) \& (n == buf->r.size)) != 0;/    *equal = smi_equal(smi_region_data(\&buf->r), data, common) != 0;/|ops|equal ignores a length difference
src/core/state.c|s/    case SMI_BOP_SEAL:/    case SMI_BOP_SEAL: if (s == SMI_BUF_FROZEN) return SM_E_STATE;/|ops|seal refuses a FROZEN buffer
src/objects/secret.c|s/    st = c.be->shut(c.f, \&c.store);/    st = SM_OK;/|secret_access|the last exit leaves the window readable
src/core/secret_state.c|s/        return v->readers > 1 ? SMI_SACT_DEPART : SMI_SACT_SHUT;/        return SMI_SACT_SHUT;/|secret_access|a nested exit shuts the window under the outer access
src/core/secret_state.c|s/        return v->closing ? SMI_SACT_REFUSE : SMI_SACT_ANSWER;/        return SMI_SACT_ANSWER;/|secret_access|size and is_closed answer once close has begun
src/objects/secret.c|s/    if (k == 0) {/    if (k == 0 \&\& n == 0) {/|ops|read_at at the end of the secret opens the window'

rm -rf "$root"
mkdir -p "$root"
caught=0 total=0
echo "$mutants" | while IFS='|' read -r file edit harness what; do
    total=$((total + 1))
    dir=$root/m$total
    mkdir -p "$dir/src" "$dir/out"
    git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$dir/src"
    mv "$dir/src" "$dir/securemem" && mkdir "$dir/src" && mv "$dir/securemem" "$dir/src/"
    sed -i "$edit" "$dir/src/securemem/$file"
    if cmp -s "$file" "$dir/src/securemem/$file"; then
        echo "mutants: #$total ($what): the edit matched nothing in $file"; exit 1
    fi
    env -i PATH="$PATH" CC="$cc" CFLAGS="$cflags" LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
        SRC="$dir/src" OUT="$dir/out" bash fuzz/oss-fuzz/build.sh >"$dir/build.log" 2>&1 ||
        { tail "$dir/build.log"; echo "mutants: #$total: build failed"; exit 1; }
    mkdir -p "$dir/corpus"
    start=$(date +%s)
    if "$dir/out/$harness" -max_total_time="$secs" -seed=1 -artifact_prefix="$dir/" \
            "$dir/corpus" "fuzz/corpus/$harness" >"$dir/run.log" 2>&1; then
        echo "mutants: #$total NOT caught by $harness in $secs s: $what"
        exit 1
    fi
    took=$(( $(date +%s) - start ))
    why=$(grep -m1 -E 'diverged from the model|ERROR: AddressSanitizer|deadly signal' "$dir/run.log" | cut -c1-110)
    echo "mutants: #$total caught by $harness after ${took} s: $what -- $why"
done
echo "mutants: every mutant was caught"
