package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// v1Controllers are the hierarchies this test host mounts; the cgroup must exist in each.
var v1Controllers = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"}

func requireV1(t *testing.T) {
	t.Helper()
	testutil.RequiresRoot(t)
	if Mode() != ModeV1 {
		t.Skipf("cgroup mode is %q; these tests need v1", Mode())
	}
}

// testParent returns a fresh "/box-test-<rand>" cgroup path and removes it, and anything below
// it, from every hierarchy when the test ends, pass or fail. It only ever rmdirs (and thaws)
// directories under that parent.
func testParent(t *testing.T) string {
	t.Helper()
	parent := fmt.Sprintf("/box-test-%d", rand.Uint32())
	t.Cleanup(func() {
		hierarchies, _ := os.ReadDir(cgroupRoot)
		for _, h := range hierarchies {
			dir := filepath.Join(cgroupRoot, h.Name(), parent)
			dirs, _ := subdirs(dir)
			if h.Name() == "freezer" {
				for _, d := range dirs {
					os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0)
				}
			}
			slices.Reverse(dirs)
			for _, d := range dirs {
				if err := syscall.Rmdir(d); err != nil {
					t.Errorf("cleanup: rmdir %s: %v", d, err)
				}
			}
		}
	})
	return parent
}

func readFile(t *testing.T, controller, p, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroupRoot, controller, p, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func exists(controller, p string) bool {
	_, err := os.Lstat(filepath.Join(cgroupRoot, controller, p))
	return err == nil
}

// startChild starts `sleep 100` behind a shell that waits for a line on stdin before it
// allocates some memory and execs sleep. That way the memory is charged to the cgroup the
// child was moved to (v1 does not move existing charges). Call ready after Add.
func startChild(t *testing.T) (cmd *exec.Cmd, ready func()) {
	t.Helper()
	cmd = exec.Command("sh", "-c", `read x; v=$(printf '%0200000d' 0); echo ready; exec sleep 100`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, func() {
		t.Helper()
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("child said %q, %v; want ready", line, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func testResources() *specs.LinuxResources {
	return &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(20))},
		CPU:    &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000))},
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"},
		},
	}
}

// TestV1Lifecycle walks a cgroup through create, add, freeze, stats, update, kill and delete,
// checking each step against the kernel's files.
func TestV1Lifecycle(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/c1"

	cg, err := New(p, testResources())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if cg.Path() != p {
		t.Errorf("Path = %q; want %q", cg.Path(), p)
	}
	for _, c := range v1Controllers {
		if !exists(c, p) {
			t.Errorf("cgroup missing in %s", c)
		}
	}
	if exists("systemd", p) {
		t.Error("cgroup created in the name=systemd hierarchy")
	}
	for _, f := range []struct{ controller, file, want string }{
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"pids", "pids.max", "20"},
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"devices", "devices.list", "c 1:3 rwm"},
	} {
		if got := readFile(t, f.controller, p, f.file); got != f.want {
			t.Errorf("%s = %q; want %q", f.file, got, f.want)
		}
	}
	if fd, ok, err := cg.CloneFD(); ok || err != nil || fd != -1 {
		t.Errorf("CloneFD on v1 = %d, %v, %v; want -1, false, nil", fd, ok, err)
	}

	cmd, ready := startChild(t)
	pid := cmd.Process.Pid
	if err := cg.Add(pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
	ready()
	if pids, err := cg.Pids(); err != nil || !slices.Equal(pids, []int{pid}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, pid)
	}

	if err := cg.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if got := readFile(t, "freezer", p, "freezer.state"); got != "FROZEN" {
		t.Errorf("freezer.state = %q after Freeze", got)
	}
	if err := cg.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	if got := readFile(t, "freezer", p, "freezer.state"); got != "THAWED" {
		t.Errorf("freezer.state = %q after Thaw", got)
	}

	st, err := cg.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	m, ok := st.(*v1stats.Metrics)
	if !ok {
		t.Fatalf("Stats returned %T; want *v1stats.Metrics", st)
	}
	if m.Memory == nil || m.Memory.Usage == nil || m.Memory.Usage.Usage == 0 {
		t.Errorf("memory usage = %+v; want > 0", m.Memory)
	}
	if m.Pids == nil || m.Pids.Current != 1 || m.Pids.Limit != 20 {
		t.Errorf("pids = %+v; want current 1, limit 20", m.Pids)
	}

	if err := cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(128 << 20))}}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got := readFile(t, "memory", p, "memory.limit_in_bytes"); got != "134217728" {
		t.Errorf("memory.limit_in_bytes = %q after Update; want 134217728", got)
	}
	// Without swap the child's memory cannot be reclaimed below 4 KiB: the kernel says EBUSY.
	err = cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(4096))}})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "linux.resources.memory.limit") {
		t.Errorf("Update below usage: %v; want FailedPrecondition naming linux.resources.memory.limit", err)
	}
	if got := readFile(t, "memory", p, "memory.limit_in_bytes"); got != "134217728" {
		t.Errorf("memory.limit_in_bytes = %q after a refused Update; want 134217728", got)
	}

	if err := cg.Delete(); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Delete with a process inside: %v; want FailedPrecondition", err)
	}
	if !exists("memory", p) {
		t.Fatal("failed Delete removed the cgroup")
	}

	if err := cg.Kill(syscall.SIGKILL); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	waitSignaled(t, cmd, syscall.SIGKILL)
	if pids, err := cg.Pids(); err != nil || len(pids) != 0 {
		t.Errorf("Pids after kill = %v, %v; want none", pids, err)
	}

	if err := cg.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, c := range v1Controllers {
		if exists(c, p) {
			t.Errorf("cgroup still exists in %s after Delete", c)
		}
	}
	if err := cg.Delete(); err != nil {
		t.Errorf("second Delete: %v; want nil", err)
	}
	if _, err := cg.Pids(); !errdefs.IsNotFound(err) {
		t.Errorf("Pids after Delete: %v; want NotFound", err)
	}
}

// TestV1NewRollsBackRefusedValue checks a value the kernel refuses fails New with
// InvalidArgument naming the field, and leaves no directory behind in any hierarchy.
func TestV1NewRollsBackRefusedValue(t *testing.T) {
	requireV1(t)
	for _, tc := range []struct {
		name  string
		res   *specs.LinuxResources
		field string
	}{
		// The kernel refuses a CFS quota below 1ms.
		{"cpu quota", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(500)), Period: ptr(uint64(100000))}}, "linux.resources.cpu.quota"},
		// Only -1 means unlimited.
		{"memory limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-2))}}, "linux.resources.memory.limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := testParent(t)
			p := parent + "/c1"
			_, err := New(p, tc.res)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("New: %v; want InvalidArgument naming %s", err, tc.field)
			}
			for _, c := range append(v1Controllers, "systemd") {
				if exists(c, parent) {
					t.Errorf("%s left behind in %s", parent, c)
				}
			}
		})
	}
}

// TestV1NewOpensExisting checks New on an existing cgroup reuses it and applies the new values,
// and that a cgroup pre-existing is kept on rollback.
func TestV1NewOpensExisting(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/c1"
	if _, err := New(p, nil); err != nil {
		t.Fatalf("New: %v", err)
	}
	cg, err := New(p, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(7))}})
	if err != nil {
		t.Fatalf("second New: %v", err)
	}
	if got := readFile(t, "pids", p, "pids.max"); got != "7" {
		t.Errorf("pids.max = %q; want 7", got)
	}
	_, err = New(p, &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(1)), Period: ptr(uint64(100000))}})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("New with a refused quota: %v; want InvalidArgument", err)
	}
	if !exists("cpu", p) {
		t.Error("rollback removed a cgroup New did not create")
	}
	if err := cg.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// TestV1Load checks Load finds a cgroup New created, can delete it, and then reports NotFound.
func TestV1Load(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/c1"
	if _, err := New(p, nil); err != nil {
		t.Fatalf("New: %v", err)
	}
	cg, err := Load(p)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	cmd := startSleep(t)
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := cg.Kill(syscall.SIGTERM); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	waitSignaled(t, cmd, syscall.SIGTERM)
	if err := cg.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, c := range v1Controllers {
		if exists(c, p) {
			t.Errorf("cgroup still exists in %s after Delete", c)
		}
	}
	if _, err := Load(p); !errdefs.IsNotFound(err) {
		t.Errorf("Load after Delete: %v; want NotFound", err)
	}
	if err := cg.Add(os.Getpid()); err == nil {
		t.Error("Add to a deleted cgroup succeeded")
	} else if !errdefs.IsNotFound(err) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Add to a deleted cgroup: %v; want NotFound", err)
	}
}

// TestV1KillFrozen checks SIGKILL ends the processes of a frozen cgroup (v1 frozen tasks act
// on it only once thawed).
func TestV1KillFrozen(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/c1"
	cg, err := New(p, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cmd := startSleep(t)
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := cg.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if err := cg.Kill(syscall.SIGKILL); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	waitSignaled(t, cmd, syscall.SIGKILL)
	if err := cg.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// TestV1ConcurrentUse checks methods can be called from several goroutines at once (run with
// -race).
func TestV1ConcurrentUse(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/c1"
	cg, err := New(p, testResources())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	errs := make(chan error, 3*8)
	for i := range 8 {
		go func() { _, err := cg.Stats(); errs <- err }()
		go func() { _, err := cg.Pids(); errs <- err }()
		go func() {
			errs <- cg.Update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(20 + i))}})
		}()
	}
	for range 3 * 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if err := cg.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}
