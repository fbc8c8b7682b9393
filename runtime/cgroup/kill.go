package cgroup

import (
	"errors"
	"fmt"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// signalAll sends sig to every process that list reports, through pidfds so that a pid
// recycled between listing and signalling is never hit:
//
//  1. list the pids and open a pidfd for each (the pidfd pins the process it was opened for);
//  2. list the pids again, and signal only pidfds whose pid is still listed. If that process
//     was alive at the second listing, the pid named it there, so it is a member; if it had
//     already exited, pidfd_send_signal fails with ESRCH, which is skipped.
//
// Processes forked after the first listing are not signalled; callers that must empty the
// cgroup (SIGKILL) repeat until Pids is empty or freeze first. A process that exits on the way
// (ESRCH) is not an error.
func signalAll(list func() ([]int, error), sig syscall.Signal) error {
	pids, err := list()
	if err != nil {
		return err
	}
	fds := make(map[int]int, len(pids))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	var errs []error
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
		if err != nil {
			if !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("pidfd_open %d: %w", pid, err))
			}
			continue
		}
		fds[pid] = fd
	}
	still, err := list()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for pid, fd := range fds {
		if !slices.Contains(still, pid) {
			continue
		}
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("signal %d with %v: %w", pid, sig, err))
		}
	}
	return errors.Join(errs...)
}
