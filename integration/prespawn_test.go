package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestDaemonPrespawned checks that the daemon serving a container is the
// one start's constructor started ("-prespawned", shim/launch/prespawn).
// (That no daemon is prespawned for a container of another container's
// group is TestGroupedShimNoFDLeak's.)
func TestDaemonPrespawned(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "pre")
	ctr := newContainer(t, c, id, []string{"sleep", "600"})
	task, wait := startTask(t, c, ctr)
	shim := oneShim(t, c, id)
	if args := daemonArgs(t, shim); len(args) != 2 || args[1] != "-prespawned" {
		t.Fatalf("daemon %d runs %q, want containerd-shim-box-v1-daemon -prespawned", shim, args)
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

// daemonArgs returns the command line of box daemon pid.
func daemonArgs(t *testing.T, pid int) []string {
	t.Helper()
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if filepath.Base(args[0]) != "containerd-shim-box-v1-daemon" {
		t.Fatalf("shim %d runs %q, want containerd-shim-box-v1-daemon", pid, args)
	}
	return args
}
