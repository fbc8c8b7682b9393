//go:build linux

// Package rootfs builds a container's root filesystem inside the
// container's new mount namespace and pivots into it: mounts, device nodes,
// pivot_root, then readonly paths, masked paths and a readonly root.
//
// Every path that comes from the spec or from the rootfs is resolved inside
// the root with github.com/cyphar/filepath-securejoin's pathrs-lite, and
// mounts are made on the resolved file descriptor through
// /proc/thread-self/fd/N, so a symlink in the rootfs, or one swapped in by a
// process sharing a volume, cannot send a mount or a new file outside the
// root (CVE-2021-30465, CVE-2024-45310).
//
// Nothing here is undone on failure: the caller's mount namespace is the
// container's and is thrown away with the process when Prepare or Finalize
// fails.
package rootfs

import (
	"fmt"
	"os"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"golang.org/x/sys/unix"
)

// defaultPropagation is applied to "/" when the plan leaves
// RootPropagation zero: nothing mounted in the container reaches the host.
const defaultPropagation = unix.MS_SLAVE | unix.MS_REC

// Prepare builds the container's root filesystem and pivots into it, in
// order: root propagation, p.Rootfs bind-mounted onto itself, p.Mounts in
// order, p.Devices and the standard /dev symlinks, pivot_root.
//
// Preconditions:
//   - The caller is in the container's NEW mount namespace, is root with
//     full capabilities, and holds runtime.LockOSThread (mounts go through
//     /proc/thread-self).
//   - The caller is already in the container's cgroups when p.Mounts has a
//     "cgroup" mount on a cgroup v1 host (the view is made from
//     /proc/self/cgroup).
//
// On return the process's root and working directory are the new root "/".
func Prepare(p *oci.Plan) error { return PrepareWith(p, nil) }

// PrepareWith is Prepare that calls beforePivot, when not nil, once the
// mounts and devices are in place and right before pivot_root: where the
// OCI createRuntime and createContainer hooks run.
func PrepareWith(p *oci.Plan, beforePivot func() error) error {
	prop := p.RootPropagation
	if prop == 0 {
		prop = defaultPropagation
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set propagation %#x on /: %w", prop, err)
	}
	if prop&unix.MS_SHARED != 0 {
		// pivot_root(2) fails with EINVAL when the new root's parent mount
		// is shared.
		if err := makeParentPrivate(p.Rootfs); err != nil {
			return err
		}
	}
	// pivot_root(2) needs the new root to be a mount point.
	if err := unix.Mount(p.Rootfs, p.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", p.Rootfs, p.Rootfs, err)
	}
	if prop&unix.MS_SHARED != 0 {
		// The bind joined the peer group of a shared mount; pivot_root(2)
		// refuses a shared new root.
		if err := unix.Mount("", p.Rootfs, "", unix.MS_SLAVE, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", p.Rootfs, err)
		}
	}
	// Opened after the bind so that it is the root of the new mount.
	root, err := os.OpenFile(p.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()

	if err := mountAll(root, p.Mounts); err != nil {
		return err
	}
	if err := createDevices(root, p.Devices, hasMount(p.Mounts, "/dev/pts")); err != nil {
		return err
	}
	if beforePivot != nil {
		if err := beforePivot(); err != nil {
			return err
		}
	}
	enter := pivotRoot
	if p.NoPivotRoot {
		enter = moveRoot
	}
	if err := enter(root); err != nil {
		return err
	}
	if prop != defaultPropagation {
		// The spec asked for shared or private propagation of the
		// container's mounts; pivot_root needed them non-shared.
		if err := unix.Mount("", "/", "", prop, ""); err != nil {
			return fmt.Errorf("set propagation %#x on /: %w", prop, err)
		}
	}
	return nil
}

// Finalize applies what must follow pivot_root, in order: p.ReadonlyPaths,
// p.MaskedPaths, then the readonly root when p.ReadonlyRootfs. Paths that
// don't exist are skipped.
//
// Preconditions:
//   - Prepare succeeded; the container's procfs is mounted at /proc.
//   - The caller holds runtime.LockOSThread.
func Finalize(p *oci.Plan) error {
	root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /: %w", err)
	}
	defer root.Close()
	for _, path := range p.ReadonlyPaths {
		if err := readonlyPath(root, path); err != nil {
			return err
		}
	}
	if err := maskPaths(root, p.MaskedPaths); err != nil {
		return err
	}
	if p.ReadonlyRootfs {
		if err := remountReadonly(root, "/"); err != nil {
			return err
		}
	}
	return nil
}

// moveRoot makes root the process's root and working directory by moving
// its mount onto "/" and chrooting into it (runtime option NoPivotRoot).
// The old root stays mounted underneath, unreachable from the new root, as
// with runc's --no-pivot.
func moveRoot(root *os.File) error {
	if err := unix.Fchdir(int(root.Fd())); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs onto /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to /: %w", err)
	}
	return nil
}

// pivotRoot makes root the process's root and working directory and
// detaches the old root.
func pivotRoot(root *os.File) error {
	if err := unix.Fchdir(int(root.Fd())); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one, so no
	// directory for it is needed inside the container.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// Make the old root a slave before detaching it, so the unmount does not
	// propagate to the host when the root propagation is shared.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("set propagation of old root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to /: %w", err)
	}
	return nil
}

// hasMount reports whether ms mounts something on dest.
func hasMount(ms []oci.Mount, dest string) bool {
	for _, m := range ms {
		if m.Destination == dest {
			return true
		}
	}
	return false
}
