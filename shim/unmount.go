package shim

import (
	"errors"
	"fmt"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/shim/launch"
)

// unmountRootfs unmounts a container's rootfs at Delete. It is normally the
// one mount containerd asked for (or a few stacked ones) with nothing below
// it in the daemon's mount namespace, and unmounting it needs no mountinfo:
// containerd's UnmountRecursive reads and parses the host's whole
// mountinfo, which grows with every container on the host. Mounts below the
// rootfs (propagated back from a container with shared rootfs propagation)
// make umount fail with EBUSY, and the recursive unmount handles them.
func unmountRootfs(root string) error {
	for i := 0; i < 16; i++ {
		mounted, err := launch.IsMountPoint(root)
		if err != nil {
			break
		}
		if !mounted {
			return nil
		}
		if err := unix.Unmount(root, 0); err != nil {
			if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EINVAL) {
				break
			}
			return fmt.Errorf("unmount %s: %w", root, err)
		}
	}
	return mount.UnmountRecursive(root, 0)
}
