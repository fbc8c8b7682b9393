package oci

import (
	"cmp"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Personality is a personality(2) persona (PER_LINUX, PER_LINUX32).
type Personality uint

// personality(2) domains (include/uapi/linux/personality.h).
const (
	PerLinux   Personality = 0x0000
	PerLinux32 Personality = 0x0008
)

// MemoryPolicy is linux.memoryPolicy as set_mempolicy(2) takes it.
type MemoryPolicy struct {
	// Mode is the MPOL_* mode with the MPOL_F_* flags or'ed in.
	Mode int
	// Nodes is the node mask; nil for none.
	Nodes unix.CPUSetDynamic
}

// NetDevice is a host network device moved into the container's network
// namespace (linux.netDevices).
type NetDevice struct {
	// HostName is the device's name in the runtime's network namespace.
	HostName string
	// Name is its name inside the container: HostName unless renamed.
	Name string
}

// maxNUMANode is one below the kernel's MAX_NUMNODES at its largest
// (CONFIG_NODES_SHIFT=10).
const maxNUMANode = 1<<10 - 1

var mpolModes = map[specs.MemoryPolicyModeType]int{
	specs.MpolDefault:            unix.MPOL_DEFAULT,
	specs.MpolBind:               unix.MPOL_BIND,
	specs.MpolInterleave:         unix.MPOL_INTERLEAVE,
	specs.MpolWeightedInterleave: unix.MPOL_WEIGHTED_INTERLEAVE,
	specs.MpolPreferred:          unix.MPOL_PREFERRED,
	specs.MpolPreferredMany:      unix.MPOL_PREFERRED_MANY,
	specs.MpolLocal:              unix.MPOL_LOCAL,
}

var mpolFlags = map[specs.MemoryPolicyFlagType]int{
	specs.MpolFNumaBalancing: unix.MPOL_F_NUMA_BALANCING,
	specs.MpolFRelativeNodes: unix.MPOL_F_RELATIVE_NODES,
	specs.MpolFStaticNodes:   unix.MPOL_F_STATIC_NODES,
}

// MemoryPolicyModes and MemoryPolicyFlags list the names box accepts.
func MemoryPolicyModes() []string { return sortedKeys(mpolModes) }
func MemoryPolicyFlags() []string { return sortedKeys(mpolFlags) }

// PlanPersonality validates linux.personality. Flags are accepted and
// ignored, as runc does: the spec defines none.
func PlanPersonality(p *specs.LinuxPersonality) (*Personality, error) {
	if p == nil {
		return nil, nil
	}
	var per Personality
	switch p.Domain {
	case specs.PerLinux:
		per = PerLinux
	case specs.PerLinux32:
		per = PerLinux32
	default:
		return nil, fieldErrorf("linux.personality.domain", "unknown domain %q (LINUX or LINUX32)", p.Domain)
	}
	return &per, nil
}

// PlanMemoryPolicy validates linux.memoryPolicy: the mode and flags must
// be known, the node list well formed, and the number of nodes what the
// mode needs (set_mempolicy(2)): none for MPOL_DEFAULT and MPOL_LOCAL, at
// least one for the modes that spread or bind; MPOL_F_STATIC_NODES and
// MPOL_F_RELATIVE_NODES exclude each other.
func PlanMemoryPolicy(m *specs.LinuxMemoryPolicy) (*MemoryPolicy, error) {
	if m == nil {
		return nil, nil
	}
	const f = "linux.memoryPolicy"
	mode, ok := mpolModes[m.Mode]
	if !ok {
		return nil, fieldErrorf(f+".mode", "unknown mode %q", m.Mode)
	}
	nodes, err := ParseCPUList(m.Nodes)
	if err != nil {
		return nil, fieldErrorf(f+".nodes", "%v", err)
	}
	if n := len(nodes) * bits.UintSize; n > 0 {
		for i := maxNUMANode + 1; i < n; i++ {
			if nodes.IsSet(i) {
				return nil, fieldErrorf(f+".nodes", "node %d is above the kernel's limit of %d", i, maxNUMANode)
			}
		}
	}
	count := nodes.Count()
	switch m.Mode {
	case specs.MpolDefault, specs.MpolLocal:
		if count != 0 {
			return nil, fieldErrorf(f+".nodes", "%s takes no nodes", m.Mode)
		}
	case specs.MpolBind, specs.MpolInterleave, specs.MpolPreferredMany, specs.MpolWeightedInterleave:
		if count == 0 {
			return nil, fieldErrorf(f+".nodes", "%s needs at least one node", m.Mode)
		}
	}
	for i, name := range m.Flags {
		bit, ok := mpolFlags[name]
		if !ok {
			return nil, fieldErrorf(fmt.Sprintf("%s.flags[%d]", f, i), "unknown flag %q", name)
		}
		mode |= bit
	}
	if mode&unix.MPOL_F_STATIC_NODES != 0 && mode&unix.MPOL_F_RELATIVE_NODES != 0 {
		return nil, fieldErrorf(f+".flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
	}
	return &MemoryPolicy{Mode: mode, Nodes: nodes}, nil
}

// netDevices validates linux.netDevices: the container must have a
// network namespace of its own (created or joined) to move devices into,
// and every name, on the host and in the container, must be one the kernel
// takes (dev_valid_name) and unique in the container.
func netDevices(devs map[string]specs.LinuxNetDevice, ns namespaces) ([]NetDevice, error) {
	if len(devs) == 0 {
		return nil, nil
	}
	if !ns.has(specs.NetworkNamespace) {
		return nil, fieldErrorf("linux.netDevices", "moving network devices needs a network namespace in linux.namespaces")
	}
	out := make([]NetDevice, 0, len(devs))
	byName := make(map[string]string, len(devs))
	for _, host := range slices.Sorted(maps.Keys(devs)) {
		field := fmt.Sprintf("linux.netDevices[%q]", host)
		if err := checkDevName(host); err != nil {
			return nil, fieldErrorf(field, "host device name: %v", err)
		}
		name := devs[host].Name
		if name == "" {
			name = host
		} else if err := checkDevName(name); err != nil {
			return nil, fieldErrorf(field+".name", "%v", err)
		}
		if other, dup := byName[name]; dup {
			return nil, fieldErrorf(field+".name", "%q is also the name of %q in the container", name, other)
		}
		byName[name] = host
		out = append(out, NetDevice{HostName: host, Name: name})
	}
	return out, nil
}

// checkDevName is the kernel's dev_valid_name: 1 to 15 bytes, not "." or
// "..", no '/', ':' or white space.
func checkDevName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty")
	case len(name) >= unix.IFNAMSIZ:
		return fmt.Errorf("%q is longer than %d bytes", name, unix.IFNAMSIZ-1)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a device name", name)
	case strings.ContainsFunc(name, func(r rune) bool {
		return r == '/' || r == ':' || r <= ' ' || r == 0x7f
	}):
		return fmt.Errorf("%q contains '/', ':', a space or a control character", name)
	}
	return nil
}

// checkIntelRdt validates linux.intelRdt's closID, which names a directory
// of the resctrl filesystem. Whether the host has resctrl is the
// runtime's question.
func checkIntelRdt(r *specs.LinuxIntelRdt) error {
	if r == nil {
		return nil
	}
	switch c := r.ClosID; {
	case c == "." || c == ".." || strings.ContainsAny(c, "/\x00"):
		return fieldErrorf("linux.intelRdt.closID", "%q is not a valid class of service name", c)
	}
	return nil
}

// sortedKeys returns m's keys as sorted strings.
func sortedKeys[K ~string, V any](m map[K]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, string(k))
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}

// planLinuxAttrs validates and fills the plan's process-wide linux fields
// (personality, memory policy) and netDevices, intelRdt and mountLabel.
func planLinuxAttrs(plan *Plan, l *specs.Linux, ns namespaces) error {
	var err error
	if plan.Process.Personality, err = PlanPersonality(l.Personality); err != nil {
		return err
	}
	if plan.Process.MemoryPolicy, err = PlanMemoryPolicy(l.MemoryPolicy); err != nil {
		return err
	}
	if plan.NetDevices, err = netDevices(l.NetDevices, ns); err != nil {
		return err
	}
	if err := checkIntelRdt(l.IntelRdt); err != nil {
		return err
	}
	if err := checkLabel("linux.mountLabel", l.MountLabel); err != nil {
		return err
	}
	plan.IntelRdt, plan.MountLabel = l.IntelRdt, l.MountLabel
	return nil
}
