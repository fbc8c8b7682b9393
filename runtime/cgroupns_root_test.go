package runtime

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestCgroupNamespaceRootedAtContainerCgroup checks a container with its own cgroup namespace
// has it rooted at the container's cgroup in every hierarchy: /proc/self/cgroup shows "/"
// everywhere. Where the init stage is placed in its cgroup after the clone (cgroup v1, and the
// systemd driver), a namespace made by clone would be rooted at the daemon's cgroup instead, and
// the container would see the way up to the host's cgroup tree ("/../../box-test-…/rt-…") and
// mount that part of it on /sys/fs/cgroup.
func TestCgroupNamespaceRootedAtContainerCgroup(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "cat", "/proc/self/cgroup")
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	out, e := runContainer(t, bundle, spec, nil)
	if e.Status != 0 {
		t.Fatalf("exit %d: %s", e.Status, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(l, ":/") {
			t.Errorf("cgroup line %q is not the namespace's root; /proc/self/cgroup:\n%s", l, out)
		}
	}
}
