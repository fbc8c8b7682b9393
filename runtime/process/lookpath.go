package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// defaultPath is searched when the process's environment has no PATH, as
// execvp(3) does with its own default.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds the program execve will run for argv0, as execvp(3) would
// in the process's environment (not the runtime's):
//
//   - an argv0 with a slash is used as it is, relative to the cwd;
//   - otherwise each PATH entry is tried in order (an empty entry is the
//     cwd), and the first executable regular file wins.
//
// It runs with the process's credentials, so "executable" is judged for the
// process's user. A program that is nowhere is errdefs.ErrNotFound; one that
// is there but cannot be executed is errdefs.ErrPermissionDenied.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		if err := checkExecutable(argv0); err != nil {
			return "", execError(argv0, err)
		}
		return argv0, nil
	}
	path, ok := getenv(env, "PATH")
	if !ok {
		path = defaultPath
	}
	var denied error
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		candidate := dir + "/" + argv0
		err := checkExecutable(candidate)
		if err == nil {
			return candidate, nil
		}
		if denied == nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
			denied = err
		}
	}
	if denied != nil {
		// As execvp(3): found, but not executable, is reported as such.
		return "", execError(argv0, denied)
	}
	return "", errdefs.ErrNotFound.WithMessage(fmt.Sprintf("exec: %q: executable file not found in $PATH", argv0))
}

// execResolve are the openat2 resolve flags a program's path must resolve
// with. RESOLVE_NO_MAGICLINKS refuses "/proc/self/fd/N/...", "/proc/self/
// cwd/..." and "/proc/self/exe": execve resolves the path while every
// descriptor is still open (close-on-exec applies only after), so a path
// through a descriptor the runtime held would run a program of the host
// (CVE-2024-21626 with args[0]). A variable so that tests can clear it.
var execResolve uint64 = unix.RESOLVE_NO_MAGICLINKS

// checkExecutable reports why path is not an executable regular file.
func checkExecutable(path string) error {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: execResolve})
	if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("%s resolves through a /proc magic link (or too many symlinks): %w: %w", path, errdefs.ErrInvalidArgument, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return &fs.PathError{Op: "exec", Path: path, Err: unix.EISDIR}
	}
	if !st.Mode().IsRegular() {
		return &fs.PathError{Op: "exec", Path: path, Err: unix.EACCES}
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return &fs.PathError{Op: "access", Path: path, Err: err}
	}
	return nil
}

// execError classifies why argv0 cannot be executed.
func execError(argv0 string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("exec: %q: %w: %w", argv0, errdefs.ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, unix.EISDIR):
		return fmt.Errorf("exec: %q: %w: %w", argv0, errdefs.ErrPermissionDenied, err)
	}
	return fmt.Errorf("exec: %q: %w", argv0, err)
}

// getenv returns the value of the first name=value entry in env, as
// getenv(3) does.
func getenv(env []string, name string) (string, bool) {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v, true
		}
	}
	return "", false
}
