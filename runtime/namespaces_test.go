package runtime

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestNeedsHolder checks which containers take the held path: a user,
// mount or time namespace joined by path, or time offsets; joins a thread
// can make (net, ipc, uts, pid, cgroup) and new namespaces stay direct.
func TestNeedsHolder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ns      []specs.LinuxNamespace
		offsets bool
		want    bool
	}{
		{"all new", []specs.LinuxNamespace{{Type: "pid"}, {Type: "mount"}, {Type: "user"}, {Type: "time"}, {Type: "cgroup"}}, false, false},
		{"pod net+ipc+uts joined, new user", []specs.LinuxNamespace{{Type: "mount"}, {Type: "user"},
			{Type: "network", Path: "/n"}, {Type: "ipc", Path: "/i"}, {Type: "uts", Path: "/u"}, {Type: "pid", Path: "/p"}, {Type: "cgroup", Path: "/c"}}, false, false},
		{"user joined", []specs.LinuxNamespace{{Type: "mount"}, {Type: "user", Path: "/u"}}, false, true},
		{"mount joined", []specs.LinuxNamespace{{Type: "mount", Path: "/m"}, {Type: "user"}}, false, true},
		{"time joined", []specs.LinuxNamespace{{Type: "mount"}, {Type: "user"}, {Type: "time", Path: "/t"}}, false, true},
		{"time offsets", []specs.LinuxNamespace{{Type: "mount"}, {Type: "user"}, {Type: "time"}}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &specs.Spec{
				Version: specs.Version,
				Root:    &specs.Root{Path: "/rootfs"},
				Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"},
				Linux: &specs.Linux{
					Namespaces:  tc.ns,
					UIDMappings: []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}},
					GIDMappings: []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}},
				},
			}
			if tc.offsets {
				s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}}
			}
			p, err := oci.NewPlan(s, "/b")
			if err != nil {
				t.Fatal(err)
			}
			if got := needsHolder(p); got != tc.want {
				t.Errorf("needsHolder = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTimensOffsets checks the timens_offsets text: clocks in a fixed
// order, one line each.
func TestTimensOffsets(t *testing.T) {
	p := &oci.Plan{Spec: &specs.Spec{Linux: &specs.Linux{TimeOffsets: map[string]specs.LinuxTimeOffset{
		"boottime": {Secs: 86400}, "monotonic": {Secs: -5, Nanosecs: 7},
	}}}}
	if got, want := timensOffsets(p), "monotonic -5 7\nboottime 86400 0\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := timensOffsets(&oci.Plan{Spec: &specs.Spec{Linux: &specs.Linux{}}}); got != "" {
		t.Errorf("no offsets: %q", got)
	}
}
