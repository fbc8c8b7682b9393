// Command containerd-shim-box-v1 is the binary containerd runs for the
// io.containerd.box.v1 runtime: the start and delete actions (shim/launch),
// which start or clean up after the daemon (containerd-shim-box-v1-daemon,
// installed beside it), and, executed by the daemon from a sealed copy, the
// container-side init and exec stages. It links no task API, ttrpc or gRPC
// code: it runs several times for every container, and package
// initialisation is most of a Go program's start-up time.
package main

import (
	"os"
	goruntime "runtime"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
	// The exec stage's namespace join runs in this constructor, before the
	// Go runtime starts.
	_ "github.com/boxrt/containerd-shim-box-v1/runtime/nsenter"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch"
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
	launch.Main()
}
