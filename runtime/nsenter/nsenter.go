//go:build linux && cgo

// Package nsenter joins the namespaces of a running container before the Go
// runtime starts. Link it (a blank import is enough) into every binary that
// runs the exec stage ("<binary> exec").
//
// Why C: a Go program is multi-threaded before main, and the kernel lets
// only a single-threaded process join a user or time namespace, and only a
// process with an unshared fs_struct join a mount namespace. A constructor
// runs before the runtime starts its threads. It does nothing unless
// argv[1] is "exec" and _BOX_NSENTER is set (the format is in nsenter.c).
package nsenter

/*
#cgo CFLAGS: -Wall -Werror
extern int box_nsenter_ran;
*/
import "C"

// Ran reports whether the constructor joined the container's namespaces in
// this process. The exec stage refuses to continue without it: it would
// otherwise run in the daemon's mount namespace.
func Ran() bool { return C.box_nsenter_ran == 1 }
