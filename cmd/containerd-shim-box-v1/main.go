// Command containerd-shim-box-v1 is a containerd shim (task API v3) that is
// also its own OCI runtime. The same binary runs as the shim (start, delete,
// -info, the daemon) and, re-executed from a sealed copy, as the container
// side init and exec stages.
package main

import (
	"os"
	goruntime "runtime"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
	// The exec stage's namespace join runs in this constructor, before the
	// Go runtime starts.
	_ "github.com/boxrt/containerd-shim-box-v1/runtime/nsenter"
	"github.com/boxrt/containerd-shim-box-v1/shim"
)

func init() {
	if isInitStage() || isExecStage() {
		// Every per-thread change the stage makes (credentials,
		// capabilities) must land on the thread that calls execve.
		goruntime.LockOSThread()
	}
}

func isInitStage() bool { return len(os.Args) == 2 && os.Args[1] == "init" }
func isExecStage() bool { return len(os.Args) == 2 && os.Args[1] == "exec" }

func main() {
	if isInitStage() {
		runtime.InitMain()
	}
	if isExecStage() {
		runtime.ExecMain()
	}
	shim.Main()
}
