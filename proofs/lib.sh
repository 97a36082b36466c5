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
