package process

import (
	"fmt"
	"math/bits"
	"unsafe"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// setMemoryPolicy applies linux.memoryPolicy to the calling thread with
// set_mempolicy(2); children and execve keep it.
//
// unix.SetMemPolicyDynamic is not used: it passes the mask's size in bytes
// as maxnode, which the kernel reads as a number of bits, so nodes above 7
// of a one-word mask would be dropped.
func setMemoryPolicy(m *oci.MemoryPolicy) error {
	if m == nil {
		return nil
	}
	var errno unix.Errno
	if len(m.Nodes) == 0 {
		_, _, errno = unix.RawSyscall(unix.SYS_SET_MEMPOLICY, uintptr(m.Mode), 0, 0)
	} else {
		// The kernel reads maxnode-1 bits.
		maxnode := len(m.Nodes)*bits.UintSize + 1
		_, _, errno = unix.Syscall(unix.SYS_SET_MEMPOLICY, uintptr(m.Mode), uintptr(unsafe.Pointer(&m.Nodes[0])), uintptr(maxnode))
	}
	if errno != 0 {
		err := error(errno)
		if errno == unix.EINVAL {
			// Nodes that do not exist or have no memory, or flags the
			// mode does not take.
			err = fmt.Errorf("%w: %w", errno, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("linux.memoryPolicy: set_mempolicy mode %#x nodes %s: %w", m.Mode, oci.FormatCPUList(m.Nodes), err)
	}
	return nil
}
