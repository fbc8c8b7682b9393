// Command mkimage writes the busybox test image (an OCI image layout tarball named
// box.test/busybox:latest, built from the host's static /bin/busybox) to the file given as its
// only argument, for `ctr images import`.
package main

import (
	"fmt"
	"os"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkimage OUT.tar")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func write(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := harness.WriteBusyboxImage(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
