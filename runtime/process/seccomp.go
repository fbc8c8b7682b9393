package process

import (
	"fmt"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/runtime/seccomp"
)

// CompileSeccomp compiles linux.seccomp; nil gives nil. It is pure, so the
// daemon calls it too, to refuse a bad profile before anything is created.
//
// A profile with SCMP_ACT_NOTIFY rules needs linux.seccomp.listenerPath, an
// absolute path (the daemon hands the listener to the agent there); without
// such rules listenerPath is ignored, as the runtime-spec says.
// listenerMetadata without listenerPath is refused (the spec's MUST NOT).
func CompileSeccomp(s *specs.LinuxSeccomp) (*seccomp.Program, error) {
	if s == nil {
		return nil, nil
	}
	if s.ListenerMetadata != "" && s.ListenerPath == "" {
		return nil, fmt.Errorf("linux.seccomp.listenerMetadata: set without linux.seccomp.listenerPath: %w", errdefs.ErrInvalidArgument)
	}
	prog, err := seccomp.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	if prog.NeedsListener {
		if s.ListenerPath == "" {
			return nil, fmt.Errorf("linux.seccomp.listenerPath: required by %s rules (the seccomp agent's socket): %w", specs.ActNotify, errdefs.ErrInvalidArgument)
		}
		if !filepath.IsAbs(s.ListenerPath) {
			return nil, fmt.Errorf("linux.seccomp.listenerPath: %q is not an absolute path: %w", s.ListenerPath, errdefs.ErrInvalidArgument)
		}
	}
	return prog, nil
}

// loadSeccomp installs the filter on the calling thread. It returns the
// filter's listener fd (close-on-exec) when p.NeedsListener, else -1.
func loadSeccomp(p *seccomp.Program) (int, error) {
	fd, err := seccomp.Load(p)
	if err != nil {
		return -1, fmt.Errorf("load seccomp filter: %w", err)
	}
	return fd, nil
}
