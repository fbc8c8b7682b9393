#!/usr/bin/env bash
# fuzz.sh LOG [PKG...]: runs every Go fuzz target of the packages (default ./...) for FUZZTIME
# each (default 6s), one after the other, and prints one line per target with the executions
# it ran. LOG gets exactly one "--- PASS: <Fuzz>" or "--- FAIL: <Fuzz>" line per target (so
# `make check` counts each target once); the full go test output of a target is in
# <LOG dir>/fuzz/<Fuzz>.out. A failing target leaves its crasher in the package's
# testdata/fuzz/<Fuzz>/ (go test writes it there): fix the bug and commit the crasher with the fix.
# Packages whose tests import containerd's testutil get -test.root, so root-only targets run
# when this runs as root (as in roottest.sh). Exits non-zero if any target failed.
set -uo pipefail
log=$1
shift
[ $# -gt 0 ] || set -- ./...
fuzztime=${FUZZTIME:-6s}
outdir=$(dirname "$log")/fuzz
mkdir -p "$outdir"
: >"$log"
testutil=github.com/containerd/containerd/v2/pkg/testutil

rc=0 total=0 count=0 start=$SECONDS
while read -r pkg dir imports; do
	# Targets are found by listing, so a new Fuzz function is fuzzed without editing this file.
	targets=$(cd "$dir" && grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' ./*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' | sort -u)
	[ -n "$targets" ] || continue
	rootflag=()
	if [[ " $imports " == *" $testutil "* ]]; then rootflag=(-args -test.root); fi
	for name in $targets; do
		out=$outdir/$name.out
		t0=$SECONDS
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" "${rootflag[@]}" >"$out" 2>&1
		status=$?
		# Go 1.26's fuzzing coordinator can report its own -fuzztime deadline as a failure when
		# the time runs out mid-input (go.dev/issue/75804, fixed in Go 1.27): "context deadline
		# exceeded" and no failing input written. Run such a target again once; if the engine
		# races again, it counts as run (no input failed; `make test` replays the corpus). A real
		# failure writes its input and is never retried.
		deadline_only() { grep -q 'context deadline exceeded' "$1" && ! grep -q 'Failing input written to' "$1"; }
		if [ $status -ne 0 ] && deadline_only "$out"; then
			echo "fuzz: $name: the engine reported its own deadline (go.dev/issue/75804); running it again"
			mv "$out" "$out.deadline"
			go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" "${rootflag[@]}" >"$out" 2>&1
			status=$?
			if [ $status -ne 0 ] && deadline_only "$out"; then
				echo "fuzz: $name: the engine's deadline race again; counted as run, no input failed"
				echo "ok (engine deadline race twice, go.dev/issue/75804)" >>"$out"
				status=0
			fi
		fi
		# The last progress line: "fuzz: elapsed: 10s, execs: 12345 (1234/sec), new interesting: 3 (total: 20)".
		last=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$out" | tail -1)
		execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
		newi=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
		execs=${execs:-0}
		count=$((count + 1))
		total=$((total + execs))
		if [ $status -eq 0 ] && grep -qE '^ok ' "$out"; then
			printf 'fuzz: %-22s %-50s %9s execs, %3s new inputs, %3ds\n' "$name" "$pkg" "$execs" "${newi:-0}" $((SECONDS - t0))
			echo "--- PASS: $name ($execs execs, $fuzztime)" >>"$log"
		else
			rc=1
			printf 'fuzz: %-22s %-50s FAILED after %s execs (output: %s)\n' "$name" "$pkg" "$execs" "$out"
			grep -E -A15 '^\s*--- FAIL|^panic:|Failing input written to' "$out" | head -40
			grep -oE 'testdata/fuzz/[A-Za-z0-9_]+/[0-9a-f]+' "$out" | sed "s|^|fuzz: crasher (commit it with the fix): $dir/|"
			echo "--- FAIL: $name ($execs execs)" >>"$log"
		fi
	done
	if [ ${#rootflag[@]} -gt 0 ]; then
		# The engine stops its workers mid-input when the time is up, so a root target's
		# cleanup may not have run; one ordinary run of the package's targets over their
		# corpora lets them sweep what the stopped workers left (FuzzTaskSequence's cgroups).
		if ! go test -count=1 -run '^Fuzz' "$pkg" "${rootflag[@]}" >"$outdir/sweep-${pkg##*/}.out" 2>&1; then
			echo "fuzz: corpus run after fuzzing failed: $outdir/sweep-${pkg##*/}.out"
			echo "--- FAIL: corpus run of $pkg after fuzzing" >>"$log"
			rc=1
		fi
	fi
done < <(go list -f '{{.ImportPath}} {{.Dir}} {{join .TestImports " "}} {{join .XTestImports " "}}' "$@")
# A worker stopped mid-input can leave its container running, which the corpus run's sweep skips
# (it removes only empty cgroups): kill what runs in FuzzTaskSequence's cgroup parents
# (box-test-fuzztask-<pid>-*) whose test process is gone, and remove them.
# shellcheck source=hack/lib.sh
. "$(dirname "$0")/lib.sh"
for d in /sys/fs/cgroup/*/box-test-fuzztask-*; do
	[ -d "$d" ] || continue
	name=$(basename "$d")
	owner=${name#box-test-fuzztask-}
	owner=${owner%%-*}
	kill -0 "$owner" 2>/dev/null && continue
	kill_cgroup "$name"
	rmdir_cgroup "$name" || echo "fuzz: could not remove cgroup $name"
done
echo "fuzz: $count targets, $total executions in $((SECONDS - start))s ($fuzztime each)"
exit $rc
