package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestNamespacesAreNew verifies that each namespace of the default spec is really new: the
// process is pid 1, has its own hostname, sees only lo, and does not see a tmpfs the test
// mounted on the host.
func TestNamespacesAreNew(t *testing.T) {
	c := startBox(t)
	marker := "box-marker-" + harness.RandID(t, "m")
	mnt := filepath.Join(t.TempDir(), marker)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount host marker: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if len(harness.MountsMentioning(marker)) == 0 {
		t.Fatal("negative control: the marker tmpfs is not visible on the host")
	}

	id := harness.RandID(t, "ns")
	hostname := "box-" + id[len(id)-8:]
	script := `echo ==PID==; echo $$; echo ==HOST==; hostname; echo ==NET==; ls /sys/class/net;` +
		` echo ==DEV==; cat /proc/net/dev; echo ==MOUNTS==; cat /proc/self/mountinfo`
	ctr := newContainer(t, c, id, []string{"sh", "-c", script}, oci.WithHostname(hostname))
	r := runToExit(t, c, ctr)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	s := sections(r.stdout)
	if got := strings.TrimSpace(s["PID"]); got != "1" {
		t.Errorf("pid inside = %q, want 1", got)
	}
	host, _ := os.Hostname()
	if got := strings.TrimSpace(s["HOST"]); got != hostname || got == host {
		t.Errorf("hostname inside = %q, want %q (host is %q)", got, hostname, host)
	}
	if got := strings.Fields(s["NET"]); len(got) != 1 || got[0] != "lo" {
		t.Errorf("/sys/class/net inside = %v, want only lo", got)
	}
	for _, line := range strings.Split(s["DEV"], "\n") {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && name != "lo" && !strings.Contains(name, "|") {
			t.Errorf("/proc/net/dev inside lists %q", name)
		}
	}
	if strings.Contains(s["MOUNTS"], marker) {
		t.Errorf("host marker mount %s is visible inside:\n%s", marker, s["MOUNTS"])
	}
	if s["MOUNTS"] == "" {
		t.Error("no mountinfo read inside the container")
	}
}

// TestCgroupLimits verifies that memory and pids limits from the spec land in the container's
// cgroup (read from the host: on this v1 host the container has no cgroup namespace) and that
// its pid 1 is in that cgroup.
func TestCgroupLimits(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "limits")
	const mem = 64 << 20
	ctr := newContainer(t, c, id, []string{"sleep", "600"}, oci.WithMemoryLimit(mem), oci.WithPidsLimit(32))
	task, wait := startTask(t, c, ctr)
	path := c.CgroupPath(id)
	if got := readCgroupFile(t, "memory", path, "memory.limit_in_bytes"); got != strconv.Itoa(mem) {
		t.Errorf("memory.limit_in_bytes = %s, want %d", got, mem)
	}
	if got := readCgroupFile(t, "pids", path, "pids.max"); got != "32" {
		t.Errorf("pids.max = %s, want 32", got)
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(int(task.Pid())), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ctrl := range []string{"memory", "pids"} {
		if !strings.Contains(string(b), ":"+ctrl+":"+path+"\n") {
			t.Errorf("pid %d is not in %s cgroup %s:\n%s", task.Pid(), ctrl, path, b)
		}
	}
	procs := readCgroupFile(t, "pids", path, "cgroup.procs")
	if !contains(strings.Fields(procs), strconv.Itoa(int(task.Pid()))) {
		t.Errorf("pids cgroup.procs = %q, missing %d", procs, task.Pid())
	}
	if err := task.Kill(ctx, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitCode(t, wait)
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if dirs := harness.CgroupDirs(path); len(dirs) != 0 {
		t.Errorf("cgroup dirs left after delete: %v", dirs)
	}
}

// TestPidsLimitEnforced verifies that the pids limit is enforced, not just written: with
// pids.max 4, forking 8 sleepers fails inside the container.
func TestPidsLimitEnforced(t *testing.T) {
	c := startBox(t)
	id := harness.RandID(t, "pidsmax")
	script := `n=0; for i in 1 2 3 4 5 6 7 8; do sleep 30 & [ $? -eq 0 ] && n=$((n+1)); done; ` +
		`echo started; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null; kill $(jobs -p) 2>/dev/null; exit 0`
	ctr := newContainer(t, c, id, []string{"sh", "-c", script}, oci.WithPidsLimit(4))
	r := runToExit(t, c, ctr)
	if !strings.Contains(strings.ToLower(r.stderr), "resource temporarily unavailable") &&
		!strings.Contains(strings.ToLower(r.stderr), "can't fork") {
		t.Errorf("forking past pids.max=4 did not fail: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}
