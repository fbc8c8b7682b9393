package launch

import (
	"errors"
	"fmt"
	"sort"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// unmountRecursive detaches every mount at or below target, deepest first.
// A target that is not mounted is fine. (containerd's core/mount does the
// same, but links the API types and their image-spec and digest packages,
// whose initialisation this binary would pay on every run.)
//
// target is the bundle's rootfs directory, never a symlink (containerd makes
// it); IsMountPoint does not follow one.
func unmountRecursive(target string) error {
	if mounted, err := IsMountPoint(target); err == nil && !mounted {
		// The common case after a clean daemon exit: no need to read
		// the host's whole mountinfo.
		return nil
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(target))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	var errs []error
	for _, m := range mounts {
		err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}

// IsMountPoint reports whether path is the root of a mount (statx
// STATX_ATTR_MOUNT_ROOT, without reading mountinfo). A missing path is not
// one. It fails where the kernel does not report the attribute.
func IsMountPoint(path string) (bool, error) {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, 0, &st)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return false, fmt.Errorf("statx %s: no mount-root attribute: %w", path, unix.ENOTSUP)
	}
	return st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}
