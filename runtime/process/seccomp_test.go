package process

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestCompileSeccompListener checks the listenerPath rules: NOTIFY rules
// need an absolute listenerPath; without them listenerPath is ignored (the
// runtime-spec), and listenerMetadata needs listenerPath.
func TestCompileSeccompListener(t *testing.T) {
	notify := []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}
	errno := []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}
	for _, tc := range []struct {
		name     string
		path     string
		metadata string
		syscalls []specs.LinuxSyscall
		field    string // "" when accepted
		listener bool
	}{
		{"notify", "/run/agent.sock", "m", notify, "", true},
		{"notify without path", "", "", notify, "linux.seccomp.listenerPath", false},
		{"notify relative path", "run/agent.sock", "", notify, "linux.seccomp.listenerPath", false},
		{"path without notify", "/run/agent.sock", "m", errno, "", false},
		{"relative path without notify", "agent.sock", "", errno, "", false},
		{"metadata without path", "", "m", errno, "linux.seccomp.listenerMetadata", false},
		{"metadata without path, notify", "", "m", notify, "linux.seccomp.listenerMetadata", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: tc.path, ListenerMetadata: tc.metadata, Syscalls: tc.syscalls}
			p, err := CompileSeccomp(s)
			if tc.field != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.field) {
					t.Fatalf("err = %v, want InvalidArgument naming %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.NeedsListener != tc.listener {
				t.Fatalf("NeedsListener = %t, want %t", p.NeedsListener, tc.listener)
			}
		})
	}
}

// TestPrepareCompiledRefusesListener checks that a filter with NOTIFY rules
// is refused, before anything is changed, when nothing takes its listener.
func TestPrepareCompiledRefusesListener(t *testing.T) {
	p, err := CompileSeccomp(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock",
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PrepareCompiled(&oci.ProcessPlan{Args: []string{"true"}}, p); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
}
