package seccomp

import (
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func sys(act specs.LinuxSeccompAction, names ...string) specs.LinuxSyscall {
	return specs.LinuxSyscall{Names: names, Action: act}
}

func withArgs(sc specs.LinuxSyscall, args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
	sc.Args = args
	return sc
}

func withErrno(sc specs.LinuxSyscall, e uint) specs.LinuxSyscall {
	sc.ErrnoRet = &e
	return sc
}

// Every OCI action compiles to its seccomp return value, as a rule and as the default.
func TestActions(t *testing.T) {
	for _, tc := range []struct {
		act  specs.LinuxSeccompAction
		want action
	}{
		{specs.ActKill, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillThread, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillProcess, unix.SECCOMP_RET_KILL_PROCESS},
		{specs.ActTrap, unix.SECCOMP_RET_TRAP},
		{specs.ActErrno, errno(unix.EPERM)},
		{specs.ActTrace, retTrace | action(unix.EPERM)},
		{specs.ActAllow, unix.SECCOMP_RET_ALLOW},
		{specs.ActLog, unix.SECCOMP_RET_LOG},
		{specs.ActNotify, unix.SECCOMP_RET_USER_NOTIF},
	} {
		t.Run(string(tc.act), func(t *testing.T) {
			def := specs.ActAllow
			if tc.act == specs.ActAllow {
				def = specs.ActErrno
			}
			p, v := compileVM(t, &specs.LinuxSeccomp{DefaultAction: def, Syscalls: []specs.LinuxSyscall{sys(tc.act, "getpid")}})
			if got := v.run(t, x86(unix.SYS_GETPID)); got != tc.want {
				t.Errorf("rule: got %#x, want %#x", got, tc.want)
			}
			if p.NeedsListener != (tc.act == specs.ActNotify) || (p.Flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0) != p.NeedsListener {
				t.Errorf("NeedsListener %v, flags %#x", p.NeedsListener, p.Flags)
			}
			if tc.act == specs.ActNotify {
				return // refused as default, see TestCompileErrors
			}
			_, v = compileVM(t, &specs.LinuxSeccomp{DefaultAction: tc.act})
			if got := v.run(t, x86(unix.SYS_GETPID)); got != tc.want {
				t.Errorf("default: got %#x, want %#x", got, tc.want)
			}
		})
	}
}

// errnoRet and defaultErrnoRet pick the errno; EPERM otherwise; an unnamed syscall gets the default.
func TestErrnoRet(t *testing.T) {
	_, v := compileVM(t, &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uptr(uint(unix.EROFS)),
		Syscalls: []specs.LinuxSyscall{
			sys(specs.ActAllow, "read", "write", "exit_group"),
			withErrno(sys(specs.ActErrno, "mkdirat", "mkdir"), uint(unix.EACCES)),
			sys(specs.ActErrno, "unlinkat"),
			withErrno(sys(specs.ActTrace, "openat"), 42),
		},
	})
	for _, tc := range []struct {
		nr   uint32
		want action
	}{
		{unix.SYS_READ, retAllow},
		{unix.SYS_MKDIRAT, errno(unix.EACCES)},
		{unix.SYS_MKDIR, errno(unix.EACCES)},
		{unix.SYS_UNLINKAT, errno(unix.EPERM)},
		{unix.SYS_OPENAT, retTrace | 42},
		{unix.SYS_GETPID, errno(unix.EROFS)}, // default
		{unix.SYS_CLOSE, errno(unix.EROFS)},
	} {
		if got := v.run(t, x86(tc.nr)); got != tc.want {
			t.Errorf("nr %d: got %#x, want %#x", tc.nr, got, tc.want)
		}
	}
}

// Each operator compares all 64 bits, including values that differ only in the high word.
func TestOperators64(t *testing.T) {
	values := []uint64{0, 1, 5, 0xffffffff, 0x1_00000000, 0x1_00000005, 0x2_00000004, 0xffffffff_ffffffff, 0x80000000_00000000}
	ops := []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual}
	var probes []uint64
	for _, v := range values {
		probes = append(probes, v, v-1, v+1, v^1<<32, v^1<<40, v^1)
	}
	for _, op := range ops {
		for _, val := range values {
			for _, val2 := range []uint64{0, 1, 0x1_00000000, 0x1_00000005} {
				if op != specs.OpMaskedEqual && val2 != 0 {
					continue
				}
				arg := specs.LinuxSeccompArg{Index: 2, Op: op, Value: val, ValueTwo: val2}
				s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86},
					Syscalls: []specs.LinuxSyscall{withArgs(sys(specs.ActAllow, "ioctl"), arg)}}
				_, v := compileVM(t, s)
				for _, a := range probes {
					for _, d := range []data{x86(unix.SYS_IOCTL, 0, 0, a), i386(54 /* ioctl */, 0, 0, a)} {
						want := errno(unix.EPERM)
						if refCompare(arg, a, d.arch == unix.AUDIT_ARCH_I386) {
							want = retAllow
						}
						if got := v.run(t, d); got != want {
							t.Errorf("%s %#x/%#x arg %#x arch %#x: got %#x, want %#x", op, val, val2, a, d.arch, got, want)
						}
					}
				}
			}
		}
	}
}

// Spot checks of 64-bit compares that only a correct high-word compare gets right.
func TestHighWord(t *testing.T) {
	_, v := compileVM(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		withArgs(sys(specs.ActAllow, "getpid"), specs.LinuxSeccompArg{Index: 0, Op: specs.OpEqualTo, Value: 5}),
		withArgs(sys(specs.ActAllow, "getppid"), specs.LinuxSeccompArg{Index: 1, Op: specs.OpGreaterThan, Value: 0xffffffff}),
		withArgs(sys(specs.ActAllow, "getuid"), specs.LinuxSeccompArg{Index: 5, Op: specs.OpMaskedEqual, Value: 0xf0000000_0000000f, ValueTwo: 0x10000000_00000001}),
	}})
	for _, tc := range []struct {
		d    data
		want action
	}{
		{x86(unix.SYS_GETPID, 5), retAllow},
		{x86(unix.SYS_GETPID, 0x1_00000005), errno(unix.EPERM)}, // low word equal, high differs
		{x86(unix.SYS_GETPPID, 0, 0x1_00000000), retAllow},      // low word 0, high 1
		{x86(unix.SYS_GETPPID, 0, 0xffffffff), errno(unix.EPERM)},
		{x86(unix.SYS_GETUID, 0, 0, 0, 0, 0, 0x1abcdef0_12345671), retAllow},
		{x86(unix.SYS_GETUID, 0, 0, 0, 0, 0, 0x2abcdef0_12345671), errno(unix.EPERM)},
		{x86(unix.SYS_GETUID, 0, 0, 0, 0, 0, 0x1abcdef0_12345670), errno(unix.EPERM)},
	} {
		if got := v.run(t, tc.d); got != tc.want {
			t.Errorf("%+v: got %#x, want %#x", tc.d, got, tc.want)
		}
	}
}

// Conditions on different args are ANDed; two on the same arg turn every condition into an ORed rule (runc).
func TestSameArgOR(t *testing.T) {
	eq := func(i uint, v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Op: specs.OpEqualTo, Value: v}
	}
	_, v := compileVM(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		withArgs(sys(specs.ActAllow, "personality"), eq(0, 1), eq(0, 2)),
		withArgs(sys(specs.ActAllow, "getpid"), eq(0, 1), eq(1, 2)),
		withArgs(sys(specs.ActAllow, "getppid"), eq(0, 1), eq(0, 2), eq(1, 7)),
	}})
	deny := errno(unix.EPERM)
	for _, tc := range []struct {
		d    data
		want action
	}{
		{x86(unix.SYS_PERSONALITY, 1), retAllow},
		{x86(unix.SYS_PERSONALITY, 2), retAllow},
		{x86(unix.SYS_PERSONALITY, 3), deny},
		{x86(unix.SYS_GETPID, 1, 2), retAllow},
		{x86(unix.SYS_GETPID, 1, 3), deny},
		{x86(unix.SYS_GETPID, 0, 2), deny},
		{x86(unix.SYS_GETPPID, 2, 0), retAllow},
		{x86(unix.SYS_GETPPID, 9, 7), retAllow}, // the arg1 condition is a rule of its own
		{x86(unix.SYS_GETPPID, 9, 8), deny},
	} {
		if got := v.run(t, tc.d); got != tc.want {
			t.Errorf("%+v: got %#x, want %#x", tc.d, got, tc.want)
		}
	}
}

// Unlisted ABIs and, without SCMP_ARCH_X32, x32 syscalls are killed; listed ones use their own numbers.
func TestArches(t *testing.T) {
	rules := []specs.LinuxSyscall{sys(specs.ActAllow, "read", "mkdir"), sys(specs.ActErrno, "getpid")}
	_, native := compileVM(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules})
	_, all := compileVM(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64}})
	for _, tc := range []struct {
		name        string
		d           data
		native, all action
	}{
		{"x86_64 read", x86(unix.SYS_READ), retAllow, retAllow},
		{"i386 read", i386(nr(t, archI386, "read")), retKillProcess, retAllow},
		{"i386 mkdir", i386(nr(t, archI386, "mkdir")), retKillProcess, retAllow},
		{"i386 nr of x86_64 read", i386(unix.SYS_READ), retKillProcess, errno(unix.EPERM)},
		{"x32 read", x86(nr(t, archX32, "read")), retKillProcess, retAllow},
		{"x32 getpid", x86(nr(t, archX32, "getpid")), retKillProcess, errno(unix.EPERM)},
		{"x32 bit, -1", x86(0xffffffff), retKillProcess, retENOSYS},
		{"aarch64", mk(unix.AUDIT_ARCH_AARCH64, 63, nil), retKillProcess, retKillProcess},
		{"arm", mk(unix.AUDIT_ARCH_ARM, 3, nil), retKillProcess, retKillProcess},
	} {
		if got := native.run(t, tc.d); got != tc.native {
			t.Errorf("%s, native only: got %#x, want %#x", tc.name, got, tc.native)
		}
		if got := all.run(t, tc.d); got != tc.all {
			t.Errorf("%s, all arches: got %#x, want %#x", tc.name, got, tc.all)
		}
	}
}

// Numbers above the profile's highest named syscall get ENOSYS unless the default is permissive.
func TestENOSYS(t *testing.T) {
	rules := []specs.LinuxSyscall{sys(specs.ActAllow, "read", "mkdirat", "no_such_syscall")}
	mkdirat := uint32(unix.SYS_MKDIRAT)
	for _, tc := range []struct {
		def           specs.LinuxSeccompAction
		defErrno      *uint
		below, above  action // for getpid (< mkdirat) and mkdirat+1
		aboveI386Want action
	}{
		{specs.ActErrno, nil, errno(unix.EPERM), retENOSYS, retENOSYS},
		{specs.ActErrno, uptr(uint(unix.ENOSYS)), retENOSYS, retENOSYS, retENOSYS},
		{specs.ActKillProcess, nil, retKillProcess, retENOSYS, retENOSYS},
		{specs.ActKill, nil, retKillThread, retENOSYS, retENOSYS},
		{specs.ActTrap, nil, retTrap, retENOSYS, retENOSYS},
		{specs.ActAllow, nil, retAllow, retAllow, retAllow},
		{specs.ActLog, nil, retLog, retLog, retLog},
		{specs.ActTrace, nil, retTrace | action(unix.EPERM), retTrace | action(unix.EPERM), retTrace | action(unix.EPERM)},
	} {
		_, v := compileVM(t, &specs.LinuxSeccomp{DefaultAction: tc.def, DefaultErrnoRet: tc.defErrno, Syscalls: rules,
			Architectures: []specs.Arch{specs.ArchX86}})
		if got := v.run(t, x86(unix.SYS_GETPID)); got != tc.below {
			t.Errorf("%s: getpid got %#x, want %#x", tc.def, got, tc.below)
		}
		for _, n := range []uint32{mkdirat + 1, 1000, x32Bit - 1} {
			if got := v.run(t, x86(n)); got != tc.above {
				t.Errorf("%s: nr %d got %#x, want %#x", tc.def, n, got, tc.above)
			}
		}
		if got := v.run(t, x86(mkdirat)); got != retAllow {
			t.Errorf("%s: mkdirat got %#x", tc.def, got)
		}
		// i386's highest named number is its own mkdirat (296).
		if got := v.run(t, i386(nr(t, archI386, "mkdirat")+1)); got != tc.aboveI386Want {
			t.Errorf("%s: i386 above max got %#x, want %#x", tc.def, got, tc.aboveI386Want)
		}
	}
	// No name resolves: no ENOSYS range.
	_, v := compileVM(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{sys(specs.ActAllow, "nope")}})
	if got := v.run(t, x86(400)); got != errno(unix.EPERM) {
		t.Errorf("no names: got %#x", got)
	}
}

// Conditional rules are tried before the catch-all, whichever comes first in the spec; the first catch-all wins.
func TestPrecedence(t *testing.T) {
	newuser := specs.LinuxSeccompArg{Index: 0, Op: specs.OpMaskedEqual, Value: unix.CLONE_NEWUSER, ValueTwo: unix.CLONE_NEWUSER}
	exception := withErrno(withArgs(sys(specs.ActErrno, "clone"), newuser), uint(unix.EACCES))
	for name, rules := range map[string][]specs.LinuxSyscall{
		"catch-all first": {sys(specs.ActAllow, "clone"), exception, sys(specs.ActKillProcess, "clone")},
		"exception first": {exception, sys(specs.ActAllow, "clone"), sys(specs.ActKillProcess, "clone")},
	} {
		_, v := compileVM(t, &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: rules})
		if got := v.run(t, x86(unix.SYS_CLONE, uint64(unix.SIGCHLD))); got != retAllow {
			t.Errorf("%s: plain clone got %#x", name, got)
		}
		if got := v.run(t, x86(unix.SYS_CLONE, uint64(unix.SIGCHLD)|unix.CLONE_NEWUSER)); got != errno(unix.EACCES) {
			t.Errorf("%s: clone(CLONE_NEWUSER) got %#x", name, got)
		}
	}
	// A rule with the default action is kept as an exception to a catch-all.
	_, v := compileVM(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		sys(specs.ActAllow, "clone"), withArgs(sys(specs.ActErrno, "clone"), newuser)}})
	if got := v.run(t, x86(unix.SYS_CLONE, unix.CLONE_NEWUSER)); got != errno(unix.EPERM) {
		t.Errorf("default-action exception: got %#x", got)
	}
	// The first matching conditional rule decides.
	_, v = compileVM(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		withArgs(sys(specs.ActLog, "getpid"), specs.LinuxSeccompArg{Index: 0, Op: specs.OpGreaterThan, Value: 10}),
		withArgs(sys(specs.ActAllow, "getpid"), specs.LinuxSeccompArg{Index: 0, Op: specs.OpGreaterThan, Value: 5})}})
	for arg, want := range map[uint64]action{20: retLog, 7: retAllow, 1: errno(unix.EPERM)} {
		if got := v.run(t, x86(unix.SYS_GETPID, arg)); got != want {
			t.Errorf("getpid(%d): got %#x, want %#x", arg, got, want)
		}
	}
}

// Invalid profiles fail with ErrInvalidArgument naming the field; unknown syscall names are skipped.
func TestCompileErrors(t *testing.T) {
	ok := specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	for _, tc := range []struct {
		name string
		mod  func(s *specs.LinuxSeccomp)
		want string // "" means success
	}{
		{"unknown default", func(s *specs.LinuxSeccomp) { s.DefaultAction = "SCMP_ACT_BOGUS" }, "linux.seccomp.defaultAction: unknown action"},
		{"empty default", func(s *specs.LinuxSeccomp) { s.DefaultAction = "" }, "linux.seccomp.defaultAction: unknown action"},
		{"notify default", func(s *specs.LinuxSeccomp) { s.DefaultAction = specs.ActNotify }, "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY"},
		{"errnoRet on allow default", func(s *specs.LinuxSeccomp) { s.DefaultAction, s.DefaultErrnoRet = specs.ActAllow, uptr(1) }, "defaultAction: errnoRet"},
		{"errnoRet too big", func(s *specs.LinuxSeccomp) { s.DefaultErrnoRet = uptr(1 << 16) }, "does not fit"},
		{"unknown arch", func(s *specs.LinuxSeccomp) { s.Architectures = []specs.Arch{specs.ArchX86, "SCMP_ARCH_Z80"} }, "linux.seccomp.architectures[1]: unknown architecture"},
		{"unknown flag", func(s *specs.LinuxSeccomp) { s.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_BOGUS"} }, "linux.seccomp.flags[0]: unknown flag"},
		{"unknown rule action", func(s *specs.LinuxSeccomp) { s.Syscalls = []specs.LinuxSyscall{sys("SCMP_ACT_NOPE", "read")} }, "linux.seccomp.syscalls[0].action: unknown action"},
		{"notify write", func(s *specs.LinuxSeccomp) {
			s.Syscalls = []specs.LinuxSyscall{sys(specs.ActAllow, "read"), sys(specs.ActNotify, "read", "write")}
		}, "linux.seccomp.syscalls[1].names[1]: SCMP_ACT_NOTIFY cannot be used for write"},
		{"unknown op", func(s *specs.LinuxSeccomp) {
			s.Syscalls = []specs.LinuxSyscall{{}, {}, {}, withArgs(sys(specs.ActAllow, "read"), specs.LinuxSeccompArg{Op: "SCMP_CMP_ROUGHLY"})}
			s.Syscalls[0], s.Syscalls[1], s.Syscalls[2] = sys(specs.ActAllow, "a"), sys(specs.ActAllow, "b"), sys(specs.ActAllow, "c")
		}, "linux.seccomp.syscalls[3].args[0].op: unknown operator"},
		{"arg index", func(s *specs.LinuxSeccomp) {
			s.Syscalls = []specs.LinuxSyscall{withArgs(sys(specs.ActAllow, "read"), specs.LinuxSeccompArg{Index: 6, Op: specs.OpEqualTo})}
		}, "linux.seccomp.syscalls[0].args[0].index"},
		{"no names", func(s *specs.LinuxSeccomp) { s.Syscalls = []specs.LinuxSyscall{{Action: specs.ActAllow}} }, "linux.seccomp.syscalls[0].names: empty"},
		{"empty name", func(s *specs.LinuxSeccomp) { s.Syscalls = []specs.LinuxSyscall{sys(specs.ActAllow, "read", "")} }, "names[1]: empty name"},
		{"errnoRet on allow rule", func(s *specs.LinuxSeccomp) {
			s.Syscalls = []specs.LinuxSyscall{withErrno(sys(specs.ActAllow, "read"), 1)}
		}, "syscalls[0].action: errnoRet"},
		{"unknown names skipped", func(s *specs.LinuxSeccomp) {
			s.Syscalls = []specs.LinuxSyscall{sys(specs.ActAllow, "no_such_call", "another_one")}
		}, ""},
		{"foreign arch ignored", func(s *specs.LinuxSeccomp) { s.Architectures = []specs.Arch{specs.ArchRISCV64, specs.ArchS390X} }, ""},
		{"tsync ignored", func(s *specs.LinuxSeccomp) { s.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.mod(&s)
			_, err := Compile(&s)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q (invalid argument: %v), want %q", err, errdefs.IsInvalidArgument(err), tc.want)
			}
		})
	}
	if _, err := Compile(nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Compile(nil): %v", err)
	}
}

// Flags map to SECCOMP_FILTER_FLAG_*; WAIT_KILLABLE_RECV only with a listener.
func TestFlags(t *testing.T) {
	all := []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv}
	p, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: all})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint(unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW); p.Flags != want {
		t.Errorf("flags %#x, want %#x", p.Flags, want)
	}
	p, err = Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: all, Syscalls: []specs.LinuxSyscall{sys(specs.ActNotify, "mkdirat")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint(unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER); p.Flags != want || !p.NeedsListener {
		t.Errorf("flags %#x, want %#x; listener %v", p.Flags, want, p.NeedsListener)
	}
}

// A profile with hundreds of argument rules needs jumps longer than 255 and still evaluates correctly.
func TestLongJumps(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86, specs.ArchX32}}
	for name := range archX86_64.syscalls {
		s.Syscalls = append(s.Syscalls, withArgs(sys(specs.ActAllow, name),
			specs.LinuxSeccompArg{Index: 1, Op: specs.OpLessEqual, Value: 0x1_00000000 + uint64(len(name))}))
	}
	p, v := compileVM(t, s)
	t.Logf("%d rules: %d instructions", len(s.Syscalls), len(p.Filter))
	long := 0
	for _, f := range p.Filter {
		if f.Code == 0x05 /* BPF_JMP|BPF_JA */ && f.K > 255 {
			long++
		}
	}
	if long == 0 {
		t.Fatal("expected long jumps")
	}
	for name, n := range archX86_64.syscalls {
		lim := 0x1_00000000 + uint64(len(name))
		for _, arg := range []uint64{0, lim, lim + 1, 0x2_00000000} {
			d := x86(n, 0, arg)
			if got, want := v.run(t, d), reference(s, d); got != want {
				t.Fatalf("%s(_, %#x): got %#x, want %#x", name, arg, got, want)
			}
		}
	}
}

// TestProgramBinaryRoundTrip checks the encoding the daemon sends to the
// stages, and that truncated or oversized input is refused.
func TestProgramBinaryRoundTrip(t *testing.T) {
	p, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"read", "write"}, Action: specs.ActAllow}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var q Program
	if err := q.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Filter, q.Filter) {
		t.Fatalf("round trip changed the program:\n%v\n%v", p.Filter, q.Filter)
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], make([]byte, (maxInsns+1)*insnSize)} {
		if err := q.UnmarshalBinary(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%d bytes: %v, want InvalidArgument", len(bad), err)
		}
	}
}
