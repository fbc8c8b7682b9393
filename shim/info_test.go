package shim

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestFeaturesMatchCreate checks that the capabilities and memory policy
// modes and flags -info reports are exactly what the planner accepts, and
// that intelRdt is reported off (Create refuses it) and netDevices on.
func TestFeaturesMatchCreate(t *testing.T) {
	l := Features().Linux
	if len(l.Capabilities) != oci.LastCap+1 {
		t.Errorf("%d capabilities reported; the planner knows %d", len(l.Capabilities), oci.LastCap+1)
	}
	for _, c := range append(slices.Clone(l.Capabilities), "CAP_FOO") {
		_, err := oci.NewProcessPlan(&specs.Process{Args: []string{"sh"}, Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{Bounding: []string{c}}})
		if reported := slices.Contains(l.Capabilities, c); (err == nil) != reported {
			t.Errorf("capability %s: reported %t, planner error %v", c, reported, err)
		}
	}
	for _, m := range l.MemoryPolicy.Modes {
		nodes := "0"
		if m == string(specs.MpolDefault) || m == string(specs.MpolLocal) {
			nodes = ""
		}
		for _, f := range append([]string{""}, l.MemoryPolicy.Flags...) {
			mp := &specs.LinuxMemoryPolicy{Mode: specs.MemoryPolicyModeType(m), Nodes: nodes}
			if f != "" {
				mp.Flags = []specs.MemoryPolicyFlagType{specs.MemoryPolicyFlagType(f)}
			}
			if _, err := oci.PlanMemoryPolicy(mp); err != nil {
				t.Errorf("reported mode %s flag %q refused: %v", m, f, err)
			}
		}
	}
	if len(l.MemoryPolicy.Modes) != 7 || len(l.MemoryPolicy.Flags) != 3 {
		t.Errorf("memory policy modes %v flags %v; want the spec's 7 and 3", l.MemoryPolicy.Modes, l.MemoryPolicy.Flags)
	}
	if l.IntelRdt == nil || l.IntelRdt.Enabled == nil || *l.IntelRdt.Enabled {
		t.Errorf("intelRdt reported %+v; want enabled false", l.IntelRdt)
	}
	if l.NetDevices == nil || l.NetDevices.Enabled == nil || !*l.NetDevices.Enabled {
		t.Errorf("netDevices reported %+v; want enabled", l.NetDevices)
	}
	if l.Apparmor == nil || !*l.Apparmor.Enabled || l.Selinux == nil || !*l.Selinux.Enabled {
		t.Errorf("apparmor %+v selinux %+v; want both enabled (applied where the host runs them)", l.Apparmor, l.Selinux)
	}
}
