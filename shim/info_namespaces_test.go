package shim

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestFeaturesNamespacesAndIDMap checks -info reports every namespace type
// and the idmap mount options as Create accepts them: each namespace is one
// the planner knows, and an idmapped bind mount with each option (and with
// mappings alone) plans; idmap is reported enabled.
func TestFeaturesNamespacesAndIDMap(t *testing.T) {
	f := Features()
	for _, n := range []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"} {
		if !slices.Contains(f.Linux.Namespaces, n) {
			t.Errorf("namespace %s not reported", n)
		}
	}
	for _, n := range f.Linux.Namespaces {
		if _, ok := oci.NamespaceFlag(specs.LinuxNamespaceType(n)); !ok {
			t.Errorf("reported namespace %s is unknown to the planner", n)
		}
	}
	if e := f.Linux.MountExtensions; e == nil || e.IDMap == nil || e.IDMap.Enabled == nil || !*e.IDMap.Enabled {
		t.Errorf("mountExtensions %+v; want idmap enabled", e)
	}
	maps := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	for _, o := range []string{"idmap", "ridmap"} {
		if !slices.Contains(f.MountOptions, o) {
			t.Errorf("mount option %s not reported", o)
		}
		m, err := oci.ParseMount(specs.Mount{Destination: "/d", Type: "bind", Source: "/s", Options: []string{"rbind", o}, UIDMappings: maps, GIDMappings: maps})
		if err != nil || m.IDMap == nil {
			t.Errorf("%s: %+v, %v", o, m.IDMap, err)
		}
	}
}
