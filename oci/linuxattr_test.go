package oci

import (
	"encoding/json"
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestLinuxAttrsRejects checks each rule for linux.personality,
// memoryPolicy, netDevices, intelRdt and mountLabel.
func TestLinuxAttrsRejects(t *testing.T) {
	mpol := func(m specs.LinuxMemoryPolicy) func(s *specs.Spec) {
		return func(s *specs.Spec) { s.Linux.MemoryPolicy = &m }
	}
	withNet := func(devs map[string]specs.LinuxNetDevice) func(s *specs.Spec) {
		return func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
			s.Linux.NetDevices = devs
		}
	}
	tests := []struct {
		name   string
		edit   func(s *specs.Spec)
		field  string
		reason string
	}{
		{"unknown personality", func(s *specs.Spec) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: "LINUX64"}
		}, "linux.personality.domain", "unknown domain"},
		{"empty personality", func(s *specs.Spec) {
			s.Linux.Personality = &specs.LinuxPersonality{}
		}, "linux.personality.domain", "unknown domain"},
		{"unknown mpol mode", mpol(specs.LinuxMemoryPolicy{Mode: "MPOL_RANDOM"}), "linux.memoryPolicy.mode", "unknown mode"},
		{"bind without nodes", mpol(specs.LinuxMemoryPolicy{Mode: specs.MpolBind}), "linux.memoryPolicy.nodes", "at least one node"},
		{"interleave without nodes", mpol(specs.LinuxMemoryPolicy{Mode: specs.MpolInterleave}), "linux.memoryPolicy.nodes", "at least one node"},
		{"default with nodes", mpol(specs.LinuxMemoryPolicy{Mode: specs.MpolDefault, Nodes: "0"}), "linux.memoryPolicy.nodes", "takes no nodes"},
		{"local with nodes", mpol(specs.LinuxMemoryPolicy{Mode: specs.MpolLocal, Nodes: "0-1"}), "linux.memoryPolicy.nodes", "takes no nodes"},
		{"bad nodes", mpol(specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0-"}), "linux.memoryPolicy.nodes", "not a number"},
		{"absurd node", mpol(specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "5000"}), "linux.memoryPolicy.nodes", "limit"},
		{"unknown mpol flag", mpol(specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0", Flags: []specs.MemoryPolicyFlagType{"MPOL_F_FAST"}}), "linux.memoryPolicy.flags[0]", "unknown flag"},
		{"static and relative", mpol(specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0",
			Flags: []specs.MemoryPolicyFlagType{specs.MpolFStaticNodes, specs.MpolFRelativeNodes}}), "linux.memoryPolicy.flags", "exclude"},
		{"netDevices without netns", func(s *specs.Spec) {
			s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth1": {}}
		}, "linux.netDevices", "network namespace"},
		{"host name too long", withNet(map[string]specs.LinuxNetDevice{"abcdefghijklmnop": {}}), `linux.netDevices["abcdefghijklmnop"]`, "longer than 15"},
		{"host name slash", withNet(map[string]specs.LinuxNetDevice{"a/b": {}}), `linux.netDevices["a/b"]`, "'/'"},
		{"host name dotdot", withNet(map[string]specs.LinuxNetDevice{"..": {}}), `linux.netDevices[".."]`, "not a device name"},
		{"container name colon", withNet(map[string]specs.LinuxNetDevice{"eth1": {Name: "eth:0"}}), `linux.netDevices["eth1"].name`, "':'"},
		{"container name space", withNet(map[string]specs.LinuxNetDevice{"eth1": {Name: "eth 0"}}), `linux.netDevices["eth1"].name`, "space"},
		{"two devices one name", withNet(map[string]specs.LinuxNetDevice{"eth1": {Name: "net0"}, "eth2": {Name: "net0"}}), `linux.netDevices["eth2"].name`, "also the name"},
		{"rename onto another", withNet(map[string]specs.LinuxNetDevice{"eth1": {}, "eth2": {Name: "eth1"}}), `linux.netDevices["eth2"].name`, "also the name"},
		{"intelRdt closID dotdot", func(s *specs.Spec) {
			s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: ".."}
		}, "linux.intelRdt.closID", "not a valid"},
		{"intelRdt closID slash", func(s *specs.Spec) {
			s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "../../x"}
		}, "linux.intelRdt.closID", "not a valid"},
		{"mountLabel newline", func(s *specs.Spec) { s.Linux.MountLabel = "a\nb" }, "linux.mountLabel", "control character"},
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

// TestLinuxAttrs checks the translation of valid personality, memory
// policy, netDevices, intelRdt and mountLabel.
func TestLinuxAttrs(t *testing.T) {
	s := validSpec()
	s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32, Flags: []specs.LinuxPersonalityFlag{"IGNORED"}}
	s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolInterleave, Nodes: "0,2-3",
		Flags: []specs.MemoryPolicyFlagType{specs.MpolFStaticNodes}}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/run/netns/x"})
	s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth2": {Name: "net0"}, "eth1": {}}
	s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "gold"}
	s.Linux.MountLabel = "system_u:object_r:container_file_t:s0"
	p, err := NewPlan(s, "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	if p.Process.Personality == nil || *p.Process.Personality != PerLinux32 {
		t.Errorf("Personality = %v", p.Process.Personality)
	}
	m := p.Process.MemoryPolicy
	if m == nil || m.Mode != unix.MPOL_INTERLEAVE|unix.MPOL_F_STATIC_NODES || FormatCPUList(m.Nodes) != "0,2-3" {
		t.Errorf("MemoryPolicy = %+v", m)
	}
	want := []NetDevice{{HostName: "eth1", Name: "eth1"}, {HostName: "eth2", Name: "net0"}}
	if len(p.NetDevices) != 2 || p.NetDevices[0] != want[0] || p.NetDevices[1] != want[1] {
		t.Errorf("NetDevices = %+v, want %+v", p.NetDevices, want)
	}
	if p.IntelRdt == nil || p.IntelRdt.ClosID != "gold" || p.MountLabel != s.Linux.MountLabel {
		t.Errorf("IntelRdt = %+v, MountLabel = %q", p.IntelRdt, p.MountLabel)
	}

	for _, mode := range []specs.MemoryPolicyModeType{specs.MpolDefault, specs.MpolLocal, specs.MpolPreferred} {
		s := validSpec()
		s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: mode}
		p, err := NewPlan(s, "/bundle")
		if err != nil {
			t.Fatalf("%s without nodes: %v", mode, err)
		}
		if p.Process.MemoryPolicy.Nodes != nil {
			t.Errorf("%s: nodes = %v, want none", mode, p.Process.MemoryPolicy.Nodes)
		}
	}
}

// TestConfigWithProcessLinuxAttrs checks the seed config that carries every
// field of this file and procattr.go: it loads and plans.
func TestConfigWithProcessLinuxAttrs(t *testing.T) {
	data, err := os.ReadFile("testdata/config/valid-process-linux-attrs.json")
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(&s, "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	pp := p.Process
	if pp.Scheduler == nil || pp.IOPriority == nil || pp.ExecCPUAffinity == nil || pp.Personality == nil ||
		pp.MemoryPolicy == nil || len(p.NetDevices) != 2 || p.IntelRdt == nil || p.MountLabel == "" ||
		pp.ApparmorProfile == "" || pp.SelinuxLabel == "" {
		t.Errorf("fields missing from the plan: %+v %+v", p, pp)
	}
}
