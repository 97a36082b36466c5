#!/bin/bash
# SPDX-License-Identifier: ISC
# make evidence: run every suite, proof, fuzzer and measurement once, keep what each
# printed and produced under RAW (evidence/README.md gives the layout), then render the
# bundle (evidence/render.py), pack it with its manifest, and check it in headless
# Chromium (evidence/browser.sh). A failing stage is recorded, not fatal: the bundle says
# what failed, and this script exits 1 at the end if anything did.
#
#   evidence/collect.sh BUILD_DIR OUT_DIR [make options...]
# EVIDENCE_STAGES="unit proofs ..." runs only those stages again (the render, pack and
# browser stages always run) and keeps what the other stages of the last run left in RAW,
# so that a stage whose inputs changed can be redone without the hour of the others.
set -u
B=$1 OUT=$2
shift 2
MAKEOPTS=("$@")
RAW=$B/evidence-raw
MAKE=${MAKE:-make}
start=$(date +%s)

all_stages=(meta unit kernel hostile conformance asan tsan memcheck helgrind ct proofs fuzz
            afl coverage bench)
stages=("${all_stages[@]}")
if [ -n "${EVIDENCE_STAGES:-}" ] && [ -f "$RAW/stages.tsv" ]; then
    read -r -a stages <<< "meta $EVIDENCE_STAGES"
    for s in "${stages[@]}"; do
        rm -rf "${RAW:?}/$s"
        awk -F '\t' -v s="$s" '$1 != s' "$RAW/stages.tsv" > "$RAW/stages.tsv.new"
        mv "$RAW/stages.tsv.new" "$RAW/stages.tsv"
    done
else
    rm -rf "$RAW" && mkdir -p "$RAW"
    : > "$RAW/stages.tsv"
fi
N=$((${#stages[@]} + 3))
n=0
# A failed stage of an earlier run that this one keeps still fails the bundle.
failed=0
grep -q "$(printf '\tfail\t')" "$RAW/stages.tsv" && failed=1

progress() {
    n=$((n + 1))
    printf 'evidence: stage %d of %d: %s (%ds elapsed)\n' "$n" "$N" "$1" $(($(date +%s) - start))
}

# run STAGE make-targets...: one make run, its log in RAW/STAGE/log, one row of stages.tsv.
run() {
    local stage=$1 t0 rc
    shift
    mkdir -p "$RAW/$stage"
    t0=$(date +%s)
    # -k: the targets of one stage are independent; one failing must not hide the others.
    nice "$MAKE" -k --no-print-directory "${MAKEOPTS[@]}" "$@" > "$RAW/$stage/log" 2>&1
    rc=$?
    record "$stage" "$rc" $(($(date +%s) - t0)) "make $*"
    return $rc
}

record() {
    local status=pass
    [ "$2" = 0 ] || { status=fail; failed=1; }
    printf '%s\t%s\t%s\t%s\n' "$1" "$status" "$3" "$4" >> "$RAW/stages.tsv"
    [ "$status" = pass ] || echo "evidence: $1 FAILED (log: $RAW/$1/log)"
}

ver() { "$@" 2>&1 | head -n 1; }

stage_meta() {
    {
        printf 'commit\t%s\n' "$(git rev-parse HEAD 2>/dev/null || echo unknown)"
        printf 'tree state\t%s\n' "$(git status --porcelain 2>/dev/null | wc -l) uncommitted paths"
        printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf 'securemem\t%s\n' "$(sed -n 's/^#define SM_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' include/securemem/version.h | paste -sd.)"
        printf 'kernel\t%s\n' "$(uname -srmv)"
        printf 'gcc\t%s\n' "$(ver gcc --version)"
        printf 'clang\t%s\n' "$(ver clang-14 --version)"
        printf 'Frama-C\t%s\n' "$(ver frama-c -version)"
        printf 'Why3\t%s\n' "$(ver why3 --version)"
        printf 'Z3\t%s\n' "$(ver z3 --version)"
        printf 'CVC4\t%s\n' "$(cvc4 --version 2>&1 | grep -m1 -i 'version')"
        printf 'Valgrind\t%s\n' "$(ver valgrind --version)"
        printf 'AFL++\t%s\n' "$(dpkg-query -W -f='${Version}' afl++ 2>/dev/null)"
        printf 'BearSSL\t%s\n' "$(dpkg-query -W -f='${Version}' libbearssl-dev 2>/dev/null)"
        printf 'libsodium\t%s\n' "$(dpkg-query -W -f='${Version}' libsodium-dev 2>/dev/null)"
        printf 'Criterion\t%s\n' "$(dpkg-query -W -f='${Version}' libcriterion-dev 2>/dev/null)"
        printf 'gcovr\t%s\n' "$(ver gcovr --version)"
        printf 'gnuplot\t%s\n' "$(ver gnuplot --version)"
        printf 'Chromium\t%s\n' "$(dpkg-query -W -f='${Version}' chromium 2>/dev/null)"
    } > "$RAW/meta.tsv"
    record meta 0 0 "tool versions"
}

stage_unit() {
    mkdir -p "$RAW/unit"
    run unit "$B/test/unit" || return
    # The run itself: Criterion's JUnit report, with the skip lines of its verbose log.
    local t0 rc
    t0=$(date +%s)
    nice "$B/test/unit" --jobs 2 --verbose --xml="$RAW/unit/criterion.xml" > "$RAW/unit/log" 2>&1
    rc=$?
    sed -i '$d' "$RAW/stages.tsv"
    record unit "$rc" $(($(date +%s) - t0)) "the unit suite (Criterion)"
}

stage_kernel()      { run kernel test-kernel; }
stage_hostile()     { run hostile test-hostile; }
stage_conformance() { run conformance check-install check-headers check-examples check-man check-abi check-cmake; }
stage_asan()        { run asan test-asan test-asan-gcc; }
stage_tsan()        { run tsan test-tsan test-tsan-gcc test-race; }
stage_memcheck()    { run memcheck test-memcheck test-valgrind; }
stage_helgrind()    { run helgrind test-helgrind test-drd; }
stage_ct()          { run ct ct; }
stage_bench() {
    run bench bench
    # The same rows as the log's table, as data (tests/bench/report.c).
    cp "$B/bench/results.json" "$RAW/bench/results.json" 2>/dev/null
}

stage_proofs() {
    run proofs proofs
    # One flat set of results, or one subfolder per machdep, under results/ or as
    # <machdep>/results/: kept as results/ and results/<machdep>/ (render.py reads both).
    local d
    mkdir -p "$RAW/proofs/results"
    cp -r "$B"/proofs/results/. "$RAW/proofs/results/" 2>/dev/null
    for d in "$B"/proofs/*/results/; do
        [ -d "$d" ] || continue
        mkdir -p "$RAW/proofs/results/$(basename "$(dirname "$d")")"
        cp "$d"*.json "$RAW/proofs/results/$(basename "$(dirname "$d")")/" 2>/dev/null
    done
    cp "$B/proofs/summary" "$RAW/proofs/summary" 2>/dev/null
    # mutate.sh and eva.sh print their tables; the log holds all three parts.
    sed -n '/^mutate:/p' "$RAW/proofs/log" > "$RAW/proofs/mutation.log"
    sed -n '/^eva:/p' "$RAW/proofs/log" > "$RAW/proofs/eva-summary.log"
    for f in "$B"/proofs/eva-*.log; do
        [ -f "$f" ] && cp "$f" "$RAW/proofs/"
    done
}

stage_fuzz() {
    run fuzz fuzz-check
    local d h
    for d in "$B"/fuzz/check/*/; do
        h=$(basename "$d")
        [ -f "$d/log" ] || continue
        cp "$d/log" "$RAW/fuzz/$h.log"
        # Files in the committed corpus and the run's new ones; the crash artifacts saved.
        echo $(( $(find "fuzz/corpus/$h" "$d/corpus" -type f 2>/dev/null | wc -l) )) > "$RAW/fuzz/$h.corpus"
        find "$d/artifacts" -type f 2>/dev/null | wc -l > "$RAW/fuzz/$h.crashes"
    done
    cp -r sanitizers "$RAW/sanitizers"
}

# AFL++, each harness for AFL_SECONDS. fuzz/tools/run-afl.sh fails a run on the counts in
# its fuzzer_stats (afl-fuzz exits 0 even when it saved crashes); the bundle shows them.
stage_afl() {
    rm -rf "$B/fuzz-afl/work" # no stats of an earlier run pass for this one's
    run afl fuzz-afl FUZZ_SECONDS="${AFL_SECONDS:-30}"
    local d h
    mkdir -p "$RAW/fuzz-afl"
    for d in "$B"/fuzz-afl/work/*/; do
        h=$(basename "$d")
        [ -f "$d/out/default/fuzzer_stats" ] || continue
        cp "$d/out/default/fuzzer_stats" "$RAW/fuzz-afl/$h.stats"
    done
}

stage_coverage() {
    run coverage evidence-coverage fuzz-coverage
    mkdir -p "$RAW/coverage"
    cp "$B/cov/report/unit.json" "$RAW/coverage/unit.json" 2>/dev/null
    cp -r "$B/cov/report/html" "$RAW/coverage/unit-html" 2>/dev/null
    cp "$B/fuzz-cov/coverage.txt" "$RAW/coverage/fuzz-report.txt" 2>/dev/null
    cp -r "$B/fuzz-cov/html" "$RAW/coverage/fuzz-html" 2>/dev/null
}

# The run is one function, called on the last line: bash then has parsed all of it before
# it starts, and an edit of this file during a long run cannot change what the run does
# (bash otherwise reads a script as it goes, and a run broke that way).
main() {
    for s in "${stages[@]}"; do
        progress "$s"
        "stage_$s"
    done
    # Sanitizer suppressions (with their reasons) belong in the bundle whatever ran.
    [ -d "$RAW/sanitizers" ] || cp -r sanitizers "$RAW/sanitizers"
    # The stages in their order, those redone by EVIDENCE_STAGES among those kept.
    for s in "${all_stages[@]}"; do
        awk -F '\t' -v s="$s" '$1 == s' "$RAW/stages.tsv"
    done > "$RAW/stages.tsv.new"
    mv "$RAW/stages.tsv.new" "$RAW/stages.tsv"

    progress render
    evidence/render.py "$RAW" "$OUT" . || exit 1
    progress "browser check"
    evidence/browser.sh "$OUT" || exit 1
    progress "links, manifest and tarball"
    evidence/pack.sh "$OUT" || exit 1
    echo "evidence: $OUT/index.html, $OUT.tar.gz ($(($(date +%s) - start))s)"
    [ "$failed" = 0 ] || { echo "evidence: some stages failed (see index.html)"; exit 1; }
}

main; exit
