package integration

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

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

// TestHostPIDOrphansReaped runs a container in the host's pid namespace whose processes leave
// orphans: the kernel reparents them to the daemon (a child subreaper in the same pid
// namespace), which must collect their exits. The daemon otherwise learns of exits through
// pidfds alone; for such a container it also listens for SIGCHLD (shim/reaper.go).
func TestHostPIDOrphansReaped(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "hostpid")
	// Five subshells each start a sleep in the background and exit at once: the sleeps are
	// orphaned, become the daemon's children and exit a second later.
	const orphans = 5
	script := "for i in 1 2 3 4 5; do (sleep 1 &); done; exec sleep 600"
	ctr := newContainer(t, c, id, []string{"sh", "-c", script}, oci.WithHostNamespace(specs.PIDNamespace))
	task, wait := startTask(t, c, ctr)
	shim := oneShim(t, c, id)
	// The init (sleep 600) and the orphans are the daemon's children.
	if !waitFor(10*time.Second, func() bool { return len(childrenOf(t, shim)) >= 1+orphans }) {
		t.Fatalf("the orphans never became children of the daemon %d: %v", shim, childrenOf(t, shim))
	}
	// Once they exit, only the init is left: no zombie.
	if !waitFor(10*time.Second, func() bool { return len(childrenOf(t, shim)) == 1 }) {
		t.Errorf("children of the daemon %d after its orphans exited: %v", shim, childrenOf(t, shim))
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitCode(t, wait)
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	c.RequireNoLeftovers(t, id, 10*time.Second)
}

// childrenOf returns ppid's children, pid to state ("S", "Z", ...).
func childrenOf(t *testing.T, ppid int) map[int]string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	children := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(ppid) {
			children[pid] = f[0]
		}
	}
	return children
}
