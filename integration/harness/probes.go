package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

type mount struct {
	point string
	line  string
}

// mountinfo parses /proc/self/mountinfo (the host mount namespace for the test process).
func mountinfo() []mount {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var ms []mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		ms = append(ms, mount{point: unescapeOctal(f[4]), line: line})
	}
	return ms
}

// unescapeOctal decodes mountinfo's \040-style escapes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (int(s[i+1]-'0') << 6) | (int(s[i+2]-'0') << 3) | int(s[i+3]-'0')
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountsMentioning returns the host mountinfo lines that contain any of subs.
func MountsMentioning(subs ...string) []string {
	var out []string
	for _, m := range mountinfo() {
		for _, s := range subs {
			if s != "" && strings.Contains(m.line, s) {
				out = append(out, m.line)
				break
			}
		}
	}
	return out
}

// ProcessesInCgroup lists pids whose cgroup, in any hierarchy, is path or below it.
func ProcessesInCgroup(path string) []int {
	var pids []int
	for _, pid := range allPids() {
		b, err := os.ReadFile(procPath(pid, "cgroup"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			// hierarchy-ID:controllers:path
			parts := strings.SplitN(line, ":", 3)
			if len(parts) == 3 && (parts[2] == path || strings.HasPrefix(parts[2], path+"/")) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// CgroupDirs lists the hierarchies in which the cgroup path exists.
func CgroupDirs(path string) []string {
	var dirs []string
	for _, root := range cgroupRoots() {
		p := filepath.Join(root, path)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

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
		out = append(out, "process: "+itoa(pid)+" "+strings.Join(cmdline(pid), " "))
	}
	for _, pid := range c.shimPids(id) {
		out = append(out, "shim: "+itoa(pid)+" "+strings.Join(cmdline(pid), " "))
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
