package integration

import (
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestKillThenDeleteLeavesNothing verifies that after Kill (SIGKILL, or SIGTERM to a shell that
// traps nothing) and Delete, no mount mentions the container, its cgroup is gone, no process
// is left in it, and its shim process has exited.
func TestKillThenDeleteLeavesNothing(t *testing.T) {
	c := startBox(t)
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		code uint32
	}{
		{"SIGKILL", syscall.SIGKILL, 137},
		{"SIGTERM", syscall.SIGTERM, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := c.Context(t)
			id := harness.RandID(t, "kill")
			// pid 1 of a pid namespace ignores signals it has no handler for, so the shell
			// traps TERM; SIGKILL from the parent namespace always kills it.
			script := `trap 'exit 143' TERM; sleep 600 & wait`
			ctr := newContainer(t, c, id, []string{"sh", "-c", script})
			task, wait := startTask(t, c, ctr)
			shim := oneShim(t, c, id)
			requireVisibleWhileRunning(t, c, id)
			if err := task.Kill(ctx, tc.sig); err != nil {
				t.Fatal(err)
			}
			if code := waitCode(t, wait); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if _, err := task.Delete(ctx); err != nil {
				t.Fatal(err)
			}
			if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
				t.Fatal(err)
			}
			if !harness.WaitExit(shim, exitTimeout) {
				t.Errorf("shim %d still running after its only container was deleted", shim)
			}
			c.RequireNoLeftovers(t, id, 10*time.Second)
		})
	}
}

// TestGroupedShimNoFDLeak verifies that a shim serving a group of containers returns to the
// same number of open fds after further containers of the group run and are deleted, and
// exits once the group's last container is deleted. The group is named by an annotation, so
// start's constructor prespawns no daemon for any of them: the first one's daemon is started
// by start itself (not "-prespawned").
func TestGroupedShimNoFDLeak(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	group := oci.WithAnnotations(map[string]string{"io.containerd.runc.v2.group": harness.RandID(t, "grp")})
	anchorID := harness.RandID(t, "anchor")
	anchor := newContainer(t, c, anchorID, []string{"sleep", "600"}, group)
	task, wait := startTask(t, c, anchor)
	shim := oneShim(t, c, anchorID)
	if args := daemonArgs(t, shim); slices.Contains(args, "-prespawned") {
		t.Errorf("the group's daemon %d was prespawned (%q): start's constructor missed the group annotation", shim, args)
	}

	lifecycle := func(i int) {
		id := harness.RandID(t, "member")
		ctr := newContainer(t, c, id, []string{"sh", "-c", "echo member"}, group)
		r := runToExit(t, c, ctr)
		if r.code != 0 || r.stdout != "member\n" {
			t.Fatalf("member %d: code %d stdout %q stderr %q", i, r.code, r.stdout, r.stderr)
		}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			t.Fatal(err)
		}
		c.RequireNoLeftovers(t, id, 10*time.Second)
	}
	lifecycle(0) // warm up: lazily opened fds (event connection, epoll) stay open
	if pids := c.ShimPids(anchorID); len(pids) != 1 || pids[0] != shim {
		t.Fatalf("grouped containers got another shim: %v (anchor's is %d)", pids, shim)
	}
	before := fdCount(t, shim)
	for i := 1; i <= 3; i++ {
		lifecycle(i)
	}
	if after := fdCount(t, shim); after != before {
		t.Errorf("shim %d had %d fds before three container lifecycles and %d after", shim, before, after)
	}

	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitCode(t, wait)
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := anchor.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	if !harness.WaitExit(shim, exitTimeout) {
		t.Errorf("grouped shim %d still running after the group's last container was deleted", shim)
	}
	c.RequireNoLeftovers(t, anchorID, 10*time.Second)
}

// TestShimCrash verifies that when the shim daemon is SIGKILLed, containerd reports the task
// stopped, and deleting task and container leaves no mount, cgroup or process: containerd's
// `shim delete` must clean up after a dead daemon.
func TestShimCrash(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "crash")
	ctr := newContainer(t, c, id, []string{"sleep", "600"})
	task, wait := startTask(t, c, ctr)
	requireVisibleWhileRunning(t, c, id)
	shim := oneShim(t, c, id)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !harness.WaitExit(shim, exitTimeout) {
		t.Fatalf("shim %d survived SIGKILL", shim)
	}
	select {
	case st := <-wait:
		t.Logf("after shim crash, Wait returned %d (%v)", st.ExitCode(), st.Error())
	case <-time.After(exitTimeout):
		t.Fatal("Wait did not return after the shim was killed")
	}
	if st, err := task.Status(ctx); err == nil && st.Status != client.Stopped && st.Status != client.Unknown {
		t.Errorf("task status after shim crash = %q, want stopped", st.Status)
	}
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("task delete after shim crash: %v", err)
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("container delete after shim crash: %v", err)
	}
	c.RequireNoLeftovers(t, id, 15*time.Second)
}
