package shim

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/runtime/process"
)

// TestFeaturesSeccompActions checks that every seccomp action -info
// reports compiles as Create compiles it (SCMP_ACT_NOTIFY with the
// listenerPath it needs), and that an action it does not report is refused.
func TestFeaturesSeccompActions(t *testing.T) {
	s := Features().Linux.Seccomp
	for _, a := range append(s.Actions, "SCMP_ACT_BOGUS") {
		profile := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.LinuxSeccompAction(a)}}}
		if a == string(specs.ActNotify) {
			profile.ListenerPath = "/run/agent.sock"
		}
		_, err := process.CompileSeccomp(profile)
		if reported := a != "SCMP_ACT_BOGUS"; (err == nil) != reported {
			t.Errorf("action %s: reported %t, compile error %v", a, reported, err)
		}
	}
}
