package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeCgroup makes a temp dir per controller with the given files and contents; a
// controller with no files is not mounted. It returns the dirReader over them.
func fakeCgroup(t *testing.T, files map[string]string) dirReader {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		ctl, file, ok := strings.Cut(name, "/")
		if !ok {
			ctl, file = "", name
		}
		dir := filepath.Join(root, "ctl-"+ctl)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return func(ctl string) string {
		dir := filepath.Join(root, "ctl-"+ctl)
		if _, err := os.Stat(dir); err != nil {
			return ""
		}
		return dir
	}
}

func writes(ss []setting) []string {
	var out []string
	for _, s := range ss {
		f := s.file
		if s.ctl != "" {
			f = s.ctl + "/" + s.file
		}
		out = append(out, f+"="+s.value)
	}
	return out
}

// v2Files are the files of a v2 cgroup with every controller enabled, no BFQ.
func v2Files() map[string]string {
	return map[string]string{
		"memory.max": "max", "memory.swap.max": "max", "memory.low": "0", "memory.high": "max", "memory.oom.group": "0",
		"memory.current": "0", "cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
		"cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "io.weight": "default 100", "io.max": "",
		"hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "rdma.max": "", "cgroup.max.depth": "max",
	}
}

// TestPlanV2 checks the v2 mapping of every field: the swap and weight conversions, cpu.max
// keeping the half it is not given, and unified last.
func TestPlanV2(t *testing.T) {
	fs := fakeCgroup(t, v2Files())
	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(96 << 20)), Reservation: ptr(int64(-1)),
			Swappiness: ptr(uint64(10)), DisableOOMKiller: ptr(true), Kernel: ptr(int64(1))},
		CPU: &specs.LinuxCPU{Shares: ptr(uint64(1024)), Quota: ptr(int64(50000)), Burst: ptr(uint64(1000)),
			Cpus: "0-1", Mems: "0", Idle: ptr(int64(1))},
		Pids: &specs.LinuxPids{Limit: ptr(int64(-1))},
		BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(1000)), LeafWeight: ptr(uint16(10)),
			WeightDevice:            []specs.LinuxWeightDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Weight: ptr(uint16(10))}},
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 100}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 7}}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
		Rdma:           map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: ptr(uint32(2))}},
		Unified:        map[string]string{"memory.oom.group": "1", "memory.high": "50000000"},
	}
	got, err := planV2(r, fs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"memory.swap.max=33554432", "memory.max=67108864", "memory.low=max",
		"cpu.weight=100", "cpu.idle=1", "cpu.max=50000 100000", "cpu.max.burst=1000",
		"cpuset.cpus=0-1", "cpuset.mems=0", "pids.max=max",
		"io.weight=default 10000", "io.weight=8:0 1", "io.max=8:0 rbps=100", "io.max=8:16 wiops=7",
		"hugetlb.2MB.max=4194304", "hugetlb.2MB.rsvd.max=4194304",
		"rdma.max=mlx5_0 hca_handle=2",
		"memory.high=50000000", "memory.oom.group=1",
	}
	if !slices.Equal(writes(got), want) {
		t.Errorf("planV2 =\n%q\nwant\n%q", writes(got), want)
	}
}

// TestPlanV2Conversions checks cpu.shares -> cpu.weight at the fixed points, blkio weight ->
// io.weight, BFQ's weight taken as is, swap -> swap.max, and an Update of swap alone against
// the limit in force.
func TestPlanV2Conversions(t *testing.T) {
	for shares, weight := range map[uint64]uint64{2: 1, 1024: 100, 262144: 10000, 512: 59} {
		if got := cpuWeight(shares); got != weight {
			t.Errorf("cpuWeight(%d) = %d; want %d", shares, got, weight)
		}
	}
	for w, want := range map[uint16]uint64{10: 1, 500: 4950, 1000: 10000} {
		if got := ioWeight(w); got != want {
			t.Errorf("ioWeight(%d) = %d; want %d", w, got, want)
		}
	}
	for _, tc := range []struct {
		swap, memory, want int64
		err                bool
	}{{0, -1, -1, false}, {-1, 100, -1, false}, {200, -1, 200, false}, {100, 100, 0, false}, {300, 100, 200, false}, {100, 0, 0, true}, {50, 100, 0, true}} {
		got, err := swapV2(tc.swap, tc.memory)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("swapV2(%d, %d) = %d, %v; want %d (error %v)", tc.swap, tc.memory, got, err, tc.want, tc.err)
		}
	}

	files := v2Files()
	files["io.bfq.weight"] = "default 100"
	files["memory.max"] = "1000"
	files["cpu.max"] = "20000 50000"
	got, err := planV2(&specs.LinuxResources{
		BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(500))},
		Memory:  &specs.LinuxMemory{Swap: ptr(int64(3000))},
		CPU:     &specs.LinuxCPU{Period: ptr(uint64(100000))},
	}, fakeCgroup(t, files))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"memory.swap.max=2000", "cpu.max=20000 100000", "io.bfq.weight=500"}
	if !slices.Equal(writes(got), want) {
		t.Errorf("planV2 = %q; want %q", writes(got), want)
	}
}

// TestPlanV2Refuses checks what v2 cannot apply is refused before anything is written,
// naming the field.
func TestPlanV2Refuses(t *testing.T) {
	noSwap := v2Files()
	delete(noSwap, "memory.swap.max")
	noMem := v2Files()
	delete(noMem, "memory.max")
	limited := v2Files()
	limited["memory.max"] = "1000"
	for _, tc := range []struct {
		field string
		class func(error) bool
		files map[string]string
		r     *specs.LinuxResources
	}{
		{"linux.resources.cpu.realtimeRuntime", errdefs.IsNotImplemented, v2Files(), &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(1000))}}},
		{"linux.resources.cpu.realtimePeriod", errdefs.IsNotImplemented, v2Files(), &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimePeriod: ptr(uint64(1000))}}},
		{"linux.resources.memory.swap", errdefs.IsNotImplemented, noSwap, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(100)), Swap: ptr(int64(200))}}},
		{"linux.resources.memory", errdefs.IsNotImplemented, noMem, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(100))}}},
		// swap alone, below the limit in force
		{"linux.resources.memory.swap", errdefs.IsInvalidArgument, limited, &specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr(int64(200))}}},
		{"linux.resources.hugepageLimits[0].pageSize", errdefs.IsNotImplemented, v2Files(), &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "64KB"}}}},
		{`linux.resources.unified["memory.bogus"]`, errdefs.IsInvalidArgument, v2Files(), &specs.LinuxResources{Unified: map[string]string{"memory.bogus": "1"}}},
		{`linux.resources.unified["cgroup.procs"]`, errdefs.IsInvalidArgument, v2Files(), &specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}},
		{`linux.resources.unified["../memory.max"]`, errdefs.IsInvalidArgument, v2Files(), &specs.LinuxResources{Unified: map[string]string{"../memory.max": "1"}}},
	} {
		_, err := planV2(tc.r, fakeCgroup(t, tc.files))
		if !tc.class(err) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v; want an error of the right class naming it", tc.field, err)
		}
	}
	// Swap with no swap accounting is fine when it asks for no swap limit or for no swap.
	for _, swap := range []int64{-1, 100} {
		if _, err := planV2(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(100)), Swap: ptr(swap)}}, fakeCgroup(t, noSwap)); err != nil {
			t.Errorf("swap %d without swap accounting: %v", swap, err)
		}
	}
}

// TestPlanV1Order checks the v1 memory+swap order follows the current limit, and that a
// limit above memory+swap without a swap value is refused clearly.
func TestPlanV1Order(t *testing.T) {
	files := map[string]string{
		"memory/memory.limit_in_bytes": "67108864", "memory/memory.memsw.limit_in_bytes": "67108864",
		"cpu/cpu.shares": "1024", "devices/devices.allow": "", "devices/devices.list": "a *:* rwm",
	}
	up := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(128 << 20)), Swap: ptr(int64(256 << 20))}}
	got, err := planV1(up, fakeCgroup(t, files))
	if want := []string{"memory/memory.memsw.limit_in_bytes=268435456", "memory/memory.limit_in_bytes=134217728"}; err != nil || !slices.Equal(writes(got), want) {
		t.Errorf("raise: %q, %v; want %q", writes(got), err, want)
	}
	down := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(16 << 20)), Swap: ptr(int64(32 << 20))}}
	got, err = planV1(down, fakeCgroup(t, files))
	if want := []string{"memory/memory.limit_in_bytes=16777216", "memory/memory.memsw.limit_in_bytes=33554432"}; err != nil || !slices.Equal(writes(got), want) {
		t.Errorf("lower: %q, %v; want %q", writes(got), err, want)
	}
	unlimited := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1))}}
	got, err = planV1(unlimited, fakeCgroup(t, files))
	if want := []string{"memory/memory.memsw.limit_in_bytes=-1", "memory/memory.limit_in_bytes=-1"}; err != nil || !slices.Equal(writes(got), want) {
		t.Errorf("unlimited: %q, %v; want %q", writes(got), err, want)
	}
	_, err = planV1(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 30))}}, fakeCgroup(t, files))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "linux.resources.memory.swap") {
		t.Errorf("limit above memsw: %v", err)
	}
	_, err = planV1(&specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(1000))}}, fakeCgroup(t, files))
	if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "CONFIG_RT_GROUP_SCHED") {
		t.Errorf("realtime without cpu.rt_runtime_us: %v", err)
	}
	_, err = planV1(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(1))}}, fakeCgroup(t, files))
	if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "linux.resources.pids.limit") {
		t.Errorf("pids without a pids controller: %v", err)
	}
}

// failingFS fails the write to one file.
type failingFS struct {
	dirReader
	file string
}

func (f failingFS) write(ctl, file, value string) error {
	if file == f.file {
		return &os.PathError{Op: "write", Path: file, Err: syscall.EBUSY}
	}
	return f.dirReader.write(ctl, file, value)
}

// TestApplyRestores checks a failed write restores, in reverse, every file written before it,
// including keyed lines and v1 device lists, and names the failed field.
func TestApplyRestores(t *testing.T) {
	fs := fakeCgroup(t, map[string]string{
		"io.max":    "8:0 rbps=5 wbps=max riops=max wiops=max\n8:16 rbps=max wbps=max riops=max wiops=9",
		"io.weight": "default 100\n8:0 50", "cpu.max": "max 100000", "memory.max": "1000",
	})
	settings := []setting{
		{file: "cpu.max", value: "5000 100000", field: "linux.resources.cpu.quota"},
		{file: "io.weight", value: "default 7", field: "linux.resources.blockIO.weight"},
		{file: "io.max", key: "8:0", value: "8:0 rbps=1", unset: "8:0 rbps=max", field: "x"},
		{file: "io.max", key: "8:32", value: "8:32 wbps=1", unset: "8:32 wbps=max", field: "y"},
		{file: "memory.max", value: "10", field: "linux.resources.memory.limit"},
	}
	rec := &recordingFS{fsys: failingFS{fs, "memory.max"}}
	_, err := apply(rec, settings)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "linux.resources.memory.limit") {
		t.Fatalf("apply: %v", err)
	}
	want := []string{
		"cpu.max=5000 100000", "io.weight=default 7", "io.max=8:0 rbps=1", "io.max=8:32 wbps=1", "memory.max=10",
		// the restore, in reverse
		"io.max=8:32 wbps=max", "io.max=8:0 rbps=5 wbps=max riops=max wiops=max", "io.weight=default 100", "cpu.max=max 100000",
	}
	if !slices.Equal(rec.log, want) {
		t.Errorf("writes\n%q\nwant\n%q", rec.log, want)
	}

	dev := fakeCgroup(t, map[string]string{"devices/devices.list": "c 1:3 rwm\nb 8:0 r", "devices/devices.allow": "", "devices/devices.deny": "", "pids/pids.max": "max"})
	rec = &recordingFS{fsys: failingFS{dev, "pids.max"}}
	_, err = apply(rec, []setting{
		{ctl: "devices", file: "devices.deny", value: "a *:* rwm"},
		{ctl: "devices", file: "devices.allow", value: "c 5:1 rwm"},
		{ctl: "pids", file: "pids.max", value: "5", field: "linux.resources.pids.limit"},
	})
	if err == nil {
		t.Fatal("apply succeeded")
	}
	want = []string{"devices.deny=a *:* rwm", "devices.allow=c 5:1 rwm", "pids.max=5", "devices.deny=a", "devices.allow=c 1:3 rwm", "devices.allow=b 8:0 r"}
	if !slices.Equal(rec.log, want) {
		t.Errorf("device writes\n%q\nwant\n%q", rec.log, want)
	}
}

type recordingFS struct {
	fsys
	log []string
}

func (r *recordingFS) write(ctl, file, value string) error {
	r.log = append(r.log, file+"="+value)
	return r.fsys.write(ctl, file, value)
}

// TestFitMemoryV2 checks a v2 limit below usage is refused without reclaiming when the
// memory is anonymous (no swap to put it in), and reclaims first when page cache covers it.
func TestFitMemoryV2(t *testing.T) {
	lower := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(50 << 20))}}
	anon := fakeCgroup(t, map[string]string{"memory.current": "104857600", "memory.stat": "anon 104857600\nfile 0", "memory.reclaim": "", "memory.swap.max": "0"})
	rec := &recordingFS{fsys: anon}
	if err := fitMemoryV2(lower, rec); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "linux.resources.memory.limit") {
		t.Errorf("anonymous usage above the limit: %v; want FailedPrecondition naming linux.resources.memory.limit", err)
	}
	if len(rec.log) != 0 {
		t.Errorf("wrote %q; want nothing", rec.log)
	}
	cache := fakeCgroup(t, map[string]string{"memory.current": "104857600", "memory.stat": "anon 1048576\nfile 103809024", "memory.reclaim": ""})
	rec = &recordingFS{fsys: cache}
	err := fitMemoryV2(lower, rec)
	if want := []string{"memory.reclaim=52428800"}; !slices.Equal(rec.log, want) {
		t.Errorf("wrote %q; want %q", rec.log, want)
	}
	// The fake's usage does not drop: the update is refused after the reclaim.
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("usage still above the limit after reclaim: %v; want FailedPrecondition", err)
	}
	if err := fitMemoryV2(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(200 << 20))}}, cache); err != nil {
		t.Errorf("a limit above usage: %v", err)
	}
}

// TestDeviceDiffV1 checks an Update of v1 device rules on a default-deny list writes only the
// difference (never "deny all", which would briefly deny a running container every device),
// nothing when the rules are unchanged, and falls back to writing every rule otherwise.
func TestDeviceDiffV1(t *testing.T) {
	rules := func(extra ...specs.LinuxDeviceCgroup) *specs.LinuxResources {
		return &specs.LinuxResources{Devices: append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, extra...)}
	}
	null := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}
	nullR := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "r"}
	pts := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(136)), Access: "rwm"}
	files := func(list string) dirReader {
		return fakeCgroup(t, map[string]string{"devices/devices.list": list, "devices/devices.allow": "", "devices/devices.deny": ""})
	}
	for _, tc := range []struct {
		name, list string
		r          *specs.LinuxResources
		want       []string
	}{
		{"unchanged", "c 1:3 rwm\nc 136:* rwm", rules(null, pts), nil},
		{"narrowed and widened", "c 1:3 rwm", rules(nullR, pts), []string{"devices/devices.allow=c 136:* rwm", "devices/devices.deny=c 1:3 wm"}},
		{"removed", "c 1:3 rwm\nc 136:* rwm", rules(null), []string{"devices/devices.deny=c 136:* rwm"}},
		{"from default-allow", "a *:* rwm", rules(null), []string{"devices/devices.deny=a *:* rwm", "devices/devices.allow=c 1:3 rwm"}},
		{"not deny-all first", "c 1:3 rwm", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{null}}, []string{"devices/devices.allow=c 1:3 rwm"}},
	} {
		got, err := planV1(tc.r, files(tc.list))
		if err != nil || !slices.Equal(writes(got), tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.name, writes(got), err, tc.want)
		}
	}
}
