package process

import (
	"bytes"
	"fmt"
	"os"
	"sync"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// AppArmorEnabled reports whether the host runs AppArmor, as runc decides
// it: securityfs has an apparmor directory and the module says "Y".
var AppArmorEnabled = sync.OnceValue(func() bool {
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
		return false
	}
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && len(b) > 0 && b[0] == 'Y'
})

// SELinuxEnabled reports whether the host runs SELinux: selinuxfs is
// mounted at /sys/fs/selinux and the daemon has a context other than
// "kernel" (the context of every task when no policy is loaded).
var SELinuxEnabled = sync.OnceValue(func() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/selinux", &st); err != nil || uint32(st.Type) != unix.SELINUX_MAGIC {
		return false
	}
	b, err := os.ReadFile("/proc/thread-self/attr/current")
	return err == nil && len(bytes.TrimRight(b, "\x00\n")) > 0 && string(bytes.TrimRight(b, "\x00\n")) != "kernel"
})

// hostLSM is what CheckHost consults; tests replace it.
var hostLSM = struct{ apparmor, selinux func() bool }{AppArmorEnabled, SELinuxEnabled}

// CheckHost refuses, with errdefs.ErrFailedPrecondition naming the field,
// a process whose security labels the host cannot apply. The daemon calls
// it before it starts a stage.
//
// runc fails such a container too, later and less clearly: it refuses a
// selinuxLabel when SELinux is disabled, and its write of the AppArmor
// exec attribute fails with EINVAL when AppArmor is not loaded.
func CheckHost(p *oci.ProcessPlan) error {
	if p.ApparmorProfile != "" && !hostLSM.apparmor() {
		return fmt.Errorf("process.apparmorProfile %q: AppArmor is not enabled on this host: %w", p.ApparmorProfile, errdefs.ErrFailedPrecondition)
	}
	if p.SelinuxLabel != "" && !hostLSM.selinux() {
		return fmt.Errorf("process.selinuxLabel %q: SELinux is not enabled on this host: %w", p.SelinuxLabel, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// setExecLabels asks the kernel to put the program in the process's
// AppArmor profile or SELinux context at execve, by writing the calling
// thread's attr/exec (attr/apparmor/exec where the kernel has it, as
// libapparmor does). It must run before seccomp, which may deny the write.
//
// Preconditions: CheckHost passed for p; the thread that will execve.
func setExecLabels(p *oci.ProcessPlan) error {
	if p.ApparmorProfile != "" {
		if err := writeAttr([]string{"apparmor/exec", "exec"}, "exec "+p.ApparmorProfile); err != nil {
			return fmt.Errorf("process.apparmorProfile: %w", err)
		}
	}
	if p.SelinuxLabel != "" {
		if err := writeAttr([]string{"exec"}, p.SelinuxLabel); err != nil {
			return fmt.Errorf("process.selinuxLabel: %w", err)
		}
	}
	return nil
}

// writeAttr writes value to the first of the calling thread's attribute
// files names (relative to /proc/<pid>/task/<tid>/attr) that exists,
// through a verified procfs handle (see procfs.go).
//
// CVE-2025-52881: runc wrote labels through /proc/thread-self, which a
// container's mounts could redirect (a bind mount or a symlink over the
// attribute file) to another procfs file, so the label was never applied.
// Here the path is resolved by numbers from the container's verified procfs
// root, never following a symlink or crossing a mount: anything mounted over
// the attribute file fails the write.
func writeAttr(names []string, value string) error {
	proc, err := openProcfs()
	if err != nil {
		return err
	}
	defer unix.Close(proc)
	base := fmt.Sprintf("%d/task/%d/attr/", unix.Getpid(), unix.Gettid())
	for i, name := range names {
		err := writeProcfs(proc, base+name, value)
		if errdefs.IsNotFound(err) && i < len(names)-1 {
			continue
		}
		return err
	}
	return nil
}

// OpenProcfs opens path (O_PATH, not following a symlink) and checks that
// it is a procfs, so nothing the container mounted there (a tmpfs with
// fake files, CVE-2019-16884) is written through it. The caller closes the
// descriptor.
func OpenProcfs(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	if err := checkProcfs(fd, path); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
