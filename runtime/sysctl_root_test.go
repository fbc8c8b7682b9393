package runtime

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestSysctlsWritten checks that linux.sysctl reaches the container's
// namespaces through the verified procfs, in both key forms, and that a
// key that is not a name below /proc/sys fails Create with
// errdefs.ErrInvalidArgument.
func TestSysctlsWritten(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sh", "-c", "cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/ip_forward")
	spec.Linux.Sysctl = map[string]string{"kernel.domainname": "box-sysctl", "net/ipv4/ip_forward": "1"}
	out, e := runContainer(t, bundle, spec, nil)
	if e.Status != 0 || out != "box-sysctl\n1\n" {
		t.Errorf("exit %d, output %q, want the two sysctls", e.Status, out)
	}

	for _, key := range []string{"kernel..domainname", "../../proc/sysrq-trigger", "kernel.no_such_sysctl"} {
		bundle, spec, _ := testBundle(t, "true")
		spec.Linux.Sysctl = map[string]string{key: "1"}
		plan, err := oci.NewPlan(spec, bundle)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
		if err == nil {
			c.Signal(9)
			<-c.Exited()
			c.Destroy()
		}
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "linux.sysctl") {
			t.Errorf("sysctl %q: %v, want InvalidArgument naming linux.sysctl", key, err)
		}
	}
}
