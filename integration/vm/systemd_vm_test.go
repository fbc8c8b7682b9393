//go:build linux

package vm

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// bootVM boots kernel + initrd with qemu (TCG, 2 CPUs, 2 GiB, no network), writes the console
// to dir/console.log, streams the VM-* markers to the test log and returns the parsed console.
// It fails t if qemu fails, times out (BOX_VM_TIMEOUT; it is then killed by its pid) or the VM
// stops before VM-DONE.
func bootVM(t *testing.T, dir, kernel, initrd, cmdline string) *console {
	t.Helper()
	qemu := os.Getenv("BOX_VM_QEMU")
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	qemu, err := exec.LookPath(qemu)
	if err != nil {
		t.Fatalf("%v: apt-get install qemu-system-x86 (hack/vm/deps.sh)", err)
	}
	timeout := defaultTimeout
	if v := os.Getenv("BOX_VM_TIMEOUT"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil {
			t.Fatalf("BOX_VM_TIMEOUT: %v", err)
		}
	}
	logPath := filepath.Join(dir, "console.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2",
		"-nographic", "-nic", "none", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline)
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = cmd.Stdout
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), "\r"); strings.HasPrefix(line, "=== VM-") {
				t.Log(strings.TrimPrefix(line, "=== "))
			}
		}
		io.Copy(io.Discard, pr)
	}()
	start := time.Now()
	t.Logf("booting %s (timeout %s), console: %s", qemu, timeout, logPath)
	runErr := cmd.Run()
	pw.Close()
	wg.Wait()
	t.Logf("VM run took %s", time.Since(start).Round(100*time.Millisecond))

	logFile.Seek(0, io.SeekStart)
	c, err := parseConsole(logFile)
	if err != nil {
		t.Fatalf("read %s: %v", logPath, err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("the VM did not finish within %s; qemu (pid %d) was killed. Last console lines:\n%s",
			timeout, cmd.Process.Pid, quote(c.tail))
	} else if runErr != nil {
		t.Errorf("qemu: %v. Last console lines:\n%s", runErr, quote(c.tail))
	} else if !c.done {
		t.Errorf("the VM stopped before it finished. Last console lines:\n%s", quote(c.tail))
	}
	for _, i := range c.info {
		t.Logf("vm: %s", i)
	}
	return c
}

// reportVM reports every test the VM ran as a subtest <package>/<Test>.
func reportVM(t *testing.T, c *console, list []entry) {
	t.Helper()
	for _, e := range list {
		t.Run(e.name, func(t *testing.T) {
			p := c.pkgs[e.name]
			if p == nil {
				t.Fatalf("no results from %s in the VM", e.name)
			}
			failed := false
			for _, r := range p.results {
				t.Run(r.test, func(t *testing.T) {
					switch r.status {
					case "PASS":
					case "SKIP":
						t.Skipf("skipped in the VM:\n%s", quote(r.output))
					case "NONE":
						t.Skipf("ran no test in the VM:\n%s", quote(r.output))
					default:
						failed = true
						t.Errorf("failed in the VM (exit status %d):\n%s", r.rc, quote(r.output))
					}
				})
			}
			if len(p.results) == 0 {
				t.Errorf("%s ran no test in the VM", e.name)
			}
			if !p.ended {
				t.Errorf("%s did not finish in the VM", e.name)
			} else {
				t.Logf("%s: %d tests in %ss (exit status %d)", e.name, len(p.results), p.secs, p.rc)
			}
			if p.rc != 0 && !failed {
				t.Errorf("%s exited %d in the VM with no failing test", e.name, p.rc)
			}
			if p.leftover != "" {
				if failed {
					t.Logf("left behind in the VM (after failures): %s", p.leftover)
				} else {
					t.Errorf("left behind in the VM: %s", p.leftover)
				}
			}
		})
	}
	if c.done && c.rc != 0 && !t.Failed() {
		t.Errorf("the VM reported rc=%d, but no test failed", c.rc)
	}
}
