package shim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// TestUnmountRootfs covers the rootfs shapes Delete meets: nothing mounted,
// stacked mounts (unmounted one by one without mountinfo) and a mount below
// the rootfs (umount says EBUSY: the recursive unmount takes over).
func TestUnmountRootfs(t *testing.T) {
	testutil.RequiresRoot(t)
	mountTmpfs := func(t *testing.T, dir string) {
		t.Helper()
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"not mounted", func(*testing.T, string) {}},
		{"stacked", func(t *testing.T, root string) { mountTmpfs(t, root); mountTmpfs(t, root) }},
		{"nested", func(t *testing.T, root string) {
			mountTmpfs(t, root)
			if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			mountTmpfs(t, filepath.Join(root, "sub"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "rootfs")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { // best effort, should the test fail
				for i := 0; i < 4; i++ {
					_ = unix.Unmount(root, unix.MNT_DETACH)
				}
			})
			tc.setup(t, root)
			if err := unmountRootfs(root); err != nil {
				t.Fatal(err)
			}
			left, err := mountinfo.GetMounts(mountinfo.PrefixFilter(root))
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Fatalf("left mounted: %+v", left)
			}
		})
	}
}
