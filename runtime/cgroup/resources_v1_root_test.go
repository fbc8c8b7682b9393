package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rootDisk is the major:minor of the block device / is on, for throttle rules.
func rootDisk(t *testing.T) (int64, int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	dev := uint64(st.Dev)
	major, minor := int64((dev>>8)&0xfff|(dev>>32)&^0xfff), int64(dev&0xff|(dev>>12)&^0xff)
	// A partition's throttle goes to its disk: use the whole disk when / is on a partition.
	if b, err := os.ReadFile(filepath.Join("/sys/dev/block", strconv.FormatInt(major, 10)+":"+strconv.FormatInt(minor, 10), "partition")); err == nil && len(b) > 0 {
		minor -= mustAtoi(t, strings.TrimSpace(string(b)))
	}
	return major, minor
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// prepareRTParent gives the test parent realtime runtime in the cpu hierarchy, so that a child
// may have some (a group's runtime must fit in its parent's).
func prepareRTParent(t *testing.T, parent string, runtime int) {
	t.Helper()
	dir := filepath.Join(cgroupRoot, "cpu", parent)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.rt_runtime_us"), []byte(strconv.Itoa(runtime)), 0); err != nil {
		t.Fatal(err)
	}
}

// TestV1AllFields creates a cgroup with every linux.resources field this host's v1
// controllers take and checks each file, then checks that the fields it cannot take are
// refused with an error naming them, leaving nothing behind.
func TestV1AllFields(t *testing.T) {
	requireV1(t)
	parent := testParent(t)
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cpu", "cpu.rt_runtime_us")); err != nil {
		t.Skip("no CONFIG_RT_GROUP_SCHED on this host")
	}
	prepareRTParent(t, parent, 20000)
	p := parent + "/c1"
	major, minor := rootDisk(t)
	dev := strconv.FormatInt(major, 10) + ":" + strconv.FormatInt(minor, 10)
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{
			Limit: ptr(int64(64 << 20)), Reservation: ptr(int64(32 << 20)), Swap: ptr(int64(96 << 20)),
			Kernel: ptr(int64(16 << 20)), KernelTCP: ptr(int64(8 << 20)), Swappiness: ptr(uint64(10)), DisableOOMKiller: ptr(true),
		},
		CPU: &specs.LinuxCPU{
			Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Burst: ptr(uint64(20000)),
			RealtimeRuntime: ptr(int64(10000)), RealtimePeriod: ptr(uint64(1000000)), Cpus: "0", Mems: "0", Idle: ptr(int64(0)),
		},
		Pids: &specs.LinuxPids{Limit: ptr(int64(0))},
		BlockIO: &specs.LinuxBlockIO{
			Weight:                  ptr(uint16(500)),
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 1 << 20}},
			ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 2 << 20}},
			ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 100}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 50}},
		},
		Devices: testResources().Devices,
	}
	cg, err := New(p, res)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, f := range []struct{ ctl, file, want string }{
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"memory", "memory.soft_limit_in_bytes", "33554432"},
		{"memory", "memory.memsw.limit_in_bytes", "100663296"},
		{"memory", "memory.swappiness", "10"},
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.cfs_burst_us", "20000"},
		{"cpu", "cpu.rt_runtime_us", "10000"},
		{"cpu", "cpu.rt_period_us", "1000000"},
		{"cpu", "cpu.idle", "0"},
		{"cpuset", "cpuset.cpus", "0"},
		{"cpuset", "cpuset.mems", "0"},
		{"pids", "pids.max", "0"},
		{"blkio", "blkio.throttle.read_bps_device", dev + " 1048576"},
		{"blkio", "blkio.throttle.write_bps_device", dev + " 2097152"},
		{"blkio", "blkio.throttle.read_iops_device", dev + " 100"},
		{"blkio", "blkio.throttle.write_iops_device", dev + " 50"},
		{"devices", "devices.list", "c 1:3 rwm"},
	} {
		if got := readFile(t, f.ctl, p, f.file); got != f.want {
			t.Errorf("%s = %q; want %q", f.file, got, f.want)
		}
	}
	// CFQ is gone from the kernel; BFQ's weight file exists in every non-root blkio cgroup.
	if got := readFile(t, "blkio", p, "blkio.bfq.weight"); got != "500" {
		t.Errorf("blkio.bfq.weight = %q; want 500", got)
	}
	if got := readFile(t, "memory", p, "memory.oom_control"); !strings.Contains(got, "oom_kill_disable 1") {
		t.Errorf("memory.oom_control = %q; want oom_kill_disable 1", got)
	}
	// memory.kernel and memory.kernelTCP are ignored, as runc 1.2+ does.
	if got := readFile(t, "memory", p, "memory.kmem.tcp.limit_in_bytes"); got == "8388608" {
		t.Errorf("memory.kmem.tcp.limit_in_bytes = %q; want it left alone", got)
	}
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}

	// What this host cannot apply is refused, naming the field, and New leaves nothing.
	refused := []struct {
		field string
		class func(error) bool
		res   *specs.LinuxResources
	}{
		{"linux.resources.unified", errdefs.IsInvalidArgument, &specs.LinuxResources{Unified: map[string]string{"memory.high": "max"}}},
		{"linux.resources.hugepageLimits[0]", errdefs.IsNotImplemented, &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}}}},
		{`linux.resources.rdma["mlx5_0"]`, errdefs.IsNotImplemented, &specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: ptr(uint32(1))}}}},
		{"linux.resources.network.classID", errdefs.IsNotImplemented, &specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: ptr(uint32(1))}}},
		// BFQ refuses a per-device weight for a disk it does not schedule (EOPNOTSUPP).
		{"linux.resources.blockIO.weightDevice[0].weight", errdefs.IsNotImplemented, &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Weight: ptr(uint16(300))}}}}},
		{"linux.resources.blockIO.leafWeight", errdefs.IsNotImplemented, &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: ptr(uint16(500))}}},
		// The kernel refuses a throttle for a device that does not exist.
		{"linux.resources.blockIO.throttleReadBpsDevice[0]", errdefs.IsInvalidArgument, &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 4000, Minor: 9}, Rate: 1}}}}},
		// Realtime runtime above what the parent has left.
		{"linux.resources.cpu.realtimeRuntime", errdefs.IsInvalidArgument, &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(500000))}}},
	}
	for _, tc := range refused {
		if sched, _ := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/queue/scheduler", major, minor)); strings.Contains(string(sched), "[bfq]") && strings.Contains(tc.field, "weightDevice") {
			continue // BFQ schedules this disk: its per-device weight applies
		}
		_, err := New(p, tc.res)
		if !tc.class(err) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New with %s: %v; want an error of the right class naming it", tc.field, err)
		}
		for _, c := range v1Controllers {
			if exists(c, p) {
				t.Errorf("%s: cgroup left behind in %s", tc.field, c)
			}
		}
	}
}

// TestV1UpdateRollsBack checks an Update that the kernel refuses part-way leaves every file
// as it was: the memory limit written before the refused cpuset is restored.
func TestV1UpdateRollsBack(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/c1"
	cg, err := New(p, testResources())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	before := readFile(t, "cpuset", p, "cpuset.cpus")
	err = cg.Update(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(128 << 20))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(99))},
		CPU:    &specs.LinuxCPU{Shares: ptr(uint64(100)), Cpus: "4095"}, // no such CPU: EINVAL
	})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "linux.resources.cpu.cpus") {
		t.Fatalf("Update with a CPU the host lacks: %v; want InvalidArgument naming linux.resources.cpu.cpus", err)
	}
	for _, f := range []struct{ ctl, file, want string }{
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"cpu", "cpu.shares", "512"},
		{"cpuset", "cpuset.cpus", before},
		{"pids", "pids.max", "20"},
		{"devices", "devices.list", "c 1:3 rwm"},
	} {
		if got := readFile(t, f.ctl, p, f.file); got != f.want {
			t.Errorf("%s = %q after a refused Update; want %q", f.file, got, f.want)
		}
	}
	// A refused device rule (writing "a" to devices.allow below a parent that denies it)
	// restores the device list.
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
}

// TestV1PidsAndSwapUpdates checks pids.max 0 -> 1 -> -1 (max), and memory+swap updates in
// both directions, where the kernel needs memsw and limit written in the right order, and
// swap 0 (memsw equal to the limit).
func TestV1PidsAndSwapUpdates(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/c1"
	cg, err := New(p, &specs.LinuxResources{
		Pids:   &specs.LinuxPids{Limit: ptr(int64(0))},
		Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(64 << 20))},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := readFile(t, "pids", p, "pids.max"); got != "0" {
		t.Errorf("pids.max = %q; want 0", got)
	}
	for _, tc := range []struct {
		limit int64
		want  string
	}{{1, "1"}, {-1, "max"}, {0, "0"}} {
		if err := cg.Update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(tc.limit)}}); err != nil {
			t.Fatalf("Update pids %d: %v", tc.limit, err)
		}
		if got := readFile(t, "pids", p, "pids.max"); got != tc.want {
			t.Errorf("pids.max = %q after Update to %d; want %s", got, tc.limit, tc.want)
		}
	}
	if !exists("memory", "memory.memsw.limit_in_bytes") && !exists("memory", p+"/../c1/memory.memsw.limit_in_bytes") {
		t.Skip("no swap accounting")
	}
	for _, tc := range []struct{ limit, swap int64 }{
		{128 << 20, 256 << 20}, // both up: memsw first
		{32 << 20, 32 << 20},   // both down, and swap 0: limit first
		{-1, -1},               // unlimited
		{16 << 20, 24 << 20},
	} {
		err := cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(tc.limit), Swap: ptr(tc.swap)}})
		if err != nil {
			t.Fatalf("Update memory %d swap %d: %v", tc.limit, tc.swap, err)
		}
		want := func(v int64) string {
			if v == -1 {
				return "9223372036854771712"
			}
			return strconv.FormatInt(v, 10)
		}
		if got := readFile(t, "memory", p, "memory.limit_in_bytes"); got != want(tc.limit) {
			t.Errorf("memory.limit_in_bytes = %s; want %s", got, want(tc.limit))
		}
		if got := readFile(t, "memory", p, "memory.memsw.limit_in_bytes"); got != want(tc.swap) {
			t.Errorf("memory.memsw.limit_in_bytes = %s; want %s", got, want(tc.swap))
		}
	}
	// A limit above memory+swap, with no swap given, cannot be written: refused clearly.
	err = cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))}})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "linux.resources.memory.swap") {
		t.Errorf("Update of the limit above memsw: %v; want InvalidArgument pointing at linux.resources.memory.swap", err)
	}
}

// TestV1CreateDeleteCycles runs 30 create/add/kill/delete cycles and checks no directory is
// left in any hierarchy. v1 has no count of dying cgroups per parent; the number the memory
// controller holds (/proc/cgroups) is logged, not asserted: other tests on the host change it.
func TestV1CreateDeleteCycles(t *testing.T) {
	requireV1(t)
	parent := testParent(t)
	before := memcgCount(t)
	for i := range 30 {
		p := parent + "/c" + strconv.Itoa(i)
		cg, err := New(p, testResources())
		if err != nil {
			t.Fatalf("cycle %d: New: %v", i, err)
		}
		cmd, ready := startChild(t)
		if err := cg.Add(cmd.Process.Pid); err != nil {
			t.Fatalf("cycle %d: Add: %v", i, err)
		}
		ready()
		if err := cg.Kill(syscall.SIGKILL); err != nil {
			t.Fatalf("cycle %d: Kill: %v", i, err)
		}
		waitSignaled(t, cmd, syscall.SIGKILL)
		if err := cg.Delete(); err != nil {
			t.Fatalf("cycle %d: Delete: %v", i, err)
		}
		for _, c := range v1Controllers {
			if exists(c, p) {
				t.Fatalf("cycle %d: cgroup left in %s", i, c)
			}
		}
	}
	t.Logf("memory cgroups on the host: %d before, %d after 30 cycles", before, memcgCount(t))
}

func memcgCount(t *testing.T) int {
	b, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[0] == "memory" {
			return int(mustAtoi(t, f[2]))
		}
	}
	return -1
}

// TestV1DeviceUpdateByDifference checks an Update of the device rules of a v1 cgroup reaches
// the list the rules describe when only the difference is written, and that unchanged rules
// leave the list as it is.
func TestV1DeviceUpdateByDifference(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/c1"
	cg, err := New(p, testResources())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	rule := func(major int64, minor *int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(major), Minor: minor, Access: access}
	}
	for _, tc := range []struct {
		rules []specs.LinuxDeviceCgroup
		want  []string
	}{
		{[]specs.LinuxDeviceCgroup{deny, rule(1, ptr(int64(3)), "rwm")}, []string{"c 1:3 rwm"}},
		{[]specs.LinuxDeviceCgroup{deny, rule(1, ptr(int64(3)), "r"), rule(136, nil, "rwm"), rule(1, ptr(int64(5)), "rw")}, []string{"c 1:3 r", "c 136:* rwm", "c 1:5 rw"}},
		{[]specs.LinuxDeviceCgroup{deny, rule(1, ptr(int64(5)), "rw")}, []string{"c 1:5 rw"}},
	} {
		if err := cg.Update(&specs.LinuxResources{Devices: tc.rules}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		got := strings.Split(readFile(t, "devices", p, "devices.list"), "\n")
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("devices.list = %q; want %q", got, tc.want)
		}
	}
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
}

// TestV1Stats checks Stats reports the counters a busy v1 cgroup must have: CPU time (total,
// per CPU, user), memory usage and RSS, pids current and limit, and the throttle counters of
// the blkio controller's present (possibly empty) stat.
func TestV1Stats(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/c1"
	cg, err := New(p, testResources())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cmd, ready := startChild(t)
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	ready() // the child allocates after the move, so its memory is charged here
	st, err := cg.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	m := st.(*v1stats.Metrics)
	for name, v := range map[string]uint64{
		"cpu.usage.total":  m.CPU.GetUsage().GetTotal(),
		"cpu.usage.percpu": uint64(len(m.CPU.GetUsage().GetPerCPU())),
		"memory.usage":     m.Memory.GetUsage().GetUsage(),
		"memory.limit":     m.Memory.GetUsage().GetLimit(),
		"memory.total_rss": m.Memory.GetTotalRSS(),
		"pids.current":     m.Pids.GetCurrent(),
		"pids.limit":       m.Pids.GetLimit(),
	} {
		if v == 0 {
			t.Errorf("%s = 0; want > 0", name)
		}
	}
	if m.Blkio == nil {
		t.Error("blkio stats missing")
	}
}
