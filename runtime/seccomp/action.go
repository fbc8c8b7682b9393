package seccomp

import (
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// action is a seccomp filter return value: SECCOMP_RET_* in the high 16 bits,
// data (an errno for ERRNO and TRACE) in the low 16.
type action uint32

const (
	retKillThread  action = unix.SECCOMP_RET_KILL_THREAD
	retKillProcess action = unix.SECCOMP_RET_KILL_PROCESS
	retTrap        action = unix.SECCOMP_RET_TRAP
	retErrno       action = unix.SECCOMP_RET_ERRNO
	retUserNotif   action = unix.SECCOMP_RET_USER_NOTIF
	retTrace       action = unix.SECCOMP_RET_TRACE
	retLog         action = unix.SECCOMP_RET_LOG
	retAllow       action = unix.SECCOMP_RET_ALLOW

	// retBadArch is returned for an ABI the profile does not list (libseccomp's
	// "bad arch" action; KILL_PROCESS rather than its KILL_THREAD default so a
	// multi-threaded task cannot carry on without the thread).
	retBadArch = retKillProcess
	// retENOSYS is returned for syscalls newer than the profile knows.
	retENOSYS = retErrno | action(unix.ENOSYS)
)

func (a action) base() action { return a & unix.SECCOMP_RET_ACTION_FULL }

// permissive reports whether a, as the default action, lets unknown syscalls
// through; runc's patchbpf adds no ENOSYS stub for these (TRACE counts as
// permissive: a tracer should handle new syscalls itself).
func (a action) permissive() bool {
	switch a.base() {
	case retAllow, retLog, retTrace:
		return true
	}
	return false
}

// parseAction converts an OCI action and its errnoRet. field names the spec
// field for errors. errnoRet applies to ERRNO and TRACE and defaults to EPERM,
// as in runc.
func parseAction(field string, act specs.LinuxSeccompAction, errnoRet *uint) (action, error) {
	var a action
	switch act {
	case specs.ActKill, specs.ActKillThread:
		a = retKillThread
	case specs.ActKillProcess:
		a = retKillProcess
	case specs.ActTrap:
		a = retTrap
	case specs.ActErrno:
		a = retErrno
	case specs.ActTrace:
		a = retTrace
	case specs.ActAllow:
		a = retAllow
	case specs.ActLog:
		a = retLog
	case specs.ActNotify:
		a = retUserNotif
	default:
		return 0, fmt.Errorf("%s: unknown action %q: %w", field, act, errdefs.ErrInvalidArgument)
	}
	if a != retErrno && a != retTrace {
		if errnoRet != nil {
			return 0, fmt.Errorf("%s: errnoRet is only valid with %s and %s, not %s: %w",
				field, specs.ActErrno, specs.ActTrace, act, errdefs.ErrInvalidArgument)
		}
		return a, nil
	}
	errno := uint(unix.EPERM)
	if errnoRet != nil {
		errno = *errnoRet
	}
	if errno > unix.SECCOMP_RET_DATA {
		return 0, fmt.Errorf("%s: errnoRet %d does not fit in 16 bits: %w", field, errno, errdefs.ErrInvalidArgument)
	}
	return a | action(errno), nil
}

// Flags for seccomp(SECCOMP_SET_MODE_FILTER).
const flagTSYNC specs.LinuxSeccompFlag = "SECCOMP_FILTER_FLAG_TSYNC"

// parseFlags converts the spec's flags. TSYNC is ignored: the filter is loaded
// by the thread that then execs, which ends every other thread anyway (runc
// does the same). WAIT_KILLABLE_RECV only means something with a listener, so
// it is dropped when no rule uses SCMP_ACT_NOTIFY (the kernel would refuse it).
func parseFlags(flags []specs.LinuxSeccompFlag, listener bool) (uint, error) {
	var out uint
	for i, f := range flags {
		switch f {
		case flagTSYNC:
		case specs.LinuxSeccompFlagLog:
			out |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			out |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case specs.LinuxSeccompFlagWaitKillableRecv:
			if listener {
				out |= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
			}
		default:
			return 0, fmt.Errorf("linux.seccomp.flags[%d]: unknown flag %q: %w", i, f, errdefs.ErrInvalidArgument)
		}
	}
	if listener {
		out |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	}
	return out, nil
}
