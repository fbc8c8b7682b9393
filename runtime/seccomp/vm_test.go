package seccomp

import (
	"encoding/binary"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// data is a struct seccomp_data as a filter sees it.
type data struct {
	nr, arch uint32
	args     [6]uint64
}

// packet lays d out for x/net/bpf's VM. The VM loads 32-bit words big-endian
// where the kernel loads them native (little-endian): each word is stored
// big-endian at the offset the kernel would have it at, so a program sees
// the same values in both.
func (d data) packet() []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[offNr:], d.nr)
	binary.BigEndian.PutUint32(b[offArch:], d.arch)
	for i, a := range d.args {
		binary.BigEndian.PutUint32(b[offArgs+8*i:], uint32(a))       // low word
		binary.BigEndian.PutUint32(b[offArgs+8*i+4:], uint32(a>>32)) // high word
	}
	return b
}

func x86(nr uint32, args ...uint64) data  { return mk(unix.AUDIT_ARCH_X86_64, nr, args) }
func i386(nr uint32, args ...uint64) data { return mk(unix.AUDIT_ARCH_I386, nr, args) }
func mk(arch, nr uint32, args []uint64) data {
	d := data{nr: nr, arch: arch}
	copy(d.args[:], args)
	return d
}

// vm runs a compiled program.
type vm struct{ m *bpf.VM }

// newVM checks p the way the kernel would (length, jumps in bounds, ends in
// ret, only instructions x/net/bpf decodes) and returns a VM for it.
func newVM(t testing.TB, p *Program) vm {
	t.Helper()
	if n := len(p.Filter); n == 0 || n > maxInsns {
		t.Fatalf("program has %d instructions", n)
	}
	raw := make([]bpf.RawInstruction, len(p.Filter))
	for i, f := range p.Filter {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("program does not disassemble")
	}
	for i, in := range insns {
		switch in := in.(type) {
		case bpf.LoadAbsolute:
			if in.Size != 4 || in.Off%4 != 0 || in.Off >= 64 {
				t.Fatalf("insn %d: load %+v is not an aligned seccomp_data word", i, in)
			}
		case bpf.JumpIf, bpf.Jump, bpf.RetConstant, bpf.ALUOpConstant:
		default:
			t.Fatalf("insn %d: unexpected %T", i, in)
		}
	}
	m, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("invalid program: %v", err)
	}
	return vm{m}
}

func (v vm) run(t testing.TB, d data) action {
	t.Helper()
	r, err := v.m.Run(d.packet())
	if err != nil {
		t.Fatalf("run %+v: %v", d, err)
	}
	return action(uint32(r))
}

func compileVM(t testing.TB, s *specs.LinuxSeccomp) (*Program, vm) {
	t.Helper()
	p, err := Compile(s)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p, newVM(t, p)
}

func nr(t testing.TB, a *arch, name string) uint32 {
	t.Helper()
	n, ok := a.syscalls[name]
	if !ok {
		t.Fatalf("%s has no syscall %s", a.name, name)
	}
	return n
}

func errno(e unix.Errno) action { return retErrno | action(e) }
func uptr(v uint) *uint         { return &v }
