//go:build linux

// Package console gives a container process a pseudo-terminal from the
// container's own devpts instance, as its controlling terminal and stdio.
package console

import (
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ptmx is the device number of the pty multiplexer, both /dev/ptmx and a
// devpts instance's own ptmx node.
var ptmx = unix.Mkdev(5, 2)

// Setup allocates a pty through the current root's /dev/ptmx, makes its
// slave the calling process's controlling terminal and its stdin, stdout
// and stderr, sets the window size when size is not nil, and returns the
// master. The caller owns the master (close-on-exec) and normally sends it
// to the daemon.
//
// The slave is reached with TIOCGPTPEER from the master, never by opening
// /dev/pts/N: a process of the container could have put anything at that
// path (CVE-2025-52565). /dev/ptmx itself must be the ptmx character device
// (or a symlink to the devpts instance's ptmx, as runtime/rootfs makes it).
//
// Preconditions:
//   - The caller is in the container's mount namespace and root, with
//     /dev/pts mounted (a devpts with newinstance), as root.
//   - The caller is a session leader without a controlling terminal (the
//     daemon starts the stages with setsid).
func Setup(size *specs.Box) (master *os.File, retErr error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	defer func() {
		if retErr != nil {
			master.Close()
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat /dev/ptmx: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != ptmx {
		return nil, fmt.Errorf("/dev/ptmx in the container is not the pty multiplexer (mode %#o, rdev %#x)", st.Mode, st.Rdev)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	slave, err := peer(fd)
	if err != nil {
		return nil, err
	}
	defer unix.Close(slave)
	if size != nil {
		ws := &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)}
		if err := unix.IoctlSetWinsize(slave, unix.TIOCSWINSZ, ws); err != nil {
			return nil, fmt.Errorf("set console size: %w", err)
		}
	}
	if err := unix.IoctlSetInt(slave, unix.TIOCSCTTY, 0); err != nil {
		return nil, fmt.Errorf("make the pty the controlling terminal: %w", err)
	}
	for std := 0; std < 3; std++ {
		if err := unix.Dup3(slave, std, 0); err != nil {
			return nil, fmt.Errorf("dup pty to fd %d: %w", std, err)
		}
	}
	return master, nil
}

// peer opens the slave of master with TIOCGPTPEER (Linux >= 4.13).
func peer(master int) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER,
		uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		return -1, fmt.Errorf("open pty slave (TIOCGPTPEER): %w", errno)
	}
	return int(r), nil
}
