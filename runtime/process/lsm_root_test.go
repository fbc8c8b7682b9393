package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestExecLabelReachesKernel writes a label through the real, verified
// /proc of a host where no LSM takes it: the write must reach the thread's
// attribute file (no "not found", no "redirected" from the open) and be
// refused by the kernel itself, as runc's write is: EINVAL without an LSM
// (the development host), ENOENT for a profile AppArmor has not loaded
// (the VM's kernel has AppArmor built in, without securityfs or policy).
func TestExecLabelReachesKernel(t *testing.T) {
	testutil.RequiresRoot(t)
	if AppArmorEnabled() || SELinuxEnabled() {
		t.Skip("the host has an LSM that takes exec labels")
	}
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread() // nothing changed: the write fails
	for _, p := range []oci.ProcessPlan{{ApparmorProfile: "box-test"}, {SelinuxLabel: "system_u:system_r:container_t:s0"}} {
		err := setExecLabels(&p)
		var errno unix.Errno
		if !errors.As(err, &errno) || !strings.Contains(err.Error(), ": write ") ||
			errdefs.IsNotFound(err) || errdefs.IsInvalidArgument(err) {
			t.Errorf("apparmor %q selinux %q: %v; want the kernel's refusal of the write", p.ApparmorProfile, p.SelinuxLabel, err)
		}
	}
}

// TestExecLabelRedirectCVE202552881 is the regression test for
// CVE-2025-52881 (runc: LSM labels written through a /proc/self/attr path
// that a container's mounts could redirect to another file, so the label
// was never applied). A procfs with a file bind-mounted over the calling
// thread's attr/exec stands in for the container's /proc: the write must
// fail and leave the file untouched. Negative control: the same write
// through a plain open of the path (the protection off) lands in the file.
func TestExecLabelRedirectCVE202552881(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	if err := os.WriteFile(marker, []byte("untouched"), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := &oci.ProcessPlan{SelinuxLabel: "system_u:system_r:spc_t:s0"}
	run := func(write func(int, string, string) error) error {
		done := make(chan error, 1)
		go func() {
			// Never unlocked: the thread's mount namespace is private
			// and dies with it.
			goruntime.LockOSThread()
			done <- inRedirectedProc(dir, marker, plan, write)
		}()
		return <-done
	}

	err := run(writeProcfs)
	if err == nil || !errdefs.IsInvalidArgument(err) {
		t.Errorf("write over a bind-mounted attr/exec: %v; want it refused as redirected", err)
	}
	if b, _ := os.ReadFile(marker); string(b) != "untouched" {
		t.Fatalf("the redirected write reached the file: %q", b)
	}

	// Negative control: without openat2's resolution flags and the
	// fstatfs check, the label goes to the attacker's file.
	naive := func(proc int, rel, value string) error {
		fd, err := unix.Openat(proc, rel, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_TRUNC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_, err = unix.Write(fd, []byte(value))
		return err
	}
	if err := run(naive); err != nil {
		t.Fatalf("negative control: %v", err)
	}
	if b, _ := os.ReadFile(marker); string(b) != plan.SelinuxLabel {
		t.Fatalf("negative control: the file holds %q; the test does not show the redirection", b)
	}
}

// inRedirectedProc mounts a procfs at dir/proc in a private mount
// namespace of the calling thread, bind-mounts marker over the thread's
// attr/exec, and writes plan's labels there with write as the procfs
// writer.
//
// Preconditions: the calling goroutine is locked to its thread, for good.
func inRedirectedProc(dir, marker string, plan *oci.ProcessPlan, write func(int, string, string) error) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	proc := filepath.Join(dir, "proc")
	if err := os.MkdirAll(proc, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	attr := fmt.Sprintf("%s/%d/task/%d/attr/exec", proc, unix.Getpid(), unix.Gettid())
	if err := unix.Mount(marker, attr, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind over %s: %w", attr, err)
	}
	oldOpen, oldWrite := openProcfs, writeProcfs
	openProcfs = func() (int, error) { return OpenProcfs(proc) }
	writeProcfs = write
	defer func() { openProcfs, writeProcfs = oldOpen, oldWrite }()
	return setExecLabels(plan)
}
