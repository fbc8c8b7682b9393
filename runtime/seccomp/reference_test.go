package seccomp

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// reference computes, straight from the spec and without BPF, the action
// Compile's program should return for d. It restates the documented
// semantics of Compile independently of the code generator; s must be valid.
func reference(s *specs.LinuxSeccomp, d data) action {
	var a *arch
	switch {
	case d.arch == unix.AUDIT_ARCH_X86_64 && d.nr < x32Bit:
		a = archX86_64
	case d.arch == unix.AUDIT_ARCH_X86_64 && slices.Contains(s.Architectures, specs.ArchX32):
		a = archX32
	case d.arch == unix.AUDIT_ARCH_I386 && slices.Contains(s.Architectures, specs.ArchX86):
		a = archI386
	default:
		return retKillProcess
	}
	def := refAction(s.DefaultAction, s.DefaultErrnoRet)
	var matched, catchAll *action
	var maxNr uint32
	named := false
	for _, sc := range s.Syscalls {
		act := refAction(sc.Action, sc.ErrnoRet)
		for _, name := range sc.Names {
			n, ok := a.syscalls[name]
			if !ok {
				continue
			}
			maxNr, named = max(maxNr, n), true
			if n != d.nr {
				continue
			}
			switch {
			case len(sc.Args) == 0:
				if catchAll == nil {
					catchAll = &act
				}
			case matched == nil && refMatch(sc.Args, d, a.args32):
				matched = &act
			}
		}
	}
	switch {
	case matched != nil:
		return *matched
	case catchAll != nil:
		return *catchAll
	}
	switch s.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
	default:
		if named && d.nr > maxNr {
			return retENOSYS
		}
	}
	return def
}

func refAction(a specs.LinuxSeccompAction, errnoRet *uint) action {
	e := uint32(unix.EPERM)
	if errnoRet != nil {
		e = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP
	case specs.ActErrno:
		return action(unix.SECCOMP_RET_ERRNO | e)
	case specs.ActTrace:
		return action(unix.SECCOMP_RET_TRACE | e)
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF
	}
	panic("reference: invalid action " + a)
}

// refMatch: all conditions hold, or any does if two test the same argument.
func refMatch(args []specs.LinuxSeccompArg, d data, args32 bool) bool {
	seen := map[uint]bool{}
	or := false
	for _, c := range args {
		or = or || seen[c.Index]
		seen[c.Index] = true
	}
	for _, c := range args {
		ok := refCompare(c, d.args[c.Index], args32)
		if or && ok {
			return true
		}
		if !or && !ok {
			return false
		}
	}
	return !or
}

func refCompare(c specs.LinuxSeccompArg, arg uint64, args32 bool) bool {
	v, v2 := c.Value, c.ValueTwo
	if args32 {
		arg, v, v2 = uint64(uint32(arg)), uint64(uint32(v)), uint64(uint32(v2))
	}
	switch c.Op {
	case specs.OpNotEqual:
		return arg != v
	case specs.OpLessThan:
		return arg < v
	case specs.OpLessEqual:
		return arg <= v
	case specs.OpEqualTo:
		return arg == v
	case specs.OpGreaterEqual:
		return arg >= v
	case specs.OpGreaterThan:
		return arg > v
	case specs.OpMaskedEqual:
		return arg&v == v2
	}
	panic("reference: invalid op " + c.Op)
}
