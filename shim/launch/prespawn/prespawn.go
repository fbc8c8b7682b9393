//go:build linux && cgo

// Package prespawn starts box's daemon in parallel with the start action
// (the constructor in prespawn.c) and hands it its work (Handoff). Link it
// into the containerd-shim-box-v1 binary; elsewhere (the daemon binary,
// built without cgo) Take finds nothing and start runs the daemon itself.
package prespawn

/*
#cgo CFLAGS: -Wall -Werror -I${SRCDIR}/../include
extern int box_prespawn_pid;
extern int box_prespawn_fd;
#include <stdlib.h>
int box_joins_group(const char *config, size_t len, const char *id);
*/
import "C"

import (
	"os"
	"sync"
	"unsafe"
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

// joinsGroup is the constructor's test for a container that joins its
// group's daemon (box_joins_group), for the tests.
func joinsGroup(config []byte, id string) bool {
	cid := C.CString(id)
	defer C.free(unsafe.Pointer(cid))
	var p *C.char
	if len(config) > 0 {
		p = (*C.char)(unsafe.Pointer(&config[0]))
	}
	return C.box_joins_group(p, C.size_t(len(config)), cid) != 0
}
