package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness/core"
)

// cleanup stops the daemon and removes everything this harness made (core.Daemon.Teardown):
// it is idempotent and best effort, every step runs and failures are reported together.
// If the test failed (or BOX_TEST_LOG is set) it prints containerd's log first.
func (c *Containerd) cleanup(t testing.TB) {
	if t.Failed() || os.Getenv("BOX_TEST_LOG") != "" {
		t.Logf("containerd %s log (%s):\n%s", c.Version, c.d.LogPath, c.Log())
	}
	if err := c.d.Teardown(c.CgroupParent, "/box-test-"); err != nil {
		t.Errorf("harness cleanup: %v", err)
	}
}

// shimPids lists live shim processes (box or runc peer) that belong to this containerd: their
// command line, environment or working directory mentions Dir. With id != "", only the shim
// whose command line carries "-id <id>" or whose working directory is id's bundle.
func (c *Containerd) shimPids(id string) []int {
	var pids []int
	for _, s := range core.ShimPids(c.Dir) {
		if id != "" && !argHas(s.Argv, "-id", id) && filepath.Base(s.Cwd) != id {
			continue
		}
		pids = append(pids, s.Pid)
	}
	return pids
}

func argHas(argv []string, flag, val string) bool {
	for i := 0; i+1 < len(argv); i++ {
		if (argv[i] == flag || argv[i] == "-"+flag) && argv[i+1] == val {
			return true
		}
		if argv[i] == flag+"="+val {
			return true
		}
	}
	return false
}

func itoa(i int) string { return strconv.Itoa(i) }

// WaitExit waits up to timeout for pid to exit; true if it is gone.
func WaitExit(pid int, timeout time.Duration) bool { return core.WaitExit(pid, timeout) }
