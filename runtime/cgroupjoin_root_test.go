package runtime

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
)

// TestInitJoinsV1CgroupItself checks where the container's process ends up on cgroup v1:
// in the container's cgroup in every controller hierarchy, whether the init stage joined it
// itself from its constructor (started directly: the daemon migrates nothing) or the daemon
// placed it (with a new user namespace, the fallback).
func TestInitJoinsV1CgroupItself(t *testing.T) {
	testutil.RequiresRoot(t)
	if cgroup.Mode() == cgroup.ModeV2 {
		t.Skip("cgroup v2: the stage is born in its cgroup (CLONE_INTO_CGROUP)")
	}
	controllers := []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio"}
	for _, userns := range []bool{false, true} {
		t.Run(fmt.Sprintf("userns=%v", userns), func(t *testing.T) {
			bundle, spec, _ := testBundle(t, "cat", "/proc/self/cgroup")
			// Without a cgroup namespace /proc/self/cgroup shows the paths from the root.
			spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.CgroupNamespace })
			if userns {
				setNamespace(spec, specs.UserNamespace, "")
				spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}
				spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}
				// A userns without its own network namespace cannot mount sysfs.
				spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "sysfs" || m.Type == "cgroup" })
			}
			var selfJoined bool
			out, e := runContainer(t, bundle, spec, func(c *Container) { selfJoined = c.selfJoined })
			if e.Status != 0 {
				t.Fatalf("exit %d: %s", e.Status, out)
			}
			if selfJoined == userns {
				t.Errorf("the stage joined its cgroup itself: %v; want %v", selfJoined, !userns)
			}
			seen := 0
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.SplitN(l, ":", 3)
				if len(f) != 3 {
					t.Fatalf("line %q of /proc/self/cgroup", l)
				}
				for _, ctl := range strings.Split(f[1], ",") {
					if !slices.Contains(controllers, ctl) {
						continue
					}
					seen++
					if f[2] != spec.Linux.CgroupsPath {
						t.Errorf("%s: %s; want %s", ctl, f[2], spec.Linux.CgroupsPath)
					}
				}
			}
			if seen < 4 {
				t.Errorf("only %d controller hierarchies in /proc/self/cgroup:\n%s", seen, out)
			}
		})
	}
}
