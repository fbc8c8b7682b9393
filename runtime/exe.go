package runtime

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// highFD is the lowest number the sealed executable's fd is moved to, so that
// the child's stdio/ExtraFiles shuffling (fds 0..n) can never overwrite it
// before execve resolves /proc/self/fd/N.
const highFD = 100

var sealed struct {
	mu sync.Mutex
	fd int // guarded by mu; 0 until sealed (never 0 after: fds are >= highFD)
	// exe is the binary to seal; empty means the running executable.
	exe string
}

// SetStageExecutable names the binary whose sealed copy runs the
// container-side stages: the daemon binary is not one, the small
// containerd-shim-box-v1 beside it is. Unset, the running executable is its
// own stage (the runtime's tests). It must be called before the first
// SealedExe.
func SetStageExecutable(path string) { sealed.exe = path }

// SealedExe returns the path through which the daemon executes the
// container-side stages (SetStageExecutable). It is never the on-disk shim binary
// (CVE-2019-5736): a process inside a container that opens /proc/<pid>/exe of
// a helper gets a file it cannot write, so the host binary can't be replaced.
//
// The copy is made once per daemon and reused; a failure is not
// remembered, the next call tries again (a binary being replaced during an
// upgrade must not fail every later Create of a long-lived daemon). Preferred is a detached,
// read-only overlayfs mount whose only content is the directory holding the
// binary: it costs one mount and no memory, and the file reached through it
// refuses writes with EROFS and has no upper layer to copy up into. Where
// overlayfs can't be used, a sealed memfd copy of the binary is the fallback.
//
// The returned path is /proc/self/fd/N with N >= 100 and the fd close-on-exec;
// it is valid in children until they execve.
func SealedExe() (string, error) {
	sealed.mu.Lock()
	defer sealed.mu.Unlock()
	if sealed.fd == 0 {
		exe := sealed.exe
		if exe == "" {
			var err error
			if exe, err = os.Executable(); err != nil {
				return "", fmt.Errorf("find own executable: %w", err)
			}
		}
		fd, err := overlayExe(exe)
		if err != nil {
			fd, err = memfdExe(exe)
		}
		if err != nil {
			return "", fmt.Errorf("seal %s: %w", exe, err)
		}
		if fd, err = moveHigh(fd); err != nil {
			return "", err
		}
		sealed.fd = fd
	}
	return fmt.Sprintf("/proc/self/fd/%d", sealed.fd), nil
}

// overlayExe opens exe through a detached read-only overlayfs of its
// directory. The mount is never attached to any mount namespace; the O_PATH
// fd keeps it alive.
func overlayExe(exe string) (int, error) {
	empty, err := emptyDir()
	if err != nil {
		return -1, err
	}
	defer unix.Close(empty)

	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	// Two lower layers and no upper: a read-only overlay. The second layer
	// is an empty detached tmpfs (overlayfs refuses the same layer twice).
	for _, dir := range []string{filepath.Dir(exe), fmt.Sprintf("/proc/self/fd/%d", empty)} {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", dir); err != nil {
			return -1, fmt.Errorf("overlay lowerdir+=%s: %w", dir, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("create overlay: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return -1, fmt.Errorf("fsmount overlay: %w", err)
	}
	defer unix.Close(mfd)
	fd, err := unix.Openat(mfd, filepath.Base(exe), unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s in overlay: %w", filepath.Base(exe), err)
	}
	return fd, nil
}

// emptyDir returns an fd of the root of a detached, empty, read-only tmpfs.
func emptyDir() (int, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("create tmpfs: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return -1, fmt.Errorf("fsmount tmpfs: %w", err)
	}
	return mfd, nil
}

// memfdExe copies exe into a memfd and seals it against any change.
func memfdExe(exe string) (int, error) {
	src, err := os.Open(exe)
	if err != nil {
		return -1, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("containerd-shim-box-v1", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "memfd")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return -1, fmt.Errorf("copy to memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return -1, fmt.Errorf("seal memfd: %w", err)
	}
	// Keep the fd; dst must not close it when collected.
	nfd, err := unix.FcntlInt(dst.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	dst.Close()
	if err != nil {
		return -1, err
	}
	return nfd, nil
}

func moveHigh(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, highFD)
	unix.Close(fd)
	if err != nil {
		return -1, fmt.Errorf("move sealed exe fd: %w", err)
	}
	return nfd, nil
}
