package runtime

import (
	"context"
	"testing"
	"time"

	cseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/testutil"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// BenchmarkLifecycle is box's own part of a container's life, without
// containerd or the daemon: Create (cgroup, sealed stage, namespaces,
// rootfs, pivot_root, credentials, containerd's default seccomp profile),
// Start until the exit of `true`, and Destroy. It reports each step; the
// bench's floor (bench/cmd/floorinit) is the same work done by the
// smallest possible Go stage.
//
//	go test ./runtime -run XXX -bench Lifecycle -args -test.root
//
// With BOX_STAGE_BINARY=$PWD/_output/bin/containerd-shim-box-v1 (make build)
// the stages run from the production binary instead of the test binary.
func BenchmarkLifecycle(b *testing.B) {
	testutil.RequiresRoot(b)
	bundle, spec, _ := testBundle(b, "/bin/true")
	spec.Linux.Seccomp = cseccomp.DefaultProfile(spec)
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		b.Fatal(err)
	}
	var create, start, destroy time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		c, err := Create(context.Background(), CreateConfig{ID: "bench", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		if e := <-c.Exited(); e.Status != 0 {
			b.Fatalf("exit status %d", e.Status)
		}
		t2 := time.Now()
		if err := c.Destroy(); err != nil {
			b.Fatal(err)
		}
		create += t1.Sub(t0)
		start += t2.Sub(t1)
		destroy += time.Since(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(create.Microseconds())/n/1000, "create-ms")
	b.ReportMetric(float64(start.Microseconds())/n/1000, "start-exit-ms")
	b.ReportMetric(float64(destroy.Microseconds())/n/1000, "destroy-ms")
}

// BenchmarkExec is box's own part of an exec, without containerd or the
// daemon's RPCs (the bench's L6 adds those): Exec of `true` into a running
// container with containerd's default seccomp profile (the exec stage
// forked into the container's namespaces and cgroup, its setup, execve)
// until its exit is collected.
//
//	go test ./runtime -run XXX -bench Exec -args -test.root
//
// BOX_STAGE_BINARY as for BenchmarkLifecycle.
func BenchmarkExec(b *testing.B) {
	testutil.RequiresRoot(b)
	bundle, spec, _ := testBundle(b, "sleep", "600")
	spec.Linux.Seccomp = cseccomp.DefaultProfile(spec)
	c, mon := createStarted(b, bundle, spec)
	p := execSpec(spec, "/bin/true")
	var exec, exit time.Duration
	for b.Loop() {
		t0 := time.Now()
		proc, err := c.Exec(context.Background(), ProcessConfig{ID: "e", Spec: p, Monitor: mon})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if e := <-proc.Exited(); e.Status != 0 {
			b.Fatalf("exit status %d", e.Status)
		}
		proc.Close()
		exec += t1.Sub(t0)
		exit += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(exec.Microseconds())/n/1000, "exec-ms")
	b.ReportMetric(float64(exit.Microseconds())/n/1000, "exit-ms")
}
