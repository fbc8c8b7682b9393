package harness

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

// Ctr runs the ctr matching this containerd's version with -a Address -n box-test and returns
// its stdout, stderr and exit code. `run` gets --fifo-dir FIFODir so that ctr never uses
// /run/containerd/fifo. It fails the test only if ctr cannot be run at all or hangs for 2 min.
func (c *Containerd) Ctr(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	argv := []string{"-a", c.Address, "-n", Namespace}
	if len(args) > 0 && args[0] == "run" {
		argv = append(argv, "run", "--fifo-dir", c.FIFODir)
		args = args[1:]
	}
	argv = append(argv, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.ctrPath, argv...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		code = exit.ExitCode()
	default:
		t.Fatalf("ctr %v: %v (stderr: %s)", argv, err, e.String())
	}
	return o.String(), e.String(), code
}
