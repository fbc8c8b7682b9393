package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestShimExitsWhenContainerdGoneForGood stops containerd for good while a
// container runs: the daemon keeps the running workload (it is its reaper),
// and once it has exited, releases its cgroup and mounts and exits itself.
func TestShimExitsWhenContainerdGoneForGood(t *testing.T) {
	c := startBox(t, harness.WithShimEnv("BOX_ORPHAN_GRACE=500ms"))
	ctx := c.Context(t)
	id := harness.RandID(t, "orphan")
	img, err := c.Client.GetImage(ctx, c.Busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	// No deleteContainer cleanup: containerd will be gone; the harness
	// removes what is left.
	ctr, err := c.Client.NewContainer(ctx, id,
		client.WithImage(img), client.WithNewSnapshot(id+"-snap", img),
		client.WithRuntime(harness.RuntimeBox, nil),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "3"), c.WithCgroup(id)))
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	shim := oneShim(t, c, id)
	requireVisibleWhileRunning(t, c, id)

	c.StopContainerd(t)
	if !harness.WaitExit(shim, exitTimeout) {
		t.Fatalf("shim %d still runs %v after containerd left and the container exited", shim, exitTimeout)
	}
	// The workload was not cut short: it ran its 3 s.
	if d := time.Since(started); d < 3*time.Second {
		t.Errorf("shim exited %v after start, before the container's own exit", d)
	}
	if left := c.Leftovers(id); len(left) != 0 {
		t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
	}
}
