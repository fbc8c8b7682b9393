package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
)

// testLoggerKey, as the first query key of a logger URI, makes the test
// binary a logger (see TestMain and runTestLogger).
const testLoggerKey = "boxlogger"

// runTestLogger is a logging binary: it writes its environment and
// arguments to <out>.env, signals ready per mode, and copies fd 3 and fd 4
// to <out>.stdout and <out>.stderr until both reach EOF. Modes:
//
//	v2          write one byte to fd 5, then copy
//	eof         close fd 5 without a byte (ready for binary://), then copy
//	exit        exit 3 without signalling ready
//	hang        never signal ready
//	ignoreterm  signal ready, ignore SIGTERM, never exit by itself
func runTestLogger(args []string) int {
	kv := make(map[string]string)
	for i := 0; i+1 < len(args); i += 2 {
		kv[args[i]] = args[i+1]
	}
	mode, out := kv[testLoggerKey], kv["out"]
	env := fmt.Sprintf("id=%s ns=%s n=%d args=%s", os.Getenv("CONTAINER_ID"), os.Getenv("CONTAINER_NAMESPACE"), len(os.Environ()), strings.Join(args, ","))
	if err := os.WriteFile(out+".env", []byte(env), 0o600); err != nil {
		return 1
	}
	ready := os.NewFile(5, "ready")
	if mode == "ignoreterm" {
		signal.Ignore(syscall.SIGTERM) // before ready, or close's SIGTERM could win
	}
	switch mode {
	case "exit":
		return 3
	case "hang":
		time.Sleep(time.Hour)
	case "eof":
		ready.Close()
	case "v2", "ignoreterm":
		ready.Write([]byte{1})
		ready.Close()
	}
	if mode == "ignoreterm" {
		time.Sleep(time.Hour)
	}
	var wg sync.WaitGroup
	for fd, suffix := range map[uintptr]string{3: ".stdout", 4: ".stderr"} {
		wg.Go(func() {
			f, err := os.Create(out + suffix)
			if err != nil {
				return
			}
			defer f.Close()
			io.Copy(f, os.NewFile(fd, suffix))
		})
	}
	wg.Wait()
	return 0
}

// loggerURI returns a URI that runs the test binary as a logger writing
// to out.
func loggerURI(t *testing.T, scheme, mode, out string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{testLoggerKey: {mode}, "out": {out}}
	return (&url.URL{Scheme: scheme, Path: exe, RawQuery: q.Encode()}).String()
}

// waitClosed fails the test if ch is not closed within a generous bound.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBinaryLoggerGetsStreams(t *testing.T) {
	for _, tc := range []struct{ scheme, mode string }{
		{"binary", "eof"},
		{"binary", "v2"},
		{"binary-v2", "v2"},
	} {
		t.Run(tc.scheme+"/"+tc.mode, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "log")
			uri := loggerURI(t, tc.scheme, tc.mode, out)
			m := &forkMonitor{}
			s, err := openStdio(context.Background(), stdioConfig{
				ID: "c1", Namespace: "ns1", Stdout: uri, Stderr: uri, Monitor: m,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			if s.files[1] == nil || s.files[2] == nil || s.files[1] == s.files[2] {
				t.Fatalf("want two pipes for the container, got %v %v", s.files[1], s.files[2])
			}
			s.files[1].WriteString("to stdout")
			s.files[2].WriteString("to stderr")
			s.closeChild() // as if the container exited: the logger sees EOF and exits
			waitClosed(t, s.logger.done, "logger exit at EOF")

			if got := readFile(t, out+".stdout"); got != "to stdout" {
				t.Errorf("stdout = %q", got)
			}
			if got := readFile(t, out+".stderr"); got != "to stderr" {
				t.Errorf("stderr = %q", got)
			}
			wantEnv := "id=c1 ns=ns1 n=2 args=" + testLoggerKey + "," + tc.mode + ",out," + out
			if got := readFile(t, out+".env"); got != wantEnv {
				t.Errorf("env = %q, want %q", got, wantEnv)
			}
			s.close()
			if r := m.running(); len(r) != 0 {
				t.Errorf("still running: %v", r)
			}
		})
	}
}

func TestCloseStopsLogger(t *testing.T) {
	out := filepath.Join(t.TempDir(), "log")
	m := &forkMonitor{}
	s, err := openStdio(context.Background(), stdioConfig{Stdout: loggerURI(t, "binary-v2", "v2", out), Monitor: m})
	if err != nil {
		t.Fatal(err)
	}
	// A process still holding the pipe keeps the logger from seeing EOF.
	held, err := dupFile(s.files[1])
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	s.closeChild()
	s.close()
	if e, _ := m.exitOf(0); e.Status != 128+int(syscall.SIGTERM) {
		t.Errorf("logger exit = %d, want SIGTERM's %d", e.Status, 128+int(syscall.SIGTERM))
	}
}

func TestCloseKillsLoggerIgnoringSIGTERM(t *testing.T) {
	defer func(d time.Duration) { loggerStopTimeout = d }(loggerStopTimeout)
	loggerStopTimeout = 100 * time.Millisecond
	m := &forkMonitor{}
	s, err := openStdio(context.Background(), stdioConfig{
		Stdout: loggerURI(t, "binary-v2", "ignoreterm", filepath.Join(t.TempDir(), "log")), Monitor: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.closeChild()
	s.close()
	if e, _ := m.exitOf(0); e.Status != 128+int(syscall.SIGKILL) {
		t.Errorf("logger exit = %d, want SIGKILL's %d", e.Status, 128+int(syscall.SIGKILL))
	}
}

func TestLoggerNotReady(t *testing.T) {
	defer func(d time.Duration) { loggerReadyTimeout = d }(loggerReadyTimeout)
	loggerReadyTimeout = 300 * time.Millisecond
	for _, tc := range []struct {
		mode string
		want error
	}{
		{"exit", errdefs.ErrUnavailable},
		{"eof", errdefs.ErrUnavailable},
		{"hang", context.DeadlineExceeded},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "log")
			m := &forkMonitor{}
			before := openFds(t)
			_, err := openStdio(context.Background(), stdioConfig{Stdout: loggerURI(t, "binary-v2", tc.mode, out), Monitor: m})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "ready") {
				t.Errorf("error %q does not say the logger was not ready", err)
			}
			if r := m.running(); len(r) != 0 {
				t.Errorf("logger still running after a failed open: %v", r)
			}
			if after := openFds(t); after != before {
				t.Errorf("open fds %d -> %d after a failed openStdio", before, after)
			}
		})
	}
}

func TestLoggerMissingBinary(t *testing.T) {
	m := &forkMonitor{}
	_, err := openStdio(context.Background(), stdioConfig{Stdout: "binary:///nonexistent/logger", Monitor: m})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("err = %v, want NotFound", err)
	}
	if _, ok := m.exitOf(0); ok || len(m.running()) != 0 {
		t.Errorf("a logger was forked")
	}
}

func TestLoggerPipesOwnedByIoUid(t *testing.T) {
	testutil.RequiresRoot(t)
	m := &forkMonitor{}
	s, err := openStdio(context.Background(), stdioConfig{
		Stdout: loggerURI(t, "binary-v2", "v2", filepath.Join(t.TempDir(), "log")), UID: 1234, GID: 5678, Monitor: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	defer s.closeChild()
	for _, f := range s.files[1:] {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("pipe owned by %d:%d, want 1234:5678", st.Uid, st.Gid)
		}
	}
}

// dupFile returns a new file on f's open file description.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), f.Name()), nil
}
