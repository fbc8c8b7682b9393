package process

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// setScheduler applies process.scheduler to the calling thread with
// sched_setattr(2); the program inherits it through execve. Raising the
// priority (a negative nice, a real-time policy) needs CAP_SYS_NICE, so it
// runs before capabilities are dropped.
//
// Preconditions: the thread that will execve.
func setScheduler(attr *unix.SchedAttr) error {
	if attr == nil {
		return nil
	}
	a := *attr
	if err := unix.SchedSetAttr(0, &a, 0); err != nil {
		return fmt.Errorf("process.scheduler: sched_setattr: %w", classifySched(err))
	}
	return nil
}

// classifySched maps the kernel's refusals: EINVAL is a value the kernel
// does not take; EPERM and EBUSY are a host or cgroup that does not allow
// it (no real-time budget in the cgroup, SCHED_DEADLINE with a restricted
// cpuset or without bandwidth left).
func classifySched(err error) error {
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w (a real-time or deadline policy needs a cgroup and cpuset that allow it): %w", err, errdefs.ErrFailedPrecondition)
	}
	return err
}

// setSchedAttrs applies, in runc's order, the scheduler, the I/O priority,
// the personality and the memory policy to the calling thread.
func setSchedAttrs(p *oci.ProcessPlan) error {
	if err := setScheduler(p.Scheduler); err != nil {
		return err
	}
	if err := setIOPriority(p.IOPriority); err != nil {
		return err
	}
	if err := setPersonality(p.Personality); err != nil {
		return err
	}
	return setMemoryPolicy(p.MemoryPolicy)
}
