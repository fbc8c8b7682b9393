//go:build linux && cgo

// Package prespawn starts box's daemon in parallel with the start action
// (the constructor in prespawn.c) and hands it its work (Handoff). Link it
// into the containerd-shim-box-v1 binary; elsewhere (the daemon binary,
// built without cgo) Take finds nothing and start runs the daemon itself.
package prespawn

/*
#cgo CFLAGS: -Wall -Werror
extern int box_prespawn_pid;
extern int box_prespawn_fd;
*/
import "C"

import (
	"os"
	"sync"
)

var taken sync.Once

// Take returns the prespawned daemon's pid and start's end of its socket,
// the first time it is called; ok is false when no daemon was prespawned.
func Take() (pid int, conn *os.File, ok bool) {
	taken.Do(func() {
		if C.box_prespawn_pid > 0 && C.box_prespawn_fd >= 0 {
			pid, conn, ok = int(C.box_prespawn_pid), os.NewFile(uintptr(C.box_prespawn_fd), "prespawn"), true
		}
	})
	return pid, conn, ok
}
