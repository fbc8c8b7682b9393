package runtime

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// allCPUs is a mask of every CPU number the kernel could have: setting it
// makes a task's affinity whatever its cpuset allows, now and as the cpuset
// changes (the kernel keeps the requested mask and intersects it).
var allCPUs = func() unix.CPUSetDynamic {
	s := unix.NewCPUSet(oci.MaxCPU)
	s.Fill()
	return s
}()

// resetAffinity gives pid every CPU its cgroup allows, so a container does
// not inherit a restricted affinity of the daemon (containerd started with
// a CPUAffinity, say). runc does the same for its init and for execs
// without execCPUAffinity. Best effort, as in runc: a failure leaves the
// inherited affinity, which is not wrong, only narrower.
//
// A variable so that a test can show what happens without it.
var resetAffinity = func(pid int) {
	_ = unix.SchedSetaffinityDynamic(pid, allCPUs)
}

// setInitialAffinity sets the calling thread's affinity to
// process.execCPUAffinity.initial, so the exec stage it forks is born with
// it and joins the container on those CPUs.
//
// Preconditions: the calling goroutine is locked to its thread, for good.
func setInitialAffinity(a *oci.CPUAffinity) error {
	if a == nil || a.Initial == nil {
		return nil
	}
	if err := unix.SchedSetaffinityDynamic(0, a.Initial); err != nil {
		return fmt.Errorf("process.execCPUAffinity.initial %s: %w", oci.FormatCPUList(a.Initial), classifyAffinity(err))
	}
	return nil
}

// setFinalAffinity applies process.execCPUAffinity.final to the exec stage
// pid once it is in the container's cgroup (joining a cpuset resets the
// affinity), so its setup finishes and its program starts there. As runc:
// with no affinity at all the stage gets every CPU its cgroup allows; with
// only an initial one it keeps that.
func setFinalAffinity(pid int, a *oci.CPUAffinity) error {
	if a == nil {
		resetAffinity(pid)
		return nil
	}
	if a.Final == nil {
		return nil
	}
	if err := unix.SchedSetaffinityDynamic(pid, a.Final); err != nil {
		return fmt.Errorf("process.execCPUAffinity.final %s: %w", oci.FormatCPUList(a.Final), classifyAffinity(err))
	}
	return nil
}

// classifyAffinity: EINVAL means no CPU of the mask is online and allowed
// by the cgroup's cpuset.
func classifyAffinity(err error) error {
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%w (no CPU of the list is online and in the container's cpuset): %w", err, errdefs.ErrInvalidArgument)
	}
	return err
}
