package runtime

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestCheckHost checks the refusals of intelRdt and mountLabel for each
// host (with and without resctrl, with and without SELinux), and that a
// plan needing neither passes.
func TestCheckHost(t *testing.T) {
	oldRdt, oldSE := hostHasResctrl, hostHasSELinux
	t.Cleanup(func() { hostHasResctrl, hostHasSELinux = oldRdt, oldSE })
	yes, no := func() bool { return true }, func() bool { return false }
	tests := []struct {
		name          string
		plan          oci.Plan
		resctrl, se   func() bool
		refused, want string
	}{
		{"rdt without resctrl", oci.Plan{IntelRdt: rdtSpec()}, no, no, "linux.intelRdt", "not mounted"},
		{"rdt with resctrl", oci.Plan{IntelRdt: rdtSpec()}, yes, no, "linux.intelRdt", "not supported by box yet"},
		{"mount label with SELinux", oci.Plan{MountLabel: "system_u:object_r:container_file_t:s0"}, no, yes, "linux.mountLabel", "not supported"},
		{"mount label without SELinux", oci.Plan{MountLabel: "system_u:object_r:container_file_t:s0"}, no, no, "", ""},
		{"nothing", oci.Plan{}, yes, yes, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hostHasResctrl, hostHasSELinux = tt.resctrl, tt.se
			tt.plan.Process = &oci.ProcessPlan{}
			err := checkHost(&tt.plan)
			if tt.refused == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errdefs.IsFailedPrecondition(err) || !strings.HasPrefix(err.Error(), tt.refused+":") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v; want a failed precondition %s: ...%s...", err, tt.refused, tt.want)
			}
		})
	}
}

func rdtSpec() *specs.LinuxIntelRdt { return &specs.LinuxIntelRdt{ClosID: "gold"} }
