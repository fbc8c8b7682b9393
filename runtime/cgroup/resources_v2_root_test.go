package cgroup

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// These tests run in the cgroup v2 VM (make vm-test VM_TESTS=runtime/cgroup).

func requireV2(t *testing.T) {
	t.Helper()
	testutil.RequiresRoot(t)
	if Mode() != ModeV2 {
		t.Skipf("cgroup mode is %q; these tests need v2", Mode())
	}
}

// testParentV2 returns a fresh "/box-test-<rand>" cgroup path and removes it, and every
// cgroup below it (killing what they hold), when the test ends.
func testParentV2(t *testing.T) string {
	t.Helper()
	parent := fmt.Sprintf("/box-test-%d", rand.Uint32())
	t.Cleanup(func() {
		dir := filepath.Join(cgroupRoot, parent)
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		if err := removeTree(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return parent
}

func readV2(t *testing.T, p, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroupRoot, p, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// runIn starts `sh -c script` in cg (CLONE_INTO_CGROUP) and returns it; it is killed when the
// test ends.
func runIn(t *testing.T, cg Cgroup, script string) *exec.Cmd {
	t.Helper()
	fd, _, err := cg.CloneFD()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// exitOf runs script in cg and returns its exit status.
func exitOf(t *testing.T, cg Cgroup, script string) int {
	t.Helper()
	cmd := runIn(t, cg, script)
	err := cmd.Wait()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatal(err)
	}
	return 0
}

// TestV2AllFields creates a cgroup with every linux.resources field v2 takes and checks each
// file, then checks what it cannot take is refused naming the field, leaving nothing behind.
func TestV2AllFields(t *testing.T) {
	requireV2(t)
	parent := testParentV2(t)
	p := parent + "/c1"
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Reservation: ptr(int64(16 << 20)), Swap: ptr(int64(96 << 20)),
			Kernel: ptr(int64(1 << 20)), Swappiness: ptr(uint64(10)), DisableOOMKiller: ptr(false)},
		CPU: &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Burst: ptr(uint64(10000)),
			Cpus: "0", Mems: "0", Idle: ptr(int64(0))},
		Pids:    &specs.LinuxPids{Limit: ptr(int64(0))},
		Unified: map[string]string{"memory.high": "50331648", "memory.oom.group": "1"},
		Devices: testResources().Devices,
	}
	huge := slices.Contains(hugePageSizes(), "2MB")
	if huge {
		res.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}
	}
	cg, err := New(p, res)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	want := []struct{ file, want string }{
		{"memory.max", "67108864"},
		{"memory.low", "16777216"},
		{"cpu.weight", "59"},
		{"cpu.max", "50000 100000"},
		{"cpu.max.burst", "10000"},
		{"cpu.idle", "0"},
		{"cpuset.cpus", "0"},
		{"cpuset.mems", "0"},
		{"pids.max", "0"},
		{"memory.high", "50331648"},
		{"memory.oom.group", "1"},
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, p, "memory.swap.max")); err == nil {
		want = append(want, struct{ file, want string }{"memory.swap.max", "33554432"})
	}
	if huge {
		want = append(want, struct{ file, want string }{"hugetlb.2MB.max", "4194304"})
	}
	for _, f := range want {
		if got := readV2(t, p, f.file); got != f.want {
			t.Errorf("%s = %q; want %q", f.file, got, f.want)
		}
	}
	if n, err := deviceProgramCount(filepath.Join(cgroupRoot, p)); err != nil || n != 1 {
		t.Errorf("device programs = %d, %v; want 1", n, err)
	}
	// io.weight exists only where an I/O cost model or BFQ serves the cgroup.
	w := &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(500))}}
	if _, err := os.Stat(filepath.Join(cgroupRoot, p, "io.weight")); err == nil {
		if err := cg.Update(w); err != nil {
			t.Errorf("Update blockIO.weight: %v", err)
		} else if got := readV2(t, p, "io.weight"); !strings.HasPrefix(got, "default 4950") {
			t.Errorf("io.weight = %q; want default 4950 (500 converted)", got)
		}
	} else if err := cg.Update(w); !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "linux.resources.blockIO.weight") {
		t.Errorf("Update blockIO.weight without io.weight: %v; want NotImplemented naming it", err)
	}
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		field string
		class func(error) bool
		res   *specs.LinuxResources
	}{
		{"linux.resources.cpu.realtimeRuntime", errdefs.IsNotImplemented, &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(1000))}}},
		{`linux.resources.unified["memory.bogus"]`, errdefs.IsInvalidArgument, &specs.LinuxResources{Unified: map[string]string{"memory.bogus": "1"}}},
		{`linux.resources.unified["cgroup.procs"]`, errdefs.IsInvalidArgument, &specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}},
		{`linux.resources.unified["memory.high"]`, errdefs.IsInvalidArgument, &specs.LinuxResources{Unified: map[string]string{"memory.high": "lots"}}},
		{"linux.resources.blockIO.throttleReadBpsDevice[0]", errdefs.IsInvalidArgument, &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 4000, Minor: 9}, Rate: 1}}}}},
		{"linux.resources.hugepageLimits[0].pageSize", errdefs.IsNotImplemented, &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "64KB", Limit: 1}}}},
		// A later refused value undoes the earlier ones (the cgroup is removed anyway).
		{"linux.resources.cpu.cpus", errdefs.IsInvalidArgument, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 20))}, CPU: &specs.LinuxCPU{Cpus: "4095"}}},
	} {
		_, err := New(p, tc.res)
		if !tc.class(err) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New with %s: %v; want an error of the right class naming it", tc.field, err)
		}
		if _, err := os.Stat(filepath.Join(cgroupRoot, p)); err == nil {
			t.Errorf("%s: cgroup left behind", tc.field)
		}
	}
}

// TestV2DeviceFilterReplaced checks the device eBPF program is replaced on Update, never
// stacked: exactly one program after many updates, also when the Update comes from a fresh
// handle (a restarted daemon that never saw the first program), and access follows the
// latest rules: a device the first rules denied opens once an Update allows it, which a
// stacked filter (old AND new) would still deny.
func TestV2DeviceFilterReplaced(t *testing.T) {
	requireV2(t)
	p := testParentV2(t) + "/c1"
	dir := filepath.Join(cgroupRoot, p)
	nullOnly := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"},
	}
	withZero := append(slices.Clone(nullOnly), specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(5)), Access: "r"})
	cg, err := New(p, &specs.LinuxResources{Devices: nullOnly})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	readZero := "head -c1 /dev/zero >/dev/null"
	if code := exitOf(t, cg, readZero); code == 0 {
		t.Fatal("/dev/zero readable though the rules deny it")
	}
	for i := range 5 {
		rules := nullOnly
		if i%2 == 0 {
			rules = withZero
		}
		if err := cg.Update(&specs.LinuxResources{Devices: rules}); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
		if n, err := deviceProgramCount(dir); err != nil || n != 1 {
			t.Fatalf("after Update %d: %d device programs, %v; want 1", i, n, err)
		}
	}
	if code := exitOf(t, cg, readZero); code != 0 {
		t.Fatalf("/dev/zero not readable after an Update allowed it (exit %d): the old filter is still attached", code)
	}
	// A restarted daemon: no in-memory state, a cgroup loaded by path.
	fresh, err := Load(p)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := fresh.Update(&specs.LinuxResources{Devices: nullOnly}); err != nil {
		t.Fatalf("Update from a fresh handle: %v", err)
	}
	if n, err := deviceProgramCount(dir); err != nil || n != 1 {
		t.Fatalf("after an Update from a fresh handle: %d device programs, %v; want 1", n, err)
	}
	if code := exitOf(t, fresh, readZero); code == 0 {
		t.Fatal("/dev/zero readable after the fresh handle's Update denied it")
	}
	if code := exitOf(t, fresh, "echo x >/dev/null"); code != 0 {
		t.Fatalf("/dev/null not writable (exit %d)", code)
	}

	// Negative control: with the old programs left attached (stacked), the checks above fail:
	// two programs, and /dev/zero stays denied by the old one after an Update allows it.
	stackDeviceFilters = true
	t.Cleanup(func() { stackDeviceFilters = false })
	if err := fresh.Update(&specs.LinuxResources{Devices: withZero}); err != nil {
		t.Fatalf("stacked Update: %v", err)
	}
	if n, err := deviceProgramCount(dir); err != nil || n != 2 {
		t.Errorf("negative control: %d device programs, %v; want 2 when stacked", n, err)
	}
	if code := exitOf(t, fresh, readZero); code == 0 {
		t.Error("negative control: /dev/zero readable though the old filter, which denies it, is still attached")
	}
	stackDeviceFilters = false
	if err := fresh.Update(&specs.LinuxResources{Devices: withZero}); err != nil {
		t.Fatalf("Update after the control: %v", err)
	}
	if n, err := deviceProgramCount(dir); err != nil || n != 1 {
		t.Errorf("after the control: %d device programs, %v; want 1 (both stacked ones replaced)", n, err)
	}
}

// TestV2Updates checks, on a cgroup with a process using memory: a limit below usage is refused
// with FailedPrecondition naming the field and nothing is written (the process lives); with
// checkBeforeUpdate likewise; memory.high via unified; swap 0; pids 0 -> 1 -> -1 (max).
func TestV2Updates(t *testing.T) {
	requireV2(t)
	p := testParentV2(t) + "/c1"
	cg, err := New(p, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))}, Pids: &specs.LinuxPids{Limit: ptr(int64(0))}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := cg.Update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}}); err != nil {
		t.Fatal(err)
	}
	// 8 MiB of anonymous memory that cannot be reclaimed without swap.
	cmd := runIn(t, cg, `v=$(head -c 8388608 /dev/zero | tr '\0' x); echo ready; read x`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.(*v2stats.Metrics).Memory.Usage > 8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never used 8 MiB")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, check := range []*bool{nil, ptr(true)} {
		err := cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 20)), CheckBeforeUpdate: check}})
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "linux.resources.memory.limit") {
			t.Errorf("Update below usage (checkBeforeUpdate %v): %v; want FailedPrecondition naming linux.resources.memory.limit", check, err)
		}
		if got := readV2(t, p, "memory.max"); got != "67108864" {
			t.Errorf("memory.max = %s after a refused Update", got)
		}
	}
	if cmd.ProcessState != nil || syscall.Kill(cmd.Process.Pid, 0) != nil {
		t.Error("the child died: the refused limit was applied")
	}
	if ev := readV2(t, p, "memory.events"); !strings.Contains(ev, "oom_kill 0") {
		t.Errorf("memory.events = %q; want no OOM kill", ev)
	}
	if err := cg.Update(&specs.LinuxResources{Unified: map[string]string{"memory.high": "33554432"}}); err != nil {
		t.Fatal(err)
	}
	if got := readV2(t, p, "memory.high"); got != "33554432" {
		t.Errorf("memory.high = %s", got)
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, p, "memory.swap.max")); err == nil {
		if err := cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(48 << 20)), Swap: ptr(int64(48 << 20))}}); err != nil {
			t.Fatal(err)
		}
		if got := readV2(t, p, "memory.swap.max"); got != "0" {
			t.Errorf("memory.swap.max = %s for swap equal to the limit; want 0", got)
		}
	}
	for _, tc := range []struct {
		limit int64
		want  string
	}{{0, "0"}, {1, "1"}, {-1, "max"}} {
		if err := cg.Update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(tc.limit)}}); err != nil {
			t.Fatal(err)
		}
		if got := readV2(t, p, "pids.max"); got != tc.want {
			t.Errorf("pids.max = %s after Update to %d; want %s", got, tc.limit, tc.want)
		}
	}
}

// TestV2Stats checks Stats reports the counters a busy cgroup must have: CPU time, memory
// usage, pids, memory.events (high, from a memory.high below what the child allocates), and
// PSI for cpu and memory (three spinning processes on at most two CPUs wait for CPU; the
// memory.high throttling stalls on reclaim).
func TestV2Stats(t *testing.T) {
	requireV2(t)
	p := testParentV2(t) + "/c1"
	cg, err := New(p, &specs.LinuxResources{Unified: map[string]string{"memory.high": "4194304"}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for range 3 {
		runIn(t, cg, "while :; do :; done")
	}
	runIn(t, cg, `v=$(head -c 16777216 /dev/zero | tr '\0' x); read x`)
	var m *v2stats.Metrics
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := cg.Stats()
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		m = st.(*v2stats.Metrics)
		if m.MemoryEvents.GetHigh() > 0 && m.CPU.GetPSI().GetSome().GetTotal() > 0 && m.Memory.GetPSI().GetSome().GetTotal() > 0 {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, v := range map[string]uint64{
		"cpu.usage_usec":        m.CPU.GetUsageUsec(),
		"cpu.user_usec":         m.CPU.GetUserUsec(),
		"memory.usage":          m.Memory.GetUsage(),
		"memory.anon":           m.Memory.GetAnon(),
		"pids.current":          m.Pids.GetCurrent(),
		"memory.events high":    m.MemoryEvents.GetHigh(),
		"cpu PSI some total":    m.CPU.GetPSI().GetSome().GetTotal(),
		"memory PSI some total": m.Memory.GetPSI().GetSome().GetTotal(),
	} {
		if v == 0 {
			t.Errorf("%s = 0; want > 0", name)
		}
	}
	if m.Io.GetPSI() == nil {
		t.Error("io PSI missing")
	}
}

// TestV2CreateDeleteCycles runs 30 create/run/delete cycles and checks no dying cgroup is left
// under the parent (cgroup.stat nr_dying_descendants drops to 0).
func TestV2CreateDeleteCycles(t *testing.T) {
	requireV2(t)
	parent := testParentV2(t)
	for i := range 30 {
		p := fmt.Sprintf("%s/c%d", parent, i)
		cg, err := New(p, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(32 << 20))}, Devices: testResources().Devices})
		if err != nil {
			t.Fatalf("cycle %d: New: %v", i, err)
		}
		if code := exitOf(t, cg, "echo x >/dev/null"); code != 0 {
			t.Fatalf("cycle %d: exit %d", i, code)
		}
		if err := cg.Delete(); err != nil {
			t.Fatalf("cycle %d: Delete: %v", i, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := readV2(t, parent, "cgroup.stat")
		if strings.Contains(st, "nr_dying_descendants 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cgroup.stat of the parent after 30 cycles: %q; want nr_dying_descendants 0", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
