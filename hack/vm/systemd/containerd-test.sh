#!/bin/sh
# containerd.test in the systemd VM (hack/vm/systemd/build.sh installs it for the VM_SD_TESTS
# entry "containerd"): box containers through a real containerd and ctr with the runtime option
# SystemdCgroup, on systemd (pid 1) and cgroup2. ctr passes the options as CRI's runtimeoptions
# (--runtime-config-path, a TOML file with SystemdCgroup = true), as a CRI runtime handler with
# options would. The framework (flags, a containerd per test, the go test output) is
# hack/vm/ctdtest.sh.
export PATH=/tests/containerd/bin:/usr/sbin:/usr/bin:/sbin:/bin
TESTS="TestContainerdSystemdScope TestContainerdSystemdDriverMismatch"
SLICE=box_test_ctd.slice

after_start() { printf 'SystemdCgroup = true\n' >"$RUN/box-systemd.toml"; }
after_stop() { systemctl stop "$SLICE" 2>/dev/null; }

. /tests/containerd/ctdtest.sh

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

run_tests
