package oci

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// validSpec returns a minimal spec NewPlan accepts.
func validSpec() *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args: []string{"/bin/sh"},
			Env:  []string{"PATH=/usr/bin:/bin"},
			Cwd:  "/",
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.MountNamespace},
			},
		},
	}
}

// wantFieldError fails t unless err is an invalid-argument *FieldError for
// field whose reason contains reason.
func wantFieldError(t *testing.T, err error, field, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s: ...%s...", field, reason)
	}
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("error %q is not an invalid argument", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %q is not a *FieldError", err)
	}
	if fe.Field != field || !strings.Contains(fe.Reason, reason) {
		t.Errorf("got %q, want field %s with reason containing %q", err, field, reason)
	}
}

// TestNewPlanRejects checks that each validation rule of NewPlan fires and
// names its field.
func TestNewPlanRejects(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(s *specs.Spec)
		field  string
		reason string
	}{
		{"no version", func(s *specs.Spec) { s.Version = "" }, "ociVersion", "missing"},
		{"no root", func(s *specs.Spec) { s.Root = nil }, "root", "missing"},
		{"no root path", func(s *specs.Spec) { s.Root.Path = "" }, "root.path", "missing"},
		{"no process", func(s *specs.Spec) { s.Process = nil }, "process", "missing"},
		{"no args", func(s *specs.Spec) { s.Process.Args = nil }, "process.args", "empty"},
		{"relative cwd", func(s *specs.Spec) { s.Process.Cwd = "tmp" }, "process.cwd", "absolute"},
		{"no linux", func(s *specs.Spec) { s.Linux = nil }, "linux", "missing"},
		{"unknown namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "foo"})
		}, "linux.namespaces[2].type", `unknown namespace type "foo"`},
		{"duplicate namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "pid", Path: "/proc/1/ns/pid"})
		}, "linux.namespaces[2].type", `duplicate namespace type "pid"`},
		{"relative namespace path", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "network", Path: "proc/1/ns/net"})
		}, "linux.namespaces[2].path", "absolute"},
		{"no mount namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = s.Linux.Namespaces[:1]
		}, "linux.namespaces", "mount namespace"},
		{"hostname without uts", func(s *specs.Spec) { s.Hostname = "box" }, "hostname", "new uts namespace"},
		{"hostname with joined uts", func(s *specs.Spec) {
			s.Hostname = "box"
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "uts", Path: "/proc/1/ns/uts"})
		}, "hostname", "new uts namespace"},
		{"domainname with joined uts", func(s *specs.Spec) {
			s.Domainname = "example.org"
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "uts", Path: "/proc/1/ns/uts"})
		}, "domainname", "new uts namespace"},
		{"uid mappings without user namespace", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, "linux.uidMappings", "user namespace"},
		{"gid mappings without user namespace", func(s *specs.Spec) {
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, "linux.gidMappings", "user namespace"},
		{"new user namespace without uid mappings", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, "linux.uidMappings", "requires uid mappings"},
		{"new user namespace without gid mappings", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, "linux.gidMappings", "requires gid mappings"},
		{"time offsets without time namespace", func(s *specs.Spec) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1}}
		}, "linux.timeOffsets", "new time namespace"},
		{"dotdot in cgroups path", func(s *specs.Spec) { s.Linux.CgroupsPath = "/box/../../etc" }, "linux.cgroupsPath", `".."`},
		{"dotdot in systemd cgroups path", func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:..:x" }, "linux.cgroupsPath", `".."`},
		{"trailing dotdot in cgroups path", func(s *specs.Spec) { s.Linux.CgroupsPath = "box/.." }, "linux.cgroupsPath", `".."`},
		{"unknown propagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "rsharedd" }, "linux.rootfsPropagation", `unknown propagation "rsharedd"`},
		{"relative masked path", func(s *specs.Spec) {
			s.Linux.MaskedPaths = []string{"/proc/kcore", "proc/keys"}
		}, "linux.maskedPaths[1]", "absolute"},
		{"relative readonly path", func(s *specs.Spec) {
			s.Linux.ReadonlyPaths = []string{"proc/sys"}
		}, "linux.readonlyPaths[0]", "absolute"},
		{"bad capability", func(s *specs.Spec) {
			s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_FOO"}}
		}, "process.capabilities.bounding[1]", `unknown capability "CAP_FOO"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.edit(s)
			_, err := NewPlan(s, "/bundle")
			wantFieldError(t, err, tt.field, tt.reason)
		})
	}
}

// TestNewPlanRelativeRootNeedsAbsoluteBundle checks that the rootfs is never
// left relative to the runtime's working directory.
func TestNewPlanRelativeRootNeedsAbsoluteBundle(t *testing.T) {
	_, err := NewPlan(validSpec(), "bundle")
	wantFieldError(t, err, "root.path", "not absolute")
}

// TestNewPlanAccepts checks the plan built from valid specs.
func TestNewPlanAccepts(t *testing.T) {
	s := validSpec()
	s.Hostname = "box"
	s.Domainname = "example.org"
	s.Root.Readonly = true
	s.Linux.Namespaces = append(s.Linux.Namespaces,
		specs.LinuxNamespace{Type: "uts"},
		specs.LinuxNamespace{Type: "user"},
		specs.LinuxNamespace{Type: "time"},
	)
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
	s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 5}}
	s.Linux.CgroupsPath = "/box//c1/"
	s.Linux.MaskedPaths = []string{"/proc/kcore"}
	s.Linux.ReadonlyPaths = []string{"/proc/sys"}
	s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}

	p, err := NewPlan(s, "/run/box/c1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec != s || p.Rootfs != "/run/box/c1/rootfs" || !p.ReadonlyRootfs {
		t.Errorf("spec/rootfs: got %p %q %v", p.Spec, p.Rootfs, p.ReadonlyRootfs)
	}
	if p.Hostname != "box" || p.Domainname != "example.org" {
		t.Errorf("names: got %q %q", p.Hostname, p.Domainname)
	}
	wantFlags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWUSER | unix.CLONE_NEWTIME)
	if p.CloneFlags != wantFlags || len(p.Join) != 0 {
		t.Errorf("namespaces: got flags %#x join %v, want %#x and none", p.CloneFlags, p.Join, wantFlags)
	}
	if p.RootPropagation != unix.MS_SLAVE|unix.MS_REC {
		t.Errorf("root propagation: got %#x", p.RootPropagation)
	}
	if p.CgroupsPath != "/box/c1" {
		t.Errorf("cgroups path: got %q", p.CgroupsPath)
	}
	if len(p.MaskedPaths) != 1 || len(p.ReadonlyPaths) != 1 || p.Sysctl["net.ipv4.ip_forward"] != "1" {
		t.Errorf("paths/sysctl: got %v %v %v", p.MaskedPaths, p.ReadonlyPaths, p.Sysctl)
	}
	if p.Process == nil || p.Process.Args[0] != "/bin/sh" {
		t.Errorf("process: got %+v", p.Process)
	}

	s = validSpec()
	s.Root.Path = "/var/lib/rootfs/"
	if p, err = NewPlan(s, "/bundle"); err != nil || p.Rootfs != "/var/lib/rootfs" {
		t.Errorf("absolute root: got %v, %v", p, err)
	}
}

// TestRootPropagation checks every rootfsPropagation value.
func TestRootPropagation(t *testing.T) {
	for value, want := range map[string]uintptr{
		"":            unix.MS_SLAVE | unix.MS_REC,
		"shared":      unix.MS_SHARED,
		"slave":       unix.MS_SLAVE,
		"private":     unix.MS_PRIVATE,
		"unbindable":  unix.MS_UNBINDABLE,
		"rshared":     unix.MS_SHARED | unix.MS_REC,
		"rslave":      unix.MS_SLAVE | unix.MS_REC,
		"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
		"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
	} {
		s := validSpec()
		s.Linux.RootfsPropagation = value
		p, err := NewPlan(s, "/bundle")
		if err != nil {
			t.Errorf("%q: %v", value, err)
			continue
		}
		if p.RootPropagation != want {
			t.Errorf("%q: got %#x, want %#x", value, p.RootPropagation, want)
		}
	}
}

// FuzzNewPlan checks that no config.json makes Load's decoding or NewPlan
// panic. Seeds are testdata/config/*.json.
func FuzzNewPlan(f *testing.F) {
	seeds, err := filepath.Glob("testdata/config/*.json")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, name := range seeds {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s specs.Spec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		p, err := NewPlan(&s, "/bundle")
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %q is not an invalid argument", err)
			}
			return
		}
		if p.Process == nil || !filepath.IsAbs(p.Rootfs) {
			t.Errorf("accepted plan is incomplete: %+v", p)
		}
	})
}
