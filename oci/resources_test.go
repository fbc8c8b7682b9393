package oci

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// richResources sets every linux.resources field to a valid value.
func richResources() *specs.LinuxResources {
	return &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rw"},
			{Allow: true, Type: "b", Major: ptr(int64(8)), Minor: ptr(int64(-1)), Access: "m"},
		},
		Memory: &specs.LinuxMemory{
			Limit: ptr(int64(64 << 20)), Reservation: ptr(int64(32 << 20)), Swap: ptr(int64(128 << 20)),
			Kernel: ptr(int64(-1)), KernelTCP: ptr(int64(-1)), Swappiness: ptr(uint64(60)),
			DisableOOMKiller: ptr(false), CheckBeforeUpdate: ptr(true),
		},
		CPU: &specs.LinuxCPU{
			Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Burst: ptr(uint64(10000)), Period: ptr(uint64(100000)),
			RealtimeRuntime: ptr(int64(950000)), RealtimePeriod: ptr(uint64(1000000)), Cpus: "0-1", Mems: "0", Idle: ptr(int64(0)),
		},
		Pids: &specs.LinuxPids{Limit: ptr(int64(0))},
		BlockIO: &specs.LinuxBlockIO{
			Weight: ptr(uint16(500)), LeafWeight: ptr(uint16(10)),
			WeightDevice: []specs.LinuxWeightDevice{
				{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Weight: ptr(uint16(1000))},
			},
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1 << 20}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 300}},
		},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 30}, {Pagesize: "1GB", Limit: 0}},
		Network:        &specs.LinuxNetwork{ClassID: ptr(uint32(0x100001)), Priorities: []specs.LinuxInterfacePriority{{Name: "eth0", Priority: 5}}},
		Rdma:           map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: ptr(uint32(3))}},
		Unified:        map[string]string{"memory.high": "max", "memory.oom.group": "1", "cgroup.max.descendants": "10"},
	}
}

// TestCheckResourcesValid checks that valid values in every field, nil, and the values
// meaning "unset" pass.
func TestCheckResourcesValid(t *testing.T) {
	for name, r := range map[string]*specs.LinuxResources{
		"nil":   nil,
		"empty": {},
		"rich":  richResources(),
		"unset zeros": {
			CPU:     &specs.LinuxCPU{Shares: ptr(uint64(0)), Quota: ptr(int64(0)), Period: ptr(uint64(0))},
			Memory:  &specs.LinuxMemory{Limit: ptr(int64(0)), Swap: ptr(int64(0)), Swappiness: ptr(uint64(math.MaxUint64))},
			BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(0))},
		},
		"unlimited": {
			CPU:    &specs.LinuxCPU{Quota: ptr(int64(-1)), Period: ptr(uint64(1000000)), RealtimeRuntime: ptr(int64(-1))},
			Memory: &specs.LinuxMemory{Limit: ptr(int64(-1)), Swap: ptr(int64(-1))},
			Pids:   &specs.LinuxPids{Limit: ptr(int64(-1))},
		},
		"swap equal to limit (no swap)": {Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 20)), Swap: ptr(int64(1 << 20))}},
		"bounds": {
			CPU:     &specs.LinuxCPU{Shares: ptr(uint64(2)), Quota: ptr(int64(1000)), Period: ptr(uint64(1000))},
			BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(10)), LeafWeight: ptr(uint16(1000))},
		},
	} {
		if err := CheckResources(r); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCheckResourcesInvalid checks each refused value fails with a FieldError (an
// InvalidArgument) naming its field.
func TestCheckResourcesInvalid(t *testing.T) {
	for _, tc := range []struct {
		field string
		r     specs.LinuxResources
	}{
		{"linux.resources.memory.limit", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-2))}}},
		{"linux.resources.memory.reservation", specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: ptr(int64(math.MinInt64))}}},
		{"linux.resources.memory.swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr(int64(-5))}}},
		{"linux.resources.memory.swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(2 << 20)), Swap: ptr(int64(1 << 20))}}},
		{"linux.resources.memory.kernel", specs.LinuxResources{Memory: &specs.LinuxMemory{Kernel: ptr(int64(-3))}}},
		{"linux.resources.memory.kernelTCP", specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: ptr(int64(-3))}}},
		{"linux.resources.memory.swappiness", specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr(uint64(101))}}},
		{"linux.resources.cpu.shares", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(1))}}},
		{"linux.resources.cpu.shares", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(262145))}}},
		{"linux.resources.cpu.quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(999))}}},
		{"linux.resources.cpu.quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(-2))}}},
		{"linux.resources.cpu.period", specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr(uint64(999))}}},
		{"linux.resources.cpu.period", specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr(uint64(1000001))}}},
		{"linux.resources.cpu.burst", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(5000)), Burst: ptr(uint64(5001))}}},
		{"linux.resources.cpu.realtimeRuntime", specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(-2))}}},
		{"linux.resources.cpu.realtimeRuntime", specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(2000)), RealtimePeriod: ptr(uint64(1000))}}},
		{"linux.resources.cpu.idle", specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: ptr(int64(2))}}},
		{"linux.resources.cpu.cpus", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "3-1"}}},
		{"linux.resources.cpu.mems", specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "zero"}}},
		{"linux.resources.pids.limit", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-2))}}},
		{"linux.resources.blockIO.weight", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(9))}}},
		{"linux.resources.blockIO.weight", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(1001))}}},
		{"linux.resources.blockIO.leafWeight", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: ptr(uint16(5))}}},
		{"linux.resources.blockIO.weightDevice[0]", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{}}}}},
		{"linux.resources.blockIO.weightDevice[0].weight", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{Weight: ptr(uint16(2000))}}}}},
		{"linux.resources.blockIO.throttleReadBpsDevice[0].major", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: -1}}}}}},
		{"linux.resources.blockIO.throttleWriteIOPSDevice[0].minor", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Minor: 1 << 21}}}}}},
		{"linux.resources.hugepageLimits[0].pageSize", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB"}}}},
		{"linux.resources.hugepageLimits[0].pageSize", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "../2MB"}}}},
		{"linux.resources.hugepageLimits[1].pageSize", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB"}, {Pagesize: "2048KB"}}}},
		{"linux.resources.network.priorities[0].name", specs.LinuxResources{Network: &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "eth0 1"}}}}},
		{`linux.resources.rdma["../x"]`, specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"../x": {}}}},
		{`linux.resources.unified["../memory.max"]`, specs.LinuxResources{Unified: map[string]string{"../memory.max": "1"}}},
		{`linux.resources.unified["memory/max"]`, specs.LinuxResources{Unified: map[string]string{"memory/max": "1"}}},
		{`linux.resources.unified[".."]`, specs.LinuxResources{Unified: map[string]string{"..": "1"}}},
		{`linux.resources.unified["nodot"]`, specs.LinuxResources{Unified: map[string]string{"nodot": "1"}}},
		{`linux.resources.unified["bogus.max"]`, specs.LinuxResources{Unified: map[string]string{"bogus.max": "1"}}},
		{`linux.resources.unified["cgroup.procs"]`, specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}},
		{`linux.resources.unified["cgroup.subtree_control"]`, specs.LinuxResources{Unified: map[string]string{"cgroup.subtree_control": "+cpu"}}},
		{`linux.resources.unified["memory.high"]`, specs.LinuxResources{Unified: map[string]string{"memory.high": "1\x00"}}},
		{"linux.resources.devices[1].type", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Access: "r"}, {Type: "x", Access: "r"}}}},
		{"linux.resources.devices[0].type", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "cb", Access: "r"}}}},
		{"linux.resources.devices[0].access", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Access: "rx"}}}},
		{"linux.resources.devices[0].access", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Access: "rr"}}}},
		{"linux.resources.devices[0].access", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c"}}}},
		{"linux.resources.devices[0].major", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Major: ptr(int64(-2)), Access: "r"}}}},
		{"linux.resources.devices[0].minor", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Minor: ptr(int64(1 << 20)), Access: "r"}}}},
	} {
		err := CheckResources(&tc.r)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: got %v; want a FieldError naming it", tc.field, err)
		}
	}
}

// TestHugePageSizes checks page-size names round trip between bytes and the spec's form.
func TestHugePageSizes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes uint64
	}{{"64KB", 64 << 10}, {"2MB", 2 << 20}, {"1GB", 1 << 30}, {"16GB", 16 << 30}} {
		if got := HugePageSizeName(tc.bytes); got != tc.name {
			t.Errorf("HugePageSizeName(%d) = %q; want %q", tc.bytes, got, tc.name)
		}
		if got, err := ParseHugePageSize(tc.name); err != nil || got != tc.bytes {
			t.Errorf("ParseHugePageSize(%q) = %d, %v; want %d", tc.name, got, err, tc.bytes)
		}
	}
	for _, bad := range []string{"", "MB", "0MB", "3MB", "2mb", "2M", "+2MB", "-2MB", "2 MB", "2TB"} {
		if _, err := ParseHugePageSize(bad); err == nil {
			t.Errorf("ParseHugePageSize(%q) succeeded", bad)
		}
	}
}

// TestNewPlanChecksResources checks NewPlan refuses a spec with bad linux.resources and a
// cgroupsPath that climbs out of its parent, naming the field.
func TestNewPlanChecksResources(t *testing.T) {
	s := validSpec()
	s.Linux.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(1 << 20))}}
	if _, err := NewPlan(s, "/bundle"); !isField(err, "linux.resources.cpu.shares") {
		t.Errorf("NewPlan with cpu.shares 1<<20: %v", err)
	}
	s = validSpec()
	s.Linux.CgroupsPath = "/box/../../escape"
	if _, err := NewPlan(s, "/bundle"); !isField(err, "linux.cgroupsPath") {
		t.Errorf("NewPlan with a cgroupsPath escaping its parent: %v", err)
	}
	s = validSpec()
	s.Linux.Resources = richResources()
	if _, err := NewPlan(s, "/bundle"); err != nil {
		t.Errorf("NewPlan with valid resources: %v", err)
	}
}

func isField(err error, field string) bool {
	var fe *FieldError
	return errors.As(err, &fe) && fe.Field == field
}

// FuzzResources checks that CheckResources never panics on any linux.resources JSON, that
// every error is a FieldError under linux.resources, and that what it accepts cannot reach
// outside the cgroup directory: no unified key, RDMA device or interface name with "/" or
// "..", and only known device rule types and access letters.
func FuzzResources(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"memory":{"limit":67108864,"swap":67108864},"pids":{"limit":0}}`,
		`{"cpu":{"shares":1024,"quota":-1,"period":100000,"cpus":"0-1,3"}}`,
		`{"unified":{"memory.high":"max","../cgroup.procs":"1"}}`,
		`{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}`,
		`{"blockIO":{"weight":500,"weightDevice":[{"major":8,"minor":0,"weight":10}]}}`,
		`{"hugepageLimits":[{"pageSize":"2MB","limit":1}],"rdma":{"mlx5_0":{"hcaHandles":1}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r specs.LinuxResources
		if json.Unmarshal(data, &r) != nil {
			return
		}
		err := CheckResources(&r)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "linux.resources.") {
				t.Fatalf("error %v is not a FieldError under linux.resources", err)
			}
			return
		}
		escapes := func(s string) bool { return strings.Contains(s, "/") || s == "." || s == ".." }
		for k := range r.Unified {
			if escapes(k) || strings.Contains(k, "..") || !strings.Contains(k, ".") {
				t.Fatalf("accepted unified key %q", k)
			}
		}
		for k := range r.Rdma {
			if escapes(k) || strings.ContainsAny(k, " \n\t") {
				t.Fatalf("accepted rdma device %q", k)
			}
		}
		if r.Network != nil {
			for _, pr := range r.Network.Priorities {
				if escapes(pr.Name) || strings.ContainsAny(pr.Name, " \n\t") {
					t.Fatalf("accepted interface %q", pr.Name)
				}
			}
		}
		for _, h := range r.HugepageLimits {
			if escapes(h.Pagesize) {
				t.Fatalf("accepted page size %q", h.Pagesize)
			}
		}
		for _, d := range r.Devices {
			if !strings.Contains("abc", d.Type) || len(d.Type) > 1 || d.Access == "" || strings.Trim(d.Access, "rwm") != "" {
				t.Fatalf("accepted device rule %+v", d)
			}
		}
	})
}
