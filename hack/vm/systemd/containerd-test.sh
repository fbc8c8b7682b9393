#!/bin/sh
# containerd.test in the systemd VM (hack/vm/systemd/build.sh installs it for the VM_SD_TESTS
# entry "containerd"): box containers through a real containerd and ctr with the runtime option
# SystemdCgroup, on systemd (pid 1) and cgroup2. It speaks the part of a go test binary's command
# line run-tests uses (-test.list, -test.run '^Name$') and prints go test's "=== RUN" /
# "--- PASS|FAIL: Name (Ns)" lines. Each test starts a private containerd in /run/ctd-test and
# stops it again. ctr passes the options as CRI's runtimeoptions (--runtime-config-path, a TOML
# file with SystemdCgroup = true), as a CRI runtime handler with options would.
D=/tests/containerd
export PATH=$D/bin:/usr/sbin:/usr/bin:/sbin:/bin
TESTS="TestContainerdSystemdScope TestContainerdSystemdDriverMismatch"
RUN=/run/ctd-test
SLICE=box_test_ctd.slice
RT=io.containerd.box.v1
IMG=box.test/busybox:latest

list="" run=""
while [ $# -gt 0 ]; do
	case $1 in
	-test.list) list=1; shift ;;
	-test.run) run=$2; shift ;;
	-test.*=*) ;;
	-test.root | -test.v) ;;
	-test.*) shift ;;
	esac
	[ $# -gt 0 ] && shift
done
if [ -n "$list" ]; then
	for t in $TESTS; do echo "$t"; done
	exit 0
fi

failed=0
fail() { echo "    containerd.test: $*"; failed=1; }
ctr() { command ctr -a "$RUN/c.sock" -n box-test "$@"; }

start_containerd() {
	rm -rf "$RUN"
	mkdir -p "$RUN"
	printf 'SystemdCgroup = true\n' >"$RUN/box-systemd.toml"
	cat >"$RUN/config.toml" <<EOC
version = 3
root = "$RUN/root"
state = "$RUN/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$RUN/c.sock"
[ttrpc]
  address = "$RUN/c.sock.ttrpc"
[debug]
  address = "$RUN/d.sock"
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$RUN/s"
EOC
	containerd --config "$RUN/config.toml" >"$RUN/containerd.log" 2>&1 &
	CTD=$!
	i=0
	while ! ctr version >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 600 ] || ! kill -0 $CTD 2>/dev/null; then
			fail "containerd did not start"
			return 1
		fi
		sleep 0.1
	done
	ctr images import "$D/busybox.tar" >/dev/null 2>&1 || { fail "ctr images import failed"; return 1; }
}

stop_containerd() {
	if [ -n "${CTD:-}" ]; then
		kill -TERM "$CTD" 2>/dev/null
		i=0
		while kill -0 "$CTD" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$CTD" 2>/dev/null
		wait "$CTD" 2>/dev/null
	fi
	if [ $failed -ne 0 ]; then
		echo "    --- containerd log (tail) ---"
		tail -n 40 "$RUN/containerd.log" | sed 's/^/    /'
	fi
	systemctl stop "$SLICE" 2>/dev/null
	grep " $RUN" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$RUN"
}

# ctr run -d with SystemdCgroup: the task runs in the transient scope box-c1.scope in the slice,
# with the memory limit as a unit property and in memory.max; pause/resume; kill, delete: the
# scope and its cgroup are gone.
TestContainerdSystemdScope() {
	local dir mem prop state i
	ctr run -d --fifo-dir "$RUN/fifo" --runtime $RT --runtime-config-path "$RUN/box-systemd.toml" \
		--cgroup "$SLICE:box:c1" --memory-limit 67108864 $IMG c1 sleep 1000 >"$RUN/run.out" 2>&1 ||
		{ fail "ctr run -d failed: $(cat "$RUN/run.out")"; return; }
	ctr task ls | grep -E "^c1 .*RUNNING" >/dev/null || fail "task c1 not RUNNING: $(ctr task ls)"
	state=$(systemctl is-active box-c1.scope)
	[ "$state" = active ] || fail "box-c1.scope is '$state', want active"
	dir=/sys/fs/cgroup/$SLICE/box-c1.scope
	[ -n "$(cat "$dir/cgroup.procs" 2>/dev/null)" ] || fail "no process in $dir"
	mem=$(cat "$dir/memory.max" 2>/dev/null)
	[ "$mem" = 67108864 ] || fail "memory.max = '$mem', want 67108864"
	prop=$(systemctl show -p MemoryMax --value box-c1.scope)
	[ "$prop" = 67108864 ] || fail "MemoryMax of box-c1.scope = '$prop', want 67108864"
	ctr task pause c1 || fail "pause failed"
	[ "$(cat "$dir/cgroup.freeze" 2>/dev/null)" = 1 ] || fail "cgroup.freeze not 1 after pause"
	ctr task resume c1 || fail "resume failed"
	ctr task exec --exec-id e1 c1 sh -c 'cat /proc/self/cgroup' >"$RUN/exec.out" 2>&1 || fail "exec failed: $(cat "$RUN/exec.out")"
	grep -qxE "0::/|0::/$SLICE/box-c1.scope" "$RUN/exec.out" || fail "exec's cgroup: $(cat "$RUN/exec.out")"
	ctr task kill -s SIGKILL c1 || fail "kill failed"
	i=0
	while ctr task ls | grep -E "^c1 .*RUNNING" >/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	ctr task delete c1 >/dev/null || fail "task delete failed"
	ctr containers delete c1 || fail "container delete failed"
	[ ! -d "$dir" ] || fail "cgroup $dir left after delete"
	state=$(systemctl is-active box-c1.scope)
	[ "$state" != active ] || fail "box-c1.scope still active after delete"
}

# The cgroupsPath and the option must agree, as runc's --systemd-cgroup demands: a
# slice:prefix:name path without SystemdCgroup is refused naming the option, SystemdCgroup with
# a cgroupfs path is refused naming the form; neither leaves a scope or a cgroup behind. (One
# test, so that containerd starts once: each start costs ~20 s under TCG.)
TestContainerdSystemdDriverMismatch() {
	if ctr run --rm --fifo-dir "$RUN/fifo" --runtime $RT --cgroup "$SLICE:box:c2" $IMG c2 true >"$RUN/run.out" 2>&1; then
		fail "ctr run with a systemd path and no SystemdCgroup succeeded"
	fi
	grep -q SystemdCgroup "$RUN/run.out" || fail "error does not name SystemdCgroup: $(cat "$RUN/run.out")"
	ctr containers delete c2 >/dev/null 2>&1
	if systemctl is-active -q box-c2.scope; then fail "box-c2.scope exists"; fi

	if ctr run --rm --fifo-dir "$RUN/fifo" --runtime $RT --runtime-config-path "$RUN/box-systemd.toml" \
		--cgroup /box-test-ctd/c3 $IMG c3 true >"$RUN/run.out" 2>&1; then
		fail "ctr run with SystemdCgroup and a cgroupfs path succeeded"
	fi
	grep -q "slice:prefix:name" "$RUN/run.out" || fail "error does not name slice:prefix:name: $(cat "$RUN/run.out")"
	ctr containers delete c3 >/dev/null 2>&1
	[ ! -d /sys/fs/cgroup/box-test-ctd ] || fail "cgroup /box-test-ctd was created"
	rmdir /sys/fs/cgroup/box-test-ctd/c3 /sys/fs/cgroup/box-test-ctd 2>/dev/null
}

rc=0
for t in $TESTS; do
	case $t in $(echo "$run" | sed 's/^\^//; s/\$$//')) ;; *) [ -z "$run" ] || continue ;; esac
	echo "=== RUN   $t"
	s=$(cut -d' ' -f1 /proc/uptime)
	failed=0 CTD=""
	start_containerd && $t
	stop_containerd
	e=$(awk -v a="$s" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%.2f", b - a}')
	if [ $failed -eq 0 ]; then
		echo "--- PASS: $t (${e}s)"
	else
		echo "--- FAIL: $t (${e}s)"
		rc=1
	fi
done
[ $rc -eq 0 ] && echo PASS || echo FAIL
exit $rc
