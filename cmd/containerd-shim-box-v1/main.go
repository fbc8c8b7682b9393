// Command containerd-shim-box-v1 is a containerd shim (task API v3) that is
// also its own OCI runtime.
package main

func main() {}
