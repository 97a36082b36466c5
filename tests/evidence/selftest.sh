#!/bin/sh
# SPDX-License-Identifier: ISC
# make check-evidence: the bundle generator on a tiny synthetic input (tests/evidence/raw),
# in seconds, without running a suite. The bundle must hold what each section promises
# (the numbers of the input, the skip's reason, a JUnit file per suite, the plots), its
# links must resolve and its manifest verify; and the link check and the manifest must
# catch a broken link and a changed file, or passing them would prove nothing.
#   tests/evidence/selftest.sh WORKDIR
set -eu
work=$1
out=$work/evidence
rm -rf "$work" && mkdir -p "$work"
fail() { echo "check-evidence: $*"; exit 1; }

evidence/render.py tests/evidence/raw "$out" . > "$work/render.log" 2>&1 || { cat "$work/render.log"; fail "render.py failed"; }
evidence/pack.sh "$out" > "$work/pack.log" 2>&1 || { cat "$work/pack.log"; fail "pack.sh failed"; }

has() { grep -q -- "$2" "$out/$1" || fail "$1 lacks: $2"; }
# Both layouts of proofs/results: the flat set (the default machdep) and a machdep's folder.
has index.html '16 / 16</b> goals proved'
has index.html '<td>x86_32</td><td>9 / 9</td><td>1</td>'
has index.html '<td>x86_64 (default)</td><td>7 / 7</td><td>1</td>'
# AFL++'s counts come from its fuzzer_stats.
has index.html '<td>ops</td><td>30</td><td>31337</td><td>1044.57</td><td>61.25%</td><td>1812</td><td>0</td><td>0</td>'
has index.html 'no AES-NI and PCLMULQDQ on this CPU'
has index.html '<td>layout: guard page dropped</td><td>killed</td><td>10 / 12</td>'
has index.html 'Eva: eva: mem.c + core: 0 alarms'
has index.html 'href="raw/proofs/eva-memory.log"'
has index.html '<img src="plots/coverage-per-file.png"'
has index.html '<img src="plots/bench-ratios.png"'
has index.html '2 of 3 goals met'
has index.html '<img src="plots/fuzz-coverage.png"'
has index.html 'SM-REQ-136'
# The summary of the synthetic input is known exactly; the traceability table follows the
# tree, so only its columns are fixed, and one row that must be there.
cmp "$out/summary.tsv" tests/evidence/expected/summary.tsv || fail "summary.tsv differs from tests/evidence/expected/"
head -n 1 "$out/traceability.tsv" | cmp - tests/evidence/expected/traceability.tsv ||
    fail "traceability.tsv's columns differ from tests/evidence/expected/"
has traceability.tsv "$(printf 'SM-REQ-136\t')"
for s in meta unit asan ct proofs fuzz afl bench; do
    python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$out/junit/$s.xml" ||
        fail "junit/$s.xml is not XML"
done
for p in coverage-per-file bench-ratios fuzz-coverage; do
    [ "$(head -c 4 "$out/plots/$p.png" | od -An -c | tr -d ' ')" = '211PNG' ] || fail "plots/$p.png is not a PNG"
done
tar -tzf "$out.tar.gz" | grep -qx 'evidence/index.html' || fail "the tarball lacks evidence/index.html"
(cd "$work" && sha256sum -c --quiet evidence.tar.gz.sha256) || fail "the tarball's checksum does not verify"

# The checks must fail on a broken bundle.
cp -r "$out" "$work/broken"
echo '<a href="raw/nothing-here.log">x</a>' >> "$work/broken/index.html"
if evidence/check-bundle.py "$work/broken" > "$work/broken.log" 2>&1; then
    fail "check-bundle.py passed a link to a missing file"
fi
grep -q 'nothing-here.log: no such file' "$work/broken.log" || fail "the broken link was not named"
cp "$out/index.html" "$work/broken/index.html"
echo changed >> "$work/broken/summary.tsv"
if (cd "$work/broken" && sha256sum -c --quiet SHA256SUMS) > /dev/null 2>&1; then
    fail "the manifest did not catch a changed file"
fi
echo "check-evidence: bundle of the synthetic input complete; a broken link and a changed file are caught"
