package cgroup

import (
	"fmt"
	"path"
	"strings"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/errdefs"
)

// RelativeParent is the cgroup under which relative cgroupsPaths are placed: "ctr" becomes
// "/box/ctr". The OCI spec leaves the meaning of a relative path to the runtime; runc nests it
// under its own cgroup, which would put containers inside the shim's cgroup. box puts them in a
// cgroup of its own instead.
const RelativeParent = "/box"

// cgroupRoot is where every cgroup hierarchy is mounted: v1 controllers under
// cgroupRoot/<controller>, v2 at cgroupRoot itself.
const cgroupRoot = "/sys/fs/cgroup"

// resolve turns an OCI linux.cgroupsPath into a clean absolute cgroup path relative to the
// hierarchy root ("/a/b"), the form cgroup1.StaticPath and cgroup2.NewManager expect.
//
// From the spec: "If the value is specified, the runtime MUST consistently attach to the same
// place in the cgroups hierarchy given the same value of cgroupsPath." Absolute paths are
// relative to the cgroup root; relative paths are placed under RelativeParent.
//
// Rejected with errdefs.ErrInvalidArgument: the empty path, any ".." component (it could
// escape RelativeParent or name an ancestor), a path that resolves to a hierarchy root, and
// paths starting with /sys/fs/cgroup (a mount point is not a cgroup path; cgroup2 refuses them
// too, and v1 must behave the same). The systemd driver's "slice:prefix:name" form fails with
// errdefs.ErrInvalidArgument: it is NewSystemd's.
func resolve(cgroupsPath string) (string, error) {
	if cgroupsPath == "" {
		return "", fmt.Errorf("cgroupsPath is empty: %w", errdefs.ErrInvalidArgument)
	}
	for _, c := range strings.Split(cgroupsPath, "/") {
		if c == ".." {
			return "", fmt.Errorf("cgroupsPath %q has a \"..\" component: %w", cgroupsPath, errdefs.ErrInvalidArgument)
		}
	}
	if isSystemdPath(cgroupsPath) {
		return "", fmt.Errorf("cgroupsPath %q has the systemd cgroup driver's form slice:prefix:name; set the runtime option SystemdCgroup: %w", cgroupsPath, errdefs.ErrInvalidArgument)
	}
	var p string
	if strings.HasPrefix(cgroupsPath, "/") {
		p = path.Clean(cgroupsPath)
	} else {
		rel := path.Clean(cgroupsPath)
		if rel == "." {
			return "", fmt.Errorf("cgroupsPath %q names no cgroup: %w", cgroupsPath, errdefs.ErrInvalidArgument)
		}
		p = path.Join(RelativeParent, rel)
	}
	if p == "/" {
		return "", fmt.Errorf("cgroupsPath %q is the cgroup root: %w", cgroupsPath, errdefs.ErrInvalidArgument)
	}
	if p == cgroupRoot || strings.HasPrefix(p, cgroupRoot+"/") {
		return "", fmt.Errorf("cgroupsPath %q must be relative to the cgroup mount, not include it: %w", cgroupsPath, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// isSystemdPath reports whether p has the systemd driver's "slice:prefix:name" form, which
// containerd passes when SystemdCgroup is set.
func isSystemdPath(p string) bool {
	return !strings.Contains(p, "/") && strings.Count(p, ":") == 2
}

// Mode names of the cgroup setups box supports.
const (
	ModeV1 = "v1"
	ModeV2 = "v2"
)

// Mode reports "v1" on legacy and hybrid hosts (containerd treats hybrid as v1: the
// controllers live in the v1 hierarchies and the cgroup2 mount is empty) and "v2" on unified
// hosts. It returns "" when no cgroup filesystem is mounted at /sys/fs/cgroup, in which case
// New and Load fail.
func Mode() string {
	return modeName(cgroups.Mode())
}

func modeName(m cgroups.CGMode) string {
	switch m {
	case cgroups.Legacy, cgroups.Hybrid:
		return ModeV1
	case cgroups.Unified:
		return ModeV2
	default:
		return ""
	}
}
