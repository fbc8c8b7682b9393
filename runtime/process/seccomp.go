package process

import (
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/runtime/seccomp"
)

// CompileSeccomp compiles linux.seccomp; nil gives nil. It is pure, so the
// daemon calls it too, to refuse a bad profile before anything is created.
func CompileSeccomp(s *specs.LinuxSeccomp) (*seccomp.Program, error) {
	if s == nil {
		return nil, nil
	}
	prog, err := seccomp.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	if prog.NeedsListener {
		// The listener fd must be handed to listenerPath; until that is
		// built, refuse rather than run a process whose notify rules
		// would block forever.
		return nil, fmt.Errorf("linux.seccomp: SCMP_ACT_NOTIFY is not supported yet: %w", errdefs.ErrInvalidArgument)
	}
	return prog, nil
}

// loadSeccomp installs the filter on the calling thread.
func loadSeccomp(p *seccomp.Program) error {
	if _, err := seccomp.Load(p); err != nil {
		return fmt.Errorf("load seccomp filter: %w", err)
	}
	return nil
}
