#!/usr/bin/env bash
# gotest.sh LOG ARGS...: runs `go test ARGS...`, writes the whole output to LOG and prints the
# summary lines (ok / FAIL / --- PASS|FAIL|SKIP / panic). Exits with go test's status.
set -uo pipefail
log=$1
shift
mkdir -p "$(dirname "$log")"
echo "go test $*  (full log: $log)"
go test "$@" >"$log" 2>&1
rc=$?
grep -E '^(ok|FAIL|panic:|\?)|^ *--- (PASS|FAIL|SKIP)|^# |\.go:[0-9]+:[0-9]+: ' "$log" | grep -v '^\?' || true
if [ $rc -ne 0 ]; then
	echo "go test failed (exit $rc); failures with context:"
	if grep -qE '^ *--- FAIL' "$log"; then
		grep -E -B2 -A20 '^ *--- FAIL' "$log" | head -300
	else
		head -40 "$log"
	fi
fi
exit $rc
