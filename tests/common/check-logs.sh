#!/bin/sh
# SPDX-License-Identifier: ISC
# Fail if a sanitizer or Valgrind reported anything into its log directory.
#
#   check-logs.sh valgrind DIR   every DIR/* is one process's Memcheck log (--log-file=
#                                DIR/name.%p); each must say "ERROR SUMMARY: 0 errors"
#   check-logs.sh asan DIR       ASan, LSan and UBSan write DIR/name.<pid> only when they
#                                have something to say (log_path=DIR/name): any report in
#                                one is a failure
#
# Why: Criterion's runner ignores the exit status of a test process once the test has
# reported, so an error that Memcheck or LeakSanitizer finds at the exit of a test
# process (a leak, above all) never fails the run by itself. The logs are the record.
set -eu
tool=$1 dir=$2
[ -d "$dir" ] || { echo "check-logs: no directory $dir" >&2; exit 2; }
bad=0
case "$tool" in
valgrind)
    n=0
    for f in "$dir"/*; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
            echo "check-logs: $f:" >&2
            cat "$f" >&2
            bad=$((bad + 1))
        fi
    done
    [ "$n" -gt 0 ] || { echo "check-logs: no Valgrind log in $dir: did it run?" >&2; exit 2; }
    echo "check-logs: $n Valgrind logs, $bad with errors"
    ;;
asan)
    # A report has an "ERROR:" or a "runtime error:" line and a SUMMARY line. Anything
    # else is a notice, such as LSan's "Running thread ... was not suspended" in a child
    # forked from a threaded test: shown, not failed.
    notes=0
    for f in "$dir"/*; do
        [ -f "$f" ] || continue
        if grep -Eq "ERROR: |runtime error: |^SUMMARY: " "$f"; then
            echo "check-logs: $f:" >&2
            cat "$f" >&2
            bad=$((bad + 1))
        else
            sed "s|^|check-logs: notice: |" "$f"
            notes=$((notes + 1))
        fi
    done
    echo "check-logs: $bad sanitizer reports, $notes notices"
    ;;
*)
    echo "usage: check-logs.sh valgrind|asan DIR" >&2
    exit 2
    ;;
esac
[ "$bad" -eq 0 ]
