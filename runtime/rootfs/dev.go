//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// devSymlinks are the links every container's /dev has, name -> target.
var devSymlinks = [][2]string{
	{"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
}

// createDevices creates devs inside root's /dev, then the standard
// symlinks, and /dev/ptmx -> pts/ptmx when ptmx (a devpts is mounted on
// /dev/pts).
//
// A /dev that is a symlink is refused with errdefs.ErrInvalidArgument:
// device nodes would be made wherever it points (CVE-2026-41579).
func createDevices(root *os.File, devs []oci.Device, ptmx bool) error {
	if err := checkNoSymlinks(root, "/dev"); err != nil {
		return fmt.Errorf("create devices: %w", err)
	}
	dev, err := pathrs.MkdirAllHandle(root, "/dev", 0o755)
	if err != nil {
		return fmt.Errorf("create /dev: %w", err)
	}
	defer dev.Close()
	for _, d := range devs {
		if err := createDevice(root, d); err != nil {
			return fmt.Errorf("create device %s: %w", d.Path, err)
		}
	}
	for _, l := range devSymlinks {
		err := unix.Symlinkat(l[1], int(dev.Fd()), l[0])
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s: %w", l[0], err)
		}
	}
	if ptmx {
		if err := unix.Unlinkat(int(dev.Fd()), "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove /dev/ptmx: %w", err)
		}
		if err := unix.Symlinkat("pts/ptmx", int(dev.Fd()), "ptmx"); err != nil {
			return fmt.Errorf("symlink /dev/ptmx: %w", err)
		}
	}
	return nil
}

// createDevice makes one node with mknod(2), replacing whatever has its
// name. Where mknod is not permitted (a user namespace) it bind-mounts the
// host's node of the same path instead, and leaves its owner and mode alone.
func createDevice(root *os.File, d oci.Device) error {
	parent, err := pathrs.MkdirAllHandle(root, filepath.Dir(d.Path), 0o755)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd, name := int(parent.Fd()), filepath.Base(d.Path)
	if err := unix.Unlinkat(pfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove existing: %w", err)
	}
	err = unix.Mknodat(pfd, name, deviceMode(d), int(unix.Mkdev(uint32(d.Major), uint32(d.Minor))))
	if errors.Is(err, unix.EPERM) {
		return bindHostDevice(pfd, name, d.Path)
	}
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	fd, err := unix.Openat(pfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	node := os.NewFile(uintptr(fd), d.Path)
	defer node.Close()
	if err := unix.Fchownat(fd, "", int(d.UID), int(d.GID), unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	// mknod's mode went through the umask; chmod(2) through the handle
	// doesn't, and reaches exactly the node made above.
	if err := unix.Chmod(fdPath(node), uint32(d.FileMode.Perm())); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// deviceMode is the mknod(2) mode of d: file type and permission bits.
func deviceMode(d oci.Device) uint32 {
	mode := uint32(d.FileMode.Perm())
	switch d.Type {
	case 'b':
		return mode | unix.S_IFBLK
	case 'p':
		return mode | unix.S_IFIFO
	default: // 'c', 'u'
		return mode | unix.S_IFCHR
	}
}

// bindHostDevice bind-mounts the host's hostPath onto an empty file name
// made in the directory dirfd.
func bindHostDevice(dirfd int, name, hostPath string) error {
	if err := unix.Mknodat(dirfd, name, unix.S_IFREG|0o644, 0); err != nil {
		return fmt.Errorf("create mountpoint: %w", err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	target := os.NewFile(uintptr(fd), name)
	defer target.Close()
	if err := unix.Mount(hostPath, fdPath(target), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", hostPath, hostPath, err)
	}
	return nil
}
