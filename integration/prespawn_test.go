package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestDaemonPrespawned checks that the daemon serving a container is the
// one start's constructor started ("-prespawned", shim/launch/prespawn).
// (That the prespawned daemon of a container joining a running group's
// daemon goes away is TestGroupedShimNoFDLeak's RequireNoLeftovers.)
func TestDaemonPrespawned(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "pre")
	ctr := newContainer(t, c, id, []string{"sleep", "600"})
	task, wait := startTask(t, c, ctr)
	shim := oneShim(t, c, id)
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(shim), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) != 2 || filepath.Base(string(args[0])) != "containerd-shim-box-v1-daemon" || string(args[1]) != "-prespawned" {
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
