// Package seccomp compiles OCI seccomp profiles (linux.seccomp) to classic
// BPF and loads them, without libseccomp.
//
// Compile is pure; Load is the only function that makes a syscall. The
// semantics follow runc's (libseccomp plus runc's patchbpf ENOSYS stub)
// except where noted on Compile.
package seccomp

import (
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

//go:generate go run mksyscalls.go

// maxInsns is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
const maxInsns = 4096

// Program is a compiled filter plus the flags to load it with.
type Program struct {
	Filter []unix.SockFilter
	// Flags for seccomp(SECCOMP_SET_MODE_FILTER); includes
	// SECCOMP_FILTER_FLAG_NEW_LISTENER when NeedsListener.
	Flags uint
	// NeedsListener is set when some rule uses SCMP_ACT_NOTIFY: Load then
	// returns the listener fd, which must go to the seccomp agent.
	NeedsListener bool
}

// Compile turns s into a BPF program for the native architecture (amd64)
// plus the ABIs in s.Architectures that an amd64 kernel runs: SCMP_ARCH_X86
// (i386) and SCMP_ARCH_X32. It makes no syscalls.
//
// Semantics:
//
//   - A syscall from an ABI that is not handled (i386 or x32 not listed)
//     gets KILL_PROCESS. Other architecture names the runtime-spec defines
//     are accepted and ignored: an amd64 kernel never reports them.
//   - Syscall names an ABI does not know are skipped there, as runc does;
//     an entry none of whose names resolves does nothing.
//   - Conditions of an entry are ANDed, unless two test the same argument:
//     then each becomes its own rule and they are ORed (runc's rule).
//   - For one syscall, rules with conditions are tried first, in spec
//     order, and the first match decides; then the first unconditional rule
//     (a catch-all; later ones are ignored); then the default action. So a
//     conditional exception to a catch-all holds whichever comes first.
//     libseccomp instead lets an unconditional rule erase conditional ones.
//   - Rules whose action equals the default are kept (runc skips them,
//     because libseccomp refuses them): under the order above they can be
//     exceptions to a catch-all. When they change nothing they compile away.
//   - errnoRet defaults to EPERM for ERRNO and TRACE and is refused with
//     other actions; defaultErrnoRet likewise for the default action.
//   - Unless the default action is ALLOW, LOG or TRACE, a syscall number
//     above the highest one the profile names for an ABI returns ENOSYS, so
//     that libc falls back from syscalls newer than the profile (runc's
//     patchbpf). An ABI for which no name resolves gets no ENOSYS range.
//     Unlike runc, the native ABI gets it even when architectures is empty.
//   - On i386 only the low 32 bits of arguments and operands are compared.
//   - Flags: TSYNC is ignored; LOG, SPEC_ALLOW pass through;
//     WAIT_KILLABLE_RECV is kept only with a listener.
//   - SCMP_ACT_NOTIFY is refused as the default action and for write. Any
//     NOTIFY rule sets NeedsListener, even if none of its names resolves.
//
// Errors wrap errdefs.ErrInvalidArgument and name the offending field, or
// errdefs.ErrNotImplemented on an architecture without syscall tables.
func Compile(s *specs.LinuxSeccomp) (*Program, error) {
	if s == nil {
		return nil, fmt.Errorf("linux.seccomp: nil: %w", errdefs.ErrInvalidArgument)
	}
	def, err := parseAction("linux.seccomp.defaultAction", s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	if def == retUserNotif {
		return nil, fmt.Errorf("linux.seccomp.defaultAction: %s cannot be the default action: %w", specs.ActNotify, errdefs.ErrInvalidArgument)
	}
	arches, err := resolveArches(nativeGOARCH, s.Architectures)
	if err != nil {
		return nil, err
	}
	entries := make([]entry, 0, len(s.Syscalls))
	listener := false
	for i, sc := range s.Syscalls {
		e, err := parseEntry(i, sc)
		if err != nil {
			return nil, err
		}
		listener = listener || e.act == retUserNotif
		entries = append(entries, e)
	}
	flags, err := parseFlags(s.Flags, listener)
	if err != nil {
		return nil, err
	}

	tables := make([]*archRules, 0, len(arches))
	for _, a := range arches {
		tables = append(tables, buildArchRules(a, entries, def))
	}
	enosys := !def.permissive() && def != retENOSYS
	insns, err := generate(tables, def, enosys)
	if err != nil {
		return nil, err
	}
	filter, err := toSockFilter(insns)
	if err != nil {
		return nil, err
	}
	return &Program{Filter: filter, Flags: flags, NeedsListener: listener}, nil
}

func toSockFilter(insns []bpf.Instruction) ([]unix.SockFilter, error) {
	if len(insns) > maxInsns {
		return nil, fmt.Errorf("linux.seccomp: profile compiles to %d instructions, more than the kernel's %d: %w",
			len(insns), maxInsns, errdefs.ErrInvalidArgument)
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}
