#!/bin/sh
# SPDX-License-Identifier: ISC
# make proofs: Frama-C WP over the core as the library compiles it (proofs/README.md).
#
# 1. Tool versions as pinned in proofs/versions.
# 2. No admit, assume or axiom in any annotation outside proofs/trusted.c.
# 3. The contracts of smi_buf_step and smi_sec_decide are the ones generated from
#    spec/buffer-states.tsv and spec/secret-states.tsv.
# 4. WP with -wp-rte, Z3 and CVC4, once per machine model of proofs/lib.sh (x86_64,
#    then x86_32): the lemmas of proofs/core.acsl, then each core function, as listed by
#    Frama-C, in its own run (a progress line each). A run fails on any unproved goal
#    through the report-classify gate, and this script also checks WP's own count.
# 5. Results per machine model and function in $out/results/MACHDEP.FUNCTION.json,
#    compared with the committed proofs/results/: a lost, new or unproved goal fails, on
#    either word size. `make proofs-accept` copies a complete run's results into
#    proofs/results/ for review and commit.
#
#   proofs/wp.sh            everything above
#   proofs/wp.sh F ...      only the runs of these functions ("lemmas" for the lemmas);
#                           no results comparison (nor with PROOFS_MACHDEPS set)
#
# Knobs: WP_TIMEOUT (seconds per prover call, default 20), WP_PAR (default 4),
# WP_SMOKE_TIMEOUT (seconds per smoke test, default 5: proofs/README.md says why).
set -eu
cd "$(dirname "$0")/.."
. proofs/lib.sh
rm -f "$out/summary"

timeout=${WP_TIMEOUT:-20}
par=${WP_PAR:-4}
smoke_timeout=${WP_SMOKE_TIMEOUT:-5}
res=$out/results
logs=$out/logs
cache=$out/wp-cache

# ---- 1. versions -------------------------------------------------------------------
check_versions

# ---- 2. nothing assumed outside the trusted file ------------------------------------
# Only the text of annotations (/*@ ... */ and //@ ...) is searched, minus the //
# comments inside them, so prose such as "the compiler must assume" does not count.
# `assumes`, the behavior clause, is a different word and is allowed.
acsl_text() {
    awk '
    function emit(s) { sub(/\/\/.*/, "", s); if (s ~ /[^ \t]/) print FILENAME ":" FNR ": " s }
    {
        line = $0
        while (line != "") {
            if (in_acsl) {
                e = index(line, "*/")
                if (e == 0) { emit(line); line = "" }
                else { emit(substr(line, 1, e - 1)); line = substr(line, e + 2); in_acsl = 0 }
            } else {
                s = index(line, "/*@"); c = index(line, "//@")
                if (c && (!s || c < s)) { emit(substr(line, c + 3)); line = "" }
                else if (s) { line = substr(line, s + 3); in_acsl = 1 }
                else line = ""
            }
        }
    }' "$@"
}
acsl_files=$(find src include proofs -type f \( -name '*.c' -o -name '*.h' -o -name '*.acsl' \) \
             ! -path "$trusted" | LC_ALL=C sort)
# shellcheck disable=SC2086
if acsl_text $acsl_files | grep -E '(^|[^A-Za-z0-9_\\])(admit|assume|axiom|axiomatic)([^A-Za-z0-9_]|$)'; then
    echo "proofs: an annotation above admits, assumes or axiomatises; only $trusted may" >&2
    exit 1
fi
echo "proofs: no admit, assume or axiom outside $trusted ($(echo "$acsl_files" | wc -l) files searched)"

# ---- 3. the table drives the state machine's contract -------------------------------
proofs/state-contract.sh --check src/core/state.c
proofs/state-contract.sh --check src/core/secret_state.c spec/secret-states.tsv

# ---- 4. WP -------------------------------------------------------------------------
core_functions > "$out/functions"
only=$*

# WP's cache of prover answers, by the digest of the whole task a prover is given (the
# goal with every hypothesis and axiom it carries). Most goals of the x86_32 run are the
# very tasks of the x86_64 run, word for word, and are answered from it instead of
# calling the provers again (smoke tests included: a task that no prover proved within
# its timeout is not tried again with the same timeout). A task that differs in one
# character is a miss and goes to the provers. It lives for this run only, so nothing
# proved by another tree or another tool version is ever taken.
rm -rf "$cache"
mkdir -p "$res" "$logs" "$cache"
rm -f "$res/.complete"
[ -n "$only" ] || rm -f "$res"/*.json "$res"/*.stable
failed=
total=0
proved=0

# run_wp MACHDEP NAME FILE MODEL CHECKS WP-SELECTION...
run_wp() {
    md=$1 name=$2 file=$3 model=$4 checks=$5
    shift 5
    log=$logs/$md.$name.log
    t0=$(now_ms)
    # shellcheck disable=SC2086
    if frama-c -machdep "$md" -cpp-extra-args="$cpp_core" $checks \
        -wp -wp-rte -wp-model "$model" -wp-prover z3,cvc4 \
        -wp-timeout "$timeout" -wp-par "$par" -wp-warn-key pedantic-assigns=error \
        "$@" $core_files "$trusted" \
        -then -report-classify -report-unclassified-unknown ERROR > "$log" 2>&1; then
        gate=0
    else
        gate=1
    fi
    secs=$(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
    # Proved goals: a / b, WP's own count
    counts=$(sed -n 's/^\[wp\] Proved goals: *\([0-9]*\) \/ \([0-9]*\)$/\1 \2/p' "$log")
    [ -n "$counts" ] || counts="0 0"
    set -- $counts
    a=$1 b=$2
    # one line per goal: name, status, prover
    awk -v fn="$name" '
    function short(g) {
        sub(/^typed_(cast_)?/, "", g)
        if (fn != "lemmas" && index(g, fn "_") == 1) g = substr(g, length(fn) + 2)
        # smoke tests carry statement ids, which move whenever another file changes
        sub(/_s[0-9]+$/, "_s#", g)
        return g
    }
    /^\[wp\] \[[^]]*\] (Goal|Smoke-test) / {
        # [wp] [Z3 4.8.12] Goal typed_f_ensures : Valid (...)
        match($0, /^\[wp\] \[[^]]*\]/)
        split(substr($0, 7, RLENGTH - 7), w, " "); p = tolower(w[1])
        split(substr($0, RLENGTH + 2), w, " "); g = w[2]
        ok = ($0 ~ / : Valid/ || p == "passed")
        if (p == "passed") p = "smoke"
        print short(g) "\t" (ok ? "proved" : "UNPROVED") "\t" (ok ? p : "none")
    }' "$log" | LC_ALL=C sort > "$log.goals"
    n=$(wc -l < "$log.goals")
    status=ok
    if [ "$gate" != 0 ] || [ "$b" = 0 ] || [ "$a" != "$b" ] || [ "$n" != "$b" ] ||
       grep -q 'UNPROVED' "$log.goals"; then
        status=FAILED
    fi
    # A run-time error that RTE finds certain (a constant expression that overflows) is
    # an assertion that is false, not a goal: WP then proves the rest vacuously. The
    # smoke tests would see the dead code after it; this says what it is.
    if grep -q 'guaranteed RTE' "$log"; then
        grep -A3 'guaranteed RTE' "$log" | sed 's/^/    /' >&2
        status=FAILED
    fi
    # a core function with a contract that promises nothing is not proven: every one
    # needs an ensures (the assigns clause is enforced by pedantic-assigns=error)
    if [ "$name" != lemmas ] && ! grep -q 'ensures' "$log.goals"; then
        echo "proofs: $name has no ensures clause" >&2
        status=FAILED
    fi
    [ "$status" = ok ] || failed="$failed $md.$name"
    total=$((total + b))
    proved=$((proved + a))
    by=$(awk -F'\t' '$2 == "proved" { c[$3]++ }
         END { printf "qed %d, z3 %d, cvc4 %d, script %d, smoke %d",
               c["qed"], c["z3"], c["cvc4"], c["script"], c["smoke"] }' "$log.goals")
    printf 'proofs: %-6s %-17s %4s / %-4s goals  %-6s (%s)  %6s s\n' "$md" "$name" "$a" "$b" "$status" "$by" "$secs"
    if [ "$status" != ok ]; then
        grep -E '^\[wp\] \[(Failed|Unknown|Timeout)\]|Error|error' "$log" | head -20 | sed 's/^/    /' >&2
        echo "    (full log: $log)" >&2
    fi
    # the results file: stable fields first; by_prover, which depends on which prover
    # answers first, on one line so that the comparison can leave it out
    {
        printf '{\n'
        printf '  "function": "%s",\n' "$name"
        printf '  "file": "%s",\n' "$file"
        printf '  "machdep": "%s",\n' "$md"
        printf '  "model": "%s",\n' "$model"
        printf '  "rte_options": "-wp-rte %s",\n' "$checks"
        printf '  "goals": %s,\n' "$b"
        printf '  "proved": %s,\n' "$a"
        awk -F'\t' '$2 == "proved" { c[$3]++ }
            END { printf "  \"by_prover\": { \"qed\": %d, \"z3\": %d, \"cvc4\": %d, \"script\": %d, \"smoke\": %d },\n",
                  c["qed"], c["z3"], c["cvc4"], c["script"], c["smoke"] }' "$log.goals"
        printf '  "goal_list": [\n'
        awk -F'\t' '{ printf "%s    \"%s%s\"", (NR > 1 ? ",\n" : ""), $1, ($2 == "proved" ? "" : " UNPROVED") }
                    END { if (NR) printf "\n" }' "$log.goals"
        printf '  ]\n}\n'
    } > "$res/$md.$name.json"
}

selected() { [ -z "$only" ] || case " $only " in *" $1 "*) true ;; *) false ;; esac; }

echo "proofs: WP, Z3 + CVC4, timeout ${timeout} s, smoke tests ${smoke_timeout} s, ${par} parallel prover calls, machdeps: $machdeps"
# The lemmas need WP's bit-level tactics (-wp-auto) where the SMT solvers alone stop.
# Two of them need WP's bit-level tactics where the SMT solvers alone stop: their proof
# scripts (a case split, then WP's Bit-Range rule, each leaf closed by Qed or Z3) are in
# proofs/session/script/. `make proofs-scripts` finds them again with WP's auto-search
# (PROOFS_NEW_SCRIPTS=1); make proofs replays them.
for md in $machdeps; do
    if selected lemmas; then
        if [ "${PROOFS_NEW_SCRIPTS:-0}" = 1 ]; then
            scripts="-wp-prover tip -wp-auto wp:split,wp:bitrange,wp:bitwised,wp:bitshift,wp:bittestrange,wp:range"
        else
            scripts="-wp-prover script"
        fi
        # shellcheck disable=SC2086
        run_wp "$md" lemmas proofs/core.acsl Typed "" -wp-prop=@lemma \
            -wp-session proofs/session -wp-cache none $scripts
    fi
    while read -r file fn; do
        selected "$fn" || continue
        # Smoke tests: a contradictory requires or assumes, or dead code, fails the run
        # instead of making every goal after it vacuously true. Each one passes only when
        # the provers give up, so each costs its whole timeout; proofs/README.md says why
        # the default is long enough.
        run_wp "$md" "$fn" "$file" "$(model_of "$fn")" "$(checks_of "$fn")" -wp-fct "$fn" \
            -wp-smoke-tests -wp-smoke-timeout "$smoke_timeout" \
            -wp-cache update -wp-cache-dir "$cache"
    done < "$out/functions"
done

summary="Proved goals: $proved / $total"
if [ -n "$failed" ]; then
    echo "$summary"
    echo "proofs: FAILED:$failed (logs in $logs/)" >&2
    exit 1
fi
if [ -n "$only" ] || [ "$machdeps" != "$all_machdeps" ]; then
    echo "$summary"
    exit 0
fi

# ---- 5. compare with the committed results ------------------------------------------
stable() { grep -v '"by_prover"' "$1"; }
diffs=
for f in "$res"/*.json; do
    name=$(basename "$f")
    if [ ! -f "proofs/results/$name" ]; then
        echo "proofs: no committed proofs/results/$name (a new function?)" >&2
        diffs=1
    fi
done
for f in "$res"/*.json; do
    name=$(basename "$f")
    [ -f "proofs/results/$name" ] || continue
    stable "$f" > "$f.stable"
    if ! stable "proofs/results/$name" | diff -u --label "proofs/results/$name" --label "$f" - "$f.stable" >&2; then
        diffs=1
    fi
done
for f in proofs/results/*.json; do
    [ -e "$f" ] || continue
    if [ ! -f "$res/$(basename "$f")" ]; then
        echo "proofs: $f has no function any more" >&2
        diffs=1
    fi
done
touch "$res/.complete"
if [ -n "$diffs" ]; then
    echo "$summary"
    echo "proofs: FAILED: the goals differ from the committed proofs/results/ (above). If" >&2
    echo "        that is intended, run 'make proofs-accept' and commit proofs/results/." >&2
    exit 1
fi
echo "proofs: every goal proved, the same goals as proofs/results/ ($(ls proofs/results/*.json | wc -l) files)"
# make proofs ends with this line, after the mutation test and Eva
echo "$summary" | tee "$out/summary"
