//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/containerd/errdefs"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// openDevNull returns a handle to the container's /dev/null, verified to be
// the null device. A variable so that tests can show what the verification
// prevents.
var openDevNull = openVerifiedDevNull

// readonlyPath bind-mounts path onto itself and makes the bind read-only,
// keeping its nosuid, nodev and noexec. A path that doesn't exist is
// skipped.
func readonlyPath(root *os.File, path string) error {
	f, err := pathrs.OpenatInRoot(root, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("readonly path %s: %w", path, err)
	}
	err = unix.Mount(fdPath(f), fdPath(f), "", unix.MS_BIND|unix.MS_REC, "")
	f.Close()
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", path, path, err)
	}
	return remountReadonly(root, path)
}

// remountReadonly makes the mount at path read-only, keeping its other
// flags.
func remountReadonly(root *os.File, path string) error {
	top, err := pathrs.OpenatInRoot(root, path)
	if err != nil {
		return fmt.Errorf("remount %s read-only: %w", path, err)
	}
	defer top.Close()
	if err := remountBind(top, unix.MS_RDONLY); err != nil {
		return fmt.Errorf("remount %s read-only: %w", path, err)
	}
	return nil
}

// maskPaths hides each of paths: a directory under an empty read-only
// tmpfs, anything else under the container's /dev/null. Paths that don't
// exist are skipped.
func maskPaths(root *os.File, paths []string) error {
	var null *os.File
	defer func() {
		if null != nil {
			null.Close()
		}
	}()
	for _, path := range paths {
		f, err := pathrs.OpenatInRoot(root, path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", path, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return fmt.Errorf("mask %s: %w", path, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			// A read-only tmpfs stays empty; size=0 would mean "no limit".
			err = unix.Mount("tmpfs", fdPath(f), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755")
			f.Close()
			if err != nil {
				return fmt.Errorf("mount tmpfs on %s: %w", path, err)
			}
			continue
		}
		if null == nil {
			if null, err = openDevNull(root); err != nil {
				f.Close()
				return fmt.Errorf("mask %s: %w", path, err)
			}
		}
		// Binding the verified handle, not the path "/dev/null", leaves no
		// window to swap /dev/null for something else (CVE-2025-31133).
		err = unix.Mount(fdPath(null), fdPath(f), "", unix.MS_BIND, "")
		f.Close()
		if err != nil {
			return fmt.Errorf("mount /dev/null on %s: %w", path, err)
		}
	}
	return nil
}

// openVerifiedDevNull opens root's dev/null without following symlinks and
// fails with errdefs.ErrInvalidArgument unless it is the character device
// 1:3. A /dev/null that is a symlink or a regular file would make masking
// bind whatever it names over the masked path (CVE-2025-31133).
func openVerifiedDevNull(root *os.File) (*os.File, error) {
	dev, err := unix.Openat(int(root.Fd()), "dev", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev: %w", err)
	}
	defer unix.Close(dev)
	null, err := openNoFollow(dev, "null")
	if err != nil {
		return nil, fmt.Errorf("/dev/null: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(null.Fd()), &st); err != nil {
		null.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		null.Close()
		return nil, fmt.Errorf("/dev/null is not the character device 1:3 (mode %#o, rdev %d:%d): %w",
			st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), errdefs.ErrInvalidArgument)
	}
	return null, nil
}
