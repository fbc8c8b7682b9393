package oci

import (
	"fmt"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// namespaceFlags maps every namespace type the runtime knows to its
// CLONE_NEW* flag.
var namespaceFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// NamespaceFlag returns the CLONE_NEW* flag of namespace type t, and false
// when t is not a namespace type the runtime knows.
func NamespaceFlag(t specs.LinuxNamespaceType) (uintptr, bool) {
	f, ok := namespaceFlags[t]
	return f, ok
}

// nsMode says what the container does about one namespace type.
type nsMode uint8

const (
	nsInherit nsMode = iota // not listed: the container shares the runtime's
	nsCreate                // listed without a path
	nsJoin                  // listed with a path
)

// namespaces is the validated linux.namespaces list.
type namespaces struct {
	mode map[specs.LinuxNamespaceType]nsMode
	// cloneFlags are the flags of the namespaces to create.
	cloneFlags uintptr
	// join is in joining order: user first, then spec order.
	join []NamespaceJoin
}

func (n namespaces) has(t specs.LinuxNamespaceType) bool { return n.mode[t] != nsInherit }
func (n namespaces) creates(t specs.LinuxNamespaceType) bool {
	return n.mode[t] == nsCreate
}

// planNamespaces validates linux.namespaces and decides, for each entry,
// whether the container creates the namespace or joins it by path.
//
// The spec: "If a namespace type is not specified in the namespaces array,
// the container MUST inherit the runtime namespace of that type" and
// "If a namespaces field contains duplicated namespaces with same type,
// the runtime MUST generate an error."
func planNamespaces(list []specs.LinuxNamespace) (namespaces, error) {
	n := namespaces{mode: make(map[specs.LinuxNamespaceType]nsMode, len(list))}
	var userJoin []NamespaceJoin
	for i, ns := range list {
		field := fmt.Sprintf("linux.namespaces[%d]", i)
		flag, ok := namespaceFlags[ns.Type]
		if !ok {
			return namespaces{}, fieldErrorf(field+".type", "unknown namespace type %q", ns.Type)
		}
		if n.has(ns.Type) {
			return namespaces{}, fieldErrorf(field+".type", "duplicate namespace type %q", ns.Type)
		}
		if ns.Path == "" {
			n.mode[ns.Type] = nsCreate
			n.cloneFlags |= flag
			continue
		}
		if !filepath.IsAbs(ns.Path) {
			return namespaces{}, fieldErrorf(field+".path", "%q is not an absolute path", ns.Path)
		}
		n.mode[ns.Type] = nsJoin
		j := NamespaceJoin{Type: ns.Type, Path: ns.Path, Flag: flag, Field: field + ".path"}
		if ns.Type == specs.UserNamespace {
			// Joining the user namespace first gives the capabilities
			// that setns(2) into the others requires.
			userJoin = append(userJoin, j)
			continue
		}
		n.join = append(n.join, j)
	}
	n.join = append(userJoin, n.join...)
	return n, nil
}

// checkNamespaceUse validates the spec fields that only make sense with
// certain namespaces.
func checkNamespaceUse(l *specs.Linux, hostname, domainname string, ns namespaces) error {
	// Setting the hostname of a UTS namespace the container shares, or
	// joined, would change it for everyone else in it.
	if hostname != "" && !ns.creates(specs.UTSNamespace) {
		return fieldErrorf("hostname", "requires a new uts namespace (listed without a path)")
	}
	if domainname != "" && !ns.creates(specs.UTSNamespace) {
		return fieldErrorf("domainname", "requires a new uts namespace (listed without a path)")
	}
	if err := checkIDMappings(l, ns); err != nil {
		return err
	}
	if len(l.TimeOffsets) > 0 && !ns.creates(specs.TimeNamespace) {
		return fieldErrorf("linux.timeOffsets", "requires a new time namespace (listed without a path)")
	}
	if err := checkTimeOffsets(l.TimeOffsets); err != nil {
		return err
	}
	// The runtime pivots the container's root in its mount namespace; doing
	// that in the runtime's own would move the host's root. A mount
	// namespace joined by path becomes the container's, as with runc: the
	// root is prepared and pivoted in it.
	if !ns.has(specs.MountNamespace) {
		return fieldErrorf("linux.namespaces", "a mount namespace (new, or joined by path) is required")
	}
	return nil
}

// checkIDMappings: mappings need a user namespace, and a new user namespace
// needs mappings (an unmapped one has no uid 0 to set up the container as).
// Mappings next to a joined user namespace are allowed: CRI sets both for
// containers that join their pod's user namespace.
func checkIDMappings(l *specs.Linux, ns namespaces) error {
	hasMappings := len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0
	if hasMappings && !ns.has(specs.UserNamespace) {
		field := "linux.uidMappings"
		if len(l.UIDMappings) == 0 {
			field = "linux.gidMappings"
		}
		return fieldErrorf(field, "requires a user namespace")
	}
	if err := checkIDMap("linux.uidMappings", l.UIDMappings); err != nil {
		return err
	}
	if err := checkIDMap("linux.gidMappings", l.GIDMappings); err != nil {
		return err
	}
	if ns.creates(specs.UserNamespace) {
		if len(l.UIDMappings) == 0 {
			return fieldErrorf("linux.uidMappings", "a new user namespace requires uid mappings")
		}
		if len(l.GIDMappings) == 0 {
			return fieldErrorf("linux.gidMappings", "a new user namespace requires gid mappings")
		}
	}
	return nil
}

// protectCgroupfs makes every cgroup mount read-only when the container has
// a user namespace (new or joined) but shares the runtime's cgroup
// namespace (CVE-2023-25809): without a cgroup namespace of its own, the
// view of the cgroupfs is the runtime's, and root of a user namespace that
// maps host root (or a container that gains write access to it by any
// mapping) could move processes and change limits outside its cgroup.
func protectCgroupfs(ms []Mount, ns namespaces) {
	if !ns.has(specs.UserNamespace) || ns.has(specs.CgroupNamespace) {
		return
	}
	for i := range ms {
		if ms[i].Type == "cgroup" || ms[i].Type == "cgroup2" {
			ms[i].Flags |= unix.MS_RDONLY
		}
	}
}
