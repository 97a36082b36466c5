#!/bin/sh
# SPDX-License-Identifier: ISC
# make proofs-mutation: show that the proofs can fail. Each mutant is a temporary copy of
# one core file (or of the state table) with one line changed; WP runs on it exactly as
# make proofs runs on the real file, and must report unproved goals. A run that stops
# for another reason (a parse error, a missing tool) does not count as a kill.
#
# A control run first proves an unmutated copy through the same temporary-directory
# set-up, so that a kill is the mutation's doing and not the set-up's.
set -eu
cd "$(dirname "$0")/.."
. proofs/lib.sh

tmp=$(mktemp -d "${TMPDIR:-/tmp}/securemem-mutate.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
# Mutants fail on purpose, and each failing goal costs its timeout: keep it short. The
# goals that stay true are the ones make proofs proves in well under a second.
timeout=${MUTATE_TIMEOUT:-5}
par=${MUTATE_PAR:-4}

# wp_on DIR FUNCTION [WP-OPTIONS]: WP over the core with the files of DIR in place of
# src/core's
wp_on() {
    dir=$1 fn=$2
    shift 2
    files=
    for f in $core_files; do
        b=$(basename "$f")
        if [ -f "$dir/$b" ]; then files="$files $dir/$b"; else files="$files $f"; fi
    done
    case $fn in
    smi_wipe|smi_equal) model=Typed+cast ;;
    *) model=Typed ;;
    esac
    case $fn in
    smi_equal|smi_canary_ok) checks="-warn-signed-downcast" ;;
    *) checks="-warn-signed-downcast -warn-unsigned-overflow -warn-unsigned-downcast" ;;
    esac
    # shellcheck disable=SC2086
    frama-c -cpp-extra-args="-I$top/src/core $cpp_core" $checks \
        -wp -wp-rte -wp-model "$model" -wp-prover z3,cvc4 -wp-timeout "$timeout" \
        -wp-par "$par" -wp-fct "$fn" "$@" $files "$trusted" \
        -then -report-classify -report-unclassified-unknown ERROR > "$dir/wp.log" 2>&1
}

# proved DIR: "a b" from WP's "Proved goals: a / b", empty if WP printed none
proved() { sed -n 's/^\[wp\] Proved goals: *\([0-9]*\) \/ \([0-9]*\)$/\1 \2/p' "$1/wp.log"; }

# ---- control ----------------------------------------------------------------------
mkdir "$tmp/control"
cp src/core/layout.c "$tmp/control/"
if ! wp_on "$tmp/control" smi_layout_of -wp-bhv accepted,rejected; then
    echo "mutate: the unmutated copy of layout.c does not prove; the set-up is broken:" >&2
    tail -20 "$tmp/control/wp.log" >&2
    exit 1
fi
echo "mutate: control: an unmutated copy of src/core/layout.c proves ($(proved "$tmp/control" | tr ' ' /) goals of its behaviors)"

# ---- mutants ----------------------------------------------------------------------
survived=
n=0
# mutant NAME FILE FUNCTION SED-EXPRESSION [WP-OPTIONS]: the sed expression must change
# the file. The mutants of the functions with behaviors run only the goals of those
# behaviors (-wp-bhv), to save time: for smi_buf_step, the behaviors of the cells they
# change, out of 20.
mutant() {
    name=$1 file=$2 fn=$3 expr=$4 opts=${5:-}
    n=$((n + 1))
    d=$tmp/m$n
    mkdir "$d"
    sed -e "$expr" "src/core/$file" > "$d/$file"
    if cmp -s "src/core/$file" "$d/$file"; then
        echo "mutate: mutant '$name' no longer applies to src/core/$file; update proofs/mutate.sh" >&2
        survived="$survived '$name'"
        return
    fi
    report "$name" "$d" "$fn" "$(diff "src/core/$file" "$d/$file" | sed -n 's/^> *//p' | head -1)" $opts
}

# report NAME DIR FUNCTION CHANGED-LINE [WP-OPTIONS]: run WP, expect unproved goals
report() {
    name=$1 dir=$2 fn=$3 line=$4
    shift 4
    t0=$(now_ms)
    if wp_on "$dir" "$fn" "$@"; then
        set -- "$name" "$dir" "$fn" "$line"
        echo "mutate: SURVIVED: $1 -- WP proves $3 with: $4" >&2
        survived="$survived '$1'"
        return
    fi
    # shellcheck disable=SC2046
    set -- "$name" "$dir" "$fn" "$line" $(proved "$dir")
    if [ $# -lt 6 ] || [ "$5" = "$6" ]; then
        echo "mutate: '$1': WP stopped without unproved goals (see below); not a kill" >&2
        tail -15 "$2/wp.log" >&2
        survived="$survived '$1'"
        return
    fi
    printf 'mutate: killed: %-50s %4s / %-4s goals proved %5s s\n' "$1" "$5" "$6" \
        "$(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')"
}

mutant "state: freeze leads to MUTABLE" state.c smi_buf_step \
    '/case SMI_BOP_FREEZE:/,/return/ s/\*next = SMI_BUF_FROZEN;/*next = SMI_BUF_MUTABLE;/' \
    "-wp-bhv mutable_freeze,frozen_freeze"
mutant "state: a FROZEN buffer accepts writes" state.c smi_buf_step \
    's/return s == SMI_BUF_MUTABLE ? SM_OK : SM_E_STATE;/return SM_OK;/' \
    "-wp-bhv mutable_write,frozen_write"
mutant "layout: the data ends one byte before the guard" layout.c smi_layout_of \
    's/out->data_off = page + out->canary_len;/out->data_off = page + out->canary_len - 1;/' \
    "-wp-bhv accepted,rejected"
mutant "layout: the overflow bound forgets a guard page" layout.c smi_layout_of \
    's/SIZE_MAX - SMI_CANARY_MIN - 3 \* page/SIZE_MAX - SMI_CANARY_MIN - 2 * page/' \
    "-wp-bhv accepted,rejected"
mutant "wipe: the last byte is left" bytes.c smi_wipe \
    's/for (size_t i = 0; i < n; i++)/for (size_t i = 0; i + 1 < n; i++)/'
mutant "equal: the top bit of each byte is ignored" bytes.c smi_equal \
    's/d |= (unsigned)(x\[i\] ^ y\[i\]);/d |= (unsigned)(x[i] ^ y[i]) \& 0x7fu;/'

# The table drives the contract: a changed cell gives a contract (generated as make
# proofs generates it) that the unchanged code does not meet, and the check of the
# committed contract against the table fails first.
n=$((n + 1))
d=$tmp/m$n
mkdir "$d"
sed -e 's/^\(freeze\tFREEZE\t\)SM_OK FROZEN/\1SM_OK MUTABLE/' spec/buffer-states.tsv > "$d/buffer-states.tsv"
name="table: freeze in MUTABLE stays MUTABLE"
if cmp -s spec/buffer-states.tsv "$d/buffer-states.tsv"; then
    echo "mutate: the table mutant no longer applies to spec/buffer-states.tsv" >&2
    survived="$survived '$name'"
elif proofs/state-contract.sh --check src/core/state.c "$d/buffer-states.tsv" >/dev/null 2>&1; then
    echo "mutate: SURVIVED: $name -- the contract check accepts the changed table" >&2
    survived="$survived '$name'"
else
    cp src/core/state.c "$d/state.c"
    proofs/state-contract.sh --write "$d/state.c" "$d/buffer-states.tsv"
    report "$name" "$d" smi_buf_step "(the regenerated contract)" -wp-bhv mutable_freeze
fi

if [ -n "$survived" ]; then
    echo "mutate: FAILED: mutants not killed:$survived" >&2
    exit 1
fi
echo "mutate: all $n mutants killed"
