package process

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// chdirAsRoot tries to enter cwd while still root, so a directory the user
// may not search on the way is no obstacle. It reports whether it got there;
// when root was refused (a root-squashed or user-owned 0700 volume), the
// caller tries again as the user (enterCwd).
func chdirAsRoot(cwd string) (bool, error) {
	err := unix.Chdir(cwd)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return false, nil
	}
	if err != nil {
		return false, cwdError(cwd, err)
	}
	return true, nil
}

// enterCwd makes the chdir chdirAsRoot could not, then checks where the
// thread is. The kernel reports a cwd outside the current root (reached
// through a leaked descriptor, CVE-2024-21626) as "(unreachable)/...";
// unix.Getwd turns that into ENOENT, and the prefix check is a second guard.
func enterCwd(cwd string, done bool) error {
	if !done {
		if err := unix.Chdir(cwd); err != nil {
			return cwdError(cwd, err)
		}
	}
	return checkCwd(cwd)
}

// checkCwd is checkCwdInRoot; a variable so that tests can show what the
// check prevents.
var checkCwd = checkCwdInRoot

// checkCwdInRoot fails with errdefs.ErrInvalidArgument when the calling
// thread's working directory is not below its root.
func checkCwdInRoot(cwd string) error {
	wd, err := unix.Getwd()
	if err == nil && (!strings.HasPrefix(wd, "/") || strings.HasPrefix(wd, "(unreachable)")) {
		err = unix.ENOENT
	}
	if err != nil {
		return fmt.Errorf("process.cwd: %q is not inside the container's root: %w: %w", cwd, errdefs.ErrInvalidArgument, err)
	}
	return nil
}

// cwdError classifies a failed chdir: a cwd that is missing or not a
// directory is the spec's fault.
func cwdError(cwd string, err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("process.cwd: chdir %s: %w: %w", cwd, errdefs.ErrInvalidArgument, err)
	}
	return fmt.Errorf("process.cwd: chdir %s: %w", cwd, err)
}
