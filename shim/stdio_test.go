package shim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
)

func TestMain(m *testing.M) {
	if len(os.Args) == 2 && (os.Args[1] == "init" || os.Args[1] == "exec") {
		runStage(os.Args[1]) // tasks_fuzz_test.go
	}
	if len(os.Args) > 1 && os.Args[1] == testLoggerKey {
		os.Exit(runTestLogger(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// forkMonitor is a runtime.Monitor for tests: it reaps exactly the children
// it forked, each with its own wait4.
type forkMonitor struct {
	mu sync.Mutex
	// exits records each reaped child's exit by pid.
	exits map[int]runtime.Exit // guarded by mu
	// forked lists the children started, in order.
	forked []int // guarded by mu
}

func (m *forkMonitor) Fork(fork func() (int, error)) (int, <-chan runtime.Exit, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	m.forked = append(m.forked, pid)
	ch := make(chan runtime.Exit, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		e := runtime.Exit{Status: exitStatus(ws)}
		m.mu.Lock()
		if m.exits == nil {
			m.exits = make(map[int]runtime.Exit)
		}
		m.exits[pid] = e
		m.mu.Unlock()
		ch <- e
	}()
	return pid, ch, nil
}

// exitOf returns the exit of the i-th child forked, if it has been reaped.
func (m *forkMonitor) exitOf(i int) (runtime.Exit, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i >= len(m.forked) {
		return runtime.Exit{}, false
	}
	e, ok := m.exits[m.forked[i]]
	return e, ok
}

// running returns the children not reaped yet.
func (m *forkMonitor) running() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var pids []int
	for _, pid := range m.forked {
		if _, ok := m.exits[pid]; !ok {
			pids = append(pids, pid)
		}
	}
	return pids
}

func mkfifo(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// openFds returns the number of fds the test process has open.
func openFds(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestPlanStdio(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		cfg                   stdioConfig
		stdin, stdout, stderr stream
		logger                *loggerSpec
		err                   error
	}{
		{name: "none"},
		{
			name:  "fifos",
			cfg:   stdioConfig{Stdin: "/f/in", Stdout: "/f/out", Stderr: "fifo:///f/err"},
			stdin: stream{streamFifo, "/f/in"}, stdout: stream{streamFifo, "/f/out"}, stderr: stream{streamFifo, "/f/err"},
		},
		{
			name:   "file for both",
			cfg:    stdioConfig{Stdout: "file:///var/log/c.log", Stderr: "file:///var/log/c.log"},
			stdout: stream{streamFile, "/var/log/c.log"}, stderr: stream{streamFile, "/var/log/c.log"},
		},
		{
			name:   "binary takes stderr too",
			cfg:    stdioConfig{Stdin: "/f/in", Stdout: "binary:///bin/log?b=2&a=1", Stderr: "binary:///bin/log?b=2&a=1"},
			stdin:  stream{streamFifo, "/f/in"},
			stdout: stream{kind: streamLogger},
			logger: &loggerSpec{path: "/bin/log", args: []string{"a", "1", "b", "2"}},
		},
		{
			name:   "binary-v2 with empty stderr",
			cfg:    stdioConfig{Stdout: "binary-v2:///bin/log"},
			stdout: stream{kind: streamLogger},
			logger: &loggerSpec{path: "/bin/log", strictReady: true},
		},
		{
			name:   "terminal ignores stderr",
			cfg:    stdioConfig{Stdout: "/f/out", Stderr: "bogus://x", Terminal: true},
			stdout: stream{streamFifo, "/f/out"},
		},
		{name: "unknown stdout scheme", cfg: stdioConfig{Stdout: "tcp://host:1"}, err: errdefs.ErrInvalidArgument},
		{name: "unknown stderr scheme", cfg: stdioConfig{Stderr: "tcp://host:1"}, err: errdefs.ErrInvalidArgument},
		{name: "file stdin", cfg: stdioConfig{Stdin: "file:///x"}, err: errdefs.ErrInvalidArgument},
		{name: "file with host", cfg: stdioConfig{Stdout: "file://host/x"}, err: errdefs.ErrInvalidArgument},
		{name: "relative binary", cfg: stdioConfig{Stdout: "binary://log"}, err: errdefs.ErrInvalidArgument},
		{name: "logger on stderr only", cfg: stdioConfig{Stdout: "/f/out", Stderr: "binary:///bin/log"}, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planStdio(tc.cfg)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.stdin != tc.stdin || p.stdout != tc.stdout || p.stderr != tc.stderr {
				t.Errorf("streams = %+v %+v %+v, want %+v %+v %+v", p.stdin, p.stdout, p.stderr, tc.stdin, tc.stdout, tc.stderr)
			}
			if (p.logger == nil) != (tc.logger == nil) ||
				p.logger != nil && (p.logger.path != tc.logger.path || p.logger.strictReady != tc.logger.strictReady || !slices.Equal(p.logger.args, tc.logger.args)) {
				t.Errorf("logger = %+v, want %+v", p.logger, tc.logger)
			}
		})
	}
}

func TestLoggerArgsLikeContainerd(t *testing.T) {
	// containerd's NewBinaryCmd: key, then first value, no dashes; a bare
	// key still gives an (empty) value.
	q, err := url.ParseQuery("z=last&a=1&a=ignored&flag")
	if err != nil {
		t.Fatal(err)
	}
	got := loggerArgs(q)
	want := []string{"a", "1", "flag", "", "z", "last"}
	if !slices.Equal(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
}

func TestFifoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in, out := mkfifo(t, dir, "in"), mkfifo(t, dir, "out")
	s, err := openStdio(context.Background(), stdioConfig{Stdin: in, Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.files[2] != nil {
		t.Errorf("stderr without a path should be nil (/dev/null)")
	}

	// stdout: what the container writes reaches a client.
	client, err := os.OpenFile(out, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.files[1].WriteString("out"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "out" {
		t.Fatalf("client read %q, %v", buf, err)
	}
	// A client that detaches does not make the container's writes fail.
	client.Close()
	if _, err := s.files[1].WriteString("again"); err != nil {
		t.Errorf("write with the client gone: %v", err)
	}

	// stdin: what a client writes reaches the container.
	cin, err := os.OpenFile(in, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cin.WriteString("in"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s.files[0], buf[:2]); err != nil || string(buf[:2]) != "in" {
		t.Fatalf("container read %q, %v", buf[:2], err)
	}
	// No EOF while the daemon holds its writer, even with the client gone.
	cin.Close()
	rfd := int(s.files[0].Fd())
	if err := unix.SetNonblock(rfd, true); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Read(rfd, buf); err != unix.EAGAIN {
		t.Fatalf("read before CloseIO = %d, %v; want EAGAIN", n, err)
	}
	s.closeStdin()
	if n, err := unix.Read(rfd, buf); n != 0 || err != nil {
		t.Fatalf("read after CloseIO = %d, %v; want EOF", n, err)
	}
	s.closeChild()
	s.close()
	s.close() // idempotent
}

func TestFifoMissingLeavesNothingOpen(t *testing.T) {
	dir := t.TempDir()
	in := mkfifo(t, dir, "in")
	// Warm up what stays open for the process's lifetime (Go's poller).
	if s, err := openStdio(context.Background(), stdioConfig{Stdin: in}); err == nil {
		s.closeChild()
		s.close()
	}
	before := openFds(t)
	_, err := openStdio(context.Background(), stdioConfig{Stdin: in, Stdout: mkfifo(t, dir, "out"), Stderr: filepath.Join(dir, "missing")})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("err = %v, want NotFound", err)
	}
	if after := openFds(t); after != before {
		t.Errorf("open fds %d -> %d after a failed openStdio", before, after)
	}
}

func TestFileAppendsAndShares(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "c.log")
	uri := "file://" + path
	for _, line := range []string{"one\n", "two\n"} {
		s, err := openStdio(context.Background(), stdioConfig{Stdout: uri, Stderr: uri})
		if err != nil {
			t.Fatal(err)
		}
		if s.files[1] == nil || s.files[1] != s.files[2] {
			t.Fatalf("stdout and stderr naming one file should share it: %v %v", s.files[1], s.files[2])
		}
		if _, err := s.files[2].WriteString(line); err != nil {
			t.Fatal(err)
		}
		s.closeChild()
		s.close()
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "one\ntwo\n" {
		t.Errorf("log = %q, want both lines appended", got)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
}

func TestFileSeparateStreams(t *testing.T) {
	dir := t.TempDir()
	s, err := openStdio(context.Background(), stdioConfig{
		Stdout: "file://" + filepath.Join(dir, "out.log"), Stderr: "file://" + filepath.Join(dir, "err.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.files[1].WriteString("o")
	s.files[2].WriteString("e")
	s.closeChild()
	s.close()
	for name, want := range map[string]string{"out.log": "o", "err.log": "e"} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestPlainRegularFileIsAppended(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openStdio(context.Background(), stdioConfig{Stdout: path})
	if err != nil {
		t.Fatal(err)
	}
	s.files[1].WriteString("added\n")
	s.closeChild()
	s.close()
	if got, _ := os.ReadFile(path); !bytes.Equal(got, []byte("kept\nadded\n")) {
		t.Errorf("file = %q", got)
	}
}

func TestUnknownSchemeNamesStream(t *testing.T) {
	_, err := openStdio(context.Background(), stdioConfig{Stdout: "/dev/null", Stderr: "syslog://x"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte("stderr")) {
		t.Errorf("error %q does not name the stream", err)
	}
}

func TestNoConsoleWithoutTerminal(t *testing.T) {
	s, err := openStdio(context.Background(), stdioConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.resize(80, 24); !errdefs.IsNotFound(err) {
		t.Errorf("resize without a terminal = %v, want NotFound", err)
	}
	s.processExited() // no-op
}
