package oci

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestPlanNamespacesCreateVsJoin checks which namespaces are created and
// which are joined, and the joining order (user first, then spec order).
func TestPlanNamespacesCreateVsJoin(t *testing.T) {
	tests := []struct {
		name      string
		list      []specs.LinuxNamespace
		wantFlags uintptr
		wantJoin  []NamespaceJoin
	}{
		{name: "none"},
		{
			name: "all created",
			list: []specs.LinuxNamespace{
				{Type: "pid"}, {Type: "network"}, {Type: "mount"}, {Type: "ipc"},
				{Type: "uts"}, {Type: "user"}, {Type: "cgroup"}, {Type: "time"},
			},
			wantFlags: unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWIPC |
				unix.CLONE_NEWUTS | unix.CLONE_NEWUSER | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME,
		},
		{
			name: "pod container: user joined last in spec, first in order",
			list: []specs.LinuxNamespace{
				{Type: "pid"},
				{Type: "network", Path: "/var/run/netns/cni-1"},
				{Type: "ipc", Path: "/proc/42/ns/ipc"},
				{Type: "mount"},
				{Type: "uts", Path: "/proc/42/ns/uts"},
				{Type: "user", Path: "/proc/42/ns/user"},
			},
			wantFlags: unix.CLONE_NEWPID | unix.CLONE_NEWNS,
			wantJoin: []NamespaceJoin{
				{Type: "user", Path: "/proc/42/ns/user", Flag: unix.CLONE_NEWUSER, Field: "linux.namespaces[5].path"},
				{Type: "network", Path: "/var/run/netns/cni-1", Flag: unix.CLONE_NEWNET, Field: "linux.namespaces[1].path"},
				{Type: "ipc", Path: "/proc/42/ns/ipc", Flag: unix.CLONE_NEWIPC, Field: "linux.namespaces[2].path"},
				{Type: "uts", Path: "/proc/42/ns/uts", Flag: unix.CLONE_NEWUTS, Field: "linux.namespaces[4].path"},
			},
		},
		{
			name: "all joined",
			list: []specs.LinuxNamespace{{Type: "cgroup", Path: "/c"}, {Type: "time", Path: "/t"}, {Type: "pid", Path: "/p"}},
			wantJoin: []NamespaceJoin{
				{"cgroup", "/c", unix.CLONE_NEWCGROUP, "linux.namespaces[0].path"},
				{"time", "/t", unix.CLONE_NEWTIME, "linux.namespaces[1].path"},
				{"pid", "/p", unix.CLONE_NEWPID, "linux.namespaces[2].path"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := planNamespaces(tt.list)
			if err != nil {
				t.Fatal(err)
			}
			if ns.cloneFlags != tt.wantFlags {
				t.Errorf("clone flags: got %#x, want %#x", ns.cloneFlags, tt.wantFlags)
			}
			if !reflect.DeepEqual(ns.join, tt.wantJoin) {
				t.Errorf("join: got %v, want %v", ns.join, tt.wantJoin)
			}
		})
	}
}

// TestPlanNamespacesRejects checks type, duplicate and path validation.
func TestPlanNamespacesRejects(t *testing.T) {
	tests := []struct {
		name   string
		list   []specs.LinuxNamespace
		field  string
		reason string
	}{
		{"unknown", []specs.LinuxNamespace{{Type: "pid"}, {Type: "net"}}, "linux.namespaces[1].type", `unknown namespace type "net"`},
		{"empty type", []specs.LinuxNamespace{{Type: ""}}, "linux.namespaces[0].type", "unknown namespace type"},
		{"duplicate created", []specs.LinuxNamespace{{Type: "ipc"}, {Type: "ipc"}}, "linux.namespaces[1].type", "duplicate"},
		{"duplicate created and joined", []specs.LinuxNamespace{{Type: "user", Path: "/u"}, {Type: "user"}}, "linux.namespaces[1].type", "duplicate"},
		{"relative path", []specs.LinuxNamespace{{Type: "uts", Path: "ns/uts"}}, "linux.namespaces[0].path", "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := planNamespaces(tt.list)
			wantFieldError(t, err, tt.field, tt.reason)
		})
	}
}

// TestNewPlanHostnameNeedsNewUTS checks the hostname rule through NewPlan,
// and the accepted case: joined namespaces end up in Plan.Join.
func TestNewPlanJoinedNamespaces(t *testing.T) {
	s := validSpec()
	s.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: "network", Path: "/var/run/netns/n"},
		{Type: "mount"},
		{Type: "user", Path: "/proc/7/ns/user"},
	}
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
	p, err := NewPlan(s, "/b")
	if err != nil {
		t.Fatal(err)
	}
	if p.CloneFlags != unix.CLONE_NEWNS {
		t.Errorf("clone flags: got %#x", p.CloneFlags)
	}
	want := []NamespaceJoin{
		{Type: "user", Path: "/proc/7/ns/user", Flag: unix.CLONE_NEWUSER, Field: "linux.namespaces[2].path"},
		{Type: "network", Path: "/var/run/netns/n", Flag: unix.CLONE_NEWNET, Field: "linux.namespaces[0].path"},
	}
	if !reflect.DeepEqual(p.Join, want) {
		t.Errorf("join: got %v, want %v", p.Join, want)
	}
}

// TestNamespaceFlag checks the exported lookup.
func TestNamespaceFlag(t *testing.T) {
	if f, ok := NamespaceFlag(specs.TimeNamespace); !ok || f != unix.CLONE_NEWTIME {
		t.Errorf("time: got %#x %v", f, ok)
	}
	if _, ok := NamespaceFlag("foo"); ok {
		t.Error("foo: known")
	}
}

// TestProtectCgroupfs checks the planning half of CVE-2023-25809: cgroup
// mounts become read-only with a user namespace (new or joined) and no
// cgroup namespace, and are left as the spec says otherwise.
func TestProtectCgroupfs(t *testing.T) {
	for _, tc := range []struct {
		name string
		ns   []specs.LinuxNamespace
		ro   bool
	}{
		{"no userns", nil, false},
		{"new userns", []specs.LinuxNamespace{{Type: "user"}}, true},
		{"joined userns", []specs.LinuxNamespace{{Type: "user", Path: "/proc/7/ns/user"}}, true},
		{"userns and cgroupns", []specs.LinuxNamespace{{Type: "user"}, {Type: "cgroup"}}, false},
		{"userns and joined cgroupns", []specs.LinuxNamespace{{Type: "user"}, {Type: "cgroup", Path: "/proc/7/ns/cgroup"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			s.Linux.Namespaces = append(s.Linux.Namespaces, tc.ns...)
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
			if tc.ns == nil {
				s.Linux.UIDMappings, s.Linux.GIDMappings = nil, nil
			}
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"rw", "nosuid"}},
				specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"rw"}})
			p, err := NewPlan(s, "/b")
			if err != nil {
				t.Fatal(err)
			}
			cg, tmp := p.Mounts[len(p.Mounts)-2], p.Mounts[len(p.Mounts)-1]
			if got := cg.Flags&unix.MS_RDONLY != 0; got != tc.ro {
				t.Errorf("cgroup mount read-only %v, want %v", got, tc.ro)
			}
			if tmp.Flags&unix.MS_RDONLY != 0 {
				t.Errorf("other mounts made read-only too")
			}
		})
	}
}
