#!/bin/sh
# containerd.test in the VM (hack/vm/build.sh installs it as /tests/bin/containerd.test for the
# VM_TESTS entry "containerd"): a box container lifecycle through a real containerd and ctr,
# with the box shim, on the VM's pure cgroup2. The framework (flags, a containerd per test, the
# go test output) is hack/vm/ctdtest.sh.
export PATH=/tests/containerd/bin:/bin:/sbin:/usr/bin:/usr/sbin
TESTS="TestContainerdRunBox TestContainerdDetachedKillDelete"
CG=/box-test-vm

after_start() { mkdir -p /sys/fs/cgroup$CG; }
after_stop() { rmdir /sys/fs/cgroup$CG/* /sys/fs/cgroup$CG 2>/dev/null; }

. /tests/containerd/ctdtest.sh

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

run_tests
