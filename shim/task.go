package shim

import (
	"context"
	"syscall"

	"fmt"
	"github.com/containerd/errdefs"
	"sync"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
)

// container is one task served by the daemon: its init process and what the
// daemon holds for it.
//
// Lock order: service.mu before container.mu.
type container struct {
	id        string
	namespace string
	bundle    string
	stdin     string
	stdout    string
	stderr    string
	rt        *runtime.Container
	io        *stdio
	// ioUID and ioGID own the pipes made for the container's output
	// (runtime options IoUid/IoGid); execs use them too.
	ioUID, ioGID int
	// ownPidNS is false when the container shares a pid namespace, in which
	// case its processes are killed when init exits (nothing else would).
	ownPidNS bool

	mu     sync.Mutex
	status Status // guarded by mu
	// starting is set while Start runs, so an exit that races it is
	// published after TaskStart.
	starting bool // guarded by mu
	// exit is set once init has exited.
	exit *runtime.Exit // guarded by mu
	// exitPublished is set once TaskExit is queued.
	exitPublished bool // guarded by mu
	// exited is closed when exit is set.
	exited chan struct{}
	// execs are the container's exec'd processes by exec id.
	execs map[string]*execProcess // guarded by mu
	// runningExecs counts execs from the start of their Start until their
	// TaskExit is queued; init's TaskExit waits for it to reach zero.
	runningExecs int // guarded by mu
	// execsDone is signalled (on mu) when runningExecs decreases.
	execsDone *sync.Cond
}

// signalExec sends sig to a started, running exec.
func (c *container) signalExec(id string, sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.getExec(id)
	if err != nil {
		return err
	}
	switch {
	case e.exit != nil:
		return fmt.Errorf("exec %s: process already finished: %w", id, errdefs.ErrNotFound)
	case e.rt == nil:
		return fmt.Errorf("exec %s: process not started: %w", id, errdefs.ErrFailedPrecondition)
	}
	return e.rt.Signal(sig)
}

// execIDs maps the pids of started execs to their exec ids.
func (c *container) execIDs() map[int]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[int]string, len(c.execs))
	for id, e := range c.execs {
		if e.rt != nil {
			m[e.rt.Pid] = id
		}
	}
	return m
}

// transition moves the container to next.
//
// Preconditions: c.mu is held.
func (c *container) transition(next Status) error {
	s, err := c.status.to(next)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.id, err)
	}
	c.status = s
	return nil
}

// exitInfo returns the exit, if init has exited.
func (c *container) exitInfo() (runtime.Exit, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exit == nil {
		return runtime.Exit{}, false
	}
	return *c.exit, true
}

// waitExit blocks until init has exited or done is closed.
func (c *container) waitExit(done <-chan struct{}) (runtime.Exit, error) {
	select {
	case <-c.exited:
		e, _ := c.exitInfo()
		return e, nil
	case <-done:
		return runtime.Exit{}, fmt.Errorf("wait for %s: %w", c.id, context.Canceled)
	}
}

func (c *container) pid() uint32 { return uint32(c.rt.Pid) }

func exitTime(e runtime.Exit) time.Time { return e.At }
