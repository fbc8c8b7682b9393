package cgroup

import (
	"slices"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestControllersDropsNamedHierarchies checks name=systemd is never used on v1, and that
// separately mounted cpu and cpuacct are both kept.
func TestControllersDropsNamedHierarchies(t *testing.T) {
	root := t.TempDir()
	subs := []cgroup1.Subsystem{
		cgroup1.NewNamed(root, "systemd"),
		cgroup1.NewFreezer(root),
		cgroup1.NewCpu(root),
		cgroup1.NewCpuacct(root),
		cgroup1.NewMemory(root),
		cgroup1.NewDevices(root),
	}
	var got []cgroup1.Name
	for _, s := range controllers(subs) {
		got = append(got, s.Name())
	}
	want := []cgroup1.Name{cgroup1.Freezer, cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Memory, cgroup1.Devices}
	if !slices.Equal(got, want) {
		t.Errorf("controllers = %v; want %v", got, want)
	}
	if !hasDevices(subs) || hasDevices(subs[:3]) {
		t.Error("hasDevices is wrong")
	}
	dirs := dirsOf(controllers(subs)[:2], "/box-test/c1")
	if want := []string{root + "/freezer/box-test/c1", root + "/cpu/box-test/c1"}; !slices.Equal(dirs, want) {
		t.Errorf("dirsOf = %v; want %v", dirs, want)
	}
}

// TestCheckV1 checks v1 refuses resources it cannot enforce instead of ignoring them.
func TestCheckV1(t *testing.T) {
	deny := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	if err := checkV1(&specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, true); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unified on v1: %v; want InvalidArgument", err)
	}
	if err := checkV1(&specs.LinuxResources{Devices: deny}, false); !errdefs.IsNotImplemented(err) {
		t.Errorf("devices without a devices controller: %v; want NotImplemented", err)
	}
	if err := checkV1(&specs.LinuxResources{Devices: deny}, true); err != nil {
		t.Errorf("devices with a devices controller: %v", err)
	}
}

// TestCheckUnified checks unified keys cannot name a path outside the cgroup directory.
func TestCheckUnified(t *testing.T) {
	if err := checkUnified(map[string]string{"memory.high": "max", "io.weight": "100"}); err != nil {
		t.Errorf("valid keys: %v", err)
	}
	for _, k := range []string{"", ".", "..", "../x.y", "a/b.c", "nodot", "cgroup.procs", "cgroup.subtree_control", "bogus.max"} {
		if err := checkUnified(map[string]string{k: "1"}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("key %q: %v; want InvalidArgument", k, err)
		}
	}
}
