#!/bin/sh
# SPDX-License-Identifier: ISC
# make proofs-mutation: show that the proofs can fail. proofs/mutants.py derives the
# mutants systematically from the body of every core function that Frama-C lists
# (comparisons flipped or moved by one, constants plus one, operators swapped, early
# returns removed); each one is a temporary copy of one core file with one change. WP
# runs on it exactly as make proofs runs on the real file, for the mutated function only,
# and must report an unproved goal. A run that stops for another reason (a parse error,
# a missing tool) is no kill. One more mutant changes spec/buffer-states.tsv: the check
# of the contract against the table, or the regenerated contract, must reject it.
#
# Prints one line per mutant (the goal that killed it), the survivors, then
# "Mutants killed: K / N". A survivor fails the run unless proofs/mutants-equivalent.tsv
# lists it with the reason it is equivalent to the original (same observable result for
# every input the contract allows); a listed mutant that is killed, or that is no longer
# generated, fails too, so that the list stays exact.
#
# A control run first proves an unmutated copy of each function through the same set-up,
# so that a kill is the mutation's doing and not the set-up's.
#
#   proofs/mutate.sh          every mutant
#   proofs/mutate.sh F ...    only the mutants of these functions (no table mutant, no
#                             check of the totals)
#
# Knobs: MUTATE_TIMEOUT (seconds per prover call, default 3), MUTATE_JOBS (mutants at a
# time, default 2, each with one prover call at a time), MUTATE_SAMPLE (default 1: every
# mutant; N runs the 1st, (N+1)th, ... mutant of each function in the generated order,
# so every function keeps at least one. make check runs one in 3; make proofs, make
# proofs-mutation and make evidence run them all.)
set -eu
cd "$(dirname "$0")/.."
. proofs/lib.sh

# Mutants fail on purpose, and each failing goal costs its timeout: keep it short. The
# goals that stay true are the ones make proofs proves in well under a second.
timeout=${MUTATE_TIMEOUT:-3}
jobs=${MUTATE_JOBS:-2}
sample=${MUTATE_SAMPLE:-1}
# The mutants run on the 64-bit model only: the mutation test measures whether the
# contracts pin the code down, which the word size does not change; make proofs proves
# the real code under both.
md=x86_64
equiv=proofs/mutants-equivalent.tsv

# A goal that no prover proved, as WP prints it: [wp] [Failed] Goal typed_f_ensures_2
# (...), or [wp] [Z3 4.8.12] Goal typed_f_ensures : Unknown / Timeout; goal_of is the
# sed script that prints its name.
unproved='^\[wp\] \[[^]]*\] Goal [A-Za-z0-9_]* : \(Unknown\|Timeout\|Failed\)\|^\[wp\] \[\(Failed\|Unknown\|Timeout\)\] Goal '
goal_of='s/^\[wp\] \[[^]]*\] Goal \([A-Za-z0-9_]*\) : \(Unknown\|Timeout\|Failed\).*/\1/p;
         s/^\[wp\] \[\(Failed\|Unknown\|Timeout\)\] Goal \([A-Za-z0-9_]*\).*/\2/p'

# wp_on DIR FUNCTION: WP on FUNCTION over the core with the files of DIR in place of
# src/core's; the verdict in DIR/verdict: "killed GOAL", "proved", or "broken"
wp_on() {
    dir=$1 fn=$2
    files=
    for f in $core_files; do
        b=$(basename "$f")
        if [ -f "$dir/$b" ]; then files="$files $dir/$b"; else files="$files $f"; fi
    done
    # A mutant is killed by its first goal that neither prover proves: WP prints each
    # goal's final verdict as it comes (-wp-par 1, one goal at a time), so the run is
    # stopped there rather than left to spend the timeout of both provers on every
    # other goal the mutation breaks. The goal that kills it is the one a run to the
    # end would name first, and a mutant with no such goal runs to the end as before.
    # setsid: WP in its own process group, so that its prover calls stop with it (a
    # background job of this non-interactive shell is no group leader, so setsid
    # execs in place and $! is WP's pid and group). What a stopped why3server leaves
    # (its socket) is in TMPDIR, this run's directory (below).
    : > "$dir/wp.log"    # there before the first look below
    # shellcheck disable=SC2046,SC2086
    setsid frama-c -machdep "$md" -cpp-extra-args="-I$top/src/core $cpp_core" $(checks_of "$fn") \
        -wp -wp-rte -wp-model "$(model_of "$fn")" -wp-prover z3,cvc4 -wp-timeout "$timeout" \
        -wp-par 1 -wp-cache update -wp-cache-dir "$MUTATE_CACHE" -wp-fct "$fn" $files "$trusted" \
        -then -report-classify -report-unclassified-unknown ERROR > "$dir/wp.log" 2>&1 &
    pid=$!
    stopped=
    while kill -0 "$pid" 2>/dev/null; do
        # complete lines only (not the last): the goal's name is whole
        if sed '$d' "$dir/wp.log" | grep -q "$unproved"; then
            kill -s TERM -- "-$pid" 2>/dev/null || true
            stopped=1
            break
        fi
        sleep 0.2
    done
    # (quiet: the shell would report the stopped run as "Terminated")
    if wait "$pid" 2>/dev/null; then status=0; else status=$?; fi
    if [ -n "$stopped" ]; then
        goal=$(sed -n "$goal_of" "$dir/wp.log" | sed 's/^typed_\(cast_\)\{0,1\}//' | head -1)
        echo "killed $goal" > "$dir/verdict"
        echo "mutate: stopped at the first unproved goal" >> "$dir/wp.log"
        return
    fi
    if [ "$status" = 0 ]; then
        # RTE may find a run-time error certain (a constant expression that overflows):
        # then it is a false assertion and no goal, and the goals after it prove. That
        # is a rejection too (make proofs fails on it, proofs/wp.sh).
        if grep -q 'guaranteed RTE' "$dir/wp.log"; then
            echo "killed guaranteed_rte_$(sed -n '/guaranteed RTE/{n;n;s/^ *\([a-z_]*\):.*/\1/p;q;}' "$dir/wp.log")" \
                > "$dir/verdict"
        else
            echo proved > "$dir/verdict"
        fi
        return
    fi
    # WP ended before the look above saw its unproved goal, or it stopped for another
    # reason (then there is no summary line, and no kill)
    goal=$(sed -n "$goal_of" "$dir/wp.log" | sed 's/^typed_\(cast_\)\{0,1\}//' | head -1)
    if [ -n "$goal" ] && grep -q '^\[wp\] Proved goals:' "$dir/wp.log"; then
        echo "killed $goal" > "$dir/verdict"
    else
        echo broken > "$dir/verdict"
    fi
}

# proofs/mutate.sh --one DIR FUNCTION: one mutant (what the parallel runs below call)
if [ "${1:-}" = --one ]; then
    wp_on "$2" "$3"
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/securemem-mutate.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
# Frama-C's and Why3's temporary files, among them the socket of each stopped mutant's
# why3server, go with this run's directory.
mkdir "$tmp/tmp"
TMPDIR=$tmp/tmp
export TMPDIR

# WP's cache of prover results, by the text of each goal: a mutant shares all but a few
# goals with the unmutated function, and those are answered from the control run's
# results instead of calling the provers again. It lives for this run only. It starts
# from the cache of the make proofs run just before (proofs/wp.sh) when there is one:
# the control's goals are then that run's x86_64 goals, and only those that differ go
# to the provers. An answer is taken only for the identical task, so a cache from
# another tree costs misses, never a wrong verdict.
MUTATE_CACHE=$tmp/cache
export MUTATE_CACHE
if [ -d "$out/wp-cache" ]; then
    cp -R "$out/wp-cache" "$MUTATE_CACHE"
else
    mkdir "$MUTATE_CACHE"
fi

only=$*
core_functions | while read -r file fn; do
    [ -z "$only" ] || case " $only " in *" $fn "*) ;; *) continue ;; esac
    echo "$file $fn"
done > "$tmp/functions"

# ---- control ----------------------------------------------------------------------
# Each function, unmutated, through the same set-up, must prove.
while read -r file fn; do
    mkdir -p "$tmp/control/$fn"
    cp "$file" "$tmp/control/$fn/"
    echo "$tmp/control/$fn $fn"
done < "$tmp/functions" | xargs -P "$jobs" -L 1 proofs/mutate.sh --one
for d in "$tmp"/control/*; do
    if [ "$(cat "$d/verdict")" != proved ]; then
        echo "mutate: the unmutated copy of $(basename "$d") does not prove; the set-up is broken:" >&2
        tail -20 "$d/wp.log" >&2
        exit 1
    fi
done
echo "mutate: control: each of the $(wc -l < "$tmp/functions") functions, unmutated, proves through the same set-up"

# ---- the mutants of the code ------------------------------------------------------
python3 proofs/mutants.py "$tmp/functions" "$tmp/m"
mv "$tmp/m/list" "$tmp/m/list.all"
awk -F'\t' -v n="$sample" '(k[$3]++ % n) == 0' "$tmp/m/list.all" > "$tmp/m/list"
total=$(wc -l < "$tmp/m/list")
if [ "$sample" = 1 ]; then
    echo "mutate: $total mutants of $(wc -l < "$tmp/functions") core functions, $jobs at a time, timeout $timeout s"
else
    echo "mutate: $total of the $(wc -l < "$tmp/m/list.all") mutants of $(wc -l < "$tmp/functions") core functions" \
         "(one in $sample of each function's, MUTATE_SAMPLE), $jobs at a time, timeout $timeout s"
fi
t0=$(now_ms)
cut -f1,3 "$tmp/m/list" | sed "s|^|$tmp/m/|" | xargs -P "$jobs" -L 1 proofs/mutate.sh --one
secs=$(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.0f", (b - a) / 1000 }')

# ---- the mutant of the table ------------------------------------------------------
if [ -z "$only" ]; then
# A changed cell gives a contract (generated as make proofs generates it) that the
# unchanged code does not meet, and the check of the committed contract against the
# table fails first.
d=$tmp/m/table
mkdir "$d"
sed -e 's/^\(freeze\tFREEZE\t\)SM_OK FROZEN/\1SM_OK MUTABLE/' spec/buffer-states.tsv > "$d/buffer-states.tsv"
if cmp -s spec/buffer-states.tsv "$d/buffer-states.tsv"; then
    echo "mutate: the table mutant no longer applies to spec/buffer-states.tsv" >&2
    exit 1
elif proofs/state-contract.sh --check src/core/state.c "$d/buffer-states.tsv" >/dev/null 2>&1; then
    echo proved > "$d/verdict"
else
    cp src/core/state.c "$d/state.c"
    proofs/state-contract.sh --write "$d/state.c" "$d/buffer-states.tsv"
    wp_on "$d" smi_buf_step
fi
printf 'table\t%s\tsmi_buf_step\ttable\t%s\t%s\n' spec/buffer-states.tsv \
    "freeze FREEZE: SM_OK FROZEN" "freeze FREEZE: SM_OK MUTABLE (the table)" >> "$tmp/m/list"
total=$((total + 1))
fi

# ---- the table of verdicts --------------------------------------------------------
killed=0
bad=
printf 'mutate: %-5s %-17s %-9s %-44s %s\n' mutant function operator "killed by (first unproved goal)" change
while IFS='	' read -r id file fn op before after; do
    set -- $(cat "$tmp/m/$id/verdict")
    key="$fn	$before	$after"
    listed=$(awk -F'\t' -v k="$key" '!/^#/ && ($1 "\t" $2 "\t" $3) == k { print $4 }' "$equiv")
    case $1 in
    killed)
        killed=$((killed + 1))
        printf 'mutate: %-5s %-17s %-9s %-44s %s\n' "$id" "$fn" "$op" "$2" "$after"
        if [ -n "$listed" ]; then
            echo "mutate: $id ($after) is killed, yet $equiv lists it as equivalent" >&2
            bad=1
        fi ;;
    proved)
        printf 'mutate: %-5s %-17s %-9s %-44s %s\n' "$id" "$fn" "$op" "SURVIVED" "$after"
        if [ -z "$listed" ]; then
            echo "mutate: SURVIVED, and not explained in $equiv: $fn: $before -> $after" >&2
            bad=1
        fi
        echo "$key" >> "$tmp/survivors" ;;
    *)
        echo "mutate: $id: WP stopped without a verdict (not a kill):" >&2
        tail -8 "$tmp/m/$id/wp.log" >&2
        bad=1 ;;
    esac
done < "$tmp/m/list"

# every listed equivalent mutant must still be generated and survive; the mutants by
# their key (function, before, after), those run and those generated, cut out once
touch "$tmp/survivors"
cut -f3,5,6 "$tmp/m/list" > "$tmp/m/keys"
cut -f3,5,6 "$tmp/m/list.all" > "$tmp/m/keys.all"
while IFS='	' read -r fn before after why; do
    case $fn in ''|'#'*) continue ;; esac
    [ -z "$only" ] || case " $only " in *" $fn "*) ;; *) continue ;; esac
    # a listed mutant that the sample leaves out is checked by the full runs
    if ! grep -qxF "$fn	$before	$after" "$tmp/m/keys" &&
       grep -qxF "$fn	$before	$after" "$tmp/m/keys.all"; then
        continue
    fi
    if ! grep -qxF "$fn	$before	$after" "$tmp/survivors"; then
        echo "mutate: $equiv lists a mutant that no run survived: $fn: $before -> $after" >&2
        bad=1
    else
        printf 'mutate: survivor, equivalent: %s: %s -> %s\n    because %s\n' "$fn" "$before" "$after" "$why"
    fi
done < "$equiv"

echo "mutate: $total mutants in ${secs} s"
pct=$(awk -v k="$killed" -v n="$total" 'BEGIN { printf "%d", k * 100 / n }')
echo "Mutants killed: $killed / $total" | tee "$out/mutants"
if [ -z "$only" ] && { [ "$total" -lt 60 ] || [ "$pct" -lt 95 ]; }; then
    echo "mutate: FAILED: at least 60 mutants and 95% killed are required ($pct%)" >&2
    bad=1
fi
[ -z "$bad" ] || exit 1
