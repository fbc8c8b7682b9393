package prespawn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Work is what start tells a prespawned daemon: the arguments and the
// environment additions it would have been executed with.
type Work struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

// maxWork bounds the message (addresses and ids only).
const maxWork = 64 << 10

// ackTimeout bounds how long start waits for the daemon to take the work.
// The daemon started with start itself, so it is normally ready; a daemon
// that is not (it crashed, or is an older build that does not know
// -prespawned) must not make start report an address nobody serves.
const ackTimeout = 10 * time.Second

// Handoff sends w and the listening socket l to the daemon on conn, waits
// until the daemon says it took them (Ack) and closes conn. An error means
// the daemon did not take the work: the caller kills it and starts one
// itself.
func Handoff(conn *os.File, w Work, l *os.File) error {
	defer conn.Close()
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	fd := int(conn.Fd())
	if err := unix.Sendmsg(fd, b, unix.UnixRights(int(l.Fd())), nil, unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("send work to the daemon: %w", err)
	}
	deadline := time.Now().Add(ackTimeout)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return fmt.Errorf("the daemon did not take the work within %s", ackTimeout)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if errors.Is(err, unix.EINTR) || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for the daemon: %w", err)
		}
		var ack [1]byte
		n, err = unix.Read(fd, ack[:])
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil || n != 1 {
			return fmt.Errorf("the daemon exited before taking the work (%v)", err)
		}
		return nil
	}
}

// ErrNoWork is returned by Receive when start closed the socket without
// sending anything: the container went to a running daemon.
var ErrNoWork = errors.New("start sent no work")

// Receive is the daemon's side: it reads the work and the listening socket
// from fd. The caller checks the work, tells start it took it (Ack), and
// owns the returned descriptor.
func Receive(fd int) (Work, int, error) {
	var w Work
	buf := make([]byte, maxWork)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return w, -1, fmt.Errorf("receive work from start: %w", err)
	}
	if n == 0 {
		return w, -1, ErrNoWork
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return w, -1, fmt.Errorf("receive work from start: no socket (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, f := range fds {
			unix.Close(f)
		}
		return w, -1, fmt.Errorf("receive work from start: want one socket, got %d (%v)", len(fds), err)
	}
	if err := json.Unmarshal(buf[:n], &w); err != nil {
		unix.Close(fds[0])
		return w, -1, fmt.Errorf("decode work from start: %w", err)
	}
	return w, fds[0], nil
}

// Ack tells start, on fd, that the daemon took the work.
func Ack(fd int) error {
	_, err := unix.Write(fd, []byte{1})
	return err
}
