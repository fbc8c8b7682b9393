package shim

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// consoleDrainTimeout bounds how long close waits for a terminal's output
// to reach its target, as containerd's runc shim waits for its copies at
// Delete.
var consoleDrainTimeout = 10 * time.Second

// epoller is the daemon's one console.Epoller; its Wait loop runs for the
// daemon's lifetime.
var epoller = sync.OnceValues(func() (*console.Epoller, error) {
	e, err := console.NewEpoller()
	if err != nil {
		return nil, fmt.Errorf("create console epoller: %w", err)
	}
	go func() {
		if err := e.Wait(); err != nil {
			log.L.WithError(err).Error("console epoller stopped")
		}
	}()
	return e, nil
})

// terminal copies between the pty master of a process and its stdio:
//
//	stdin fifo ──copyIn──> master ──copyOut──> stdout target
//
// The master is served through a console.EpollConsole, which turns the
// EIO/EAGAIN a pty master returns once its slave is gone into waits that
// shutdown can end.
//
// On EOF of stdin (CloseIO and the client's writer closed), copyIn hangs
// the console up (shutdown, then close the master), as containerd's runc
// shim does: a pty has no EOF to pass on, and a hangup is how an
// interactive process learns its input is gone.
//
// Lifecycle: newTerminal → attach (once) → shutdown (at the process's exit,
// idempotent) → close (once). Safe for concurrent use.
type terminal struct {
	// in is the daemon's reader on the stdin fifo, or nil.
	in *os.File
	// out is where the console's output goes, or nil to discard it.
	out *os.File

	mu sync.Mutex
	// master is the pty master, set by attach.
	master *os.File // guarded by mu
	// ec serves master, set by attach.
	ec *console.EpollConsole // guarded by mu
	// down is set once ec has left the epoller; ec.Shutdown with the
	// epoller's CloseConsole must not run twice, since the fd number may by
	// then belong to another console.
	down bool // guarded by mu
	// masterClosed is set once master is closed.
	masterClosed bool // guarded by mu

	// inDone and outDone are closed when copyIn and copyOut end; attach
	// closes inDone itself when there is no stdin. Neither is closed if
	// attach never succeeds.
	inDone, outDone chan struct{}
	closeOutOnce    sync.Once
}

// newTerminal returns a terminal that will copy in (may be nil) to the pty
// and the pty to out (may be nil). It owns in and out.
func newTerminal(in, out *os.File) *terminal {
	return &terminal{in: in, out: out, inDone: make(chan struct{}), outDone: make(chan struct{})}
}

// attach starts copying with master. It takes ownership of master.
func (t *terminal) attach(master *os.File) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.master != nil || t.masterClosed {
		master.Close()
		return fmt.Errorf("attach console: already attached or closed: %w", errdefs.ErrFailedPrecondition)
	}
	t.master = master
	c, err := console.ConsoleFromFile(master)
	if err != nil {
		return fmt.Errorf("attach console: %s: %w: %w", master.Name(), err, errdefs.ErrInvalidArgument)
	}
	e, err := epoller()
	if err != nil {
		return err
	}
	ec, err := e.Add(c)
	if err != nil {
		return fmt.Errorf("attach console: add to epoll: %w", err)
	}
	t.ec = ec
	go t.copyOut(ec)
	if t.in != nil {
		go t.copyIn(ec)
	} else {
		close(t.inDone)
	}
	return nil
}

// copyOut copies the console to out until the console is shut down and
// drained, or closed. It closes out when done, so a logger sees EOF.
func (t *terminal) copyOut(ec *console.EpollConsole) {
	defer close(t.outDone)
	var dst io.Writer = io.Discard
	if t.out != nil {
		dst = t.out
	}
	buf := make([]byte, 32<<10)
	if _, err := io.CopyBuffer(dst, ec, buf); err != nil && !isHangup(err) {
		log.L.WithError(err).Debug("copy console output")
	}
	t.closeOut()
}

// copyIn copies stdin to the console; at EOF it hangs the console up.
func (t *terminal) copyIn(ec *console.EpollConsole) {
	defer close(t.inDone)
	buf := make([]byte, 32<<10)
	_, err := io.CopyBuffer(ec, t.in, buf)
	if err != nil {
		// close closed in, or the console is gone: close does the rest.
		log.L.WithError(err).Debug("copy console input")
		return
	}
	t.shutdown()
	t.closeMaster()
}

// isHangup tells whether err is how a copy from a shut-down or closed
// console ends.
func isHangup(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EIO)
}

// shutdown takes the console out of the epoller and lets copyOut end once
// it has read what the pty holds. Idempotent.
func (t *terminal) shutdown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ec == nil || t.down {
		return
	}
	t.down = true
	e, err := epoller()
	if err != nil {
		return // attach could not have succeeded
	}
	if err := t.ec.Shutdown(e.CloseConsole); err != nil {
		log.L.WithError(err).Debug("shut down console")
	}
}

// closeMaster closes the pty master and wakes any copy still waiting on it,
// so that it sees the closed file and returns. Idempotent.
func (t *terminal) closeMaster() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.masterClosed {
		return
	}
	t.masterClosed = true
	if t.master == nil {
		return
	}
	t.master.Close()
	if t.ec != nil {
		// The console is out of the epoller by now, so nothing else wakes
		// a copy waiting for EPOLLIN/EPOLLOUT; Shutdown with a no-op close
		// broadcasts to both.
		_ = t.ec.Shutdown(func(int) error { return nil })
	}
}

func (t *terminal) closeOut() {
	t.closeOutOnce.Do(func() {
		if t.out != nil {
			t.out.Close()
		}
	})
}

// resize sets the pty's window size.
func (t *terminal) resize(width, height uint32) error {
	if width > math.MaxUint16 || height > math.MaxUint16 {
		return fmt.Errorf("resize to %dx%d: too large: %w", width, height, errdefs.ErrInvalidArgument)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ec == nil || t.masterClosed {
		return fmt.Errorf("resize: console not attached or closed: %w", errdefs.ErrFailedPrecondition)
	}
	if err := t.ec.Resize(console.WinSize{Width: uint16(width), Height: uint16(height)}); err != nil {
		return fmt.Errorf("resize console to %dx%d: %w", width, height, err)
	}
	return nil
}

// close lets the output drain for at most consoleDrainTimeout, then closes
// everything and waits for both copies to end.
func (t *terminal) close() {
	t.mu.Lock()
	attached := t.ec != nil
	t.mu.Unlock()
	if !attached {
		// Never attached: no copy runs. Mark master closed so a late attach
		// fails, and release the files.
		t.closeMaster()
		if t.in != nil {
			t.in.Close()
		}
		t.closeOut()
		return
	}
	t.shutdown()
	timer := time.NewTimer(consoleDrainTimeout)
	defer timer.Stop()
	select {
	case <-t.outDone:
	case <-timer.C:
		log.L.Warnf("console output did not drain in %s; dropping the rest", consoleDrainTimeout)
	}
	t.closeMaster()
	if t.in != nil {
		t.in.Close()
	}
	t.closeOut()
	<-t.outDone
	<-t.inDone
}
