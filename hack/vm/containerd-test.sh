#!/bin/sh
# containerd.test in the VM (hack/vm/build.sh installs it as /tests/bin/containerd.test for the
# VM_TESTS entry "containerd"): a box container lifecycle through a real containerd and ctr,
# with the box shim, on the VM's pure cgroup2. It speaks the part of a go test binary's command
# line /init uses (-test.list, -test.run '^Name$'; other flags are ignored) and prints go test's
# "=== RUN" / "--- PASS|FAIL|SKIP: Name (Ns)" lines, so /init and integration/vm treat it like the
# package test binaries. Each test starts a private containerd (root, state and sockets in
# /run/ctd-test) and stops it again. Binaries and the image are in /tests/containerd.
D=/tests/containerd
export PATH=$D/bin:/bin:/sbin:/usr/bin:/usr/sbin
TESTS="TestContainerdRunBox TestContainerdDetachedKillDelete"
RUN=/run/ctd-test
CG=/box-test-vm
RT=io.containerd.box.v1
IMG=box.test/busybox:latest

list="" run=""
while [ $# -gt 0 ]; do
	case $1 in
	-test.list) list=1; shift ;;
	-test.run) run=$2; shift ;;
	-test.*=*) ;;
	-test.root | -test.v) ;;
	-test.*) shift ;; # a flag with a value
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
	cat >"$RUN/config.toml" <<EOF
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
EOF
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
	mkdir -p /sys/fs/cgroup$CG
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
	rmdir /sys/fs/cgroup$CG/* /sys/fs/cgroup$CG 2>/dev/null
	grep " $RUN" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$RUN"
}

# ctr run --rm: output, exit status, the container's cgroup while it runs, nothing left after.
TestContainerdRunBox() {
	local out st dir
	out=$(ctr run --rm --fifo-dir "$RUN/fifo" --cgroup "$CG/c1" --runtime $RT $IMG c1 \
		sh -c 'echo hello from box; cat /proc/self/cgroup; hostname; exit 7' 2>&1)
	st=$?
	echo "$out" | sed 's/^/    out: /'
	[ $st -eq 7 ] || fail "ctr run exit status $st, want 7"
	echo "$out" | grep -qx "hello from box" || fail "no greeting in the output"
	echo "$out" | grep -qx "0::/" ||
		echo "$out" | grep -qx "0::$CG/c1" || fail "/proc/self/cgroup is not the container's cgroup"
	[ ! -d /sys/fs/cgroup$CG/c1 ] || fail "cgroup $CG/c1 left after ctr run --rm"
	if ctr containers ls -q | grep -qx c1; then fail "container c1 left after ctr run --rm"; fi
}

# ctr run -d, the task's cgroup and limits on cgroup2, kill, delete.
TestContainerdDetachedKillDelete() {
	local dir mem i
	ctr run -d --fifo-dir "$RUN/fifo" --cgroup "$CG/c2" --memory-limit 67108864 --runtime $RT $IMG c2 sleep 1000 >/dev/null 2>&1 ||
		{ fail "ctr run -d failed"; return; }
	ctr task ls | grep -E "^c2 .*RUNNING" >/dev/null || fail "task c2 not RUNNING: $(ctr task ls)"
	dir=/sys/fs/cgroup$CG/c2
	[ -d "$dir" ] || fail "no cgroup $dir"
	[ -n "$(cat "$dir/cgroup.procs" 2>/dev/null)" ] || fail "no process in $dir"
	mem=$(cat "$dir/memory.max" 2>/dev/null)
	[ "$mem" = 67108864 ] || fail "memory.max = '$mem', want 67108864"
	ctr task pause c2 || fail "pause failed"
	[ "$(cat "$dir/cgroup.freeze" 2>/dev/null)" = 1 ] || fail "cgroup.freeze not 1 after pause"
	ctr task resume c2 || fail "resume failed"
	ctr task kill -s SIGKILL c2 || fail "kill failed"
	i=0
	while ctr task ls | grep -E "^c2 .*RUNNING" >/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	ctr task delete c2 >/dev/null || fail "task delete failed"
	ctr containers delete c2 || fail "container delete failed"
	[ ! -d "$dir" ] || fail "cgroup $dir left after delete"
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
