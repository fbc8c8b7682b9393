package shim

import (
	"fmt"

	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
)

// Status is the lifecycle state of a task (an init process or an exec).
//
// Legal transitions; anything else fails with errdefs.ErrFailedPrecondition:
//
//	Created -> Running | Stopped | Deleted
//	Running -> Paused | Stopped
//	Paused  -> Running | Stopped
//	Stopped -> Deleted
type Status uint8

const (
	_ Status = iota // invalid: every task has a status
	Created
	Running
	Paused
	Stopped
	Deleted
)

var statusNames = [...]string{"invalid", "created", "running", "paused", "stopped", "deleted"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", s)
}

var transitions = map[Status][]Status{
	Created: {Running, Stopped, Deleted},
	Running: {Paused, Stopped},
	Paused:  {Running, Stopped},
	Stopped: {Deleted},
}

// to returns the status after moving from s to next, or an
// ErrFailedPrecondition error if the move is illegal.
func (s Status) to(next Status) (Status, error) {
	for _, t := range transitions[s] {
		if t == next {
			return next, nil
		}
	}
	return s, fmt.Errorf("task is %s, cannot become %s: %w", s, next, errdefs.ErrFailedPrecondition)
}

// proto is the containerd API value of s.
func (s Status) proto() task.Status {
	switch s {
	case Created:
		return task.Status_CREATED
	case Running:
		return task.Status_RUNNING
	case Paused:
		return task.Status_PAUSED
	case Stopped, Deleted:
		return task.Status_STOPPED
	}
	return task.Status_UNKNOWN
}
