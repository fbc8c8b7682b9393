package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness/core"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
)

func namespacesCtx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, Namespace)
}

// WithCgroup puts container id below the harness's cgroup parent.
func (c *Containerd) WithCgroup(id string) oci.SpecOpts {
	return oci.WithCgroup(c.CgroupPath(id))
}

// MountsMentioning returns the host mountinfo lines that contain any of subs.
func MountsMentioning(subs ...string) []string {
	var out []string
	for _, m := range core.Mounts() {
		for _, s := range subs {
			if s != "" && strings.Contains(m.Line, s) {
				out = append(out, m.Line)
				break
			}
		}
	}
	return out
}

// ProcessesInCgroup lists pids whose cgroup, in any hierarchy, is path or below it.
func ProcessesInCgroup(path string) []int { return core.ProcessesInCgroup(path) }

// CgroupDirs lists the hierarchies in which the cgroup path exists.
func CgroupDirs(path string) []string { return core.CgroupDirs(path) }

// ShimPids lists the live shim processes of this containerd serving container id.
func (c *Containerd) ShimPids(id string) []int { return c.shimPids(id) }

// Leftovers describes what a deleted container id left behind on the host: mounts that mention
// the id, its cgroup directories, processes in its cgroup and its shim processes.
func (c *Containerd) Leftovers(id string) []string {
	var out []string
	for _, m := range MountsMentioning(id) {
		out = append(out, "mount: "+m)
	}
	for _, d := range CgroupDirs(c.CgroupPath(id)) {
		out = append(out, "cgroup: "+d)
	}
	for _, pid := range ProcessesInCgroup(c.CgroupPath(id)) {
		out = append(out, "process: "+itoa(pid)+" "+strings.Join(core.Cmdline(pid), " "))
	}
	for _, pid := range c.shimPids(id) {
		out = append(out, "shim: "+itoa(pid)+" "+strings.Join(core.Cmdline(pid), " "))
	}
	return out
}

// RequireNoLeftovers fails the test if container id still has mounts, cgroups, processes or a
// shim after timeout. Exits and rmdirs are asynchronous, so it polls until clean or timeout.
func (c *Containerd) RequireNoLeftovers(t testing.TB, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := c.Leftovers(id)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s left behind:\n  %s", id, strings.Join(left, "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
