//go:build linux

package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestProcSysSymlinkAdvisories is the check for CVE-2019-19921,
// CVE-2023-27561 (its regression) and CVE-2023-28642 (/proc or /sys a
// symlink in the image or a volume): procfs and sysfs are never mounted
// through a symlink, so the container's /proc, which the runtime later
// writes LSM labels, sysctls and oom_score_adj through, is the real mount
// and not a link the container can repoint. Both a link inside the rootfs
// and one to an absolute host path are refused. Negative control: without
// the check the mount succeeds and the container's /proc (/sys) is a
// symlink.
func TestProcSysSymlinkAdvisories(t *testing.T) {
	for _, m := range defaultMounts() {
		if m.Type != "proc" && m.Type != "sysfs" {
			continue
		}
		dest := strings.TrimPrefix(m.Destination, "/")
		for _, target := range []string{"/fake", "../../../../../../fake"} {
			setup := func(t *testing.T) string {
				root := newRootfs(t, nil)
				link := filepath.Join(root, dest)
				if err := os.Remove(link); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Join(root, "fake"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				return root
			}
			name := m.Type + "-" + strings.Trim(strings.ReplaceAll(target, "../", ""), "/")
			if strings.HasPrefix(target, "..") {
				name += "-relative"
			}
			t.Run(name, func(t *testing.T) {
				root := setup(t)
				r := child{plan: newPlan(t, root, &specs.Spec{Mounts: []specs.Mount{m}}), script: "true"}.run(t)
				if r.code != exitPrepare || !strings.Contains(r.stderr, "prepare: invalid=true") ||
					!strings.Contains(r.stderr, m.Destination+" is a symlink") {
					t.Errorf("not refused: exit %d, stderr %q", r.code, r.stderr)
				}
			})
			t.Run(name+"-unchecked-control", func(t *testing.T) {
				root := setup(t)
				r := child{
					plan:   newPlan(t, root, &specs.Spec{Mounts: []specs.Mount{m}}),
					script: "test -L " + m.Destination + " && echo symlink",
					env:    []string{envNoSymCheck + "=1"},
				}.run(t)
				if r.code != 0 || r.stdout != "symlink\n" {
					t.Errorf("without the check the container's %s is not a symlink (test proves nothing): exit %d, stdout %q, stderr %q",
						m.Destination, r.code, r.stdout, r.stderr)
				}
			})
		}
	}
}
