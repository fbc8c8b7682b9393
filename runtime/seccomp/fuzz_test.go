package seccomp

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// picker draws choices from fuzz input; exhausted input reads as zeros.
type picker struct{ b []byte }

func (p *picker) byte() byte {
	if len(p.b) == 0 {
		return 0
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c
}

func (p *picker) u64() uint64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(p.byte())
	}
	return v
}

func pick[T any](p *picker, xs []T) T { return xs[int(p.byte())%len(xs)] }

var (
	fuzzNames = []string{"read", "write", "getpid", "clone", "personality", "socket", "mkdirat", "mkdir",
		"_llseek", "rt_sigaction", "preadv2", "clone3", "rseq_slice_yield", "no_such_syscall", ""}
	fuzzActions = []specs.LinuxSeccompAction{specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
		specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify, "SCMP_ACT_BOGUS"}
	fuzzOps = []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual, "SCMP_CMP_BOGUS"}
	fuzzArches = []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, "SCMP_ARCH_BOGUS"}
	fuzzFlags  = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog,
		specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv, "SECCOMP_FILTER_FLAG_BOGUS"}
	fuzzValues = []uint64{0, 1, 2, 8, 0xffffffff, 0x1_00000000, 0x1_00000002, 0xffffffff_ffffffff}
)

func (p *picker) value() uint64 {
	if p.byte()%4 == 0 {
		return p.u64()
	}
	return pick(p, fuzzValues)
}

func (p *picker) errnoRet() *uint {
	switch p.byte() % 4 {
	case 0:
		e := uint(p.byte()) | uint(p.byte()%3)<<16 // sometimes too big
		return &e
	}
	return nil
}

func (p *picker) profile() *specs.LinuxSeccomp {
	s := &specs.LinuxSeccomp{DefaultAction: pick(p, fuzzActions), DefaultErrnoRet: p.errnoRet()}
	for range p.byte() % 4 {
		s.Architectures = append(s.Architectures, pick(p, fuzzArches))
	}
	for range p.byte() % 3 {
		s.Flags = append(s.Flags, pick(p, fuzzFlags))
	}
	for range p.byte() % 8 {
		sc := specs.LinuxSyscall{Action: pick(p, fuzzActions), ErrnoRet: p.errnoRet()}
		for range p.byte() % 4 {
			sc.Names = append(sc.Names, pick(p, fuzzNames))
		}
		for range p.byte() % 4 {
			sc.Args = append(sc.Args, specs.LinuxSeccompArg{Index: uint(p.byte() % 7), Op: pick(p, fuzzOps), Value: p.value(), ValueTwo: p.value()})
		}
		s.Syscalls = append(s.Syscalls, sc)
	}
	return s
}

// FuzzCompile: random profiles never panic; invalid ones fail with
// ErrInvalidArgument; valid ones compile to a program that agrees with the
// reference model on syscalls the profile names, on unknown numbers and on
// foreign ABIs.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{4, 0, 3, 0, 1, 2, 1, 6, 0, 2, 0, 1, 3, 1, 5})
	f.Add([]byte("\x06\x00\x02\x01\x02\x00\x05\x06\x00\x02\x03\x04\x02\x01\x03\x00\x01\x00\x03\x01\x06\x01\x00\x03"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p := &picker{in}
		s := p.profile()
		prog, err := Compile(s)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error is not invalid argument: %v", err)
			}
			return
		}
		if err := validForReference(s); err != nil {
			t.Fatalf("Compile accepted an invalid profile: %v", err)
		}
		v := newVM(t, prog)
		var ds []data
		for _, a := range []*arch{archX86_64, archX32, archI386} {
			for _, name := range fuzzNames {
				if n, ok := a.syscalls[name]; ok {
					ds = append(ds, mk(a.audit, n, []uint64{p.value(), p.value(), p.value(), p.value(), p.value(), p.value()}))
				}
			}
		}
		ds = append(ds, x86(uint32(p.u64())), i386(uint32(p.u64())), mk(uint32(p.u64()), 0, nil), x86(600), i386(600))
		for _, d := range ds {
			if got, want := v.run(t, d), reference(s, d); got != want {
				t.Fatalf("%+v: got %#x, want %#x\nprofile %+v", d, got, want, s)
			}
		}
	})
}

// validForReference restates what Compile must refuse.
func validForReference(s *specs.LinuxSeccomp) error {
	bad := errors.New("invalid")
	okAct := func(a specs.LinuxSeccompAction, e *uint) bool {
		switch a {
		case specs.ActErrno, specs.ActTrace:
			return e == nil || *e <= 0xffff
		case specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActAllow, specs.ActLog, specs.ActNotify:
			return e == nil
		}
		return false
	}
	if !okAct(s.DefaultAction, s.DefaultErrnoRet) || s.DefaultAction == specs.ActNotify {
		return bad
	}
	for _, a := range s.Architectures {
		if !knownArches[a] {
			return bad
		}
	}
	for _, f := range s.Flags {
		if f == "SECCOMP_FILTER_FLAG_BOGUS" {
			return bad
		}
	}
	for _, sc := range s.Syscalls {
		if !okAct(sc.Action, sc.ErrnoRet) || len(sc.Names) == 0 {
			return bad
		}
		for _, n := range sc.Names {
			if n == "" || (n == "write" && sc.Action == specs.ActNotify) {
				return bad
			}
		}
		for _, a := range sc.Args {
			if a.Index > 5 || !knownOps[a.Op] {
				return bad
			}
		}
	}
	return nil
}
