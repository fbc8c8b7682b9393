//go:build linux && !386 && !arm

package process

import "golang.org/x/sys/unix"

// The 32-bit id system calls (on 64-bit architectures, the only ones).
const (
	sysSetgroups = unix.SYS_SETGROUPS
	sysSetresgid = unix.SYS_SETRESGID
	sysSetresuid = unix.SYS_SETRESUID
)
