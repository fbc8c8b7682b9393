package prespawn

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func socketpair(t *testing.T) (start *os.File, daemon int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	return os.NewFile(uintptr(fds[0]), "start"), fds[1]
}

// TestHandoff sends work and a listening socket the way start does and
// checks that the daemon's side receives both, and that Handoff returns
// once the daemon acknowledges.
func TestHandoff(t *testing.T) {
	start, daemon := socketpair(t)
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lf, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	want := Work{Args: []string{"-namespace", "n", "-id", "c", "-address", "/a"}, Env: []string{"TTRPC_ADDRESS=/a.ttrpc"}}
	type received struct {
		w   Work
		lfd int
		err error
	}
	got := make(chan received, 1)
	go func() {
		w, lfd, err := Receive(daemon)
		if err == nil {
			err = Ack(daemon)
		}
		got <- received{w, lfd, err}
	}()
	if err := Handoff(start, want, lf); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer unix.Close(r.lfd)
	if !reflect.DeepEqual(r.w, want) {
		t.Fatalf("work = %+v, want %+v", r.w, want)
	}
	// The descriptor is the listener: a connection to its path is
	// accepted on it.
	if v, err := unix.GetsockoptInt(r.lfd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		t.Fatalf("fd %d is not a listening socket: %d, %v", r.lfd, v, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nfd, _, err := unix.Accept4(r.lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatalf("accept on the received listener: %v", err)
	}
	unix.Close(nfd)
}

// TestHandoffDaemonGone is the review's case: a daemon that receives the
// work but exits before acknowledging it must make Handoff fail (start then
// runs a daemon itself), not report an address nobody serves.
func TestHandoffDaemonGone(t *testing.T) {
	start, daemon := socketpair(t)
	lf, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	go func() {
		if _, lfd, err := Receive(daemon); err == nil {
			unix.Close(lfd)
		}
		unix.Shutdown(daemon, unix.SHUT_RDWR) // as if it exited
	}()
	if err := Handoff(start, Work{Args: []string{"-id", "c"}}, lf); err == nil {
		t.Fatal("Handoff succeeded though the daemon never acknowledged")
	}
}

// TestHandoffNoWork: start closing its end without sending anything tells
// the daemon to exit (ErrNoWork); a datagram without a socket is an error.
func TestHandoffNoWork(t *testing.T) {
	start, daemon := socketpair(t)
	start.Close()
	if _, _, err := Receive(daemon); !errors.Is(err, ErrNoWork) {
		t.Fatalf("after close: %v, want ErrNoWork", err)
	}

	start, daemon = socketpair(t)
	defer start.Close()
	if _, err := start.Write([]byte(`{"args":[]}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Receive(daemon); err == nil || errors.Is(err, ErrNoWork) {
		t.Fatalf("work without a socket: %v, want an error", err)
	}
}

// TestTakeOnce: Take hands out the prespawned daemon at most once (in a
// test binary there is none: the constructor acts only for "start").
func TestTakeOnce(t *testing.T) {
	if _, _, ok := Take(); ok {
		t.Fatal("a test binary has a prespawned daemon")
	}
	if _, _, ok := Take(); ok {
		t.Fatal("second Take found a daemon")
	}
}
