#!/usr/bin/env bash
# client-suite.sh: runs containerd's own client suite (integration/client of the pinned
# containerd module) against box and, as the control, against the runc shim, offline.
#
# For each runtime the suite runs in namespaces of its own (mount, cgroup, pid, network):
#   * /run, /var/lib and /tmp are bind mounts of /run/box-test-suite-<rand>/{run,varlib,tmp}, so
#     the suite's fixed paths (its daemon's root and state, the client's fifo dir, shim sockets)
#     never touch the host's; the host's /run/containerd is not even visible.
#   * cgroups: the namespace's cgroup root is /box-test-suite-<rand> in every hierarchy (the
#     hierarchies are remounted inside), so every cgroup the suite makes ("/testing/<id>",
#     "/containerd/shim", ...) is created below it.
#   * pid 1 of the pid namespace is this script: when it exits, the kernel kills containerd,
#     shims and containers with it.
#   * network: only a loopback. integration/registry serves the suite's images (built locally
#     from the host's busybox) on 127.0.0.1:5000 (-image-list) and answers the references the
#     suite hard-codes through an HTTPS proxy on 127.0.0.1:5001 with its own throwaway CA.
# The suite starts its containerd itself (so its restart tests work), from PATH: a private bin
# dir with copies of containerd, ctr and the box shim, plus containerd-shim-runc-v2, runc and
# the suite's runc-fp for the control run only.
#
# Results: _output/client-suite/{box,runc}.log (full -test.v output) and .results
# ("Test<TAB>PASS|FAIL|SKIP|NORESULT"). Box's non-passing tests are compared with
# integration/client-suite-expected.txt ("Test<TAB>reason"): the run fails when a test not
# listed does not pass on box, or when a listed test passes (so the list stays honest). The
# tests listed as "runc-specific" (they run runc, not box) are not run on box.
#
# Env: TOOLS PEER SHIM (the Makefile's paths), CONTAINERD_VERSION, SUITE_TIMEOUT (go duration,
# per runtime, default 10m), SUITE_RUN (a -test.run regexp; with it, the list is not enforced
# for tests that did not run), RUNTIMES (default "box runc").
set -uo pipefail

# Subtests that cannot run offline, on any runtime: they name an upstream image by its digest,
# which no local build reproduces. (The suite reads its image list only after its package-level
# image variables are set, so -image-list cannot remap them; the proxy serves the rest.)
NOT_OFFLINE='^TestExportAllCases$/^export_image_setting_ocispec.AnnotationRefName$'

# ---------------------------------------------------------------------------------------------
# Inside the namespaces (pid 1). Everything it needs comes in the environment (CS_*).
inner() {
	set -eu
	[ -z "${CS_TRACE:-}" ] || set -x
	local w=$CS_DIR name=$CS_NAME
	# private /run, /var/lib, /tmp; the work dir stays reachable at its host path
	mkdir -p "$w/run/$name" "$w/varlib" "$w/tmp"
	chmod 1777 "$w/tmp"
	mount --bind "$w" "$w/run/$name"
	mount --rbind "$w/run" /run
	mount --bind "$w/varlib" /var/lib
	mount --bind "$w/tmp" /tmp
	# remount every cgroup hierarchy: inside the cgroup namespace its root is our cgroup
	local mp fstype opts
	while read -r mp fstype opts; do
		opts=$(tr ',' '\n' <<<"$opts" | { grep -vxE 'rw|ro|nsdelegate' || true; } | paste -sd, -)
		# the kernel refuses the same superblock twice on one mount point: take the host's off
		# (in this mount namespace only) first
		umount -l "$mp"
		if [ "$fstype" = cgroup2 ]; then
			mount -t cgroup2 ${opts:+-o "$opts"} cgroup2 "$mp"
		else
			mount -t cgroup -o "${opts:-none}" cgroup "$mp"
		fi
	done < <(awk '{for (i = 7; $i != "-"; i++); if (($(i+1) == "cgroup" || $(i+1) == "cgroup2") && index($5, "/sys/fs/cgroup/") == 1) print $5, $(i+1), $(i+3)}' /proc/self/mountinfo)
	ip link set lo up

	mkdir -p "$w/registry"
	"$CS_REGISTRY" -addr 127.0.0.1:5000 -proxy 127.0.0.1:5001 -out "$w/registry" 2>"$w/registry.log" &
	local reg=$!
	for _ in $(seq 100); do
		[ -f "$w/registry/image-list.toml" ] && break
		kill -0 "$reg" 2>/dev/null || { cat "$w/registry.log" >&2; exit 1; }
		sleep 0.1
	done
	[ -f "$w/registry/image-list.toml" ] || { echo "client-suite: registry did not start" >&2; exit 1; }

	local args=(-test.root -test.v -test.timeout "$CS_TIMEOUT" -no-criu -image-list "$w/registry/image-list.toml"
		-test.skip "$NOT_OFFLINE")
	[ -z "${CS_RUN:-}" ] || args+=(-test.run "$CS_RUN")
	set +e
	# the suite reads testdata/ relative to its package directory
	(cd "$CS_SUITE_DIR" && exec env -i PATH="$w/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/root TMPDIR=/tmp \
		TEST_RUNTIME="$CS_RUNTIME" SSL_CERT_FILE="$w/registry/ca.pem" \
		HTTPS_PROXY=http://127.0.0.1:5001 HTTP_PROXY=http://127.0.0.1:5001 NO_PROXY=127.0.0.1,localhost \
		./client.test "${args[@]}")
	local rc=$?
	kill "$reg" 2>/dev/null
	wait "$reg" 2>/dev/null
	echo "--- registry log ---"
	grep -v -- '-> 200$\|-> 206$\|answered locally' "$w/registry.log" || true
	exit $rc
}

if [ "${1:-}" = __inner ]; then
	inner
	exit 1
fi

# ---------------------------------------------------------------------------------------------
cd "$(dirname "$0")/.."
. hack/lib.sh

OUT=_output
TOOLS=$(realpath -m "${TOOLS:-$OUT/tools}")
PEER=$(realpath -m "${PEER:-$OUT/peer/bin}")
SHIM=$(realpath -m "${SHIM:-$OUT/bin/containerd-shim-box-v1}")
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-10m}
RUNTIMES=${RUNTIMES:-box runc}
EXPECTED=integration/client-suite-expected.txt
SUITE=$TOOLS/suite
# not $OUT/*.log: make check counts the --- PASS lines there, and these logs hold the control's too
RES=$OUT/client-suite
CD=github.com/containerd/containerd/v2

[ "$(id -u)" -eq 0 ] || { echo "client-suite: needs root" >&2; exit 1; }
for tool in unshare setpriv timeout ip lsof ps; do
	command -v "$tool" >/dev/null || { echo "client-suite: $tool is missing (apt-get install util-linux coreutils iproute2 lsof procps)" >&2; exit 1; }
done
for f in "$TOOLS/bin/containerd" "$TOOLS/bin/ctr" "$SHIM" "$SHIM-daemon"; do
	[ -x "$f" ] || { echo "client-suite: $f missing: make build tools" >&2; exit 1; }
done
start=$SECONDS

# The suite binary, built once per containerd version: `go test -c` of integration/client inside
# a writable copy of the module source (as hack/tools.sh builds inside the module so that its
# go.mod replace/exclude directives apply), with its testdata next to it, and the suite's
# runc-fp (a failpoint wrapper around runc that two tests name as the runc binary).
build_suite() {
	local stamp="$CD@$CONTAINERD_VERSION"
	if [ -x "$SUITE/client.test" ] && [ -x "$SUITE/runc-fp" ] &&
		[ "$(cat "$SUITE/client.test.version" 2>/dev/null)" = "$stamp" ]; then
		echo "client-suite: $SUITE/client.test is $stamp (cached)"
		return
	fi
	echo "client-suite: building the client suite of $stamp"
	local src tmp
	src=$(cd / && GOFLAGS=-mod=mod go mod download -json "$stamp" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$src" ] || { echo "client-suite: cannot download $stamp" >&2; return 1; }
	tmp=$(mktemp -d)
	cp -r "$src/." "$tmp/" && chmod -R u+w "$tmp"
	mkdir -p "$SUITE"
	rm -f "$SUITE/client.test.version"
	if ! GOFLAGS="-buildvcs=false -mod=mod" GOWORK=off go test -C "$tmp" -c -tags no_btrfs \
		-o "$SUITE/client.test" ./integration/client ||
		! GOFLAGS="-buildvcs=false -mod=mod" GOWORK=off go build -C "$tmp" -o "$SUITE/runc-fp" ./integration/failpoint/cmd/runc-fp; then
		rm -rf "$tmp"
		return 1
	fi
	rm -rf "$SUITE/testdata"
	cp -r "$tmp/integration/client/testdata" "$SUITE/testdata"
	rm -rf "$tmp"
	echo "$stamp" >"$SUITE/client.test.version"
}
build_suite || exit 1
go build -o "$SUITE/registry" ./integration/registry || exit 1

# cgroup hierarchies (v1 controllers, named ones and the hybrid cgroup2)
cgroup_roots() {
	awk '{for (i = 7; $i != "-"; i++); if (($(i+1) == "cgroup" || $(i+1) == "cgroup2") && index($5, "/sys/fs/cgroup/") == 1) print $5}' /proc/self/mountinfo
}

CUR_DIR="" CUR_NAME="" CUR_PID=""
cleanup_run() {
	[ -n "$CUR_DIR" ] || return 0
	# pid 1 of the namespace: killing it kills everything inside (containerd, shims, containers)
	if [ -n "$CUR_PID" ]; then
		kill -KILL "$CUR_PID" 2>/dev/null
		wait "$CUR_PID" 2>/dev/null
	fi
	# what is left: processes outside the pid namespace that still sit in our cgroups (none expected)
	local root procs
	for root in $(cgroup_roots); do
		[ -d "$root/$CUR_NAME" ] || continue
		while read -r procs; do
			# shellcheck disable=SC2046
			kill_pids KILL $(cat "$procs" 2>/dev/null)
		done < <(find "$root/$CUR_NAME" -name cgroup.procs)
	done
	sleep 0.2
	unmount_under "$CUR_DIR"
	local tries
	for tries in 1 2 3 4 5 6 7 8 9 10; do
		rmdir_cgroup "$CUR_NAME"
		local left=0
		for root in $(cgroup_roots); do [ -d "$root/$CUR_NAME" ] && left=1; done
		[ $left -eq 0 ] && break
		sleep 0.5
	done
	for root in $(cgroup_roots); do
		[ -d "$root/$CUR_NAME" ] && echo "client-suite: could not remove cgroup $root/$CUR_NAME" >&2
	done
	rm -rf "$CUR_DIR"
	CUR_DIR="" CUR_NAME="" CUR_PID=""
}
trap 'cleanup_run' EXIT
trap 'cleanup_run; exit 130' INT TERM

# run_suite box|runc: one run of the suite; writes $RES/$rt.{log,results}
run_suite() {
	local rt=$1 runtime
	case $rt in
	box) runtime=io.containerd.box.v1 ;;
	runc) runtime=io.containerd.runc.v2 ;;
	*) echo "client-suite: unknown runtime $rt" >&2; return 1 ;;
	esac
	local name w log=$RES/$rt.log
	name=box-test-suite-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	w=/run/$name
	mkdir -m 0700 "$w" "$w/bin" || return 1
	CUR_DIR=$w CUR_NAME=$name
	# copies, not links: the namespace hides /tmp, /run and /var/lib, and a rebuild of the shim
	# during the run must not change what runs
	cp "$TOOLS/bin/containerd" "$TOOLS/bin/ctr" "$SHIM" "$SHIM-daemon" "$w/bin/" || return 1
	# the suite, its testdata and the registry too: the repository may itself live under /tmp
	# (or /run, /var/lib), which the namespace replaces
	mkdir "$w/suite" || return 1
	cp -r "$SUITE/client.test" "$SUITE/testdata" "$SUITE/registry" "$w/suite/" || return 1
	if [ "$rt" = runc ]; then
		[ -x "$PEER/runc" ] && [ -x "$PEER/containerd-shim-runc-v2" ] || { echo "client-suite: peer missing: make tools" >&2; return 1; }
		# runc-fp: runc behind the suite's failpoint wrapper (TestIssue9103, TestIssue10589)
		cp "$PEER/runc" "$PEER/containerd-shim-runc-v2" "$SUITE/runc-fp" "$w/bin/" || return 1
	fi
	local root
	for root in $(cgroup_roots); do
		mkdir "$root/$name" || return 1
		if [ -f "$root/cpuset.cpus" ]; then
			cat "$root/cpuset.cpus" >"$root/$name/cpuset.cpus"
			cat "$root/cpuset.mems" >"$root/$name/cpuset.mems"
		fi
	done
	# box skips the tests that only exercise runc (reason "runc-specific" in the list): they do
	# not run box at all, and some hang when box stands in for runc
	local run=${SUITE_RUN:-}
	if [ "$rt" = box ] && [ -z "$run" ]; then
		run="^($(all_tests '.*' | grep -vxF -f <(runc_specific) | paste -sd'|'))\$"
	fi
	echo "client-suite: $rt ($runtime) in $w, log $log"
	local t0=$SECONDS
	(
		for root in $(cgroup_roots); do echo "$BASHPID" >"$root/$name/cgroup.procs"; done
		export CS_DIR=$w CS_NAME=$name CS_RUNTIME=$runtime CS_TIMEOUT=$SUITE_TIMEOUT CS_RUN=$run \
			CS_REGISTRY=$w/suite/registry CS_SUITE_DIR=$w/suite
		# pdeathsig: if this script dies, the namespace's pid 1 dies and takes everything with it
		exec setpriv --pdeathsig KILL unshare --mount --cgroup --pid --net --fork --kill-child \
			--mount-proc --propagation private -- "$PWD/hack/client-suite.sh" __inner
	) >"$log" 2>&1 &
	CUR_PID=$!
	# backstop beyond the suite's own -test.timeout
	local limit
	limit=$(($(sed -E 's/^([0-9]+)m$/\1/;t;s/.*/30/' <<<"$SUITE_TIMEOUT") * 60 + 120))
	local waited=0
	while kill -0 "$CUR_PID" 2>/dev/null && [ $waited -lt $limit ]; do
		sleep 1
		waited=$((waited + 1))
	done
	wait "$CUR_PID" 2>/dev/null
	CUR_PID=""
	cleanup_run
	parse "$log" "${run:-.*}" >"$RES/$rt.results"
	echo "client-suite: $rt took $((SECONDS - t0))s"
}

# all_tests REGEXP: the suite's top-level tests that REGEXP selects.
all_tests() {
	"$SUITE/client.test" -test.short -test.list "$1" 2>/dev/null | grep -E '^Test'
}

# runc_specific: the tests the expectation file lists as "runc-specific".
runc_specific() {
	awk -F'\t' '$1 !~ /^#/ && $2 ~ /^runc-specific/ {print $1}' "$EXPECTED"
}

# parse LOG REGEXP: "Test<TAB>STATUS" for every top-level test REGEXP selects, from -test.v
# output. Those without a result line (a panic or the timeout ended the binary) are NORESULT.
parse() {
	local log=$1
	{
		awk '/^--- (PASS|FAIL|SKIP): / {sub(/:$/, "", $2); print $3 "\t" $2}' "$log"
		all_tests "$2" | awk '{print $1 "\tNORESULT"}'
	} | awk -F'\t' '!seen[$1]++' | sort
}

count() { # count RESULTS STATUS
	awk -F'\t' -v s="$2" '$2 == s' "$1" | wc -l
}

rc=0
mkdir -p "$RES"
for rt in $RUNTIMES; do
	run_suite "$rt" || rc=1
done

# One retry for box tests that failed and are not in the expectation file: containerd's suite has
# a few timing-sensitive tests (TestContentClient/CommitErrorState failed once in a few runs on
# both runtimes). A test that passes on the retry is reported as flaky, not hidden; one that
# fails again fails the run.
retry_box() {
	local box=$RES/box.results failed
	[ -f "$box" ] || return 0
	failed=$(awk -F'\t' '$2 == "FAIL" || $2 == "NORESULT" {print $1}' "$box" | grep -vxF -f <(awk -F'\t' '$1 !~ /^#/ && NF {print $1}' "$EXPECTED") || true)
	[ -n "$failed" ] || return 0
	[ "$(wc -l <<<"$failed")" -le 5 ] || return 0
	echo "client-suite: retrying once on box: $(paste -sd' ' <<<"$failed")"
	mv "$box" "$RES/box.first.results"
	mv "$RES/box.log" "$RES/box.first.log"
	SUITE_RUN="^($(paste -sd'|' <<<"$failed"))\$" run_suite box || true
	local retried=$RES/box.retry.results
	mv "$box" "$retried"
	while IFS=$'\t' read -r test status; do
		[ "$status" = PASS ] && echo "client-suite: FLAKY on box: $test failed, then passed on the retry (logs: $RES/box.first.log, $RES/box.log)"
	done <"$retried"
	# the first run's results, with the retried tests' second outcome
	awk -F'\t' 'NR == FNR {r[$1] = $2; next} {print $1 "\t" (($1 in r) ? r[$1] : $2)}' "$retried" "$RES/box.first.results" >"$box"
}
if [[ " $RUNTIMES " == *" box "* ]] && [ -z "${SUITE_RUN:-}" ]; then
	retry_box
fi

summary=""
for rt in $RUNTIMES; do
	r=$RES/$rt.results
	[ -f "$r" ] || continue
	summary+="$rt: $(count "$r" PASS) passed, $(( $(count "$r" FAIL) + $(count "$r" NORESULT) )) failed, $(count "$r" SKIP) skipped; "
done

# box against the expectation file
box=$RES/box.results
runc=$RES/runc.results
if [[ " $RUNTIMES " == *" box "* ]] && [ -f "$box" ]; then
	declare -A expected=()
	while IFS=$'\t' read -r test reason; do
		[[ -z "$test" || "$test" == \#* ]] && continue
		expected[$test]=$reason
	done <"$EXPECTED"
	declare -A ran=()
	while read -r test; do ran[$test]=1; done < <(all_tests '.*')
	while IFS=$'\t' read -r test status; do
		control=""
		if [ -f "$runc" ]; then
			control=$(awk -F'\t' -v t="$test" '$1 == t {print $2}' "$runc")
			control=" (runc: ${control:-not run})"
		fi
		case $status in
		PASS)
			# runc-specific tests do not run on box; with SUITE_RUN they may
			[[ "${expected[$test]:-}" == runc-specific* ]] && continue
			if [ -n "${expected[$test]+x}" ]; then
				echo "client-suite: $test passes on box now: remove it from $EXPECTED"
				rc=1
			fi
			;;
		FAIL | NORESULT)
			if [ -z "${expected[$test]+x}" ]; then
				echo "client-suite: $test: $status on box, not in $EXPECTED$control"
				rc=1
			fi
			;;
		esac
	done <"$box"
	if [ -z "${SUITE_RUN:-}" ]; then
		for test in "${!expected[@]}"; do
			[ -n "${ran[$test]:-}" ] || { echo "client-suite: $EXPECTED lists $test, which the suite does not have"; rc=1; }
		done
	fi
	# the control: runc failing a test is the harness's problem, not box's
	if [ -f "$runc" ]; then
		awk -F'\t' '$2 == "FAIL" || $2 == "NORESULT" {print "client-suite: control: " $1 " " $2 " on runc"}' "$runc"
	fi
fi
echo "client-suite: ${summary%; } (total $((SECONDS - start))s)"
[ $rc -eq 0 ] || echo "client-suite: FAILED (logs: $RES/*.log)"
exit $rc
