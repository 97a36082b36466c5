#!/bin/sh
# SPDX-License-Identifier: ISC
# make eva: Frama-C Eva over the library's files as compiled, one analysis per driver of
# proofs/eva/ (the table below), each with the OS shim of proofs/eva/os.c (its memory
# model: unreadable pages are uninitialised, a mapping is a block of its exact length)
# and the trusted contract of smi_barrier. An analysis passes when Eva raises no alarm,
# every precondition it meets (of the core and of the OS shim) is valid, nothing is
# invalid, the only properties it leaves unknown or never tries are the core's own
# annotations, which WP proves (proofs/wp.sh), contracts of Frama-C's libc that
# nothing calls, or the shim's for calls that another analysis makes, it reaches every
# function of its library files (a file it needs only in part is reached whole when
# another analysis reaches all of it, or the analyses given it do between them), and
# no check of its driver finds the library's answer wrong (a Frama_C_show_each_* call
# that Eva reaches, or an ACSL assertion of the driver that Eva does not find valid: an
# unknown one is no annotation of the core). The memory analysis's -DEVA_OVERRUN
# variant must raise its alarms (the model's self-test). Then prints the share of the
# library's lines that WP and Eva cover (coverage.py). Scope: proofs/README.md, "Eva".
set -eu
cd "$(dirname "$0")/.."
. proofs/lib.sh

# The analyses, one a line: NAME, then the library files that its driver
# proofs/eva/NAME.c reaches, every function of each; then, after a " + ", the files it
# needs only in part (analysed as far as the driver's paths go, and counted so, but
# each must be reached whole: before the "+" of another analysis, or by the analyses
# given it between them, each of its functions by one of them at least; a line that
# opens with the "+" reaches no file whole). The core is given to every analysis; a
# core function it does not call is WP's alone.
analyses='memory src/memory/mem.c src/memory/region.c src/memory/plain.c src/service/config.c src/service/fatal.c src/service/stats.c
pool src/memory/pool.c src/memory/shelf.c src/memory/spare.c + src/objects/secret.c src/objects/compact.c src/runtime/registry.c src/objects/buffer.c src/memory/plain.c src/memory/region.c src/memory/rng.c src/runtime/runtime.c src/service/burn.c src/service/config.c src/service/fatal.c src/service/stats.c
buffers src/runtime/registry.c src/objects/buffer.c src/service/burn.c + src/runtime/runtime.c src/memory/rng.c src/memory/pool.c src/memory/shelf.c src/memory/spare.c src/memory/region.c src/service/config.c src/service/fatal.c src/service/stats.c
runtime src/runtime/runtime.c src/memory/rng.c + src/runtime/registry.c src/memory/pool.c src/memory/shelf.c src/memory/spare.c src/memory/region.c src/service/burn.c src/service/config.c src/service/fatal.c src/service/stats.c
secrets + src/objects/secret.c src/objects/compact.c src/runtime/registry.c src/objects/buffer.c src/memory/plain.c src/memory/pool.c src/memory/region.c src/memory/rng.c src/memory/shelf.c src/memory/spare.c src/runtime/runtime.c src/service/burn.c src/service/config.c src/service/fatal.c src/service/stats.c
compact + src/objects/compact.c src/runtime/registry.c src/runtime/runtime.c src/memory/rng.c src/memory/pool.c src/memory/shelf.c src/memory/spare.c src/memory/region.c src/service/burn.c src/service/config.c src/service/fatal.c src/service/stats.c
compact-keys + src/objects/compact.c src/runtime/registry.c src/runtime/runtime.c src/memory/rng.c src/memory/pool.c src/memory/shelf.c src/memory/spare.c src/memory/region.c src/service/burn.c src/service/config.c src/service/fatal.c src/service/stats.c'

# Files that analyses need in part and that they do not reach whole yet, alone or
# between them, each named in proofs/README.md ("Eva", "Not reached whole yet") with what
# is missing. A file listed here that is reached whole (by one analysis, or by the union
# of those given it) fails the run until it is taken off, and any other file after a
# " + " must be reached whole so.
not_whole_yet=''

# eva_run LOG FILES [CPP-ARGS [EVA-OPTIONS]]: an analysis, its report and the metrics of
# what it reached.
# -c11: the headers use _Noreturn. Precision 4 with return splitting keeps the states of
# "mapped" and "refused" apart after each OS call (a merge would make Eva think the
# pointer may be unset on the success path). -eva-alloc-builtin by_stack gives each
# mapping of the driver (one call site per size) a heap block of its own, whose length
# stays exact for munmap's precondition; the shim's may_fail decides when mmap fails,
# so the heap never returns NULL (-eva-no-alloc-returns-null). The canary's loops go a
# tile at a time, a loop in a loop over up to 4,064 bytes: kept apart, their iterations
# took Eva past 10 minutes; merged at once (slevel 0 there), the bounds still hold,
# because each loop's condition bounds its own index against a length Eva knows.
eva_run() {
    # shellcheck disable=SC2086
    frama-c -c11 -machdep x86_64 -cpp-extra-args="-I$top/include -I$top/src \
            -I$top/proofs/eva/include -include $top/proofs/eva/include/eva-prelude.h \
            -include $top/proofs/core.acsl ${3:-}" \
        $2 -eva -main main -eva-no-show-progress -eva-precision 4 \
        -eva-split-return full -eva-alloc-builtin by_stack -eva-no-alloc-returns-null \
        -eva-slevel-function smi_canary_fill:0,smi_canary_ok:0 ${4:-} \
        -then -report-classify -report-unclassified-unknown ERROR \
        -report-unclassified-untried ERROR -metrics -metrics-eva-cover > "$1" 2>&1 || true
}

# eva_options NAME: the options of one analysis beyond eva_run's; eva_shims NAME: the
# files of proofs/eva/ below the library that it needs beyond os.c; eva_cpp NAME: its
# preprocessor arguments. The buffers analysis keeps the iterations of the library's
# read loops apart (slevel), and follows the registry's walk_next, which calls itself
# once. The secrets and compact analyses follow a nested access, which is recursion for
# Eva (an access's callback makes an access); the secrets analysis takes the coffer's
# try-only flag from a trusted contract and the encrypted factory's ciphertext from
# models of enclave.c's sealed blobs (secrets-trusted.c). The pool analysis drives the
# guarded secrets as the secrets analysis does its own (the registry's walk, the
# coffer's flag), and is built with SM_FAULT_INJECTION: its checks are the tests' hooks
# of pool.c, shelf.c and spare.c, which only such a build has. The runtime analysis has
# Frama-C read eva/include/runtime-at-load.h before runtime.c, to name its static
# constructor for the driver: Eva runs no constructor. The compact-keys analysis is the
# compact one's driver again on a machine with protection keys (EVA_PKEYS: eva/os.c), so
# compact.c is reached whole by the two between them, each mode by one.
eva_options() {
    case $1 in
    buffers) echo "-eva-slevel-function scratch_fill:500,sm_buffer_from_fd:100 -eva-unroll-recursive-calls 4" ;;
    secrets|pool|compact|compact-keys) echo "-eva-unroll-recursive-calls 4" ;;
    runtime) echo "-cpp-extra-args-per-file src/runtime/runtime.c:-include$top/proofs/eva/include/runtime-at-load.h" ;;
    esac
}
eva_cpp() {
    case $1 in
    pool) echo -DSM_FAULT_INJECTION ;;
    compact-keys) echo -DEVA_PKEYS ;;
    esac
}
eva_shims() {
    case $1 in
    buffers) echo proofs/eva/pthread.c ;;
    secrets|pool) echo proofs/eva/pthread.c proofs/eva/secrets-trusted.c ;;
    runtime|compact|compact-keys) echo proofs/eva/pthread.c ;;
    esac
}

fail() {
    echo "eva: FAILED: $name: $*" >&2
    sed -n '/ANALYSIS SUMMARY/,/^\[report\]/p' "$log" >&2
    grep -A3 '^\[eva:alarm\]' "$log" | grep -v 'got status unknown' | head -40 >&2 || true
    echo "eva: (full log: $log)" >&2
    exit 1
}

# check: the verdict on $log, the analysis $name of the library files $lib_files.
check() {
    grep -q 'ANALYSIS SUMMARY' "$log" || fail "Eva did not finish"
    # A driver marks with a Frama_C_show_each_* call each path on which the library would
    # break what the driver checks (a stale id accepted, a refused call committed): Eva
    # prints the call when it finds such a path.
    if grep -q 'Frama_C_show_each_' "$log"; then
        grep 'Frama_C_show_each_' "$log" | sort -u | head -20 >&2
        fail "the driver found a path that breaks what it checks"
    fi
    grep -q 'No errors or warnings raised during the analysis' "$log" ||
        fail "Eva or the kernel raised errors or warnings"
    alarms=$(sed -n 's/^ *\([0-9][0-9]*\) alarms\{0,1\} generated by the analysis.*/\1/p' "$log")
    [ -n "$alarms" ] || { grep -q 'No alarm' "$log" && alarms=0; } || fail "no alarm count"
    [ "$alarms" = 0 ] || fail "$alarms alarms"
    pre=$(sed -n 's/^ *Preconditions *\([0-9]*\) valid *\([0-9]*\) unknown *\([0-9]*\) invalid.*/\1 \2 \3/p' "$log")
    set -- $pre
    [ $# = 3 ] && [ "$3" = 0 ] || fail "preconditions not all valid ($pre)"
    pre_valid=$1 pre_unknown=$2
    grep -q '^ *Assertions .* 0 invalid' "$log" || fail "an invalid assertion"
    # unknown to Eva: only annotations of the core's functions, each one proved by WP
    # reported: the report's properties of one kind, a name that it wraps onto the next
    # line included
    reported() {
        awk -v k="[ERROR:unclassified.$1]" 'index($0, k) == 1 {
            n = substr($0, length(k) + 1); sub(/^ */, "", n)
            if (n == "") { getline n; sub(/^ */, "", n) }
            print n }' "$log"
    }
    unknown=$(reported unknown | sort -u)
    for p in $unknown; do
        ok=
        for f in $fns; do
            case $p in "${f}_"*) ok=1 ;; esac
        done
        [ -n "$ok" ] || fail "Eva leaves '$p' unknown, and it is no annotation of the core"
        # A precondition of the core is the caller's to meet, not WP's: Eva must find
        # each valid, except the one it cannot evaluate, smi_layout_inner's existential
        # (the layout is one that smi_layout_of accepted: proofs/README.md, "Eva").
        case $p in
        smi_layout_inner_requires) ;;
        *_requires*) fail "Eva leaves the precondition '$p' unknown" ;;
        esac
    done
    if [ "$pre_unknown" != 0 ] && ! echo "$unknown" | grep -qx smi_layout_inner_requires; then
        fail "$pre_unknown preconditions unknown"
    fi
    # Never tried: the lemmas and the core's annotations on functions that the driver
    # does not call are WP's (proofs/wp.sh proves them all); the contracts of Frama-C's
    # libc that nothing here calls are no property of this tree. Any other function
    # defined in the analysed files (the library's, the shim's, the driver's) must be
    # reached: one with an untried property is code or a contract that Eva never
    # looked at.
    defined=$(awk '/^\[metrics\] Defined functions/ { on = 1; next }
        on && /=====/ { next }
        on && /^ *$/ { exit }
        on { n = split($0, w, ";")
             for (i = 1; i <= n; i++) { g = w[i]; sub(/^ */, "", g); sub(/ \(.*/, "", g)
                                        if (g != "") print g } }' "$log")
    [ -n "$defined" ] || fail "no list of the defined functions"
    untried=$(reported untried | sort -u)
    # The shim (os.c, pthread.c) serves every analysis, and no one of them calls all of
    # it: a shim function that this analysis never enters keeps its contract untried
    # here, and another analysis of the table must reach it (checked after the last).
    analysed=$(awk '/^\[metrics\] Statements analyzed by Eva/ { on = 1; next }
        on && /^\[/ { exit }
        on && / stmts out of / { sub(/^ */, ""); sub(/:.*/, ""); print }' "$log")
    reached="$reached $(echo "$analysed" | tr '\n' ' ')"
    left_to_wp=0
    for p in $untried; do
        case $p in lemma_*) left_to_wp=$((left_to_wp + 1)); continue ;; esac
        core=
        for f in $fns; do
            case $p in "${f}_"*) core=1 ;; esac
        done
        if [ -n "$core" ]; then
            left_to_wp=$((left_to_wp + 1))
            continue
        fi
        # Frama-C's own clause for the asm statement of burn.c, which clears vector
        # registers and names no memory (assigns \nothing): Eva takes it as what the
        # asm does, and there is no C behind it to check it against.
        case $p in smi_burn_stack_assigns) continue ;; esac
        # the function the property belongs to: the longest name it starts with
        owner=
        for f in $defined; do
            case $p in "${f}_"*) [ ${#f} -le ${#owner} ] || owner=$f ;; esac
        done
        [ -n "$owner" ] || continue
        if echo "$shim_fns" | grep -qx "$owner" && ! echo "$analysed" | grep -qx "$owner"; then
            shim_left="$shim_left $owner"
            continue
        fi
        fail "'$p' is never tried: Eva does not reach $owner"
    done
    # Every function of the analysed library files is reached, not only the annotated
    # ones; the core's that the driver does not call are WP's.
    scope=$(echo "$lib_files" | tr ' ' '\n' | grep -v '^src/core/')
    # shellcheck disable=SC2086
    missed=$(python3 proofs/coverage.py --unreached "$log" $scope)
    [ -z "$missed" ] || fail "Eva does not reach: $(echo "$missed" | tr '\n' ' ')"
    if grep '^\[ERROR:' "$log" | grep -v 'unclassified.unknown' | grep -qv 'unclassified.untried'; then
        fail "report: an error other than the core's WP-proved annotations"
    fi
}

# files_of NAME: the files of analysis NAME, "LIB + ALSO" as the table has them.
files_of() {
    echo "$analyses" | awk -v n="$1" '$1 == n { sub(/^[^ ]* */, ""); print }'
}
# run_one NAME: Eva on analysis NAME (overrun: the memory analysis's self-test), into
# its log. The runs take 5 to 80 s each and use one core, so they go two at a time
# (below) and the checks read their logs afterwards, in the table's order.
run_one() {
    lf=$(files_of "${1%-overrun}")
    also=
    case " $lf" in *' + '*) lf=" $lf"; also=${lf#* + } lf=${lf%% + *} ;; esac
    files="$lf $also $core_files $trusted proofs/eva/os.c $(eva_shims "${1%-overrun}") proofs/eva/${1%-overrun}.c"
    if [ "$1" = memory-overrun ]; then
        eva_run "$out/eva-overrun.log" "$files" -DEVA_OVERRUN
    else
        eva_run "$out/eva-$1.log" "$files" "$(eva_cpp "$1")" "$(eva_options "$1")"
    fi
}
if [ "${1:-}" = --run ]; then
    t0=$(now_ms)
    run_one "$2" </dev/null
    awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.1f\n", (b - a) / 1000 }' > "$out/eva-$2.secs"
    exit 0
fi
rm -f "$out"/eva-*.log "$out"/eva-*.secs "$out/eva-overrun.log"
echo "$analyses" | cut -d' ' -f1 | sed 's/^memory$/memory memory-overrun/' | tr ' ' '\n' |
    xargs -P "${EVA_JOBS:-2}" -n 1 proofs/eva.sh --run

fns=$(core_functions | cut -d' ' -f2)
shim_fns=$(sed -n 's/^[A-Za-z_][A-Za-z_0-9 *]*[ *]\([A-Za-z_][A-Za-z_0-9]*\)(.*/\1/p' \
    proofs/eva/os.c proofs/eva/pthread.c | sort -u)
cover= whole= partly= reached= shim_left= given=
while read -r name lib_files; do
    also=
    # " + " may open the list (an analysis that reaches no file whole)
    lib_files=" $lib_files"
    case $lib_files in *' + '*) also=${lib_files#* + } lib_files=${lib_files%% + *} ;; esac
    lib_files=${lib_files# }
    log=$out/eva-$name.log
    check
    if [ "$name" = memory ]; then
        # The self-test of the memory model: the driver variant that reads a PROT_NONE
        # page, one byte past a mapping, and one byte past a region's data (its trailing
        # guard page) must raise those three alarms, or the model lets such reads through
        # and the zero above proves nothing about them.
        bad=$out/eva-overrun.log
        grep -q 'ANALYSIS SUMMARY' "$bad" || fail "the self-test's Eva run did not finish (log: $bad)"
        bites() {
            grep -A2 '^\[eva:alarm\] proofs/eva/memory.c' "$bad" | grep -qF "$1" ||
                fail "self-test: no alarm for $2 (log: $bad)"
        }
        bites 'assert \initialized((uint8_t volatile *)p);' "a read of a PROT_NONE page"
        bites 'assert \valid_read((uint8_t volatile *)p +' "a read past the end of a mapping"
        bites 'assert \initialized(d + r->size);' "a read of a region's trailing guard page"
    fi
    secs=$(cat "$out/eva-$name.secs")
    [ "$name" != memory ] || secs="$secs + $(cat "$out/eva-memory-overrun.secs")"
    printf 'eva: %s (%s + core): 0 alarms, %s preconditions valid (%s unknown: smi_layout_inner), %s core annotations unknown and %s untried left to WP%s  %6s s\n' \
        "$name" "$(echo "$lib_files" | tr ' ' '\n' | sed 's,.*/,,' | paste -sd' ')" \
        "$pre_valid" "$pre_unknown" "$(echo "$unknown" | grep -vcx smi_layout_inner_requires || true)" \
        "$left_to_wp" "$([ "$name" = memory ] && echo ', self-test bites' || true)" "$secs"
    cover="$cover -- $log $lib_files $also $core_files"
    whole="$whole $lib_files" partly="$partly $also"
    for f in $also; do given="$given $f=$log"; done
done <<TABLE
$analyses
TABLE
# A file after a " + " is reached whole when one analysis has it before its "+", or when
# the analyses given it reach each of its functions between them (the union of their
# logs); not_whole_yet lists exactly the files that neither reaches.
union_missed() {
    logs=
    for g in $given; do
        case $g in "$1="*) logs="$logs,${g#*=}" ;; esac
    done
    python3 proofs/coverage.py --unreached "${logs#,}" "$1"
}
for f in $(echo "$partly" | tr ' ' '\n' | sort -u); do
    case " $whole " in *" $f "*) continue ;; esac
    missed=$(union_missed "$f")
    case " $not_whole_yet " in
    *" $f "*)
        [ -n "$missed" ] || name=all log=/dev/null \
            fail "the analyses reach the whole of $f between them now: take it off not_whole_yet" ;;
    *)
        [ -z "$missed" ] || name=all log=/dev/null \
            fail "no analysis reaches the whole of $f, nor do they between them: $(echo "$missed" | tr '\n' ' ')" ;;
    esac
done
for f in $not_whole_yet; do
    case " $whole " in
    *" $f "*) name=all log=/dev/null fail "$f is reached whole now: take it off not_whole_yet" ;;
    esac
done
for f in $shim_left; do
    case " $reached " in *" $f "*) ;; *) name=all log=/dev/null fail "no analysis reaches the shim's $f" ;; esac
done
# shellcheck disable=SC2086
python3 proofs/coverage.py $fns $cover
