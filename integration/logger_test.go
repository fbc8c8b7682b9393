package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// loggerScript is a binary:// logger: it copies the container's stdout
// (fd 3) and stderr (fd 4) to files named by its arguments, records the
// environment box gives it, and signals ready by closing fd 5.
const loggerScript = `#!/bin/sh
# args: out <file> (containerd passes each query key, then its value)
out=$2
/bin/cat <&3 >"$out.stdout" 5>&- &
/bin/cat <&4 >"$out.stderr" 5>&- &
echo "$CONTAINER_ID $CONTAINER_NAMESPACE" >"$out.env"
exec 5>&-
wait
`

// TestBinaryLogger runs a container whose stdio goes to a binary://
// logger, and checks the round trip: both streams arrive, the logger got
// the container's id and namespace, and it is gone after Delete.
func TestBinaryLogger(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	dir := t.TempDir()
	logger := filepath.Join(dir, "logger.sh")
	if err := os.WriteFile(logger, []byte(loggerScript), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "log")
	id := harness.RandID(t, "logger")
	ctr := newContainer(t, c, id, []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2"})
	task, err := ctr.NewTask(ctx, cio.BinaryIO(logger, map[string]string{"out": out}))
	if err != nil {
		t.Fatalf("NewTask with binary logger: %v", err)
	}
	wait, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if code := waitCode(t, wait); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	read := func(suffix string) string {
		b, err := os.ReadFile(out + suffix)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	// The logger drains its pipes after the container exits; Delete waits
	// for it to stop, so the files are complete now.
	if got := read(".stdout"); got != "to-stdout" {
		t.Errorf("stdout via logger: %q", got)
	}
	if got := read(".stderr"); got != "to-stderr" {
		t.Errorf("stderr via logger: %q", got)
	}
	if got := read(".env"); got != id+" "+harness.Namespace {
		t.Errorf("logger env %q, want %q", got, id+" "+harness.Namespace)
	}
	// Delete stopped the logger: no process runs the script any more.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), logger) {
			t.Errorf("logger still running after Delete: %s", p)
		}
	}
}
