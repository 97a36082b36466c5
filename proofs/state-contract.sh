#!/bin/sh
# SPDX-License-Identifier: ISC
# The table drives the contract: print the ACSL behaviors of smi_buf_step, one per cell
# (state x operation class) of spec/buffer-states.tsv, or check or rewrite the block of
# them that src/core/state.c carries between its BEGIN and END lines.
#
#   proofs/state-contract.sh [TSV]                   print the block
#   proofs/state-contract.sh --check FILE.c [TSV]    exit 1 unless FILE.c has that block
#   proofs/state-contract.sh --write FILE.c [TSV]    replace the block in FILE.c
#
# The table lists public operations; the core works on their classes, so every row of a
# class must have the same cells: a table where they differ is refused, since no contract
# of the core could match it.
set -eu

mode=print file=
case "${1:-}" in
--check|--write) mode=${1#--}; file=$2; shift 2 ;;
esac
tsv=${1:-spec/buffer-states.tsv}
begin='    // BEGIN behaviors generated from spec/buffer-states.tsv by proofs/state-contract.sh'
end='    // END behaviors generated from spec/buffer-states.tsv'

gen() {
    awk -F'\t' -v begin="$begin" -v end="$end" '
    function die(msg) { print "state-contract: " FILENAME ":" FNR ": " msg > "/dev/stderr"; bad = 1; exit 1 }
    /^# operation\t/ {
        # the header names the state columns, in the order of smi_buf_state
        for (i = 3; i <= NF; i++) state[i - 2] = $i
        nstates = NF - 2
        next
    }
    /^#/ || /^[ \t]*$/ { next }
    {
        if (!nstates) die("no \"# operation\" header before the first row")
        if (NF != nstates + 2) die("expected " nstates + 2 " fields, found " NF)
        cls = $2
        if (!(cls in seen)) { seen[cls] = 1; order[++nclasses] = cls }
        for (i = 1; i <= nstates; i++) {
            n = split($(i + 2), w, " ")
            if (n != 2 || w[1] !~ /^SM_(OK|E_[A-Z]+)$/ || w[2] !~ /^[A-Z]+$/)
                die("cell \"" $(i + 2) "\" is not \"STATUS STATE\"")
            key = cls SUBSEP i
            if (key in cell && cell[key] != $(i + 2))
                die("operation " $1 " (class " cls ") in " state[i] " gives \"" $(i + 2) \
                    "\", another " cls " operation gives \"" cell[key] "\"")
            cell[key] = $(i + 2)
        }
    }
    END {
        if (bad) exit 1
        if (!nclasses) { print "state-contract: no rows in " FILENAME > "/dev/stderr"; exit 1 }
        print begin
        for (i = 1; i <= nstates; i++)
            for (c = 1; c <= nclasses; c++) {
                split(cell[order[c] SUBSEP i], w, " ")
                printf "    behavior %s_%s:\n", tolower(state[i]), tolower(order[c])
                printf "      assumes s == SMI_BUF_%s && op == SMI_BOP_%s;\n", state[i], order[c]
                printf "      ensures \\result == %s && *next == SMI_BUF_%s;\n", w[1], w[2]
            }
        print end
    }' "$tsv"
}

block=$(gen)
case $mode in
print)
    printf '%s\n' "$block" ;;
check)
    have=$(awk -v begin="$begin" -v end="$end" '
        $0 == begin { on = 1 } on { print } $0 == end { on = 0 }' "$file")
    if [ "$have" != "$block" ]; then
        echo "state-contract: the behaviors in $file do not match $tsv;" \
             "run proofs/state-contract.sh --write $file" >&2
        printf '%s\n' "$block" > "${TMPDIR:-/tmp}/state-contract.$$"
        printf '%s\n' "$have" | diff -u - "${TMPDIR:-/tmp}/state-contract.$$" >&2 || true
        rm -f "${TMPDIR:-/tmp}/state-contract.$$"
        exit 1
    fi
    echo "state-contract: $file matches $tsv ($(printf '%s\n' "$block" | grep -c '^    behavior') cells)" ;;
write)
    grep -qxF "$begin" "$file" && grep -qxF "$end" "$file" ||
        { echo "state-contract: $file has no BEGIN/END lines" >&2; exit 1; }
    tmp=$file.tmp.$$
    printf '%s\n' "$block" | awk -v begin="$begin" -v end="$end" '
        NR == FNR { blk = blk $0 "\n"; next }
        $0 == begin { printf "%s", blk; skip = 1; next }
        $0 == end { skip = 0; next }
        !skip' - "$file" > "$tmp"
    mv "$tmp" "$file" ;;
esac
