package integration

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
	"github.com/boxrt/containerd-shim-box-v1/integration/harness/core"
)

// spares lists the spare daemons of c (shim/spare.go): daemons started with -spare that are
// c's (core.ShimPids: their environment names c's sockets).
func spares(c *harness.Containerd) []int {
	var pids []int
	for _, s := range core.ShimPids(c.Dir) {
		if slices.Contains(s.Argv, "-spare") {
			pids = append(pids, s.Pid)
		}
	}
	return pids
}

// waitSpare waits for a spare other than not that waits for work (in "/": a spare that took
// work is in its container's bundle) and returns it.
func waitSpare(t *testing.T, c *harness.Containerd, not int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, s := range core.ShimPids(c.Dir) {
			if slices.Contains(s.Argv, "-spare") && s.Pid != not && s.Cwd == "/" {
				return s.Pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no waiting spare daemon besides %d after 10s (spares: %v)", not, spares(c))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSpareDaemon checks the spare: once a container's start has handed over its work, a
// daemon waits as the spare (-spare, in "/"); the next container's start hands its work to
// that daemon, which serves it from the bundle like any other (exec, kill, delete), and a new
// spare waits in its place. Once containerd's shims are cleaned up, no spare is left.
func TestSpareDaemon(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id1 := harness.RandID(t, "sp1")
	task1, wait1 := startTask(t, c, newContainer(t, c, id1, []string{"sleep", "600"}))
	spare := waitSpare(t, c, 0)

	id2 := harness.RandID(t, "sp2")
	ctr2 := newContainer(t, c, id2, []string{"sleep", "600"})
	task2, wait2 := startTask(t, c, ctr2)
	if shim := oneShim(t, c, id2); shim != spare {
		t.Errorf("%s is served by daemon %d (%q), want the spare %d", id2, shim, daemonArgs(t, shim), spare)
	}
	next := waitSpare(t, c, spare)
	if next == oneShim(t, c, id1) {
		t.Errorf("the new spare %d serves %s", next, id1)
	}
	p, io, pwait, err := execProcess(t, c, task2, "e1", processSpec(t, ctx, ctr2, "echo", "from the spare's container"), false)
	if err != nil {
		t.Fatal(err)
	}
	if code := waitCode(t, pwait); code != 0 || io.out.String() != "from the spare's container\n" {
		t.Errorf("exec in %s: exit %d, %q", id2, code, io.out.String())
	}
	if _, err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	for i, task := range []client.Task{task1, task2} {
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitCode(t, []<-chan client.ExitStatus{wait1, wait2}[i])
		if _, err := task.Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.RequireNoLeftovers(t, id1, 10*time.Second)
	c.RequireNoLeftovers(t, id2, 10*time.Second)
	if s := spares(c); !slices.Equal(s, []int{next}) {
		t.Errorf("spares after both containers: %v, want [%d]", s, next)
	}
}

// TestSpareIdleExit checks that a spare nobody takes exits after its idle time
// (BOX_SPARE_IDLE), so a host that stopped starting containers keeps no idle daemon.
func TestSpareIdleExit(t *testing.T) {
	c := startBox(t, harness.WithShimEnv("BOX_SPARE_IDLE=1s"))
	ctx := c.Context(t)
	id := harness.RandID(t, "spi")
	task, wait := startTask(t, c, newContainer(t, c, id, []string{"sleep", "600"}))
	spare := waitSpare(t, c, 0)
	if !harness.WaitExit(spare, 10*time.Second) {
		t.Errorf("spare %d still waits 10s after its 1s idle time", spare)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitCode(t, wait)
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	c.RequireNoLeftovers(t, id, 10*time.Second)
}
