package oci

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestIDMapValidation checks linux.uidMappings/gidMappings are refused,
// with the field named, wherever the kernel's map_write would refuse them.
func TestIDMapValidation(t *testing.T) {
	big := make([]specs.LinuxIDMapping, maxIDMapLines+1)
	for i := range big {
		big[i] = specs.LinuxIDMapping{ContainerID: uint32(i), HostID: 100000 + uint32(i), Size: 1}
	}
	tests := []struct {
		name   string
		uid    []specs.LinuxIDMapping
		gid    []specs.LinuxIDMapping
		field  string
		reason string
	}{
		{"zero size", []specs.LinuxIDMapping{{HostID: 1000, Size: 0}}, nil, "linux.uidMappings[0].size", "greater than 0"},
		{"container overflow", []specs.LinuxIDMapping{{ContainerID: 4294967295, HostID: 1000, Size: 1}}, nil, "linux.uidMappings[0]", "containerID 4294967295 + size 1 overflows"},
		{"host overflow", []specs.LinuxIDMapping{{HostID: 4294967000, Size: 1000}}, nil, "linux.uidMappings[0]", "hostID 4294967000 + size 1000 overflows"},
		{"container overlap", nil, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}, {ContainerID: 9, HostID: 5000, Size: 1}}, "linux.gidMappings[1]", "containerID range overlaps linux.gidMappings[0]"},
		{"host overlap", nil, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}, {ContainerID: 100, HostID: 995, Size: 6}}, "linux.gidMappings[1]", "hostID range overlaps linux.gidMappings[0]"},
		{"too many", big, nil, "linux.uidMappings", "341 mappings exceed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
			if tt.uid != nil {
				s.Linux.UIDMappings = tt.uid
			}
			if tt.gid != nil {
				s.Linux.GIDMappings = tt.gid
			}
			_, err := NewPlan(s, "/b")
			wantFieldError(t, err, tt.field, tt.reason)
		})
	}
	// Adjacent ranges and the largest valid id are fine.
	ok := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}, {ContainerID: 10, HostID: 1010, Size: 4294967295 - 1010}}
	if err := checkIDMap("m", ok); err != nil {
		t.Errorf("valid mappings refused: %v", err)
	}
}

// TestTimeOffsetsValidation checks clock names and nanoseconds.
func TestTimeOffsetsValidation(t *testing.T) {
	for _, tt := range []struct {
		offsets       map[string]specs.LinuxTimeOffset
		field, reason string
	}{
		{map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}}, "linux.timeOffsets.realtime", `unknown clock "realtime"`},
		{map[string]specs.LinuxTimeOffset{"boottime": {Nanosecs: 1e9}}, "linux.timeOffsets.boottime.nanosecs", "not below 1e9"},
	} {
		s := validSpec()
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "time"})
		s.Linux.TimeOffsets = tt.offsets
		_, err := NewPlan(s, "/b")
		wantFieldError(t, err, tt.field, tt.reason)
	}
}

// TestJoinedMountNamespaceAccepted checks a mount namespace given by path
// is the container's (runc's meaning), while none at all is refused.
func TestJoinedMountNamespaceAccepted(t *testing.T) {
	s := validSpec()
	s.Linux.Namespaces = []specs.LinuxNamespace{{Type: "pid"}, {Type: "mount", Path: "/run/mntns/x"}}
	p, err := NewPlan(s, "/b")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Join) != 1 || p.Join[0].Type != specs.MountNamespace || p.Join[0].Field != "linux.namespaces[1].path" {
		t.Errorf("join: %+v", p.Join)
	}
}
