package seccomp

import (
	"fmt"
	goruntime "runtime"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// x32Bit marks an x32 syscall number (__X32_SYSCALL_BIT). x32 tasks report
// AUDIT_ARCH_X86_64, so the bit is the only way to tell them apart.
const x32Bit = 0x40000000

// arch is one ABI a filter can see in seccomp_data.arch.
type arch struct {
	name  specs.Arch
	audit uint32 // AUDIT_ARCH_* value in seccomp_data.arch
	// lo and hi bound the syscall numbers that belong to this ABI, inclusive.
	// For x86_64 and x32 they split the AUDIT_ARCH_X86_64 number space at x32Bit.
	lo, hi   uint32
	syscalls map[string]uint32
	// args32 is set for 32-bit ABIs: only the low word of each argument is
	// compared, against the low word of the rule's value, as libseccomp does.
	args32 bool
}

var (
	archX86_64 = &arch{name: specs.ArchX86_64, audit: unix.AUDIT_ARCH_X86_64, lo: 0, hi: x32Bit - 1, syscalls: syscallsX86_64}
	archX32    = &arch{name: specs.ArchX32, audit: unix.AUDIT_ARCH_X86_64, lo: x32Bit, hi: 1<<32 - 1, syscalls: syscallsX32}
	archI386   = &arch{name: specs.ArchX86, audit: unix.AUDIT_ARCH_I386, lo: 0, hi: 1<<32 - 1, syscalls: syscallsI386, args32: true}
)

// knownArches lists every architecture name the runtime-spec defines. Names
// that a kernel of the native architecture can never report are accepted and
// ignored: no task can make a syscall with them.
var knownArches = map[specs.Arch]bool{
	specs.ArchX86: true, specs.ArchX86_64: true, specs.ArchX32: true,
	specs.ArchARM: true, specs.ArchAARCH64: true,
	specs.ArchMIPS: true, specs.ArchMIPS64: true, specs.ArchMIPS64N32: true,
	specs.ArchMIPSEL: true, specs.ArchMIPSEL64: true, specs.ArchMIPSEL64N32: true,
	specs.ArchPPC: true, specs.ArchPPC64: true, specs.ArchPPC64LE: true,
	specs.ArchS390: true, specs.ArchS390X: true,
	specs.ArchPARISC: true, specs.ArchPARISC64: true,
	specs.ArchRISCV64: true, specs.ArchLOONGARCH64: true,
	specs.ArchM68K: true, specs.ArchSH: true, specs.ArchSHEB: true,
}

// archSet is the set of ABIs a program handles, in the order their
// seccomp_data.arch checks are emitted (native first: it is the hot path).
type archSet []*arch

func (s archSet) has(a *arch) bool {
	for _, b := range s {
		if a == b {
			return true
		}
	}
	return false
}

// resolveArches returns the native ABI plus the listed ones this kernel can run.
func resolveArches(goarch string, listed []specs.Arch) (archSet, error) {
	if goarch != "amd64" {
		return nil, fmt.Errorf("seccomp: no syscall tables for GOARCH %s: %w", goarch, errdefs.ErrNotImplemented)
	}
	want := map[*arch]bool{archX86_64: true}
	for i, name := range listed {
		if !knownArches[name] {
			return nil, fmt.Errorf("linux.seccomp.architectures[%d]: unknown architecture %q: %w", i, name, errdefs.ErrInvalidArgument)
		}
		switch name {
		case specs.ArchX86:
			want[archI386] = true
		case specs.ArchX32:
			want[archX32] = true
		}
	}
	set := archSet{archX86_64}
	for _, a := range []*arch{archX32, archI386} {
		if want[a] {
			set = append(set, a)
		}
	}
	return set, nil
}

var nativeGOARCH = goruntime.GOARCH
