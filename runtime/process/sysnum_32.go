//go:build linux && (386 || arm)

package process

import "golang.org/x/sys/unix"

// The 32-bit id system calls; the unsuffixed ones take 16-bit ids here.
const (
	sysSetgroups = unix.SYS_SETGROUPS32
	sysSetresgid = unix.SYS_SETRESGID32
	sysSetresuid = unix.SYS_SETRESUID32
)
