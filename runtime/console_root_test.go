package runtime

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// readAll collects what the pty master reads until the slave side is
// closed by every process (EIO).
func readAll(master io.Reader) <-chan string {
	ch := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, master)
		ch <- strings.ReplaceAll(b.String(), "\r\n", "\n")
	}()
	return ch
}

// readUntil reads from r until what it read ends with suffix.
func readUntil(t *testing.T, r io.Reader, suffix string) string {
	t.Helper()
	var b []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(b), suffix) {
		if _, err := r.Read(one); err != nil {
			t.Fatalf("read %q, then %v; want it to end with %q", b, err, suffix)
		}
		b = append(b, one[0])
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

// TestExecTerminal checks an exec'd process with a terminal gets a pty of
// the container's devpts as its controlling terminal, with the spec's
// initial size, and that a resize through the master reaches it.
func TestExecTerminal(t *testing.T) {
	testutil.RequiresRoot(t)
	c, spec, mon := startContainer(t, "sleep", "100")
	ps := execSpec(spec, "sh", "-c", "tty; stty size; read x; stty size; cat /proc/self/stat | cut -d' ' -f7")
	ps.Terminal = true
	ps.ConsoleSize = &specs.Box{Height: 33, Width: 77}
	proc, err := c.Exec(context.Background(), ProcessConfig{ID: "e", Spec: ps, Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	if proc.Console == nil {
		t.Fatal("no console")
	}
	defer proc.Console.Close()
	first := readUntil(t, proc.Console, "33 77\r\n")
	if first != "/dev/pts/0\n33 77\n" {
		t.Errorf("tty; stty size printed %q", first)
	}
	if err := unix.IoctlSetWinsize(int(proc.Console.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := proc.Console.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	got := <-readAll(proc.Console)
	e := <-proc.Exited()
	if e.Status != 0 {
		t.Fatalf("exit %d:\n%s", e.Status, got)
	}
	// "go" is the pty's echo; tty_nr (field 7) != 0: the pty is the
	// controlling terminal.
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 3 || lines[0] != "go" || lines[1] != "40 100" || lines[2] == "0" {
		t.Errorf("terminal output:\n%s", got)
	}
}

// TestInitTerminal checks the init process with a terminal gets a pty of
// the container's devpts, its initial size, and Console is its master.
func TestInitTerminal(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sh", "-c", "tty; stty size; cat /proc/self/stat | cut -d' ' -f7; ls -l /proc/self/fd/")
	spec.Process.Terminal = true
	spec.Process.ConsoleSize = &specs.Box{Height: 24, Width: 132}
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Terminal: true, Monitor: &testMonitor{}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Console == nil {
		t.Fatal("no console")
	}
	defer c.Console.Close()
	out := readAll(c.Console)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	e := <-c.Exited()
	got := <-out
	if err := c.Destroy(); err != nil {
		t.Error(err)
	}
	if e.Status != 0 {
		t.Fatalf("exit %d:\n%s", e.Status, got)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) < 3 || lines[0] != "/dev/pts/0" || lines[1] != "24 132" || lines[2] == "0" {
		t.Errorf("terminal output:\n%s", got)
	}
	// Only stdio (all the pty) and ls's own directory fd are open.
	if n := strings.Count(got, "-> /dev/pts/0"); n != 3 {
		t.Errorf("%d fds on the pty, want 3:\n%s", n, got)
	}
}

// TestExecTerminalRefusesFakePtmx checks the exec stage takes a pty only
// from the pty multiplexer: a regular file a container process put at
// /dev/ptmx is refused with a clear error.
func TestExecTerminalRefusesFakePtmx(t *testing.T) {
	testutil.RequiresRoot(t)
	c, spec, mon := startContainer(t, "sleep", "100")
	if out, e, err := execInto(t, c, mon, execSpec(spec, "sh", "-c", "rm /dev/ptmx && echo fake > /dev/ptmx")); err != nil || e.Status != 0 {
		t.Fatalf("replace /dev/ptmx: %v %v %s", err, e, out)
	}
	ps := execSpec(spec, "tty")
	ps.Terminal = true
	_, err := c.Exec(context.Background(), ProcessConfig{ID: "e", Spec: ps, Monitor: mon})
	if err == nil || !strings.Contains(err.Error(), "not the pty multiplexer") {
		t.Fatalf("err = %v, want a refusal of the fake /dev/ptmx", err)
	}
}
