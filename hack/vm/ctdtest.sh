# ctdtest.sh: the framework both VMs' containerd.test scripts share (hack/vm/containerd-test.sh,
# hack/vm/systemd/containerd-test.sh; the builds install it as /tests/containerd/ctdtest.sh).
# A script sets TESTS (shell functions, one per test) and may define after_start and
# after_stop (per-VM cgroup setup and cleanup), then sources this file with its arguments.
# It speaks the part of a go test binary's command line the VMs' runners use (-test.list,
# -test.run '^Name$'; other flags are ignored) and prints go test's "=== RUN" /
# "--- PASS|FAIL: Name (Ns)" lines, so they and integration/vm treat it like a package test
# binary. Each test gets a private containerd (root, state and sockets in /run/ctd-test) that is
# stopped again afterwards; binaries and the image are in /tests/containerd.

D=/tests/containerd
RUN=/run/ctd-test
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
	if command -v after_start >/dev/null; then after_start; fi
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
	if command -v after_stop >/dev/null; then after_stop; fi
	grep " $RUN" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$RUN"
}

# run_tests runs the selected tests; the script exits with its status.
run_tests() {
	local rc=0 t s e
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
	return $rc
}
