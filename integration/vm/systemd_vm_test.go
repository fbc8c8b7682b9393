//go:build linux

package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
)

// TestRootTestsInSystemdVM boots the systemd test VM (hack/vm/systemd: Debian's rootfs from
// debootstrap with systemd as pid 1, the same cloud kernel, a pure cgroup2 hierarchy), whose
// box-vm-test.service runs the root tests of the systemd cgroup driver, and reports each test
// of the VM as a subtest (TestRootTestsInSystemdVM/<package>/<Test>), like
// TestRootTestsInCgroupV2VM. It fails unless the VM reports systemd as pid 1.
//
// Env: BOX_VM_SYSTEMD_DIR (required: initramfs.cpio and tests.list from
// hack/vm/systemd/build.sh), BOX_VM_KERNEL (default: $BOX_VM_SYSTEMD_DIR/../vm/kernel/vmlinuz,
// the kernel hack/vm/deps.sh unpacks), BOX_VM_TIMEOUT (default 8m), BOX_VM_QEMU.
func TestRootTestsInSystemdVM(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := os.Getenv("BOX_VM_SYSTEMD_DIR")
	if dir == "" {
		t.Skip("BOX_VM_SYSTEMD_DIR is not set; run `make vm-systemd-test` (hack/vm/README.md)")
	}
	kernel := os.Getenv("BOX_VM_KERNEL")
	if kernel == "" {
		kernel = filepath.Join(dir, "..", "vm", "kernel", "vmlinuz")
	}
	initrd := filepath.Join(dir, "initramfs.cpio")
	list, err := readList(filepath.Join(dir, "tests.list"))
	if err != nil {
		t.Fatalf("%v; run hack/vm/systemd/build.sh", err)
	}
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v; run hack/vm/systemd/run.sh", err)
		}
	}
	// rdinit: the rootfs has an /init of its own (hack/vm/systemd/init) that execs systemd;
	// systemd.unit: boot box-vm.target alone; show_status=0: keep the console for the markers.
	c := bootVM(t, dir, kernel, initrd,
		"console=ttyS0 quiet panic=-1 rdinit=/init systemd.unit=box-vm.target "+
			"systemd.unified_cgroup_hierarchy=1 systemd.show_status=0")
	if len(c.info) == 0 || !strings.Contains(c.info[0], "cgroupfs=cgroup2") || !strings.Contains(c.info[0], "init=systemd") {
		t.Fatalf("the VM did not report systemd as pid 1 on a cgroup2 /sys/fs/cgroup: %q", c.info)
	}
	reportVM(t, c, list)
}
