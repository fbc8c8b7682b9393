package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestHarnessStartsAndImports verifies the harness itself, without running a container: a
// private containerd of each supported version starts, imports and unpacks the busybox image,
// and its cleanup leaves no process, mount or directory behind.
func TestHarnessStartsAndImports(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, version := range []string{"2.4", "2.0"} {
		var dir string
		var pid int
		t.Run(version, func(t *testing.T) {
			c := harness.Start(t, harness.WithVersion(version))
			dir, pid = c.Dir, daemonPid(t, c)
			ref := c.Busybox(t)
			if ref != harness.BusyboxRef {
				t.Fatalf("Busybox() = %q, want %q", ref, harness.BusyboxRef)
			}
			ctx := c.Context(t)
			img, err := c.Client.GetImage(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := img.IsUnpacked(ctx, "overlayfs"); err != nil || !ok {
				t.Fatalf("image not unpacked for overlayfs: %v %v", ok, err)
			}
			out, errOut, code := c.Ctr(t, "images", "ls", "-q")
			if code != 0 || !strings.Contains(out, ref) {
				t.Fatalf("ctr images ls: code %d, stdout %q, stderr %q", code, out, errOut)
			}
			// A second call reuses the import.
			if again := c.Busybox(t); again != ref {
				t.Fatalf("second Busybox() = %q", again)
			}
			if _, err := c.Client.Version(ctx); err != nil {
				t.Fatal(err)
			}
		})
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("containerd %s: %s still exists after cleanup (%v)", version, dir, err)
		}
		if pid != 0 && !harness.WaitExit(pid, 0) {
			t.Errorf("containerd %s: pid %d still running after cleanup", version, pid)
		}
		if m := harness.MountsMentioning(dir); len(m) != 0 {
			t.Errorf("containerd %s: mounts left: %v", version, m)
		}
	}
}

// daemonPid returns containerd's pid as seen through its introspection service.
func daemonPid(t *testing.T, c *harness.Containerd) int {
	t.Helper()
	resp, err := c.Client.IntrospectionService().Server(c.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	return int(resp.Pid)
}
