package oci

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultRootPropagation is applied to "/" in the container's mount
// namespace when linux.rootfsPropagation is not set: the container sees
// host mounts come and go, and its own mounts never reach the host.
const DefaultRootPropagation = unix.MS_SLAVE | unix.MS_REC

// rootPropagations maps linux.rootfsPropagation values to mount(2) flags.
var rootPropagations = map[string]uintptr{
	"shared":      unix.MS_SHARED,
	"slave":       unix.MS_SLAVE,
	"private":     unix.MS_PRIVATE,
	"unbindable":  unix.MS_UNBINDABLE,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// NewPlan validates s and decides everything the runtime does with it.
// bundle is the absolute path of the bundle directory; a relative root.path
// is resolved against it. s is referenced by the plan, not copied: the
// caller must not modify it afterwards.
//
// Every validation error wraps errdefs.ErrInvalidArgument and names the
// offending JSON field (see FieldError).
func NewPlan(s *specs.Spec, bundle string) (*Plan, error) {
	if s == nil {
		return nil, fieldErrorf("spec", "missing")
	}
	if s.Version == "" {
		return nil, fieldErrorf("ociVersion", "missing")
	}
	rootfs, err := rootfsPath(s.Root, bundle)
	if err != nil {
		return nil, err
	}
	proc, err := NewProcessPlan(s.Process)
	if err != nil {
		return nil, err
	}
	if s.Linux == nil {
		return nil, fieldErrorf("linux", "missing")
	}
	l := s.Linux
	proc.Seccomp = l.Seccomp
	ns, err := planNamespaces(l.Namespaces)
	if err != nil {
		return nil, err
	}
	if err := checkNamespaceUse(l, s.Hostname, s.Domainname, ns); err != nil {
		return nil, err
	}
	plan := &Plan{
		Spec:           s,
		Rootfs:         rootfs,
		ReadonlyRootfs: s.Root.Readonly,
		Hostname:       s.Hostname,
		Domainname:     s.Domainname,
		CloneFlags:     ns.cloneFlags,
		Join:           ns.join,
		Sysctl:         l.Sysctl,
		Resources:      l.Resources,
		Process:        proc,
	}
	if err := planLinuxPaths(plan, l); err != nil {
		return nil, err
	}
	if err := CheckResources(l.Resources); err != nil {
		return nil, err
	}
	if err := planLinuxAttrs(plan, l, ns); err != nil {
		return nil, err
	}
	if plan.Mounts, err = Mounts(s); err != nil {
		return nil, err
	}
	if err := planIDMaps(plan.Mounts, s, ns); err != nil {
		return nil, err
	}
	protectCgroupfs(plan.Mounts, ns)
	if plan.Devices, err = Devices(s); err != nil {
		return nil, err
	}
	if plan.Hooks, err = PlanHooks(s.Hooks); err != nil {
		return nil, err
	}
	return plan, nil
}

// rootfsPath validates root and returns the absolute path of the rootfs.
func rootfsPath(root *specs.Root, bundle string) (string, error) {
	if root == nil {
		return "", fieldErrorf("root", "missing")
	}
	if root.Path == "" {
		return "", fieldErrorf("root.path", "missing")
	}
	p := root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundle, p)
	}
	if !filepath.IsAbs(p) {
		return "", fieldErrorf("root.path", "%q is relative and the bundle path %q is not absolute", root.Path, bundle)
	}
	return filepath.Clean(p), nil
}

// planLinuxPaths validates and fills the plan's path-valued linux fields:
// root propagation, masked and read-only paths, and the cgroups path.
func planLinuxPaths(plan *Plan, l *specs.Linux) error {
	plan.RootPropagation = DefaultRootPropagation
	if l.RootfsPropagation != "" {
		flags, ok := rootPropagations[l.RootfsPropagation]
		if !ok {
			return fieldErrorf("linux.rootfsPropagation", "unknown propagation %q", l.RootfsPropagation)
		}
		plan.RootPropagation = flags
	}
	var err error
	if plan.MaskedPaths, err = absPaths("linux.maskedPaths", l.MaskedPaths); err != nil {
		return err
	}
	if plan.ReadonlyPaths, err = absPaths("linux.readonlyPaths", l.ReadonlyPaths); err != nil {
		return err
	}
	plan.CgroupsPath, err = cgroupsPath(l.CgroupsPath)
	return err
}

// absPaths checks that every path in list is absolute and returns a copy.
func absPaths(field string, list []string) ([]string, error) {
	for i, p := range list {
		if !path.IsAbs(p) {
			return nil, fieldErrorf(fmt.Sprintf("%s[%d]", field, i), "%q is not an absolute path", p)
		}
	}
	return slices.Clone(list), nil
}

// cgroupsPath rejects a path that could climb out of the cgroup hierarchy
// and cleans it. Both the cgroupfs form ("/a/b") and the systemd form
// ("slice:prefix:name") pass through; ".." is refused in either.
func cgroupsPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	parts := strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == ':' })
	if slices.Contains(parts, "..") {
		return "", fieldErrorf("linux.cgroupsPath", "%q contains a \"..\" component", p)
	}
	return path.Clean(p), nil
}
