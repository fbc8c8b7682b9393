//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"os"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// IDMappedTree returns a detached clone of the mount at m.Source (with the
// mounts below it when m is "rbind"), idmapped with userns: every mount of
// the clone when m.IDMap.Recursive ("ridmap"), else its top. The container
// side moves it onto m.Destination (m.Detached).
//
// Preconditions:
//   - The caller is the daemon, in the host's mount namespace: the kernel
//     lets only a process privileged over the source's filesystem (its
//     superblock's user namespace) idmap it, which the container's root,
//     in its own user namespace, is not.
//   - userns is a user namespace file the caller is privileged in, other
//     than the initial one.
func IDMappedTree(m oci.Mount, userns *os.File) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if m.Flags&unix.MS_REC != 0 {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, flags)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("clone %s for an idmapped mount on %s: %w", m.Source, m.Destination, err)
	}
	tree := os.NewFile(uintptr(fd), m.Source)
	at := unix.AT_EMPTY_PATH
	if m.IDMap.Recursive {
		at |= unix.AT_RECURSIVE
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(fd, "", uint(at), attr); err != nil {
		tree.Close()
		if errors.Is(err, unix.EINVAL) {
			// The filesystem (or, with ridmap, one below it) does not
			// support idmapped mounts.
			err = fmt.Errorf("%w (the filesystem does not support idmapped mounts?): %w", err, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("idmap %s for %s: %w", m.Source, m.Destination, err)
	}
	return tree, nil
}

// moveDetached moves the detached mount tree onto target.
func moveDetached(tree, target *os.File) error {
	return unix.MoveMount(int(tree.Fd()), "", int(target.Fd()), "",
		unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}
