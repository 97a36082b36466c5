# SPDX-License-Identifier: ISC
# Sourced by proofs/wp.sh, proofs/mutate.sh and proofs/eva.sh: the one place that says
# how Frama-C is run on this tree. POSIX sh; the caller has done `set -eu` and cd'ed to
# the top of the tree.

top=$(pwd)
out=${PROOFS_OUT:-build/proofs}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Frama-C parses with its own libc headers; the core needs the public and private
# include paths, and every core file gets the logic of proofs/core.acsl before its own
# text (-include), so the contracts above the definitions can use its predicates.
cpp_core="-I$top/include -I$top/src -include $top/proofs/core.acsl"

# What WP reads: the core exactly as the library compiles it (GNUmakefile's CORE_SRC),
# plus the trusted contracts.
core_files=$(ls src/core/*.c)
trusted=proofs/trusted.c

# The machine models that every core function is proved under, each named explicitly
# rather than left to Frama-C's default: 64-bit size_t (LP64) and 32-bit size_t (ILP32).
# uint64_t, the handles' type, is 64 bits in both. PROOFS_MACHDEPS narrows a run to some
# of them (then wp.sh compares nothing with proofs/results/).
all_machdeps="x86_64 x86_32"
machdeps=${PROOFS_MACHDEPS:-$all_machdeps}

# core_functions: "FILE FUNCTION" for each function defined in src/core/*.c, as Frama-C's
# own parser sees it (the metrics plugin's "Defined functions", one run per file), so
# that a new function is proved, mutated and traced whatever its text layout.
core_functions() {
    for f in $core_files; do
        if ! frama-c -machdep x86_64 -cpp-extra-args="$cpp_core" "$f" -metrics \
                > "$out/metrics.log" 2>&1; then
            echo "proofs: Frama-C cannot parse $f:" >&2
            tail -5 "$out/metrics.log" >&2
            exit 1
        fi
        awk -v file="$f" '
        /^\[metrics\] Defined functions/ { on = 1; next }
        on && /=====/ { next }
        on && /^ *$/ { exit }
        on { n = split($0, w, ";")
             for (i = 1; i <= n; i++) {
                 g = w[i]; sub(/^ */, "", g); sub(/ \(.*/, "", g)
                 if (g != "") print file " " g } }' "$out/metrics.log"
    done
}

# The memory model: Typed, except for the functions that take void * and work through
# unsigned char *. That cast needs Typed+cast, and it is sound there because all the
# bytes of the core are read and written as unsigned char: no memory is ever seen
# through two different types.
model_of() {
    case $1 in
    smi_wipe|smi_equal) echo Typed+cast ;;
    *) echo Typed ;;
    esac
}
# Unsigned wrap-around is a run-time error to prove absent in every function, except in
# the two constant-time compares: there `d - 1u` wraps on purpose when d == 0 (that is
# how the result is computed without a branch), and their ensures pin the result down.
checks_of() {
    case $1 in
    smi_equal|smi_canary_ok) echo "-warn-signed-downcast" ;;
    *) echo "-warn-signed-downcast -warn-unsigned-overflow -warn-unsigned-downcast" ;;
    esac
}

# A private Why3 configuration, so that a user's ~/.why3.conf (other limits, other
# provers) cannot change the outcome. Detection takes a few hundredths of a second.
WHY3CONFIG=$out/why3.conf
export WHY3CONFIG
if [ ! -s "$WHY3CONFIG" ] || ! grep -q '"Z3"' "$WHY3CONFIG" || ! grep -q '"CVC4"' "$WHY3CONFIG"; then
    why3 config detect >/dev/null 2>&1 || true
    if ! grep -q '"Z3"' "$WHY3CONFIG" || ! grep -q '"CVC4"' "$WHY3CONFIG"; then
        echo "proofs: why3 does not detect both z3 and cvc4 (run ci/install-deps proofs)" >&2
        exit 1
    fi
fi

# The versions of proofs/versions, or a refusal.
check_versions() {
    have_framac=$(frama-c -version)
    have_why3=$(why3 --version | sed -n 's/.*version \([0-9.]*\).*/\1/p')
    have_z3=$(z3 --version | sed -n 's/^Z3 version \([0-9.]*\).*/\1/p')
    have_cvc4=$(cvc4 --version | sed -n 's/.*CVC4 version \([0-9.]*\).*/\1/p')
    bad=
    while IFS='	' read -r tool want; do
        case $tool in ''|'#'*) continue ;; esac
        eval "have=\$have_$(echo "$tool" | tr -d -)"
        if [ "$have" != "$want" ]; then
            echo "proofs: $tool is '$have', proofs/versions pins '$want'" >&2
            bad=1
        fi
    done < proofs/versions
    if [ -n "$bad" ] && [ "${PROOFS_ANY_VERSION:-0}" != 1 ]; then
        echo "proofs: refusing other tool versions (PROOFS_ANY_VERSION=1 to try anyway)" >&2
        exit 1
    fi
    echo "proofs: frama-c $have_framac, why3 $have_why3, z3 $have_z3, cvc4 $have_cvc4"
}

# Milliseconds since the epoch (GNU date).
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
