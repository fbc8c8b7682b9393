// Command mkattacker compiles the attack tests' abuser (harness.AttackerSource) into a static
// binary, for the cgroup v2 VM, which has no compiler (hack/vm/build.sh).
//
//	go run ./integration/cmd/mkattacker OUT
package main

import (
	"fmt"
	"os"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkattacker OUT")
		os.Exit(2)
	}
	if err := harness.BuildAttacker(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mkattacker:", err)
		os.Exit(1)
	}
}
