package prespawn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

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

// Handoff sends w and the listening socket l to the daemon on conn and
// closes conn.
func Handoff(conn *os.File, w Work, l *os.File) error {
	defer conn.Close()
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return unix.Sendmsg(int(conn.Fd()), b, unix.UnixRights(int(l.Fd())), nil, unix.MSG_NOSIGNAL)
}

// ErrNoWork is returned by Receive when start closed the socket without
// sending anything: the container went to a running daemon.
var ErrNoWork = errors.New("start sent no work")

// Receive is the daemon's side: it reads the work from fd and returns it
// with the listening socket, which it moves to fd 3 (replacing fd, which
// must be 3), where the daemon expects it.
func Receive(fd int) (Work, error) {
	var w Work
	buf := make([]byte, maxWork)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return w, fmt.Errorf("receive work from start: %w", err)
	}
	if n == 0 {
		return w, ErrNoWork
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return w, fmt.Errorf("receive work from start: no socket (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return w, fmt.Errorf("receive work from start: want one socket, got %d (%v)", len(fds), err)
	}
	if err := json.Unmarshal(buf[:n], &w); err != nil {
		unix.Close(fds[0])
		return w, fmt.Errorf("decode work from start: %w", err)
	}
	// The listener takes the sync socket's place, as if inherited: the
	// daemon takes fd 3 over (shim.listener) and closes it.
	if err := unix.Dup3(fds[0], fd, 0); err != nil {
		unix.Close(fds[0])
		return w, fmt.Errorf("move socket to fd %d: %w", fd, err)
	}
	unix.Close(fds[0])
	return w, nil
}
