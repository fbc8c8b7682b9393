package oci

import (
	"os"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

// TestDevicesDefaults checks that a spec without devices gets exactly the defaults.
func TestDevicesDefaults(t *testing.T) {
	for _, s := range []*specs.Spec{{}, {Linux: &specs.Linux{}}} {
		devs, err := Devices(s)
		if err != nil {
			t.Fatal(err)
		}
		want := []Device{
			{Path: "/dev/null", Type: 'c', Major: 1, Minor: 3, FileMode: 0o666},
			{Path: "/dev/zero", Type: 'c', Major: 1, Minor: 5, FileMode: 0o666},
			{Path: "/dev/full", Type: 'c', Major: 1, Minor: 7, FileMode: 0o666},
			{Path: "/dev/random", Type: 'c', Major: 1, Minor: 8, FileMode: 0o666},
			{Path: "/dev/urandom", Type: 'c', Major: 1, Minor: 9, FileMode: 0o666},
			{Path: "/dev/tty", Type: 'c', Major: 5, Minor: 0, FileMode: 0o666},
		}
		if !slices.Equal(devs, want) {
			t.Errorf("got %+v", devs)
		}
	}
}

// TestDevicesMerge checks that spec devices replace defaults of the same path and follow them.
func TestDevicesMerge(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: ptr(os.FileMode(0o600)), UID: ptr(uint32(7)), GID: ptr(uint32(8))},
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: ptr(os.FileMode(0o620))},
		{Path: "/dev/sda", Type: "b", Major: 8, Minor: 0},
		{Path: "/dev/fifo", Type: "p"},
		{Path: "/dev/net/../net/tun", Type: "u", Major: 10, Minor: 200, FileMode: ptr(os.FileMode(0o4777) | os.ModeDevice)},
	}}}
	devs, err := Devices(s)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, d := range devs {
		paths = append(paths, d.Path)
	}
	want := []string{"/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
		"/dev/fuse", "/dev/null", "/dev/sda", "/dev/fifo", "/dev/net/tun"}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths: got %q, want %q", paths, want)
	}
	byPath := map[string]Device{}
	for _, d := range devs {
		byPath[d.Path] = d
	}
	for path, want := range map[string]Device{
		"/dev/fuse":    {Path: "/dev/fuse", Type: 'c', Major: 10, Minor: 229, FileMode: 0o600, UID: 7, GID: 8},
		"/dev/null":    {Path: "/dev/null", Type: 'c', Major: 1, Minor: 3, FileMode: 0o620},
		"/dev/sda":     {Path: "/dev/sda", Type: 'b', Major: 8, Minor: 0, FileMode: 0o666},
		"/dev/fifo":    {Path: "/dev/fifo", Type: 'p', FileMode: 0o666},
		"/dev/net/tun": {Path: "/dev/net/tun", Type: 'u', Major: 10, Minor: 200, FileMode: 0o777},
	} {
		if got := byPath[path]; got != want {
			t.Errorf("%s: got %+v, want %+v", path, got, want)
		}
	}
}

// TestDevicesErrors checks every refused device and the field each error names.
func TestDevicesErrors(t *testing.T) {
	for _, tc := range []struct {
		dev   specs.LinuxDevice
		field string
	}{
		{specs.LinuxDevice{Path: "dev/null", Type: "c", Major: 1, Minor: 3}, "path"},
		{specs.LinuxDevice{Path: "/tmp/null", Type: "c", Major: 1, Minor: 3}, "path"},
		{specs.LinuxDevice{Path: "/dev", Type: "c", Major: 1, Minor: 3}, "path"},
		{specs.LinuxDevice{Path: "/dev/../etc/x", Type: "c", Major: 1, Minor: 3}, "path"},
		{specs.LinuxDevice{Path: "/dev/", Type: "c", Major: 1, Minor: 3}, "path"},
		{specs.LinuxDevice{Path: "", Type: "c", Major: 1, Minor: 3}, "path"},
		{specs.LinuxDevice{Path: "/dev/x", Type: "", Major: 1, Minor: 3}, "type"},
		{specs.LinuxDevice{Path: "/dev/x", Type: "s", Major: 1, Minor: 3}, "type"},
		{specs.LinuxDevice{Path: "/dev/x", Type: "cb", Major: 1, Minor: 3}, "type"},
		{specs.LinuxDevice{Path: "/dev/x", Type: "c", Major: 0, Minor: 3}, "major"},
		{specs.LinuxDevice{Path: "/dev/x", Type: "b", Major: -1, Minor: 3}, "major"},
		{specs.LinuxDevice{Path: "/dev/x", Type: "u", Major: 4096, Minor: 3}, "major"},
		{specs.LinuxDevice{Path: "/dev/x", Type: "c", Major: 1, Minor: -1}, "minor"},
		{specs.LinuxDevice{Path: "/dev/x", Type: "c", Major: 1, Minor: 1 << 20}, "minor"},
	} {
		s := &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{
			{Path: "/dev/ok", Type: "c", Major: 1, Minor: 1}, tc.dev,
		}}}
		_, err := Devices(s)
		assertFieldError(t, err, "linux.devices[1]."+tc.field)
	}

	dup := &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{
		{Path: "/dev/x", Type: "c", Major: 1, Minor: 1},
		{Path: "/dev/./x", Type: "c", Major: 1, Minor: 2},
	}}}
	_, err := Devices(dup)
	assertFieldError(t, err, "linux.devices[1].path")
}

// TestDefaultDeviceRules checks the cgroup allow rules for the default devices, pts, ptmx and console.
func TestDefaultDeviceRules(t *testing.T) {
	type rule struct {
		major, minor int64 // minor -1: any
	}
	var got []rule
	for _, r := range DefaultDeviceRules {
		if !r.Allow || r.Type != "c" || r.Access != "rwm" || r.Major == nil {
			t.Errorf("rule %+v", r)
			continue
		}
		minor := int64(-1)
		if r.Minor != nil {
			minor = *r.Minor
		}
		got = append(got, rule{*r.Major, minor})
	}
	want := []rule{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {136, -1}, {5, 2}, {5, 1}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
