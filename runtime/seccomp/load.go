package seccomp

import (
	"fmt"
	goruntime "runtime"
	"unsafe"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Load installs p on the calling thread, which must then execve. It returns
// the listener fd when p.NeedsListener, else -1.
//
// The filter is not synchronized to other threads (no TSYNC): only the
// calling thread and what it execs are filtered.
//
// Preconditions:
//   - The goroutine is locked to its OS thread (runtime.LockOSThread) and
//     stays locked until execve.
//   - The thread has no_new_privs set (PR_SET_NO_NEW_PRIVS) or CAP_SYS_ADMIN
//     in its user namespace.
//   - Between Load and execve the thread only makes syscalls the filter
//     allows (the Go runtime may need futex, mmap, rt_sigprocmask,
//     sched_yield, ... and execve itself).
func Load(p *Program) (listenerFd int, err error) {
	if p == nil || len(p.Filter) == 0 {
		return -1, fmt.Errorf("seccomp: load: empty program: %w", errdefs.ErrInvalidArgument)
	}
	if len(p.Filter) > maxInsns {
		return -1, fmt.Errorf("seccomp: load: %d instructions: %w", len(p.Filter), errdefs.ErrInvalidArgument)
	}
	prog := unix.SockFprog{Len: uint16(len(p.Filter)), Filter: &p.Filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(p.Flags), uintptr(unsafe.Pointer(&prog)))
	goruntime.KeepAlive(p.Filter)
	if errno != 0 {
		return -1, fmt.Errorf("seccomp: load filter (flags %#x): %w", p.Flags, classify(errno))
	}
	if p.NeedsListener {
		return int(r), nil
	}
	return -1, nil
}

func classify(errno unix.Errno) error {
	switch errno {
	case unix.EACCES:
		return fmt.Errorf("%w (no_new_privs not set and no CAP_SYS_ADMIN): %w", errno, errdefs.ErrFailedPrecondition)
	case unix.EINVAL, unix.EFAULT:
		return fmt.Errorf("%w: %w", errno, errdefs.ErrInvalidArgument)
	case unix.ENOMEM, unix.EBUSY:
		return fmt.Errorf("%w: %w", errno, errdefs.ErrResourceExhausted)
	}
	return errno
}
