package shim

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// newTestPty returns a pty: the master as the runtime would hand it over,
// and the slave, in raw mode, playing the container.
func newTestPty(t *testing.T) (master *os.File, slave *os.File) {
	t.Helper()
	m, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	master = os.NewFile(uintptr(fd), "ptmx")
	slave, err = os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	sc, err := console.ConsoleFromFile(slave)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.SetRaw(); err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// assertCopiesEnded fails unless both of the terminal's copy goroutines
// have returned.
func assertCopiesEnded(t *testing.T, s *stdio) {
	t.Helper()
	for what, ch := range map[string]chan struct{}{"stdin copy": s.term.inDone, "stdout copy": s.term.outDone} {
		select {
		case <-ch:
		default:
			t.Errorf("%s still running", what)
		}
	}
}

func TestConsoleFifos(t *testing.T) {
	dir := t.TempDir()
	in, out := mkfifo(t, dir, "in"), mkfifo(t, dir, "out")
	s, err := openStdio(context.Background(), stdioConfig{Stdin: in, Stdout: out, Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.files != [3]*os.File{} {
		t.Fatalf("a terminal process gets no stdio files, got %v", s.files)
	}
	if err := s.resize(80, 24); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("resize before attach = %v, want FailedPrecondition", err)
	}
	cout, err := os.OpenFile(out, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cout.Close()
	cin, err := os.OpenFile(in, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cin.Close()
	master, slave := newTestPty(t)
	if err := s.attachConsole(master); err != nil {
		t.Fatal(err)
	}

	cin.WriteString("hello")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(slave, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("container read %q, %v", buf, err)
	}
	slave.WriteString("world")
	if _, err := io.ReadFull(cout, buf); err != nil || string(buf) != "world" {
		t.Fatalf("client read %q, %v", buf, err)
	}

	if err := s.resize(100, 40); err != nil {
		t.Fatal(err)
	}
	sc, _ := console.ConsoleFromFile(slave)
	if ws, err := sc.Size(); err != nil || ws.Width != 100 || ws.Height != 40 {
		t.Errorf("slave size = %+v, %v; want 100x40", ws, err)
	}
	if err := s.resize(1<<16, 1); !errdefs.IsInvalidArgument(err) {
		t.Errorf("resize to 65536 columns = %v, want InvalidArgument", err)
	}

	// The container exits: its output is drained and the client sees EOF.
	slave.WriteString("bye")
	slave.Close()
	s.processExited()
	waitClosed(t, s.term.outDone, "stdout copy ending after processExited")
	if rest, err := io.ReadAll(cout); err != nil || string(rest) != "bye" {
		t.Errorf("client read %q, %v after exit; want the rest then EOF", rest, err)
	}
	s.close()
	assertCopiesEnded(t, s)
	if err := s.resize(80, 24); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("resize after close = %v, want FailedPrecondition", err)
	}
}

func TestConsoleStdinEOFHangsUp(t *testing.T) {
	dir := t.TempDir()
	in, out := mkfifo(t, dir, "in"), mkfifo(t, dir, "out")
	s, err := openStdio(context.Background(), stdioConfig{Stdin: in, Stdout: out, Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	cin, err := os.OpenFile(in, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	master, slave := newTestPty(t)
	if err := s.attachConsole(master); err != nil {
		t.Fatal(err)
	}
	// The client detaching alone is no EOF.
	cin.Close()
	if _, err := slave.WriteString("still up"); err != nil {
		t.Fatalf("slave write before CloseIO: %v", err)
	}
	// CloseIO: as in containerd's runc shim, EOF on stdin hangs up the
	// console, which ends both copies.
	s.closeStdin()
	waitClosed(t, s.term.inDone, "stdin copy ending at EOF")
	waitClosed(t, s.term.outDone, "stdout copy ending after the hangup")
	if _, err := slave.WriteString("x"); !errors.Is(err, unix.EIO) {
		t.Errorf("slave write after hangup = %v, want EIO", err)
	}
}

func TestConsoleToFileWithoutProcessExited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tty.log")
	s, err := openStdio(context.Background(), stdioConfig{Stdout: "file://" + path, Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	master, slave := newTestPty(t)
	if err := s.attachConsole(master); err != nil {
		t.Fatal(err)
	}
	slave.WriteString("logged")
	slave.Close()
	// close shuts the console down itself and still drains the output.
	s.close()
	assertCopiesEnded(t, s)
	if got := readFile(t, path); got != "logged" {
		t.Errorf("log = %q", got)
	}
}

func TestConsoleToLogger(t *testing.T) {
	out := filepath.Join(t.TempDir(), "log")
	m := &forkMonitor{}
	s, err := openStdio(context.Background(), stdioConfig{
		ID: "c", Namespace: "n", Stdout: loggerURI(t, "binary-v2", "v2", out), Terminal: true, Monitor: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	master, slave := newTestPty(t)
	if err := s.attachConsole(master); err != nil {
		t.Fatal(err)
	}
	slave.WriteString("tty output")
	slave.Close()
	s.processExited()
	// The copy closes the logger's stdout; its stderr was empty from the
	// start, so it exits by itself.
	waitClosed(t, s.logger.done, "logger exit")
	if got := readFile(t, out+".stdout"); got != "tty output" {
		t.Errorf("logger stdout = %q", got)
	}
	if got := readFile(t, out+".stderr"); got != "" {
		t.Errorf("logger stderr = %q, want empty under a terminal", got)
	}
	s.close()
	assertCopiesEnded(t, s)
	if r := m.running(); len(r) != 0 {
		t.Errorf("still running: %v", r)
	}
}

func TestConsoleNoStdinNoStdout(t *testing.T) {
	s, err := openStdio(context.Background(), stdioConfig{Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	master, slave := newTestPty(t)
	if err := s.attachConsole(master); err != nil {
		t.Fatal(err)
	}
	// Output with nowhere to go is discarded, not left to fill the pty.
	big := make([]byte, 256<<10)
	if _, err := slave.Write(big); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	s.processExited()
	s.close()
	assertCopiesEnded(t, s)
}

func TestAttachConsoleRefusesNonTTY(t *testing.T) {
	s, err := openStdio(context.Background(), stdioConfig{Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := s.attachConsole(r); !errdefs.IsInvalidArgument(err) {
		t.Errorf("attach a pipe = %v, want InvalidArgument", err)
	}
	s.close()
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("attachConsole should own the master; read after close = %v", err)
	}

	plain, err := openStdio(context.Background(), stdioConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.close()
	master, _ := newTestPty(t)
	if err := plain.attachConsole(master); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("attach without a terminal = %v, want FailedPrecondition", err)
	}
}
