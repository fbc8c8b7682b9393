package cgroup

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	sddbus "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestParseSystemdPath checks the slice:prefix:name form: unit names, the slice nesting of the
// directory, and that every malformed path is an oci.FieldError for linux.cgroupsPath with a
// reason naming the problem.
func TestParseSystemdPath(t *testing.T) {
	for _, tc := range []struct {
		in         string
		slice, dir string
	}{
		{"system.slice:box:c1", "system.slice", "/system.slice/box-c1.scope"},
		{":box:c1", "system.slice", "/system.slice/box-c1.scope"},
		{"system.slice::c1", "system.slice", "/system.slice/c1.scope"},
		{"-.slice:box:c1", "-.slice", "/box-c1.scope"},
		{"kubepods-burstable-pod1234_5678.slice:cri-containerd:0123abcd",
			"kubepods-burstable-pod1234_5678.slice",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice/cri-containerd-0123abcd.scope"},
		{"user.slice:docker:a.b_c-d", "user.slice", "/user.slice/docker-a.b_c-d.scope"},
	} {
		got, err := parseSystemdPath(tc.in)
		if err != nil {
			t.Errorf("parseSystemdPath(%q): %v", tc.in, err)
			continue
		}
		if got.Slice != tc.slice || got.Dir != tc.dir || !strings.HasSuffix(got.Dir, "/"+got.Unit) {
			t.Errorf("parseSystemdPath(%q) = %+v; want slice %q dir %q", tc.in, got, tc.slice, tc.dir)
		}
	}

	for in, reason := range map[string]string{
		"":                              "slice:prefix:name",
		"system.slice:c1":               "slice:prefix:name",
		"a.slice:b:c:d":                 "slice:prefix:name",
		"/system.slice/box-c1.scope":    "slice:prefix:name",
		"system.slice:box:a/b":          `"/"`,
		"system.slice/x.slice:box:c1":   `"/"`,
		"system:box:c1":                 `does not end in ".slice"`,
		".slice:box:c1":                 "empty name",
		"a--b.slice:box:c1":             "between dashes",
		"-a.slice:box:c1":               "between dashes",
		"a-.slice:box:c1":               "between dashes",
		"a b.slice:box:c1":              "only letters",
		"sys\\x2d.slice:box:c1":         "only letters",
		"system.slice:bo@x:c1":          "prefix",
		"system.slice:box:":             "name part is empty",
		"system.slice:box:c\n1":         "name",
		"system.slice:box:pod.slice":    `ends in ".slice"`,
		"system.slice:box:" + long(250): "longer than 255",
	} {
		_, err := parseSystemdPath(in)
		var fe *oci.FieldError
		if !errors.As(err, &fe) || fe.Field != "linux.cgroupsPath" || !errdefs.IsInvalidArgument(err) || !strings.Contains(fe.Reason, reason) {
			t.Errorf("parseSystemdPath(%q) error = %v; want a linux.cgroupsPath FieldError mentioning %q", in, err, reason)
		}
	}
}

func long(n int) string { return strings.Repeat("x", n) }

// props decodes the properties into name -> Go value.
func props(t *testing.T, ps []sddbus.Property) map[string]any {
	t.Helper()
	m := map[string]any{}
	for _, p := range ps {
		if _, dup := m[p.Name]; dup {
			t.Errorf("property %s set twice", p.Name)
		}
		m[p.Name] = p.Value.Value()
	}
	return m
}

// TestSystemdProperties checks the linux.resources -> unit property mapping, including the
// D-Bus types systemd insists on (t = uint64, ay = []byte): a wrong type is refused by systemd
// with InvalidArgs, so each value's Go type is checked too.
func TestSystemdProperties(t *testing.T) {
	inf := uint64(math.MaxUint64)
	for _, tc := range []struct {
		name string
		res  *specs.LinuxResources
		want map[string]any
	}{
		{"nil", nil, map[string]any{}},
		{"empty", &specs.LinuxResources{}, map[string]any{}},
		{"memory", &specs.LinuxResources{Memory: &specs.LinuxMemory{
			Limit: ptr(int64(64 << 20)), Reservation: ptr(int64(32 << 20)), Swap: ptr(int64(96 << 20)),
		}}, map[string]any{"MemoryMax": uint64(64 << 20), "MemoryLow": uint64(32 << 20), "MemorySwapMax": uint64(32 << 20)}},
		{"memory unlimited", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1)), Swap: ptr(int64(-1))}},
			map[string]any{"MemoryMax": inf, "MemorySwapMax": inf}},
		{"memory swap equals limit: no swap", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 30)), Swap: ptr(int64(1 << 30))}},
			map[string]any{"MemoryMax": uint64(1 << 30), "MemorySwapMax": uint64(0)}},
		{"memory zero is unset", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(0))}}, map[string]any{}},
		{"cpu", &specs.LinuxResources{CPU: &specs.LinuxCPU{
			Shares: ptr(uint64(1024)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Cpus: "0-2,9", Mems: "0",
		}}, map[string]any{
			"CPUWeight": uint64(100), "CPUQuotaPerSecUSec": uint64(500000), "CPUQuotaPeriodUSec": uint64(100000),
			"AllowedCPUs": []byte{0x07, 0x02}, "AllowedMemoryNodes": []byte{0x01},
		}},
		{"cpu quota rounded up to 10ms/s", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(12345)), Period: ptr(uint64(100000))}},
			map[string]any{"CPUQuotaPerSecUSec": uint64(130000), "CPUQuotaPeriodUSec": uint64(100000)}},
		{"cpu no quota", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(-1)), Period: ptr(uint64(50000))}},
			map[string]any{"CPUQuotaPerSecUSec": inf, "CPUQuotaPeriodUSec": uint64(50000)}},
		{"pids", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(20))}}, map[string]any{"TasksMax": uint64(20)}},
		{"pids unlimited", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}}, map[string]any{"TasksMax": inf}},
		{"io weight", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(1000))}}, map[string]any{"IOWeight": uint64(10000)}},
		{"io weight low", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(10))}}, map[string]any{"IOWeight": uint64(1)}},
		{"memory swap limit unlimited", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1)), Swap: ptr(int64(1 << 30))}},
			map[string]any{"MemoryMax": inf, "MemorySwapMax": inf}},
		{"memory swap zero is unset", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 30)), Swap: ptr(int64(0))}},
			map[string]any{"MemoryMax": uint64(1 << 30)}},
		{"unified wins", &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))},
			Unified: map[string]string{
				"memory.max": "max", "memory.high": "50000000", "memory.min": "0", "pids.max": "7",
				"cpu.weight": "300", "cpu.max": "max 20000", "cpuset.cpus": "1", "io.max": "8:0 rbps=1", "memory.oom.group": "1",
			},
		}, map[string]any{
			"MemoryMax": inf, "MemoryHigh": uint64(50000000), "MemoryMin": uint64(0), "TasksMax": uint64(7),
			"CPUWeight": uint64(300), "CPUQuotaPerSecUSec": inf, "CPUQuotaPeriodUSec": uint64(20000), "AllowedCPUs": []byte{0x02},
		}},
		{"devices, hugetlb and rdma are the direct writes' alone", &specs.LinuxResources{
			Devices:        []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}},
		}, map[string]any{}},
	} {
		ps, err := systemdProperties(tc.res)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := props(t, ps); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: properties\n got %#v\nwant %#v", tc.name, got, tc.want)
		}
	}
}

// TestSystemdPropertiesRefuseBadValues checks a bad value is a FieldError naming its field,
// before anything reaches systemd.
func TestSystemdPropertiesRefuseBadValues(t *testing.T) {
	for _, tc := range []struct {
		res   *specs.LinuxResources
		field string
	}{
		{&specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-"}}, "linux.resources.cpu.cpus"},
		{&specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "3-1"}}, "linux.resources.cpu.cpus"},
		{&specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-4000000000"}}, "linux.resources.cpu.cpus"},
		{&specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "x"}}, "linux.resources.cpu.mems"},
		{&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(1000)), Period: ptr(uint64(0))}}, "linux.resources.cpu.quota"},
		{&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(100)), Swap: ptr(int64(50))}}, "linux.resources.memory.swap"},
		{&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr(int64(50))}}, "linux.resources.memory.swap"},
		{&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(100)), Swap: ptr(int64(-7))}}, "linux.resources.memory.swap"},
		{&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(5))}}, "linux.resources.blockIO.weight"},
		{&specs.LinuxResources{Unified: map[string]string{"memory.high": "-5"}}, `linux.resources.unified["memory.high"]`},
		{&specs.LinuxResources{Unified: map[string]string{"pids.max": "lots"}}, `linux.resources.unified["pids.max"]`},
		{&specs.LinuxResources{Unified: map[string]string{"cpu.weight": "0"}}, `linux.resources.unified["cpu.weight"]`},
		{&specs.LinuxResources{Unified: map[string]string{"cpu.max": "1 2 3"}}, `linux.resources.unified["cpu.max"]`},
		{&specs.LinuxResources{Unified: map[string]string{"cpuset.mems": "0,,1"}}, `linux.resources.unified["cpuset.mems"]`},
	} {
		_, err := systemdProperties(tc.res)
		var fe *oci.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errdefs.IsInvalidArgument(err) {
			t.Errorf("systemdProperties(%+v) error = %v; want a FieldError for %s", tc.res, err, tc.field)
		}
	}
}

// TestCPUSetMask checks the bitmask layout systemd's AllowedCPUs uses (bit n%8 of byte n/8).
func TestCPUSetMask(t *testing.T) {
	for in, want := range map[string][]byte{
		"0":          {0x01},
		"7":          {0x80},
		"8":          {0x00, 0x01},
		"0-3, 8-9":   {0x0f, 0x03},
		"1,3,5,7":    {0xaa},
		" 16 ":       {0, 0, 0x01},
		"8191":       append(make([]byte, 1023), 0x80),
		"2-2,2,1-2,": nil, // trailing comma: refused
	} {
		got, err := cpuSetMask(in)
		if want == nil {
			if err == nil {
				t.Errorf("cpuSetMask(%q) = %x; want an error", in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("cpuSetMask(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
}

// TestNewSystemdRefusesBeforeTouchingTheHost checks path and resource errors come first (they
// are the user's to fix whatever the host), then hosts the driver cannot use: cgroup v1 with
// ErrNotImplemented, no systemd with ErrFailedPrecondition.
func TestNewSystemdRefusesBeforeTouchingTheHost(t *testing.T) {
	var fe *oci.FieldError
	if _, err := NewSystemd("/box/c1", nil); !errors.As(err, &fe) || fe.Field != "linux.cgroupsPath" {
		t.Errorf("NewSystemd(/box/c1) error = %v; want a linux.cgroupsPath FieldError", err)
	}
	if _, err := NewSystemd("system.slice:box:c1", &specs.LinuxResources{Unified: map[string]string{"../x": "1"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("NewSystemd with a bad unified key: error = %v; want InvalidArgument", err)
	}
	if _, err := NewSystemd("system.slice:box:c1", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "z"}}); !errors.As(err, &fe) || fe.Field != "linux.resources.cpu.cpus" {
		t.Errorf("NewSystemd with a bad cpuset: error = %v; want a FieldError", err)
	}

	old := systemdBooted
	systemdBooted = t.TempDir() + "/no-systemd"
	defer func() { systemdBooted = old }()
	_, err := NewSystemd("system.slice:box:c1", nil)
	_, lerr := Load("system.slice:box:c1")
	switch Mode() {
	case ModeV1:
		if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "cgroup v2") {
			t.Errorf("on v1: NewSystemd error = %v; want NotImplemented naming cgroup v2", err)
		}
		if !errdefs.IsNotImplemented(lerr) {
			t.Errorf("on v1: Load of a systemd path: error = %v; want NotImplemented", lerr)
		}
	case ModeV2:
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "init system") {
			t.Errorf("on v2 without systemd: NewSystemd error = %v; want FailedPrecondition", err)
		}
		if !errdefs.IsFailedPrecondition(lerr) {
			t.Errorf("on v2 without systemd: Load of a systemd path: error = %v; want FailedPrecondition", lerr)
		}
	default:
		t.Skipf("no cgroup filesystem")
	}
}

// TestCheckDriver checks the path and the SystemdCgroup option must agree, and that New picks
// the systemd driver for the systemd form (refused on this host for its own reasons).
func TestCheckDriver(t *testing.T) {
	for _, tc := range []struct {
		path    string
		systemd bool
		ok      bool
	}{
		{"system.slice:box:c1", true, true},
		{":box:c1", true, true},
		{"/box/c1", false, true},
		{"box/c1", false, true},
		{"/a:b:c", false, true},
		{"system.slice:box:c1", false, false},
		{"/box/c1", true, false},
		{"", true, false},
		{"a:b", true, false},
	} {
		err := CheckDriver(tc.path, tc.systemd)
		var fe *oci.FieldError
		if tc.ok && err != nil {
			t.Errorf("CheckDriver(%q, %v) = %v; want nil", tc.path, tc.systemd, err)
		}
		if !tc.ok && (!errors.As(err, &fe) || fe.Field != "linux.cgroupsPath") {
			t.Errorf("CheckDriver(%q, %v) = %v; want a linux.cgroupsPath FieldError", tc.path, tc.systemd, err)
		}
	}
	if err := CheckDriver("system.slice:box:c1", false); err == nil || !strings.Contains(err.Error(), "SystemdCgroup") {
		t.Errorf("CheckDriver without the option: %v; want the option named", err)
	}
	if _, err := New("system.slice:box:pod.slice", nil); err == nil || !strings.Contains(err.Error(), ".slice") {
		t.Errorf("New with a systemd path: %v; want the systemd driver's path error", err)
	}
}
