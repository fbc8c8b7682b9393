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
extern int box_prespawn_spare;
extern char box_spare_path[108];
#include <stdlib.h>
#include <sys/stat.h>
int box_joins_group(const char *config, size_t len, const char *id);
int box_spare_path_for(const char *address, const char *ns, const struct stat *daemon, char *out, size_t len);
*/
import "C"

import (
	"errors"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

var taken sync.Once

// Daemon is a daemon the constructor found ready for this start's work.
type Daemon struct {
	Pid  int
	Conn *os.File // start's end of the socket the work goes over
	// Spare: a daemon another start left running (it is not this
	// process's child), rather than one prespawned by this constructor.
	Spare bool
}

// Take returns the daemon the constructor prespawned or connected to, the
// first time it is called; ok is false when there is none.
func Take() (d Daemon, ok bool) {
	taken.Do(func() {
		if C.box_prespawn_pid > 0 && C.box_prespawn_fd >= 0 {
			d = Daemon{Pid: int(C.box_prespawn_pid), Conn: os.NewFile(uintptr(C.box_prespawn_fd), "prespawn"),
				Spare: C.box_prespawn_spare != 0}
			ok = true
		}
	})
	return d, ok
}

// SparePath is the socket the spare daemon for this start's containerd,
// namespace and daemon binary listens on; "" when spares are off
// (BOX_SPARE=0) or no path could be made.
func SparePath() string { return C.GoString(&C.box_spare_path[0]) }

// sparePathFor is the constructor's naming (box_spare_path_for) for a
// daemon binary at path, for the tests.
func sparePathFor(address, ns, path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	var cst C.struct_stat
	cst.st_dev, cst.st_ino, cst.st_size = C.dev_t(st.Dev), C.ino_t(st.Ino), C.off_t(st.Size)
	cst.st_mtim.tv_sec, cst.st_mtim.tv_nsec = C.time_t(st.Mtim.Sec), C.long(st.Mtim.Nsec)
	ca, cn := C.CString(address), C.CString(ns)
	defer C.free(unsafe.Pointer(ca))
	defer C.free(unsafe.Pointer(cn))
	var out [108]C.char
	if C.box_spare_path_for(ca, cn, &cst, &out[0], C.size_t(len(out))) != 0 {
		return "", errors.New("no path")
	}
	return C.GoString(&out[0]), nil
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
