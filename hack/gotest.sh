#!/usr/bin/env bash
# gotest.sh LOG ARGS...: runs `go test -v ARGS...`, writes the whole output to LOG and prints the
# package summary lines (ok / FAIL / panic), failures with context, and a count of the tests
# that passed, failed and were skipped. Exits with go test's status.
set -uo pipefail
log=$1
shift
mkdir -p "$(dirname "$log")"
echo "go test $*  (full log: $log)"
go test -v "$@" >"$log" 2>&1
rc=$?
grep -E '^(ok|FAIL|panic:)|^ *--- (FAIL|SKIP)|^# |\.go:[0-9]+:[0-9]+: ' "$log" | grep -vE '^\s+\S+_test\.go:[0-9]+: ' || true
if [ $rc -ne 0 ]; then
	echo "go test failed (exit $rc); failures with context:"
	if grep -qE '^ *--- FAIL' "$log"; then
		grep -E -B2 -A20 '^ *--- FAIL' "$log" | head -300
	else
		head -40 "$log"
	fi
fi
pass=$(grep -cE '^ *--- PASS' "$log")
fail=$(grep -cE '^ *--- FAIL' "$log")
skip=$(grep -cE '^ *--- SKIP' "$log")
echo "tests: $pass passed, $fail failed, $skip skipped"
exit $rc
