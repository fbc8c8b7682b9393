package shim

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// stdio connects a process to the stdio paths containerd gave. The container
// gets the fifo fds themselves: no copy goroutine and no extra pipe sits in
// between, and a write by the container goes straight to the client.
//
// The daemon keeps, for each fifo, a handle of the opposite direction: a
// reader on stdout/stderr so the container's writes never fail with EPIPE
// while a client detaches and reattaches, and a writer on stdin so the
// container sees EOF only when CloseIO asks for it.
type stdio struct {
	// files are the container's stdin, stdout, stderr (nil: /dev/null).
	// They are closed by closeChild once the container has its own copies.
	files [3]*os.File
	// stdinHold is the daemon's writer on the stdin fifo.
	stdinHold *os.File
	// holds are the daemon's readers on output fifos.
	holds []*os.File
}

// openStdio opens the container side of each non-empty path. On failure
// nothing stays open.
func openStdio(stdin, stdout, stderr string, terminal bool) (_ *stdio, retErr error) {
	if terminal {
		return nil, fmt.Errorf("terminal: not supported yet: %w", errdefs.ErrInvalidArgument)
	}
	s := &stdio{}
	defer func() {
		if retErr != nil {
			s.closeChild()
			s.close()
		}
	}()
	for i, p := range []string{stdin, stdout, stderr} {
		if p == "" {
			continue
		}
		if err := checkFifoPath(p); err != nil {
			return nil, err
		}
		var err error
		if i == 0 {
			s.files[0], s.stdinHold, err = openFifoPair(p, unix.O_RDONLY, unix.O_WRONLY)
		} else {
			var hold *os.File
			s.files[i], hold, err = openFifoPair(p, unix.O_WRONLY, unix.O_RDONLY)
			if hold != nil {
				s.holds = append(s.holds, hold)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// checkFifoPath accepts plain paths (containerd's fifos) and refuses URIs
// box does not serve yet with a clear error.
func checkFifoPath(p string) error {
	if strings.Contains(p, "://") {
		u, err := url.Parse(p)
		if err != nil {
			return fmt.Errorf("stdio %q: %w: %w", p, err, errdefs.ErrInvalidArgument)
		}
		if u.Scheme != "fifo" {
			return fmt.Errorf("stdio %q: scheme %q not supported yet: %w", p, u.Scheme, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// openFifoPair opens path for the container in direction child, after
// opening the daemon's handle in direction hold so that neither open blocks.
// The child's handle is left blocking.
func openFifoPair(path string, child, hold int) (c, h *os.File, err error) {
	path = strings.TrimPrefix(path, "fifo://")
	first, second := hold, child
	if child == unix.O_RDONLY {
		// A writer can only be opened without blocking once a reader exists.
		first, second = child, hold
	}
	fd1, err := unix.Open(path, first|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open stdio fifo %s: %w", path, classifyErrno(err))
	}
	fd2, err := unix.Open(path, second|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd1)
		return nil, nil, fmt.Errorf("open stdio fifo %s: %w", path, classifyErrno(err))
	}
	cfd, hfd := fd2, fd1
	if first == child {
		cfd, hfd = fd1, fd2
	}
	if err := setBlocking(cfd); err != nil {
		unix.Close(cfd)
		unix.Close(hfd)
		return nil, nil, err
	}
	return os.NewFile(uintptr(cfd), path), os.NewFile(uintptr(hfd), path), nil
}

func setBlocking(fd int) error {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	return err
}

func classifyErrno(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return err
}

// closeChild closes the daemon's copies of the container's stdio.
func (s *stdio) closeChild() {
	for i, f := range s.files {
		if f != nil {
			f.Close()
			s.files[i] = nil
		}
	}
}

// closeStdin lets the container read EOF on stdin once the client's writer
// is gone too (CloseIO).
func (s *stdio) closeStdin() {
	if s.stdinHold != nil {
		s.stdinHold.Close()
		s.stdinHold = nil
	}
}

// close releases every handle the daemon holds. Idempotent.
func (s *stdio) close() {
	s.closeStdin()
	for _, f := range s.holds {
		f.Close()
	}
	s.holds = nil
}
