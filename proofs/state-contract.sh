#!/bin/sh
# SPDX-License-Identifier: ISC
# The tables drive the contracts: print the ACSL behaviors that a state table of spec/
# gives its core function, one per cell, or check or rewrite the block of them that the
# core file carries between its BEGIN and END lines.
#   spec/buffer-states.tsv -> smi_buf_step (src/core/state.c): status and next state
#   spec/secret-states.tsv -> smi_sec_decide (src/core/secret_state.c): the action
#
#   proofs/state-contract.sh [TSV]                   print the block
#   proofs/state-contract.sh --check FILE.c [TSV]    exit 1 unless FILE.c has that block
#   proofs/state-contract.sh --write FILE.c [TSV]    replace the block in FILE.c
#
# The tables list public operations; the core works on their classes, so every row of a
# class must give the same cells: a table where they differ is refused, since no contract
# of the core could match it. The table is known by its file name, so that a changed
# copy elsewhere (proofs/mutate.sh) is read as the table it copies.
set -eu

mode=print file=
case "${1:-}" in
--check|--write) mode=${1#--}; file=$2; shift 2 ;;
esac
tsv=${1:-spec/buffer-states.tsv}
table=$(basename "$tsv")
case $table in
buffer-states.tsv) gen=gen_buffer ;;
secret-states.tsv) gen=gen_secret ;;
*) echo "state-contract: no contract is generated from $table" >&2; exit 1 ;;
esac
begin="    // BEGIN behaviors generated from spec/$table by proofs/state-contract.sh"
end="    // END behaviors generated from spec/$table"

# What both tables share, for awk -v lead=N (the columns before the states): die(), the
# header, which names the state columns in the order of the core's enum, and the rows'
# width; comments and blank lines are skipped.
rows='
    function die(msg) { print "state-contract: " FILENAME ":" FNR ": " msg > "/dev/stderr"; bad = 1; exit 1 }
    /^# operation\t/ {
        for (i = lead + 1; i <= NF; i++) state[i - lead] = $i
        nstates = NF - lead
        next
    }
    /^#/ || /^[ \t]*$/ { next }
    !nstates { die("no \"# operation\" header before the first row") }
    NF != nstates + lead { die("expected " nstates + lead " fields, found " NF) }
'

gen_buffer() {
    awk -F'\t' -v begin="$begin" -v end="$end" -v lead=2 "$rows"'
    {
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

# The secret protocol's table: operation x state -> "STATUS STATE-AFTER WINDOW [waits]".
# The core decides what the caller does; each cell says which action that is: an error
# status is a refusal (SM_E_STATE) or SM_E_BUSY; "waits" is WAIT; otherwise an access that
# makes the window's 2 OS calls itself opens it (OPEN), one that makes none joins it
# (JOIN), a close destroys, a query answers. CLOSED is no state of the core: a closed
# secret's handle is stale and the registry refuses it (smi_handle_accepts) before the
# core is asked, so that column must be all refusals.
gen_secret() {
    awk -F'\t' -v begin="$begin" -v end="$end" -v lead=1 '
    BEGIN {
        class["with_bytes"] = "ACCESS"; class["read_at"] = "ACCESS"
        class["try_with_bytes"] = "TRY_ACCESS"; class["close"] = "CLOSE"
        class["size"] = "QUERY"; class["is_closed"] = "QUERY"
    }'"$rows"'
    {
        if (!($1 in class)) die("operation " $1 " has no class of smi_sec_op")
        cls = class[$1]
        if (!(cls in seen)) { seen[cls] = 1; order[++nclasses] = cls }
        for (i = 1; i <= nstates; i++) {
            n = split($(i + 1), w, " ")
            if (n < 3 || n > 4 || (n == 4 && w[4] != "waits"))
                die("cell \"" $(i + 1) "\" is not \"STATUS STATE WINDOW [waits]\"")
            if (state[i] == "CLOSED") {
                if (w[1] != "SM_E_STATE")
                    die($1 " on a CLOSED secret gives " w[1] ": the registry refuses it (SM_E_STATE)")
                continue
            }
            if (w[1] == "SM_E_STATE") act = "REFUSE"
            else if (w[1] == "SM_E_BUSY") act = "BUSY"
            else if (w[1] != "SM_OK") die("status " w[1] " is no action of smi_sec_decide")
            else if (n == 4) act = "WAIT"
            else if (cls == "QUERY") act = "ANSWER"
            else if (cls == "CLOSE" && w[2] == "CLOSED") act = "DESTROY"
            else if (cls ~ /ACCESS$/ && w[3] == "2") act = "OPEN"
            else if (cls ~ /ACCESS$/ && w[3] == "0") act = "JOIN"
            else die("cell \"" $(i + 1) "\" of " $1 " is no action of smi_sec_decide")
            key = cls SUBSEP i
            if (key in cell && cell[key] != act)
                die("operation " $1 " (class " cls ") in " state[i] " is " act \
                    ", another " cls " operation is " cell[key])
            cell[key] = act
        }
    }
    END {
        if (bad) exit 1
        if (!nclasses) { print "state-contract: no rows in " FILENAME > "/dev/stderr"; exit 1 }
        print begin
        for (i = 1; i <= nstates; i++) {
            if (state[i] == "CLOSED") continue
            st = tolower(state[i]); gsub(/-/, "_", st)
            for (c = 1; c <= nclasses; c++) {
                printf "    behavior %s_%s:\n", tolower(order[c]), st
                printf "      assumes op == SMI_SOP_%s && sec_%s(v);\n", order[c], st
                printf "      ensures \\result == SMI_SACT_%s;\n", cell[order[c] SUBSEP i]
            }
        }
        print end
    }' "$tsv"
}

block=$($gen)
case $mode in
print)
    printf '%s\n' "$block" ;;
check)
    have=$(awk -v begin="$begin" -v end="$end" '
        $0 == begin { on = 1 } on { print } $0 == end { on = 0 }' "$file")
    if [ "$have" != "$block" ]; then
        echo "state-contract: the behaviors in $file do not match $tsv;" \
             "run proofs/state-contract.sh --write $file $tsv" >&2
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
