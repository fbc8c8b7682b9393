//go:build !(linux && cgo)

package prespawn

import "os"

// Daemon is a daemon the constructor found ready for this start's work.
type Daemon struct {
	Pid   int
	Conn  *os.File
	Spare bool
}

// Take finds nothing without the constructor: start runs the daemon itself.
func Take() (d Daemon, ok bool) { return Daemon{}, false }

// SparePath is empty without the constructor: no spares.
func SparePath() string { return "" }
