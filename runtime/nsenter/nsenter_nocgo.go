//go:build !linux || !cgo

package nsenter

// Ran is always false without cgo: the constructor is not linked, and the
// exec stage fails instead of running outside the container.
func Ran() bool { return false }
