package process

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ioprioWhoProcess is IOPRIO_WHO_PROCESS (include/uapi/linux/ioprio.h).
const ioprioWhoProcess = 1

// setIOPriority applies process.ioPriority (class << 13 | level) to the
// calling thread with ioprio_set(2); execve keeps it. The real-time class
// needs CAP_SYS_ADMIN (or CAP_SYS_NICE), so it runs before capabilities are
// dropped.
func setIOPriority(prio *int) error {
	if prio == nil {
		return nil
	}
	_, _, errno := unix.RawSyscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, uintptr(*prio))
	if errno != 0 {
		return fmt.Errorf("process.ioPriority: ioprio_set %#x: %w", *prio, classifySched(errno))
	}
	return nil
}

// IOPriority returns the I/O priority of thread tid (ioprio_get(2)).
func IOPriority(tid int) (int, error) {
	r, _, errno := unix.RawSyscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		return 0, fmt.Errorf("ioprio_get %d: %w", tid, errno)
	}
	return int(r), nil
}
